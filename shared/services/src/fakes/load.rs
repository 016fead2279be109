//! Payments driven through the saga and the audit trail at rates no machine here reaches end
//! to end: the in-memory stores behind DynamoDB's item model ([`super::modelled`]), in virtual
//! time. What the hot wallet simulation runs: many payers paying one payee, against the same
//! load spread over many payees, each payment delivered as its queue and consumer deliver it:
//! again when a run fails (after the saga's wait, or the visibility timeout), given up after
//! the last delivery, or sent again as a fresh message when the saga says it is never to be
//! given up; then each completed payment's event appended to the audit trail, as its consumer
//! appends it (again a moment later while appends contend, never given up).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use paysaga_domain::ports::{PaymentHistory, StoreError};
use paysaga_domain::{
    DomainEvent, Money, PaymentId, PaymentRequest, PaymentStatus, RequestChannel, WalletId,
};

use super::capacity::{ItemLimits, ItemModel, ItemModelCounts};
use super::modelled::{Credits, ModelledEventStore, ModelledLedger, Streams};
use super::{InMemoryEventStore, InMemoryLedger, InMemoryProcessor, StaticConsent};
use crate::contention;
use crate::saga::{Delivery, Redelivery, Saga, SagaSettings};

/// Which design the stores follow: where a hot wallet's credits go, and its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Design {
    pub credits: Credits,
    pub streams: Streams,
}

impl Design {
    /// One item takes a wallet's every credit, one stream its every event: the design before
    /// hot wallets were spread, kept as the simulation's baseline.
    pub const ONE_ITEM_ONE_STREAM: Self = Self {
        credits: Credits::OnTheWalletsItem,
        streams: Streams::OneStream,
    };
    /// The DynamoDB adapters' design: a wallet's credits and its stream spread once they
    /// contend.
    pub const SPREAD_WHEN_HOT: Self = Self {
        credits: Credits::SpreadWhenHot,
        streams: Streams::SpreadWhenHot,
    };
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

/// The hot wallet simulation's load (`shared/services/tests/hot_wallet.rs`, and `make bench`'s):
/// 100 payers paying 100 payees, 1,200 payments a second arriving at random for 5 s; into one
/// wallet, the same load with `payees: 1`.
pub const HOT_WALLET_LOAD: Load = Load {
    payers: 100,
    payees: 100,
    payments_per_second: 1_200,
    seconds: 5,
};

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
    /// What the audit trail made of the completed payments' events.
    pub audit: AuditRun,
    /// Both stores' writes, as the item model saw them.
    pub model: ItemModelCounts,
    /// The ledger, to check the money with.
    pub ledger: Arc<ModelledLedger>,
    /// The audit trail, to check the streams with.
    pub events: Arc<ModelledEventStore>,
}

/// What the audit trail made of a load: each completed payment's `PaymentCompleted` appended
/// to its payment's, payer's and payee's streams.
#[derive(Debug, Clone)]
pub struct AuditRun {
    pub appended: usize,
    /// Events appended while the load was offered, a second (as
    /// [`LoadRun::completed_per_second`]).
    pub appended_per_second: f64,
    /// From each payment's completion to its event's append.
    pub lag: Latency,
    /// Deliveries after a first that lost to other appends through every retry.
    pub redelivered: usize,
}

/// Percentiles of a time each payment took.
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
    /// Each completed payment's completion and its event's append.
    appended: Vec<(Instant, Instant)>,
    audit_redelivered: usize,
}

/// The stores a load runs against, and what it counts.
struct Stores {
    ledger: Arc<ModelledLedger>,
    events: Arc<ModelledEventStore>,
    processor: InMemoryProcessor,
    consent: StaticConsent,
    settings: SagaSettings,
    tally: Mutex<Tally>,
}

impl Stores {
    fn count(&self, change: impl FnOnce(&mut Tally)) {
        change(
            &mut self
                .tally
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
    }
}

/// Runs `load` against stores of `design` with `limits`, delivered as `deliveries` say, in
/// tokio's time (paused in a test: virtual). Each payer holds what it pays; payees start empty;
/// every wallet is euros, owned by the demo holder, and every payment is requested through the
/// API.
pub async fn run(
    load: Load,
    limits: ItemLimits,
    design: Design,
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
    let model = Arc::new(ItemModel::new(limits));
    let stores = Arc::new(Stores {
        ledger: Arc::new(ModelledLedger::new(
            InMemoryLedger::euro_wallets(&named).await,
            model.clone(),
            design.credits,
        )),
        events: Arc::new(ModelledEventStore::new(
            InMemoryEventStore::new(paysaga_domain::history::DEFAULT_SNAPSHOT_EVERY),
            model.clone(),
            design.streams,
        )),
        processor: InMemoryProcessor::default(),
        consent: StaticConsent::demo(),
        settings: SagaSettings::default(),
        tally: Mutex::new(Tally::default()),
    });
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
        let stores = stores.clone();
        let arrives = start + arrives;
        payments.push(tokio::spawn(async move {
            tokio::time::sleep_until(arrives).await;
            let completed = deliver(&stores, &request, arrives, deliveries).await;
            if let Some(completed) = completed {
                audit(&stores, &request, completed).await;
            }
        }));
    }
    for payment in payments {
        // A task that panicked is a bug in the saga or the model: let the test see it.
        if let Err(error) = payment.await {
            std::panic::resume_unwind(error.into_panic());
        }
    }
    let tally = stores
        .tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let last_done = tally.completed.iter().map(|(_, done)| *done).max();
    let elapsed = last_done.map_or(Duration::ZERO, |done| done - start);
    let offered_for = (last_request - start).as_secs_f64().max(f64::EPSILON);
    let (completed_while_offered, latency) = spans(&tally.completed, last_request);
    let (appended_while_offered, lag) = spans(&tally.appended, last_request);
    LoadRun {
        submitted: total,
        completed: tally.completed.len(),
        completed_per_second: completed_while_offered as f64 / offered_for,
        latency,
        redelivered: tally.redelivered,
        dead_lettered: tally.dead_lettered,
        sent_again: tally.sent_again,
        elapsed,
        audit: AuditRun {
            appended: tally.appended.len(),
            appended_per_second: appended_while_offered as f64 / offered_for,
            lag,
            redelivered: tally.audit_redelivered,
        },
        model: model.counts(),
        ledger: stores.ledger.clone(),
        events: stores.events.clone(),
    }
}

/// Of spans of time (each payment's request to completion, or completion to append), how many
/// had ended by `until`, and how long they took.
fn spans(spans: &[(Instant, Instant)], until: Instant) -> (usize, Latency) {
    let ended = spans.iter().filter(|(_, end)| *end <= until).count();
    let took = spans.iter().map(|(start, end)| *end - *start).collect();
    (ended, Latency::of(took))
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
/// is never to be given up, is sent again as a fresh message. When it completed.
async fn deliver(
    stores: &Stores,
    request: &PaymentRequest,
    requested: Instant,
    deliveries: Deliveries,
) -> Option<Instant> {
    let saga = Saga {
        log: &*stores.ledger,
        processor: &stores.processor,
        settings: &stores.settings,
        consent: &stores.consent,
        wallets: &*stores.ledger,
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
            Ok(payment) if payment.status == PaymentStatus::Completed => {
                let now = Instant::now();
                stores.count(|tally| tally.completed.push((requested, now)));
                return Some(now);
            }
            Ok(_) => return None,
            Err(error) => error.redelivery(Utc::now()),
        };
        let last = receive_count >= deliveries.max_receive_count;
        let after = match wait {
            Redelivery::Never => {
                stores.count(|tally| tally.dead_lettered += 1);
                return None;
            }
            Redelivery::Again(_) if last => {
                stores.count(|tally| tally.dead_lettered += 1);
                return None;
            }
            Redelivery::Unfinished(after) if last => {
                stores.count(|tally| tally.sent_again += 1);
                receive_count = 0;
                after
            }
            Redelivery::Again(after) => after.unwrap_or(deliveries.visibility_timeout),
            Redelivery::Unfinished(after) if after.is_zero() => deliveries.visibility_timeout,
            Redelivery::Unfinished(after) => after,
        };
        stores.count(|tally| tally.redelivered += 1);
        receive_count += 1;
        tokio::time::sleep(after).await;
    }
}

/// The audit trail's consumer, for the completed payment's event: appended (again after
/// [`contention::redelivery_wait`] while appends contend, never given up, as its consumer sends
/// it again rather than to a DLQ).
async fn audit(stores: &Stores, request: &PaymentRequest, completed: Instant) {
    let history = stores
        .ledger
        .history(request.payment_id())
        .await
        .expect("an in-memory history");
    let event: DomainEvent = DomainEvent::announced_by(&history)
        .expect("a completed payment's log announces it")
        .expect("its outcome");
    loop {
        match stores.events.append(&event, Utc::now()).await {
            Ok(_) => {
                let now = Instant::now();
                stores.count(|tally| tally.appended.push((completed, now)));
                return;
            }
            Err(StoreError::Contended(..)) => {
                stores.count(|tally| tally.audit_redelivered += 1);
                tokio::time::sleep(contention::redelivery_wait()).await;
            }
            Err(error) => panic!("the modelled event store failed: {error}"),
        }
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
            Design::SPREAD_WHEN_HOT,
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
