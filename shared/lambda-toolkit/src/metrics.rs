//! CloudWatch metrics in the Embedded Metric Format (EMF): a function counts what happened in
//! one invocation on a [`Metrics`] collector, then flushes it through its [`MetricsSink`] as
//! JSON lines on stdout, which CloudWatch Logs turns into metrics — no API call, no latency.
//!
//! Each flushed line is one EMF document
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! `_aws.Timestamp` (milliseconds since the epoch), `_aws.CloudWatchMetrics` with one directive
//! (`Namespace`, one dimension set, the metrics' `Name` and `Unit`), and at the top level the
//! value of every dimension (a string) and of every metric (a number). A document holds one
//! value per dimension, so a flush writes one line per distinct set of dimension values, with at
//! most [`MAX_METRICS`] metrics each (a set with more is split over several lines). A metric
//! [`observed`](Metrics::observe) many times in an invocation (each message's wait, say) is an
//! array of its values, at most [`MAX_VALUES`] a document, from which CloudWatch keeps the
//! distribution (percentiles), not only a sum.
//!
//! The application names its namespace ([`MetricsSink::stdout`]); `POWERTOOLS_METRICS_NAMESPACE`
//! overrides it when set (the variable the Powertools libraries read, so the same stack
//! configuration serves functions in any language). Every document carries a `service`
//! dimension naming the function. Dimension values are names (queues, outcomes, circuit
//! states): never a customer, order or message id, which would both leak personal data and make
//! one metric per id.
//!
//! Why not a crate: `metrics_cloudwatch_embedded` (a backend of the `metrics` facade) is the
//! maintained one, but it installs a process-wide recorder, so handler tests running in
//! parallel would share (and flush) each other's counts, and its Lambda integration wraps the
//! runtime's `run`. What is needed here is a per-invocation collector with an injectable
//! writer; with `serde_json` (already a dependency) that is this small module.
//!
//! ```
//! use lambda_toolkit::metrics::{MetricsBuffer, MetricsSink, Unit, check_document};
//!
//! let buffer = MetricsBuffer::default();
//! let sink = MetricsSink::new("shop", "orders", buffer.clone());
//! let mut metrics = sink.collector();
//! metrics.count("MessagesReceived", &[("queue", "orders")], 10);
//! metrics.count("MessagesFailed", &[("queue", "orders")], 1);
//! metrics.gauge("CircuitOpen", &[], 0.0, Unit::None);
//! sink.flush(metrics);
//!
//! let lines = buffer.documents().expect("every line is JSON");
//! assert_eq!(lines.len(), 2, "one document per set of dimension values");
//! let orders = lines.iter().find(|doc| doc["queue"] == "orders").unwrap();
//! assert_eq!(orders["MessagesReceived"], 10.0);
//! assert_eq!(orders["service"], "orders");
//! assert_eq!(orders["_aws"]["CloudWatchMetrics"][0]["Namespace"], "shop");
//! assert!(lines.iter().all(|doc| check_document(doc).is_ok()));
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tracing::warn;

/// The environment variable that overrides the namespace the application names.
pub const NAMESPACE_VARIABLE: &str = "POWERTOOLS_METRICS_NAMESPACE";
/// The EMF limit of metrics in one directive.
pub const MAX_METRICS: usize = 100;
/// The EMF limit of values of one metric in one document.
pub const MAX_VALUES: usize = 100;
/// The EMF limit of dimensions in one dimension set.
pub const MAX_DIMENSIONS: usize = 30;
/// The dimension naming the function, on every document.
pub const SERVICE_DIMENSION: &str = "service";

/// A metric's unit: the few of the EMF's allowed units this module writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    /// A state or level with no unit (a circuit breaker open or not).
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// Every unit the EMF specification allows (CloudWatch's `StandardUnit`).
const ALLOWED_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// `duration` in milliseconds, to the whole microsecond: a latency's value for
/// [`Metrics::observe`]. Rounded so that its text has no long float tail (`1100.9969500000002`),
/// whose run of digits the log scanners that look for card numbers would rightly flag.
pub fn milliseconds(duration: std::time::Duration) -> f64 {
    duration.as_micros() as f64 / 1_000.0
}

/// The metrics of one invocation, by set of dimension values. Counts add up; a gauge keeps its
/// last value; an observed metric keeps every value.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    service: String,
    recorded: BTreeMap<DimensionValues, MetricValues>,
}

/// A set of dimension values (besides `service`), sorted by name.
type DimensionValues = Vec<(String, String)>;
/// Metric values by name.
type MetricValues = BTreeMap<String, (Unit, Recorded)>;

/// What one metric holds.
#[derive(Debug, Clone, PartialEq)]
enum Recorded {
    /// A count's sum or a gauge's last value.
    Value(f64),
    /// Every value observed, in order.
    Values(Vec<f64>),
}

impl Metrics {
    /// Adds `n` to the count `name` under `dimensions` (besides `service`).
    pub fn count(&mut self, name: &str, dimensions: &[(&str, &str)], n: u64) {
        let entry = self
            .metrics_of(dimensions)
            .entry(name.to_owned())
            .or_insert((Unit::Count, Recorded::Value(0.0)));
        // Counts of one invocation stay far below 2^53, where f64 stops being exact.
        match &mut entry.1 {
            Recorded::Value(sum) => *sum += n as f64,
            values @ Recorded::Values(_) => *values = Recorded::Value(n as f64),
        }
    }

    /// Sets the gauge `name` under `dimensions` (besides `service`).
    pub fn gauge(&mut self, name: &str, dimensions: &[(&str, &str)], value: f64, unit: Unit) {
        self.metrics_of(dimensions)
            .insert(name.to_owned(), (unit, Recorded::Value(value)));
    }

    /// Adds `value` to the values of `name` under `dimensions` (besides `service`): one
    /// observation of a distribution (a latency, say).
    pub fn observe(&mut self, name: &str, dimensions: &[(&str, &str)], value: f64, unit: Unit) {
        let entry = self
            .metrics_of(dimensions)
            .entry(name.to_owned())
            .or_insert((unit, Recorded::Values(Vec::new())));
        match &mut entry.1 {
            Recorded::Values(values) => values.push(value),
            other @ Recorded::Value(_) => *other = Recorded::Values(vec![value]),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty()
    }

    fn metrics_of(&mut self, dimensions: &[(&str, &str)]) -> &mut MetricValues {
        let mut key: DimensionValues = dimensions
            .iter()
            .filter(|(name, _)| *name != SERVICE_DIMENSION)
            .take(MAX_DIMENSIONS - 1)
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        key.sort();
        key.dedup_by(|a, b| a.0 == b.0);
        self.recorded.entry(key).or_default()
    }

    /// The EMF documents of what was recorded: one per set of dimension values and per
    /// [`MAX_METRICS`] metrics, and more where a metric holds over [`MAX_VALUES`] values (each
    /// further document carries the next values of such metrics alone).
    pub fn documents(&self, namespace: &str, timestamp: DateTime<Utc>) -> Vec<Value> {
        let mut documents = Vec::new();
        for (dimensions, metrics) in &self.recorded {
            let rounds = metrics
                .values()
                .map(|(_, recorded)| match recorded {
                    Recorded::Value(_) => 1,
                    Recorded::Values(values) => values.len().div_ceil(MAX_VALUES).max(1),
                })
                .max()
                .unwrap_or(1);
            for round in 0..rounds {
                let in_round: Vec<(&String, Unit, Value)> = metrics
                    .iter()
                    .filter_map(|(name, (unit, recorded))| {
                        let value = match recorded {
                            Recorded::Value(value) if round == 0 => json!(value),
                            Recorded::Value(_) => return None,
                            Recorded::Values(values) => {
                                let start = round * MAX_VALUES;
                                if start >= values.len() {
                                    return None;
                                }
                                let end = values.len().min(start + MAX_VALUES);
                                json!(values[start..end])
                            }
                        };
                        Some((name, *unit, value))
                    })
                    .collect();
                for chunk in in_round.chunks(MAX_METRICS) {
                    documents.push(self.document(namespace, timestamp, dimensions, chunk));
                }
            }
        }
        documents
    }

    fn document(
        &self,
        namespace: &str,
        timestamp: DateTime<Utc>,
        dimensions: &DimensionValues,
        metrics: &[(&String, Unit, Value)],
    ) -> Value {
        let mut root = Map::new();
        let mut names = vec![Value::from(SERVICE_DIMENSION)];
        root.insert(SERVICE_DIMENSION.to_owned(), self.service.clone().into());
        for (name, value) in dimensions {
            names.push(name.clone().into());
            root.insert(name.clone(), value.clone().into());
        }
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        for (name, _, value) in metrics {
            root.insert((*name).clone(), value.clone());
        }
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [names],
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }
}

/// One invocation's [`Metrics`], shared by the work it does at once (the messages of an SQS
/// batch, handled concurrently): each count takes the lock for no longer than it lasts.
#[derive(Debug, Default)]
pub struct InvocationMetrics(Mutex<Metrics>);

impl InvocationMetrics {
    pub fn new(metrics: Metrics) -> Self {
        Self(Mutex::new(metrics))
    }

    /// Adds `n` to the count `name` under `dimensions` ([`Metrics::count`]).
    pub fn count(&self, name: &str, dimensions: &[(&str, &str)], n: u64) {
        self.locked().count(name, dimensions, n);
    }

    /// Sets the gauge `name` under `dimensions` ([`Metrics::gauge`]).
    pub fn gauge(&self, name: &str, dimensions: &[(&str, &str)], value: f64, unit: Unit) {
        self.locked().gauge(name, dimensions, value, unit);
    }

    /// Adds `value` to the values of `name` under `dimensions` ([`Metrics::observe`]).
    pub fn observe(&self, name: &str, dimensions: &[(&str, &str)], value: f64, unit: Unit) {
        self.locked().observe(name, dimensions, value, unit);
    }

    /// What was recorded, to flush.
    pub fn into_inner(self) -> Metrics {
        self.0
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A count is never left half-done (no code that can panic runs under the lock), so a
    /// poisoned lock still holds good numbers.
    fn locked(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where a function's metrics go: its namespace, its `service` dimension and a writer (stdout
/// in Lambda; a buffer in tests). Built once in `main`, shared by the invocations.
pub struct MetricsSink {
    namespace: String,
    service: String,
    writer: Mutex<Box<dyn Write + Send>>,
}

impl MetricsSink {
    pub fn new(
        namespace: impl Into<String>,
        service: impl Into<String>,
        writer: impl Write + Send + 'static,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            service: service.into(),
            writer: Mutex::new(Box::new(writer)),
        }
    }

    /// Stdout, as a Lambda function writes its metrics: in `namespace`, or in the one
    /// `POWERTOOLS_METRICS_NAMESPACE` names when that is set (and not blank).
    pub fn stdout(namespace: impl Into<String>, service: impl Into<String>) -> Self {
        let namespace = namespace_or_override(namespace.into(), |name| std::env::var(name).ok());
        Self::new(namespace, service, std::io::stdout())
    }

    /// An empty collector for one invocation.
    pub fn collector(&self) -> Metrics {
        Metrics {
            service: self.service.clone(),
            recorded: BTreeMap::new(),
        }
    }

    /// An empty collector for one invocation whose work runs concurrently.
    pub fn invocation(&self) -> InvocationMetrics {
        InvocationMetrics::new(self.collector())
    }

    /// Writes `metrics` as EMF documents, one line each. Metrics are not worth failing an
    /// invocation for: a write error is logged and the numbers dropped.
    pub fn flush(&self, metrics: Metrics) {
        if metrics.is_empty() {
            return;
        }
        let mut text = String::new();
        for document in metrics.documents(&self.namespace, Utc::now()) {
            text.push_str(&document.to_string());
            text.push('\n');
        }
        let mut writer = match self.writer.lock() {
            Ok(writer) => writer,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(error) = writer
            .write_all(text.as_bytes())
            .and_then(|()| writer.flush())
        {
            warn!(%error, "metrics could not be written");
        }
    }
}

/// `namespace`, unless the variable [`NAMESPACE_VARIABLE`] (read by `variable`) names another.
fn namespace_or_override(namespace: String, variable: impl Fn(&str) -> Option<String>) -> String {
    variable(NAMESPACE_VARIABLE)
        .filter(|overridden| !overridden.trim().is_empty())
        .unwrap_or(namespace)
}

/// A writer that keeps what is written, for tests: clone it into a [`MetricsSink`], then read
/// the documents back.
#[derive(Debug, Clone, Default)]
pub struct MetricsBuffer(Arc<Mutex<Vec<u8>>>);

impl MetricsBuffer {
    /// Every line written so far, each parsed as JSON.
    pub fn documents(&self) -> Result<Vec<Value>, serde_json::Error> {
        let bytes = match self.0.lock() {
            Ok(bytes) => bytes.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(serde_json::from_str)
            .collect()
    }
}

impl Write for MetricsBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut bytes) => bytes.extend_from_slice(buf),
            Err(poisoned) => poisoned.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What makes a JSON value not an EMF document this module writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid EMF document: {0}")]
pub struct InvalidDocument(pub String);

/// Checks `document` against the EMF specification: `_aws.Timestamp` a number,
/// `CloudWatchMetrics` directives with a namespace, dimension sets of at most
/// [`MAX_DIMENSIONS`] names each with a string value at the top level, at most [`MAX_METRICS`]
/// metrics each with an allowed unit and, at the top level, a number or an array of at most
/// [`MAX_VALUES`] numbers.
pub fn check_document(document: &Value) -> Result<(), InvalidDocument> {
    let bad = |why: &str| Err(InvalidDocument(why.to_owned()));
    let Some(root) = document.as_object() else {
        return bad("not a JSON object");
    };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
        return bad("no _aws object");
    };
    if !aws.get("Timestamp").is_some_and(Value::is_u64) {
        return bad("_aws.Timestamp is not a non-negative integer");
    }
    let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
        return bad("_aws.CloudWatchMetrics is not an array");
    };
    for directive in directives {
        if directive["Namespace"].as_str().is_none_or(str::is_empty) {
            return bad("a directive has no namespace");
        }
        let Some(sets) = directive["Dimensions"].as_array() else {
            return bad("Dimensions is not an array");
        };
        for set in sets {
            let Some(names) = set.as_array() else {
                return bad("a dimension set is not an array");
            };
            if names.len() > MAX_DIMENSIONS {
                return bad("a dimension set has more than 30 dimensions");
            }
            for name in names {
                let Some(name) = name.as_str() else {
                    return bad("a dimension name is not a string");
                };
                if !root.get(name).is_some_and(Value::is_string) {
                    return Err(InvalidDocument(format!(
                        "dimension {name} has no string value"
                    )));
                }
            }
        }
        let Some(metrics) = directive["Metrics"].as_array() else {
            return bad("Metrics is not an array");
        };
        if metrics.len() > MAX_METRICS {
            return bad("a directive has more than 100 metrics");
        }
        for metric in metrics {
            let Some(name) = metric["Name"].as_str() else {
                return bad("a metric has no name");
            };
            if let Some(unit) = metric.get("Unit")
                && !unit
                    .as_str()
                    .is_some_and(|unit| ALLOWED_UNITS.contains(&unit))
            {
                return Err(InvalidDocument(format!(
                    "metric {name} has an unknown unit"
                )));
            }
            let numeric = |value: &Value| match value {
                Value::Array(values) => {
                    values.len() <= MAX_VALUES && values.iter().all(Value::is_number)
                }
                value => value.is_number(),
            };
            if !root.get(name).is_some_and(numeric) {
                return Err(InvalidDocument(format!(
                    "metric {name} has no numeric value"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> MetricsSink {
        MetricsSink::new("shop", "orders", Vec::new())
    }

    #[test]
    fn the_application_names_the_namespace_unless_the_environment_overrides_it() {
        let unset = |_: &str| None;
        assert_eq!(namespace_or_override("shop".into(), unset), "shop");
        let set = |name: &str| (name == NAMESPACE_VARIABLE).then(|| "shop-staging".to_owned());
        assert_eq!(namespace_or_override("shop".into(), set), "shop-staging");
        let blank = |_: &str| Some("  ".to_owned());
        assert_eq!(namespace_or_override("shop".into(), blank), "shop");
    }

    #[test]
    fn a_document_has_the_emf_shape() {
        let mut metrics = sink().collector();
        metrics.count("MessagesReceived", &[("queue", "orders")], 3);
        metrics.count("MessagesReceived", &[("queue", "orders")], 2);
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let documents = metrics.documents("shop", at);
        assert_eq!(
            documents,
            [json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_123_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "shop",
                        "Dimensions": [["service", "queue"]],
                        "Metrics": [{"Name": "MessagesReceived", "Unit": "Count"}],
                    }],
                },
                "service": "orders",
                "queue": "orders",
                "MessagesReceived": 5.0,
            })]
        );
        assert_eq!(check_document(&documents[0]), Ok(()));
    }

    #[test]
    fn each_set_of_dimension_values_is_its_own_document() {
        let mut metrics = sink().collector();
        metrics.count("MessagesReceived", &[("queue", "orders")], 1);
        metrics.count("MessagesReceived", &[("queue", "orders-dlq")], 4);
        metrics.gauge("CircuitOpen", &[], 1.0, Unit::None);
        let documents = metrics.documents("shop", Utc::now());
        assert_eq!(documents.len(), 3);
        let dlq = documents
            .iter()
            .find(|document| document["queue"] == "orders-dlq")
            .unwrap();
        assert_eq!(dlq["MessagesReceived"], 4.0);
    }

    #[test]
    fn more_than_a_hundred_metrics_are_split() {
        let mut metrics = sink().collector();
        for i in 0..150 {
            metrics.count(&format!("Metric{i}"), &[], 1);
        }
        let documents = metrics.documents("shop", Utc::now());
        assert_eq!(documents.len(), 2);
        for document in &documents {
            assert_eq!(check_document(document), Ok(()));
        }
    }

    #[test]
    fn observed_values_are_kept_each_at_most_a_hundred_a_document() {
        let mut metrics = sink().collector();
        for wait in 0..250 {
            metrics.observe(
                "QueueWait",
                &[("queue", "orders")],
                f64::from(wait),
                Unit::Milliseconds,
            );
        }
        metrics.count("MessagesReceived", &[("queue", "orders")], 250);
        let documents = metrics.documents("shop", Utc::now());
        assert_eq!(documents.len(), 3, "250 values: 100, 100 and 50");
        let mut waits = Vec::new();
        for document in &documents {
            assert_eq!(check_document(document), Ok(()));
            waits.extend(document["QueueWait"].as_array().unwrap().iter().cloned());
        }
        let expected: Vec<Value> = (0..250).map(|wait| json!(f64::from(wait))).collect();
        assert_eq!(waits, expected, "every value once, in order");
        let counted: Vec<&Value> = documents
            .iter()
            .filter_map(|document| document.get("MessagesReceived"))
            .collect();
        assert_eq!(counted, [&json!(250.0)], "a count is written once");
        let mut too_many = documents[0].clone();
        too_many["QueueWait"] = json!(vec![1.0; 101]);
        assert!(check_document(&too_many).is_err());
    }

    #[test]
    fn a_latency_is_written_to_the_microsecond_with_no_float_tail() {
        let mut metrics = sink().collector();
        let lag = std::time::Duration::from_nanos(1_100_996_950_123);
        metrics.observe("EventLag", &[], milliseconds(lag), Unit::Milliseconds);
        let line = metrics.documents("shop", Utc::now())[0].to_string();
        assert!(line.contains("\"EventLag\":[1100996.95]"), "{line}");
        let longest_digit_run = line
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        // The timestamp's 13 digits are the longest run; no value comes near a card number's.
        assert!(longest_digit_run <= 13, "{line}");
    }

    #[test]
    fn the_service_dimension_cannot_be_overridden_or_repeated() {
        let mut metrics = sink().collector();
        metrics.count(
            "Sent",
            &[("service", "other"), ("queue", "a"), ("queue", "b")],
            1,
        );
        let documents = metrics.documents("shop", Utc::now());
        assert_eq!(documents[0]["service"], "orders");
        assert_eq!(
            documents[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service", "queue"]])
        );
    }

    #[test]
    fn the_check_refuses_broken_documents() {
        let mut metrics = sink().collector();
        metrics.count("Sent", &[("queue", "a")], 1);
        let good = metrics.documents("shop", Utc::now()).remove(0);
        let mut without_value = good.clone();
        without_value.as_object_mut().unwrap().remove("Sent");
        assert!(check_document(&without_value).is_err());
        let mut numeric_dimension = good.clone();
        numeric_dimension["queue"] = json!(1);
        assert!(check_document(&numeric_dimension).is_err());
        let mut bad_unit = good.clone();
        bad_unit["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Furlongs");
        assert!(check_document(&bad_unit).is_err());
        let mut no_timestamp = good;
        no_timestamp["_aws"]
            .as_object_mut()
            .unwrap()
            .remove("Timestamp");
        assert!(check_document(&no_timestamp).is_err());
    }

    #[test]
    fn a_flush_writes_one_line_per_document_and_nothing_when_empty() {
        let buffer = MetricsBuffer::default();
        let sink = MetricsSink::new("shop", "restocker", buffer.clone());
        sink.flush(sink.collector());
        assert_eq!(buffer.documents().unwrap(), Vec::<Value>::new());
        let mut metrics = sink.collector();
        metrics.count("Parked", &[("queue", "a")], 1);
        metrics.count("Parked", &[("queue", "b")], 2);
        sink.flush(metrics);
        let documents = buffer.documents().unwrap();
        assert_eq!(documents.len(), 2);
        assert!(
            documents
                .iter()
                .all(|document| check_document(document).is_ok())
        );
    }
}
