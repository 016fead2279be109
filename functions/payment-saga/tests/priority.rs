//! Urgent payments in the saga handler: the `sqs-urgent-payment-requested.json` fixture (as the
//! urgent payments queue delivers it), against the in-memory adapters; and a message given up
//! on goes to the dead-letter queue of the queue it came from.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use lambda_runtime::{Context, LambdaEvent};
use lambda_toolkit::metrics::{MetricsBuffer, MetricsSink};
use lambda_toolkit::sqs_batch::{DeadLetterError, DeadLetterQueue, FailureRecord};
use lambda_toolkit::sqs_dead_letters::DeadLettersBySource;
use payment_saga::{SagaFunction, handle};
use paysaga_domain::ports::{Deposit, PaymentLog, WalletStore};
use paysaga_domain::{DepositId, Money, PaymentId, PaymentStatus, Priority, Wallet, WalletId};
use paysaga_services::fakes::{InMemoryLedger, InMemoryProcessor, RecordingPublisher};
use paysaga_services::payments::payment;
use paysaga_services::saga::SagaSettings;

const ORDINARY_QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:paysaga-PaymentsQueue";
const URGENT_QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:paysaga-urgent-payments";

/// A dead-letter queue that keeps what it is sent.
#[derive(Default)]
struct KeptDeadLetters(Mutex<Vec<(String, FailureRecord)>>);

#[async_trait]
impl DeadLetterQueue for KeptDeadLetters {
    async fn send(
        &self,
        message: &SqsMessage,
        record: &FailureRecord,
    ) -> Result<(), DeadLetterError> {
        let id = message.message_id.clone().unwrap_or_default();
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((id, record.clone()));
        Ok(())
    }
}

impl KeptDeadLetters {
    fn kept(&self) -> Vec<(String, FailureRecord)> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

struct TestSaga {
    saga: SagaFunction,
    ledger: Arc<InMemoryLedger>,
    ordinary_dlq: Arc<KeptDeadLetters>,
    urgent_dlq: Arc<KeptDeadLetters>,
}

async fn saga_with_alice_holding(minor_units: u64) -> TestSaga {
    let ledger = Arc::new(InMemoryLedger::default());
    let eur = "EUR".parse().expect("EUR");
    for id in ["wal_demo_alice", "wal_demo_bob"] {
        let wallet = Wallet::open(WalletId::parse(id).expect("id"), eur, Utc::now());
        ledger.open_wallet(&wallet).await.expect("open");
    }
    let deposit = Deposit {
        deposit_id: DepositId::generate(),
        wallet_id: WalletId::parse("wal_demo_alice").expect("id"),
        amount: Money::new(minor_units, eur).expect("amount"),
        idempotency_key: None,
    };
    ledger.deposit(&deposit, Utc::now()).await.expect("deposit");
    let (ordinary_dlq, urgent_dlq) = (
        Arc::new(KeptDeadLetters::default()),
        Arc::new(KeptDeadLetters::default()),
    );
    let dead_letters = DeadLettersBySource::new([
        (
            ORDINARY_QUEUE.to_owned(),
            ordinary_dlq.clone() as Arc<dyn DeadLetterQueue>,
        ),
        (
            URGENT_QUEUE.to_owned(),
            urgent_dlq.clone() as Arc<dyn DeadLetterQueue>,
        ),
    ]);
    let saga = SagaFunction {
        payments: ledger.clone(),
        events: Arc::new(RecordingPublisher::default()),
        processor: Arc::new(InMemoryProcessor::default()),
        settings: SagaSettings::default(),
        max_receive_count: 3,
        dead_letters: Some(Arc::new(dead_letters)),
        metrics: MetricsSink::new("paysaga", "payment-saga", MetricsBuffer::default()),
        circuit: None,
    };
    TestSaga {
        saga,
        ledger,
        ordinary_dlq,
        urgent_dlq,
    }
}

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).expect("an SqsEvent")
}

/// The fixture's one message on its `receive_count`th delivery, its priority replaced.
fn delivery(name: &str, receive_count: u32, priority: &str) -> SqsEvent {
    let mut event = fixture(name);
    let message = &mut event.records[0];
    let mut body: serde_json::Value =
        serde_json::from_str(message.body.as_deref().expect("a body")).expect("JSON");
    body["detail"]["data"]["priority"] = priority.into();
    message.body = Some(body.to_string());
    message
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    event
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

#[tokio::test]
async fn an_urgent_payment_completes_and_stays_urgent_in_its_log() {
    let test = saga_with_alice_holding(10_000).await;
    let failed = deliver(&test, fixture("sqs-urgent-payment-requested.json")).await;
    assert!(failed.is_empty(), "{failed:?}");
    let id = PaymentId::parse("pay_demo_urgent_0001").expect("id");
    let done = payment(test.ledger.as_ref() as &dyn PaymentLog, &id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (done.status, done.request.priority()),
        (PaymentStatus::Completed, Priority::Urgent)
    );
    let bob = test
        .ledger
        .wallet(&WalletId::parse("wal_demo_bob").expect("id"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(bob.available().minor_units(), 500);
}

#[tokio::test]
async fn a_message_given_up_on_goes_to_its_own_queues_dead_letter_queue() {
    let test = saga_with_alice_holding(10_000).await;
    // A priority the contract does not know: the message can never be handled.
    let urgent = delivery("sqs-urgent-payment-requested.json", 3, "asap");
    let ordinary = delivery("sqs-payment-requested.json", 3, "asap");
    let (urgent_id, ordinary_id) = (
        urgent.records[0].message_id.clone().expect("an id"),
        ordinary.records[0].message_id.clone().expect("an id"),
    );

    assert!(deliver(&test, urgent).await.is_empty(), "handed to its DLQ");
    assert!(
        deliver(&test, ordinary).await.is_empty(),
        "handed to its DLQ"
    );

    let urgent_kept = test.urgent_dlq.kept();
    assert_eq!(urgent_kept.len(), 1, "{urgent_kept:?}");
    let (id, record) = &urgent_kept[0];
    assert_eq!(id, &urgent_id);
    assert_eq!(
        (record.kind.as_str(), record.source_queue.as_deref()),
        ("permanent", Some(URGENT_QUEUE))
    );
    assert!(record.reason.contains("priority"), "{}", record.reason);

    let ordinary_kept = test.ordinary_dlq.kept();
    assert_eq!(ordinary_kept.len(), 1, "{ordinary_kept:?}");
    assert_eq!(ordinary_kept[0].0, ordinary_id);
    assert_eq!(
        ordinary_kept[0].1.source_queue.as_deref(),
        Some(ORDINARY_QUEUE)
    );
}

#[tokio::test]
async fn before_its_last_delivery_a_failing_message_goes_back_to_its_queue() {
    let test = saga_with_alice_holding(10_000).await;
    let event = delivery("sqs-urgent-payment-requested.json", 1, "asap");
    let id = event.records[0].message_id.clone().expect("an id");
    assert_eq!(deliver(&test, event).await, [id]);
    assert!(test.urgent_dlq.kept().is_empty() && test.ordinary_dlq.kept().is_empty());
}
