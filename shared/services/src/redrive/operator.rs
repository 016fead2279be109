//! An operator's requests to the redrive, and their answers: redrive the dead-letter queues
//! now (selectively, or a whole queue moved back by SQS), their status, the parking table, one
//! parked message. The `dlq-redrive` function answers them, one per invocation (from an
//! operator, or from its schedule); see its docs for the JSON.
//!
//! A replay of a parked message is not among them: it sends what an operator chose, so it
//! goes through the admin API (`POST /admin/parked/{parked_id}/replay`), whose token says who
//! the operator is, and the audit trail records it ([`super::parking::replay`]). A Lambda
//! invocation carries no identity the function could record.

use std::sync::Arc;
use std::time::Duration;

use paysaga_domain::ports::{DeadlineChecks, StoreError};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::parking::ParkedPage;
use super::run::RedriveError;
use super::{
    DeadLetterRoutes, ParkedMessage, ParkingLot, QueueAdmin, QueueDepth, QueueError, QueueReport,
    Redrive, RedriveJournal, RedriveQueues, RedriveSettings, RuleDirectory,
};

/// What the redrive may touch, the dead-letter queues it serves, and how it behaves.
pub struct RedriveService {
    pub queues: Arc<dyn RedriveQueues>,
    pub admin: Arc<dyn QueueAdmin>,
    pub rules: Arc<dyn RuleDirectory>,
    pub journal: Arc<dyn RedriveJournal>,
    pub parking: Arc<dyn ParkingLot>,
    /// Where a payment's request parked on its way to the saga becomes a check of its payment,
    /// for the reconciler to settle it.
    pub deadlines: Arc<dyn DeadlineChecks>,
    /// The dead-letter queues it serves (URLs).
    pub dead_letter_queues: Vec<String>,
    /// The queues the saga reads (ARNs).
    pub saga_queues: Vec<String>,
    /// The defaults; a request may lower or raise the rate and the number of messages.
    pub settings: RedriveSettings,
}

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Request {
    /// The request an invocation's payload holds. The function reads its payload as JSON and
    /// parses it here, not in the runtime: the runtime logs a payload that does not parse with
    /// serde's error, which quotes the values it refused; this refusal quotes none.
    pub fn from_payload(payload: serde_json::Value) -> Result<Self, RedriveFailed> {
        if payload.get("action").and_then(serde_json::Value::as_str) == Some("replay") {
            return Err(RedriveFailed::InvalidRequest(
                "replays go through the admin API (POST /admin/parked/{parked_id}/replay, or \
                 paysaga-admin dlq replay), which records who replayed what, and why"
                    .to_owned(),
            ));
        }
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
        /// Each dead-letter queue's depth once redriven (for metrics; not in the answer).
        #[serde(skip)]
        depths_after: Vec<(String, QueueDepth)>,
    },
    Status(Status),
    Parked(ParkedPage),
    Shown(Box<ParkedMessage>),
}

/// What a redrive did to one dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub queues: Vec<QueueStatus>,
    /// Parked messages an operator has not replayed.
    pub parked_waiting: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[error("no parked message {0}")]
    NotFound(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RedriveFailed {
    /// What kind of failure it is, for the caller to act on (the function's `errorType`).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::UnknownQueue { .. } => "UnknownQueue",
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::NotFound(_) => "ParkedMessageNotFound",
            Self::Queue(_) | Self::Store(_) => "Unavailable",
        }
    }
}

impl RedriveService {
    /// Answers `request`, a redrive stopping short of `deadline` (what it leaves is left for the
    /// next run).
    pub async fn answer(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, RedriveFailed> {
        match request {
            Request::Redrive {
                queue,
                mode,
                max_per_second,
                max_messages,
                visibility_timeout_seconds,
            } => {
                let settings = RedriveSettings {
                    max_per_second: max_per_second.unwrap_or(self.settings.max_per_second),
                    max_messages: max_messages.unwrap_or(self.settings.max_messages),
                    visibility: visibility_timeout_seconds
                        .map_or(self.settings.visibility, |seconds| {
                            Duration::from_secs(u64::from(seconds))
                        }),
                    ..self.settings.clone()
                };
                if settings.max_per_second == 0 || settings.max_messages == 0 {
                    return Err(RedriveFailed::InvalidRequest(
                        "max_per_second and max_messages must be at least 1".to_owned(),
                    ));
                }
                let queues = self.selected(queue.as_deref()).await?;
                let mut outcomes = Vec::new();
                for routes in &queues {
                    let outcome = match mode {
                        Mode::Selective => self.redrive(routes, &settings, deadline).await,
                        Mode::WholeQueue => self.move_whole_queue(routes, &settings).await,
                    };
                    outcomes.push(outcome);
                }
                let mut depths_after = Vec::new();
                for routes in &queues {
                    match self.admin.depth(&routes.queue).await {
                        Ok(depth) => depths_after.push((routes.queue.name().to_owned(), depth)),
                        Err(error) => {
                            warn!(queue = routes.queue.name(), %error, "no depth after the redrive")
                        }
                    }
                }
                Ok(Response::Redrive {
                    queues: outcomes,
                    depths_after,
                })
            }
            Request::Status => Ok(Response::Status(self.status().await?)),
            Request::Parked { limit, after } => {
                let page = self
                    .parking
                    .list(limit.unwrap_or(50).clamp(1, 1_000), after.as_deref())
                    .await?;
                Ok(Response::Parked(page))
            }
            Request::Show { parked_id } => match self.parking.parked(&parked_id).await? {
                Some(message) => Ok(Response::Shown(Box::new(message))),
                None => Err(RedriveFailed::NotFound(parked_id)),
            },
        }
    }

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
            deadlines: self.deadlines.as_ref(),
            saga_queues: &self.saga_queues,
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
