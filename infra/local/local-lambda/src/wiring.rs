//! `.local/wiring.json`: what the local stack provisioned from `infra/template.yaml`, and the
//! AWS endpoints and credentials the functions (and the SQS and stream pollers) use to reach it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dynamodb_stream_event_source::filter::{FilterPattern, FilterPatternError};
use crate::schedule_expression::{ScheduleExpression, ScheduleExpressionError};

/// Default `MaximumConcurrency` of an SQS trigger when the template sets no `ScalingConfig`.
/// (AWS starts with five pollers; one keeps a developer's machine quiet and the logs readable.)
const DEFAULT_MAXIMUM_CONCURRENCY: u32 = 1;
/// Default `BatchSize` of an SQS trigger, as in AWS.
const DEFAULT_BATCH_SIZE: u32 = 10;
/// Default `BatchSize` of a DynamoDB stream trigger, as in AWS.
const DEFAULT_STREAM_BATCH_SIZE: u32 = 100;
/// Default `MaximumRetryAttempts` of a stream trigger, as in AWS: retry until the record expires.
const RETRY_UNTIL_EXPIRED: i32 = -1;
/// Lambda's default function timeout, when the template gives none.
const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
/// Lambda's default memory size, when the template gives none.
const DEFAULT_MEMORY_MB: u32 = 128;

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("cannot read wiring file {path} (run the local stack's provisioning first)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("wiring file {path} is not valid")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("wiring file {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("the wiring has no {0}")]
    NotWired(String),
}

/// The whole wiring file. Fields local-lambda does not need (tables, event bus) are kept so
/// the type documents the contract, but nothing here depends on them.
#[derive(Debug, Clone, Deserialize)]
pub struct Wiring {
    pub stack_name: String,
    pub region: String,
    pub endpoints: Endpoints,
    #[serde(default)]
    pub event_bus_name: Option<String>,
    #[serde(default)]
    pub queues: BTreeMap<String, Queue>,
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    pub functions: Vec<Function>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Endpoints {
    /// Endpoint for every AWS service (LocalStack).
    pub aws: String,
    /// DynamoDB's own endpoint (DynamoDB Local); absent when DynamoDB goes to `aws` too.
    #[serde(default)]
    pub dynamodb: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Queue {
    pub url: String,
    pub arn: String,
    #[serde(default)]
    pub dead_letter_queue: Option<String>,
    #[serde(default)]
    pub max_receive_count: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Function {
    pub logical_id: String,
    /// Function name, used in logs, in `--only` and as `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// File name of the function's binary in the bin dir.
    pub binary: String,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub http_routes: Vec<HttpRoute>,
    #[serde(default)]
    pub sqs_triggers: Vec<SqsTrigger>,
    /// Its `Type: DynamoDB` events: event source mappings on tables' streams.
    #[serde(default)]
    pub stream_triggers: Vec<StreamTrigger>,
    /// EventBridge rules that invoke the function on a schedule.
    #[serde(default)]
    pub schedules: Vec<Schedule>,
}

impl Function {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// Whether the function runs as a local HTTP server (it has HTTP routes) rather than
    /// behind a Runtime API; such a function cannot be invoked through the Invoke API.
    pub fn serves_http(&self) -> bool {
        !self.http_routes.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
}

/// One `Type: SQS` event of a function: what AWS calls an event source mapping.
#[derive(Debug, Clone, Deserialize)]
pub struct SqsTrigger {
    /// Logical id of the queue.
    pub queue: String,
    pub queue_url: String,
    pub queue_arn: String,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    #[serde(default)]
    pub maximum_batching_window_seconds: u32,
    #[serde(default)]
    pub report_batch_item_failures: bool,
    #[serde(default)]
    pub maximum_concurrency: Option<u32>,
}

/// One `Type: DynamoDB` event of a function: an event source mapping on a table's stream.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamTrigger {
    /// Logical id of the table whose `StreamArn` the event names.
    pub table: String,
    /// The table's name, whose latest stream the mapping reads (a stream's ARN changes when
    /// its table is created again, so the wiring names the table).
    pub table_name: String,
    /// Where a shard is first read when nothing of it was processed before.
    pub starting_position: StartingPosition,
    #[serde(default = "default_stream_batch_size")]
    pub batch_size: u32,
    #[serde(default)]
    pub maximum_batching_window_seconds: u32,
    #[serde(default)]
    pub report_batch_item_failures: bool,
    #[serde(default)]
    pub bisect_batch_on_function_error: bool,
    /// Retries of a failing batch before it goes to the on-failure destination; -1: retry
    /// until the records expire from the stream (24 hours).
    #[serde(default = "default_retry_attempts")]
    pub maximum_retry_attempts: i32,
    /// `FilterCriteria.Filters[].Pattern`, as JSON text: a record is delivered when it matches
    /// one of them (every record when there is none).
    #[serde(default)]
    pub filters: Vec<String>,
    /// `DestinationConfig.OnFailure`: the queue that gets AWS's on-failure record of a batch
    /// given up on.
    #[serde(default)]
    pub on_failure_queue_url: Option<String>,
}

/// `StartingPosition` of a stream trigger (`AT_TIMESTAMP` is Kinesis-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    /// The oldest record still in the shard.
    TrimHorizon,
    /// Just after the newest record: only what is written from now on.
    Latest,
}

impl std::fmt::Display for StartingPosition {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::Latest => "LATEST",
        })
    }
}

impl StreamTrigger {
    pub fn batching_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.maximum_batching_window_seconds))
    }

    /// Retries of the same records before giving up on them; `None`: until they expire.
    pub fn retry_limit(&self) -> Option<u32> {
        u32::try_from(self.maximum_retry_attempts).ok()
    }

    /// The parsed filter patterns, in the order of the template.
    pub fn filter_patterns(&self) -> Result<Vec<FilterPattern>, FilterPatternError> {
        self.filters.iter().map(|text| text.parse()).collect()
    }
}

/// One `AWS::Events::Rule` with a `ScheduleExpression` that targets the function.
#[derive(Debug, Clone, Deserialize)]
pub struct Schedule {
    /// Logical id of the rule.
    pub rule: String,
    /// `rate(...)` or `cron(...)`, as in the template.
    pub expression: String,
    /// The target's `Input`: JSON text sent instead of the scheduled event.
    #[serde(default)]
    pub input: Option<String>,
    /// The rule's `State` is `ENABLED` (the default).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

impl Schedule {
    pub fn expression(&self) -> Result<ScheduleExpression, ScheduleExpressionError> {
        self.expression.parse()
    }
}

impl SqsTrigger {
    /// Number of pollers, each owning one function instance.
    pub fn pollers(&self) -> u32 {
        self.maximum_concurrency
            .unwrap_or(DEFAULT_MAXIMUM_CONCURRENCY)
            .max(1)
    }

    pub fn batching_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.maximum_batching_window_seconds))
    }
}

fn default_enabled() -> bool {
    true
}

fn default_timeout_seconds() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

fn default_memory_mb() -> u32 {
    DEFAULT_MEMORY_MB
}

fn default_batch_size() -> u32 {
    DEFAULT_BATCH_SIZE
}

fn default_stream_batch_size() -> u32 {
    DEFAULT_STREAM_BATCH_SIZE
}

fn default_retry_attempts() -> i32 {
    RETRY_UNTIL_EXPIRED
}

impl Wiring {
    pub fn load(path: &Path) -> Result<Self, WiringError> {
        let text = std::fs::read_to_string(path).map_err(|source| WiringError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The queue with this logical id (`PaymentsQueue`, ...).
    pub fn queue(&self, logical_id: &str) -> Result<&Queue, WiringError> {
        self.queues
            .get(logical_id)
            .ok_or_else(|| WiringError::NotWired(format!("queue {logical_id}")))
    }

    /// The name of the table with this logical id (`PaymentsTable`, ...).
    pub fn table(&self, logical_id: &str) -> Result<&str, WiringError> {
        self.tables
            .get(logical_id)
            .map(String::as_str)
            .ok_or_else(|| WiringError::NotWired(format!("table {logical_id}")))
    }

    /// The function with this name (`payment-saga`, ...).
    pub fn function(&self, name: &str) -> Result<&Function, WiringError> {
        self.functions
            .iter()
            .find(|function| function.name == name)
            .ok_or_else(|| WiringError::NotWired(format!("function {name}")))
    }

    /// A variable of a function's environment.
    pub fn function_env(&self, function: &str, variable: &str) -> Result<&str, WiringError> {
        self.function(function)?
            .environment
            .get(variable)
            .map(String::as_str)
            .ok_or_else(|| WiringError::NotWired(format!("{variable} in {function}'s environment")))
    }

    /// Parses and checks the file's text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, WiringError> {
        let wiring: Wiring = serde_json::from_str(text).map_err(|source| WiringError::Parse {
            path: path.to_owned(),
            source,
        })?;
        wiring.check().map_err(|problem| WiringError::Invalid {
            path: path.to_owned(),
            problem,
        })?;
        Ok(wiring)
    }

    fn check(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for function in &self.functions {
            if !names.insert(function.name.as_str()) {
                return Err(format!("function name {} appears twice", function.name));
            }
            if function.binary.is_empty() || function.binary.contains('/') {
                return Err(format!(
                    "function {}: binary must be a file name, got {:?}",
                    function.name, function.binary
                ));
            }
            if function.timeout_seconds == 0 {
                return Err(format!("function {}: timeout_seconds is 0", function.name));
            }
            for trigger in &function.sqs_triggers {
                if !(1..=10_000).contains(&trigger.batch_size) {
                    return Err(format!(
                        "function {}: batch_size {} on {} is outside 1..=10000",
                        function.name, trigger.batch_size, trigger.queue
                    ));
                }
                if trigger.maximum_batching_window_seconds > 300 {
                    return Err(format!(
                        "function {}: maximum_batching_window_seconds {} on {} is over 300",
                        function.name, trigger.maximum_batching_window_seconds, trigger.queue
                    ));
                }
            }
            let mut stream_tables = std::collections::BTreeSet::new();
            for trigger in &function.stream_triggers {
                check_stream_trigger(trigger)
                    .map_err(|problem| format!("function {}: {problem}", function.name))?;
                // Checkpoints are kept per function and table.
                if !stream_tables.insert(trigger.table.as_str()) {
                    return Err(format!(
                        "function {}: two stream triggers on table {}; local-lambda plays one \
                         per function and table",
                        function.name, trigger.table
                    ));
                }
            }
            for schedule in &function.schedules {
                if let Err(error) = schedule.expression() {
                    return Err(format!(
                        "function {}: schedule {}: {error}",
                        function.name, schedule.rule
                    ));
                }
                let input = schedule.input.as_deref().unwrap_or("null");
                if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(input) {
                    return Err(format!(
                        "function {}: schedule {}: input is not JSON text: {error}",
                        function.name, schedule.rule
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What AWS would refuse in a `Type: DynamoDB` event, and filter patterns local-lambda cannot play.
fn check_stream_trigger(trigger: &StreamTrigger) -> Result<(), String> {
    let table = &trigger.table;
    if trigger.table_name.is_empty() {
        return Err(format!("stream trigger on {table}: table_name is empty"));
    }
    if !(1..=10_000).contains(&trigger.batch_size) {
        return Err(format!(
            "batch_size {} on {table}'s stream is outside 1..=10000",
            trigger.batch_size
        ));
    }
    if trigger.maximum_batching_window_seconds > 300 {
        return Err(format!(
            "maximum_batching_window_seconds {} on {table}'s stream is over 300",
            trigger.maximum_batching_window_seconds
        ));
    }
    if !(-1..=10_000).contains(&trigger.maximum_retry_attempts) {
        return Err(format!(
            "maximum_retry_attempts {} on {table}'s stream is outside -1..=10000",
            trigger.maximum_retry_attempts
        ));
    }
    for (number, text) in trigger.filters.iter().enumerate() {
        if let Err(error) = text.parse::<FilterPattern>() {
            return Err(format!(
                "filter {} on {table}'s stream ({text}): {error}",
                number + 1
            ));
        }
    }
    Ok(())
}

/// Where the functions and the pollers reach AWS, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAws {
    pub region: String,
    pub endpoint_url: String,
    pub dynamodb_endpoint_url: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl LocalAws {
    /// Endpoints come from the wiring unless `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB`
    /// are set (a developer pointing at another emulator); credentials come from the
    /// environment, `test`/`test` by default; the region is the wiring's, where the queues live.
    pub fn resolve(wiring: &Wiring, env_var: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |name: &str| env_var(name).filter(|value| !value.is_empty());
        LocalAws {
            region: wiring.region.clone(),
            endpoint_url: non_empty("AWS_ENDPOINT_URL")
                .unwrap_or_else(|| wiring.endpoints.aws.clone()),
            dynamodb_endpoint_url: non_empty("AWS_ENDPOINT_URL_DYNAMODB")
                .or_else(|| wiring.endpoints.dynamodb.clone()),
            access_key_id: non_empty("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "test".to_owned()),
            secret_access_key: non_empty("AWS_SECRET_ACCESS_KEY")
                .unwrap_or_else(|| "test".to_owned()),
        }
    }

    /// The variables a function process gets so its SDK clients reach the local stack.
    pub fn function_environment(&self) -> Vec<(String, String)> {
        let mut variables = vec![
            ("AWS_REGION".to_owned(), self.region.clone()),
            ("AWS_DEFAULT_REGION".to_owned(), self.region.clone()),
            ("AWS_ENDPOINT_URL".to_owned(), self.endpoint_url.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                self.secret_access_key.clone(),
            ),
        ];
        if let Some(dynamodb) = &self.dynamodb_endpoint_url {
            variables.push(("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), dynamodb.clone()));
        }
        variables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../tests/fixtures/wiring.json");

    fn sample() -> Wiring {
        Wiring::parse(SAMPLE, Path::new("fixtures/wiring.json")).expect("fixture is valid")
    }

    #[test]
    fn sample_wiring_parses_with_defaults() {
        let wiring = sample();
        assert_eq!(wiring.region, "us-east-1");
        let saga = wiring
            .functions
            .iter()
            .find(|function| function.name == "payment-saga")
            .expect("fixture has payment-saga");
        assert_eq!(saga.timeout(), Duration::from_secs(30));
        let trigger = &saga.sqs_triggers[0];
        assert_eq!(trigger.pollers(), 2);
        assert_eq!(trigger.batch_size, 10);
        assert_eq!(trigger.batching_window(), Duration::from_secs(1));
        assert!(trigger.report_batch_item_failures);
        let api = wiring
            .functions
            .iter()
            .find(|function| function.name == "api")
            .expect("fixture has api");
        assert_eq!(api.http_routes.len(), 5);
        assert!(api.serves_http());
        assert!(api.sqs_triggers.is_empty());
        assert!(api.stream_triggers.is_empty());
        assert!(api.schedules.is_empty());
        let redrive = wiring
            .functions
            .iter()
            .find(|function| function.name == "dlq-redrive")
            .expect("fixture has dlq-redrive");
        assert!(!redrive.serves_http());
        let [schedule] = redrive.schedules.as_slice() else {
            panic!("one schedule: {:?}", redrive.schedules);
        };
        assert_eq!(schedule.rule, "RedriveScheduleRule");
        assert_eq!(schedule.input.as_deref(), Some(r#"{"action":"redrive"}"#));
        assert!(schedule.enabled);
        let Ok(ScheduleExpression::Rate(rate)) = schedule.expression() else {
            panic!("a rate: {}", schedule.expression);
        };
        assert_eq!(rate.period(), Duration::from_secs(15 * 60));
    }

    #[test]
    fn stream_triggers_parse_with_aws_defaults() {
        let wiring = sample();
        let relay = wiring
            .function("event-relay")
            .expect("fixture has event-relay");
        let [payment_log, outbox] = relay.stream_triggers.as_slice() else {
            panic!("two stream triggers: {:?}", relay.stream_triggers);
        };
        assert_eq!(payment_log.table, "PaymentsTable");
        assert_eq!(payment_log.table_name, "paysaga-local-PaymentsTable");
        assert_eq!(payment_log.starting_position, StartingPosition::TrimHorizon);
        assert_eq!(payment_log.batch_size, 100);
        assert_eq!(payment_log.batching_window(), Duration::ZERO);
        assert!(payment_log.report_batch_item_failures);
        assert!(payment_log.bisect_batch_on_function_error);
        assert_eq!(payment_log.retry_limit(), None);
        assert_eq!(payment_log.filter_patterns().expect("valid").len(), 1);
        assert!(
            payment_log
                .on_failure_queue_url
                .as_deref()
                .is_some_and(|url| url.ends_with("paysaga-local-event-relay-failures"))
        );
        // What the template leaves out takes AWS's defaults.
        assert_eq!(outbox.starting_position, StartingPosition::Latest);
        assert_eq!(outbox.batch_size, 100);
        assert_eq!(outbox.maximum_retry_attempts, -1);
        assert!(!outbox.report_batch_item_failures);
        assert!(!outbox.bisect_batch_on_function_error);
        assert_eq!(outbox.on_failure_queue_url, None);
        // Functions written before stream triggers existed have none.
        assert!(wiring.functions[0].stream_triggers.is_empty());
    }

    fn with_stream_trigger(change: serde_json::Value) -> Result<Wiring, WiringError> {
        let mut value: serde_json::Value = serde_json::from_str(SAMPLE).expect("fixture is JSON");
        let trigger = &mut value["functions"][3]["stream_triggers"][0];
        if let (Some(trigger), serde_json::Value::Object(change)) =
            (trigger.as_object_mut(), change)
        {
            trigger.extend(change);
        }
        Wiring::parse(&value.to_string(), Path::new("w.json"))
    }

    #[test]
    fn stream_triggers_aws_would_refuse_or_local_lambda_cannot_play_are_rejected() {
        assert_eq!(
            with_stream_trigger(serde_json::json!({"maximum_retry_attempts": 0}))
                .expect("valid")
                .functions[3]
                .stream_triggers[0]
                .retry_limit(),
            Some(0)
        );
        for (change, expected) in [
            (
                serde_json::json!({"batch_size": 0}),
                "batch_size 0 on PaymentsTable's stream",
            ),
            (
                serde_json::json!({"batch_size": 10_001}),
                "outside 1..=10000",
            ),
            (
                serde_json::json!({"maximum_batching_window_seconds": 301}),
                "is over 300",
            ),
            (
                serde_json::json!({"maximum_retry_attempts": -2}),
                "outside -1..=10000",
            ),
            (
                serde_json::json!({"maximum_retry_attempts": 10_001}),
                "outside -1..=10000",
            ),
            (
                serde_json::json!({"filters": [r#"{"eventName": [{"anything-but": ["REMOVE"]}]}"#]}),
                "filter 1 on PaymentsTable's stream",
            ),
            (serde_json::json!({"filters": ["{"]}), "not JSON"),
            (
                serde_json::json!({"table": "OutboxTable"}),
                "two stream triggers on table OutboxTable",
            ),
        ] {
            let error = with_stream_trigger(change.clone())
                .expect_err("invalid")
                .to_string();
            assert!(
                error.contains("function event-relay: ") && error.contains(expected),
                "{change}: {error}"
            );
        }
        for change in [
            serde_json::json!({"starting_position": "AT_TIMESTAMP"}),
            serde_json::json!({"maximum_retry_attempts": "forever"}),
        ] {
            let error = with_stream_trigger(change.clone()).expect_err("invalid");
            assert!(
                matches!(error, WiringError::Parse { .. }),
                "{change}: {error}"
            );
        }
    }

    fn with_schedule(schedule: serde_json::Value) -> Result<Wiring, WiringError> {
        let mut value: serde_json::Value = serde_json::from_str(SAMPLE).expect("fixture is JSON");
        value["functions"][2]["schedules"] = serde_json::json!([schedule]);
        Wiring::parse(&value.to_string(), Path::new("w.json"))
    }

    #[test]
    fn schedules_default_to_enabled_and_bad_expressions_or_inputs_are_rejected() {
        let wiring = with_schedule(serde_json::json!({
            "rule": "Nightly", "expression": "cron(0 3 * * ? *)"
        }))
        .expect("valid");
        let schedule = &wiring.functions[2].schedules[0];
        assert!(schedule.enabled);
        assert_eq!(schedule.input, None);
        // Functions written before schedules existed have none.
        assert!(sample().functions[0].schedules.is_empty());

        for (expression, input) in [
            ("rate(0 minutes)", None),
            ("rate(5 minute)", None),
            ("every 5 minutes", None),
            ("rate(5 minutes)", Some("not json")),
        ] {
            let error = with_schedule(serde_json::json!({
                "rule": "Broken", "expression": expression, "input": input
            }))
            .expect_err("invalid");
            let message = error.to_string();
            assert!(
                message.contains("function dlq-redrive: schedule Broken"),
                "{message}"
            );
        }
    }

    #[test]
    fn duplicate_function_names_are_rejected() {
        let mut value: serde_json::Value = serde_json::from_str(SAMPLE).expect("fixture is JSON");
        let functions = value["functions"].as_array_mut().expect("functions array");
        let copy = functions[0].clone();
        functions.push(copy);
        let error = Wiring::parse(&value.to_string(), Path::new("w.json")).unwrap_err();
        assert!(matches!(error, WiringError::Invalid { .. }), "{error}");
    }

    #[test]
    fn environment_overrides_wiring_endpoints_and_credentials_default_to_test() {
        let wiring = sample();
        let from_wiring = LocalAws::resolve(&wiring, |_| None);
        assert_eq!(from_wiring.endpoint_url, "http://127.0.0.1:4566");
        assert_eq!(
            from_wiring.dynamodb_endpoint_url.as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(from_wiring.access_key_id, "test");

        let overridden = LocalAws::resolve(&wiring, |name| match name {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:4577".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("local".to_owned()),
            _ => None,
        });
        assert_eq!(overridden.endpoint_url, "http://127.0.0.1:4577");
        assert_eq!(overridden.access_key_id, "local");
        assert_eq!(overridden.secret_access_key, "test");
    }
}
