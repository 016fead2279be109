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
//! transaction as the payment's one transfer of the ledger. Nothing happens between moving the
//! money and completing the payment, so they are one step, not two.
//!
//! One engine runs the three [`Flow`](crate::payment::Flow)s; each step means, per flow:
//!
//! | step | transfer | top-up | payout |
//! |---|---|---|---|
//! | reserve | reserve in the payer's wallet; payee's accepts the currency | the wallet accepts the currency | reserve in the wallet |
//! | charge | the processor charges | the processor charges the funding instrument | the processor pays the destination |
//! | settle | payer → payee | `world:funding` → wallet | wallet → `world:payouts` |
//! | refund | refund the charge (or void) | refund the charge (or void) | cancel the payout (or void) |
//! | release | release the payer's reservation | nothing was reserved | release the wallet's reservation |

use chrono::{DateTime, Utc};

use super::failure::FailureReason;
use super::ids::{ChargeId, WalletId};
use super::ledger::Transfer;
use super::money::{Currency, Money};
use super::payment::{Payment, PaymentLogEntry, PaymentRequest, PaymentStatus, PaymentStep};
use super::wallet::{WalletChange, WalletEffect};

/// A step of the payment saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStep {
    /// Check the payment against the limits, then earmark the amount in the debited wallet, if
    /// any (which must hold the payment's currency and enough available funds), after checking
    /// that the credited wallet, if any, exists and holds that currency too. Compensated by
    /// [`SagaStep::ReleaseReservation`].
    ReserveFunds,
    /// Have the payment processor do its part: capture the amount (a transfer; a top-up, from
    /// the funding instrument) or pay it to the destination (a payout). Compensated by
    /// [`SagaStep::RefundCharge`].
    ChargePayment,
    /// Move the amount with the payment's one transfer (out of the reservation when a wallet is
    /// debited), and complete the payment with the same write.
    SettleFunds,
    /// Compensation: undo the processor's part (refund the charge, cancel the payout), or void
    /// the payment there when nothing was done (an answer that was lost may still arrive).
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
        let hold = |wallet_id: Option<&WalletId>, hold| {
            wallet_id.map(|wallet_id| WalletHold {
                wallet_id: wallet_id.clone(),
                hold,
            })
        };
        let (from, to) = (request.from_wallet(), request.to_wallet());
        let (step, holds, transfers) = match self {
            Self::ReserveFunds => (
                PaymentStep::FundsReserved,
                [
                    hold(from, Hold::Reserve(amount)),
                    hold(to, Hold::AcceptsCurrency(amount.currency())),
                ]
                .into_iter()
                .flatten()
                .collect(),
                vec![],
            ),
            Self::ChargePayment => return None,
            Self::SettleFunds => (PaymentStep::Completed, vec![], vec![request.transfer()]),
            Self::RefundCharge => (PaymentStep::ChargeRefunded, vec![], vec![]),
            Self::ReleaseReservation => (
                PaymentStep::ReservationReleased,
                hold(from, Hold::Release(amount)).into_iter().collect(),
                vec![],
            ),
            Self::FailPayment => {
                let reason = payment
                    .failure
                    .clone()
                    .unwrap_or(FailureReason::ProcessorUnavailable);
                (PaymentStep::Failed { reason }, vec![], vec![])
            }
        };
        Some(StepPlan {
            entry: payment.next_entry(step, now),
            holds,
            transfers,
        })
    }
}

/// A step ready to be applied: the log entry to append, the holds it puts on wallets or lifts,
/// and the money it moves between accounts; all of it at once, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub entry: PaymentLogEntry,
    pub holds: Vec<WalletHold>,
    pub transfers: Vec<Transfer>,
}

/// What a step does to a wallet without moving money between accounts: the wallet's balance
/// (available and reserved together) stays as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Earmark funds that a later transfer debits: available → reserved.
    Reserve(Money),
    /// Give earmarked funds back: reserved → available.
    Release(Money),
    /// Require that the wallet exists and holds this currency (the receiving side of a
    /// transfer to come).
    AcceptsCurrency(Currency),
}

/// A [`Hold`] on one wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletHold {
    pub wallet_id: WalletId,
    pub hold: Hold,
}

impl StepPlan {
    /// A step that changes no wallet: its log entry only.
    pub fn entry_only(entry: PaymentLogEntry) -> Self {
        Self {
            entry,
            holds: Vec::new(),
            transfers: Vec::new(),
        }
    }

    /// The step's one hold, when it changes wallets by nothing else: a reservation, or its
    /// release (a payee's currency check, which changes nothing, aside). Such a step touches
    /// one wallet item and moves no money between accounts, so a store can write the hold and
    /// the log entry one after the other rather than in one transaction, as long as the hold
    /// is taken once per payment however often the step is written (see the DynamoDB
    /// adapter's `holds`).
    pub fn hold_alone(&self) -> Option<&WalletHold> {
        if !self.transfers.is_empty() {
            return None;
        }
        let mut changing = self
            .holds
            .iter()
            .filter(|held| !matches!(held.hold, Hold::AcceptsCurrency(_)));
        match (changing.next(), changing.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// Every change the step makes to wallets, in order: its holds, then each transfer's
    /// wallet sides ([`Transfer::wallet_effects`]).
    pub fn wallet_effects(&self) -> Vec<WalletEffect> {
        let holds = self.holds.iter().map(|wallet_hold| WalletEffect {
            wallet_id: wallet_hold.wallet_id.clone(),
            change: match wallet_hold.hold {
                Hold::Reserve(amount) => WalletChange::Reserve(amount),
                Hold::Release(amount) => WalletChange::ReleaseReserved(amount),
                Hold::AcceptsCurrency(currency) => WalletChange::AcceptsCurrency(currency),
            },
        });
        let transfers = self.transfers.iter().flat_map(Transfer::wallet_effects);
        holds.chain(transfers).collect()
    }
}

/// Records the processor's charge of a payment.
pub fn charged(payment: &Payment, charge_id: ChargeId, now: DateTime<Utc>) -> StepPlan {
    StepPlan::entry_only(payment.next_entry(PaymentStep::Charged { charge_id }, now))
}

/// Starts undoing a payment whose funds are reserved (and perhaps charged), for `reason`.
pub fn start_compensation(
    payment: &Payment,
    reason: FailureReason,
    now: DateTime<Utc>,
) -> StepPlan {
    StepPlan::entry_only(payment.next_entry(PaymentStep::CompensationStarted { reason }, now))
}

/// Ends a payment that has not reserved anything yet as failed, for `reason`.
pub fn fail_before_reservation(
    payment: &Payment,
    reason: FailureReason,
    now: DateTime<Utc>,
) -> StepPlan {
    StepPlan::entry_only(payment.next_entry(PaymentStep::Failed { reason }, now))
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
    use crate::ledger::Account;
    use crate::test_support::request;
    use crate::wallet::Wallet;

    fn wallet_id(id: &str) -> WalletId {
        WalletId::parse(id).unwrap()
    }

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
            for effect in &plan.wallet_effects() {
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
        assert!(matches!(plan.holds[1].hold, Hold::AcceptsCurrency(_)));
        assert!(plan.transfers.is_empty(), "reserving moves no money");
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
        let payer = Account::wallet(wallet_id("wal_alice"));
        let payee = Account::wallet(wallet_id("wal_bob"));
        assert_eq!(
            settle.transfers,
            [Transfer::new(payer, payee, amount).unwrap()],
            "one transfer, payer to payee"
        );
        let changes: Vec<(String, WalletChange)> = settle
            .wallet_effects()
            .iter()
            .map(|effect| (effect.wallet_id.to_string(), effect.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("wal_alice".to_owned(), WalletChange::DebitReserved(amount)),
                ("wal_bob".to_owned(), WalletChange::Credit(amount))
            ]
        );
        let completed = charged.after(&settle.entry).unwrap();
        assert_eq!(SagaStep::next_for(&completed), None);
    }

    #[test]
    fn only_a_reservation_and_its_release_are_a_hold_alone() {
        let amount = pending().request.amount();
        let reserve = plan(SagaStep::ReserveFunds, &pending());
        let held = reserve.hold_alone().expect("a reservation is a hold alone");
        assert_eq!(
            (held.wallet_id.as_str(), held.hold),
            ("wal_alice", Hold::Reserve(amount)),
            "the payee's currency check changes nothing"
        );
        let reserved = pending().after(&reserve.entry).unwrap();
        let reason = FailureReason::InjectedFault {
            step: "charge_payment".into(),
        };
        let compensating = reserved
            .after(&start_compensation(&reserved, reason, Utc::now()).entry)
            .unwrap();
        let refunded = compensating
            .after(&plan(SagaStep::RefundCharge, &compensating).entry)
            .unwrap();
        let release = plan(SagaStep::ReleaseReservation, &refunded);
        assert_eq!(
            release.hold_alone().map(|held| held.hold),
            Some(Hold::Release(amount))
        );
        assert!(!pending().holds_funds());
        assert!(reserved.holds_funds() && refunded.holds_funds());
        assert!(!refunded.after(&release.entry).unwrap().holds_funds());
        let charged = reserved
            .after(&charged(&reserved, charge_id(), Utc::now()).entry)
            .unwrap();
        assert_eq!(charged.status, PaymentStatus::Charged);
        assert_eq!(
            plan(SagaStep::SettleFunds, &charged).hold_alone(),
            None,
            "settling moves money"
        );
        assert_eq!(
            plan(SagaStep::ChargePayment, &reserved).hold_alone(),
            None,
            "charging changes no wallet"
        );
    }

    #[test]
    fn a_failure_before_reservation_touches_no_wallet() {
        let reason = FailureReason::UnknownWallet {
            wallet_id: wallet_id("wal_bob"),
        };
        let plan = fail_before_reservation(&pending(), reason, Utc::now());
        assert!(plan.wallet_effects().is_empty());
        let failed = pending().after(&plan.entry).unwrap();
        assert_eq!(
            (failed.status, SagaStep::next_for(&failed)),
            (PaymentStatus::Failed, None)
        );
        assert!(!failed.holds_funds());
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
