//! One SQS consumer for every queue: a function says what it does with one message (a
//! [`MessageHandler`]); the [`SqsConsumer`] does the rest, the same way for every queue:
//!
//! - the messages of a batch are handled concurrently, each on its own, and only the failed
//!   ones are reported back (partial batch failure: the event source mapping needs
//!   `FunctionResponseTypes: [ReportBatchItemFailures]`);
//! - on a message's last delivery (the queue's `maxReceiveCount`) a failure goes to its
//!   dead-letter queue with why ([`FailureRecord`](crate::sqs_batch::FailureRecord)) instead of
//!   back to the queue, where whatever reads the DLQ later finds it;
//! - a handler that panics fails its own message only;
//! - each message is handled in its own trace ([`crate::trace`]) and in a span `message` with
//!   its `message_id`, on every line logged meanwhile;
//! - the invocation's metrics (per queue `MessagesReceived`, `MessagesFailed`,
//!   `MessagesDeadLettered`, `MessagesPanicked`, and whatever the handler counts) are flushed
//!   once, at its end.
//!
//! ```
//! use async_trait::async_trait;
//! use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
//! use lambda_toolkit::metrics::{InvocationMetrics, MetricsBuffer, MetricsSink};
//! use lambda_toolkit::sqs_batch::MessageFailure;
//! use lambda_toolkit::sqs_consumer::{Handled, MessageHandler, SqsConsumer};
//!
//! /// Orders: a body that is a number of items.
//! struct Orders;
//!
//! #[async_trait]
//! impl MessageHandler for Orders {
//!     async fn handle(&self, message: &SqsMessage, metrics: &InvocationMetrics) -> Handled {
//!         let items: u64 = message.body.as_deref().unwrap_or_default().parse()
//!             .map_err(|_| MessageFailure::permanent("not a number of items"))?;
//!         metrics.count("ItemsOrdered", &[], items);
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let buffer = MetricsBuffer::default();
//! let consumer = SqsConsumer::new(Orders, MetricsSink::new("shop", "orders", buffer.clone()));
//! // In `main`: `consumer.run().await`, with the dead-letter settings of its environment
//! // (`SqsConsumerSettings`, `lambda_toolkit::aws::dead_letter_queues`).
//!
//! let mut batch = SqsEvent::default();
//! for (id, body) in [("m1", "3"), ("m2", "three")] {
//!     let mut message = SqsMessage::default();
//!     message.message_id = Some(id.to_owned());
//!     message.body = Some(body.to_owned());
//!     message.event_source_arn = Some("arn:aws:sqs:eu-west-1:123456789012:orders".to_owned());
//!     batch.records.push(message);
//! }
//! let response = consumer.handle(batch).await.expect("every record has an id");
//! assert_eq!(response.batch_item_failures.len(), 1);
//! assert_eq!(response.batch_item_failures[0].item_identifier, "m2");
//!
//! let documents = buffer.documents().expect("JSON lines");
//! let orders = documents.iter().find(|doc| doc["queue"] == "orders").expect("per queue");
//! assert_eq!((orders["MessagesReceived"].as_f64(), orders["MessagesFailed"].as_f64()), (Some(2.0), Some(1.0)));
//! assert!(documents.iter().any(|doc| doc["ItemsOrdered"] == 3.0));
//! # });
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::env::{ConfigError, Environment};
use crate::metrics::{InvocationMetrics, MetricsSink};
use crate::sqs_batch::{
    DeadLetterQueue, GiveUp, MessageDelay, MessageFailure, RecordWithoutId, process_batch,
};
use crate::sqs_dead_letters::{DeadLettersBySource, parse_routes};

/// What handling one message came to.
pub type Handled = Result<(), MessageFailure>;

/// What a function does with one message of its queue.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    /// Handles `message`, counting what it did on `metrics`. A failure says whether a retry can
    /// help; the consumer decides where the message goes.
    async fn handle(&self, message: &SqsMessage, metrics: &InvocationMetrics) -> Handled;

    /// Runs once per invocation, after its messages and before its metrics are flushed: where a
    /// handler records a gauge of its own state (a circuit breaker's, say).
    fn after_batch(&self, _metrics: &InvocationMetrics) {}
}

/// An SQS-triggered function: its [`MessageHandler`], where messages it gives up on go, and
/// where its metrics go.
pub struct SqsConsumer<H> {
    handler: H,
    give_up: Option<GiveUp>,
    delays: Option<Arc<dyn MessageDelay>>,
    metrics: MetricsSink,
}

impl<H: MessageHandler> SqsConsumer<H> {
    /// A consumer that never gives up on a message itself: the queue's redrive policy moves it
    /// to the DLQ, without a record of why, after `maxReceiveCount` deliveries.
    pub fn new(handler: H, metrics: MetricsSink) -> Self {
        Self {
            handler,
            give_up: None,
            delays: None,
            metrics,
        }
    }

    /// A [`MessageFailure::Later`] delays its message's next delivery through `delays` (without
    /// one, the queue's visibility timeout applies), and a [`MessageFailure::Unfinished`] on its
    /// last delivery is sent again through it as a fresh message (without one, it is given up).
    pub fn delaying_retries_with(mut self, delays: Arc<dyn MessageDelay>) -> Self {
        self.delays = Some(delays);
        self
    }

    /// On a message's `max_receive_count`th delivery (the queue's `maxReceiveCount`; 0 for
    /// never), a failure goes to `dead_letters` with its record.
    pub fn giving_up_after(
        mut self,
        max_receive_count: u32,
        dead_letters: Arc<dyn DeadLetterQueue>,
    ) -> Self {
        self.give_up = Some(GiveUp {
            max_receive_count,
            dead_letters,
        });
        self
    }

    /// Gives up as `settings` and its dead-letter queues say (see [`SqsConsumerSettings`]).
    pub fn giving_up_as(
        self,
        settings: &SqsConsumerSettings,
        queue: impl Fn(&str) -> Arc<dyn DeadLetterQueue>,
    ) -> Self {
        match settings.dead_letter_queue(queue) {
            Some(dead_letters) => self.giving_up_after(settings.max_receive_count, dead_letters),
            None => self,
        }
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Handles one batch: the messages that failed and go back to the queue, by id.
    pub async fn handle(&self, batch: SqsEvent) -> Result<SqsBatchResponse, RecordWithoutId> {
        let metrics = self.metrics.invocation();
        let give_up = self.give_up.as_ref();
        let delays = self.delays.as_deref();
        let handled = process_batch(batch, give_up, delays, &metrics, |message| {
            let metrics = &metrics;
            async move { self.handler.handle(&message, metrics).await }
        })
        .await;
        self.handler.after_batch(&metrics);
        self.metrics.flush(metrics.into_inner());
        handled
    }

    /// Serves the Lambda Runtime API until the runtime stops. Only in a binary that unwinds on a
    /// panic (the release profile's `panic = "unwind"`): with `panic = "abort"` one message's
    /// panic would end the process and fail its whole batch, so such a build does not compile.
    pub async fn run(self) -> Result<(), lambda_runtime::Error>
    where
        H: Unwinds,
    {
        let consumer = &self;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            consumer.handle(event.payload).await
        }))
        .await
    }
}

/// Implemented for every type when the build unwinds on a panic, for none when it aborts: the
/// bound of [`SqsConsumer::run`].
#[cfg_attr(
    panic = "abort",
    diagnostic::on_unimplemented(
        message = "an SQS consumer must unwind on a panic: build it with the release profile, not release-abort",
        label = "this build aborts on a panic, which would fail a whole batch for one message"
    )
)]
pub trait Unwinds {}

#[cfg(panic = "unwind")]
impl<T: ?Sized> Unwinds for T {}

/// How a consumer gives up, from its environment: `MAX_RECEIVE_COUNT` (the queue's
/// `maxReceiveCount`), and its dead-letter queue's URL in `DEAD_LETTER_QUEUE_URL`, or, for a
/// function that reads several queues, each queue's in `DEAD_LETTER_QUEUES`
/// (`<queue ARN>=<DLQ URL>` pairs, see [`crate::sqs_dead_letters`]). Without either, the queues'
/// redrive policies move what fails, without a record of why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqsConsumerSettings {
    pub max_receive_count: u32,
    pub dead_letter_queues: DeadLetterQueues,
}

/// Where a consumer sends a message it gives up on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeadLetterQueues {
    /// Nowhere: the queue's redrive policy moves it.
    #[default]
    None,
    /// One DLQ, by URL.
    One(String),
    /// Each source queue's own (its ARN, the DLQ's URL).
    BySource(Vec<(String, String)>),
}

impl SqsConsumerSettings {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let max_receive_count = env.number_or("MAX_RECEIVE_COUNT", 0)?;
        let max_receive_count = u32::try_from(max_receive_count).unwrap_or(u32::MAX);
        let routes = env.optional("DEAD_LETTER_QUEUES");
        let one = env.optional("DEAD_LETTER_QUEUE_URL");
        let dead_letter_queues = match (routes, one) {
            (Some(routes), _) => {
                DeadLetterQueues::BySource(parse_routes("DEAD_LETTER_QUEUES", &routes)?)
            }
            (None, Some(url)) => DeadLetterQueues::One(url),
            (None, None) => DeadLetterQueues::None,
        };
        Ok(Self {
            max_receive_count,
            dead_letter_queues,
        })
    }

    /// The dead-letter queue to give up to, `queue` making one from its URL.
    fn dead_letter_queue(
        &self,
        queue: impl Fn(&str) -> Arc<dyn DeadLetterQueue>,
    ) -> Option<Arc<dyn DeadLetterQueue>> {
        match &self.dead_letter_queues {
            DeadLetterQueues::None => None,
            DeadLetterQueues::One(url) => Some(queue(url)),
            DeadLetterQueues::BySource(routes) => {
                let by_source = routes.iter().map(|(arn, url)| (arn.clone(), queue(url)));
                Some(Arc::new(DeadLettersBySource::new(by_source)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{KeptDeadLetters, failed_ids, sqs_message};

    struct FailsOn(&'static str);

    #[async_trait]
    impl MessageHandler for FailsOn {
        async fn handle(&self, message: &SqsMessage, metrics: &InvocationMetrics) -> Handled {
            metrics.count("Handled", &[], 1);
            if message.body.as_deref() == Some(self.0) {
                return Err(MessageFailure::permanent("bad"));
            }
            Ok(())
        }

        fn after_batch(&self, metrics: &InvocationMetrics) {
            metrics.gauge("Open", &[], 1.0, crate::metrics::Unit::None);
        }
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut batch = SqsEvent::default();
        batch.records = messages;
        batch
    }

    #[tokio::test]
    async fn the_last_delivery_of_a_failure_goes_to_its_dead_letter_queue() {
        let dead_letters = Arc::new(KeptDeadLetters::default());
        let buffer = crate::metrics::MetricsBuffer::default();
        let consumer = SqsConsumer::new(FailsOn("bad"), MetricsSink::new("x", "t", buffer.clone()))
            .giving_up_after(3, dead_letters.clone());
        let response = consumer
            .handle(batch(vec![
                sqs_message("a", "bad", 2),
                sqs_message("b", "bad", 3),
                sqs_message("c", "ok", 3),
            ]))
            .await
            .expect("answered");
        assert_eq!(failed_ids(&response), ["a"]);
        assert_eq!(dead_letters.ids(), ["b"]);
        let documents = buffer.documents().expect("JSON");
        let handled: f64 = documents
            .iter()
            .filter_map(|doc| doc["Handled"].as_f64())
            .sum();
        assert_eq!(handled, 3.0, "the handler's counts are flushed");
        assert!(
            documents.iter().any(|doc| doc["Open"] == 1.0),
            "after_batch runs before the flush"
        );
    }

    #[test]
    fn settings_come_from_the_environment() {
        let env = Environment::from_pairs([
            ("MAX_RECEIVE_COUNT", "5"),
            ("DEAD_LETTER_QUEUE_URL", "https://sqs/1/dlq"),
        ]);
        let settings = SqsConsumerSettings::from_env(&env).expect("valid");
        assert_eq!(settings.max_receive_count, 5);
        assert_eq!(
            settings.dead_letter_queues,
            DeadLetterQueues::One("https://sqs/1/dlq".into())
        );
        let by_source = Environment::from_pairs([(
            "DEAD_LETTER_QUEUES",
            "arn:aws:sqs:eu-west-1:1:a=https://sqs/1/a-dlq",
        )]);
        assert_eq!(
            SqsConsumerSettings::from_env(&by_source)
                .expect("valid")
                .dead_letter_queues,
            DeadLetterQueues::BySource(vec![(
                "arn:aws:sqs:eu-west-1:1:a".into(),
                "https://sqs/1/a-dlq".into()
            )])
        );
        let bad = Environment::from_pairs([("DEAD_LETTER_QUEUES", "nonsense")]);
        assert!(SqsConsumerSettings::from_env(&bad).is_err());
        assert_eq!(
            SqsConsumerSettings::from_env(&Environment::from_pairs([])).expect("defaults"),
            SqsConsumerSettings::default()
        );
    }
}
