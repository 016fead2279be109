//! Which messages of a batch to delete once the function has answered, by the rules AWS
//! documents for SQS event source mappings ("Handling errors for an SQS event source").
//!
//! Without `ReportBatchItemFailures`, any invocation error leaves the whole batch in the
//! queue and success deletes it all. With it, the function's `SqsBatchResponse` decides:
//! a null or empty response, or an empty or null `batchItemFailures`, is complete success;
//! invalid JSON, an empty or missing `itemIdentifier`, or one naming a message not in the
//! batch, is complete failure; otherwise the listed messages stay and the rest are deleted.

use std::collections::BTreeSet;

use aws_lambda_events::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::Message;

use crate::runtime_api::InvokeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Delete every message.
    AllSucceeded,
    /// Keep the listed message ids in the queue, delete the others.
    PartiallyFailed { failed: BTreeSet<String> },
    /// Keep every message in the queue.
    Failed { reason: String },
}

impl BatchVerdict {
    pub fn from_invocation(
        outcome: &Result<impl AsRef<[u8]>, InvokeError>,
        batch: &[Message],
        report_batch_item_failures: bool,
    ) -> Self {
        match outcome {
            Err(error) => BatchVerdict::Failed {
                reason: error.to_string(),
            },
            Ok(_) if !report_batch_item_failures => BatchVerdict::AllSucceeded,
            Ok(response) => Self::from_batch_response(response.as_ref(), batch),
        }
    }

    /// Reads a function's `SqsBatchResponse` for `batch`.
    pub fn from_batch_response(response: &[u8], batch: &[Message]) -> Self {
        if response.trim_ascii().is_empty() {
            return BatchVerdict::AllSucceeded;
        }
        let response: serde_json::Value = match serde_json::from_slice(response) {
            Ok(value) => value,
            Err(error) => return failed(format!("response is not JSON: {error}")),
        };
        let failures = match &response {
            serde_json::Value::Null => return BatchVerdict::AllSucceeded,
            serde_json::Value::Object(fields) => match fields.get("batchItemFailures") {
                None | Some(serde_json::Value::Null) => return BatchVerdict::AllSucceeded,
                Some(_) => match serde_json::from_value::<SqsBatchResponse>(response) {
                    Ok(parsed) => parsed.batch_item_failures,
                    Err(error) => return failed(format!("invalid batchItemFailures: {error}")),
                },
            },
            _ => return failed("response is not an SqsBatchResponse object".to_owned()),
        };
        let in_batch: BTreeSet<&str> = batch
            .iter()
            .filter_map(|message| message.message_id.as_deref())
            .collect();
        let mut failed_ids = BTreeSet::new();
        for failure in failures {
            let id = failure.item_identifier;
            if id.is_empty() {
                return failed("a batchItemFailures entry has an empty itemIdentifier".to_owned());
            }
            if !in_batch.contains(id.as_str()) {
                return failed(format!(
                    "itemIdentifier {id} is not a message of this batch"
                ));
            }
            failed_ids.insert(id);
        }
        if failed_ids.is_empty() {
            BatchVerdict::AllSucceeded
        } else {
            BatchVerdict::PartiallyFailed { failed: failed_ids }
        }
    }

    /// The messages to delete from the queue.
    pub fn messages_to_delete<'batch>(&self, batch: &'batch [Message]) -> Vec<&'batch Message> {
        match self {
            BatchVerdict::AllSucceeded => batch.iter().collect(),
            BatchVerdict::PartiallyFailed { failed } => batch
                .iter()
                .filter(|message| {
                    message
                        .message_id
                        .as_ref()
                        .is_none_or(|id| !failed.contains(id))
                })
                .collect(),
            BatchVerdict::Failed { .. } => Vec::new(),
        }
    }
}

fn failed(reason: String) -> BatchVerdict {
    BatchVerdict::Failed { reason }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn batch(ids: &[&str]) -> Vec<Message> {
        ids.iter()
            .map(|id| {
                Message::builder()
                    .message_id(*id)
                    .receipt_handle(format!("handle-{id}"))
                    .body("{}")
                    .build()
            })
            .collect()
    }

    fn deleted(verdict: &BatchVerdict, batch: &[Message]) -> Vec<String> {
        verdict
            .messages_to_delete(batch)
            .into_iter()
            .filter_map(|message| message.message_id.clone())
            .collect()
    }

    fn verdict_for(response: &str, batch: &[Message]) -> BatchVerdict {
        BatchVerdict::from_invocation(&Ok::<_, InvokeError>(response), batch, true)
    }

    #[test]
    fn listed_failures_stay_and_the_others_are_deleted() {
        let batch = batch(&["a", "b", "c"]);
        let verdict = verdict_for(r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &batch);
        assert_eq!(
            verdict,
            BatchVerdict::PartiallyFailed {
                failed: BTreeSet::from(["b".to_owned()])
            }
        );
        assert_eq!(deleted(&verdict, &batch), ["a", "c"]);
    }

    #[test]
    fn empty_or_null_responses_delete_the_whole_batch() {
        let batch = batch(&["a", "b"]);
        for response in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":null}"#,
            r#"{"batchItemFailures":[]}"#,
        ] {
            let verdict = verdict_for(response, &batch);
            assert_eq!(verdict, BatchVerdict::AllSucceeded, "response {response:?}");
            assert_eq!(deleted(&verdict, &batch), ["a", "b"]);
        }
    }

    #[test]
    fn invalid_responses_keep_the_whole_batch() {
        let batch = batch(&["a", "b"]);
        for response in [
            "not json",
            r#""ok""#,
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemId":"a"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"z"}]}"#,
            r#"{"batchItemFailures":"a"}"#,
        ] {
            let verdict = verdict_for(response, &batch);
            assert!(
                matches!(verdict, BatchVerdict::Failed { .. }),
                "response {response:?} gave {verdict:?}"
            );
            assert!(deleted(&verdict, &batch).is_empty());
        }
    }

    #[test]
    fn without_report_batch_item_failures_the_response_is_ignored_and_errors_keep_everything() {
        let batch = batch(&["a", "b"]);
        let listed = r#"{"batchItemFailures":[{"itemIdentifier":"a"}]}"#;
        let success = BatchVerdict::from_invocation(&Ok::<_, InvokeError>(listed), &batch, false);
        assert_eq!(deleted(&success, &batch), ["a", "b"]);

        let timeout: Result<&str, _> = Err(InvokeError::Timeout(Duration::from_secs(30)));
        for report_batch_item_failures in [false, true] {
            let verdict =
                BatchVerdict::from_invocation(&timeout, &batch, report_batch_item_failures);
            assert!(matches!(verdict, BatchVerdict::Failed { .. }));
            assert!(deleted(&verdict, &batch).is_empty());
        }
    }
}
