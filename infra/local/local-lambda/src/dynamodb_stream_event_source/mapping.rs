//! A stream mapping: one `Type: DynamoDB` trigger of a function, played as AWS plays it. It
//! finds the table's latest stream and keeps one shard poller, with a function instance of its
//! own, per shard that can be read: a child shard is read once its parent is finished (closed
//! and read to its end). It describes the stream again every few seconds, and whenever a shard
//! is finished, to find new shards; when the table is created again (a new stream), it leaves
//! the old stream and reads the new one.
//!
//! Where a shard is first read: after its checkpoint if it has one; from its start if its
//! parent was read (AWS reads a child from `TRIM_HORIZON`); otherwise at the trigger's starting
//! position. `LATEST` applies to the stream as first seen: its closed shards are skipped and
//! its open ones read from their tip; shards that appear later are read from their start.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{CheckpointStore, ShardCheckpoint};
use super::filter::FilterPatternError;
use super::on_failure::OnFailureDestination;
use super::poller::{MappingContext, ShardEnd, ShardPoller};
use super::streams::{IteratorPosition, Shard, StreamsApi, StreamsError};
use crate::instance::{FunctionInstance, StartError};
use crate::local_function::LocalFunction;
use crate::process::{LogSink, ProcessError};
use crate::wiring::{StartingPosition, StreamTrigger};

/// How often the stream is described again to find new shards (DynamoDB opens a new shard
/// every few hours; DynamoDB Local, only when a stream is disabled or its table created again).
pub const REDESCRIBE_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StreamMappingError {
    #[error(
        "table {table_name} has no stream (is the local stack provisioned, and does the \
         template give the table a StreamSpecification?)"
    )]
    NoStream { table_name: String },
    #[error("cannot read the stream of table {table_name}")]
    Streams {
        table_name: String,
        source: StreamsError,
    },
    #[error("a filter of the trigger on {table}")]
    Filter {
        table: String,
        source: FilterPatternError,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Output(#[from] ProcessError),
}

/// The stream being read, and what is known of its shards.
struct ActiveStream {
    arn: String,
    shards: Vec<Shard>,
    running: BTreeSet<String>,
    finished: BTreeSet<String>,
    /// Positions were chosen on this stream once: `LATEST` applies no more.
    positioned: bool,
    /// Stops this stream's pollers (a child of shutdown).
    stop: CancellationToken,
}

/// A poller's task's answer: which stream and shard it read, and how it ended.
type PollerEnd = (String, String, ShardEnd);

pub struct StreamMapping<S, D> {
    context: Arc<MappingContext<S, D>>,
    function: Arc<LocalFunction>,
    logs: LogSink,
    shutdown: CancellationToken,
    stream: ActiveStream,
    pollers: JoinSet<PollerEnd>,
    /// The shard each poller task reads, to tell which one a panic ended.
    poller_shards: HashMap<tokio::task::Id, String>,
    instances_made: usize,
    warned_no_stream: bool,
}

impl<S, D> StreamMapping<S, D> {
    pub fn stream_arn(&self) -> &str {
        &self.stream.arn
    }

    pub fn shard_count(&self) -> usize {
        self.stream.shards.len()
    }

    /// Shards being read now.
    pub fn pollers(&self) -> usize {
        self.stream.running.len()
    }
}

impl<S: StreamsApi, D: OnFailureDestination> StreamMapping<S, D> {
    /// Finds the table's stream and starts the pollers of the shards that can be read now,
    /// their instances started, so a failing function or a missing stream shows at start-up.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        streams: S,
        on_failure: D,
        checkpoints: Arc<CheckpointStore>,
        trigger: StreamTrigger,
        function: Arc<LocalFunction>,
        logs: LogSink,
        region: String,
        shutdown: CancellationToken,
    ) -> Result<Self, StreamMappingError> {
        let filters = trigger
            .filter_patterns()
            .map_err(|source| StreamMappingError::Filter {
                table: trigger.table.clone(),
                source,
            })?;
        let unreadable = |source| StreamMappingError::Streams {
            table_name: trigger.table_name.clone(),
            source,
        };
        let arn = streams
            .latest_stream_arn(&trigger.table_name)
            .await
            .map_err(unreadable)?
            .ok_or_else(|| StreamMappingError::NoStream {
                table_name: trigger.table_name.clone(),
            })?;
        let shards = streams.shards(&arn).await.map_err(unreadable)?;
        let context = Arc::new(MappingContext {
            streams,
            on_failure,
            checkpoints,
            mapping: format!("{}/{}", function.name, trigger.table),
            function_arn: function.arn.clone(),
            region,
            trigger,
            filters,
        });
        let stream = ActiveStream {
            arn,
            shards,
            running: BTreeSet::new(),
            finished: BTreeSet::new(),
            positioned: false,
            stop: shutdown.child_token(),
        };
        let mut mapping = StreamMapping {
            context,
            function,
            logs,
            shutdown,
            stream,
            pollers: JoinSet::new(),
            poller_shards: HashMap::new(),
            instances_made: 0,
            warned_no_stream: false,
        };
        mapping.start_ready_shards(true).await?;
        tracing::info!(
            mapping = %mapping.context.mapping,
            table = %mapping.context.trigger.table_name,
            stream_arn = %mapping.stream.arn,
            shards = mapping.stream.shards.len(),
            reading = ?mapping.stream.running,
            finished = mapping.stream.finished.len(),
            checkpoints = %mapping.context.checkpoints.path().display(),
            "reading the table's stream"
        );
        Ok(mapping)
    }

    /// Runs until shutdown, then lets every poller settle its batch in flight and stop.
    pub async fn run(mut self) {
        let mut redescribe = tokio::time::interval_at(
            tokio::time::Instant::now() + REDESCRIBE_INTERVAL,
            REDESCRIBE_INTERVAL,
        );
        redescribe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(joined) = self.pollers.join_next_with_id(), if !self.pollers.is_empty() => {
                    self.poller_ended(joined).await;
                }
                _ = redescribe.tick() => self.refresh().await,
            }
        }
        while let Some(joined) = self.pollers.join_next_with_id().await {
            if let Err(error) = joined {
                tracing::error!(mapping = %self.context.mapping, %error, "a shard poller failed");
            }
        }
    }

    async fn poller_ended(
        &mut self,
        joined: Result<(tokio::task::Id, PollerEnd), tokio::task::JoinError>,
    ) {
        let (stream_arn, shard_id, end) = match joined {
            Ok((id, ended)) => {
                self.poller_shards.remove(&id);
                ended
            }
            Err(error) => {
                let shard_id = self.poller_shards.remove(&error.id()).unwrap_or_default();
                tracing::error!(
                    mapping = %self.context.mapping,
                    shard = %shard_id,
                    %error,
                    "a shard poller failed; it is started again"
                );
                self.stream.running.remove(&shard_id);
                self.refresh().await;
                return;
            }
        };
        if stream_arn != self.stream.arn {
            return; // a poller of a stream left behind
        }
        self.stream.running.remove(&shard_id);
        match end {
            ShardEnd::Finished => {
                tracing::info!(
                    mapping = %self.context.mapping,
                    shard = %shard_id,
                    "shard closed and read to its end; reading its children"
                );
                self.stream.finished.insert(shard_id);
                self.refresh().await;
            }
            ShardEnd::StreamGone(reason) => {
                tracing::warn!(
                    mapping = %self.context.mapping,
                    shard = %shard_id,
                    %reason,
                    "the stream is gone; looking for the table's new stream"
                );
                self.refresh().await;
            }
            ShardEnd::Shutdown => {}
        }
    }

    /// Follows the table to a new stream if it has one, describes the stream and starts the
    /// pollers of the shards that became readable.
    async fn refresh(&mut self) {
        let table_name = self.context.trigger.table_name.clone();
        match self.context.streams.latest_stream_arn(&table_name).await {
            Ok(Some(arn)) if arn != self.stream.arn => self.follow(arn),
            Ok(Some(_)) => self.warned_no_stream = false,
            Ok(None) => {
                if !self.warned_no_stream {
                    tracing::warn!(
                        mapping = %self.context.mapping,
                        table = %table_name,
                        "the table has no stream any more (deleted?); reading what is left of the last one"
                    );
                    self.warned_no_stream = true;
                }
            }
            Err(error) => {
                tracing::warn!(mapping = %self.context.mapping, %error, "ListStreams failed");
            }
        }
        match self.context.streams.shards(&self.stream.arn).await {
            Ok(shards) => self.stream.shards = shards,
            Err(error) => {
                tracing::warn!(
                    mapping = %self.context.mapping,
                    stream_arn = %self.stream.arn,
                    %error,
                    "DescribeStream failed"
                );
                return;
            }
        }
        if let Err(error) = self.start_ready_shards(false).await {
            tracing::warn!(
                mapping = %self.context.mapping,
                error = %crate::aws::describe_error(&error),
                "cannot start a shard poller; trying again later"
            );
        }
    }

    /// Leaves the current stream (its pollers settle their batch in flight and stop) for the
    /// table's new one, read from the trigger's starting position.
    fn follow(&mut self, arn: String) {
        tracing::info!(
            mapping = %self.context.mapping,
            table = %self.context.trigger.table_name,
            old_stream_arn = %self.stream.arn,
            stream_arn = %arn,
            "the table has a new stream (created again?); reading it"
        );
        self.stream.stop.cancel();
        self.stream = ActiveStream {
            arn,
            shards: Vec::new(),
            running: BTreeSet::new(),
            finished: BTreeSet::new(),
            positioned: false,
            stop: self.shutdown.child_token(),
        };
        self.warned_no_stream = false;
    }

    /// Starts a poller for every shard that can be read now; `start_instances` (at start-up):
    /// start their instances and get their first iterators first, else both happen when they
    /// first read.
    async fn start_ready_shards(
        &mut self,
        start_instances: bool,
    ) -> Result<(), StreamMappingError> {
        for (shard_id, position) in self.shards_to_start() {
            self.instances_made += 1;
            let label = if self.instances_made == 1 {
                format!("{}#{}", self.function.name, self.context.trigger.table)
            } else {
                format!(
                    "{}#{}-{}",
                    self.function.name, self.context.trigger.table, self.instances_made
                )
            };
            let output = self.logs.for_instance(&self.function.name, &label)?;
            let mut instance = FunctionInstance::new(Arc::clone(&self.function), label, output);
            if start_instances {
                instance.start().await?;
            }
            tracing::debug!(
                mapping = %self.context.mapping,
                shard = %shard_id,
                %position,
                "reading a shard"
            );
            let mut poller = ShardPoller::new(
                Arc::clone(&self.context),
                self.stream.arn.clone(),
                shard_id.clone(),
                position,
                instance,
            );
            if start_instances {
                // LATEST means the tip as local-lambda says it is ready.
                poller
                    .position()
                    .await
                    .map_err(|source| StreamMappingError::Streams {
                        table_name: self.context.trigger.table_name.clone(),
                        source,
                    })?;
            }
            let stream_arn = self.stream.arn.clone();
            let stop = self.stream.stop.clone();
            let task = self.pollers.spawn(async move {
                let shard_id = poller.shard_id().to_owned();
                let end = poller.run(stop).await;
                (stream_arn, shard_id, end)
            });
            self.poller_shards.insert(task.id(), shard_id.clone());
            self.stream.running.insert(shard_id);
        }
        Ok(())
    }

    /// The shards to read now that are not read yet, and where to start each.
    fn shards_to_start(&mut self) -> Vec<(String, IteratorPosition)> {
        let checkpoints = self
            .context
            .checkpoints
            .shards(&self.context.mapping, &self.stream.arn);
        let first_sight = !self.stream.positioned && checkpoints.is_empty();
        self.stream.positioned = true;
        let stream = &mut self.stream;
        for (shard_id, checkpoint) in &checkpoints {
            if checkpoint.finished {
                stream.finished.insert(shard_id.clone());
            }
        }
        let described: BTreeSet<&str> = stream
            .shards
            .iter()
            .map(|shard| shard.shard_id.as_str())
            .collect();
        let mut to_start = Vec::new();
        let mut skipped = Vec::new();
        for shard in &stream.shards {
            let id = &shard.shard_id;
            if stream.running.contains(id) || stream.finished.contains(id) {
                continue;
            }
            if let Some(sequence_number) = checkpoints
                .get(id)
                .and_then(|checkpoint| checkpoint.sequence_number.clone())
            {
                to_start.push((
                    id.clone(),
                    IteratorPosition::AfterSequenceNumber(sequence_number),
                ));
                continue;
            }
            let starting_position = self.context.trigger.starting_position;
            if first_sight && starting_position == StartingPosition::Latest {
                if shard.closed {
                    skipped.push(id.clone());
                } else {
                    to_start.push((id.clone(), IteratorPosition::Latest));
                }
                continue;
            }
            let parent = shard.parent_shard_id.as_deref();
            if parent.is_some_and(|parent| {
                described.contains(parent) && !stream.finished.contains(parent)
            }) {
                continue; // its parent's records come first
            }
            let parent_read = parent.is_some_and(|parent| {
                described.contains(parent) || checkpoints.contains_key(parent)
            });
            let position = match (parent_read, starting_position) {
                (true, _) | (false, StartingPosition::TrimHorizon) => IteratorPosition::TrimHorizon,
                (false, StartingPosition::Latest) => IteratorPosition::Latest,
            };
            to_start.push((id.clone(), position));
        }
        for shard_id in skipped {
            // Closed before the mapping first saw the stream at LATEST: nothing to read.
            self.stream.finished.insert(shard_id.clone());
            if let Err(error) = self.context.checkpoints.save(
                &self.context.mapping,
                &self.stream.arn,
                &shard_id,
                ShardCheckpoint {
                    sequence_number: None,
                    finished: true,
                },
            ) {
                tracing::warn!(
                    mapping = %self.context.mapping,
                    error = %crate::aws::describe_error(&error),
                    "checkpoint not saved"
                );
            }
        }
        to_start
    }
}
