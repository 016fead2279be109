//! The audit trail: recording each domain event in the event store, and rebuilding wallets and
//! payments from it (the latest snapshot, then the events after it).
//!
//! ```
//! use chrono::Utc;
//! use paysaga_domain::events::FundsDeposited;
//! use paysaga_domain::{DepositId, DomainEvent, Money, WalletId};
//! use paysaga_services::fakes::InMemoryEventStore;
//! use paysaga_domain::ports::AppendOutcome;
//! use paysaga_services::audit::{rebuild_wallet, record};
//!
//! # tokio_test_block_on(async {
//! let store = InMemoryEventStore::new(10); // a snapshot every 10 versions
//! let wallet = WalletId::parse("wal_doc").unwrap();
//! let deposit = DomainEvent::funds_deposited(
//!     FundsDeposited {
//!         deposit_id: DepositId::parse("dep_doc").unwrap(),
//!         wallet_id: wallet.clone(),
//!         amount: Money::new(1_250, "EUR".parse().unwrap()).unwrap(),
//!         issued_by: None,
//!         reason: None,
//!     },
//!     Utc::now(),
//! );
//! assert!(matches!(record(&store, &deposit, Utc::now()).await, Ok(AppendOutcome::Appended(_))));
//! // The same event again (a redelivery) appends nothing.
//! assert_eq!(record(&store, &deposit, Utc::now()).await, Ok(AppendOutcome::Duplicate));
//!
//! let rebuilt = rebuild_wallet(&store, &wallet).await.unwrap();
//! assert_eq!(rebuilt.version, 1);
//! assert_eq!(rebuilt.balance().unwrap().map(Money::minor_units), Some(1_250));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(future)
//! # }
//! ```

use chrono::{DateTime, Utc};

use paysaga_domain::history::{
    AggregateState, HistoryError, OperatorAggregate, PaymentAggregate, StreamEvent, StreamId,
    WalletAggregate,
};
use paysaga_domain::ports::{AppendOutcome, EventStore, StoreError};
use paysaga_domain::{DomainEvent, OperatorKey, Owner, PaymentId, WalletId};

/// An aggregate could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// Records `event` in the audit trail, once per event id.
pub async fn record(
    store: &dyn EventStore,
    event: &DomainEvent,
    now: DateTime<Utc>,
) -> Result<AppendOutcome, StoreError> {
    let outcome = store.append(event, now).await?;
    match &outcome {
        AppendOutcome::Appended(positions) => {
            let versions: Vec<String> = positions
                .iter()
                .map(|(stream, version)| format!("{stream}@{version}"))
                .collect();
            tracing::info!(event_id = event.event_id(), detail_type = event.detail_type(), streams = ?versions, "event appended");
        }
        AppendOutcome::Duplicate => {
            tracing::info!(
                event_id = event.event_id(),
                "event already in the audit trail"
            );
        }
    }
    Ok(outcome)
}

/// The aggregate of `stream`: its latest snapshot (or nothing), then the events after it.
pub async fn load(
    store: &dyn EventStore,
    stream: &StreamId,
) -> Result<AggregateState, RebuildError> {
    let start = match store.latest_snapshot(stream).await? {
        Some(snapshot) => snapshot,
        None => AggregateState::empty(stream),
    };
    let tail = store.stream(stream, start.version()).await?;
    Ok(start.replay(&tail)?)
}

/// A wallet rebuilt from its stream, every part of it (version 0 and no totals when it has no
/// events; for a hot wallet's stream spread over parts, its version is how many events they
/// hold).
pub async fn rebuild_wallet(
    store: &dyn EventStore,
    wallet_id: &WalletId,
) -> Result<WalletAggregate, RebuildError> {
    let mut parts = Vec::new();
    for part in 0..store.wallet_parts(wallet_id).await? {
        let stream = StreamId::wallet_part(wallet_id.clone(), part);
        match load(store, &stream).await? {
            AggregateState::Wallet(wallet) => parts.push(wallet),
            other => return Err(wrong_stream(stream, &other)),
        }
    }
    Ok(WalletAggregate::combine(wallet_id, parts)?)
}

/// Every event of a wallet's stream, every part of it ([`StreamId::WalletPart`]): part 0 (the
/// wallet's own stream) first, each part in version order. What a reader of a wallet's events
/// reads, rather than its own stream alone.
pub async fn wallet_events(
    store: &dyn EventStore,
    wallet_id: &WalletId,
) -> Result<Vec<StreamEvent>, StoreError> {
    let mut events = Vec::new();
    for part in 0..store.wallet_parts(wallet_id).await? {
        let stream = StreamId::wallet_part(wallet_id.clone(), part);
        events.extend(store.stream(&stream, 0).await?);
    }
    Ok(events)
}

/// A payment rebuilt from its stream.
pub async fn rebuild_payment(
    store: &dyn EventStore,
    payment_id: &PaymentId,
) -> Result<PaymentAggregate, RebuildError> {
    let stream = StreamId::Payment(payment_id.clone());
    match load(store, &stream).await? {
        AggregateState::Payment(payment) => Ok(payment),
        other => Err(wrong_stream(stream, &other)),
    }
}

/// What an operator did, rebuilt from their stream.
pub async fn rebuild_operator(
    store: &dyn EventStore,
    operator: &Owner,
) -> Result<OperatorAggregate, RebuildError> {
    let stream = StreamId::Operator(OperatorKey::of(operator));
    match load(store, &stream).await? {
        AggregateState::Operator(operator) => Ok(operator),
        other => Err(wrong_stream(stream, &other)),
    }
}

fn wrong_stream(stream: StreamId, found: &AggregateState) -> RebuildError {
    HistoryError::WrongStream {
        stream,
        found: found.stream(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::InMemoryEventStore;
    use paysaga_domain::PaymentStatus;
    use paysaga_domain::test_support::{deposit, eur, payment, wallet};

    #[tokio::test]
    async fn a_wallet_rebuilt_through_snapshots_equals_its_full_replay() {
        let store = InMemoryEventStore::new(4);
        let mut events = Vec::new();
        for n in 0..9 {
            events.push(deposit(&format!("dep_{n}"), "wal_a", 1_000));
            let status = if n % 2 == 0 {
                PaymentStatus::Completed
            } else {
                PaymentStatus::Failed
            };
            let (requested, outcome) = payment(&format!("pay_{n}"), "wal_a", "wal_b", 300, status);
            // Out of order, and each delivered twice.
            events.extend([outcome.clone(), requested.clone(), outcome, requested]);
        }
        let mut appended = 0;
        for event in &events {
            if let AppendOutcome::Appended(_) = record(&store, event, Utc::now()).await.unwrap() {
                appended += 1;
            }
        }
        assert_eq!(appended, 9 * 3);

        let stream = StreamId::Wallet(wallet("wal_a"));
        // 9 deposits and 5 completed payments: versions 1..=14, snapshots at 4, 8 and 12.
        assert_eq!(store.snapshot_versions(&stream), [4, 8, 12]);
        let full = AggregateState::empty(&stream)
            .replay(&store.stream(&stream, 0).await.unwrap())
            .unwrap();
        let rebuilt = rebuild_wallet(&store, &wallet("wal_a")).await.unwrap();
        assert_eq!(AggregateState::Wallet(rebuilt.clone()), full);
        assert_eq!(rebuilt.version, 14);
        assert_eq!(rebuilt.balance().unwrap(), Some(eur(9_000 - 5 * 300)));
        let b = rebuild_wallet(&store, &wallet("wal_b")).await.unwrap();
        assert_eq!(b.balance().unwrap(), Some(eur(5 * 300)));

        let failed = rebuild_payment(&store, &PaymentId::parse("pay_1").unwrap())
            .await
            .unwrap();
        assert_eq!(
            (failed.status, failed.version),
            (Some(PaymentStatus::Failed), 2)
        );
    }

    #[tokio::test]
    async fn every_event_is_paged_through_once() {
        let store = InMemoryEventStore::new(10);
        for n in 0..250 {
            let event = deposit(&format!("dep_{n}"), "wal_a", 1);
            record(&store, &event, Utc::now()).await.unwrap();
            record(&store, &event, Utc::now()).await.unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        let mut token = None;
        loop {
            let page = store.all_events(token.as_ref(), 1_000).await.unwrap();
            for recorded in page.events {
                assert!(seen.insert(recorded.event.event_id().to_owned()));
            }
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 250);
    }

    #[tokio::test]
    async fn an_unknown_stream_rebuilds_empty() {
        let store = InMemoryEventStore::new(10);
        let wallet = rebuild_wallet(&store, &wallet("wal_nobody")).await.unwrap();
        assert_eq!((wallet.version, wallet.balance()), (0, Ok(None)));
    }
}
