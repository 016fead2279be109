//! Property tests: hostile SQS messages through the notifications handler, against the
//! in-memory notifier and idempotency store. Whatever arrives, the handler answers the batch,
//! gives up on a message only with a reason, and logs no card number, token or e-mail address;
//! valid events still notify.

use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent};
use lambda_toolkit::idempotency::InMemoryIdempotencyStore;
use lambda_toolkit::metrics::MetricsSink;
use notifications::{NotificationsFunction, handle, idempotency_config};
use paysaga_hostile::fixture_events;
use paysaga_hostile::harness::{
    KeptDeadLetters, MAX_RECEIVE_COUNT, batch, bodies, check_batch, run_logged,
};
use paysaga_services::fakes::RecordingNotifier;
use proptest::prelude::*;

struct TestFunction {
    function: NotificationsFunction,
    notifier: Arc<RecordingNotifier>,
    dead_letters: Arc<KeptDeadLetters>,
}

fn notifications() -> TestFunction {
    let notifier = Arc::new(RecordingNotifier::default());
    let dead_letters = Arc::new(KeptDeadLetters::default());
    let function = NotificationsFunction {
        notifier: notifier.clone(),
        idempotency: Arc::new(InMemoryIdempotencyStore::default()),
        idempotency_config: idempotency_config(),
        max_receive_count: MAX_RECEIVE_COUNT,
        dead_letters: Some(dead_letters.clone()),
        metrics: MetricsSink::new("paysaga", "notifications", Vec::new()),
    };
    TestFunction {
        function,
        notifier,
        dead_letters,
    }
}

/// Runs a batch: the function afterwards, the handler's answer, the log lines.
fn deliver(
    bodies: &[Vec<u8>],
    receive_count: u32,
) -> (
    TestFunction,
    Result<aws_lambda_events::sqs::SqsBatchResponse, lambda_toolkit::sqs_batch::RecordWithoutId>,
    Vec<String>,
) {
    let test = notifications();
    let event = LambdaEvent::new(batch(bodies, receive_count), Context::default());
    let (answer, logs) = run_logged(handle(&test.function, event));
    (test, answer, logs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn hostile_messages_are_answered_with_reasons_and_no_leaks(
        bodies in bodies(fixture_events()),
        receive_count in 1..=MAX_RECEIVE_COUNT,
    ) {
        let (test, answer, logs) = deliver(&bodies, receive_count);
        check_batch(&answer, bodies.len(), &test.dead_letters, &logs)?;
    }
}

#[test]
fn the_fixture_outcomes_still_notify_payer_and_payee() {
    let bodies: Vec<Vec<u8>> = ["PaymentCompleted", "PaymentFailed"]
        .into_iter()
        .flat_map(paysaga_hostile::fixture_events_of)
        .map(|event| event.to_string().into_bytes())
        .collect();
    let (test, answer, logs) = deliver(&bodies, 1);
    let response = answer.expect("a batch response");
    assert!(response.batch_item_failures.is_empty(), "{logs:#?}");
    // The fixtures repeat some events: each is notified once, to whom it concerns.
    let mut events: Vec<paysaga_domain::DomainEvent> = bodies
        .iter()
        .map(|body| {
            let text = std::str::from_utf8(body).expect("UTF-8");
            paysaga_domain::DomainEvent::from_eventbridge(text).expect("a valid event")
        })
        .collect();
    events.sort_by(|a, b| a.event_id().cmp(b.event_id()));
    events.dedup_by(|a, b| a.event_id() == b.event_id());
    let expected: usize = events
        .iter()
        .map(|event| paysaga_domain::notification::notifications_for(event).len())
        .sum();
    assert!(expected >= events.len());
    assert_eq!(test.notifier.sent().len(), expected);
    assert!(paysaga_hostile::leaks(logs.iter().map(String::as_str)).is_empty());
}
