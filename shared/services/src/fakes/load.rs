//! Payments driven through the saga at rates no machine here reaches end to end: the in-memory
//! ledger behind DynamoDB's item model ([`super::capacity`]), in virtual time. What the hot
//! wallet simulation runs: many payers paying one payee, against the same load spread over many
//! payees, each payment delivered as its queue and consumer deliver it: again when a run fails
//! (after the saga's wait, or the visibility timeout), given up after the last delivery, or
//! sent again as a fresh message when the saga says it is never to be given up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use paysaga_domain::ports::{
    BeginPayment, Contention, Ownership, PaymentLog, RecordStep, StoreError, WalletOwners,
};
use paysaga_domain::{
    IdempotencyKey, Money, PaymentId, PaymentLogEntry, PaymentRequest, PaymentStatus,
    RequestChannel, StepPlan, WalletChange, WalletId,
};

use super::capacity::{ItemLimits, ItemModel, ItemModelCounts, Refusal};
use super::{InMemoryLedger, InMemoryProcessor, StaticConsent};
use crate::contention::{self, ContentionRetry};
use crate::saga::{Delivery, Redelivery, Saga, SagaSettings};

/// The in-memory ledger with DynamoDB's limits on each item it writes: a step's transaction
/// takes its log entry's item and every wallet item it changes, retried as the DynamoDB
/// adapter retries it ([`ContentionRetry::STORE`]), then is applied.
pub struct ModelledLedger {
    ledger: InMemoryLedger,
    model: ItemModel,
    credits: Credits,
}

/// Where a wallet's credits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credits {
    /// Always on the wallet's own item: the design before credit shards, kept as the
    /// simulation's baseline.
    OnTheWalletsItem,
    /// On the wallet's own item until they contend there, then on shards: the DynamoDB
    /// adapter's design (`paysaga_aws::dynamodb::credit_shards`).
    SpreadWhenHot,
}

impl std::fmt::Debug for ModelledLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelledLedger")
            .field("model", &self.model.counts())
            .finish_non_exhaustive()
    }
}

impl ModelledLedger {
    pub fn new(ledger: InMemoryLedger, limits: ItemLimits, credits: Credits) -> Self {
        Self {
            ledger,
            model: ItemModel::new(limits),
            credits,
        }
    }

    pub fn ledger(&self) -> &InMemoryLedger {
        &self.ledger
    }

    pub fn model(&self) -> &ItemModel {
        &self.model
    }

    /// The items a step writes, as the tables key them: its log entry, and each wallet it
    /// changes (a currency check is a read, which no transaction holds up); a credit to a
    /// wallet whose credits are spread writes one of its shards, at random, as the DynamoDB
    /// adapter does. With each item, the wallet it credits on the wallet's own item, if any.
    fn items_of(&self, plan: &StepPlan) -> Vec<(String, Option<WalletId>)> {
        let entry = &plan.entry;
        let mut items = vec![(log_item(&entry.payment_id, entry.version), None)];
        for effect in plan.wallet_effects() {
            let wallet = &effect.wallet_id;
            let item = match effect.change {
                WalletChange::AcceptsCurrency(_) => continue,
                WalletChange::Credit(_) => match self.ledger.credit_shards(wallet) {
                    0 => (format!("wallets/{wallet}"), Some(wallet.clone())),
                    shards => (
                        format!("wallets/{wallet}#credits#{}", fastrand::u16(..shards)),
                        None,
                    ),
                },
                _ => (format!("wallets/{wallet}"), None),
            };
            items.push(item);
        }
        items
    }
}

fn log_item(payment_id: &PaymentId, version: u32) -> String {
    format!("payments/{payment_id}/{version}")
}

/// A write the model refused through every attempt, as the DynamoDB adapter reports it.
fn refused(refusal: Refusal, attempts: u32) -> StoreError {
    let contention = match refusal {
        Refusal::Conflict { .. } => Contention::Conflict,
        Refusal::Throttled { .. } => Contention::Throttled,
    };
    StoreError::Contended(
        contention,
        format!("cancelled {attempts} times, last: {refusal:?}"),
    )
}

#[async_trait]
impl PaymentLog for ModelledLedger {
    async fn history(&self, id: &PaymentId) -> Result<Vec<PaymentLogEntry>, StoreError> {
        self.ledger.history(id).await
    }

    async fn begin(
        &self,
        request: &PaymentRequest,
        channel: RequestChannel,
        idempotency_key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<BeginPayment, StoreError> {
        self.model
            .write(&log_item(request.payment_id(), 1))
            .map_err(|refusal| refused(refusal, 1))?;
        self.ledger
            .begin(request, channel, idempotency_key, now)
            .await
    }

    async fn record(&self, plan: &StepPlan) -> Result<RecordStep, StoreError> {
        // As the DynamoDB adapter does: each attempt builds its items (a credit to a spread
        // wallet picks a shard), and a credit that keeps losing on its wallet's own item
        // spreads the wallet's credits.
        let (mut attempt, mut lost_on_credited) = (0, 0);
        loop {
            let (items, credited): (Vec<String>, Vec<Option<WalletId>>) =
                self.items_of(plan).into_iter().unzip();
            if items.len() == 1 {
                // A log entry alone is a PutItem of an item nobody else writes.
                self.model
                    .write(&items[0])
                    .map_err(|refusal| refused(refusal, 1))?;
                return self.ledger.record(plan).await;
            }
            let refusal = match self.model.transact(&items).await {
                Ok(()) => return self.ledger.record(plan).await,
                Err(refusal) => refusal,
            };
            attempt += 1;
            let (Refusal::Conflict { index } | Refusal::Throttled { index }) = refusal;
            if let Some(hot) = credited[index]
                .as_ref()
                .filter(|_| self.credits == Credits::SpreadWhenHot)
            {
                lost_on_credited += 1;
                if lost_on_credited == contention::SPREAD_CREDITS_AFTER {
                    self.ledger.spread_credits(hot);
                    continue;
                }
            }
            match ContentionRetry::STORE.backoff_after(attempt) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(refused(refusal, attempt)),
            }
        }
    }
}

#[async_trait]
impl WalletOwners for ModelledLedger {
    async fn ownership(&self, id: &WalletId) -> Result<Ownership, StoreError> {
        self.ledger.ownership(id).await
    }
}

/// What each payment of a load moves: 1.00 EUR.
pub const PAYMENT_MINOR_UNITS: u64 = 100;

/// A load: `payers` paying `payees` round-robin, `payments_per_second` for `seconds`.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub payers: usize,
    pub payees: usize,
    pub payments_per_second: u32,
    pub seconds: u32,
}

/// How the queue delivers each payment: as the template's payments queue does.
#[derive(Debug, Clone, Copy)]
pub struct Deliveries {
    pub max_receive_count: u32,
    pub visibility_timeout: Duration,
}

impl Deliveries {
    /// `PaymentsQueue`'s: five receives, 180 s apart.
    pub const PAYMENTS_QUEUE: Self = Self {
        max_receive_count: 5,
        visibility_timeout: Duration::from_secs(180),
    };
}

/// What became of a load.
#[derive(Debug, Clone)]
pub struct LoadRun {
    pub submitted: usize,
    pub completed: usize,
    /// The rate the payments were completed at while they were offered: those completed by
    /// the last request, a second, from the first request to the last. A design that keeps up
    /// completes them at the rate they come; one that falls behind, at the rate it can.
    pub completed_per_second: f64,
    /// From each completed payment's request to its completion: the median, the 99th
    /// percentile and the longest.
    pub latency: Latency,
    /// Deliveries after a first that failed.
    pub redelivered: usize,
    /// Payments given up on after their last delivery (or at once, for a request no run can
    /// carry out).
    pub dead_lettered: usize,
    /// Payments sent again as fresh messages after their last delivery, never given up.
    pub sent_again: usize,
    /// Virtual time from the first request to the last completion.
    pub elapsed: Duration,
    pub model: ItemModelCounts,
    /// The ledger, to check the money with.
    pub ledger: Arc<ModelledLedger>,
}

/// Percentiles of the time from a payment's request to its completion.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    fn of(mut latencies: Vec<Duration>) -> Self {
        latencies.sort();
        let at = |share: f64| {
            let index = ((latencies.len() as f64 * share).ceil() as usize).saturating_sub(1);
            latencies.get(index).copied().unwrap_or_default()
        };
        Self {
            p50: at(0.5),
            p99: at(0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

/// What each payment's deliveries came to.
#[derive(Default)]
struct Tally {
    /// Each completed payment's request and completion.
    completed: Vec<(Instant, Instant)>,
    redelivered: usize,
    sent_again: usize,
    dead_lettered: usize,
}

/// Runs `load` against a ledger with `limits`, delivered as `deliveries` say, in tokio's time
/// (paused in a test: virtual). Each payer holds what it pays; payees start empty; every wallet
/// is euros, owned by the demo holder, and every payment is requested through the API.
pub async fn run(
    load: Load,
    limits: ItemLimits,
    credits: Credits,
    deliveries: Deliveries,
) -> LoadRun {
    let total = (load.payments_per_second * load.seconds) as usize;
    // Each payment's payer and payee are drawn at random (after the arrivals, from the same
    // seed); each payer holds what it pays.
    let arrivals = arrivals(total, Duration::from_secs(u64::from(load.seconds)));
    let parties: Vec<(usize, usize)> = (0..total)
        .map(|_| {
            (
                fastrand::usize(..load.payers),
                fastrand::usize(..load.payees),
            )
        })
        .collect();
    let mut pays = vec![0u64; load.payers];
    for (payer, _) in &parties {
        pays[*payer] += PAYMENT_MINOR_UNITS;
    }
    let payer = |n: usize| format!("wal_load_payer_{n:05}");
    let payee = |n: usize| format!("wal_load_payee_{n:05}");
    let mut wallets: Vec<(String, u64)> = (0..load.payers).map(|n| (payer(n), pays[n])).collect();
    wallets.extend((0..load.payees).map(|n| (payee(n), 0)));
    let named: Vec<(&str, u64)> = wallets
        .iter()
        .map(|(id, funds)| (id.as_str(), *funds))
        .collect();
    let ledger = Arc::new(ModelledLedger::new(
        InMemoryLedger::euro_wallets(&named).await,
        limits,
        credits,
    ));
    let processor = Arc::new(InMemoryProcessor::default());
    let consent = Arc::new(StaticConsent::demo());
    let settings = Arc::new(SagaSettings::default());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let eur = "EUR".parse().expect("EUR is a currency");
    let amount = Money::new(PAYMENT_MINOR_UNITS, eur).expect("an amount");

    let start = Instant::now();
    let last_request = start + arrivals.last().copied().unwrap_or_default();
    let mut payments = Vec::with_capacity(total);
    for (n, (arrives, (payer_n, payee_n))) in arrivals.into_iter().zip(parties).enumerate() {
        let request = PaymentRequest::new(
            PaymentId::parse(&format!("pay_load_{n:07}")).expect("a payment id"),
            WalletId::parse(&payer(payer_n)).expect("a wallet id"),
            WalletId::parse(&payee(payee_n)).expect("a wallet id"),
            amount,
        )
        .expect("a request");
        let (ledger, processor, consent, settings, tally) = (
            ledger.clone(),
            processor.clone(),
            consent.clone(),
            settings.clone(),
            tally.clone(),
        );
        let arrives = start + arrives;
        payments.push(tokio::spawn(async move {
            tokio::time::sleep_until(arrives).await;
            let saga = Saga {
                log: &*ledger,
                processor: &*processor,
                settings: &settings,
                consent: &*consent,
                wallets: &*ledger,
            };
            deliver(&saga, &request, arrives, deliveries, &tally).await;
        }));
    }
    for payment in payments {
        // A task that panicked is a bug in the saga or the model: let the test see it.
        if let Err(error) = payment.await {
            std::panic::resume_unwind(error.into_panic());
        }
    }
    let tally = tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let last_done = tally.completed.iter().map(|(_, done)| *done).max();
    let elapsed = last_done.map_or(Duration::ZERO, |done| done - start);
    let while_offered = tally
        .completed
        .iter()
        .filter(|(_, done)| *done <= last_request)
        .count();
    let offered_for = (last_request - start).as_secs_f64().max(f64::EPSILON);
    LoadRun {
        submitted: total,
        completed: tally.completed.len(),
        completed_per_second: while_offered as f64 / offered_for,
        latency: Latency::of(
            tally
                .completed
                .iter()
                .map(|(requested, done)| *done - *requested)
                .collect(),
        ),
        redelivered: tally.redelivered,
        dead_lettered: tally.dead_lettered,
        sent_again: tally.sent_again,
        elapsed,
        model: ledger.model().counts(),
        ledger,
    }
}

/// When each of `total` payments arrives within `window`: at random, as independent clients
/// do (uniform times, sorted: a Poisson process with that many arrivals), so payments bunch and
/// collide as they would, from the same seed each run. The seed is the thread's generator's,
/// which the shard choices and the retries' jitter draw from too: on a test's one thread, a run
/// is the same every time.
fn arrivals(total: usize, window: Duration) -> Vec<Duration> {
    fastrand::seed(SEED);
    let mut times: Vec<Duration> = (0..total)
        .map(|_| window.mul_f64(fastrand::f64()))
        .collect();
    times.sort();
    times
}

/// The seed of a run's randomness ([`arrivals`]).
const SEED: u64 = 22;

/// The API's begin, then the saga on each delivery until the payment is terminal, as the
/// saga's consumer and its queue would: a failed run comes back when [`Redelivery`] says (the
/// visibility timeout when it says nothing), is given up after the last delivery, or, when it
/// is never to be given up, is sent again as a fresh message.
async fn deliver(
    saga: &Saga<'_>,
    request: &PaymentRequest,
    requested: Instant,
    deliveries: Deliveries,
    tally: &Mutex<Tally>,
) {
    let count = |change: &dyn Fn(&mut Tally)| {
        change(
            &mut tally
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
    };
    // The api's write; a 503 is retried by its client (same key) a moment later.
    while saga
        .log
        .begin(request, RequestChannel::Api, None, Utc::now())
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut receive_count = 1;
    loop {
        let delivery = Delivery {
            receive_count,
            max_receive_count: deliveries.max_receive_count,
            ..Delivery::default()
        };
        let wait = match saga.run(request, &delivery).await {
            Ok(payment) => {
                if payment.status == PaymentStatus::Completed {
                    let now = Instant::now();
                    count(&|tally| tally.completed.push((requested, now)));
                }
                return;
            }
            Err(error) => error.redelivery(Utc::now()),
        };
        let last = receive_count >= deliveries.max_receive_count;
        let after = match wait {
            Redelivery::Never => {
                count(&|tally| tally.dead_lettered += 1);
                return;
            }
            Redelivery::Again(_) if last => {
                count(&|tally| tally.dead_lettered += 1);
                return;
            }
            Redelivery::Unfinished(after) if last => {
                count(&|tally| tally.sent_again += 1);
                receive_count = 0;
                after
            }
            Redelivery::Again(after) => after.unwrap_or(deliveries.visibility_timeout),
            Redelivery::Unfinished(after) if after.is_zero() => deliveries.visibility_timeout,
            Redelivery::Unfinished(after) => after,
        };
        count(&|tally| tally.redelivered += 1);
        receive_count += 1;
        tokio::time::sleep(after).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A load no item limit binds: every payment completes on its first delivery, at the rate
    /// it was offered.
    #[tokio::test(start_paused = true)]
    async fn an_unbound_load_completes_at_its_rate() {
        let run = run(
            Load {
                payers: 20,
                payees: 20,
                payments_per_second: 100,
                seconds: 2,
            },
            ItemLimits::DYNAMODB,
            Credits::SpreadWhenHot,
            Deliveries::PAYMENTS_QUEUE,
        )
        .await;
        assert_eq!((run.completed, run.dead_lettered), (200, 0));
        assert!(
            (95.0..=101.0).contains(&run.completed_per_second),
            "{run:?}"
        );
    }
}
