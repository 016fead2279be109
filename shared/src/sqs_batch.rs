//! SQS batches with partial failures: each message is handled on its own, and only the ones
//! that failed are reported back, so one bad message never fails its batch-mates.

use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use tracing::warn;

/// Why a message was not handled. Both kinds go back to the queue (and, after the queue's
/// `maxReceiveCount`, to its dead-letter queue); the kind says whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageFailure {
    /// A dependency failed; the same message may succeed later.
    #[error("transient: {0}")]
    Transient(String),
    /// The message itself is unusable (it does not parse, or contradicts what is stored).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A record of the batch has no message id, so it could not be reported on its own.
#[derive(Debug, thiserror::Error)]
#[error("an SQS record has no messageId; the whole batch is returned to the queue")]
pub struct RecordWithoutId;

/// Handles every message of `event` concurrently and reports the failed ones.
pub async fn process_batch<F, Fut>(
    event: SqsEvent,
    handle: F,
) -> Result<SqsBatchResponse, RecordWithoutId>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), MessageFailure>>,
{
    let handled = event.records.into_iter().map(|message| {
        let message_id = message.message_id.clone();
        let receive_count = message.attributes.get("ApproximateReceiveCount").cloned();
        let outcome = handle(message);
        async move { (message_id, receive_count, outcome.await) }
    });
    let mut response = SqsBatchResponse::default();
    for (message_id, receive_count, outcome) in join_all(handled).await {
        let Err(failure) = outcome else { continue };
        let message_id = message_id.ok_or(RecordWithoutId)?;
        warn!(%message_id, receive_count, error = %failure, "message returned to the queue");
        let mut item = BatchItemFailure::default();
        item.item_identifier = message_id;
        response.batch_item_failures.push(item);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(body.to_owned());
        message
    }

    #[tokio::test]
    async fn only_failed_messages_are_reported() {
        let mut event = SqsEvent::default();
        event.records = vec![message("a", "ok"), message("b", "bad"), message("c", "ok")];
        let response = process_batch(event, |message| async move {
            match message.body.as_deref() {
                Some("ok") => Ok(()),
                _ => Err(MessageFailure::Permanent("not ok".into())),
            }
        })
        .await
        .unwrap();
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|item| item.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["b"]);
    }

    #[tokio::test]
    async fn a_failed_record_without_id_fails_the_batch() {
        let mut event = SqsEvent::default();
        event.records = vec![SqsMessage::default()];
        let result = process_batch(event, |_| async {
            Err(MessageFailure::Transient("x".into()))
        })
        .await;
        assert!(result.is_err());
    }
}
