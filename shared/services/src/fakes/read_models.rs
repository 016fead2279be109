//! The read models in one process's memory, with the DynamoDB adapter's conditions: for
//! handler tests and for replays without AWS.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use paysaga_domain::WalletId;
use paysaga_domain::ports::{ReadModelReader, ReadModelWriter, StoreError};
use paysaga_domain::read_models::{
    Applied, Cursor, Page, PageRequest, ReadModelChange, Revised, TransactionEntry, WalletPayment,
    activity_list,
};

/// Lists by name, items by order key.
#[derive(Default)]
pub struct InMemoryReadModels {
    lists: Mutex<HashMap<String, BTreeMap<String, Stored>>>,
}

#[derive(Clone)]
struct Stored {
    item: ReadModelChange,
    rank: u8,
    revision: u32,
}

impl InMemoryReadModels {
    fn lists(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<String, Stored>>> {
        // Every write replaces one whole entry, so a poisoned lock still guards consistent data.
        self.lists
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn page<T>(
        &self,
        list: String,
        page: &PageRequest,
        pick: impl Fn(&ReadModelChange) -> Option<T>,
    ) -> Page<Revised<T>> {
        let lists = self.lists();
        let Some(items) = lists.get(&list) else {
            return Page {
                items: Vec::new(),
                next: None,
            };
        };
        // The list's items this read model shows, newest first, as the adapter's filtered query.
        let mut newest_first = items
            .iter()
            .rev()
            .filter(|(order, _)| {
                page.after
                    .as_ref()
                    .is_none_or(|after| order.as_str() < after.order())
            })
            .filter_map(|(order, stored)| {
                let entry = pick(&stored.item)?;
                Some((
                    order,
                    Revised {
                        entry,
                        revision: stored.revision,
                    },
                ))
            });
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        let taken: Vec<_> = newest_first.by_ref().take(limit).collect();
        let next = match (newest_first.next(), taken.last()) {
            (Some(_), Some((order, _))) => Some(Cursor::after(order)),
            _ => None,
        };
        Page {
            items: taken.into_iter().map(|(_, revised)| revised).collect(),
            next,
        }
    }
}

#[async_trait]
impl ReadModelWriter for InMemoryReadModels {
    async fn apply(&self, change: &ReadModelChange) -> Result<Applied, StoreError> {
        let position = change.position();
        let rank = change.rank();
        let mut lists = self.lists();
        let list = lists.entry(position.list).or_default();
        match list.get_mut(&position.order) {
            Some(stored) if stored.rank >= rank => Ok(Applied::Unchanged),
            Some(stored) => {
                stored.item = change.clone();
                stored.rank = rank;
                stored.revision += 1;
                Ok(Applied::Changed)
            }
            None => {
                list.insert(
                    position.order,
                    Stored {
                        item: change.clone(),
                        rank,
                        revision: 1,
                    },
                );
                Ok(Applied::Changed)
            }
        }
    }
}

#[async_trait]
impl ReadModelReader for InMemoryReadModels {
    async fn transactions(
        &self,
        wallet: &WalletId,
        page: &PageRequest,
    ) -> Result<Page<Revised<TransactionEntry>>, StoreError> {
        Ok(self.page(activity_list(wallet), page, |item| {
            Some(item.transaction.clone())
        }))
    }

    async fn payments(
        &self,
        wallet: &WalletId,
        page: &PageRequest,
    ) -> Result<Page<Revised<WalletPayment>>, StoreError> {
        Ok(self.page(activity_list(wallet), page, |item| item.payment.clone()))
    }
}
