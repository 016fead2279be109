//! Every payment's deadline check as an SQS message ([`DeadlineChecks`]): sent by the event
//! relay when the payment's request is recorded, delayed (SQS's `DelaySeconds`, at most 15
//! minutes), and read by the reconciler once it is due, which delays it again for as long as
//! the payment is not terminal. The DLQ redrive sends one more, due at once, for a message on
//! its way to a payment's saga that it parked: that check carries the parked message's id.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};

use paysaga_domain::PaymentId;
use paysaga_domain::ports::{DeadlineChecks, StoreError};

/// SQS's longest `DelaySeconds`.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SendMessageBatch takes at most this many entries.
const ENTRIES_PER_CALL: usize = 10;

/// A deadline check's message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineCheck {
    pub payment_id: PaymentId,
    /// The parked message the check was scheduled for ([`DeadlineChecks::schedule_for_parked`]):
    /// settled once the payment is terminal. Absent from a payment's own check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_id: Option<String>,
}

impl DeadlineCheck {
    fn body(&self) -> Result<String, StoreError> {
        serde_json::to_string(self)
            .map_err(|error| StoreError::Permanent(format!("a deadline check: {error}")))
    }
}

/// The SQS adapter of [`DeadlineChecks`].
#[derive(Debug, Clone)]
pub struct SqsDeadlineChecks {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    /// Each message's `DelaySeconds`.
    delay: Duration,
}

impl SqsDeadlineChecks {
    /// Checks sent to `queue_url`, each delayed by `delay` (at most [`MAX_DELAY`]: a deadline
    /// further off is waited for by the reconciler).
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: String, delay: Duration) -> Self {
        Self {
            client: lambda_toolkit::aws::calls::sqs(config),
            queue_url,
            delay: delay.min(MAX_DELAY),
        }
    }
}

#[async_trait]
impl DeadlineChecks for SqsDeadlineChecks {
    async fn schedule(&self, payments: &[PaymentId]) -> Result<(), StoreError> {
        let delay_seconds = i32::try_from(self.delay.as_secs()).unwrap_or(i32::MAX);
        for chunk in payments.chunks(ENTRIES_PER_CALL) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (index, payment_id) in chunk.iter().enumerate() {
                let body = DeadlineCheck {
                    payment_id: payment_id.clone(),
                    parked_id: None,
                }
                .body()?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .delay_seconds(delay_seconds)
                    .build()
                    .map_err(|error| StoreError::Permanent(format!("a deadline check: {error}")))?;
                entries.push(entry);
            }
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| {
                    StoreError::Transient(format!(
                        "SendMessageBatch: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&error)
                    ))
                })?;
            if let Some(failed) = output.failed().first() {
                return Err(StoreError::Transient(format!(
                    "SendMessageBatch refused {} of {} deadline checks: {}",
                    output.failed().len(),
                    chunk.len(),
                    failed.code()
                )));
            }
        }
        Ok(())
    }

    async fn schedule_for_parked(
        &self,
        payment: &PaymentId,
        parked_id: &str,
    ) -> Result<(), StoreError> {
        let body = DeadlineCheck {
            payment_id: payment.clone(),
            parked_id: Some(parked_id.to_owned()),
        }
        .body()?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(0)
            .send()
            .await
            .map_err(|error| {
                StoreError::Transient(format!(
                    "SendMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&error)
                ))
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_names_its_payment_and_nothing_else() {
        let check = DeadlineCheck {
            payment_id: PaymentId::parse("pay_1").unwrap(),
            parked_id: None,
        };
        let body = serde_json::to_string(&check).unwrap();
        assert_eq!(body, r#"{"payment_id":"pay_1"}"#);
        assert_eq!(serde_json::from_str::<DeadlineCheck>(&body).unwrap(), check);
        assert!(serde_json::from_str::<DeadlineCheck>(r#"{"payment_id":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<DeadlineCheck>(r#"{"payment_id":"pay_1","parked":"a"}"#)
                .is_err()
        );
    }

    #[test]
    fn a_check_for_a_parked_message_names_it_too() {
        let check = DeadlineCheck {
            payment_id: PaymentId::parse("pay_1").unwrap(),
            parked_id: Some("payments-dlq/m-1".to_owned()),
        };
        let body = check.body().unwrap();
        assert_eq!(
            body,
            r#"{"payment_id":"pay_1","parked_id":"payments-dlq/m-1"}"#
        );
        assert_eq!(serde_json::from_str::<DeadlineCheck>(&body).unwrap(), check);
    }
}
