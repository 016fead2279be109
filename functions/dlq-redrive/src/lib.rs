//! The `dlq-redrive` function: one request per invocation, from an operator (`aws lambda
//! invoke`, `cargo lambda invoke`, `make dlq-*`) or from the schedule in the template, answered
//! by [`RedriveService`]:
//!
//! - `{"action":"redrive"}` redrives every dead-letter queue (or `"queue"`: one, by name, URL
//!   or ARN): transient failures go back where they failed, at most `max_per_second`, the rest
//!   are parked; a payment's request parked on its way to the saga also becomes a check of its
//!   payment, due at once, for the reconciler to settle it once the payment is terminal.
//!   `"mode":"whole-queue"` instead has SQS move the whole queue back to its one source
//!   (`StartMessageMoveTask`), unread.
//! - `{"action":"status"}`: depths of every dead-letter queue and its sources, and how many
//!   parked messages wait.
//! - `{"action":"parked"}`: a page of the parking table (`limit`, `after`);
//!   `{"action":"show","parked_id":"..."}`: one parked message.
//!
//! A replay of a parked message is the admin API's (`POST /admin/parked/{parked_id}/replay`),
//! which knows the operator from their token and records the replay in the audit trail; an
//! invocation carries no identity to record, so this function refuses `"action":"replay"`.
//!
//! Metrics, per dead-letter queue: `DlqDepth` (visible, in flight and delayed) on `status` and
//! after a `redrive`, `MessagesRedriven` and `MessagesParked` on a `redrive`; `ParkedWaiting`
//! on `status`.

use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent};
use lambda_toolkit::metrics::{Metrics, MetricsSink, Unit};
use paysaga_services::redrive::QueueDepth;
use paysaga_services::redrive::operator::{QueueOutcome, RedriveService, Request, Response};
use tokio::time::Instant;

mod config;
pub use config::Config;

/// Lambda allows 15 minutes; an invocation without a deadline (a test) gets as much.
const LONGEST_INVOCATION: Duration = Duration::from_secs(900);

/// Answers the invocation's request (its payload, parsed by [`Request::from_payload`]), the
/// failure's `errorType` saying what the caller does about it.
pub async fn handle(
    service: &RedriveService,
    metrics: &MetricsSink,
    event: LambdaEvent<serde_json::Value>,
) -> Result<Response, Diagnostic> {
    let deadline = deadline_of(&event.context);
    let answered = match Request::from_payload(event.payload) {
        Ok(request) => service.answer(request, deadline).await,
        Err(refused) => Err(refused),
    };
    let mut counted = metrics.collector();
    if let Ok(response) = &answered {
        count_outcomes(&mut counted, response);
    }
    metrics.flush(counted);
    answered.map_err(|failure| Diagnostic {
        error_type: failure.error_type().to_owned(),
        error_message: failure.to_string(),
    })
}

/// The metrics a response carries: depths and parked messages waiting (`status`), messages
/// redriven and parked, and depths after, per queue (`redrive`).
fn count_outcomes(metrics: &mut Metrics, response: &Response) {
    let mut dlq_depth = |queue: &str, depth: &QueueDepth| {
        // Queue depths stay far below 2^53, where f64 stops being exact.
        let total = (depth.visible + depth.in_flight + depth.delayed) as f64;
        metrics.gauge("DlqDepth", &[("queue", queue)], total, Unit::Count);
    };
    match response {
        Response::Status(status) => {
            let dead_letter_queues = status
                .queues
                .iter()
                .filter(|q| q.dead_letter_queue.is_none());
            for queue in dead_letter_queues {
                dlq_depth(&queue.queue, &queue.depth);
            }
            let waiting = status.parked_waiting as f64;
            metrics.gauge("ParkedWaiting", &[], waiting, Unit::Count);
        }
        Response::Redrive {
            queues,
            depths_after,
        } => {
            for (queue, depth) in depths_after {
                dlq_depth(queue, depth);
            }
            for outcome in queues {
                if let QueueOutcome::Redriven(report) = outcome {
                    let queue = [("queue", report.queue.as_str())];
                    metrics.count("MessagesRedriven", &queue, report.sent_back.into());
                    metrics.count("MessagesParked", &queue, report.parked.into());
                }
            }
        }
        Response::Parked(_) | Response::Shown(_) => {}
    }
}

fn deadline_of(context: &lambda_runtime::Context) -> Instant {
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let remaining = match context.deadline {
        0 => LONGEST_INVOCATION,
        deadline => Duration::from_millis(deadline.saturating_sub(now_ms)),
    };
    Instant::now() + remaining
}
