//! A queue's dead-letter queue, written to by the consumer that gives up on a message.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::BuildError;
use aws_sdk_sqs::operation::send_message::builders::SendMessageFluentBuilder;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};

use crate::metrics::MetricsSink;
use crate::sqs_batch::{DeadLetterError, DeadLetterQueue, FAILURE_ATTRIBUTE, FailureRecord};
use crate::sqs_consumer::{MessageHandler, SqsConsumer, SqsConsumerSettings};

/// SQS allows this many message attributes on one message.
const MAX_ATTRIBUTES: usize = 10;

/// The SQS adapter of [`DeadLetterQueue`].
#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetterQueue {
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: super::calls::sqs(config),
            queue_url,
        }
    }
}

/// The consumer of `handler` as a Lambda function runs it: its metrics to `metrics` (in Lambda
/// [`MetricsSink::stdout`], which names the namespace and the `service`), giving up as
/// `settings` (its environment) say, to SQS dead-letter queues.
pub fn sqs_consumer<H: MessageHandler>(
    handler: H,
    metrics: MetricsSink,
    settings: &SqsConsumerSettings,
    config: &aws_config::SdkConfig,
) -> SqsConsumer<H> {
    SqsConsumer::new(handler, metrics).giving_up_as(settings, dead_letter_queues(config))
}

/// Makes the dead-letter queue of a URL, for
/// [`SqsConsumer::giving_up_as`](crate::sqs_consumer::SqsConsumer::giving_up_as).
pub fn dead_letter_queues(
    config: &aws_config::SdkConfig,
) -> impl Fn(&str) -> Arc<dyn DeadLetterQueue> + '_ {
    |url| Arc::new(SqsDeadLetterQueue::from_config(config, url.to_owned()))
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    /// Sends the body as it came, its own message attributes (as many as fit) and the failure
    /// record in the [`FAILURE_ATTRIBUTE`] attribute.
    async fn send(
        &self,
        message: &SqsMessage,
        record: &FailureRecord,
    ) -> Result<(), DeadLetterError> {
        let record_json =
            serde_json::to_string(record).map_err(|error| DeadLetterError(error.to_string()))?;
        let failure = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(record_json)
            .build()
            .map_err(|error| DeadLetterError(error.to_string()))?;
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.body.clone().unwrap_or_default())
            .message_attributes(FAILURE_ATTRIBUTE, failure);
        let kept = message
            .message_attributes
            .iter()
            .filter(|(name, _)| name.as_str() != FAILURE_ATTRIBUTE);
        for (name, attribute) in kept.take(MAX_ATTRIBUTES - 1) {
            let value = MessageAttributeValue::builder()
                .data_type(
                    attribute
                        .data_type
                        .clone()
                        .unwrap_or_else(|| "String".to_owned()),
                )
                .set_string_value(attribute.string_value.clone())
                .set_binary_value(
                    attribute
                        .binary_value
                        .as_ref()
                        .map(|data| Blob::new(data.0.clone())),
                )
                .build()
                .map_err(|error| DeadLetterError(error.to_string()))?;
            request = request.message_attributes(name, value);
        }
        // The message stays in its trace on the dead-letter queue.
        let request =
            in_trace_of(request, message).map_err(|error| DeadLetterError(error.to_string()))?;
        request.send().await.map_err(|error| {
            DeadLetterError(aws_sdk_sqs::error::DisplayErrorContext(&error).to_string())
        })?;
        Ok(())
    }
}

/// `request` in `message`'s trace ([`crate::trace`]): its `AWSTraceHeader`, when it has one, as
/// the system attribute of the message sent, so the message stays in the trace it came in.
pub(crate) fn in_trace_of(
    request: SendMessageFluentBuilder,
    message: &SqsMessage,
) -> Result<SendMessageFluentBuilder, BuildError> {
    let Some(trace) = crate::trace::TraceHeader::of_sqs_message(message) else {
        return Ok(request);
    };
    let header = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(trace.to_string())
        .build()?;
    Ok(request
        .message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, header))
}
