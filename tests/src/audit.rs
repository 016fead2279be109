//! The audit trail as the integration tests read it: the event store of the local stack, and
//! checks that a wallet or a payment rebuilt from its events equals what the ledger holds.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use paysaga_aws::DynamoDbEventStore;
use paysaga_domain::history::{
    AggregateState, DEFAULT_SNAPSHOT_EVERY, PaymentAggregate, StreamId, WalletAggregate,
    snapshot_due,
};
use paysaga_domain::ports::EventStore;
use paysaga_domain::{PaymentId, PaymentStatus, WalletId};
use paysaga_services::audit::{rebuild_payment, rebuild_wallet};

use crate::{Stack, eventually};

/// The local stack's event store (`EventStoreTable`), with the audit-trail function's
/// `SNAPSHOT_EVERY`.
pub fn event_store(stack: &Stack) -> anyhow::Result<DynamoDbEventStore> {
    Ok(DynamoDbEventStore::new(
        stack.dynamodb.clone(),
        stack.wiring.table("EventStoreTable")?,
        snapshot_every(stack)?,
    ))
}

/// How often the audit-trail function snapshots a stream, as the wiring configures it.
pub fn snapshot_every(stack: &Stack) -> anyhow::Result<u64> {
    match stack.wiring.function_env("audit-trail", "SNAPSHOT_EVERY") {
        Ok(value) => value
            .parse()
            .with_context(|| format!("SNAPSHOT_EVERY is {value:?}")),
        Err(_) => Ok(DEFAULT_SNAPSHOT_EVERY),
    }
}

/// Waits until the payment's outcome (COMPLETED or FAILED) is in the audit trail.
pub async fn outcome_recorded(
    store: &DynamoDbEventStore,
    payment_id: &str,
    deadline: Duration,
) -> anyhow::Result<()> {
    let id = PaymentId::parse(payment_id)?;
    let what = format!("{payment_id}'s outcome in the audit trail");
    eventually(deadline, &what, || async {
        let rebuilt = rebuild_payment(store, &id).await?;
        Ok(rebuilt
            .status
            .is_some_and(PaymentStatus::is_terminal)
            .then_some(()))
    })
    .await
}

/// Rebuilds a wallet from its events and checks it against the wallet the API serves: the
/// same currency, and a balance equal to its available plus reserved funds. Answers the
/// rebuilt wallet.
pub async fn wallet_matches_its_events(
    stack: &Stack,
    store: &DynamoDbEventStore,
    wallet_id: &str,
) -> anyhow::Result<WalletAggregate> {
    let id = WalletId::parse(wallet_id)?;
    let rebuilt = rebuild_wallet(store, &id)
        .await
        .with_context(|| format!("rebuilding {wallet_id}"))?;
    let (status, live) = stack.get(&format!("/wallets/{wallet_id}")).await?;
    ensure!(
        status == 200,
        "GET /wallets/{wallet_id} answered {status}: {live}"
    );
    let minor_units = |field: &str| {
        live[field]["minor_units"]
            .as_u64()
            .with_context(|| format!("{field} in {live}"))
    };
    let stored = minor_units("available")? + minor_units("reserved")?;
    let rebuilt_balance = rebuilt
        .balance()
        .with_context(|| format!("{wallet_id}'s events"))?
        .map(|money| money.minor_units())
        .unwrap_or(0);
    if rebuilt_balance != stored {
        bail!(
            "{wallet_id}: rebuilt from {} events {rebuilt_balance}, stored {stored} ({live})",
            rebuilt.version
        );
    }
    if let Some(currency) = rebuilt.currency() {
        ensure!(
            live["currency"].as_str() == Some(currency.code()),
            "{wallet_id}: rebuilt in {currency}, stored {live}"
        );
    }
    Ok(rebuilt)
}

/// Checks every part of a wallet's stream (one, unless appends to it contended and spread it):
/// each numbered 1, 2, 3, ... without gaps or repeats, its latest snapshot at the last version
/// due one (a snapshot every `every` versions), and no event in two parts. Answers what the
/// parts hold.
pub async fn wallet_stream_is_whole(
    store: &DynamoDbEventStore,
    wallet: &WalletId,
    every: u64,
) -> anyhow::Result<WholeStream> {
    let parts = store.wallet_parts(wallet).await?;
    let mut whole = WholeStream {
        events: 0,
        parts,
        snapshotted_parts: 0,
    };
    let mut seen = std::collections::HashSet::new();
    for part in 0..parts {
        let stream = StreamId::wallet_part(wallet.clone(), part);
        let entries = store.stream(&stream, 0).await?;
        let versions: Vec<u64> = entries.iter().map(|entry| entry.version).collect();
        let expected: Vec<u64> = (1..=entries.len() as u64).collect();
        ensure!(
            versions == expected,
            "{stream}: gaps or repeats: {versions:?}"
        );
        for entry in &entries {
            ensure!(
                seen.insert(entry.event.event_id().to_owned()),
                "{stream}: event {} is in another part too",
                entry.event.event_id()
            );
        }
        let snapshot = store.latest_snapshot(&stream).await?;
        let due = (1..=entries.len() as u64)
            .filter(|version| snapshot_due(*version, every))
            .max();
        ensure!(
            snapshot.as_ref().map(AggregateState::version) == due,
            "{stream}: the latest snapshot is at {:?}, due at {due:?}",
            snapshot.as_ref().map(AggregateState::version)
        );
        whole.events += entries.len() as u64;
        whole.snapshotted_parts += u16::from(snapshot.is_some());
    }
    Ok(whole)
}

/// What a wallet's stream holds, in all its parts ([`wallet_stream_is_whole`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeStream {
    pub events: u64,
    pub parts: u16,
    /// Parts with a snapshot.
    pub snapshotted_parts: u16,
}

/// Rebuilds a payment from its events and checks it against the payment the API serves:
/// status, failure code, amount and wallets. Answers the rebuilt payment.
pub async fn payment_matches_its_events(
    stack: &Stack,
    store: &DynamoDbEventStore,
    payment_id: &str,
) -> anyhow::Result<PaymentAggregate> {
    let id = PaymentId::parse(payment_id)?;
    let rebuilt = rebuild_payment(store, &id)
        .await
        .with_context(|| format!("rebuilding {payment_id}"))?;
    let (status, live) = stack.get(&format!("/payments/{payment_id}")).await?;
    ensure!(
        status == 200,
        "GET /payments/{payment_id} answered {status}: {live}"
    );
    let rebuilt_status = rebuilt
        .status
        .map(|status| serde_json::to_value(status).unwrap_or_default());
    ensure!(
        rebuilt_status.as_ref() == Some(&live["status"]),
        "{payment_id}: rebuilt {rebuilt_status:?}, live {live}"
    );
    let rebuilt_failure = rebuilt.failure.as_ref().map(|reason| reason.code());
    ensure!(
        rebuilt_failure == live["failure"]["code"].as_str(),
        "{payment_id}: rebuilt failure {rebuilt_failure:?}, live {live}"
    );
    let terms = rebuilt
        .terms
        .as_ref()
        .with_context(|| format!("{payment_id} has no events"))?;
    ensure!(
        live["amount"]["minor_units"].as_u64() == Some(terms.amount.minor_units())
            && live["from_wallet"].as_str() == terms.flow.from_wallet().map(WalletId::as_str)
            && live["to_wallet"].as_str() == terms.flow.to_wallet().map(WalletId::as_str),
        "{payment_id}: rebuilt terms {terms:?}, live {live}"
    );
    Ok(rebuilt)
}
