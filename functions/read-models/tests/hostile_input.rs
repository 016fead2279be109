//! Property tests: hostile SQS messages through the read-models handler, against the
//! in-memory read models. Whatever arrives, the handler answers the batch, gives up on a
//! message only with a reason, and logs no card number, token or e-mail address; valid events
//! are still projected.

use std::sync::Arc;

use paysaga_aws::EventMessages;
use paysaga_hostile::fixture_events;
use paysaga_hostile::harness::{MAX_RECEIVE_COUNT, bodies, fixture_events_through, hostile_batch};
use paysaga_services::read_models::InMemoryReadModels;
use proptest::prelude::*;
use read_models::ReadModels;

fn read_models() -> EventMessages<ReadModels> {
    let read_models = Arc::new(InMemoryReadModels::default());
    EventMessages(ReadModels { read_models })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn hostile_messages_are_answered_with_reasons_and_no_leaks(
        bodies in bodies(fixture_events()),
        receive_count in 1..=MAX_RECEIVE_COUNT,
    ) {
        hostile_batch(read_models(), &bodies, receive_count)?;
    }
}

#[test]
fn the_fixture_events_are_still_projected() {
    let logs = fixture_events_through(read_models(), &[]);
    assert!(
        logs.iter().any(|line| line.contains("event projected")),
        "{logs:#?}"
    );
}
