//! End-to-end throughput on the local stack, and the emulators' own call ceiling measured in
//! the same run, so that the result reads as a ratio rather than a machine-dependent number.
//!
//! **Payments.** Fresh wallets are opened through the API (payers funded with one operator's deposit each,
//! enough for every payment they make, so none is refused), then `N` payments of 1.00 EUR are
//! submitted with `POST /payments` (each with its own `Idempotency-Key`, as a careful client
//! sends it, so a submission retried after a transport error cannot pay twice), `C` requests in
//! flight at a time. Each payer is used by at most every `P`-th payment, `P` being twice the
//! larger of `C` and the number of messages the saga's event source mapping handles at once
//! (batch size × pollers, from the wiring), so wallet contention does not set the pace.
//!
//! **Completion.** One observer reads `GET /payments/{id}` for the oldest payments not yet seen
//! final, `POLL_IN_FLIGHT` (4) at a time in acceptance order; when one of them is not final
//! yet, it waits `POLL_INTERVAL` (250 ms) before the next round. Each read is one consistent
//! Query on the Payments table, so polling adds one read per payment plus at most
//! `POLL_IN_FLIGHT / POLL_INTERVAL` (16) wasted reads a second: small beside the saga's own
//! DynamoDB calls. How late a payment is *seen* final does not matter, because every figure is
//! taken from the timestamps the server recorded:
//!
//! - completion latency of a payment: `updated_at - created_at` of the final payment, i.e. from
//!   the API recording the payment (a few milliseconds before the client gets its 202) to the
//!   saga recording `COMPLETED`; computed over the `COMPLETED` payments only;
//! - elapsed: from the client's clock just before the first `POST /payments` to the latest
//!   `updated_at` of any final payment. The client, the API and the saga share this machine's
//!   clock (the local stack), which is what makes mixing them sound.
//!
//! **The whole system's rate.** The payments' rate above stops at the last `COMPLETED`, while
//! the consumers are still at the payments' events. The run then waits until every consumer
//! has handled every outcome ([`crate::latency`], from the functions' metrics): from the first
//! submission to the last consumer's last event handled is the whole system's time, and the
//! payments over it its rate.
//!
//! **Emulator ceiling.** After the payments, the same number of payments from `C` clients go
//! through a loop of every AWS call the whole system makes for a payment, with the stack's
//! consumers' pollers and batch sizes, against the same endpoints the functions use
//! ([`crate::ceiling`]), timed the same way, to the last consumer's part done: the ceiling the
//! ratio compares the whole system's rate with. The payments' own wallets and logs stay, as any
//! client's would.
//!
//! **Latency by hop** ([`crate::latency`]). Before all this, [`UNLOADED_PAYMENTS`] payments
//! one at a time on an idle stack (every consumed queue empty first); then the payments above,
//! under load: each payment's steps from its log, the relay's, the queue's and the consumers'
//! shares from the functions' metrics.
//!
//! **Concurrency sweep.** Last, [`SWEEP_PAYMENTS`] payments at each of [`SWEEP`] submissions in
//! flight, fresh wallets each, both rates measured as above.
//!
//! **Hot wallet** ([`measure_hot_wallet`], after the run above). The same `N` payments twice,
//! as above (fresh wallets, funded payers, `C` in flight, the same observer and figures): from
//! [`HOT_WALLET_PAYERS`] (100) payers into one payee, then from as many payers spread over
//! [`SPREAD_PAYEES`] (100) payees. Here the payers are exactly 100 in both runs, each making
//! every 100th payment (payment `n` from payer `n % 100`, to payee `n % 100` in the spread
//! run), rather than `P` of them as above: the payers contend alike in both runs, and only the
//! payees differ. The target compares the two runs' payments/s.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::stream::{self, StreamExt, TryStreamExt};
use local_lambda::wiring::Wiring;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use crate::ceiling::{self, EmulatorCeiling};
use crate::cpu::{self, CpuUse};
use crate::latency::{self, FunctionLog, HopLatency, Submitted};

/// What to measure, and where.
#[derive(Debug, Clone)]
pub struct ThroughputConfig {
    /// N: how many payments go through.
    pub payments: usize,
    /// C: how many payments are submitted at once.
    pub concurrency: usize,
    /// The API, e.g. `http://127.0.0.1:3000`.
    pub api_url: String,
    /// `.local/wiring.json`: endpoints, queue URLs, table names, bus name.
    pub wiring: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    pub payments: usize,
    pub concurrency: usize,
    /// Payments that ended `COMPLETED` (all of them, on a healthy stack).
    pub completed: usize,
    /// Payments that ended `FAILED`.
    pub failed: usize,
    /// From the first submission (client clock) to the last final payment (server's
    /// `updated_at`); see the module documentation.
    pub elapsed_seconds: f64,
    /// `completed / elapsed_seconds`.
    pub payments_per_second: f64,
    /// From the first submission to the last consumer's handling of the last of these
    /// payments' events: the whole system's work on them done.
    pub whole_system_seconds: f64,
    /// `completed / whole_system_seconds`: what the ceiling is compared with, the same work
    /// timed the same way ([`crate::ceiling`]).
    pub whole_system_payments_per_second: f64,
    /// Per `COMPLETED` payment, the server's `updated_at - created_at`.
    pub completion_latency_ms: Percentiles,
    /// CPU by process while the payments ran (from the first submission to the last seen final).
    pub cpu: CpuUse,
    /// The higher of the two ceilings measured, just before these payments and just after.
    pub emulator: EmulatorCeiling,
    /// Both ceilings' payments/s, before the payments and after: the emulators do not stay
    /// the same over a bench (see docs/bench.md).
    pub emulator_before_after: [f64; 2],
    /// Where a payment's time goes, by hop: one at a time with the stack idle, then these
    /// payments under load.
    pub latency: [HopLatency; 2],
    /// Payments/s as the clients in flight grow ([`SWEEP`]).
    pub by_concurrency: Vec<ConcurrencyPoint>,
}

/// One run of the concurrency sweep: [`SWEEP_PAYMENTS`] payments, `concurrency` at a time.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrencyPoint {
    pub concurrency: usize,
    pub completed: usize,
    /// To the last `COMPLETED`.
    pub payments_per_second: f64,
    /// To the last consumer's part done.
    pub whole_system_payments_per_second: f64,
}

/// Nearest-rank percentiles (the smallest value with at least p % of the values at or below
/// it). Of no values at all, every field is NaN, which `serde_json` writes as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// The same payments twice on the local stack, into one payee and spread over many
/// ([`measure_hot_wallet`]).
#[derive(Debug, Clone, Serialize)]
pub struct HotWalletThroughput {
    /// Payments of each run.
    pub payments: usize,
    pub concurrency: usize,
    /// Payers of each run, round-robin: payment `n` from payer `n % payers`.
    pub payers: usize,
    /// Into one payee.
    pub hot: HotWalletRun,
    /// Over [`SPREAD_PAYEES`] payees.
    pub spread: HotWalletRun,
}

impl HotWalletThroughput {
    /// The hot run's payments/s over the spread run's (NaN when either completed nothing).
    pub fn ratio(&self) -> f64 {
        self.hot.payments_per_second / self.spread.payments_per_second
    }
}

/// One run of [`HotWalletThroughput`]: its payees, and its payments' figures as
/// [`ThroughputReport`]'s.
#[derive(Debug, Clone, Serialize)]
pub struct HotWalletRun {
    pub payees: usize,
    pub completed: usize,
    pub failed: usize,
    pub elapsed_seconds: f64,
    /// `completed / elapsed_seconds`.
    pub payments_per_second: f64,
    pub completion_latency_ms: Percentiles,
}

/// Payers of each hot wallet run: the simulation's load's ([`crate::hot_wallet::LOAD`]).
pub const HOT_WALLET_PAYERS: usize = crate::hot_wallet::LOAD.payers;
/// Payees of the hot wallet's spread run: the simulation's load's.
pub const SPREAD_PAYEES: usize = crate::hot_wallet::LOAD.payees;

/// Every payment moves this much (1.00 EUR): far below every limit.
const PAYMENT_MINOR_UNITS: u64 = 100;
const CURRENCY: &str = "EUR";
/// Timeout of one HTTP request to the API.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts of an API request that fails in transport or with a 5xx (same idempotency key).
const HTTP_ATTEMPTS: u32 = 3;
/// Status reads in flight at once, oldest pending payments first.
const POLL_IN_FLIGHT: usize = 4;
/// Pause before the next round of status reads when the last round found one not final.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Longest time without any payment turning final before the run is given up. Longer than the
/// saga's charge deadline (120 s locally), after which a stuck payment is compensated.
const COMPLETION_STALL_LIMIT: Duration = Duration::from_secs(150);
/// Submissions in flight at once in the sweep's runs.
pub const SWEEP: [usize; 6] = [1, 2, 4, 8, 16, 32];
/// Payments of each of the sweep's runs.
pub const SWEEP_PAYMENTS: usize = 200;
/// Payments of the unloaded latency run, one at a time.
const UNLOADED_PAYMENTS: usize = 30;
/// Pause between status reads of the one payment in flight of the unloaded run (its figures
/// come from the server's timestamps; this only paces the next submission).
const ALONE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often a progress line is printed during the payments.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// Opens and funds the wallets, runs the payments to completion, then measures the emulators'
/// ceiling (see the module documentation). Prints a progress line to stderr every few seconds.
/// Fails when an API request fails for good, when payments stop ending for
/// `COMPLETION_STALL_LIMIT` (150 s), or when a ceiling call fails.
pub async fn measure(config: &ThroughputConfig) -> anyhow::Result<ThroughputReport> {
    let api = client(config)?;
    let wiring = Wiring::load(&config.wiring)?;
    warn_if_processor_is_tuned(&api.http, &wiring).await;

    let local_dir = local_dir(config)?;

    let alone = WalletPlan::round_robin(
        &run_id(),
        UNLOADED_PAYMENTS,
        UNLOADED_PAYMENTS,
        UNLOADED_PAYMENTS,
    );
    eprintln!("throughput: {UNLOADED_PAYMENTS} payments one at a time, for their latency unloaded");
    open_wallets(&api, &alone, config.concurrency).await?;
    let log = FunctionLog::from_now(local_dir);
    let submitted = run_payments_alone(&api, &alone, &wiring).await?;
    let unloaded = latency::measure(&wiring, &log, &submitted, 1).await?;

    // The ceiling just before the payments and just after, with as many clients and payments,
    // the consumers at the stack's pollers and batch sizes.
    let measure_ceiling = |when: &'static str| {
        let (wiring, run_dir) = (&wiring, run_dir(config));
        async move {
            eprintln!(
                "throughput: emulator ceiling {when} the payments, the whole system's calls, {} \
                 payments from {} clients",
                config.payments, config.concurrency
            );
            ceiling::measure(
                wiring,
                &run_id(),
                config.concurrency,
                config.payments,
                &run_dir,
            )
            .await
        }
    };
    let before = measure_ceiling("before").await?;

    let wallets = WalletPlan::new(
        &run_id(),
        config.payments,
        config.concurrency,
        saga_messages_in_flight(&wiring),
    );
    let log = FunctionLog::from_now(local_dir);
    let outcome = pay(&api, &wallets, config.concurrency, &run_dir(config)).await?;
    eprintln!("throughput: waiting for the consumers, for the latency under load");
    let loaded = latency::measure(&wiring, &log, &outcome.submitted, config.concurrency).await?;

    let after = measure_ceiling("after").await?;
    let emulator_before_after = [before.payments_per_second, after.payments_per_second];
    let emulator = if after.payments_per_second > before.payments_per_second {
        after
    } else {
        before
    };

    let whole_system_seconds = seconds_to_events_handled(&outcome, &loaded);

    let mut by_concurrency = Vec::with_capacity(SWEEP.len());
    for concurrency in SWEEP {
        eprintln!("throughput: sweep, {SWEEP_PAYMENTS} payments at concurrency {concurrency}");
        let wallets = WalletPlan::new(
            &run_id(),
            SWEEP_PAYMENTS,
            concurrency,
            saga_messages_in_flight(&wiring),
        );
        let log = FunctionLog::from_now(local_dir);
        let outcome = pay(&api, &wallets, concurrency, &run_dir(config)).await?;
        let latency = latency::measure(&wiring, &log, &outcome.submitted, concurrency).await?;
        by_concurrency.push(ConcurrencyPoint {
            concurrency,
            completed: outcome.completed,
            payments_per_second: outcome.payments_per_second,
            whole_system_payments_per_second: outcome.completed as f64
                / seconds_to_events_handled(&outcome, &latency),
        });
    }
    Ok(ThroughputReport {
        payments: config.payments,
        concurrency: config.concurrency,
        completed: outcome.completed,
        failed: outcome.failed,
        elapsed_seconds: outcome.elapsed_seconds,
        payments_per_second: outcome.payments_per_second,
        whole_system_seconds,
        whole_system_payments_per_second: outcome.completed as f64 / whole_system_seconds,
        completion_latency_ms: outcome.latency_ms,
        cpu: outcome.cpu,
        emulator,
        emulator_before_after,
        latency: [unloaded, loaded],
        by_concurrency,
    })
}

/// From `outcome`'s first submission to the last consumer's handling of the last of its
/// payments' events (NaN when none was seen).
fn seconds_to_events_handled(outcome: &PaymentsOutcome, latency: &HopLatency) -> f64 {
    latency.events_handled_at.map_or(f64::NAN, |done| {
        millis_between(outcome.first_submit, done) / 1_000.0
    })
}

/// Where the stack's scripts keep their pid files: `run/` beside the wiring (`.local/run`).
fn run_dir(config: &ThroughputConfig) -> PathBuf {
    config
        .wiring
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("run")
}

/// The same `config.payments` payments twice, from [`HOT_WALLET_PAYERS`] payers round-robin
/// (fewer when there are fewer payments):
/// into one payee (the hot wallet), then spread over [`SPREAD_PAYEES`] payees; fresh wallets
/// for each, `config.concurrency` requests in flight, figures as [`measure`]'s payments (see
/// the module documentation). Fails as [`measure`]'s payments do.
pub async fn measure_hot_wallet(config: &ThroughputConfig) -> anyhow::Result<HotWalletThroughput> {
    let api = client(config)?;
    let mut runs = Vec::new();
    let mut payers = HOT_WALLET_PAYERS;
    for (name, payees) in [("hot", 1), ("spread", SPREAD_PAYEES)] {
        let wallets =
            WalletPlan::round_robin(&run_id(), config.payments, HOT_WALLET_PAYERS, payees);
        payers = wallets.payers;
        eprintln!(
            "throughput: hot wallet, {name}: {} payments from {payers} payers into {payees} \
             payee(s)",
            config.payments
        );
        let outcome = pay(&api, &wallets, config.concurrency, &run_dir(config)).await?;
        runs.push(HotWalletRun {
            payees,
            completed: outcome.completed,
            failed: outcome.failed,
            elapsed_seconds: outcome.elapsed_seconds,
            payments_per_second: outcome.payments_per_second,
            completion_latency_ms: outcome.latency_ms,
        });
    }
    let spread = runs.pop().context("the spread run")?;
    let hot = runs.pop().context("the hot run")?;
    Ok(HotWalletThroughput {
        payments: config.payments,
        concurrency: config.concurrency,
        payers,
        hot,
        spread,
    })
}

/// The API of `config`'s local stack, as the bench's caller (and its operator), once the
/// counts are checked.
fn client(config: &ThroughputConfig) -> anyhow::Result<Api> {
    ensure!(
        config.payments > 0,
        "throughput: payments must be at least 1"
    );
    ensure!(
        config.concurrency > 0,
        "throughput: concurrency must be at least 1"
    );
    Api::new(&config.api_url, local_dir(config)?)
}

/// The local stack's folder (`.local`), where its wiring is.
fn local_dir(config: &ThroughputConfig) -> anyhow::Result<&Path> {
    config
        .wiring
        .parent()
        .context("the wiring file is in the local stack's folder")
}

/// Opens and funds `plan`'s wallets, then runs its payments to completion, `concurrency` at a
/// time: their figures.
async fn pay(
    api: &Api,
    plan: &WalletPlan,
    concurrency: usize,
    run_dir: &Path,
) -> anyhow::Result<PaymentsOutcome> {
    eprintln!(
        "throughput: opening {} wallets ({} payers funded)",
        plan.payers + plan.payees,
        plan.payers
    );
    open_wallets(api, plan, concurrency).await?;

    eprintln!(
        "throughput: {} payments at concurrency {concurrency}",
        plan.payments
    );
    let before = cpu::sample(run_dir);
    let (first_submit, finals, submitted) = run_payments(api, plan, concurrency).await?;
    let cpu = cpu::between(&before, &cpu::sample(run_dir));
    let mut outcome = PaymentsOutcome::of(first_submit, &finals, cpu);
    outcome.submitted = submitted;
    if outcome.failed > 0 {
        let reasons: Vec<&str> = finals
            .iter()
            .filter_map(|payment| payment.failure.as_deref())
            .take(3)
            .collect();
        eprintln!(
            "throughput: warning: {} payments FAILED, e.g. {}",
            outcome.failed,
            reasons.join("; ")
        );
    }
    Ok(outcome)
}

/// A short id that keeps this run's wallets, keys and scratch data apart from any other's.
fn run_id() -> String {
    // The last 12 hex digits of a v7 UUID are random (the first ones are the time).
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    uuid[uuid.len() - 12..].to_owned()
}

impl Percentiles {
    pub fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |percent: usize| match sorted.len() {
            0 => f64::NAN,
            // Nearest rank: ceil(p/100 * n), counted from 1.
            n => sorted[(percent * n).div_ceil(100).clamp(1, n) - 1],
        };
        Self {
            p50: at(50),
            p95: at(95),
            p99: at(99),
            max: at(100),
        }
    }
}

/// Milliseconds from `from` to `to` (negative if `to` is earlier).
fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let duration = to.signed_duration_since(from);
    match duration.num_microseconds() {
        Some(micros) => micros as f64 / 1_000.0,
        None => duration.num_milliseconds() as f64,
    }
}

// ---------------------------------------------------------------------------------------------
// The API, as a client sees it.

struct Api {
    http: reqwest::Client,
    base: String,
    /// `Bearer <token>` of an operator (the admin scope): funding payers is a deposit.
    operator: reqwest::header::HeaderValue,
}

/// What `GET /payments/{id}` (and the 202 of `POST /payments`) answers, as far as needed here.
#[derive(Debug, Deserialize)]
struct PaymentView {
    payment_id: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    failure: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FinalStatus {
    Completed,
    Failed,
}

/// A payment seen in its final state.
#[derive(Debug, Clone)]
struct FinalPayment {
    status: FinalStatus,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    failure: Option<String>,
}

impl PaymentView {
    /// The payment's final state, or `None` while the saga is still at it.
    fn final_state(self) -> Option<FinalPayment> {
        let status = match self.status.as_str() {
            "COMPLETED" => FinalStatus::Completed,
            "FAILED" => FinalStatus::Failed,
            _ => return None,
        };
        Some(FinalPayment {
            status,
            created_at: self.created_at,
            updated_at: self.updated_at,
            failure: self.failure.map(|failure| failure.to_string()),
        })
    }
}

impl Api {
    /// The API at `base`, called as the bench's caller with a development token of the local
    /// stack whose files are in `local_dir`.
    fn new(base: &str, local_dir: &std::path::Path) -> anyhow::Result<Self> {
        let issuer = paysaga_admin::dev_token::DevTokenIssuer::from_local_dir(local_dir)?;
        let lifetime = std::time::Duration::from_secs(6 * 3600);
        let token = issuer.token("paysaga-bench", false, lifetime)?;
        let mut operator = reqwest::header::HeaderValue::from_str(&format!(
            "Bearer {}",
            issuer.token("paysaga-bench-operator", true, lifetime)?
        ))
        .context("a token is a header value")?;
        operator.set_sensitive(true);
        let mut authorization = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("a token is a header value")?;
        authorization.set_sensitive(true);
        let headers = reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            authorization,
        )]);
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .default_headers(headers)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            operator,
        })
    }

    /// Sends a request built by `request`, again after a transport failure or a 5xx, and
    /// returns the response if its status is `expected`.
    async fn send(
        &self,
        what: &str,
        expected: &[StatusCode],
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let problem = match request().send().await {
                Ok(response) if expected.contains(&response.status()) => return Ok(response),
                Ok(response) if !response.status().is_server_error() => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    bail!("{what}: answered {status}: {body}");
                }
                Ok(response) => format!("answered {}", response.status()),
                Err(error) => format!("{error:#}"),
            };
            if attempt >= HTTP_ATTEMPTS {
                bail!("{what}: {problem} ({attempt} attempts)");
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    async fn open_wallet(&self, wallet_id: &str) -> anyhow::Result<()> {
        let body = json!({ "currency": CURRENCY, "wallet_id": wallet_id });
        let url = format!("{}/wallets", self.base);
        // 200 when a retry finds the wallet its first attempt opened.
        let expected = [StatusCode::CREATED, StatusCode::OK];
        self.send(&format!("POST /wallets {wallet_id}"), &expected, || {
            self.http.post(&url).json(&body)
        })
        .await?;
        Ok(())
    }

    /// Funds a payer: an operator's deposit (the operator's token; a reason).
    async fn deposit(&self, wallet_id: &str, minor_units: u64, key: &str) -> anyhow::Result<()> {
        let body = json!({
            "amount": { "minor_units": minor_units, "currency": CURRENCY },
            "reason": "bench funds",
        });
        let url = format!("{}/admin/wallets/{wallet_id}/deposits", self.base);
        let expected = [StatusCode::CREATED, StatusCode::OK];
        self.send(&format!("POST {url}"), &expected, || {
            self.http
                .post(&url)
                .header(reqwest::header::AUTHORIZATION, self.operator.clone())
                .header("Idempotency-Key", key)
                .json(&body)
        })
        .await?;
        Ok(())
    }

    /// Submits a payment; returns its id once accepted.
    /// Submits `plan`'s payment `index`, timed by the client.
    async fn submit_timed(&self, plan: &WalletPlan, index: usize) -> anyhow::Result<Submitted> {
        let (from, to) = plan.parties(index);
        let key = format!("bench-{}-payment-{index}", plan.run);
        let at = Utc::now();
        let started = Instant::now();
        let payment_id = self.submit_payment(&from, &to, &key).await?;
        Ok(Submitted {
            payment_id,
            at,
            api_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    async fn submit_payment(&self, from: &str, to: &str, key: &str) -> anyhow::Result<String> {
        let body = json!({
            "from_wallet": from,
            "to_wallet": to,
            "amount": { "minor_units": PAYMENT_MINOR_UNITS, "currency": CURRENCY },
        });
        let url = format!("{}/payments", self.base);
        let response = self
            .send("POST /payments", &[StatusCode::ACCEPTED], || {
                self.http
                    .post(&url)
                    .header("Idempotency-Key", key)
                    .json(&body)
            })
            .await?;
        let view: PaymentView = response
            .json()
            .await
            .context("POST /payments: unexpected body")?;
        Ok(view.payment_id)
    }

    /// One status read, no retry (the observer reads again on its next round).
    async fn payment(&self, payment_id: &str) -> anyhow::Result<PaymentView> {
        let url = format!("{}/payments/{payment_id}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            bail!("GET {url}: answered {status}: {body}");
        }
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: unexpected body"))
    }
}

/// The fake processor's settings (`GET /_control`) can be left tuned by a test (latency, error
/// rate, an outage); a bench run on top of that would measure the fault, so say so.
async fn warn_if_processor_is_tuned(http: &reqwest::Client, wiring: &Wiring) {
    let Some(url) = wiring
        .functions
        .iter()
        .find_map(|function| function.environment.get("PAYMENT_PROCESSOR_URL"))
    else {
        return;
    };
    let control = async {
        http.get(format!("{}/_control", url.trim_end_matches('/')))
            .timeout(Duration::from_secs(2))
            .send()
            .await?
            .json::<serde_json::Value>()
            .await
    };
    let Ok(control) = control.await else {
        return;
    };
    let settings = &control["settings"];
    let tuned = settings["latency_ms"].as_u64().unwrap_or(0) != 0
        || settings["error_rate"].as_f64().unwrap_or(0.0) != 0.0
        || !settings["decline_over_minor_units"].is_null()
        || control["outage"]["active"].as_bool().unwrap_or(false);
    if tuned {
        eprintln!(
            "throughput: warning: the payment processor is not at its defaults \
             (settings {settings}, outage {}): figures will show it",
            control["outage"]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Wallets and payments.

/// Which wallets pay which, and how much each payer is funded with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WalletPlan {
    run: String,
    payments: usize,
    payers: usize,
    payees: usize,
}

impl WalletPlan {
    /// The end-to-end run's: each payer used by at most every `P`-th payment (see the module
    /// documentation), and as many payees, each paid by one payer.
    /// `saga_in_flight`: messages the saga handles at once (a batch is handled concurrently).
    fn new(run: &str, payments: usize, concurrency: usize, saga_in_flight: usize) -> Self {
        let payers = (2 * concurrency.max(saga_in_flight)).clamp(1, payments.max(1));
        Self::round_robin(run, payments, payers, payers)
    }

    /// `payers` paying `payees`, each round-robin: payment `n` from payer `n % payers` to payee
    /// `n % payees`. No more payers than payments, so every payer pays (and is funded).
    fn round_robin(run: &str, payments: usize, payers: usize, payees: usize) -> Self {
        Self {
            run: run.to_owned(),
            payments,
            payers: payers.clamp(1, payments.max(1)),
            payees: payees.max(1),
        }
    }

    fn payer(&self, index: usize) -> String {
        format!("wal_bench_{}_payer_{index}", self.run)
    }

    fn payee(&self, index: usize) -> String {
        format!("wal_bench_{}_payee_{index}", self.run)
    }

    /// Payer and payee of payment `payment`: consecutive payments use different payers (and
    /// different payees, when there are more than one).
    fn parties(&self, payment: usize) -> (String, String) {
        (
            self.payer(payment % self.payers),
            self.payee(payment % self.payees),
        )
    }

    /// How many payments payer `index` makes.
    fn payments_of(&self, index: usize) -> usize {
        self.payments / self.payers + usize::from(index < self.payments % self.payers)
    }

    /// What payer `index` is funded with: exactly what its payments take.
    fn funding(&self, index: usize) -> u64 {
        self.payments_of(index) as u64 * PAYMENT_MINOR_UNITS
    }
}

/// Messages of the PaymentsQueue the saga works on at once: batch size × pollers.
fn saga_messages_in_flight(wiring: &Wiring) -> usize {
    wiring
        .functions
        .iter()
        .flat_map(|function| &function.sqs_triggers)
        .find(|trigger| trigger.queue == "PaymentsQueue")
        .map_or(10, |trigger| {
            trigger.batch_size as usize * trigger.pollers() as usize
        })
}

async fn open_wallets(api: &Api, plan: &WalletPlan, concurrency: usize) -> anyhow::Result<()> {
    let ids: Vec<String> = (0..plan.payers)
        .map(|index| plan.payer(index))
        .chain((0..plan.payees).map(|index| plan.payee(index)))
        .collect();
    stream::iter(ids.iter().map(|id| api.open_wallet(id)))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    stream::iter((0..plan.payers).map(|index| {
        let key = format!("bench-{}-deposit-{index}", plan.run);
        async move {
            api.deposit(&plan.payer(index), plan.funding(index), &key)
                .await
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

/// Submits `plan`'s payments, `concurrency` at a time, while one observer waits for them to
/// end. Returns the client's clock just before the first submission, every final payment, and
/// each payment as it was submitted.
async fn run_payments(
    api: &Api,
    plan: &WalletPlan,
    concurrency: usize,
) -> anyhow::Result<(DateTime<Utc>, Vec<FinalPayment>, Vec<Submitted>)> {
    let (accepted, to_observe) = mpsc::unbounded_channel();
    let first_submit = Utc::now();
    let submit = async move {
        let mut submissions = stream::iter(0..plan.payments)
            .map(|index| api.submit_timed(plan, index))
            .buffer_unordered(concurrency);
        let mut submitted = Vec::with_capacity(plan.payments);
        while let Some(payment) = submissions.next().await {
            let payment = payment?;
            // The observer only goes away with an error, which `try_join` reports.
            let _ = accepted.send(payment.payment_id.clone());
            submitted.push(payment);
        }
        anyhow::Ok(submitted)
        // `accepted` is dropped here: the observer stops once it has seen every payment end.
    };
    let (submitted, finals) = tokio::try_join!(submit, observe(api, to_observe, plan.payments))?;
    Ok((first_submit, finals, submitted))
}

/// `plan`'s payments one at a time, each to its end before the next is submitted, once no
/// queue of the stack holds a message: how long a payment takes with nothing else going on.
async fn run_payments_alone(
    api: &Api,
    plan: &WalletPlan,
    wiring: &Wiring,
) -> anyhow::Result<Vec<Submitted>> {
    latency::wait_for_idle_queues(wiring).await?;
    let mut submitted = Vec::with_capacity(plan.payments);
    for index in 0..plan.payments {
        let payment = api.submit_timed(plan, index).await?;
        let deadline = Instant::now() + COMPLETION_STALL_LIMIT;
        loop {
            if let Ok(view) = api.payment(&payment.payment_id).await
                && view.final_state().is_some()
            {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "throughput: payment {} did not end within {} s",
                payment.payment_id,
                COMPLETION_STALL_LIMIT.as_secs()
            );
            tokio::time::sleep(ALONE_POLL_INTERVAL).await;
        }
        submitted.push(payment);
    }
    Ok(submitted)
}

/// Reads the status of accepted payments until each is final (see the module documentation for
/// the pacing), oldest first.
async fn observe(
    api: &Api,
    mut accepted: mpsc::UnboundedReceiver<String>,
    total: usize,
) -> anyhow::Result<Vec<FinalPayment>> {
    let mut pending: VecDeque<String> = VecDeque::new();
    let mut finals = Vec::with_capacity(total);
    let mut submitting = true;
    let mut reads = 0usize;
    let mut last_final = Instant::now();
    let mut last_print = Instant::now();
    let mut last_error: Option<String> = None;
    loop {
        while submitting {
            match accepted.try_recv() {
                Ok(payment_id) => pending.push_back(payment_id),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => submitting = false,
            }
        }
        if pending.is_empty() {
            if !submitting {
                break;
            }
            match accepted.recv().await {
                Some(payment_id) => pending.push_back(payment_id),
                None => submitting = false,
            }
            // Waiting for submissions is not waiting for the saga.
            last_final = Instant::now();
            continue;
        }

        let round: Vec<&String> = pending.iter().take(POLL_IN_FLIGHT).collect();
        let round_size = round.len();
        let answers = join_all(round.iter().map(|payment_id| api.payment(payment_id))).await;
        reads += round_size;
        let mut ended = HashSet::new();
        for (payment_id, answer) in round.into_iter().zip(answers) {
            match answer.map(PaymentView::final_state) {
                Ok(Some(payment)) => {
                    finals.push(payment);
                    ended.insert(payment_id.clone());
                }
                Ok(None) => {}
                Err(error) => last_error = Some(format!("{error:#}")),
            }
        }
        let all_ended = ended.len() == round_size;
        if !ended.is_empty() {
            pending.retain(|payment_id| !ended.contains(payment_id));
            last_final = Instant::now();
        }

        if last_print.elapsed() >= PROGRESS_EVERY {
            eprintln!("throughput: {}/{total} completed", finals.len());
            last_print = Instant::now();
        }
        if last_final.elapsed() >= COMPLETION_STALL_LIMIT {
            let oldest: Vec<&String> = pending.iter().take(3).collect();
            bail!(
                "throughput: no payment ended for {} s; {} still pending (oldest: {oldest:?}); \
                 last read error: {}",
                COMPLETION_STALL_LIMIT.as_secs(),
                pending.len(),
                last_error.as_deref().unwrap_or("none")
            );
        }
        if !all_ended {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    eprintln!(
        "throughput: {}/{total} completed, {reads} status reads (one Query each)",
        finals.len()
    );
    Ok(finals)
}

/// The figures of the payments phase.
#[derive(Debug, Clone, PartialEq)]
struct PaymentsOutcome {
    /// The client's clock just before the first submission.
    first_submit: DateTime<Utc>,
    completed: usize,
    failed: usize,
    elapsed_seconds: f64,
    payments_per_second: f64,
    latency_ms: Percentiles,
    cpu: CpuUse,
    /// Each payment as its client submitted it, for [`latency::measure`].
    submitted: Vec<Submitted>,
}

impl PaymentsOutcome {
    fn of(first_submit: DateTime<Utc>, finals: &[FinalPayment], cpu: CpuUse) -> Self {
        let latencies: Vec<f64> = finals
            .iter()
            .filter(|payment| payment.status == FinalStatus::Completed)
            .map(|payment| millis_between(payment.created_at, payment.updated_at))
            .collect();
        let completed = latencies.len();
        let elapsed_seconds = finals
            .iter()
            .map(|payment| payment.updated_at)
            .max()
            .map_or(0.0, |last| millis_between(first_submit, last) / 1_000.0);
        Self {
            first_submit,
            completed,
            failed: finals.len() - completed,
            elapsed_seconds,
            payments_per_second: if elapsed_seconds > 0.0 {
                completed as f64 / elapsed_seconds
            } else {
                f64::NAN
            },
            latency_ms: Percentiles::of(&latencies),
            cpu,
            submitted: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
#[cfg(test)]
mod tests {
    use super::*;

    /// A small run against the whole local stack (`make run`, or `make local-up build-local
    /// system-up`): every hop of a payment is measured, unloaded and under load.
    #[tokio::test]
    #[ignore = "needs the local stack with its functions: make run, then source .local/stack.env"]
    async fn a_small_run_measures_every_hop_of_a_payment() -> anyhow::Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let report = measure(&ThroughputConfig {
            payments: 40,
            concurrency: 4,
            api_url: "http://127.0.0.1:3000".to_owned(),
            wiring: root.join(".local/wiring.json"),
        })
        .await?;
        assert_eq!(report.completed, 40);
        for run in &report.latency {
            println!("{run:#?}");
            assert!(
                run.payments > 0 && run.submit_to_completed_ms.p50 > 0.0,
                "{run:?}"
            );
            for hop in &run.hops {
                assert!(hop.samples > 0, "{hop:?}");
                assert!(hop.ms.p50 >= 0.0 && hop.ms.p95 >= hop.ms.p50, "{hop:?}");
            }
        }
        assert_eq!(report.latency[0].payments, UNLOADED_PAYMENTS);
        assert_eq!(report.latency[1].payments, 40);
        Ok(())
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test timestamps are RFC 3339")
            .with_timezone(&Utc)
    }

    fn payment(status: FinalStatus, created_at: &str, updated_at: &str) -> FinalPayment {
        FinalPayment {
            status,
            created_at: at(created_at),
            updated_at: at(updated_at),
            failure: None,
        }
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_are_their_ranks() {
        // Shuffled on purpose: the input need not be sorted.
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let percentiles = Percentiles::of(&values);
        assert_eq!(
            percentiles,
            Percentiles {
                p50: 50.0,
                p95: 95.0,
                p99: 99.0,
                max: 100.0
            }
        );
    }

    #[test]
    fn percentiles_take_the_nearest_rank_above() {
        let percentiles = Percentiles::of(&[40.0, 10.0, 30.0, 20.0]);
        // p50 of 4 values: rank 2; p95 and p99: rank 4.
        assert_eq!(percentiles.p50, 20.0);
        assert_eq!(percentiles.p95, 40.0);
        assert_eq!(percentiles.p99, 40.0);
        assert_eq!(percentiles.max, 40.0);

        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        let percentiles = Percentiles::of(&ten);
        assert_eq!((percentiles.p50, percentiles.p95), (5.0, 10.0));
    }

    #[test]
    fn percentiles_of_one_value_are_that_value() {
        let percentiles = Percentiles::of(&[12.5]);
        assert_eq!(
            percentiles,
            Percentiles {
                p50: 12.5,
                p95: 12.5,
                p99: 12.5,
                max: 12.5
            }
        );
    }

    #[test]
    fn percentiles_of_nothing_are_null_in_json() {
        let percentiles = Percentiles::of(&[]);
        assert!(percentiles.p50.is_nan() && percentiles.max.is_nan());
        assert_eq!(
            serde_json::to_value(percentiles).expect("percentiles serialize"),
            json!({ "p50": null, "p95": null, "p99": null, "max": null })
        );
    }

    #[test]
    fn latency_is_the_server_timestamps_difference() {
        let latency = millis_between(
            at("2026-11-26T10:19:33.920447683Z"),
            at("2026-11-26T10:19:35.013217143Z"),
        );
        assert!((latency - 1_092.769).abs() < 0.001, "{latency}");
        // Offsets are honoured.
        assert_eq!(
            millis_between(at("2026-01-01T12:00:00+02:00"), at("2026-01-01T10:00:01Z")),
            1_000.0
        );
    }

    #[test]
    fn outcome_counts_completed_payments_over_first_submit_to_last_end() {
        let finals = [
            payment(
                FinalStatus::Completed,
                "2026-01-01T00:00:00.010Z",
                "2026-01-01T00:00:01.010Z",
            ),
            payment(
                FinalStatus::Completed,
                "2026-01-01T00:00:00.020Z",
                "2026-01-01T00:00:03.020Z",
            ),
            // A failure ends last: it counts in the elapsed time, not in the latencies.
            payment(
                FinalStatus::Failed,
                "2026-01-01T00:00:00.030Z",
                "2026-01-01T00:00:04.000Z",
            ),
        ];
        let cpu = CpuUse {
            seconds: 1.0,
            cores: 2,
            roles: Vec::new(),
        };
        let outcome = PaymentsOutcome::of(at("2026-01-01T00:00:00Z"), &finals, cpu);
        assert_eq!((outcome.completed, outcome.failed), (2, 1));
        assert_eq!(outcome.elapsed_seconds, 4.0);
        assert_eq!(outcome.payments_per_second, 0.5);
        assert_eq!(outcome.latency_ms.p50, 1_000.0);
        assert_eq!(outcome.latency_ms.max, 3_000.0);
    }

    #[test]
    fn a_payment_is_final_only_when_completed_or_failed() {
        let view = |status: &str| PaymentView {
            payment_id: "pay_x".to_owned(),
            status: status.to_owned(),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:01Z"),
            failure: None,
        };
        for status in ["PENDING", "FUNDS_RESERVED", "CHARGED", "COMPENSATING"] {
            assert!(view(status).final_state().is_none(), "{status}");
        }
        let completed = view("COMPLETED").final_state().expect("COMPLETED is final");
        assert_eq!(completed.status, FinalStatus::Completed);
        let failed = view("FAILED").final_state().expect("FAILED is final");
        assert_eq!(failed.status, FinalStatus::Failed);
    }

    #[test]
    fn payment_view_reads_the_apis_json() {
        let body = r#"{"payment_id":"pay_01","status":"COMPLETED","from_wallet":"wal_a",
            "to_wallet":"wal_b","amount":{"minor_units":100,"currency":"EUR"},"version":5,
            "created_at":"2026-11-26T10:19:33.920447683Z",
            "updated_at":"2026-11-26T10:19:35.013217143Z"}"#;
        let view: PaymentView = serde_json::from_str(body).expect("the API's payment view");
        assert_eq!(view.payment_id, "pay_01");
        let payment = view.final_state().expect("COMPLETED is final");
        assert_eq!(payment.updated_at, at("2026-11-26T10:19:35.013217143Z"));
    }

    #[test]
    fn each_payer_is_funded_for_exactly_its_payments() {
        let plan = WalletPlan::new("r", 300, 8, 20);
        assert_eq!(plan.payers, 40);
        let mut made = vec![0usize; plan.payers];
        for payment in 0..plan.payments {
            let (from, to) = plan.parties(payment);
            let index = (0..plan.payers)
                .find(|&index| plan.payer(index) == from)
                .expect("every payer is one of the plan's");
            assert_eq!(to, plan.payee(index));
            made[index] += 1;
        }
        for (index, count) in made.into_iter().enumerate() {
            assert_eq!(plan.funding(index), count as u64 * PAYMENT_MINOR_UNITS);
        }
    }

    #[test]
    fn the_hot_wallet_runs_differ_in_their_payees_alone() {
        let hot = WalletPlan::round_robin("h", 500, HOT_WALLET_PAYERS, 1);
        let spread = WalletPlan::round_robin("s", 500, HOT_WALLET_PAYERS, SPREAD_PAYEES);
        assert_eq!((hot.payers, spread.payers, spread.payees), (100, 100, 100));
        for payment in 0..500 {
            let payer = payment % 100;
            // Each payer makes every 100th payment, in both runs.
            assert_eq!(hot.parties(payment).0, hot.payer(payer));
            assert_eq!(spread.parties(payment).0, spread.payer(payer));
            assert_eq!(hot.parties(payment).1, hot.payee(0));
            assert_eq!(spread.parties(payment).1, spread.payee(payer));
        }
        for index in 0..100 {
            assert_eq!(hot.funding(index), 5 * PAYMENT_MINOR_UNITS);
            assert_eq!(spread.funding(index), 5 * PAYMENT_MINOR_UNITS);
        }
        // Fresh wallets for each run.
        assert_ne!(hot.payer(0), spread.payer(0));
        // Fewer payments than payers: every payer pays, none is funded with nothing.
        let few = WalletPlan::round_robin("f", 30, HOT_WALLET_PAYERS, 1);
        assert_eq!(few.payers, 30);
        assert!((0..few.payers).all(|index| few.funding(index) == PAYMENT_MINOR_UNITS));
    }

    #[test]
    fn payers_are_at_least_twice_the_concurrency_and_at_most_the_payments() {
        assert_eq!(WalletPlan::new("r", 1000, 32, 20).payers, 64);
        assert_eq!(WalletPlan::new("r", 1000, 4, 20).payers, 40);
        assert_eq!(WalletPlan::new("r", 10, 8, 20).payers, 10);
        // The ids the API accepts: wal_ + up to 64 of [A-Za-z0-9_-].
        let id = WalletPlan::new(&run_id(), 10, 1, 1).payer(9);
        let rest = id.strip_prefix("wal_").expect("wallet ids start with wal_");
        assert!(rest.len() <= 64);
        assert!(
            rest.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
    }
}
