//! The saga handler fed with the SQS events in `events/lambda/`, against the in-memory adapters.

use serde_json::{Value, json};
use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_toolkit::metrics::{MetricsBuffer, MetricsSink, check_document};
use lambda_toolkit::sqs_consumer::SqsConsumer;
use lambda_toolkit::testing::failed_ids;
use payment_saga::PaymentSaga;
use paysaga_domain::ports::{PaymentLog, WalletStore};
use paysaga_domain::test_support::lambda_event;
use paysaga_domain::{PaymentId, PaymentStatus, WalletId};
use paysaga_processor::CircuitState;
use paysaga_services::fakes::{InMemoryLedger, InMemoryProcessor, StaticConsent};
use paysaga_services::payments::payment;
use paysaga_services::saga::{RequestedPayment, SagaSettings};

struct TestSaga {
    saga: SqsConsumer<PaymentSaga>,
    metrics: MetricsBuffer,
    ledger: Arc<InMemoryLedger>,
    processor: Arc<InMemoryProcessor>,
}

async fn saga_with_alice_holding(minor_units: u64) -> TestSaga {
    let ledger = Arc::new(
        InMemoryLedger::euro_wallets(&[("wal_demo_alice", minor_units), ("wal_demo_bob", 0)]).await,
    );
    let metrics = MetricsBuffer::default();
    let processor = Arc::new(InMemoryProcessor::default());
    let handler = PaymentSaga {
        payments: ledger.clone(),
        wallets: ledger.clone(),
        consent: Arc::new(StaticConsent::demo()),
        processor: processor.clone(),
        settings: SagaSettings::default(),
        max_receive_count: 3,
        circuit: Some(Arc::new(|| CircuitState::Open)),
    };
    let saga = SqsConsumer::new(
        handler,
        MetricsSink::new("paysaga", "payment-saga", metrics.clone()),
    );
    TestSaga {
        saga,
        metrics,
        ledger,
        processor,
    }
}

fn fixture(name: &str) -> SqsEvent {
    lambda_event(name)
}

async fn deliver(test: &TestSaga, event: SqsEvent) -> Vec<String> {
    failed_ids(&test.saga.handle(event).await.expect("a batch response"))
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
        .ledger
        .payment_events()
        .await
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
        .ledger
        .payment_events()
        .await
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

/// The sample event without its payer's consent, or with a proof that does not hold: the
/// message fails for good (to the DLQ, with the reason), nothing is recorded, nothing moves.
#[tokio::test]
async fn a_payment_on_the_bus_without_its_payers_consent_moves_nothing() {
    for consent in [None, Some(json!({"bearer_token": "forged"}))] {
        let test = saga_with_alice_holding(10_000).await;
        let mut event = fixture("sqs-payment-requested.json");
        let record = &mut event.records[0];
        let mut body: Value =
            serde_json::from_str(record.body.as_deref().expect("a body")).expect("JSON");
        let detail = body["detail"].as_object_mut().expect("a detail");
        match &consent {
            None => {
                detail.remove("consent");
            }
            Some(proof) => {
                detail.insert("consent".to_owned(), proof.clone());
            }
        }
        record.body = Some(body.to_string());
        let failed = deliver(&test, event).await;
        assert_eq!(failed.len(), 1, "{consent:?}: the message failed");
        let payment_id = paysaga_domain::PaymentId::parse("pay_demo_cli_0001").expect("an id");
        assert_eq!(
            payment(&*test.ledger, &payment_id).await.expect("read"),
            None
        );
        assert!(test.ledger.payment_events().await.is_empty());
        assert_eq!(test.processor.charge_calls(), 0);
    }
}

#[test]
fn a_body_that_is_not_a_payment_request_fails_for_good_saying_why() {
    let reason = RequestedPayment::from_event("{not json")
        .expect_err("a body that is not JSON is no payment request")
        .to_string();
    assert!(
        reason.starts_with("not a requested payment: not an EventBridge event"),
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
    let published = test.ledger.payment_events().await;
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
