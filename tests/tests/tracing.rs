//! One trace id across every hop: a payment submitted with an `X-Amzn-Trace-Id` header is
//! logged in that trace by every function it passes through — the api (the HTTP request), the
//! payment saga (the `PaymentRequested` event, published by the event relay from the log entry
//! the api wrote, in the trace it was written in, through EventBridge and SQS), and
//! notifications, audit-trail and read-models (the `PaymentCompleted` of the saga's terminal
//! entry, relayed in the same trace).
//!
//! The functions' output is in `.local/logs/local-lambda.log`, one line each, prefixed with the
//! instance's label (`payment-saga#2 | ...`); in plain text a span's fields are written as
//! `trace{trace_id=1-...}`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, ensure};
use paysaga_tests::{Stack, eventually, repo_root, unique};
use serde_json::json;

/// The functions a payment passes through, each of which must log it in its trace.
const HOPS: [&str; 5] = [
    "api",
    "payment-saga",
    "notifications",
    "audit-trail",
    "read-models",
];

/// The `trace_id`s of every function output line that mentions `payment_id`, by function.
fn trace_ids_of(log: &str, payment_id: &str) -> BTreeMap<String, Vec<BTreeSet<String>>> {
    let mut by_function: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    let lines = log
        .lines()
        .filter_map(|line| line.split_once(" | "))
        .filter(|(_, output)| output.contains(payment_id));
    for (label, output) in lines {
        let function = label.split('#').next().unwrap_or(label).to_owned();
        let ids = output
            .match_indices("trace_id=")
            .filter(|(at, _)| {
                output[..*at]
                    .chars()
                    .next_back()
                    .is_none_or(|before| !before.is_alphanumeric() && before != '_')
            })
            .map(|(at, key)| {
                let value = &output[at + key.len()..];
                let value = value.trim_start_matches('"');
                let end = value
                    .find(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
                    .unwrap_or(value.len());
                value[..end].to_owned()
            })
            .collect();
        by_function.entry(function).or_default().push(ids);
    }
    by_function
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn one_payment_is_logged_in_one_trace_by_every_function() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let log_path = repo_root().join(".local/logs/local-lambda.log");
    let (alice, bob) = stack.alice_and_bob(10_000).await?;
    // A trace id of this run: 8 hex digits of time, 24 random.
    let random = unique();
    let trace_id = format!(
        "1-{:08x}-{}",
        chrono::Utc::now().timestamp(),
        &random[random.len() - 24..]
    );
    let header = format!("Root={trace_id};Parent=53995c3f42cd8ad8;Sampled=1");

    let response = stack
        .http
        .post(format!("{}/payments", stack.api_url))
        .bearer_auth(&stack.token)
        .header("X-Amzn-Trace-Id", &header)
        .header("Idempotency-Key", unique())
        .json(&json!({"from_wallet": alice, "to_wallet": bob, "amount": {"minor_units": 900, "currency": "EUR"}}))
        .send()
        .await
        .context("POST /payments")?;
    let status = response.status().as_u16();
    let answered = response
        .headers()
        .get("x-amzn-trace-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let accepted: serde_json::Value = response.json().await?;
    ensure!(
        status == 202,
        "POST /payments answered {status}: {accepted}"
    );
    ensure!(
        answered.as_deref() == Some(header.as_str()),
        "the api answers the caller's trace: {answered:?}"
    );
    let payment_id = accepted["payment_id"]
        .as_str()
        .context("payment_id")?
        .to_owned();
    let settled = stack
        .settled_payment(&payment_id, Duration::from_secs(60))
        .await?;
    ensure!(settled["status"] == "COMPLETED", "{settled}");

    // The consumers of PaymentCompleted run after the payment is settled: wait until every
    // hop has logged the payment.
    let by_function = eventually(
        Duration::from_secs(30),
        "a log line about the payment from each of api, payment-saga, notifications, audit-trail and read-models",
        || async {
            let log = std::fs::read_to_string(&log_path)
                .with_context(|| format!("cannot read {}", log_path.display()))?;
            let by_function = trace_ids_of(&log, &payment_id);
            let all_there = HOPS.iter().all(|hop| by_function.contains_key(*hop));
            Ok(all_there.then_some(by_function))
        },
    )
    .await?;

    let mut lines = 0;
    for (function, traces) in &by_function {
        for ids in traces {
            lines += 1;
            let expected = BTreeSet::from([trace_id.clone()]);
            ensure!(
                *ids == expected,
                "a line of {function} about {payment_id} carries trace ids {ids:?}, not {trace_id}"
            );
        }
    }
    println!(
        "{lines} lines about {payment_id} from {:?}, all in trace {trace_id}",
        by_function.keys().collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn trace_ids_are_read_from_span_fields_only() {
    let log = "\
payment-saga#1 |  INFO Lambda runtime invoke{xrayTraceId=\"Root=1-6b08666c-19b07186a10e4592523c248a\"}:trace{trace_id=1-5759e988-bd862e3fe1be46a994272793}:handle_message{payment_id=\"pay_1\"}: payment saga ran
api |  INFO request served location=/payments/pay_1
read-models#2 |  INFO trace{trace_id=1-6b08666c-19b07186a10e4592523c248a}: event projected event_id=\"pay_2/4\"
local-lambda log line about pay_1 without a label";
    let by_function = trace_ids_of(log, "pay_1");
    assert_eq!(
        by_function.keys().collect::<Vec<_>>(),
        ["api", "payment-saga"]
    );
    assert_eq!(
        by_function["payment-saga"],
        [BTreeSet::from([
            "1-5759e988-bd862e3fe1be46a994272793".to_owned()
        ])]
    );
    assert_eq!(by_function["api"], [BTreeSet::new()]);
}
