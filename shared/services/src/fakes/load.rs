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
use crate::contention::ContentionRetry;
use crate::saga::{Delivery, Redelivery, Saga, SagaSettings};

/// The in-memory ledger with DynamoDB's limits on each item it writes: a step's transaction
/// takes its log entry's item and every wallet item it changes, retried as the DynamoDB
/// adapter retries it ([`ContentionRetry::STORE`]), then is applied.
pub struct ModelledLedger {
    ledger: InMemoryLedger,
    model: ItemModel,
}

impl std::fmt::Debug for ModelledLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelledLedger")
            .field("model", &self.model.counts())
            .finish_non_exhaustive()
    }
}

impl ModelledLedger {
    pub fn new(ledger: InMemoryLedger, limits: ItemLimits) -> Self {
        Self {
            ledger,
            model: ItemModel::new(limits),
        }
    }

    pub fn ledger(&self) -> &InMemoryLedger {
        &self.ledger
    }

    pub fn model(&self) -> &ItemModel {
        &self.model
    }

    /// The items a step writes, as the tables key them: its log entry, and each wallet it
    /// changes (a currency check is a read, which no transaction holds up).
    fn items_of(plan: &StepPlan) -> Vec<String> {
        let entry = &plan.entry;
        let mut items = vec![log_item(&entry.payment_id, entry.version)];
        for effect in plan.wallet_effects() {
            if !matches!(effect.change, WalletChange::AcceptsCurrency(_)) {
                items.push(format!("wallets/{}", effect.wallet_id));
            }
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
        let items = Self::items_of(plan);
        if items.len() == 1 {
            // A log entry alone is a PutItem of an item nobody else writes.
            self.model
                .write(&items[0])
                .map_err(|refusal| refused(refusal, 1))?;
            return self.ledger.record(plan).await;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.model.transact(&items).await {
                Ok(()) => return self.ledger.record(plan).await,
                Err(refusal) => match ContentionRetry::STORE.backoff_after(attempt) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(refused(refusal, attempt)),
                },
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
    /// Completed payments a second, from the first request to the last completion.
    pub completed_per_second: f64,
    /// Deliveries after a first that failed.
    pub redelivered: usize,
    /// Payments given up on after their last delivery (or at once, for a request no run can
    /// carry out).
    pub dead_lettered: usize,
    /// Payments sent again as fresh messages after their last delivery, never given up.
    pub sent_again: usize,
    /// Virtual seconds from the first request to the last completion.
    pub elapsed: Duration,
    pub model: ItemModelCounts,
    /// The ledger, to check the money with.
    pub ledger: Arc<ModelledLedger>,
}

/// What each payment's deliveries came to.
#[derive(Default)]
struct Tally {
    completed: usize,
    redelivered: usize,
    sent_again: usize,
    dead_lettered: usize,
    last_done: Option<Instant>,
}

/// Runs `load` against a ledger with `limits`, delivered as `deliveries` say, in tokio's time
/// (paused in a test: virtual). Each payer holds what it pays; payees start empty; every wallet
/// is euros, owned by the demo holder, and every payment is requested through the API.
pub async fn run(load: Load, limits: ItemLimits, deliveries: Deliveries) -> LoadRun {
    let total = (load.payments_per_second * load.seconds) as usize;
    let per_payer = total.div_ceil(load.payers) as u64 * PAYMENT_MINOR_UNITS;
    let payer = |n: usize| format!("wal_load_payer_{n:05}");
    let payee = |n: usize| format!("wal_load_payee_{n:05}");
    let mut wallets: Vec<(String, u64)> = (0..load.payers).map(|n| (payer(n), per_payer)).collect();
    wallets.extend((0..load.payees).map(|n| (payee(n), 0)));
    let named: Vec<(&str, u64)> = wallets
        .iter()
        .map(|(id, funds)| (id.as_str(), *funds))
        .collect();
    let ledger = Arc::new(ModelledLedger::new(
        InMemoryLedger::euro_wallets(&named).await,
        limits,
    ));
    let processor = Arc::new(InMemoryProcessor::default());
    let consent = Arc::new(StaticConsent::demo());
    let settings = Arc::new(SagaSettings::default());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let eur = "EUR".parse().expect("EUR is a currency");
    let amount = Money::new(PAYMENT_MINOR_UNITS, eur).expect("an amount");

    let start = Instant::now();
    let gap = Duration::from_secs(1) / load.payments_per_second.max(1);
    let mut payments = Vec::with_capacity(total);
    for n in 0..total {
        let request = PaymentRequest::new(
            PaymentId::parse(&format!("pay_load_{n:07}")).expect("a payment id"),
            WalletId::parse(&payer(n % load.payers)).expect("a wallet id"),
            WalletId::parse(&payee(n % load.payees)).expect("a wallet id"),
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
        let arrives = start + gap * n as u32;
        payments.push(tokio::spawn(async move {
            tokio::time::sleep_until(arrives).await;
            let saga = Saga {
                log: &*ledger,
                processor: &*processor,
                settings: &settings,
                consent: &*consent,
                wallets: &*ledger,
            };
            deliver(&saga, &request, deliveries, &tally).await;
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
    let elapsed = tally.last_done.map_or(Duration::ZERO, |done| done - start);
    LoadRun {
        submitted: total,
        completed: tally.completed,
        completed_per_second: tally.completed as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        redelivered: tally.redelivered,
        dead_lettered: tally.dead_lettered,
        sent_again: tally.sent_again,
        elapsed,
        model: ledger.model().counts(),
        ledger,
    }
}

/// The API's begin, then the saga on each delivery until the payment is terminal, as the
/// saga's consumer and its queue would: a failed run comes back when [`Redelivery`] says (the
/// visibility timeout when it says nothing), is given up after the last delivery, or, when it
/// is never to be given up, is sent again as a fresh message.
async fn deliver(
    saga: &Saga<'_>,
    request: &PaymentRequest,
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
                    count(&|tally| {
                        tally.completed += 1;
                        tally.last_done = Some(tally.last_done.map_or(now, |last| last.max(now)));
                    });
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
