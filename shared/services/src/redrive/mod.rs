//! DLQ redrive: nothing a queue gives up on is lost.
//!
//! The redrive reads each message of a dead-letter queue, decides from its failure record and
//! its body what can help it ([`letter::classify`]), and then either sends it back where it
//! failed (rate-limited, stamped with a [`letter::RedriveStamp`]) or parks it in the parking
//! table for an operator to inspect, fix and replay ([`parking`]); a payment's request parked
//! on its way to the saga is also handed to the reconciler, which settles it once its payment is
//! terminal ([`ParkedMessage::saga_payment`]). A message leaves the DLQ only once it has been
//! sent back and journalled, or parked (and handed on): a redrive killed half-way and run again
//! finds the copies it already sent back in its journal and only deletes them
//! ([`run::Redrive`]). The one window left — killed between SQS taking a copy and the journal
//! recording it — sends that copy twice; consumers de-duplicate on the ids paysaga puts in every
//! event (payment id, event id), never on SQS's MessageId, which a copy sent back does not keep.
//!
//! [`operator::RedriveService`] answers an operator's requests (redrive now, the queues'
//! status, the parking table, a replay): the `dlq-redrive` function is its Lambda edge.
//!
//! The traits below are the redrive's edges; [`paysaga_aws`] has their SQS, EventBridge and
//! DynamoDB adapters and [`crate::fakes`] in-memory ones.

pub mod letter;
pub mod operator;
pub mod parking;
pub mod run;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use letter::{DeadLetter, MessageAttribute, QueueRef, RuleTargets, Verdict};
pub use parking::{FlowOutcome, ParkedMessage, ParkedSettlement, ParkingLot};
pub use run::{QueueReport, Redrive, RedriveSettings};

use paysaga_domain::ports::StoreError;

/// A queue call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("no such queue: {0}")]
    NotFound(String),
    /// Throttled, unreachable, or refused for now: a later run may succeed.
    #[error("queue call failed: {0}")]
    Unavailable(String),
}

/// A message to send to a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Tells the messages of one batch apart (SQS batch entry ids: letters, digits, `-`, `_`).
    pub entry_id: String,
    pub body: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// Sent as its `AWSTraceHeader` ([`lambda_toolkit::trace`]).
    pub trace_header: Option<lambda_toolkit::trace::TraceHeader>,
}

/// A dead-letter queue and the queues whose redrive policy moves messages to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRoutes {
    pub queue: QueueRef,
    pub sources: Vec<QueueRef>,
}

/// What the redrive does with queues.
#[async_trait]
pub trait RedriveQueues: Send + Sync {
    /// Up to `max` (at most 10) messages, hidden from other readers for `visibility`.
    async fn receive(
        &self,
        queue: &QueueRef,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<DeadLetter>, QueueError>;
    /// Sends up to 10 messages in one call; answers the entry ids SQS took.
    async fn send(
        &self,
        queue: &QueueRef,
        messages: &[OutgoingMessage],
    ) -> Result<HashSet<String>, QueueError>;
    /// Deletes up to 10 received messages; answers how many went.
    async fn delete(
        &self,
        queue: &QueueRef,
        receipt_handles: &[String],
    ) -> Result<usize, QueueError>;
    /// The queue with this ARN.
    async fn queue(&self, arn: &str) -> Result<QueueRef, QueueError>;
    /// The dead-letter queue at this URL, and its sources.
    async fn routes(&self, dead_letter_queue_url: &str) -> Result<DeadLetterRoutes, QueueError>;
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Waiting to be received.
    pub visible: u64,
    /// Received, not yet deleted or returned.
    pub in_flight: u64,
    pub delayed: u64,
}

/// What operators do with queues besides redriving them message by message.
#[async_trait]
pub trait QueueAdmin: Send + Sync {
    async fn depth(&self, queue: &QueueRef) -> Result<QueueDepth, QueueError>;
    /// Moves every message of dead-letter queue `from` to `to`, SQS-side, at most
    /// `max_per_second`; answers the move task's handle.
    async fn start_move_task(
        &self,
        from: &QueueRef,
        to: &QueueRef,
        max_per_second: u32,
    ) -> Result<String, QueueError>;
}

/// Where EventBridge rules deliver.
#[async_trait]
pub trait RuleDirectory: Send + Sync {
    async fn targets(&self, rule_arn: &str) -> RuleTargets;
}

/// A copy of a dead letter the redrive sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// [`DeadLetter::key`].
    pub key: String,
    /// The queue it was sent to (ARN).
    pub destination: String,
    pub at: DateTime<Utc>,
}

/// The redrive's memory of what it sent back, kept as long as a DLQ keeps messages.
#[async_trait]
pub trait RedriveJournal: Send + Sync {
    /// Which of these keys were sent back already.
    async fn sent_back(&self, keys: &[String]) -> Result<HashSet<String>, StoreError>;
    async fn record(&self, entries: &[JournalEntry]) -> Result<(), StoreError>;
}
