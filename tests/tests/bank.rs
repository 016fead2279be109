//! The bank test: many wallets and hundreds of concurrent random payments of the three flows —
//! transfers between wallets (overdrafts included), top-ups into them from funding instruments
//! (some of which the processor declines) and payouts out of them to destinations (some of
//! which refuse after the wallet's funds were reserved, some larger than any wallet holds) —
//! with injected step failures and crashes, duplicate deliveries, a processor error rate and
//! processor outages. Afterwards:
//!
//! - in each currency the books sum to exactly zero: every wallet, plus the outside world's
//!   accounts (`world:adjustments`, the operators' deposits; `world:funding`, the completed
//!   top-ups; `world:payouts`, the completed payouts);
//! - every wallet's balance equals its entries (its operator deposit, and the one transfer of
//!   each payment whose saga log ends COMPLETED, as that log's request says), the API's
//!   statuses and the plan say the same, and nothing stays reserved;
//! - every payment of every flow is COMPLETED or FAILED, and every failed one has undone what
//!   it did; the processor's test-mode ids fail their payment, an oversized payout never
//!   reaches the processor;
//! - the processor holds a captured charge for every completed transfer and top-up (for its
//!   amount and instrument) and a paid payout for every completed payout, nothing captured or
//!   paid for a failed one, and in total exactly what the world's accounts say: no charge
//!   captured without its credit, no payout paid without its debit;
//! - every saga log is contiguous, has one of the saga's shapes, and no step twice.
//!
//! Through the API nothing can fail a top-up or a payout once the processor has done its part,
//! so a few of each are also published straight onto the bus with a fault directive, as 150 of
//! the transfers are: those are the ones whose captured charge must be refunded and whose paid
//! payout must be cancelled.
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
/// Wallets that get no operator deposit: what they hold comes from top-ups and transfers in.
const UNFUNDED_WALLETS: usize = 4;
const CURRENCY: &str = "EUR";
/// Deposits are 0..=this, transfer amounts 1..=`MAX_AMOUNT`: many transfers overdraw.
const MAX_DEPOSIT: u64 = 50_000;
const MAX_AMOUNT: u64 = 20_000;

const TRANSFERS: usize = 500;
/// Transfers published straight onto the bus (the rest go through the API); they carry the
/// fault directives, which only the bus accepts.
const BUS_TRANSFERS: usize = 150;
/// `fail_step` directives: 20 % of the transfers. Half of them aim at `reserve_funds`, which
/// always takes effect, so that at least 10 % of the transfers fail by injection; the other half
/// aim at the charge or the settlement, which an overdraft refused first may pre-empt.
const FAIL_STEP_TRANSFERS: usize = 100;
/// Transfers that must end FAILED with `injected_fault`: 10 %.
const MIN_INJECTED_FAILURES: usize = TRANSFERS / 10;
/// `crash_after` directives: 5 % of the transfers.
const CRASH_TRANSFERS: usize = 25;
/// Transfers delivered twice: 10 %.
const DUPLICATE_TRANSFERS: usize = 50;

/// Top-ups through the API, each under its own `Idempotency-Key`; amounts 1..=`MAX_TOP_UP`.
const TOP_UPS: usize = 60;
const MAX_TOP_UP: u64 = 30_000;
/// Of them, charged to a test instrument the processor always declines (`fi_declined_…`): 20 %.
const DECLINED_TOP_UPS: usize = 12;
/// Of them, submitted twice with the same key (and their request published again on the bus).
const DUPLICATE_TOP_UPS: usize = 10;
/// Payouts through the API, each under its own key; amounts 1..=`MAX_AMOUNT`, so some overdraw.
const PAYOUTS: usize = 60;
/// Of them, to a test destination that always refuses (`dst_refusing_…`) once the wallet's
/// funds are reserved: 20 %. Small (1..=`MAX_SMALL_PAYOUT`), so that most are reserved first.
const REFUSED_PAYOUTS: usize = 12;
const MAX_SMALL_PAYOUT: u64 = 5_000;
/// Of them, for at least `OVERSIZED` minor units, more than the run could ever put in one
/// wallet: refused for insufficient funds before the processor hears of them.
const OVERSIZED_PAYOUTS: usize = 6;
const OVERSIZED: u64 =
    WALLETS as u64 * MAX_DEPOSIT + (TOP_UPS + FAULTED_TOP_UPS) as u64 * MAX_TOP_UP + 1;
/// Of them, submitted twice with the same key (and their request published again on the bus).
const DUPLICATE_PAYOUTS: usize = 10;
/// Top-ups and payouts published straight onto the bus, each with a fault directive
/// ([`FLOW_FAULTS`]); every third one twice. Payouts of them are small.
const FAULTED_TOP_UPS: usize = 10;
const FAULTED_PAYOUTS: usize = 10;
/// The directives of the faulted top-ups and payouts, in turn: most fail the settlement, after
/// the processor charged or paid, so that its part must be undone.
const FLOW_FAULTS: [Fault; 4] = [
    Fault::FailStep("settle_funds"),
    Fault::FailStep("settle_funds"),
    Fault::FailStep("charge_payment"),
    Fault::CrashAfter("charge_payment"),
];

/// The processor's test-mode ids (infra/local/payment-processor): always refused.
const DECLINED_INSTRUMENT: &str = "fi_declined_";
const REFUSING_DESTINATION: &str = "dst_refusing_";

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

/// A payment's parties, as its request, the API's view and the log name them.
const PARTIES: [&str; 4] = [
    "from_wallet",
    "to_wallet",
    "funding_instrument",
    "destination",
];

// The saga's log shapes; the step names are the same for every flow (for a top-up,
// FUNDS_RESERVED and RESERVATION_RELEASED hold and release nothing).
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

/// The three flows of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Transfer,
    TopUp,
    Payout,
}

impl Kind {
    /// As the API's `kind` says it.
    fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::TopUp => "top_up",
            Self::Payout => "payout",
        }
    }

    /// The `detail-type` of its request on the bus.
    fn requested(self) -> &'static str {
        match self {
            Self::Transfer => "PaymentRequested",
            Self::TopUp => "TopUpRequested",
            Self::Payout => "PayoutRequested",
        }
    }
}

/// Who a planned payment moves money between (wallets by their number in the run).
#[derive(Debug, Clone)]
enum Parties {
    Transfer { from: usize, to: usize },
    TopUp { to: usize, instrument: String },
    Payout { from: usize, destination: String },
}

/// One payment of the run, as planned.
#[derive(Debug, Clone)]
struct Planned {
    parties: Parties,
    amount: u64,
    route: Route,
    fault: Option<Fault>,
    duplicate: bool,
}

impl Planned {
    fn kind(&self) -> Kind {
        match self.parties {
            Parties::Transfer { .. } => Kind::Transfer,
            Parties::TopUp { .. } => Kind::TopUp,
            Parties::Payout { .. } => Kind::Payout,
        }
    }

    /// The wallet it debits, if any.
    fn debited(&self) -> Option<usize> {
        match self.parties {
            Parties::Transfer { from, .. } | Parties::Payout { from, .. } => Some(from),
            Parties::TopUp { .. } => None,
        }
    }

    /// The wallet it credits, if any.
    fn credited(&self) -> Option<usize> {
        match self.parties {
            Parties::Transfer { to, .. } | Parties::TopUp { to, .. } => Some(to),
            Parties::Payout { .. } => None,
        }
    }

    /// A top-up of a declining instrument or a payout to a refusing destination.
    fn test_mode_refusal(&self) -> bool {
        match &self.parties {
            Parties::TopUp { instrument, .. } => instrument.starts_with(DECLINED_INSTRUMENT),
            Parties::Payout { destination, .. } => destination.starts_with(REFUSING_DESTINATION),
            Parties::Transfer { .. } => false,
        }
    }

    fn oversized(&self) -> bool {
        self.amount >= OVERSIZED
    }

    /// The request as sent, and as the saga must record it: the parties and the amount.
    fn request(&self, wallets: &[String]) -> Value {
        let mut request = match &self.parties {
            Parties::Transfer { from, to } => {
                json!({"from_wallet": wallets[*from], "to_wallet": wallets[*to]})
            }
            Parties::TopUp { to, instrument } => {
                json!({"funding_instrument": instrument, "to_wallet": wallets[*to]})
            }
            Parties::Payout { from, destination } => {
                json!({"from_wallet": wallets[*from], "destination": destination})
            }
        };
        request["amount"] = json!({"minor_units": self.amount, "currency": CURRENCY});
        request
    }
}

/// The run, drawn from the seed.
struct Plan {
    /// Each wallet's operator deposit (0: none).
    deposits: Vec<u64>,
    /// The transfers first (`..TRANSFERS`), then the top-ups, then the payouts.
    payments: Vec<Planned>,
    /// The order of submission: the three flows interleaved.
    order: Vec<usize>,
}

fn plan(rng: &mut fastrand::Rng) -> Plan {
    let mut deposits: Vec<u64> = (0..WALLETS).map(|_| rng.u64(0..=MAX_DEPOSIT)).collect();
    for deposit in &mut deposits[WALLETS - UNFUNDED_WALLETS..] {
        *deposit = 0;
    }
    let mut payments = plan_transfers(rng);
    payments.extend(plan_top_ups(rng));
    payments.extend(plan_payouts(rng));
    let mut order: Vec<usize> = (0..payments.len()).collect();
    rng.shuffle(&mut order);
    Plan {
        deposits,
        payments,
        order,
    }
}

/// `count` of `0..n`, drawn without repetition.
fn pick(rng: &mut fastrand::Rng, n: usize, count: usize) -> HashSet<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut all);
    all.into_iter().take(count).collect()
}

fn plan_transfers(rng: &mut fastrand::Rng) -> Vec<Planned> {
    let mut order: Vec<usize> = (0..TRANSFERS).collect();
    rng.shuffle(&mut order);
    let mut routes = vec![Route::Api; TRANSFERS];
    let mut faults = vec![None; TRANSFERS];
    for (n, &index) in order[..BUS_TRANSFERS].iter().enumerate() {
        routes[index] = Route::Bus;
        let step = FAULT_STEPS[rng.usize(..FAULT_STEPS.len())];
        if n < FAIL_STEP_TRANSFERS / 2 {
            faults[index] = Some(Fault::FailStep("reserve_funds"));
        } else if n < FAIL_STEP_TRANSFERS {
            faults[index] = Some(Fault::FailStep(
                FAULT_STEPS[rng.usize(1..FAULT_STEPS.len())],
            ));
        } else if n < FAIL_STEP_TRANSFERS + CRASH_TRANSFERS {
            faults[index] = Some(Fault::CrashAfter(step));
        }
    }
    let duplicates = pick(rng, TRANSFERS, DUPLICATE_TRANSFERS);
    (0..TRANSFERS)
        .map(|index| {
            let from = rng.usize(..WALLETS);
            let to = (from + 1 + rng.usize(..WALLETS - 1)) % WALLETS;
            Planned {
                parties: Parties::Transfer { from, to },
                amount: rng.u64(1..=MAX_AMOUNT),
                route: routes[index],
                fault: faults[index],
                duplicate: duplicates.contains(&index),
            }
        })
        .collect()
}

/// The fault directive of the `n`th faulted top-up or payout.
fn flow_fault(rng: &mut fastrand::Rng, n: usize) -> Fault {
    match FLOW_FAULTS[n % FLOW_FAULTS.len()] {
        Fault::CrashAfter(_) => Fault::CrashAfter(FAULT_STEPS[rng.usize(..FAULT_STEPS.len())]),
        fault => fault,
    }
}

fn plan_top_ups(rng: &mut fastrand::Rng) -> Vec<Planned> {
    // The first top-ups go to the unfunded wallets, two each, and none of them is declined:
    // every unfunded wallet receives money.
    let to_unfunded = 2 * UNFUNDED_WALLETS;
    let declined: HashSet<usize> = pick(rng, TOP_UPS - to_unfunded, DECLINED_TOP_UPS)
        .into_iter()
        .map(|n| n + to_unfunded)
        .collect();
    let duplicates = pick(rng, TOP_UPS, DUPLICATE_TOP_UPS);
    let mut top_ups: Vec<Planned> = (0..TOP_UPS)
        .map(|n| {
            let to = if n < to_unfunded {
                WALLETS - UNFUNDED_WALLETS + n % UNFUNDED_WALLETS
            } else {
                rng.usize(..WALLETS)
            };
            let instrument = if declined.contains(&n) {
                format!("{DECLINED_INSTRUMENT}bank_{n:02}")
            } else {
                format!("fi_bank_card_{}", rng.usize(..8))
            };
            Planned {
                parties: Parties::TopUp { to, instrument },
                amount: rng.u64(1..=MAX_TOP_UP),
                route: Route::Api,
                fault: None,
                duplicate: duplicates.contains(&n),
            }
        })
        .collect();
    top_ups.extend((0..FAULTED_TOP_UPS).map(|n| Planned {
        parties: Parties::TopUp {
            to: rng.usize(..WALLETS),
            instrument: format!("fi_bank_card_{}", rng.usize(..8)),
        },
        amount: rng.u64(1..=MAX_TOP_UP),
        route: Route::Bus,
        fault: Some(flow_fault(rng, n)),
        duplicate: n % 3 == 0,
    }));
    top_ups
}

fn plan_payouts(rng: &mut fastrand::Rng) -> Vec<Planned> {
    let mut kinds: Vec<usize> = (0..PAYOUTS).collect();
    rng.shuffle(&mut kinds);
    let refused: HashSet<usize> = kinds[..REFUSED_PAYOUTS].iter().copied().collect();
    let oversized: HashSet<usize> = kinds[REFUSED_PAYOUTS..REFUSED_PAYOUTS + OVERSIZED_PAYOUTS]
        .iter()
        .copied()
        .collect();
    let duplicates = pick(rng, PAYOUTS, DUPLICATE_PAYOUTS);
    let mut payouts: Vec<Planned> = (0..PAYOUTS)
        .map(|n| {
            let from = rng.usize(..WALLETS);
            let (destination, amount) = if refused.contains(&n) {
                (
                    format!("{REFUSING_DESTINATION}bank_{n:02}"),
                    rng.u64(1..=MAX_SMALL_PAYOUT),
                )
            } else if oversized.contains(&n) {
                (
                    format!("dst_bank_{}", rng.usize(..8)),
                    OVERSIZED + rng.u64(..1_000),
                )
            } else {
                (
                    format!("dst_bank_{}", rng.usize(..8)),
                    rng.u64(1..=MAX_AMOUNT),
                )
            };
            Planned {
                parties: Parties::Payout { from, destination },
                amount,
                route: Route::Api,
                fault: None,
                duplicate: duplicates.contains(&n),
            }
        })
        .collect();
    payouts.extend((0..FAULTED_PAYOUTS).map(|n| Planned {
        parties: Parties::Payout {
            from: rng.usize(..WALLETS),
            destination: format!("dst_bank_{}", rng.usize(..8)),
        },
        amount: rng.u64(1..=MAX_SMALL_PAYOUT),
        route: Route::Bus,
        fault: Some(flow_fault(rng, n)),
        duplicate: n % 3 == 0,
    }));
    payouts
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

/// What became of one planned payment.
struct Outcome<'a> {
    planned: &'a Planned,
    id: &'a str,
    /// Its last view at `GET /payments/{id}`, once COMPLETED or FAILED.
    view: Option<&'a Value>,
    /// Its saga log, version by version, and the steps of it.
    log: Vec<Value>,
    steps: Vec<String>,
}

impl Outcome<'_> {
    fn status(&self) -> Option<&str> {
        self.view.and_then(|view| view["status"].as_str())
    }

    fn code(&self) -> Option<&str> {
        self.view.and_then(|view| view["failure"]["code"].as_str())
    }

    fn failure(&self) -> Value {
        self.view
            .map_or(Value::Null, |view| view["failure"].clone())
    }

    fn steps_are(&self, shape: &[&str]) -> bool {
        self.steps == shape
    }
}

/// The accounts of the ledger the run touches: its wallets and the outside world's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Account {
    Wallet(usize),
    Adjustments,
    Funding,
    Payouts,
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
    let Plan {
        deposits,
        payments: planned,
        order,
    } = plan(&mut rng);
    let run = unique();
    let mut violations = Violations::default();
    let function_log_start = function_log().map_or(0, |log| log.len());

    // The wallets, funded by an operator's deposit (from world:adjustments), some not at all.
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

    // The payments, the three flows interleaved and submitted concurrently, while the
    // processor goes down twice.
    let started = Instant::now();
    let outages = tokio::spawn(outage_windows(
        stack.http.clone(),
        processor.clone(),
        started,
    ));
    let submitted: Vec<anyhow::Result<Submitted>> = stream::iter(order.iter().copied())
        .map(|index| submit(&stack, &run, &wallets, index, &planned[index]))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let submitting = started.elapsed();
    let mut ids = vec![String::new(); planned.len()];
    for (&index, outcome) in order.iter().zip(submitted) {
        let outcome = outcome?;
        for (check, problem) in outcome.problems {
            violations.add(check, problem);
        }
        ids[index] = outcome.payment_id;
    }
    let id_set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    if id_set.len() != planned.len() {
        violations.add(
            "payments kept apart",
            format!(
                "{} payments submitted but only {} distinct ids",
                planned.len(),
                id_set.len()
            ),
        );
    }
    let count_kind = |kind| planned.iter().filter(|p| p.kind() == kind).count();
    println!(
        "bank: {} payments ({} transfers, {} top-ups, {} payouts) submitted in {:.1} s; waiting for them to settle",
        planned.len(),
        count_kind(Kind::Transfer),
        count_kind(Kind::TopUp),
        count_kind(Kind::Payout),
        submitting.as_secs_f64()
    );

    // Until every payment is COMPLETED or FAILED, or the deadline.
    let finals = settle(&stack, &ids, started, &mut violations).await;
    let settling = started.elapsed();
    let outages_opened = outages.await.context("the outage task")?;

    // What the API says each wallet holds.
    let mut balances: Vec<(i128, i128)> = Vec::with_capacity(WALLETS);
    for wallet in &wallets {
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
        balances.push((field("available")?, field("reserved")?));
    }

    // What the processor holds, by payment id.
    let listing = |path: &'static str| {
        let stack = &stack;
        let url = format!("{processor}/{path}");
        async move {
            let (_, body) = control(stack, reqwest::Method::GET, &url, None).await?;
            let by_id: HashMap<String, Value> = body[path]
                .as_array()
                .with_context(|| format!("GET /{path} lists {path}"))?
                .iter()
                .filter_map(|entry| Some((entry["payment_id"].as_str()?.to_owned(), entry.clone())))
                .collect();
            anyhow::Ok(by_id)
        }
    };
    let charges = listing("charges").await?;
    let payouts = listing("payouts").await?;
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

    // The saga logs.
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
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(planned.len());
    for (index, log) in logs {
        let id = ids[index].as_str();
        let log = log.with_context(|| format!("reading the log of {id}"))?;
        let steps = log
            .iter()
            .map(|entry| entry["step"].as_str().unwrap_or("?").to_owned())
            .collect();
        outcomes.push(Outcome {
            planned: &planned[index],
            id,
            view: finals.get(id),
            log,
            steps,
        });
    }

    // 1. Every payment terminal, read as its flow; failed ones say why.
    let mut failed_by_code: BTreeMap<Kind, BTreeMap<String, usize>> = BTreeMap::new();
    let mut completed: BTreeMap<Kind, usize> = BTreeMap::new();
    for outcome in &outcomes {
        let kind = outcome.planned.kind();
        let Some(view) = outcome.view else {
            continue; // reported by `settle` as stuck
        };
        let sent = outcome.planned.request(&wallets);
        let parties_shown = PARTIES.iter().all(|party| view[party] == sent[party]);
        if view["kind"] != kind.as_str()
            || !parties_shown
            || view["amount"]["minor_units"] != sent["amount"]["minor_units"]
        {
            violations.add(
                "payments read as their flow",
                format!("{}: sent {sent}, GET /payments shows {view}", outcome.id),
            );
        }
        match outcome.status() {
            Some("COMPLETED") => *completed.entry(kind).or_default() += 1,
            _ => match outcome.code() {
                Some(code) if !code.is_empty() => {
                    *failed_by_code
                        .entry(kind)
                        .or_default()
                        .entry(code.to_owned())
                        .or_default() += 1
                }
                _ => violations.add("failed payments say why", format!("{}: {view}", outcome.id)),
            },
        }
    }

    // 2. Money. Each wallet, by the plan and the API's statuses: its deposit, plus what the
    //    completed payments moved; by its entries in the saga logs: its deposit, plus the one
    //    transfer of each payment whose log ends COMPLETED, as that log's request names it.
    let mut expected: Vec<i128> = deposits.iter().map(|&d| i128::from(d)).collect();
    for outcome in &outcomes {
        if outcome.status() == Some("COMPLETED") {
            let amount = i128::from(outcome.planned.amount);
            if let Some(from) = outcome.planned.debited() {
                expected[from] -= amount;
            }
            if let Some(to) = outcome.planned.credited() {
                expected[to] += amount;
            }
        }
    }
    let wallet_numbers: HashMap<&str, usize> = wallets
        .iter()
        .enumerate()
        .map(|(n, wallet)| (wallet.as_str(), n))
        .collect();
    let mut books: BTreeMap<Account, i128> = BTreeMap::new();
    for (n, &deposit) in deposits.iter().enumerate() {
        *books.entry(Account::Wallet(n)).or_default() += i128::from(deposit);
        *books.entry(Account::Adjustments).or_default() -= i128::from(deposit);
    }
    for account in [Account::Funding, Account::Payouts] {
        books.entry(account).or_default();
    }
    let mut settled_entries = 0;
    for outcome in &outcomes {
        if outcome.steps.last().map(String::as_str) != Some("COMPLETED") {
            continue;
        }
        let request = &outcome.log[0]["request"];
        let side = |wallet: &str, world: Account| match request[wallet].as_str() {
            Some(id) => wallet_numbers.get(id).map(|&n| Account::Wallet(n)),
            None => Some(world),
        };
        let transfer = (
            side("from_wallet", Account::Funding),
            side("to_wallet", Account::Payouts),
            request["amount"]["minor_units"].as_i64(),
            request["amount"]["currency"].as_str(),
        );
        let (Some(debit), Some(credit), Some(amount), Some(CURRENCY)) = transfer else {
            violations.add(
                "every wallet's balance equals its entries",
                format!("{}: a settled log whose request is not one of the run's {CURRENCY} payments: {request}", outcome.id),
            );
            continue;
        };
        settled_entries += 1;
        *books.entry(debit).or_default() -= i128::from(amount);
        *books.entry(credit).or_default() += i128::from(amount);
    }
    for (n, wallet) in wallets.iter().enumerate() {
        let (available, reserved) = balances[n];
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
        let entries = books[&Account::Wallet(n)];
        if available + reserved != entries {
            violations.add(
                "every wallet's balance equals its entries",
                format!(
                    "{wallet}: balance {} (available {available} + reserved {reserved}), entries in the saga logs {entries} (deposit {} {:+})",
                    available + reserved,
                    deposits[n],
                    entries - i128::from(deposits[n])
                ),
            );
        }
    }
    // The books: the wallets as the API shows them, the world's accounts as the entries say
    // (no store holds a world account: its balance is the sum of its entries; the operators'
    // deposits are those the admin API accepted).
    let in_wallets: i128 = balances.iter().map(|(a, r)| a + r).sum();
    let world = |account| books.get(&account).copied().unwrap_or(0);
    let (adjustments, funding, paid_out) = (
        world(Account::Adjustments),
        world(Account::Funding),
        world(Account::Payouts),
    );
    let books_sum = in_wallets + adjustments + funding + paid_out;
    if books_sum != 0 {
        violations.add(
            "the books sum to zero",
            format!(
                "{CURRENCY}: wallets {in_wallets} + world:adjustments {adjustments} + world:funding {funding} + world:payouts {paid_out} = {books_sum}"
            ),
        );
    }

    // 3. The processor: a completed transfer or top-up captured once for its amount (a top-up
    //    from its instrument), a completed payout paid for its amount to its destination;
    //    nothing captured or paid for a failed one, nothing at all for one refused before its
    //    funds were reserved; and in total what the world's accounts say.
    let mut processor_states: BTreeMap<Kind, BTreeMap<String, usize>> = BTreeMap::new();
    let (mut captured_top_ups, mut paid_payouts) = (0i128, 0i128);
    for outcome in &outcomes {
        let (id, planned) = (outcome.id, outcome.planned);
        let kind = planned.kind();
        let (own, other) = match kind {
            Kind::Transfer | Kind::TopUp => (charges.get(id), payouts.get(id)),
            Kind::Payout => (payouts.get(id), charges.get(id)),
        };
        let state = own.and_then(|r| r["status"].as_str()).unwrap_or("none");
        *processor_states
            .entry(kind)
            .or_default()
            .entry(state.to_owned())
            .or_default() += 1;
        if let Some(other) = other {
            violations.add(
                "the processor saw each payment as its flow",
                format!("{id} is a {}, yet the processor has {other}", kind.as_str()),
            );
        }
        let amount = own.and_then(|r| r["amount"]["minor_units"].as_u64());
        let done = match kind {
            Kind::Transfer | Kind::TopUp => "captured",
            Kind::Payout => "paid",
        };
        if state == done {
            let amount = i128::from(amount.unwrap_or(0));
            match kind {
                Kind::TopUp => captured_top_ups += amount,
                Kind::Payout => paid_payouts += amount,
                Kind::Transfer => {}
            }
        }
        let describe = || own.map_or("nothing".to_owned(), Value::to_string);
        match outcome.status() {
            Some("COMPLETED") => {
                let terms_kept = match &planned.parties {
                    Parties::Transfer { .. } => true,
                    Parties::TopUp { instrument, .. } => {
                        own.is_some_and(|r| r["funding_instrument"] == instrument.as_str())
                    }
                    Parties::Payout { from, destination } => own.is_some_and(|r| {
                        r["destination"] == destination.as_str()
                            && r["from_wallet"] == wallets[*from].as_str()
                    }),
                };
                if state != done || amount != Some(planned.amount) || !terms_kept {
                    violations.add(
                        "completed payments are captured or paid",
                        format!(
                            "{} {id} ({} minor units, {}): processor has {}",
                            kind.as_str(),
                            planned.amount,
                            planned.request(&wallets),
                            describe()
                        ),
                    );
                }
            }
            Some("FAILED") if state == done => violations.add(
                "failed payments are refunded, cancelled or voided",
                format!(
                    "{} {id} ({}): processor still has {}",
                    kind.as_str(),
                    outcome.failure(),
                    describe()
                ),
            ),
            _ => {}
        }
        if outcome.steps_are(&REFUSED_LOG) && (own.is_some() || other.is_some()) {
            violations.add(
                "refused payments never reach the processor",
                format!(
                    "{} {id} failed before anything was reserved ({}), yet the processor has {}",
                    kind.as_str(),
                    outcome.failure(),
                    describe()
                ),
            );
        }
    }
    if captured_top_ups != -funding || paid_payouts != paid_out {
        violations.add(
            "the processor agrees with the world's accounts",
            format!(
                "top-up charges captured {captured_top_ups}, world:funding {funding}; payouts paid {paid_payouts}, world:payouts {paid_out}"
            ),
        );
    }

    // 4. The saga logs: contiguous versions, no step twice, only the saga's shapes, the request
    //    sent.
    let mut log_entries = 0;
    for outcome in &outcomes {
        log_entries += outcome.log.len();
        check_log(outcome, &wallets, &mut violations);
    }

    // 5. What the processor's test-mode ids and the sizes of the payouts must do: a declined
    //    instrument or a refusing destination fails its payment after the reservation (a
    //    refusing destination may find the wallet short first); nothing else is declined (no
    //    decline threshold is set); an oversized payout is refused before any reservation; a
    //    top-up debits no wallet, so it is never short of funds.
    for outcome in &outcomes {
        let (id, planned) = (outcome.id, outcome.planned);
        let code = outcome.code();
        let failed = outcome.status() == Some("FAILED");
        let refused_by_processor = failed
            && matches!(code, Some("payment_declined" | "processor_unavailable"))
            && outcome.steps_are(&UNDONE_BEFORE_CHARGE_LOG);
        let short = failed && code == Some("insufficient_funds") && outcome.steps_are(&REFUSED_LOG);
        let expectation = if planned.test_mode_refusal() {
            let ok = refused_by_processor || (planned.kind() == Kind::Payout && short);
            (!ok).then_some("the processor's test-mode ids fail their payment")
        } else if code == Some("payment_declined") {
            Some("only test-mode ids are declined")
        } else if planned.oversized() && !short {
            Some("oversized payouts are refused before the processor")
        } else if planned.kind() == Kind::TopUp && code == Some("insufficient_funds") {
            Some("a top-up is never short of funds")
        } else {
            None
        };
        if let Some(check) = expectation {
            violations.add(
                check,
                format!(
                    "{} {id} ({}) ended {} with {} — log {:?}",
                    planned.kind().as_str(),
                    planned.request(&wallets),
                    outcome.status().unwrap_or("unsettled"),
                    outcome.failure(),
                    outcome.steps
                ),
            );
        }
    }

    // 6. Fault accounting: every fail_step payment failed, by its fault or by an earlier,
    //    business reason; no other payment failed by an injected fault.
    let mut fault_outcomes: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut crashes_reached = 0;
    for outcome in &outcomes {
        let (id, steps) = (outcome.id, &outcome.steps);
        let code = outcome.code();
        let failed_at = outcome.view.and_then(|v| v["failure"]["step"].as_str());
        let kind = outcome.planned.kind().as_str();
        match outcome.planned.fault {
            Some(Fault::FailStep(step)) => {
                let result = match (outcome.status(), code) {
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
                                "{kind} {id} (fail_step {step}) ended {} with {} — log {steps:?}{}",
                                status.unwrap_or("unsettled"),
                                outcome.failure(),
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
                    .entry(format!("{kind} fail_step {step}"))
                    .or_default()
                    .entry(result)
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
                let result = format!(
                    "{} {}",
                    outcome.status().unwrap_or("unsettled"),
                    if reached {
                        "(step reached)"
                    } else {
                        "(step not reached)"
                    }
                );
                *fault_outcomes
                    .entry(format!("{kind} crash_after {step}"))
                    .or_default()
                    .entry(result)
                    .or_default() += 1;
            }
            None if code == Some("injected_fault") => violations.add(
                "only directed payments fail by injection",
                format!(
                    "{kind} {id} carried no directive but failed with {}",
                    outcome.failure()
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
    let directives = |fail: bool| {
        planned
            .iter()
            .filter(|p| p.fault.is_some() && matches!(p.fault, Some(Fault::FailStep(_))) == fail)
            .count()
    };
    let count = |kind: Kind, pick: &dyn Fn(&Planned) -> bool| {
        planned
            .iter()
            .filter(|p| p.kind() == kind && pick(p))
            .count()
    };
    let on_route = |route| move |p: &Planned| p.route == route;
    let sent_twice = |route| move |p: &Planned| p.duplicate && p.route == route;

    println!("\n==================== bank: summary (seed {seed}) ====================");
    println!(
        "wallets                 {WALLETS} ({CURRENCY}), operator deposits 0..={MAX_DEPOSIT} ({UNFUNDED_WALLETS} wallets none), sum {deposited}"
    );
    println!(
        "transfers               {}: {} via the API, {} straight onto the bus; amounts 1..={MAX_AMOUNT}",
        count_kind(Kind::Transfer),
        count(Kind::Transfer, &on_route(Route::Api)),
        count(Kind::Transfer, &on_route(Route::Bus))
    );
    print_outcomes(Kind::Transfer, &completed, &failed_by_code);
    println!(
        "top-ups                 {}: {} via the API ({} with a declined instrument), {} on the bus with a fault directive; amounts 1..={MAX_TOP_UP}",
        count_kind(Kind::TopUp),
        count(Kind::TopUp, &on_route(Route::Api)),
        count(Kind::TopUp, &|p| p.test_mode_refusal()),
        count(Kind::TopUp, &on_route(Route::Bus)),
    );
    print_outcomes(Kind::TopUp, &completed, &failed_by_code);
    println!(
        "payouts                 {}: {} via the API ({} to a refusing destination, {} oversized), {} on the bus with a fault directive; amounts 1..={MAX_AMOUNT}",
        count_kind(Kind::Payout),
        count(Kind::Payout, &on_route(Route::Api)),
        count(Kind::Payout, &|p| p.test_mode_refusal()),
        count(Kind::Payout, &|p| p.oversized()),
        count(Kind::Payout, &on_route(Route::Bus)),
    );
    print_outcomes(Kind::Payout, &completed, &failed_by_code);
    println!(
        "fault directives        {} ({:.1} % of payments): fail_step {}, crash_after {}",
        directives(true) + directives(false),
        100.0 * (directives(true) + directives(false)) as f64 / planned.len() as f64,
        directives(true),
        directives(false)
    );
    for (fault, results) in &fault_outcomes {
        let results: Vec<String> = results.iter().map(|(o, n)| format!("{o}: {n}")).collect();
        println!("  {fault:<36}{}", results.join(", "));
    }
    let injected = failed_by_code
        .get(&Kind::Transfer)
        .and_then(|codes| codes.get("injected_fault"))
        .copied()
        .unwrap_or(0);
    if injected < MIN_INJECTED_FAILURES {
        violations.add(
            "at least 10 % of transfers fail by injection",
            format!("only {injected} of {TRANSFERS} transfers failed by an injected fault"),
        );
    }
    println!(
        "  transfers failed by a directive {injected} ({:.1} %); transient: {} injected processor errors, {} outage rejections",
        100.0 * injected as f64 / TRANSFERS as f64,
        counters["counters"]["injected_errors"],
        counters["counters"]["outage_rejections"]
    );
    println!(
        "  crash_after reached   {crashes_reached} payments; crashes in the function log: {}",
        crashes_logged.map_or("log not readable".to_owned(), |n| n.to_string())
    );
    println!(
        "duplicates sent         {} (via the API: POST retried + request re-published: {} transfers, {} top-ups, {} payouts; on the bus, published twice: {} transfers, {} top-ups, {} payouts)",
        planned.iter().filter(|p| p.duplicate).count(),
        count(Kind::Transfer, &sent_twice(Route::Api)),
        count(Kind::TopUp, &sent_twice(Route::Api)),
        count(Kind::Payout, &sent_twice(Route::Api)),
        count(Kind::Transfer, &sent_twice(Route::Bus)),
        count(Kind::TopUp, &sent_twice(Route::Bus)),
        count(Kind::Payout, &sent_twice(Route::Bus)),
    );
    println!(
        "processor               error_rate {PROCESSOR_ERROR_RATE}; outage windows {}: {}",
        outages_opened.len(),
        outages_opened.join(", ")
    );
    println!("  counters              {}", counters["counters"]);
    for (kind, states) in &processor_states {
        println!(
            "  {:<22}{}",
            match kind {
                Kind::Transfer => "transfers' charges",
                Kind::TopUp => "top-ups' charges",
                Kind::Payout => "payouts",
            },
            states
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "books ({CURRENCY})              wallets {in_wallets} + world:adjustments {adjustments} + world:funding {funding} + world:payouts {paid_out} = {books_sum}"
    );
    println!(
        "  entries               {WALLETS} deposits and {settled_entries} settled payments' transfers; processor: top-ups captured {captured_top_ups}, payouts paid {paid_payouts}"
    );
    let refused_overdrafts: usize = failed_by_code
        .values()
        .filter_map(|codes| codes.get("insufficient_funds"))
        .sum();
    let (total_available, total_reserved): (i128, i128) = balances
        .iter()
        .fold((0, 0), |(a, r), (available, reserved)| {
            (a + available, r + reserved)
        });
    println!(
        "  wallets               available {total_available} + reserved {total_reserved}; {refused_overdrafts} overdrafts refused"
    );
    println!(
        "saga log entries        {log_entries} ({:.2} per payment)",
        log_entries as f64 / planned.len() as f64
    );
    println!(
        "elapsed                 {:.1} s (submitting {:.1} s); {:.1} payments/s",
        settling.as_secs_f64(),
        submitting.as_secs_f64(),
        planned.len() as f64 / settling.as_secs_f64()
    );
    let checks = [
        "the books sum to zero",
        "every wallet's balance equals its entries",
        "each wallet moved exactly its completed payments",
        "no negative balance",
        "no reservation left",
        "every payment settles",
        "failed payments say why",
        "payments read as their flow",
        "completed payments are captured or paid",
        "failed payments are refunded, cancelled or voided",
        "refused payments never reach the processor",
        "the processor saw each payment as its flow",
        "the processor agrees with the world's accounts",
        "the processor's test-mode ids fail their payment",
        "only test-mode ids are declined",
        "oversized payouts are refused before the processor",
        "a top-up is never short of funds",
        "saga logs are contiguous",
        "no saga step twice",
        "saga logs have the saga's shapes",
        "logs agree with the API",
        "fail_step directives fail their payment",
        "at least 10 % of transfers fail by injection",
        "only directed payments fail by injection",
        "duplicates answered consistently",
        "payments kept apart",
    ];
    println!("checks:");
    for check in checks {
        let n = violations.count(check);
        println!(
            "  {:<52}{}",
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
            println!("  {check:<52}{} VIOLATIONS", problems.len());
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

/// A flow's completed and failed payments, the failed by their code.
fn print_outcomes(
    kind: Kind,
    completed: &BTreeMap<Kind, usize>,
    failed_by_code: &BTreeMap<Kind, BTreeMap<String, usize>>,
) {
    let codes = failed_by_code.get(&kind);
    let failed: usize = codes.map_or(0, |codes| codes.values().sum());
    println!(
        "  completed             {}",
        completed.get(&kind).copied().unwrap_or(0)
    );
    println!("  failed                {failed}");
    for (code, count) in codes.into_iter().flatten() {
        println!("    {code:<22}{count}");
    }
}

/// A payment as submitted: its id, and anything odd in how it or its duplicate was answered
/// (by check).
struct Submitted {
    payment_id: String,
    problems: Vec<(&'static str, String)>,
}

async fn submit(
    stack: &Stack,
    run: &str,
    wallets: &[String],
    index: usize,
    payment: &Planned,
) -> anyhow::Result<Submitted> {
    let kind = payment.kind();
    let request = payment.request(wallets);
    let mut problems = Vec::new();
    match payment.route {
        Route::Api => {
            let key = format!("bank-{run}-{index}");
            let (path, mut body) = match &payment.parties {
                Parties::Transfer { from, to } => (
                    "/payments".to_owned(),
                    json!({"from_wallet": wallets[*from], "to_wallet": wallets[*to]}),
                ),
                Parties::TopUp { to, instrument } => (
                    format!("/wallets/{}/top-ups", wallets[*to]),
                    json!({"funding_instrument": instrument}),
                ),
                Parties::Payout { from, destination } => (
                    format!("/wallets/{}/payouts", wallets[*from]),
                    json!({"destination": destination}),
                ),
            };
            body["amount"] = request["amount"].clone();
            let accepted = post_payment(stack, &path, &body, &key).await?;
            let payment_id = accepted["payment_id"]
                .as_str()
                .with_context(|| format!("POST {path} answered {accepted}"))?
                .to_owned();
            if accepted["kind"] != kind.as_str() {
                problems.push((
                    "payments read as their flow",
                    format!(
                        "POST {path} {body} answered {accepted}, not a {}",
                        kind.as_str()
                    ),
                ));
            }
            if payment.duplicate {
                let again = post_payment(stack, &path, &body, &key).await?;
                if again["payment_id"] != payment_id.as_str() {
                    problems.push((
                        "duplicates answered consistently",
                        format!(
                            "POST {path} retried with key {key} answered {again}, first {payment_id}"
                        ),
                    ));
                }
                // And the same request reaches the saga a second time, as a redelivered event.
                let detail = requested(&payment_id, &request, None, &stack.token);
                put_payment_requested(stack, kind, &detail).await?;
            }
            Ok(Submitted {
                payment_id,
                problems,
            })
        }
        Route::Bus => {
            let payment_id = format!("pay_{}", unique());
            let detail = requested(&payment_id, &request, payment.fault, &stack.token);
            put_payment_requested(stack, kind, &detail).await?;
            if payment.duplicate {
                put_payment_requested(stack, kind, &detail).await?;
            }
            Ok(Submitted {
                payment_id,
                problems,
            })
        }
    }
}

/// The `detail` of a requested payment's event (`PaymentRequested`, `TopUpRequested`,
/// `PayoutRequested`): the versioned envelope around the request, with the payer's consent, a
/// token of the payer wallet's owner (the test caller owns every wallet of the run), which the
/// saga requires of a payment requested on the bus.
fn requested(
    payment_id: &str,
    request: &Value,
    fault: Option<Fault>,
    consent_token: &str,
) -> Value {
    let mut data = request.clone();
    data["payment_id"] = json!(payment_id);
    if let Some(fault) = fault {
        data["test_faults"] = fault.directive();
    }
    json!({
        "version": 1,
        "event_id": format!("{payment_id}/1"),
        "consent": {"bearer_token": consent_token},
        "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
}

/// A payment submitted through the API (`path`: `/payments`, `/wallets/{id}/top-ups` or
/// `/wallets/{id}/payouts`), retried with the same key while the API is unreachable or
/// answers 5xx.
async fn post_payment(stack: &Stack, path: &str, body: &Value, key: &str) -> anyhow::Result<Value> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = stack.post(path, body.clone(), Some(key)).await;
        match outcome {
            Ok((202, accepted)) => return Ok(accepted),
            Ok((status, answer)) if status < 500 || attempt >= ATTEMPTS => {
                bail!("POST {path} {body} answered {status}: {answer}")
            }
            Err(error) if attempt >= ATTEMPTS => return Err(error),
            _ => backoff(attempt).await,
        }
    }
}

async fn put_payment_requested(stack: &Stack, kind: Kind, detail: &Value) -> anyhow::Result<()> {
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(&stack.event_bus_name)
        .source("paysaga.payments")
        .detail_type(kind.requested())
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

/// Polls every payment, of whatever flow, until it is COMPLETED or FAILED; those that are not
/// by the deadline are violations. Answers the final views by payment id.
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

/// Whether a payment told to fail at `step` rightly failed earlier, for `code`, before that
/// step ran: a refused reservation (the log is REQUESTED, FAILED), or, for the settlement, a
/// charge (or payout) the processor declined or never answered (compensated before any
/// CHARGED).
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

/// Checks one payment's log, of any flow, against the saga's rules, the request sent and the
/// API's view of it.
fn check_log(outcome: &Outcome, wallets: &[String], violations: &mut Violations) {
    let (id, log, steps) = (outcome.id, &outcome.log, &outcome.steps);
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
    // Version 1 records the request sent: the flow's parties (and no other), the amount.
    if let Some(first) = log.first() {
        let (recorded, sent) = (&first["request"], outcome.planned.request(wallets));
        let same_parties = PARTIES.iter().all(|party| recorded[party] == sent[party]);
        let same_amount = recorded["amount"]["minor_units"].as_u64()
            == Some(outcome.planned.amount)
            && recorded["amount"]["currency"] == CURRENCY;
        if first["step"] != "REQUESTED" || !same_parties || !same_amount {
            violations.add(
                "logs agree with the API",
                format!("{id}: v1 records {first}, not the request sent ({sent})"),
            );
        }
    }
    let shape_ok = match outcome.status() {
        Some("COMPLETED") => outcome.steps_are(&COMPLETED_LOG),
        Some("FAILED") => {
            outcome.steps_are(&REFUSED_LOG)
                || outcome.steps_are(&UNDONE_BEFORE_CHARGE_LOG)
                || outcome.steps_are(&UNDONE_AFTER_CHARGE_LOG)
        }
        _ => true, // unsettled: reported as such
    };
    if !shape_ok {
        violations.add(
            "saga logs have the saga's shapes",
            format!(
                "{} {id} is {} with log {steps:?}",
                outcome.planned.kind().as_str(),
                outcome.status().unwrap_or("?")
            ),
        );
    }
    // A failed payment's log ends with the reason the API shows, the one compensation started for.
    if outcome.status() == Some("FAILED") {
        let code_of = |step: &str| {
            log.iter()
                .find(|e| e["step"] == step)
                .and_then(|e| e["reason"]["code"].as_str())
        };
        let shown = outcome.code();
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
