//! SQS batches with partial failures: each message is handled on its own, and only the ones
//! that failed are reported back, so one bad message never fails its batch-mates.
//!
//! When a message fails on its last delivery (the queue's `maxReceiveCount`), the consumer sends
//! it to the queue's dead-letter queue itself, with why it failed in a message attribute
//! ([`FAILURE_ATTRIBUTE`], `failure-record`: a [`FailureRecord`] as JSON), and lets it go;
//! whatever reads the DLQ later (a redrive, an operator) finds that record instead of guessing.
//! Should that send fail, the message is reported as failed as before, and the queue's redrive
//! policy moves it without a record: nothing is lost either way.
//!
//! A handler that panics fails its own message only: each record's handling runs in
//! [`crate::panics::catch`], and its panic becomes a [`MessageFailure::panicked`] (permanent,
//! the reason naming where it panicked, never a formatted panic message: it may quote the
//! input), logged as an error, while its batch-mates go on. This needs the release profile's
//! `panic = "unwind"` (the root `Cargo.toml`).
//!
//! Each record is handled in its own trace ([`crate::trace`]): its `AWSTraceHeader` is the
//! current trace while it is handled (the events its handler publishes carry it on) and its
//! `trace_id` is on every line logged meanwhile.
//!
//! Every batch is counted on the invocation's [`Metrics`](crate::metrics::Metrics), per queue
//! (its name, from the message's `eventSourceARN`): `MessagesReceived`, `MessagesFailed` (the
//! handler failed, whether the message went back to the queue or to the DLQ),
//! `MessagesDeadLettered` (sent to the DLQ by the consumer on its last delivery),
//! `MessagesPanicked` (failed because the handler panicked: a bug, worth an alarm),
//! `MessagesDelayed` (failed for later, their next delivery delayed) and `MessagesSentAgain`
//! (unfinished on their last delivery, sent again as fresh messages). Each first delivery's
//! wait in its queue, from SQS's `SentTimestamp` to its handler, is observed as `QueueWait`
//! (milliseconds, one value a message: a distribution).
//!
//! A failure that asking again at once would not help ([`MessageFailure::Later`]: a dependency
//! that refuses for now) goes back to the queue for as long as it says: the consumer delays the
//! message's next delivery through its [`MessageDelay`] (SQS `ChangeMessageVisibility`), and
//! when it has none, or that call fails, the queue's visibility timeout applies.
//!
//! Work that must never be given up and cannot finish yet ([`MessageFailure::Unfinished`]: an
//! undoing a dependency refuses for now, a write that keeps losing to other writers) is a
//! failure for later too, until its last delivery: there the consumer does not give up on it
//! but sends the body again as a fresh message, with its own receive count, delivered after
//! the same delay ([`MessageDelay::send_again`]), and lets the old one go
//! (`MessagesSentAgain`). Should that send fail, the message goes to the dead-letter queue as
//! any other failure would.
//!
//! A function uses all of it through [`crate::sqs_consumer::SqsConsumer`], saying only what to
//! do with one message; this module is the types it shares with its handlers and its
//! dead-letter queues, and the batch's mechanics.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, error, info, info_span, warn};

use crate::metrics::{InvocationMetrics, Unit, milliseconds};
use crate::panics::{self, Panic};
use crate::trace::{self, TraceHeader};

/// The message attribute that carries a [`FailureRecord`] (JSON) to the dead-letter queue.
pub const FAILURE_ATTRIBUTE: &str = "failure-record";

/// Why a message was not handled. Both kinds go back to the queue until its last delivery; the
/// kind says whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageFailure {
    /// A dependency failed; the same message may succeed later.
    #[error("transient: {0}")]
    Transient(String),
    /// A dependency refuses for now, and asking again sooner than `retry_in` would not help:
    /// transient, its next delivery delayed.
    #[error("transient, retry in {}s: {reason}", retry_in.as_secs())]
    Later { reason: String, retry_in: Duration },
    /// Work that must finish and cannot yet: as [`Self::Later`] (or [`Self::Transient`] when
    /// `retry_in` is zero), except that on its last delivery the message is sent again as a
    /// fresh one instead of to the dead-letter queue.
    #[error("unfinished, retry in {}s: {reason}", retry_in.as_secs())]
    Unfinished { reason: String, retry_in: Duration },
    /// The message itself is unusable (it does not parse, or contradicts what is stored).
    #[error("permanent: {0}")]
    Permanent(String),
}

impl MessageFailure {
    /// A message that can never be handled as it is (an event that breaks its contract, say),
    /// with `reason` as the reason: `.map_err(MessageFailure::permanent)?`.
    pub fn permanent(reason: impl std::fmt::Display) -> Self {
        Self::Permanent(reason.to_string())
    }

    /// `error` as the reason, transient when a retry may succeed:
    /// `.map_err(|error| MessageFailure::of(&error, error.is_transient()))?`.
    pub fn of(error: impl std::fmt::Display, transient: bool) -> Self {
        if transient {
            Self::Transient(error.to_string())
        } else {
            Self::Permanent(error.to_string())
        }
    }

    /// A handler that panicked: a bug, which no retry of the same code can fix, so `Permanent`
    /// (on the last delivery the message goes to its DLQ with this reason, to wait there until
    /// the fix is deployed and it is sent back). It still goes back to the
    /// queue before its last delivery, as every failure does: a panic that depends on timing
    /// gets its retries.
    pub fn panicked(panic: &Panic) -> Self {
        Self::Permanent(format!("the handler {panic}"))
    }
}

/// Why a consumer gave up on a message, as it travels to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// `transient` or `permanent`.
    pub kind: String,
    /// A short text: the error, without the message body.
    pub reason: String,
    /// The ARN of the queue the message failed on.
    pub source_queue: Option<String>,
    /// How many times the source queue had delivered it.
    pub receive_count: u32,
    pub failed_at: DateTime<Utc>,
}

impl FailureRecord {
    /// Reasons are cut to this many characters.
    pub const MAX_REASON_CHARS: usize = 500;

    pub fn new(
        failure: &MessageFailure,
        message: &SqsMessage,
        receive_count: u32,
        now: DateTime<Utc>,
    ) -> Self {
        let (kind, reason) = match failure {
            MessageFailure::Transient(reason)
            | MessageFailure::Later { reason, .. }
            | MessageFailure::Unfinished { reason, .. } => ("transient", reason),
            MessageFailure::Permanent(reason) => ("permanent", reason),
        };
        Self {
            kind: kind.to_owned(),
            reason: redact::scrub(reason)
                .chars()
                .take(Self::MAX_REASON_CHARS)
                .collect(),
            source_queue: message.event_source_arn.clone(),
            receive_count,
            failed_at: now,
        }
    }
}

/// A dead-letter queue the consumer can send a message to, with its failure record.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    async fn send(
        &self,
        message: &SqsMessage,
        record: &FailureRecord,
    ) -> Result<(), DeadLetterError>;
}

/// The dead-letter queue did not take the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dead-letter queue refused the message: {0}")]
pub struct DeadLetterError(pub String);

/// When a message is delivered next.
#[async_trait]
pub trait MessageDelay: Send + Sync {
    /// Delays the message's next delivery (SQS: its visibility timeout from now on).
    async fn delay(&self, message: &SqsMessage, by: Duration) -> Result<(), MessageDelayError>;

    /// Sends the message's body again to the queue it came from, as a fresh message (its own
    /// receive count) delivered after `after` (SQS: at most 15 minutes), in the same trace.
    async fn send_again(
        &self,
        message: &SqsMessage,
        after: Duration,
    ) -> Result<(), MessageDelayError>;
}

/// The queue did not take the delay; its visibility timeout applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the message's next delivery could not be arranged: {0}")]
pub struct MessageDelayError(pub String);

/// Where failures go on a message's last delivery.
#[derive(Clone)]
pub struct GiveUp {
    /// The source queue's `maxReceiveCount` (0: unknown, never give up here).
    pub max_receive_count: u32,
    pub dead_letters: Arc<dyn DeadLetterQueue>,
}

impl GiveUp {
    /// Whether a failure on the `receive_count`th delivery is the last the queue will make.
    fn is_last(&self, receive_count: u32) -> bool {
        self.max_receive_count > 0 && receive_count >= self.max_receive_count
    }
}

/// A record of the batch has no message id, so it could not be reported on its own.
#[derive(Debug, thiserror::Error)]
#[error("an SQS record has no messageId; the whole batch is returned to the queue")]
pub struct RecordWithoutId;

/// How a consumer's invocation fails as a whole (every message goes back to the queue): what
/// every SQS consumer function returns as its error.
impl From<RecordWithoutId> for lambda_runtime::Diagnostic {
    fn from(error: RecordWithoutId) -> Self {
        Self {
            error_type: "BatchFailed".into(),
            error_message: error.to_string(),
        }
    }
}

/// The `ApproximateReceiveCount` SQS gave the message (1 when absent).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// How long `message` waited in its queue before this delivery reached its handler at `now`:
/// from SQS's `SentTimestamp`, for a first delivery only (a redelivery's time since it was sent
/// holds its earlier attempts and their visibility timeouts, not queueing). `None` otherwise,
/// or without the attribute; a clock behind the queue's counts as no wait.
pub fn queue_wait(message: &SqsMessage, now: DateTime<Utc>) -> Option<std::time::Duration> {
    if receive_count(message) != 1 {
        return None;
    }
    let sent = message.attributes.get("SentTimestamp")?.parse().ok()?;
    let sent = DateTime::<Utc>::from_timestamp_millis(sent)?;
    Some((now - sent).to_std().unwrap_or_default())
}

/// The name of the queue a message came from (the last part of its `eventSourceARN`).
pub fn queue_name(message: &SqsMessage) -> &str {
    message
        .event_source_arn
        .as_deref()
        .and_then(|arn| arn.rsplit(':').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown")
}

/// Adds one to the count `name` of the queue `message` came from.
fn count_message(metrics: &InvocationMetrics, name: &str, message: &SqsMessage) {
    metrics.count(name, &[("queue", queue_name(message))], 1);
}

/// Handles every message of `event` concurrently and reports the failed ones (a message whose
/// handler panicked among them); on a message's last delivery a failure goes to the dead-letter
/// queue with its record instead. Counts the messages received, failed, dead-lettered and
/// panicked per queue on `metrics`, and observes each first delivery's [`queue_wait`]
/// (`QueueWait`, milliseconds). Each message is handled in a span `message` with its
/// `message_id`, within its trace's span.
pub(crate) async fn process_batch<F, Fut>(
    event: SqsEvent,
    give_up: Option<&GiveUp>,
    delays: Option<&dyn MessageDelay>,
    metrics: &InvocationMetrics,
    handle: F,
) -> Result<SqsBatchResponse, RecordWithoutId>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), MessageFailure>>,
{
    let handle = &handle;
    let handled = event.records.into_iter().map(|message| {
        count_message(metrics, "MessagesReceived", &message);
        if let Some(wait) = queue_wait(&message, Utc::now()) {
            let queue = [("queue", queue_name(&message))];
            metrics.observe("QueueWait", &queue, milliseconds(wait), Unit::Milliseconds);
        }
        // Each record in its own trace: on its log lines, and on the events its handling publishes.
        let trace = TraceHeader::of_sqs_message(&message);
        let span = trace::span(trace.as_ref());
        let message_span = info_span!(parent: &span, "message", message_id = message.message_id.as_deref().unwrap_or("-"));
        let handled = async move {
            // The handler is called inside the catch too: a panic before its first await is as
            // much this message's failure.
            let failure = match panics::catch(async { handle(message.clone()).await }).await {
                Ok(Ok(())) => return Ok(None),
                Ok(Err(failure)) => failure,
                Err(panic) => {
                    count_message(metrics, "MessagesPanicked", &message);
                    let message_id = message.message_id.as_deref().unwrap_or("-");
                    error!(%message_id, %panic, "message handling panicked (a bug); the message fails alone");
                    MessageFailure::panicked(&panic)
                }
            };
            count_message(metrics, "MessagesFailed", &message);
            let message_id = message.message_id.clone().ok_or(RecordWithoutId)?;
            let deliveries = receive_count(&message);
            let last = give_up.filter(|give_up| give_up.is_last(deliveries));
            if let (MessageFailure::Unfinished { retry_in, .. }, Some(_), Some(delays)) =
                (&failure, last, delays)
            {
                match delays.send_again(&message, *retry_in).await {
                    Ok(()) => {
                        count_message(metrics, "MessagesSentAgain", &message);
                        info!(%message_id, receive_count = deliveries, error = %redact::scrub(&failure.to_string()), "unfinished on its last delivery: sent again as a fresh message");
                        return Ok(None);
                    }
                    Err(error) => warn!(%message_id, %error, "could not send the message again; it is given up as any failure"),
                }
            }
            if let Some(give_up) = last {
                let record = FailureRecord::new(&failure, &message, deliveries, Utc::now());
                match give_up.dead_letters.send(&message, &record).await {
                    Ok(()) => {
                        count_message(metrics, "MessagesDeadLettered", &message);
                        info!(%message_id, receive_count = deliveries, kind = %record.kind, error = %redact::scrub(&failure.to_string()), "message sent to the dead-letter queue");
                        return Ok(None);
                    }
                    Err(error) => warn!(%message_id, %error, "dead-letter queue unavailable; the redrive policy will move the message"),
                }
            }
            let later = match &failure {
                MessageFailure::Later { retry_in, .. }
                | MessageFailure::Unfinished { retry_in, .. } => Some(*retry_in),
                MessageFailure::Transient(_) | MessageFailure::Permanent(_) => None,
            };
            if let (Some(retry_in), Some(delays)) = (later.filter(|by| !by.is_zero()), delays) {
                match delays.delay(&message, retry_in).await {
                    Ok(()) => count_message(metrics, "MessagesDelayed", &message),
                    Err(error) => warn!(%message_id, %error, "the queue's visibility timeout applies"),
                }
            }
            warn!(%message_id, receive_count = deliveries, error = %redact::scrub(&failure.to_string()), "message returned to the queue");
            Ok(Some(message_id))
        };
        trace::scope(trace, handled.instrument(message_span)).instrument(span)
    });
    let mut response = SqsBatchResponse::default();
    for outcome in join_all(handled).await {
        if let Some(message_id) = outcome? {
            let mut item = BatchItemFailure::default();
            item.item_identifier = message_id;
            response.batch_item_failures.push(item);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn message(id: &str, body: &str, receive_count: u32) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(body.to_owned());
        message
            .attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        message.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:orders".into());
        message
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }

    async fn ok_unless_bad(message: SqsMessage) -> Result<(), MessageFailure> {
        match message.body.as_deref() {
            Some("ok") => Ok(()),
            Some("flaky") => Err(MessageFailure::Transient("dependency down".into())),
            _ => Err(MessageFailure::Permanent("not ok".into())),
        }
    }

    fn collector() -> InvocationMetrics {
        crate::metrics::MetricsSink::new("example", "test", Vec::new()).invocation()
    }

    #[test]
    fn a_first_delivery_waited_since_it_was_sent_and_a_redelivery_is_not_counted() {
        let now = DateTime::from_timestamp_millis(1_764_072_000_250).unwrap();
        let mut first = message("m1", "ok", 1);
        first
            .attributes
            .insert("SentTimestamp".into(), "1764072000000".into());
        assert_eq!(queue_wait(&first, now), Some(Duration::from_millis(250)));
        let mut again = message("m2", "ok", 2);
        again
            .attributes
            .insert("SentTimestamp".into(), "1764072000000".into());
        assert_eq!(queue_wait(&again, now), None);
        assert_eq!(
            queue_wait(&message("m3", "ok", 1), now),
            None,
            "no SentTimestamp"
        );
        let mut ahead = message("m4", "ok", 1);
        ahead
            .attributes
            .insert("SentTimestamp".into(), "1764072000900".into());
        assert_eq!(
            queue_wait(&ahead, now),
            Some(Duration::ZERO),
            "the queue's clock ahead"
        );
    }

    #[tokio::test]
    async fn each_first_delivery_of_a_batch_observes_its_queue_wait() {
        let sent_a_second_ago = (Utc::now() - chrono::Duration::seconds(1))
            .timestamp_millis()
            .to_string();
        let mut messages = vec![
            message("a", "ok", 1),
            message("b", "ok", 1),
            message("c", "ok", 2),
        ];
        for message in &mut messages {
            message
                .attributes
                .insert("SentTimestamp".into(), sent_a_second_ago.clone());
        }
        let metrics = collector();
        process_batch(batch(messages), None, None, &metrics, ok_unless_bad)
            .await
            .unwrap();
        let documents = metrics.into_inner().documents("example", Utc::now());
        let waits = documents[0]["QueueWait"].as_array().unwrap();
        assert_eq!(waits.len(), 2, "the redelivery is not a wait in the queue");
        assert!(
            waits
                .iter()
                .all(|wait| (1_000.0..60_000.0).contains(&wait.as_f64().unwrap())),
            "{waits:?}"
        );
    }

    #[test]
    fn the_queue_is_named_by_the_end_of_its_arn() {
        assert_eq!(queue_name(&message("a", "ok", 1)), "orders");
        assert_eq!(queue_name(&SqsMessage::default()), "unknown");
    }

    fn reported(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|item| item.item_identifier.as_str())
            .collect()
    }

    /// A dead-letter queue that keeps what it is sent, or refuses everything.
    #[derive(Default)]
    struct KeptDeadLetters {
        sent: Mutex<Vec<(String, FailureRecord)>>,
        refuse: bool,
    }

    #[async_trait]
    impl DeadLetterQueue for KeptDeadLetters {
        async fn send(
            &self,
            message: &SqsMessage,
            record: &FailureRecord,
        ) -> Result<(), DeadLetterError> {
            if self.refuse {
                return Err(DeadLetterError("down".into()));
            }
            let body = message.body.clone().unwrap_or_default();
            self.sent.lock().unwrap().push((body, record.clone()));
            Ok(())
        }
    }

    #[tokio::test]
    async fn only_failed_messages_are_reported() {
        let event = batch(vec![
            message("a", "ok", 1),
            message("b", "bad", 1),
            message("c", "ok", 1),
        ]);
        let response = process_batch(event, None, None, &collector(), ok_unless_bad)
            .await
            .unwrap();
        assert_eq!(reported(&response), ["b"]);
    }

    /// A delay that keeps what it is asked, or refuses everything.
    #[derive(Default)]
    struct KeptDelays {
        asked: Mutex<Vec<(String, Duration)>>,
        sent_again: Mutex<Vec<(String, Duration)>>,
        refuse: bool,
    }

    #[async_trait]
    impl MessageDelay for KeptDelays {
        async fn delay(&self, message: &SqsMessage, by: Duration) -> Result<(), MessageDelayError> {
            if self.refuse {
                return Err(MessageDelayError("down".into()));
            }
            let id = message.message_id.clone().unwrap_or_default();
            self.asked.lock().unwrap().push((id, by));
            Ok(())
        }

        async fn send_again(
            &self,
            message: &SqsMessage,
            after: Duration,
        ) -> Result<(), MessageDelayError> {
            if self.refuse {
                return Err(MessageDelayError("down".into()));
            }
            let id = message.message_id.clone().unwrap_or_default();
            self.sent_again.lock().unwrap().push((id, after));
            Ok(())
        }
    }

    async fn later_unless_ok(message: SqsMessage) -> Result<(), MessageFailure> {
        match message.body.as_deref() {
            Some("ok") => Ok(()),
            Some("refused") => Err(MessageFailure::Later {
                reason: "refused for now".into(),
                retry_in: Duration::from_secs(90),
            }),
            _ => ok_unless_bad(message).await,
        }
    }

    #[tokio::test]
    async fn a_failure_for_later_delays_its_message_alone_and_still_goes_back() {
        let delays = KeptDelays::default();
        let dead_letters = Arc::new(KeptDeadLetters::default());
        let give_up = GiveUp {
            max_receive_count: 3,
            dead_letters: dead_letters.clone(),
        };
        let event = batch(vec![
            message("a", "refused", 1),
            message("b", "flaky", 1),
            message("c", "ok", 1),
            message("d", "refused", 3),
        ]);
        let metrics = collector();
        let response = process_batch(
            event,
            Some(&give_up),
            Some(&delays),
            &metrics,
            later_unless_ok,
        )
        .await
        .unwrap();
        assert_eq!(reported(&response), ["a", "b"]);
        assert_eq!(
            *delays.asked.lock().unwrap(),
            [("a".to_owned(), Duration::from_secs(90))],
            "only the failure for later is delayed; on its last delivery it goes to the DLQ"
        );
        let sent = dead_letters.sent.lock().unwrap().clone();
        assert_eq!(
            (
                sent.len(),
                sent[0].1.kind.as_str(),
                sent[0].1.reason.as_str()
            ),
            (1, "transient", "refused for now")
        );
        let documents = metrics.into_inner().documents("example", Utc::now());
        assert_eq!(documents[0]["MessagesDelayed"], 1.0);

        // A queue that refuses the delay: the message goes back all the same.
        let refusing = KeptDelays {
            refuse: true,
            ..Default::default()
        };
        let event = batch(vec![message("a", "refused", 1)]);
        let response = process_batch(event, None, Some(&refusing), &collector(), later_unless_ok)
            .await
            .unwrap();
        assert_eq!(reported(&response), ["a"]);
    }

    async fn unfinished_unless_ok(message: SqsMessage) -> Result<(), MessageFailure> {
        match message.body.as_deref() {
            Some("unfinished") => Err(MessageFailure::Unfinished {
                reason: "refused for now".into(),
                retry_in: Duration::from_secs(60),
            }),
            Some("unfinished now") => Err(MessageFailure::Unfinished {
                reason: "store throttled".into(),
                retry_in: Duration::ZERO,
            }),
            _ => later_unless_ok(message).await,
        }
    }

    #[tokio::test]
    async fn unfinished_work_is_sent_again_on_its_last_delivery_instead_of_given_up() {
        let delays = KeptDelays::default();
        let dead_letters = Arc::new(KeptDeadLetters::default());
        let give_up = GiveUp {
            max_receive_count: 3,
            dead_letters: dead_letters.clone(),
        };
        let event = batch(vec![
            message("a", "unfinished", 1),
            message("b", "unfinished now", 2),
            message("c", "unfinished", 3),
            message("d", "refused", 3),
        ]);
        let metrics = collector();
        let response = process_batch(
            event,
            Some(&give_up),
            Some(&delays),
            &metrics,
            unfinished_unless_ok,
        )
        .await
        .unwrap();
        // Before the last delivery, back to the queue (delayed when it says how long); on the
        // last, a fresh copy, and the old one goes as handled, not to the DLQ.
        assert_eq!(reported(&response), ["a", "b"]);
        assert_eq!(
            *delays.asked.lock().unwrap(),
            [("a".to_owned(), Duration::from_secs(60))]
        );
        assert_eq!(
            *delays.sent_again.lock().unwrap(),
            [("c".to_owned(), Duration::from_secs(60))]
        );
        let given_up = |dead_letters: &KeptDeadLetters| -> Vec<String> {
            let sent = dead_letters.sent.lock().unwrap();
            sent.iter().map(|(body, _)| body.clone()).collect()
        };
        assert_eq!(
            given_up(&dead_letters),
            ["refused"],
            "a failure for later is still given up"
        );
        let documents = metrics.into_inner().documents("example", Utc::now());
        assert_eq!(documents[0]["MessagesSentAgain"], 1.0);
        assert_eq!(documents[0]["MessagesDeadLettered"], 1.0);

        // A queue that refuses the fresh copy: the message is given up as any failure, so it
        // is kept somewhere.
        let refusing = KeptDelays {
            refuse: true,
            ..Default::default()
        };
        let dead_letters = Arc::new(KeptDeadLetters::default());
        let give_up = GiveUp {
            max_receive_count: 3,
            dead_letters: dead_letters.clone(),
        };
        let event = batch(vec![message("c", "unfinished", 3)]);
        let response = process_batch(
            event,
            Some(&give_up),
            Some(&refusing),
            &collector(),
            unfinished_unless_ok,
        )
        .await
        .unwrap();
        assert!(reported(&response).is_empty());
        assert_eq!(given_up(&dead_letters), ["unfinished"]);
    }

    #[tokio::test]
    async fn a_failed_record_without_id_fails_the_batch() {
        let event = batch(vec![SqsMessage::default()]);
        let result = process_batch(event, None, None, &collector(), |_| async {
            Err(MessageFailure::Transient("x".into()))
        })
        .await;
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn on_the_last_delivery_a_failure_goes_to_the_dlq_with_its_record() {
        let dead_letters = Arc::new(KeptDeadLetters::default());
        let give_up = GiveUp {
            max_receive_count: 3,
            dead_letters: dead_letters.clone(),
        };
        let event = batch(vec![
            message("a", "bad", 2),
            message("b", "bad", 3),
            message("c", "flaky", 4),
            message("d", "ok", 3),
        ]);
        let metrics = collector();
        let response = process_batch(event, Some(&give_up), None, &metrics, ok_unless_bad)
            .await
            .unwrap();
        let documents = metrics.into_inner().documents("example", Utc::now());
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0]["queue"], "orders");
        assert_eq!(documents[0]["MessagesReceived"], 4.0);
        assert_eq!(documents[0]["MessagesFailed"], 3.0);
        assert_eq!(documents[0]["MessagesDeadLettered"], 2.0);
        assert_eq!(
            reported(&response),
            ["a"],
            "before the last delivery it goes back to the queue"
        );
        let sent = dead_letters.sent.lock().unwrap();
        let kinds: Vec<(&str, &str, u32)> = sent
            .iter()
            .map(|(body, record)| (body.as_str(), record.kind.as_str(), record.receive_count))
            .collect();
        assert_eq!(kinds, [("bad", "permanent", 3), ("flaky", "transient", 4)]);
        assert_eq!(sent[0].1.reason, "not ok");
        assert_eq!(
            sent[0].1.source_queue.as_deref(),
            Some("arn:aws:sqs:us-east-1:000000000000:orders")
        );
    }

    #[tokio::test]
    async fn when_the_dlq_refuses_the_message_goes_back_to_the_queue() {
        let give_up = GiveUp {
            max_receive_count: 3,
            dead_letters: Arc::new(KeptDeadLetters {
                refuse: true,
                ..Default::default()
            }),
        };
        let response = process_batch(
            batch(vec![message("a", "bad", 3)]),
            Some(&give_up),
            None,
            &collector(),
            ok_unless_bad,
        )
        .await
        .unwrap();
        assert_eq!(reported(&response), ["a"]);
    }

    /// [`ok_unless_bad`], but a body `panic` panics after an await, with a message quoting
    /// the input, and `panic now` panics before the handler's future exists.
    fn panicking(message: SqsMessage) -> impl Future<Output = Result<(), MessageFailure>> {
        let body = message.body.clone().unwrap_or_default();
        assert_ne!(body, "panic now", "a synchronous panic");
        async move {
            if body == "panic" {
                tokio::task::yield_now().await;
                let owner = "alice@example.com";
                panic!("no basket for {owner}");
            }
            ok_unless_bad(message).await
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_fails_its_message_alone() {
        let event = batch(vec![
            message("a", "ok", 1),
            message("b", "panic", 1),
            message("c", "panic now", 1),
            message("d", "ok", 1),
            message("e", "bad", 1),
        ]);
        let metrics = collector();
        let handled = Mutex::new(Vec::new());
        let response = process_batch(event, None, None, &metrics, |message| {
            let id = message.message_id.clone().unwrap_or_default();
            let outcome = panicking(message);
            let handled = &handled;
            async move {
                let outcome = outcome.await;
                handled.lock().unwrap().push(id);
                outcome
            }
        })
        .await
        .expect("the batch is answered");
        assert_eq!(reported(&response), ["b", "c", "e"]);
        assert_eq!(
            *handled.lock().unwrap(),
            ["a", "d", "e"],
            "the batch-mates ran to the end, once"
        );
        let documents = metrics.into_inner().documents("example", Utc::now());
        assert_eq!(documents[0]["MessagesReceived"], 5.0);
        assert_eq!(documents[0]["MessagesFailed"], 3.0);
        assert_eq!(documents[0]["MessagesPanicked"], 2.0);
    }

    #[tokio::test]
    async fn a_panic_on_the_last_delivery_goes_to_the_dlq_as_permanent_naming_where() {
        let dead_letters = Arc::new(KeptDeadLetters::default());
        let give_up = GiveUp {
            max_receive_count: 3,
            dead_letters: dead_letters.clone(),
        };
        let event = batch(vec![message("a", "panic", 3), message("b", "ok", 3)]);
        let response = process_batch(event, Some(&give_up), None, &collector(), panicking)
            .await
            .expect("the batch is answered");
        assert!(reported(&response).is_empty(), "given up on, to the DLQ");
        let sent = dead_letters.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        let (body, record) = &sent[0];
        assert_eq!(
            (body.as_str(), record.kind.as_str()),
            ("panic", "permanent")
        );
        assert!(
            record
                .reason
                .starts_with("the handler panicked at shared/lambda-toolkit/src/sqs_batch.rs:"),
            "{}",
            record.reason
        );
        assert!(
            record
                .reason
                .ends_with("(its message is withheld: it may quote the input)"),
            "the formatted message, which quotes the input, is not recorded: {}",
            record.reason
        );
    }

    #[test]
    fn records_cut_long_reasons() {
        let failure = MessageFailure::Permanent("x".repeat(2_000));
        let record = FailureRecord::new(&failure, &message("a", "b", 1), 1, Utc::now());
        assert_eq!(
            record.reason.chars().count(),
            FailureRecord::MAX_REASON_CHARS
        );
    }
}
