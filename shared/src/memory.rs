//! In-memory adapters of the ports, with the same conditions as the DynamoDB ones: for
//! handler tests and for running the domain without AWS.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    ChargeId, DepositId, DomainEvent, IdempotencyKey, Money, PaymentId, PaymentLogEntry,
    PaymentRequest, StepPlan, Wallet, WalletChange, WalletId,
};
use crate::ports::{
    BeginPayment, Deposit, DepositOutcome, EventPublisher, OpenWallet, PaymentLog,
    PaymentProcessor, ProcessorError, PublishError, RecordStep, StoreError, WalletStore,
};

/// Wallets and payment logs in one process's memory.
#[derive(Default)]
pub struct InMemoryLedger {
    state: Mutex<LedgerState>,
}

#[derive(Default)]
struct LedgerState {
    wallets: HashMap<WalletId, Wallet>,
    payment_logs: HashMap<PaymentId, Vec<PaymentLogEntry>>,
    payment_keys: HashMap<String, PaymentRequest>,
    deposit_keys: HashMap<(WalletId, String), (DepositId, Money)>,
}

impl InMemoryLedger {
    fn state(&self) -> MutexGuard<'_, LedgerState> {
        // A panic while holding the lock can only come from a bug in this module; the state
        // it guards is replaced whole on every write, so it is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every wallet, for invariant checks in tests.
    pub fn wallets(&self) -> Vec<Wallet> {
        self.state().wallets.values().cloned().collect()
    }
}

#[async_trait]
impl WalletStore for InMemoryLedger {
    async fn open_wallet(&self, wallet: &Wallet) -> Result<OpenWallet, StoreError> {
        let mut state = self.state();
        if let Some(existing) = state.wallets.get(wallet.id()) {
            return Ok(OpenWallet::AlreadyOpen(existing.clone()));
        }
        state.wallets.insert(wallet.id().clone(), wallet.clone());
        Ok(OpenWallet::Opened(wallet.clone()))
    }

    async fn wallet(&self, id: &WalletId) -> Result<Option<Wallet>, StoreError> {
        Ok(self.state().wallets.get(id).cloned())
    }

    async fn deposit(
        &self,
        deposit: &Deposit,
        _now: DateTime<Utc>,
    ) -> Result<DepositOutcome, StoreError> {
        let mut state = self.state();
        let key = deposit
            .idempotency_key
            .as_ref()
            .map(|key| (deposit.wallet_id.clone(), key.as_str().to_owned()));
        if let Some(earlier) = key.as_ref().and_then(|key| state.deposit_keys.get(key)) {
            return Ok(if earlier.1 == deposit.amount {
                DepositOutcome::Replayed {
                    deposit_id: earlier.0.clone(),
                }
            } else {
                DepositOutcome::KeyReused
            });
        }
        let Some(wallet) = state.wallets.get(&deposit.wallet_id) else {
            return Ok(DepositOutcome::Refused(
                crate::domain::FailureReason::UnknownWallet {
                    wallet_id: deposit.wallet_id.clone(),
                },
            ));
        };
        match wallet.apply(WalletChange::Credit(deposit.amount)) {
            Ok(credited) => {
                state.wallets.insert(deposit.wallet_id.clone(), credited);
                if let Some(key) = key {
                    state
                        .deposit_keys
                        .insert(key, (deposit.deposit_id.clone(), deposit.amount));
                }
                Ok(DepositOutcome::Deposited)
            }
            Err(crate::domain::WalletRejection::Business(reason)) => {
                Ok(DepositOutcome::Refused(reason))
            }
            Err(other) => Err(StoreError::Permanent(other.to_string())),
        }
    }
}

#[async_trait]
impl PaymentLog for InMemoryLedger {
    async fn history(&self, id: &PaymentId) -> Result<Vec<PaymentLogEntry>, StoreError> {
        Ok(self
            .state()
            .payment_logs
            .get(id)
            .cloned()
            .unwrap_or_default())
    }

    async fn begin(
        &self,
        request: &PaymentRequest,
        idempotency_key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<BeginPayment, StoreError> {
        let mut state = self.state();
        if let Some(earlier) = idempotency_key.and_then(|key| state.payment_keys.get(key.as_str()))
        {
            return Ok(if earlier.same_terms_as(request) {
                BeginPayment::Replayed(earlier.payment_id().clone())
            } else {
                BeginPayment::KeyReused
            });
        }
        if state.payment_logs.contains_key(request.payment_id()) {
            return Ok(BeginPayment::AlreadyExists);
        }
        if let Some(key) = idempotency_key {
            state
                .payment_keys
                .insert(key.as_str().to_owned(), request.clone());
        }
        let entry = PaymentLogEntry::requested(request.clone(), now);
        state
            .payment_logs
            .insert(request.payment_id().clone(), vec![entry]);
        Ok(BeginPayment::Begun)
    }

    async fn record(&self, plan: &StepPlan) -> Result<RecordStep, StoreError> {
        let mut state = self.state();
        let log_length = state
            .payment_logs
            .get(&plan.entry.payment_id)
            .map_or(0, Vec::len);
        let version = plan.entry.version as usize;
        if version <= log_length {
            return Ok(RecordStep::VersionTaken);
        }
        if version != log_length + 1 {
            return Err(StoreError::Permanent(format!(
                "version {version} would leave a gap after {log_length}"
            )));
        }
        let mut changed: HashMap<WalletId, Wallet> = HashMap::new();
        for effect in &plan.effects {
            let current = changed
                .get(&effect.wallet_id)
                .or_else(|| state.wallets.get(&effect.wallet_id));
            if let Some(refusal) = effect.refusal(current) {
                return Ok(RecordStep::Refused(refusal));
            }
            let next = current.map(|wallet| wallet.apply(effect.change));
            if let Some(Ok(next)) = next {
                changed.insert(effect.wallet_id.clone(), next);
            }
        }
        state.wallets.extend(changed);
        state
            .payment_logs
            .entry(plan.entry.payment_id.clone())
            .or_default()
            .push(plan.entry.clone());
        Ok(RecordStep::Recorded)
    }
}

/// An event bus that keeps what it is given.
#[derive(Default)]
pub struct RecordingPublisher {
    published: Mutex<Vec<DomainEvent>>,
}

impl RecordingPublisher {
    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<DomainEvent> {
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[async_trait]
impl EventPublisher for RecordingPublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(events);
        Ok(())
    }
}

/// A payment processor in memory, with the contract of the real one: idempotent charges per
/// payment id, refunds that void a payment id never charged (a late charge is then declined).
/// Tests switch it to declining or unavailable.
#[derive(Default)]
pub struct InMemoryProcessor {
    state: Mutex<ProcessorState>,
}

#[derive(Default)]
struct ProcessorState {
    charges: HashMap<PaymentId, ChargeState>,
    declining: bool,
    unavailable: bool,
    charge_calls: u32,
}

/// What the processor holds for one payment id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeState {
    Captured(Money),
    Refunded(Money),
    Voided,
}

impl InMemoryProcessor {
    fn state(&self) -> MutexGuard<'_, ProcessorState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Declines every new charge from now on.
    pub fn set_declining(&self, declining: bool) {
        self.state().declining = declining;
    }

    /// Answers nothing (as a timeout would) from now on.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.state().unavailable = unavailable;
    }

    pub fn charge_state(&self, payment_id: &PaymentId) -> Option<ChargeState> {
        self.state().charges.get(payment_id).cloned()
    }

    /// How many charge calls reached the processor.
    pub fn charge_calls(&self) -> u32 {
        self.state().charge_calls
    }
}

#[async_trait]
impl PaymentProcessor for InMemoryProcessor {
    async fn charge(&self, request: &PaymentRequest) -> Result<ChargeId, ProcessorError> {
        let mut state = self.state();
        if state.unavailable {
            return Err(ProcessorError::Unavailable("no answer".into()));
        }
        state.charge_calls += 1;
        let id = request.payment_id();
        let charge_id =
            || ChargeId::parse(&format!("ch_{id}")).expect("a payment id is a valid charge id");
        match state.charges.get(id) {
            Some(ChargeState::Captured(_) | ChargeState::Refunded(_)) => Ok(charge_id()),
            Some(ChargeState::Voided) => Err(ProcessorError::Declined("voided".into())),
            None if state.declining => Err(ProcessorError::Declined("declined".into())),
            None => {
                state
                    .charges
                    .insert(id.clone(), ChargeState::Captured(request.amount()));
                Ok(charge_id())
            }
        }
    }

    async fn refund(&self, payment_id: &PaymentId) -> Result<(), ProcessorError> {
        let mut state = self.state();
        if state.unavailable {
            return Err(ProcessorError::Unavailable("no answer".into()));
        }
        let refunded = match state.charges.get(payment_id) {
            Some(ChargeState::Captured(amount) | ChargeState::Refunded(amount)) => {
                ChargeState::Refunded(*amount)
            }
            Some(ChargeState::Voided) | None => ChargeState::Voided,
        };
        state.charges.insert(payment_id.clone(), refunded);
        Ok(())
    }
}
