//! The audit trail on the local stack: every event on the bus lands once in the event store
//! (`audit-trail` function, `EventStoreTable`), and wallets and payments rebuilt from their
//! events, through snapshots, equal what the ledger holds; an operator's deposits and actions
//! are in their own stream.
//!
//! These need the stack running, so `cargo test` alone skips them; `make test` starts the
//! stack and runs them with `--ignored`.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use chrono::Utc;
use paysaga_domain::events::FundsDeposited;
use paysaga_domain::history::StreamId;
use paysaga_domain::ports::EventStore;
use paysaga_domain::{DepositId, DomainEvent, Money, OperatorKey, Owner, WalletId};
use paysaga_services::audit::rebuild_operator;
use paysaga_tests::audit::{
    event_store, outcome_recorded, payment_matches_its_events, snapshot_every,
    wallet_matches_its_events, wallet_stream_is_whole,
};
use paysaga_tests::{Stack, deliveries_logged, eventually, unique};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(180);

fn put_entry(stack: &Stack, event: &DomainEvent) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .event_bus_name(&stack.event_bus_name)
        .source(event.source())
        .detail_type(event.detail_type())
        .detail(event.detail_json())
        .build()
}

async fn put_events(stack: &Stack, events: &[&DomainEvent]) -> anyhow::Result<()> {
    let entries = events.iter().map(|event| put_entry(stack, event)).collect();
    let answer = stack
        .eventbridge
        .put_events()
        .set_entries(Some(entries))
        .send()
        .await?;
    ensure!(
        answer.failed_entry_count() == 0,
        "PutEvents failed: {answer:?}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_event_on_the_bus_twice_is_one_audit_entry() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let store = event_store(&stack)?;
    let wallet = WalletId::parse(&format!("wal_audit_{}", unique()))?;
    let deposit = DomainEvent::funds_deposited(
        FundsDeposited {
            deposit_id: DepositId::parse(&format!("dep_audit_{}", unique()))?,
            wallet_id: wallet.clone(),
            amount: Money::new(4_200, "EUR".parse()?)?,
            issued_by: None,
            reason: None,
        },
        Utc::now(),
    );
    let stream = StreamId::Wallet(wallet.clone());
    // Twice in one PutEvents (the two copies race each other in one batch), then a third time
    // once the first is recorded (the duplicate a redelivery or a re-publication makes).
    put_events(&stack, &[&deposit, &deposit]).await?;
    let started = Instant::now();
    eventually(SETTLE, "the deposit in the audit trail", || async {
        Ok((!store.stream(&stream, 0).await?.is_empty()).then_some(()))
    })
    .await?;
    let recorded_after = started.elapsed();
    put_events(&stack, &[&deposit]).await?;
    // All three copies handled (not "the queue drained": other tests keep it busy).
    let handled = ["event appended", "event already in the audit trail"];
    deliveries_logged(deposit.event_id(), &handled, 3, SETTLE).await?;

    let entries = store.stream(&stream, 0).await?;
    let versions: Vec<u64> = entries.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, [1], "one entry, version 1: {entries:?}");
    assert_eq!(entries[0].event, deposit);
    let rebuilt = wallet_balance(&store, &wallet).await?;
    assert_eq!(rebuilt, 4_200);
    // Other tests share the DLQ (an event of an unknown version goes there): this one's copies
    // must not be in it.
    let dead = stack.peek("AuditTrailDeadLetterQueue").await?;
    let deposit_id = deposit.event_id();
    assert!(
        !dead.iter().any(|body| body.contains(deposit_id)),
        "a copy of {deposit_id} went to the DLQ: {dead:?}"
    );
    println!(
        "audit trail: event recorded {:.0} ms after PutEvents; 3 deliveries, 1 entry",
        recorded_after.as_secs_f64() * 1_000.0
    );
    Ok(())
}

async fn wallet_balance(
    store: &paysaga_aws::DynamoDbEventStore,
    wallet: &WalletId,
) -> anyhow::Result<u64> {
    let rebuilt = paysaga_services::audit::rebuild_wallet(store, wallet).await?;
    Ok(rebuilt
        .balance()?
        .map(|money| money.minor_units())
        .unwrap_or(0))
}

/// Submits a payment through the API; answers its id.
async fn pay(stack: &Stack, from: &str, to: &str, minor_units: u64) -> anyhow::Result<String> {
    let body = json!({"from_wallet": from, "to_wallet": to, "amount": {"minor_units": minor_units, "currency": "EUR"}});
    let (status, accepted) = stack.post("/payments", body, Some(&unique())).await?;
    ensure!(
        status == 202,
        "POST /payments answered {status}: {accepted}"
    );
    accepted["payment_id"]
        .as_str()
        .map(str::to_owned)
        .context("the answer names the payment")
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn wallets_and_payments_rebuilt_from_their_events_equal_the_ledger() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let store = event_store(&stack)?;
    let every = snapshot_every(&stack)?;
    let started = Instant::now();
    let (alice, bob, carol) = (
        format!("wal_audit_alice_{}", unique()),
        format!("wal_audit_bob_{}", unique()),
        format!("wal_audit_carol_{}", unique()),
    );
    // Alice and Bob: ten deposits each, each recorded in the audit trail before the next, so
    // that their streams pass a snapshot before the payments below; Carol: one. (Appends at
    // once to one stream may spread it into parts, each snapshotted on its own: a burst first
    // could leave no part with ten events.)
    let record_deposits = |wallet: String, amount: u64| {
        let (stack, store) = (&stack, &store);
        async move {
            stack.funded_wallet(&wallet, "EUR", 0, "").await?;
            for n in 0..10 {
                stack
                    .operator_deposit(&wallet, "EUR", amount, &format!("audit-{wallet}-{n}"))
                    .await?;
                let deposited = amount * (n + 1);
                eventually(
                    SETTLE,
                    &format!("{wallet}'s deposit {n} in the audit trail"),
                    || {
                        let wallet = wallet.clone();
                        async move {
                            let rebuilt = wallet_balance(store, &WalletId::parse(&wallet)?).await?;
                            Ok((rebuilt == deposited).then_some(()))
                        }
                    },
                )
                .await?;
            }
            anyhow::Ok(())
        }
    };
    tokio::try_join!(
        record_deposits(alice.clone(), 10_000),
        record_deposits(bob.clone(), 100)
    )?;
    stack
        .funded_wallet(&carol, "EUR", 500, &format!("audit-{carol}"))
        .await?;

    // 12 payments Alice -> Bob and 4 Bob -> Carol, 1 Carol -> Alice, and 2 that fail for want of funds.
    let mut payments = Vec::new();
    let mut submitted = Vec::new();
    for n in 0..12 {
        submitted.push((alice.clone(), bob.clone(), 1_000 + n * 10));
    }
    for _ in 0..4 {
        submitted.push((bob.clone(), carol.clone(), 700));
    }
    submitted.push((carol.clone(), alice.clone(), 250));
    submitted.push((carol.clone(), bob.clone(), 10_000_000));
    submitted.push((bob.clone(), alice.clone(), 99_000_000));
    let payment_ids = futures::future::try_join_all(
        submitted
            .iter()
            .map(|(from, to, amount)| pay(&stack, from, to, *amount)),
    )
    .await?;
    for payment_id in &payment_ids {
        let settled = stack.settled_payment(payment_id, SETTLE).await?;
        payments.push((payment_id.clone(), settled));
    }
    let failed = payments
        .iter()
        .filter(|(_, settled)| settled["status"] == "FAILED")
        .count();
    ensure!(
        failed >= 2,
        "the over-large payments must fail: {payments:?}"
    );
    // Every outcome reached the audit trail.
    for (payment_id, _) in &payments {
        outcome_recorded(&store, payment_id, SETTLE).await?;
    }
    // Every deposit reached the wallets' streams too: each wallet's stream adds up to its
    // balance (checked again below, with the reason when it does not).
    for wallet in [&alice, &bob, &carol] {
        eventually(SETTLE, &format!("{wallet}'s events to add up"), || async {
            Ok(wallet_matches_its_events(&stack, &store, wallet).await.ok())
        })
        .await?;
    }

    for (payment_id, _) in &payments {
        let rebuilt = payment_matches_its_events(&stack, &store, payment_id).await?;
        assert_eq!(
            rebuilt.version, 2,
            "{payment_id}: its request and its outcome"
        );
    }
    let mut snapshotted = 0;
    for wallet in [&alice, &bob, &carol] {
        let rebuilt = wallet_matches_its_events(&stack, &store, wallet).await?;
        let whole = wallet_stream_is_whole(&store, &WalletId::parse(wallet)?, every).await?;
        assert_eq!(rebuilt.version, whole.events, "{wallet}: every event once");
        if whole.snapshotted_parts > 0 {
            snapshotted += 1;
        }
        println!("{wallet}'s stream: {whole:?}");
    }
    ensure!(
        snapshotted >= 2,
        "Alice's and Bob's streams must pass a snapshot (every {every})"
    );
    println!(
        "audit trail: {} payments ({failed} failed) and 21 deposits rebuilt from the event store, \
         {snapshotted} wallets through a snapshot (every {every}), in {:.1} s",
        payments.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn concurrent_appends_to_one_stream_get_gap_free_versions_and_page_once() -> anyhow::Result<()>
{
    let stack = Stack::connect().await?;
    let store = event_store(&stack)?;
    let wallet = WalletId::parse(&format!("wal_audit_busy_{}", unique()))?;
    let deposits: Vec<DomainEvent> = (0..24)
        .map(|n| {
            Ok(DomainEvent::funds_deposited(
                FundsDeposited {
                    deposit_id: DepositId::parse(&format!("dep_audit_{n}_{}", unique()))?,
                    wallet_id: wallet.clone(),
                    amount: Money::new(100 + n, "EUR".parse()?)?,
                    issued_by: None,
                    reason: None,
                },
                Utc::now(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    // And 12 payments into the wallet: events claimed in their payments' streams, not by
    // markers.
    let mut events = deposits;
    for n in 0..12 {
        let payer = WalletId::parse(&format!("wal_audit_payer_{n}_{}", unique()))?;
        events.push(completed_payment(&payer, &wallet, 1_000 + n)?);
    }
    // 36 appenders at once, each also appending its event a second time; a version conflict
    // that outlasts the store's own retries is contention, retried here as a redelivery would.
    let started = Instant::now();
    let contended = std::sync::atomic::AtomicU64::new(0);
    let appends = events.iter().chain(events.iter()).map(|event| async {
        loop {
            match store.append(event, Utc::now()).await {
                Ok(outcome) => return Ok(outcome),
                Err(paysaga_domain::ports::StoreError::Contended(..)) => {
                    contended.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(error) => return Err(error),
            }
        }
    });
    let outcomes = futures::future::try_join_all(appends).await?;
    let elapsed = started.elapsed();
    let appended = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, paysaga_domain::ports::AppendOutcome::Appended(_)))
        .count();
    assert_eq!(appended, 36, "each event appended once");

    // Each part of the stream (48 appends at once may spread it, as a hot wallet's) gap-free,
    // each event in one part.
    let whole = wallet_stream_is_whole(&store, &wallet, snapshot_every(&stack)?).await?;
    assert_eq!(whole.events, 36, "every event once: {whole:?}");
    let expected: u64 =
        (0..24).map(|n| 100 + n).sum::<u64>() + (0..12).map(|n| 1_000 + n).sum::<u64>();
    assert_eq!(wallet_balance(&store, &wallet).await?, expected);

    // Paging through the whole store finds each of these events once.
    let mut found = std::collections::HashMap::<String, usize>::new();
    let mut token = None;
    let mut pages = 0;
    let mut total = 0;
    loop {
        let page = store.all_events(token.as_ref(), 1_000).await?;
        pages += 1;
        total += page.events.len();
        for recorded in &page.events {
            let ours = match &recorded.event {
                DomainEvent::FundsDeposited(detail) => detail.data.wallet_id == wallet,
                DomainEvent::PaymentCompleted(detail) => {
                    detail.data.flow.wallet_ids().contains(&wallet)
                }
                _ => false,
            };
            if ours {
                *found
                    .entry(recorded.event.event_id().to_owned())
                    .or_default() += 1;
            }
        }
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(found.len(), 36);
    assert!(found.values().all(|count| *count == 1), "{found:?}");
    println!(
        "audit trail: 72 concurrent appends (36 events twice) to one stream in {:.0} ms, \
         {} conflicts past the store's retries, retried; the stream in {} part(s); all_events: \
         {total} events in {pages} pages",
        elapsed.as_secs_f64() * 1_000.0,
        contended.load(std::sync::atomic::Ordering::Relaxed),
        whole.parts
    );
    Ok(())
}

/// A payment's outcome event, as the relay publishes it: `minor_units` from `payer` to `payee`.
fn completed_payment(
    payer: &WalletId,
    payee: &WalletId,
    minor_units: u64,
) -> anyhow::Result<DomainEvent> {
    let request = paysaga_domain::PaymentRequest::new(
        paysaga_domain::PaymentId::parse(&format!("pay_audit_claim_{}", unique()))?,
        payer.clone(),
        payee.clone(),
        Money::new(minor_units, "EUR".parse()?)?,
    )?;
    let mut payment =
        paysaga_domain::Payment::from_log(&[paysaga_domain::PaymentLogEntry::requested(
            request,
            Utc::now(),
        )])?;
    payment.status = paysaga_domain::PaymentStatus::Completed;
    payment.version = 4;
    DomainEvent::payment_outcome(&payment).context("a completed payment has an outcome")
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_append_stopped_after_its_claim_is_finished_by_the_next_delivery() -> anyhow::Result<()>
{
    let stack = Stack::connect().await?;
    let store = event_store(&stack)?;
    let table = stack.wiring.table("EventStoreTable")?;
    let payer = WalletId::parse(&format!("wal_audit_payer_{}", unique()))?;
    let payee = WalletId::parse(&format!("wal_audit_payee_{}", unique()))?;
    let completed = completed_payment(&payer, &payee, 250)?;
    let paysaga_domain::ports::AppendOutcome::Appended(claimed) =
        store.append(&completed, Utc::now()).await?
    else {
        anyhow::bail!("a new event is appended");
    };
    let (payer_stream, payee_stream) = (
        StreamId::Wallet(payer.clone()),
        StreamId::Wallet(payee.clone()),
    );
    ensure!(
        claimed[1..] == [(payer_stream.clone(), 1), (payee_stream.clone(), 1)],
        "{claimed:?}"
    );

    // A delivery that stopped after its claim (the entry in the payment's stream): the wallets'
    // entries were never put. Meanwhile a deposit took the payee's version 1.
    for (stream, version) in &claimed[1..] {
        stack
            .dynamodb
            .delete_item()
            .table_name(table)
            .key(
                "stream",
                aws_sdk_dynamodb::types::AttributeValue::S(stream.to_string()),
            )
            .key(
                "version",
                aws_sdk_dynamodb::types::AttributeValue::N(version.to_string()),
            )
            .send()
            .await?;
    }
    let deposit = DomainEvent::funds_deposited(
        FundsDeposited {
            deposit_id: DepositId::parse(&format!("dep_audit_claim_{}", unique()))?,
            wallet_id: payee.clone(),
            amount: Money::new(1_000, "EUR".parse()?)?,
            issued_by: None,
            reason: None,
        },
        Utc::now(),
    );
    ensure!(matches!(
        store.append(&deposit, Utc::now()).await?,
        paysaga_domain::ports::AppendOutcome::Appended(_)
    ));

    // The next delivery finishes the append (a duplicate: the claim was made before): the
    // payer's entry where the claim said, the payee's after the deposit, the claim moved there.
    ensure!(matches!(
        store.append(&completed, Utc::now()).await?,
        paysaga_domain::ports::AppendOutcome::Duplicate
    ));
    let versions = |events: Vec<paysaga_domain::history::StreamEvent>| {
        events
            .into_iter()
            .map(|entry| (entry.version, entry.event.event_id().to_owned()))
            .collect::<Vec<_>>()
    };
    ensure!(
        versions(store.stream(&payer_stream, 0).await?) == [(1, completed.event_id().to_owned())]
    );
    ensure!(
        versions(store.stream(&payee_stream, 0).await?)
            == [
                (1, deposit.event_id().to_owned()),
                (2, completed.event_id().to_owned())
            ]
    );
    ensure!(wallet_balance(&store, &payee).await? == 1_250);
    let (mut claims, mut token) = (Vec::new(), None);
    loop {
        let page = store.all_events(token.as_ref(), 1_000).await?;
        claims.extend(
            page.events
                .iter()
                .filter(|recorded| recorded.event.event_id() == completed.event_id())
                .map(|recorded| recorded.positions.clone()),
        );
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    ensure!(
        claims
            == [vec![
                claimed[0].clone(),
                (payer_stream, 1),
                (payee_stream, 2)
            ]],
        "the claim, moved: {claims:?}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_operators_deposits_and_actions_are_in_their_own_stream() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let store = event_store(&stack)?;
    let subject = format!("ops-audit-{}", unique());
    let token = stack
        .tokens
        .token(&subject, true, Duration::from_secs(600))?;
    let wallet = format!("wal_ops_{}", unique());
    stack.funded_wallet(&wallet, "EUR", 0, "no deposit").await?;

    let deposit = json!({"amount": {"minor_units": 700, "currency": "EUR"},
        "reason": "goodwill credit, OPS-5"});
    let (status, deposited) = stack
        .call_with_token(
            Some(&token),
            reqwest::Method::POST,
            &format!("/admin/wallets/{wallet}/deposits"),
            Some(deposit),
            Some(&format!("ops-deposit-{}", unique())),
        )
        .await?;
    ensure!(
        status == 201,
        "the operator's deposit: {status} {deposited}"
    );
    let (status, page) = stack
        .call_with_token(
            Some(&token),
            reqwest::Method::POST,
            "/admin/read-models/rebuild",
            Some(json!({"reason": "restore drill, OPS-6"})),
            None,
        )
        .await?;
    ensure!(status == 200, "a rebuild page: {status} {page}");

    let operator = Owner::parse(&subject)?;
    let rebuilt = eventually(
        SETTLE,
        "the operator's two actions in the trail",
        || async {
            let rebuilt = rebuild_operator(&store, &operator).await?;
            Ok((rebuilt.version == 2).then_some(rebuilt))
        },
    )
    .await?;
    ensure!(
        (rebuilt.deposits, rebuilt.actions) == (1, 1),
        "one deposit and one rebuild page: {rebuilt:?}"
    );
    let stream = StreamId::Operator(OperatorKey::of(&operator));
    let recorded = store.stream(&stream, 0).await?;
    ensure!(
        recorded
            .iter()
            .any(|entry| Some(entry.event.event_id()) == page["action_id"].as_str()),
        "the rebuild's record is the action the API answered: {recorded:?}"
    );
    // The deposit is in the wallet's stream too, with who issued it and why.
    let wallet_stream =
        paysaga_services::audit::wallet_events(&store, &WalletId::parse(&wallet)?).await?;
    let [entry] = &wallet_stream[..] else {
        anyhow::bail!("one deposit in {wallet}'s stream: {wallet_stream:?}")
    };
    let DomainEvent::FundsDeposited(detail) = &entry.event else {
        anyhow::bail!("a FundsDeposited: {:?}", entry.event)
    };
    ensure!(detail.data.issued_by.as_ref() == Some(&operator));
    ensure!(
        detail.data.reason.as_ref().map(|reason| reason.as_str()) == Some("goodwill credit, OPS-5")
    );
    Ok(())
}
