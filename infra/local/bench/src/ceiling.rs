//! The emulators' ceiling, like for like: how many payments a second DynamoDB Local and
//! LocalStack can serve when a closed loop makes every AWS call the whole system makes for a
//! payment, in its order and at its concurrency, with no function, no Lambda emulator and no
//! Runtime API in between. The end-to-end run's payments/s over this figure is the share of the
//! emulators' capacity the system reaches.
//!
//! **What a payment makes**, stage by stage, each with the concurrency the stack gives it:
//!
//! - *the api*: the end-to-end run's payments, as many of them, submitted by as many clients,
//!   each one payment after the other: the caller's wallet read (`GetItem`, eventually
//!   consistent) and the log's first entry (a conditional `PutItem`);
//! - *the relay*, as one stream shard's mapping runs it: the records of the log's first and last
//!   entries (handed over in process, for the stream), up to the mapping's batch size at a
//!   time, published ten to a `PutEvents`, the requests' deadline checks ten to a
//!   `SendMessageBatch`, every call of a batch at once, as the relay makes them;
//! - *the rules*, as the stack's: the request to the saga's queue, the read models' and the
//!   audit trail's; the outcome to the read models', the audit trail's and the notifications';
//! - *the consumers*, each queue polled by as many pollers as the wiring gives the real one,
//!   each receiving up to its batch size, handling the batch's messages at once (as
//!   `lambda_toolkit::sqs_batch` does) and deleting them in one `DeleteMessageBatch`:
//!   - payment-saga: the log's `Query`, the payee's read, the reservation (the payer's hold, a
//!     conditional `UpdateItem`, then its entry's `PutItem`), the charge's entry (`PutItem`), the
//!     settlement (`TransactWriteItems`: entry, payer and payee), whose record the relay
//!     publishes;
//!   - read-models, audit-trail and notifications with the functions' own code
//!     ([`paysaga_services::read_models::apply_event`], `DynamoDbEventStore::append`,
//!     [`paysaga_services::notifications::Notifications::notify`] with the inbox), so the loop
//!     makes exactly their calls, now and after they change;
//!   - the reconciler's deadline check is scheduled (the relay's `SendMessageBatch`), delayed
//!     to the payment's deadline as the stack's is: neither run reads it while it is timed.
//!
//! Each payment is between wallets of its own: the loop measures the calls, not contention.
//! The ceiling is the payments over the time from the first submission to every stage's part
//! of every payment done (the last consumer's last message handled): the same work, timed the
//! same way, as the end-to-end run's whole-system rate. When each stage was done is reported
//! too, and the process that kept the most CPU busy names the bottleneck.
//! Everything is scratch and deleted afterwards: tables, queues and
//! rules named `paysaga-bench-ceiling-<run>-…`, events of the source `paysaga.bench`, which
//! only the loop's rules match. What the loop does not reproduce: the Lambda service's reads of
//! the payments table's stream (`GetRecords`, which local-lambda's mapping makes for the relay).

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem, Update,
};
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, SendMessageBatchRequestEntry};
use chrono::Utc;
use futures::future::join_all;
use lambda_toolkit::idempotency::InMemoryIdempotencyStore;
use local_lambda::aws::sdk_config;
use local_lambda::wiring::{LocalAws, Wiring};
use paysaga_aws::{DynamoDbEventStore, DynamoDbInbox, DynamoDbReadModels};
use paysaga_domain::events::{EventDetail, PaymentEventData};
use paysaga_domain::payment::Flow;
use paysaga_domain::ports::EventStore;
use paysaga_domain::{DomainEvent, Money, PaymentId, PaymentRequest, PaymentStatus, WalletId};
use paysaga_services::notifications::{Notifications, idempotency_config};
use serde::Serialize;
use serde_json::Value;

use tokio::sync::{Mutex, mpsc};

use crate::cpu::{self, CpuUse};

/// The longest the saga may take to settle the loop's payments before the loop gives up.
const DEADLINE: Duration = Duration::from_secs(300);
/// Source of the loop's events; only the loop's own rules match it.
const BENCH_EVENT_SOURCE: &str = "paysaga.bench";
/// The source the consumers read the events as (the api's and the saga's).
const PAYMENTS_SOURCE: &str = "paysaga.payments";
/// The audit trail's snapshot interval, as the template sets it (`SNAPSHOT_EVERY`).
const SNAPSHOT_EVERY: u64 = 10;
/// Records the relay publishes in one call: `PutEvents` takes ten entries, as
/// `SendMessageBatch` does (`paysaga_services::relay::EVENTS_PER_CALL`).
const RELAY_CALL: usize = paysaga_services::relay::EVENTS_PER_CALL;
/// Every payment moves this much.
const MINOR_UNITS: u64 = 100;

/// The ceiling, in payments a second, and what set it.
#[derive(Debug, Clone, Serialize)]
pub struct EmulatorCeiling {
    /// The payments over the time from the first submission to every stage's part done.
    pub payments_per_second: f64,
    /// The process that kept the most CPU busy while the loop ran: the bottleneck.
    pub limited_by: String,
    /// When each stage had done its part, in the order of [`Stage::ALL`].
    pub stages: Vec<StageRate>,
    /// AWS calls a payment makes in the loop, the system's (see the module documentation).
    pub calls_per_payment: u32,
    /// The mix measured, in words.
    pub mix: String,
    /// From the first submission to every stage's part done.
    pub seconds: f64,
    /// CPU by process over those seconds.
    pub cpu: CpuUse,
}

/// A stage of the loop: when it had done its part of every payment.
#[derive(Debug, Clone, Serialize)]
pub struct StageRate {
    pub stage: String,
    /// From the first submission.
    pub seconds: f64,
    /// The payments over those seconds.
    pub payments_per_second: f64,
}

/// The loop's stages: the api's clients, and the consumers each message feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The api.
    Api,
    /// The relay: the requests and outcomes the log's stream carries, published in batches.
    Relay,
    /// The saga, on its queue.
    Saga,
    ReadModels,
    AuditTrail,
    Notifications,
    /// The reconciler's queue of deadline checks, which the relay schedules: delayed to the
    /// payment's deadline as the stack's are, so read after the loop (and after the end-to-end
    /// run's payments too), by neither run.
    Reconciler,
}

impl Stage {
    /// The stages at work while the loop runs.
    pub const ALL: [Stage; 6] = [
        Stage::Api,
        Stage::Relay,
        Stage::Saga,
        Stage::ReadModels,
        Stage::AuditTrail,
        Stage::Notifications,
    ];
    /// The stages fed by a queue, polled while the loop runs.
    const CONSUMERS: [Stage; 4] = [
        Stage::Saga,
        Stage::ReadModels,
        Stage::AuditTrail,
        Stage::Notifications,
    ];
    /// The stages with a queue of their own.
    const QUEUED: [Stage; 5] = [
        Stage::Saga,
        Stage::ReadModels,
        Stage::AuditTrail,
        Stage::Notifications,
        Stage::Reconciler,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Relay => "event-relay",
            Self::Saga => "payment-saga",
            Self::ReadModels => "read-models",
            Self::AuditTrail => "audit-trail",
            Self::Notifications => "notifications",
            Self::Reconciler => "reconciler",
        }
    }

    /// The queue of the stack whose trigger gives this consumer its pollers and batch size.
    fn stack_queue(self) -> &'static str {
        match self {
            Self::Api | Self::Relay => "",
            Self::Saga => "PaymentsQueue",
            Self::ReadModels => "ReadModelsQueue",
            Self::AuditTrail => "AuditTrailQueue",
            Self::Notifications => "PaymentEventsQueue",
            Self::Reconciler => "PaymentDeadlinesQueue",
        }
    }

    /// This stage's requests or messages per payment.
    fn per_payment(self) -> u64 {
        match self {
            Self::Api | Self::Saga | Self::Notifications | Self::Reconciler => 1,
            Self::Relay | Self::ReadModels | Self::AuditTrail => 2,
        }
    }

    /// AWS calls per request or message this stage's handler makes (a queue's receive and
    /// delete are the event source mapping's, counted apart).
    fn calls_per_message(self) -> u32 {
        match self {
            // The caller's wallet, the log's first entry.
            Self::Api => 2,
            // Per event, unbatched: a PutEvents, and for a request its deadline check's
            // SendMessageBatch (batched, both are fewer under load).
            Self::Relay => 1,
            Self::Saga => 6,
            // One conditional UpdateItem per wallet of the event.
            Self::ReadModels => 2,
            // A request: its payment's stream read whole, its entry there (the claim). An
            // outcome: the same, and a wallet's head and entry for each of its two wallets.
            // 4 on average.
            Self::AuditTrail => 4,
            // One conditional PutItem per recipient.
            Self::Notifications => 2,
            Self::Reconciler => 1,
        }
    }

    /// The scratch queue's name suffix.
    fn queue_suffix(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Relay => "relay",
            Self::Saga => "saga",
            Self::ReadModels => "read-models",
            Self::AuditTrail => "audit",
            Self::Notifications => "notifications",
            Self::Reconciler => "deadlines",
        }
    }
}

/// The AWS calls one payment makes in the loop: its stages' handlers, and the receive and delete
/// of each message, shared by a batch (here counted once per message: an upper bound).
pub fn calls_per_payment() -> u32 {
    let deadline_check = 1;
    deadline_check
        + Stage::ALL
            .iter()
            .map(|stage| stage.calls_per_message() * stage.per_payment() as u32)
            .sum::<u32>()
}

/// The loop, in words.
pub fn mix(clients: usize, payments: usize) -> String {
    format!(
        "every AWS call of a completed payment, the whole system's ({} calls unbatched, and every \
         message's receive and delete): {payments} payments, {clients} clients through the api \
         (GetItem, PutItem); the relay taking the log's records a stream batch at a time and \
         making every call of a batch at once (PutEvents ten records each, and \
         SendMessageBatch for the deadline checks, delayed to the deadline as the stack's \
         are); the rules' six deliveries; payment-saga (Query, GetItem, \
         UpdateItem, PutItem, PutItem, TransactWriteItems), read-models, audit-trail and \
         notifications handling their messages, the consumers with their own code, at their \
         pollers and batch sizes; each payment between wallets of its own",
        calls_per_payment()
    )
}

/// Hands out the payments to submit and counts each stage's work, from the first submission
/// until every stage has done its part of every payment.
struct Meter {
    started: Instant,
    payments: usize,
    /// The next payment to submit.
    next: AtomicUsize,
    counts: HashMap<Stage, AtomicU64>,
    /// When each stage had done its part of every payment.
    done_at: HashMap<Stage, OnceLock<Instant>>,
}

impl Meter {
    fn start(payments: usize) -> Self {
        Self {
            started: Instant::now(),
            payments,
            next: AtomicUsize::new(0),
            counts: Stage::ALL
                .iter()
                .map(|stage| (*stage, AtomicU64::new(0)))
                .collect(),
            done_at: Stage::ALL
                .iter()
                .map(|stage| (*stage, OnceLock::new()))
                .collect(),
        }
    }

    /// The next payment to submit, until every one has been.
    fn ticket(&self) -> Option<usize> {
        let next = self.next.fetch_add(1, Ordering::Relaxed);
        (next < self.payments).then_some(next)
    }

    fn record(&self, stage: Stage, count: u64) {
        let (Some(counter), Some(done_at)) = (self.counts.get(&stage), self.done_at.get(&stage))
        else {
            return;
        };
        let counted = counter.fetch_add(count, Ordering::Relaxed) + count;
        if counted >= self.payments as u64 * stage.per_payment() {
            let _ = done_at.set(Instant::now());
        }
    }

    /// Until every stage has done its part, or [`DEADLINE`] has passed.
    fn running(&self) -> bool {
        self.done_at.values().any(|done| done.get().is_none()) && self.started.elapsed() < DEADLINE
    }

    fn count(&self, stage: Stage) -> u64 {
        self.counts
            .get(&stage)
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }

    /// From the first submission to when `stage` had done its part of every payment; `None`
    /// while it has not.
    fn seconds_until_done(&self, stage: Stage) -> Option<f64> {
        let done = self.done_at.get(&stage)?.get()?;
        Some((*done - self.started).as_secs_f64())
    }
}

/// The scratch resources and the clients the loop uses.
struct Loop {
    dynamodb: aws_sdk_dynamodb::Client,
    eventbridge: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    bus_name: String,
    run: String,
    payments_table: String,
    wallets_table: String,
    queues: HashMap<Stage, String>,
    read_models: DynamoDbReadModels,
    audit: DynamoDbEventStore,
    inbox: DynamoDbInbox,
    idempotency: InMemoryIdempotencyStore,
    /// The deadline checks' `DelaySeconds`, as the stack's relay sets it.
    deadline_check_delay: i32,
    /// The records the relay takes at once: its stream mapping's batch size, as the wiring
    /// gives it.
    relay_batch: usize,
    /// Whether a consumer's message has failed yet (the first failure is printed).
    failed_once: AtomicBool,
    /// What the payments table's stream carries to the relay: the events of the log's first
    /// and last entries, in order.
    stream: (
        mpsc::UnboundedSender<DomainEvent>,
        Mutex<mpsc::UnboundedReceiver<DomainEvent>>,
    ),
}

/// Measures the ceiling with `payments` payments from `concurrency` clients of the api (see the
/// module docs).
pub async fn measure(
    wiring: &Wiring,
    run: &str,
    concurrency: usize,
    payments: usize,
    run_dir: &Path,
) -> anyhow::Result<EmulatorCeiling> {
    let aws = LocalAws::resolve(wiring, |name| std::env::var(name).ok());
    let local_stack = sdk_config(&aws, &aws.endpoint_url).await;
    let dynamodb_endpoint = aws.dynamodb_endpoint_url.as_deref();
    let dynamodb = aws_sdk_dynamodb::Client::new(
        &sdk_config(&aws, dynamodb_endpoint.unwrap_or(&aws.endpoint_url)).await,
    );
    let scratch = |what: &str| format!("paysaga-bench-ceiling-{run}-{what}");
    let looped = Loop {
        eventbridge: aws_sdk_eventbridge::Client::new(&local_stack),
        sqs: aws_sdk_sqs::Client::new(&local_stack),
        bus_name: wiring
            .event_bus_name
            .clone()
            .context("the wiring names no event bus")?,
        run: run.to_owned(),
        payments_table: scratch("payments"),
        wallets_table: scratch("wallets"),
        queues: HashMap::new(),
        read_models: DynamoDbReadModels::new(dynamodb.clone(), scratch("read-models")),
        audit: DynamoDbEventStore::new(dynamodb.clone(), scratch("audit"), SNAPSHOT_EVERY),
        inbox: DynamoDbInbox::new(dynamodb.clone(), scratch("inbox")),
        idempotency: InMemoryIdempotencyStore::default(),
        failed_once: AtomicBool::new(false),
        deadline_check_delay: deadline_check_delay(wiring),
        relay_batch: relay_batch(wiring),
        stream: {
            let (sender, receiver) = mpsc::unbounded_channel();
            (sender, Mutex::new(receiver))
        },
        dynamodb,
    };
    let set_up = looped.set_up(&scratch).await;
    let mut looped = looped;
    let outcome = match set_up {
        Ok(queues) => {
            looped.queues = queues;
            looped
                .run_stages(wiring, concurrency, payments, run_dir)
                .await
        }
        Err(error) => Err(error),
    };
    if let Err(error) = looped.tear_down(&scratch).await {
        eprintln!("ceiling: warning: scratch tables, queues or rules left behind: {error:#}");
    }
    outcome
}

/// The `DelaySeconds` of the stack's deadline checks: the relay's `FLOW_DEADLINE_SECONDS` (SQS
/// takes at most 900, which is also the default).
fn deadline_check_delay(wiring: &Wiring) -> i32 {
    wiring
        .functions
        .iter()
        .find_map(|function| function.environment.get("FLOW_DEADLINE_SECONDS"))
        .and_then(|seconds| seconds.parse::<i32>().ok())
        .unwrap_or(900)
        .clamp(0, 900)
}

/// The batch size of the relay's mapping on the payments table's stream (100 without one).
fn relay_batch(wiring: &Wiring) -> usize {
    wiring
        .functions
        .iter()
        .flat_map(|function| &function.stream_triggers)
        .find(|trigger| trigger.table == "PaymentsTable")
        .map_or(100, |trigger| trigger.batch_size.max(1) as usize)
}

/// A consumer's pollers and batch size, as the wiring gives its real queue's trigger.
fn pollers_of(wiring: &Wiring, stage: Stage) -> (usize, i32) {
    wiring
        .functions
        .iter()
        .flat_map(|function| &function.sqs_triggers)
        .find(|trigger| trigger.queue == stage.stack_queue())
        .map_or((2, 10), |trigger| {
            (
                trigger.pollers().max(1) as usize,
                i32::try_from(trigger.batch_size.clamp(1, 10)).unwrap_or(10),
            )
        })
}

impl Loop {
    /// The scratch tables, queues and rules; the queues' URLs by stage.
    async fn set_up(
        &self,
        scratch: &impl Fn(&str) -> String,
    ) -> anyhow::Result<HashMap<Stage, String>> {
        let string = ScalarAttributeType::S;
        let number = ScalarAttributeType::N;
        // The payments table has the stream the real one has (DynamoDB Local writes its
        // records); nothing reads it.
        self.create_table(
            &self.payments_table,
            ("payment_id", string.clone()),
            Some(("version", number.clone())),
            true,
        )
        .await?;
        self.create_table(
            &self.wallets_table,
            ("wallet_id", string.clone()),
            None,
            false,
        )
        .await?;
        self.create_table(
            &scratch("read-models"),
            ("pk", string.clone()),
            Some(("sk", string.clone())),
            false,
        )
        .await?;
        self.create_table(
            &scratch("audit"),
            ("stream", string.clone()),
            Some(("version", number)),
            false,
        )
        .await?;
        self.create_table(
            &scratch("inbox"),
            ("wallet_id", string.clone()),
            Some(("notification_id", string)),
            false,
        )
        .await?;

        let mut queues = HashMap::new();
        let mut arns = HashMap::new();
        for stage in Stage::QUEUED {
            let (url, arn) =
                crate::downstream::queue_with_arn(&self.sqs, &scratch(stage.queue_suffix()))
                    .await?;
            queues.insert(stage, url);
            arns.insert(stage, arn);
        }
        let requested = [Stage::Saga, Stage::ReadModels, Stage::AuditTrail];
        let outcome = [Stage::ReadModels, Stage::AuditTrail, Stage::Notifications];
        for (detail_type, targets) in [
            ("PaymentRequested", requested),
            ("PaymentCompleted", outcome),
        ] {
            let name = scratch(detail_type);
            let pattern = serde_json::json!({
                "source": [BENCH_EVENT_SOURCE],
                "detail-type": [detail_type],
            });
            self.eventbridge
                .put_rule()
                .event_bus_name(&self.bus_name)
                .name(&name)
                .event_pattern(pattern.to_string())
                .send()
                .await
                .with_context(|| format!("cannot create the scratch rule {name}"))?;
            let mut put = self
                .eventbridge
                .put_targets()
                .event_bus_name(&self.bus_name)
                .rule(&name);
            for stage in targets {
                put = put.targets(
                    Target::builder()
                        .id(stage.queue_suffix())
                        .arn(arns[&stage].clone())
                        .build()?,
                );
            }
            put.send()
                .await
                .with_context(|| format!("cannot target {name} at its queues"))?;
        }
        Ok(queues)
    }

    async fn create_table(
        &self,
        name: &str,
        hash: (&str, ScalarAttributeType),
        range: Option<(&str, ScalarAttributeType)>,
        stream: bool,
    ) -> anyhow::Result<()> {
        let mut create = self
            .dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for (attribute, kind, key_type) in [
            Some((hash.0, hash.1, KeyType::Hash)),
            range.map(|(a, k)| (a, k, KeyType::Range)),
        ]
        .into_iter()
        .flatten()
        {
            create = create
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(attribute)
                        .attribute_type(kind)
                        .build()?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(attribute)
                        .key_type(key_type)
                        .build()?,
                );
        }
        if stream {
            create = create.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()?,
            );
        }
        create
            .send()
            .await
            .with_context(|| format!("cannot create the scratch table {name}"))?;
        Ok(())
    }

    /// Deletes whatever of the scratch resources exists; says what could not be deleted.
    async fn tear_down(&self, scratch: &impl Fn(&str) -> String) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        for (detail_type, targets) in [
            ("PaymentRequested", ["saga", "read-models", "audit"]),
            (
                "PaymentCompleted",
                ["read-models", "audit", "notifications"],
            ),
        ] {
            let name = scratch(detail_type);
            let rule = async {
                self.eventbridge
                    .remove_targets()
                    .event_bus_name(&self.bus_name)
                    .rule(&name)
                    .set_ids(Some(targets.map(str::to_owned).to_vec()))
                    .send()
                    .await?;
                self.eventbridge
                    .delete_rule()
                    .event_bus_name(&self.bus_name)
                    .name(&name)
                    .send()
                    .await?;
                anyhow::Ok(())
            };
            if let Err(error) = rule.await {
                failures.push(format!("rule {name}: {error:#}"));
            }
        }
        for stage in Stage::QUEUED {
            let name = scratch(stage.queue_suffix());
            let queue = async {
                let url = self.sqs.get_queue_url().queue_name(&name).send().await?;
                if let Some(url) = url.queue_url {
                    self.sqs.delete_queue().queue_url(url).send().await?;
                }
                anyhow::Ok(())
            };
            if let Err(error) = queue.await {
                failures.push(format!("queue {name}: {error:#}"));
            }
        }
        for table in ["payments", "wallets", "read-models", "audit", "inbox"] {
            let name = scratch(table);
            if let Err(error) = self.dynamodb.delete_table().table_name(&name).send().await {
                failures.push(format!("table {name}: {error}"));
            }
        }
        ensure!(failures.is_empty(), "{}", failures.join("; "));
        Ok(())
    }

    /// Runs every stage until the meter stops; the rates it counted.
    async fn run_stages(
        &self,
        wiring: &Wiring,
        concurrency: usize,
        payments: usize,
        run_dir: &Path,
    ) -> anyhow::Result<EmulatorCeiling> {
        let meter = &Meter::start(payments);
        let before = cpu::sample(run_dir);
        let path = join_all((0..concurrency).map(|worker| self.client(worker, meter)));
        let consumers = join_all(Stage::CONSUMERS.iter().flat_map(|&stage| {
            let (pollers, batch) = pollers_of(wiring, stage);
            (0..pollers).map(move |_| self.consumer(stage, batch, meter))
        }));
        let relay = self.relay(meter);
        let (path, relay, consumers) = futures::join!(path, relay, consumers);
        relay?;
        let cpu = cpu::between(&before, &cpu::sample(run_dir));
        path.into_iter()
            .chain(consumers)
            .collect::<anyhow::Result<Vec<()>>>()?;
        let mut stages = Vec::new();
        for stage in Stage::ALL {
            let Some(seconds) = meter.seconds_until_done(stage) else {
                anyhow::bail!(
                    "ceiling: {} did {} of its {} messages or requests in {} s",
                    stage.name(),
                    meter.count(stage),
                    payments as u64 * stage.per_payment(),
                    DEADLINE.as_secs()
                );
            };
            stages.push(StageRate {
                stage: stage.name().to_owned(),
                seconds,
                payments_per_second: payments as f64 / seconds,
            });
        }
        let seconds = stages.iter().map(|stage| stage.seconds).fold(0.0, f64::max);
        let limited_by = cpu
            .busiest()
            .map_or_else(|| "—".to_owned(), |share| share.role.clone());
        let payments_per_second = payments as f64 / seconds;
        eprintln!(
            "ceiling: {payments_per_second:.1} payments/s, busiest {limited_by}; each stage done \
             at: {}",
            stages
                .iter()
                .map(|rate| format!("{} {:.1} s", rate.stage, rate.seconds))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(EmulatorCeiling {
            payments_per_second,
            limited_by,
            calls_per_payment: calls_per_payment(),
            mix: mix(concurrency, payments),
            seconds,
            cpu,
            stages,
        })
    }

    fn payment_id(&self, worker: usize, iteration: usize) -> anyhow::Result<PaymentId> {
        Ok(PaymentId::parse(&format!(
            "pay_bench_ceiling_{}_{worker}_{iteration}",
            self.run
        ))?)
    }

    /// The wallets of client `worker`'s payment `iteration`: 0 the payer, 1 the payee, of its
    /// own, so that the loop measures the calls and not two payments contending for a wallet.
    fn wallet(&self, worker: usize, iteration: usize, wallet: usize) -> anyhow::Result<WalletId> {
        Ok(WalletId::parse(&format!(
            "wal_bench_ceiling_{}_{worker}_{iteration}_{wallet}",
            self.run
        ))?)
    }

    /// A client: payments one after the other through the api, while there are payments left
    /// to submit.
    async fn client(&self, worker: usize, meter: &Meter) -> anyhow::Result<()> {
        while let Some(payment) = meter.ticket() {
            self.submit(worker, payment).await?;
            meter.record(Stage::Api, 1);
        }
        Ok(())
    }

    /// One payment through the api and the relay's publication of its request.
    async fn submit(&self, worker: usize, iteration: usize) -> anyhow::Result<()> {
        let payment_id = self.payment_id(worker, iteration)?;
        let payer = self.wallet(worker, iteration, 0)?;
        let request = PaymentRequest::of_flow(
            payment_id.clone(),
            Flow::Transfer {
                from_wallet: payer.clone(),
                to_wallet: self.wallet(worker, iteration, 1)?,
            },
            Money::new(MINOR_UNITS, "EUR".parse()?)?,
        )?;
        // The api: the caller's wallet, the log's first entry.
        self.read_wallet(&payer).await?;
        self.put_entry(payment_id.as_str(), 1).await?;
        // The entry's stream record, for the relay.
        self.stream
            .0
            .send(DomainEvent::payment_requested(&request, Utc::now()))
            .context("ceiling: the relay stopped")?;
        Ok(())
    }

    /// The saga's work on a requested payment: the log, the payee, reserve, charge, settle;
    /// then the relay's publication of the outcome.
    async fn settle(&self, request: &EventDetail<PaymentRequest>) -> anyhow::Result<()> {
        let payment = &request.data;
        let payment_id = payment.payment_id().as_str();
        let flow = payment.flow();
        let (Some(payer), Some(payee)) = (flow.from_wallet(), flow.to_wallet()) else {
            anyhow::bail!("ceiling: the loop's payments are transfers");
        };
        self.read_log(payment_id).await?;
        self.read_wallet(payee).await?;
        self.hold(payer, payment_id).await?;
        self.put_entry(payment_id, 2).await?;
        self.put_entry(payment_id, 3).await?;
        self.transact(payment_id, 4, &[payer, payee]).await?;
        let outcome = PaymentEventData {
            payment_id: payment.payment_id().clone(),
            flow: flow.clone(),
            amount: payment.amount(),
            status: PaymentStatus::Completed,
            failure: None,
            requested_at: Some(request.occurred_at),
        };
        self.stream
            .0
            .send(DomainEvent::PaymentCompleted(EventDetail::new(
                format!("{payment_id}/4"),
                Utc::now(),
                outcome,
            )))
            .context("ceiling: the relay stopped")?;
        Ok(())
    }

    async fn read_wallet(&self, wallet: &WalletId) -> anyhow::Result<()> {
        self.dynamodb
            .get_item()
            .table_name(&self.wallets_table)
            .key("wallet_id", AttributeValue::S(wallet.to_string()))
            .send()
            .await
            .context("ceiling: DynamoDB GetItem")?;
        Ok(())
    }

    async fn read_log(&self, payment_id: &str) -> anyhow::Result<()> {
        self.dynamodb
            .query()
            .table_name(&self.payments_table)
            .key_condition_expression("payment_id = :payment_id")
            .expression_attribute_values(":payment_id", AttributeValue::S(payment_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .context("ceiling: DynamoDB Query")?;
        Ok(())
    }

    /// A log entry, written as a step with no wallet change is: one conditional put.
    fn entry(payment_id: &str, version: u32) -> HashMap<String, AttributeValue> {
        [
            ("payment_id", AttributeValue::S(payment_id.to_owned())),
            ("version", AttributeValue::N(version.to_string())),
            ("step", AttributeValue::S("bench_ceiling".to_owned())),
            ("recorded_at", AttributeValue::S(Utc::now().to_rfc3339())),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    async fn put_entry(&self, payment_id: &str, version: u32) -> anyhow::Result<()> {
        self.dynamodb
            .put_item()
            .table_name(&self.payments_table)
            .set_item(Some(Self::entry(payment_id, version)))
            .condition_expression("attribute_not_exists(payment_id)")
            .send()
            .await
            .context("ceiling: DynamoDB PutItem")?;
        Ok(())
    }

    /// A reservation's hold on the payer's wallet: one conditional `UpdateItem` of its item, as
    /// the ledger writes it (before the step's log entry).
    async fn hold(&self, payer: &WalletId, payment_id: &str) -> anyhow::Result<()> {
        self.dynamodb
            .update_item()
            .table_name(&self.wallets_table)
            .key("wallet_id", AttributeValue::S(payer.to_string()))
            .update_expression("SET #hold = :one ADD bench_steps :one")
            .condition_expression("attribute_not_exists(#hold)")
            .expression_attribute_names("#hold", format!("hold#{payment_id}"))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .send()
            .await
            .context("ceiling: DynamoDB UpdateItem")?;
        Ok(())
    }

    /// A saga step with wallet changes: the log entry's conditional put and each wallet's
    /// change, in one transaction, as the ledger sends it (with a ClientRequestToken).
    async fn transact(
        &self,
        payment_id: &str,
        version: u32,
        wallets: &[&WalletId],
    ) -> anyhow::Result<()> {
        let entry = Put::builder()
            .table_name(&self.payments_table)
            .set_item(Some(Self::entry(payment_id, version)))
            .condition_expression("attribute_not_exists(payment_id)")
            .build()?;
        let mut transaction = self
            .dynamodb
            .transact_write_items()
            .client_request_token(uuid::Uuid::now_v7().simple().to_string())
            .transact_items(TransactWriteItem::builder().put(entry).build());
        for wallet in wallets {
            let change = Update::builder()
                .table_name(&self.wallets_table)
                .key("wallet_id", AttributeValue::S(wallet.to_string()))
                .update_expression("ADD bench_steps :one")
                .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
                .build()?;
            transaction =
                transaction.transact_items(TransactWriteItem::builder().update(change).build());
        }
        transaction
            .send()
            .await
            .context("ceiling: DynamoDB TransactWriteItems")?;
        Ok(())
    }

    /// The relay, as one stream shard's mapping runs it: the records there are (up to its
    /// batch size), published [`RELAY_CALL`] to a `PutEvents` under the loop's source, the
    /// requests' deadline checks [`RELAY_CALL`] to a `SendMessageBatch`, every call of the
    /// batch at once (as `paysaga_services::relay` makes them); until the meter stops.
    async fn relay(&self, meter: &Meter) -> anyhow::Result<()> {
        let mut stream = self.stream.1.lock().await;
        while meter.running() {
            let mut batch = Vec::new();
            match tokio::time::timeout(Duration::from_millis(200), stream.recv()).await {
                Ok(Some(event)) => batch.push(event),
                Ok(None) => break,
                Err(_) => continue, // nothing written: look at the meter again
            }
            while batch.len() < self.relay_batch {
                match stream.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            let requests: Vec<&DomainEvent> = batch
                .iter()
                .filter(|event| matches!(event, DomainEvent::PaymentRequested(_)))
                .collect();
            let publishing = batch.chunks(RELAY_CALL).map(|chunk| self.publish(chunk));
            let scheduling = requests
                .chunks(RELAY_CALL)
                .map(|chunk| self.schedule(chunk));
            let (published, scheduled) = futures::future::join(
                futures::future::try_join_all(publishing),
                futures::future::try_join_all(scheduling),
            )
            .await;
            published?;
            scheduled?;
            meter.record(Stage::Relay, batch.len() as u64);
        }
        Ok(())
    }

    /// One `PutEvents` of the relay: `events`, under the loop's source.
    async fn publish(&self, events: &[DomainEvent]) -> anyhow::Result<()> {
        let entries = events.iter().map(|event| {
            PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus_name)
                .source(BENCH_EVENT_SOURCE)
                .detail_type(event.detail_type())
                .detail(event.detail_json())
                .build()
        });
        let output = self
            .eventbridge
            .put_events()
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .context("ceiling: EventBridge PutEvents")?;
        ensure!(
            output.failed_entry_count() == 0,
            "ceiling: PutEvents refused {} entries",
            output.failed_entry_count()
        );
        Ok(())
    }

    /// One `SendMessageBatch` of the relay: the deadline checks of `requests`, delayed to the
    /// deadline as the stack's are.
    async fn schedule(&self, requests: &[&DomainEvent]) -> anyhow::Result<()> {
        let checks: Vec<SendMessageBatchRequestEntry> = requests
            .iter()
            .enumerate()
            .filter_map(|(index, event)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(event.payment_id()?.as_str())
                    .delay_seconds(self.deadline_check_delay)
                    .build()
                    .ok()
            })
            .collect();
        self.sqs
            .send_message_batch()
            .queue_url(&self.queues[&Stage::Reconciler])
            .set_entries(Some(checks))
            .send()
            .await
            .context("ceiling: SQS SendMessageBatch")?;
        Ok(())
    }

    /// One poller of `stage`'s queue: batches of up to `batch` messages, handled at once, then
    /// deleted together, until the meter stops.
    async fn consumer(&self, stage: Stage, batch: i32, meter: &Meter) -> anyhow::Result<()> {
        let queue = &self.queues[&stage];
        while meter.running() {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(batch)
                .wait_time_seconds(1)
                .send()
                .await
                .with_context(|| format!("ceiling: {}: SQS ReceiveMessage", stage.name()))?
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                continue;
            }
            let handled =
                join_all(messages.iter().map(|message| self.handle(stage, message))).await;
            // A message the handler failed on stays, as the function would leave it (an audit
            // append that keeps losing to others, say): not deleted, not counted, said once.
            let mut done = 0;
            for outcome in &handled {
                match outcome {
                    Ok(()) => done += 1,
                    Err(error) if !self.failed_once.swap(true, Ordering::Relaxed) => {
                        eprintln!("ceiling: {}: a message failed: {error:#}", stage.name());
                    }
                    Err(_) => {}
                }
            }
            let entries: Vec<DeleteMessageBatchRequestEntry> = messages
                .iter()
                .zip(&handled)
                .enumerate()
                .filter(|(_, (_, outcome))| outcome.is_ok())
                .filter_map(|(index, (message, _))| {
                    let receipt = message.receipt_handle()?;
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .ok()
                })
                .collect();
            if !entries.is_empty() {
                self.sqs
                    .delete_message_batch()
                    .queue_url(queue)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .with_context(|| {
                        format!("ceiling: {}: SQS DeleteMessageBatch", stage.name())
                    })?;
            }
            meter.record(stage, done);
        }
        Ok(())
    }

    /// What `stage`'s function does with `message`, with its own code.
    async fn handle(&self, stage: Stage, message: &Message) -> anyhow::Result<()> {
        let body = message.body().unwrap_or_default();
        let envelope: Value = serde_json::from_str(body).context("ceiling: an event's envelope")?;
        let detail_type = envelope["detail-type"].as_str().unwrap_or_default();
        let event = DomainEvent::parse(
            PAYMENTS_SOURCE,
            detail_type,
            &envelope["detail"].to_string(),
        )
        .with_context(|| format!("ceiling: a {detail_type} the loop published"))?;
        match stage {
            Stage::ReadModels => {
                paysaga_services::read_models::apply_event(&event, &self.read_models).await?;
            }
            Stage::AuditTrail => {
                self.audit.append(&event, Utc::now()).await?;
            }
            Stage::Notifications => {
                let config = idempotency_config();
                let notifications = Notifications {
                    notifier: &self.inbox,
                    idempotency: &self.idempotency,
                    config: &config,
                };
                let notified = notifications.notify(&event, Utc::now()).await;
                if let Some(failure) = notified.failure {
                    return Err(failure).context("ceiling: notifications");
                }
            }
            Stage::Saga => {
                let DomainEvent::PaymentRequested(request) = &event else {
                    anyhow::bail!("ceiling: the saga's queue holds requests only");
                };
                self.settle(request).await?;
            }
            Stage::Api | Stage::Relay | Stage::Reconciler => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_hands_out_each_payment_once_and_runs_until_every_stage_is_done() {
        let meter = Meter::start(3);
        let tickets: Vec<Option<usize>> = (0..4).map(|_| meter.ticket()).collect();
        assert_eq!(tickets, [Some(0), Some(1), Some(2), None]);
        for stage in Stage::ALL {
            if stage != Stage::AuditTrail {
                meter.record(stage, 3 * stage.per_payment());
            }
        }
        meter.record(Stage::AuditTrail, 5);
        assert!(meter.running(), "the audit trail has one message left");
        assert!(meter.seconds_until_done(Stage::Saga).is_some());
        assert_eq!(meter.seconds_until_done(Stage::AuditTrail), None);
        meter.record(Stage::AuditTrail, 1);
        assert!(!meter.running());
        let done = meter.seconds_until_done(Stage::AuditTrail);
        meter.record(Stage::AuditTrail, 1);
        assert_eq!(
            meter.seconds_until_done(Stage::AuditTrail),
            done,
            "done once"
        );
        assert_eq!(meter.count(Stage::AuditTrail), 7);
    }

    /// The loop against the local stack's emulators (`make local-up`; the functions need not
    /// run): every stage moves, and nothing of it is left behind.
    #[tokio::test]
    #[ignore = "needs the local stack's emulators: make local-up, then source .local/stack.env"]
    async fn every_stage_of_the_loop_moves_and_its_scratch_is_removed() -> anyhow::Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let wiring = Wiring::load(&root.join(".local/wiring.json"))?;
        let run = format!("t{}", std::process::id());
        let ceiling = measure(&wiring, &run, 8, 300, &root.join(".local/run")).await?;
        println!("{ceiling:#?}");
        for stage in &ceiling.stages {
            assert!(stage.payments_per_second > 0.0, "{stage:?}");
        }
        assert!(ceiling.payments_per_second > 0.0);
        let aws = LocalAws::resolve(&wiring, |name| std::env::var(name).ok());
        let dynamodb = aws_sdk_dynamodb::Client::new(
            &sdk_config(
                &aws,
                aws.dynamodb_endpoint_url
                    .as_deref()
                    .unwrap_or(&aws.endpoint_url),
            )
            .await,
        );
        let tables = dynamodb
            .list_tables()
            .send()
            .await?
            .table_names
            .unwrap_or_default();
        let scratch = format!("paysaga-bench-ceiling-{run}-");
        assert!(
            tables.iter().all(|table| !table.starts_with(&scratch)),
            "{tables:?}"
        );
        let sqs = aws_sdk_sqs::Client::new(&sdk_config(&aws, &aws.endpoint_url).await);
        let queues = sqs
            .list_queues()
            .queue_name_prefix(&scratch)
            .send()
            .await?
            .queue_urls
            .unwrap_or_default();
        assert!(queues.is_empty(), "{queues:?}");
        Ok(())
    }

    #[test]
    fn a_payment_makes_the_whole_systems_calls() {
        // api 2 and relay 2; saga 6 and relay 1; read-models 2 × 2; audit-trail 4 × 2;
        // notifications 2 (the reconciler reads at the deadline, after the loop).
        assert_eq!(calls_per_payment(), 4 + 7 + 4 + 8 + 2);
    }
}
