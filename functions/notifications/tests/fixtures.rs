//! The notifications handler fed with the SQS events in `events/lambda/`, against in-memory
//! fakes: a notifier that keeps every delivery (duplicates included, as e-mail would) and the
//! in-memory idempotency store.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use chrono::Utc;
use lambda_toolkit::idempotency::{
    IdempotencyRecord, IdempotencyStore, InMemoryIdempotencyStore, RecordStatus, payload_hash,
};
use lambda_toolkit::testing::{TestConsumer, set_receive_count};
use notifications::Notifications;
use paysaga_aws::EventMessages;
use paysaga_domain::DomainEvent;
use paysaga_domain::notification::{NotificationKind, notifications_for};
use paysaga_domain::ports::NotifyError;
use paysaga_domain::test_support::lambda_event;
use paysaga_services::fakes::RecordingNotifier;
use paysaga_services::notifications::idempotency_config;

struct TestFunction {
    function: TestConsumer<EventMessages<Notifications>>,
    notifier: Arc<RecordingNotifier>,
    idempotency: Arc<InMemoryIdempotencyStore>,
}

/// The function, giving up on a message's fifth delivery, with a notifier that is not
/// idempotent itself (as e-mail).
fn notifications() -> TestFunction {
    notifications_with(RecordingNotifier::default())
}

fn notifications_with(notifier: RecordingNotifier) -> TestFunction {
    let notifier = Arc::new(notifier);
    let idempotency = Arc::new(InMemoryIdempotencyStore::default());
    let handler = Notifications {
        notifier: notifier.clone(),
        idempotency: idempotency.clone(),
        idempotency_config: idempotency_config(),
    };
    TestFunction {
        function: TestConsumer::new(EventMessages(handler), 5),
        notifier,
        idempotency,
    }
}

fn fixture(name: &str) -> SqsEvent {
    lambda_event(name)
}

/// Delivers the batch; answers the ids of the messages reported failed.
async fn deliver(test: &TestFunction, event: SqsEvent) -> Vec<String> {
    test.function.deliver(event).await
}

/// The sum of a metric over every flushed document.
fn metric(test: &TestFunction, name: &str) -> f64 {
    test.function.metric(name)
}

#[tokio::test]
async fn a_completed_payment_notifies_payer_and_payee_once_however_often_it_arrives() {
    let test = notifications();
    assert!(
        deliver(&test, fixture("sqs-payment-completed.json"))
            .await
            .is_empty()
    );
    assert!(
        deliver(&test, fixture("sqs-payment-completed.json"))
            .await
            .is_empty()
    );

    let sent = test.notifier.sent();
    let who: Vec<(&str, NotificationKind)> = sent
        .iter()
        .map(|n| (n.recipient.as_str(), n.kind))
        .collect();
    assert_eq!(
        who,
        [
            ("wal_demo_alice", NotificationKind::PaymentSent),
            ("wal_demo_bob", NotificationKind::PaymentReceived),
        ],
        "the second delivery sent nothing"
    );
    assert_eq!(sent[0].text(), "You paid 12.50 EUR to wal_demo_bob.");
    for wallet in ["wal_demo_alice", "wal_demo_bob"] {
        let record = test
            .idempotency
            .record(&format!("notifications#pay_demo_cli_0001/4#{wallet}"))
            .expect("a record per recipient");
        assert_eq!(record.status, RecordStatus::Completed);
    }
    assert_eq!(metric(&test, "NotificationsSent"), 2.0);
    assert_eq!(metric(&test, "NotificationsRepeated"), 2.0);
    assert_eq!(metric(&test, "MessagesReceived"), 2.0);
}

#[tokio::test]
async fn a_notifier_that_delivers_once_is_called_directly_and_no_record_is_kept() {
    // As the in-app inbox: its own conditional write is the record, so the function writes
    // none of its own (three writes per notification saved), and a repeat is still told apart.
    let test = notifications_with(RecordingNotifier::delivering_once());
    for _ in 0..2 {
        assert!(
            deliver(&test, fixture("sqs-payment-completed.json"))
                .await
                .is_empty()
        );
    }
    let sent = test.notifier.sent();
    let who: Vec<&str> = sent.iter().map(|n| n.recipient.as_str()).collect();
    assert_eq!(who, ["wal_demo_alice", "wal_demo_bob"], "each told once");
    for wallet in ["wal_demo_alice", "wal_demo_bob"] {
        let key = format!("notifications#pay_demo_cli_0001/4#{wallet}");
        assert!(test.idempotency.record(&key).is_none(), "{key} kept");
    }
    assert_eq!(metric(&test, "NotificationsSent"), 2.0);
    assert_eq!(metric(&test, "NotificationsRepeated"), 2.0);
}

#[tokio::test]
async fn a_failed_payment_tells_the_payer_why() {
    let test = notifications();
    assert!(
        deliver(&test, fixture("sqs-payment-failed.json"))
            .await
            .is_empty()
    );
    let sent = test.notifier.sent();
    assert_eq!(sent.len(), 1, "the payee is not told: {sent:?}");
    assert_eq!(sent[0].kind, NotificationKind::PaymentFailed);
    assert_eq!(sent[0].recipient.as_str(), "wal_demo_alice");
    assert_eq!(
        sent[0].failure.as_ref().map(|reason| reason.code()),
        Some("insufficient_funds")
    );
}

#[tokio::test]
async fn an_unknown_version_goes_to_the_dlq_with_its_reason_on_its_last_delivery() {
    let test = notifications();
    // The completed payment's fixture, as a version 2 producer would write it, delivered for the
    // last time. (Made here: the fixtures in events/ all honour the contracts, a test checks.)
    let mut event = fixture("sqs-payment-completed.json");
    let record = &mut event.records[0];
    let mut body: serde_json::Value =
        serde_json::from_str(record.body.as_deref().expect("a body")).expect("JSON");
    body["detail"]["version"] = 2.into();
    record.body = Some(body.to_string());
    set_receive_count(record, 5);
    let failed = deliver(&test, event).await;
    assert!(failed.is_empty(), "given up on, not returned: {failed:?}");
    assert!(test.notifier.sent().is_empty());
    let dead = test.function.dead_letters.records();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1.kind, "permanent");
    assert!(
        dead[0].1.reason.contains("version 2 is not supported"),
        "{}",
        dead[0].1.reason
    );
    assert_eq!(metric(&test, "MessagesDeadLettered"), 1.0);
}

#[tokio::test]
async fn a_failed_delivery_goes_back_to_the_queue_and_is_sent_on_the_retry() {
    let test = notifications();
    test.notifier
        .fail_with(Some(NotifyError::Transient("inbox throttled".into())));
    let failed = deliver(&test, fixture("sqs-payment-completed.json")).await;
    assert_eq!(failed, ["3f2a9c1e-5b7d-4e8f-a1b2-c3d4e5f60001"]);
    assert_eq!(
        test.idempotency
            .record("notifications#pay_demo_cli_0001/4#wal_demo_alice"),
        None,
        "the failed attempt released its claim"
    );
    test.notifier.fail_with(None);
    assert!(
        deliver(&test, fixture("sqs-payment-completed.json"))
            .await
            .is_empty()
    );
    assert_eq!(test.notifier.sent().len(), 2);
}

#[tokio::test]
async fn a_delivery_in_progress_elsewhere_is_retried_later() {
    let test = notifications();
    let now = Utc::now();
    let event = fixture("sqs-payment-completed.json");
    let body = event.records[0].body.as_deref().expect("a body");
    let payer =
        notifications_for(&DomainEvent::from_eventbridge(body).expect("an event"))[0].clone();
    // Another invocation holds the payer's notification (claimed, not finished).
    let claim = IdempotencyRecord {
        key: "notifications#pay_demo_cli_0001/4#wal_demo_alice".into(),
        status: RecordStatus::InProgress,
        payload_hash: payload_hash(&payer).expect("a hash"),
        expires_at: now + chrono::Duration::days(1),
        in_progress_until: now + chrono::Duration::minutes(2),
        result: None,
    };
    test.idempotency.claim(&claim, now).await.expect("claimed");
    let failed = deliver(&test, event).await;
    assert_eq!(failed.len(), 1, "returned to the queue, to be retried");
    let sent = test.notifier.sent();
    assert_eq!(sent.len(), 1, "the payee's went: {sent:?}");
    assert_eq!(sent[0].kind, NotificationKind::PaymentReceived);
}
