//! What a shard poller does with a batch once the function has answered, by the rules AWS
//! documents for DynamoDB Streams event source mappings ("Error handling for DynamoDB event
//! sources", "Configuring partial batch response").
//!
//! - Success checkpoints the whole batch. With `ReportBatchItemFailures`, the response's
//!   `batchItemFailures` checkpoint the records before the lowest failed one, and the rest is
//!   retried from it; an empty or null list, or any response without one, is complete success;
//!   an entry with a missing, empty or unknown `itemIdentifier` (not a sequence number of the
//!   batch) is complete failure.
//! - A function error (an error response, a crash of the process, a timeout) retries the whole
//!   batch. With `BisectBatchOnFunctionError`, a failing batch of more than one record is split
//!   in two halves, the first retried first; splitting does not count as a retry.
//! - After `MaximumRetryAttempts` retries of the same records (never with -1), or once they are
//!   older than the stream keeps records (24 hours), they are given up on: their batch goes to
//!   the on-failure destination and the shard moves past them.
//!
//! A retry delivers exactly the records that failed (or a half of them), never more.

use std::time::Duration;

use crate::runtime_api::InvokeError;

/// How long DynamoDB Streams keeps a record: a failing record older than this is given up on
/// even when the trigger retries without limit, as AWS does when the record expires.
pub const RECORD_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// What an invocation's outcome says about its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// Every record was processed.
    Processed,
    /// The records before position `first_failed` were processed; the rest were not
    /// (`batchItemFailures`, the lowest failed sequence number).
    FailedFrom { first_failed: usize, reason: String },
    /// No record was processed: the function failed (`function_error`: an error response, a
    /// crash, a timeout), or its `batchItemFailures` were invalid.
    Failed {
        reason: String,
        function_error: bool,
    },
}

impl BatchResult {
    /// Reads an invocation's outcome for a batch of records with these sequence numbers.
    pub fn from_invocation(
        outcome: &Result<impl AsRef<[u8]>, InvokeError>,
        sequence_numbers: &[&str],
        report_batch_item_failures: bool,
    ) -> Self {
        match outcome {
            Err(error) => BatchResult::Failed {
                reason: error.to_string(),
                function_error: true,
            },
            Ok(_) if !report_batch_item_failures => BatchResult::Processed,
            Ok(response) => Self::from_batch_response(response.as_ref(), sequence_numbers),
        }
    }

    /// Reads a function's `StreamsEventResponse` (`{"batchItemFailures": [{"itemIdentifier":
    /// "<SequenceNumber>"}]}`).
    pub fn from_batch_response(response: &[u8], sequence_numbers: &[&str]) -> Self {
        let Ok(serde_json::Value::Object(response)) = serde_json::from_slice(response) else {
            return BatchResult::Processed;
        };
        let failures = match response.get("batchItemFailures") {
            None | Some(serde_json::Value::Null) => return BatchResult::Processed,
            Some(serde_json::Value::Array(failures)) => failures,
            Some(other) => return invalid(format!("batchItemFailures is not a list: {other}")),
        };
        let mut first_failed: Option<usize> = None;
        for failure in failures {
            let identifier = match failure.get("itemIdentifier") {
                Some(serde_json::Value::String(identifier)) if !identifier.is_empty() => identifier,
                _ => {
                    return invalid(format!(
                        "a batchItemFailures entry has no itemIdentifier: {failure}"
                    ));
                }
            };
            let Some(position) = sequence_numbers
                .iter()
                .position(|sequence_number| sequence_number == identifier)
            else {
                return invalid(format!(
                    "itemIdentifier {identifier} is not a sequence number of this batch"
                ));
            };
            first_failed = Some(first_failed.map_or(position, |first| first.min(position)));
        }
        match first_failed {
            None => BatchResult::Processed,
            Some(first_failed) => BatchResult::FailedFrom {
                first_failed,
                reason: format!(
                    "the function reported {} failed record{}, the first {}",
                    failures.len(),
                    if failures.len() == 1 { "" } else { "s" },
                    sequence_numbers[first_failed]
                ),
            },
        }
    }
}

fn invalid(reason: String) -> BatchResult {
    BatchResult::Failed {
        reason,
        function_error: false,
    }
}

/// A trigger's `MaximumRetryAttempts` and `BisectBatchOnFunctionError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries of the same records before giving up on them; `None`: until they expire.
    pub retry_limit: Option<u32>,
    pub bisect_batch_on_function_error: bool,
}

/// Why records were given up on: the `condition` of AWS's on-failure record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpCondition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl GiveUpCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUpCondition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            GiveUpCondition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// Records of a batch given up on: those from position `from` to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveUp {
    pub condition: GiveUpCondition,
    pub from: usize,
    /// Invocations of batches headed by the first of these records (AWS's
    /// `approximateInvokeCount`; earlier batches that included them are not counted).
    pub invocations: u32,
}

/// What to do with the shard once a batch is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// Checkpoint past this many records from the batch's start: processed, or given up on.
    pub checkpoint: usize,
    /// Records to send to the on-failure destination before the checkpoint.
    pub given_up: Option<GiveUp>,
    /// Whether records are to be retried: wait the retry backoff first.
    pub retry: bool,
}

/// A shard poller's account of the records at the head of its shard: how often they failed,
/// and the sizes of the batches owed to retries before normal batching resumes.
#[derive(Debug, Default)]
pub struct RetryAccount {
    /// The next batch's size last: a failed batch, or the halves of a bisected one.
    owed_batches: Vec<usize>,
    /// The first record of the last batch (by sequence number), its failures (bisections
    /// excepted) and the invocations that included it.
    head: Option<String>,
    failures: u32,
    invocations: u32,
}

impl RetryAccount {
    /// Size of the next batch: what a retry owes, else the trigger's batch size.
    pub fn next_batch_size(&self, batch_size: usize) -> usize {
        self.owed_batches.last().copied().unwrap_or(batch_size)
    }

    /// Whether the next batch is a retry (or a half of one).
    pub fn retrying(&self) -> bool {
        !self.owed_batches.is_empty()
    }

    /// Settles the batch just invoked (its records' sequence numbers, in order) with its result.
    /// `expired(position)` tells whether that record of the batch is older than the stream
    /// keeps records.
    pub fn settle(
        &mut self,
        policy: RetryPolicy,
        batch: &[&str],
        result: &BatchResult,
        expired: impl Fn(usize) -> bool,
    ) -> Settlement {
        let Some(&head) = batch.first() else {
            return Settlement {
                checkpoint: 0,
                given_up: None,
                retry: false,
            };
        };
        if self.head.as_deref() != Some(head) {
            self.head = Some(head.to_owned());
            self.failures = 0;
            self.invocations = 0;
        }
        self.invocations += 1;
        // This batch was the one owed, if any was.
        self.owed_batches.pop();
        let size = batch.len();
        match result {
            BatchResult::Processed => {
                self.head = None;
                Settlement {
                    checkpoint: size,
                    given_up: None,
                    retry: false,
                }
            }
            BatchResult::FailedFrom { first_failed, .. }
                if *first_failed > 0 && *first_failed < size =>
            {
                // The records from the failed one on are the new head, failed once.
                self.head = Some(batch[*first_failed].to_owned());
                self.failures = 1;
                self.invocations = 1;
                self.fail_from(policy, *first_failed, size, &expired)
            }
            BatchResult::Failed {
                function_error: true,
                ..
            } if policy.bisect_batch_on_function_error && size > 1 && !expired(0) => {
                let first_half = size.div_ceil(2);
                self.owed_batches.push(size - first_half);
                self.owed_batches.push(first_half);
                Settlement {
                    checkpoint: 0,
                    given_up: None,
                    retry: true,
                }
            }
            BatchResult::FailedFrom { .. } | BatchResult::Failed { .. } => {
                self.failures += 1;
                self.fail_from(policy, 0, size, &expired)
            }
        }
    }

    /// The records of the batch from `first_failed` on failed: retry exactly them, or give up.
    fn fail_from(
        &mut self,
        policy: RetryPolicy,
        first_failed: usize,
        size: usize,
        expired: &impl Fn(usize) -> bool,
    ) -> Settlement {
        let condition = if expired(first_failed) {
            Some(GiveUpCondition::RecordAgeExceeded)
        } else if policy
            .retry_limit
            .is_some_and(|limit| self.failures > limit)
        {
            Some(GiveUpCondition::RetryAttemptsExhausted)
        } else {
            None
        };
        match condition {
            Some(condition) => {
                let given_up = GiveUp {
                    condition,
                    from: first_failed,
                    invocations: self.invocations,
                };
                self.head = None;
                Settlement {
                    checkpoint: size,
                    given_up: Some(given_up),
                    retry: false,
                }
            }
            None => {
                self.owed_batches.push(size - first_failed);
                Settlement {
                    checkpoint: first_failed,
                    given_up: None,
                    retry: true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: [&str; 4] = ["101", "102", "103", "104"];

    fn response(text: &str) -> BatchResult {
        BatchResult::from_invocation(&Ok::<_, InvokeError>(text), &BATCH, true)
    }

    fn function_error() -> BatchResult {
        BatchResult::Failed {
            reason: "Unhandled".to_owned(),
            function_error: true,
        }
    }

    const NEVER_EXPIRED: fn(usize) -> bool = |_| false;

    #[test]
    fn successful_responses_process_the_whole_batch() {
        for text in [
            "",
            "null",
            "{}",
            r#""done""#,
            "not json",
            r#"{"batchItemFailures":null}"#,
            r#"{"batchItemFailures":[]}"#,
        ] {
            assert_eq!(response(text), BatchResult::Processed, "response {text:?}");
        }
        // Without ReportBatchItemFailures the list means nothing.
        let listed = r#"{"batchItemFailures":[{"itemIdentifier":"102"}]}"#;
        assert_eq!(
            BatchResult::from_invocation(&Ok::<_, InvokeError>(listed), &BATCH, false),
            BatchResult::Processed
        );
    }

    #[test]
    fn listed_failures_fail_the_batch_from_the_lowest_sequence_number() {
        let result = response(
            r#"{"batchItemFailures":[{"itemIdentifier":"104"},{"itemIdentifier":"102"}]}"#,
        );
        assert!(
            matches!(
                result,
                BatchResult::FailedFrom {
                    first_failed: 1,
                    ..
                }
            ),
            "{result:?}"
        );
    }

    #[test]
    fn invalid_failure_lists_and_invocation_errors_fail_the_whole_batch() {
        for text in [
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemId":"102"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"102"},{"itemIdentifier":"999"}]}"#,
            r#"{"batchItemFailures":"102"}"#,
        ] {
            let result = response(text);
            assert!(
                matches!(
                    result,
                    BatchResult::Failed {
                        function_error: false,
                        ..
                    }
                ),
                "response {text:?} gave {result:?}"
            );
        }
        for report_batch_item_failures in [false, true] {
            let timeout: Result<&str, _> = Err(InvokeError::Timeout(Duration::from_secs(30)));
            let result = BatchResult::from_invocation(&timeout, &BATCH, report_batch_item_failures);
            assert!(matches!(
                result,
                BatchResult::Failed {
                    function_error: true,
                    ..
                }
            ));
        }
    }

    const RETRY_TWICE: RetryPolicy = RetryPolicy {
        retry_limit: Some(2),
        bisect_batch_on_function_error: false,
    };

    #[test]
    fn a_processed_batch_is_checkpointed_whole() {
        let mut account = RetryAccount::default();
        let settled = account.settle(RETRY_TWICE, &BATCH, &BatchResult::Processed, NEVER_EXPIRED);
        assert_eq!(
            settled,
            Settlement {
                checkpoint: 4,
                given_up: None,
                retry: false
            }
        );
        assert_eq!(account.next_batch_size(100), 100);
    }

    #[test]
    fn a_partial_failure_checkpoints_before_the_failed_record_and_retries_the_rest() {
        let mut account = RetryAccount::default();
        let partial = response(r#"{"batchItemFailures":[{"itemIdentifier":"103"}]}"#);
        let settled = account.settle(RETRY_TWICE, &BATCH, &partial, NEVER_EXPIRED);
        assert_eq!(
            settled,
            Settlement {
                checkpoint: 2,
                given_up: None,
                retry: true
            }
        );
        // The retry is exactly the remaining records, which already failed once.
        assert_eq!(account.next_batch_size(100), 2);
        let rest = ["103", "104"];
        let whole = BatchResult::from_batch_response(
            br#"{"batchItemFailures":[{"itemIdentifier":"103"}]}"#,
            &rest,
        );
        assert!(matches!(
            whole,
            BatchResult::FailedFrom {
                first_failed: 0,
                ..
            }
        ));
        let settled = account.settle(RETRY_TWICE, &rest, &whole, NEVER_EXPIRED);
        assert_eq!((settled.checkpoint, settled.retry), (0, true));
        // Third failure of 103: two retries are spent.
        let settled = account.settle(RETRY_TWICE, &rest, &whole, NEVER_EXPIRED);
        assert_eq!(
            settled,
            Settlement {
                checkpoint: 2,
                given_up: Some(GiveUp {
                    condition: GiveUpCondition::RetryAttemptsExhausted,
                    from: 0,
                    invocations: 3
                }),
                retry: false
            }
        );
        assert_eq!(account.next_batch_size(100), 100);
    }

    #[test]
    fn a_failing_batch_is_retried_whole_and_given_up_on_after_the_retry_limit() {
        let mut account = RetryAccount::default();
        for _ in 0..2 {
            let settled = account.settle(RETRY_TWICE, &BATCH, &function_error(), NEVER_EXPIRED);
            assert_eq!(
                settled,
                Settlement {
                    checkpoint: 0,
                    given_up: None,
                    retry: true
                }
            );
            assert_eq!(account.next_batch_size(100), 4);
            assert!(account.retrying());
        }
        let settled = account.settle(RETRY_TWICE, &BATCH, &function_error(), NEVER_EXPIRED);
        assert_eq!(settled.checkpoint, 4);
        assert_eq!(
            settled.given_up,
            Some(GiveUp {
                condition: GiveUpCondition::RetryAttemptsExhausted,
                from: 0,
                invocations: 3
            })
        );
        assert!(!account.retrying());
    }

    #[test]
    fn without_a_retry_limit_only_expiry_gives_up() {
        let forever = RetryPolicy {
            retry_limit: None,
            bisect_batch_on_function_error: false,
        };
        let mut account = RetryAccount::default();
        for _ in 0..1000 {
            let settled = account.settle(forever, &BATCH, &function_error(), NEVER_EXPIRED);
            assert!(settled.retry && settled.given_up.is_none());
        }
        let settled = account.settle(forever, &BATCH, &function_error(), |_| true);
        assert_eq!(
            settled.given_up.map(|given_up| given_up.condition),
            Some(GiveUpCondition::RecordAgeExceeded)
        );
        // A retry limit of 0: the first failure gives up.
        let never = RetryPolicy {
            retry_limit: Some(0),
            bisect_batch_on_function_error: false,
        };
        let settled =
            RetryAccount::default().settle(never, &BATCH, &function_error(), NEVER_EXPIRED);
        assert_eq!(settled.checkpoint, 4);
        assert!(settled.given_up.is_some());
    }

    #[test]
    fn bisection_retries_halves_first_half_first_and_counts_only_unsplittable_failures() {
        let policy = RetryPolicy {
            retry_limit: Some(1),
            bisect_batch_on_function_error: true,
        };
        let mut account = RetryAccount::default();
        // [101..104] fails: split, no retry counted.
        let settled = account.settle(policy, &BATCH, &function_error(), NEVER_EXPIRED);
        assert_eq!((settled.checkpoint, settled.retry), (0, true));
        assert_eq!(account.next_batch_size(100), 2);
        // [101, 102] fails: split again.
        account.settle(policy, &BATCH[..2], &function_error(), NEVER_EXPIRED);
        assert_eq!(account.next_batch_size(100), 1);
        // [101] is processed; [102] is owed next.
        let settled = account.settle(policy, &BATCH[..1], &BatchResult::Processed, NEVER_EXPIRED);
        assert_eq!(settled.checkpoint, 1);
        assert_eq!(account.next_batch_size(100), 1);
        // [102] fails twice: retried once, then given up on.
        let settled = account.settle(policy, &BATCH[1..2], &function_error(), NEVER_EXPIRED);
        assert_eq!((settled.checkpoint, settled.retry), (0, true));
        assert_eq!(account.next_batch_size(100), 1);
        let settled = account.settle(policy, &BATCH[1..2], &function_error(), NEVER_EXPIRED);
        assert_eq!(settled.checkpoint, 1);
        assert_eq!(
            settled.given_up.map(|given_up| given_up.invocations),
            Some(2),
            "invocations since 102 headed a batch"
        );
        // Then the second half of the first split, [103, 104].
        assert_eq!(account.next_batch_size(100), 2);
        account.settle(policy, &BATCH[2..], &BatchResult::Processed, NEVER_EXPIRED);
        assert_eq!(account.next_batch_size(100), 100);
        assert!(!account.retrying());
    }

    #[test]
    fn bisection_splits_only_function_errors() {
        let policy = RetryPolicy {
            retry_limit: None,
            bisect_batch_on_function_error: true,
        };
        // A partial failure retries the rest as one batch.
        let mut account = RetryAccount::default();
        let partial = response(r#"{"batchItemFailures":[{"itemIdentifier":"102"}]}"#);
        let settled = account.settle(policy, &BATCH, &partial, NEVER_EXPIRED);
        assert_eq!(settled.checkpoint, 1);
        assert_eq!(account.next_batch_size(100), 3);
        // So does an invalid failure list.
        let mut account = RetryAccount::default();
        let invalid = response(r#"{"batchItemFailures":[{"itemIdentifier":"999"}]}"#);
        account.settle(policy, &BATCH, &invalid, NEVER_EXPIRED);
        assert_eq!(account.next_batch_size(100), 4);
    }
}
