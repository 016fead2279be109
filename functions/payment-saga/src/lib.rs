//! The payment saga consumer: each SQS message is a `PaymentRequested` event (delivered by the
//! EventBridge rule that targets the payments queue); each is driven to COMPLETED or FAILED.
//! Messages are handled on their own: one that fails goes back to the queue alone.

use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Diagnostic, LambdaEvent};
use paysaga::domain::PaymentRequest;
use paysaga::domain::events::{CONTRACT_VERSION, EventDetail, PAYMENT_REQUESTED, PAYMENTS_SOURCE};
use paysaga::ports::{EventPublisher, PaymentLog};
use paysaga::service::saga::run_payment_saga;
use paysaga::sqs_batch::{MessageFailure, RecordWithoutId, process_batch};
use tracing::{info, instrument};

/// What the saga may touch.
pub struct Saga {
    pub payments: Arc<dyn PaymentLog>,
    pub events: Arc<dyn EventPublisher>,
}

/// The invocation failed as a whole: every message of the batch goes back to the queue.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BatchFailed(#[from] RecordWithoutId);

impl From<BatchFailed> for Diagnostic {
    fn from(error: BatchFailed) -> Self {
        Diagnostic {
            error_type: "BatchFailed".into(),
            error_message: error.to_string(),
        }
    }
}

pub async fn handle(
    saga: &Saga,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, BatchFailed> {
    Ok(process_batch(event.payload, |message| handle_message(saga, message)).await?)
}

#[instrument(skip_all, fields(message_id = message.message_id.as_deref().unwrap_or("-")))]
async fn handle_message(saga: &Saga, message: SqsMessage) -> Result<(), MessageFailure> {
    let request = payment_request(message.body.as_deref().unwrap_or_default())?;
    match run_payment_saga(saga.payments.as_ref(), saga.events.as_ref(), &request).await {
        Ok(payment) => {
            info!(payment_id = %request.payment_id(), status = ?payment.status, "payment saga ran");
            Ok(())
        }
        Err(error) if error.is_transient() => Err(MessageFailure::Transient(error.to_string())),
        Err(error) => Err(MessageFailure::Permanent(error.to_string())),
    }
}

/// The payment request in an SQS message body holding a `PaymentRequested` event.
pub fn payment_request(body: &str) -> Result<PaymentRequest, MessageFailure> {
    let event: EventBridgeEvent<EventDetail<PaymentRequest>> =
        serde_json::from_str(body).map_err(|error| {
            MessageFailure::Permanent(format!("not a PaymentRequested event: {error}"))
        })?;
    if event.source != PAYMENTS_SOURCE || event.detail_type != PAYMENT_REQUESTED {
        return Err(MessageFailure::Permanent(format!(
            "unexpected event {} from {}",
            event.detail_type, event.source
        )));
    }
    if event.detail.version != CONTRACT_VERSION {
        return Err(MessageFailure::Permanent(format!(
            "unsupported PaymentRequested version {}",
            event.detail.version
        )));
    }
    Ok(event.detail.data)
}
