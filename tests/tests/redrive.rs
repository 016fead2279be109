//! The DLQ redrive against the local stack: nothing a queue gives up on is lost.
//!
//! The tests share the dead-letter queues, so they take turns ([`SERIAL`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_eventbridge::types::{DeadLetterConfig, RetryPolicy, Target};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use chrono::Utc;
use futures::{StreamExt, TryStreamExt, stream};
use lambda_toolkit::sqs_batch::FAILURE_ATTRIBUTE;
use paysaga_admin::admin_api::{AdminApi, AdminApiError, ReplayAsk};
use paysaga_domain::history::StreamId;
use paysaga_domain::operator::body_sha256;
use paysaga_domain::ports::EventStore;
use paysaga_domain::{DomainEvent, OperatorActionKind, OperatorKey, Owner};
use paysaga_services::redrive::operator::{Mode, QueueOutcome};
use paysaga_services::redrive::parking::{FlowOutcome, ParkedStatus};
use paysaga_tests::{Stack, eventually, unique};
use serde_json::{Value, json};

/// The redrive tests take turns: each drains the dead-letter queues the others fill.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FUNCTION: &str = "dlq-redrive";
/// Long enough for maxReceiveCount deliveries at the local visibility timeout (5 × 5 s).
const TO_THE_DLQ: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(60);
const INVOCATION: Duration = Duration::from_secs(300);

/// A `PaymentRequested` event as its rule's SQS target receives it (the whole envelope), with
/// its payer's consent.
fn payment_requested(
    stack: &Stack,
    payment_id: &str,
    from: &str,
    to: &str,
    amount: u64,
    data_extra: Value,
) -> Value {
    let mut data = json!({"payment_id": payment_id, "from_wallet": from, "to_wallet": to,
        "amount": {"minor_units": amount, "currency": "EUR"}});
    if let (Some(data), Some(extra)) = (data.as_object_mut(), data_extra.as_object()) {
        data.extend(extra.clone());
    }
    json!({"version": "0", "id": unique(), "detail-type": "PaymentRequested", "source": "paysaga.payments",
        "account": "000000000000", "time": Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [],
        "detail": {"version": 1, "event_id": format!("{payment_id}/1"), "consent": stack.consent(),
            "occurred_at": Utc::now().to_rfc3339(), "data": data}})
}

async fn put_event(stack: &Stack, event: &Value) -> anyhow::Result<()> {
    stack
        .put_event(
            event["source"].as_str().context("source")?,
            event["detail-type"].as_str().context("detail-type")?,
            &event["detail"].to_string(),
        )
        .await
}

/// [`Stack::wait_in_queue`] within [`TO_THE_DLQ`].
async fn wait_in_queue(
    stack: &Stack,
    queue: &str,
    needle: &str,
) -> anyhow::Result<HashMap<String, String>> {
    stack.wait_in_queue(queue, needle, TO_THE_DLQ).await
}

async fn redrive(stack: &Stack, request: Value) -> anyhow::Result<Value> {
    let mut request = request;
    request["action"] = json!("redrive");
    match stack.invoke(FUNCTION, &request, INVOCATION).await? {
        Ok(response) => Ok(response),
        Err(error) => bail!("redrive {request} failed: {error}"),
    }
}

/// How many log entries of each step a payment has, read from the payments table.
async fn steps_of(stack: &Stack, payment_id: &str) -> anyhow::Result<HashMap<String, u32>> {
    let table = stack.wiring.table("PaymentsTable")?;
    let items = stack
        .dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("payment_id = :id")
        .expression_attribute_values(":id", AttributeValue::S(payment_id.to_owned()))
        .consistent_read(true)
        .send()
        .await?
        .items
        .unwrap_or_default();
    let mut steps = HashMap::new();
    for item in items {
        let step = item
            .get("step")
            .and_then(|step| step.as_s().ok())
            .with_context(|| format!("a log entry of {payment_id} without its step: {item:?}"))?;
        *steps.entry(step.clone()).or_default() += 1;
    }
    Ok(steps)
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_transient_failure_is_redriven_once_its_cause_is_gone() -> anyhow::Result<()> {
    let _turn = SERIAL.lock().await;
    let stack = Stack::connect().await?;
    let (alice, bob) = stack.alice_and_bob(1_000).await?;

    // The wallets "store" is down for this payment long enough for every delivery to fail.
    let payment_id = format!("pay_{}", unique());
    let outage_ends = Utc::now() + chrono::Duration::seconds(45);
    let faults = json!({"test_faults": {"outage": {"step": "reserve_funds", "until": outage_ends.to_rfc3339()}}});
    put_event(
        &stack,
        &payment_requested(&stack, &payment_id, &alice, &bob, 300, faults),
    )
    .await?;

    let attributes = wait_in_queue(&stack, "PaymentsDeadLetterQueue", &payment_id).await?;
    ensure!(
        Utc::now() < outage_ends,
        "the message reached the DLQ only after the outage; the test needs a longer one"
    );
    let record: Value = serde_json::from_str(
        attributes
            .get(FAILURE_ATTRIBUTE)
            .context("a failure record")?,
    )?;
    assert_eq!(record["kind"], "transient", "{record}");
    assert!(
        record["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("injected outage"),
        "{record}"
    );
    assert_eq!(
        stack.balances(&alice).await?,
        (1_000, 0),
        "nothing moved yet"
    );

    // The cause goes away; then the redrive sends the message back.
    eventually(Duration::from_secs(60), "the outage to end", || async {
        Ok((Utc::now() > outage_ends).then_some(()))
    })
    .await?;
    let report = redrive(&stack, json!({"queue": "payments-dlq"})).await?;
    let queue = &report["queues"][0];
    assert!(queue["sent_back"].as_u64().unwrap_or(0) >= 1, "{report}");

    let settled = stack.settled_payment(&payment_id, SETTLE).await?;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");
    assert_eq!(
        (stack.balances(&alice).await?, stack.balances(&bob).await?),
        ((700, 0), (300, 0))
    );
    let steps = steps_of(&stack, &payment_id).await?;
    assert_eq!(
        steps.get("COMPLETED"),
        Some(&1),
        "processed exactly once: {steps:?}"
    );
    assert_eq!(
        steps.values().sum::<u32>(),
        4,
        "requested, reserved, charged, completed (by settling): {steps:?}"
    );
    assert_eq!(
        stack.depth("PaymentsDeadLetterQueue").await?,
        (0, 0),
        "the DLQ ends empty"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_poison_message_is_parked_and_replayed_after_a_fix() -> anyhow::Result<()> {
    let _turn = SERIAL.lock().await;
    let stack = Stack::connect().await?;
    let (alice, bob) = stack.alice_and_bob(1_000).await?;

    // A producer sends a version of the contract no consumer reads yet.
    let payment_id = format!("pay_{}", unique());
    let mut event = payment_requested(&stack, &payment_id, &alice, &bob, 250, json!({}));
    event["detail"]["version"] = json!(2);
    put_event(&stack, &event).await?;
    wait_in_queue(&stack, "PaymentsDeadLetterQueue", &payment_id).await?;

    // The operator's tool (paysaga-admin dlq), through the function as in AWS.
    let desk = &stack.redrive_function;
    let outcomes = desk
        .redrive(Some("payments-dlq".to_owned()), Mode::Selective, None, None)
        .await?;
    match outcomes.as_slice() {
        [QueueOutcome::Redriven(report)] => assert!(report.parked >= 1, "{report:?}"),
        other => bail!("one queue redriven, not {other:?}"),
    }
    let waiting = desk.parked(false).await?;
    let ours = waiting
        .iter()
        .find(|message| message.body.contains(&payment_id))
        .cloned()
        .with_context(|| format!("{payment_id} among the parked messages: {waiting:?}"))?;
    assert!(
        ours.reason
            .contains("PaymentRequested version 2 is not supported"),
        "{}",
        ours.reason
    );
    assert_eq!(ours.status, ParkedStatus::Parked);
    assert_eq!(ours.origin, "consumer");
    assert_eq!(
        ours.source_receive_count,
        stack.wiring.queue("PaymentsQueue")?.max_receive_count
    );
    assert!(ours.attributes.contains_key(FAILURE_ATTRIBUTE), "{ours:?}");
    // Parked without the payer's bearer token, which the parking table would keep for good.
    let token = stack.consent()["bearer_token"]
        .as_str()
        .context("the test's consent token")?
        .to_owned();
    assert!(ours.consent_removed, "{ours:?}");
    assert!(!ours.body.contains(&token), "the token was parked");
    assert_eq!(desk.show(&ours.parked_id).await?, ours);
    let listed = paysaga_admin::dlq::parked_table(&waiting);
    assert!(listed.contains(&ours.parked_id), "{listed}");
    assert_eq!(
        stack.depth("PaymentsDeadLetterQueue").await?,
        (0, 0),
        "parked, then removed from the DLQ"
    );
    assert_eq!(stack.balances(&alice).await?, (1_000, 0));

    // The operator fixes the message (the producer's version was wrong; the payer consents
    // again) and replays it, through the admin API (paysaga-admin dlq replay), which records
    // who, what and why.
    let mut fixed: Value = serde_json::from_str(&ours.body)?;
    fixed["detail"]["version"] = json!(1);
    fixed["detail"]["consent"] = stack.consent();
    let fixed = fixed.to_string();
    let operator = format!("ops-{}", unique());
    let token = stack
        .tokens
        .token(&operator, true, Duration::from_secs(600))?;
    let admin = AdminApi::new(&stack.api_url, token);
    let ask = ReplayAsk {
        body: Some(fixed.clone()),
        reason: "the producer sent version 2 by mistake, OPS-31".to_owned(),
        ..ReplayAsk::default()
    };
    let unexplained = ReplayAsk {
        reason: String::new(),
        ..ask.clone()
    };
    match admin.replay(&ours.parked_id, &unexplained).await {
        Err(AdminApiError::Refused { status: 400, .. }) => {}
        other => bail!("a replay without a reason is refused, yet: {other:?}"),
    }
    let replayed = admin.replay(&ours.parked_id, &ask).await?;
    assert!(replayed.body_edited, "{replayed:?}");
    let settled = stack.settled_payment(&payment_id, SETTLE).await?;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");
    assert_eq!(
        (stack.balances(&alice).await?, stack.balances(&bob).await?),
        ((750, 0), (250, 0))
    );

    let again = admin.replay(&ours.parked_id, &ask).await;
    match again {
        Err(AdminApiError::Refused { code, .. }) => assert_eq!(code, "already_replayed"),
        other => bail!("a replayed message is not replayed twice, yet: {other:?}"),
    }
    // The function no longer replays: an invocation carries no operator to record.
    let payload = json!({"action": "replay", "parked_id": ours.parked_id});
    match stack.invoke(FUNCTION, &payload, INVOCATION).await? {
        Err(error) => ensure!(error.contains("InvalidRequest"), "{error}"),
        Ok(answer) => bail!("dlq-redrive replayed: {answer}"),
    }

    // The audit trail holds the replay, once, in the operator's stream.
    let store = paysaga_tests::audit::event_store(&stack)?;
    let operator = Owner::parse(&operator)?;
    let stream = StreamId::Operator(OperatorKey::of(&operator));
    let recorded = eventually(SETTLE, "the replay in the operator's stream", || async {
        let events = store.stream(&stream, 0).await?;
        Ok((!events.is_empty()).then_some(events))
    })
    .await?;
    let [entry] = &recorded[..] else {
        bail!("one action in the operator's stream: {recorded:?}")
    };
    let DomainEvent::OperatorActionStarted(detail) = &entry.event else {
        bail!("an OperatorActionStarted: {:?}", entry.event)
    };
    assert_eq!(detail.event_id, replayed.action_id.to_string());
    assert_eq!(detail.data.issued_by, operator);
    assert_eq!(detail.data.reason.as_str(), ask.reason);
    assert_eq!(
        detail.data.action,
        OperatorActionKind::ReplayParkedMessage {
            parked_id: ours.parked_id.clone(),
            destination: stack.wiring.queue("PaymentsQueue")?.arn.clone(),
            body_sha256: body_sha256(&fixed),
            body_edited: true,
            forced: false,
        }
    );
    let rebuilt = paysaga_services::audit::rebuild_operator(&store, &operator).await?;
    assert_eq!((rebuilt.actions, rebuilt.deposits), (1, 0));
    let still = desk.parked(true).await?;
    let after = still
        .iter()
        .find(|message| message.parked_id == ours.parked_id)
        .context("a replayed message stays in the parking table")?;
    assert_eq!(after.status, ParkedStatus::Replayed);
    Ok(())
}

/// The keys the redrive journals the copies in a DLQ by, for the message ids SQS gave them.
fn journal_keys(stack: &Stack, queue: &str, message_ids: &[String]) -> anyhow::Result<Vec<String>> {
    let name = stack
        .wiring
        .queue(queue)?
        .arn
        .rsplit(':')
        .next()
        .context("a queue ARN")?
        .to_owned();
    Ok(message_ids
        .iter()
        .map(|id| format!("{name}/{id}"))
        .collect())
}

/// How many of `keys` the redrive's journal holds.
async fn journalled(stack: &Stack, keys: &[String]) -> anyhow::Result<usize> {
    let table = stack.wiring.table("RedriveJournalTable")?.to_owned();
    let counts: Vec<usize> = stream::iter(keys.chunks(100))
        .then(|chunk| {
            let table = table.clone();
            async move {
                let mut wanted: Vec<HashMap<String, AttributeValue>> = chunk
                    .iter()
                    .map(|key| {
                        HashMap::from([("entry_key".to_owned(), AttributeValue::S(key.clone()))])
                    })
                    .collect();
                let mut found = 0;
                while !wanted.is_empty() {
                    let request = KeysAndAttributes::builder()
                        .set_keys(Some(wanted))
                        .consistent_read(true)
                        .build()?;
                    let got = stack
                        .dynamodb
                        .batch_get_item()
                        .request_items(&table, request)
                        .send()
                        .await?;
                    found += got
                        .responses
                        .unwrap_or_default()
                        .get(&table)
                        .map_or(0, Vec::len);
                    wanted = got
                        .unprocessed_keys
                        .unwrap_or_default()
                        .remove(&table)
                        .map(|keys| keys.keys)
                        .unwrap_or_default();
                }
                anyhow::Ok(found)
            }
        })
        .try_collect()
        .await?;
    Ok(counts.into_iter().sum())
}

/// The pids of the dlq-redrive processes local-lambda runs.
fn redrive_processes() -> anyhow::Result<Vec<String>> {
    let binary = paysaga_tests::repo_root().join("target/debug/dlq-redrive");
    let found = std::process::Command::new("pgrep")
        .arg("-f")
        .arg(binary)
        .output()
        .context("pgrep")?;
    Ok(String::from_utf8_lossy(&found.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_thousand_message_redrive_killed_half_way_loses_and_duplicates_nothing()
-> anyhow::Result<()> {
    const MESSAGES: usize = 1_000;
    const WALLETS: usize = 50;
    const AMOUNT: u64 = 100;
    let _turn = SERIAL.lock().await;
    let stack = Arc::new(Stack::connect().await?);
    let run = unique();

    // 50 payers and 50 payees; each payer pays 20 payments of 1.00 EUR and ends at zero.
    let per_payer = (MESSAGES / WALLETS) as u64 * AMOUNT;
    let payers: Vec<String> = (0..WALLETS).map(|n| format!("wal_rd_{run}_p{n}")).collect();
    let payees: Vec<String> = (0..WALLETS).map(|n| format!("wal_rd_{run}_q{n}")).collect();
    stream::iter(
        payers
            .iter()
            .map(|id| (id, per_payer))
            .chain(payees.iter().map(|id| (id, 0))),
    )
    .map(|(id, funds)| {
        let stack = &stack;
        async move {
            stack
                .funded_wallet(id, "EUR", funds, &format!("{id}-funds"))
                .await
        }
    })
    .buffer_unordered(8)
    .try_collect::<Vec<()>>()
    .await?;

    // 1,000 payment requests the saga gave up on during an outage, as it leaves them in its DLQ.
    let payments = stack.wiring.queue("PaymentsQueue")?;
    let dlq = stack.wiring.queue("PaymentsDeadLetterQueue")?;
    let record = json!({"kind": "transient", "reason": "wallets table unavailable", "source_queue": payments.arn,
        "receive_count": payments.max_receive_count.unwrap_or(5), "failed_at": Utc::now()}).to_string();
    let payment_ids: Vec<String> = (0..MESSAGES).map(|n| format!("pay_rd_{run}_{n}")).collect();
    let mut message_ids = Vec::with_capacity(MESSAGES);
    for (batch, ids) in payment_ids.chunks(10).enumerate() {
        let entries = ids
            .iter()
            .enumerate()
            .map(|(offset, payment_id)| {
                let n = batch * 10 + offset;
                let event = payment_requested(
                    &stack,
                    payment_id,
                    &payers[n % WALLETS],
                    &payees[n % WALLETS],
                    AMOUNT,
                    json!({}),
                );
                let failure = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&record)
                    .build()?;
                Ok(SendMessageBatchRequestEntry::builder()
                    .id(format!("m{offset}"))
                    .message_body(event.to_string())
                    .message_attributes(FAILURE_ATTRIBUTE, failure)
                    .build()?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        message_ids.extend(stack.send_batch(&dlq.url, entries).await?);
    }
    let keys = journal_keys(&stack, "PaymentsDeadLetterQueue", &message_ids)?;
    assert_eq!(
        stack.depth("PaymentsDeadLetterQueue").await?.0,
        MESSAGES as u64
    );

    // A redrive at 100 messages/s, killed (SIGKILL) once about half the queue has gone.
    let request = json!({"action": "redrive", "queue": "payments-dlq", "max_per_second": 100, "visibility_timeout_seconds": 5});
    let started = Instant::now();
    let first = tokio::spawn({
        let stack = Arc::clone(&stack);
        let request = request.clone();
        async move { stack.invoke(FUNCTION, &request, INVOCATION).await }
    });
    // Killed while a batch is in flight, so the restart meets what a kill leaves behind.
    let (left_at_kill, in_flight_at_kill) = eventually(
        Duration::from_secs(60),
        "half the DLQ to be redriven, a batch in flight",
        || async {
            let (visible, in_flight) = stack.depth("PaymentsDeadLetterQueue").await?;
            let half = visible <= (MESSAGES / 2) as u64 && in_flight > 0;
            Ok(half.then_some((visible, in_flight)))
        },
    )
    .await?;
    let pids = redrive_processes()?;
    ensure!(!pids.is_empty(), "no dlq-redrive process to kill");
    let killed = std::process::Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .status()?;
    ensure!(killed.success(), "kill -KILL {pids:?} failed");
    let killed_after = started.elapsed();
    let outcome = first.await??;
    let error = outcome.expect_err("the killed invocation cannot have finished");
    assert!(error.contains("Runtime.ExitError"), "{error}");
    let journalled_by_first = journalled(&stack, &keys).await?;

    // Run again until the DLQ is empty.
    let (mut sent_back, mut handled_before, mut runs) = (0, 0, 1);
    let rerun_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let report = redrive(&stack, request.clone()).await?;
        runs += 1;
        let queue = &report["queues"][0];
        sent_back += queue["sent_back"].as_u64().unwrap_or(0);
        handled_before += queue["handled_before"].as_u64().unwrap_or(0);
        let (visible, in_flight) = stack.depth("PaymentsDeadLetterQueue").await?;
        if visible + in_flight == 0 {
            break;
        }
        ensure!(
            Instant::now() < rerun_deadline,
            "the DLQ still holds {visible} + {in_flight} in flight after {runs} runs"
        );
        // The killed run's in-flight messages come back once their visibility timeout ends.
        if visible == 0 {
            eventually(
                Duration::from_secs(30),
                "the killed run's messages to come back",
                || async {
                    Ok((stack.depth("PaymentsDeadLetterQueue").await?.0 > 0).then_some(()))
                },
            )
            .await?;
        }
    }
    let journalled_in_all = journalled(&stack, &keys).await?;

    // Every payment completes once: the payees hold exactly what the payers had.
    let expected = (MESSAGES / WALLETS) as u64 * AMOUNT;
    eventually(
        Duration::from_secs(180),
        "every payment to complete",
        || async {
            let mut total = 0;
            for payee in &payees {
                total += stack.balances(payee).await?.0;
            }
            Ok((total == expected * WALLETS as u64).then_some(()))
        },
    )
    .await?;
    let completions: Vec<HashMap<String, u32>> = stream::iter(&payment_ids)
        .map(|payment_id| steps_of(&stack, payment_id))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let completed_once = completions
        .iter()
        .filter(|steps| steps.get("COMPLETED") == Some(&1))
        .count();
    for (payer, payee) in payers.iter().zip(&payees) {
        assert_eq!(stack.balances(payer).await?, (0, 0), "{payer}");
        assert_eq!(stack.balances(payee).await?, (expected, 0), "{payee}");
    }

    println!(
        "redrive of {MESSAGES} dead letters at 100 msg/s: killed after {killed_after:.1?} with {left_at_kill} still visible \
         and {in_flight_at_kill} in flight, \
         {journalled_by_first} sent back and journalled by the killed run; {} more runs sent back {sent_back} and found \
         {handled_before} already sent back (journalled, not yet deleted); journal: {journalled_in_all}/{MESSAGES}; \
         payments completed exactly once: {completed_once}/{MESSAGES}; DLQ: empty",
        runs - 1
    );
    assert_eq!(
        journalled_in_all, MESSAGES,
        "every dead letter sent back and journalled"
    );
    assert_eq!(
        journalled_by_first + sent_back as usize,
        MESSAGES,
        "no dead letter sent back by two runs"
    );
    assert_eq!(
        completed_once, MESSAGES,
        "every payment completed, none twice"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_event_eventbridge_could_not_deliver_is_redriven_to_its_target() -> anyhow::Result<()> {
    let _turn = SERIAL.lock().await;
    let stack = Stack::connect().await?;
    let run = unique();
    let region = &stack.wiring.region;
    let probe_queue = format!("paysaga-local-probe-{}", &run[..12]);
    let probe_arn = format!("arn:aws:sqs:{region}:000000000000:{probe_queue}");
    let dlq_arn = stack
        .wiring
        .queue("EventDeliveryDeadLetterQueue")?
        .arn
        .clone();

    // A rule on the bus whose queue target does not exist (yet): EventBridge cannot deliver.
    let rule = format!("redrive-probe-{}", &run[..12]);
    let deposit_id = format!("dep_{run}");
    let pattern = json!({"source": ["paysaga.wallets"], "detail-type": ["FundsDeposited"],
        "detail": {"data": {"deposit_id": [deposit_id]}}});
    stack
        .eventbridge
        .put_rule()
        .name(&rule)
        .event_bus_name(&stack.event_bus_name)
        .event_pattern(pattern.to_string())
        .send()
        .await?;
    let target = Target::builder()
        .id("probe")
        .arn(&probe_arn)
        .dead_letter_config(DeadLetterConfig::builder().arn(&dlq_arn).build())
        .retry_policy(RetryPolicy::builder().maximum_retry_attempts(0).build())
        .build()?;
    stack
        .eventbridge
        .put_targets()
        .rule(&rule)
        .event_bus_name(&stack.event_bus_name)
        .targets(target)
        .send()
        .await?;
    let outcome = async {
        let event = json!({"source": "paysaga.wallets", "detail-type": "FundsDeposited",
            "detail": {"version": 1, "event_id": deposit_id, "occurred_at": Utc::now(),
                "data": {"deposit_id": deposit_id, "wallet_id": format!("wal_{run}"), "amount": {"minor_units": 500, "currency": "EUR"}}}});
        put_event(&stack, &event).await?;
        let attributes = wait_in_queue(&stack, "EventDeliveryDeadLetterQueue", &deposit_id).await?;
        assert_eq!(attributes.get("TARGET_ARN"), Some(&probe_arn), "{attributes:?}");
        assert!(attributes.get("RULE_ARN").is_some_and(|arn| arn.ends_with(&rule)), "{attributes:?}");
        assert!(attributes.contains_key("ERROR_CODE"), "{attributes:?}");

        // The cause goes away: the target queue is created; the redrive delivers the event.
        let probe_url = stack.sqs.create_queue().queue_name(&probe_queue).send().await?.queue_url().context("a queue URL")?.to_owned();
        let report = redrive(&stack, json!({"queue": "event-delivery-dlq"})).await?;
        assert!(report["queues"][0]["sent_back"].as_u64().unwrap_or(0) >= 1, "{report}");
        let delivered = stack
            .sqs
            .receive_message()
            .queue_url(&probe_url)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .message_attribute_names("All")
            .send()
            .await?;
        let bodies: Vec<Value> = delivered.messages().iter().filter_map(|message| serde_json::from_str(message.body()?).ok()).collect();
        let ids: HashSet<&str> = bodies.iter().filter_map(|body| body["detail"]["data"]["deposit_id"].as_str()).collect();
        assert_eq!(ids, HashSet::from([deposit_id.as_str()]), "the event reached its target: {bodies:?}");
        let stamped = delivered.messages().iter().all(|message| {
            message.message_attributes().is_some_and(|attributes| attributes.contains_key("paysaga-redrive"))
        });
        assert!(stamped, "the copy says it was redriven");
        stack.sqs.delete_queue().queue_url(&probe_url).send().await?;
        anyhow::Ok(())
    }
    .await;
    stack
        .eventbridge
        .remove_targets()
        .rule(&rule)
        .event_bus_name(&stack.event_bus_name)
        .ids("probe")
        .send()
        .await?;
    stack
        .eventbridge
        .delete_rule()
        .name(&rule)
        .event_bus_name(&stack.event_bus_name)
        .send()
        .await?;
    outcome
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_whole_queue_move_hands_the_dlq_to_sqs() -> anyhow::Result<()> {
    const MESSAGES: usize = 20;
    let _turn = SERIAL.lock().await;
    let stack = Stack::connect().await?;
    // Payment outcomes the notifications function gave up on; its DLQ has one source queue.
    let dlq = stack
        .wiring
        .queue("PaymentEventsDeadLetterQueue")?
        .url
        .clone();
    for batch in 0..MESSAGES / 10 {
        let entries = (0..10)
            .map(|n| {
                let body = json!({"source": "paysaga.payments", "detail-type": "PaymentCompleted",
                    "detail": {"event_id": format!("pay_move_{batch}_{n}/5")}});
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{n}"))
                    .message_body(body.to_string())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        stack.send_batch(&dlq, entries).await?;
    }
    // Move tasks started from now on are this test's (the redrive tests take turns).
    let started_ms = Utc::now().timestamp_millis() - 1_000;
    let report = redrive(
        &stack,
        json!({"queue": "payment-events-dlq", "mode": "whole-queue", "max_per_second": 10}),
    )
    .await?;
    let queue = &report["queues"][0];
    assert!(queue["move_task"].is_string(), "{report}");
    assert!(
        queue["destination"]
            .as_str()
            .is_some_and(|name| name.ends_with("-payment-events")),
        "{report}"
    );
    // SQS's own account of the move: the task completed, every message moved. (The queue's
    // depth cannot tell: its consumer, the notifications function, takes the messages as they
    // arrive, and sends them back to the DLQ, broken as they are, 25 s later.)
    let dlq_arn = &stack.wiring.queue("PaymentEventsDeadLetterQueue")?.arn;
    let moved = eventually(
        Duration::from_secs(60),
        "SQS to move the DLQ back",
        || async {
            let tasks = stack
                .sqs
                .list_message_move_tasks()
                .source_arn(dlq_arn)
                .max_results(1)
                .send()
                .await?;
            let latest = tasks.results().first();
            Ok(latest
                .filter(|task| {
                    task.status() == Some("COMPLETED") && task.started_timestamp() >= started_ms
                })
                .map(|task| task.approximate_number_of_messages_moved()))
        },
    )
    .await?;
    assert!(
        moved >= MESSAGES as i64,
        "the move task moved {moved} messages of at least {MESSAGES}"
    );
    Ok(())
}

/// A store outage for the saga's steps of every payment whose request mentions a text (the
/// fault-injection build's `payment-saga.json`): it lasts until the guard is dropped, whatever
/// delivers the request (a redelivery, a redrive, the reconciler's nudge).
struct SagaOutage(std::path::PathBuf);

impl SagaOutage {
    fn start(stack: &Stack, aimed_at: &str) -> anyhow::Result<Self> {
        let directory = std::path::PathBuf::from(
            stack
                .wiring
                .function_env("payment-saga", "PAYSAGA_FAULTS_DIR")?,
        );
        std::fs::create_dir_all(&directory)?;
        let path = directory.join("payment-saga.json");
        let until = Utc::now() + chrono::Duration::hours(1);
        let faults = json!({
            "outage": {"step": "reserve_funds", "until": until.to_rfc3339()},
            "only_events_mentioning": aimed_at,
        });
        std::fs::write(&path, faults.to_string())?;
        Ok(Self(path))
    }
}

impl Drop for SagaOutage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_payment_stranded_past_every_redelivery_and_redrive_is_finished_by_the_reconciler()
-> anyhow::Result<()> {
    let _turn = SERIAL.lock().await;
    let stack = Stack::connect().await?;
    let run = unique();
    let (alice, bob) = (format!("wal_rc{run}_a"), format!("wal_rc{run}_b"));
    stack.funded_wallet(&alice, "EUR", 1_000, &unique()).await?;
    stack.funded_wallet(&bob, "EUR", 0, &unique()).await?;
    let outage = SagaOutage::start(&stack, &run)?;
    let body = json!({"from_wallet": alice, "to_wallet": bob, "amount": {"minor_units": 300, "currency": "EUR"}});
    let (status, accepted) = stack.post("/payments", body, Some(&unique())).await?;
    ensure!(
        status == 202,
        "POST /payments answered {status}: {accepted}"
    );
    let payment_id = accepted["payment_id"]
        .as_str()
        .context("payment_id")?
        .to_owned();

    // Every delivery fails, so the message lands in the DLQ; each redrive sends it back, until
    // the redrive gives up and parks it. Nobody will replay it.
    let desk = &stack.redrive_function;
    let mut cycles = 0;
    let parked = loop {
        cycles += 1;
        ensure!(
            cycles <= 8,
            "{payment_id} never parked after {cycles} redrives"
        );
        wait_in_queue(&stack, "PaymentsDeadLetterQueue", &payment_id).await?;
        redrive(&stack, json!({"queue": "payments-dlq"})).await?;
        let waiting = desk.parked(false).await?;
        if let Some(ours) = waiting
            .iter()
            .find(|message| message.body.contains(&payment_id))
        {
            break ours.clone();
        }
    };
    ensure!(
        parked.reason.contains("redrive"),
        "parked because the redrives failed: {}",
        parked.reason
    );
    let (status, stranded) = stack.get(&format!("/payments/{payment_id}")).await?;
    ensure!(
        status == 200 && stranded["status"] == "PENDING",
        "stranded, not terminal: {stranded}"
    );

    // The outage ends. With no operator action, the reconciler's next check drives it on.
    drop(outage);
    let settled = stack
        .settled_payment(&payment_id, Duration::from_secs(180))
        .await?;
    ensure!(settled["status"] == "COMPLETED", "{settled}");
    ensure!(
        (stack.balances(&alice).await?, stack.balances(&bob).await?) == ((700, 0), (300, 0)),
        "balances exact, nothing reserved"
    );
    let steps = steps_of(&stack, &payment_id).await?;
    ensure!(
        steps.get("COMPLETED") == Some(&1),
        "completed once: {steps:?}"
    );

    // The reconciler's findings: its log names the payment, its metrics count it.
    let log = paysaga_tests::function_log()?;
    let found = log
        .lines()
        .filter(|line| line.starts_with("reconciler") && line.contains(&payment_id))
        .filter(|line| line.contains("past its deadline"))
        .count();
    ensure!(
        found >= 1,
        "the reconciler never found {payment_id} overdue"
    );
    let counted: f64 = log
        .lines()
        .filter(|line| line.starts_with("reconciler"))
        .filter_map(|line| line.split_once(" | "))
        .filter_map(|(_, output)| serde_json::from_str::<Value>(output).ok())
        .filter_map(|document| document["OverduePayments"].as_f64())
        .sum();
    ensure!(
        counted >= 1.0,
        "no OverduePayments in the reconciler's metrics"
    );

    // What the outage left in the DLQ (the reconciler's nudges that failed) goes back and finds
    // the payment done; what it parks is the payment's too.
    redrive(&stack, json!({"queue": "payments-dlq"})).await?;

    // Every message of the payment parked on its way to the saga ends settled as the payment
    // ended, with no operator: not waiting, not counted as waiting, not replayed.
    let saga_queue = stack.wiring.queue("PaymentsQueue")?.arn.clone();
    let ours = |messages: &[paysaga_services::redrive::ParkedMessage]| {
        messages
            .iter()
            .filter(|message| message.body.contains(&payment_id))
            .filter(|message| message.destination.as_deref() == Some(saga_queue.as_str()))
            .cloned()
            .collect::<Vec<_>>()
    };
    let settled_ones = eventually(
        Duration::from_secs(180),
        "the payment's parked messages settled",
        || async {
            let mine = ours(&desk.parked(true).await?);
            let done = !mine.is_empty()
                && mine
                    .iter()
                    .all(|message| message.status == ParkedStatus::Settled);
            Ok(done.then_some(mine))
        },
    )
    .await?;
    ensure!(
        settled_ones
            .iter()
            .any(|message| message.parked_id == parked.parked_id),
        "the message parked first is among them: {settled_ones:?}"
    );
    for message in &settled_ones {
        ensure!(
            message.settled_as == Some(FlowOutcome::Completed) && message.settled_at.is_some(),
            "settled as the payment ended: {message:?}"
        );
    }
    // The waiting count is the waiting list's length (read again until no other test's message
    // was parked in between), and the list holds none of them.
    let waiting = eventually(SETTLE, "the waiting count and list agreeing", || async {
        let count = desk.status().await?.parked_waiting;
        let listed = desk.parked(false).await?;
        let again = desk.status().await?.parked_waiting;
        Ok((count == again && count == listed.len() as u64).then_some(listed))
    })
    .await?;
    ensure!(
        ours(&waiting).is_empty(),
        "a settled message still counted as waiting: {:?}",
        ours(&waiting)
    );
    let operator = format!("ops-{}", unique());
    let token = stack
        .tokens
        .token(&operator, true, Duration::from_secs(600))?;
    let ask = ReplayAsk {
        reason: "the payment looked stranded, OPS-44".to_owned(),
        ..ReplayAsk::default()
    };
    match AdminApi::new(&stack.api_url, token)
        .replay(&parked.parked_id, &ask)
        .await
    {
        Err(AdminApiError::Refused {
            status: 409, code, ..
        }) => ensure!(code == "settled", "refused as {code}"),
        other => bail!("a settled message is not replayed, yet: {other:?}"),
    }
    // Its log names each settlement, once (the log catches up with the table).
    eventually(
        SETTLE,
        "each settlement in the reconciler's log",
        || async {
            let log = paysaga_tests::function_log()?;
            let logged = log
                .lines()
                .filter(|line| line.starts_with("reconciler") && line.contains(&payment_id))
                .filter(|line| line.contains("parked message settled"))
                .count();
            ensure!(
                logged <= settled_ones.len(),
                "{logged} settlements logged for {} parked messages",
                settled_ones.len()
            );
            Ok((logged == settled_ones.len()).then_some(()))
        },
    )
    .await?;
    println!(
        "reconciler: {payment_id} parked after {cycles} redrives, completed by the reconciler \
         ({found} overdue findings logged, OverduePayments {counted}); {} parked message(s) \
         settled as COMPLETED",
        settled_ones.len()
    );
    Ok(())
}
