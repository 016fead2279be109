//! The `dlq-redrive` function: one request per invocation, from an operator (`aws lambda
//! invoke`, `cargo lambda invoke`, `make dlq-*`) or from the schedule in the template.
//!
//! - `{"action":"redrive"}` redrives every dead-letter queue (or `"queue"`: one, by name, URL
//!   or ARN): transient failures go back where they failed, at most `max_per_second`, the rest
//!   are parked ([`paysaga_services::redrive`]). `"mode":"whole-queue"` instead has SQS move the whole
//!   queue back to its one source (`StartMessageMoveTask`), unread.
//! - `{"action":"status"}`: depths of every dead-letter queue and its sources, and how many
//!   parked messages wait.
//! - `{"action":"parked"}`: a page of the parking table (`limit`, `after`);
//!   `{"action":"show","parked_id":"..."}`: one parked message.
//! - `{"action":"replay","parked_id":"..."}`: sends a parked message again, or its fixed
//!   `body`.
//!
//! Each invocation flushes its metrics once ([`lambda_toolkit::metrics`]), per dead-letter queue:
//! `DlqDepth` (messages in it: visible, in flight and delayed) on `status` and after a
//! `redrive`, `MessagesRedriven` and `MessagesParked` on a `redrive`; and `ParkedWaiting` on
//! `status`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lambda_runtime::{Diagnostic, LambdaEvent};
use lambda_toolkit::metrics::{Metrics, MetricsSink, Unit};
use paysaga_domain::ports::StoreError;
use paysaga_services::redrive::parking::{
    ParkedPage, ReplayError, ReplayRequest, Replayed, replay,
};
use paysaga_services::redrive::run::RedriveError;
use paysaga_services::redrive::{
    DeadLetterRoutes, ParkedMessage, ParkingLot, QueueAdmin, QueueDepth, QueueError, QueueReport,
    Redrive, RedriveJournal, RedriveQueues, RedriveSettings, RuleDirectory,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// What the function may touch, and how it behaves.
pub struct DlqRedriveFunction {
    pub queues: Arc<dyn RedriveQueues>,
    pub admin: Arc<dyn QueueAdmin>,
    pub rules: Arc<dyn RuleDirectory>,
    pub journal: Arc<dyn RedriveJournal>,
    pub parking: Arc<dyn ParkingLot>,
    /// The dead-letter queues it serves (URLs).
    pub dead_letter_queues: Vec<String>,
    /// The defaults; a request may lower or raise the rate and the number of messages.
    pub settings: RedriveSettings,
    /// Where each invocation's metrics go (stdout in Lambda).
    pub metrics: MetricsSink,
}

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Redrive {
        /// One dead-letter queue (name, URL or ARN); all of them when absent.
        #[serde(default)]
        queue: Option<String>,
        #[serde(default)]
        mode: Mode,
        #[serde(default)]
        max_per_second: Option<u32>,
        #[serde(default)]
        max_messages: Option<u32>,
        #[serde(default)]
        visibility_timeout_seconds: Option<u32>,
    },
    Status,
    Parked {
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        after: Option<String>,
    },
    Show {
        parked_id: String,
    },
    Replay {
        parked_id: String,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        destination: Option<String>,
        #[serde(default)]
        force: bool,
    },
}

impl Request {
    /// The request an invocation's payload holds. The function reads its payload as JSON and
    /// parses it here, not in the runtime: the runtime logs a payload that does not parse with
    /// serde's error, which quotes the values it refused; this refusal quotes none.
    pub fn from_payload(payload: serde_json::Value) -> Result<Self, RedriveFailed> {
        let request: Self = serde_json::from_value(payload).map_err(|error| {
            let error = redact::json_error(&error);
            RedriveFailed::InvalidRequest(format!("not a redrive request: {error}"))
        })?;
        // Names and ids are echoed in refusals, which the runtime logs: none may be a secret.
        let names = match &request {
            Self::Redrive { queue, .. } => vec![("queue", queue.as_deref())],
            Self::Status => Vec::new(),
            Self::Parked { after, .. } => vec![("after", after.as_deref())],
            Self::Show { parked_id } => vec![("parked_id", Some(parked_id.as_str()))],
            Self::Replay {
                parked_id,
                destination,
                ..
            } => vec![
                ("parked_id", Some(parked_id.as_str())),
                ("destination", destination.as_deref()),
            ],
        };
        for (field, value) in names {
            if let Some(finding) =
                value.and_then(|value| redact::findings(value).into_iter().next())
            {
                return Err(RedriveFailed::InvalidRequest(format!(
                    "{field} must not hold {}",
                    finding.kind
                )));
            }
        }
        Ok(request)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Read every message: send back what a retry can help, park the rest.
    #[default]
    Selective,
    /// Have SQS move the whole queue back to its one source queue, unread (after an outage,
    /// when every message is known to be worth retrying).
    WholeQueue,
}

/// What an invocation answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Redrive {
        queues: Vec<QueueOutcome>,
    },
    Status(Status),
    Parked {
        messages: Vec<ParkedMessage>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    Shown(Box<ParkedMessage>),
    Replayed(Replayed),
}

/// What a redrive did to one dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum QueueOutcome {
    Redriven(QueueReport),
    MoveTaskStarted {
        queue: String,
        destination: String,
        move_task: String,
    },
    Failed {
        queue: String,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub queues: Vec<QueueStatus>,
    /// Parked messages an operator has not replayed.
    pub parked_waiting: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    pub queue: String,
    /// The dead-letter queue of a source queue; absent for dead-letter queues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,
    #[serde(flatten)]
    pub depth: QueueDepth,
}

/// The prefix the template gives every queue's name (`${AWS::StackName}-`): the longest prefix
/// the names share, up to and including its last `-`; `None` with fewer than two names.
fn stack_prefix(names: &[String]) -> Option<&str> {
    let (first, rest) = names.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let shared = rest.iter().fold(first.len(), |shared, name| {
        first
            .bytes()
            .zip(name.bytes())
            .take(shared)
            .take_while(|(a, b)| a == b)
            .count()
    });
    // Bytes, not chars: `-` is ASCII, so the cut falls on a char boundary whatever the names.
    let end = first.as_bytes()[..shared]
        .iter()
        .rposition(|&byte| byte == b'-')?;
    Some(&first[..=end])
}

/// Why an invocation failed; the `error_type` says what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum RedriveFailed {
    #[error("no one dead-letter queue is {asked:?}; this function serves: {known}")]
    UnknownQueue { asked: String, known: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RedriveFailed> for Diagnostic {
    fn from(failure: RedriveFailed) -> Self {
        let error_type = match &failure {
            RedriveFailed::UnknownQueue { .. } => "UnknownQueue",
            RedriveFailed::InvalidRequest(_) => "InvalidRequest",
            RedriveFailed::Replay(ReplayError::NotFound(_)) => "ParkedMessageNotFound",
            RedriveFailed::Replay(ReplayError::AlreadyReplayed { .. }) => "AlreadyReplayed",
            RedriveFailed::Replay(ReplayError::Contract(_)) => "ContractViolation",
            RedriveFailed::Replay(ReplayError::NoDestination(_)) => "NoDestination",
            RedriveFailed::Replay(_) | RedriveFailed::Queue(_) | RedriveFailed::Store(_) => {
                "Unavailable"
            }
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: failure.to_string(),
        }
    }
}

/// Lambda allows 15 minutes; an invocation without a deadline (a test) gets as much.
const LONGEST_INVOCATION: Duration = Duration::from_secs(900);

pub async fn handle(
    function: &DlqRedriveFunction,
    event: LambdaEvent<Request>,
) -> Result<Response, RedriveFailed> {
    let mut metrics = function.metrics.collector();
    let answer = answer(function, event, &mut metrics).await;
    if let Ok(response) = &answer {
        count_outcomes(&mut metrics, response);
    }
    function.metrics.flush(metrics);
    answer
}

async fn answer(
    function: &DlqRedriveFunction,
    event: LambdaEvent<Request>,
    metrics: &mut Metrics,
) -> Result<Response, RedriveFailed> {
    let deadline = deadline_of(&event.context);
    match event.payload {
        Request::Redrive {
            queue,
            mode,
            max_per_second,
            max_messages,
            visibility_timeout_seconds,
        } => {
            let settings = RedriveSettings {
                max_per_second: max_per_second.unwrap_or(function.settings.max_per_second),
                max_messages: max_messages.unwrap_or(function.settings.max_messages),
                visibility: visibility_timeout_seconds
                    .map_or(function.settings.visibility, |seconds| {
                        Duration::from_secs(u64::from(seconds))
                    }),
                ..function.settings.clone()
            };
            if settings.max_per_second == 0 || settings.max_messages == 0 {
                return Err(RedriveFailed::InvalidRequest(
                    "max_per_second and max_messages must be at least 1".to_owned(),
                ));
            }
            let queues = function.selected(queue.as_deref()).await?;
            let mut outcomes = Vec::new();
            for routes in &queues {
                let outcome = match mode {
                    Mode::Selective => function.redrive(routes, &settings, deadline).await,
                    Mode::WholeQueue => function.move_whole_queue(routes, &settings).await,
                };
                outcomes.push(outcome);
            }
            for routes in &queues {
                match function.admin.depth(&routes.queue).await {
                    Ok(depth) => dlq_depth(metrics, routes.queue.name(), &depth),
                    Err(error) => {
                        warn!(queue = routes.queue.name(), %error, "no depth for the metrics")
                    }
                }
            }
            Ok(Response::Redrive { queues: outcomes })
        }
        Request::Status => Ok(Response::Status(function.status().await?)),
        Request::Parked { limit, after } => {
            let ParkedPage { messages, next } = function
                .parking
                .list(limit.unwrap_or(50).clamp(1, 1_000), after.as_deref())
                .await?;
            Ok(Response::Parked { messages, next })
        }
        Request::Show { parked_id } => match function.parking.parked(&parked_id).await? {
            Some(message) => Ok(Response::Shown(Box::new(message))),
            None => Err(RedriveFailed::Replay(ReplayError::NotFound(parked_id))),
        },
        Request::Replay {
            parked_id,
            body,
            destination,
            force,
        } => {
            let request = ReplayRequest {
                parked_id,
                body,
                destination,
                force,
            };
            let replayed = replay(
                function.queues.as_ref(),
                function.parking.as_ref(),
                &request,
                Utc::now(),
            )
            .await?;
            Ok(Response::Replayed(replayed))
        }
    }
}

/// `DlqDepth` of one dead-letter queue: every message in it.
fn dlq_depth(metrics: &mut Metrics, queue: &str, depth: &QueueDepth) {
    let total = depth.visible + depth.in_flight + depth.delayed;
    // Queue depths stay far below 2^53, where f64 stops being exact.
    metrics.gauge("DlqDepth", &[("queue", queue)], total as f64, Unit::Count);
}

/// The metrics a response carries: depths and parked messages waiting (`status`), messages
/// redriven and parked per queue (`redrive`).
fn count_outcomes(metrics: &mut Metrics, response: &Response) {
    match response {
        Response::Status(status) => {
            for queue in status
                .queues
                .iter()
                .filter(|queue| queue.dead_letter_queue.is_none())
            {
                dlq_depth(metrics, &queue.queue, &queue.depth);
            }
            metrics.gauge(
                "ParkedWaiting",
                &[],
                status.parked_waiting as f64,
                Unit::Count,
            );
        }
        Response::Redrive { queues } => {
            for outcome in queues {
                if let QueueOutcome::Redriven(report) = outcome {
                    let queue = [("queue", report.queue.as_str())];
                    metrics.count("MessagesRedriven", &queue, report.sent_back.into());
                    metrics.count("MessagesParked", &queue, report.parked.into());
                }
            }
        }
        Response::Parked { .. } | Response::Shown(_) | Response::Replayed(_) => {}
    }
}

fn deadline_of(context: &lambda_runtime::Context) -> Instant {
    let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let remaining = match context.deadline {
        0 => LONGEST_INVOCATION,
        deadline => Duration::from_millis(deadline.saturating_sub(now_ms)),
    };
    Instant::now() + remaining
}

impl DlqRedriveFunction {
    /// The dead-letter queue a request names (by name, name without the stack's prefix, URL or
    /// ARN), or all of them when it names none, with their sources.
    async fn selected(&self, asked: Option<&str>) -> Result<Vec<DeadLetterRoutes>, RedriveFailed> {
        let mut all = Vec::with_capacity(self.dead_letter_queues.len());
        for url in &self.dead_letter_queues {
            all.push(self.queues.routes(url).await?);
        }
        let Some(asked) = asked else { return Ok(all) };
        let known: Vec<String> = all
            .iter()
            .map(|routes| routes.queue.name().to_owned())
            .collect();
        let exact = |routes: &DeadLetterRoutes| {
            let queue = &routes.queue;
            queue.name() == asked || queue.url == asked || queue.arn == asked
        };
        // Without the stack's prefix: `payments-dlq` for `paysaga-dev-payments-dlq` (and not
        // for `paysaga-dev-urgent-payments-dlq`, which ends the same way).
        let prefix = stack_prefix(&known);
        let short = |routes: &DeadLetterRoutes| {
            let name = routes.queue.name();
            match prefix {
                Some(prefix) => name.strip_prefix(prefix) == Some(asked),
                None => name.ends_with(&format!("-{asked}")),
            }
        };
        let chosen: Vec<DeadLetterRoutes> = match all.iter().position(exact) {
            Some(index) => vec![all.swap_remove(index)],
            None => all.into_iter().filter(short).collect(),
        };
        if chosen.len() != 1 {
            return Err(RedriveFailed::UnknownQueue {
                asked: redact::shown(asked),
                known: known.join(", "),
            });
        }
        Ok(chosen)
    }

    async fn redrive(
        &self,
        routes: &DeadLetterRoutes,
        settings: &RedriveSettings,
        deadline: Instant,
    ) -> QueueOutcome {
        let redrive = Redrive {
            queues: self.queues.as_ref(),
            rules: self.rules.as_ref(),
            journal: self.journal.as_ref(),
            parking: self.parking.as_ref(),
            settings,
        };
        match redrive.drain(routes, deadline).await {
            Ok(report) => {
                info!(queue = %report.queue, examined = report.examined, sent_back = report.sent_back, parked = report.parked, "dead-letter queue redriven");
                QueueOutcome::Redriven(report)
            }
            Err(failure) => {
                let failure = match failure {
                    RedriveError::Queue(error) => error.to_string(),
                    RedriveError::Store(error) => error.to_string(),
                };
                error!(queue = routes.queue.name(), error = %failure, "redrive stopped");
                QueueOutcome::Failed {
                    queue: routes.queue.name().to_owned(),
                    error: failure,
                }
            }
        }
    }

    async fn move_whole_queue(
        &self,
        routes: &DeadLetterRoutes,
        settings: &RedriveSettings,
    ) -> QueueOutcome {
        let queue = routes.queue.name().to_owned();
        let [source] = &routes.sources[..] else {
            return QueueOutcome::Failed {
                error: format!(
                    "a whole-queue move needs a dead-letter queue with one source queue; {queue} has {}: redrive it selectively",
                    routes.sources.len()
                ),
                queue,
            };
        };
        match self
            .admin
            .start_move_task(&routes.queue, source, settings.max_per_second)
            .await
        {
            Ok(move_task) => QueueOutcome::MoveTaskStarted {
                queue,
                destination: source.name().to_owned(),
                move_task,
            },
            Err(error) => QueueOutcome::Failed {
                queue,
                error: error.to_string(),
            },
        }
    }

    async fn status(&self) -> Result<Status, RedriveFailed> {
        let mut queues = Vec::new();
        for routes in self.selected(None).await? {
            for source in &routes.sources {
                queues.push(QueueStatus {
                    queue: source.name().to_owned(),
                    dead_letter_queue: Some(routes.queue.name().to_owned()),
                    depth: self.admin.depth(source).await?,
                });
            }
            queues.push(QueueStatus {
                queue: routes.queue.name().to_owned(),
                dead_letter_queue: None,
                depth: self.admin.depth(&routes.queue).await?,
            });
        }
        Ok(Status {
            queues,
            parked_waiting: self.parking.waiting().await?,
        })
    }
}
