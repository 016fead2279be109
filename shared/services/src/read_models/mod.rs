//! The read models (`paysaga_domain::read_models`: what the API lists, projected from the domain
//! events) applied to a store: [`apply_event`] writes one event's changes, [`replay`] a sequence
//! of events; [`rebuild`] applies every event of the audit trail (the event store), to rebuild
//! the read models into a fresh table, a bounded page at a time ([`rebuild_page`]).
//!
//! ```
//! use chrono::Utc;
//! use paysaga_domain::events::FundsDeposited;
//! use paysaga_domain::{Currency, DepositId, DomainEvent, Money, WalletId};
//! use paysaga_services::read_models::{InMemoryReadModels, PageRequest, replay};
//! use paysaga_domain::ports::ReadModelReader;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let wallet = WalletId::parse("wal_alice").unwrap();
//! let eur: Currency = "EUR".parse().unwrap();
//! let deposit = DomainEvent::funds_deposited(
//!     FundsDeposited {
//!         deposit_id: DepositId::parse("dep_1").unwrap(),
//!         wallet_id: wallet.clone(),
//!         amount: Money::new(1_000, eur).unwrap(),
//!         issued_by: None,
//!         reason: None,
//!     },
//!     Utc::now(),
//! );
//! let models = InMemoryReadModels::default();
//! // The same event twice: one change.
//! let counts = replay(&[deposit.clone(), deposit], &models).await.unwrap();
//! assert_eq!((counts.changed, counts.unchanged), (1, 1));
//! let page = models.transactions(&wallet, &PageRequest::default()).await.unwrap();
//! assert_eq!(page.items[0].entry.amount.minor_units, 1_000);
//! assert_eq!(page.items[0].revision, 1);
//! # });
//! ```

pub use paysaga_domain::read_models::*;

use chrono::{DateTime, Utc};
use paysaga_domain::ports::{
    EventPageToken, EventPublisher, EventStore, PublishError, ReadModelWriter, StoreError,
};
use paysaga_domain::{
    DomainEvent, OperatorAction, OperatorActionId, OperatorActionKind, OperatorRecord,
};

#[cfg(any(test, feature = "fakes"))]
pub use crate::fakes::InMemoryReadModels;

/// What applying events did, item by item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayCounts {
    pub events: u64,
    pub changed: u64,
    pub unchanged: u64,
}

impl ReplayCounts {
    pub fn add(&mut self, other: ReplayCounts) {
        self.events += other.events;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
    }
}

/// Applies one event's changes: the read-models function's work for one message.
pub async fn apply_event(
    event: &DomainEvent,
    into: &dyn ReadModelWriter,
) -> Result<ReplayCounts, StoreError> {
    let mut counts = ReplayCounts {
        events: 1,
        ..ReplayCounts::default()
    };
    let changes = project(event);
    let applied = futures::future::join_all(changes.iter().map(|change| into.apply(change))).await;
    for outcome in applied {
        match outcome? {
            Applied::Changed => counts.changed += 1,
            Applied::Unchanged => counts.unchanged += 1,
        }
    }
    Ok(counts)
}

/// Applies `events` in order: rebuilding read models from the audit store, a page at a time.
/// Idempotent: replaying the same events again changes nothing.
pub async fn replay(
    events: &[DomainEvent],
    into: &dyn ReadModelWriter,
) -> Result<ReplayCounts, StoreError> {
    let mut counts = ReplayCounts::default();
    for event in events {
        counts.add(apply_event(event, into).await?);
    }
    Ok(counts)
}

/// How much of the audit trail one bounded step of a rebuild takes on ([`rebuild_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBudget {
    /// Items of the store one page reads at most.
    pub items: usize,
    /// Once this much time has passed, no further event is started (the one under way ends).
    pub time: std::time::Duration,
}

/// Items a page of a rebuild without a deadline reads ([`rebuild`]): DynamoDB's 1 MB bound
/// comes first for events of a few hundred bytes.
const REBUILD_PAGE_ITEMS: usize = 10_000;

/// One page of the audit trail and where the next starts: what a bounded rebuild step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltPage {
    pub counts: ReplayCounts,
    /// Where the next step starts: `None` once the whole audit trail has been applied.
    pub next: Option<EventPageToken>,
}

/// Why a bounded rebuild step failed: reading its page (a page token the store did not give
/// is a [`StoreError::Permanent`] there), or writing the read models.
#[derive(Debug, thiserror::Error)]
pub enum RebuildStepError {
    #[error("reading the audit trail: {0}")]
    Read(StoreError),
    #[error("writing the read models: {0}")]
    Write(StoreError),
    /// Nothing was read or written: a step the audit trail does not hold is not taken.
    #[error("the rebuild step could not be recorded in the audit trail, so it was not taken: {0}")]
    Unrecorded(PublishError),
}

/// One bounded step of a rebuild: a page of the audit trail after `after` (at most
/// `budget.items` items read), its events applied in turn until `budget.time` has passed. The
/// first event is always applied, so every step gains ground, however slow; when time runs
/// out part-way, `next` resumes right after the last event applied. A caller with a deadline
/// (an HTTP request's) repeats it with each `next`; a step repeated changes nothing.
/// An operator's step of a rebuild of the live read models ([`rebuild_page`]), recorded in the
/// audit trail first: an `OperatorActionStarted` ([`OperatorActionKind::RebuildReadModels`],
/// who, why, where the page starts) published to `trail` before the page is read. Answers the
/// record's id with the page.
pub async fn rebuild_page_by(
    operator: &OperatorRecord,
    trail: &dyn EventPublisher,
    store: &dyn EventStore,
    into: &dyn ReadModelWriter,
    after: Option<&EventPageToken>,
    budget: PageBudget,
    now: DateTime<Utc>,
) -> Result<(OperatorActionId, RebuiltPage), RebuildStepError> {
    let action = OperatorAction {
        action_id: OperatorActionId::generate(),
        issued_by: operator.issued_by.clone(),
        reason: operator.reason.clone(),
        action: OperatorActionKind::RebuildReadModels {
            after: after.map(|token| token.0.clone()),
        },
    };
    let action_id = action.action_id.clone();
    trail
        .publish(&[DomainEvent::operator_action_started(action, now)])
        .await
        .map_err(RebuildStepError::Unrecorded)?;
    let page = rebuild_page(store, into, after, budget).await?;
    Ok((action_id, page))
}

pub async fn rebuild_page(
    store: &dyn EventStore,
    into: &dyn ReadModelWriter,
    after: Option<&EventPageToken>,
    budget: PageBudget,
) -> Result<RebuiltPage, RebuildStepError> {
    let started = std::time::Instant::now();
    let page = store
        .all_events(after, budget.items)
        .await
        .map_err(RebuildStepError::Read)?;
    let mut counts = ReplayCounts::default();
    for (applied, recorded) in page.events.iter().enumerate() {
        if applied > 0 && started.elapsed() >= budget.time {
            let last = &page.events[applied - 1];
            return Ok(RebuiltPage {
                counts,
                next: Some(store.resume_after(last)),
            });
        }
        let applied = apply_event(&recorded.event, into)
            .await
            .map_err(RebuildStepError::Write)?;
        counts.add(applied);
    }
    Ok(RebuiltPage {
        counts,
        next: page.next,
    })
}

/// Rebuilds read models from the audit trail: every event of `store`, a page at a time, applied
/// to `into` (a fresh table, or live read models, which it leaves unchanged). The store's order
/// is not time order; [`project`] does not need it to be.
pub async fn rebuild(
    store: &dyn EventStore,
    into: &dyn ReadModelWriter,
) -> Result<ReplayCounts, StoreError> {
    rebuild_with_progress(store, into, |_| {}).await
}

/// [`rebuild`], telling `progress` the counts so far after each page: a rebuild of a large
/// store takes a while. Stopped half-way, it can simply be run again.
pub async fn rebuild_with_progress(
    store: &dyn EventStore,
    into: &dyn ReadModelWriter,
    mut progress: impl FnMut(&ReplayCounts),
) -> Result<ReplayCounts, StoreError> {
    let mut counts = ReplayCounts::default();
    let mut token = None;
    loop {
        let page = store.all_events(token.as_ref(), REBUILD_PAGE_ITEMS).await?;
        let events: Vec<DomainEvent> = page
            .events
            .into_iter()
            .map(|recorded| recorded.event)
            .collect();
        counts.add(replay(&events, into).await?);
        progress(&counts);
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(counts),
        }
    }
}

#[cfg(test)]
mod tests;
