//! Property tests: hostile SQS messages through the read-models handler, against the
//! in-memory read models. Whatever arrives, the handler answers the batch, gives up on a
//! message only with a reason, and logs no card number, token or e-mail address; valid events
//! are still projected.

use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent};
use lambda_toolkit::metrics::MetricsSink;
use paysaga_hostile::fixture_events;
use paysaga_hostile::harness::{
    KeptDeadLetters, MAX_RECEIVE_COUNT, batch, bodies, check_batch, run_logged,
};
use paysaga_services::read_models::InMemoryReadModels;
use proptest::prelude::*;
use read_models::{ReadModelsFunction, handle};

fn read_models(dead_letters: &Arc<KeptDeadLetters>) -> ReadModelsFunction {
    ReadModelsFunction {
        read_models: Arc::new(InMemoryReadModels::default()),
        max_receive_count: MAX_RECEIVE_COUNT,
        dead_letters: Some(dead_letters.clone()),
        metrics: MetricsSink::new("paysaga", "read-models", Vec::new()),
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
        let function = read_models(&dead_letters);
        let event = LambdaEvent::new(batch(&bodies, receive_count), Context::default());
        let (answer, logs) = run_logged(handle(&function, event));
        check_batch(&answer, bodies.len(), &dead_letters, &logs)?;
    }
}

#[test]
fn the_fixture_events_are_still_projected() {
    let bodies: Vec<Vec<u8>> = fixture_events()
        .iter()
        .map(|event| event.to_string().into_bytes())
        .collect();
    let dead_letters = Arc::new(KeptDeadLetters::default());
    let function = read_models(&dead_letters);
    let event = LambdaEvent::new(batch(&bodies, 1), Context::default());
    let (answer, logs) = run_logged(handle(&function, event));
    let response = answer.expect("a batch response");
    assert!(response.batch_item_failures.is_empty(), "{logs:#?}");
    assert!(
        logs.iter().any(|line| line.contains("event projected")),
        "{logs:#?}"
    );
    assert!(paysaga_hostile::leaks(logs.iter().map(String::as_str)).is_empty());
}
