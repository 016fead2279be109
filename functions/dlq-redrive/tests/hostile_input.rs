//! Property tests: hostile requests through the redrive function's request parser
//! ([`Request::from_payload`]) and handler, against in-memory queues, journal and parking table.
//! A request is answered, or refused with a clear [`Diagnostic`] that quotes no card number,
//! token or e-mail address, and nothing the function logs does either.

use std::sync::Arc;

use chrono::Utc;
use dlq_redrive::handle;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use lambda_toolkit::metrics::MetricsSink;
use paysaga_hostile::harness::run_logged;
use paysaga_hostile::{body, leaks};
use paysaga_services::fakes::{
    InMemoryJournal, InMemoryParking, InMemoryQueues, RecordingDeadlines, StaticRules,
};
use paysaga_services::redrive::operator::{RedriveService, Request};
use paysaga_services::redrive::{DeadLetter, QueueRef, RedriveSettings};
use proptest::prelude::*;
use serde_json::Value;

const PAYMENTS: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-local-payments";
const PAYMENTS_DLQ: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-local-payments-dlq";

fn queue(arn: &str) -> QueueRef {
    let name = arn.rsplit(':').next().expect("an ARN");
    QueueRef {
        arn: arn.to_owned(),
        url: format!("http://127.0.0.1:4566/000000000000/{name}"),
    }
}

/// The request fixtures in `events/lambda/dlq-redrive-*.json`.
fn requests() -> Vec<Value> {
    [
        "redrive-all",
        "redrive-one-queue",
        "move-whole-queue",
        "status",
        "parked",
        "show",
    ]
    .iter()
    .map(|name| {
        let path = format!(
            "{}/../../events/lambda/dlq-redrive-{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
        serde_json::from_str(&text).expect("fixtures are JSON")
    })
    .collect()
}

/// A redrive whose payments DLQ holds a message carrying secrets, without a failure record.
fn service() -> RedriveService {
    let queues = Arc::new(InMemoryQueues::default());
    queues.create(queue(PAYMENTS));
    queues.create(queue(PAYMENTS_DLQ));
    queues.redrive_policy(PAYMENTS, PAYMENTS_DLQ);
    queues.put(
        PAYMENTS_DLQ,
        DeadLetter {
            message_id: "m-1".to_owned(),
            receipt_handle: "receipt-m-1".to_owned(),
            body: format!(
                "{{\"card\":\"{}\",\"email\":\"{}\",\"token\":\"{}\"}}",
                paysaga_hostile::CARD_NUMBER,
                paysaga_hostile::EMAIL,
                paysaga_hostile::JWT
            ),
            attributes: Default::default(),
            trace_header: None,
            source_arn: None,
            receive_count: 0,
            sent_at: Some(Utc::now()),
        },
    );
    RedriveService {
        queues: queues.clone(),
        admin: queues,
        rules: Arc::new(StaticRules::default()),
        journal: Arc::new(InMemoryJournal::default()),
        parking: Arc::new(InMemoryParking::default()),
        deadlines: Arc::new(RecordingDeadlines::default()),
        dead_letter_queues: vec![queue(PAYMENTS_DLQ).url],
        saga_queues: vec![PAYMENTS.to_owned()],
        settings: RedriveSettings {
            max_per_second: 1_000,
            ..RedriveSettings::default()
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn hostile_requests_are_refused_clearly_or_answered_without_leaks(
        bytes in prop::sample::select(requests()).prop_flat_map(body)
    ) {
        // Not JSON: the runtime refuses it before the function sees it.
        let Ok(payload) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(());
        };
        let refused = Request::from_payload(payload.clone()).is_err();
        let service = service();
        let metrics = MetricsSink::new("paysaga", "dlq-redrive", Vec::new());
        let event = LambdaEvent::new(payload, Context::default());
        let (answer, logs): (Result<_, Diagnostic>, _) = run_logged(handle(&service, &metrics, event));
        if refused {
            let diagnostic = answer.as_ref().err();
            prop_assert_eq!(diagnostic.map(|d| d.error_type.as_str()), Some("InvalidRequest"));
        }
        if let Err(diagnostic) = &answer {
            prop_assert!(!diagnostic.error_type.is_empty());
            prop_assert!(diagnostic.error_message.len() > 10, "{diagnostic:?}");
            let leaked = leaks([diagnostic.error_message.as_str()]);
            prop_assert!(leaked.is_empty(), "the refusal quotes input: {leaked:?}");
        }
        let leaked = leaks(logs.iter().map(String::as_str));
        prop_assert!(leaked.is_empty(), "logged: {leaked:#?}");
    }
}

#[test]
fn the_request_fixtures_still_parse() {
    for request in requests() {
        serde_json::from_value::<Request>(request.clone())
            .unwrap_or_else(|error| panic!("{request}: {error}"));
    }
}
