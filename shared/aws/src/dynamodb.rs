//! Wallets, payment logs and deposits' idempotency keys in DynamoDB. (A payment's idempotency
//! key needs no record of its own: it names the payment, see [`PaymentLog::begin`].)
//!
//! A saga step that touches wallets is one `TransactWriteItems`: the conditional put of the log
//! entry's version and the conditional updates of the wallets it touches. A step that touches
//! none (charge, refund, fail, ...) is a plain conditional `PutItem` of its log entry, with the
//! same condition: a transactional write costs twice the write units of a plain one, and one
//! item needs no transaction to be all or nothing. A duplicate delivery finds the version taken
//! either way; a wallet that cannot take its change cancels the whole transaction, and the
//! wallet is then read to tell the domain which rule refused it. The payee check of the reserve
//! step is a read before the transaction rather than a condition inside it (see `record`).
//!
//! A wallet whose item cannot take the credits arriving in it (a merchant paid by many payers at
//! once) has them spread over items of its own: see [`credit_shards`].

mod credit_shards;
mod holds;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, ConditionCheck, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use self::credit_shards::HotWallets;
use crate::outbox::outbox_put;
use lambda_toolkit::aws::dynamodb::{self, SdkFailure};
pub(crate) use lambda_toolkit::aws::dynamodb::{Item, is_conditional_check_failure, n, s};
use paysaga_domain::money::MAX_MINOR_UNITS;
use paysaga_domain::ports::{
    BeginPayment, Contention, Deposit, DepositOutcome, OpenWallet, Ownership, PaymentHistory,
    PaymentLog, PaymentRequests, RecordStep, StoreError, WalletDeposits, WalletDirectory,
    WalletOwners, WalletStore,
};
use paysaga_domain::{
    Currency, DepositId, DomainEvent, IdempotencyKey, Money, Owner, Payment, PaymentId,
    PaymentLogEntry, PaymentRequest, PaymentStep, RequestChannel, StepPlan, Wallet, WalletChange,
    WalletEffect, WalletId, WalletRejection,
};
use paysaga_services::contention::{self, ContentionRetry};

/// The wallets table's index of wallets by owner (`owner`, then `wallet_id`; keys only, so
/// that a balance change writes nothing to it): [`WalletDirectory::wallets_owned_by`].
pub const WALLETS_BY_OWNER_INDEX: &str = "wallets-by-owner";

/// How long a deposit's idempotency key is remembered (the table's TTL removes it afterwards).
pub const IDEMPOTENCY_KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

/// How many times a step folds a wallet's credit shards in for a debit, before it reports the
/// wallet as changing under it (another debit taking the folded funds each time).
const MAX_FOLDS: u32 = 3;

/// The condition of every log entry's write: its version (the item's key) is not taken.
const LOG_ENTRY_IS_NEW: &str = "attribute_not_exists(payment_id)";

/// The names of the tables, as the template creates them.
#[derive(Debug, Clone)]
pub struct TableNames {
    pub wallets: String,
    pub payments: String,
    pub idempotency: String,
    /// Where a deposit's announcement is written with it ([`crate::outbox`]); only a function
    /// that makes deposits needs it.
    pub outbox: Option<String>,
}

impl TableNames {
    /// The payments table alone, for a function that only reads payment logs (the event
    /// relay): any call on another table fails.
    pub fn payment_logs_only(payments: String) -> Self {
        Self::payment_logs_and_holds(payments, String::new())
    }

    /// The payments table, and the wallets table for the holds of payments that failed before
    /// reserving ([`PaymentLog::lift_stray_hold`]): what the reconciler writes.
    pub fn payment_logs_and_holds(payments: String, wallets: String) -> Self {
        Self {
            wallets,
            payments,
            idempotency: String::new(),
            outbox: None,
        }
    }
}

/// The DynamoDB adapter of [`WalletStore`] and [`PaymentLog`].
#[derive(Debug, Clone)]
pub struct DynamoDbLedger {
    client: Client,
    tables: TableNames,
    /// The wallets seen with their credits spread, where a credit to them goes to a shard.
    hot: HotWallets,
    /// Whether [`PaymentHistory::history`] reads strongly consistent (the default).
    consistent_history: bool,
}

#[derive(Serialize, Deserialize)]
struct WalletRecord {
    wallet_id: WalletId,
    currency: Currency,
    available: u64,
    reserved: u64,
    created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<Owner>,
    /// How many shards its credits are spread over ([`credit_shards`]); absent: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    credit_shards: u16,
    /// Per shard, how much of its counter `available` holds already.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    folded: Vec<u64>,
}

fn is_zero(shards: &u16) -> bool {
    *shards == 0
}

#[derive(Serialize, Deserialize)]
struct DepositKeyRecord {
    idempotency_key: String,
    deposit_id: DepositId,
    wallet_id: WalletId,
    amount: Money,
    expires_at: i64,
}

/// What became of a transaction.
enum Transaction {
    Committed,
    /// Cancelled because the condition of the item at this index failed.
    ConditionFailed(usize),
}

/// What became of one attempt at a transaction.
enum Attempt {
    Done(Transaction),
    /// Cancelled for contention, for these reasons (one per item).
    Contended(Vec<CancellationReason>),
}

impl DynamoDbLedger {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self {
            client,
            tables,
            hot: HotWallets::default(),
            consistent_history: true,
        }
    }

    /// This ledger, reading payments' logs eventually consistent (half the read units): for a
    /// reader that comes long after the writes, to which a read a moment stale only means
    /// looking again (the reconciler, at a payment's deadline). The saga's own reads stay
    /// consistent: a step is planned from the log as it is.
    pub fn reading_history_eventually(mut self) -> Self {
        self.consistent_history = false;
        self
    }

    pub fn from_config(config: &aws_config::SdkConfig, tables: TableNames) -> Self {
        Self::new(lambda_toolkit::aws::calls::dynamodb(config), tables)
    }

    fn deposit_key(wallet_id: &WalletId, key: &IdempotencyKey) -> String {
        format!("deposit#{wallet_id}#{}", key.as_str())
    }

    async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        Ok(output.item)
    }

    /// Runs a transaction, retrying ([`ContentionRetry::STORE`]) while DynamoDB cancels it
    /// for a conflict with a concurrent transaction on the same item (a busy wallet) or for
    /// throttling.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Transaction, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(items.clone()).await? {
                Attempt::Done(done) => return Ok(done),
                Attempt::Contended(reasons) => {
                    let wait = ContentionRetry::STORE.backoff_after(attempt);
                    let Some(wait) = wait else {
                        return Err(contended(attempt, &reasons));
                    };
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One attempt at a transaction, with its own [`request_token`], so the SDK's retries of
    /// an attempt whose answer was lost apply it once.
    async fn attempt(&self, items: Vec<TransactWriteItem>) -> Result<Attempt, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request_token())
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Attempt::Done(Transaction::Committed)),
            Err(error) => error,
        };
        let reasons = match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancelled.cancellation_reasons().to_vec()
            }
            _ => return Err(sdk_error("TransactWriteItems", error)),
        };
        if let Some(index) = reasons.iter().position(is_condition_failure) {
            return Ok(Attempt::Done(Transaction::ConditionFailed(index)));
        }
        if contention_of(&reasons).is_none() {
            return Err(StoreError::Transient(format!(
                "TransactWriteItems cancelled: {}",
                describe(&reasons)
            )));
        }
        Ok(Attempt::Contended(reasons))
    }

    /// Writes `entry` alone, with the condition [`Self::log_entry_put`] puts on it in a
    /// transaction. `false` when the version exists already (nothing was written).
    async fn put_log_entry(&self, entry: &PaymentLogEntry) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.payments)
            .set_item(Some(traced(to_item(entry)?)))
            .condition_expression(LOG_ENTRY_IS_NEW)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_check_failure(&error) => Ok(false),
            Err(error) => Err(sdk_error("PutItem", error)),
        }
    }

    fn log_entry_put(&self, entry: &PaymentLogEntry) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.payments)
            .set_item(Some(traced(to_item(entry)?)))
            .condition_expression(LOG_ENTRY_IS_NEW)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The write of `effect` in a step's transaction and, for a credit to the wallet's own
    /// item, the wallet (whose credits may need spreading: see `record`). A debit of reserved
    /// funds pays out `payment`'s hold ([`holds`]), and needs it.
    fn wallet_write<'e>(
        &self,
        effect: &'e WalletEffect,
        payment: Option<&PaymentId>,
    ) -> Result<(TransactWriteItem, Option<&'e WalletId>), StoreError> {
        let key = wallet_key(&effect.wallet_id);
        let guard = "attribute_exists(wallet_id) AND currency = :currency";
        let (update, condition, amount) = match effect.change {
            // `record` reads the wallet instead (see there); this keeps every plan writable as
            // one transaction.
            WalletChange::AcceptsCurrency(currency) => {
                let check = ConditionCheck::builder()
                    .table_name(&self.tables.wallets)
                    .set_key(Some(key))
                    .condition_expression(guard)
                    .expression_attribute_values(":currency", s(currency.code()))
                    .build()
                    .map_err(build_error)?;
                return Ok((
                    TransactWriteItem::builder().condition_check(check).build(),
                    None,
                ));
            }
            WalletChange::Reserve(amount) => (
                "SET available = available - :amount, reserved = reserved + :amount",
                "available >= :amount AND reserved <= :headroom",
                amount,
            ),
            WalletChange::DebitReserved(amount) => (
                "REMOVE #hold SET reserved = reserved - :amount",
                "#hold = :amount AND reserved >= :amount",
                amount,
            ),
            WalletChange::ReleaseReserved(amount) => (
                "SET reserved = reserved - :amount, available = available + :amount",
                "reserved >= :amount AND available <= :headroom",
                amount,
            ),
            WalletChange::Credit(amount) => {
                if let Some(k) = self.hot.shard_for(&effect.wallet_id, amount) {
                    return Ok((self.shard_credit(&effect.wallet_id, k, amount)?, None));
                }
                (
                    "SET available = available + :amount",
                    "available <= :headroom",
                    amount,
                )
            }
        };
        let mut update = Update::builder()
            .table_name(&self.tables.wallets)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(format!("{guard} AND {condition}"))
            .expression_attribute_values(":currency", s(amount.currency().code()))
            .expression_attribute_values(":amount", n(amount.minor_units()));
        if condition.contains("#hold") {
            let payment = payment.ok_or_else(|| {
                StoreError::Permanent(format!(
                    "a debit of wallet {}'s reserved funds names no payment",
                    effect.wallet_id
                ))
            })?;
            update = update.expression_attribute_names("#hold", holds::hold_attribute(payment));
        }
        if condition.contains(":headroom") {
            // Room left below the cap on available and reserved funds (see `Wallet::apply`).
            let headroom = MAX_MINOR_UNITS - amount.minor_units();
            update = update.expression_attribute_values(":headroom", n(headroom));
        }
        let update = update.build().map_err(build_error)?;
        let credited =
            matches!(effect.change, WalletChange::Credit(_)).then_some(&effect.wallet_id);
        Ok((
            TransactWriteItem::builder().update(update).build(),
            credited,
        ))
    }

    /// A wallet as it is now: its item (a consistent read) and, for a wallet whose credits are
    /// spread, its shards' credits not folded in yet ([`credit_shards`]).
    async fn read_wallet(&self, id: &WalletId) -> Result<Option<Wallet>, StoreError> {
        match self.get(&self.tables.wallets, wallet_key(id)).await? {
            Some(item) => self.wallet_of_item(id, item).await.map(Some),
            None => Ok(None),
        }
    }

    /// The wallet its item (read consistently) holds, with its shards' credits.
    async fn wallet_of_item(&self, id: &WalletId, item: Item) -> Result<Wallet, StoreError> {
        let record: WalletRecord = from_item(item)?;
        let unfolded = match record.credit_shards {
            0 => 0,
            shards => self
                .shard_counters(id, shards)
                .await?
                .unfolded(id, &record)?,
        };
        let wallet = wallet_of(id, record, unfolded)?;
        self.hot.learn(&wallet);
        Ok(wallet)
    }

    /// Why `effect` was refused, from the wallet as it is now.
    async fn refusal(&self, effect: &WalletEffect) -> Result<RecordStep, StoreError> {
        let wallet = self.read_wallet(&effect.wallet_id).await?;
        match effect.refusal(wallet.as_ref()) {
            Some(refusal) => Ok(RecordStep::Refused(refusal)),
            // The wallet changed between the transaction and this read: try again later.
            None => Err(StoreError::Transient(format!(
                "wallet {} refused a change it now accepts",
                effect.wallet_id
            ))),
        }
    }
}

#[async_trait]
impl WalletOwners for DynamoDbLedger {
    /// An eventually consistent read of the owner alone (half a read unit); only when that
    /// finds no wallet, a consistent one, so a wallet opened a moment ago is not missed.
    async fn ownership(&self, id: &WalletId) -> Result<Ownership, StoreError> {
        #[derive(Deserialize)]
        struct OwnerRecord {
            #[serde(default)]
            owner: Option<Owner>,
        }
        for consistent in [false, true] {
            let output = self
                .client
                .get_item()
                .table_name(&self.tables.wallets)
                .set_key(Some(wallet_key(id)))
                .projection_expression("wallet_id, #owner")
                .expression_attribute_names("#owner", "owner")
                .consistent_read(consistent)
                .send()
                .await
                .map_err(|error| sdk_error("GetItem", error))?;
            if let Some(item) = output.item {
                let record: OwnerRecord = from_item(item)?;
                return Ok(match record.owner {
                    Some(owner) => Ownership::Owned(owner),
                    None => Ownership::Unowned,
                });
            }
        }
        Ok(Ownership::NoSuchWallet)
    }
}

#[async_trait]
impl WalletDirectory for DynamoDbLedger {
    /// A query of [`WALLETS_BY_OWNER_INDEX`], every page (an index is read eventually
    /// consistently: a wallet opened a moment ago may be missing).
    async fn wallets_owned_by(&self, owner: &Owner) -> Result<Vec<WalletId>, StoreError> {
        let pages = self
            .client
            .query()
            .table_name(&self.tables.wallets)
            .index_name(WALLETS_BY_OWNER_INDEX)
            .key_condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .into_paginator()
            .items()
            .send();
        let items: Vec<Item> = pages
            .collect::<Result<_, _>>()
            .await
            .map_err(|error| sdk_error("Query", error))?;
        items
            .into_iter()
            .map(|item| {
                #[derive(Deserialize)]
                struct Key {
                    wallet_id: WalletId,
                }
                from_item::<Key>(item).map(|key| key.wallet_id)
            })
            .collect()
    }

    /// One consistent `BatchGetItem` of the wallets' items (100 a call); a wallet whose
    /// credits are spread then reads its shards, as [`WalletStore::wallet`] does.
    async fn wallets(&self, ids: &[WalletId]) -> Result<Vec<Wallet>, StoreError> {
        let distinct: std::collections::BTreeSet<&WalletId> = ids.iter().collect();
        let keys = distinct.into_iter().map(wallet_key).collect();
        let items = get_batch(&self.client, &self.tables.wallets, keys, None).await?;
        let reads = items.into_iter().map(|item| async move {
            let record: WalletRecord = from_item(item)?;
            let id = record.wallet_id.clone();
            let unfolded = match record.credit_shards {
                0 => 0,
                shards => self
                    .shard_counters(&id, shards)
                    .await?
                    .unfolded(&id, &record)?,
            };
            let wallet = wallet_of(&id, record, unfolded)?;
            self.hot.learn(&wallet);
            Ok::<_, StoreError>(wallet)
        });
        futures::future::try_join_all(reads).await
    }
}

#[async_trait]
impl WalletStore for DynamoDbLedger {
    async fn open_wallet(&self, wallet: &Wallet) -> Result<OpenWallet, StoreError> {
        let record = WalletRecord {
            wallet_id: wallet.id().clone(),
            currency: wallet.currency(),
            available: wallet.available().minor_units(),
            reserved: wallet.reserved().minor_units(),
            created_at: wallet.created_at(),
            owner: wallet.owner().cloned(),
            credit_shards: wallet.credit_shards(),
            folded: vec![0; usize::from(wallet.credit_shards())],
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.wallets)
            .set_item(Some(to_item(&record)?))
            .condition_expression("attribute_not_exists(wallet_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(OpenWallet::Opened(wallet.clone())),
            Err(error) if is_conditional_check_failure(&error) => {
                let existing = self.wallet(wallet.id()).await?.ok_or_else(|| {
                    StoreError::Transient(format!(
                        "wallet {} exists but cannot be read",
                        wallet.id()
                    ))
                })?;
                Ok(OpenWallet::AlreadyOpen(existing))
            }
            Err(error) => Err(sdk_error("PutItem", error)),
        }
    }

    async fn wallet(&self, id: &WalletId) -> Result<Option<Wallet>, StoreError> {
        self.read_wallet(id).await
    }
}

#[async_trait]
impl WalletDeposits for DynamoDbLedger {
    async fn deposit(
        &self,
        deposit: &Deposit,
        now: DateTime<Utc>,
    ) -> Result<DepositOutcome, StoreError> {
        // Money enters a wallet only by a transfer: from the outside world's adjustments
        // account (no item: its balance is the sum of the deposits) into the wallet.
        let transfer = deposit
            .transfer()
            .map_err(|error| StoreError::Permanent(format!("deposit: {error}")))?;
        // Its one wallet side: the credit.
        let credit = transfer
            .wallet_effects()
            .last()
            .ok_or_else(|| StoreError::Permanent("a deposit credits a wallet".to_owned()))?;
        let outbox = self.tables.outbox.as_deref().ok_or_else(|| {
            StoreError::Permanent("this function has no outbox to announce deposits".to_owned())
        })?;
        let mut items = Vec::with_capacity(3);
        let idempotency_key = deposit
            .idempotency_key
            .as_ref()
            .map(|key| Self::deposit_key(&deposit.wallet_id, key));
        if let Some(key) = &idempotency_key {
            let record = DepositKeyRecord {
                idempotency_key: key.clone(),
                deposit_id: deposit.deposit_id.clone(),
                wallet_id: deposit.wallet_id.clone(),
                amount: deposit.amount,
                expires_at: (now + IDEMPOTENCY_KEY_LIFETIME).timestamp(),
            };
            items.push(self.idempotency_put(&record)?);
        }
        items.push(self.wallet_write(&credit, None)?.0);
        // Its announcement, true once the credit is: written with it, published by the relay.
        let announcement = DomainEvent::funds_deposited(deposit.announcement(), now);
        items.push(outbox_put(outbox, &announcement, now)?);
        match (self.transact(items).await?, &idempotency_key) {
            (Transaction::Committed, _) => Ok(DepositOutcome::Deposited),
            (Transaction::ConditionFailed(0), Some(key)) => {
                let earlier: DepositKeyRecord = self.idempotency_record(key).await?;
                Ok(if earlier.amount == deposit.amount {
                    DepositOutcome::Replayed {
                        deposit_id: earlier.deposit_id,
                    }
                } else {
                    DepositOutcome::KeyReused
                })
            }
            (Transaction::ConditionFailed(_), _) => match self.refusal(&credit).await? {
                RecordStep::Refused(WalletRejection::Business(reason)) => {
                    Ok(DepositOutcome::Refused(reason))
                }
                other => Err(StoreError::Permanent(format!("deposit refused: {other:?}"))),
            },
        }
    }
}

impl DynamoDbLedger {
    fn idempotency_put<T: Serialize>(&self, record: &T) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.idempotency)
            .set_item(Some(to_item(record)?))
            .condition_expression("attribute_not_exists(idempotency_key)")
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn idempotency_record<T: for<'de> Deserialize<'de>>(
        &self,
        key: &str,
    ) -> Result<T, StoreError> {
        let item_key = HashMap::from([("idempotency_key".to_owned(), s(key))]);
        let item = self
            .get(&self.tables.idempotency, item_key)
            .await?
            .ok_or_else(|| {
                StoreError::Transient("an idempotency key vanished while being checked".to_owned())
            })?;
        from_item(item)
    }
}

#[async_trait]
impl PaymentHistory for DynamoDbLedger {
    async fn history(&self, id: &PaymentId) -> Result<Vec<PaymentLogEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.payments)
                .key_condition_expression("payment_id = :payment_id")
                .expression_attribute_values(":payment_id", s(id.as_str()))
                .consistent_read(self.consistent_history)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|error| sdk_error("Query", error))?;
            for item in output.items.unwrap_or_default() {
                entries.push(from_item(item)?);
            }
            start_key = output.last_evaluated_key;
            if start_key.is_none() {
                return Ok(entries);
            }
        }
    }
}

#[async_trait]
impl PaymentRequests for DynamoDbLedger {
    async fn begin(
        &self,
        request: &PaymentRequest,
        channel: RequestChannel,
        idempotency_key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<BeginPayment, StoreError> {
        // One conditional write, key or not: with a key, the payment id is the key's
        // (`PaymentRequest::submitted`), so the log's version 1 is the key's record too, and
        // it is kept as long as the log. An urgent request's announcement goes in the outbox
        // in the same transaction (`PaymentLogEntry::announced_through_outbox`).
        let entry = PaymentLogEntry::requested_through(request.clone(), channel, now);
        let begun = if entry.announced_through_outbox() {
            self.begin_announced(&entry, now).await?
        } else {
            self.put_log_entry(&entry).await?
        };
        if begun {
            return Ok(BeginPayment::Begun);
        }
        if idempotency_key.is_none() {
            return Ok(BeginPayment::AlreadyExists);
        }
        // The key was used before: what did it ask for?
        let item = self
            .get(
                &self.tables.payments,
                log_entry_key(request.payment_id(), 1),
            )
            .await?
            .ok_or_else(|| {
                StoreError::Transient(format!(
                    "payment {} exists but its request cannot be read",
                    request.payment_id()
                ))
            })?;
        let earlier: PaymentLogEntry = from_item(item)?;
        let PaymentStep::Requested {
            request: earlier, ..
        } = earlier.step
        else {
            return Err(StoreError::Permanent(format!(
                "version 1 of payment {} is not its request",
                request.payment_id()
            )));
        };
        Ok(if earlier.same_terms_as(request) {
            BeginPayment::Replayed(earlier.payment_id().clone())
        } else {
            BeginPayment::KeyReused
        })
    }
}

#[async_trait]
impl PaymentLog for DynamoDbLedger {
    async fn record(&self, plan: &StepPlan) -> Result<RecordStep, StoreError> {
        // A payee check (`AcceptsCurrency`: the wallet exists and holds the currency) is a
        // read before the write, not a ConditionCheck inside the transaction: half a read unit
        // (eventually consistent: `accepting_wallet`) instead of 2 write units. The two are
        // equivalent because wallets are never deleted and never change currency: what the
        // read saw still holds when the transaction commits. A crash between the read and the
        // transaction is harmless (the read wrote nothing; the redelivery reads again), and the
        // transaction's own conditions (the log version, the other wallets' funds) still
        // decide the rest.
        let effects = plan.wallet_effects();
        let (checks, changes): (Vec<&WalletEffect>, Vec<&WalletEffect>) = effects
            .iter()
            .partition(|effect| matches!(effect.change, WalletChange::AcceptsCurrency(_)));
        let mut read = HashMap::new();
        for check in checks {
            let wallet = self.accepting_wallet(&check.wallet_id).await?;
            let refused = check.refusal(wallet.as_ref()).is_some();
            read.insert(check.wallet_id.clone(), wallet);
            if refused {
                return self.refused_step(plan, read).await;
            }
        }
        if changes.is_empty() {
            return Ok(if self.put_log_entry(&plan.entry).await? {
                RecordStep::Recorded
            } else {
                RecordStep::VersionTaken
            });
        }
        // A reservation or its release alone: two plain writes ([`holds`]).
        if let Some(held) = plan.hold_alone() {
            return self.record_hold(plan, held).await;
        }
        // A wallet whose own item keeps refusing credits for contention has its credits spread
        // over shards, and the next attempt credits one; a debit that a spread wallet's own item
        // cannot cover folds the shards' credits in first.
        let (mut attempt, mut lost_on_credited, mut folds) = (0, 0, 0);
        loop {
            let mut items = vec![self.log_entry_put(&plan.entry)?];
            let mut credited_items = vec![None];
            for effect in &changes {
                let (item, credited) = self.wallet_write(effect, Some(&plan.entry.payment_id))?;
                items.push(item);
                credited_items.push(credited);
            }
            let refused = match self.attempt(items).await? {
                Attempt::Done(Transaction::Committed) => return Ok(RecordStep::Recorded),
                Attempt::Done(Transaction::ConditionFailed(0)) => {
                    return Ok(RecordStep::VersionTaken);
                }
                Attempt::Done(Transaction::ConditionFailed(index)) => changes[index - 1],
                Attempt::Contended(reasons) => {
                    attempt += 1;
                    let hot = contended_credits(&reasons, &credited_items);
                    if !hot.is_empty() {
                        lost_on_credited += 1;
                        if lost_on_credited == contention::SPREAD_AFTER {
                            for wallet in hot {
                                self.spread_credits(wallet).await?;
                            }
                            continue;
                        }
                    }
                    match ContentionRetry::STORE.backoff_after(attempt) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => return Err(contended(attempt, &reasons)),
                    }
                    continue;
                }
            };
            let wallet = self.read_wallet(&refused.wallet_id).await?;
            if let Some(refusal) = refused.refusal(wallet.as_ref()) {
                return Ok(RecordStep::Refused(refusal));
            }
            // The wallet accepts the change, counting its shards' credits: fold them into its
            // item and try again.
            let sharded = wallet.is_some_and(|wallet| wallet.credit_shards() > 0);
            if !sharded || folds == MAX_FOLDS {
                return Err(StoreError::Transient(format!(
                    "wallet {} refused a change it now accepts",
                    refused.wallet_id
                )));
            }
            self.fold_credits(&refused.wallet_id).await?;
            folds += 1;
        }
    }

    async fn lift_stray_hold(&self, payment: &Payment) -> Result<bool, StoreError> {
        self.lift_stray(payment).await
    }
}

impl DynamoDbLedger {
    /// Writes `entry`, an urgent request, and its announcement in the outbox in one
    /// transaction: `false` when the version exists already (nothing was written).
    async fn begin_announced(
        &self,
        entry: &PaymentLogEntry,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let outbox = self.tables.outbox.as_deref().ok_or_else(|| {
            StoreError::Permanent(
                "an urgent request is announced through the outbox, and this door has none \
                 (OUTBOX_TABLE)"
                    .to_owned(),
            )
        })?;
        let event = DomainEvent::announced_by(std::slice::from_ref(entry))
            .map_err(|error| StoreError::Permanent(error.to_string()))?
            .ok_or_else(|| {
                StoreError::Permanent(format!(
                    "payment {}: its request announces nothing",
                    entry.payment_id
                ))
            })?;
        let items = vec![self.log_entry_put(entry)?, outbox_put(outbox, &event, now)?];
        match self.transact(items).await? {
            Transaction::Committed => Ok(true),
            Transaction::ConditionFailed(_) => Ok(false),
        }
    }

    /// What recording `plan` answers once a payee check refused it, as the transaction that
    /// used to hold the check answered: `VersionTaken` when another delivery took the version
    /// (the transaction's first condition), otherwise the refusal of the first effect, in the
    /// plan's order, that its wallet refuses now (a payer short of funds before an unknown
    /// payee, as before). Only refused steps pay for these reads. `read` holds the wallets
    /// read already.
    /// The wallet a payee check reads: eventually consistent (half a read unit), since what
    /// it checks never changes once the wallet exists (its currency); only a wallet that read
    /// does not find is read again, strongly consistent, so one opened a moment ago is found.
    /// Its balances may be stale: the check does not look at them.
    async fn accepting_wallet(&self, id: &WalletId) -> Result<Option<Wallet>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.wallets)
            .set_key(Some(wallet_key(id)))
            .consistent_read(false)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        match output.item {
            Some(item) => {
                let wallet = wallet_of(id, from_item(item)?, 0)?;
                self.hot.learn(&wallet);
                Ok(Some(wallet))
            }
            None => self.read_wallet(id).await,
        }
    }

    async fn refused_step(
        &self,
        plan: &StepPlan,
        mut read: HashMap<WalletId, Option<Wallet>>,
    ) -> Result<RecordStep, StoreError> {
        let entry_key = log_entry_key(&plan.entry.payment_id, plan.entry.version);
        if self.get(&self.tables.payments, entry_key).await?.is_some() {
            return Ok(RecordStep::VersionTaken);
        }
        for effect in &plan.wallet_effects() {
            let wallet = match read.get(&effect.wallet_id) {
                Some(wallet) => wallet.clone(),
                None => self.wallet(&effect.wallet_id).await?,
            };
            if let Some(refusal) = effect.refusal(wallet.as_ref()) {
                return Ok(RecordStep::Refused(refusal));
            }
            read.insert(effect.wallet_id.clone(), wallet);
        }
        Err(StoreError::Transient(format!(
            "the wallets of payment {} refused a change they now accept",
            plan.entry.payment_id
        )))
    }
}

/// The wallet an item of the wallets table holds, with `unfolded` credits on its shards.
fn wallet_of(id: &WalletId, record: WalletRecord, unfolded: u64) -> Result<Wallet, StoreError> {
    let available = record.available.checked_add(unfolded);
    let wallet = Wallet::restore(
        record.wallet_id,
        record.currency,
        available.unwrap_or(u64::MAX),
        record.reserved,
        record.created_at,
    )
    .map_err(|error| StoreError::Permanent(format!("wallet {id}: {error}")))?
    .with_credit_shards(record.credit_shards);
    Ok(match record.owner {
        Some(owner) => wallet.owned_by(owner),
        None => wallet,
    })
}

/// The attribute of a log entry or an outbox item that keeps the trace its change was made in
/// ([`lambda_toolkit::trace`]): the event relay publishes the item's event in that trace, so
/// one trace follows a payment across the relay.
pub const TRACE_ATTRIBUTE: &str = "trace_header";

/// `item`, with the current trace, if any, in [`TRACE_ATTRIBUTE`].
pub(crate) fn traced(mut item: Item) -> Item {
    if let Some(trace) = lambda_toolkit::trace::current() {
        item.insert(TRACE_ATTRIBUTE.to_owned(), s(&trace.to_string()));
    }
    item
}

fn wallet_key(id: &WalletId) -> Item {
    HashMap::from([("wallet_id".to_owned(), s(id.as_str()))])
}

fn log_entry_key(id: &PaymentId, version: u32) -> Item {
    HashMap::from([
        ("payment_id".to_owned(), s(id.as_str())),
        ("version".to_owned(), n(u64::from(version))),
    ])
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value)
        .map_err(|error| StoreError::Permanent(format!("cannot encode item: {error}")))
}

pub(crate) fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|error| StoreError::Permanent(format!("cannot decode item: {error}")))
}

pub(crate) fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Permanent(format!("invalid DynamoDB request: {error}"))
}

fn is_condition_failure(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}

/// The wallets credited on their own items (`credited[i]`: item `i`'s, if a credit) whose
/// items a transaction lost on, for contention.
fn contended_credits<'w>(
    reasons: &[CancellationReason],
    credited: &[Option<&'w WalletId>],
) -> Vec<&'w WalletId> {
    reasons
        .iter()
        .zip(credited)
        .filter(|(reason, _)| contention_of(std::slice::from_ref(*reason)).is_some())
        .filter_map(|(_, credited)| *credited)
        .collect()
}

/// A transaction cancelled for contention `attempts` times, as its caller is told.
fn contended(attempts: u32, reasons: &[CancellationReason]) -> StoreError {
    let text = format!(
        "TransactWriteItems cancelled {attempts} times: {}",
        describe(reasons)
    );
    // An attempt is `Contended` only for contention.
    let contention = contention_of(reasons).unwrap_or(Contention::Conflict);
    StoreError::Contended(contention, text)
}

/// Rounds of unprocessed items a batch call retries before reporting a transient failure.
pub(crate) const BATCH_ROUNDS: u32 = 5;

/// The items of `keys` that exist in `table`, read consistently with `BatchGetItem` (100 keys a
/// call), the keys it leaves unprocessed asked again ([`BATCH_ROUNDS`] rounds); `projection`:
/// the attributes to read (every one without). In no particular order.
pub(crate) async fn get_batch(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    projection: Option<&str>,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::new();
    for chunk in keys.chunks(100) {
        let mut wanted = chunk.to_vec();
        for _ in 0..BATCH_ROUNDS {
            if wanted.is_empty() {
                break;
            }
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut wanted)))
                .set_projection_expression(projection.map(str::to_owned))
                .consistent_read(true)
                .build()
                .map_err(build_error)?;
            let got = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|error| sdk_error("BatchGetItem", error))?;
            found.extend(
                got.responses
                    .unwrap_or_default()
                    .remove(table)
                    .unwrap_or_default(),
            );
            wanted = got
                .unprocessed_keys
                .unwrap_or_default()
                .remove(table)
                .map(|keys| keys.keys)
                .unwrap_or_default();
        }
        if !wanted.is_empty() {
            return Err(StoreError::Transient(
                "BatchGetItem: keys left unprocessed".into(),
            ));
        }
    }
    Ok(found)
}

/// The contention a transaction was cancelled for, throttling first (waiting longer helps
/// both); `None` when no reason was contention.
pub(crate) fn contention_of(reasons: &[CancellationReason]) -> Option<Contention> {
    let codes = || reasons.iter().filter_map(CancellationReason::code);
    if codes().any(|code| {
        matches!(
            code,
            "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"
        )
    }) {
        Some(Contention::Throttled)
    } else if codes().any(|code| code == "TransactionConflict") {
        Some(Contention::Conflict)
    } else {
        None
    }
}

fn describe(reasons: &[CancellationReason]) -> String {
    let codes: Vec<&str> = reasons
        .iter()
        .map(|reason| reason.code().unwrap_or("?"))
        .collect();
    codes.join(",")
}

/// Sorts SDK failures by what the caller does next: retry later, or give up.
/// A `TransactWriteItems` call's `ClientRequestToken`: the SDK sends it with each of its
/// retries of the call, so a retry of a transaction that had committed (its answer lost)
/// succeeds without applying it again (DynamoDB keeps a token 10 minutes). A new one for each
/// call: a cancelled transaction applied nothing, and is tried again as a new request.
pub(crate) fn request_token() -> String {
    // 128 random bits, hex: unique, and within the API's 36 characters.
    format!("{:032x}", fastrand::u128(..))
}

pub(crate) fn sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    operation: &str,
    error: SdkError<E>,
) -> StoreError {
    match dynamodb::classify(operation, error) {
        SdkFailure::Transient(text) => StoreError::Transient(text),
        SdkFailure::Permanent(text) => StoreError::Permanent(text),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::Utc;
    use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
    use paysaga_domain::money::MAX_MINOR_UNITS;
    use paysaga_domain::payment::Flow;
    use paysaga_domain::read_models::{PaymentRole, WalletPayment};
    use paysaga_domain::{
        ChargeId, Money, Payment, PaymentId, PaymentLogEntry, PaymentRequest, PaymentStatus,
        PaymentStep, WalletId,
    };

    use super::{Item, from_item, to_item};

    #[test]
    fn a_cancellation_says_which_contention_throttling_first() {
        use aws_sdk_dynamodb::types::CancellationReason;
        use paysaga_domain::ports::Contention;

        let reasons = |codes: &[&str]| -> Vec<CancellationReason> {
            codes
                .iter()
                .map(|code| CancellationReason::builder().code(*code).build())
                .collect()
        };
        let of = |codes: &[&str]| super::contention_of(&reasons(codes));
        assert_eq!(
            of(&["None", "TransactionConflict"]),
            Some(Contention::Conflict)
        );
        assert_eq!(
            of(&["TransactionConflict", "ThrottlingError"]),
            Some(Contention::Throttled)
        );
        assert_eq!(
            of(&["ProvisionedThroughputExceeded"]),
            Some(Contention::Throttled)
        );
        assert_eq!(of(&["None", "ValidationError"]), None);
    }

    #[test]
    fn only_a_credit_that_lost_on_its_wallets_own_item_counts_toward_spreading_it() {
        use aws_sdk_dynamodb::types::CancellationReason;

        let reason = |code: &str| CancellationReason::builder().code(code).build();
        let payee = WalletId::parse("wal_b").unwrap();
        // The log entry, the payer's debit, the payee's credit.
        let credited = [None, None, Some(&payee)];
        let lost_on_payee = [
            reason("None"),
            reason("None"),
            reason("TransactionConflict"),
        ];
        assert_eq!(
            super::contended_credits(&lost_on_payee, &credited),
            [&payee]
        );
        let lost_on_payer = [
            reason("None"),
            reason("TransactionConflict"),
            reason("None"),
        ];
        assert!(super::contended_credits(&lost_on_payer, &credited).is_empty());
    }

    mod request_tokens {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
        use aws_smithy_runtime_api::client::http::{
            HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
        };
        use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::retry::RetryConfig;

        use super::super::{DynamoDbLedger, TableNames, Transaction};

        /// DynamoDB as a lost answer looks to a client: the first attempt of each call gets a
        /// 500 (it may have committed), the next succeeds. Keeps each attempt's token.
        #[derive(Debug, Clone, Default)]
        struct LostFirstAnswers {
            tokens: Arc<Mutex<Vec<String>>>,
        }

        impl HttpConnector for LostFirstAnswers {
            fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
                let body: serde_json::Value =
                    serde_json::from_slice(request.body().bytes().unwrap_or_default())
                        .unwrap_or_default();
                let token = body["ClientRequestToken"].as_str().unwrap_or("").to_owned();
                let mut tokens = self.tokens.lock().unwrap();
                let first = !tokens.contains(&token);
                tokens.push(token);
                let (status, answer) = if first {
                    (500, r#"{"__type":"InternalServerError","message":"lost"}"#)
                } else {
                    (200, "{}")
                };
                let status = status.try_into().expect("an HTTP status");
                HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from(answer))))
            }
        }

        #[tokio::test]
        async fn the_sdks_retries_of_a_transaction_carry_its_token_and_each_call_its_own() {
            let dynamodb = LostFirstAnswers::default();
            let connector = SharedHttpConnector::new(dynamodb.clone());
            let config = aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("id", "secret", None, None, "test"))
                .endpoint_url("http://dynamodb.test")
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(3)
                        .with_initial_backoff(Duration::from_millis(1)),
                )
                .http_client(http_client_fn(move |_, _| connector.clone()))
                .build();
            let tables = TableNames {
                wallets: "wallets".into(),
                payments: "payments".into(),
                idempotency: "idempotency".into(),
                outbox: None,
            };
            let ledger = DynamoDbLedger::new(aws_sdk_dynamodb::Client::from_conf(config), tables);
            let put = |id: &str| {
                let put = Put::builder()
                    .table_name("payments")
                    .item("payment_id", AttributeValue::S(id.into()))
                    .build()
                    .unwrap();
                vec![TransactWriteItem::builder().put(put).build()]
            };
            for id in ["pay_1", "pay_2"] {
                assert!(matches!(
                    ledger.transact(put(id)).await,
                    Ok(Transaction::Committed)
                ));
            }
            let tokens = dynamodb.tokens.lock().unwrap().clone();
            assert_eq!(tokens.len(), 4, "each call retried once: {tokens:?}");
            assert!(tokens.iter().all(|token| (1..=36).contains(&token.len())));
            assert_eq!(tokens[0], tokens[1], "a retry is the same request");
            assert_eq!(tokens[2], tokens[3]);
            assert_ne!(tokens[0], tokens[2], "another call is another request");
        }
    }

    /// A payment's parties are flattened into its items (a log entry's request, a read model's
    /// row): every flow, with an amount near the largest, reads back as written from
    /// DynamoDB's attribute values (numbers are strings there).
    #[test]
    fn every_flow_round_trips_through_dynamodb_items() {
        let wallet = |id: &str| WalletId::parse(id).unwrap();
        let amount = Money::new(MAX_MINOR_UNITS, "EUR".parse().unwrap()).unwrap();
        let flows = [
            Flow::Transfer {
                from_wallet: wallet("wal_a"),
                to_wallet: wallet("wal_b"),
            },
            Flow::TopUp {
                funding_instrument: FundingInstrumentId::parse("fi_card").unwrap(),
                to_wallet: wallet("wal_a"),
            },
            Flow::Payout {
                from_wallet: wallet("wal_a"),
                destination: PayoutDestinationId::parse("dst_bank").unwrap(),
            },
        ];
        for flow in flows {
            let request =
                PaymentRequest::of_flow(PaymentId::generate(), flow.clone(), amount).unwrap();
            let on_bus = PaymentLogEntry::requested_through(
                request.clone(),
                paysaga_domain::RequestChannel::Bus,
                Utc::now(),
            );
            let read: PaymentLogEntry = from_item(to_item(&on_bus).unwrap()).unwrap();
            assert_eq!(read, on_bus);
            let entry = PaymentLogEntry::requested(request, Utc::now());
            let item = to_item(&entry).unwrap();
            assert!(!item.contains_key("channel"), "the API's is the default");
            let read: PaymentLogEntry = from_item(item).unwrap();
            assert_eq!(read, entry);

            let row = WalletPayment {
                wallet_id: wallet("wal_a"),
                role: PaymentRole::Payer,
                payment_id: PaymentId::generate(),
                flow,
                amount,
                status: PaymentStatus::Pending,
                failure: None,
                requested_at: Utc::now(),
                updated_at: Utc::now(),
            };
            let read: WalletPayment = from_item(to_item(&row).unwrap()).unwrap();
            assert_eq!(read, row);
        }
    }

    /// An item's size as DynamoDB bills it: each attribute's name and value (a number's
    /// digits about half a byte each, plus one), nested maps and lists with their 3 bytes.
    fn billed_size(item: &Item) -> usize {
        fn value_size(value: &AttributeValue) -> usize {
            match value {
                AttributeValue::S(text) => text.len(),
                AttributeValue::N(number) => number.len().div_ceil(2) + 1,
                AttributeValue::M(map) => {
                    3 + map
                        .iter()
                        .map(|(name, value)| 1 + name.len() + value_size(value))
                        .sum::<usize>()
                }
                AttributeValue::L(list) => {
                    3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>()
                }
                _ => 1,
            }
        }
        item.iter()
            .map(|(name, value)| name.len() + value_size(value))
            .sum()
    }

    /// The terminal entry carries its outcome event's data, and stays one write unit's item
    /// (at most 1 KB) with every id at its longest: the completing transaction costs what it
    /// did before it carried it.
    #[test]
    fn a_terminal_entry_carries_its_outcome_within_one_write_unit() {
        let longest = |prefix: &str| format!("{prefix}_{}", "x".repeat(64));
        let request = PaymentRequest::of_flow(
            PaymentId::parse(&longest("pay")).unwrap(),
            Flow::Transfer {
                from_wallet: WalletId::parse(&longest("wal")).unwrap(),
                to_wallet: WalletId::parse(&format!("wal_{}", "y".repeat(64))).unwrap(),
            },
            Money::new(MAX_MINOR_UNITS, "EUR".parse().unwrap()).unwrap(),
        )
        .unwrap();
        let mut log = vec![PaymentLogEntry::requested(request, Utc::now())];
        for step in [
            PaymentStep::FundsReserved,
            PaymentStep::Charged {
                charge_id: ChargeId::parse(&longest("ch")).unwrap(),
            },
            PaymentStep::Completed,
        ] {
            let next = Payment::from_log(&log)
                .unwrap()
                .next_entry(step, Utc::now());
            log.push(next);
        }
        let terminal = log.last().unwrap();
        assert!(terminal.concludes.is_some());
        let item = to_item(terminal).unwrap();
        let read: PaymentLogEntry = from_item(item.clone()).unwrap();
        assert_eq!(&read, terminal);
        let size = billed_size(&item);
        assert!(size <= 1024, "{size} bytes: more than one write unit");
    }
}
