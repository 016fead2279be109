//! The priority lane: with a backlog of ordinary payments queued, urgent payments sent after
//! them complete first, because they travel on their own queue (`UrgentPaymentsQueue`), read by
//! the payment saga through a trigger of its own with its own concurrency.
//!
//! Fresh wallets; 500 ordinary payments queued on `PaymentsQueue` at once, each message as
//! `PaymentRequestedRule` delivers a `PaymentRequested` event, then 16 urgent ones submitted
//! through the API (and so through the bus and `UrgentPaymentRequestedRule`). What is judged is
//! the lane, so the backlog must be deep when the urgent payments are requested, whatever else
//! the stack is doing: built through the API (21-24 payments/s here, since it checks each
//! caller's wallet) or through the bus (`PutEvents`, 87/s on a quiet LocalStack, fewer while
//! earlier tests' events are still flowing: a fresh clone at 6082188 saw 226 of the 500
//! completed by the time the last was on the bus), the saga drained it nearly as fast as it
//! was built. Latency is each payment's own: from its request (`created_at`: the event's
//! `occurred_at`, or the API's clock) to its completion (`updated_at`, written by the saga's
//! last step), so how often the test polls does not change it. Both distributions are printed.
//!
//! The promise, asserted: every urgent payment completed before the median ordinary payment
//! did, and the slowest urgent payment took less time than the median ordinary one. So that
//! this proves something, the backlog is checked too: when the first urgent payment was
//! requested, at least half of the ordinary payments had not completed yet. With one queue for
//! both, the urgent payments would wait behind that backlog and the test would fail.
//!
//! A `PaymentRequested` event without a `priority` (as written before priorities existed) still
//! reaches the saga, on the ordinary queue, and completes as an ordinary payment.
//!
//! Needs the stack (`make run`), then:
//! `cargo test --locked -p paysaga-tests --test priority -- --ignored --nocapture`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use paysaga_domain::{DomainEvent, Money, PaymentId, PaymentRequest, WalletId};
use paysaga_tests::{Stack, eventually, unique};
use serde_json::{Value, json};

const ORDINARY: usize = 500;
const URGENT: usize = 16;
/// Ordinary payments go round-robin from this many payers to as many payees, so that
/// concurrent payments rarely touch the same wallet.
const ORDINARY_PAIRS: usize = 50;
const AMOUNT: u64 = 100;
const CURRENCY: &str = "EUR";
/// Requests in flight at once.
const IN_FLIGHT: usize = 32;
const SETTLE_DEADLINE: Duration = Duration::from_secs(180);

/// A payment as the API shows it once it is terminal.
#[derive(Debug)]
struct Settled {
    status: String,
    priority: String,
    requested_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
}

impl Settled {
    fn latency_ms(&self) -> i64 {
        (self.finished_at - self.requested_at).num_milliseconds()
    }
}

/// Submits a payment through the API (`Stack::submit_payment`); the payment's id.
async fn submit(stack: &Stack, from: &str, to: &str, urgent: bool) -> anyhow::Result<String> {
    let mut body = json!({
        "from_wallet": from,
        "to_wallet": to,
        "amount": {"minor_units": AMOUNT, "currency": CURRENCY},
    });
    if urgent {
        body["priority"] = json!("urgent");
    }
    let accepted = stack.submit_payment(body).await?;
    let expected = if urgent { "urgent" } else { "ordinary" };
    ensure!(accepted["priority"] == expected, "{accepted}");
    accepted["payment_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no payment_id in {accepted}"))
}

/// Queues an ordinary payment for every (payer, payee) pair on `PaymentsQueue`, each message
/// as `PaymentRequestedRule` delivers a `PaymentRequested` event (its EventBridge envelope), ten
/// per `SendMessageBatch` call, `IN_FLIGHT` calls at a time; the payment ids.
async fn queue_all(
    stack: &Stack,
    run: &str,
    pairs: &[(String, String)],
) -> anyhow::Result<Vec<String>> {
    let queue_url = &stack.wiring.queue("PaymentsQueue")?.url;
    let amount = Money::new(AMOUNT, CURRENCY.parse()?)?;
    let mut entries = Vec::with_capacity(pairs.len());
    let mut ids = Vec::with_capacity(pairs.len());
    for (n, (from, to)) in pairs.iter().enumerate() {
        let payment_id = PaymentId::parse(&format!("pay_prio_{run}_o_{n:03}"))?;
        let request = PaymentRequest::new(
            payment_id.clone(),
            WalletId::parse(from)?,
            WalletId::parse(to)?,
            amount,
        )?;
        let now = Utc::now();
        let event = DomainEvent::payment_requested(&request, now);
        let detail: Value = serde_json::from_str(&stack.with_consent(&event.detail_json())?)?;
        let delivered = json!({
            "version": "0",
            "id": unique(),
            "detail-type": event.detail_type(),
            "source": event.source(),
            "account": "000000000000",
            "time": now.to_rfc3339(),
            "region": stack.wiring.region,
            "resources": [],
            "detail": detail,
        });
        entries.push(
            SendMessageBatchRequestEntry::builder()
                .id(format!("m{}", n % 10))
                .message_body(delivered.to_string())
                .build()?,
        );
        ids.push(payment_id.as_str().to_owned());
    }
    let queued: Vec<anyhow::Result<Vec<String>>> = stream::iter(entries.chunks(10))
        .map(|chunk| stack.send_batch(queue_url, chunk.to_vec()))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    queued.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Submits every (payer, payee) pair, `IN_FLIGHT` at a time; the payment ids, in order.
async fn submit_all(
    stack: &Stack,
    pairs: &[(String, String)],
    urgent: bool,
) -> anyhow::Result<Vec<String>> {
    let submitted: Vec<anyhow::Result<String>> = stream::iter(pairs)
        .map(|(from, to)| submit(stack, from, to, urgent))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    submitted.into_iter().collect()
}

/// The payment once terminal, or `None` while it is not.
async fn settled(stack: &Stack, payment_id: &str) -> anyhow::Result<Option<Settled>> {
    let (status, body) = stack.get(&format!("/payments/{payment_id}")).await?;
    if status != 200 {
        return Ok(None);
    }
    let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
    if !matches!(text("status").as_str(), "COMPLETED" | "FAILED") {
        return Ok(None);
    }
    let time = |field: &str| -> anyhow::Result<DateTime<Utc>> {
        text(field)
            .parse()
            .with_context(|| format!("{field} of {body}"))
    };
    Ok(Some(Settled {
        status: text("status"),
        priority: text("priority"),
        requested_at: time("created_at")?,
        finished_at: time("updated_at")?,
    }))
}

/// Waits until every payment of `ids` is terminal; each, as the API shows it.
async fn all_settled(stack: &Stack, ids: &[String], what: &str) -> anyhow::Result<Vec<Settled>> {
    let done: Mutex<Vec<Option<Settled>>> = Mutex::new((0..ids.len()).map(|_| None).collect());
    let lock = || done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    eventually(SETTLE_DEADLINE, what, || async {
        let pending: Vec<usize> = (0..ids.len()).filter(|&i| lock()[i].is_none()).collect();
        let read: Vec<(usize, anyhow::Result<Option<Settled>>)> = stream::iter(pending)
            .map(|i| async move { (i, settled(stack, &ids[i]).await) })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut done = lock();
        for (i, payment) in read {
            done[i] = payment?;
        }
        if !done.iter().all(Option::is_some) {
            return Ok(None);
        }
        Ok(Some(done.iter_mut().filter_map(Option::take).collect()))
    })
    .await
}

/// min / p50 / p90 / p99 / max of `values` (nearest rank), which must not be empty.
fn distribution(mut values: Vec<i64>) -> [i64; 5] {
    values.sort_unstable();
    let rank = |p: usize| values[((values.len() * p).div_ceil(100)).max(1) - 1];
    [
        values[0],
        rank(50),
        rank(90),
        rank(99),
        values[values.len() - 1],
    ]
}

/// The median of `times` (the lower one of an even count).
fn median(mut times: Vec<DateTime<Utc>>) -> DateTime<Utc> {
    times.sort_unstable();
    times[(times.len() - 1) / 2]
}

/// Opens `count` funded payers and as many empty payees, `IN_FLIGHT` at a time.
async fn pairs(
    stack: &Stack,
    run: &str,
    label: &str,
    count: usize,
    funds: u64,
) -> anyhow::Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = (0..count)
        .map(|n| {
            (
                format!("wal_prio_{run}_{label}_payer_{n:02}"),
                format!("wal_prio_{run}_{label}_payee_{n:02}"),
            )
        })
        .collect();
    let opened: Vec<anyhow::Result<()>> = stream::iter(&pairs)
        .flat_map(|(payer, payee)| stream::iter([(payer, funds), (payee, 0)]))
        .map(|(wallet, funds)| stack.funded_wallet(wallet, CURRENCY, funds, wallet))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    opened.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(pairs)
}

#[tokio::test]
#[ignore = "needs the local stack: make test runs it"]
async fn urgent_payments_overtake_a_backlog_of_ordinary_ones() -> anyhow::Result<()> {
    let started = Instant::now();
    let stack = Stack::connect().await?;
    stack.wiring.queue("UrgentPaymentsQueue")?;
    let run = unique()[..12].to_owned();

    let per_payer = ORDINARY.div_ceil(ORDINARY_PAIRS) as u64;
    let ordinary_pairs = pairs(&stack, &run, "o", ORDINARY_PAIRS, per_payer * AMOUNT).await?;
    let urgent_pairs = pairs(&stack, &run, "u", URGENT, AMOUNT).await?;
    let legacy_pair = pairs(&stack, &run, "l", 1, AMOUNT).await?;
    println!(
        "{} wallets opened in {:.1} s",
        2 * (ORDINARY_PAIRS + URGENT + 1),
        started.elapsed().as_secs_f64()
    );

    // The backlog: ordinary payments, as fast as the queue takes them.
    let submitting = Instant::now();
    let ordinary_plan: Vec<(String, String)> = (0..ORDINARY)
        .map(|n| ordinary_pairs[n % ORDINARY_PAIRS].clone())
        .collect();
    let ordinary_ids = queue_all(&stack, &run, &ordinary_plan).await?;
    let submitted_in = submitting.elapsed();
    let (waiting, in_flight) = stack.depth("PaymentsQueue").await?;
    println!(
        "{ORDINARY} ordinary payments queued in {:.1} s ({:.0}/s); PaymentsQueue: {waiting} waiting, {in_flight} in flight",
        submitted_in.as_secs_f64(),
        ORDINARY as f64 / submitted_in.as_secs_f64()
    );

    // Then the urgent ones.
    let urgent_ids = submit_all(&stack, &urgent_pairs, true).await?;

    // And one PaymentRequested without a priority, as events were written before priorities.
    let legacy_id = format!("pay_prio_legacy_{run}");
    let (payer, payee) = &legacy_pair[0];
    let detail = json!({
        "version": 1,
        "event_id": format!("{legacy_id}/1"),
        "consent": stack.consent(),
        "occurred_at": Utc::now(),
        "data": {
            "payment_id": legacy_id,
            "from_wallet": payer,
            "to_wallet": payee,
            "amount": {"minor_units": AMOUNT, "currency": CURRENCY},
        },
    });
    stack
        .put_event("paysaga.payments", "PaymentRequested", &detail.to_string())
        .await?;

    let urgent = all_settled(&stack, &urgent_ids, "the urgent payments to settle").await?;
    // Read the ordinary payments once the last one published has settled, so that polling 500
    // of them does not slow the saga down (their timestamps are their own either way). Not
    // "PaymentsQueue drained": other tests' payments use it too.
    let last = ordinary_ids
        .last()
        .context("ordinary payments were published")?;
    all_settled(
        &stack,
        std::slice::from_ref(last),
        "the last ordinary payment to settle",
    )
    .await?;
    let ordinary = all_settled(&stack, &ordinary_ids, "the ordinary payments to settle").await?;
    let legacy = all_settled(
        &stack,
        std::slice::from_ref(&legacy_id),
        "the payment without a priority to settle",
    )
    .await?;

    // Everything completed, with the priority it was given.
    for (kind, payments) in [
        ("urgent", &urgent),
        ("ordinary", &ordinary),
        ("ordinary", &legacy),
    ] {
        for payment in payments.iter() {
            ensure!(
                (payment.status.as_str(), payment.priority.as_str()) == ("COMPLETED", kind),
                "a {kind} payment ended {payment:?}"
            );
        }
    }

    let latencies =
        |payments: &[Settled]| distribution(payments.iter().map(Settled::latency_ms).collect());
    let (urgent_ms, ordinary_ms) = (latencies(&urgent), latencies(&ordinary));
    println!("latency from request to completion, ms: min / p50 / p90 / p99 / max");
    println!("  urgent   ({URGENT:>3}): {urgent_ms:?}");
    println!("  ordinary ({ORDINARY:>3}): {ordinary_ms:?}");

    let first_urgent_request = urgent
        .iter()
        .map(|payment| payment.requested_at)
        .min()
        .context("urgent payments")?;
    let backlog = ordinary
        .iter()
        .filter(|payment| payment.finished_at > first_urgent_request)
        .count();
    let last_urgent_done = urgent
        .iter()
        .map(|payment| payment.finished_at)
        .max()
        .context("urgent payments")?;
    let ordinary_median_done = median(ordinary.iter().map(|payment| payment.finished_at).collect());
    let overtaken = ordinary
        .iter()
        .filter(|payment| payment.finished_at > last_urgent_done)
        .count();
    println!(
        "ordinary payments not completed when the first urgent one was requested: {backlog}; \
         still not completed when the last urgent one completed: {overtaken}"
    );
    println!(
        "last urgent payment completed {:.2} s before the median ordinary one; test took {:.1} s",
        (ordinary_median_done - last_urgent_done).num_milliseconds() as f64 / 1000.0,
        started.elapsed().as_secs_f64()
    );

    ensure!(
        backlog >= ORDINARY / 2,
        "no real backlog: only {backlog} of {ORDINARY} ordinary payments were still to complete \
         when the urgent ones were requested, so the test proves nothing"
    );
    ensure!(
        last_urgent_done < ordinary_median_done,
        "an urgent payment completed at {last_urgent_done}, after the median ordinary payment \
         ({ordinary_median_done})"
    );
    ensure!(
        urgent_ms[4] < ordinary_ms[1],
        "the slowest urgent payment took {} ms, not less than the median ordinary one ({} ms)",
        urgent_ms[4],
        ordinary_ms[1]
    );

    // Money: each payee got exactly what was paid to it, and no payer keeps anything reserved.
    for (n, (payer, payee)) in ordinary_pairs.iter().enumerate() {
        let paid = (0..ORDINARY).filter(|i| i % ORDINARY_PAIRS == n).count() as u64 * AMOUNT;
        ensure!(
            stack.balances(payee).await? == (paid, 0),
            "{payee} should hold {paid}"
        );
        ensure!(
            stack.balances(payer).await? == (per_payer * AMOUNT - paid, 0),
            "{payer} should keep the rest"
        );
    }
    for (payer, payee) in urgent_pairs.iter().chain(&legacy_pair) {
        ensure!(stack.balances(payee).await? == (AMOUNT, 0), "{payee}");
        ensure!(stack.balances(payer).await? == (0, 0), "{payer}");
    }
    Ok(())
}
