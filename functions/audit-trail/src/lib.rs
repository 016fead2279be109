//! The audit trail consumer: each SQS message is a paysaga event (delivered by the EventBridge
//! rule that copies every event to the audit-trail queue); each is appended to the event store
//! ([`paysaga_domain::ports::EventStore`]), once per `event_id`, in the stream of its payment and of
//! each wallet whose money it moves. An event that breaks its contract (an unknown version,
//! say) fails as permanent: to the DLQ with its reason on its last delivery. An append that
//! lost to other appends to the same stream past the store's retries (a busy wallet's stream)
//! is tried again 1-5 s later and never given up: past its last delivery, it is sent again as
//! a fresh message ([`MessageFailure::Unfinished`]).
//!
//! Metrics, besides the consumer's ([`lambda_toolkit::sqs_consumer`]): `EventsAppended`
//! (events new to the store) and `DuplicateEvents` (events it held already: redeliveries and
//! re-publications).

use std::sync::Arc;

use async_trait::async_trait;
use lambda_toolkit::env::{ConfigError, Environment};
use lambda_toolkit::metrics::InvocationMetrics;
use lambda_toolkit::sqs_batch::MessageFailure;
use lambda_toolkit::sqs_consumer::{Handled, SqsConsumerSettings};
use paysaga_aws::EventHandler;
use paysaga_domain::DomainEvent;
use paysaga_domain::history::DEFAULT_SNAPSHOT_EVERY;
use paysaga_domain::ports::{AppendOutcome, EventStore, StoreError};
use paysaga_services::{audit, contention};

/// What the audit-trail function may touch.
pub struct AuditTrail {
    pub store: Arc<dyn EventStore>,
}

#[async_trait]
impl EventHandler for AuditTrail {
    async fn handle(&self, event: &DomainEvent, metrics: &InvocationMetrics) -> Handled {
        let outcome = audit::record(self.store.as_ref(), event, chrono::Utc::now())
            .await
            .map_err(|error| match error {
                // Other appends took the stream's versions first, through every retry: tried
                // again a moment later, never given up.
                StoreError::Contended(..) => MessageFailure::Unfinished {
                    reason: error.to_string(),
                    retry_in: contention::redelivery_wait(),
                },
                error => MessageFailure::of(&error, error.is_transient()),
            })?;
        let metric = match outcome {
            AppendOutcome::Appended(_) => "EventsAppended",
            AppendOutcome::Duplicate => "DuplicateEvents",
        };
        metrics.count(metric, &[], 1);
        Ok(())
    }
}

/// The function's environment.
pub struct Config {
    /// `EVENT_STORE_TABLE`.
    pub event_store_table: String,
    /// `SNAPSHOT_EVERY`: a stream's state is snapshotted every this many versions.
    pub snapshot_every: u64,
    pub consumer: SqsConsumerSettings,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            event_store_table: env.required("EVENT_STORE_TABLE")?,
            snapshot_every: env.number_or("SNAPSHOT_EVERY", DEFAULT_SNAPSHOT_EVERY)?,
            consumer: SqsConsumerSettings::from_env(env)?,
        })
    }
}
