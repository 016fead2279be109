//! The read models (CQRS) on the local stack: the `read-models` function projecting the bus's
//! events, the API's read endpoints, and a rebuild from the audit trail that equals the live
//! read models after a run of payments.
//!
//! These need the stack running, so `cargo test` alone skips them; `make test` starts the
//! stack and runs them with `--ignored`.

use paysaga_domain::payment::Flow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use chrono::Utc;
use futures::StreamExt;
use lambda_toolkit::sqs_batch::FAILURE_ATTRIBUTE;
use paysaga_aws::{DynamoDbEventStore, DynamoDbReadModels};
use paysaga_domain::events::{EventDetail, FundsDeposited, PaymentEventData};
use paysaga_domain::ports::ReadModelReader;
use paysaga_domain::{DepositId, DomainEvent, Money, PaymentId, PaymentStatus, WalletId};
use paysaga_services::audit::rebuild_wallet;
use paysaga_services::read_models::{
    PageRequest, Revised, TransactionEntry, WalletPayment, rebuild, replay,
};
use paysaga_tests::audit::outcome_recorded;
use paysaga_tests::read_models::{all_payments, all_transactions, live_read_models};
use paysaga_tests::{Stack, deliveries_logged, eventually, unique};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(180);

fn put_entry(stack: &Stack, event: &DomainEvent) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .event_bus_name(&stack.event_bus_name)
        .source(event.source())
        .detail_type(event.detail_type())
        .detail(event.detail_json())
        .build()
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_event_on_the_bus_twice_changes_each_read_model_once() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let models = live_read_models(&stack)?;
    let payer = WalletId::parse(&format!("wal_rm_payer_{}", unique()))?;
    let payee = WalletId::parse(&format!("wal_rm_payee_{}", unique()))?;
    let payment_id = PaymentId::parse(&format!("pay_rm_{}", unique()))?;
    // The wallets exist (the test's caller owns them, so the API serves their lists); the
    // payment between them is only an event on the bus.
    for wallet in [&payer, &payee] {
        let body = json!({"currency": "EUR", "wallet_id": wallet});
        let (status, answer) = stack.post("/wallets", body, None).await?;
        ensure!(status == 201, "POST /wallets answered {status}: {answer}");
    }
    let now = Utc::now();
    let completed = DomainEvent::PaymentCompleted(EventDetail::new(
        format!("{payment_id}/4"),
        now,
        PaymentEventData {
            payment_id: payment_id.clone(),
            flow: Flow::Transfer {
                from_wallet: payer.clone(),
                to_wallet: payee.clone(),
            },
            amount: Money::new(1_250, "EUR".parse()?)?,
            status: PaymentStatus::Completed,
            failure: None,
            requested_at: Some(now - chrono::Duration::seconds(2)),
        },
    ));
    // The same event twice, as an at-least-once publisher may send it.
    let entry = put_entry(&stack, &completed);
    let put = stack
        .eventbridge
        .put_events()
        .entries(entry.clone())
        .entries(entry)
        .send()
        .await?;
    ensure!(put.failed_entry_count() == 0, "PutEvents failed: {put:?}");

    // Both copies handled (not "the queue drained": other tests keep it busy).
    deliveries_logged(completed.event_id(), &["event projected"], 2, SETTLE).await?;

    let sent = all_transactions(&models, &payer).await?;
    let received = all_transactions(&models, &payee).await?;
    let payer_payments = all_payments(&models, &payer).await?;
    let payee_payments = all_payments(&models, &payee).await?;
    for (what, count, revisions) in [
        (
            "payer's transactions",
            sent.len(),
            sent.iter().map(|i| i.revision).collect::<Vec<_>>(),
        ),
        (
            "payee's transactions",
            received.len(),
            received.iter().map(|i| i.revision).collect(),
        ),
        (
            "payer's payments",
            payer_payments.len(),
            payer_payments.iter().map(|i| i.revision).collect(),
        ),
        (
            "payee's payments",
            payee_payments.len(),
            payee_payments.iter().map(|i| i.revision).collect(),
        ),
    ] {
        assert_eq!(
            (count, revisions),
            (1, vec![1]),
            "{what}: one item, changed once"
        );
    }
    assert_eq!(sent[0].entry.amount.minor_units, -1_250);
    assert_eq!(received[0].entry.amount.minor_units, 1_250);
    assert_eq!(sent[0].entry.status, PaymentStatus::Completed);

    // And the API serves them.
    let (status, body) = stack.get(&format!("/wallets/{payer}/transactions")).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["transactions"][0]["transaction_id"],
        payment_id.as_str()
    );
    assert_eq!(
        body["transactions"][0]["amount"],
        json!({"minor_units": -1250, "currency": "EUR"})
    );
    let (status, body) = stack.get(&format!("/payments?wallet={payee}")).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payments"][0]["role"], "payee", "{body}");
    assert_eq!(body["next"], Value::Null);
    let (status, body) = stack.get("/payments").await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    Ok(())
}

/// Pages of at most `limit` items of `wallet`'s payments, each page's payment ids.
async fn payment_pages(
    models: &DynamoDbReadModels,
    wallet: &WalletId,
    limit: u32,
) -> anyhow::Result<Vec<Vec<String>>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = models
            .payments(wallet, &PageRequest::new(Some(limit), after)?)
            .await?;
        pages.push(
            page.items
                .iter()
                .map(|item| item.entry.payment_id.to_string())
                .collect(),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(pages),
        }
    }
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_wallets_payments_are_read_past_the_deposits_between_them() -> anyhow::Result<()> {
    // One list per wallet holds both read models; the payments are its items with a payment
    // entry, read with a filtered query whose Limit counts the deposits it skips too.
    let stack = Stack::connect().await?;
    let models = live_read_models(&stack)?;
    let wallet = WalletId::parse(&format!("wal_rm_mixed_{}", unique()))?;
    let payee = WalletId::parse(&format!("wal_rm_mixed_payee_{}", unique()))?;
    let eur = "EUR".parse()?;
    let start = Utc::now() - chrono::Duration::minutes(10);
    let mut events = Vec::new();
    let mut payments = Vec::new();
    for i in 0..3 {
        let at = start + chrono::Duration::seconds(10 * i);
        for d in 0..3 {
            events.push(DomainEvent::funds_deposited(
                FundsDeposited {
                    deposit_id: DepositId::parse(&format!("dep_rm_mixed_{}_{i}_{d}", unique()))?,
                    wallet_id: wallet.clone(),
                    amount: Money::new(100, eur)?,
                    issued_by: None,
                    reason: None,
                },
                at + chrono::Duration::seconds(d + 1),
            ));
        }
        let payment_id = PaymentId::parse(&format!("pay_rm_mixed_{}_{i}", unique()))?;
        events.push(DomainEvent::PaymentCompleted(EventDetail::new(
            format!("{payment_id}/4"),
            at,
            PaymentEventData {
                payment_id: payment_id.clone(),
                flow: Flow::Transfer {
                    from_wallet: wallet.clone(),
                    to_wallet: payee.clone(),
                },
                amount: Money::new(10, eur)?,
                status: PaymentStatus::Completed,
                failure: None,
                requested_at: Some(at),
            },
        )));
        payments.push(payment_id.to_string());
    }
    replay(&events, &models).await?;
    payments.reverse();

    assert_eq!(all_transactions(&models, &wallet).await?.len(), 12);
    // A page of one payment skips the three deposits above it; a page of two, six.
    for limit in [1, 2, 100] {
        let pages = payment_pages(&models, &wallet, limit).await?;
        let read: Vec<&String> = pages.iter().flatten().collect();
        assert_eq!(
            read,
            payments.iter().collect::<Vec<_>>(),
            "limit {limit}: {pages:?}"
        );
        assert!(
            pages.iter().all(|page| page.len() <= limit as usize),
            "limit {limit}: {pages:?}"
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_event_of_an_unknown_version_ends_in_the_read_models_dlq_with_its_reason()
-> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let deposit_id = format!("dep_rm_{}", unique());
    let deposit = DomainEvent::funds_deposited(
        FundsDeposited {
            deposit_id: DepositId::parse(&deposit_id)?,
            wallet_id: WalletId::parse(&format!("wal_rm_{}", unique()))?,
            amount: Money::new(100, "EUR".parse()?)?,
            issued_by: None,
            reason: None,
        },
        Utc::now(),
    );
    let newer = deposit
        .detail_json()
        .replace(r#""version":1"#, r#""version":2"#);
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(&stack.event_bus_name)
        .source(deposit.source())
        .detail_type(deposit.detail_type())
        .detail(newer)
        .build();
    let put = stack.eventbridge.put_events().entries(entry).send().await?;
    ensure!(put.failed_entry_count() == 0, "PutEvents failed: {put:?}");

    let dlq = &stack.wiring.queue("ReadModelsDeadLetterQueue")?.url;
    let record = eventually(SETTLE, "the event in the read models' DLQ", || async {
        let received = stack
            .sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await?;
        for message in received.messages() {
            if !message.body().unwrap_or_default().contains(&deposit_id) {
                continue;
            }
            let record = message
                .message_attributes()
                .and_then(|attributes| attributes.get(FAILURE_ATTRIBUTE))
                .and_then(|value| value.string_value())
                .map(str::to_owned);
            if let Some(handle) = message.receipt_handle() {
                stack
                    .sqs
                    .delete_message()
                    .queue_url(dlq)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
            return Ok(Some(record));
        }
        Ok(None)
    })
    .await?;
    let record: Value = serde_json::from_str(&record.context("a failure record")?)?;
    assert_eq!(record["kind"], "permanent", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("version 2"), "{record}");
    Ok(())
}

/// What the run did, for the figures.
#[derive(Default, Debug)]
struct Outcomes {
    completed: usize,
    failed: usize,
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn read_models_rebuilt_from_the_audit_trail_after_200_payments_equal_the_live_ones()
-> anyhow::Result<()> {
    const WALLETS: usize = 6;
    const PAYMENTS: usize = 200;
    const FUNDS: u64 = 10_000;
    let stack = Stack::connect().await?;
    let live = live_read_models(&stack)?;
    let run = unique();
    let wallets: Vec<String> = (0..WALLETS).map(|i| format!("wal_rm{i}_{run}")).collect();
    for wallet in &wallets {
        stack.funded_wallet(wallet, "EUR", FUNDS, &unique()).await?;
    }

    // 200 payments between them, 8 at a time. Money only moves between these wallets, so some
    // payments are asked for more than all of them hold together (every 8th): those fail for
    // insufficient funds, whatever the order; the others drain the payers now and then.
    let seed = std::env::var("PAYSAGA_READ_MODELS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let plans: Vec<(String, String, u64)> = (0..PAYMENTS)
        .map(|n| {
            let from = rng.usize(..WALLETS);
            let to = (from + 1 + rng.usize(..WALLETS - 1)) % WALLETS;
            let amount = if n % 8 == 7 {
                FUNDS * WALLETS as u64 + 1
            } else {
                rng.u64(500..=6_000)
            };
            (wallets[from].clone(), wallets[to].clone(), amount)
        })
        .collect();
    let started = Instant::now();
    let submitted: Vec<anyhow::Result<String>> = futures::stream::iter(plans)
        .map(|(from, to, amount)| {
            let stack = &stack;
            async move {
                let body = json!({"from_wallet": from, "to_wallet": to, "amount": {"minor_units": amount, "currency": "EUR"}});
                let (status, accepted) = stack.post("/payments", body, Some(&unique())).await?;
                ensure!(status == 202, "POST /payments answered {status}: {accepted}");
                Ok(accepted["payment_id"].as_str().context("payment_id")?.to_owned())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let payment_ids = submitted.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let submit_time = started.elapsed();

    let mut outcomes = Outcomes::default();
    for payment_id in &payment_ids {
        let settled = stack.settled_payment(payment_id, SETTLE).await?;
        match settled["status"].as_str() {
            Some("COMPLETED") => outcomes.completed += 1,
            _ => outcomes.failed += 1,
        }
    }
    let settle_time = started.elapsed();
    ensure!(
        outcomes.completed > 0 && outcomes.failed > 0,
        "the run needs both outcomes (seed {seed}): {outcomes:?}"
    );

    // The live read models: every payment of the run, final, in both wallets' lists.
    let wallet_ids: Vec<WalletId> = wallets
        .iter()
        .map(|wallet| WalletId::parse(wallet))
        .collect::<Result<_, _>>()?;
    let expected: BTreeSet<&str> = payment_ids.iter().map(String::as_str).collect();
    eventually(
        SETTLE,
        "every payment final in the live read models",
        || async {
            let mut seen = BTreeSet::new();
            for wallet in &wallet_ids {
                for payment in all_payments(&live, wallet).await? {
                    if !payment.entry.status.is_terminal() {
                        return Ok(None);
                    }
                    seen.insert(payment.entry.payment_id.to_string());
                }
            }
            let all = expected.iter().all(|id| seen.contains(*id));
            Ok(all.then_some(()))
        },
    )
    .await?;
    // Everything of the run is in the audit trail: each payment's outcome, and each wallet's
    // events add up to its balance. (Not "the queues drained": other tests keep them busy.)
    let store = DynamoDbEventStore::new(
        stack.dynamodb.clone(),
        stack.wiring.table("EventStoreTable")?,
        0,
    );
    for payment_id in &payment_ids {
        outcome_recorded(&store, payment_id, SETTLE).await?;
    }
    for wallet in &wallet_ids {
        eventually(SETTLE, &format!("{wallet}'s events to add up"), || async {
            let balance = rebuild_wallet(&store, wallet).await?.balance()?;
            let (available, reserved) = stack.balances(wallet.as_str()).await?;
            Ok((balance.map(Money::minor_units) == Some(available + reserved)).then_some(()))
        })
        .await?;
    }

    // Rebuild from the audit trail into a fresh table.
    let fresh_table = format!("{}-rebuild-{}", stack.wiring.table("ReadModelsTable")?, run);
    let rebuilt = DynamoDbReadModels::new(stack.dynamodb.clone(), &fresh_table);
    rebuilt.create_table().await?;
    let rebuild_started = Instant::now();
    let counts = rebuild(&store, &rebuilt).await;
    let rebuild_time = rebuild_started.elapsed();

    let compared = async {
        let counts = counts?;
        // Content, not revisions: a live item's revision counts the changes its deliveries made
        // (PENDING then COMPLETED is 2; an outcome that overtook its request is 1), while the
        // rebuild applies the store's events in scan order, once each. The content is the
        // projection of the item's most advanced event either way.
        let mut items = 0;
        for wallet in &wallet_ids {
            let content = |items: Vec<Revised<TransactionEntry>>| {
                items.into_iter().map(|item| item.entry).collect::<Vec<_>>()
            };
            let live_history = content(all_transactions(&live, wallet).await?);
            assert_eq!(
                live_history,
                content(all_transactions(&rebuilt, wallet).await?),
                "{wallet}'s transactions"
            );
            let payments = |items: Vec<Revised<WalletPayment>>| {
                items.into_iter().map(|item| item.entry).collect::<Vec<_>>()
            };
            let live_payments = payments(all_payments(&live, wallet).await?);
            assert_eq!(
                live_payments,
                payments(all_payments(&rebuilt, wallet).await?),
                "{wallet}'s payments"
            );
            assert_eq!(
                live_history.len(),
                live_payments.len() + 1,
                "{wallet}: its deposit and each of its payments"
            );
            items += live_history.len() + live_payments.len();

            // The wallet rebuilt from its events is its stored balance.
            let balance = rebuild_wallet(&store, wallet).await?.balance()?;
            let (available, reserved) = stack.balances(wallet.as_str()).await?;
            assert_eq!(reserved, 0, "{wallet}: nothing stays reserved");
            assert_eq!(
                balance.map(Money::minor_units),
                Some(available),
                "{wallet} rebuilt from its events"
            );
        }
        let by_status: BTreeMap<&str, usize> =
            [("COMPLETED", outcomes.completed), ("FAILED", outcomes.failed)].into();
        println!(
            "read models: {PAYMENTS} payments between {WALLETS} wallets (seed {seed}): {by_status:?}; \
             submitted in {:.1} s, all final after {:.1} s; rebuilt from {} audit events \
             ({} items written, {} unchanged) in {:.1} s; {items} items of these wallets equal",
            submit_time.as_secs_f64(),
            settle_time.as_secs_f64(),
            counts.events,
            counts.changed,
            counts.unchanged,
            rebuild_time.as_secs_f64(),
        );
        anyhow::Ok(())
    }
    .await;
    stack
        .dynamodb
        .delete_table()
        .table_name(&fresh_table)
        .send()
        .await?;
    compared
}
