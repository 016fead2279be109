//! `paysaga-admin dlq`: the operator's view of the dead-letter queues and the parking table.
//!
//! Every command is one invocation of the `dlq-redrive` function ([`RedriveFunction`]), whose
//! [`RedriveService`](paysaga_services::redrive::operator::RedriveService) answers it, so an
//! operator needs `lambda:InvokeFunction` on that one function and nothing else, and the same
//! commands serve a deployed stack and the local one (`AWS_ENDPOINT_URL_LAMBDA` in
//! `.local/stack.env` points the SDK at local-lambda's Invoke API). The request and its answer
//! are the library's own types; this module only carries them and lays them out for a terminal.
//!
//! A replay goes through the admin API instead ([`crate::admin_api`]), so that the audit trail
//! records the operator who asked for it; this module only lays out its answer.

use std::fmt::Write as _;

use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use comfy_table::{LineStyle, Table, TableStyle};
use paysaga_services::redrive::ParkedMessage;
use paysaga_services::redrive::operator::{Mode, QueueOutcome, Request, Status};
use paysaga_services::redrive::parking::{ParkedPage, ParkedStatus, Replayed};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The function's name in the template (`FunctionName` of `DlqRedriveFunction` is the stack's
/// name and this; locally, local-lambda serves it by this name).
pub const DEFAULT_FUNCTION: &str = "dlq-redrive";

/// How many parked messages one invocation lists.
const PAGE: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("cannot invoke {function}: {detail}")]
    Invoke { function: String, detail: String },
    /// The function ran and refused: `error_type` says why (`ParkedMessageNotFound`,
    /// `UnknownQueue`, `InvalidRequest`, `Unavailable`).
    #[error("{function} answered {error_type}: {message}")]
    Refused {
        function: String,
        error_type: String,
        message: String,
    },
    #[error(
        "{function} answered what this paysaga-admin cannot read (a different version?): {source}"
    )]
    Answer {
        function: String,
        source: serde_json::Error,
    },
}

/// The `dlq-redrive` function of one stack.
pub struct RedriveFunction {
    client: aws_sdk_lambda::Client,
    name: String,
}

/// What `redrive` answers (the depths after it are for the function's metrics only).
#[derive(Deserialize)]
struct Redriven {
    queues: Vec<QueueOutcome>,
}

/// A failed invocation's payload, as the Lambda runtime writes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionError {
    error_type: String,
    error_message: String,
}

impl RedriveFunction {
    pub fn new(config: &aws_config::SdkConfig, name: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_lambda::Client::new(config),
            name: name.into(),
        }
    }

    pub async fn status(&self) -> Result<Status, DlqError> {
        self.ask(&Request::Status).await
    }

    /// Every parked message, page after page; those no longer waiting (replayed, settled) only
    /// with `include_replayed`.
    pub async fn parked(&self, include_replayed: bool) -> Result<Vec<ParkedMessage>, DlqError> {
        let mut messages = Vec::new();
        let mut after = None;
        loop {
            let request = Request::Parked {
                limit: Some(PAGE),
                after: after.take(),
            };
            let page: ParkedPage = self.ask(&request).await?;
            messages.extend(page.messages);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if !include_replayed {
            messages.retain(|message| message.status == ParkedStatus::Parked);
        }
        Ok(messages)
    }

    pub async fn show(&self, parked_id: &str) -> Result<ParkedMessage, DlqError> {
        let request = Request::Show {
            parked_id: parked_id.to_owned(),
        };
        self.ask(&request).await
    }

    /// Redrives one dead-letter queue (by name, name without the stack's prefix, URL or ARN),
    /// or all of them; `max_per_second` and `max_messages` override the function's settings.
    pub async fn redrive(
        &self,
        queue: Option<String>,
        mode: Mode,
        max_per_second: Option<u32>,
        max_messages: Option<u32>,
    ) -> Result<Vec<QueueOutcome>, DlqError> {
        let request = Request::Redrive {
            queue,
            mode,
            max_per_second,
            max_messages,
            visibility_timeout_seconds: None,
        };
        let redriven: Redriven = self.ask(&request).await?;
        Ok(redriven.queues)
    }

    /// One invocation: the request as its payload, the answer read as `T`.
    async fn ask<T: DeserializeOwned>(&self, request: &Request) -> Result<T, DlqError> {
        let payload = serde_json::to_vec(request).map_err(|source| self.unreadable(source))?;
        let output = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|error| DlqError::Invoke {
                function: self.name.clone(),
                detail: DisplayErrorContext(error).to_string(),
            })?;
        let answer = output.payload().map_or(&b"null"[..], Blob::as_ref);
        if output.function_error().is_some() {
            let refusal: FunctionError =
                serde_json::from_slice(answer).map_err(|source| self.unreadable(source))?;
            return Err(DlqError::Refused {
                function: self.name.clone(),
                error_type: refusal.error_type,
                message: refusal.error_message,
            });
        }
        serde_json::from_slice(answer).map_err(|source| self.unreadable(source))
    }

    fn unreadable(&self, source: serde_json::Error) -> DlqError {
        DlqError::Answer {
            function: self.name.clone(),
            source,
        }
    }
}

/// Each queue with its dead-letter queue and depths, and how many parked messages wait.
pub fn status_table(status: &Status) -> String {
    let rows = status.queues.iter().map(|queue| {
        vec![
            queue.queue.clone(),
            queue
                .dead_letter_queue
                .clone()
                .unwrap_or_else(|| "(dead-letter queue)".to_owned()),
            queue.depth.visible.to_string(),
            queue.depth.in_flight.to_string(),
            queue.depth.delayed.to_string(),
        ]
    });
    let headers = ["QUEUE", "ITS DLQ", "VISIBLE", "IN FLIGHT", "DELAYED"];
    format!(
        "{}\nparked messages waiting for an operator: {}\n",
        columns(&headers, rows),
        status.parked_waiting
    )
}

/// One line per parked message: id, status, when, and the start of its reason.
pub fn parked_table(messages: &[ParkedMessage]) -> String {
    let rows = messages.iter().map(|message| {
        vec![
            message.parked_id.clone(),
            match message.status {
                ParkedStatus::Parked => "parked",
                ParkedStatus::Replayed => "replayed",
                ParkedStatus::Settled => "settled",
            }
            .to_owned(),
            message.parked_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            message.reason.chars().take(80).collect(),
        ]
    });
    columns(&["PARKED ID", "STATUS", "PARKED AT", "REASON"], rows)
}

/// What a redrive did, queue by queue, and why it left what it left.
pub fn redrive_report(outcomes: &[QueueOutcome]) -> String {
    let mut report = String::new();
    for outcome in outcomes {
        // Writing to a String cannot fail.
        let _ = match outcome {
            QueueOutcome::Failed { queue, error } => writeln!(report, "{queue}: FAILED: {error}"),
            QueueOutcome::MoveTaskStarted {
                queue,
                destination,
                move_task,
            } => writeln!(
                report,
                "{queue}: SQS moves it to {destination} (task {move_task})"
            ),
            QueueOutcome::Redriven(done) => {
                let left: u32 = done.left.values().sum();
                let stopped = match done.stopped {
                    Some(why) => format!(" (stopped: {})", serde_label(&why)),
                    None => String::new(),
                };
                let handed_on = match done.settle_checks {
                    0 => String::new(),
                    checks => format!(" ({checks} handed to the reconciler)"),
                };
                let _ = writeln!(
                    report,
                    "{}: examined {}, sent back {}, parked {}{handed_on}, handled before {}, left {left}{stopped}",
                    done.queue, done.examined, done.sent_back, done.parked, done.handled_before
                );
                done.left
                    .iter()
                    .try_for_each(|(reason, count)| writeln!(report, "  left {count}: {reason}"))
            }
        };
    }
    report
}

/// A parked message, whole, as indented JSON, its body parsed when it is JSON.
pub fn shown(message: &ParkedMessage) -> String {
    // Strings, numbers and maps of strings: serializing them cannot fail.
    let mut whole = serde_json::to_value(message).unwrap_or_default();
    if let Ok(body) = serde_json::from_str::<serde_json::Value>(&message.body) {
        whole["body"] = body;
    }
    serde_json::to_string_pretty(&whole).unwrap_or_default()
}

pub fn replayed_line(replayed: &Replayed) -> String {
    let edited = if replayed.body_edited {
        " (with the fixed body)"
    } else {
        ""
    };
    format!(
        "replayed {} to {}{edited}; recorded in the audit trail as {}",
        replayed.parked_id, replayed.sent_to, replayed.action_id
    )
}

/// The name serde gives a unit variant (`max_messages`, `deadline`).
fn serde_label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(label)) => label,
        _ => String::new(),
    }
}

/// Rows under headers, a line of dashes between them, no borders.
fn columns(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    const STYLE: TableStyle = TableStyle::new().header_separator(LineStyle::none().fill('-'));
    let mut table = Table::new();
    table
        .load_style(STYLE)
        .set_header(headers.to_vec())
        .add_rows(rows);
    // Flush left, two spaces between columns.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.trim_fmt() + "\n"
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use paysaga_services::redrive::operator::{QueueStatus, Response};
    use paysaga_services::redrive::{QueueDepth, QueueReport};

    use super::*;

    /// What the function writes (its [`Response`], serialized), read back as this tool reads it.
    fn as_read<T: DeserializeOwned>(response: Response) -> T {
        let written = serde_json::to_vec(&response).expect("a response serializes");
        serde_json::from_slice(&written).expect("the tool reads what the function writes")
    }

    fn parked(parked_id: &str, status: ParkedStatus, reason: &str) -> ParkedMessage {
        ParkedMessage {
            parked_id: parked_id.to_owned(),
            dead_letter_queue: "arn:aws:sqs:eu-west-1:1:paysaga-payments-dlq".to_owned(),
            destination: Some("arn:aws:sqs:eu-west-1:1:paysaga-payments".to_owned()),
            body: r#"{"detail":{"version":2}}"#.to_owned(),
            consent_removed: false,
            attributes: BTreeMap::new(),
            reason: reason.to_owned(),
            origin: "consumer".to_owned(),
            source_receive_count: Some(5),
            dead_letter_receive_count: 1,
            redrives: 0,
            first_sent_at: None,
            parked_at: Utc.with_ymd_and_hms(2026, 12, 5, 21, 30, 7).unwrap(),
            status,
            replayed_at: None,
            settled_at: None,
            settled_as: None,
        }
    }

    #[test]
    fn a_status_reads_back_and_lays_out_in_columns() {
        let status = Status {
            queues: vec![
                QueueStatus {
                    queue: "paysaga-payments".to_owned(),
                    dead_letter_queue: Some("paysaga-payments-dlq".to_owned()),
                    depth: QueueDepth {
                        visible: 12,
                        in_flight: 3,
                        delayed: 0,
                    },
                },
                QueueStatus {
                    queue: "paysaga-payments-dlq".to_owned(),
                    dead_letter_queue: None,
                    depth: QueueDepth {
                        visible: 4,
                        in_flight: 0,
                        delayed: 1,
                    },
                },
            ],
            parked_waiting: 2,
        };
        let read: Status = as_read(Response::Status(status.clone()));
        assert_eq!(read, status);

        let table = status_table(&read);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("QUEUE"), "{table}");
        assert!(lines[1].chars().all(|c| c == '-' || c == ' '), "{table}");
        let payments: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            payments,
            ["paysaga-payments", "paysaga-payments-dlq", "12", "3", "0"]
        );
        assert!(lines[3].contains("(dead-letter queue)"), "{table}");
        // The columns line up: each value starts where its header does.
        let column = lines[0].find("VISIBLE").expect("a VISIBLE column");
        assert_eq!(lines[2][column..].split_whitespace().next(), Some("12"));
        assert!(table.ends_with("parked messages waiting for an operator: 2\n"));
    }

    #[test]
    fn every_redrive_outcome_reads_back_as_what_it_was() {
        let outcomes = vec![
            QueueOutcome::Redriven(QueueReport {
                queue: "paysaga-payments-dlq".to_owned(),
                examined: 7,
                sent_back: 4,
                parked: 1,
                settle_checks: 1,
                handled_before: 1,
                left: BTreeMap::from([("the destination refused it".to_owned(), 1)]),
                not_deleted: 0,
                stopped: Some(paysaga_services::redrive::run::Stopped::MaxMessages),
            }),
            QueueOutcome::MoveTaskStarted {
                queue: "paysaga-audit-dlq".to_owned(),
                destination: "paysaga-audit".to_owned(),
                move_task: "task-1".to_owned(),
            },
            QueueOutcome::Failed {
                queue: "paysaga-event-delivery-dlq".to_owned(),
                error: "throttled".to_owned(),
            },
        ];
        let read: Redriven = as_read(Response::Redrive {
            queues: outcomes.clone(),
            depths_after: vec![("paysaga-payments-dlq".to_owned(), QueueDepth::default())],
        });
        assert_eq!(read.queues, outcomes);

        let report = redrive_report(&read.queues);
        assert_eq!(
            report,
            "paysaga-payments-dlq: examined 7, sent back 4, parked 1 (1 handed to the reconciler), \
             handled before 1, left 1 \
             (stopped: max_messages)\n  left 1: the destination refused it\n\
             paysaga-audit-dlq: SQS moves it to paysaga-audit (task task-1)\n\
             paysaga-event-delivery-dlq: FAILED: throttled\n"
        );
    }

    #[test]
    fn parked_pages_and_replays_read_back() {
        let page = ParkedPage {
            messages: vec![
                parked("payments-dlq/1", ParkedStatus::Parked, "version 2"),
                parked(
                    "payments-dlq/2",
                    ParkedStatus::Replayed,
                    "a permanent failure",
                ),
            ],
            next: Some("payments-dlq/2".to_owned()),
        };
        let read: ParkedPage = as_read(Response::Parked(page.clone()));
        assert_eq!(read, page);
        let last: ParkedPage = as_read(Response::Parked(ParkedPage::default()));
        assert_eq!(last.next, None, "the last page names no next one");

        let shown_back: ParkedMessage =
            as_read(Response::Shown(Box::new(page.messages[0].clone())));
        assert_eq!(shown_back, page.messages[0]);
        let replayed = Replayed {
            action_id: paysaga_domain::OperatorActionId::parse("opa_1").unwrap(),
            parked_id: "payments-dlq/1".to_owned(),
            sent_to: "paysaga-payments".to_owned(),
            body_edited: true,
        };
        let read: Replayed = serde_json::from_value(serde_json::json!(replayed)).unwrap();
        assert_eq!(read, replayed);
        assert_eq!(
            replayed_line(&read),
            "replayed payments-dlq/1 to paysaga-payments (with the fixed body); recorded in the \
             audit trail as opa_1"
        );
    }

    #[test]
    fn the_parking_table_shows_each_message_on_one_line_and_a_body_as_json() {
        let long_reason = "x".repeat(200);
        let messages = [
            parked("payments-dlq/1", ParkedStatus::Parked, &long_reason),
            parked(
                "payments-dlq/2",
                ParkedStatus::Replayed,
                "a permanent failure",
            ),
        ];
        let table = parked_table(&messages);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[2].starts_with("payments-dlq/1  parked"), "{table}");
        assert!(lines[2].contains("2026-12-05 21:30:07"), "{table}");
        assert!(
            lines[2].ends_with(&"x".repeat(80)),
            "reasons are cut at 80: {table}"
        );
        assert!(!lines[2].contains(&"x".repeat(81)), "{table}");
        assert!(lines[3].contains("replayed"), "{table}");
        let settled = parked_table(&[parked(
            "payments-dlq/3",
            ParkedStatus::Settled,
            "failed again after 3 redrives",
        )]);
        assert!(
            settled
                .lines()
                .nth(2)
                .is_some_and(|line| line.starts_with("payments-dlq/3  settled")),
            "{settled}"
        );

        let whole: serde_json::Value =
            serde_json::from_str(&shown(&messages[0])).expect("shown as JSON");
        assert_eq!(
            whole["body"]["detail"]["version"], 2,
            "the body parsed: {whole}"
        );
        assert_eq!(whole["parked_id"], "payments-dlq/1");
    }

    #[test]
    fn a_body_that_is_not_json_is_shown_as_the_text_it_is() {
        let mut message = parked("payments-dlq/3", ParkedStatus::Parked, "not JSON");
        message.body = "{truncated".to_owned();
        let whole: serde_json::Value = serde_json::from_str(&shown(&message)).expect("JSON");
        assert_eq!(whole["body"], "{truncated");
    }
}
