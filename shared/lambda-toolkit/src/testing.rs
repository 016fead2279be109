//! What tests of SQS consumers need (feature `testing`): a consumer wired for tests
//! ([`TestConsumer`]), a dead-letter queue that keeps what it is sent, a [`MessageDelay`] that
//! keeps the delays and the fresh copies asked of it, messages as SQS delivers them, and the
//! ids a batch response reports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::metrics::{MetricsBuffer, MetricsSink, check_document};
use crate::sqs_batch::{
    DeadLetterError, DeadLetterQueue, FailureRecord, MessageDelay, MessageDelayError,
};
use crate::sqs_consumer::{MessageHandler, SqsConsumer};

/// A dead-letter queue that keeps what it is sent: each message's id and failure record.
#[derive(Default)]
pub struct KeptDeadLetters(Mutex<Vec<(String, FailureRecord)>>);

impl KeptDeadLetters {
    /// What was sent, in order: each message's id and its record.
    pub fn records(&self) -> Vec<(String, FailureRecord)> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The ids of the messages sent, in order.
    pub fn ids(&self) -> Vec<String> {
        self.records().into_iter().map(|(id, _)| id).collect()
    }
}

#[async_trait]
impl DeadLetterQueue for KeptDeadLetters {
    async fn send(
        &self,
        message: &SqsMessage,
        record: &FailureRecord,
    ) -> Result<(), DeadLetterError> {
        let id = message.message_id.clone().unwrap_or_default();
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((id, record.clone()));
        Ok(())
    }
}

/// A [`MessageDelay`] that keeps what it is asked: each message's id and its delay, and each
/// message sent again.
#[derive(Default)]
pub struct KeptDelays {
    delays: Mutex<Vec<(String, Duration)>>,
    sent_again: Mutex<Vec<(SqsMessage, Duration)>>,
}

impl KeptDelays {
    /// The delays asked, in order: each message's id and its delay.
    pub fn delays(&self) -> Vec<(String, Duration)> {
        self.delays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The messages sent again, in order, each as the queue will deliver it first (its body,
    /// its queue, a new id and a receive count of 1), and the delay before it is.
    pub fn sent_again(&self) -> Vec<(SqsMessage, Duration)> {
        self.sent_again
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[async_trait]
impl MessageDelay for KeptDelays {
    async fn delay(&self, message: &SqsMessage, by: Duration) -> Result<(), MessageDelayError> {
        let id = message.message_id.clone().unwrap_or_default();
        self.delays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((id, by));
        Ok(())
    }

    async fn send_again(
        &self,
        message: &SqsMessage,
        after: Duration,
    ) -> Result<(), MessageDelayError> {
        let mut sent = self
            .sent_again
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let id = format!(
            "{}-again-{}",
            message.message_id.as_deref().unwrap_or_default(),
            sent.len() + 1
        );
        let mut fresh = sqs_message(&id, message.body.as_deref().unwrap_or_default(), 1);
        fresh.event_source_arn = message.event_source_arn.clone();
        sent.push((fresh, after));
        Ok(())
    }
}

/// The queue [`sqs_message`]'s messages come from.
pub const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:example";

/// A message `id` with `body`, on its `receive_count`th delivery from [`QUEUE_ARN`].
pub fn sqs_message(id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(body.to_owned());
    message.event_source_arn = Some(QUEUE_ARN.to_owned());
    set_receive_count(&mut message, receive_count);
    message
}

/// Makes `message` its `receive_count`th delivery.
pub fn set_receive_count(message: &mut SqsMessage, receive_count: u32) {
    message
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
}

/// The ids of the messages a batch response sends back to the queue, in order.
pub fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone())
        .collect()
}

/// A consumer as its tests drive it: it gives up on a message's `max_receive_count`th delivery
/// to a [`KeptDeadLetters`], and its metrics go to a [`MetricsBuffer`].
pub struct TestConsumer<H> {
    pub consumer: SqsConsumer<H>,
    pub dead_letters: Arc<KeptDeadLetters>,
    pub metrics: MetricsBuffer,
}

impl<H: MessageHandler> TestConsumer<H> {
    pub fn new(handler: H, max_receive_count: u32) -> Self {
        let dead_letters = Arc::new(KeptDeadLetters::default());
        let metrics = MetricsBuffer::default();
        let consumer = SqsConsumer::new(handler, MetricsSink::new("test", "test", metrics.clone()))
            .giving_up_after(max_receive_count, dead_letters.clone());
        Self {
            consumer,
            dead_letters,
            metrics,
        }
    }

    pub fn handler(&self) -> &H {
        self.consumer.handler()
    }

    /// Delivers `batch`: the ids of the messages that go back to the queue.
    pub async fn deliver(&self, batch: SqsEvent) -> Vec<String> {
        match self.consumer.handle(batch).await {
            Ok(response) => failed_ids(&response),
            Err(error) => panic!("the batch was not answered: {error}"),
        }
    }

    /// The sum of the metric `name` over every document flushed so far, each checked against
    /// the EMF specification.
    pub fn metric(&self, name: &str) -> f64 {
        self.documents()
            .iter()
            .filter_map(|document| document[name].as_f64())
            .sum()
    }

    /// Every value observed of the metric `name` (a distribution's) in the documents flushed so
    /// far, each checked against the EMF specification.
    pub fn observed(&self, name: &str) -> Vec<f64> {
        self.documents()
            .iter()
            .filter_map(|document| document[name].as_array())
            .flatten()
            .filter_map(serde_json::Value::as_f64)
            .collect()
    }

    fn documents(&self) -> Vec<serde_json::Value> {
        let documents = self
            .metrics
            .documents()
            .unwrap_or_else(|error| panic!("metrics are JSON lines: {error}"));
        for document in &documents {
            if let Err(error) = check_document(document) {
                panic!("{error}: {document}");
            }
        }
        documents
    }
}
