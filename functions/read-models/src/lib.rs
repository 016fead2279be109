//! The read-models consumer: each SQS message is a paysaga event (delivered by the EventBridge
//! rule that copies every event to the read-models queue); each is projected into the read
//! models ([`paysaga_services::read_models`]): a wallet's transaction history and its payments.
//! Messages are handled on their own: one that fails goes back to the queue alone, and an
//! event that breaks its contract (an unknown version, say) fails as permanent, to the DLQ
//! with its reason on its last delivery.
//!
//! Each invocation flushes its metrics once ([`lambda_toolkit::metrics`]): the batch's messages per
//! queue ([`lambda_toolkit::sqs_batch`]), `ReadModelItemsChanged` (items written or moved forward)
//! and `ReadModelItemsUnchanged` (duplicates and events older than what is stored).

use std::sync::{Arc, Mutex};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use lambda_toolkit::metrics::{Metrics, MetricsSink};
use lambda_toolkit::sqs_batch::{
    DeadLetterQueue, GiveUp, MessageFailure, RecordWithoutId, process_batch,
};
use paysaga_domain::DomainEvent;
use paysaga_domain::ports::{ReadModelWriter, StoreError};
use paysaga_services::read_models::apply_event;
use tracing::{info, instrument};

/// What the read-models function may touch.
pub struct ReadModelsFunction {
    pub read_models: Arc<dyn ReadModelWriter>,
    /// The queue's `maxReceiveCount`: on the last delivery a failure goes to the DLQ with why.
    pub max_receive_count: u32,
    pub dead_letters: Option<Arc<dyn DeadLetterQueue>>,
    /// Where each invocation's metrics go (stdout in Lambda).
    pub metrics: MetricsSink,
}

pub async fn handle(
    function: &ReadModelsFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, RecordWithoutId> {
    let give_up = function.dead_letters.as_deref().map(|dead_letters| GiveUp {
        max_receive_count: function.max_receive_count,
        dead_letters,
    });
    let metrics = Mutex::new(function.metrics.collector());
    let handled = process_batch(event.payload, give_up.as_ref(), &metrics, |message| {
        project_message(function, &metrics, message)
    })
    .await;
    let metrics = metrics
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    function.metrics.flush(metrics);
    handled
}

#[instrument(skip_all, fields(message_id = message.message_id.as_deref().unwrap_or("-")))]
async fn project_message(
    function: &ReadModelsFunction,
    metrics: &Mutex<Metrics>,
    message: SqsMessage,
) -> Result<(), MessageFailure> {
    let event = DomainEvent::from_eventbridge(message.body.as_deref().unwrap_or_default())
        .map_err(MessageFailure::permanent)?;
    let counts = apply_event(&event, function.read_models.as_ref())
        .await
        .map_err(|error| match error {
            StoreError::Transient(_) => MessageFailure::Transient(error.to_string()),
            StoreError::Permanent(_) => MessageFailure::Permanent(error.to_string()),
        })?;
    info!(
        event_id = event.event_id(),
        detail_type = event.detail_type(),
        changed = counts.changed,
        unchanged = counts.unchanged,
        "event projected"
    );
    let mut metrics = metrics
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    metrics.count("ReadModelItemsChanged", &[], counts.changed);
    metrics.count("ReadModelItemsUnchanged", &[], counts.unchanged);
    Ok(())
}
