//! The parking table: dead letters no retry can help, kept whole (body, attributes, reason,
//! receive counts) until an operator has looked at them, fixed what was wrong, and replayed
//! them ([`replay`]), which the audit trail records with who, why and what was sent.
//!
//! A payment's request parked on its way to the saga ([`ParkedMessage::saga_payment`]) is
//! also handed to the reconciler: the redrive schedules a check of its payment that carries
//! the parked message's id, and the reconciler drives the payment on through the saga and,
//! once it is terminal, marks the message settled ([`ParkedSettlement`]). A settled message
//! waits for nobody, and is not replayed.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::letter::{DeadLetter, MessageAttribute, Origin, QueueRef, RedriveStamp};
use super::{OutgoingMessage, QueueError, RedriveQueues};
use paysaga_domain::consent::ConsentProof;
use paysaga_domain::events::ContractViolation;
use paysaga_domain::events::PaymentRequestEvent;
use paysaga_domain::operator::body_sha256;
use paysaga_domain::ports::{EventPublisher, PublishError, StoreError};
use paysaga_domain::{
    DomainEvent, OperatorAction, OperatorActionId, OperatorActionKind, OperatorRecord, PaymentId,
    PaymentStatus,
};

/// Where a parked message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkedStatus {
    /// Waiting for an operator.
    Parked,
    /// An operator sent it again.
    Replayed,
    /// The reconciler found the payment it was on its way to terminal: nothing is left for it to
    /// do, and nobody waits for it.
    Settled,
}

/// How the flow of a settled parked message ended: a terminal [`PaymentStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowOutcome {
    Completed,
    Failed,
}

impl FlowOutcome {
    /// The outcome a terminal status is; `None` for a payment still under way.
    pub fn of(status: PaymentStatus) -> Option<Self> {
        match status {
            PaymentStatus::Completed => Some(Self::Completed),
            PaymentStatus::Failed => Some(Self::Failed),
            PaymentStatus::Pending
            | PaymentStatus::FundsReserved
            | PaymentStatus::Charged
            | PaymentStatus::Compensating => None,
        }
    }

    /// `COMPLETED` or `FAILED`, as the payment's status reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

impl std::fmt::Display for FlowOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// When the reconciler settled it (status `settled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
    /// How the payment it was on its way to ended (status `settled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_as: Option<FlowOutcome>,
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
            settled_at: None,
            settled_as: None,
        }
    }

    /// The payment whose saga this message was on its way to: a payment's request
    /// (`PaymentRequested`, `TopUpRequested`, `PayoutRequested`, honouring its contract) parked
    /// from one of `saga_queues` (ARNs), or missed there by EventBridge. Once that payment is
    /// terminal, the saga has nothing left to do with the message.
    ///
    /// `None` for anything else, which only an operator can resolve: an outcome event, or a
    /// request meant for another consumer (the audit trail, the read models, the notifications
    /// still lack it when the payment has ended); a body that breaks the contracts; a deadline
    /// check (not an event: a check scheduled for a parked check would come back to the same
    /// dead-letter queue for ever); the event relay's records and Lambda's records of failed
    /// runs (no payment's).
    pub fn saga_payment(&self, saga_queues: &[String]) -> Option<PaymentId> {
        let destination = self.destination.as_ref()?;
        if !saga_queues.contains(destination) {
            return None;
        }
        match DomainEvent::payment_request_from_eventbridge(&self.body).ok()? {
            PaymentRequestEvent::Requested(detail) => Some(detail.data.payment_id().clone()),
            PaymentRequestEvent::Other { .. } => None,
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

/// The one write the reconciler makes to the parking table: a parked message whose payment it
/// found terminal is marked settled.
#[async_trait]
pub trait ParkedSettlement: Send + Sync {
    /// Marks a parked message settled, its payment having ended `outcome`; `false` when it was
    /// not `parked` any more (an operator replayed it, or an earlier check settled it).
    async fn mark_settled(
        &self,
        parked_id: &str,
        outcome: FlowOutcome,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
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
    #[error(
        "parked message {parked_id} is settled: the reconciler found its payment {outcome} at \
         {at}, so replaying it would do nothing"
    )]
    Settled {
        parked_id: String,
        outcome: FlowOutcome,
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
    if let (ParkedStatus::Settled, Some(outcome), Some(at)) =
        (parked.status, parked.settled_as, parked.settled_at)
    {
        return Err(ReplayError::Settled {
            parked_id: parked.parked_id,
            outcome,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryParking, InMemoryQueues, RecordingPublisher};
    use crate::redrive::letter::tests::{
        DLQ, SOURCE, envelope, event_body, letter, queue, with_record,
    };
    use paysaga_domain::test_support;

    const AUDIT_TRAIL: &str = "arn:aws:sqs:us-east-1:000000000000:audit-trail";

    /// `body`, given up on by the consumer of `source` and parked from the payments DLQ.
    fn parked_from(source: &str, id: &str, body: &str) -> ParkedMessage {
        ParkedMessage::new(
            &with_record(letter(id, body), "permanent", source),
            &queue(DLQ),
            &[queue(SOURCE)],
            "permanent failure: a test's".to_owned(),
            Utc::now(),
        )
    }

    #[test]
    fn only_a_payment_request_parked_on_its_way_to_the_saga_belongs_to_its_flow() {
        let saga = [SOURCE.to_owned()];
        let request = parked_from(SOURCE, "r", &event_body(100));
        assert_eq!(
            request.saga_payment(&saga).as_ref(),
            Some(test_support::request(100).payment_id())
        );
        assert_eq!(request.saga_payment(&[]), None, "no saga queue named");

        // The audit trail lacks the event whatever became of the payment.
        let elsewhere = parked_from(AUDIT_TRAIL, "a", &event_body(100));
        assert_eq!(elsewhere.destination.as_deref(), Some(AUDIT_TRAIL));
        assert_eq!(elsewhere.saga_payment(&saga), None);

        // An outcome is the notifications', the audit trail's, the read models'.
        let (_, completed) = test_support::payment(
            "pay_done",
            "wal_alice",
            "wal_bob",
            100,
            PaymentStatus::Completed,
        );
        let outcome = parked_from(SOURCE, "o", &envelope(&completed));
        assert_eq!(outcome.saga_payment(&saga), None);

        // A deadline check parked from its own DLQ is no event: handing it on would loop.
        let check = parked_from(SOURCE, "c", r#"{"payment_id":"pay_test"}"#);
        assert_eq!(check.saga_payment(&saga), None);
        let broken = event_body(100).replace(r#""version":1"#, r#""version":9"#);
        assert_eq!(parked_from(SOURCE, "v9", &broken).saga_payment(&saga), None);
    }

    #[tokio::test]
    async fn a_settled_message_is_not_replayed() {
        let queues = InMemoryQueues::default();
        queues.create(queue(SOURCE));
        let parking = InMemoryParking::default();
        let trail = RecordingPublisher::default();
        let parked = parked_from(SOURCE, "r", &event_body(100));
        parking.park(&parked).await.unwrap();
        let settled_at = Utc::now();
        assert!(
            parking
                .mark_settled(&parked.parked_id, FlowOutcome::Completed, settled_at)
                .await
                .unwrap()
        );
        assert!(
            !parking
                .mark_settled(&parked.parked_id, FlowOutcome::Failed, Utc::now())
                .await
                .unwrap(),
            "settled once"
        );
        assert_eq!(parking.waiting().await.unwrap(), 0, "nobody waits for it");

        let request = ReplayRequest {
            parked_id: parked.parked_id.clone(),
            body: None,
            destination: None,
            force: false,
            operator: test_support::operator(),
        };
        let refused = replay(&queues, &parking, &trail, &request, Utc::now()).await;
        match refused {
            Err(ReplayError::Settled {
                parked_id,
                outcome,
                at,
            }) => {
                assert_eq!(parked_id, parked.parked_id);
                assert_eq!((outcome, at), (FlowOutcome::Completed, settled_at));
            }
            other => panic!("refused as settled: {other:?}"),
        }
        let said = ReplayError::Settled {
            parked_id: "payments-dlq/r".to_owned(),
            outcome: FlowOutcome::Completed,
            at: settled_at,
        }
        .to_string();
        assert!(
            said.contains("COMPLETED") && said.contains("would do nothing"),
            "{said}"
        );
        assert!(trail.published().is_empty(), "nothing recorded");
        assert!(queues.messages(SOURCE).is_empty(), "nothing sent");
        let kept = parking.parked(&parked.parked_id).await.unwrap().unwrap();
        assert_eq!(kept.status, ParkedStatus::Settled);
        assert_eq!(kept.settled_as, Some(FlowOutcome::Completed));
    }
}
