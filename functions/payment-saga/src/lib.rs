//! The payment saga consumer: each SQS message is a `PaymentRequested` event (delivered by the
//! EventBridge rules that target the payments queue and, for urgent payments, the urgent
//! payments queue: two triggers, each with its own concurrency); each is driven to COMPLETED or
//! FAILED.
//! Messages are handled on their own: one that fails goes back to the queue alone.
//!
//! Each invocation flushes its metrics once ([`lambda_toolkit::metrics`]): the batch's messages per
//! queue ([`lambda_toolkit::sqs_batch`]), `PaymentsCompleted` and `PaymentsFailed` (runs that left the
//! payment COMPLETED or FAILED), `PaymentsCompensated` (those FAILED after the saga undid a
//! reservation or a charge: a refusal before anything was reserved is only `PaymentsFailed`) and
//! `CircuitBreakerState` of the payment processor client (0 closed, 1 half open, 2 open).

use std::sync::{Arc, Mutex};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use lambda_toolkit::metrics::{Metrics, MetricsSink, Unit};
use lambda_toolkit::sqs_batch::{
    DeadLetterQueue, GiveUp, MessageFailure, RecordWithoutId, process_batch, receive_count,
};
use paysaga_domain::events::PAYMENT_REQUESTED;
use paysaga_domain::ports::{EventPublisher, PaymentLog, PaymentProcessor};
use paysaga_domain::{DomainEvent, PaymentId, PaymentRequest, PaymentStatus};
use paysaga_processor::CircuitState;
use paysaga_services::faults::Faults;
use paysaga_services::saga::{Delivery, Saga, SagaError, SagaSettings};
#[cfg(feature = "fault-injection")]
use serde::Deserialize;
use tracing::{info, instrument};

/// What the saga function may touch, and how it behaves.
pub struct SagaFunction {
    pub payments: Arc<dyn PaymentLog>,
    pub events: Arc<dyn EventPublisher>,
    pub processor: Arc<dyn PaymentProcessor>,
    pub settings: SagaSettings,
    /// The `maxReceiveCount` of the queues it reads (the template gives both payments queues the
    /// same): a message's last delivery compensates instead of failing.
    pub max_receive_count: u32,
    /// The dead-letter queues of the queues the function reads (by source queue: see
    /// [`lambda_toolkit::sqs_dead_letters`]): a message that fails on its last delivery goes to its own
    /// queue's with why (without it, the queue's redrive policy moves it, without a record).
    pub dead_letters: Option<Arc<dyn DeadLetterQueue>>,
    /// Where each invocation's metrics go (stdout in Lambda).
    pub metrics: MetricsSink,
    /// The processor client's circuit state, when the processor has a circuit breaker.
    pub circuit: Option<Arc<dyn Fn() -> CircuitState + Send + Sync>>,
}

pub async fn handle(
    function: &SagaFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, RecordWithoutId> {
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
    handled
}

/// The `CircuitBreakerState` gauge: 0 closed, 1 half open, 2 open.
fn circuit_level(state: CircuitState) -> f64 {
    match state {
        CircuitState::Closed => 0.0,
        CircuitState::HalfOpen => 1.0,
        CircuitState::Open => 2.0,
    }
}

#[instrument(skip_all, fields(
    message_id = message.message_id.as_deref().unwrap_or("-"),
    payment_id = tracing::field::Empty,
))]
async fn handle_message(
    function: &SagaFunction,
    metrics: &Mutex<Metrics>,
    message: SqsMessage,
) -> Result<(), MessageFailure> {
    let requested = payment_request(message.body.as_deref().unwrap_or_default())?;
    // Known once the message parses: every line logged from here on carries both ids.
    tracing::Span::current().record("payment_id", requested.request.payment_id().as_str());
    let delivery = Delivery {
        receive_count: receive_count(&message),
        max_receive_count: function.max_receive_count,
        faults: requested.faults,
        requested_at: Some(requested.requested_at),
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

/// A `PaymentRequested` event, as the saga reads it from a message.
pub struct RequestedPayment {
    pub request: PaymentRequest,
    /// The event's `occurred_at`: a payment published straight onto the bus is dated by it.
    pub requested_at: DateTime<Utc>,
    /// The faults a test run aims at the payment (`data.test_faults`; fault-injection builds
    /// only, always empty otherwise).
    pub faults: Faults,
}

/// The payment request in an SQS message body holding a `PaymentRequested` event, read against
/// its contract: anything else can never be a payment (a permanent failure, with why).
pub fn payment_request(body: &str) -> Result<RequestedPayment, MessageFailure> {
    let event = DomainEvent::from_eventbridge(body).map_err(|violation| {
        MessageFailure::Permanent(format!("not a PaymentRequested event: {violation}"))
    })?;
    let DomainEvent::PaymentRequested(detail) = event else {
        return Err(MessageFailure::Permanent(format!(
            "expected {PAYMENT_REQUESTED}, got {} from {}",
            event.detail_type(),
            event.source()
        )));
    };
    Ok(RequestedPayment {
        request: detail.data,
        requested_at: detail.occurred_at,
        faults: test_faults(body)?,
    })
}

/// The faults aimed at a payment, in fault-injection builds.
#[cfg(feature = "fault-injection")]
fn test_faults(body: &str) -> Result<Faults, MessageFailure> {
    #[derive(Deserialize)]
    struct Event {
        detail: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        data: Data,
    }
    #[derive(Deserialize)]
    struct Data {
        #[serde(default)]
        test_faults: Faults,
    }
    serde_json::from_str::<Event>(body)
        .map(|event| event.detail.data.test_faults)
        .map_err(|error| MessageFailure::Permanent(format!("unreadable test_faults: {error}")))
}

#[cfg(not(feature = "fault-injection"))]
fn test_faults(_body: &str) -> Result<Faults, MessageFailure> {
    Ok(Faults::default())
}
