//! Event contracts: what paysaga publishes on its event bus. Every event is a versioned
//! envelope (`version`, `event_id` for de-duplication, `occurred_at`, `data`); the EventBridge
//! `source` and `detail-type` say what it is. These types are the one definition.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::failure::FailureReason;
use super::ids::{DepositId, PaymentId, WalletId};
use super::money::Money;
use super::payment::{Payment, PaymentRequest, PaymentStatus};

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

/// What a payment's outcome event carries.
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

/// Every event paysaga publishes. A payment is announced twice: when it is requested, and
/// when it has its outcome. The steps in between stay in the payment's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    /// A payment was asked for; the saga picks it up from the bus.
    PaymentRequested(EventDetail<PaymentRequest>),
    /// The money moved: the payment is COMPLETED.
    PaymentCompleted(EventDetail<PaymentEventData>),
    /// The payment is FAILED (its `failure` says why); whatever it had done is undone.
    PaymentFailed(EventDetail<PaymentEventData>),
    FundsDeposited(EventDetail<FundsDeposited>),
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
/// The `detail-type` of [`DomainEvent::PaymentCompleted`].
pub const PAYMENT_COMPLETED: &str = "PaymentCompleted";
/// The `detail-type` of [`DomainEvent::PaymentFailed`].
pub const PAYMENT_FAILED: &str = "PaymentFailed";
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

    /// The event announcing a payment's outcome, once it has one: `PaymentCompleted` or
    /// `PaymentFailed` (with the reason). Its id is the terminal log entry's
    /// (`<payment_id>/<version>`), the same however often it is published.
    pub fn payment_outcome(payment: &Payment) -> Option<Self> {
        let request = &payment.request;
        let detail = EventDetail {
            version: CONTRACT_VERSION,
            event_id: format!("{}/{}", request.payment_id(), payment.version),
            occurred_at: payment.updated_at,
            data: PaymentEventData {
                payment_id: request.payment_id().clone(),
                from_wallet: request.from_wallet().clone(),
                to_wallet: request.to_wallet().clone(),
                amount: request.amount(),
                status: payment.status,
                failure: None,
            },
        };
        match payment.status {
            PaymentStatus::Completed => Some(Self::PaymentCompleted(detail)),
            PaymentStatus::Failed => Some(Self::PaymentFailed(EventDetail {
                data: PaymentEventData {
                    failure: payment.failure.clone(),
                    ..detail.data
                },
                ..detail
            })),
            _ => None,
        }
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
                [PAYMENT_REQUESTED, PAYMENT_COMPLETED, PAYMENT_FAILED].contains(&detail_type)
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
        let event = match detail_type {
            PAYMENT_REQUESTED => {
                Self::PaymentRequested(serde_json::from_str(detail).map_err(invalid)?)
            }
            PAYMENT_COMPLETED => {
                Self::PaymentCompleted(serde_json::from_str(detail).map_err(invalid)?)
            }
            PAYMENT_FAILED => Self::PaymentFailed(serde_json::from_str(detail).map_err(invalid)?),
            FUNDS_DEPOSITED => Self::FundsDeposited(serde_json::from_str(detail).map_err(invalid)?),
            _ => unreachable!("unknown detail-types were refused above"),
        };
        Ok(event)
    }

    /// The EventBridge `source`.
    pub fn source(&self) -> &'static str {
        match self {
            Self::PaymentRequested(_) | Self::PaymentCompleted(_) | Self::PaymentFailed(_) => {
                PAYMENTS_SOURCE
            }
            Self::FundsDeposited(_) => WALLETS_SOURCE,
        }
    }

    /// The EventBridge `detail-type`.
    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::PaymentRequested(_) => PAYMENT_REQUESTED,
            Self::PaymentCompleted(_) => PAYMENT_COMPLETED,
            Self::PaymentFailed(_) => PAYMENT_FAILED,
            Self::FundsDeposited(_) => FUNDS_DEPOSITED,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Self::PaymentRequested(detail) => &detail.event_id,
            Self::PaymentCompleted(detail) | Self::PaymentFailed(detail) => &detail.event_id,
            Self::FundsDeposited(detail) => &detail.event_id,
        }
    }

    /// The `detail`, as the JSON text EventBridge carries.
    pub fn detail_json(&self) -> String {
        let json = match self {
            Self::PaymentRequested(detail) => serde_json::to_string(detail),
            Self::PaymentCompleted(detail) | Self::PaymentFailed(detail) => {
                serde_json::to_string(detail)
            }
            Self::FundsDeposited(detail) => serde_json::to_string(detail),
        };
        json.expect("event details are plain data that always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChargeId;
    use crate::domain::payment::tests::request;
    use crate::domain::payment::{PaymentLogEntry, PaymentStep};

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
        let completed = DomainEvent::payment_outcome(&completed()).unwrap();
        let failed = DomainEvent::payment_outcome(&failed()).unwrap();
        for event in [requested, completed, failed] {
            let parsed =
                DomainEvent::parse(event.source(), event.detail_type(), &event.detail_json());
            assert_eq!(parsed, Ok(event));
        }
    }

    /// A payment's log after `steps`, folded.
    fn payment_after(steps: Vec<PaymentStep>) -> Payment {
        let mut log = vec![PaymentLogEntry::requested(request(10), Utc::now())];
        for step in steps {
            let payment = Payment::from_log(&log).unwrap();
            log.push(payment.next_entry(step, Utc::now()));
        }
        Payment::from_log(&log).unwrap()
    }

    fn completed() -> Payment {
        let charged = PaymentStep::Charged {
            charge_id: ChargeId::parse("ch_1").unwrap(),
        };
        payment_after(vec![
            PaymentStep::FundsReserved,
            charged,
            PaymentStep::Completed,
        ])
    }

    fn failed() -> Payment {
        payment_after(vec![PaymentStep::Failed {
            reason: FailureReason::InsufficientFunds {
                wallet_id: request(10).from_wallet().clone(),
            },
        }])
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
    fn only_outcomes_are_announced_identified_by_the_terminal_version() {
        let pending = payment_after(vec![]);
        let reserved = payment_after(vec![PaymentStep::FundsReserved]);
        let compensating = payment_after(vec![
            PaymentStep::FundsReserved,
            PaymentStep::CompensationStarted {
                reason: FailureReason::ProcessorUnavailable,
            },
        ]);
        for unfinished in [pending, reserved, compensating] {
            assert_eq!(
                DomainEvent::payment_outcome(&unfinished),
                None,
                "{:?}",
                unfinished.status
            );
        }

        let completed = completed();
        let event = DomainEvent::payment_outcome(&completed).unwrap();
        assert_eq!(
            (event.source(), event.detail_type(), event.event_id()),
            ("paysaga.payments", "PaymentCompleted", "pay_test/4")
        );
        let json: serde_json::Value = serde_json::from_str(&event.detail_json()).unwrap();
        assert_eq!(json["data"]["status"], "COMPLETED");
        assert!(json["data"].get("failure").is_none(), "{json}");
        assert_eq!(
            json["occurred_at"],
            serde_json::to_value(completed.updated_at).unwrap()
        );

        let event = DomainEvent::payment_outcome(&failed()).unwrap();
        assert_eq!(
            (event.detail_type(), event.event_id()),
            ("PaymentFailed", "pay_test/2")
        );
        let json: serde_json::Value = serde_json::from_str(&event.detail_json()).unwrap();
        assert_eq!(json["data"]["status"], "FAILED");
        assert_eq!(json["data"]["failure"]["code"], "insufficient_funds");
    }

    #[test]
    fn step_events_are_no_longer_part_of_the_contract() {
        let detail = DomainEvent::payment_outcome(&completed())
            .unwrap()
            .detail_json();
        for retired in [
            "FundsReserved",
            "PaymentCharged",
            "FundsSettled",
            "CompensationStarted",
            "ChargeRefunded",
            "ReservationReleased",
        ] {
            assert!(
                matches!(
                    DomainEvent::parse("paysaga.payments", retired, &detail),
                    Err(ContractViolation::UnknownEvent { .. })
                ),
                "{retired}"
            );
        }
    }
}
