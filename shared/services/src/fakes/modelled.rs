//! The in-memory stores behind DynamoDB's item model ([`super::capacity`]): each write takes
//! the items its DynamoDB adapter's write would, is retried as the adapter retries it
//! ([`ContentionRetry::STORE`]), and does what the adapter does when writers keep colliding on
//! one wallet (spreads its credits, or its stream). What the hot wallet simulation
//! ([`super::load`]) runs the saga and the audit trail against.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use paysaga_domain::history::StreamId;
use paysaga_domain::ports::{
    AppendOutcome, BeginPayment, Contention, Ownership, PaymentHistory, PaymentLog,
    PaymentRequests, RecordStep, StoreError, WalletOwners,
};
use paysaga_domain::{
    DomainEvent, IdempotencyKey, PaymentId, PaymentLogEntry, PaymentRequest, RequestChannel,
    StepPlan, WalletChange, WalletId,
};

use super::capacity::{ItemModel, Refusal};
use super::{InMemoryEventStore, InMemoryLedger};
use crate::contention::{self, ContentionRetry};

/// The in-memory ledger with DynamoDB's limits on each item it writes: a step's transaction
/// takes its log entry's item and every wallet item it changes, retried as the DynamoDB
/// adapter retries it ([`ContentionRetry::STORE`]), then is applied; a step whose only change
/// is a hold ([`StepPlan::hold_alone`]) writes the wallet's item, then the log entry, as two
/// plain writes, as the adapter does.
pub struct ModelledLedger {
    ledger: InMemoryLedger,
    model: Arc<ItemModel>,
    credits: Credits,
}

/// Where a wallet's credits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credits {
    /// Always on the wallet's own item: the design before credit shards, kept as the
    /// simulation's baseline.
    OnTheWalletsItem,
    /// On the wallet's own item until they contend there, then on shards: the DynamoDB
    /// adapter's design (`paysaga_aws::dynamodb::credit_shards`).
    SpreadWhenHot,
}

impl std::fmt::Debug for ModelledLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelledLedger")
            .field("model", &self.model.counts())
            .finish_non_exhaustive()
    }
}

impl ModelledLedger {
    /// `ledger` behind `model` (which other modelled stores may share: their items are
    /// another table's).
    pub fn new(ledger: InMemoryLedger, model: Arc<ItemModel>, credits: Credits) -> Self {
        Self {
            ledger,
            model,
            credits,
        }
    }

    pub fn ledger(&self) -> &InMemoryLedger {
        &self.ledger
    }

    pub fn model(&self) -> &ItemModel {
        &self.model
    }

    /// The items a step writes, as the tables key them: its log entry, and each wallet it
    /// changes (a currency check is a read, which no transaction holds up); a credit to a
    /// wallet whose credits are spread writes one of its shards, at random, as the DynamoDB
    /// adapter does. With each item, the wallet it credits on the wallet's own item, if any.
    fn items_of(&self, plan: &StepPlan) -> Vec<(String, Option<WalletId>)> {
        let entry = &plan.entry;
        let mut items = vec![(log_item(&entry.payment_id, entry.version), None)];
        for effect in plan.wallet_effects() {
            let wallet = &effect.wallet_id;
            let item = match effect.change {
                WalletChange::AcceptsCurrency(_) => continue,
                WalletChange::Credit(_) => match self.ledger.credit_shards(wallet) {
                    0 => (format!("wallets/{wallet}"), Some(wallet.clone())),
                    shards => (
                        format!("wallets/{wallet}#credits#{}", fastrand::u16(..shards)),
                        None,
                    ),
                },
                _ => (format!("wallets/{wallet}"), None),
            };
            items.push(item);
        }
        items
    }
}

fn log_item(payment_id: &PaymentId, version: u32) -> String {
    format!("payments/{payment_id}/{version}")
}

/// A write the model refused through every attempt, as the DynamoDB adapter reports it.
fn refused(refusal: Refusal, attempts: u32) -> StoreError {
    let contention = match refusal {
        Refusal::Conflict { .. } => Contention::Conflict,
        Refusal::Throttled { .. } => Contention::Throttled,
    };
    StoreError::Contended(
        contention,
        format!("cancelled {attempts} times, last: {refusal:?}"),
    )
}

#[async_trait]
impl PaymentHistory for ModelledLedger {
    async fn history(&self, id: &PaymentId) -> Result<Vec<PaymentLogEntry>, StoreError> {
        self.ledger.history(id).await
    }
}

#[async_trait]
impl PaymentRequests for ModelledLedger {
    async fn begin(
        &self,
        request: &PaymentRequest,
        channel: RequestChannel,
        idempotency_key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<BeginPayment, StoreError> {
        self.model
            .write(&log_item(request.payment_id(), 1))
            .map_err(|refusal| refused(refusal, 1))?;
        self.ledger
            .begin(request, channel, idempotency_key, now)
            .await
    }
}

#[async_trait]
impl PaymentLog for ModelledLedger {
    async fn record(&self, plan: &StepPlan) -> Result<RecordStep, StoreError> {
        // As the DynamoDB adapter does: each attempt builds its items (a credit to a spread
        // wallet picks a shard), and a credit that keeps losing on its wallet's own item
        // spreads the wallet's credits.
        if let Some(held) = plan.hold_alone() {
            // A hold alone is two plain writes: the wallet's item (again while a transaction
            // holds it, as the adapter's `write_hold`), then the log entry.
            let wallet = format!("wallets/{}", held.wallet_id);
            let mut attempt = 0;
            while let Err(refusal) = self.model.write(&wallet) {
                attempt += 1;
                match ContentionRetry::STORE.backoff_after(attempt) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(refused(refusal, attempt)),
                }
            }
            let entry = log_item(&plan.entry.payment_id, plan.entry.version);
            self.model
                .write(&entry)
                .map_err(|refusal| refused(refusal, 1))?;
            return self.ledger.record(plan).await;
        }
        let (mut attempt, mut lost_on_credited) = (0, 0);
        loop {
            let (items, credited): (Vec<String>, Vec<Option<WalletId>>) =
                self.items_of(plan).into_iter().unzip();
            if items.len() == 1 {
                // A log entry alone is a PutItem of an item nobody else writes.
                self.model
                    .write(&items[0])
                    .map_err(|refusal| refused(refusal, 1))?;
                return self.ledger.record(plan).await;
            }
            let refusal = match self.model.transact(&items).await {
                Ok(()) => return self.ledger.record(plan).await,
                Err(refusal) => refusal,
            };
            attempt += 1;
            let (Refusal::Conflict { index } | Refusal::Throttled { index }) = refusal;
            if let Some(hot) = credited[index]
                .as_ref()
                .filter(|_| self.credits == Credits::SpreadWhenHot)
            {
                lost_on_credited += 1;
                if lost_on_credited == contention::SPREAD_AFTER {
                    self.ledger.spread_credits(hot);
                    continue;
                }
            }
            match ContentionRetry::STORE.backoff_after(attempt) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(refused(refusal, attempt)),
            }
        }
    }
}

#[async_trait]
impl WalletOwners for ModelledLedger {
    async fn ownership(&self, id: &WalletId) -> Result<Ownership, StoreError> {
        self.ledger.ownership(id).await
    }
}

/// Where a wallet's events go in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// Always its one stream: the design before stream parts, kept as the simulation's
    /// baseline.
    OneStream,
    /// Its one stream until appends to it contend, then parts of it
    /// ([`StreamId::WalletPart`]): the DynamoDB adapter's design.
    SpreadWhenHot,
}

/// How long an append's read of one stream's head (a consistent `Query` of its last item)
/// takes: the time between an append learning the next version and taking it, when another
/// append can take it first. DynamoDB documents no figure; the model's is a typical read's.
pub const HEAD_READ: Duration = Duration::from_millis(5);

/// The in-memory event store with DynamoDB's limits on each item an append writes: it reads
/// each stream's head ([`HEAD_READ`] each, one after the other), then writes the event's
/// claim (its entry in its payment's stream for a payment's event, a marker for any other) and
/// an entry at head + 1 of each other stream, each a plain conditional put, as the adapter
/// does; an entry whose version another append took meanwhile fails its condition, and the
/// append reads the heads again and writes the claim's new positions and the entries that
/// lost. Retried as the adapter retries ([`ContentionRetry::STORE`]); an
/// append that keeps losing on a wallet's stream spreads it ([`Streams::SpreadWhenHot`]). One
/// process stands for all the audit trail's instances here, so every append knows a stream is
/// spread as soon as one spread it (an instance of the adapter learns it at its first loss).
pub struct ModelledEventStore {
    store: InMemoryEventStore,
    model: Arc<ItemModel>,
    streams: Streams,
}

impl std::fmt::Debug for ModelledEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelledEventStore")
            .field("model", &self.model.counts())
            .finish_non_exhaustive()
    }
}

impl ModelledEventStore {
    pub fn new(store: InMemoryEventStore, model: Arc<ItemModel>, streams: Streams) -> Self {
        Self {
            store,
            model,
            streams,
        }
    }

    pub fn store(&self) -> &InMemoryEventStore {
        &self.store
    }

    /// Appends `event` as the DynamoDB adapter does, to the model's limits.
    pub async fn append(
        &self,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome, StoreError> {
        let (mut attempt, mut losses) = (0, HashMap::<WalletId, u32>::new());
        // The streams whose entries the next attempt writes: all of them, until the entries
        // were written once and some lost their versions.
        let (mut every_entry, mut lost_on) = (true, Vec::<StreamId>::new());
        loop {
            attempt += 1;
            let heads = self.store.heads_for(event);
            tokio::time::sleep(HEAD_READ).await;
            // The claim (or, after a loss, its positions moved), then each entry: the first
            // attempt's all of them, a later one's those of the streams it lost on. A payment's
            // event is claimed by its entry in the payment's stream, any other by a marker.
            let entry = |(stream, head): &(StreamId, u64)| format!("events/{stream}/{}", head + 1);
            let mut items = match heads.first() {
                Some(payment @ (StreamId::Payment(_), _)) => vec![entry(payment)],
                _ => vec![format!("events/event#{}", event.event_id())],
            };
            items.extend(
                heads
                    .iter()
                    .filter(|(stream, _)| !matches!(stream, StreamId::Payment(_)))
                    .filter(|(stream, _)| every_entry || lost_on.contains(stream))
                    .map(entry),
            );
            // The streams an attempt lost on: by the model (an item throttled), or by its
            // condition (the version taken by an append since the heads were read).
            lost_on = match items.iter().try_for_each(|item| self.model.write(item)) {
                Err(Refusal::Conflict { .. } | Refusal::Throttled { .. }) => Vec::new(),
                Ok(()) => match self.store.append_at(event, &heads, now) {
                    Ok(outcome) => return Ok(outcome),
                    Err(moved) => {
                        every_entry = false;
                        moved
                    }
                },
            };
            // As the adapter does: a wallet's stream an append keeps losing on is spread.
            for wallet in lost_on.iter().filter_map(StreamId::wallet) {
                let lost = losses.entry(wallet.clone()).or_default();
                *lost += 1;
                if *lost == contention::SPREAD_AFTER && self.streams == Streams::SpreadWhenHot {
                    self.store.spread_wallet_stream(wallet);
                }
            }
            match ContentionRetry::STORE.backoff_after(attempt) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => {
                    return Err(StoreError::Contended(
                        Contention::Conflict,
                        format!("event {}: lost {attempt} times", event.event_id()),
                    ));
                }
            }
        }
    }
}
