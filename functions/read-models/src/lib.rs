//! The read-models consumer: each SQS message is a paysaga event (delivered by the EventBridge
//! rule that copies every event to the read-models queue); each is projected into the read
//! models ([`paysaga_services::read_models`]): a wallet's transaction history and its payments.
//! An event that breaks its contract (an unknown version, say) fails as permanent: to the DLQ
//! with its reason on its last delivery.
//!
//! Metrics, besides the consumer's ([`lambda_toolkit::sqs_consumer`]): `ReadModelItemsChanged`
//! (items written or moved forward) and `ReadModelItemsUnchanged` (duplicates and events older
//! than what is stored).

use std::sync::Arc;

use async_trait::async_trait;
use lambda_toolkit::env::{ConfigError, Environment};
use lambda_toolkit::metrics::InvocationMetrics;
use lambda_toolkit::sqs_batch::MessageFailure;
use lambda_toolkit::sqs_consumer::{Handled, SqsConsumerSettings};
use paysaga_aws::EventHandler;
use paysaga_domain::DomainEvent;
use paysaga_domain::ports::ReadModelWriter;
use paysaga_services::read_models::apply_event;
use tracing::info;

/// What the read-models function may touch.
pub struct ReadModels {
    pub read_models: Arc<dyn ReadModelWriter>,
}

#[async_trait]
impl EventHandler for ReadModels {
    async fn handle(&self, event: &DomainEvent, metrics: &InvocationMetrics) -> Handled {
        let counts = apply_event(event, self.read_models.as_ref())
            .await
            .map_err(|error| MessageFailure::of(&error, error.is_transient()))?;
        info!(
            event_id = event.event_id(),
            detail_type = event.detail_type(),
            changed = counts.changed,
            unchanged = counts.unchanged,
            "event projected"
        );
        metrics.count("ReadModelItemsChanged", &[], counts.changed);
        metrics.count("ReadModelItemsUnchanged", &[], counts.unchanged);
        Ok(())
    }
}

/// The function's environment.
pub struct Config {
    /// `READ_MODELS_TABLE`.
    pub read_models_table: String,
    pub consumer: SqsConsumerSettings,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            read_models_table: env.required("READ_MODELS_TABLE")?,
            consumer: SqsConsumerSettings::from_env(env)?,
        })
    }
}
