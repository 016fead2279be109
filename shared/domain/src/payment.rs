//! Payments and their append-only log. A payment's state is never stored on its own: it is
//! derived from the log entries, version 1 (the request) upwards.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::failure::FailureReason;
use super::ids::{ChargeId, IdempotencyKey, PaymentId, WalletId};
use super::ledger::{Account, Transfer};
use super::money::Money;

/// Why a payment request was refused before anything happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRequestError {
    #[error("a payment needs two different wallets")]
    SameWallet,
    #[error("the amount of a payment must be greater than zero")]
    ZeroAmount,
}

/// How urgently a payment should be worked on. An urgent payment travels on its own queue,
/// with its own concurrency, so a backlog of ordinary payments does not delay it.
///
/// An additive field of the contract: always written, and a request without it is ordinary
/// (what every payment was before priorities existed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Ordinary,
    Urgent,
}

/// Read by hand only for the error, which names what a priority may be whatever was sent
/// (`invalid value: string "asap", expected a payment priority, "ordinary" or "urgent"`).
impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PriorityVisitor;
        impl serde::de::Visitor<'_> for PriorityVisitor {
            type Value = Priority;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str(r#"a payment priority, "ordinary" or "urgent""#)
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Priority, E> {
                match value {
                    "ordinary" => Ok(Priority::Ordinary),
                    "urgent" => Ok(Priority::Urgent),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_str(PriorityVisitor)
    }
}

/// What a client asked for: move `amount` from one wallet to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPaymentRequest")]
pub struct PaymentRequest {
    payment_id: PaymentId,
    from_wallet: WalletId,
    to_wallet: WalletId,
    amount: Money,
    priority: Priority,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(rename = "PaymentRequest")]
struct RawPaymentRequest {
    payment_id: PaymentId,
    from_wallet: WalletId,
    to_wallet: WalletId,
    amount: Money,
    /// `urgent` payments have a queue of their own; missing means `ordinary`.
    #[serde(default)]
    priority: Priority,
}

/// The wire shape (the wallets must also differ, which the schema does not say).
impl schemars::JsonSchema for PaymentRequest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RawPaymentRequest::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawPaymentRequest::json_schema(generator)
    }
}

impl TryFrom<RawPaymentRequest> for PaymentRequest {
    type Error = PaymentRequestError;
    fn try_from(raw: RawPaymentRequest) -> Result<Self, Self::Error> {
        Self::new(raw.payment_id, raw.from_wallet, raw.to_wallet, raw.amount)
            .map(|request| request.with_priority(raw.priority))
    }
}

impl PaymentRequest {
    /// An ordinary payment request ([`PaymentRequest::with_priority`] makes it urgent).
    pub fn new(
        payment_id: PaymentId,
        from_wallet: WalletId,
        to_wallet: WalletId,
        amount: Money,
    ) -> Result<Self, PaymentRequestError> {
        if from_wallet == to_wallet {
            return Err(PaymentRequestError::SameWallet);
        }
        if amount.is_zero() {
            return Err(PaymentRequestError::ZeroAmount);
        }
        Ok(Self {
            payment_id,
            from_wallet,
            to_wallet,
            amount,
            priority: Priority::Ordinary,
        })
    }

    /// The money the payment moves once it settles: its amount, from the payer's wallet to
    /// the payee's.
    pub fn transfer(&self) -> Transfer {
        Transfer::new(
            Account::wallet(self.from_wallet.clone()),
            Account::wallet(self.to_wallet.clone()),
            self.amount,
        )
        .expect("a payment request names two different wallets and a positive amount")
    }

    /// The same request with `priority`.
    pub fn with_priority(self, priority: Priority) -> Self {
        Self { priority, ..self }
    }

    /// A payment a client submits: its id is derived from the payer and the client's
    /// idempotency key when there is one ([`PaymentId::for_idempotency_key`]), so a retry of
    /// the request names the same payment; a new, time-ordered id otherwise.
    pub fn submitted(
        from_wallet: WalletId,
        to_wallet: WalletId,
        amount: Money,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Self, PaymentRequestError> {
        let payment_id = match idempotency_key {
            Some(key) => PaymentId::for_idempotency_key(&from_wallet, key),
            None => PaymentId::generate(),
        };
        Self::new(payment_id, from_wallet, to_wallet, amount)
    }

    pub fn payment_id(&self) -> &PaymentId {
        &self.payment_id
    }
    pub fn from_wallet(&self) -> &WalletId {
        &self.from_wallet
    }
    pub fn to_wallet(&self) -> &WalletId {
        &self.to_wallet
    }
    pub fn amount(&self) -> Money {
        self.amount
    }
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// Whether `other` asks for the same movement of money with the same priority (ids of the
    /// payment aside): what a retried request with the same idempotency key must match. The
    /// priority is a term: a retry that asks for another one is another request.
    pub fn same_terms_as(&self, other: &PaymentRequest) -> bool {
        (
            &self.from_wallet,
            &self.to_wallet,
            self.amount,
            self.priority,
        ) == (
            &other.from_wallet,
            &other.to_wallet,
            other.amount,
            other.priority,
        )
    }
}

/// Where a payment stands. `Completed` and `Failed` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Pending,
    FundsReserved,
    Charged,
    /// The reservation was paid out to the receiver: the payment is done.
    Completed,
    /// A step failed for good after funds were reserved: the saga is undoing what it did.
    Compensating,
    Failed,
}

impl PaymentStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// One thing that happened to a payment, as recorded in its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStep {
    Requested {
        request: PaymentRequest,
    },
    /// The amount moved from the sender's available funds to its reserved funds.
    FundsReserved,
    /// The payment processor captured the amount.
    Charged {
        charge_id: ChargeId,
    },
    /// The reservation paid out of the sender's wallet and into the receiver's (written in the
    /// same transaction as those two wallet changes): the payment is complete.
    Completed,
    /// A later step failed for good; what was done is undone in reverse order.
    CompensationStarted {
        reason: FailureReason,
    },
    /// The processor refunded the charge (or voided the payment, when nothing was captured).
    ChargeRefunded,
    /// The reservation went back to the sender's available funds.
    ReservationReleased,
    Failed {
        reason: FailureReason,
    },
}

impl PaymentStep {
    /// The status a payment has once this step is recorded.
    pub fn resulting_status(&self) -> PaymentStatus {
        match self {
            Self::Requested { .. } => PaymentStatus::Pending,
            Self::FundsReserved => PaymentStatus::FundsReserved,
            Self::Charged { .. } => PaymentStatus::Charged,
            Self::Completed => PaymentStatus::Completed,
            Self::CompensationStarted { .. } | Self::ChargeRefunded | Self::ReservationReleased => {
                PaymentStatus::Compensating
            }
            Self::Failed { .. } => PaymentStatus::Failed,
        }
    }
}

/// An entry of a payment's log: version `n` is written only if `n - 1` exists and `n` does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLogEntry {
    pub payment_id: PaymentId,
    pub version: u32,
    #[serde(flatten)]
    pub step: PaymentStep,
    pub recorded_at: DateTime<Utc>,
}

impl PaymentLogEntry {
    /// Version 1 of every payment's log.
    pub fn requested(request: PaymentRequest, now: DateTime<Utc>) -> Self {
        Self {
            payment_id: request.payment_id().clone(),
            version: 1,
            step: PaymentStep::Requested { request },
            recorded_at: now,
        }
    }
}

/// A log that cannot be folded into a payment: a gap, a wrong first entry, an impossible
/// transition. Never a client's fault; it means the store was written around paysaga.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentLogError {
    #[error("payment log is empty")]
    Empty,
    #[error("payment log of {payment_id} does not start with the request")]
    MissingRequest { payment_id: PaymentId },
    #[error("payment log of {payment_id} has version {found} where {expected} was expected")]
    Gap {
        payment_id: PaymentId,
        expected: u32,
        found: u32,
    },
    #[error("payment {payment_id} cannot go from {from:?} to {to:?}")]
    IllegalTransition {
        payment_id: PaymentId,
        from: PaymentStatus,
        to: PaymentStatus,
    },
}

/// A payment as its log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub request: PaymentRequest,
    pub status: PaymentStatus,
    /// The version of the last log entry.
    pub version: u32,
    /// The processor's charge, once captured.
    pub charge: Option<ChargeId>,
    /// Why the payment failed (set when compensation starts, or when it fails outright).
    pub failure: Option<FailureReason>,
    /// What compensation has undone so far.
    pub charge_refunded: bool,
    pub reservation_released: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Payment {
    /// Folds a log (ordered by version) into the payment it describes, checking every
    /// transition on the way.
    pub fn from_log(entries: &[PaymentLogEntry]) -> Result<Payment, PaymentLogError> {
        let (first, rest) = entries.split_first().ok_or(PaymentLogError::Empty)?;
        let PaymentStep::Requested { request } = &first.step else {
            return Err(PaymentLogError::MissingRequest {
                payment_id: first.payment_id.clone(),
            });
        };
        if first.version != 1 {
            return Err(PaymentLogError::Gap {
                payment_id: first.payment_id.clone(),
                expected: 1,
                found: first.version,
            });
        }
        let mut payment = Payment {
            request: request.clone(),
            status: PaymentStatus::Pending,
            version: 1,
            charge: None,
            failure: None,
            charge_refunded: false,
            reservation_released: false,
            created_at: first.recorded_at,
            updated_at: first.recorded_at,
        };
        for entry in rest {
            payment = payment.after(entry)?;
        }
        Ok(payment)
    }

    /// This payment once `entry` is applied, if the log allows it.
    pub fn after(&self, entry: &PaymentLogEntry) -> Result<Payment, PaymentLogError> {
        let payment_id = self.request.payment_id().clone();
        if entry.version != self.version + 1 {
            return Err(PaymentLogError::Gap {
                payment_id,
                expected: self.version + 1,
                found: entry.version,
            });
        }
        if !self.accepts(&entry.step) {
            let to = entry.step.resulting_status();
            return Err(PaymentLogError::IllegalTransition {
                payment_id,
                from: self.status,
                to,
            });
        }
        let mut next = self.clone();
        next.status = entry.step.resulting_status();
        next.version = entry.version;
        next.updated_at = entry.recorded_at;
        match &entry.step {
            PaymentStep::Charged { charge_id } => next.charge = Some(charge_id.clone()),
            PaymentStep::CompensationStarted { reason } | PaymentStep::Failed { reason } => {
                next.failure = Some(reason.clone());
            }
            PaymentStep::ChargeRefunded => next.charge_refunded = true,
            PaymentStep::ReservationReleased => next.reservation_released = true,
            _ => {}
        }
        Ok(next)
    }

    /// The next log entry for `step`, one version above this payment's.
    pub fn next_entry(&self, step: PaymentStep, now: DateTime<Utc>) -> PaymentLogEntry {
        PaymentLogEntry {
            payment_id: self.request.payment_id().clone(),
            version: self.version + 1,
            step,
            recorded_at: now,
        }
    }

    /// The saga's transitions. Compensation undoes in reverse order: the charge is refunded
    /// (or voided) first, then the reservation released, and only then is the payment failed.
    fn accepts(&self, step: &PaymentStep) -> bool {
        use PaymentStatus as Status;
        use PaymentStep as Step;
        match (self.status, step) {
            (Status::Pending, Step::FundsReserved | Step::Failed { .. }) => true,
            (Status::FundsReserved, Step::Charged { .. } | Step::CompensationStarted { .. }) => {
                true
            }
            (Status::Charged, Step::Completed | Step::CompensationStarted { .. }) => true,
            (Status::Compensating, Step::ChargeRefunded) => !self.charge_refunded,
            (Status::Compensating, Step::ReservationReleased) => {
                self.charge_refunded && !self.reservation_released
            }
            (Status::Compensating, Step::Failed { .. }) => {
                self.charge_refunded && self.reservation_released
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::request;

    fn entry(version: u32, step: PaymentStep) -> PaymentLogEntry {
        PaymentLogEntry {
            payment_id: PaymentId::parse("pay_test").unwrap(),
            version,
            step,
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn requests_need_two_wallets_and_a_positive_amount() {
        let eur = |n| Money::new(n, "EUR".parse().unwrap()).unwrap();
        let alice = WalletId::parse("wal_alice").unwrap();
        let bob = WalletId::parse("wal_bob").unwrap();
        let id = PaymentId::generate();
        assert_eq!(
            PaymentRequest::new(id.clone(), alice.clone(), alice.clone(), eur(1)),
            Err(PaymentRequestError::SameWallet)
        );
        assert_eq!(
            PaymentRequest::new(id.clone(), alice.clone(), bob.clone(), eur(0)),
            Err(PaymentRequestError::ZeroAmount)
        );
        assert!(PaymentRequest::new(id, alice, bob, eur(1)).is_ok());
    }

    fn charged() -> PaymentStep {
        PaymentStep::Charged {
            charge_id: ChargeId::parse("ch_1").unwrap(),
        }
    }

    fn statuses(log: &[PaymentLogEntry]) -> Vec<PaymentStatus> {
        (1..=log.len())
            .map(|n| Payment::from_log(&log[..n]).unwrap().status)
            .collect()
    }

    #[test]
    fn the_happy_log_folds_to_completed() {
        let log = [
            PaymentLogEntry::requested(request(100), Utc::now()),
            entry(2, PaymentStep::FundsReserved),
            entry(3, charged()),
            entry(4, PaymentStep::Completed),
        ];
        use PaymentStatus::*;
        assert_eq!(statuses(&log), [Pending, FundsReserved, Charged, Completed]);
        let payment = Payment::from_log(&log).unwrap();
        assert_eq!(
            (payment.version, payment.charge.map(String::from)),
            (4, Some("ch_1".into()))
        );
    }

    #[test]
    fn compensation_undoes_in_reverse_order_then_fails() {
        let reason = FailureReason::PaymentDeclined {
            message: "card".into(),
        };
        let before_compensation = [
            vec![PaymentStep::FundsReserved],
            vec![PaymentStep::FundsReserved, charged()],
        ];
        for done in before_compensation {
            let mut log = vec![PaymentLogEntry::requested(request(100), Utc::now())];
            let compensation = [
                PaymentStep::CompensationStarted {
                    reason: reason.clone(),
                },
                PaymentStep::ChargeRefunded,
                PaymentStep::ReservationReleased,
                PaymentStep::Failed {
                    reason: reason.clone(),
                },
            ];
            for step in done.into_iter().chain(compensation) {
                log.push(entry(log.len() as u32 + 1, step));
            }
            let payment = Payment::from_log(&log).unwrap();
            assert_eq!(payment.status, PaymentStatus::Failed);
            assert!(payment.charge_refunded && payment.reservation_released);
            assert_eq!(payment.failure, Some(reason.clone()));
        }
    }

    #[test]
    fn compensation_cannot_skip_or_reorder_its_steps() {
        let reason = FailureReason::ProcessorUnavailable;
        let start = [
            PaymentLogEntry::requested(request(100), Utc::now()),
            entry(2, PaymentStep::FundsReserved),
            entry(
                3,
                PaymentStep::CompensationStarted {
                    reason: reason.clone(),
                },
            ),
        ];
        let wrong_steps = [
            PaymentStep::ReservationReleased,
            PaymentStep::Failed { reason },
            PaymentStep::Completed,
            charged(),
        ];
        for wrong in wrong_steps {
            let mut log = start.to_vec();
            log.push(entry(4, wrong.clone()));
            let folded = Payment::from_log(&log);
            assert!(
                matches!(folded, Err(PaymentLogError::IllegalTransition { .. })),
                "{wrong:?}"
            );
        }
        let mut refunded_twice = start.to_vec();
        refunded_twice.push(entry(4, PaymentStep::ChargeRefunded));
        refunded_twice.push(entry(5, PaymentStep::ChargeRefunded));
        assert!(Payment::from_log(&refunded_twice).is_err());
    }

    #[test]
    fn settled_payments_cannot_be_compensated() {
        let mut log = vec![
            PaymentLogEntry::requested(request(100), Utc::now()),
            entry(2, PaymentStep::FundsReserved),
            entry(3, charged()),
            entry(4, PaymentStep::Completed),
        ];
        log.push(entry(
            5,
            PaymentStep::CompensationStarted {
                reason: FailureReason::ProcessorUnavailable,
            },
        ));
        assert!(matches!(
            Payment::from_log(&log),
            Err(PaymentLogError::IllegalTransition { .. })
        ));
    }

    #[test]
    fn a_failed_log_keeps_its_reason() {
        let reason = FailureReason::InsufficientFunds {
            wallet_id: WalletId::parse("wal_alice").unwrap(),
        };
        let log = [
            PaymentLogEntry::requested(request(100), Utc::now()),
            entry(
                2,
                PaymentStep::Failed {
                    reason: reason.clone(),
                },
            ),
        ];
        let payment = Payment::from_log(&log).unwrap();
        assert_eq!(
            (payment.status, payment.failure),
            (PaymentStatus::Failed, Some(reason))
        );
    }

    #[test]
    fn gaps_and_illegal_transitions_are_refused() {
        let requested = PaymentLogEntry::requested(request(100), Utc::now());
        assert_eq!(Payment::from_log(&[]), Err(PaymentLogError::Empty));
        assert!(matches!(
            Payment::from_log(&[entry(1, PaymentStep::Completed)]),
            Err(PaymentLogError::MissingRequest { .. })
        ));
        assert!(matches!(
            Payment::from_log(&[requested.clone(), entry(3, PaymentStep::FundsReserved)]),
            Err(PaymentLogError::Gap {
                expected: 2,
                found: 3,
                ..
            })
        ));
        assert!(matches!(
            Payment::from_log(&[requested.clone(), entry(2, PaymentStep::Completed)]),
            Err(PaymentLogError::IllegalTransition { .. })
        ));
        let completed = [
            requested,
            entry(2, PaymentStep::FundsReserved),
            entry(3, charged()),
            entry(4, PaymentStep::Completed),
            entry(5, PaymentStep::FundsReserved),
        ];
        assert!(matches!(
            Payment::from_log(&completed),
            Err(PaymentLogError::IllegalTransition { .. })
        ));
    }

    #[test]
    fn a_submitted_payment_is_named_by_its_key_or_gets_a_new_id() {
        let eur = Money::new(100, "EUR".parse().unwrap()).unwrap();
        let (alice, bob) = (
            WalletId::parse("wal_alice").unwrap(),
            WalletId::parse("wal_bob").unwrap(),
        );
        let submit = |key: Option<&IdempotencyKey>| {
            PaymentRequest::submitted(alice.clone(), bob.clone(), eur, key).unwrap()
        };
        let key = IdempotencyKey::parse("order-42").unwrap();
        let keyed = submit(Some(&key));
        assert_eq!(
            keyed.payment_id(),
            &PaymentId::for_idempotency_key(&alice, &key)
        );
        assert_eq!(submit(Some(&key)).payment_id(), keyed.payment_id());
        assert_ne!(submit(None).payment_id(), submit(None).payment_id());
        assert_eq!(
            PaymentRequest::submitted(alice.clone(), alice.clone(), eur, Some(&key)),
            Err(PaymentRequestError::SameWallet)
        );
    }

    #[test]
    fn terms_compare_without_the_payment_id() {
        let a = request(100);
        let b = PaymentRequest::new(
            PaymentId::generate(),
            a.from_wallet().clone(),
            a.to_wallet().clone(),
            a.amount(),
        )
        .unwrap();
        assert!(a.same_terms_as(&b));
        assert!(!a.same_terms_as(&request(101)));
        assert!(!a.same_terms_as(&b.clone().with_priority(Priority::Urgent)));
        assert!(
            b.clone()
                .with_priority(Priority::Urgent)
                .same_terms_as(&a.with_priority(Priority::Urgent))
        );
    }

    #[test]
    fn priority_is_always_written_and_ordinary_when_missing() {
        let ordinary = request(100);
        assert_eq!(ordinary.priority(), Priority::Ordinary);
        let json = serde_json::to_value(&ordinary).unwrap();
        assert_eq!(json["priority"], "ordinary");

        let urgent = ordinary.clone().with_priority(Priority::Urgent);
        let json = serde_json::to_value(&urgent).unwrap();
        assert_eq!(json["priority"], "urgent");
        assert_eq!(
            serde_json::from_value::<PaymentRequest>(json).unwrap(),
            urgent
        );

        let mut without = serde_json::to_value(&ordinary).unwrap();
        without.as_object_mut().unwrap().remove("priority");
        assert_eq!(
            serde_json::from_value::<PaymentRequest>(without).unwrap(),
            ordinary
        );

        let mut unknown = serde_json::to_value(&ordinary).unwrap();
        unknown["priority"] = "asap".into();
        assert!(serde_json::from_value::<PaymentRequest>(unknown).is_err());
    }
}
