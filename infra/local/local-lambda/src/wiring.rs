//! `.local/wiring.json`: what the local stack provisioned from `infra/template.yaml`, and the
//! AWS endpoints and credentials the functions (and the SQS pollers) use to reach it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::schedule_expression::{ScheduleExpression, ScheduleExpressionError};

/// Default `MaximumConcurrency` of an SQS trigger when the template sets no `ScalingConfig`.
/// (AWS starts with five pollers; one keeps a developer's machine quiet and the logs readable.)
const DEFAULT_MAXIMUM_CONCURRENCY: u32 = 1;
/// Default `BatchSize` of an SQS trigger, as in AWS.
const DEFAULT_BATCH_SIZE: u32 = 10;
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
