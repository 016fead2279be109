//! Credit shards: how one wallet takes a thousand payments a second.
//!
//! A wallet's item takes every change to it, inside the transaction of the step that makes it,
//! and DynamoDB lets one transaction at a time hold an item: the others are cancelled
//! (`TransactionConflict`). Money arriving in one wallet from many payers at once (a merchant's
//! sale) queues on that one item. Once a credit has lost to other writers on a wallet's item
//! through every retry, the wallet's credits are spread over [`HOT_WALLET_CREDIT_SHARDS`] items
//! of its own, in the wallets table ([`DynamoDbLedger::spread_credits`]):
//!
//! - shard `k` is the item `<wallet_id>#credits#<k>`, holding one counter, `credited`, that only
//!   grows. A credit adds to a shard chosen at random, in its step's transaction, on no
//!   condition: a credit needs no balance check, and what the wallet's own item would check
//!   (it exists, it holds the currency) the payee check read before the reserve, and it never
//!   changes once the wallet is open.
//! - The wallet's item keeps `folded`, one number per shard: how much of that shard's counter
//!   its `available` holds already. A shard's credits not folded in yet are
//!   `credited - folded[k]`.
//! - The balance is `available + Σ (credited - folded[k])`, the wallet's item read first, then
//!   its shards (consistent reads, [`DynamoDbLedger::unfolded_credits`]): every credit
//!   committed before the wallet's item was read counts, a fold between the two reads cannot
//!   count one twice (the counters it read are at most the shards' now), and a credit landing
//!   in the milliseconds between the reads counts too. (`TransactGetItems` would read one
//!   instant, but is cancelled by any credit in flight on any of the items: a hot wallet's would
//!   seldom succeed.)
//! - A fold ([`DynamoDbLedger::fold_credits`]) moves the shards' unfolded credits into
//!   `available`: one `UpdateItem` of the wallet's item alone, conditioned on the `folded`
//!   numbers it read. It never writes a shard, so it never holds up a credit. A debit keeps its
//!   strict check on the wallet's own item: one that the item alone cannot cover folds first,
//!   then tries again.
//!
//! Shards are never taken away, so a ledger that has not seen a wallet's shards yet (a fresh
//! instance) credits its own item: right, only slower. Quiet wallets have no shards: nothing
//! changes for them, and they pay nothing for it.
//!
//! The balance limit ([`MAX_MINOR_UNITS`]) is checked on the wallet's item, so on a sharded
//! wallet when its credits are folded in, not when each lands: a wallet that received more than
//! the limit (10^15 minor units) without spending any would read as an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::Deserialize;

use super::{
    DynamoDbLedger, Item, WalletRecord, build_error, from_item, get_batch,
    is_conditional_check_failure, n, s, sdk_error, wallet_key,
};
use paysaga_domain::money::MAX_MINOR_UNITS;
use paysaga_domain::ports::StoreError;
use paysaga_domain::wallet::{HOT_WALLET_CREDIT_SHARDS, MAX_CREDIT_SHARDS};
use paysaga_domain::{Currency, Money, Wallet, WalletId};

/// The wallets this ledger has seen spread their credits, with their shards and currency: a
/// credit to one of them in its currency goes to a shard. Only sharded wallets are kept, and
/// they are few (each is a wallet that once received more than its item could take).
#[derive(Debug, Clone, Default)]
pub(super) struct HotWallets(Arc<Mutex<HashMap<WalletId, (u16, Currency)>>>);

impl HotWallets {
    /// Remembers `wallet`'s shards, if it has any.
    pub(super) fn learn(&self, wallet: &Wallet) {
        if wallet.credit_shards() > 0 {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    wallet.id().clone(),
                    (wallet.credit_shards(), wallet.currency()),
                );
        }
    }

    /// The shard a credit of `amount` to `wallet` goes to: one at random when the wallet's
    /// credits are spread and the amount is in its currency; `None`: the wallet's own item.
    pub(super) fn shard_for(&self, wallet: &WalletId, amount: Money) -> Option<u16> {
        let hot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match hot.get(wallet) {
            Some(&(shards, currency)) if shards > 0 && currency == amount.currency() => {
                Some(fastrand::u16(..shards))
            }
            _ => None,
        }
    }
}

/// Shard `k` of a wallet's credits: `<wallet_id>#credits#<k>`.
fn shard_key(wallet: &WalletId, k: u16) -> Item {
    HashMap::from([("wallet_id".to_owned(), s(&format!("{wallet}#credits#{k}")))])
}

/// Each shard's counter, as read: `credited[k]`, 0 for a shard never credited.
#[derive(Debug)]
pub(super) struct ShardCounters {
    credited: Vec<u64>,
}

impl ShardCounters {
    /// What the shards hold that `record`'s `available` does not yet: `Σ (credited - folded)`.
    pub(super) fn unfolded(
        &self,
        wallet: &WalletId,
        record: &WalletRecord,
    ) -> Result<u64, StoreError> {
        self.credited
            .iter()
            .enumerate()
            .try_fold(0u64, |sum, (k, credited)| {
                let folded = record.folded.get(k).copied().unwrap_or(0);
                credited
                    .checked_sub(folded)
                    .and_then(|unfolded| sum.checked_add(unfolded))
                    .ok_or_else(|| {
                        StoreError::Permanent(format!(
                            "wallet {wallet}: shard {k} folded {folded} of {credited} credited"
                        ))
                    })
            })
    }
}

impl DynamoDbLedger {
    /// The update a credit of `amount` to shard `k` of `wallet` is, in a step's transaction.
    pub(super) fn shard_credit(
        &self,
        wallet: &WalletId,
        k: u16,
        amount: Money,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.tables.wallets)
            .set_key(Some(shard_key(wallet, k)))
            .update_expression("SET credited = if_not_exists(credited, :zero) + :amount")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":amount", n(amount.minor_units()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Every shard's counter of a wallet with `shards` of them (consistent reads).
    pub(super) async fn shard_counters(
        &self,
        wallet: &WalletId,
        shards: u16,
    ) -> Result<ShardCounters, StoreError> {
        #[derive(Deserialize)]
        struct ShardRecord {
            wallet_id: String,
            #[serde(default)]
            credited: u64,
        }
        let mut credited = vec![0; usize::from(shards)];
        let keys = (0..shards).map(|k| shard_key(wallet, k)).collect();
        let prefix = format!("{wallet}#credits#");
        for item in get_batch(&self.client, &self.tables.wallets, keys, None).await? {
            let record: ShardRecord = from_item(item)?;
            let k = record
                .wallet_id
                .strip_prefix(&prefix)
                .and_then(|k| k.parse::<usize>().ok())
                .filter(|k| *k < credited.len())
                .ok_or_else(|| {
                    StoreError::Permanent(format!("not a shard of {wallet}: {}", record.wallet_id))
                })?;
            credited[k] = record.credited;
        }
        Ok(ShardCounters { credited })
    }

    /// Spreads `wallet`'s credits over [`HOT_WALLET_CREDIT_SHARDS`] shards, unless they are
    /// spread already, and remembers them. One conditional `UpdateItem` of the wallet's item:
    /// its shard count, and a `folded` of 0 for each shard.
    pub async fn spread_credits(&self, wallet: &WalletId) -> Result<(), StoreError> {
        let shards = HOT_WALLET_CREDIT_SHARDS.min(MAX_CREDIT_SHARDS);
        let zeros = aws_sdk_dynamodb::types::AttributeValue::L(vec![n(0); usize::from(shards)]);
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.wallets)
            .set_key(Some(wallet_key(wallet)))
            .update_expression("SET credit_shards = :shards, folded = :zeros")
            .condition_expression(
                "attribute_exists(wallet_id) AND attribute_not_exists(credit_shards)",
            )
            .expression_attribute_values(":shards", n(u64::from(shards)))
            .expression_attribute_values(":zeros", zeros)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(wallet_id = %wallet, shards, "a hot wallet's credits spread over shards")
            }
            // Spread already (by another instance), or no such wallet: the read says which.
            Err(error) if is_conditional_check_failure(&error) => {}
            Err(error) => return Err(sdk_error("UpdateItem", error)),
        }
        // Learns the shards, and the currency a shard's credit must be in.
        self.read_wallet(wallet).await.map(|_| ())
    }

    /// Moves what `wallet`'s shards hold into its `available`, so a debit can use it. One
    /// `UpdateItem` of the wallet's item, on the condition that no other fold moved the same
    /// credits meanwhile (its `folded` numbers as read): `false` when one did, or when there
    /// was nothing to fold.
    pub(super) async fn fold_credits(&self, wallet: &WalletId) -> Result<bool, StoreError> {
        let Some(item) = self.get(&self.tables.wallets, wallet_key(wallet)).await? else {
            return Ok(false);
        };
        let record: WalletRecord = from_item(item)?;
        let counters = self.shard_counters(wallet, record.credit_shards).await?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.wallets)
            .set_key(Some(wallet_key(wallet)));
        let mut sets = Vec::new();
        let mut conditions = Vec::new();
        let mut moved = 0u64;
        for (k, &credited) in counters.credited.iter().enumerate() {
            let folded = record.folded.get(k).copied().unwrap_or(0);
            if credited <= folded {
                continue;
            }
            moved += credited - folded;
            sets.push(format!("folded[{k}] = :credited{k}"));
            conditions.push(format!("folded[{k}] = :folded{k}"));
            update = update
                .expression_attribute_values(format!(":credited{k}"), n(credited))
                .expression_attribute_values(format!(":folded{k}"), n(folded));
        }
        if moved == 0 {
            return Ok(false);
        }
        let headroom = MAX_MINOR_UNITS.checked_sub(moved).ok_or_else(|| {
            StoreError::Permanent(format!(
                "wallet {wallet}: its credits pass the balance limit"
            ))
        })?;
        let result = update
            .update_expression(format!(
                "SET available = available + :moved, {}",
                sets.join(", ")
            ))
            .condition_expression(format!(
                "available <= :headroom AND {}",
                conditions.join(" AND ")
            ))
            .expression_attribute_values(":moved", n(moved))
            .expression_attribute_values(":headroom", n(headroom))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_check_failure(&error) => Ok(false),
            Err(error) => Err(sdk_error("UpdateItem", error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::{WalletRecord, to_item};
    use super::*;

    fn record(available: u64, credit_shards: u16, folded: Vec<u64>) -> WalletRecord {
        WalletRecord {
            wallet_id: WalletId::parse("wal_hot").unwrap(),
            currency: "EUR".parse().unwrap(),
            available,
            reserved: 0,
            created_at: Utc::now(),
            owner: None,
            credit_shards,
            folded,
        }
    }

    #[test]
    fn a_shards_credits_not_folded_in_are_what_it_counted_past_its_fold() {
        let wallet = WalletId::parse("wal_hot").unwrap();
        let counters = ShardCounters {
            credited: vec![500, 0, 300, 40],
        };
        // Shard 0 folded up to 200, shard 2 whole, shard 3 never.
        let record = record(1_000, 4, vec![200, 0, 300, 0]);
        assert_eq!(counters.unfolded(&wallet, &record).unwrap(), 300 + 40);
        // A fold past what a shard counted is a broken invariant, never a negative balance.
        let broken = super::super::WalletRecord {
            folded: vec![600, 0, 0, 0],
            ..record
        };
        assert!(matches!(
            counters.unfolded(&wallet, &broken),
            Err(StoreError::Permanent(_))
        ));
    }

    #[test]
    fn a_quiet_wallets_item_carries_nothing_of_shards() {
        let item = to_item(&record(1_000, 0, Vec::new())).unwrap();
        assert!(!item.contains_key("credit_shards") && !item.contains_key("folded"));
        let item = to_item(&record(1_000, 2, vec![0, 0])).unwrap();
        assert!(item.contains_key("credit_shards") && item.contains_key("folded"));
    }

    #[test]
    fn a_credit_goes_to_a_shard_only_of_a_wallet_known_spread_in_its_currency() {
        let hot = HotWallets::default();
        let eur = "EUR".parse().unwrap();
        let id = WalletId::parse("wal_hot").unwrap();
        let amount = Money::new(100, eur).unwrap();
        let quiet = Wallet::open(id.clone(), eur, Utc::now());
        hot.learn(&quiet);
        assert_eq!(hot.shard_for(&id, amount), None, "not spread");
        hot.learn(&quiet.with_credit_shards(4));
        for _ in 0..50 {
            assert!(hot.shard_for(&id, amount).is_some_and(|k| k < 4));
        }
        let dollars = Money::new(100, "USD".parse().unwrap()).unwrap();
        assert_eq!(hot.shard_for(&id, dollars), None, "its own item refuses it");
    }
}
