//! In-memory adapters of the ports, with the same conditions as the DynamoDB ones: for
//! handler tests and for running the domain without AWS.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use paysaga_domain::payment::FlowKind;
use paysaga_domain::ports::{
    BeginPayment, Deposit, DepositOutcome, EventPublisher, OpenWallet, Ownership, PaymentHistory,
    PaymentLog, PaymentProcessor, PaymentRequests, ProcessorError, PublishError, RecordStep,
    StoreError, WalletDeposits, WalletDirectory, WalletOwners, WalletStore,
};
use paysaga_domain::{
    ChargeId, DepositId, DomainEvent, IdempotencyKey, Money, Owner, PaymentId, PaymentLogEntry,
    PaymentRequest, PaymentStep, RequestChannel, StepPlan, Transfer, Wallet, WalletId,
};

use crate::relay::Written;

/// Wallets and payment logs in one process's memory.
#[derive(Default)]
pub struct InMemoryLedger {
    state: Mutex<LedgerState>,
}

#[derive(Default)]
struct LedgerState {
    wallets: HashMap<WalletId, Wallet>,
    payment_logs: HashMap<PaymentId, Vec<PaymentLogEntry>>,
    deposit_keys: HashMap<(WalletId, String), (DepositId, Money)>,
    /// Every transfer applied, in order: the entries the balances must add up to.
    journal: Vec<Transfer>,
    /// What the tables' streams would hand the event relay: every log entry and outbox event
    /// written, in order.
    written: Vec<Written>,
    /// How the wallets were read, for tests that a door batches its reads.
    reads: WalletReads,
}

/// How many times wallets were read one at a time ([`WalletStore::wallet`]) and in batches
/// ([`WalletDirectory::wallets`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalletReads {
    pub single: usize,
    pub batched: usize,
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

    /// How the wallets were read so far.
    pub fn wallet_reads(&self) -> WalletReads {
        self.state().reads
    }

    /// Spreads an open wallet's credits over [`HOT_WALLET_CREDIT_SHARDS`] shards, as the
    /// DynamoDB adapter does once they contend (`paysaga_aws::dynamodb::credit_shards`). In
    /// memory a wallet is one value whatever its shards: only a model of the items
    /// ([`load::ModelledLedger`]) sees the difference. `false` for a wallet that is not open.
    ///
    /// [`HOT_WALLET_CREDIT_SHARDS`]: paysaga_domain::wallet::HOT_WALLET_CREDIT_SHARDS
    pub fn spread_credits(&self, wallet_id: &WalletId) -> bool {
        let mut state = self.state();
        let Some(wallet) = state.wallets.get(wallet_id) else {
            return false;
        };
        if wallet.credit_shards() == 0 {
            let spread = wallet
                .clone()
                .with_credit_shards(paysaga_domain::wallet::HOT_WALLET_CREDIT_SHARDS);
            state.wallets.insert(wallet_id.clone(), spread);
        }
        true
    }

    /// How many shards an open wallet's credits are spread over (0 for one that is not open).
    pub fn credit_shards(&self, wallet_id: &WalletId) -> u16 {
        self.state()
            .wallets
            .get(wallet_id)
            .map_or(0, Wallet::credit_shards)
    }

    /// Every transfer applied so far, in order (deposits and settled payments), for checking
    /// that each wallet's balance is the sum of its entries.
    pub fn journal(&self) -> Vec<Transfer> {
        self.state().journal.clone()
    }

    /// Everything written that a table's stream hands the event relay, in order.
    pub fn written(&self) -> Vec<Written> {
        self.state().written.clone()
    }

    /// The events the relay publishes from what was written so far, in order: what the bus
    /// has once the relay has caught up.
    pub async fn announced(&self) -> Vec<DomainEvent> {
        let bus = RecordingPublisher::default();
        let records = self.written().into_iter().map(Into::into).collect();
        let outputs = crate::relay::Outputs {
            events: &bus,
            deadlines: &RecordingDeadlines::default(),
        };
        let relayed = crate::relay::relay(self, &outputs, records).await;
        if let Some((index, error)) = relayed.stopped_at {
            panic!("the relay stopped at record {index}: {error}");
        }
        bus.published()
    }

    /// What reaches the bus about payments: what the relay publishes from this ledger's
    /// writes, deposits aside (a test's wallets are funded by them).
    pub async fn payment_events(&self) -> Vec<DomainEvent> {
        self.announced()
            .await
            .into_iter()
            .filter(|event| !matches!(event, DomainEvent::FundsDeposited(_)))
            .collect()
    }

    /// Appends `entry` to its payment's log without a plan's checks or wallet changes, for
    /// tests that need a log in a given shape.
    pub fn append_unchecked(&self, entry: PaymentLogEntry) {
        let mut state = self.state();
        state.written.push(Written::LogEntry(entry.clone()));
        state
            .payment_logs
            .entry(entry.payment_id.clone())
            .or_default()
            .push(entry);
    }

    /// A ledger of euro wallets, each holding its balance in cents (deposited, as a real one
    /// would be), all owned by [`DEMO_HOLDER`]:
    /// `InMemoryLedger::euro_wallets(&[("wal_demo_alice", 10_000), ("wal_demo_bob", 0)])`.
    /// Panics on an id that is not a wallet id or a balance out of range (it is for tests).
    pub async fn euro_wallets(balances: &[(&str, u64)]) -> Self {
        let ledger = Self::default();
        let eur = "EUR".parse().expect("EUR is a currency");
        let holder = paysaga_domain::Owner::parse(DEMO_HOLDER).expect("an owner");
        for (id, minor_units) in balances {
            let wallet_id = WalletId::parse(id).expect("a wallet id");
            let wallet = Wallet::open(wallet_id.clone(), eur, Utc::now()).owned_by(holder.clone());
            ledger.open_wallet(&wallet).await.expect("in memory");
            ledger.fund(id, *minor_units).await;
        }
        ledger
    }

    /// Puts `minor_units` of its currency into an open wallet, as an operator's deposit from
    /// the outside world's adjustments account (nothing for 0). Panics on a wallet that is not
    /// open or an amount out of range (it is for tests).
    pub async fn fund(&self, wallet_id: &str, minor_units: u64) {
        if minor_units == 0 {
            return;
        }
        let wallet_id = WalletId::parse(wallet_id).expect("a wallet id");
        let currency = self
            .state()
            .wallets
            .get(&wallet_id)
            .map(Wallet::currency)
            .expect("an open wallet");
        let deposit = Deposit {
            deposit_id: DepositId::generate(),
            wallet_id,
            amount: Money::new(minor_units, currency).expect("an amount in range"),
            idempotency_key: None,
            operator: paysaga_domain::OperatorRecord {
                issued_by: paysaga_domain::Owner::parse("ops-test").expect("an owner"),
                reason: paysaga_domain::OperatorReason::parse("test funds").expect("a reason"),
            },
        };
        let outcome = self.deposit(&deposit, Utc::now()).await.expect("in memory");
        assert!(
            matches!(outcome, DepositOutcome::Deposited),
            "funding {}: {outcome:?}",
            deposit.wallet_id
        );
    }
}

#[async_trait]
impl WalletOwners for InMemoryLedger {
    async fn ownership(&self, id: &WalletId) -> Result<Ownership, StoreError> {
        Ok(match self.state().wallets.get(id) {
            None => Ownership::NoSuchWallet,
            Some(wallet) => match wallet.owner() {
                Some(owner) => Ownership::Owned(owner.clone()),
                None => Ownership::Unowned,
            },
        })
    }
}

#[async_trait]
impl WalletDirectory for InMemoryLedger {
    async fn wallets_owned_by(&self, owner: &Owner) -> Result<Vec<WalletId>, StoreError> {
        Ok(self
            .state()
            .wallets
            .values()
            .filter(|wallet| wallet.is_owned_by(owner))
            .map(|wallet| wallet.id().clone())
            .collect())
    }

    async fn wallets(&self, ids: &[WalletId]) -> Result<Vec<Wallet>, StoreError> {
        let mut state = self.state();
        state.reads.batched += 1;
        Ok(ids
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .filter_map(|id| state.wallets.get(id).cloned())
            .collect())
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
        let mut state = self.state();
        state.reads.single += 1;
        Ok(state.wallets.get(id).cloned())
    }
}

#[async_trait]
impl WalletDeposits for InMemoryLedger {
    async fn deposit(
        &self,
        deposit: &Deposit,
        now: DateTime<Utc>,
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
                paysaga_domain::FailureReason::UnknownWallet {
                    wallet_id: deposit.wallet_id.clone(),
                },
            ));
        };
        let transfer = deposit
            .transfer()
            .map_err(|error| StoreError::Permanent(format!("deposit: {error}")))?;
        let credited = transfer
            .wallet_effects()
            .try_fold(wallet.clone(), |wallet, effect| wallet.apply(effect.change));
        match credited {
            Ok(credited) => {
                state.wallets.insert(deposit.wallet_id.clone(), credited);
                state.journal.push(transfer);
                state
                    .written
                    .push(Written::Outboxed(DomainEvent::funds_deposited(
                        deposit.announcement(),
                        now,
                    )));
                if let Some(key) = key {
                    state
                        .deposit_keys
                        .insert(key, (deposit.deposit_id.clone(), deposit.amount));
                }
                Ok(DepositOutcome::Deposited)
            }
            Err(paysaga_domain::WalletRejection::Business(reason)) => {
                Ok(DepositOutcome::Refused(reason))
            }
            Err(other) => Err(StoreError::Permanent(other.to_string())),
        }
    }
}

#[async_trait]
impl PaymentHistory for InMemoryLedger {
    async fn history(&self, id: &PaymentId) -> Result<Vec<PaymentLogEntry>, StoreError> {
        Ok(self
            .state()
            .payment_logs
            .get(id)
            .cloned()
            .unwrap_or_default())
    }
}

#[async_trait]
impl PaymentRequests for InMemoryLedger {
    async fn begin(
        &self,
        request: &PaymentRequest,
        channel: RequestChannel,
        idempotency_key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<BeginPayment, StoreError> {
        let mut state = self.state();
        if let Some(log) = state.payment_logs.get(request.payment_id()) {
            let Some(PaymentStep::Requested {
                request: earlier, ..
            }) = log.first().map(|e| &e.step)
            else {
                return Err(StoreError::Permanent(format!(
                    "the log of {} does not start with its request",
                    request.payment_id()
                )));
            };
            return Ok(match idempotency_key {
                None => BeginPayment::AlreadyExists,
                Some(_) if earlier.same_terms_as(request) => {
                    BeginPayment::Replayed(earlier.payment_id().clone())
                }
                Some(_) => BeginPayment::KeyReused,
            });
        }
        let entry = PaymentLogEntry::requested_through(request.clone(), channel, now);
        if entry.announced_through_outbox()
            && let Ok(Some(event)) = DomainEvent::announced_by(std::slice::from_ref(&entry))
        {
            state.written.push(Written::Outboxed(event));
        }
        state.written.push(Written::LogEntry(entry.clone()));
        state
            .payment_logs
            .insert(request.payment_id().clone(), vec![entry]);
        Ok(BeginPayment::Begun)
    }
}

#[async_trait]
impl PaymentLog for InMemoryLedger {
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
        for effect in &plan.wallet_effects() {
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
        state.journal.extend(plan.transfers.iter().cloned());
        state.written.push(Written::LogEntry(plan.entry.clone()));
        state
            .payment_logs
            .entry(plan.entry.payment_id.clone())
            .or_default()
            .push(plan.entry.clone());
        Ok(RecordStep::Recorded)
    }
}

/// An event bus that keeps what it is given, or is down when told to be.
#[derive(Default)]
pub struct RecordingPublisher {
    published: Mutex<Vec<DomainEvent>>,
    /// How many events each call published, in order.
    calls: Mutex<Vec<usize>>,
    down: std::sync::atomic::AtomicBool,
    /// Refuses the calls from this one on (1 = the first), when set.
    refusing_from_call: Mutex<Option<usize>>,
    /// The trace each published event was given ([`EventPublisher::publish_traced`]).
    traces: Mutex<Vec<Option<String>>>,
}

impl RecordingPublisher {
    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<DomainEvent> {
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The trace each event was published in, in order (`None`: the current one).
    pub fn traces(&self) -> Vec<Option<String>> {
        self.traces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many events each successful call published, in order.
    pub fn calls(&self) -> Vec<usize> {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Refuses every publication from now on (`true`), or takes them again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Takes the first `call - 1` calls, then refuses every one.
    pub fn refuse_from_call(&self, call: usize) {
        *self
            .refusing_from_call
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(call);
    }
}

#[async_trait]
impl EventPublisher for RecordingPublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PublishError("the bus is down (a test's outage)".to_owned()));
        }
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let refusing_from = *self
            .refusing_from_call
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if refusing_from.is_some_and(|from| calls.len() + 1 >= from) {
            return Err(PublishError(
                "the bus refused the call (a test's)".to_owned(),
            ));
        }
        calls.push(events.len());
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(events);
        Ok(())
    }

    async fn publish_traced(
        &self,
        events: &[DomainEvent],
        traces: &[Option<String>],
    ) -> Result<(), PublishError> {
        self.publish(events).await?;
        let mut kept = self
            .traces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.extend((0..events.len()).map(|index| traces.get(index).cloned().flatten()));
        Ok(())
    }
}

/// Deadline checks kept in order, or refused while down.
#[derive(Default)]
pub struct RecordingDeadlines {
    scheduled: Mutex<Vec<PaymentId>>,
    for_parked: Mutex<Vec<(PaymentId, String)>>,
    down: std::sync::atomic::AtomicBool,
}

impl RecordingDeadlines {
    /// Every payment whose check was scheduled, in order.
    pub fn scheduled(&self) -> Vec<PaymentId> {
        lock(&self.scheduled).clone()
    }

    /// Every check scheduled for a parked message: its payment and the parked message's id, in
    /// order.
    pub fn for_parked(&self) -> Vec<(PaymentId, String)> {
        lock(&self.for_parked).clone()
    }

    /// Refuses every schedule from now on (`true`), or takes them again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl paysaga_domain::ports::DeadlineChecks for RecordingDeadlines {
    async fn schedule(&self, payments: &[PaymentId]) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Transient(
                "the deadline queue is down (a test's)".to_owned(),
            ));
        }
        lock(&self.scheduled).extend_from_slice(payments);
        Ok(())
    }

    async fn schedule_for_parked(
        &self,
        payment: &PaymentId,
        parked_id: &str,
    ) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Transient(
                "the deadline queue is down (a test's)".to_owned(),
            ));
        }
        lock(&self.for_parked).push((payment.clone(), parked_id.to_owned()));
        Ok(())
    }
}

/// A notifier that keeps every notification it is given, duplicates included (as e-mail would
/// send them twice), or fails the ones it is told to; or, [`delivering_once`], one that keeps
/// a notification once per event and recipient, as the in-app inbox does.
///
/// [`delivering_once`]: RecordingNotifier::delivering_once
#[derive(Default)]
pub struct RecordingNotifier {
    sent: Mutex<Vec<paysaga_domain::notification::Notification>>,
    failing: Mutex<Option<paysaga_domain::ports::NotifyError>>,
    once: bool,
}

impl RecordingNotifier {
    /// A notifier idempotent by itself: a notification of an event to a recipient it has kept
    /// already is answered `SentBefore`, and not kept again.
    pub fn delivering_once() -> Self {
        Self {
            once: true,
            ..Self::default()
        }
    }

    /// Everything delivered so far, in order.
    pub fn sent(&self) -> Vec<paysaga_domain::notification::Notification> {
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Fails every delivery with `error` from now on (`None`: delivers again).
    pub fn fail_with(&self, error: Option<paysaga_domain::ports::NotifyError>) {
        *self
            .failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = error;
    }
}

#[async_trait]
impl paysaga_domain::ports::Notifier for RecordingNotifier {
    async fn notify(
        &self,
        notification: &paysaga_domain::notification::Notification,
    ) -> Result<paysaga_domain::ports::Delivery, paysaga_domain::ports::NotifyError> {
        use paysaga_domain::ports::Delivery;
        let failing = self
            .failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(error) = failing {
            return Err(error);
        }
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let kept_before = sent.iter().any(|kept| {
            kept.event_id == notification.event_id && kept.recipient == notification.recipient
        });
        if self.once && kept_before {
            return Ok(Delivery::SentBefore);
        }
        sent.push(notification.clone());
        Ok(Delivery::Sent)
    }

    fn delivers_once(&self) -> bool {
        self.once
    }
}

/// A payment processor in memory, with the contract of the real one: idempotent executions per
/// payment id (a charge for a transfer or a top-up, a payout for a payout), reversals that void
/// a payment id never executed (a late execution is then declined). Tests switch it to
/// declining (every flow, or one), unavailable, or refusing reversals.
#[derive(Default)]
pub struct InMemoryProcessor {
    state: Mutex<ProcessorState>,
}

#[derive(Default)]
struct ProcessorState {
    charges: HashMap<PaymentId, (FlowKind, ChargeState)>,
    declining: HashSet<FlowKind>,
    unavailable: bool,
    refusing_reversals: bool,
    charge_calls: u32,
    refused_reversals: u32,
}

/// What the processor holds for one payment id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeState {
    /// Charged (a transfer, a top-up) or paid out (a payout).
    Captured(Money),
    /// Refunded, or the payout cancelled.
    Refunded(Money),
    Voided,
}

impl InMemoryProcessor {
    fn state(&self) -> MutexGuard<'_, ProcessorState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Declines every new execution, of every flow, from now on (or stops declining).
    pub fn set_declining(&self, declining: bool) {
        let mut state = self.state();
        state.declining.clear();
        if declining {
            state.declining.extend(FlowKind::ALL);
        }
    }

    /// Declines every new execution of the `kind` flow from now on (or stops declining it).
    pub fn set_declining_flow(&self, kind: FlowKind, declining: bool) {
        let mut state = self.state();
        if declining {
            state.declining.insert(kind);
        } else {
            state.declining.remove(&kind);
        }
    }

    /// Answers nothing (as a timeout would) from now on.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.state().unavailable = unavailable;
    }

    /// Refuses every refund and cancel from now on (as a key that lost the right to would), or
    /// stops refusing.
    pub fn set_refusing_reversals(&self, refusing: bool) {
        self.state().refusing_reversals = refusing;
    }

    /// How many reversals it refused.
    pub fn refused_reversals(&self) -> u32 {
        self.state().refused_reversals
    }

    pub fn charge_state(&self, payment_id: &PaymentId) -> Option<ChargeState> {
        self.state()
            .charges
            .get(payment_id)
            .map(|(_, state)| state.clone())
    }

    /// Everything the processor holds: each payment id, its flow and its state.
    pub fn executions(&self) -> Vec<(PaymentId, FlowKind, ChargeState)> {
        self.state()
            .charges
            .iter()
            .map(|(id, (kind, state))| (id.clone(), *kind, state.clone()))
            .collect()
    }

    /// How many execute calls reached the processor.
    pub fn charge_calls(&self) -> u32 {
        self.state().charge_calls
    }
}

#[async_trait]
impl PaymentProcessor for InMemoryProcessor {
    async fn execute(&self, request: &PaymentRequest) -> Result<ChargeId, ProcessorError> {
        let mut state = self.state();
        if state.unavailable {
            return Err(ProcessorError::Unavailable("no answer".into()));
        }
        state.charge_calls += 1;
        let id = request.payment_id();
        let prefix = match request.kind() {
            FlowKind::Payout => "po",
            FlowKind::Transfer | FlowKind::TopUp => "ch",
        };
        let charge_id = || {
            ChargeId::parse(&format!("{prefix}_{id}")).expect("a payment id is a valid charge id")
        };
        match state.charges.get(id).map(|(_, state)| state) {
            Some(ChargeState::Captured(_)) => Ok(charge_id()),
            // As the HTTP client reads a replay after a refund or a cancel: it will not stand.
            Some(ChargeState::Refunded(_)) => Err(ProcessorError::Declined("refunded".into())),
            Some(ChargeState::Voided) => Err(ProcessorError::Declined("voided".into())),
            None if state.declining.contains(&request.kind()) => {
                Err(ProcessorError::Declined("declined".into()))
            }
            None => {
                let captured = ChargeState::Captured(request.amount());
                state.charges.insert(id.clone(), (request.kind(), captured));
                Ok(charge_id())
            }
        }
    }

    async fn reverse(&self, request: &PaymentRequest) -> Result<(), ProcessorError> {
        let mut state = self.state();
        if state.unavailable {
            return Err(ProcessorError::Unavailable("no answer".into()));
        }
        if state.refusing_reversals {
            state.refused_reversals += 1;
            return Err(ProcessorError::Refused("forbidden".into()));
        }
        let payment_id = request.payment_id();
        let reversed = match state.charges.get(payment_id).map(|(_, state)| state) {
            Some(ChargeState::Captured(amount) | ChargeState::Refunded(amount)) => {
                ChargeState::Refunded(*amount)
            }
            Some(ChargeState::Voided) | None => ChargeState::Voided,
        };
        state
            .charges
            .insert(payment_id.clone(), (request.kind(), reversed));
        Ok(())
    }
}

/// Who owns the wallets of [`InMemoryLedger::euro_wallets`] (the subject of the sample API
/// events in `events/lambda/`).
pub const DEMO_HOLDER: &str = "demo-alice";
/// The bearer token of [`DEMO_HOLDER`]'s consent that the sample requested payments in
/// `events/lambda/` carry, as [`StaticConsent::demo`] reads it.
pub const DEMO_CONSENT_TOKEN: &str = "consent-demo-alice";

/// Proofs of consent checked against a fixed list: each known bearer token speaks for its owner,
/// any other is invalid (as a badly signed token would be).
#[derive(Default)]
pub struct StaticConsent {
    owners: HashMap<String, paysaga_domain::Owner>,
}

impl StaticConsent {
    /// [`DEMO_CONSENT_TOKEN`] speaks for [`DEMO_HOLDER`].
    pub fn demo() -> Self {
        Self::default().with(DEMO_CONSENT_TOKEN, DEMO_HOLDER)
    }

    /// `token` speaks for `owner`.
    pub fn with(mut self, token: &str, owner: &str) -> Self {
        let owner = paysaga_domain::Owner::parse(owner).expect("an owner");
        self.owners.insert(token.to_owned(), owner);
        self
    }
}

impl paysaga_domain::ports::ConsentVerifier for StaticConsent {
    fn verify(
        &self,
        proof: &paysaga_domain::consent::ConsentProof,
    ) -> Result<paysaga_domain::Owner, paysaga_domain::consent::ConsentRefusal> {
        self.owners
            .get(proof.bearer_token())
            .cloned()
            .ok_or_else(|| {
                paysaga_domain::consent::ConsentRefusal::Invalid("an unknown token".to_owned())
            })
    }
}

/// Locks a fake's state; a panic while holding the lock can only come from a bug in this
/// module, and the state it guards stays consistent, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub mod capacity;
mod event_store;
pub mod load;
pub mod modelled;
mod read_models;
pub use event_store::InMemoryEventStore;
pub use read_models::InMemoryReadModels;
pub use redrive_fakes::{InMemoryJournal, InMemoryParking, InMemoryQueues, StaticRules};

/// In-memory queues, rules, journal and parking table for the DLQ redrive.
mod redrive_fakes {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};

    use super::lock;
    use crate::redrive::parking::{
        FlowOutcome, ParkedPage, ParkedSettlement, ParkedStatus, Parking,
    };
    use crate::redrive::{
        DeadLetter, DeadLetterRoutes, JournalEntry, ParkedMessage, ParkingLot, QueueAdmin,
        QueueDepth, QueueError, QueueRef, RedriveJournal, RedriveQueues, RuleDirectory,
        RuleTargets,
    };
    use paysaga_domain::ports::StoreError;

    #[derive(Default)]
    struct Queue {
        reference: Option<QueueRef>,
        /// Messages and whether each is in flight.
        messages: Vec<(DeadLetter, bool)>,
        refuse_sends: bool,
        /// The ARN of its dead-letter queue (its redrive policy's target).
        dead_letter_queue: Option<String>,
    }

    /// Queues in memory. A received message stays in flight until deleted or made visible.
    #[derive(Default)]
    pub struct InMemoryQueues {
        queues: Mutex<HashMap<String, Queue>>,
        fail_deletes: Mutex<bool>,
        next_id: Mutex<u64>,
    }

    impl InMemoryQueues {
        pub fn create(&self, queue: QueueRef) {
            let arn = queue.arn.clone();
            lock(&self.queues).entry(arn).or_default().reference = Some(queue);
        }

        /// Gives the queue `source` a redrive policy towards `dead_letter_queue` (ARNs).
        pub fn redrive_policy(&self, source: &str, dead_letter_queue: &str) {
            lock(&self.queues)
                .entry(source.to_owned())
                .or_default()
                .dead_letter_queue = Some(dead_letter_queue.to_owned());
        }

        /// Puts a message in the queue with this ARN.
        pub fn put(&self, arn: &str, letter: DeadLetter) {
            lock(&self.queues)
                .entry(arn.to_owned())
                .or_default()
                .messages
                .push((letter, false));
        }

        /// Every message of the queue, in flight or not.
        pub fn messages(&self, arn: &str) -> Vec<DeadLetter> {
            lock(&self.queues)
                .get(arn)
                .map(|queue| {
                    queue
                        .messages
                        .iter()
                        .map(|(letter, _)| letter.clone())
                        .collect()
                })
                .unwrap_or_default()
        }

        pub fn len(&self, arn: &str) -> usize {
            self.messages(arn).len()
        }

        /// Ends every message's visibility timeout.
        pub fn make_visible(&self, arn: &str) {
            if let Some(queue) = lock(&self.queues).get_mut(arn) {
                for (_, in_flight) in &mut queue.messages {
                    *in_flight = false;
                }
            }
        }

        pub fn fail_deletes(&self, fail: bool) {
            *lock(&self.fail_deletes) = fail;
        }

        pub fn refuse_sends(&self, arn: &str, refuse: bool) {
            lock(&self.queues)
                .entry(arn.to_owned())
                .or_default()
                .refuse_sends = refuse;
        }
    }

    #[async_trait]
    impl RedriveQueues for InMemoryQueues {
        async fn receive(
            &self,
            queue: &QueueRef,
            max: u32,
            _visibility: Duration,
        ) -> Result<Vec<DeadLetter>, QueueError> {
            let mut queues = lock(&self.queues);
            let queue = queues
                .get_mut(&queue.arn)
                .ok_or_else(|| QueueError::NotFound(queue.arn.clone()))?;
            let mut received = Vec::new();
            for (letter, in_flight) in &mut queue.messages {
                if received.len() >= max as usize {
                    break;
                }
                if !*in_flight {
                    *in_flight = true;
                    letter.receive_count += 1;
                    received.push(letter.clone());
                }
            }
            Ok(received)
        }

        async fn send(
            &self,
            queue: &QueueRef,
            messages: &[crate::redrive::OutgoingMessage],
        ) -> Result<HashSet<String>, QueueError> {
            let mut queues = lock(&self.queues);
            let stored = queues
                .get_mut(&queue.arn)
                .ok_or_else(|| QueueError::NotFound(queue.arn.clone()))?;
            if stored.refuse_sends {
                return Err(QueueError::Unavailable("refused".into()));
            }
            let mut next_id = lock(&self.next_id);
            let mut taken = HashSet::new();
            for message in messages {
                *next_id += 1;
                let id = format!("sent-{next_id}");
                stored.messages.push((
                    DeadLetter {
                        message_id: id.clone(),
                        receipt_handle: format!("receipt-{id}"),
                        body: message.body.clone(),
                        attributes: message.attributes.clone(),
                        source_arn: None,
                        receive_count: 0,
                        sent_at: Some(Utc::now()),
                        trace_header: message.trace_header.clone(),
                    },
                    false,
                ));
                taken.insert(message.entry_id.clone());
            }
            Ok(taken)
        }

        async fn delete(
            &self,
            queue: &QueueRef,
            receipt_handles: &[String],
        ) -> Result<usize, QueueError> {
            if *lock(&self.fail_deletes) {
                return Ok(0);
            }
            let mut queues = lock(&self.queues);
            let Some(stored) = queues.get_mut(&queue.arn) else {
                return Err(QueueError::NotFound(queue.arn.clone()));
            };
            let before = stored.messages.len();
            stored
                .messages
                .retain(|(letter, _)| !receipt_handles.contains(&letter.receipt_handle));
            Ok(before - stored.messages.len())
        }

        async fn queue(&self, arn: &str) -> Result<QueueRef, QueueError> {
            lock(&self.queues)
                .get(arn)
                .and_then(|queue| queue.reference.clone())
                .ok_or_else(|| QueueError::NotFound(arn.to_owned()))
        }

        async fn routes(&self, url: &str) -> Result<DeadLetterRoutes, QueueError> {
            let queues = lock(&self.queues);
            let queue = queues
                .values()
                .filter_map(|queue| queue.reference.clone())
                .find(|queue| queue.url == url)
                .ok_or_else(|| QueueError::NotFound(url.to_owned()))?;
            let sources = queues
                .values()
                .filter(|source| source.dead_letter_queue.as_deref() == Some(queue.arn.as_str()))
                .filter_map(|source| source.reference.clone())
                .collect();
            Ok(DeadLetterRoutes { queue, sources })
        }
    }

    #[async_trait]
    impl QueueAdmin for InMemoryQueues {
        async fn depth(&self, queue: &QueueRef) -> Result<QueueDepth, QueueError> {
            let queues = lock(&self.queues);
            let messages = queues
                .get(&queue.arn)
                .map(|queue| &queue.messages[..])
                .unwrap_or(&[]);
            let in_flight = messages.iter().filter(|(_, in_flight)| *in_flight).count() as u64;
            Ok(QueueDepth {
                visible: messages.len() as u64 - in_flight,
                in_flight,
                delayed: 0,
            })
        }

        async fn start_move_task(
            &self,
            from: &QueueRef,
            to: &QueueRef,
            _max_per_second: u32,
        ) -> Result<String, QueueError> {
            let mut queues = lock(&self.queues);
            let moved = queues
                .get_mut(&from.arn)
                .map(|queue| std::mem::take(&mut queue.messages))
                .unwrap_or_default();
            queues
                .entry(to.arn.clone())
                .or_default()
                .messages
                .extend(moved);
            Ok(format!("move-{}", from.name()))
        }
    }

    /// Rules and their targets, as given.
    #[derive(Default)]
    pub struct StaticRules {
        pub rules: HashMap<String, RuleTargets>,
    }

    #[async_trait]
    impl RuleDirectory for StaticRules {
        async fn targets(&self, rule_arn: &str) -> RuleTargets {
            self.rules
                .get(rule_arn)
                .cloned()
                .unwrap_or(RuleTargets::NoSuchRule)
        }
    }

    #[derive(Default)]
    pub struct InMemoryJournal {
        entries: Mutex<BTreeMap<String, JournalEntry>>,
    }

    #[async_trait]
    impl RedriveJournal for InMemoryJournal {
        async fn sent_back(&self, keys: &[String]) -> Result<HashSet<String>, StoreError> {
            let entries = lock(&self.entries);
            Ok(keys
                .iter()
                .filter(|key| entries.contains_key(*key))
                .cloned()
                .collect())
        }

        async fn record(&self, entries: &[JournalEntry]) -> Result<(), StoreError> {
            let mut stored = lock(&self.entries);
            for entry in entries {
                stored.insert(entry.key.clone(), entry.clone());
            }
            Ok(())
        }
    }

    #[derive(Default)]
    pub struct InMemoryParking {
        messages: Mutex<BTreeMap<String, ParkedMessage>>,
    }

    impl InMemoryParking {
        pub fn all(&self) -> Vec<ParkedMessage> {
            lock(&self.messages).values().cloned().collect()
        }
    }

    #[async_trait]
    impl ParkingLot for InMemoryParking {
        async fn park(&self, message: &ParkedMessage) -> Result<Parking, StoreError> {
            let mut messages = lock(&self.messages);
            if messages.contains_key(&message.parked_id) {
                return Ok(Parking::AlreadyParked);
            }
            messages.insert(message.parked_id.clone(), message.clone());
            Ok(Parking::Parked)
        }

        async fn parked(&self, parked_id: &str) -> Result<Option<ParkedMessage>, StoreError> {
            Ok(lock(&self.messages).get(parked_id).cloned())
        }

        async fn list(&self, limit: u32, after: Option<&str>) -> Result<ParkedPage, StoreError> {
            let messages = lock(&self.messages);
            let mut page: Vec<ParkedMessage> = messages
                .values()
                .filter(|message| after.is_none_or(|after| message.parked_id.as_str() > after))
                .take(limit as usize + 1)
                .cloned()
                .collect();
            let next = if page.len() > limit as usize {
                page.truncate(limit as usize);
                page.last().map(|message| message.parked_id.clone())
            } else {
                None
            };
            Ok(ParkedPage {
                messages: page,
                next,
            })
        }

        async fn waiting(&self) -> Result<u64, StoreError> {
            Ok(lock(&self.messages)
                .values()
                .filter(|message| message.status == ParkedStatus::Parked)
                .count() as u64)
        }

        async fn mark_replayed(
            &self,
            parked_id: &str,
            at: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            let mut messages = lock(&self.messages);
            match messages.get_mut(parked_id) {
                Some(message) if message.status == ParkedStatus::Parked => {
                    message.status = ParkedStatus::Replayed;
                    message.replayed_at = Some(at);
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }

    #[async_trait]
    impl ParkedSettlement for InMemoryParking {
        async fn mark_settled(
            &self,
            parked_id: &str,
            outcome: FlowOutcome,
            at: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            let mut messages = lock(&self.messages);
            match messages.get_mut(parked_id) {
                Some(message) if message.status == ParkedStatus::Parked => {
                    message.status = ParkedStatus::Settled;
                    message.settled_at = Some(at);
                    message.settled_as = Some(outcome);
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }
}

/// The owner's operations ([`crate::self_service::SelfService`]) over an in-memory ledger and
/// read models, as `main` assembles them over DynamoDB.
pub fn self_service(
    ledger: std::sync::Arc<InMemoryLedger>,
    read_models: std::sync::Arc<InMemoryReadModels>,
    limits: paysaga_domain::Limits,
) -> crate::self_service::SelfService {
    crate::self_service::SelfService {
        wallets: ledger.clone(),
        payments: ledger.clone(),
        directory: ledger,
        read_models,
        limits,
    }
}
