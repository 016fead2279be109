//! Property tests: hostile SQS messages through the notifications handler, against the
//! in-memory notifier and idempotency store. Whatever arrives, the handler answers the batch,
//! gives up on a message only with a reason, and logs no card number, token or e-mail address;
//! valid events still notify.

use std::sync::Arc;

use lambda_toolkit::idempotency::InMemoryIdempotencyStore;
use notifications::Notifications;
use paysaga_aws::EventMessages;
use paysaga_domain::DomainEvent;
use paysaga_domain::notification::notifications_for;
use paysaga_hostile::fixture_events;
use paysaga_hostile::harness::{MAX_RECEIVE_COUNT, bodies, fixture_events_through, hostile_batch};
use paysaga_services::fakes::RecordingNotifier;
use paysaga_services::notifications::idempotency_config;
use proptest::prelude::*;

fn notifications(notifier: &Arc<RecordingNotifier>) -> EventMessages<Notifications> {
    EventMessages(Notifications {
        notifier: notifier.clone(),
        idempotency: Arc::new(InMemoryIdempotencyStore::default()),
        idempotency_config: idempotency_config(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn hostile_messages_are_answered_with_reasons_and_no_leaks(
        bodies in bodies(fixture_events()),
        receive_count in 1..=MAX_RECEIVE_COUNT,
    ) {
        let notifier = Arc::new(RecordingNotifier::default());
        hostile_batch(notifications(&notifier), &bodies, receive_count)?;
    }
}

#[test]
fn the_fixture_outcomes_still_notify_payer_and_payee() {
    const OUTCOMES: [&str; 2] = ["PaymentCompleted", "PaymentFailed"];
    let notifier = Arc::new(RecordingNotifier::default());
    fixture_events_through(notifications(&notifier), &OUTCOMES);
    // The fixtures repeat some events: each is notified once, to whom it concerns.
    let mut events: Vec<DomainEvent> = OUTCOMES
        .into_iter()
        .flat_map(paysaga_hostile::fixture_events_of)
        .map(|event| DomainEvent::from_eventbridge(&event.to_string()).expect("a valid event"))
        .collect();
    events.sort_by(|a, b| a.event_id().cmp(b.event_id()));
    events.dedup_by(|a, b| a.event_id() == b.event_id());
    let expected: usize = events
        .iter()
        .map(|event| notifications_for(event).len())
        .sum();
    assert!(expected >= events.len());
    assert_eq!(notifier.sent().len(), expected);
}
