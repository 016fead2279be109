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
    PaymentCompleted,
    CompensationStarted,
    ChargeRefunded,
    ReservationReleased,
    PaymentFailed,
}

impl PaymentEventType {
    pub const ALL: [Self; 7] = [
        Self::FundsReserved,
        Self::PaymentCharged,
        Self::PaymentCompleted,
        Self::CompensationStarted,
        Self::ChargeRefunded,
        Self::ReservationReleased,
        Self::PaymentFailed,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FundsReserved => "FundsReserved",
            Self::PaymentCharged => "PaymentCharged",
            Self::PaymentCompleted => "PaymentCompleted",
            Self::CompensationStarted => "CompensationStarted",
            Self::ChargeRefunded => "ChargeRefunded",
            Self::ReservationReleased => "ReservationReleased",
            Self::PaymentFailed => "PaymentFailed",
        }
    }
}

/// Why an event does not honour paysaga's contracts: a consumer can never handle it as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    #[error("no paysaga event is {detail_type:?} from {event_source:?}")]
    UnknownEvent {
        event_source: String,
        detail_type: String,
    },
    #[error(
        "{detail_type} version {version} is not supported (this code reads version {CONTRACT_VERSION})"
    )]
    UnsupportedVersion { detail_type: String, version: u64 },
    #[error("{detail_type} breaks its contract: {error}")]
    InvalidDetail { detail_type: String, error: String },
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

    /// Reads an event from its EventBridge `source`, `detail-type` and `detail` (JSON text),
    /// checking it against the contract of that type and version.
    pub fn parse(source: &str, detail_type: &str, detail: &str) -> Result<Self, ContractViolation> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u64,
        }
        let invalid = |error: serde_json::Error| ContractViolation::InvalidDetail {
            detail_type: detail_type.to_owned(),
            error: error.to_string(),
        };
        let version = serde_json::from_str::<Versioned>(detail)
            .map_err(invalid)?
            .version;
        let known = match source {
            PAYMENTS_SOURCE => {
                detail_type == PAYMENT_REQUESTED
                    || PaymentEventType::from_name(detail_type).is_some()
            }
            WALLETS_SOURCE => detail_type == FUNDS_DEPOSITED,
            _ => false,
        };
        if !known {
            return Err(ContractViolation::UnknownEvent {
                event_source: source.to_owned(),
                detail_type: detail_type.to_owned(),
            });
        }
        if version != u64::from(CONTRACT_VERSION) {
            return Err(ContractViolation::UnsupportedVersion {
                detail_type: detail_type.to_owned(),
                version,
            });
        }
        let event = match (detail_type, PaymentEventType::from_name(detail_type)) {
            (PAYMENT_REQUESTED, _) => {
                Self::PaymentRequested(serde_json::from_str(detail).map_err(invalid)?)
            }
            (FUNDS_DEPOSITED, _) => {
                Self::FundsDeposited(serde_json::from_str(detail).map_err(invalid)?)
            }
            (_, Some(detail_type)) => Self::PaymentStepRecorded {
                detail_type,
                detail: serde_json::from_str(detail).map_err(invalid)?,
            },
            (_, None) => unreachable!("unknown detail-types were refused above"),
        };
        Ok(event)
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
    fn events_parse_back_from_what_the_bus_carries() {
        let requested = DomainEvent::payment_requested(&request(1_250), Utc::now());
        let parsed = DomainEvent::parse(
            requested.source(),
            requested.detail_type(),
            &requested.detail_json(),
        );
        assert_eq!(parsed, Ok(requested));

        let payment =
            Payment::from_log(&[PaymentLogEntry::requested(request(5), Utc::now())]).unwrap();
        let reserved = payment.next_entry(PaymentStep::FundsReserved, Utc::now());
        let step = DomainEvent::for_log_entry(&payment, &reserved).unwrap();
        let parsed = DomainEvent::parse(step.source(), step.detail_type(), &step.detail_json());
        assert_eq!(parsed, Ok(step));
    }

    #[test]
    fn contract_violations_say_what_is_wrong() {
        let detail = DomainEvent::payment_requested(&request(1_250), Utc::now()).detail_json();
        let parse = |source: &str, detail_type: &str, detail: &str| {
            DomainEvent::parse(source, detail_type, detail).unwrap_err()
        };
        assert!(matches!(
            parse("paysaga.payments", "PaymentExploded", &detail),
            ContractViolation::UnknownEvent { .. }
        ));
        assert!(matches!(
            parse("someone.else", "PaymentRequested", &detail),
            ContractViolation::UnknownEvent { .. }
        ));
        let newer = detail.replace(r#""version":1"#, r#""version":2"#);
        assert_eq!(
            parse("paysaga.payments", "PaymentRequested", &newer),
            ContractViolation::UnsupportedVersion {
                detail_type: "PaymentRequested".into(),
                version: 2
            }
        );
        let float_money = detail.replace(r#""minor_units":1250"#, r#""minor_units":12.5"#);
        let violation = parse("paysaga.payments", "PaymentRequested", &float_money);
        assert!(
            matches!(violation, ContractViolation::InvalidDetail { .. }),
            "{violation}"
        );
        let unversioned = parse("paysaga.payments", "PaymentRequested", "{}");
        assert!(
            matches!(unversioned, ContractViolation::InvalidDetail { .. }),
            "{unversioned}"
        );
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
