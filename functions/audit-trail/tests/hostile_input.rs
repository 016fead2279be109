//! Property tests: hostile SQS messages through the audit-trail handler, against the in-memory
//! event store. Whatever arrives, the handler answers the batch, gives up on a message only
//! with a reason, and logs no card number, token or e-mail address; valid events are still
//! appended.

use std::sync::Arc;

use audit_trail::AuditTrail;
use paysaga_aws::EventMessages;
use paysaga_hostile::fixture_events;
use paysaga_hostile::harness::{MAX_RECEIVE_COUNT, bodies, fixture_events_through, hostile_batch};
use paysaga_services::fakes::InMemoryEventStore;
use proptest::prelude::*;

fn audit_trail() -> EventMessages<AuditTrail> {
    let store = Arc::new(InMemoryEventStore::new(10));
    EventMessages(AuditTrail { store })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn hostile_messages_are_answered_with_reasons_and_no_leaks(
        bodies in bodies(fixture_events()),
        receive_count in 1..=MAX_RECEIVE_COUNT,
    ) {
        hostile_batch(audit_trail(), &bodies, receive_count)?;
    }
}

#[test]
fn the_fixture_events_are_still_appended() {
    let logs = fixture_events_through(audit_trail(), &[]);
    assert!(
        logs.iter()
            .all(|line| !line.contains("message returned to the queue")),
        "{logs:#?}"
    );
}
