//! The redrive handler fed with the requests in `events/lambda/dlq-redrive-*.json`, against
//! in-memory queues, journal, parking table and deadline checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use dlq_redrive::handle;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use lambda_toolkit::metrics::{MetricsBuffer, MetricsSink, check_document};
use lambda_toolkit::sqs_batch::{FAILURE_ATTRIBUTE, FailureRecord};
use paysaga_services::fakes::{
    InMemoryJournal, InMemoryParking, InMemoryQueues, RecordingDeadlines, StaticRules,
};
use paysaga_services::redrive::operator::{RedriveService, Request};
use paysaga_services::redrive::parking::ParkedStatus;
use paysaga_services::redrive::{DeadLetter, MessageAttribute, QueueRef, RedriveSettings};

const PAYMENTS: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-local-payments";
const PAYMENTS_DLQ: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-local-payments-dlq";
const URGENT: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-local-urgent-payments";
const URGENT_DLQ: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-local-urgent-payments-dlq";

fn queue(arn: &str) -> QueueRef {
    let name = arn.rsplit(':').next().expect("an ARN");
    QueueRef {
        arn: arn.to_owned(),
        url: format!("http://127.0.0.1:4566/000000000000/{name}"),
    }
}

fn fixture(name: &str) -> String {
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn request(name: &str) -> Request {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// A payment request the saga gave up on, with the saga's failure record.
fn dead_letter(id: &str, kind: &str, body: &str) -> DeadLetter {
    let record = FailureRecord {
        kind: kind.to_owned(),
        reason: "wallets table throttled".to_owned(),
        source_queue: Some(PAYMENTS.to_owned()),
        receive_count: 5,
        failed_at: Utc::now(),
    };
    let attributes = BTreeMap::from([(
        FAILURE_ATTRIBUTE.to_owned(),
        MessageAttribute::string(serde_json::to_string(&record).expect("a record")),
    )]);
    DeadLetter {
        message_id: id.to_owned(),
        receipt_handle: format!("receipt-{id}"),
        body: body.to_owned(),
        attributes,
        source_arn: None,
        receive_count: 0,
        sent_at: Some(Utc::now()),
        trace_header: None,
    }
}

struct World {
    service: RedriveService,
    sink: MetricsSink,
    metrics: MetricsBuffer,
    queues: Arc<InMemoryQueues>,
    parking: Arc<InMemoryParking>,
    deadlines: Arc<RecordingDeadlines>,
}

impl World {
    fn new() -> Self {
        let queues = Arc::new(InMemoryQueues::default());
        queues.create(queue(PAYMENTS));
        queues.create(queue(PAYMENTS_DLQ));
        queues.redrive_policy(PAYMENTS, PAYMENTS_DLQ);
        let parking = Arc::new(InMemoryParking::default());
        let deadlines = Arc::new(RecordingDeadlines::default());
        let metrics = MetricsBuffer::default();
        let service = RedriveService {
            queues: queues.clone(),
            admin: queues.clone(),
            rules: Arc::new(StaticRules::default()),
            journal: Arc::new(InMemoryJournal::default()),
            parking: parking.clone(),
            deadlines: deadlines.clone(),
            dead_letter_queues: vec![queue(PAYMENTS_DLQ).url],
            saga_queues: vec![PAYMENTS.to_owned(), URGENT.to_owned()],
            settings: RedriveSettings {
                max_per_second: 1_000,
                ..RedriveSettings::default()
            },
        };
        Self {
            service,
            sink: MetricsSink::new("paysaga", "dlq-redrive", metrics.clone()),
            metrics,
            queues,
            parking,
            deadlines,
        }
    }

    async fn invoke(&self, request: Request) -> Result<serde_json::Value, Diagnostic> {
        let payload = serde_json::to_value(request).expect("requests serialise");
        let event = LambdaEvent::new(payload, Context::default());
        let response = handle(&self.service, &self.sink, event).await?;
        Ok(serde_json::to_value(response).expect("responses serialise"))
    }
}

#[test]
fn every_request_fixture_parses_and_strangers_are_refused() {
    for name in [
        "dlq-redrive-redrive-all.json",
        "dlq-redrive-redrive-one-queue.json",
        "dlq-redrive-move-whole-queue.json",
        "dlq-redrive-status.json",
        "dlq-redrive-parked.json",
        "dlq-redrive-show.json",
    ] {
        request(name);
    }
    for wrong in [
        r#"{"action":"purge"}"#,
        r#"{"action":"redrive","queue_name":"typo"}"#,
        r#"{"action":"replay"}"#,
        r#"{"queue":"no action"}"#,
    ] {
        assert!(serde_json::from_str::<Request>(wrong).is_err(), "{wrong}");
    }
}

#[tokio::test]
async fn a_redrive_sends_back_the_transient_and_parks_the_rest() {
    let world = World::new();
    let body = fixture("eventbridge-payment-requested.json");
    world
        .queues
        .put(PAYMENTS_DLQ, dead_letter("t1", "transient", &body));
    world
        .queues
        .put(PAYMENTS_DLQ, dead_letter("p1", "permanent", &body));
    world
        .queues
        .put(PAYMENTS_DLQ, dead_letter("junk", "transient", "{oops"));

    let response = world
        .invoke(request("dlq-redrive-redrive-all.json"))
        .await
        .expect("redriven");
    let report = &response["queues"][0];
    assert_eq!(report["queue"], "paysaga-local-payments-dlq");
    assert_eq!(
        (
            report["examined"].as_u64(),
            report["sent_back"].as_u64(),
            report["parked"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(world.queues.len(PAYMENTS_DLQ), 0);
    assert_eq!(world.queues.len(PAYMENTS), 1);
    // The saga's request parked (not the junk): its payment's check, for the reconciler.
    assert_eq!(report["settle_checks"], 1);
    let event: serde_json::Value = serde_json::from_str(&body).expect("the fixture is JSON");
    let checks: Vec<(String, String)> = world
        .deadlines
        .for_parked()
        .into_iter()
        .map(|(payment, parked_id)| (payment.to_string(), parked_id))
        .collect();
    assert_eq!(
        checks,
        [(
            event["detail"]["data"]["payment_id"]
                .as_str()
                .expect("a payment id")
                .to_owned(),
            "paysaga-local-payments-dlq/p1".to_owned()
        )]
    );

    let status = world
        .invoke(request("dlq-redrive-status.json"))
        .await
        .expect("status");
    assert_eq!(status["parked_waiting"], 2);
    assert_eq!(status["queues"][0]["queue"], "paysaga-local-payments");
    assert_eq!(
        status["queues"][0]["dead_letter_queue"],
        "paysaga-local-payments-dlq"
    );
    assert_eq!(status["queues"][0]["visible"], 1);
    assert_eq!(status["queues"][1]["visible"], 0);

    let parked = world
        .invoke(request("dlq-redrive-parked.json"))
        .await
        .expect("parked");
    let reasons: Vec<&str> = parked["messages"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|message| message["reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons
            .iter()
            .any(|reason| reason.starts_with("contract: ")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_parked_request_waits_in_the_dlq_while_its_check_cannot_be_scheduled() {
    let world = World::new();
    let body = fixture("eventbridge-payment-requested.json");
    world
        .queues
        .put(PAYMENTS_DLQ, dead_letter("p1", "permanent", &body));
    world.deadlines.set_down(true);
    let response = world
        .invoke(request("dlq-redrive-redrive-all.json"))
        .await
        .expect("redriven");
    let report = &response["queues"][0];
    assert_eq!(
        (report["parked"].as_u64(), report["settle_checks"].as_u64()),
        (Some(1), Some(0))
    );
    let left = report["left"].as_object().expect("what it left, by reason");
    assert!(
        left.keys()
            .any(|reason| reason.contains("check was not scheduled")),
        "{report}"
    );
    assert_eq!(world.queues.len(PAYMENTS_DLQ), 1, "kept for the next run");

    world.deadlines.set_down(false);
    world.queues.make_visible(PAYMENTS_DLQ);
    let response = world
        .invoke(request("dlq-redrive-redrive-all.json"))
        .await
        .expect("redriven");
    let report = &response["queues"][0];
    assert_eq!(
        (
            report["handled_before"].as_u64(),
            report["settle_checks"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(world.deadlines.for_parked().len(), 1);
    assert_eq!(world.queues.len(PAYMENTS_DLQ), 0);
}

#[tokio::test]
async fn an_unknown_queue_or_parked_id_is_a_typed_error() {
    let world = World::new();
    let unknown = world
        .invoke(Request::Redrive {
            queue: Some("nope".to_owned()),
            mode: Default::default(),
            max_per_second: None,
            max_messages: None,
            visibility_timeout_seconds: None,
        })
        .await
        .expect_err("no such queue");
    assert_eq!(unknown.error_type, "UnknownQueue");
    // The stack's prefix may be left out.
    let short = world
        .invoke(Request::Redrive {
            queue: Some("payments-dlq".to_owned()),
            mode: Default::default(),
            max_per_second: None,
            max_messages: None,
            visibility_timeout_seconds: None,
        })
        .await
        .expect("found by its short name");
    assert_eq!(short["queues"][0]["queue"], "paysaga-local-payments-dlq");
    assert!(unknown.error_message.contains("paysaga-local-payments-dlq"));

    let missing = world
        .invoke(Request::Show {
            parked_id: "paysaga-local-payments-dlq/none".to_owned(),
        })
        .await
        .expect_err("nothing parked");
    assert_eq!(missing.error_type, "ParkedMessageNotFound");
}

#[tokio::test]
async fn a_replay_is_the_admin_apis_and_refused_here_with_where_to_ask() {
    let world = World::new();
    let body = fixture("eventbridge-payment-requested.json");
    world
        .queues
        .put(PAYMENTS_DLQ, dead_letter("p1", "permanent", &body));
    world
        .invoke(request("dlq-redrive-redrive-all.json"))
        .await
        .expect("redriven");
    let parked_id = world.parking.all()[0].parked_id.clone();
    let shown = world
        .invoke(Request::Show {
            parked_id: parked_id.clone(),
        })
        .await
        .expect("shown");
    assert_eq!(shown["status"], "parked");

    // An invocation carries no operator to record: the function sends nothing.
    let payload = serde_json::json!({"action": "replay", "parked_id": parked_id});
    let refused = handle(
        &world.service,
        &world.sink,
        LambdaEvent::new(payload, Context::default()),
    )
    .await
    .expect_err("refused");
    assert_eq!(refused.error_type, "InvalidRequest");
    assert!(
        refused
            .error_message
            .contains("POST /admin/parked/{parked_id}/replay"),
        "{}",
        refused.error_message
    );
    assert_eq!(world.queues.len(PAYMENTS), 0);
    assert_eq!(world.parking.all()[0].status, ParkedStatus::Parked);
}

#[tokio::test]
async fn a_whole_queue_move_hands_the_queue_to_sqs() {
    let world = World::new();
    let body = fixture("eventbridge-payment-requested.json");
    for id in ["a", "b"] {
        world
            .queues
            .put(PAYMENTS_DLQ, dead_letter(id, "transient", &body));
    }
    let response = world
        .invoke(request("dlq-redrive-move-whole-queue.json"))
        .await
        .expect("moved");
    assert_eq!(
        response["queues"][0]["destination"],
        "paysaga-local-payments"
    );
    assert!(response["queues"][0]["move_task"].is_string());
    assert_eq!(world.queues.len(PAYMENTS), 2);
    assert_eq!(world.queues.len(PAYMENTS_DLQ), 0);
}

#[tokio::test]
async fn redrive_and_status_write_valid_emf_metrics_per_dead_letter_queue() {
    let world = World::new();
    let body = fixture("eventbridge-payment-requested.json");
    for (id, kind) in [
        ("t1", "transient"),
        ("t2", "transient"),
        ("p1", "permanent"),
    ] {
        world.queues.put(PAYMENTS_DLQ, dead_letter(id, kind, &body));
    }
    world
        .invoke(request("dlq-redrive-redrive-all.json"))
        .await
        .expect("redriven");
    world
        .queues
        .put(PAYMENTS_DLQ, dead_letter("t3", "transient", &body));
    world
        .invoke(request("dlq-redrive-status.json"))
        .await
        .expect("status");

    let documents = world
        .metrics
        .documents()
        .expect("every metrics line is JSON");
    for document in &documents {
        if let Err(error) = check_document(document) {
            panic!("{error}: {document}");
        }
        assert_eq!(document["service"], "dlq-redrive");
    }
    let values = |name: &str| -> Vec<(String, f64)> {
        documents
            .iter()
            .filter_map(|document| {
                let value = document[name].as_f64()?;
                Some((document["queue"].as_str().unwrap_or("-").to_owned(), value))
            })
            .collect()
    };
    let dlq = "paysaga-local-payments-dlq".to_owned();
    assert_eq!(values("MessagesRedriven"), [(dlq.clone(), 2.0)]);
    assert_eq!(values("MessagesParked"), [(dlq.clone(), 1.0)]);
    assert_eq!(
        values("DlqDepth"),
        [(dlq.clone(), 0.0), (dlq, 1.0)],
        "emptied by the redrive, then one more dead letter"
    );
    assert_eq!(values("ParkedWaiting"), [("-".to_owned(), 1.0)]);
}

#[tokio::test]
async fn a_short_name_is_one_queue_even_where_another_name_ends_the_same_way() {
    let mut world = World::new();
    world.queues.create(queue(URGENT));
    world.queues.create(queue(URGENT_DLQ));
    world.queues.redrive_policy(URGENT, URGENT_DLQ);
    world.service.dead_letter_queues.push(queue(URGENT_DLQ).url);
    for (asked, found) in [
        ("payments-dlq", "paysaga-local-payments-dlq"),
        ("urgent-payments-dlq", "paysaga-local-urgent-payments-dlq"),
    ] {
        let report = world
            .invoke(Request::Redrive {
                queue: Some(asked.to_owned()),
                mode: Default::default(),
                max_per_second: None,
                max_messages: None,
                visibility_timeout_seconds: None,
            })
            .await
            .unwrap_or_else(|error| panic!("{asked}: {error:?}"));
        assert_eq!(
            report["queues"].as_array().map(Vec::len),
            Some(1),
            "{report}"
        );
        assert_eq!(report["queues"][0]["queue"], found, "{asked}");
    }
}
