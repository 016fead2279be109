//! One poller of an SQS event source mapping, owning one function instance: receive a batch,
//! invoke, delete what succeeded, repeat.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::Bytes;
use tokio_util::sync::CancellationToken;

use super::event::sqs_event;
use super::settlement::BatchVerdict;
use crate::aws::describe_error;
use crate::backoff::Backoff;
use crate::instance::FunctionInstance;
use crate::wiring::SqsTrigger;

type ReceiveError =
    aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::receive_message::ReceiveMessageError>;

/// Long-poll length. AWS's pollers wait up to 20 s; locally a poll is never cancelled (see
/// `gather_batch`), so this bounds how long shutdown waits for an idle poller, and how long a
/// poll orphaned by a killed local-lambda can still take messages.
const POLL_WAIT_SECONDS: i32 = 2;
/// SQS's longest long poll.
const MAX_WAIT_SECONDS: i32 = 20;
/// SQS's largest ReceiveMessage and DeleteMessageBatch.
const SQS_BATCH_LIMIT: usize = 10;
/// Stop gathering once the bodies reach this size, well under Lambda's 6 MB event limit.
const BATCH_PAYLOAD_BUDGET: usize = 4 * 1024 * 1024;
/// Less than this left in the batching window is not worth another receive.
const MIN_WINDOW_REMAINDER: Duration = Duration::from_millis(20);
const DELETE_ATTEMPTS: u32 = 3;

pub struct SqsPoller {
    sqs: aws_sdk_sqs::Client,
    trigger: SqsTrigger,
    region: String,
    instance: FunctionInstance,
}

impl SqsPoller {
    /// `instance` should already be started, so a failing function shows at start-up.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        trigger: SqsTrigger,
        region: String,
        instance: FunctionInstance,
    ) -> Self {
        SqsPoller {
            sqs,
            trigger,
            region,
            instance,
        }
    }

    /// Polls until shutdown is requested; the poll in progress then completes, and its batch
    /// is invoked (within the function's timeout) and settled before the instance is stopped.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut receive_backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            if self.instance.ensure_started(&shutdown).await.is_err() {
                break;
            }
            let batch = match self.gather_batch(&shutdown).await {
                Ok(batch) => {
                    receive_backoff.reset();
                    batch
                }
                Err(error) => {
                    tracing::warn!(
                        instance = %self.instance.label(),
                        queue = %self.trigger.queue,
                        error = %describe_error(&error),
                        "ReceiveMessage failed; backing off"
                    );
                    let delay = tokio::time::sleep(receive_backoff.next_delay());
                    if shutdown.run_until_cancelled(delay).await.is_none() {
                        break;
                    }
                    continue;
                }
            };
            if !batch.is_empty() {
                self.invoke_and_settle(&batch).await;
            }
        }
        self.instance.stop().await;
        tracing::debug!(instance = %self.instance.label(), "poller stopped");
    }

    /// Long-polls once; if messages arrived, keeps receiving until the batch is full, the
    /// batching window has passed, the payload budget is spent, or shutdown is requested.
    ///
    /// Receives are never cancelled: SQS (and LocalStack) would go on with a dropped long
    /// poll and take messages for it, which then stay invisible for the visibility timeout
    /// and count a receive towards the DLQ with no one to process them. Shutdown waits for
    /// the poll instead, and what it brought is invoked like any in-flight batch.
    async fn gather_batch(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Message>, ReceiveError> {
        let batch_size = usize::try_from(self.trigger.batch_size).unwrap_or(SQS_BATCH_LIMIT);
        let mut batch = self.receive(batch_size, POLL_WAIT_SECONDS).await?;
        if batch.is_empty() {
            return Ok(batch);
        }
        let window_closes = Instant::now() + self.trigger.batching_window();
        let mut payload_bytes: usize = batch.iter().map(body_len).sum();
        while batch.len() < batch_size && payload_bytes < BATCH_PAYLOAD_BUDGET {
            let remaining = window_closes.saturating_duration_since(Instant::now());
            if remaining < MIN_WINDOW_REMAINDER || shutdown.is_cancelled() {
                break;
            }
            // WaitTimeSeconds is whole seconds: the window may overrun by under a second.
            let wait_seconds = i32::try_from(remaining.as_millis().div_ceil(1000))
                .unwrap_or(MAX_WAIT_SECONDS)
                .min(MAX_WAIT_SECONDS);
            match self.receive(batch_size - batch.len(), wait_seconds).await {
                Ok(more) => {
                    payload_bytes += more.iter().map(body_len).sum::<usize>();
                    batch.extend(more);
                }
                Err(error) => {
                    // Keep what was gathered: those messages are invisible until invoked.
                    tracing::warn!(
                        queue = %self.trigger.queue,
                        error = %describe_error(&error),
                        "ReceiveMessage failed while filling a batch; invoking with what arrived"
                    );
                    break;
                }
            }
        }
        Ok(batch)
    }

    async fn receive(&self, up_to: usize, wait_seconds: i32) -> Result<Vec<Message>, ReceiveError> {
        let max_messages = i32::try_from(up_to.clamp(1, SQS_BATCH_LIMIT)).unwrap_or(1);
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.trigger.queue_url)
            .max_number_of_messages(max_messages)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn invoke_and_settle(&mut self, batch: &[Message]) {
        let event = sqs_event(batch, &self.trigger.queue_arn, &self.region);
        let payload = match serde_json::to_vec(&event) {
            Ok(payload) => Bytes::from(payload),
            Err(error) => {
                // Not reachable for this plain data type; the messages are redelivered anyway.
                tracing::error!(
                    %error,
                    "cannot serialise the SqsEvent; leaving the batch in the queue"
                );
                return;
            }
        };
        let started = Instant::now();
        let outcome = self.instance.invoke(payload).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let verdict =
            BatchVerdict::from_invocation(&outcome, batch, self.trigger.report_batch_item_failures);
        let label = self.instance.label();
        match &verdict {
            BatchVerdict::AllSucceeded => {
                tracing::debug!(
                    instance = %label,
                    messages = batch.len(),
                    elapsed_ms,
                    "batch processed"
                );
            }
            BatchVerdict::PartiallyFailed { failed } => {
                tracing::warn!(
                    instance = %label,
                    messages = batch.len(),
                    failed = ?failed,
                    elapsed_ms,
                    "batch partially failed; failed messages stay in the queue"
                );
            }
            BatchVerdict::Failed { reason } => {
                tracing::warn!(
                    instance = %label,
                    messages = batch.len(),
                    %reason,
                    elapsed_ms,
                    "batch failed; every message stays in the queue"
                );
            }
        }
        self.delete(&verdict.messages_to_delete(batch)).await;
    }

    async fn delete(&self, messages: &[&Message]) {
        for chunk in messages.chunks(SQS_BATCH_LIMIT) {
            // Entry ids are positions in the chunk: unique, and valid SQS batch ids.
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(position, message)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(position.to_string())
                        .set_receipt_handle(message.receipt_handle.clone())
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            self.delete_chunk(chunk, entries).await;
        }
    }

    async fn delete_chunk(&self, chunk: &[&Message], entries: Vec<DeleteMessageBatchRequestEntry>) {
        let message_id = |entry_id: &str| {
            entry_id
                .parse::<usize>()
                .ok()
                .and_then(|position| chunk.get(position))
                .and_then(|message| message.message_id.clone())
                .unwrap_or_default()
        };
        let mut retry_backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 1..=DELETE_ATTEMPTS {
            let sent = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.trigger.queue_url)
                .set_entries(Some(entries.clone()))
                .send()
                .await;
            match sent {
                Ok(output) => {
                    for failure in output.failed {
                        tracing::warn!(
                            queue = %self.trigger.queue,
                            message_id = %message_id(&failure.id),
                            code = %failure.code,
                            reason = failure.message.as_deref().unwrap_or(""),
                            "message not deleted; it will be delivered again"
                        );
                    }
                    return;
                }
                Err(error) if attempt < DELETE_ATTEMPTS => {
                    tracing::warn!(
                        queue = %self.trigger.queue,
                        attempt,
                        error = %describe_error(&error),
                        "DeleteMessageBatch failed; retrying"
                    );
                    tokio::time::sleep(retry_backoff.next_delay()).await;
                }
                Err(error) => {
                    tracing::error!(
                        queue = %self.trigger.queue,
                        messages = entries.len(),
                        error = %describe_error(&error),
                        "DeleteMessageBatch failed; these messages will be delivered again"
                    );
                }
            }
        }
    }
}

fn body_len(message: &Message) -> usize {
    message.body.as_deref().map_or(0, str::len)
}
