//! The bank test: many wallets, hundreds of concurrent random payments (overdrafts included),
//! injected step failures and crashes, duplicate deliveries and processor outages; afterwards
//! no money has appeared or disappeared, every payment is COMPLETED or FAILED, every failed
//! one has undone what it did, and no saga step was applied twice.
//!
//! Black-box: it drives the API, the event bus and the fake processor's control API, and reads
//! the saga logs straight from DynamoDB. The run is planned from a seeded RNG; the seed is
//! printed, and `PAYSAGA_BANK_SEED=<seed>` plans the same run again (timing aside).
//!
//! It resets the fake processor's ledger and sets its faults while it runs, then gives it its
//! default settings back. Its outcome events go to the notifications function like any others.
//!
//! Needs the stack with the payment saga built with its `fault-injection` feature
//! (`make run`), then:
//! `cargo test --locked -p paysaga-tests --test bank -- --ignored --nocapture`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use futures::stream::{self, StreamExt};
use paysaga_tests::{Stack, function_log, unique};
use serde_json::{Value, json};

const WALLETS: usize = 24;
const PAYMENTS: usize = 500;
const CURRENCY: &str = "EUR";
/// Deposits are 0..=this, payment amounts 1..=`MAX_AMOUNT`: many payments overdraw.
const MAX_DEPOSIT: u64 = 50_000;
const MAX_AMOUNT: u64 = 20_000;
/// Payments published straight onto the bus (the rest go through the API); they carry the
/// fault directives, which only the bus accepts.
const BUS_PAYMENTS: usize = 150;
/// `fail_step` directives: 20 % of all payments. Half of them aim at `reserve_funds`, which
/// always takes effect, so that at least 10 % of all payments fail by injection; the other half
/// aim at the charge or the settlement, which an overdraft refused first may pre-empt.
const FAIL_STEP_PAYMENTS: usize = 100;
/// Payments that must end FAILED with `injected_fault`: 10 %.
const MIN_INJECTED_FAILURES: usize = PAYMENTS / 10;
/// `crash_after` directives: 5 % of all payments.
const CRASH_PAYMENTS: usize = 25;
/// Payments delivered twice: 10 %.
const DUPLICATES: usize = 50;
const FAULT_STEPS: [&str; 3] = ["reserve_funds", "charge_payment", "settle_funds"];
/// Requests in flight at once, submitting and polling.
const IN_FLIGHT: usize = 32;
const PROCESSOR_ERROR_RATE: f64 = 0.05;
/// Processor outages: when (after the first payment is submitted) and how long.
const OUTAGES: [(Duration, u64); 2] = [(Duration::from_secs(2), 3), (Duration::from_secs(7), 3)];
const SETTLE_DEADLINE: Duration = Duration::from_secs(8 * 60);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Attempts of a request the stack may answer with a transient error.
const ATTEMPTS: u32 = 5;

const COMPLETED_LOG: [&str; 4] = ["REQUESTED", "FUNDS_RESERVED", "CHARGED", "COMPLETED"];
const REFUSED_LOG: [&str; 2] = ["REQUESTED", "FAILED"];
const UNDONE_BEFORE_CHARGE_LOG: [&str; 6] = [
    "REQUESTED",
    "FUNDS_RESERVED",
    "COMPENSATION_STARTED",
    "CHARGE_REFUNDED",
    "RESERVATION_RELEASED",
    "FAILED",
];
const UNDONE_AFTER_CHARGE_LOG: [&str; 7] = [
    "REQUESTED",
    "FUNDS_RESERVED",
    "CHARGED",
    "COMPENSATION_STARTED",
    "CHARGE_REFUNDED",
    "RESERVATION_RELEASED",
    "FAILED",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Api,
    Bus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    FailStep(&'static str),
    CrashAfter(&'static str),
}

impl Fault {
    fn directive(self) -> Value {
        match self {
            Self::FailStep(step) => json!({"fail_step": step}),
            Self::CrashAfter(step) => json!({"crash_after": step}),
        }
    }
}

/// One payment of the run, as planned.
#[derive(Debug, Clone)]
struct Planned {
    from: usize,
    to: usize,
    amount: u64,
    route: Route,
    fault: Option<Fault>,
    duplicate: bool,
}

/// The run, drawn from the seed.
fn plan(rng: &mut fastrand::Rng) -> (Vec<u64>, Vec<Planned>) {
    let deposits = (0..WALLETS).map(|_| rng.u64(0..=MAX_DEPOSIT)).collect();
    let mut order: Vec<usize> = (0..PAYMENTS).collect();
    rng.shuffle(&mut order);
    let mut routes = vec![Route::Api; PAYMENTS];
    let mut faults = vec![None; PAYMENTS];
    for (n, &index) in order[..BUS_PAYMENTS].iter().enumerate() {
        routes[index] = Route::Bus;
        let step = FAULT_STEPS[rng.usize(..FAULT_STEPS.len())];
        if n < FAIL_STEP_PAYMENTS / 2 {
            faults[index] = Some(Fault::FailStep("reserve_funds"));
        } else if n < FAIL_STEP_PAYMENTS {
            faults[index] = Some(Fault::FailStep(
                FAULT_STEPS[rng.usize(1..FAULT_STEPS.len())],
            ));
        } else if n < FAIL_STEP_PAYMENTS + CRASH_PAYMENTS {
            faults[index] = Some(Fault::CrashAfter(step));
        }
    }
    rng.shuffle(&mut order);
    let duplicates: HashSet<usize> = order[..DUPLICATES].iter().copied().collect();
    let payments = (0..PAYMENTS)
        .map(|index| {
            let from = rng.usize(..WALLETS);
            let to = (from + 1 + rng.usize(..WALLETS - 1)) % WALLETS;
            Planned {
                from,
                to,
                amount: rng.u64(1..=MAX_AMOUNT),
                route: routes[index],
                fault: faults[index],
                duplicate: duplicates.contains(&index),
            }
        })
        .collect();
    (deposits, payments)
}

/// What went wrong, by check; printed in full before the test fails.
#[derive(Default)]
struct Violations(BTreeMap<&'static str, Vec<String>>);

impl Violations {
    fn add(&mut self, check: &'static str, what: String) {
        self.0.entry(check).or_default().push(what);
    }

    fn count(&self, check: &str) -> usize {
        self.0.get(check).map_or(0, Vec::len)
    }

    fn total(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn the_bank_balances_under_faults() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let seed = match std::env::var("PAYSAGA_BANK_SEED") {
        Ok(seed) => seed.parse().context("PAYSAGA_BANK_SEED must be a u64")?,
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64,
    };
    println!("bank: seed {seed} (replay with PAYSAGA_BANK_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let (deposits, planned) = plan(&mut rng);
    let run = unique();
    let mut violations = Violations::default();
    let function_log_start = function_log().map_or(0, |log| log.len());

    // The wallets, funded through the API.
    let wallets: Vec<String> = (0..WALLETS)
        .map(|n| format!("wal_bank_{run}_{n:02}"))
        .collect();
    let opened: Vec<anyhow::Result<()>> = stream::iter(wallets.iter().zip(&deposits))
        .map(|(wallet, &deposit)| {
            let stack = &stack;
            async move {
                stack
                    .funded_wallet(wallet, CURRENCY, deposit, &format!("bank-deposit-{wallet}"))
                    .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    opened.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let deposited: i128 = deposits.iter().map(|&d| i128::from(d)).sum();

    // The processor: a clean ledger, and some of its answers lost.
    let processor = paysaga_tests::processor_url(&stack.wiring)?;
    control(
        &stack,
        reqwest::Method::POST,
        &format!("{processor}/_control/reset"),
        None,
    )
    .await?;
    control(
        &stack,
        reqwest::Method::PUT,
        &format!("{processor}/_control"),
        Some(json!({"error_rate": PROCESSOR_ERROR_RATE})),
    )
    .await?;

    // The payments, submitted concurrently, while the processor goes down twice.
    let started = Instant::now();
    let outages = tokio::spawn(outage_windows(
        stack.http.clone(),
        processor.clone(),
        started,
    ));
    let submitted: Vec<anyhow::Result<Submitted>> = stream::iter(planned.iter().enumerate())
        .map(|(index, payment)| submit(&stack, &run, &wallets, index, payment))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let submitted = submitted
        .into_iter()
        .collect::<anyhow::Result<Vec<Submitted>>>()?;
    let submitting = started.elapsed();
    let mut ids = Vec::with_capacity(PAYMENTS);
    for outcome in submitted {
        for problem in outcome.problems {
            violations.add("duplicates answered consistently", problem);
        }
        ids.push(outcome.payment_id);
    }
    let id_set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    if id_set.len() != PAYMENTS {
        violations.add(
            "payments kept apart",
            format!(
                "{PAYMENTS} payments submitted but only {} distinct ids",
                id_set.len()
            ),
        );
    }
    println!(
        "bank: {PAYMENTS} payments submitted in {:.1} s; waiting for them to settle",
        submitting.as_secs_f64()
    );

    // Until every payment is COMPLETED or FAILED, or the deadline.
    let finals = settle(&stack, &ids, started, &mut violations).await;
    let settling = started.elapsed();
    let outages_opened = outages.await.context("the outage task")?;

    // 1. Money: nothing created or lost, per wallet exactly what the completed payments moved.
    let mut expected: Vec<i128> = deposits.iter().map(|&d| i128::from(d)).collect();
    for (payment, id) in planned.iter().zip(&ids) {
        if status_of(&finals, id) == Some("COMPLETED") {
            expected[payment.from] -= i128::from(payment.amount);
            expected[payment.to] += i128::from(payment.amount);
        }
    }
    let (mut total_available, mut total_reserved) = (0i128, 0i128);
    for (n, wallet) in wallets.iter().enumerate() {
        let (status, body) = stack.get(&format!("/wallets/{wallet}")).await?;
        if status != 200 {
            bail!("reading {wallet} answered {status}: {body}");
        }
        let field = |name: &str| {
            body[name]["minor_units"]
                .as_i64()
                .map(i128::from)
                .with_context(|| format!("{name} of {wallet} in {body}"))
        };
        let (available, reserved) = (field("available")?, field("reserved")?);
        total_available += available;
        total_reserved += reserved;
        if available < 0 || reserved < 0 {
            violations.add(
                "no negative balance",
                format!("{wallet}: available {available}, reserved {reserved}"),
            );
        }
        if reserved != 0 {
            violations.add(
                "no reservation left",
                format!("{wallet}: {reserved} still reserved"),
            );
        }
        if available != expected[n] {
            violations.add(
                "each wallet moved exactly its completed payments",
                format!(
                    "{wallet}: available {available}, expected {} (deposit {} {:+})",
                    expected[n],
                    deposits[n],
                    expected[n] - i128::from(deposits[n])
                ),
            );
        }
    }
    let total = total_available + total_reserved;
    if total != deposited {
        violations.add(
            "sum of balances = sum of deposits",
            format!(
                "balances sum to {total} (available {total_available} + reserved {total_reserved}), deposits to {deposited}: {:+}",
                total - deposited
            ),
        );
    }

    // 2. Every payment terminal; failed ones say why.
    let mut failed_by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut completed = 0;
    for id in &ids {
        match finals.get(id.as_str()) {
            Some(view) if view["status"] == "COMPLETED" => completed += 1,
            Some(view) if view["status"] == "FAILED" => match view["failure"]["code"].as_str() {
                Some(code) if !code.is_empty() => {
                    *failed_by_code.entry(code.to_owned()).or_default() += 1
                }
                _ => violations.add("failed payments say why", format!("{id}: {view}")),
            },
            _ => {} // reported by `settle` as stuck
        }
    }

    // 3. The processor: completed payments captured once for their amount, failed ones never.
    let (_, charges) = control(
        &stack,
        reqwest::Method::GET,
        &format!("{processor}/charges"),
        None,
    )
    .await?;
    let (_, counters) = control(
        &stack,
        reqwest::Method::GET,
        &format!("{processor}/_control"),
        None,
    )
    .await?;
    // The processor answers every call again for the tests that come next (its ledger is kept).
    control(
        &stack,
        reqwest::Method::PUT,
        &format!("{processor}/_control"),
        Some(json!({})),
    )
    .await?;
    let charges: HashMap<&str, &Value> = charges["charges"]
        .as_array()
        .context("GET /charges lists charges")?
        .iter()
        .filter_map(|charge| Some((charge["payment_id"].as_str()?, charge)))
        .collect();
    let mut charge_states: BTreeMap<String, usize> = BTreeMap::new();
    for (payment, id) in planned.iter().zip(&ids) {
        let charge = charges.get(id.as_str());
        let state = charge.and_then(|c| c["status"].as_str()).unwrap_or("none");
        *charge_states.entry(state.to_owned()).or_default() += 1;
        match status_of(&finals, id) {
            Some("COMPLETED") => {
                let amount = charge.and_then(|c| c["amount"]["minor_units"].as_u64());
                if state != "captured" || amount != Some(payment.amount) {
                    violations.add(
                        "completed payments are captured",
                        format!(
                            "{id} ({} minor units): processor has {}",
                            payment.amount,
                            charge.map_or("nothing".to_owned(), |c| c.to_string())
                        ),
                    );
                }
            }
            Some("FAILED") if state == "captured" => violations.add(
                "failed payments are refunded or voided",
                format!(
                    "{id}: processor still has {}",
                    charge.map_or(Value::Null, |c| (*c).clone())
                ),
            ),
            _ => {}
        }
    }

    // 4. The saga logs: contiguous versions, no step twice, only the saga's shapes.
    let table = stack.wiring.table("PaymentsTable")?.to_owned();
    let logs: Vec<(usize, anyhow::Result<Vec<Value>>)> = stream::iter(ids.iter().enumerate())
        .map(|(index, id)| {
            let (stack, table) = (&stack, &table);
            async move { (index, payment_log(stack, table, id).await) }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut logs: Vec<_> = logs.into_iter().collect();
    logs.sort_by_key(|(index, _)| *index);
    let mut steps_of: Vec<Vec<String>> = Vec::with_capacity(PAYMENTS);
    let mut log_entries = 0;
    for (index, log) in logs {
        let (id, payment) = (&ids[index], &planned[index]);
        let log = log.with_context(|| format!("reading the log of {id}"))?;
        log_entries += log.len();
        let steps: Vec<String> = log
            .iter()
            .map(|entry| entry["step"].as_str().unwrap_or("?").to_owned())
            .collect();
        check_log(
            id,
            payment,
            &wallets,
            &log,
            &steps,
            finals.get(id.as_str()),
            &mut violations,
        );
        steps_of.push(steps);
    }

    // 5. Fault accounting: every fail_step payment failed, by its fault or by an earlier,
    //    business reason; no other payment failed by an injected fault.
    let mut fault_outcomes: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut crashes_reached = 0;
    for (index, payment) in planned.iter().enumerate() {
        let id = &ids[index];
        let view = finals.get(id.as_str());
        let code = view.and_then(|v| v["failure"]["code"].as_str());
        let failed_at = view.and_then(|v| v["failure"]["step"].as_str());
        let steps = &steps_of[index];
        match payment.fault {
            Some(Fault::FailStep(step)) => {
                let outcome = match (status_of(&finals, id), code) {
                    (Some("FAILED"), Some("injected_fault")) if failed_at == Some(step) => {
                        "injected_fault".to_owned()
                    }
                    (Some("FAILED"), Some(code)) if preempted(step, code, steps) => {
                        format!("preempted by {code}")
                    }
                    (status, _) => {
                        violations.add(
                            "fail_step directives fail their payment",
                            format!(
                                "{id} (fail_step {step}) ended {} with {} — log {steps:?}{}",
                                status.unwrap_or("unsettled"),
                                view.map_or(Value::Null, |v| v["failure"].clone()),
                                if status == Some("COMPLETED") {
                                    "; is payment-saga built with its fault-injection feature (make build-local)?"
                                } else {
                                    ""
                                }
                            ),
                        );
                        "unexpected".to_owned()
                    }
                };
                *fault_outcomes
                    .entry(format!("fail_step {step}"))
                    .or_default()
                    .entry(outcome)
                    .or_default() += 1;
            }
            Some(Fault::CrashAfter(step)) => {
                let recorded = match step {
                    "reserve_funds" => "FUNDS_RESERVED",
                    "charge_payment" => "CHARGED",
                    // Settling writes the terminal entry.
                    _ => "COMPLETED",
                };
                let reached = steps.iter().any(|s| s == recorded);
                crashes_reached += usize::from(reached);
                let outcome = format!(
                    "{} {}",
                    status_of(&finals, id).unwrap_or("unsettled"),
                    if reached {
                        "(step reached)"
                    } else {
                        "(step not reached)"
                    }
                );
                *fault_outcomes
                    .entry(format!("crash_after {step}"))
                    .or_default()
                    .entry(outcome)
                    .or_default() += 1;
            }
            None if code == Some("injected_fault") => violations.add(
                "only directed payments fail by injection",
                format!(
                    "{id} carried no directive but failed with {}",
                    view.map_or(Value::Null, |v| v["failure"].clone())
                ),
            ),
            None => {}
        }
    }
    // Informative only: the log may be elsewhere, and other runs may crash meanwhile.
    let crashes_logged = function_log().ok().map(|log| {
        log.get(function_log_start..)
            .unwrap_or_default()
            .matches("fault injection: crashing")
            .count()
    });

    // The figures.
    let failed: usize = failed_by_code.values().sum();
    let count_faults = |fail: bool| {
        planned
            .iter()
            .filter(|p| matches!(p.fault, Some(Fault::FailStep(_))) == fail && p.fault.is_some())
            .count()
    };
    let by_route = |route| planned.iter().filter(|p| p.route == route).count();
    let duplicates = planned.iter().filter(|p| p.duplicate).count();
    let dup_by_route = |route| {
        planned
            .iter()
            .filter(|p| p.duplicate && p.route == route)
            .count()
    };
    let overdrawn = failed_by_code
        .get("insufficient_funds")
        .copied()
        .unwrap_or(0);

    println!("\n==================== bank: summary (seed {seed}) ====================");
    println!(
        "wallets                 {WALLETS} (EUR), deposits 0..={MAX_DEPOSIT}, sum {deposited}"
    );
    println!(
        "payments                {PAYMENTS}: {} via the API, {} straight onto the bus; amounts 1..={MAX_AMOUNT}",
        by_route(Route::Api),
        by_route(Route::Bus)
    );
    println!("  completed             {completed}");
    println!("  failed                {failed}");
    for (code, count) in &failed_by_code {
        println!("    {code:<22}{count}");
    }
    println!("  not settled           {}", PAYMENTS - completed - failed);
    println!(
        "fault directives        {} ({:.1} % of payments): fail_step {}, crash_after {}",
        count_faults(true) + count_faults(false),
        100.0 * (count_faults(true) + count_faults(false)) as f64 / PAYMENTS as f64,
        count_faults(true),
        count_faults(false)
    );
    for (fault, outcomes) in &fault_outcomes {
        let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o}: {n}")).collect();
        println!("  {fault:<28}{}", outcomes.join(", "));
    }
    let injected = failed_by_code.get("injected_fault").copied().unwrap_or(0);
    if injected < MIN_INJECTED_FAILURES {
        violations.add(
            "at least 10 % fail by injection",
            format!("only {injected} of {PAYMENTS} payments failed by an injected fault"),
        );
    }
    println!(
        "  failed by a directive {injected} ({:.1} % of payments); transient: {} injected processor errors, {} outage rejections",
        100.0 * injected as f64 / PAYMENTS as f64,
        counters["counters"]["injected_errors"],
        counters["counters"]["outage_rejections"]
    );
    println!(
        "  crash_after reached   {crashes_reached} payments; crashes in the function log: {}",
        crashes_logged.map_or("log not readable".to_owned(), |n| n.to_string())
    );
    println!(
        "duplicates sent         {duplicates} ({} API: POST retried + event re-published; {} bus: entry published twice)",
        dup_by_route(Route::Api),
        dup_by_route(Route::Bus)
    );
    println!(
        "processor               error_rate {PROCESSOR_ERROR_RATE}; outage windows {}: {}",
        outages_opened.len(),
        outages_opened.join(", ")
    );
    println!("  counters              {}", counters["counters"]);
    println!(
        "  our charges           {}",
        charge_states
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "money                   balances {total} = available {total_available} + reserved {total_reserved}; deposits {deposited}; {overdrawn} overdrafts refused"
    );
    println!(
        "saga log entries        {log_entries} ({:.2} per payment)",
        log_entries as f64 / PAYMENTS as f64
    );
    println!(
        "elapsed                 {:.1} s (submitting {:.1} s); {:.1} payments/s",
        settling.as_secs_f64(),
        submitting.as_secs_f64(),
        PAYMENTS as f64 / settling.as_secs_f64()
    );
    let checks = [
        "sum of balances = sum of deposits",
        "each wallet moved exactly its completed payments",
        "no negative balance",
        "no reservation left",
        "every payment settles",
        "failed payments say why",
        "completed payments are captured",
        "failed payments are refunded or voided",
        "saga logs are contiguous",
        "no saga step twice",
        "saga logs have the saga's shapes",
        "logs agree with the API",
        "fail_step directives fail their payment",
        "at least 10 % fail by injection",
        "only directed payments fail by injection",
        "duplicates answered consistently",
        "payments kept apart",
    ];
    println!("checks:");
    for check in checks {
        let n = violations.count(check);
        println!(
            "  {:<50}{}",
            check,
            if n == 0 {
                "ok".to_owned()
            } else {
                format!("{n} VIOLATIONS")
            }
        );
    }
    for (check, problems) in &violations.0 {
        if !checks.contains(check) {
            println!("  {check:<50}{} VIOLATIONS", problems.len());
        }
    }
    println!("=====================================================================");

    if violations.total() > 0 {
        for (check, problems) in &violations.0 {
            println!("\nVIOLATED: {check} ({}):", problems.len());
            for problem in problems.iter().take(40) {
                println!("  - {problem}");
            }
            if problems.len() > 40 {
                println!("  ... and {} more", problems.len() - 40);
            }
        }
        panic!(
            "the bank does not balance: {} violations (seed {seed}; replay with PAYSAGA_BANK_SEED={seed})",
            violations.total()
        );
    }
    Ok(())
}

/// A payment as submitted: its id, and anything odd in how its duplicate was answered.
struct Submitted {
    payment_id: String,
    problems: Vec<String>,
}

async fn submit(
    stack: &Stack,
    run: &str,
    wallets: &[String],
    index: usize,
    payment: &Planned,
) -> anyhow::Result<Submitted> {
    let (from, to) = (&wallets[payment.from], &wallets[payment.to]);
    let amount = json!({"minor_units": payment.amount, "currency": CURRENCY});
    let mut problems = Vec::new();
    match payment.route {
        Route::Api => {
            let key = format!("bank-{run}-{index}");
            let body = json!({"from_wallet": from, "to_wallet": to, "amount": amount});
            let accepted = post_payment(stack, &body, &key).await?;
            let payment_id = accepted["payment_id"]
                .as_str()
                .with_context(|| format!("POST /payments answered {accepted}"))?
                .to_owned();
            if payment.duplicate {
                let again = post_payment(stack, &body, &key).await?;
                if again["payment_id"] != payment_id.as_str() {
                    problems.push(format!(
                        "POST /payments retried with key {key} answered {again}, first {payment_id}"
                    ));
                }
                // And the same request reaches the saga a second time, as a redelivered event.
                let detail = requested(&payment_id, from, to, &amount, None);
                put_payment_requested(stack, &detail).await?;
            }
            Ok(Submitted {
                payment_id,
                problems,
            })
        }
        Route::Bus => {
            let payment_id = format!("pay_{}", unique());
            let detail = requested(&payment_id, from, to, &amount, payment.fault);
            put_payment_requested(stack, &detail).await?;
            if payment.duplicate {
                put_payment_requested(stack, &detail).await?;
            }
            Ok(Submitted {
                payment_id,
                problems,
            })
        }
    }
}

/// The `detail` of a PaymentRequested event: the versioned envelope around the request.
fn requested(
    payment_id: &str,
    from: &str,
    to: &str,
    amount: &Value,
    fault: Option<Fault>,
) -> Value {
    let mut data =
        json!({"payment_id": payment_id, "from_wallet": from, "to_wallet": to, "amount": amount});
    if let Some(fault) = fault {
        data["test_faults"] = fault.directive();
    }
    json!({
        "version": 1,
        "event_id": format!("{payment_id}/1"),
        "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
}

/// POST /payments, retried with the same key while the API is unreachable or answers 5xx.
async fn post_payment(stack: &Stack, body: &Value, key: &str) -> anyhow::Result<Value> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = stack.post("/payments", body.clone(), Some(key)).await;
        match outcome {
            Ok((202, accepted)) => return Ok(accepted),
            Ok((status, answer)) if status < 500 || attempt >= ATTEMPTS => {
                bail!("POST /payments {body} answered {status}: {answer}")
            }
            Err(error) if attempt >= ATTEMPTS => return Err(error),
            _ => backoff(attempt).await,
        }
    }
}

async fn put_payment_requested(stack: &Stack, detail: &Value) -> anyhow::Result<()> {
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(&stack.event_bus_name)
        .source("paysaga.payments")
        .detail_type("PaymentRequested")
        .detail(detail.to_string())
        .build();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = stack
            .eventbridge
            .put_events()
            .entries(entry.clone())
            .send()
            .await;
        let problem = match outcome {
            Ok(output) if output.failed_entry_count() == 0 => return Ok(()),
            Ok(output) => format!("{:?}", output.entries()),
            Err(error) => format!("{error:?}"),
        };
        if attempt >= ATTEMPTS {
            bail!("PutEvents of {detail} failed: {problem}");
        }
        backoff(attempt).await;
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
}

/// A request to the processor's API; its status and JSON body.
async fn control(
    stack: &Stack,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = stack.http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url} (is the fake payment processor running?)"))?;
    let status = response.status().as_u16();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{method} {url}"))?;
    if !(200..300).contains(&status) {
        bail!("{method} {url} answered {status}: {body}");
    }
    Ok((status, body))
}

/// Opens the processor outages on their schedule; says when each began.
async fn outage_windows(http: reqwest::Client, processor: String, started: Instant) -> Vec<String> {
    let mut opened = Vec::new();
    for (at, seconds) in OUTAGES {
        tokio::time::sleep_until((started + at).into()).await;
        let answer = http
            .post(format!("{processor}/_control/outage"))
            .json(&json!({"seconds": seconds}))
            .send()
            .await;
        opened.push(match answer {
            Ok(response) if response.status().is_success() => {
                format!(
                    "{seconds} s from t={:.1} s",
                    started.elapsed().as_secs_f64()
                )
            }
            Ok(response) => format!("REFUSED ({})", response.status()),
            Err(error) => format!("FAILED ({error})"),
        });
    }
    opened
}

/// Polls every payment until it is COMPLETED or FAILED; those that are not by the deadline are
/// violations. Answers the final views by payment id.
async fn settle(
    stack: &Stack,
    ids: &[String],
    started: Instant,
    violations: &mut Violations,
) -> HashMap<String, Value> {
    let mut pending: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let mut finals: HashMap<String, Value> = HashMap::new();
    let mut latest: HashMap<&str, String> = HashMap::new();
    let mut last_report = Instant::now();
    loop {
        let answers: Vec<(&str, anyhow::Result<(u16, Value)>)> =
            stream::iter(pending.iter().copied())
                .map(|id| async move { (id, stack.get(&format!("/payments/{id}")).await) })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
        for (id, answer) in answers {
            let state = match answer {
                Ok((200, view)) => {
                    let status = view["status"].as_str().unwrap_or("?").to_owned();
                    if status == "COMPLETED" || status == "FAILED" {
                        pending.remove(id);
                        finals.insert(id.to_owned(), view);
                    }
                    status
                }
                Ok((404, _)) => "not yet logged".to_owned(),
                Ok((status, _)) => format!("HTTP {status}"),
                Err(_) => "unreachable".to_owned(),
            };
            latest.insert(id, state);
        }
        let over = started.elapsed() > SETTLE_DEADLINE;
        if pending.is_empty() || over || last_report.elapsed() >= PROGRESS_EVERY {
            let completed = finals
                .values()
                .filter(|v| v["status"] == "COMPLETED")
                .count();
            let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
            for id in &pending {
                *waiting
                    .entry(latest.get(id).map_or("?", String::as_str))
                    .or_default() += 1;
            }
            println!(
                "bank: [{:>6.1} s] {}/{} settled (completed {completed}, failed {}); waiting: {waiting:?}",
                started.elapsed().as_secs_f64(),
                finals.len(),
                ids.len(),
                finals.len() - completed,
            );
            last_report = Instant::now();
        }
        if pending.is_empty() {
            return finals;
        }
        if over {
            for id in pending {
                violations.add(
                    "every payment settles",
                    format!(
                        "{id} still {} after {:?}",
                        latest.get(id).map_or("?", String::as_str),
                        SETTLE_DEADLINE
                    ),
                );
            }
            return finals;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn status_of<'a>(finals: &'a HashMap<String, Value>, id: &str) -> Option<&'a str> {
    finals.get(id).and_then(|view| view["status"].as_str())
}

/// Whether a payment told to fail at `step` rightly failed earlier, for `code`, before that
/// step ran: a refused reservation (the log is REQUESTED, FAILED), or, for the settlement, a
/// charge the processor declined or never answered (compensated before any CHARGED).
fn preempted(step: &str, code: &str, steps: &[String]) -> bool {
    let refused = steps == REFUSED_LOG;
    let compensated_before_charge = steps == UNDONE_BEFORE_CHARGE_LOG;
    match (step, code) {
        ("charge_payment" | "settle_funds", "insufficient_funds") => refused,
        ("settle_funds", "payment_declined" | "processor_unavailable") => compensated_before_charge,
        _ => false,
    }
}

/// A payment's log, version by version, straight from the payments table.
async fn payment_log(stack: &Stack, table: &str, payment_id: &str) -> anyhow::Result<Vec<Value>> {
    let mut entries = Vec::new();
    let mut start = None;
    loop {
        let mut attempt = 0;
        let page = loop {
            attempt += 1;
            let outcome = stack
                .dynamodb
                .query()
                .table_name(table)
                .key_condition_expression("payment_id = :id")
                .expression_attribute_values(":id", AttributeValue::S(payment_id.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start.clone())
                .send()
                .await;
            match outcome {
                Ok(page) => break page,
                Err(error) if attempt >= ATTEMPTS => {
                    return Err(error).with_context(|| format!("Query {table} for {payment_id}"));
                }
                Err(_) => backoff(attempt).await,
            }
        };
        entries.extend(page.items().iter().map(|item| {
            Value::Object(item.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }));
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    entries.sort_by_key(|entry| entry["version"].as_i64());
    Ok(entries)
}

/// A DynamoDB attribute as JSON (numbers as integers when they are).
fn json_of(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
        AttributeValue::L(list) => Value::Array(list.iter().map(json_of).collect()),
        other => Value::String(format!("{other:?}")),
    }
}

/// Checks one payment's log against the saga's rules and the API's view of it.
fn check_log(
    id: &str,
    payment: &Planned,
    wallets: &[String],
    log: &[Value],
    steps: &[String],
    view: Option<&Value>,
    violations: &mut Violations,
) {
    let versions: Vec<i64> = log
        .iter()
        .map(|e| e["version"].as_i64().unwrap_or(-1))
        .collect();
    let contiguous: Vec<i64> = (1..=log.len() as i64).collect();
    if versions != contiguous {
        violations.add(
            "saga logs are contiguous",
            format!("{id}: versions {versions:?}"),
        );
    }
    let distinct: HashSet<&String> = steps.iter().collect();
    if distinct.len() != steps.len() {
        violations.add("no saga step twice", format!("{id}: {steps:?}"));
    }
    if let Some(first) = log.first() {
        let request = &first["request"];
        let asked = (
            request["from_wallet"].as_str(),
            request["to_wallet"].as_str(),
            request["amount"]["minor_units"].as_i64(),
        );
        let planned = (
            Some(wallets[payment.from].as_str()),
            Some(wallets[payment.to].as_str()),
            Some(payment.amount as i64),
        );
        if asked != planned {
            violations.add(
                "logs agree with the API",
                format!("{id}: v1 records {first}, not the request sent"),
            );
        }
    }
    let shape_ok = match view.and_then(|v| v["status"].as_str()) {
        Some("COMPLETED") => steps == COMPLETED_LOG,
        Some("FAILED") => {
            steps == REFUSED_LOG
                || steps == UNDONE_BEFORE_CHARGE_LOG
                || steps == UNDONE_AFTER_CHARGE_LOG
        }
        _ => true, // unsettled: reported as such
    };
    if !shape_ok {
        let status = view.map_or(Value::Null, |v| v["status"].clone());
        violations.add(
            "saga logs have the saga's shapes",
            format!("{id} is {status} with log {steps:?}"),
        );
    }
    // A failed payment's log ends with the reason the API shows, the one compensation started for.
    if let Some(view) = view.filter(|v| v["status"] == "FAILED") {
        let code_of = |step: &str| {
            log.iter()
                .find(|e| e["step"] == step)
                .and_then(|e| e["reason"]["code"].as_str())
        };
        let shown = view["failure"]["code"].as_str();
        let failed = code_of("FAILED");
        let started = code_of("COMPENSATION_STARTED");
        if failed != shown || (started.is_some() && started != failed) {
            violations.add(
                "logs agree with the API",
                format!("{id}: API says {shown:?}, log FAILED {failed:?}, COMPENSATION_STARTED {started:?}"),
            );
        }
    }
}
