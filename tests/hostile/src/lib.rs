//! Hostile input for paysaga's property tests (`proptest`): what a careless or malicious
//! client, or a broken publisher, can send.
//!
//! - [`json_value`]: any JSON value, with the numbers and strings that break parsers (huge,
//!   negative and fractional numbers, unicode, secrets) and nesting;
//! - [`mutated`]: a *valid* document with one to four mutations (a field dropped, retyped,
//!   duplicated or added; a value replaced by a hostile one; a value buried in arrays): the
//!   input that gets furthest into the code before something is wrong;
//! - [`body`]: the bytes of a request or message body: mostly mutations of a valid document,
//!   also its text cut short, duplicated keys, deep nesting, random bytes and random text;
//! - [`SECRETS`]: a card number, an e-mail address and a JWT, which the mutations plant
//!   everywhere so that tests can check that none reaches a log.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// A test card number (Visa's, passing Luhn).
pub const CARD_NUMBER: &str = "4111111111111111";
/// An e-mail address.
pub const EMAIL: &str = "mallory.secret@example.com";
/// A JWT (`{"alg":"HS256"}`, `{"sub":"mallory"}`, a signature).
pub const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLW9mLW1hbGxvcnk";
/// Everything the tests plant and then look for in the logs.
pub const SECRETS: [&str; 3] = [CARD_NUMBER, EMAIL, JWT];

/// Text a client may send: secrets (alone, in sentences, as a bearer token, in an id's shape),
/// unicode, control characters, very long text, and anything at all.
pub fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            CARD_NUMBER.to_owned(),
            EMAIL.to_owned(),
            JWT.to_owned(),
            format!("Bearer {JWT}"),
            format!("wal_{CARD_NUMBER}"),
            format!("pay_{CARD_NUMBER}"),
            format!("contact {EMAIL} card {CARD_NUMBER}"),
            "4111 1111 1111 1111".to_owned(),
            "EUR".to_owned(),
            "eur".to_owned(),
            "JPY".to_owned(),
            "XAU".to_owned(),
            "wal_".to_owned(),
            "wal_a".to_owned(),
            "wal_../../etc/passwd".to_owned(),
            "urgent".to_owned(),
            "".to_owned(),
            " ".to_owned(),
            "\u{0}".to_owned(),
            "\u{202e}rtl\u{feff}".to_owned(),
            "💸".repeat(40),
            "é".repeat(200),
            "a".repeat(70_000),
            "\\\"".to_owned(),
            "null".to_owned(),
            "1e309".to_owned(),
        ]),
        2 => any::<String>(),
    ]
}

/// Numbers that break amounts and counters.
pub fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(-1),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1_000_000_000_000_000u64),
            json!(1_000_000_000_000_001u64),
            json!(100_000_000),
            json!(100_000_001),
            json!(4_111_111_111_111_111u64),
            json!(0.5),
            json!(-0.0),
            json!(12.5),
            json!(1e300),
            json!(f64::MAX),
            json!(u32::MAX),
            json!(u32::MAX as u64 + 1),
        ]),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |x| x.is_finite())
            .prop_map(Value::from),
    ]
}

/// A leaf: null, a boolean, a hostile number or string.
pub fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        hostile_number(),
        hostile_string().prop_map(Value::String),
    ]
}

/// Any JSON value, nested up to a few levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object key: usually a field paysaga knows (so mutations hit real fields), else anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "amount",
            "minor_units",
            "currency",
            "wallet_id",
            "from_wallet",
            "to_wallet",
            "priority",
            "payment_id",
            "version",
            "event_id",
            "data",
            "detail",
            "detail-type",
            "source",
            "occurred_at",
            "status",
            "failure",
            "code",
            "action",
            "queue",
            "parked_id",
            "test_faults",
        ])
        .prop_map(str::to_owned),
        hostile_string(),
    ]
}

/// One change to a document, at the node its [`Index`] picks.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Remove the node from its parent.
    Drop(Index),
    /// Replace the node with another value (a retype, most of the time).
    Replace(Index, Value),
    /// Add a field to the object (or the nearest object above the node).
    AddField(Index, String, Value),
    /// Bury the node `depth` arrays deep.
    Bury(Index, usize),
    /// Write the node's parent with the node's key twice (a duplicate field, in the text).
    DuplicateKey(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::Drop),
        4 => (any::<Index>(), json_value()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        2 => (any::<Index>(), key(), json_value())
            .prop_map(|(at, key, value)| Mutation::AddField(at, key, value)),
        1 => (any::<Index>(), 1usize..200).prop_map(|(at, depth)| Mutation::Bury(at, depth)),
        1 => any::<Index>().prop_map(Mutation::DuplicateKey),
    ]
}

/// A step on the way to a node: an object's key or an array's index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Item(usize),
}

/// The paths of every node of `value`, the root first.
fn paths(value: &Value) -> Vec<Vec<Step>> {
    let mut all = vec![Vec::new()];
    let mut index = 0;
    while index < all.len() {
        let path = all[index].clone();
        match node(value, &path) {
            Some(Value::Object(map)) => {
                for key in map.keys() {
                    all.push([path.clone(), vec![Step::Key(key.clone())]].concat());
                }
            }
            Some(Value::Array(items)) => {
                for item in 0..items.len() {
                    all.push([path.clone(), vec![Step::Item(item)]].concat());
                }
            }
            _ => {}
        }
        index += 1;
    }
    all
}

fn node<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, step| match step {
        Step::Key(key) => value.get(key),
        Step::Item(item) => value.get(item),
    })
}

fn node_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |value, step| match step {
        Step::Key(key) => value.get_mut(key),
        Step::Item(item) => value.get_mut(item),
    })
}

/// A document after its mutations: the value, and whether its text repeats a key.
#[derive(Debug, Clone)]
pub struct Mutated {
    pub value: Value,
    /// The path of an object whose text is written with its first key twice.
    duplicate: Option<Vec<Step>>,
}

impl Mutated {
    /// The JSON text.
    pub fn text(&self) -> String {
        match &self.duplicate {
            None => self.value.to_string(),
            Some(path) => write_with_duplicate(&self.value, path),
        }
    }
}

fn write_with_duplicate(value: &Value, path: &[Step]) -> String {
    match (value, path.split_first()) {
        (Value::Object(map), None) => {
            let mut parts: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}:{value}", Value::from(key.as_str())))
                .collect();
            if let Some(first) = parts.first().cloned() {
                parts.push(first);
            }
            format!("{{{}}}", parts.join(","))
        }
        (Value::Object(map), Some((Step::Key(key), rest))) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(name, value)| {
                    let text = if name == key {
                        write_with_duplicate(value, rest)
                    } else {
                        value.to_string()
                    };
                    format!("{}:{text}", Value::from(name.as_str()))
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        (Value::Array(items), Some((Step::Item(item), rest))) => {
            let parts: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    if index == *item {
                        write_with_duplicate(value, rest)
                    } else {
                        value.to_string()
                    }
                })
                .collect();
            format!("[{}]", parts.join(","))
        }
        _ => value.to_string(),
    }
}

/// Applies `mutations` to `document` in turn.
pub fn apply(document: &Value, mutations: &[Mutation]) -> Mutated {
    let mut value = document.clone();
    let mut duplicate = None;
    for mutation in mutations {
        let all = paths(&value);
        let pick = |at: &Index| all[at.index(all.len())].clone();
        match mutation {
            Mutation::Drop(at) => {
                let path = pick(at);
                if let Some((last, parent)) = path.split_last()
                    && let Some(parent) = node_mut(&mut value, parent)
                {
                    match (parent, last) {
                        (Value::Object(map), Step::Key(key)) => {
                            map.remove(key);
                        }
                        (Value::Array(items), Step::Item(item)) => {
                            items.remove(*item);
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Replace(at, replacement) => {
                if let Some(target) = node_mut(&mut value, &pick(at)) {
                    *target = replacement.clone();
                }
            }
            Mutation::AddField(at, key, field) => {
                let mut path = pick(at);
                loop {
                    if let Some(Value::Object(map)) = node_mut(&mut value, &path) {
                        map.insert(key.clone(), field.clone());
                        break;
                    }
                    if path.pop().is_none() {
                        break;
                    }
                }
            }
            Mutation::Bury(at, depth) => {
                if let Some(target) = node_mut(&mut value, &pick(at)) {
                    let mut buried = target.take();
                    for _ in 0..*depth {
                        buried = Value::Array(vec![buried]);
                    }
                    *target = buried;
                }
            }
            Mutation::DuplicateKey(at) => {
                let mut path = pick(at);
                loop {
                    if matches!(node(&value, &path), Some(Value::Object(map)) if !map.is_empty()) {
                        duplicate = Some(path);
                        break;
                    }
                    if path.pop().is_none() {
                        break;
                    }
                }
            }
        }
    }
    Mutated { value, duplicate }
}

/// `document` with one to four [`Mutation`]s.
pub fn mutated(document: Value) -> impl Strategy<Value = Mutated> {
    prop::collection::vec(mutation(), 1..5).prop_map(move |mutations| apply(&document, &mutations))
}

/// The bytes of a body: mostly a mutated `document`, else its text cut short, deep nesting,
/// random JSON, random text or random bytes.
pub fn body(document: Value) -> impl Strategy<Value = Vec<u8>> {
    let text = document.to_string();
    prop_oneof![
        12 => mutated(document).prop_map(|mutated| mutated.text().into_bytes()),
        1 => any::<Index>().prop_map(move |cut| {
            let end = cut.index(text.len().max(1));
            text.as_bytes()[..end].to_vec()
        }),
        1 => (1usize..5_000).prop_map(|depth| format!("{}1{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        1 => (1usize..5_000).prop_map(|depth| "{\"a\":".repeat(depth).into_bytes()),
        2 => json_value().prop_map(|value| value.to_string().into_bytes()),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::test_runner::{Config, TestRunner};

    use super::*;

    #[test]
    fn mutations_change_the_document_and_keep_it_json() {
        let document = json!({"amount": {"minor_units": 1, "currency": "EUR"}, "to": "wal_b"});
        let mut runner = TestRunner::new(Config::with_cases(300));
        let changed = std::cell::Cell::new(0);
        runner
            .run(&mutated(document.clone()), |mutated| {
                let text = mutated.text();
                // Buried values may nest deeper than serde_json reads (128): a change too.
                let reparsed = match serde_json::from_str::<Value>(&text) {
                    Ok(reparsed) => reparsed,
                    Err(error) if error.to_string().contains("recursion limit") => Value::Null,
                    Err(error) => panic!("not JSON ({error}): {text}"),
                };
                if reparsed != document || mutated.duplicate.is_some() {
                    changed.set(changed.get() + 1);
                }
                Ok(())
            })
            .expect("mutations produce JSON");
        let changed = changed.get();
        assert!(
            changed > 250,
            "only {changed} of 300 mutations changed the document"
        );
    }

    #[test]
    fn a_duplicated_key_is_written_twice() {
        let document = json!({"a": {"b": 1}});
        let mutated = Mutated {
            value: document,
            duplicate: Some(vec![Step::Key("a".to_owned())]),
        };
        assert_eq!(mutated.text(), r#"{"a":{"b":1,"b":1}}"#);
    }
}

/// The EventBridge events (JSON) of the SQS fixtures in `events/lambda/`: valid events of
/// every type, to mutate.
pub fn fixture_events() -> Vec<Value> {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/lambda");
    let mut events = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{directory}: {error}"))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("sqs-") && name.ends_with(".json"))
        })
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let batch: Value = serde_json::from_str(&text).expect("fixtures are JSON");
        for record in batch["Records"].as_array().into_iter().flatten() {
            if let Some(Ok(event)) = record["body"].as_str().map(serde_json::from_str::<Value>)
                && event.get("detail-type").is_some()
            {
                events.push(event);
            }
        }
    }
    assert!(events.len() >= 4, "the fixtures hold events of every type");
    events
}

/// The fixture events of one `detail-type`.
pub fn fixture_events_of(detail_type: &str) -> Vec<Value> {
    fixture_events()
        .into_iter()
        .filter(|event| event["detail-type"] == detail_type)
        .collect()
}

/// An SQS event (as Lambda delivers it) holding `bodies`, each delivered `receive_count` times.
pub fn sqs_event(bodies: &[String], receive_count: u32) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(index, body)| {
            json!({
                "messageId": format!("message-{index}"),
                "receiptHandle": format!("handle-{index}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": receive_count.to_string()},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:paysaga-local-hostile",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Lines that hold a planted secret or anything that looks like a card number, a JWT or an
/// e-mail address ([`redact::findings`]), each with why.
pub fn leaks<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut leaks = Vec::new();
    for line in lines {
        for secret in SECRETS {
            if line.contains(secret) {
                leaks.push(format!("{secret:?} in: {line}"));
            }
        }
        for finding in redact::findings(line) {
            leaks.push(format!("{} in: {line}", finding.kind));
        }
    }
    leaks
}

/// Running handlers in property tests: a runtime per case, the logs captured, the dead letters
/// kept.
pub mod harness {
    use std::future::Future;

    use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
    use lambda_toolkit::logging::{LogBuffer, json_layer};
    use lambda_toolkit::sqs_batch::RecordWithoutId;
    use lambda_toolkit::sqs_consumer::MessageHandler;
    use lambda_toolkit::testing::TestConsumer;
    use proptest::prelude::*;
    use tracing_subscriber::prelude::*;

    /// The `maxReceiveCount` the consumers are given in these tests: a message delivered this
    /// often goes to the [`KeptDeadLetters`] with its failure record when it fails.
    pub const MAX_RECEIVE_COUNT: u32 = 3;

    pub use lambda_toolkit::testing::KeptDeadLetters;

    /// Runs `future` on a fresh runtime with every log line of this thread captured (the
    /// functions' JSON layer, [`lambda_toolkit::logging::json_layer`]): its output and the lines.
    pub fn run_logged<F: Future>(future: F) -> (F::Output, Vec<String>) {
        let buffer = LogBuffer::default();
        let subscriber = tracing_subscriber::registry().with(json_layer(buffer.clone()));
        let _default = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for one test case");
        let output = runtime.block_on(future);
        (output, buffer.lines())
    }

    /// A batch of `bodies` (not UTF-8: replaced), each delivered `receive_count` times.
    pub fn batch(bodies: &[Vec<u8>], receive_count: u32) -> SqsEvent {
        let bodies: Vec<String> = bodies
            .iter()
            .map(|body| String::from_utf8_lossy(body).into_owned())
            .collect();
        serde_json::from_value(crate::sqs_event(&bodies, receive_count))
            .expect("the SQS event shape")
    }

    /// What a consumer must do with any batch: answer (every record has an id), report only
    /// its own messages, give every message it gives up on a reason that quotes no secret, log no
    /// secret, and never panic. (A handler that panics fails its own message only, which the
    /// rest would let pass: its panic is found by the error line `lambda_toolkit::sqs_batch` logs,
    /// which carries a `panic` field.)
    pub fn check_batch(
        answer: &Result<SqsBatchResponse, RecordWithoutId>,
        size: usize,
        dead_letters: &KeptDeadLetters,
        logs: &[String],
    ) -> Result<(), TestCaseError> {
        let Ok(response) = answer else {
            return Err(TestCaseError::fail("the batch failed as a whole"));
        };
        let ids: Vec<String> = (0..size).map(|index| format!("message-{index}")).collect();
        for failure in &response.batch_item_failures {
            prop_assert!(ids.contains(&failure.item_identifier));
        }
        for (id, record) in dead_letters.records() {
            prop_assert!(ids.contains(&id));
            prop_assert!(!record.reason.trim().is_empty(), "no reason for {id}");
            let leaked = crate::leaks([record.reason.as_str()]);
            prop_assert!(
                leaked.is_empty(),
                "the failure record quotes input: {leaked:?}"
            );
        }
        let leaked = crate::leaks(logs.iter().map(String::as_str));
        prop_assert!(leaked.is_empty(), "logged: {leaked:#?}");
        for line in logs {
            let logged: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            prop_assert!(
                logged["fields"]["panic"].is_null(),
                "a handler panicked: {line}"
            );
        }
        Ok(())
    }

    /// `bodies`, each on its `receive_count`th delivery, through a consumer of `handler` that
    /// gives up on the [`MAX_RECEIVE_COUNT`]th, checked as [`check_batch`] checks: the lines
    /// it logged.
    pub fn hostile_batch<H: MessageHandler>(
        handler: H,
        bodies: &[Vec<u8>],
        receive_count: u32,
    ) -> Result<Vec<String>, TestCaseError> {
        let consumer = TestConsumer::new(handler, MAX_RECEIVE_COUNT);
        let (answer, logs) = run_logged(consumer.consumer.handle(batch(bodies, receive_count)));
        check_batch(&answer, bodies.len(), &consumer.dead_letters, &logs)?;
        Ok(logs)
    }

    /// Every fixture event of `detail_types` (all of them when empty), once, through a
    /// consumer of `handler`: none fails and nothing logged leaks; the lines it logged.
    pub fn fixture_events_through<H: MessageHandler>(
        handler: H,
        detail_types: &[&str],
    ) -> Vec<String> {
        let events = if detail_types.is_empty() {
            crate::fixture_events()
        } else {
            detail_types
                .iter()
                .flat_map(|kind| crate::fixture_events_of(kind))
                .collect()
        };
        let bodies: Vec<Vec<u8>> = events
            .iter()
            .map(|event| event.to_string().into_bytes())
            .collect();
        let consumer = TestConsumer::new(handler, MAX_RECEIVE_COUNT);
        let (answer, logs) = run_logged(consumer.consumer.handle(batch(&bodies, 1)));
        let response = answer.expect("a batch response");
        assert!(response.batch_item_failures.is_empty(), "{logs:#?}");
        assert!(
            crate::leaks(logs.iter().map(String::as_str)).is_empty(),
            "{logs:#?}"
        );
        logs
    }

    /// Bodies for a batch: one to three hostile versions of the given events.
    pub fn bodies(events: Vec<serde_json::Value>) -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(
            prop::sample::select(events).prop_flat_map(crate::body),
            1..=3,
        )
    }
}
