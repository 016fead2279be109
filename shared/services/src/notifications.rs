//! Telling payers and payees what became of their payments: the notifications of an event
//! ([`notifications_for`]) go out through the [`Notifier`] (the in-app inbox), each once per
//! event and recipient however often the event arrives. A notifier that is not idempotent
//! itself (e-mail) is called through [`lambda_toolkit::idempotency`], keyed by the event's
//! `event_id` and the recipient, so that it sends once; one that [`Notifier::delivers_once`]
//! (the inbox: one conditional put keyed by the event and the recipient) is called directly,
//! one write per notification instead of three.

use chrono::{DateTime, Duration, Utc};
use lambda_toolkit::idempotency::{
    IdempotencyConfig, IdempotencyError, IdempotencyStore, Idempotent, Outcome,
};
use paysaga_domain::DomainEvent;
use paysaga_domain::notification::{Notification, NotificationKind, notifications_for};
use paysaga_domain::ports::{Notifier, NotifyError};

pub use paysaga_domain::ports::Delivery;
use tracing::{info, instrument, warn};

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

/// What became of an event's notifications.
#[derive(Debug, Default)]
pub struct Notified {
    /// The delivered ones, by kind.
    pub delivered: Vec<(NotificationKind, Delivery)>,
    /// Why one was not delivered, when one was not: a transient failure when any is (the
    /// event is then worth delivering again; the delivered ones' records answer the retry).
    pub failure: Option<NotificationFailure>,
}

/// A notification was not delivered.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct NotificationFailure(IdempotencyError<NotifyError>);

impl NotificationFailure {
    /// Whether delivering the event again may succeed.
    pub fn is_transient(&self) -> bool {
        match &self.0 {
            IdempotencyError::Operation(NotifyError::Permanent(_)) => false,
            other => other.is_transient(),
        }
    }
}

/// The notifier, and where its deliveries are remembered.
pub struct Notifications<'a> {
    pub notifier: &'a dyn Notifier,
    pub idempotency: &'a dyn IdempotencyStore,
    pub config: &'a IdempotencyConfig,
}

impl Notifications<'_> {
    /// Tells whom `event` concerns, each on their own: one that fails does not hold the others
    /// back. Its lines carry the event's and the payment's ids.
    #[instrument(name = "notify", skip_all, fields(
        event_id = event.event_id(),
        payment_id = event.payment_id().map(|id| id.as_str()),
    ))]
    pub async fn notify(&self, event: &DomainEvent, now: DateTime<Utc>) -> Notified {
        let idempotent = Idempotent::new(self.idempotency, self.config, |n: &Notification| {
            format!("{}#{}", n.event_id, n.recipient)
        });
        let mut notified = Notified::default();
        for notification in notifications_for(event) {
            let kind = notification.kind.as_str();
            let delivered = if self.notifier.delivers_once() {
                self.notifier
                    .notify(&notification)
                    .await
                    .map_err(IdempotencyError::Operation)
            } else {
                // The records tell a repeat; such a notifier cannot, and answers `Sent`.
                let send = || async { self.notifier.notify(&notification).await.map(|_| ()) };
                idempotent
                    .run(&notification, now, send)
                    .await
                    .map(|outcome| match outcome {
                        Outcome::Ran(()) => Delivery::Sent,
                        Outcome::AlreadyCompleted(_) => Delivery::SentBefore,
                    })
            };
            let delivery = match delivered {
                Ok(delivery) => delivery,
                Err(error) => {
                    warn!(kind, %error, "notification not delivered");
                    let failure = NotificationFailure(error);
                    if !notified
                        .failure
                        .as_ref()
                        .is_some_and(NotificationFailure::is_transient)
                    {
                        notified.failure = Some(failure);
                    }
                    continue;
                }
            };
            info!(kind, outcome = delivery.as_str(), "notification");
            notified.delivered.push((notification.kind, delivery));
        }
        notified
    }
}
