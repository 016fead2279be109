//! The SQS adapter of [`MessageDelay`]: `ChangeMessageVisibility`, and `SendMessage` of a fresh
//! copy, on the queue the message came from. A module of its own, so only a function that
//! delays its retries names it (and its role holds `sqs:ChangeMessageVisibility`, and
//! `sqs:SendMessage` on its trigger queues when it sends unfinished work again:
//! infra/deploy/checks/iam.py reads the calls per module).

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use aws_sdk_sqs::Client;

use crate::sqs_batch::{MessageDelay, MessageDelayError};

/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS's longest delay of a message sent.
const MAX_SEND_DELAY: Duration = Duration::from_secs(15 * 60);

/// Delays a message's next delivery by setting its visibility timeout, on the queue its
/// `eventSourceARN` names.
#[derive(Debug, Clone)]
pub struct SqsMessageDelay {
    client: Client,
}

impl SqsMessageDelay {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: super::calls::sqs(config),
        }
    }
}

#[async_trait]
impl MessageDelay for SqsMessageDelay {
    async fn delay(&self, message: &SqsMessage, by: Duration) -> Result<(), MessageDelayError> {
        let queue_url = source_queue_url(message)?;
        let receipt = message
            .receipt_handle
            .as_deref()
            .ok_or_else(|| MessageDelayError("the message has no receipt handle".to_owned()))?;
        let seconds = by.min(MAX_VISIBILITY).as_secs();
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|error| {
                MessageDelayError(aws_sdk_sqs::error::DisplayErrorContext(&error).to_string())
            })?;
        Ok(())
    }

    /// The body as it came (a message the event source built, such as EventBridge's, has no
    /// message attributes of its own), in the message's trace.
    async fn send_again(
        &self,
        message: &SqsMessage,
        after: Duration,
    ) -> Result<(), MessageDelayError> {
        let queue_url = source_queue_url(message)?;
        let seconds = after.min(MAX_SEND_DELAY).as_secs();
        let request = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(message.body.clone().unwrap_or_default())
            .delay_seconds(i32::try_from(seconds).unwrap_or(i32::MAX));
        let request = super::sqs::in_trace_of(request, message)
            .map_err(|error| MessageDelayError(error.to_string()))?;
        request.send().await.map_err(|error| {
            MessageDelayError(aws_sdk_sqs::error::DisplayErrorContext(&error).to_string())
        })?;
        Ok(())
    }
}

/// The URL of the queue `message` came from.
fn source_queue_url(message: &SqsMessage) -> Result<String, MessageDelayError> {
    let arn = message.event_source_arn.as_deref().unwrap_or_default();
    queue_url_of(arn).ok_or_else(|| MessageDelayError(format!("not a queue ARN: {arn:?}")))
}

/// The URL of the queue `arn` names (`arn:<partition>:sqs:<region>:<account>:<name>`), in the
/// form SQS gives its queues: `https://sqs.<region>.<partition's domain>/<account>/<name>`.
fn queue_url_of(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("sqs"), Some(region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let domain = match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    };
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    [region, account, name]
        .into_iter()
        .all(valid)
        .then(|| format!("https://sqs.{region}.{domain}/{account}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_arn_gives_its_queue_url() {
        assert_eq!(
            queue_url_of("arn:aws:sqs:eu-west-1:123456789012:orders").as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
        );
        assert_eq!(
            queue_url_of("arn:aws-cn:sqs:cn-north-1:123456789012:q.fifo").as_deref(),
            Some("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q.fifo")
        );
        for not_a_queue in [
            "",
            "arn:aws:sns:eu-west-1:123456789012:topic",
            "arn:aws:sqs:eu-west-1:123456789012",
            "arn:aws:sqs:eu-west-1:123456789012:a/b",
        ] {
            assert_eq!(queue_url_of(not_a_queue), None, "{not_a_queue}");
        }
    }
}
