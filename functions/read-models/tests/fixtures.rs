//! The read-models handler fed with the SQS events in `events/lambda/`, against the in-memory
//! read models.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use lambda_runtime::{Context, LambdaEvent};
use lambda_toolkit::metrics::{MetricsBuffer, MetricsSink, check_document};
use lambda_toolkit::sqs_batch::{DeadLetterError, DeadLetterQueue, FailureRecord};
use paysaga_domain::ports::{ReadModelReader, ReadModelWriter, StoreError};
use paysaga_domain::{PaymentStatus, WalletId};
use paysaga_services::read_models::{
    Applied, InMemoryReadModels, PageRequest, ReadModelChange, TransactionKind,
};
use read_models::{ReadModelsFunction, handle};

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).expect("an SqsEvent")
}

/// A dead-letter queue that keeps what it is sent.
#[derive(Default)]
struct KeptDeadLetters(Mutex<Vec<FailureRecord>>);

#[async_trait]
impl DeadLetterQueue for KeptDeadLetters {
    async fn send(&self, _: &SqsMessage, record: &FailureRecord) -> Result<(), DeadLetterError> {
        self.0.lock().expect("not poisoned").push(record.clone());
        Ok(())
    }
}

/// A table that is not reachable.
struct Unreachable;

#[async_trait]
impl ReadModelWriter for Unreachable {
    async fn apply(&self, _: &ReadModelChange) -> Result<Applied, StoreError> {
        Err(StoreError::Transient("throttled".into()))
    }
}

struct TestFunction {
    function: ReadModelsFunction,
    models: Arc<InMemoryReadModels>,
    dead_letters: Arc<KeptDeadLetters>,
    metrics: MetricsBuffer,
}

fn test_function() -> TestFunction {
    let models = Arc::new(InMemoryReadModels::default());
    let dead_letters = Arc::new(KeptDeadLetters::default());
    let metrics = MetricsBuffer::default();
    let function = ReadModelsFunction {
        read_models: models.clone(),
        max_receive_count: 3,
        dead_letters: Some(dead_letters.clone()),
        metrics: MetricsSink::new("paysaga", "read-models", metrics.clone()),
    };
    TestFunction {
        function,
        models,
        dead_letters,
        metrics,
    }
}

async fn deliver(function: &ReadModelsFunction, event: SqsEvent) -> Vec<String> {
    handle(function, LambdaEvent::new(event, Context::default()))
        .await
        .expect("a batch response")
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier)
        .collect()
}

fn alice() -> WalletId {
    WalletId::parse("wal_demo_alice").expect("id")
}

#[tokio::test]
async fn events_become_a_wallets_history_and_payments_once_however_often_delivered() {
    let test = test_function();
    assert!(
        deliver(&test.function, fixture("sqs-read-models-events.json"))
            .await
            .is_empty()
    );
    assert!(
        deliver(&test.function, fixture("sqs-read-models-events.json"))
            .await
            .is_empty()
    );

    let history = test
        .models
        .transactions(&alice(), &PageRequest::default())
        .await
        .expect("history");
    let lines: Vec<_> = history
        .items
        .iter()
        .map(|item| {
            (
                item.entry.kind,
                item.entry.amount.minor_units,
                item.entry.status,
                item.revision,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            // Newest first; the payment was PENDING, then COMPLETED: two changes.
            (
                TransactionKind::PaymentSent,
                -1_250,
                PaymentStatus::Completed,
                2
            ),
            (
                TransactionKind::Deposit,
                10_000,
                PaymentStatus::Completed,
                1
            ),
        ]
    );
    let bob = WalletId::parse("wal_demo_bob").expect("id");
    let payments = test
        .models
        .payments(&bob, &PageRequest::default())
        .await
        .expect("payments");
    assert_eq!(payments.items.len(), 1);
    assert_eq!(
        payments.items[0].entry.payment_id.as_str(),
        "pay_demo_rm_0001"
    );

    let documents = test.metrics.documents().expect("JSON lines");
    for document in &documents {
        check_document(document).expect("a valid EMF document");
    }
    let changed: f64 = documents
        .iter()
        .filter_map(|document| document["ReadModelItemsChanged"].as_f64())
        .sum();
    let unchanged: f64 = documents
        .iter()
        .filter_map(|document| document["ReadModelItemsUnchanged"].as_f64())
        .sum();
    // 1 + 4 + 4 changes the first time (the outcome moves the request's 4 items on); the
    // second delivery's 9 writes change nothing.
    assert_eq!((changed, unchanged), (9.0, 9.0));
}

#[tokio::test]
async fn an_unknown_version_fails_alone_and_goes_to_the_dlq_with_its_reason_on_its_last_delivery() {
    let test = test_function();
    let mut event = fixture("sqs-read-models-events.json");
    let newer = &mut event.records[0];
    newer.body = newer
        .body
        .as_ref()
        .map(|body| body.replace(r#""version": 1"#, r#""version": 2"#));
    let first = deliver(&test.function, event.clone()).await;
    assert_eq!(first, [event.records[0].message_id.clone().expect("id")]);
    assert!(test.dead_letters.0.lock().expect("not poisoned").is_empty());

    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "3".into());
    let last = deliver(&test.function, event).await;
    assert!(last.is_empty(), "sent to the DLQ, not back to the queue");
    let records = test.dead_letters.0.lock().expect("not poisoned").clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, "permanent");
    assert!(
        records[0].reason.contains("version 2"),
        "{}",
        records[0].reason
    );

    // Its batch-mates were projected.
    let bob = WalletId::parse("wal_demo_bob").expect("id");
    let payments = test
        .models
        .payments(&bob, &PageRequest::default())
        .await
        .expect("payments");
    assert_eq!(payments.items.len(), 1);
}

#[tokio::test]
async fn a_store_outage_sends_the_messages_back_to_be_retried() {
    let mut test = test_function();
    test.function.read_models = Arc::new(Unreachable);
    let event = fixture("sqs-read-models-events.json");
    let failed = deliver(&test.function, event.clone()).await;
    assert_eq!(failed.len(), event.records.len());
    assert!(test.dead_letters.0.lock().expect("not poisoned").is_empty());
}
