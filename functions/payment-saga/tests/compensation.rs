//! Compensation never gives up: the saga handler with its HTTP processor client, against the
//! local fake processor over HTTP on 127.0.0.1 and the in-memory ledger. A processor that
//! answers 403 to refunds (a key that lost the right to) leaves the payment COMPENSATING, asked
//! again with a growing delay, sent again as a fresh message on its last delivery and never
//! parked; once it answers, the fresh message ends the payment FAILED with its funds released.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use lambda_toolkit::metrics::{MetricsBuffer, MetricsSink};
use lambda_toolkit::sqs_consumer::SqsConsumer;
use lambda_toolkit::testing::{KeptDeadLetters, KeptDelays, failed_ids, set_receive_count};
use payment_processor::FakeProcessor;
use payment_saga::PaymentSaga;
use paysaga_domain::money::MAX_MINOR_UNITS;
use paysaga_domain::ports::{PaymentLog, WalletStore};
use paysaga_domain::test_support::lambda_event;
use paysaga_domain::{Payment, PaymentId, PaymentStatus, WalletId};
use paysaga_processor::{HttpPaymentProcessor, RetryPolicy};
use paysaga_services::fakes::{InMemoryLedger, StaticConsent};
use paysaga_services::payments::payment;
use paysaga_services::saga::{REFUSED_REVERSAL_BACKOFF, SagaSettings};
use serde_json::Value;

const MAX_RECEIVE_COUNT: u32 = 3;

struct TestSaga {
    saga: SqsConsumer<PaymentSaga>,
    ledger: Arc<InMemoryLedger>,
    metrics: MetricsBuffer,
    dead_letters: Arc<KeptDeadLetters>,
    delays: Arc<KeptDelays>,
    processor: FakeProcessor,
}

/// The saga, Alice holding 10,000 and Bob so close to the balance limit that a payment of
/// 12.50 cannot settle: it is charged, then compensated.
async fn saga_whose_payee_cannot_be_credited() -> TestSaga {
    let ledger = Arc::new(
        InMemoryLedger::euro_wallets(&[
            ("wal_demo_alice", 10_000),
            ("wal_demo_bob", MAX_MINOR_UNITS - 1_000),
        ])
        .await,
    );
    let processor = FakeProcessor::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port on loopback");
    let address = listener.local_addr().expect("its address");
    let app = payment_processor::router(processor.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = url::Url::parse(&format!("http://{address}/")).expect("a URL");
    let retry = RetryPolicy {
        attempts: 2,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    };
    let client = HttpPaymentProcessor::new(&url, Duration::from_secs(2), retry).expect("a client");
    let metrics = MetricsBuffer::default();
    let dead_letters = Arc::new(KeptDeadLetters::default());
    let delays = Arc::new(KeptDelays::default());
    let handler = PaymentSaga {
        payments: ledger.clone(),
        wallets: ledger.clone(),
        consent: Arc::new(StaticConsent::demo()),
        processor: Arc::new(client),
        settings: SagaSettings::default(),
        max_receive_count: MAX_RECEIVE_COUNT,
        circuit: None,
    };
    let saga = SqsConsumer::new(
        handler,
        MetricsSink::new("paysaga", "payment-saga", metrics.clone()),
    )
    .giving_up_after(MAX_RECEIVE_COUNT, dead_letters.clone())
    .delaying_retries_with(delays.clone());
    TestSaga {
        saga,
        ledger,
        metrics,
        dead_letters,
        delays,
        processor,
    }
}

/// The sample request, on its `receive_count`th delivery.
fn delivery(receive_count: u32) -> SqsEvent {
    let mut event: SqsEvent = lambda_event("sqs-payment-requested.json");
    set_receive_count(&mut event.records[0], receive_count);
    event
}

async fn deliver(test: &TestSaga, receive_count: u32) -> Vec<String> {
    let response = test.saga.handle(delivery(receive_count)).await;
    failed_ids(&response.expect("a batch response"))
}

async fn the_payment(test: &TestSaga) -> Payment {
    let id = PaymentId::parse("pay_demo_cli_0001").expect("id");
    payment(test.ledger.as_ref() as &dyn PaymentLog, &id)
        .await
        .expect("read")
        .expect("exists")
}

/// Alice's (available, reserved).
async fn payer(test: &TestSaga) -> (u64, u64) {
    let id = WalletId::parse("wal_demo_alice").expect("id");
    let alice = test.ledger.wallet(&id).await.expect("read").expect("open");
    (
        alice.available().minor_units(),
        alice.reserved().minor_units(),
    )
}

/// The sum of `name` over the documents the invocations wrote.
fn metric(test: &TestSaga, name: &str) -> f64 {
    let documents = test
        .metrics
        .documents()
        .expect("every metrics line is JSON");
    documents
        .iter()
        .filter_map(|document| document.get(name).and_then(Value::as_f64))
        .sum()
}

#[tokio::test]
async fn a_processor_refusing_refunds_leaves_the_payment_compensating_asked_again_never_parked() {
    let test = saga_whose_payee_cannot_be_credited().await;
    test.processor.set_refusing_reversals(true);

    // First delivery: charged, the settlement refused, the refund refused.
    assert_eq!(
        deliver(&test, 1).await,
        ["059f36b4-87a3-44ab-83d2-661975830a7d"]
    );
    let stuck = the_payment(&test).await;
    assert_eq!(stuck.status, PaymentStatus::Compensating);
    assert!(!stuck.charge_refunded);
    assert_eq!(
        payer(&test).await,
        (8_750, 1_250),
        "the payer's funds stay reserved"
    );
    assert_eq!(metric(&test, "CompensationsRefused"), 1.0);
    let (shortest, _) = REFUSED_REVERSAL_BACKOFF;
    assert_eq!(
        test.delays.delays(),
        [("059f36b4-87a3-44ab-83d2-661975830a7d".to_owned(), shortest)],
        "its next delivery is delayed"
    );

    // Its last delivery: still refused, sent again as a fresh message rather than to the DLQ.
    let last = delivery(MAX_RECEIVE_COUNT);
    let response = test.saga.handle(last.clone()).await;
    assert!(failed_ids(&response.expect("a batch response")).is_empty());
    assert_eq!(
        test.dead_letters.ids(),
        Vec::<String>::new(),
        "never parked"
    );
    assert_eq!(the_payment(&test).await.status, PaymentStatus::Compensating);
    let sent_again = test.delays.sent_again();
    assert_eq!(sent_again.len(), 1, "one fresh copy");
    let (fresh, after) = &sent_again[0];
    assert_eq!(fresh.body, last.records[0].body, "the same request");
    assert_eq!(
        fresh.event_source_arn, last.records[0].event_source_arn,
        "to the queue it came from"
    );
    assert!(*after >= shortest, "after the refusal's wait: {after:?}");
    assert_eq!(metric(&test, "MessagesSentAgain"), 1.0);
    let announced = test.ledger.payment_events().await;
    assert!(announced.is_empty(), "no outcome yet: {announced:?}");
    assert_eq!(test.processor.counters().refunded, 0);

    // The processor answers again: the fresh message refunds, releases and ends it FAILED.
    test.processor.set_refusing_reversals(false);
    let mut fresh_delivery = SqsEvent::default();
    fresh_delivery.records = vec![fresh.clone()];
    let response = test.saga.handle(fresh_delivery).await;
    assert!(failed_ids(&response.expect("a batch response")).is_empty());
    let failed = the_payment(&test).await;
    assert_eq!(failed.status, PaymentStatus::Failed);
    assert!(failed.charge_refunded && failed.reservation_released);
    assert_eq!(
        payer(&test).await,
        (10_000, 0),
        "its funds released, exactly"
    );
    let counters = test.processor.counters();
    assert_eq!((counters.captured, counters.refunded), (1, 1));
    assert_eq!(metric(&test, "PaymentsCompensated"), 1.0);
    assert_eq!(metric(&test, "CompensationsRefused"), 2.0);
    let announced: Vec<&str> = test
        .ledger
        .payment_events()
        .await
        .iter()
        .map(|event| event.detail_type())
        .collect();
    assert_eq!(announced, ["PaymentFailed"], "one outcome");
}
