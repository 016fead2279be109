//! A message as it sits in a dead-letter queue, where it came from, and what the redrive does
//! with it ([`classify`]): plain data and rules, no I/O.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use lambda_toolkit::sqs_batch::{FAILURE_ATTRIBUTE, FailureRecord};
use paysaga_domain::DomainEvent;

/// The message attribute the redrive stamps on every message it sends back ([`RedriveStamp`]).
pub const REDRIVE_ATTRIBUTE: &str = "paysaga-redrive";

/// The name the consumers gave the attribute of their failure record before the toolkit's
/// became generic ([`FAILURE_ATTRIBUTE`], `failure-record`). Messages dead-lettered before that
/// deploy still carry it, in the dead-letter queues (for their retention, 14 days at most) and
/// in the parking table (until an operator replays or drops them): the redrive reads their
/// record under it when the current name is absent, and a copy sent back drops it too.
pub const LEGACY_FAILURE_ATTRIBUTE: &str = "paysaga-failure";

/// The attributes a consumer's failure record travels in, the current name first.
pub const FAILURE_ATTRIBUTES: [&str; 2] = [FAILURE_ATTRIBUTE, LEGACY_FAILURE_ATTRIBUTE];

/// The attributes EventBridge puts on an event it could not deliver to a rule's target.
pub mod event_delivery {
    pub const RULE_ARN: &str = "RULE_ARN";
    pub const TARGET_ARN: &str = "TARGET_ARN";
    pub const ERROR_CODE: &str = "ERROR_CODE";
    pub const ERROR_MESSAGE: &str = "ERROR_MESSAGE";
    pub const EXHAUSTED_RETRY_CONDITION: &str = "EXHAUSTED_RETRY_CONDITION";
    pub const RETRY_ATTEMPTS: &str = "RETRY_ATTEMPTS";
    pub const ALL: [&str; 6] = [
        RULE_ARN,
        TARGET_ARN,
        ERROR_CODE,
        ERROR_MESSAGE,
        EXHAUSTED_RETRY_CONDITION,
        RETRY_ATTEMPTS,
    ];
}

/// A queue by both its names: the ARN messages and rules speak of, the URL SQS calls take.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueRef {
    pub arn: String,
    pub url: String,
}

impl QueueRef {
    /// The queue's name: the last part of its ARN.
    pub fn name(&self) -> &str {
        queue_name(&self.arn)
    }
}

/// The name in a queue ARN (`arn:aws:sqs:<region>:<account>:<name>`).
pub fn queue_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// A message attribute, as SQS carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttribute {
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<Vec<u8>>,
}

impl MessageAttribute {
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            data_type: "String".to_owned(),
            string_value: Some(value.into()),
            binary_value: None,
        }
    }
}

/// A message received from a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// SQS's id of this copy of the message, stable while it sits in this queue. The redrive's
    /// journal tracks copies by it; consumers never see it (a message sent back gets a new one,
    /// and they de-duplicate on the ids paysaga puts in the body).
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// `DeadLetterQueueSourceArn`: SQS sets it when a queue's redrive policy moved the message.
    pub source_arn: Option<String>,
    /// How often the dead-letter queue has delivered this copy (`ApproximateReceiveCount`).
    pub receive_count: u32,
    /// When the message was first sent (`SentTimestamp`, which SQS keeps across redrive-policy
    /// moves, so a DLQ's retention runs from it).
    pub sent_at: Option<DateTime<Utc>>,
    /// The trace it travels in (`AWSTraceHeader`): a message sent back keeps it.
    pub trace_header: Option<lambda_toolkit::trace::TraceHeader>,
}

/// How a message came to be in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A paysaga consumer gave up on it and said why.
    Consumer(FailureRecord),
    /// EventBridge could not deliver it to a rule's target.
    EventDelivery {
        rule_arn: String,
        target_arn: String,
        error_code: String,
        error_message: String,
    },
    /// A queue's redrive policy moved it: its consumer crashed, timed out, or could not reach
    /// the DLQ itself. Nothing says why.
    RedrivePolicy { source_arn: Option<String> },
}

/// What the redrive stamps on a message it sends back (the [`REDRIVE_ATTRIBUTE`] attribute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveStamp {
    /// How many times this message has been sent back from a dead-letter queue, this included.
    pub redrives: u32,
    /// The dead-letter queue it was sent back from.
    pub dead_letter_queue: String,
    pub at: DateTime<Utc>,
    /// Set when an operator replayed it from the parking table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_id: Option<String>,
}

impl DeadLetter {
    fn string_attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .and_then(|attribute| attribute.string_value.as_deref())
    }

    /// Where the message came from, read from its attributes.
    pub fn origin(&self) -> Origin {
        if let Some(record) = FAILURE_ATTRIBUTES.iter().find_map(|name| {
            self.string_attribute(name)
                .and_then(|json| serde_json::from_str::<FailureRecord>(json).ok())
        }) {
            return Origin::Consumer(record);
        }
        if let (Some(rule_arn), Some(target_arn)) = (
            self.string_attribute(event_delivery::RULE_ARN),
            self.string_attribute(event_delivery::TARGET_ARN),
        ) {
            let text = |name| self.string_attribute(name).unwrap_or_default().to_owned();
            return Origin::EventDelivery {
                rule_arn: rule_arn.to_owned(),
                target_arn: target_arn.to_owned(),
                error_code: text(event_delivery::ERROR_CODE),
                error_message: text(event_delivery::ERROR_MESSAGE),
            };
        }
        Origin::RedrivePolicy {
            source_arn: self.source_arn.clone(),
        }
    }

    /// The redrive's stamp from an earlier trip back, if any.
    pub fn stamp(&self) -> Option<RedriveStamp> {
        self.string_attribute(REDRIVE_ATTRIBUTE)
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// How many times the message was sent back from a dead-letter queue before.
    pub fn redrives(&self) -> u32 {
        self.stamp().map_or(0, |stamp| stamp.redrives)
    }

    /// The key of this copy in the redrive's journal and in the parking table.
    pub fn key(&self, dead_letter_queue: &QueueRef) -> String {
        format!("{}/{}", dead_letter_queue.name(), self.message_id)
    }

    /// The attributes of the copy sent back: the message's own, without the failure records of
    /// its last trip, with a fresh stamp. SQS allows 10 attributes; the stamp always fits.
    pub fn attributes_sent_back(&self, stamp: &RedriveStamp) -> BTreeMap<String, MessageAttribute> {
        let mut attributes: BTreeMap<String, MessageAttribute> = self
            .attributes
            .iter()
            .filter(|(name, _)| {
                !FAILURE_ATTRIBUTES.contains(&name.as_str())
                    && name.as_str() != REDRIVE_ATTRIBUTE
                    && !event_delivery::ALL.contains(&name.as_str())
            })
            .take(9)
            .map(|(name, attribute)| (name.clone(), attribute.clone()))
            .collect();
        let stamp = serde_json::to_string(stamp).expect("a stamp is plain data that serialises");
        attributes.insert(
            REDRIVE_ATTRIBUTE.to_owned(),
            MessageAttribute::string(stamp),
        );
        attributes
    }
}

/// A target of an EventBridge rule, as the redrive needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTarget {
    pub arn: String,
    /// The target reshapes events (`Input`, `InputPath`, `InputTransformer`): the event in the
    /// DLQ is not what the target receives, so it cannot simply be sent to it.
    pub reshapes_events: bool,
}

/// What a lookup of a rule's targets found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTargets {
    Found(Vec<RuleTarget>),
    /// The rule does not exist (any more).
    NoSuchRule,
    /// The lookup failed; it may work later.
    Unavailable(String),
}

/// What the redrive does with a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A retry can help: send it back to this queue (ARN).
    Return { destination: String },
    /// Retrying cannot help as it is: keep it in the parking table for an operator.
    Park { reason: String },
    /// Cannot tell now (a lookup failed): leave it in the DLQ for a later run.
    Leave { reason: String },
}

/// What [`classify`] knows besides the message.
pub struct Surroundings<'a> {
    /// The queues whose redrive policy targets this dead-letter queue.
    pub sources: &'a [QueueRef],
    /// The targets of the rules named by event-delivery failures, looked up beforehand.
    pub rule_targets: &'a HashMap<String, RuleTargets>,
    /// A message sent back this many times and failing again is parked.
    pub max_redrives: u32,
    /// A message that cannot be sent back and is this old is parked rather than left to the
    /// DLQ's retention.
    pub park_after: chrono::Duration,
    pub now: DateTime<Utc>,
}

/// Lambda's record of an asynchronous run that failed, as an `EventInvokeConfig` `OnFailure`
/// destination receives it (Lambda Developer Guide, "Capturing records of asynchronous
/// invocations"): the redrive's own scheduled runs land in the event-delivery DLQ so.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedRun {
    request_context: FailedRunContext,
    #[serde(default)]
    response_payload: Option<FailedRunError>,
    /// Present when a stream trigger gave up on a batch (its on-failure destination's record).
    #[serde(default, rename = "DDBStreamBatchInfo")]
    stream_batch: Option<StreamBatch>,
}

/// The records of a stream a trigger gave up on.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamBatch {
    stream_arn: String,
    start_sequence_number: String,
    end_sequence_number: String,
}

/// A stream record the event relay could not read and set aside
/// (functions/event-relay/src/set_aside.rs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetAsideRecord {
    stream_arn: String,
    sequence_number: String,
    #[allow(dead_code)] // read for its shape: an item's keys
    keys: serde_json::Value,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedRunContext {
    function_arn: String,
    /// `RetriesExhausted` or `EventAgeExceeded`.
    condition: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedRunError {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    error_message: String,
}

impl FailedRun {
    fn from_body(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }

    /// Why it is parked: which function, why Lambda gave up, and the error if there was one.
    fn reason(&self) -> String {
        // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        let function = self
            .request_context
            .function_arn
            .split(":function:")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .unwrap_or(&self.request_context.function_arn);
        let error = self
            .response_payload
            .as_ref()
            .map(|e| format!(": {} {}", e.error_type, e.error_message))
            .unwrap_or_default();
        if let Some(batch) = &self.stream_batch {
            return format!(
                "the stream trigger of {function} gave up ({}) on records {} to {} of {}; they \
                 are in the table still: publish their events from it",
                self.request_context.condition,
                batch.start_sequence_number,
                batch.end_sequence_number,
                batch.stream_arn
            );
        }
        format!(
            "an asynchronous run of {function} failed ({}){}; Lambda's record of it, nothing to send back",
            self.request_context.condition,
            error.trim_end()
        )
    }
}

/// Decides what becomes of a dead letter, in this order:
/// 0. an event EventBridge could not deliver to something other than a queue is parked, and so
///    is Lambda's record of a function's failed asynchronous run or of a stream batch its
///    trigger gave up on ([`FailedRun`]), and a stream record the event relay set aside;
/// 1. a body that breaks paysaga's event contracts (not an event, an unknown type or version,
///    a detail that does not validate) is parked: no retry can fix it;
/// 2. a consumer's failure record of kind `permanent` parks it, with the consumer's reason;
/// 3. a message sent back `max_redrives` times already is parked: its "transient" cause is not;
/// 4. otherwise it goes back where it failed: the source queue the record or SQS names (one of
///    this DLQ's sources), or the rule target EventBridge could not deliver to (still a target
///    of its rule, a queue, receiving events unchanged); what cannot go back is parked;
/// 5. when a lookup failed it stays in the DLQ, unless it is `park_after` old.
pub fn classify(letter: &DeadLetter, around: &Surroundings<'_>) -> Verdict {
    let origin = letter.origin();
    // What EventBridge failed to deliver to a function (the redrive's own schedule, say) is
    // not a queue message at all.
    if let Origin::EventDelivery { target_arn, .. } = &origin
        && !target_arn.starts_with("arn:aws:sqs:")
    {
        return Verdict::Park {
            reason: format!("only queue targets are redriven; deliver it to {target_arn} by hand"),
        };
    }
    if let Some(run) = FailedRun::from_body(&letter.body) {
        return Verdict::Park {
            reason: run.reason(),
        };
    }
    if let Ok(aside) = serde_json::from_str::<SetAsideRecord>(&letter.body) {
        return Verdict::Park {
            reason: format!(
                "the event relay cannot read record {} of {}: {}",
                aside.sequence_number, aside.stream_arn, aside.reason
            ),
        };
    }
    if let Err(violation) = DomainEvent::from_eventbridge(&letter.body) {
        return Verdict::Park {
            reason: format!("contract: {violation}"),
        };
    }
    if let Origin::Consumer(record) = &origin
        && record.kind != "transient"
    {
        return Verdict::Park {
            reason: format!("{} failure: {}", record.kind, record.reason),
        };
    }
    let redrives = letter.redrives();
    if around.max_redrives > 0 && redrives >= around.max_redrives {
        return Verdict::Park {
            reason: format!(
                "failed again after {redrives} redrive{}",
                if redrives == 1 { "" } else { "s" }
            ),
        };
    }
    let verdict = match origin {
        Origin::Consumer(record) => back_to_source(record.source_queue.as_deref(), around),
        Origin::RedrivePolicy { source_arn } => back_to_source(source_arn.as_deref(), around),
        Origin::EventDelivery {
            rule_arn,
            target_arn,
            ..
        } => back_to_target(&rule_arn, &target_arn, around),
    };
    match verdict {
        Verdict::Leave { reason } if is_old(letter, around) => Verdict::Park {
            reason: format!(
                "{reason}; parked after {} days in the dead-letter queue",
                around.park_after.num_days()
            ),
        },
        verdict => verdict,
    }
}

fn is_old(letter: &DeadLetter, around: &Surroundings<'_>) -> bool {
    letter
        .sent_at
        .is_some_and(|sent_at| around.now - sent_at >= around.park_after)
}

fn back_to_source(source_arn: Option<&str>, around: &Surroundings<'_>) -> Verdict {
    let destination = match (source_arn, around.sources) {
        (Some(arn), sources) if sources.iter().any(|source| source.arn == arn) => arn,
        (Some(arn), _) => {
            return Verdict::Park {
                reason: format!(
                    "it failed on {}, which is not a source of this dead-letter queue",
                    queue_name(arn)
                ),
            };
        }
        (None, [only]) => &only.arn,
        (None, _) => {
            return Verdict::Park {
                reason: "nothing says which of this dead-letter queue's sources it failed on"
                    .to_owned(),
            };
        }
    };
    Verdict::Return {
        destination: destination.to_owned(),
    }
}

fn back_to_target(rule_arn: &str, target_arn: &str, around: &Surroundings<'_>) -> Verdict {
    let targets = match around.rule_targets.get(rule_arn) {
        Some(RuleTargets::Found(targets)) => targets,
        Some(RuleTargets::NoSuchRule) => {
            return Verdict::Park {
                reason: format!("rule {rule_arn} no longer exists"),
            };
        }
        Some(RuleTargets::Unavailable(error)) => {
            return Verdict::Leave {
                reason: format!("the targets of rule {rule_arn} could not be read: {error}"),
            };
        }
        None => {
            return Verdict::Leave {
                reason: format!("the targets of rule {rule_arn} were not looked up"),
            };
        }
    };
    let Some(target) = targets.iter().find(|target| target.arn == target_arn) else {
        return Verdict::Park {
            reason: format!("{target_arn} is no longer a target of rule {rule_arn}"),
        };
    };
    if target.reshapes_events {
        return Verdict::Park {
            reason: format!("rule target {target_arn} reshapes events; deliver it by hand"),
        };
    }
    Verdict::Return {
        destination: target_arn.to_owned(),
    }
}

/// The rule ARNs of the event-delivery failures among `letters`, to look up before
/// classifying them.
pub fn rules_named(letters: &[DeadLetter]) -> Vec<String> {
    let mut rules: Vec<String> = letters
        .iter()
        .filter_map(|letter| match letter.origin() {
            Origin::EventDelivery { rule_arn, .. } => Some(rule_arn),
            _ => None,
        })
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use paysaga_domain::test_support::request;

    pub(crate) const SOURCE: &str = "arn:aws:sqs:us-east-1:000000000000:payments";
    pub(crate) const DLQ: &str = "arn:aws:sqs:us-east-1:000000000000:payments-dlq";
    const RULE: &str = "arn:aws:events:us-east-1:000000000000:rule/paysaga/payment-requested";

    pub(crate) fn queue(arn: &str) -> QueueRef {
        QueueRef {
            arn: arn.to_owned(),
            url: format!("http://sqs.local/000000000000/{}", queue_name(arn)),
        }
    }

    /// A `PaymentRequested` event, as its rule's SQS target receives it.
    pub(crate) fn event_body(amount: u64) -> String {
        envelope(&DomainEvent::payment_requested(
            &request(amount),
            Utc::now(),
        ))
    }

    /// `event`, as a rule's SQS target receives it.
    pub(crate) fn envelope(event: &DomainEvent) -> String {
        serde_json::json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": event.detail_type(),
            "source": event.source(),
            "account": "000000000000",
            "time": "2026-11-26T10:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": serde_json::from_str::<serde_json::Value>(&event.detail_json()).unwrap(),
        })
        .to_string()
    }

    pub(crate) fn letter(id: &str, body: &str) -> DeadLetter {
        DeadLetter {
            message_id: id.to_owned(),
            receipt_handle: format!("receipt-{id}"),
            body: body.to_owned(),
            attributes: BTreeMap::new(),
            source_arn: None,
            receive_count: 1,
            sent_at: Some(Utc::now()),
            trace_header: None,
        }
    }

    pub(crate) fn with_record(letter: DeadLetter, kind: &str, source: &str) -> DeadLetter {
        with_record_in(FAILURE_ATTRIBUTE, letter, kind, source)
    }

    /// `letter` with a consumer's failure record in the attribute `name`.
    fn with_record_in(name: &str, mut letter: DeadLetter, kind: &str, source: &str) -> DeadLetter {
        let record = FailureRecord {
            kind: kind.to_owned(),
            reason: "wallets table throttled".to_owned(),
            source_queue: Some(source.to_owned()),
            receive_count: 5,
            failed_at: Utc::now(),
        };
        letter.attributes.insert(
            name.to_owned(),
            MessageAttribute::string(serde_json::to_string(&record).unwrap()),
        );
        letter
    }

    fn undelivered(mut letter: DeadLetter, target: &str) -> DeadLetter {
        for (name, value) in [
            (event_delivery::RULE_ARN, RULE),
            (event_delivery::TARGET_ARN, target),
            (event_delivery::ERROR_CODE, "NO_RESOURCE"),
            (event_delivery::ERROR_MESSAGE, "queue does not exist"),
        ] {
            letter
                .attributes
                .insert(name.to_owned(), MessageAttribute::string(value));
        }
        letter
    }

    struct World {
        sources: Vec<QueueRef>,
        rule_targets: HashMap<String, RuleTargets>,
    }

    impl World {
        fn new() -> Self {
            Self {
                sources: vec![queue(SOURCE)],
                rule_targets: HashMap::from([(
                    RULE.to_owned(),
                    RuleTargets::Found(vec![RuleTarget {
                        arn: SOURCE.to_owned(),
                        reshapes_events: false,
                    }]),
                )]),
            }
        }

        fn classify(&self, letter: &DeadLetter) -> Verdict {
            classify(
                letter,
                &Surroundings {
                    sources: &self.sources,
                    rule_targets: &self.rule_targets,
                    max_redrives: 3,
                    park_after: chrono::Duration::days(10),
                    now: Utc::now(),
                },
            )
        }
    }

    fn parked_because(verdict: Verdict) -> String {
        match verdict {
            Verdict::Park { reason } => reason,
            other => panic!("expected the message to be parked, got {other:?}"),
        }
    }

    fn back_to_payments() -> Verdict {
        Verdict::Return {
            destination: SOURCE.to_owned(),
        }
    }

    #[test]
    fn a_transient_failure_goes_back_to_the_queue_it_failed_on() {
        let letter = with_record(letter("m1", &event_body(100)), "transient", SOURCE);
        assert_eq!(World::new().classify(&letter), back_to_payments());
    }

    #[test]
    fn a_permanent_failure_is_parked_with_the_consumers_reason() {
        let letter = with_record(letter("m1", &event_body(100)), "permanent", SOURCE);
        let reason = parked_because(World::new().classify(&letter));
        assert!(reason.contains("wallets table throttled"), "{reason}");
    }

    #[test]
    fn bodies_that_break_the_contracts_are_parked_whatever_the_record_says() {
        let world = World::new();
        let newer = event_body(100).replace(r#""version":1"#, r#""version":7"#);
        for body in [
            "not json",
            r#"{"source":"paysaga.payments"}"#,
            newer.as_str(),
        ] {
            let letter = with_record(letter("m1", body), "transient", SOURCE);
            let reason = parked_because(world.classify(&letter));
            assert!(reason.starts_with("contract: "), "{reason}");
        }
    }

    #[test]
    fn a_record_of_a_failed_scheduled_run_is_parked_with_its_error() {
        // What Lambda sends an OnFailure destination (the redrive's own scheduled runs).
        let record = serde_json::json!({
            "version": "1.0",
            "timestamp": "2026-11-26T10:15:02.118Z",
            "requestContext": {
                "requestId": "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
                "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:paysaga-prod-dlq-redrive:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 1
            },
            "requestPayload": {"action": "redrive"},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "Redrive", "errorMessage": "parking table unavailable"}
        });
        let reason = parked_because(World::new().classify(&letter("m1", &record.to_string())));
        assert!(reason.contains("paysaga-prod-dlq-redrive"), "{reason}");
        assert!(reason.contains("RetriesExhausted"), "{reason}");
        assert!(reason.contains("parking table unavailable"), "{reason}");

        // A run that waited too long has no response.
        let mut expired = record;
        expired["requestContext"]["condition"] = "EventAgeExceeded".into();
        expired.as_object_mut().unwrap().remove("responsePayload");
        let reason = parked_because(World::new().classify(&letter("m2", &expired.to_string())));
        assert!(reason.contains("EventAgeExceeded"), "{reason}");
    }

    #[test]
    fn what_the_event_relay_gave_up_on_or_set_aside_is_parked_saying_where_it_is() {
        // A stream trigger's on-failure record (the relay's failures queue).
        let batch = serde_json::json!({
            "requestContext": {
                "requestId": "3f0c3bd4-4c1c-4a40-9d0c-1a9b3f1c2d1e",
                "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:paysaga-prod-event-relay",
                "condition": "RecordAgeExceeded",
                "approximateInvokeCount": 1440
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": "2026-12-06T10:15:02.118Z",
            "DDBStreamBatchInfo": {
                "shardId": "shardId-00000001",
                "startSequenceNumber": "100",
                "endSequenceNumber": "120",
                "approximateArrivalOfFirstRecord": "2026-12-05T10:15:02Z",
                "approximateArrivalOfLastRecord": "2026-12-05T10:15:03Z",
                "batchSize": 21,
                "streamArn": "arn:aws:dynamodb:us-east-1:000000000000:table/paysaga-prod-payments/stream/x"
            }
        });
        let reason = parked_because(World::new().classify(&letter("m1", &batch.to_string())));
        assert!(reason.contains("paysaga-prod-event-relay"), "{reason}");
        assert!(reason.contains("records 100 to 120"), "{reason}");
        assert!(reason.contains("table/paysaga-prod-payments"), "{reason}");

        // A record the relay set aside.
        let aside = serde_json::json!({
            "stream_arn": "arn:aws:dynamodb:us-east-1:000000000000:table/paysaga-prod-outbox/stream/x",
            "sequence_number": "42",
            "keys": {"event_id": {"S": "evt"}},
            "reason": "not an outbox record: missing field `source`"
        });
        let reason = parked_because(World::new().classify(&letter("m2", &aside.to_string())));
        assert!(reason.contains("record 42"), "{reason}");
        assert!(reason.contains("missing field `source`"), "{reason}");
    }

    #[test]
    fn a_message_moved_by_a_redrive_policy_goes_back_to_its_source() {
        let world = World::new();
        let mut named = letter("m1", &event_body(100));
        named.source_arn = Some(SOURCE.to_owned());
        assert_eq!(world.classify(&named), back_to_payments());
        // Nothing names the source, but the DLQ has only one.
        assert_eq!(
            world.classify(&letter("m2", &event_body(100))),
            back_to_payments()
        );
    }

    #[test]
    fn a_source_the_dlq_does_not_serve_or_cannot_tell_is_parked() {
        let mut world = World::new();
        let elsewhere = with_record(
            letter("m1", &event_body(100)),
            "transient",
            "arn:aws:sqs:us-east-1:000000000000:other",
        );
        assert!(parked_because(world.classify(&elsewhere)).contains("other"));
        world
            .sources
            .push(queue("arn:aws:sqs:us-east-1:000000000000:urgent"));
        parked_because(world.classify(&letter("m2", &event_body(100))));
    }

    #[test]
    fn a_message_that_keeps_failing_after_redrives_is_parked() {
        let world = World::new();
        let mut again = with_record(letter("m1", &event_body(100)), "transient", SOURCE);
        let stamp = |redrives| RedriveStamp {
            redrives,
            dead_letter_queue: DLQ.to_owned(),
            at: Utc::now(),
            parked_id: None,
        };
        again.attributes = again.attributes_sent_back(&stamp(2));
        again = with_record(again, "transient", SOURCE);
        assert_eq!(world.classify(&again), back_to_payments());
        again.attributes = again.attributes_sent_back(&stamp(3));
        again = with_record(again, "transient", SOURCE);
        assert_eq!(
            parked_because(world.classify(&again)),
            "failed again after 3 redrives"
        );
    }

    #[test]
    fn an_undelivered_event_goes_to_the_rule_target_that_missed_it() {
        let mut world = World::new();
        let letter = undelivered(letter("m1", &event_body(100)), SOURCE);
        assert_eq!(rules_named(std::slice::from_ref(&letter)), [RULE]);
        assert_eq!(world.classify(&letter), back_to_payments());

        world.rule_targets.insert(
            RULE.to_owned(),
            RuleTargets::Unavailable("throttled".to_owned()),
        );
        assert!(matches!(world.classify(&letter), Verdict::Leave { .. }));
        let mut old = letter.clone();
        old.sent_at = Some(Utc::now() - chrono::Duration::days(11));
        assert!(parked_because(world.classify(&old)).contains("after 10 days"));

        world
            .rule_targets
            .insert(RULE.to_owned(), RuleTargets::NoSuchRule);
        assert!(parked_because(world.classify(&letter)).contains("no longer exists"));
    }

    #[test]
    fn undelivered_events_that_cannot_simply_be_sent_are_parked() {
        let mut world = World::new();
        let gone = undelivered(
            letter("m1", &event_body(100)),
            "arn:aws:sqs:us-east-1:000000000000:removed",
        );
        assert!(parked_because(world.classify(&gone)).contains("no longer a target"));
        let function = "arn:aws:lambda:us-east-1:000000000000:function:audit";
        world.rule_targets.insert(
            RULE.to_owned(),
            RuleTargets::Found(vec![
                RuleTarget {
                    arn: function.to_owned(),
                    reshapes_events: false,
                },
                RuleTarget {
                    arn: SOURCE.to_owned(),
                    reshapes_events: true,
                },
            ]),
        );
        let to_function = undelivered(letter("m2", &event_body(100)), function);
        assert!(parked_because(world.classify(&to_function)).contains("only queue targets"));
        let reshaped = undelivered(letter("m3", &event_body(100)), SOURCE);
        assert!(parked_because(world.classify(&reshaped)).contains("reshapes events"));
    }

    #[test]
    fn a_record_under_the_legacy_name_is_read_and_the_current_name_wins() {
        let legacy = with_record_in(
            LEGACY_FAILURE_ATTRIBUTE,
            letter("m1", &event_body(100)),
            "permanent",
            SOURCE,
        );
        assert!(matches!(legacy.origin(), Origin::Consumer(record) if record.kind == "permanent"));
        let reason = parked_because(World::new().classify(&legacy));
        assert!(reason.contains("wallets table throttled"), "{reason}");
        // Both (an old copy that failed again under the current name): the current record.
        let both = with_record(legacy, "transient", SOURCE);
        assert!(matches!(both.origin(), Origin::Consumer(record) if record.kind == "transient"));
        assert_eq!(World::new().classify(&both), back_to_payments());
        let stamp = RedriveStamp {
            redrives: 1,
            dead_letter_queue: DLQ.to_owned(),
            at: Utc::now(),
            parked_id: None,
        };
        let sent = both.attributes_sent_back(&stamp);
        assert_eq!(
            sent.keys().map(String::as_str).collect::<Vec<_>>(),
            [REDRIVE_ATTRIBUTE],
            "neither record goes back"
        );
    }

    #[test]
    fn a_copy_sent_back_drops_the_failure_records_and_carries_a_stamp() {
        let mut letter = undelivered(
            with_record(letter("m1", &event_body(100)), "transient", SOURCE),
            SOURCE,
        );
        letter
            .attributes
            .insert("traceparent".to_owned(), MessageAttribute::string("00-abc"));
        let stamp = RedriveStamp {
            redrives: 1,
            dead_letter_queue: DLQ.to_owned(),
            at: Utc::now(),
            parked_id: None,
        };
        let sent = letter.attributes_sent_back(&stamp);
        let names: Vec<&str> = sent.keys().map(String::as_str).collect();
        assert_eq!(names, [REDRIVE_ATTRIBUTE, "traceparent"]);
        let mut copy = letter.clone();
        copy.attributes = sent;
        assert_eq!(copy.stamp(), Some(stamp));
        assert_eq!(copy.redrives(), 1);
        assert_eq!(
            copy.origin(),
            Origin::RedrivePolicy { source_arn: None },
            "the old failure records are gone"
        );
    }

    #[test]
    fn keys_name_the_dead_letter_queue_and_the_copy() {
        assert_eq!(letter("3f2a", "{}").key(&queue(DLQ)), "payments-dlq/3f2a");
    }
}
