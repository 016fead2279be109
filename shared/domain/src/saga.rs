//! The payment saga's step chain, as pure planning: given a payment, which step comes next and
//! what it writes. Applying a plan is the store's job, atomically (the log entry and its wallet
//! changes together, or nothing); calling the processor is the saga service's.
//!
//! ```text
//!  PENDING ──reserve──> FUNDS_RESERVED ──charge──> CHARGED ──settle──> COMPLETED
//!     │                      │                        │
//!     │ refused              │ declined / gave up     │ refused
//!     ▼                      ▼                        ▼
//!  FAILED <──fail── COMPENSATING: refund (or void) the charge, then release the reservation
//! ```
//!
//! Settling is the last step: its log entry is the terminal `COMPLETED` one, written in the same
//! transaction as the sender's debit and the receiver's credit. Nothing happens between moving
//! the money and completing the payment, so they are one step, not two.

use chrono::{DateTime, Utc};

use super::failure::FailureReason;
use super::ids::ChargeId;
use super::money::Money;
use super::payment::{Payment, PaymentLogEntry, PaymentRequest, PaymentStatus, PaymentStep};
use super::wallet::{WalletChange, WalletEffect};

/// A step of the payment saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStep {
    /// Check the payment against the limits, then earmark the amount in the sender's wallet
    /// (which must hold the payment's currency and enough available funds) after checking that
    /// the receiver's wallet exists and holds that currency too. Compensated by
    /// [`SagaStep::ReleaseReservation`].
    ReserveFunds,
    /// Capture the amount with the payment processor. Compensated by [`SagaStep::RefundCharge`].
    ChargePayment,
    /// Pay the reservation out of the sender's wallet into the receiver's, and complete the
    /// payment with the same write.
    SettleFunds,
    /// Compensation: refund the charge at the processor, or void the payment there when no
    /// charge was captured (a charge whose outcome is unknown may still arrive).
    RefundCharge,
    /// Compensation: give the reserved amount back to the sender's available funds.
    ReleaseReservation,
    /// Compensation is complete: mark the payment failed.
    FailPayment,
}

impl SagaStep {
    /// Every step, for tests and metrics.
    pub const ALL: [SagaStep; 6] = [
        Self::ReserveFunds,
        Self::ChargePayment,
        Self::SettleFunds,
        Self::RefundCharge,
        Self::ReleaseReservation,
        Self::FailPayment,
    ];

    /// The step a payment needs next, or `None` once it is terminal.
    pub fn next_for(payment: &Payment) -> Option<SagaStep> {
        match payment.status {
            PaymentStatus::Pending => Some(Self::ReserveFunds),
            PaymentStatus::FundsReserved => Some(Self::ChargePayment),
            PaymentStatus::Charged => Some(Self::SettleFunds),
            PaymentStatus::Compensating if !payment.charge_refunded => Some(Self::RefundCharge),
            PaymentStatus::Compensating if !payment.reservation_released => {
                Some(Self::ReleaseReservation)
            }
            PaymentStatus::Compensating => Some(Self::FailPayment),
            PaymentStatus::Completed | PaymentStatus::Failed => None,
        }
    }

    /// A short, stable name (`reserve_funds`, …) for logs, metrics and fault injection.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReserveFunds => "reserve_funds",
            Self::ChargePayment => "charge_payment",
            Self::SettleFunds => "settle_funds",
            Self::RefundCharge => "refund_charge",
            Self::ReleaseReservation => "release_reservation",
            Self::FailPayment => "fail_payment",
        }
    }

    /// Whether this step undoes an earlier one.
    pub fn is_compensation(self) -> bool {
        matches!(
            self,
            Self::RefundCharge | Self::ReleaseReservation | Self::FailPayment
        )
    }

    /// What this step writes for `payment` once its work is done. For
    /// [`SagaStep::ChargePayment`] the processor's answer is needed: see [`charged`].
    pub fn plan(self, payment: &Payment, now: DateTime<Utc>) -> Option<StepPlan> {
        let request = &payment.request;
        let amount = request.amount();
        let from = |change| WalletEffect {
            wallet_id: request.from_wallet().clone(),
            change,
        };
        let to = |change| WalletEffect {
            wallet_id: request.to_wallet().clone(),
            change,
        };
        let (step, effects) = match self {
            Self::ReserveFunds => (
                PaymentStep::FundsReserved,
                vec![
                    from(WalletChange::Reserve(amount)),
                    to(WalletChange::AcceptsCurrency(amount.currency())),
                ],
            ),
            Self::ChargePayment => return None,
            Self::SettleFunds => (
                PaymentStep::Completed,
                vec![
                    from(WalletChange::DebitReserved(amount)),
                    to(WalletChange::Credit(amount)),
                ],
            ),
            Self::RefundCharge => (PaymentStep::ChargeRefunded, vec![]),
            Self::ReleaseReservation => (
                PaymentStep::ReservationReleased,
                vec![from(WalletChange::ReleaseReserved(amount))],
            ),
            Self::FailPayment => {
                let reason = payment
                    .failure
                    .clone()
                    .unwrap_or(FailureReason::ProcessorUnavailable);
                (PaymentStep::Failed { reason }, vec![])
            }
        };
        Some(StepPlan {
            entry: payment.next_entry(step, now),
            effects,
        })
    }
}

/// A step ready to be applied: the log entry to append and the wallet changes that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub entry: PaymentLogEntry,
    pub effects: Vec<WalletEffect>,
}

/// Records the processor's charge of a payment.
pub fn charged(payment: &Payment, charge_id: ChargeId, now: DateTime<Utc>) -> StepPlan {
    StepPlan {
        entry: payment.next_entry(PaymentStep::Charged { charge_id }, now),
        effects: vec![],
    }
}

/// Starts undoing a payment whose funds are reserved (and perhaps charged), for `reason`.
pub fn start_compensation(
    payment: &Payment,
    reason: FailureReason,
    now: DateTime<Utc>,
) -> StepPlan {
    let entry = payment.next_entry(PaymentStep::CompensationStarted { reason }, now);
    StepPlan {
        entry,
        effects: vec![],
    }
}

/// Ends a payment that has not reserved anything yet as failed, for `reason`.
pub fn fail_before_reservation(
    payment: &Payment,
    reason: FailureReason,
    now: DateTime<Utc>,
) -> StepPlan {
    StepPlan {
        entry: payment.next_entry(PaymentStep::Failed { reason }, now),
        effects: vec![],
    }
}

/// What a single payment may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentLimits {
    /// The largest amount, in minor units of the payment's currency.
    pub max_minor_units: u64,
}

impl Default for PaymentLimits {
    /// 1,000,000.00 in a currency with two decimals.
    fn default() -> Self {
        Self {
            max_minor_units: 100_000_000,
        }
    }
}

impl PaymentLimits {
    /// Why `request` is over the limits, if it is.
    pub fn refusal(&self, request: &PaymentRequest) -> Option<FailureReason> {
        let amount = request.amount();
        if amount.minor_units() <= self.max_minor_units {
            return None;
        }
        let limit = Money::new(self.max_minor_units, amount.currency()).ok()?;
        Some(FailureReason::AmountOverLimit { limit })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::test_support::request;
    use crate::wallet::Wallet;

    fn pending() -> Payment {
        Payment::from_log(&[PaymentLogEntry::requested(request(250), Utc::now())]).unwrap()
    }

    fn charge_id() -> ChargeId {
        ChargeId::parse("ch_1").unwrap()
    }

    /// The plan of `step`, with a charge id from a pretend processor.
    fn plan(step: SagaStep, payment: &Payment) -> StepPlan {
        step.plan(payment, Utc::now())
            .unwrap_or_else(|| charged(payment, charge_id(), Utc::now()))
    }

    fn wallet(id: &str, available: u64) -> Wallet {
        let id = crate::ids::WalletId::parse(id).unwrap();
        Wallet::restore(id, "EUR".parse().unwrap(), available, 0, Utc::now()).unwrap()
    }

    /// Runs the saga against two in-memory wallets, as a store would; `fail_at` starts
    /// compensation instead of running that step.
    fn run(fail_at: Option<SagaStep>) -> (Payment, Vec<SagaStep>, Wallet, Wallet) {
        let (mut alice, mut bob) = (wallet("wal_alice", 1_000), wallet("wal_bob", 40));
        let mut payment = pending();
        let mut steps = Vec::new();
        while let Some(step) = SagaStep::next_for(&payment) {
            steps.push(step);
            let plan = if Some(step) == fail_at {
                let reason = FailureReason::InjectedFault {
                    step: step.name().into(),
                };
                start_compensation(&payment, reason, Utc::now())
            } else {
                plan(step, &payment)
            };
            for effect in &plan.effects {
                let wallet = if effect.wallet_id == *alice.id() {
                    &mut alice
                } else {
                    &mut bob
                };
                *wallet = wallet.apply(effect.change).unwrap();
            }
            payment = payment.after(&plan.entry).unwrap();
        }
        (payment, steps, alice, bob)
    }

    #[test]
    fn the_chain_reserves_charges_then_settles_which_completes() {
        let (payment, steps, alice, bob) = run(None);
        use SagaStep::*;
        assert_eq!(steps, [ReserveFunds, ChargePayment, SettleFunds]);
        assert_eq!(
            (payment.status, payment.version),
            (PaymentStatus::Completed, 4)
        );
        assert_eq!(
            (
                alice.available().minor_units(),
                alice.reserved().minor_units()
            ),
            (750, 0)
        );
        assert_eq!(bob.available().minor_units(), 290);
        assert_eq!(
            alice.balance_minor_units() + bob.balance_minor_units(),
            1_040
        );
    }

    #[test]
    fn a_failed_charge_refunds_then_releases_then_fails() {
        let (payment, steps, alice, bob) = run(Some(SagaStep::ChargePayment));
        use SagaStep::*;
        assert_eq!(
            steps,
            [
                ReserveFunds,
                ChargePayment,
                RefundCharge,
                ReleaseReservation,
                FailPayment
            ]
        );
        assert_eq!(payment.status, PaymentStatus::Failed);
        assert_eq!(
            payment.failure.as_ref().map(FailureReason::code),
            Some("injected_fault")
        );
        assert_eq!(
            (
                alice.available().minor_units(),
                alice.reserved().minor_units()
            ),
            (1_000, 0)
        );
        assert_eq!(bob.available().minor_units(), 40);
    }

    #[test]
    fn a_failed_settlement_refunds_the_charge_and_releases_the_reservation() {
        let (payment, steps, alice, bob) = run(Some(SagaStep::SettleFunds));
        use SagaStep::*;
        assert_eq!(
            steps,
            [
                ReserveFunds,
                ChargePayment,
                SettleFunds,
                RefundCharge,
                ReleaseReservation,
                FailPayment
            ]
        );
        assert!(
            payment.charge.is_some() && payment.charge_refunded && payment.reservation_released
        );
        assert_eq!(
            (
                alice.available().minor_units(),
                bob.available().minor_units()
            ),
            (1_000, 40)
        );
    }

    #[test]
    fn every_step_has_a_plan_or_a_processor_answer_and_compensations_are_marked() {
        let compensations: HashSet<SagaStep> = SagaStep::ALL
            .into_iter()
            .filter(|step| step.is_compensation())
            .collect();
        use SagaStep::*;
        assert_eq!(
            compensations,
            HashSet::from([RefundCharge, ReleaseReservation, FailPayment])
        );
        assert!(
            SagaStep::ChargePayment
                .plan(&pending(), Utc::now())
                .is_none()
        );
        let names: HashSet<&str> = SagaStep::ALL.iter().map(|step| step.name()).collect();
        assert_eq!(names.len(), SagaStep::ALL.len());
    }

    #[test]
    fn reserve_checks_the_receiver_before_touching_money() {
        let plan = plan(SagaStep::ReserveFunds, &pending());
        assert_eq!(plan.entry.version, 2);
        assert!(matches!(
            plan.effects[1].change,
            WalletChange::AcceptsCurrency(_)
        ));
    }

    #[test]
    fn settling_writes_the_terminal_entry_with_both_wallet_changes() {
        let reserved = pending()
            .after(&plan(SagaStep::ReserveFunds, &pending()).entry)
            .unwrap();
        let charged = reserved
            .after(&charged(&reserved, charge_id(), Utc::now()).entry)
            .unwrap();
        let settle = plan(SagaStep::SettleFunds, &charged);
        assert_eq!(
            (&settle.entry.step, settle.entry.version),
            (&PaymentStep::Completed, 4)
        );
        let amount = charged.request.amount();
        let changes: Vec<(&str, WalletChange)> = settle
            .effects
            .iter()
            .map(|effect| (effect.wallet_id.as_str(), effect.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("wal_alice", WalletChange::DebitReserved(amount)),
                ("wal_bob", WalletChange::Credit(amount))
            ]
        );
        let completed = charged.after(&settle.entry).unwrap();
        assert_eq!(SagaStep::next_for(&completed), None);
    }

    #[test]
    fn a_failure_before_reservation_touches_no_wallet() {
        let reason = FailureReason::UnknownWallet {
            wallet_id: request(1).to_wallet().clone(),
        };
        let plan = fail_before_reservation(&pending(), reason, Utc::now());
        assert!(plan.effects.is_empty());
        let failed = pending().after(&plan.entry).unwrap();
        assert_eq!(
            (failed.status, SagaStep::next_for(&failed)),
            (PaymentStatus::Failed, None)
        );
    }

    #[test]
    fn limits_refuse_amounts_above_the_maximum_only() {
        let limits = PaymentLimits {
            max_minor_units: 250,
        };
        assert_eq!(limits.refusal(&request(250)), None);
        let refusal = limits.refusal(&request(251));
        assert_eq!(
            refusal.as_ref().map(FailureReason::code),
            Some("amount_over_limit")
        );
    }
}
