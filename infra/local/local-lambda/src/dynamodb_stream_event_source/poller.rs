//! One poller of a stream mapping, owning one shard and one function instance: read the shard
//! in order, gather a batch of the records the filters let through, invoke, checkpoint what
//! was processed, retry what failed; until the shard is closed and read to its end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodbstreams::types::Record;
use aws_smithy_types::DateTime;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{CheckpointStore, ShardCheckpoint};
use super::event::{event_overhead, record_json, stream_event};
use super::filter::{self, FilterPattern};
use super::on_failure::{GivenUpBatch, OnFailureDestination, on_failure_record};
use super::settlement::{BatchResult, RECORD_RETENTION, RetryAccount, RetryPolicy, Settlement};
use super::streams::{IteratorPosition, StreamsApi, StreamsError};
use crate::backoff::Backoff;
use crate::instance::FunctionInstance;
use crate::runtime_api::{InvokeError, new_request_id};
use crate::wiring::StreamTrigger;

/// How often an empty shard is polled: four times a second, as AWS does.
pub const EMPTY_SHARD_POLL: Duration = Duration::from_millis(250);
/// GetRecords' largest page.
const RECORDS_PER_READ: i32 = 1000;
/// Lambda's limit on a synchronous invocation's payload.
const EVENT_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// Retries of a failing batch wait this long first, doubling up to the maximum.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Failing Streams and SQS calls are retried after this, doubling up to the maximum.
const FIRST_CALL_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_CALL_RETRY_DELAY: Duration = Duration::from_secs(10);

/// What a mapping's shard pollers share.
pub struct MappingContext<S, D> {
    pub streams: S,
    pub on_failure: D,
    pub checkpoints: Arc<CheckpointStore>,
    pub trigger: StreamTrigger,
    pub filters: Vec<FilterPattern>,
    /// `<function>/<table>`: the mapping in logs and in the checkpoint file.
    pub mapping: String,
    pub function_arn: String,
    /// The region the records say they come from (the wiring's).
    pub region: String,
}

impl<S, D> MappingContext<S, D> {
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retry_limit: self.trigger.retry_limit(),
            bisect_batch_on_function_error: self.trigger.bisect_batch_on_function_error,
        }
    }
}

/// Why a shard poller stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardEnd {
    /// The shard is closed and every record of it is processed: its children can be read.
    Finished,
    /// The stream or the shard no longer exists (its table was deleted or created again).
    StreamGone(String),
    /// Shutdown was requested (after the batch in flight, if any, was settled).
    Shutdown,
}

/// A record read from the shard and not yet checkpointed.
struct ReadRecord {
    sequence_number: String,
    created: Option<DateTime>,
    /// Its event JSON, as the function gets it.
    json: String,
    /// Whether the trigger's filters let it through; one filtered out counts as processed.
    delivered: bool,
}

/// Where the poller reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadPosition {
    /// An iterator must be got from this position first.
    Unpositioned(IteratorPosition),
    Iterator(String),
    /// A closed shard read to its end.
    End,
}

/// The records of the buffer the next batch takes.
struct BatchExtent {
    /// Buffer positions of the delivered records in it.
    delivered: Vec<usize>,
    /// The payload limit stopped it.
    full: bool,
}

pub struct ShardPoller<S, D> {
    context: Arc<MappingContext<S, D>>,
    stream_arn: String,
    shard_id: String,
    instance: FunctionInstance,
    /// Where reading began.
    start: IteratorPosition,
    position: ReadPosition,
    /// The last record read (or the checkpoint reading resumed after), to get a new iterator
    /// after it when one expires.
    last_read: Option<String>,
    buffer: VecDeque<ReadRecord>,
    retries: RetryAccount,
    /// When the batching window of the records in the buffer closes.
    window_closes: Option<Instant>,
    call_backoff: Backoff,
    retry_backoff: Backoff,
}

impl<S: StreamsApi, D: OnFailureDestination> ShardPoller<S, D> {
    pub fn new(
        context: Arc<MappingContext<S, D>>,
        stream_arn: String,
        shard_id: String,
        start: IteratorPosition,
        instance: FunctionInstance,
    ) -> Self {
        let last_read = match &start {
            IteratorPosition::AfterSequenceNumber(checkpoint) => Some(checkpoint.clone()),
            IteratorPosition::TrimHorizon | IteratorPosition::Latest => None,
        };
        ShardPoller {
            context,
            stream_arn,
            shard_id,
            instance,
            position: ReadPosition::Unpositioned(start.clone()),
            start,
            last_read,
            buffer: VecDeque::new(),
            retries: RetryAccount::default(),
            window_closes: None,
            call_backoff: Backoff::new(FIRST_CALL_RETRY_DELAY, MAX_CALL_RETRY_DELAY),
            retry_backoff: Backoff::new(FIRST_RETRY_DELAY, MAX_RETRY_DELAY),
        }
    }

    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// Gets the first shard iterator now rather than on the first read.
    pub async fn position(&mut self) -> Result<(), StreamsError> {
        if let ReadPosition::Unpositioned(start) = &self.position {
            let iterator = self
                .context
                .streams
                .shard_iterator(&self.stream_arn, &self.shard_id, start)
                .await?;
            self.position = iterator.map_or(ReadPosition::End, ReadPosition::Iterator);
        }
        Ok(())
    }

    /// Polls until the shard is finished, the stream is gone or shutdown is requested; a batch
    /// in flight is invoked (within the function's timeout) and settled before the instance is
    /// stopped.
    pub async fn run(mut self, shutdown: CancellationToken) -> ShardEnd {
        let end = self.poll(&shutdown).await;
        self.instance.stop().await;
        tracing::debug!(
            instance = %self.instance.label(),
            shard = %self.shard_id,
            ?end,
            "shard poller stopped"
        );
        end
    }

    async fn poll(&mut self, shutdown: &CancellationToken) -> ShardEnd {
        loop {
            if shutdown.is_cancelled() {
                return ShardEnd::Shutdown;
            }
            self.pass_undelivered_head();
            let target = self
                .retries
                .next_batch_size(usize::try_from(self.context.trigger.batch_size).unwrap_or(1));
            let extent = self.batch_extent(target);
            if !extent.delivered.is_empty() {
                let window_closes = *self
                    .window_closes
                    .get_or_insert_with(|| Instant::now() + self.context.trigger.batching_window());
                let ready = extent.delivered.len() >= target
                    || extent.full
                    || Instant::now() >= window_closes
                    || self.position == ReadPosition::End;
                if ready {
                    self.window_closes = None;
                    if let Err(end) = self.invoke_and_settle(&extent, shutdown).await {
                        return end;
                    }
                    continue;
                }
            } else if self.position == ReadPosition::End {
                // Everything before is checkpointed (pass_undelivered_head emptied the buffer).
                self.save_checkpoint(ShardCheckpoint {
                    sequence_number: self.last_read.clone(),
                    finished: true,
                });
                return ShardEnd::Finished;
            }
            let positioned = !matches!(self.position, ReadPosition::Unpositioned(_));
            match self.read(shutdown).await {
                // Just positioned: read at once.
                Ok(0) if !positioned => {}
                Ok(0) => {
                    // Nothing new: poll again soon, or invoke when the window closes.
                    let until_window = self
                        .window_closes
                        .map(|closes| closes.saturating_duration_since(Instant::now()));
                    let idle =
                        until_window.map_or(EMPTY_SHARD_POLL, |left| left.min(EMPTY_SHARD_POLL));
                    if self.position != ReadPosition::End && !sleep(idle, shutdown).await {
                        return ShardEnd::Shutdown;
                    }
                }
                Ok(_) => {}
                Err(end) => return end,
            }
        }
    }

    /// Reads the next page into the buffer; the number of records read. Errors that a retry
    /// can get past are logged and waited out here.
    async fn read(&mut self, shutdown: &CancellationToken) -> Result<usize, ShardEnd> {
        let outcome = match &self.position {
            ReadPosition::End => return Ok(0),
            ReadPosition::Unpositioned(start) => self
                .context
                .streams
                .shard_iterator(&self.stream_arn, &self.shard_id, start)
                .await
                .map(|iterator| {
                    self.position = iterator.map_or(ReadPosition::End, ReadPosition::Iterator);
                    0
                }),
            ReadPosition::Iterator(iterator) => {
                let iterator = iterator.clone();
                match self
                    .context
                    .streams
                    .records(&iterator, RECORDS_PER_READ)
                    .await
                {
                    Ok(page) => {
                        self.position = page
                            .next_iterator
                            .map_or(ReadPosition::End, ReadPosition::Iterator);
                        Ok(self.take_records(&page.records))
                    }
                    Err(error) => Err(error),
                }
            }
        };
        match outcome {
            Ok(read) => {
                self.call_backoff.reset();
                Ok(read)
            }
            Err(StreamsError::NotFound(reason)) => Err(ShardEnd::StreamGone(reason)),
            Err(StreamsError::IteratorExpired) => {
                self.position = ReadPosition::Unpositioned(self.resume_position());
                Ok(0)
            }
            Err(StreamsError::Trimmed(reason)) => {
                tracing::error!(
                    mapping = %self.context.mapping,
                    shard = %self.shard_id,
                    %reason,
                    "records expired from the stream before they were processed; \
                     reading on from the oldest record left"
                );
                self.position = ReadPosition::Unpositioned(IteratorPosition::TrimHorizon);
                Ok(0)
            }
            Err(StreamsError::Unavailable(reason)) => {
                let delay = self.call_backoff.next_delay();
                tracing::warn!(
                    mapping = %self.context.mapping,
                    shard = %self.shard_id,
                    %reason,
                    retry_in_ms = delay.as_millis(),
                    "reading the stream failed; backing off"
                );
                if sleep(delay, shutdown).await {
                    Ok(0)
                } else {
                    Err(ShardEnd::Shutdown)
                }
            }
        }
    }

    /// Where to get a new iterator: after the last record read, else where reading began.
    fn resume_position(&self) -> IteratorPosition {
        match &self.last_read {
            Some(last) => IteratorPosition::AfterSequenceNumber(last.clone()),
            None => self.start.clone(),
        }
    }

    fn take_records(&mut self, records: &[Record]) -> usize {
        let mut taken = 0;
        for record in records {
            let Some(sequence_number) = record
                .dynamodb
                .as_ref()
                .and_then(|change| change.sequence_number.clone())
            else {
                tracing::error!(
                    mapping = %self.context.mapping,
                    shard = %self.shard_id,
                    event_id = record.event_id.as_deref().unwrap_or_default(),
                    "stream record without a sequence number; skipped"
                );
                continue;
            };
            let json = record_json(record, &self.stream_arn, &self.context.region);
            let delivered = filter::delivered(&self.context.filters, &json);
            self.last_read = Some(sequence_number.clone());
            self.buffer.push_back(ReadRecord {
                sequence_number,
                created: record
                    .dynamodb
                    .as_ref()
                    .and_then(|change| change.approximate_creation_date_time),
                json: json.to_string(),
                delivered,
            });
            taken += 1;
        }
        taken
    }

    /// Checkpoints past the records at the head of the buffer that the filters kept back.
    fn pass_undelivered_head(&mut self) {
        let mut passed = None;
        while self.buffer.front().is_some_and(|record| !record.delivered) {
            passed = self.buffer.pop_front().map(|record| record.sequence_number);
        }
        if let Some(sequence_number) = passed {
            self.save_checkpoint(ShardCheckpoint {
                sequence_number: Some(sequence_number),
                finished: false,
            });
        }
    }

    /// The next batch: up to `target` delivered records from the head of the buffer, within
    /// Lambda's payload limit (one record at least).
    fn batch_extent(&self, target: usize) -> BatchExtent {
        let mut delivered = Vec::new();
        let mut payload = event_overhead(0);
        for (position, record) in self.buffer.iter().enumerate() {
            if delivered.len() >= target {
                break;
            }
            if !record.delivered {
                continue;
            }
            let size = record.json.len() + usize::from(!delivered.is_empty());
            if !delivered.is_empty() && payload + size > EVENT_PAYLOAD_LIMIT {
                return BatchExtent {
                    delivered,
                    full: true,
                };
            }
            payload += size;
            delivered.push(position);
        }
        BatchExtent {
            delivered,
            full: false,
        }
    }

    async fn invoke_and_settle(
        &mut self,
        extent: &BatchExtent,
        shutdown: &CancellationToken,
    ) -> Result<(), ShardEnd> {
        if self.instance.ensure_started(shutdown).await.is_err() {
            return Err(ShardEnd::Shutdown);
        }
        let batch: Vec<&ReadRecord> = extent
            .delivered
            .iter()
            .map(|&position| &self.buffer[position])
            .collect();
        let sequence_numbers: Vec<&str> = batch
            .iter()
            .map(|record| record.sequence_number.as_str())
            .collect();
        let payload = stream_event(batch.iter().map(|record| record.json.as_str()));
        let request_id = new_request_id();
        let started = Instant::now();
        let outcome = self
            .instance
            .invoke_with_request_id(request_id.clone(), payload)
            .await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let result = BatchResult::from_invocation(
            &outcome,
            &sequence_numbers,
            self.context.trigger.report_batch_item_failures,
        );
        let now = SystemTime::now();
        let expired = |position: usize| {
            batch[position].created.is_some_and(|created| {
                SystemTime::try_from(created)
                    .ok()
                    .and_then(|created| now.duration_since(created).ok())
                    .is_some_and(|age| age > RECORD_RETENTION)
            })
        };
        let settlement = self.retries.settle(
            self.context.retry_policy(),
            &sequence_numbers,
            &result,
            expired,
        );
        self.log_settlement(&sequence_numbers, &result, &settlement, elapsed_ms);

        if let Some(given_up) = settlement.given_up {
            let records = &batch[given_up.from..];
            let (Some(first), Some(last)) = (records.first(), records.last()) else {
                return Ok(());
            };
            let function_error = matches!(&outcome, Err(error) if invoked_and_failed(error));
            let record = on_failure_record(
                &GivenUpBatch {
                    condition: given_up.condition.as_str(),
                    request_id: &request_id,
                    function_arn: &self.context.function_arn,
                    invocations: given_up.invocations,
                    function_error: function_error.then_some("Unhandled"),
                    stream_arn: &self.stream_arn,
                    shard_id: &self.shard_id,
                    first_sequence_number: &first.sequence_number,
                    last_sequence_number: &last.sequence_number,
                    first_created: first.created,
                    last_created: last.created,
                    batch_size: records.len(),
                },
                DateTime::from(now),
            );
            if !self.send_on_failure(record.to_string(), shutdown).await {
                // Not checkpointed: the records are delivered again after a restart.
                return Err(ShardEnd::Shutdown);
            }
        }
        if settlement.checkpoint > 0 {
            // The last record processed in the buffer: the batch's last, or the one just
            // before the first failed record (maybe one the filters kept back).
            let last = if settlement.checkpoint >= extent.delivered.len() {
                extent.delivered[extent.delivered.len() - 1]
            } else {
                extent.delivered[settlement.checkpoint] - 1
            };
            let checkpointed = self.buffer.drain(..=last).next_back();
            if let Some(record) = checkpointed {
                self.save_checkpoint(ShardCheckpoint {
                    sequence_number: Some(record.sequence_number),
                    finished: false,
                });
            }
        }
        if settlement.retry {
            if !sleep(self.retry_backoff.next_delay(), shutdown).await {
                return Err(ShardEnd::Shutdown);
            }
        } else {
            self.retry_backoff.reset();
        }
        Ok(())
    }

    fn log_settlement(
        &self,
        sequence_numbers: &[&str],
        result: &BatchResult,
        settlement: &Settlement,
        elapsed_ms: u64,
    ) {
        let label = self.instance.label();
        let first = sequence_numbers.first().copied().unwrap_or_default();
        let last = sequence_numbers.last().copied().unwrap_or_default();
        let reason = match result {
            BatchResult::Processed => {
                tracing::debug!(
                    instance = %label,
                    shard = %self.shard_id,
                    records = sequence_numbers.len(),
                    first,
                    last,
                    elapsed_ms,
                    "batch processed"
                );
                return;
            }
            BatchResult::FailedFrom { reason, .. } | BatchResult::Failed { reason, .. } => reason,
        };
        if let Some(given_up) = &settlement.given_up {
            tracing::error!(
                instance = %label,
                shard = %self.shard_id,
                records = sequence_numbers.len() - given_up.from,
                first = sequence_numbers.get(given_up.from).copied().unwrap_or_default(),
                last,
                %reason,
                condition = given_up.condition.as_str(),
                invocations = given_up.invocations,
                "giving up on records: sending them to the on-failure destination and moving on"
            );
        } else {
            tracing::warn!(
                instance = %label,
                shard = %self.shard_id,
                records = sequence_numbers.len(),
                first,
                last,
                processed = settlement.checkpoint,
                retrying = self.retries.next_batch_size(0),
                %reason,
                elapsed_ms,
                "batch failed; retrying"
            );
        }
    }

    /// Sends an on-failure record, retrying until it is sent; false if shutdown came first.
    async fn send_on_failure(&mut self, record: String, shutdown: &CancellationToken) -> bool {
        let Some(queue_url) = self.context.trigger.on_failure_queue_url.clone() else {
            tracing::error!(
                mapping = %self.context.mapping,
                shard = %self.shard_id,
                on_failure_record = %record,
                "the trigger has no on-failure destination: the records are dropped"
            );
            return true;
        };
        let mut backoff = Backoff::new(FIRST_CALL_RETRY_DELAY, MAX_CALL_RETRY_DELAY);
        loop {
            match self
                .context
                .on_failure
                .send(&queue_url, record.clone())
                .await
            {
                Ok(()) => return true,
                Err(reason) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        mapping = %self.context.mapping,
                        queue_url = %queue_url,
                        %reason,
                        retry_in_ms = delay.as_millis(),
                        "cannot send the on-failure record; retrying"
                    );
                    if !sleep(delay, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    fn save_checkpoint(&self, checkpoint: ShardCheckpoint) {
        if let Err(error) = self.context.checkpoints.save(
            &self.context.mapping,
            &self.stream_arn,
            &self.shard_id,
            checkpoint,
        ) {
            tracing::warn!(
                mapping = %self.context.mapping,
                shard = %self.shard_id,
                error = %crate::aws::describe_error(&error),
                "checkpoint not saved: after a restart, records may be delivered again"
            );
        }
    }
}

/// Whether the invocation ran and failed (AWS's `functionError: Unhandled`), rather than
/// never reaching the function.
fn invoked_and_failed(error: &InvokeError) -> bool {
    !matches!(error, InvokeError::NotRunning)
}

/// Sleeps unless shutdown is requested first; false if it was.
async fn sleep(duration: Duration, shutdown: &CancellationToken) -> bool {
    shutdown
        .run_until_cancelled(tokio::time::sleep(duration))
        .await
        .is_some()
}
