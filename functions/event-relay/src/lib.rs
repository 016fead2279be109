//! The event relay: every event paysaga publishes about its ledger is written with the change
//! it reports, and this function publishes it, from the DynamoDB Streams of the tables it was
//! written to ([`paysaga_services::relay`]):
//!
//! - the payments table: a request made through the API (the log's version 1) and a payment's
//!   outcome (its terminal entry, the outcome folded from the log);
//! - the outbox table: a deposit's `FundsDeposited`, an operator's `OperatorActionStarted`.
//!
//! A batch is published in order, ten events a `PutEvents` call. When a call fails, the answer
//! names the first record not published (`batchItemFailures`), and the event source mapping
//! hands that record and every later one on again; what was published before it is not
//! published again. A record that can never be read (written around paysaga) is set aside to
//! the relay's failures queue with its keys and why, so that it does not hold up the stream.
//!
//! It also schedules every payment's deadline check from its request's record
//! ([`paysaga_services::reconciler`]), so a payment is looked at again past its deadline as
//! surely as its request is announced.
//!
//! Metrics: `EventsRelayed` (events published), `DeadlineChecksScheduled`, `RecordsSetAside`
//! (records that can never be read), `RelayStopped` (batches that stopped at a record, to be
//! handed on again), and `PublishLag` (milliseconds, by `event` detail-type: from the write
//! that made each published event true to its `PutEvents` answered; one value an event).

#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod set_aside;

use std::sync::Arc;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::Utc;
use lambda_toolkit::env::{ConfigError, Environment};
use lambda_toolkit::metrics::{InvocationMetrics, Unit, milliseconds};
use paysaga_aws::OutboxRecord;
use paysaga_domain::PaymentLogEntry;
use paysaga_domain::ports::{DeadlineChecks, EventPublisher, PaymentHistory};
use paysaga_services::relay::{self, Record, Written};
use tracing::{error, warn};

pub use set_aside::{SetAside, SetAsideError, UnreadableRecord};

/// What the relay may touch.
pub struct EventRelay {
    /// The payments' logs, read back to fold an outcome.
    pub log: Arc<dyn PaymentHistory>,
    /// The bus.
    pub events: Arc<dyn EventPublisher>,
    /// Where each payment's deadline check is scheduled, from its request's record.
    pub deadlines: Arc<dyn DeadlineChecks>,
    /// Where a record that can never be read goes.
    pub set_aside: Arc<dyn SetAside>,
    /// Which table a record came from, by name.
    pub tables: StreamTables,
}

/// The tables whose streams the relay reads.
#[derive(Debug, Clone)]
pub struct StreamTables {
    pub payments: String,
    pub outbox: String,
}

impl EventRelay {
    /// Relays a batch of stream records; the answer names the first record to hand on again,
    /// if any (`ReportBatchItemFailures`).
    pub async fn handle(&self, event: Event, metrics: &InvocationMetrics) -> DynamoDbEventResponse {
        let mut records: Vec<Record> = Vec::with_capacity(event.records.len());
        let mut sequence_numbers: Vec<String> = Vec::with_capacity(event.records.len());
        let mut blocked_at = None;
        for record in event.records {
            let sequence_number = record.change.sequence_number.clone().unwrap_or_default();
            match self.read(record) {
                Ok(Some(written)) => {
                    records.push(written);
                    sequence_numbers.push(sequence_number);
                }
                Ok(None) => {}
                Err(unreadable) => {
                    error!(
                        sequence_number = %unreadable.sequence_number,
                        reason = %unreadable.reason,
                        "a stream record cannot be read; setting it aside"
                    );
                    if let Err(failure) = self.set_aside.set_aside(&unreadable).await {
                        // It cannot be set aside: the stream keeps it, and everything after.
                        warn!(%failure, "the record could not be set aside");
                        blocked_at = Some(sequence_number);
                        break;
                    }
                    metrics.count("RecordsSetAside", &[], 1);
                }
            }
        }
        let outputs = relay::Outputs {
            events: self.events.as_ref(),
            deadlines: self.deadlines.as_ref(),
        };
        let relayed = relay::relay(self.log.as_ref(), &outputs, records).await;
        metrics.count("EventsRelayed", &[], relayed.published as u64);
        let now = Utc::now();
        for (event_type, occurred_at) in &relayed.announced {
            let lag = (now - *occurred_at).to_std().unwrap_or_default();
            let event_type = [("event", *event_type)];
            metrics.observe(
                "PublishLag",
                &event_type,
                milliseconds(lag),
                Unit::Milliseconds,
            );
        }
        metrics.count("DeadlineChecksScheduled", &[], relayed.scheduled as u64);
        let retry_from = match relayed.stopped_at {
            Some((index, failure)) => {
                warn!(%failure, "the batch stops here; the stream hands the rest on again");
                Some(sequence_numbers.swap_remove(index))
            }
            None => blocked_at,
        };
        let mut response = DynamoDbEventResponse::default();
        if let Some(sequence_number) = retry_from {
            metrics.count("RelayStopped", &[], 1);
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// What a stream record says was written, in which trace: `None` for a record that
    /// announces nothing by its kind (not an insert: a TTL's deletion, say).
    fn read(&self, record: EventRecord) -> Result<Option<Record>, UnreadableRecord> {
        let stream_arn = record.event_source_arn.clone().unwrap_or_default();
        let unreadable = |reason: String| UnreadableRecord {
            stream_arn: stream_arn.clone(),
            sequence_number: record.change.sequence_number.clone().unwrap_or_default(),
            keys: serde_json::to_value(&record.change.keys).unwrap_or_default(),
            reason,
        };
        if record.event_name != "INSERT" {
            return Ok(None);
        }
        let image = record.change.new_image.clone();
        let trace = serde_dynamo::from_item::<_, Traced>(image.clone())
            .ok()
            .and_then(|traced| traced.trace_header);
        let written = match table_of_stream(&stream_arn) {
            Some(table) if table == self.tables.payments => {
                let entry: PaymentLogEntry = serde_dynamo::from_item(image)
                    .map_err(|error| unreadable(format!("not a payment log entry: {error}")))?;
                Written::LogEntry(entry)
            }
            Some(table) if table == self.tables.outbox => {
                let outboxed: OutboxRecord = serde_dynamo::from_item(image)
                    .map_err(|error| unreadable(format!("not an outbox record: {error}")))?;
                let event = outboxed
                    .event()
                    .map_err(|violation| unreadable(format!("{violation}")))?;
                Written::Outboxed(event)
            }
            _ => {
                return Err(unreadable(format!(
                    "a stream the relay does not read: {stream_arn}"
                )));
            }
        };
        Ok(Some(Record { written, trace }))
    }
}

/// The trace an item was written in ([`paysaga_aws::dynamodb::TRACE_ATTRIBUTE`]).
#[derive(serde::Deserialize)]
struct Traced {
    trace_header: Option<String>,
}

/// The table a stream belongs to, from the stream's ARN
/// (`arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`).
pub fn table_of_stream(stream_arn: &str) -> Option<&str> {
    let (_, table_and_stream) = stream_arn.split_once(":table/")?;
    let (table, _) = table_and_stream.split_once("/stream/")?;
    Some(table)
}

/// The function's environment.
pub struct Config {
    /// `PAYMENTS_TABLE`, `OUTBOX_TABLE`.
    pub tables: StreamTables,
    /// `EVENT_BUS_NAME`.
    pub event_bus_name: String,
    /// `SET_ASIDE_QUEUE_URL`: where a record that can never be read goes.
    pub set_aside_queue_url: String,
    /// `DEADLINE_CHECKS_QUEUE_URL`: where each payment's deadline check goes, ...
    pub deadline_checks_queue_url: String,
    /// ... delayed by `FLOW_DEADLINE_SECONDS` (at most 15 minutes: SQS's longest delay).
    pub flow_deadline: std::time::Duration,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            tables: StreamTables {
                payments: env.required("PAYMENTS_TABLE")?,
                outbox: env.required("OUTBOX_TABLE")?,
            },
            event_bus_name: env.required("EVENT_BUS_NAME")?,
            set_aside_queue_url: env.required("SET_ASIDE_QUEUE_URL")?,
            deadline_checks_queue_url: env.required("DEADLINE_CHECKS_QUEUE_URL")?,
            flow_deadline: std::time::Duration::from_secs(
                env.number_or("FLOW_DEADLINE_SECONDS", 900)?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_arn_names_its_table() {
        assert_eq!(
            table_of_stream(
                "arn:aws:dynamodb:us-east-1:123456789012:table/paysaga-payments/stream/2026-12-06T10:00:00.000"
            ),
            Some("paysaga-payments")
        );
        assert_eq!(table_of_stream("arn:aws:sqs:us-east-1:1:queue"), None);
        assert_eq!(
            table_of_stream("arn:aws:dynamodb:us-east-1:1:table/t"),
            None
        );
    }
}
