//! Stream mappings and shard pollers driven against an in-process fake of the Streams API
//! and of the on-failure queue, invoking `tests/fixtures/fake-runtime.sh` (a Runtime API client
//! in bash) through real function instances. The fake behaves as DynamoDB Local was seen to:
//! a closed shard's last GetRecords has no next iterator; an open shard's always has one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, Record};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{CheckpointStore, ShardCheckpoint};
use super::event::tests::sdk_record;
use super::mapping::StreamMapping;
use super::on_failure::OnFailureDestination;
use super::poller::{MappingContext, ShardEnd, ShardPoller};
use super::streams::{IteratorPosition, RecordsPage, Shard, StreamsApi, StreamsError};
use crate::instance::FunctionInstance;
use crate::test_support::{ScriptFunction, scratch_directory};
use crate::wiring::StreamTrigger;

mod dynamodb_local;

const TABLE_NAME: &str = "paysaga-local-payments";
const STREAM_ARN: &str = "arn:aws:dynamodb:ddblocal:000000000000:table/paysaga-local-payments/stream/2026-12-06T10:06:04.804";
const MAPPING: &str = "event-relay/PaymentsTable";
const ON_FAILURE_QUEUE: &str = "http://127.0.0.1:4566/000000000000/event-relay-failures";
/// The template's PaymentLog filter.
const PAYMENT_LOG_FILTER: &str = r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"step": {"S": ["REQUESTED", "COMPLETED", "FAILED"]}}}}"#;
const DEADLINE: Duration = Duration::from_secs(20);

fn sequence_number(number: u32) -> String {
    format!("{number:021}")
}

/// A payment log entry; `note` carries words the fake runtime acts on (`fail`, `slow`, ...).
fn log_entry(number: u32, event_name: OperationType, step: &str, note: &str) -> Record {
    let image = HashMap::from([
        (
            "payment_id".to_owned(),
            AttributeValue::S(format!("p-{number}")),
        ),
        ("step".to_owned(), AttributeValue::S(step.to_owned())),
        ("note".to_owned(), AttributeValue::S(note.to_owned())),
    ]);
    let image = (event_name != OperationType::Remove).then_some(image);
    sdk_record(&sequence_number(number), event_name, image)
}

fn requested(number: u32, note: &str) -> Record {
    log_entry(number, OperationType::Insert, "REQUESTED", note)
}

#[derive(Debug, Clone)]
struct FakeShard {
    shard: Shard,
    records: Vec<Record>,
}

/// DynamoDB Streams in memory: one table, its latest stream, iterators `<shard>|<index>`.
#[derive(Debug, Default)]
struct FakeStreams {
    state: Mutex<FakeStreamsState>,
}

#[derive(Debug, Default)]
struct FakeStreamsState {
    stream_arn: Option<String>,
    shards: Vec<FakeShard>,
    /// GetShardIterator positions asked for, with their shard.
    positions: Vec<(String, IteratorPosition)>,
}

impl FakeStreams {
    fn with_stream(stream_arn: &str) -> Arc<Self> {
        let fake = Arc::new(FakeStreams::default());
        fake.state().stream_arn = Some(stream_arn.to_owned());
        fake
    }

    fn state(&self) -> MutexGuard<'_, FakeStreamsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add_shard(&self, shard_id: &str, parent: Option<&str>) {
        self.state().shards.push(FakeShard {
            shard: Shard {
                shard_id: shard_id.to_owned(),
                parent_shard_id: parent.map(str::to_owned),
                closed: false,
            },
            records: Vec::new(),
        });
    }

    fn with_shard(&self, shard_id: &str, change: impl FnOnce(&mut FakeShard)) {
        let mut state = self.state();
        let shard = state
            .shards
            .iter_mut()
            .find(|shard| shard.shard.shard_id == shard_id)
            .expect("the test added this shard");
        change(shard);
    }

    fn put(&self, shard_id: &str, record: Record) {
        self.with_shard(shard_id, |shard| shard.records.push(record));
    }

    fn close(&self, shard_id: &str) {
        self.with_shard(shard_id, |shard| shard.shard.closed = true);
    }

    fn positions(&self) -> Vec<(String, IteratorPosition)> {
        self.state().positions.clone()
    }
}

impl StreamsApi for Arc<FakeStreams> {
    async fn latest_stream_arn(&self, table_name: &str) -> Result<Option<String>, StreamsError> {
        assert_eq!(table_name, TABLE_NAME);
        Ok(self.state().stream_arn.clone())
    }

    async fn shards(&self, stream_arn: &str) -> Result<Vec<Shard>, StreamsError> {
        let state = self.state();
        if state.stream_arn.as_deref() != Some(stream_arn) {
            return Err(StreamsError::NotFound(stream_arn.to_owned()));
        }
        Ok(state
            .shards
            .iter()
            .map(|shard| shard.shard.clone())
            .collect())
    }

    async fn shard_iterator(
        &self,
        _stream_arn: &str,
        shard_id: &str,
        position: &IteratorPosition,
    ) -> Result<Option<String>, StreamsError> {
        let mut state = self.state();
        state
            .positions
            .push((shard_id.to_owned(), position.clone()));
        let shard = state
            .shards
            .iter()
            .find(|shard| shard.shard.shard_id == shard_id)
            .ok_or_else(|| StreamsError::NotFound(shard_id.to_owned()))?;
        let index = match position {
            IteratorPosition::TrimHorizon => 0,
            IteratorPosition::Latest => shard.records.len(),
            IteratorPosition::AfterSequenceNumber(after) => {
                let found = shard.records.iter().position(|record| {
                    record
                        .dynamodb
                        .as_ref()
                        .and_then(|change| change.sequence_number.as_deref())
                        == Some(after.as_str())
                });
                // DynamoDB Local answers an unknown sequence number with InternalFailure.
                found.ok_or_else(|| StreamsError::Unavailable("InternalFailure".to_owned()))? + 1
            }
        };
        Ok(Some(format!("{shard_id}|{index}")))
    }

    async fn records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, StreamsError> {
        let (shard_id, index) = iterator.split_once('|').expect("a fake iterator");
        let index: usize = index.parse().expect("a fake iterator");
        let state = self.state();
        let shard = state
            .shards
            .iter()
            .find(|shard| shard.shard.shard_id == shard_id)
            .ok_or_else(|| StreamsError::NotFound(shard_id.to_owned()))?;
        let end = shard
            .records
            .len()
            .min(index + usize::try_from(limit).expect("positive"));
        let next_iterator = if shard.shard.closed && end == shard.records.len() {
            None
        } else {
            Some(format!("{shard_id}|{end}"))
        };
        Ok(RecordsPage {
            records: shard.records[index..end].to_vec(),
            next_iterator,
        })
    }
}

/// The on-failure queue: what was sent to it.
#[derive(Debug, Default)]
struct FakeQueue {
    sent: Mutex<Vec<(String, Value)>>,
}

impl FakeQueue {
    fn sent(&self) -> Vec<(String, Value)> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl OnFailureDestination for Arc<FakeQueue> {
    async fn send(&self, queue_url: &str, record: String) -> Result<(), String> {
        let record = serde_json::from_str(&record).map_err(|error| error.to_string())?;
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((queue_url.to_owned(), record));
        Ok(())
    }
}

fn trigger(settings: Value) -> StreamTrigger {
    let mut trigger = serde_json::json!({
        "table": "PaymentsTable",
        "table_name": TABLE_NAME,
        "starting_position": "TRIM_HORIZON",
        "batch_size": 100,
        "report_batch_item_failures": true,
        "on_failure_queue_url": ON_FAILURE_QUEUE,
    });
    if let (Some(trigger), Value::Object(settings)) = (trigger.as_object_mut(), settings) {
        trigger.extend(settings);
    }
    serde_json::from_value(trigger).expect("a valid trigger")
}

/// A function (the fake runtime, 10 s timeout), the fakes and a checkpoint file, for one test.
struct Harness {
    function: ScriptFunction,
    streams: Arc<FakeStreams>,
    queue: Arc<FakeQueue>,
    checkpoints: Arc<CheckpointStore>,
    _scratch: tempfile::TempDir,
}

impl Harness {
    fn new(function: ScriptFunction) -> Self {
        let scratch = scratch_directory();
        let checkpoints = CheckpointStore::open(scratch.path().join("stream-checkpoints.json"))
            .expect("no checkpoints yet");
        let streams = FakeStreams::with_stream(STREAM_ARN);
        streams.add_shard("shardId-1", None);
        Harness {
            function,
            streams,
            queue: Arc::new(FakeQueue::default()),
            checkpoints: Arc::new(checkpoints),
            _scratch: scratch,
        }
    }

    fn with_fake_runtime() -> Self {
        let mut function = ScriptFunction::fake_runtime("event-relay");
        function.function.timeout = Duration::from_secs(10);
        Self::new(function)
    }

    fn context(
        &self,
        trigger: StreamTrigger,
    ) -> Arc<MappingContext<Arc<FakeStreams>, Arc<FakeQueue>>> {
        Arc::new(MappingContext {
            streams: Arc::clone(&self.streams),
            on_failure: Arc::clone(&self.queue),
            checkpoints: Arc::clone(&self.checkpoints),
            filters: trigger.filter_patterns().expect("valid filters"),
            trigger,
            mapping: MAPPING.to_owned(),
            function_arn: self.function.function.arn.clone(),
            region: "us-east-1".to_owned(),
        })
    }

    /// Reads shard `shardId-1` from its start with a poller of its own, until it ends.
    async fn poll_shard(&self, trigger: StreamTrigger) -> ShardEnd {
        let label = self.function.function.name.clone();
        let instance = FunctionInstance::new(
            Arc::new(self.function.function.clone()),
            label,
            self.function.output.clone(),
        );
        let poller = ShardPoller::new(
            self.context(trigger),
            STREAM_ARN.to_owned(),
            "shardId-1".to_owned(),
            IteratorPosition::TrimHorizon,
            instance,
        );
        let ended = tokio::time::timeout(DEADLINE, poller.run(CancellationToken::new())).await;
        ended.expect("the shard is read to its end in time")
    }

    async fn start_mapping(
        &self,
        trigger: StreamTrigger,
        shutdown: &CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let mapping = StreamMapping::start(
            Arc::clone(&self.streams),
            Arc::clone(&self.queue),
            Arc::clone(&self.checkpoints),
            trigger,
            Arc::new(self.function.function.clone()),
            self.function.logs.clone(),
            "us-east-1".to_owned(),
            shutdown.clone(),
        )
        .await
        .expect("the mapping starts");
        tokio::spawn(mapping.run())
    }

    fn invocations(&self) -> Vec<Vec<u64>> {
        invocations(&self.function.log())
    }

    fn checkpoint(&self, shard_id: &str) -> Option<ShardCheckpoint> {
        self.checkpoints
            .shards(MAPPING, STREAM_ARN)
            .get(shard_id)
            .cloned()
    }

    /// Waits until `condition` holds, failing the test at the deadline.
    async fn wait_for(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !condition(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; invocations {:?}; log:\n{}",
                self.invocations(),
                self.function.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The sequence numbers of each invocation's records, in the order of the invocations, from
/// the log of functions running the fake runtime (it prints `event: <event>`).
fn invocations(log: &str) -> Vec<Vec<u64>> {
    log.lines()
        .filter_map(|line| line.split_once("| event: ").map(|(_, event)| event))
        .map(|event| {
            let event: Value = serde_json::from_str(event).expect("the event is JSON");
            event["Records"]
                .as_array()
                .expect("Records")
                .iter()
                .map(|record| {
                    record["dynamodb"]["SequenceNumber"]
                        .as_str()
                        .and_then(|number| number.parse().ok())
                        .expect("a sequence number")
                })
                .collect()
        })
        .collect()
}

fn at(number: u32) -> Option<ShardCheckpoint> {
    Some(ShardCheckpoint {
        sequence_number: Some(sequence_number(number)),
        finished: false,
    })
}

fn finished_at(number: u32) -> Option<ShardCheckpoint> {
    Some(ShardCheckpoint {
        sequence_number: Some(sequence_number(number)),
        finished: true,
    })
}

#[tokio::test]
async fn a_shard_is_read_in_order_filtered_batched_and_checkpointed() {
    let harness = Harness::with_fake_runtime();
    let shard = "shardId-1";
    harness.streams.put(shard, requested(1, ""));
    harness.streams.put(shard, requested(2, ""));
    harness.streams.put(
        shard,
        log_entry(3, OperationType::Insert, "FUNDS_RESERVED", ""),
    );
    harness
        .streams
        .put(shard, log_entry(4, OperationType::Modify, "COMPLETED", ""));
    harness.streams.put(shard, requested(5, ""));
    harness
        .streams
        .put(shard, log_entry(6, OperationType::Insert, "COMPLETED", ""));
    harness
        .streams
        .put(shard, log_entry(7, OperationType::Remove, "", ""));
    harness.streams.close(shard);

    let trigger = trigger(serde_json::json!({
        "batch_size": 2,
        "filters": [PAYMENT_LOG_FILTER],
    }));
    assert_eq!(harness.poll_shard(trigger).await, ShardEnd::Finished);

    // 3, 4 and 7 are filtered out, and count as processed.
    assert_eq!(harness.invocations(), [vec![1, 2], vec![5, 6]]);
    assert_eq!(harness.checkpoint(shard), finished_at(7));
    assert!(harness.queue.sent().is_empty());
    let log = harness.function.log();
    assert!(log.contains(r#""eventSource":"aws:dynamodb""#), "{log}");
}

#[tokio::test]
async fn a_failing_record_is_isolated_by_bisection_and_sent_to_the_on_failure_queue() {
    let harness = Harness::with_fake_runtime();
    let shard = "shardId-1";
    for number in 1..=4 {
        let note = if number == 2 { "asked to fail" } else { "" };
        harness.streams.put(shard, requested(number, note));
    }
    harness.streams.close(shard);

    let trigger = trigger(serde_json::json!({
        "bisect_batch_on_function_error": true,
        "maximum_retry_attempts": 1,
    }));
    assert_eq!(harness.poll_shard(trigger).await, ShardEnd::Finished);

    assert_eq!(
        harness.invocations(),
        [
            vec![1, 2, 3, 4], // fails: split
            vec![1, 2],       // fails: split
            vec![1],          // processed
            vec![2],          // fails
            vec![2],          // fails again: one retry spent, given up on
            vec![3, 4],       // the second half of the first split
        ]
    );
    let sent = harness.queue.sent();
    let [(queue_url, record)] = sent.as_slice() else {
        panic!("one on-failure record: {sent:?}");
    };
    assert_eq!(queue_url, ON_FAILURE_QUEUE);
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(
        record["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:event-relay"
    );
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    let batch = &record["DDBStreamBatchInfo"];
    assert_eq!(batch["shardId"], shard);
    assert_eq!(batch["startSequenceNumber"], sequence_number(2));
    assert_eq!(batch["endSequenceNumber"], sequence_number(2));
    assert_eq!(batch["batchSize"], 1);
    assert_eq!(batch["streamArn"], STREAM_ARN);
    let arrived = batch["approximateArrivalOfFirstRecord"]
        .as_str()
        .and_then(|time| {
            aws_sdk_dynamodbstreams::primitives::DateTime::from_str(
                time,
                aws_sdk_dynamodbstreams::primitives::DateTimeFormat::DateTime,
            )
            .ok()
        })
        .map(|time| time.secs());
    let created = super::event::tests::created_at();
    assert!(
        arrived.is_some_and(|arrived| (created - 5..=created).contains(&arrived)),
        "the first record's creation time: {batch}"
    );
    assert_eq!(harness.checkpoint(shard), finished_at(4));
}

#[tokio::test]
async fn a_partial_failure_checkpoints_before_the_failed_record_and_retries_from_it() {
    let harness = Harness::with_fake_runtime();
    let shard = "shardId-1";
    harness.streams.put(shard, requested(1, ""));
    let reject = format!("reject-item-{}", sequence_number(2));
    harness.streams.put(shard, requested(2, &reject));
    harness.streams.put(shard, requested(3, ""));
    harness.streams.close(shard);

    let trigger = trigger(serde_json::json!({ "maximum_retry_attempts": 1 }));
    assert_eq!(harness.poll_shard(trigger).await, ShardEnd::Finished);

    // 1 is processed; 2 and 3 are retried once (the partial failure was 2's first), then
    // given up on together.
    assert_eq!(harness.invocations(), [vec![1, 2, 3], vec![2, 3]]);
    let sent = harness.queue.sent();
    let [(_, record)] = sent.as_slice() else {
        panic!("one on-failure record: {sent:?}");
    };
    let batch = &record["DDBStreamBatchInfo"];
    assert_eq!(batch["startSequenceNumber"], sequence_number(2));
    assert_eq!(batch["endSequenceNumber"], sequence_number(3));
    assert_eq!(batch["batchSize"], 2);
    // The function answered: no function error.
    assert_eq!(record["responseContext"].get("functionError"), None);
    assert_eq!(harness.checkpoint(shard), finished_at(3));
}

#[tokio::test]
async fn a_function_killed_mid_invocation_gets_the_batch_again_on_a_new_instance() {
    let pids = scratch_directory();
    let pid_file = pids.path().join("pids");
    let fake_runtime =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-runtime.sh");
    // Each process says who it is, then becomes the fake runtime (same process).
    let mut function = ScriptFunction::new(
        "event-relay",
        &format!(
            "echo $$ >> '{}'\nexec '{}'",
            pid_file.display(),
            fake_runtime.display()
        ),
    );
    function.function.timeout = Duration::from_secs(10);
    let harness = Harness::new(function);
    let shard = "shardId-1";
    harness.streams.put(shard, requested(1, "slow to answer"));
    harness.streams.put(shard, requested(2, ""));

    let shutdown = CancellationToken::new();
    let mapping = harness.start_mapping(trigger(Value::Null), &shutdown).await;
    harness
        .wait_for("the first invocation", |harness| {
            !harness.invocations().is_empty()
        })
        .await;
    let first_pid = std::fs::read_to_string(&pid_file).expect("the instance's pid");
    let first_pid: i32 = first_pid.trim().parse().expect("a pid");
    // As `pkill -KILL -x event-relay` would.
    // SAFETY: kill(2) on a process this test started; no memory is involved.
    let killed = unsafe { libc::kill(first_pid, libc::SIGKILL) };
    assert_eq!(killed, 0, "the function process was running");

    harness
        .wait_for("the batch to be processed", |harness| {
            harness.checkpoint(shard) == at(2)
        })
        .await;
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, mapping)
        .await
        .expect("the mapping drains")
        .expect("the mapping task ends");

    // The same batch again, nothing skipped, on a new process.
    assert_eq!(harness.invocations(), [vec![1, 2], vec![1, 2]]);
    let pids: Vec<String> = std::fs::read_to_string(&pid_file)
        .expect("pids")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(harness.queue.sent().is_empty());
    let log = harness.function.log();
    assert!(!log.contains("crashing"), "{log}");
}

#[tokio::test]
async fn a_restarted_mapping_resumes_after_its_checkpoint() {
    let harness = Harness::with_fake_runtime();
    let shard = "shardId-1";
    harness.streams.put(shard, requested(1, ""));
    harness.streams.put(shard, requested(2, ""));

    let shutdown = CancellationToken::new();
    let mapping = harness.start_mapping(trigger(Value::Null), &shutdown).await;
    harness
        .wait_for("the first batch", |harness| {
            harness.checkpoint(shard) == at(2)
        })
        .await;
    shutdown.cancel();
    mapping.await.expect("the mapping stops");

    // Written while local-lambda was down.
    harness.streams.put(shard, requested(3, ""));
    harness.streams.put(shard, requested(4, ""));
    // A new process: the checkpoints come from the file.
    let reopened = CheckpointStore::open(harness.checkpoints.path().to_owned()).expect("reads");
    let harness = Harness {
        checkpoints: Arc::new(reopened),
        ..harness
    };
    let shutdown = CancellationToken::new();
    let mapping = harness.start_mapping(trigger(Value::Null), &shutdown).await;
    harness
        .wait_for("the second batch", |harness| {
            harness.checkpoint(shard) == at(4)
        })
        .await;
    shutdown.cancel();
    mapping.await.expect("the mapping stops");

    assert_eq!(harness.invocations(), [vec![1, 2], vec![3, 4]]);
    let positions = harness.streams.positions();
    assert_eq!(
        positions,
        [
            (shard.to_owned(), IteratorPosition::TrimHorizon),
            (
                shard.to_owned(),
                IteratorPosition::AfterSequenceNumber(sequence_number(2))
            ),
        ]
    );
}

#[tokio::test]
async fn a_child_shard_is_read_from_its_start_once_its_parent_is_finished() {
    let harness = Harness::with_fake_runtime();
    harness.streams.put("shardId-1", requested(1, ""));
    harness
        .streams
        .put("shardId-1", requested(2, "slow to answer"));
    harness.streams.close("shardId-1");
    harness.streams.add_shard("shardId-2", Some("shardId-1"));
    harness.streams.put("shardId-2", requested(3, ""));

    let shutdown = CancellationToken::new();
    let mapping = harness
        .start_mapping(trigger(serde_json::json!({"batch_size": 1})), &shutdown)
        .await;
    harness.streams.put("shardId-2", requested(4, ""));
    harness
        .wait_for("the child's records", |harness| {
            harness.checkpoint("shardId-2") == at(4)
        })
        .await;
    shutdown.cancel();
    mapping.await.expect("the mapping stops");

    // The parent's records first, though the first of them is slow.
    assert_eq!(harness.invocations(), [vec![1], vec![2], vec![3], vec![4]]);
    assert_eq!(harness.checkpoint("shardId-1"), finished_at(2));
    assert!(
        harness
            .streams
            .positions()
            .contains(&("shardId-2".to_owned(), IteratorPosition::TrimHorizon))
    );
}

#[tokio::test]
async fn latest_skips_closed_shards_and_what_open_ones_hold_at_start() {
    let harness = Harness::with_fake_runtime();
    harness.streams.put("shardId-1", requested(1, ""));
    harness.streams.close("shardId-1");
    harness.streams.add_shard("shardId-2", Some("shardId-1"));
    harness.streams.put("shardId-2", requested(2, ""));

    let shutdown = CancellationToken::new();
    let latest = trigger(serde_json::json!({"starting_position": "LATEST"}));
    let mapping = harness.start_mapping(latest, &shutdown).await;
    harness.streams.put("shardId-2", requested(3, ""));
    harness
        .wait_for("the new record", |harness| {
            harness.checkpoint("shardId-2") == at(3)
        })
        .await;
    shutdown.cancel();
    mapping.await.expect("the mapping stops");

    assert_eq!(harness.invocations(), [vec![3]]);
    assert_eq!(
        harness.checkpoint("shardId-1"),
        Some(ShardCheckpoint {
            sequence_number: None,
            finished: true
        })
    );
}

#[tokio::test]
async fn a_missing_stream_stops_the_mapping_at_start_up() {
    let harness = Harness::with_fake_runtime();
    harness.streams.state().stream_arn = None;
    let error = StreamMapping::start(
        Arc::clone(&harness.streams),
        Arc::clone(&harness.queue),
        Arc::clone(&harness.checkpoints),
        trigger(Value::Null),
        Arc::new(harness.function.function.clone()),
        harness.function.logs.clone(),
        "us-east-1".to_owned(),
        CancellationToken::new(),
    )
    .await
    .err()
    .expect("no stream");
    assert!(
        error
            .to_string()
            .contains("table paysaga-local-payments has no stream"),
        "{error}"
    );
}
