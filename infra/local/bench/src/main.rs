//! `bench` (run by `make bench`): see the library's documentation and `bench --help`.

use std::path::PathBuf;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use paysaga_bench::calls::Calls;
use paysaga_bench::charts;
use paysaga_bench::cold_start::{self, ColdStart};
use paysaga_bench::cost::{self, Consumption, FunctionWork, PaymentWork};
use paysaga_bench::downstream::{self, Capture, Downstream, PaymentIds};
use paysaga_bench::hot_wallet::{self, HotWallet};
use paysaga_bench::instance::{Binary, Instance};
use paysaga_bench::relay_feed::PaymentLogStream;
use paysaga_bench::report::{self, Bench, FlowFigures, PaymentCalls};
use paysaga_bench::subjects::{
    self, BARE_RUNTIME, BenchFlow, Fixtures, RUNTIME_WITH_SDK, api_response, no_batch_failures,
};
use paysaga_bench::throughput::{self, ThroughputConfig};
use serde_json::json;

/// Cold start and footprint per function, AWS calls and cost per payment, end-to-end
/// throughput, on the running local stack (make bench starts it); a hot wallet's payments/s
/// against the same load spread, simulated and on the local stack.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Options {
    #[arg(long, env = "PAYSAGA_WIRING", default_value = ".local/wiring.json")]
    wiring: PathBuf,
    /// Release binaries of the functions and of hello-runtime / hello-sdk (crate paysaga-bench-hello)
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where `cargo lambda build --release --arm64 --output-format zip` put the zips
    #[arg(long, default_value = "target/lambda")]
    lambda_dir: PathBuf,
    /// Cold starts per binary
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Payments of the end-to-end run, and how many are submitted at once
    #[arg(long, default_value_t = 300)]
    payments: usize,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Payments of each of the hot wallet's two end-to-end runs (into one payee, spread over
    /// 100), from 100 payers round-robin, as many at once as the end-to-end run
    #[arg(long, default_value_t = 500)]
    hot_wallet_payments: usize,
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    api_url: String,
    /// Skip the end-to-end runs (the hot wallet's simulation still runs)
    #[arg(long)]
    no_throughput: bool,
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let root = std::env::current_dir()?;
    // The saga begins the bench's payments itself: each carries the consent of the sample
    // events' caller (demo-alice), who opens the bench's wallets, signed by the local stack's key.
    let consent = paysaga_admin::dev_token::DevTokenIssuer::from_local_dir(&root.join(".local"))?
        .token(
        "demo-alice",
        false,
        std::time::Duration::from_secs(6 * 3600),
    )?;
    let fixtures = Fixtures::new(&root).with_consent(consent);
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let events = aws_sdk_eventbridge::Client::new(&aws);
    // The bench's own payments publish on a bus no rule listens to.
    let bus = format!(
        "paysaga-bench-{}",
        &uuid::Uuid::now_v7().simple().to_string()[..12]
    );
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .context("creating the bench's event bus (is the local stack up?)")?;
    let outcome = run(&options, &fixtures, &aws, &bus).await;
    let _ = events.delete_event_bus().name(&bus).send().await;
    let bench = outcome?;
    let markdown = report::markdown(&bench);
    println!("{markdown}");
    std::fs::create_dir_all(&options.out)?;
    let json = serde_json::to_string_pretty(&bench)?;
    let stamp = bench.measured_at.format("%Y%m%dT%H%M%SZ");
    std::fs::write(options.out.join(format!("bench-{stamp}.json")), &json)?;
    std::fs::write(options.out.join("latest.json"), &json)?;
    std::fs::write(options.out.join("latest.md"), &markdown)?;
    let cost = charts::cost(&bench.completed_cost, &bench.completed_system_cost)?;
    std::fs::write(options.out.join("cost.svg"), cost)?;
    let mut charts = vec!["cost.svg"];
    if let Some(throughput) = &bench.throughput {
        std::fs::write(
            options.out.join("latency.svg"),
            charts::latency(&throughput.latency)?,
        )?;
        charts.push("latency.svg");
        let by_concurrency = charts::concurrency(
            &throughput.by_concurrency,
            throughput.emulator.payments_per_second,
            throughput.concurrency,
        )?;
        std::fs::write(options.out.join("concurrency.svg"), by_concurrency)?;
        charts.push("concurrency.svg");
    }
    eprintln!(
        "bench: written {}/latest.json, latest.md and {}",
        options.out.display(),
        charts.join(", ")
    );
    Ok(())
}

async fn run(
    options: &Options,
    fixtures: &Fixtures,
    aws: &aws_config::SdkConfig,
    bus: &str,
) -> anyhow::Result<Bench> {
    let wiring = local_lambda::wiring::Wiring::load(&options.wiring)?;
    let binaries = subjects::binaries(&options.wiring, &options.bin_dir, bus)?;
    let binary = |name: &str| {
        binaries
            .iter()
            .find(|binary| binary.name == name)
            .with_context(|| format!("no binary {name}"))
    };
    let api = binary("api")?;
    let admin_api = binary("admin-api")?;
    let run_id = uuid::Uuid::now_v7().simple().to_string()[..12].to_owned();
    let (payer, payee) = (
        format!("wal_bench_{run_id}_payer"),
        format!("wal_bench_{run_id}_payee"),
    );

    // A batch's payments move money between wallets of their own, as a queue's batch mostly
    // does: no payment of the batch waits for another's wallet.
    let batch_pairs: Vec<(String, String)> = (0..SAGA_BATCH_SIZE)
        .map(|index| {
            (
                format!("wal_bench_{run_id}_batch_payer_{index}"),
                format!("wal_bench_{run_id}_batch_payee_{index}"),
            )
        })
        .collect();
    let mut wallets = vec![
        (payer.clone(), 100_000_000u64),
        (payee.clone(), 0),
        ("wal_demo_alice".to_owned(), 0),
    ];
    for (batch_payer, batch_payee) in &batch_pairs {
        wallets.push((batch_payer.clone(), 1_000_000));
        wallets.push((batch_payee.clone(), 0));
    }

    eprintln!("bench: opening the bench's wallets");
    let setup = Instance::start(api).await?;
    let operator = Instance::start(admin_api).await?;
    for (wallet, deposit) in &wallets {
        let (wallet, deposit) = (wallet, *deposit);
        let open = fixtures.api(
            "apigw-open-wallet.json",
            "/wallets",
            None,
            Some(json!({"currency": "EUR", "wallet_id": wallet})),
            None,
        )?;
        let (status, body) = api_response(&setup.invoke(&open).await?.response)?;
        ensure!(
            status == 201 || status == 200,
            "opening {wallet}: {status} {body}"
        );
        if deposit > 0 {
            // An operator's deposit (the bench's payers need funds; how money enters a wallet
            // is not what it measures).
            let path = format!("/admin/wallets/{wallet}/deposits");
            let event = fixtures.api(
                "apigw-admin-deposit.json",
                &path,
                Some(("wallet_id", wallet)),
                Some(json!({
                    "amount": {"minor_units": deposit, "currency": "EUR"},
                    "reason": "bench funds"
                })),
                Some(&format!("{wallet}-funds")),
            )?;
            let (status, body) = api_response(&operator.invoke(&event).await?.response)?;
            ensure!(
                status == 201 || status == 200,
                "funding {wallet}: {status} {body}"
            );
        }
    }
    setup.stop().await;
    operator.stop().await;

    // Cold starts: a fresh process per run, its first invocation a representative event; each
    // SQS consumer's built from its fixture with fresh ids, so every run does real work.
    // Wallets of their own, so that no cold start's events grow the streams the measured
    // payment appends to.
    let fresh = |fixture: &str, run: usize| {
        let tag = format!("{run_id}_cold_{run}");
        let (alice, bob) = (
            format!("wal_bench_{tag}_alice"),
            format!("wal_bench_{tag}_bob"),
        );
        fixtures.sqs_with_fresh_ids(fixture, &tag, (&alice, &bob))
    };
    // The relay's cold starts take the stream records of the saga's cold-start payments (the
    // saga comes first in the template), the reconciler's their deadline checks.
    let log = PaymentLogStream::new(aws, &wiring)?;
    let deadlines_queue = wiring.queue("PaymentDeadlinesQueue")?.arn.clone();
    let mut cold_starts = Vec::new();
    for binary in &binaries {
        eprintln!("bench: {} cold starts of {}", options.runs, binary.name);
        let mut samples = Vec::new();
        for run in 0..options.runs {
            let event = match binary.name.as_str() {
                "api" => fixtures.api(
                    "apigw-read-wallet.json",
                    "/wallets/wal_demo_alice",
                    Some(("wallet_id", "wal_demo_alice")),
                    None,
                    None,
                )?,
                // The other two doors read the same wallet: GraphQL, and the WalletService
                // over Connect (JSON).
                "graphql" => fixtures.api(
                    "apigw-submit-payment.json",
                    "/graphql",
                    None,
                    Some(json!({
                        "query": "{ wallet(id: \"wal_demo_alice\") { id available { minorUnits currency } } }"
                    })),
                    None,
                )?,
                "wallet-rpc" => fixtures.api(
                    "apigw-submit-payment.json",
                    "/paysaga.wallet.v1.WalletService/GetBalance",
                    Some(("method", "GetBalance")),
                    Some(json!({"wallet_id": "wal_demo_alice"})),
                    None,
                )?,
                "payment-saga" => fixtures.payment_requested(
                    &format!("pay_bench_{run_id}_cold_{run}"),
                    &payer,
                    &payee,
                    100,
                )?,
                // One page of the audit trail applied to the read models, as an admin.
                "admin-api" => fixtures.api(
                    "apigw-admin-rebuild-read-models.json",
                    "/admin/read-models/rebuild",
                    None,
                    None,
                    None,
                )?,
                "dlq-redrive" => json!({"action": "status"}),
                "notifications" => fresh("sqs-payment-completed.json", run)?,
                "audit-trail" => fresh("sqs-audit-trail-events.json", run)?,
                "read-models" => fresh("sqs-read-models-events.json", run)?,
                "event-relay" => {
                    log.event_of(&[format!("pay_bench_{run_id}_cold_{run}")])
                        .await?
                }
                "reconciler" => deadline_checks(
                    &[format!("pay_bench_{run_id}_cold_{run}")],
                    &deadlines_queue,
                ),
                BARE_RUNTIME | RUNTIME_WITH_SDK => json!({}),
                other => bail!(
                    "no representative event for the function {other}: give it one in \
                     infra/local/bench/src/main.rs"
                ),
            };
            let sample = cold_start::sample(binary, &event)
                .await
                .with_context(|| format!("cold start of {}", binary.name))?;
            match binary.name.as_str() {
                "api" => ensure!(
                    api_response(&sample.response)?.0 == 200,
                    "reading a wallet: {}",
                    sample.response
                ),
                "admin-api" => ensure!(
                    api_response(&sample.response)?.0 == 200,
                    "a page of the read models' rebuild: {}",
                    sample.response
                ),
                "graphql" => {
                    let (status, body) = api_response(&sample.response)?;
                    ensure!(
                        status == 200
                            && body["errors"].is_null()
                            && body["data"]["wallet"]["id"] == "wal_demo_alice",
                        "reading a wallet through GraphQL: {}",
                        sample.response
                    );
                }
                "wallet-rpc" => {
                    let (status, body) = api_response(&sample.response)?;
                    ensure!(
                        status == 200 && body["walletId"] == "wal_demo_alice",
                        "GetBalance over Connect: {}",
                        sample.response
                    );
                }
                _ if event.get("Records").is_some() => no_batch_failures(&sample.response)
                    .with_context(|| format!("the cold start of {}", binary.name))?,
                _ => {}
            }
            samples.push(sample);
        }
        cold_starts.push(ColdStart::of(
            &binary.name,
            &samples,
            zip_size(&options.lambda_dir, binary),
        ));
    }

    eprintln!("bench: AWS calls of a completed and of a compensated payment, downstream included");
    let capture = Capture::mirror(aws, &wiring, &run_id).await?;
    let measured = measure_payments(
        aws,
        options,
        &wiring,
        &binaries,
        fixtures,
        &capture,
        (&payer, &payee),
        &batch_pairs,
        &run_id,
    )
    .await;
    let removed = capture.remove().await;
    let (completed, compensated, completed_downstream, compensated_downstream, flows) = measured?;
    removed.context("removing the bench's copies of the rules")?;
    // The payment path bills one rule delivery per payment, its request's to the saga's queue:
    // what the stack's rules were seen to do.
    let saga_queues: Vec<&str> = wiring
        .function("payment-saga")?
        .sqs_triggers
        .iter()
        .map(|trigger| trigger.queue.as_str())
        .collect();
    for downstream in [&completed_downstream, &compensated_downstream] {
        let to_saga: u32 = downstream
            .deliveries
            .iter()
            .filter(|(queue, _)| saga_queues.contains(&queue.as_str()))
            .map(|(_, count)| count)
            .sum();
        ensure!(
            to_saga == 1,
            "the rules delivered a payment's events {to_saga} times to the saga's queues, not once"
        );
    }

    let batch_size = SAGA_BATCH_SIZE as f64; // at volume, batches fill
    let reconciler_batch_size = f64::from(
        wiring
            .function("reconciler")?
            .sqs_triggers
            .first()
            .context("the reconciler has no queue")?
            .batch_size,
    );
    let cost_of = |payment: &PaymentCalls| {
        let batch_payments = f64::from(payment.batch_payments.max(1));
        // The relay schedules the deadline checks of ten payments a request at volume, as it
        // did for the batch: those requests are billed per payment as the batch measured them.
        let checks_sent = "SQS.SendMessageBatch";
        let work = PaymentWork {
            functions: vec![
                FunctionWork {
                    function: "api".into(),
                    invocations: 1.0,
                    duration_ms: payment.api_warm_ms,
                    memory_mb: 128.0,
                },
                FunctionWork {
                    function: "payment-saga".into(),
                    invocations: 1.0 / batch_size,
                    duration_ms: payment.saga_batch_ms,
                    memory_mb: 128.0,
                },
                // Its request and its outcome reach the relay, in batches as measured.
                FunctionWork {
                    function: "event-relay".into(),
                    invocations: RELAYED_RECORDS_PER_PAYMENT
                        / f64::from(payment.relay_batch_records.max(1)),
                    duration_ms: payment.relay_batch_ms,
                    memory_mb: 128.0,
                },
                // Its deadline check, in a batch of the reconciler's queue.
                FunctionWork {
                    function: "reconciler".into(),
                    invocations: 1.0 / reconciler_batch_size,
                    duration_ms: payment.reconciler_batch_ms,
                    memory_mb: 128.0,
                },
            ],
            calls: payment
                .api
                .plus(&payment.saga)
                .plus(&payment.relay.without(checks_sent))
                .plus(&payment.reconciler),
            // The payment path's one rule delivery: its request, to the saga's queue (its
            // outcome's deliveries are the consumers', downstream).
            events_delivered_to_queues: 1.0,
            messages_consumed: 1.0,
            batch_size,
            batched_sqs_requests: f64::from(payment.relay_batch.count(checks_sent).requests)
                / batch_payments,
            other_consumed: vec![Consumption {
                queue: "PaymentDeadlinesQueue".into(),
                messages: 1.0,
                batch_size: reconciler_batch_size,
            }],
            saga_steps: f64::from(payment.saga_steps),
            saga_ms: payment.saga_warm_ms,
        };
        (cost::per_million(&work, &cost::PRICES), work)
    };
    let (completed_cost, completed_work) = cost_of(&completed);
    let (compensated_cost, compensated_work) = cost_of(&compensated);
    let system_cost_of = |path: &PaymentWork, downstream: &Downstream| {
        let work = downstream.whole_system(path);
        let mut report = cost::per_million(&work, &cost::PRICES);
        report
            .assumptions
            .extend(cost::WHOLE_SYSTEM_ASSUMPTIONS.iter().copied());
        (report, work)
    };
    let (completed_system_cost, completed_system_work) =
        system_cost_of(&completed_work, &completed_downstream);
    let (compensated_system_cost, _) = system_cost_of(&compensated_work, &compensated_downstream);
    // Top-ups and payouts: their payment path alone (their events reach the same consumers).
    let flows = flows
        .into_iter()
        .map(|calls| {
            let (cost, _) = cost_of(&calls);
            FlowFigures { calls, cost }
        })
        .collect();

    let (throughput, hot_wallet_throughput) = if options.no_throughput {
        (None, None)
    } else {
        eprintln!(
            "bench: {} payments at concurrency {} through the API",
            options.payments, options.concurrency
        );
        let config = ThroughputConfig {
            payments: options.payments,
            concurrency: options.concurrency,
            api_url: options.api_url.clone(),
            wiring: options.wiring.clone(),
        };
        let measured = throughput::measure(&config).await?;
        eprintln!(
            "bench: hot wallet, {} payments into one payee, then spread over {}, through the API",
            options.hot_wallet_payments,
            throughput::SPREAD_PAYEES
        );
        let hot_wallet = throughput::measure_hot_wallet(&ThroughputConfig {
            payments: options.hot_wallet_payments,
            ..config
        })
        .await?;
        (Some(measured), Some(hot_wallet))
    };
    eprintln!(
        "bench: hot wallet, simulated: {} payments/s for {} s from {} payers, into one payee and \
         spread over {}",
        hot_wallet::LOAD.payments_per_second,
        hot_wallet::LOAD.seconds,
        hot_wallet::LOAD.payers,
        hot_wallet::LOAD.payees
    );
    let simulation = hot_wallet::simulate_in_the_background().await?;

    Ok(Bench {
        measured_at: chrono::Utc::now(),
        machine: report::machine(),
        runs: options.runs,
        cold_starts,
        completed,
        compensated,
        completed_work,
        completed_cost,
        compensated_cost,
        completed_downstream,
        compensated_downstream,
        completed_system_work,
        completed_system_cost,
        compensated_system_cost,
        flows,
        prices: cost::PRICES,
        throughput,
        hot_wallet: HotWallet {
            simulation,
            local_stack: hot_wallet_throughput,
        },
    })
}

/// A completed and a compensated payment through the payment path, then through the
/// consumers their events reach; then a completed top-up and a completed payout through the
/// payment path.
#[allow(clippy::too_many_arguments)]
async fn measure_payments(
    aws: &aws_config::SdkConfig,
    options: &Options,
    wiring: &local_lambda::wiring::Wiring,
    binaries: &[Binary],
    fixtures: &Fixtures,
    capture: &Capture,
    parties: (&str, &str),
    batch_pairs: &[(String, String)],
    run_id: &str,
) -> anyhow::Result<(
    PaymentCalls,
    PaymentCalls,
    Downstream,
    Downstream,
    Vec<PaymentCalls>,
)> {
    // The measured payments' logs go to a payments table of the bench's own, which the
    // stack's relay does not read (`PaymentLogStream::of_table`).
    let table = format!("{}-bench-{run_id}", wiring.table("PaymentsTable")?);
    PaymentLogStream::create_scratch_table(aws, &table).await?;
    let measured = measure_payments_in(
        aws,
        options,
        wiring,
        binaries,
        fixtures,
        capture,
        parties,
        batch_pairs,
        run_id,
        &table,
    )
    .await;
    let deleted = PaymentLogStream::delete_scratch_table(aws, &table).await;
    let measured = measured?;
    deleted?;
    Ok(measured)
}

/// [`measure_payments`], the payments' logs in `table`.
#[allow(clippy::too_many_arguments)]
async fn measure_payments_in(
    aws: &aws_config::SdkConfig,
    options: &Options,
    wiring: &local_lambda::wiring::Wiring,
    binaries: &[Binary],
    fixtures: &Fixtures,
    capture: &Capture,
    parties: (&str, &str),
    batch_pairs: &[(String, String)],
    run_id: &str,
    table: &str,
) -> anyhow::Result<(
    PaymentCalls,
    PaymentCalls,
    Downstream,
    Downstream,
    Vec<PaymentCalls>,
)> {
    let binary = |name: &str| {
        binaries
            .iter()
            .find(|binary| binary.name == name)
            .map(|binary| binary.with_env("PAYMENTS_TABLE", table))
            .with_context(|| format!("no binary {name}"))
    };
    let (api, saga, relay, reconciler) = (
        binary("api")?,
        binary("payment-saga")?,
        binary("event-relay")?,
        binary("reconciler")?,
    );
    let path_functions = PathFunctions {
        api: &api,
        saga: &saga,
        relay: &relay,
        reconciler: &reconciler,
        deadlines_queue: wiring.queue("PaymentDeadlinesQueue")?.arn.clone(),
    };
    // The payment path's functions, whose calls `PaymentCalls` counts.
    let path = [
        api.name.as_str(),
        saga.name.as_str(),
        relay.name.as_str(),
        reconciler.name.as_str(),
    ];
    let log = PaymentLogStream::of_table(aws, wiring, table)?;
    // The same, publishing where the stack's rules are copied. LocalStack delivers to a rule's
    // targets inside PutEvents, which AWS does not: the payment path's figures come from the
    // bench's bus without rules, the consumers' events from the same payments run again here.
    let routed = (
        api.on_bus(capture.bus()),
        saga.on_bus(capture.bus()),
        relay.on_bus(capture.bus()),
        reconciler.on_bus(capture.bus()),
    );
    let routed = PathFunctions {
        api: &routed.0,
        saga: &routed.1,
        relay: &routed.2,
        reconciler: &routed.3,
        deadlines_queue: path_functions.deadlines_queue.clone(),
    };
    let processor = processor_url(&options.wiring)?;
    let (completed, _) = payment_calls(
        BenchFlow::Transfer,
        &path_functions,
        &log,
        fixtures,
        None,
        parties,
        batch_pairs,
        100,
        run_id,
        "completed",
    )
    .await?;
    let (_, completed_ids) = payment_calls(
        BenchFlow::Transfer,
        &routed,
        &log,
        fixtures,
        Some(capture),
        parties,
        batch_pairs,
        100,
        run_id,
        "completed",
    )
    .await?;
    let delivered = capture.drain(&completed_ids).await?;
    let completed_downstream = downstream::measure(
        &delivered,
        &completed_ids,
        wiring,
        binaries,
        fixtures,
        &path,
    )
    .await?;
    let http = reqwest::Client::new();
    http.put(format!("{processor}/_control"))
        .json(&json!({"decline_over_minor_units": 1_000}))
        .send()
        .await?
        .error_for_status()?;
    let compensated = async {
        let (compensated, _) = payment_calls(
            BenchFlow::Transfer,
            &path_functions,
            &log,
            fixtures,
            None,
            parties,
            batch_pairs,
            5_000,
            run_id,
            "compensated",
        )
        .await?;
        let (_, ids) = payment_calls(
            BenchFlow::Transfer,
            &routed,
            &log,
            fixtures,
            Some(capture),
            parties,
            batch_pairs,
            5_000,
            run_id,
            "compensated",
        )
        .await?;
        anyhow::Ok((compensated, ids))
    }
    .await;
    http.put(format!("{processor}/_control"))
        .json(&json!({"decline_over_minor_units": null}))
        .send()
        .await?
        .error_for_status()?;
    let (compensated, compensated_ids) = compensated?;
    let delivered = capture.drain(&compensated_ids).await?;
    let compensated_downstream = downstream::measure(
        &delivered,
        &compensated_ids,
        wiring,
        binaries,
        fixtures,
        &path,
    )
    .await?;
    let mut flows = Vec::new();
    for flow in [BenchFlow::TopUp, BenchFlow::Payout] {
        let (calls, _) = payment_calls(
            flow,
            &path_functions,
            &log,
            fixtures,
            None,
            parties,
            batch_pairs,
            100,
            run_id,
            flow.name(),
        )
        .await?;
        flows.push(calls);
    }
    Ok((
        completed,
        compensated,
        completed_downstream,
        compensated_downstream,
        flows,
    ))
}

/// The payment path's functions, as the bench runs them.
struct PathFunctions<'a> {
    api: &'a Binary,
    saga: &'a Binary,
    relay: &'a Binary,
    reconciler: &'a Binary,
    /// The reconciler's queue (ARN), which its events name.
    deadlines_queue: String,
}

/// The calls, durations and steps of one payment: submitted through a warm `api`, run by a
/// warm `payment-saga`, its log's records relayed by a warm `event-relay` and its deadline
/// check read by a warm `reconciler` (each process first warmed by a payment of its own); and
/// the payments whose events the consumers downstream are fed, when run with the `capture` of
/// their events.
#[allow(clippy::too_many_arguments)]
async fn payment_calls(
    flow: BenchFlow,
    functions: &PathFunctions<'_>,
    log: &PaymentLogStream,
    fixtures: &Fixtures,
    capture: Option<&Capture>,
    (payer, payee): (&str, &str),
    batch_pairs: &[(String, String)],
    minor_units: u64,
    run_id: &str,
    kind: &str,
) -> anyhow::Result<(PaymentCalls, PaymentIds)> {
    let api_instance = Instance::start(functions.api).await?;
    let saga_instance = Instance::start(functions.saga).await?;
    let relay_instance = Instance::start(functions.relay).await?;
    let reconciler_instance = Instance::start(functions.reconciler).await?;
    let mut measured = Vec::new();
    // Payments of their own in each run of a kind.
    let tag = if capture.is_some() {
        format!("{kind}_routed")
    } else {
        kind.to_owned()
    };
    for round in ["warm-up", "measured"] {
        let key = format!("bench-{run_id}-{tag}-{round}");
        let (fixture, path, parameter, body) = flow.submission((payer, payee), minor_units);
        let parameter = parameter
            .as_ref()
            .map(|(name, value)| (*name, value.as_str()));
        let submit = fixtures.api(fixture, &path, parameter, Some(body), Some(&key))?;
        let submitted = api_instance.invoke(&submit).await?;
        let (status, body) = api_response(&submitted.response)?;
        ensure!(
            status == 202,
            "submitting a {}: {status} {body}",
            flow.name()
        );
        let payment_id = body["payment_id"]
            .as_str()
            .context("a payment id")?
            .to_owned();
        let run = saga_instance
            .invoke(&fixtures.requested(flow, &payment_id, (payer, payee), minor_units)?)
            .await?;
        no_batch_failures(&run.response)?;
        // What the relay is handed of the payment's log: its request and its outcome.
        let relayed = relay_instance
            .invoke(&log.event_of(std::slice::from_ref(&payment_id)).await?)
            .await?;
        no_batch_failures(&relayed.response)?;
        // Its deadline check, once due: the payment is terminal, the check done with.
        let checked = reconciler_instance
            .invoke(&deadline_checks(
                std::slice::from_ref(&payment_id),
                &functions.deadlines_queue,
            ))
            .await?;
        no_batch_failures(&checked.response)?;
        measured.push((payment_id, submitted, run, relayed, checked));
    }
    let (payment_id, submitted, run, relayed, checked) =
        measured.pop().context("a measured payment")?;
    let warm_up_id = measured.pop().context("a warm-up payment")?.0;
    // A warm batch: what the saga is billed per invocation at volume.
    let mut batch_event = json!({ "Records": [] });
    let mut batch_ids = Vec::new();
    let mut batch_requests = Vec::new();
    for (index, (batch_payer, batch_payee)) in batch_pairs.iter().enumerate() {
        let batch_id = format!("pay_bench_{run_id}_{tag}_batch_{index}");
        let single =
            fixtures.requested(flow, &batch_id, (batch_payer, batch_payee), minor_units)?;
        batch_requests.push(
            single["Records"][0]["body"]
                .as_str()
                .context("a body")?
                .to_owned(),
        );
        batch_ids.push(batch_id);
        if let (Some(records), Some(record)) = (
            batch_event["Records"].as_array_mut(),
            single["Records"].get(0),
        ) {
            records.push(record.clone());
        }
    }
    // A payment requested through the api is announced from its log by the relay; the
    // batch's were handed to the saga by the bench, so the bench announces them, and the relay
    // their outcomes.
    if let Some(capture) = capture {
        capture.publish(&batch_requests).await?;
    }
    let batch = saga_instance.invoke(&batch_event).await?;
    no_batch_failures(&batch.response)?;
    let relayed_batch = relay_instance
        .invoke(&log.event_of(&batch_ids).await?)
        .await?;
    no_batch_failures(&relayed_batch.response)?;
    let checked_batch = reconciler_instance
        .invoke(&deadline_checks(&batch_ids, &functions.deadlines_queue))
        .await?;
    no_batch_failures(&checked_batch.response)?;
    let read = fixtures.api(
        "apigw-read-payment.json",
        &format!("/payments/{payment_id}"),
        Some(("payment_id", &payment_id)),
        None,
        None,
    )?;
    let (status, payment) = api_response(&api_instance.invoke(&read).await?.response)?;
    ensure!(status == 200, "reading {payment_id}: {status} {payment}");
    let api_lines = api_instance.stop().await;
    let saga_lines = saga_instance.stop().await;
    let relay_lines = relay_instance.stop().await;
    let reconciler_lines = reconciler_instance.stop().await;
    let expected = if kind == "compensated" {
        "FAILED"
    } else {
        "COMPLETED"
    };
    ensure!(
        payment["status"] == expected,
        "the {kind} payment ended {payment}"
    );
    let calls = PaymentCalls {
        kind: kind.to_owned(),
        status: expected.to_owned(),
        api: Calls::of_invocation(&api_lines, &submitted.request_id),
        saga: Calls::of_invocation(&saga_lines, &run.request_id),
        relay: Calls::of_invocation(&relay_lines, &relayed.request_id),
        api_warm_ms: submitted.duration.as_secs_f64() * 1000.0,
        saga_warm_ms: run.duration.as_secs_f64() * 1000.0,
        saga_batch_ms: batch.duration.as_secs_f64() * 1000.0,
        relay_warm_ms: relayed.duration.as_secs_f64() * 1000.0,
        relay_batch_ms: relayed_batch.duration.as_secs_f64() * 1000.0,
        relay_batch_records: relay_records(&log.event_of(&batch_ids).await?),
        relay_batch: Calls::of_invocation(&relay_lines, &relayed_batch.request_id),
        reconciler: Calls::of_invocation(&reconciler_lines, &checked.request_id),
        reconciler_warm_ms: checked.duration.as_secs_f64() * 1000.0,
        reconciler_batch_ms: checked_batch.duration.as_secs_f64() * 1000.0,
        batch_payments: u32::try_from(batch_ids.len()).unwrap_or(u32::MAX),
        saga_steps: u32::try_from(payment["version"].as_u64().unwrap_or(1).saturating_sub(1))
            .unwrap_or(0),
    };
    let ids = PaymentIds {
        warm_up: warm_up_id,
        measured: payment_id,
        batch: batch_ids,
    };
    Ok((calls, ids))
}

/// The template's `BatchSize` for the saga's queue.
const SAGA_BATCH_SIZE: usize = 10;

/// An SQS event of the deadline checks of `payments`, as the reconciler's queue delivers them.
fn deadline_checks(payments: &[String], queue_arn: &str) -> serde_json::Value {
    let records: Vec<serde_json::Value> = payments
        .iter()
        .map(|payment_id| {
            json!({
                "messageId": format!("bench-check-{payment_id}"),
                "receiptHandle": "bench",
                "body": json!({"payment_id": payment_id}).to_string(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The records of a payment's log the relay's trigger hands it: the request, the outcome.
const RELAYED_RECORDS_PER_PAYMENT: f64 = 2.0;

/// How many records a stream event holds.
fn relay_records(event: &serde_json::Value) -> u32 {
    event["Records"].as_array().map_or(0, |records| {
        u32::try_from(records.len()).unwrap_or(u32::MAX)
    })
}

/// The fake payment processor's URL, as the saga is wired to it.
fn processor_url(wiring: &std::path::Path) -> anyhow::Result<String> {
    let wiring: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(wiring)?)?;
    wiring["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|function| function["environment"]["PAYMENT_PROCESSOR_URL"].as_str())
        .map(|url| url.trim_end_matches('/').to_owned())
        .context("no PAYMENT_PROCESSOR_URL in the wiring")
}

fn zip_size(lambda_dir: &std::path::Path, binary: &Binary) -> Option<u64> {
    let name = binary.program.file_name()?;
    std::fs::metadata(lambda_dir.join(name).join("bootstrap.zip"))
        .ok()
        .map(|metadata| metadata.len())
}
