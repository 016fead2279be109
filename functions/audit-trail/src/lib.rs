//! The audit trail consumer: each SQS message is a paysaga event (delivered by the EventBridge
//! rule that copies every event to the audit-trail queue); each is appended to the event store
//! ([`paysaga_domain::ports::EventStore`]), once per `event_id`, in the stream of its payment and of
//! each wallet whose money it moves. Messages are handled on their own: one that fails goes
//! back to the queue alone, and an event that breaks its contract (an unknown version, say)
//! fails as permanent, to the DLQ with its reason on its last delivery.
//!
//! Each invocation flushes its metrics once ([`lambda_toolkit::metrics`]): the batch's messages per
//! queue ([`lambda_toolkit::sqs_batch`]), `EventsAppended` (events new to the store) and
//! `DuplicateEvents` (events it held already: redeliveries and re-publications).

use std::sync::{Arc, Mutex};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use lambda_toolkit::metrics::{Metrics, MetricsSink};
use lambda_toolkit::sqs_batch::{
    DeadLetterQueue, GiveUp, MessageFailure, RecordWithoutId, process_batch,
};
use paysaga_domain::DomainEvent;
use paysaga_domain::ports::{AppendOutcome, EventStore, StoreError};
use paysaga_services::audit;
use tracing::instrument;

/// What the audit-trail function may touch.
pub struct AuditTrailFunction {
    pub store: Arc<dyn EventStore>,
    /// The queue's `maxReceiveCount`: on the last delivery a failure goes to the DLQ with why.
    pub max_receive_count: u32,
    pub dead_letters: Option<Arc<dyn DeadLetterQueue>>,
    /// Where each invocation's metrics go (stdout in Lambda).
    pub metrics: MetricsSink,
}

pub async fn handle(
    function: &AuditTrailFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, RecordWithoutId> {
    let give_up = function.dead_letters.as_deref().map(|dead_letters| GiveUp {
        max_receive_count: function.max_receive_count,
        dead_letters,
    });
    let metrics = Mutex::new(function.metrics.collector());
    let handled = process_batch(event.payload, give_up.as_ref(), &metrics, |message| {
        append_message(function, &metrics, message)
    })
    .await;
    let metrics = metrics
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    function.metrics.flush(metrics);
    handled
}

#[instrument(skip_all, fields(message_id = message.message_id.as_deref().unwrap_or("-")))]
async fn append_message(
    function: &AuditTrailFunction,
    metrics: &Mutex<Metrics>,
    message: SqsMessage,
) -> Result<(), MessageFailure> {
    let event = DomainEvent::from_eventbridge(message.body.as_deref().unwrap_or_default())
        .map_err(MessageFailure::permanent)?;
    let outcome = audit::record(function.store.as_ref(), &event, chrono::Utc::now())
        .await
        .map_err(|error| match error {
            StoreError::Transient(_) => MessageFailure::Transient(error.to_string()),
            StoreError::Permanent(_) => MessageFailure::Permanent(error.to_string()),
        })?;
    let metric = match outcome {
        AppendOutcome::Appended(_) => "EventsAppended",
        AppendOutcome::Duplicate => "DuplicateEvents",
    };
    metrics
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .count(metric, &[], 1);
    Ok(())
}
