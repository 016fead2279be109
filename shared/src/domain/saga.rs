//! The payment saga's step chain: reserve → transfer → complete. Pure planning: given a
//! payment, which step comes next and what it does to which wallet. Applying a plan is the
//! store's job, atomically (the log entry and the wallet changes together, or nothing).

use chrono::{DateTime, Utc};

use super::failure::FailureReason;
use super::payment::{Payment, PaymentLogEntry, PaymentStatus, PaymentStep};
use super::wallet::{WalletChange, WalletEffect};

/// A step of the payment saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStep {
    /// Earmark the amount in the sender's wallet, after checking that the receiver's
    /// wallet exists and holds the payment's currency.
    ReserveFunds,
    /// Pay the reservation out of the sender's wallet into the receiver's.
    TransferFunds,
    /// Mark the payment completed.
    CompletePayment,
}

/// A step ready to be applied: the log entry to append and the wallet changes that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub entry: PaymentLogEntry,
    pub effects: Vec<WalletEffect>,
}

impl SagaStep {
    /// The step a payment needs next, or `None` once it is terminal.
    pub fn next_for(payment: &Payment) -> Option<SagaStep> {
        match payment.status {
            PaymentStatus::Pending => Some(Self::ReserveFunds),
            PaymentStatus::FundsReserved => Some(Self::TransferFunds),
            PaymentStatus::FundsTransferred => Some(Self::CompletePayment),
            PaymentStatus::Completed | PaymentStatus::Failed => None,
        }
    }

    /// What this step writes for `payment`.
    pub fn plan(self, payment: &Payment, now: DateTime<Utc>) -> StepPlan {
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
            Self::TransferFunds => (
                PaymentStep::FundsTransferred,
                vec![
                    from(WalletChange::DebitReserved(amount)),
                    to(WalletChange::Credit(amount)),
                ],
            ),
            Self::CompletePayment => (PaymentStep::Completed, vec![]),
        };
        StepPlan {
            entry: payment.next_entry(step, now),
            effects,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::payment::tests::request;
    use crate::domain::wallet::Wallet;

    fn pending() -> Payment {
        Payment::from_log(&[PaymentLogEntry::requested(request(250), Utc::now())]).unwrap()
    }

    /// Runs the chain against two in-memory wallets, as a store would.
    fn run(mut payment: Payment, mut alice: Wallet, mut bob: Wallet) -> (Payment, Wallet, Wallet) {
        while let Some(step) = SagaStep::next_for(&payment) {
            let plan = step.plan(&payment, Utc::now());
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
        (payment, alice, bob)
    }

    fn wallet(id: &str, available: u64) -> Wallet {
        let id = crate::domain::ids::WalletId::parse(id).unwrap();
        Wallet::restore(id, "EUR".parse().unwrap(), available, 0, Utc::now()).unwrap()
    }

    #[test]
    fn the_chain_reserves_then_transfers_then_completes() {
        let mut payment = pending();
        let mut steps = Vec::new();
        while let Some(step) = SagaStep::next_for(&payment) {
            steps.push(step);
            payment = payment
                .after(&step.plan(&payment, Utc::now()).entry)
                .unwrap();
        }
        use SagaStep::*;
        assert_eq!(steps, [ReserveFunds, TransferFunds, CompletePayment]);
        assert_eq!(payment.status, PaymentStatus::Completed);
    }

    #[test]
    fn the_chain_moves_the_amount_exactly_and_creates_no_money() {
        let (payment, alice, bob) =
            run(pending(), wallet("wal_alice", 1_000), wallet("wal_bob", 40));
        assert_eq!(payment.status, PaymentStatus::Completed);
        assert_eq!(alice.available().minor_units(), 750);
        assert_eq!(alice.reserved().minor_units(), 0);
        assert_eq!(bob.available().minor_units(), 290);
        assert_eq!(
            alice.balance_minor_units() + bob.balance_minor_units(),
            1_040
        );
    }

    #[test]
    fn reserve_checks_the_receiver_before_touching_money() {
        let plan = SagaStep::ReserveFunds.plan(&pending(), Utc::now());
        assert_eq!(plan.entry.version, 2);
        assert_eq!(plan.effects.len(), 2);
        assert!(matches!(
            plan.effects[1].change,
            WalletChange::AcceptsCurrency(_)
        ));
    }

    #[test]
    fn a_failure_before_reservation_touches_no_wallet() {
        let reason = FailureReason::UnknownWallet {
            wallet_id: request(1).to_wallet().clone(),
        };
        let plan = fail_before_reservation(&pending(), reason, Utc::now());
        assert!(plan.effects.is_empty());
        let failed = pending().after(&plan.entry).unwrap();
        assert_eq!(failed.status, PaymentStatus::Failed);
        assert_eq!(SagaStep::next_for(&failed), None);
    }
}
