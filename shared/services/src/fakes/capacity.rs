//! DynamoDB's limits on one item, as a model the in-memory adapters can be run against: what
//! this machine cannot reach with DynamoDB Local, which has no capacity limits and lets
//! concurrent transactions on one item wait for each other instead of cancelling them.
//!
//! - An item takes at most [`ItemLimits::write_units_per_second`] write units a second
//!   (DynamoDB: 1,000 WCU, a partition's limit, and an item lives in one partition); a write
//!   past that is throttled. Unused units are not saved up beyond one second's worth.
//! - A transactional write of an item costs [`ItemLimits::transactional_write_units`] (2 for an
//!   item of up to 1 KB), a plain write 1.
//! - A transaction holds its items for [`ItemLimits::transaction_hold`], from DynamoDB taking
//!   it to its commit; another transaction or a plain write touching one of them meanwhile is
//!   cancelled with `TransactionConflict`. DynamoDB documents no figure for the hold; the
//!   model's is a transaction's typical latency.
//!
//! Time is tokio's: under paused time (`#[tokio::test(start_paused = true)]`) thousands of
//! writes a second run in virtual time on one core, and the figures are the model's, not the
//! machine's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The limits of one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemLimits {
    pub write_units_per_second: f64,
    pub transactional_write_units: f64,
    pub transaction_hold: Duration,
}

impl ItemLimits {
    /// DynamoDB's: 1,000 WCU a second per item, 2 units for a transactional write of an item
    /// up to 1 KB, a transaction holding its items 10 ms.
    pub const DYNAMODB: Self = Self {
        write_units_per_second: 1_000.0,
        transactional_write_units: 2.0,
        transaction_hold: Duration::from_millis(10),
    };
}

/// Why the model refused a write, as DynamoDB names it in a transaction's cancellation
/// reasons: which item, and what about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The item was held by another transaction (`TransactionConflict`).
    Conflict { index: usize },
    /// The item's write capacity for this second was spent (`ThrottlingError`).
    Throttled { index: usize },
}

/// What the model saw: writes taken, and refused by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemModelCounts {
    pub transactions: u64,
    pub plain_writes: u64,
    pub conflicts: u64,
    pub throttled: u64,
}

#[derive(Debug)]
struct ItemState {
    /// Held by a transaction until then.
    held_until: Instant,
    /// Write units left, as of `counted_at`.
    units: f64,
    counted_at: Instant,
}

/// Every item's state under [`ItemLimits`]; items are named by the caller (a table and a key).
#[derive(Debug)]
pub struct ItemModel {
    limits: ItemLimits,
    items: Mutex<HashMap<String, ItemState>>,
    counts: Mutex<ItemModelCounts>,
}

impl ItemModel {
    pub fn new(limits: ItemLimits) -> Self {
        Self {
            limits,
            items: Mutex::new(HashMap::new()),
            counts: Mutex::new(ItemModelCounts::default()),
        }
    }

    pub fn limits(&self) -> ItemLimits {
        self.limits
    }

    pub fn counts(&self) -> ItemModelCounts {
        *self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A transaction writing `items`: refused at once as DynamoDB would cancel it, or taken,
    /// its items held until it commits, which is when this returns.
    pub async fn transact(&self, items: &[String]) -> Result<(), Refusal> {
        self.take(items, self.limits.transactional_write_units, true)?;
        tokio::time::sleep(self.limits.transaction_hold).await;
        Ok(())
    }

    /// A plain write of one item (`PutItem`, `UpdateItem`): refused when the item is held by
    /// a transaction or out of capacity.
    pub fn write(&self, item: &str) -> Result<(), Refusal> {
        self.take(&[item.to_owned()], 1.0, false)
    }

    fn take(&self, items: &[String], units: f64, transaction: bool) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut states = self
            .items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let per_second = self.limits.write_units_per_second;
        let mut refusal = None;
        for (index, item) in items.iter().enumerate() {
            let state = states.entry(item.clone()).or_insert(ItemState {
                held_until: now,
                units: per_second,
                counted_at: now,
            });
            let earned = (now - state.counted_at).as_secs_f64() * per_second;
            state.units = (state.units + earned).min(per_second);
            state.counted_at = now;
            if state.held_until > now {
                refusal = Some(Refusal::Conflict { index });
                break;
            }
            if state.units < units {
                refusal = Some(Refusal::Throttled { index });
                break;
            }
        }
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match refusal {
            Some(refused @ Refusal::Conflict { .. }) => {
                counts.conflicts += 1;
                return Err(refused);
            }
            Some(refused @ Refusal::Throttled { .. }) => {
                counts.throttled += 1;
                return Err(refused);
            }
            None => {}
        }
        for item in items {
            if let Some(state) = states.get_mut(item) {
                state.units -= units;
                if transaction {
                    state.held_until = now + self.limits.transaction_hold;
                }
            }
        }
        if transaction {
            counts.transactions += 1;
        } else {
            counts.plain_writes += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_transaction_holding_an_item_cancels_another_that_touches_it() {
        let model = std::sync::Arc::new(ItemModel::new(ItemLimits::DYNAMODB));
        let first = tokio::spawn({
            let model = model.clone();
            async move { model.transact(&keys(&["log#1", "wallet#a"])).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            model.transact(&keys(&["log#2", "wallet#a"])).await,
            Err(Refusal::Conflict { index: 1 })
        );
        assert_eq!(model.write("wallet#a"), Err(Refusal::Conflict { index: 0 }));
        assert_eq!(
            model.transact(&keys(&["log#3", "wallet#b"])).await,
            Ok(()),
            "other items are free"
        );
        assert_eq!(first.await.unwrap(), Ok(()));
        // Committed: the item is free again.
        assert_eq!(model.transact(&keys(&["log#4", "wallet#a"])).await, Ok(()));
        assert_eq!(
            model.counts(),
            ItemModelCounts {
                transactions: 3,
                plain_writes: 0,
                conflicts: 2,
                throttled: 0,
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_takes_a_thousand_units_a_second_two_a_transaction() {
        let limits = ItemLimits {
            transaction_hold: Duration::ZERO,
            ..ItemLimits::DYNAMODB
        };
        let model = ItemModel::new(limits);
        let mut taken = 0;
        while model.transact(&keys(&["wallet#hot"])).await.is_ok() {
            taken += 1;
        }
        assert_eq!(taken, 500, "1,000 units, 2 a transaction");
        assert_eq!(
            model.write("wallet#hot"),
            Err(Refusal::Throttled { index: 0 })
        );
        // A tenth of a second earns a hundred units: fifty transactions.
        tokio::time::advance(Duration::from_millis(100)).await;
        let mut again = 0;
        while model.transact(&keys(&["wallet#hot"])).await.is_ok() {
            again += 1;
        }
        assert_eq!(again, 50);
        // Idle for a minute: still one second's worth, no more.
        tokio::time::advance(Duration::from_secs(60)).await;
        let mut rested = 0;
        while model.write("wallet#hot").is_ok() {
            rested += 1;
        }
        assert_eq!(rested, 1_000);
    }
}
