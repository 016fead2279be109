//! The relay's handler against the in-memory ledger: what the ledger's writes recorded, handed
//! on as DynamoDB stream records, reaches the bus once, in order, ten events a call; a failed
//! call names the record the stream hands on again; a record that can never be read is set
//! aside and holds nothing up.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use chrono::Utc;
use event_relay::{EventRelay, SetAside, SetAsideError, StreamTables, UnreadableRecord};
use lambda_toolkit::metrics::{InvocationMetrics, Metrics};
use paysaga_aws::OutboxRecord;
use paysaga_domain::ports::PaymentRequests;
use paysaga_domain::{DomainEvent, RequestChannel};
use paysaga_services::fakes::{InMemoryLedger, RecordingDeadlines, RecordingPublisher};
use paysaga_services::relay::Written;
use paysaga_services::saga::{Delivery, Saga, SagaSettings};
use serde_json::{Value, json};

const PAYMENTS: &str = "arn:aws:dynamodb:us-east-1:1:table/payments/stream/2026-12-06T00:00:00.000";
const OUTBOX: &str = "arn:aws:dynamodb:us-east-1:1:table/outbox/stream/2026-12-06T00:00:00.000";

#[derive(Default)]
struct KeptAside {
    records: Mutex<Vec<UnreadableRecord>>,
    refusing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl SetAside for KeptAside {
    async fn set_aside(&self, record: &UnreadableRecord) -> Result<(), SetAsideError> {
        if self.refusing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SetAsideError("the queue is down (a test's)".to_owned()));
        }
        self.records.lock().unwrap().push(record.clone());
        Ok(())
    }
}

struct World {
    ledger: Arc<InMemoryLedger>,
    bus: Arc<RecordingPublisher>,
    deadlines: Arc<RecordingDeadlines>,
    set_aside: Arc<KeptAside>,
}

impl World {
    fn relay(&self) -> EventRelay {
        EventRelay {
            log: self.ledger.clone(),
            events: self.bus.clone(),
            deadlines: self.deadlines.clone(),
            set_aside: self.set_aside.clone(),
            tables: StreamTables {
                payments: "payments".to_owned(),
                outbox: "outbox".to_owned(),
            },
        }
    }

    async fn handle(&self, records: &[Value]) -> (DynamoDbEventResponse, Metrics) {
        let event: Event =
            serde_json::from_value(json!({ "Records": records })).expect("a stream event");
        let metrics = InvocationMetrics::new(Metrics::default());
        let response = self.relay().handle(event, &metrics).await;
        (response, metrics.into_inner())
    }
}

/// Two wallets, funded by deposits, and three payments driven through the saga: each a
/// request made through the API, then its steps.
async fn world_with_payments() -> World {
    let ledger = InMemoryLedger::euro_wallets(&[("wal_alice", 10_000), ("wal_bob", 0)]).await;
    let processor = paysaga_services::fakes::InMemoryProcessor::default();
    let consent = paysaga_services::fakes::StaticConsent::default();
    let settings = SagaSettings::default();
    for amount in [100, 200, 300] {
        let request = paysaga_domain::PaymentRequest::submitted(
            paysaga_domain::payment::Flow::Transfer {
                from_wallet: paysaga_domain::WalletId::parse("wal_alice").unwrap(),
                to_wallet: paysaga_domain::WalletId::parse("wal_bob").unwrap(),
            },
            paysaga_domain::Money::new(amount, "EUR".parse().unwrap()).unwrap(),
            None,
        )
        .unwrap();
        ledger
            .begin(&request, RequestChannel::Api, None, Utc::now())
            .await
            .unwrap();
        let saga = Saga {
            log: &ledger,
            processor: &processor,
            settings: &settings,
            consent: &consent,
            wallets: &ledger,
        };
        saga.run(&request, &Delivery::default()).await.unwrap();
    }
    World {
        ledger: Arc::new(ledger),
        bus: Arc::default(),
        deadlines: Arc::default(),
        set_aside: Arc::default(),
    }
}

/// The stream records of everything the ledger wrote, as Lambda hands them on, numbered 1, 2, ...
fn stream_records(ledger: &InMemoryLedger) -> Vec<Value> {
    ledger
        .written()
        .into_iter()
        .enumerate()
        .map(|(index, written)| {
            let (arn, image) = match written {
                Written::LogEntry(entry) => (PAYMENTS, image_of(&entry)),
                Written::Outboxed(event) => {
                    (OUTBOX, image_of(&OutboxRecord::of(&event, Utc::now())))
                }
            };
            record(arn, "INSERT", index + 1, image)
        })
        .collect()
}

fn image_of<T: serde::Serialize>(value: &T) -> Value {
    let item: serde_dynamo::Item = serde_dynamo::to_item(value).expect("an item");
    serde_json::to_value(item).expect("DynamoDB JSON")
}

fn record(arn: &str, event_name: &str, sequence: usize, image: Value) -> Value {
    json!({
        "eventID": format!("event-{sequence}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_765_000_000.0,
            "Keys": {},
            "NewImage": image,
            "SequenceNumber": format!("{sequence:021}"),
            "SizeBytes": 100,
            "StreamViewType": "NEW_IMAGE"
        },
        "eventSourceARN": arn
    })
}

fn failed_at(response: &DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .filter_map(|failure| failure.item_identifier.clone())
        .collect()
}

fn count(metrics: &Metrics, name: &str) -> u64 {
    metrics
        .documents("paysaga", Utc::now())
        .iter()
        .filter_map(|document| document.get(name).and_then(Value::as_f64))
        .sum::<f64>() as u64
}

/// The values observed of `name`, by the `event` they were observed for.
fn observed(metrics: &Metrics, name: &str) -> Vec<(String, f64)> {
    let mut values = Vec::new();
    for document in metrics.documents("paysaga", Utc::now()) {
        let Some(observed) = document.get(name).and_then(Value::as_array) else {
            continue;
        };
        let event = document["event"].as_str().unwrap_or_default().to_owned();
        values.extend(
            observed
                .iter()
                .filter_map(Value::as_f64)
                .map(|v| (event.clone(), v)),
        );
    }
    values
}

fn ids(events: &[DomainEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| event.event_id().to_owned())
        .collect()
}

#[tokio::test]
async fn what_the_ledger_wrote_reaches_the_bus_once_in_order_ten_a_call() {
    let world = world_with_payments().await;
    let records = stream_records(&world.ledger);
    let (response, metrics) = world.handle(&records).await;
    assert!(failed_at(&response).is_empty(), "{response:?}");
    let published = world.bus.published();
    assert_eq!(ids(&published), ids(&world.ledger.announced().await));
    let kinds: Vec<&str> = published.iter().map(DomainEvent::detail_type).collect();
    assert_eq!(
        kinds,
        [
            "FundsDeposited",
            "PaymentRequested",
            "PaymentCompleted",
            "PaymentRequested",
            "PaymentCompleted",
            "PaymentRequested",
            "PaymentCompleted"
        ],
        "the deposit, then each payment's request and outcome; no step in between"
    );
    assert_eq!(world.bus.calls(), [7]);
    assert_eq!(count(&metrics, "EventsRelayed"), 7);
    let lags = observed(&metrics, "PublishLag");
    let mut lagged: Vec<&str> = lags.iter().map(|(event, _)| event.as_str()).collect();
    lagged.sort_unstable();
    lagged.dedup_by(|a, b| a == b);
    assert_eq!(lags.len(), 7, "one publish lag an event: {lags:?}");
    assert_eq!(
        lagged,
        ["FundsDeposited", "PaymentCompleted", "PaymentRequested"]
    );
    assert!(lags.iter().all(|(_, lag)| *lag >= 0.0), "{lags:?}");
    assert_eq!(
        world.deadlines.scheduled().len(),
        3,
        "each payment's deadline check"
    );
    assert_eq!(count(&metrics, "DeadlineChecksScheduled"), 3);
}

/// An event is published in the trace its change was made in (the item's `trace_header`), so
/// one trace follows a payment across the relay.
#[tokio::test]
async fn each_event_is_published_in_the_trace_of_its_write() {
    const TRACE: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let world = world_with_payments().await;
    let mut records = stream_records(&world.ledger);
    records[1]["dynamodb"]["NewImage"]["trace_header"] = json!({ "S": TRACE });
    let (response, _) = world.handle(&records).await;
    assert!(failed_at(&response).is_empty(), "{response:?}");
    let traces = world.bus.traces();
    assert_eq!(traces.len(), 7);
    assert_eq!(
        traces[1].as_deref(),
        Some(TRACE),
        "the first payment's request"
    );
    assert!(
        traces
            .iter()
            .enumerate()
            .all(|(index, trace)| index == 1 || trace.is_none())
    );
}

#[tokio::test]
async fn a_failed_call_hands_on_its_first_record_and_what_follows_once() {
    let world = world_with_payments().await;
    // Another ledger's records, three times over (as a stream may hand a record on again):
    // 7 + 3 x 7 = 28 events, three calls.
    let mut records = stream_records(&world.ledger);
    let more = world_with_payments().await;
    for _ in 0..3 {
        let offset = records.len();
        for (index, mut record) in stream_records(&more.ledger).into_iter().enumerate() {
            record["dynamodb"]["SequenceNumber"] = json!(format!("{:021}", offset + index + 1));
            records.push(record);
        }
    }
    // Those payments' outcomes are folded from their logs, which the relay reads here.
    for entry in more.ledger.written() {
        if let Written::LogEntry(entry) = entry {
            world.ledger.append_unchecked(entry);
        }
    }
    world.bus.refuse_from_call(2);
    let (response, metrics) = world.handle(&records).await;
    let retry_from = failed_at(&response);
    assert_eq!(retry_from.len(), 1, "{response:?}");
    assert_eq!(world.bus.published().len(), 10);
    assert_eq!(count(&metrics, "RelayStopped"), 1);

    // The stream hands on the failed record and everything after it; the bus works again.
    let bus = Arc::new(RecordingPublisher::default());
    let again = World {
        bus: bus.clone(),
        ledger: world.ledger.clone(),
        deadlines: world.deadlines.clone(),
        set_aside: world.set_aside.clone(),
    };
    let rest: Vec<Value> = records
        .iter()
        .filter(|record| record["dynamodb"]["SequenceNumber"].as_str() >= Some(&retry_from[0]))
        .cloned()
        .collect();
    let (response, _) = again.handle(&rest).await;
    assert!(failed_at(&response).is_empty());
    let mut all = world.bus.published();
    all.extend(bus.published());
    assert_eq!(
        all.len(),
        28,
        "every record's event once: none lost, none twice"
    );
    let unique: std::collections::HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(unique.len(), 14, "the copies keep their events' ids");
}

#[tokio::test]
async fn an_unreadable_record_is_set_aside_and_holds_nothing_up() {
    let world = world_with_payments().await;
    let mut records = stream_records(&world.ledger);
    let position = records.len();
    records.insert(
        1,
        record(
            PAYMENTS,
            "INSERT",
            position + 1,
            json!({"payment_id": {"S": "pay_x"}}),
        ),
    );
    // A TTL's deletion of an outbox item announces nothing.
    records.push(record(OUTBOX, "REMOVE", position + 2, json!({})));
    let (response, metrics) = world.handle(&records).await;
    assert!(failed_at(&response).is_empty(), "{response:?}");
    assert_eq!(world.bus.published().len(), 7);
    let aside = world.set_aside.records.lock().unwrap().clone();
    assert_eq!(aside.len(), 1);
    assert!(
        aside[0].reason.contains("not a payment log entry"),
        "{}",
        aside[0].reason
    );
    assert_eq!(count(&metrics, "RecordsSetAside"), 1);
}

#[tokio::test]
async fn a_record_that_cannot_be_set_aside_stops_the_batch_there() {
    let world = world_with_payments().await;
    let mut records = stream_records(&world.ledger);
    let bad = record(OUTBOX, "INSERT", 99, json!({"event_id": {"S": "evt"}}));
    records.insert(2, bad);
    world
        .set_aside
        .refusing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (response, _) = world.handle(&records).await;
    assert_eq!(failed_at(&response), [format!("{:021}", 99)]);
    assert_eq!(
        world.bus.published().len(),
        2,
        "what came before it is published; nothing after it"
    );
}
