//! The notifications consumer: each SQS message is a payment's outcome (`PaymentCompleted` or
//! `PaymentFailed`, copied to the payment-events queue by the lifecycle rule); its payer and
//! payee are told, each once however often the event arrives
//! ([`paysaga_services::notifications`]). An event that breaks its contract (an unknown version,
//! a detail that does not parse) fails as permanent: to the DLQ with its reason on its last
//! delivery.
//!
//! Metrics, besides the consumer's ([`lambda_toolkit::sqs_consumer`]): `NotificationsSent` and
//! `NotificationsRepeated` (sent by an earlier delivery of the same event), by `kind`.

use std::sync::Arc;

use async_trait::async_trait;
use lambda_toolkit::env::{ConfigError, Environment};
use lambda_toolkit::idempotency::{IdempotencyConfig, IdempotencyStore};
use lambda_toolkit::metrics::InvocationMetrics;
use lambda_toolkit::sqs_batch::MessageFailure;
use lambda_toolkit::sqs_consumer::{Handled, SqsConsumerSettings};
use paysaga_aws::EventHandler;
use paysaga_domain::DomainEvent;
use paysaga_domain::ports::Notifier;
use paysaga_services::notifications::{Delivery, Notifications as Deliveries};

/// What the notifications function may touch.
pub struct Notifications {
    pub notifier: Arc<dyn Notifier>,
    /// Where the deliveries' idempotency records are kept.
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub idempotency_config: IdempotencyConfig,
}

#[async_trait]
impl EventHandler for Notifications {
    async fn handle(&self, event: &DomainEvent, metrics: &InvocationMetrics) -> Handled {
        let deliveries = Deliveries {
            notifier: self.notifier.as_ref(),
            idempotency: self.idempotency.as_ref(),
            config: &self.idempotency_config,
        };
        let notified = deliveries.notify(event, chrono::Utc::now()).await;
        for (kind, delivery) in notified.delivered {
            let metric = match delivery {
                Delivery::Sent => "NotificationsSent",
                Delivery::SentBefore => "NotificationsRepeated",
            };
            metrics.count(metric, &[("kind", kind.as_str())], 1);
        }
        match notified.failure {
            Some(failure) => Err(MessageFailure::of(&failure, failure.is_transient())),
            None => Ok(()),
        }
    }
}

/// The function's environment.
pub struct Config {
    /// `NOTIFICATIONS_TABLE`: the inbox.
    pub notifications_table: String,
    /// `IDEMPOTENCY_TABLE`.
    pub idempotency_table: String,
    pub consumer: SqsConsumerSettings,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            notifications_table: env.required("NOTIFICATIONS_TABLE")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            consumer: SqsConsumerSettings::from_env(env)?,
        })
    }
}
