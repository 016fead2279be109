//! The saga handler fed with the SQS events in `events/lambda/`, against the in-memory adapters.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use chrono::Utc;
use lambda_runtime::{Context, LambdaEvent};
use lambda_toolkit::metrics::{MetricsBuffer, MetricsSink, check_document};
use lambda_toolkit::sqs_batch::MessageFailure;
use payment_saga::{SagaFunction, handle, payment_request};
use paysaga_domain::ports::{Deposit, PaymentLog, WalletStore};
use paysaga_domain::{Money, PaymentId, PaymentStatus, Wallet, WalletId};
use paysaga_processor::CircuitState;
use paysaga_services::fakes::{InMemoryLedger, InMemoryProcessor, RecordingPublisher};
use paysaga_services::payments::payment;
use paysaga_services::saga::SagaSettings;

struct TestSaga {
    saga: SagaFunction,
    metrics: MetricsBuffer,
    ledger: Arc<InMemoryLedger>,
    events: Arc<RecordingPublisher>,
    processor: Arc<InMemoryProcessor>,
}

async fn saga_with_alice_holding(minor_units: u64) -> TestSaga {
    let ledger = Arc::new(InMemoryLedger::default());
    let events = Arc::new(RecordingPublisher::default());
    let eur = "EUR".parse().expect("EUR");
    for id in ["wal_demo_alice", "wal_demo_bob"] {
        let wallet = Wallet::open(WalletId::parse(id).expect("id"), eur, Utc::now());
        ledger.open_wallet(&wallet).await.expect("open");
    }
    let deposit = Deposit {
        deposit_id: paysaga_domain::DepositId::generate(),
        wallet_id: WalletId::parse("wal_demo_alice").expect("id"),
        amount: Money::new(minor_units, eur).expect("amount"),
        idempotency_key: None,
    };
    ledger.deposit(&deposit, Utc::now()).await.expect("deposit");
    let metrics = MetricsBuffer::default();
    let processor = Arc::new(InMemoryProcessor::default());
    let saga = SagaFunction {
        payments: ledger.clone(),
        events: events.clone(),
        processor: processor.clone(),
        settings: SagaSettings::default(),
        max_receive_count: 3,
        dead_letters: None,
        metrics: MetricsSink::new("paysaga", "payment-saga", metrics.clone()),
        circuit: Some(Arc::new(|| CircuitState::Open)),
    };
    TestSaga {
        saga,
        metrics,
        ledger,
        events,
        processor,
    }
}

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).expect("an SqsEvent")
}

async fn deliver(test: &TestSaga, event: SqsEvent) -> Vec<String> {
    let response = handle(&test.saga, LambdaEvent::new(event, Context::default()))
        .await
        .expect("a batch response");
    response
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier)
        .collect()
}

async fn available(test: &TestSaga, id: &str) -> u64 {
    let wallet = test
        .ledger
        .wallet(&WalletId::parse(id).expect("id"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        wallet.reserved().minor_units(),
        0,
        "{id} keeps nothing reserved once the saga ends"
    );
    wallet.available().minor_units()
}

async fn demo_payment_status(test: &TestSaga) -> PaymentStatus {
    let id = PaymentId::parse("pay_demo_cli_0001").expect("id");
    payment(test.ledger.as_ref() as &dyn PaymentLog, &id)
        .await
        .expect("read")
        .expect("exists")
        .status
}

#[tokio::test]
async fn a_payment_request_completes_and_moves_the_money_exactly() {
    let test = saga_with_alice_holding(10_000).await;
    assert!(
        deliver(&test, fixture("sqs-payment-requested.json"))
            .await
            .is_empty()
    );
    assert_eq!(demo_payment_status(&test).await, PaymentStatus::Completed);
    assert_eq!(
        (
            available(&test, "wal_demo_alice").await,
            available(&test, "wal_demo_bob").await
        ),
        (8_750, 1_250)
    );
    let announced: Vec<(&str, String)> = test
        .events
        .published()
        .iter()
        .map(|event| (event.detail_type(), event.event_id().to_owned()))
        .collect();
    assert_eq!(
        announced,
        [("PaymentCompleted", "pay_demo_cli_0001/4".to_owned())],
        "the outcome only"
    );
}

#[tokio::test]
async fn a_duplicate_delivery_moves_no_more_money() {
    let test = saga_with_alice_holding(10_000).await;
    assert!(
        deliver(&test, fixture("sqs-payment-requested.json"))
            .await
            .is_empty()
    );
    assert!(
        deliver(&test, fixture("sqs-payment-requested.json"))
            .await
            .is_empty()
    );
    let mut twice = fixture("sqs-payment-requested.json");
    twice.records.push(twice.records[0].clone());
    assert!(deliver(&test, twice).await.is_empty());
    assert_eq!(
        (
            available(&test, "wal_demo_alice").await,
            available(&test, "wal_demo_bob").await
        ),
        (8_750, 1_250)
    );
    let ids: std::collections::HashSet<String> = test
        .events
        .published()
        .iter()
        .map(|event| event.event_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "re-announcements carry the same event id");
}

#[tokio::test]
async fn an_unparseable_message_fails_alone() {
    let test = saga_with_alice_holding(10_000).await;
    let failed = deliver(&test, fixture("sqs-batch-with-unparseable-message.json")).await;
    assert_eq!(failed, ["2e1424d4-f796-459a-8184-9c92662be6da"]);
    assert_eq!(demo_payment_status(&test).await, PaymentStatus::Completed);
}

#[test]
fn a_body_that_is_not_a_payment_request_fails_for_good_saying_why() {
    let Err(MessageFailure::Permanent(reason)) = payment_request("{not json") else {
        panic!("a body that is not JSON is a permanent failure");
    };
    assert!(
        reason.starts_with("not a PaymentRequested event: not an EventBridge event"),
        "{reason}"
    );
}

#[tokio::test]
async fn insufficient_funds_fail_the_payment_with_a_reason_and_move_nothing() {
    let test = saga_with_alice_holding(1_000).await;
    assert!(
        deliver(&test, fixture("sqs-payment-requested.json"))
            .await
            .is_empty()
    );
    assert_eq!(demo_payment_status(&test).await, PaymentStatus::Failed);
    assert_eq!(
        (
            available(&test, "wal_demo_alice").await,
            available(&test, "wal_demo_bob").await
        ),
        (1_000, 0)
    );
    let published = test.events.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].detail_type(), "PaymentFailed");
    assert!(
        published[0]
            .detail_json()
            .contains("\"code\":\"insufficient_funds\"")
    );
}

/// The value of `name` in the documents the invocations wrote, checking every one is valid EMF.
fn metric(test: &TestSaga, name: &str) -> Vec<(String, f64)> {
    let documents = test
        .metrics
        .documents()
        .expect("every metrics line is JSON");
    assert!(!documents.is_empty(), "each invocation flushes its metrics");
    documents
        .iter()
        .inspect(|document| {
            if let Err(error) = check_document(document) {
                panic!("{error}: {document}");
            }
        })
        .filter_map(|document| {
            let value = document[name].as_f64()?;
            let queue = document["queue"].as_str().unwrap_or("-").to_owned();
            Some((queue, value))
        })
        .collect()
}

#[tokio::test]
async fn a_batch_writes_valid_emf_metrics_per_queue_and_outcome() {
    let test = saga_with_alice_holding(10_000).await;
    deliver(&test, fixture("sqs-batch-with-unparseable-message.json")).await;
    assert_eq!(
        metric(&test, "MessagesReceived"),
        [("paysaga-PaymentsQueue".to_owned(), 2.0)]
    );
    assert_eq!(
        metric(&test, "MessagesFailed"),
        [("paysaga-PaymentsQueue".to_owned(), 1.0)]
    );
    assert_eq!(metric(&test, "PaymentsCompleted"), [("-".to_owned(), 1.0)]);
    assert_eq!(metric(&test, "PaymentsFailed"), []);
    assert_eq!(
        metric(&test, "CircuitBreakerState"),
        [("-".to_owned(), 2.0)]
    );
    let documents = test.metrics.documents().expect("JSON");
    assert!(
        documents
            .iter()
            .all(|document| document["service"] == "payment-saga"
                && document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "paysaga"),
        "{documents:?}"
    );
}

#[tokio::test]
async fn a_failed_payment_is_counted() {
    let test = saga_with_alice_holding(1_000).await;
    deliver(&test, fixture("sqs-payment-requested.json")).await;
    assert_eq!(metric(&test, "PaymentsFailed"), [("-".to_owned(), 1.0)]);
    assert_eq!(metric(&test, "PaymentsCompleted"), []);
    // Refused before anything was reserved: nothing to compensate.
    assert_eq!(metric(&test, "PaymentsCompensated"), []);
}

#[tokio::test]
async fn a_compensated_payment_is_counted_as_failed_and_compensated() {
    let test = saga_with_alice_holding(10_000).await;
    test.processor.set_declining(true);
    deliver(&test, fixture("sqs-payment-requested.json")).await;
    assert_eq!(demo_payment_status(&test).await, PaymentStatus::Failed);
    assert_eq!(metric(&test, "PaymentsFailed"), [("-".to_owned(), 1.0)]);
    assert_eq!(
        metric(&test, "PaymentsCompensated"),
        [("-".to_owned(), 1.0)]
    );
    assert_eq!(available(&test, "wal_demo_alice").await, 10_000);
}
