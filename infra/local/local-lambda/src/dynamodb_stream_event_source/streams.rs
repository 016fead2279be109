//! The DynamoDB Streams calls a stream mapping makes, behind a narrow trait: DynamoDB Local's
//! Streams API (the same endpoint as its tables) through the SDK, or a test's fake.

use std::future::Future;

use aws_sdk_dynamodbstreams::error::SdkError;
use aws_sdk_dynamodbstreams::operation::describe_stream::DescribeStreamError;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::operation::list_streams::ListStreamsError;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};

use crate::aws::describe_error;

/// Why a Streams call failed, by what the poller does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamsError {
    /// The stream (or the shard) does not exist: its table was deleted, or created again.
    #[error("not found: {0}")]
    NotFound(String),
    /// The shard iterator is older than 15 minutes: get a new one.
    #[error("the shard iterator expired")]
    IteratorExpired,
    /// The records asked for are past the stream's 24 hours: read from the oldest one left.
    #[error("the records were trimmed from the stream: {0}")]
    Trimmed(String),
    /// Anything else (DynamoDB Local down, throttled, an internal error): try again later.
    #[error("{0}")]
    Unavailable(String),
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorPosition {
    TrimHorizon,
    Latest,
    AfterSequenceNumber(String),
}

impl std::fmt::Display for IteratorPosition {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IteratorPosition::TrimHorizon => formatter.write_str("TRIM_HORIZON"),
            IteratorPosition::Latest => formatter.write_str("LATEST"),
            IteratorPosition::AfterSequenceNumber(sequence_number) => {
                write!(formatter, "AFTER_SEQUENCE_NUMBER {sequence_number}")
            }
        }
    }
}

/// One shard of a stream, as DescribeStream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub shard_id: String,
    /// The shard this one continues: its records come first.
    pub parent_shard_id: Option<String>,
    /// No record will be added to it (it has an `EndingSequenceNumber`).
    pub closed: bool,
}

/// One GetRecords answer.
#[derive(Debug, Clone, Default)]
pub struct RecordsPage {
    pub records: Vec<Record>,
    /// `None` once a closed shard has been read to its end.
    pub next_iterator: Option<String>,
}

/// The Streams calls a mapping makes.
pub trait StreamsApi: Send + Sync + 'static {
    /// The ARN of the table's latest stream; `None` when it has none, or does not exist.
    fn latest_stream_arn(
        &self,
        table_name: &str,
    ) -> impl Future<Output = Result<Option<String>, StreamsError>> + Send;

    /// Every shard of the stream, parents before children as DynamoDB lists them.
    fn shards(
        &self,
        stream_arn: &str,
    ) -> impl Future<Output = Result<Vec<Shard>, StreamsError>> + Send;

    /// An iterator at `position`; `None` when there is nothing more to read from the shard.
    fn shard_iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        position: &IteratorPosition,
    ) -> impl Future<Output = Result<Option<String>, StreamsError>> + Send;

    /// Up to `limit` records from the iterator on.
    fn records(
        &self,
        iterator: &str,
        limit: i32,
    ) -> impl Future<Output = Result<RecordsPage, StreamsError>> + Send;
}

impl StreamsApi for aws_sdk_dynamodbstreams::Client {
    /// ListStreams rather than DescribeTable: one SDK for the whole mapping. A table whose
    /// stream was disabled and enabled again, or that was created again, has several streams;
    /// the latest is the one with the latest label (its creation time).
    async fn latest_stream_arn(&self, table_name: &str) -> Result<Option<String>, StreamsError> {
        let mut latest: Option<(String, String)> = None;
        let mut start_after: Option<String> = None;
        loop {
            let page = self
                .list_streams()
                .table_name(table_name)
                .set_exclusive_start_stream_arn(start_after.take())
                .send()
                .await
                .map_err(list_streams_error)?;
            for stream in page.streams() {
                let (Some(arn), Some(label)) = (stream.stream_arn(), stream.stream_label()) else {
                    continue;
                };
                if latest
                    .as_ref()
                    .is_none_or(|(_, latest)| label > latest.as_str())
                {
                    latest = Some((arn.to_owned(), label.to_owned()));
                }
            }
            match page.last_evaluated_stream_arn {
                Some(last) => start_after = Some(last),
                None => return Ok(latest.map(|(arn, _)| arn)),
            }
        }
    }

    async fn shards(&self, stream_arn: &str) -> Result<Vec<Shard>, StreamsError> {
        let mut shards = Vec::new();
        let mut start_after: Option<String> = None;
        loop {
            let output = self
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start_after.take())
                .send()
                .await
                .map_err(describe_stream_error)?;
            let Some(description) = output.stream_description else {
                return Ok(shards);
            };
            shards.extend(description.shards().iter().filter_map(|shard| {
                Some(Shard {
                    shard_id: shard.shard_id.clone()?,
                    parent_shard_id: shard.parent_shard_id.clone(),
                    closed: shard
                        .sequence_number_range()
                        .is_some_and(|range| range.ending_sequence_number().is_some()),
                })
            }));
            match description.last_evaluated_shard_id {
                Some(last) => start_after = Some(last),
                None => return Ok(shards),
            }
        }
    }

    async fn shard_iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        position: &IteratorPosition,
    ) -> Result<Option<String>, StreamsError> {
        let request = self
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id);
        let request = match position {
            IteratorPosition::TrimHorizon => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            IteratorPosition::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            IteratorPosition::AfterSequenceNumber(sequence_number) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence_number),
        };
        let output = request.send().await.map_err(shard_iterator_error)?;
        Ok(output.shard_iterator)
    }

    async fn records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, StreamsError> {
        let output = self
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(records_error)?;
        Ok(RecordsPage {
            records: output.records.unwrap_or_default(),
            next_iterator: output.next_shard_iterator,
        })
    }
}

fn unavailable<E>(error: &SdkError<E>) -> StreamsError
where
    E: std::error::Error + 'static,
{
    StreamsError::Unavailable(describe_error(error))
}

fn list_streams_error(error: SdkError<ListStreamsError>) -> StreamsError {
    match error.as_service_error() {
        // ListStreams of a table that does not exist.
        Some(ListStreamsError::ResourceNotFoundException(found)) => {
            StreamsError::NotFound(found.to_string())
        }
        _ => unavailable(&error),
    }
}

fn describe_stream_error(error: SdkError<DescribeStreamError>) -> StreamsError {
    match error.as_service_error() {
        Some(DescribeStreamError::ResourceNotFoundException(found)) => {
            StreamsError::NotFound(found.to_string())
        }
        _ => unavailable(&error),
    }
}

fn shard_iterator_error(error: SdkError<GetShardIteratorError>) -> StreamsError {
    match error.as_service_error() {
        Some(GetShardIteratorError::ResourceNotFoundException(found)) => {
            StreamsError::NotFound(found.to_string())
        }
        Some(GetShardIteratorError::TrimmedDataAccessException(trimmed)) => {
            StreamsError::Trimmed(trimmed.to_string())
        }
        _ => unavailable(&error),
    }
}

fn records_error(error: SdkError<GetRecordsError>) -> StreamsError {
    match error.as_service_error() {
        Some(GetRecordsError::ResourceNotFoundException(found)) => {
            StreamsError::NotFound(found.to_string())
        }
        Some(GetRecordsError::ExpiredIteratorException(_)) => StreamsError::IteratorExpired,
        Some(GetRecordsError::TrimmedDataAccessException(trimmed)) => {
            StreamsError::Trimmed(trimmed.to_string())
        }
        _ => unavailable(&error),
    }
}
