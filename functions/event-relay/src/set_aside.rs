//! Where a stream record the relay can never read goes: a queue, with the record's keys (to
//! find the item, which stays in its table) and why. Not the item itself: the table holds it,
//! and a queue is no place for what it may say.

use async_trait::async_trait;
use serde::Serialize;

/// A stream record the relay cannot read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnreadableRecord {
    /// The stream it came from.
    pub stream_arn: String,
    pub sequence_number: String,
    /// The item's key, as DynamoDB JSON.
    pub keys: serde_json::Value,
    pub reason: String,
}

/// The record could not be set aside: the stream hands it on again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record not set aside: {0}")]
pub struct SetAsideError(pub String);

#[async_trait]
pub trait SetAside: Send + Sync {
    async fn set_aside(&self, record: &UnreadableRecord) -> Result<(), SetAsideError>;
}

/// The SQS adapter of [`SetAside`]: one message per record, its body the record as JSON.
#[derive(Debug, Clone)]
pub struct SqsSetAside {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsSetAside {
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: lambda_toolkit::aws::calls::sqs(config),
            queue_url,
        }
    }
}

#[async_trait]
impl SetAside for SqsSetAside {
    async fn set_aside(&self, record: &UnreadableRecord) -> Result<(), SetAsideError> {
        let body = serde_json::to_string(record)
            .map_err(|error| SetAsideError(format!("unwritable record: {error}")))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|error| {
                SetAsideError(format!(
                    "SendMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&error)
                ))
            })?;
        Ok(())
    }
}
