//! Where one payment's time goes: submit to `COMPLETED`, split by hop, from what the system
//! records itself rather than from the bench's polling.
//!
//! - **The payment's log.** Each step's entry carries `recorded_at`: the request (the api),
//!   funds reserved, charged, and completed (the saga). Read back for every payment measured.
//! - **The functions' metrics** ([`lambda_toolkit::metrics`], EMF lines on stdout, which
//!   local-lambda writes to `.local/logs/local-lambda.log`): each event's `PublishLag` (the
//!   relay: from the write that made it true to `PutEvents` answered), each first delivery's
//!   `QueueWait` (SQS `SentTimestamp` to the handler), and each event's `EventLag` at a consumer
//!   (from the write that made it true to the consumer's part done). Read from the part of the
//!   log written while the payments ran, until every consumer has handled every outcome.
//! - **The client**: the `POST /payments` round trip, and the clock just before it.
//!
//! The log's hops follow each payment; the metrics' are distributions over the same payments
//! (a metric names its event type, never a payment), so a hop measured by a metric is a part of
//! a log hop, not a term of a per-payment sum. The client, the functions and the emulators
//! share this machine's clock.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use local_lambda::aws::sdk_config;
use local_lambda::wiring::{LocalAws, Wiring};
use paysaga_aws::DynamoDbLedger;
use paysaga_domain::ports::PaymentHistory;
use paysaga_domain::{PaymentId, PaymentLogEntry, PaymentStep};
use serde::Serialize;
use serde_json::Value;

use crate::throughput::Percentiles;

/// A payment as its client submitted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub payment_id: String,
    /// The client's clock just before its `POST /payments`.
    pub at: DateTime<Utc>,
    /// The `POST /payments` round trip, retries included.
    pub api_ms: f64,
}

/// One run's payments, by hop.
#[derive(Debug, Clone, Serialize)]
pub struct HopLatency {
    /// Payments measured: those that ended `COMPLETED`.
    pub payments: usize,
    /// Payments in flight at once.
    pub concurrency: usize,
    /// From the client's clock before its `POST /payments` to the saga's `COMPLETED` entry.
    pub submit_to_completed_ms: Percentiles,
    pub hops: Vec<Hop>,
    /// When the last consumer had handled the last of these payments' events (the end of its
    /// invocation); `None` when none was seen.
    pub events_handled_at: Option<DateTime<Utc>>,
}

/// One hop's milliseconds over the run's payments.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub hop: String,
    /// Where it is read: `client`, `log`, or the metric and its function.
    pub measured_by: String,
    /// A part of an earlier hop (measured by a metric), not a hop of its own.
    pub part: bool,
    pub samples: usize,
    pub ms: Percentiles,
}

/// The part of local-lambda's log written since [`FunctionLog::from_now`].
#[derive(Debug, Clone)]
pub struct FunctionLog {
    path: PathBuf,
    start: u64,
}

/// One metric of one EMF document: its function, its `event`, its values, and when the
/// function wrote them (the end of its invocation).
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    service: String,
    metric: String,
    event: Option<String>,
    values: Vec<f64>,
    at: Option<DateTime<Utc>>,
}

/// The metrics a hop is read from.
const OBSERVED: [&str; 3] = ["PublishLag", "QueueWait", "EventLag"];
/// The consumers of a payment's outcome, whose `EventLag` is their lag.
const CONSUMERS: [(&str, &str); 3] = [
    ("read-models", "read-models: outcome projected"),
    ("audit-trail", "audit-trail: outcome appended"),
    ("notifications", "notifications: outcome delivered"),
];
/// The longest wait for every consumer to have handled every outcome.
const CONSUMERS_DEADLINE: Duration = Duration::from_secs(120);
/// Log reads a wait makes per second.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

impl FunctionLog {
    /// The log of the local stack whose folder is `local_dir` (`.local`), from its current end.
    pub fn from_now(local_dir: &Path) -> Self {
        let path = local_dir.join("logs").join("local-lambda.log");
        let start = std::fs::metadata(&path).map_or(0, |metadata| metadata.len());
        Self { path, start }
    }

    /// Every observation of [`OBSERVED`] written since the start.
    fn read(&self) -> anyhow::Result<Vec<Observed>> {
        let mut file = std::fs::File::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        file.seek(SeekFrom::Start(self.start))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        Ok(String::from_utf8_lossy(&text)
            .lines()
            .flat_map(observations)
            .collect())
    }
}

/// The observations of one line of local-lambda's log (`<function>#<n> | <stdout line>`): none
/// unless the line is an EMF document.
fn observations(line: &str) -> Vec<Observed> {
    let Some(json) = line.find('{').map(|at| &line[at..]) else {
        return Vec::new();
    };
    let Ok(document) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    if document.get("_aws").is_none() {
        return Vec::new();
    }
    let text = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let Some(service) = text("service") else {
        return Vec::new();
    };
    OBSERVED
        .iter()
        .filter_map(|metric| {
            let values = match document.get(*metric)? {
                Value::Array(values) => values.iter().filter_map(Value::as_f64).collect(),
                value => vec![value.as_f64()?],
            };
            Some(Observed {
                service: service.clone(),
                metric: (*metric).to_owned(),
                event: text("event"),
                values,
                at: document["_aws"]["Timestamp"]
                    .as_i64()
                    .and_then(DateTime::from_timestamp_millis),
            })
        })
        .collect()
}

/// The values of `metric` from `service` (any, when `None`) for `event` (any, when `None`).
fn values_of(
    observed: &[Observed],
    service: Option<&str>,
    metric: &str,
    event: Option<&str>,
) -> Vec<f64> {
    observed
        .iter()
        .filter(|o| o.metric == metric)
        .filter(|o| service.is_none_or(|service| o.service == service))
        .filter(|o| event.is_none_or(|event| o.event.as_deref() == Some(event)))
        .flat_map(|o| o.values.iter().copied())
        .collect()
}

/// Reads `payments`' logs and waits until every consumer has handled each completed one's
/// outcome in `log` (at most [`CONSUMERS_DEADLINE`]; a consumer still behind then is measured
/// on what it handled): the run's hops.
pub async fn measure(
    wiring: &Wiring,
    log: &FunctionLog,
    payments: &[Submitted],
    concurrency: usize,
) -> anyhow::Result<HopLatency> {
    let aws = LocalAws::resolve(wiring, |name| std::env::var(name).ok());
    let endpoint = aws
        .dynamodb_endpoint_url
        .as_deref()
        .unwrap_or(&aws.endpoint_url);
    let table = wiring
        .tables
        .get("PaymentsTable")
        .context("the wiring names no PaymentsTable")?;
    let ledger = DynamoDbLedger::from_config(
        &sdk_config(&aws, endpoint).await,
        paysaga_aws::TableNames::payment_logs_only(table.clone()),
    );
    let logs: Vec<(Submitted, Vec<PaymentLogEntry>)> = stream::iter(payments)
        .map(|submitted| async {
            let id = PaymentId::parse(&submitted.payment_id)
                .map_err(|error| anyhow::anyhow!("payment id {}: {error}", submitted.payment_id))?;
            let history = ledger.history(&id).await?;
            anyhow::Ok((submitted.clone(), history))
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    let completed: Vec<StepTimes> = logs
        .iter()
        .filter_map(|(submitted, log)| StepTimes::of(submitted, log))
        .collect();

    let started = Instant::now();
    let observed = loop {
        let observed = log.read()?;
        let behind = CONSUMERS.iter().any(|(service, _)| {
            values_of(
                &observed,
                Some(service),
                "EventLag",
                Some("PaymentCompleted"),
            )
            .len()
                < completed.len()
        });
        if !behind || started.elapsed() >= CONSUMERS_DEADLINE {
            if behind {
                eprintln!(
                    "latency: warning: a consumer had not handled every outcome after {} s; \
                     measured on what it had",
                    CONSUMERS_DEADLINE.as_secs()
                );
            }
            break observed;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    Ok(hops(&completed, &observed, concurrency))
}

/// A completed payment's times, from its client and its log.
#[derive(Debug, Clone, PartialEq)]
struct StepTimes {
    submitted: DateTime<Utc>,
    api_ms: f64,
    requested: DateTime<Utc>,
    reserved: DateTime<Utc>,
    charged: DateTime<Utc>,
    completed: DateTime<Utc>,
}

impl StepTimes {
    /// `None` for a payment that did not go request, reserve, charge, complete.
    fn of(submitted: &Submitted, log: &[PaymentLogEntry]) -> Option<Self> {
        let at = |wanted: fn(&PaymentStep) -> bool| {
            log.iter()
                .find(|entry| wanted(&entry.step))
                .map(|entry| entry.recorded_at)
        };
        Some(Self {
            submitted: submitted.at,
            api_ms: submitted.api_ms,
            requested: at(|step| matches!(step, PaymentStep::Requested { .. }))?,
            reserved: at(|step| matches!(step, PaymentStep::FundsReserved))?,
            charged: at(|step| matches!(step, PaymentStep::Charged { .. }))?,
            completed: at(|step| matches!(step, PaymentStep::Completed))?,
        })
    }
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from)
        .num_microseconds()
        .map_or(f64::NAN, |micros| micros as f64 / 1e3)
}

/// The hops of `payments`, with the parts `observed` in the functions' metrics.
fn hops(payments: &[StepTimes], observed: &[Observed], concurrency: usize) -> HopLatency {
    let of_log = |hop: &str, between: fn(&StepTimes) -> f64| {
        let values: Vec<f64> = payments.iter().map(between).collect();
        Hop {
            hop: hop.to_owned(),
            measured_by: "the payment's log".to_owned(),
            part: false,
            samples: values.len(),
            ms: Percentiles::of(&values),
        }
    };
    let of_metric = |hop: &str, service: Option<&str>, metric: &str, event: Option<&str>, part| {
        let values = values_of(observed, service, metric, event);
        Hop {
            hop: hop.to_owned(),
            measured_by: format!("{metric} ({})", service.unwrap_or("event-relay")),
            part,
            samples: values.len(),
            ms: Percentiles::of(&values),
        }
    };
    let publish_lag =
        |hop, event| of_metric(hop, Some("event-relay"), "PublishLag", Some(event), true);
    let mut hops = vec![
        Hop {
            hop: "api: POST /payments answered".to_owned(),
            measured_by: "the client".to_owned(),
            part: false,
            samples: payments.len(),
            ms: Percentiles::of(&payments.iter().map(|p| p.api_ms).collect::<Vec<_>>()),
        },
        of_log("requested → funds reserved", |p| {
            millis(p.requested, p.reserved)
        }),
        publish_lag("relay: request published", "PaymentRequested"),
        of_metric(
            "queue wait: payments queue → saga",
            Some("payment-saga"),
            "QueueWait",
            None,
            true,
        ),
        of_log("charge: reserved → charged", |p| {
            millis(p.reserved, p.charged)
        }),
        of_log("settle: charged → completed", |p| {
            millis(p.charged, p.completed)
        }),
        publish_lag("relay: outcome published", "PaymentCompleted"),
    ];
    for (service, hop) in CONSUMERS {
        hops.push(of_metric(
            hop,
            Some(service),
            "EventLag",
            Some("PaymentCompleted"),
            false,
        ));
    }
    let events_handled_at = observed
        .iter()
        .filter(|o| o.metric == "EventLag")
        .filter(|o| {
            matches!(
                o.event.as_deref(),
                Some("PaymentRequested" | "PaymentCompleted" | "PaymentFailed")
            )
        })
        .filter_map(|o| o.at)
        .max();
    HopLatency {
        payments: payments.len(),
        events_handled_at,
        concurrency,
        submit_to_completed_ms: Percentiles::of(
            &payments
                .iter()
                .map(|p| millis(p.submitted, p.completed))
                .collect::<Vec<_>>(),
        ),
        hops,
    }
}

/// The longest wait for the stack's queues to be empty before the unloaded run.
const IDLE_DEADLINE: Duration = Duration::from_secs(120);

/// Waits until no queue a function of the stack consumes holds a message, visible or in
/// flight (at most [`IDLE_DEADLINE`]; then the run goes on, with a warning).
pub async fn wait_for_idle_queues(wiring: &Wiring) -> anyhow::Result<()> {
    let aws = LocalAws::resolve(wiring, |name| std::env::var(name).ok());
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(&aws, &aws.endpoint_url).await);
    let consumed: Vec<(&String, &String)> = wiring
        .functions
        .iter()
        .flat_map(|function| &function.sqs_triggers)
        .filter_map(|trigger| {
            let queue = wiring.queues.get(&trigger.queue)?;
            Some((&trigger.queue, &queue.url))
        })
        .collect();
    let started = Instant::now();
    loop {
        let mut busy = Vec::new();
        for (name, url) in &consumed {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(*url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .with_context(|| format!("reading the depth of {name}"))?;
            let held: u64 = attributes
                .attributes()
                .into_iter()
                .flat_map(|attributes| attributes.values())
                .filter_map(|count| count.parse::<u64>().ok())
                .sum();
            if held > 0 {
                busy.push(format!("{name} {held}"));
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= IDLE_DEADLINE {
            eprintln!(
                "latency: warning: queues still busy after {} s ({}); measuring anyway",
                IDLE_DEADLINE.as_secs(),
                busy.join(", ")
            );
            return Ok(());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The hops' rows by name, for the unloaded and the loaded runs side by side.
pub fn by_hop<'a>(runs: &[&'a HopLatency]) -> Vec<(&'a Hop, Vec<Option<&'a Hop>>)> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .hops
        .iter()
        .map(|hop| {
            let across: HashMap<usize, &Hop> = runs
                .iter()
                .enumerate()
                .filter_map(|(index, run)| {
                    run.hops
                        .iter()
                        .find(|other| other.hop == hop.hop)
                        .map(|h| (index, h))
                })
                .collect();
            (
                hop,
                (0..runs.len())
                    .map(|index| across.get(&index).copied())
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_of_local_lambdas_log_gives_its_observations() {
        let line = r#"event-relay#1 | {"PublishLag":[12.5,40.0],"EventsRelayed":2.0,"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"event":"PaymentRequested","service":"event-relay"}"#;
        assert_eq!(
            observations(line),
            [Observed {
                service: "event-relay".into(),
                metric: "PublishLag".into(),
                event: Some("PaymentRequested".into()),
                values: vec![12.5, 40.0],
                at: DateTime::from_timestamp_millis(1),
            }]
        );
        let text = r#"read-models#2 |  INFO Lambda runtime invoke{requestId="x"}: event projected"#;
        assert!(observations(text).is_empty());
        let not_emf = r#"api#1 | {"level":"INFO","service":"api"}"#;
        assert!(observations(not_emf).is_empty());
    }

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_796_600_000_000 + millis).unwrap()
    }

    #[test]
    fn hops_come_from_each_payments_log_and_the_functions_metrics() {
        let payment = |offset: i64| StepTimes {
            submitted: at(offset),
            api_ms: 5.0,
            requested: at(offset + 3),
            reserved: at(offset + 103),
            charged: at(offset + 123),
            completed: at(offset + 133),
        };
        let observed = vec![
            Observed {
                service: "event-relay".into(),
                metric: "PublishLag".into(),
                event: Some("PaymentRequested".into()),
                values: vec![30.0, 50.0],
                at: Some(at(2_000)),
            },
            Observed {
                service: "read-models".into(),
                metric: "EventLag".into(),
                event: Some("PaymentCompleted".into()),
                values: vec![70.0],
                at: Some(at(1_203)),
            },
            Observed {
                service: "read-models".into(),
                metric: "EventLag".into(),
                event: Some("FundsDeposited".into()),
                values: vec![9_000.0],
                at: Some(at(9_000)),
            },
        ];
        let run = hops(&[payment(0), payment(1_000)], &observed, 1);
        assert_eq!(run.payments, 2);
        assert_eq!(run.submit_to_completed_ms.p50, 133.0);
        let hop = |name: &str| {
            run.hops
                .iter()
                .find(|hop| hop.hop.starts_with(name))
                .unwrap()
        };
        assert_eq!(hop("requested → funds reserved").ms.p50, 100.0);
        assert_eq!(hop("charge").ms.max, 20.0);
        assert_eq!(hop("settle").ms.max, 10.0);
        assert_eq!(hop("relay: request").ms.max, 50.0);
        assert!(hop("relay: request").part);
        let projected = hop("read-models");
        assert_eq!(
            (projected.samples, projected.ms.max),
            (1, 70.0),
            "outcomes only"
        );
        assert_eq!(hop("audit-trail").samples, 0);
        assert_eq!(
            run.events_handled_at,
            Some(at(1_203)),
            "the last payment event a consumer handled"
        );
    }

    #[test]
    fn a_payment_that_did_not_complete_has_no_step_times() {
        let submitted = Submitted {
            payment_id: "pay_x".into(),
            at: at(0),
            api_ms: 1.0,
        };
        assert_eq!(StepTimes::of(&submitted, &[]), None);
    }
}
