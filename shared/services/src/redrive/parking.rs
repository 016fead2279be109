//! The parking table: dead letters no retry can help, kept whole (body, attributes, reason,
//! receive counts) until an operator has looked at them, fixed what was wrong, and replayed
//! them ([`replay`]), which the audit trail records with who, why and what was sent.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::letter::{DeadLetter, MessageAttribute, Origin, QueueRef, RedriveStamp};
use super::{OutgoingMessage, QueueError, RedriveQueues};
use paysaga_domain::consent::ConsentProof;
use paysaga_domain::events::ContractViolation;
use paysaga_domain::operator::body_sha256;
use paysaga_domain::ports::{EventPublisher, PublishError, StoreError};
use paysaga_domain::{
    DomainEvent, OperatorAction, OperatorActionId, OperatorActionKind, OperatorRecord,
};

/// Where a parked message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkedStatus {
    Parked,
    Replayed,
}

/// A dead letter in the parking table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedMessage {
    /// [`DeadLetter::key`]: the dead-letter queue's name and the copy's id there.
    pub parked_id: String,
    /// The dead-letter queue it was parked from (ARN).
    pub dead_letter_queue: String,
    /// The queue it failed on or was meant for (ARN), when known: where a replay sends it.
    pub destination: Option<String>,
    /// The dead letter's body, without the payer's consent token of a payment requested on the
    /// bus (`consent_removed`).
    pub body: String,
    /// Its `detail.consent` (a bearer token) was taken out before parking: a replay of it needs
    /// a fixed body carrying the payer's consent again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub consent_removed: bool,
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// Why it was parked.
    pub reason: String,
    /// `consumer`, `event_delivery` or `redrive_policy`: how it reached the dead-letter queue.
    pub origin: String,
    /// How often its source queue delivered it before giving up, when its consumer said.
    pub source_receive_count: Option<u32>,
    /// How often the dead-letter queue delivered it (to the redrive).
    pub dead_letter_receive_count: u32,
    /// How many times it had been sent back from a dead-letter queue before.
    pub redrives: u32,
    pub first_sent_at: Option<DateTime<Utc>>,
    pub parked_at: DateTime<Utc>,
    pub status: ParkedStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_at: Option<DateTime<Utc>>,
}

impl ParkedMessage {
    pub fn new(
        letter: &DeadLetter,
        dead_letter_queue: &QueueRef,
        sources: &[QueueRef],
        reason: String,
        now: DateTime<Utc>,
    ) -> Self {
        let (origin, destination, source_receive_count) = match letter.origin() {
            Origin::Consumer(record) => {
                ("consumer", record.source_queue, Some(record.receive_count))
            }
            Origin::EventDelivery { target_arn, .. } => ("event_delivery", Some(target_arn), None),
            Origin::RedrivePolicy { source_arn } => (
                "redrive_policy",
                source_arn.or_else(|| match sources {
                    [only] => Some(only.arn.clone()),
                    _ => None,
                }),
                None,
            ),
        };
        // A bearer token is a secret, and the parking table keeps its messages until an
        // operator deletes them: the dead letter is parked without it.
        let (body, consent_removed) = match ConsentProof::removed_from_event(&letter.body) {
            Some(body) => (body, true),
            None => (letter.body.clone(), false),
        };
        Self {
            parked_id: letter.key(dead_letter_queue),
            dead_letter_queue: dead_letter_queue.arn.clone(),
            destination,
            body,
            consent_removed,
            attributes: letter.attributes.clone(),
            reason,
            origin: origin.to_owned(),
            source_receive_count,
            dead_letter_receive_count: letter.receive_count,
            redrives: letter.redrives(),
            first_sent_at: letter.sent_at,
            parked_at: now,
            status: ParkedStatus::Parked,
            replayed_at: None,
        }
    }
}

/// How parking a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parking {
    Parked,
    /// A message with this id is in the table already (an earlier, interrupted run parked it):
    /// it is kept as it is.
    AlreadyParked,
}

/// A page of the parking table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedPage {
    pub messages: Vec<ParkedMessage>,
    /// Pass it as `after` for the next page; `None` on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The parking table.
#[async_trait]
pub trait ParkingLot: Send + Sync {
    /// Stores `message` unless its id is taken.
    async fn park(&self, message: &ParkedMessage) -> Result<Parking, StoreError>;
    async fn parked(&self, parked_id: &str) -> Result<Option<ParkedMessage>, StoreError>;
    /// Up to `limit` messages after the one `after` names, replayed ones included.
    async fn list(&self, limit: u32, after: Option<&str>) -> Result<ParkedPage, StoreError>;
    /// How many messages wait for an operator (status `parked`).
    async fn waiting(&self) -> Result<u64, StoreError>;
    /// Marks a parked message replayed; `false` when it was not `parked` any more.
    async fn mark_replayed(&self, parked_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// An operator's request to send a parked message again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub parked_id: String,
    /// The fixed body, when the operator fixed the message rather than the consumer.
    pub body: Option<String>,
    /// The queue to send it to (ARN), when the parked message names none.
    pub destination: Option<String>,
    /// Send a body that breaks the event contracts all the same.
    pub force: bool,
    /// Who asks, and why: recorded in the audit trail before anything is sent.
    pub operator: OperatorRecord,
}

/// A replay went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The replay's record in the audit trail (`OperatorActionStarted`), in its operator's
    /// stream.
    pub action_id: OperatorActionId,
    pub parked_id: String,
    /// The queue's name.
    pub sent_to: String,
    pub body_edited: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no parked message {0}")]
    NotFound(String),
    #[error("parked message {parked_id} was replayed already, at {at}")]
    AlreadyReplayed {
        parked_id: String,
        at: DateTime<Utc>,
    },
    #[error("parked message {0} names no queue to send it to: give one")]
    NoDestination(String),
    #[error("the body to replay breaks the event contracts ({0}); fix it, or force the replay")]
    Contract(ContractViolation),
    #[error("the destination queue refused the replay")]
    Refused,
    /// Nothing was sent: an action the audit trail does not hold does not happen.
    #[error("the replay could not be recorded in the audit trail, so it was not sent: {0}")]
    Unrecorded(PublishError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends a parked message (or its fixed body) to its queue, stamped as a replay, and marks it
/// replayed. Once its checks pass, the replay is recorded in the audit trail (published to
/// `trail`, [`OperatorActionKind::ReplayParkedMessage`]: who, why, the destination, the body's
/// hash, `force`) before anything is sent: a replay the trail cannot hold is not sent. Then the
/// send, then the mark: a replay cut short between the two leaves the message parked, and
/// replaying it again (recorded again) sends a second copy that consumers de-duplicate.
pub async fn replay(
    queues: &dyn RedriveQueues,
    parking: &dyn ParkingLot,
    trail: &dyn EventPublisher,
    request: &ReplayRequest,
    now: DateTime<Utc>,
) -> Result<Replayed, ReplayError> {
    let parked = parking
        .parked(&request.parked_id)
        .await?
        .ok_or_else(|| ReplayError::NotFound(request.parked_id.clone()))?;
    if let (ParkedStatus::Replayed, Some(at)) = (parked.status, parked.replayed_at) {
        return Err(ReplayError::AlreadyReplayed {
            parked_id: parked.parked_id,
            at,
        });
    }
    let body = request.body.clone().unwrap_or_else(|| parked.body.clone());
    if !request.force {
        DomainEvent::from_eventbridge(&body).map_err(ReplayError::Contract)?;
    }
    let destination = request
        .destination
        .as_ref()
        .or(parked.destination.as_ref())
        .ok_or_else(|| ReplayError::NoDestination(parked.parked_id.clone()))?;
    let queue = queues.queue(destination).await?;
    let edited = request
        .body
        .as_ref()
        .is_some_and(|body| *body != parked.body);
    let action = OperatorAction {
        action_id: OperatorActionId::generate(),
        issued_by: request.operator.issued_by.clone(),
        reason: request.operator.reason.clone(),
        action: OperatorActionKind::ReplayParkedMessage {
            parked_id: parked.parked_id.clone(),
            destination: queue.arn.clone(),
            body_sha256: body_sha256(&body),
            body_edited: edited,
            forced: request.force,
        },
    };
    let action_id = action.action_id.clone();
    trail
        .publish(&[DomainEvent::operator_action_started(action, now)])
        .await
        .map_err(ReplayError::Unrecorded)?;
    let letter = DeadLetter {
        message_id: parked.parked_id.clone(),
        receipt_handle: String::new(),
        body: body.clone(),
        attributes: parked.attributes.clone(),
        source_arn: None,
        receive_count: parked.dead_letter_receive_count,
        sent_at: parked.first_sent_at,
        trace_header: None,
    };
    let stamp = RedriveStamp {
        redrives: parked.redrives + 1,
        dead_letter_queue: parked.dead_letter_queue.clone(),
        at: now,
        parked_id: Some(parked.parked_id.clone()),
    };
    let message = OutgoingMessage {
        entry_id: "replay".to_owned(),
        body,
        attributes: letter.attributes_sent_back(&stamp),
        // Parking does not keep the message's trace: a replay goes out in the operator's.
        trace_header: lambda_toolkit::trace::current(),
    };
    let taken = queues.send(&queue, std::slice::from_ref(&message)).await?;
    if !taken.contains(&message.entry_id) {
        return Err(ReplayError::Refused);
    }
    if !parking.mark_replayed(&parked.parked_id, now).await? {
        warn!(parked_id = %parked.parked_id, "replayed twice at once; consumers de-duplicate the copies");
    }
    info!(parked_id = %parked.parked_id, queue = queue.name(), edited, forced = request.force, %action_id, "parked message replayed");
    Ok(Replayed {
        action_id,
        parked_id: parked.parked_id,
        sent_to: queue.name().to_owned(),
        body_edited: edited,
    })
}
