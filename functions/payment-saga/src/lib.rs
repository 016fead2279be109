//! The payment saga consumer: each SQS message is a `PaymentRequested` event (delivered by the
//! EventBridge rule that targets the payments queue); each is driven to COMPLETED or FAILED.
//! Messages are handled on their own: one that fails goes back to the queue alone.
//!
//! Each invocation flushes its metrics once ([`paysaga::metrics`]): the batch's messages per
//! queue ([`paysaga::sqs_batch`]), `PaymentsCompleted` and `PaymentsFailed` (runs that left the
//! payment COMPLETED or FAILED), `PaymentsCompensated` (those FAILED after the saga undid a
//! reservation or a charge: a refusal before anything was reserved is only `PaymentsFailed`) and
//! `CircuitBreakerState` of the payment processor client (0 closed, 1 half open, 2 open).

use std::sync::{Arc, Mutex};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Diagnostic, LambdaEvent};
use paysaga::domain::events::{CONTRACT_VERSION, EventDetail, PAYMENT_REQUESTED, PAYMENTS_SOURCE};
use paysaga::domain::{PaymentId, PaymentRequest, PaymentStatus};
use paysaga::faults::Faults;
use paysaga::metrics::{Metrics, MetricsSink, Unit};
use paysaga::ports::{EventPublisher, PaymentLog, PaymentProcessor};
use paysaga::processor::CircuitState;
use paysaga::service::saga::{Delivery, Saga, SagaError, SagaSettings};
use paysaga::sqs_batch::{
    DeadLetterQueue, GiveUp, MessageFailure, RecordWithoutId, process_batch, receive_count,
};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

/// What the saga function may touch, and how it behaves.
pub struct SagaFunction {
    pub payments: Arc<dyn PaymentLog>,
    pub events: Arc<dyn EventPublisher>,
    pub processor: Arc<dyn PaymentProcessor>,
    pub settings: SagaSettings,
    /// The payments queue's `maxReceiveCount`: its last delivery compensates instead of failing.
    pub max_receive_count: u32,
    /// The payments queue's dead-letter queue: a message that fails on its last delivery goes
    /// there with why (without it, the queue's redrive policy moves it, without a record).
    pub dead_letters: Option<Arc<dyn DeadLetterQueue>>,
    /// Where each invocation's metrics go (stdout in Lambda).
    pub metrics: MetricsSink,
    /// The processor client's circuit state, when the processor has a circuit breaker.
    pub circuit: Option<Arc<dyn Fn() -> CircuitState + Send + Sync>>,
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
    function: &SagaFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, BatchFailed> {
    let give_up = function.dead_letters.as_deref().map(|dead_letters| GiveUp {
        max_receive_count: function.max_receive_count,
        dead_letters,
    });
    let metrics = Mutex::new(function.metrics.collector());
    let handled = process_batch(event.payload, give_up.as_ref(), &metrics, |message| {
        handle_message(function, &metrics, message)
    })
    .await;
    let mut metrics = metrics
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(circuit) = &function.circuit {
        metrics.gauge(
            "CircuitBreakerState",
            &[],
            circuit_level(circuit()),
            Unit::None,
        );
    }
    function.metrics.flush(metrics);
    Ok(handled?)
}

/// The `CircuitBreakerState` gauge: 0 closed, 1 half open, 2 open.
fn circuit_level(state: CircuitState) -> f64 {
    match state {
        CircuitState::Closed => 0.0,
        CircuitState::HalfOpen => 1.0,
        CircuitState::Open => 2.0,
    }
}

#[instrument(skip_all, fields(message_id = message.message_id.as_deref().unwrap_or("-")))]
async fn handle_message(
    function: &SagaFunction,
    metrics: &Mutex<Metrics>,
    message: SqsMessage,
) -> Result<(), MessageFailure> {
    let requested = payment_request(message.body.as_deref().unwrap_or_default())?;
    let delivery = Delivery {
        receive_count: receive_count(&message),
        max_receive_count: function.max_receive_count,
        faults: requested.faults(),
    };
    let saga = Saga {
        log: function.payments.as_ref(),
        events: function.events.as_ref(),
        processor: function.processor.as_ref(),
        settings: &function.settings,
    };
    match saga.run(&requested.request, &delivery).await {
        Ok(payment) => {
            info!(payment_id = %requested.request.payment_id(), status = ?payment.status, "payment saga ran");
            let outcome = match payment.status {
                PaymentStatus::Completed => "PaymentsCompleted",
                PaymentStatus::Failed => "PaymentsFailed",
                _ => return Ok(()),
            };
            let mut metrics = metrics
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            metrics.count(outcome, &[], 1);
            // Failed after something was done: the saga undid it (refusals undo nothing).
            if payment.charge_refunded || payment.reservation_released {
                metrics.count("PaymentsCompensated", &[], 1);
            }
            Ok(())
        }
        Err(SagaError::InjectedCrash(step)) => crash(step, requested.request.payment_id()),
        Err(error) if error.is_transient() => Err(MessageFailure::Transient(error.to_string())),
        Err(error) => Err(MessageFailure::Permanent(error.to_string())),
    }
}

/// Fault injection: die before acknowledging, as a crashed function would.
fn crash(step: &str, payment_id: &PaymentId) -> Result<(), MessageFailure> {
    #[cfg(feature = "fault-injection")]
    {
        let why = "fault injection: crashing before the message is acknowledged";
        tracing::warn!(step, %payment_id, "{why}");
        std::process::exit(70);
    }
    #[cfg(not(feature = "fault-injection"))]
    Err(MessageFailure::Transient(format!(
        "injected crash of {payment_id} after {step}"
    )))
}

/// The data of a `PaymentRequested` event: the request, and (in fault-injection builds only)
/// the faults a test run aims at it.
#[derive(Serialize, Deserialize)]
pub struct RequestedPayment {
    #[serde(flatten)]
    pub request: PaymentRequest,
    #[cfg(feature = "fault-injection")]
    #[serde(default, skip_serializing)]
    test_faults: Faults,
}

impl RequestedPayment {
    fn faults(&self) -> Faults {
        #[cfg(feature = "fault-injection")]
        return self.test_faults.clone();
        #[cfg(not(feature = "fault-injection"))]
        Faults::default()
    }
}

/// The payment request in an SQS message body holding a `PaymentRequested` event.
pub fn payment_request(body: &str) -> Result<RequestedPayment, MessageFailure> {
    let event: EventBridgeEvent<EventDetail<RequestedPayment>> = serde_json::from_str(body)
        .map_err(|error| {
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
