//! Urgent payments in the saga handler: the `sqs-urgent-payment-requested.json` fixture (as the
//! urgent payments queue delivers it), against the in-memory adapters; and a message given up
//! on goes to the dead-letter queue of the queue it came from.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_toolkit::metrics::MetricsSink;
use lambda_toolkit::sqs_batch::DeadLetterQueue;
use lambda_toolkit::sqs_consumer::SqsConsumer;
use lambda_toolkit::sqs_dead_letters::DeadLettersBySource;
use lambda_toolkit::testing::{KeptDeadLetters, failed_ids, set_receive_count};
use payment_saga::PaymentSaga;
use paysaga_domain::ports::{PaymentLog, WalletStore};
use paysaga_domain::test_support::lambda_event;
use paysaga_domain::{PaymentId, PaymentStatus, Priority, WalletId};
use paysaga_services::fakes::{InMemoryLedger, InMemoryProcessor, StaticConsent};
use paysaga_services::payments::payment;
use paysaga_services::saga::SagaSettings;

const ORDINARY_QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:paysaga-PaymentsQueue";
const URGENT_QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:paysaga-urgent-payments";

struct TestSaga {
    saga: SqsConsumer<PaymentSaga>,
    ledger: Arc<InMemoryLedger>,
    ordinary_dlq: Arc<KeptDeadLetters>,
    urgent_dlq: Arc<KeptDeadLetters>,
}

async fn saga_with_alice_holding(minor_units: u64) -> TestSaga {
    let ledger = Arc::new(
        InMemoryLedger::euro_wallets(&[("wal_demo_alice", minor_units), ("wal_demo_bob", 0)]).await,
    );
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
    let handler = PaymentSaga {
        payments: ledger.clone(),
        wallets: ledger.clone(),
        consent: Arc::new(StaticConsent::demo()),
        processor: Arc::new(InMemoryProcessor::default()),
        settings: SagaSettings::default(),
        max_receive_count: 3,
        circuit: None,
    };
    let metrics = MetricsSink::new("paysaga", "payment-saga", Vec::new());
    let saga = SqsConsumer::new(handler, metrics).giving_up_after(3, Arc::new(dead_letters));
    TestSaga {
        saga,
        ledger,
        ordinary_dlq,
        urgent_dlq,
    }
}

/// The fixture's one message on its `receive_count`th delivery, its priority replaced.
fn delivery(name: &str, receive_count: u32, priority: &str) -> SqsEvent {
    let mut event: SqsEvent = lambda_event(name);
    let message = &mut event.records[0];
    let mut body: serde_json::Value =
        serde_json::from_str(message.body.as_deref().expect("a body")).expect("JSON");
    body["detail"]["data"]["priority"] = priority.into();
    message.body = Some(body.to_string());
    set_receive_count(message, receive_count);
    event
}

async fn deliver(test: &TestSaga, event: SqsEvent) -> Vec<String> {
    failed_ids(&test.saga.handle(event).await.expect("a batch response"))
}

#[tokio::test]
async fn an_urgent_payment_completes_and_stays_urgent_in_its_log() {
    let test = saga_with_alice_holding(10_000).await;
    let failed = deliver(&test, lambda_event("sqs-urgent-payment-requested.json")).await;
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

    let urgent_kept = test.urgent_dlq.records();
    assert_eq!(urgent_kept.len(), 1, "{urgent_kept:?}");
    let (id, record) = &urgent_kept[0];
    assert_eq!(id, &urgent_id);
    assert_eq!(
        (record.kind.as_str(), record.source_queue.as_deref()),
        ("permanent", Some(URGENT_QUEUE))
    );
    assert!(record.reason.contains("priority"), "{}", record.reason);

    let ordinary_kept = test.ordinary_dlq.records();
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
    assert!(test.urgent_dlq.records().is_empty() && test.ordinary_dlq.records().is_empty());
}
