//! A hot wallet on the local stack: 2,000 payments from 100 payers into one merchant's wallet,
//! submitted through the API as fast as the stack takes them, the saga at its full concurrency.
//! A third of the way in, the merchant's credits are spread over shards
//! (`paysaga_aws::dynamodb::credit_shards`), as contention spreads them in AWS (DynamoDB Local
//! never cancels a transaction for contention: it makes them wait, so it never would here), so
//! the run crosses from credits on the wallet's own item to credits on its shards while
//! payments are in flight, and saga instances that have not read the wallet since still credit
//! its own item.
//!
//! Asserted: every payment `COMPLETED`; none of them in a dead-letter queue or parked; the
//! merchant's balance exact as the API shows it (the sum of the payments), its own item plus its
//! shards; each payer's balance exact; the merchant's audit stream complete (every payment once,
//! in whichever part of it, and its rebuilt balance the API's); its read models complete (every
//! payment and every transaction once). Then the merchant spends what it received: a transfer of all but one
//! minor unit of it, which its own item alone cannot cover, completes (its shards' credits are
//! folded in first), and its balance is exact again.
//!
//! The simulation at AWS's rates is shared/services/tests/hot_wallet.rs; this is the real
//! adapters on the real local services, at the local stack's rate.
//!
//! Needs the stack (`make run`), then:
//! `cargo test --locked -p paysaga-tests --test hot_wallet -- --ignored --nocapture`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt};
use paysaga_aws::{DynamoDbLedger, DynamoDbParking, TableNames};
use paysaga_domain::ports::EventStore;
use paysaga_domain::{PaymentStatus, WalletId};
use paysaga_services::redrive::ParkingLot;
use paysaga_tests::audit::{event_store, wallet_matches_its_events};
use paysaga_tests::read_models::{all_payments, all_transactions, live_read_models};
use paysaga_tests::{Stack, eventually, unique};
use serde_json::json;

const PAYERS: usize = 100;
const PAYMENTS: usize = 2_000;
/// When the merchant's credits are spread: after this many payments were accepted.
const SPREAD_AFTER: usize = PAYMENTS / 3;
/// Requests in flight at once: more than the saga's concurrency, so it is never idle.
const IN_FLIGHT: usize = 32;
const CURRENCY: &str = "EUR";
const SETTLE_DEADLINE: Duration = Duration::from_secs(600);
/// The queues a payment's messages can end in when their consumers give them up.
const DEAD_LETTER_QUEUES: [&str; 5] = [
    "PaymentsDeadLetterQueue",
    "UrgentPaymentsDeadLetterQueue",
    "PaymentEventsDeadLetterQueue",
    "ReadModelsDeadLetterQueue",
    "AuditTrailDeadLetterQueue",
];

/// Payment `n`'s amount: 100 to 199 minor units, so that a payment lost and another counted
/// twice would not leave the sums as they should be.
fn amount(n: usize) -> u64 {
    100 + (n % 100) as u64
}

/// Submits a payment through the API (`Stack::submit_payment`); the payment's id.
async fn submit(stack: &Stack, from: &str, to: &str, minor_units: u64) -> anyhow::Result<String> {
    let accepted = stack
        .submit_payment(json!({
            "from_wallet": from,
            "to_wallet": to,
            "amount": {"minor_units": minor_units, "currency": CURRENCY},
        }))
        .await?;
    accepted["payment_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no payment_id in {accepted}"))
}

/// The local stack's ledger, as the functions' adapters reach it.
fn ledger(stack: &Stack) -> anyhow::Result<DynamoDbLedger> {
    Ok(DynamoDbLedger::new(
        stack.dynamodb.clone(),
        TableNames {
            wallets: stack.wiring.table("WalletsTable")?.to_owned(),
            payments: stack.wiring.table("PaymentsTable")?.to_owned(),
            idempotency: stack.wiring.table("IdempotencyTable")?.to_owned(),
            outbox: None,
        },
    ))
}

/// The merchant's items as stored: its own item's `available` and `credit_shards`, and the
/// sum of its shards' counters.
async fn stored_items(stack: &Stack, merchant: &str) -> anyhow::Result<(u64, u64, u64)> {
    let table = stack.wiring.table("WalletsTable")?;
    let number = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|value| value.as_n().ok())
            .map_or(Ok(0), |text| text.parse::<u64>())
    };
    let own = stack
        .dynamodb
        .get_item()
        .table_name(table)
        .key("wallet_id", AttributeValue::S(merchant.to_owned()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .context("the merchant's item")?;
    let shards = number(&own, "credit_shards")?;
    let mut credited = 0;
    for k in 0..shards {
        let shard = stack
            .dynamodb
            .get_item()
            .table_name(table)
            .key(
                "wallet_id",
                AttributeValue::S(format!("{merchant}#credits#{k}")),
            )
            .consistent_read(true)
            .send()
            .await?
            .item;
        if let Some(shard) = shard {
            credited += number(&shard, "credited")?;
        }
    }
    Ok((number(&own, "available")?, shards, credited))
}

#[tokio::test]
#[ignore = "needs the local stack: make test runs it"]
async fn two_thousand_payments_into_one_merchant_all_complete_and_add_up() -> anyhow::Result<()> {
    let stack = &Stack::connect().await?;
    let run = unique();
    let merchant = format!("wal_hot_{run}");
    stack
        .funded_wallet(&merchant, CURRENCY, 0, &unique())
        .await?;
    let payers: Vec<String> = (0..PAYERS)
        .map(|n| format!("wal_hp_{run}_{n:03}"))
        .collect();
    let mut owes = vec![0u64; PAYERS];
    for n in 0..PAYMENTS {
        owes[n % PAYERS] += amount(n);
    }
    let funded: Vec<anyhow::Result<()>> =
        stream::iter(payers.iter().zip(&owes))
            .map(|(payer, owed)| async move {
                stack.funded_wallet(payer, CURRENCY, *owed, &unique()).await
            })
            .buffer_unordered(16)
            .collect()
            .await;
    funded.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let expected: u64 = owes.iter().sum();

    // Submit everything, as fast as the API takes it; spread the merchant's credits on the way.
    let started = Instant::now();
    let ledger = ledger(stack)?;
    let merchant_id = WalletId::parse(&merchant)?;
    let mut submissions = stream::iter(0..PAYMENTS)
        .map(|n| {
            let (payer, merchant) = (&payers[n % PAYERS], &merchant);
            async move { submit(stack, payer, merchant, amount(n)).await }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut payment_ids = Vec::with_capacity(PAYMENTS);
    while let Some(submitted) = submissions.next().await {
        payment_ids.push(submitted?);
        if payment_ids.len() == SPREAD_AFTER {
            ledger.spread_credits(&merchant_id).await?;
        }
    }
    drop(submissions);
    let submitted_in = started.elapsed();
    let unique_ids: HashSet<&String> = payment_ids.iter().collect();
    ensure!(unique_ids.len() == PAYMENTS, "one payment per request");

    // Every payment completes: the merchant's read model lists them all COMPLETED.
    let models = live_read_models(stack)?;
    eventually(SETTLE_DEADLINE, "every payment to complete", || async {
        let listed = all_payments(&models, &merchant_id).await?;
        let completed = listed
            .iter()
            .filter(|payment| payment.entry.status == PaymentStatus::Completed)
            .count();
        Ok((completed == PAYMENTS).then_some(()))
    })
    .await?;
    let completed_in = started.elapsed();
    println!(
        "{PAYMENTS} payments from {PAYERS} payers into one wallet: submitted in {:.1} s \
         ({:.1}/s), all completed after {:.1} s ({:.1}/s)",
        submitted_in.as_secs_f64(),
        PAYMENTS as f64 / submitted_in.as_secs_f64(),
        completed_in.as_secs_f64(),
        PAYMENTS as f64 / completed_in.as_secs_f64(),
    );

    // ... and as the API reads each from its log.
    let statuses: Vec<anyhow::Result<(String, String)>> = stream::iter(&payment_ids)
        .map(|id| async move {
            let (status, body) = stack.get(&format!("/payments/{id}")).await?;
            ensure!(status == 200, "GET /payments/{id}: {status} {body}");
            Ok((
                id.clone(),
                body["status"].as_str().unwrap_or("?").to_owned(),
            ))
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for status in statuses {
        let (id, status) = status?;
        ensure!(status == "COMPLETED", "payment {id} is {status}");
    }

    // The money, exact: the merchant holds every payment, on its own item and its shards; each
    // payer holds nothing more.
    let (available, reserved) = stack.balances(&merchant).await?;
    ensure!(
        (available, reserved) == (expected, 0),
        "the merchant holds {available} + {reserved}, expected {expected}"
    );
    let (own, shards, on_shards) = stored_items(stack, &merchant).await?;
    println!(
        "the merchant's own item holds {own}, its {shards} shards {on_shards} (of {expected})"
    );
    ensure!(shards > 0, "the merchant's credits were spread");
    ensure!(
        own + on_shards == expected && own > 0 && on_shards > 0,
        "credits went to both the wallet's item (before the spread) and its shards (after)"
    );
    for payer in &payers {
        ensure!(
            stack.balances(payer).await? == (0, 0),
            "{payer} paid what it held"
        );
    }

    // Nothing given up: none of these payments' messages in a dead-letter queue, none parked.
    for queue in DEAD_LETTER_QUEUES {
        let bodies = stack.every_message(queue).await?;
        ensure!(
            !bodies.iter().any(|body| body.contains(&merchant)),
            "a message about the merchant in {queue}"
        );
    }
    let parking = DynamoDbParking::new(
        stack.dynamodb.clone(),
        stack.wiring.table("ParkedMessagesTable")?.to_owned(),
    );
    let mut after = None;
    loop {
        let page = parking.list(100, after.as_deref()).await?;
        ensure!(
            !page
                .messages
                .iter()
                .any(|parked| parked.body.contains(&merchant)),
            "a message about the merchant parked"
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    // The audit stream complete: every payment once, and the balance it rebuilds the API's.
    let store = event_store(stack)?;
    let rebuilt = eventually(SETTLE_DEADLINE, "the merchant's audit stream", || async {
        let rebuilt = paysaga_services::audit::rebuild_wallet(&store, &merchant_id).await?;
        let credited = rebuilt
            .totals
            .map_or(0, |totals| totals.credited.minor_units());
        Ok((credited == expected).then_some(rebuilt))
    })
    .await?;
    ensure!(
        rebuilt.version == PAYMENTS as u64,
        "{} events in the merchant's stream, {PAYMENTS} payments",
        rebuilt.version
    );
    // DynamoDB Local lets no two appends take one version either: the audit trail's consumers
    // race for the merchant's stream here too, and spread it when they keep losing.
    let parts = store.wallet_parts(&merchant_id).await?;
    println!("the merchant's audit stream: {PAYMENTS} events in {parts} part(s)");
    wallet_matches_its_events(stack, &store, &merchant).await?;

    // The read models complete: every payment and every transaction once.
    let listed = all_payments(&models, &merchant_id).await?;
    let listed_ids: HashSet<String> = listed
        .iter()
        .map(|payment| payment.entry.payment_id.as_str().to_owned())
        .collect();
    ensure!(
        listed.len() == PAYMENTS && listed_ids.len() == PAYMENTS,
        "{} payments listed",
        listed.len()
    );
    let transactions = eventually(SETTLE_DEADLINE, "the merchant's transactions", || async {
        let transactions = all_transactions(&models, &merchant_id).await?;
        Ok((transactions.len() >= PAYMENTS).then_some(transactions))
    })
    .await?;
    let received: i64 = transactions
        .iter()
        .map(|entry| entry.entry.amount.minor_units)
        .sum();
    ensure!(
        transactions.len() == PAYMENTS && u64::try_from(received) == Ok(expected),
        "{} transactions, {received} received",
        transactions.len()
    );

    // The merchant spends what it received: more than its own item holds, so the shards'
    // credits are folded in first.
    let spend = expected - 1;
    ensure!(spend > own, "the spend needs the shards' credits");
    let payment = submit(stack, &merchant, &payers[0], spend).await?;
    let settled = stack.settled_payment(&payment, SETTLE_DEADLINE).await?;
    ensure!(settled["status"] == "COMPLETED", "{settled}");
    ensure!(stack.balances(&merchant).await? == (1, 0));
    ensure!(stack.balances(&payers[0]).await? == (spend, 0));
    Ok(())
}
