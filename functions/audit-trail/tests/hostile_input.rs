//! Property tests: hostile SQS messages through the audit-trail handler, against the in-memory
//! event store. Whatever arrives, the handler answers the batch, gives up on a message only
//! with a reason, and logs no card number, token or e-mail address; valid events are still
//! appended.

use std::sync::Arc;

use audit_trail::{AuditTrailFunction, handle};
use lambda_runtime::{Context, LambdaEvent};
use lambda_toolkit::metrics::MetricsSink;
use paysaga_hostile::fixture_events;
use paysaga_hostile::harness::{
    KeptDeadLetters, MAX_RECEIVE_COUNT, batch, bodies, check_batch, run_logged,
};
use paysaga_services::fakes::InMemoryEventStore;
use proptest::prelude::*;

fn audit_trail(dead_letters: &Arc<KeptDeadLetters>) -> AuditTrailFunction {
    AuditTrailFunction {
        store: Arc::new(InMemoryEventStore::new(10)),
        max_receive_count: MAX_RECEIVE_COUNT,
        dead_letters: Some(dead_letters.clone()),
        metrics: MetricsSink::new("paysaga", "audit-trail", Vec::new()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn hostile_messages_are_answered_with_reasons_and_no_leaks(
        bodies in bodies(fixture_events()),
        receive_count in 1..=MAX_RECEIVE_COUNT,
    ) {
        let dead_letters = Arc::new(KeptDeadLetters::default());
        let function = audit_trail(&dead_letters);
        let event = LambdaEvent::new(batch(&bodies, receive_count), Context::default());
        let (answer, logs) = run_logged(handle(&function, event));
        check_batch(&answer, bodies.len(), &dead_letters, &logs)?;
    }
}

#[test]
fn the_fixture_events_are_still_appended() {
    let bodies: Vec<Vec<u8>> = fixture_events()
        .iter()
        .map(|event| event.to_string().into_bytes())
        .collect();
    let dead_letters = Arc::new(KeptDeadLetters::default());
    let function = audit_trail(&dead_letters);
    let event = LambdaEvent::new(batch(&bodies, 1), Context::default());
    let (answer, logs) = run_logged(handle(&function, event));
    let response = answer.expect("a batch response");
    assert!(response.batch_item_failures.is_empty(), "{logs:#?}");
    assert!(paysaga_hostile::leaks(logs.iter().map(String::as_str)).is_empty());
}
