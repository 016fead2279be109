//! Event contracts: what paysaga publishes on its event bus. Every event is a versioned
//! envelope (`version`, `event_id` for de-duplication, `occurred_at`, `data`); the EventBridge
//! `source` and `detail-type` say what it is. These types are the one definition.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::failure::FailureReason;
use super::ids::{DepositId, PaymentId, WalletId};
use super::money::Money;
use super::payment::{Payment, PaymentLogEntry, PaymentRequest, PaymentStatus, PaymentStep};

/// The EventBridge `source` of payment events.
pub const PAYMENTS_SOURCE: &str = "paysaga.payments";
/// The EventBridge `source` of wallet events.
pub const WALLETS_SOURCE: &str = "paysaga.wallets";
/// The contract version this code writes and reads.
pub const CONTRACT_VERSION: u32 = 1;

/// The `detail` of every paysaga event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDetail<T> {
    pub version: u32,
    /// Stable across re-publication: consumers de-duplicate on it.
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub data: T,
}

/// What a payment event after the request carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEventData {
    pub payment_id: PaymentId,
    pub from_wallet: WalletId,
    pub to_wallet: WalletId,
    pub amount: Money,
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReason>,
}

/// Money added to a wallet from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundsDeposited {
    pub deposit_id: DepositId,
    pub wallet_id: WalletId,
    pub amount: Money,
}

/// Every event paysaga publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    /// A payment was asked for; the saga picks it up from the bus.
    PaymentRequested(EventDetail<PaymentRequest>),
    /// The saga recorded a step of a payment.
    PaymentStepRecorded {
        detail_type: PaymentEventType,
        detail: EventDetail<PaymentEventData>,
    },
    FundsDeposited(EventDetail<FundsDeposited>),
}

/// The `detail-type`s of payment events after the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEventType {
    FundsReserved,
    PaymentCharged,
    FundsSettled,
    PaymentCompleted,
    CompensationStarted,
    ChargeRefunded,
    ReservationReleased,
    PaymentFailed,
}

impl PaymentEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FundsReserved => "FundsReserved",
            Self::PaymentCharged => "PaymentCharged",
            Self::FundsSettled => "FundsSettled",
            Self::PaymentCompleted => "PaymentCompleted",
            Self::CompensationStarted => "CompensationStarted",
            Self::ChargeRefunded => "ChargeRefunded",
            Self::ReservationReleased => "ReservationReleased",
            Self::PaymentFailed => "PaymentFailed",
        }
    }
}

/// The `detail-type` of [`DomainEvent::PaymentRequested`].
pub const PAYMENT_REQUESTED: &str = "PaymentRequested";
/// The `detail-type` of [`DomainEvent::FundsDeposited`].
pub const FUNDS_DEPOSITED: &str = "FundsDeposited";

impl DomainEvent {
    pub fn payment_requested(request: &PaymentRequest, occurred_at: DateTime<Utc>) -> Self {
        Self::PaymentRequested(EventDetail {
            version: CONTRACT_VERSION,
            event_id: format!("{}/1", request.payment_id()),
            occurred_at,
            data: request.clone(),
        })
    }

    /// The event announcing a log entry after the request, or `None` for the request itself
    /// (announced by whoever made it, as [`DomainEvent::PaymentRequested`]).
    pub fn for_log_entry(payment: &Payment, entry: &PaymentLogEntry) -> Option<Self> {
        let (detail_type, failure) = match &entry.step {
            PaymentStep::Requested { .. } => return None,
            PaymentStep::FundsReserved => (PaymentEventType::FundsReserved, None),
            PaymentStep::Charged { .. } => (PaymentEventType::PaymentCharged, None),
            PaymentStep::FundsSettled => (PaymentEventType::FundsSettled, None),
            PaymentStep::Completed => (PaymentEventType::PaymentCompleted, None),
            PaymentStep::CompensationStarted { reason } => {
                (PaymentEventType::CompensationStarted, Some(reason.clone()))
            }
            PaymentStep::ChargeRefunded => (PaymentEventType::ChargeRefunded, None),
            PaymentStep::ReservationReleased => (PaymentEventType::ReservationReleased, None),
            PaymentStep::Failed { reason } => {
                (PaymentEventType::PaymentFailed, Some(reason.clone()))
            }
        };
        let request = &payment.request;
        Some(Self::PaymentStepRecorded {
            detail_type,
            detail: EventDetail {
                version: CONTRACT_VERSION,
                event_id: format!("{}/{}", entry.payment_id, entry.version),
                occurred_at: entry.recorded_at,
                data: PaymentEventData {
                    payment_id: entry.payment_id.clone(),
                    from_wallet: request.from_wallet().clone(),
                    to_wallet: request.to_wallet().clone(),
                    amount: request.amount(),
                    status: entry.step.resulting_status(),
                    failure,
                },
            },
        })
    }

    pub fn funds_deposited(deposit: FundsDeposited, occurred_at: DateTime<Utc>) -> Self {
        Self::FundsDeposited(EventDetail {
            version: CONTRACT_VERSION,
            event_id: deposit.deposit_id.to_string(),
            occurred_at,
            data: deposit,
        })
    }

    /// The EventBridge `source`.
    pub fn source(&self) -> &'static str {
        match self {
            Self::PaymentRequested(_) | Self::PaymentStepRecorded { .. } => PAYMENTS_SOURCE,
            Self::FundsDeposited(_) => WALLETS_SOURCE,
        }
    }

    /// The EventBridge `detail-type`.
    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::PaymentRequested(_) => PAYMENT_REQUESTED,
            Self::PaymentStepRecorded { detail_type, .. } => detail_type.as_str(),
            Self::FundsDeposited(_) => FUNDS_DEPOSITED,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Self::PaymentRequested(detail) => &detail.event_id,
            Self::PaymentStepRecorded { detail, .. } => &detail.event_id,
            Self::FundsDeposited(detail) => &detail.event_id,
        }
    }

    /// The `detail`, as the JSON text EventBridge carries.
    pub fn detail_json(&self) -> String {
        let json = match self {
            Self::PaymentRequested(detail) => serde_json::to_string(detail),
            Self::PaymentStepRecorded { detail, .. } => serde_json::to_string(detail),
            Self::FundsDeposited(detail) => serde_json::to_string(detail),
        };
        json.expect("event details are plain data that always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::payment::tests::request;

    #[test]
    fn payment_requested_round_trips_through_its_json_contract() {
        let event = DomainEvent::payment_requested(&request(1_250), Utc::now());
        assert_eq!(
            (event.source(), event.detail_type()),
            ("paysaga.payments", "PaymentRequested")
        );
        assert_eq!(event.event_id(), "pay_test/1");
        let json: serde_json::Value = serde_json::from_str(&event.detail_json()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(
            json["data"]["amount"],
            serde_json::json!({"minor_units": 1250, "currency": "EUR"})
        );
        let parsed: EventDetail<PaymentRequest> = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.data, request(1_250));
    }

    #[test]
    fn step_events_are_named_for_the_step_and_identified_by_version() {
        let requested = PaymentLogEntry::requested(request(10), Utc::now());
        let payment = Payment::from_log(std::slice::from_ref(&requested)).unwrap();
        assert!(DomainEvent::for_log_entry(&payment, &requested).is_none());
        let reserved = payment.next_entry(PaymentStep::FundsReserved, Utc::now());
        let event = DomainEvent::for_log_entry(&payment, &reserved).unwrap();
        assert_eq!(
            (event.detail_type(), event.event_id()),
            ("FundsReserved", "pay_test/2")
        );
        let failed = payment.next_entry(
            PaymentStep::Failed {
                reason: FailureReason::InsufficientFunds {
                    wallet_id: request(10).from_wallet().clone(),
                },
            },
            Utc::now(),
        );
        let event = DomainEvent::for_log_entry(&payment, &failed).unwrap();
        let json: serde_json::Value = serde_json::from_str(&event.detail_json()).unwrap();
        assert_eq!(json["data"]["status"], "FAILED");
        assert_eq!(json["data"]["failure"]["code"], "insufficient_funds");
    }
}
