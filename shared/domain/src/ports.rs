//! The narrow capabilities the payments domain needs from the outside world. Each trait is
//! one capability; AWS adapters live in [`paysaga_aws`], in-memory ones in [`paysaga_services::fakes`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::consent::{ConsentProof, ConsentRefusal};
use crate::history::{AggregateState, RecordedEvent, StreamEvent, StreamId};
use crate::ledger::{Account, Transfer, TransferError, WorldAccount};
use crate::operator::OperatorRecord;
use crate::{
    ChargeId, DepositId, DomainEvent, FailureReason, IdempotencyKey, Money, Owner, Payment,
    PaymentId, PaymentLogEntry, PaymentRequest, RequestChannel, StepPlan, Wallet, WalletId,
    WalletRejection,
};

/// A store failed. Grouped by what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Other writers got to an item first, through every retry the store made: nothing is
    /// wrong with the write or with the store, and the same write a moment later succeeds.
    #[error("store contended ({0}): {1}")]
    Contended(Contention, String),
    /// The service unreachable or failing, a timeout: retry later.
    #[error("store temporarily unavailable: {0}")]
    Transient(String),
    /// Data that does not parse, a broken invariant, a missing table: retrying will not help.
    #[error("store failed: {0}")]
    Permanent(String),
}

impl StoreError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Contended(..) | Self::Transient(_))
    }
}

/// How writers got in each other's way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contention {
    /// An item was held by another transaction (DynamoDB: `TransactionConflict`).
    Conflict,
    /// An item's write capacity was spent (DynamoDB: throttling).
    Throttled,
}

impl std::fmt::Display for Contention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Conflict => "a conflicting transaction",
            Self::Throttled => "throttled",
        })
    }
}

/// Not every event reached the bus. Publishing the same events again is safe: consumers
/// de-duplicate on the event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events not published: {0}")]
pub struct PublishError(pub String);

/// How opening a wallet went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenWallet {
    Opened(Wallet),
    /// A wallet with this id exists already (returned as stored).
    AlreadyOpen(Wallet),
}

/// Money coming into a wallet from outside paysaga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    pub deposit_id: DepositId,
    pub wallet_id: WalletId,
    pub amount: Money,
    /// When present, a retried deposit with the same key and terms is applied once.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The operator who issued it, and why.
    pub operator: OperatorRecord,
}

impl Deposit {
    /// The event that announces it, with who issued it and why.
    pub fn announcement(&self) -> crate::events::FundsDeposited {
        crate::events::FundsDeposited {
            deposit_id: self.deposit_id.clone(),
            wallet_id: self.wallet_id.clone(),
            amount: self.amount,
            issued_by: Some(self.operator.issued_by.clone()),
            reason: Some(self.operator.reason.clone()),
        }
    }

    /// The money a deposit moves: from the outside world's adjustments account of its currency
    /// into the wallet. (Money enters only by a transfer, so the books still sum to zero.)
    pub fn transfer(&self) -> Result<Transfer, TransferError> {
        let outside = Account::world(WorldAccount::Adjustments, self.amount.currency());
        Transfer::new(
            outside,
            Account::wallet(self.wallet_id.clone()),
            self.amount,
        )
    }
}

/// How a deposit went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepositOutcome {
    Deposited,
    /// The idempotency key was used before, for the same terms, by this deposit: nothing
    /// changed (its announcement was written with it the first time).
    Replayed {
        deposit_id: DepositId,
    },
    /// The idempotency key was used before, for different terms: nothing changed.
    KeyReused,
    Refused(FailureReason),
}

/// How recording the start of a payment went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginPayment {
    Begun,
    /// The idempotency key was used before, for the same terms, by this payment.
    Replayed(PaymentId),
    /// The idempotency key was used before, for different terms.
    KeyReused,
    /// A payment with this id exists already.
    AlreadyExists,
}

/// How appending a saga step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordStep {
    /// The entry and its wallet changes were written together.
    Recorded,
    /// The entry's version exists already (a duplicate or concurrent delivery wrote it):
    /// nothing was written; reload the log.
    VersionTaken,
    /// A wallet refused its change: nothing was written.
    Refused(WalletRejection),
}

/// Who a wallet belongs to, as [`WalletOwners::ownership`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    NoSuchWallet,
    /// Opened without an owner (by a tool, not through the API): no caller's.
    Unowned,
    Owned(Owner),
}

impl Ownership {
    pub fn is(&self, caller: &Owner) -> bool {
        matches!(self, Ownership::Owned(owner) if owner == caller)
    }
}

/// Who owns which wallet: all a caller needs that authorises a request and moves no money
/// itself (the saga's consent check).
#[async_trait]
pub trait WalletOwners: Send + Sync {
    /// Who owns the wallet, for authorising a request. Ownership never changes once a wallet
    /// is opened, so a store may answer from an eventually consistent read (half the price of
    /// [`WalletStore::wallet`]'s) as long as a wallet just opened is not reported missing.
    async fn ownership(&self, id: &WalletId) -> Result<Ownership, StoreError>;
}

/// Wallets and the money in them, as their owners' doors see them: opened, read.
#[async_trait]
pub trait WalletStore: WalletOwners {
    /// Opens `wallet` unless a wallet with its id exists.
    async fn open_wallet(&self, wallet: &Wallet) -> Result<OpenWallet, StoreError>;
    async fn wallet(&self, id: &WalletId) -> Result<Option<Wallet>, StoreError>;
}

/// An operator's deposits: all the admin routes need beyond [`WalletStore`]. A port of its own,
/// so that a function that does not deposit (the owners' doors) links none of it.
#[async_trait]
pub trait WalletDeposits: WalletStore {
    /// Credits the deposit to its wallet, once per idempotency key, and records its
    /// announcement ([`Deposit::announcement`], dated `now`) in the same transaction, for the
    /// event relay to publish.
    async fn deposit(
        &self,
        deposit: &Deposit,
        now: DateTime<Utc>,
    ) -> Result<DepositOutcome, StoreError>;
}

/// Which wallets an owner holds, and many wallets read at once: what a door that lists or
/// resolves many wallets in one request needs (the GraphQL subgraph), so that it reads them in
/// one batch rather than one read per wallet.
#[async_trait]
pub trait WalletDirectory: Send + Sync {
    /// The ids of the wallets `owner` holds. An index that may trail a wallet just opened by
    /// a moment (ownership never changes once a wallet is opened).
    async fn wallets_owned_by(&self, owner: &Owner) -> Result<Vec<WalletId>, StoreError>;
    /// The wallets of `ids` that exist, each with its balances as [`WalletStore::wallet`]
    /// reads them, in no particular order.
    async fn wallets(&self, ids: &[WalletId]) -> Result<Vec<Wallet>, StoreError>;
}

/// Reads each payment's log: all a caller needs that only announces what was written (the
/// event relay), so that it links none of the writes.
#[async_trait]
pub trait PaymentHistory: Send + Sync {
    /// Every entry of a payment's log, by version; empty when the payment is unknown.
    async fn history(&self, id: &PaymentId) -> Result<Vec<PaymentLogEntry>, StoreError>;
}

/// Writes each payment's request, its log's first entry: all a door that submits payments needs
/// (the API's three doors), so that it links none of the saga's step writes.
#[async_trait]
pub trait PaymentRequests: PaymentHistory {
    /// Writes version 1 of a payment's log, the request as it came through `channel`, unless
    /// the payment exists. With an idempotency key, the request's id is the key's
    /// ([`PaymentRequest::submitted`]), so an existing payment is the key's earlier use:
    /// `Replayed` when it asked for the same terms, `KeyReused` otherwise. Without one, an
    /// existing payment is `AlreadyExists`.
    async fn begin(
        &self,
        request: &PaymentRequest,
        channel: RequestChannel,
        idempotency_key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<BeginPayment, StoreError>;
}

/// The append-only, versioned log of each payment, and the wallet changes that go with it.
#[async_trait]
pub trait PaymentLog: PaymentRequests {
    /// Appends a step's entry and applies its wallet changes: all or nothing, as whoever
    /// writes the step again sees it. A store may write a step whose only change is a hold
    /// ([`StepPlan::hold_alone`]) as two writes, as long as the next attempt at the step
    /// finishes one interrupted between them and takes or gives back the hold once.
    async fn record(&self, plan: &StepPlan) -> Result<RecordStep, StoreError>;

    /// Gives back funds still held for `payment`, which is terminal and so holds none rightly:
    /// a reservation that landed after the payment was done with funds, by a delivery that
    /// stopped before giving them back (see the DynamoDB adapter's `holds`). `true` when there
    /// were some. The payment's deadline check calls it for every terminal payment. A store
    /// that writes every step at once leaves no such hold, and has nothing to do.
    async fn lift_stray_hold(&self, payment: &Payment) -> Result<bool, StoreError> {
        let _ = payment;
        Ok(false)
    }
}

/// Where events go to be published: the bus itself (the event relay's publisher), or an
/// outbox the relay publishes from (an event that is its change's own record, such as an
/// operator's action). Publishing the same event again is harmless: it keeps its id, and
/// consumers de-duplicate on it.
///
/// An event that reports a change to the ledger is never published through this after the
/// change: it is written with the change ([`WalletDeposits::deposit`], the payment log), and the
/// relay publishes it from there.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError>;

    /// Publishes each event in the trace its change was made in: `traces[i]` is `events[i]`'s,
    /// a tracing system's header (opaque here; `None`: the current trace). A bus that carries
    /// no traces publishes them as [`publish`](Self::publish) does.
    async fn publish_traced(
        &self,
        events: &[DomainEvent],
        traces: &[Option<String>],
    ) -> Result<(), PublishError> {
        let _ = traces;
        self.publish(events).await
    }
}

/// Every payment's deadline check, scheduled when its request is recorded (by the event
/// relay, from the log's version 1): once the payment's deadline has passed, the reconciler
/// looks at it, and drives it on through the saga if it is not terminal by then.
#[async_trait]
pub trait DeadlineChecks: Send + Sync {
    /// Each payment's check, due at its deadline.
    async fn schedule(&self, payments: &[PaymentId]) -> Result<(), StoreError>;

    /// A check of `payment` due at once, carrying `parked_id`: the id of a message on its way
    /// to the payment's saga that the DLQ redrive parked. The reconciler drives the payment on as
    /// any check does, and marks that message settled once the payment is terminal, so it no
    /// longer waits for an operator.
    async fn schedule_for_parked(
        &self,
        payment: &PaymentId,
        parked_id: &str,
    ) -> Result<(), StoreError>;
}

/// The payment processor refused or could not be reached. Grouped by what the saga does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// A definite no (declined, or the charge was voided earlier): compensate.
    #[error("the payment processor declined: {0}")]
    Declined(String),
    /// No answer, a 5xx, a timeout, or the circuit breaker is open: the outcome is unknown and
    /// a later attempt may succeed.
    #[error("the payment processor is unavailable: {0}")]
    Unavailable(String),
    /// The processor answered a reversal with a refusal (a 4xx: a credential that lost the
    /// right to refund, a request it calls invalid): what it holds stays held until it agrees.
    /// Never an outcome, as a decline is: the saga asks again, backing off, and counts it for
    /// an alarm. Only [`PaymentProcessor::reverse`] answers it.
    #[error("the payment processor refused to undo the payment: {0}")]
    Refused(String),
}

/// The external payment processor (the seeds' "Payment Service"): it does a payment's part
/// outside paysaga, and undoes it. What that part is depends on the payment's flow:
///
/// | flow | [`execute`](Self::execute) | [`reverse`](Self::reverse) |
/// |---|---|---|
/// | transfer | capture a charge of the amount | refund the charge |
/// | top-up | charge the funding instrument | refund the charge |
/// | payout | pay the amount to the destination | cancel the payout |
///
/// Both calls are idempotent per payment id, so retries are safe.
#[async_trait]
pub trait PaymentProcessor: Send + Sync {
    /// Does the payment's outside part; doing the same payment again answers the same
    /// reference (the charge's or the payout's id).
    async fn execute(&self, request: &PaymentRequest) -> Result<ChargeId, ProcessorError>;
    /// Undoes it or, when nothing was done, voids the payment id so that an execution arriving
    /// late is refused. Idempotent. Never [`ProcessorError::Declined`]: a refusal to undo is
    /// [`ProcessorError::Refused`].
    async fn reverse(&self, request: &PaymentRequest) -> Result<(), ProcessorError>;
}

/// Checks a requested payment's proof of consent ([`crate::consent`]): the owner it speaks
/// for, if it holds now. Pure: the keys it checks with are given when it is built.
pub trait ConsentVerifier: Send + Sync {
    fn verify(&self, proof: &ConsentProof) -> Result<Owner, ConsentRefusal>;
}

/// A notification was not delivered. Grouped by what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The channel is unavailable or throttling: deliver again later.
    #[error("notification channel temporarily unavailable: {0}")]
    Transient(String),
    /// The channel refuses this notification for good (a closed inbox, a bad address).
    #[error("notification refused: {0}")]
    Permanent(String),
}

/// Whether a notification went out now or had gone out before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    SentBefore,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::SentBefore => "sent before",
        }
    }
}

/// Tells a wallet's holder what happened (an in-app inbox, e-mail, push).
///
/// A notifier need not be idempotent itself: the notifications function then delivers each
/// notification once per event and recipient through `lambda_toolkit::idempotency`, which
/// costs three writes of its own (a claim, the delivery, the record). One that is idempotent
/// by itself (a write keyed by the notification and conditional on it being new, as the
/// in-app inbox's) says so with [`Notifier::delivers_once`], and is called directly: its one
/// write is the record.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers `notification`: [`Delivery::Sent`], or [`Delivery::SentBefore`] when this
    /// notifier knows it delivered it already (only one that [`delivers_once`] can know).
    ///
    /// [`delivers_once`]: Notifier::delivers_once
    async fn notify(
        &self,
        notification: &crate::notification::Notification,
    ) -> Result<Delivery, NotifyError>;

    /// Whether this notifier delivers each notification (an event's, to a recipient) once
    /// however often it is given it. False unless it says so: e-mail would send again.
    fn delivers_once(&self) -> bool {
        false
    }
}

/// How appending an event to the audit trail went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended to every stream it is about, at these versions.
    Appended(Vec<(StreamId, u64)>),
    /// An event with this `event_id` is in the store already: nothing was appended.
    Duplicate,
}

/// A page of [`EventStore::all_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<RecordedEvent>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<EventPageToken>,
}

/// Where a page of [`EventStore::all_events`] starts: opaque, only good for the store that
/// gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPageToken(pub String);

/// The audit trail: an append-only store of every domain event, in one stream per aggregate
/// (`payment#<id>`, `wallet#<id>`, see [`crate::history`]), each numbered 1, 2, 3, ...
/// in arrival order, with snapshots of the aggregates. A hot wallet's stream is spread over
/// parts ([`StreamId::WalletPart`]) once appends to it contend.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `event` to every stream it is about, all or nothing, at each stream's next
    /// version (with a snapshot where one is due), once per `event_id`; a wallet's event to one
    /// of its stream's parts. A concurrent append to the same stream is retried a few times,
    /// then [`StoreError::Contended`].
    async fn append(
        &self,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome, StoreError>;
    /// The events of `stream` after version `after`, by version.
    async fn stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StreamEvent>, StoreError>;
    /// How many parts `wallet`'s stream is spread over: 1 for a wallet whose events all go to
    /// its own stream, more for one whose appends contended ([`StreamId::WalletPart`]). A reader
    /// of a wallet's events reads parts 0 to this, less one. Only ever grows.
    async fn wallet_parts(&self, wallet: &WalletId) -> Result<u16, StoreError>;
    /// The latest snapshot of `stream`, if it has one.
    async fn latest_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<AggregateState>, StoreError>;
    /// Every event in the store, each once (not once per stream), a page at a time: start with
    /// `None`, then pass each page's `next` until it is `None`. A page reads at most
    /// `max_items` of the store's items (events among them; a store may read fewer). The order
    /// is the store's own (DynamoDB's scan order: no time order), so a consumer must not rely
    /// on it; a page may be short, or even empty, with a `next`.
    async fn all_events(
        &self,
        page: Option<&EventPageToken>,
        max_items: usize,
    ) -> Result<EventPage, StoreError>;
    /// Where paging resumes right after `event`, an event of one of this store's pages: for a
    /// consumer that stops part-way through a page.
    fn resume_after(&self, event: &RecordedEvent) -> EventPageToken;
}

/// Writes the read models (CQRS): one conditional write per item, so a duplicate or an older
/// event changes nothing ([`crate::read_models`]).
#[async_trait]
pub trait ReadModelWriter: Send + Sync {
    async fn apply(
        &self,
        change: &crate::read_models::ReadModelChange,
    ) -> Result<crate::read_models::Applied, StoreError>;
}

/// Reads the read models: a wallet's lists, a page at a time, newest first.
#[async_trait]
pub trait ReadModelReader: Send + Sync {
    async fn transactions(
        &self,
        wallet: &WalletId,
        page: &crate::read_models::PageRequest,
    ) -> Result<
        crate::read_models::Page<crate::read_models::Revised<crate::read_models::TransactionEntry>>,
        StoreError,
    >;
    async fn payments(
        &self,
        wallet: &WalletId,
        page: &crate::read_models::PageRequest,
    ) -> Result<
        crate::read_models::Page<crate::read_models::Revised<crate::read_models::WalletPayment>>,
        StoreError,
    >;
}
