//! The notifications consumer: each SQS message is a payment's outcome (`PaymentCompleted` or
//! `PaymentFailed`, copied to the payment-events queue by the lifecycle rule); its payer and
//! payee are told ([`notifications_for`]) through the [`Notifier`] (the in-app inbox).
//!
//! Each notification is delivered once per event and recipient, however often the event
//! arrives: the delivery runs through [`lambda_toolkit::idempotency`], keyed by the event's `event_id`
//! and the recipient, so even a notifier that is not idempotent itself (e-mail) sends once.
//! An event that breaks its contract (an unknown version, a detail that does not parse) fails
//! as permanent, and goes to the DLQ with its reason on its last delivery.
//!
//! Each invocation flushes its metrics once ([`lambda_toolkit::metrics`]): the batch's messages per
//! queue ([`lambda_toolkit::sqs_batch`]), `NotificationsSent` and `NotificationsRepeated` (notifications
//! an earlier delivery of the same event had sent already), by `kind`.

use std::sync::{Arc, Mutex};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{Duration, Utc};
use lambda_runtime::LambdaEvent;
use lambda_toolkit::idempotency::{
    IdempotencyConfig, IdempotencyError, IdempotencyStore, Idempotent, Outcome,
};
use lambda_toolkit::metrics::{Metrics, MetricsSink};
use lambda_toolkit::sqs_batch::{
    DeadLetterQueue, GiveUp, MessageFailure, RecordWithoutId, process_batch,
};
use paysaga_domain::DomainEvent;
use paysaga_domain::notification::{Notification, notifications_for};
use paysaga_domain::ports::{Notifier, NotifyError};
use tracing::{field, info, instrument, warn};

/// What the notifications function may touch.
pub struct NotificationsFunction {
    pub notifier: Arc<dyn Notifier>,
    /// Where the deliveries' idempotency records are kept.
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub idempotency_config: IdempotencyConfig,
    /// The queue's `maxReceiveCount`: on the last delivery a failure goes to the DLQ with why.
    pub max_receive_count: u32,
    pub dead_letters: Option<Arc<dyn DeadLetterQueue>>,
    /// Where each invocation's metrics go (stdout in Lambda).
    pub metrics: MetricsSink,
}

/// How the deliveries are remembered: under `notifications#<event_id>#<wallet>`, for 15 days
/// (a message can come back that late: a DLQ keeps it 14 days, and the redrive sends it back),
/// a claim blocking others for 2 minutes (the function's timeout is 30 s); no result is kept.
pub fn idempotency_config() -> IdempotencyConfig {
    IdempotencyConfig {
        expires_after: Duration::days(15),
        in_progress_timeout: Duration::minutes(2),
        store_results: false,
        ..IdempotencyConfig::new("notifications")
    }
}

pub async fn handle(
    function: &NotificationsFunction,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, RecordWithoutId> {
    let give_up = function.dead_letters.as_deref().map(|dead_letters| GiveUp {
        max_receive_count: function.max_receive_count,
        dead_letters,
    });
    let metrics = Mutex::new(function.metrics.collector());
    let handled = process_batch(event.payload, give_up.as_ref(), &metrics, |message| {
        notify_message(function, &metrics, message)
    })
    .await;
    let metrics = metrics
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    function.metrics.flush(metrics);
    handled
}

#[instrument(skip_all, fields(
    message_id = message.message_id.as_deref().unwrap_or("-"),
    event_id = field::Empty,
    payment_id = field::Empty,
))]
async fn notify_message(
    function: &NotificationsFunction,
    metrics: &Mutex<Metrics>,
    message: SqsMessage,
) -> Result<(), MessageFailure> {
    let event = DomainEvent::from_eventbridge(message.body.as_deref().unwrap_or_default())
        .map_err(MessageFailure::permanent)?;
    let span = tracing::Span::current();
    span.record("event_id", event.event_id());
    if let Some(payment_id) = event.payment_id() {
        span.record("payment_id", payment_id.as_str());
    }
    let idempotent = Idempotent::new(
        function.idempotency.as_ref(),
        &function.idempotency_config,
        |notification: &Notification| {
            format!("{}#{}", notification.event_id, notification.recipient)
        },
    );
    let now = Utc::now();
    // Each recipient on its own: one that fails does not hold the others back; the message is
    // retried for it alone (the others' records answer the retry).
    let mut failure = None;
    for notification in notifications_for(&event) {
        let kind = notification.kind.as_str();
        let delivered = idempotent
            .run(&notification, now, || {
                function.notifier.notify(&notification)
            })
            .await;
        let (metric, outcome) = match delivered {
            Ok(Outcome::Ran(())) => ("NotificationsSent", "sent"),
            Ok(Outcome::AlreadyCompleted(_)) => ("NotificationsRepeated", "sent before"),
            Err(error) => {
                warn!(kind, %error, "notification not delivered");
                failure = worse(failure, message_failure(error));
                continue;
            }
        };
        info!(kind, outcome, "notification");
        let mut metrics = metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        metrics.count(metric, &[("kind", kind)], 1);
    }
    failure.map_or(Ok(()), Err)
}

/// The failure to report for a message: transient when any delivery may succeed later.
fn worse(first: Option<MessageFailure>, next: MessageFailure) -> Option<MessageFailure> {
    match (first, next) {
        (Some(transient @ MessageFailure::Transient(_)), _) => Some(transient),
        (_, next) => Some(next),
    }
}

/// Whether a failed delivery may succeed later.
fn message_failure(error: IdempotencyError<NotifyError>) -> MessageFailure {
    let transient = match &error {
        IdempotencyError::Operation(NotifyError::Permanent(_)) => false,
        other => other.is_transient(),
    };
    if transient {
        MessageFailure::Transient(error.to_string())
    } else {
        MessageFailure::Permanent(error.to_string())
    }
}
