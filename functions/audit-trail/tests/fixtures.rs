//! The audit-trail handler fed with the SQS events in `events/lambda/`, against the in-memory
//! event store.

use std::sync::Arc;

use audit_trail::AuditTrail;
use aws_lambda_events::sqs::SqsEvent;
use lambda_toolkit::testing::{TestConsumer, set_receive_count};
use paysaga_aws::EventMessages;
use paysaga_domain::history::{StreamId, snapshot_due};
use paysaga_domain::ports::EventStore;
use paysaga_domain::test_support::lambda_event;
use paysaga_domain::{PaymentId, PaymentStatus, WalletId};
use paysaga_services::audit::{rebuild_payment, rebuild_wallet};
use paysaga_services::fakes::InMemoryEventStore;

/// The batch: a payment's outcome before its request, a deposit delivered twice, a failed
/// payment.
const BATCH: &str = "sqs-audit-trail-events.json";

fn fixture(name: &str) -> SqsEvent {
    lambda_event(name)
}

struct TestFunction {
    function: TestConsumer<EventMessages<AuditTrail>>,
    store: Arc<InMemoryEventStore>,
}

/// The function, giving up on a message's third delivery.
fn test_function(snapshot_every: u64) -> TestFunction {
    let store = Arc::new(InMemoryEventStore::new(snapshot_every));
    let handler = AuditTrail {
        store: store.clone(),
    };
    TestFunction {
        function: TestConsumer::new(EventMessages(handler), 3),
        store,
    }
}

fn wallet(id: &str) -> WalletId {
    WalletId::parse(id).expect("a wallet id")
}

#[tokio::test]
async fn every_event_lands_once_in_its_streams_and_the_wallets_rebuild() {
    let test = test_function(10);
    let failed = test.function.deliver(fixture(BATCH)).await;
    assert!(failed.is_empty(), "{failed:?}");
    // Delivered again, whole: nothing more is appended.
    assert!(test.function.deliver(fixture(BATCH)).await.is_empty());

    let alice = rebuild_wallet(test.store.as_ref(), &wallet("wal_demo_alice"))
        .await
        .expect("alice rebuilds");
    let bob = rebuild_wallet(test.store.as_ref(), &wallet("wal_demo_bob"))
        .await
        .expect("bob rebuilds");
    // 100.00 deposited, 12.50 paid to Bob; Bob's failed payment moved nothing.
    assert_eq!(
        alice.balance().expect("a balance").map(|m| m.minor_units()),
        Some(8_750)
    );
    assert_eq!(
        bob.balance().expect("a balance").map(|m| m.minor_units()),
        Some(1_250)
    );
    // The outcome arrived first: alice's stream is the payment (1), then the deposit (2).
    assert_eq!((alice.version, bob.version), (2, 1));

    let completed = rebuild_payment(
        test.store.as_ref(),
        &PaymentId::parse("pay_demo_audit_0001").expect("id"),
    )
    .await
    .expect("the payment rebuilds");
    assert_eq!(completed.status, Some(PaymentStatus::Completed));
    assert_eq!(completed.version, 2, "its request and its outcome");
    let failed = rebuild_payment(
        test.store.as_ref(),
        &PaymentId::parse("pay_demo_audit_0002").expect("id"),
    )
    .await
    .expect("the payment rebuilds");
    assert_eq!(failed.status, Some(PaymentStatus::Failed));
    assert_eq!(
        failed.failure.map(|reason| reason.code()),
        Some("insufficient_funds")
    );

    let stream = test
        .store
        .stream(&StreamId::Wallet(wallet("wal_demo_alice")), 0)
        .await
        .expect("alice's stream");
    let versions: Vec<u64> = stream.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, [1, 2], "no gaps, no duplicates");

    // 4 distinct events, appended once; the deposit's second copy and the whole second
    // delivery are duplicates (1 + 5).
    assert_eq!(test.function.metric("EventsAppended"), 4.0);
    assert_eq!(test.function.metric("DuplicateEvents"), 6.0);
    assert_eq!(test.function.metric("MessagesReceived"), 10.0);
}

/// The batch, and a sixth message: an outcome of a version this code does not read, delivered
/// for the `receive_count`th time.
fn batch_with_unknown_version(receive_count: u32) -> (SqsEvent, String) {
    let mut event = fixture(BATCH);
    let mut newer = event.records[0].clone();
    newer.message_id = Some("a0d17000-0000-4000-8000-000000000006".to_owned());
    newer.body = newer.body.map(|body| {
        body.replace(r#""version": 1"#, r#""version": 2"#)
            .replace("pay_demo_audit_0001", "pay_demo_audit_0003")
    });
    set_receive_count(&mut newer, receive_count);
    let id = newer.message_id.clone().expect("an id");
    event.records.push(newer);
    (event, id)
}

#[tokio::test]
async fn an_unknown_version_goes_to_the_dlq_with_its_reason_on_its_last_delivery() {
    let test = test_function(10);
    // Before its last delivery it only fails, alone, back to the queue.
    let (event, unknown) = batch_with_unknown_version(1);
    assert_eq!(
        test.function.deliver(event).await,
        std::slice::from_ref(&unknown)
    );
    assert!(test.function.dead_letters.records().is_empty());

    let (event, _) = batch_with_unknown_version(3);
    assert!(test.function.deliver(event).await.is_empty());
    let dead = test.function.dead_letters.records();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, unknown);
    assert_eq!(dead[0].1.kind, "permanent");
    assert!(
        dead[0].1.reason.contains("version 2"),
        "{}",
        dead[0].1.reason
    );
    assert_eq!(test.function.metric("MessagesDeadLettered"), 1.0);
    // Its batch-mates were appended, once.
    assert_eq!(test.function.metric("EventsAppended"), 4.0);
    let unknown_payment = PaymentId::parse("pay_demo_audit_0003").expect("id");
    let never = rebuild_payment(test.store.as_ref(), &unknown_payment)
        .await
        .expect("rebuilds");
    assert_eq!(never.version, 0, "nothing of it was appended");
}

#[tokio::test]
async fn a_store_outage_fails_every_message_as_transient_back_to_the_queue() {
    let test = test_function(10);
    let event = fixture(BATCH);
    test.store.set_unavailable(true);
    assert_eq!(test.function.deliver(event.clone()).await.len(), 5);
    assert!(test.function.dead_letters.records().is_empty());

    test.store.set_unavailable(false);
    assert!(test.function.deliver(event).await.is_empty());
    assert_eq!(test.function.metric("EventsAppended"), 4.0);
}

#[tokio::test]
async fn snapshots_are_taken_every_n_versions_and_loading_through_them_is_exact() {
    let test = test_function(3);
    let template = fixture(BATCH).records[1].clone(); // a deposit into alice's wallet
    let mut event = SqsEvent::default();
    for n in 0..8 {
        let mut message = template.clone();
        message.message_id = Some(format!("deposit-{n}"));
        message.body = message
            .body
            .map(|body| body.replace("dep_demo_audit_0001", &format!("dep_demo_audit_1{n:03}")));
        event.records.push(message);
    }
    assert!(test.function.deliver(event).await.is_empty());
    let stream = StreamId::Wallet(wallet("wal_demo_alice"));
    let expected: Vec<u64> = (1..=8).filter(|v| snapshot_due(*v, 3)).collect();
    assert_eq!(test.store.snapshot_versions(&stream), expected);
    let snapshot = test
        .store
        .latest_snapshot(&stream)
        .await
        .expect("readable")
        .expect("a snapshot");
    assert_eq!(snapshot.version(), 6);
    let alice = rebuild_wallet(test.store.as_ref(), &wallet("wal_demo_alice"))
        .await
        .expect("alice rebuilds");
    assert_eq!(alice.version, 8);
    assert_eq!(
        alice.balance().expect("a balance").map(|m| m.minor_units()),
        Some(8 * 10_000)
    );
}

/// An append that loses to other appends to its streams, through every retry, is never given
/// up: it comes back a moment later, and on its last delivery it is sent again as a fresh
/// message rather than to the DLQ; once the streams are free, it lands once.
#[tokio::test]
async fn an_append_that_loses_to_contention_is_sent_again_not_dead_lettered() {
    use lambda_toolkit::metrics::{MetricsBuffer, MetricsSink};
    use lambda_toolkit::sqs_consumer::SqsConsumer;
    use lambda_toolkit::testing::{KeptDeadLetters, KeptDelays, failed_ids};
    use paysaga_services::contention::CONTENTION_WAIT;

    let store = Arc::new(InMemoryEventStore::new(10));
    let dead_letters = Arc::new(KeptDeadLetters::default());
    let delays = Arc::new(KeptDelays::default());
    let consumer = SqsConsumer::new(
        EventMessages(AuditTrail {
            store: store.clone(),
        }),
        MetricsSink::new("test", "audit-trail", MetricsBuffer::default()),
    )
    .giving_up_after(3, dead_letters.clone())
    .delaying_retries_with(delays.clone());
    store.set_contended(true);

    // The batch's deposit (its second record), alone.
    let mut first = fixture(BATCH);
    first.records = vec![first.records[1].clone()];
    let answered = consumer.handle(first.clone()).await.expect("answered");
    assert_eq!(failed_ids(&answered).len(), 1, "back to the queue");
    let (_, waited) = delays.delays()[0];
    let (shortest, longest) = CONTENTION_WAIT;
    assert!(waited >= shortest && waited <= longest, "{waited:?}");

    set_receive_count(&mut first.records[0], 3);
    let answered = consumer.handle(first).await.expect("answered");
    assert!(
        failed_ids(&answered).is_empty(),
        "let go on its last delivery"
    );
    assert!(dead_letters.ids().is_empty(), "never dead-lettered");
    let sent_again = delays.sent_again();
    assert_eq!(sent_again.len(), 1, "sent again, fresh");

    store.set_contended(false);
    let mut fresh = SqsEvent::default();
    fresh.records = vec![sent_again[0].0.clone()];
    let answered = consumer.handle(fresh).await.expect("answered");
    assert!(failed_ids(&answered).is_empty());
    let alice = rebuild_wallet(store.as_ref(), &wallet("wal_demo_alice"))
        .await
        .expect("alice rebuilds");
    assert_eq!(alice.version, 1, "the deposit, once");
}
