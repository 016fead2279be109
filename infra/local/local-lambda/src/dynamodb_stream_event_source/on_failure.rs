//! The on-failure destination of a stream trigger (`DestinationConfig.OnFailure`, an SQS queue):
//! what AWS sends it about a batch given up on. The record names the batch (shard, first and
//! last sequence numbers), not its data, which stays in the stream for 24 hours.

use std::future::Future;

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde_json::{Value, json};

use crate::aws::describe_error;

/// Where the on-failure records go.
pub trait OnFailureDestination: Send + Sync + 'static {
    /// Sends one record (JSON text) to the queue.
    fn send(
        &self,
        queue_url: &str,
        record: String,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

impl OnFailureDestination for aws_sdk_sqs::Client {
    async fn send(&self, queue_url: &str, record: String) -> Result<(), String> {
        self.send_message()
            .queue_url(queue_url)
            .message_body(record)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| describe_error(&error))
    }
}

/// A batch given up on, and the last invocation that failed it.
#[derive(Debug, Clone)]
pub struct GivenUpBatch<'batch> {
    /// `RetryAttemptsExhausted` or `RecordAgeExceeded`.
    pub condition: &'static str,
    pub request_id: &'batch str,
    pub function_arn: &'batch str,
    pub invocations: u32,
    /// `Unhandled` when the function failed; `None` when it answered with failures.
    pub function_error: Option<&'batch str>,
    pub stream_arn: &'batch str,
    pub shard_id: &'batch str,
    pub first_sequence_number: &'batch str,
    pub last_sequence_number: &'batch str,
    pub first_created: Option<DateTime>,
    pub last_created: Option<DateTime>,
    pub batch_size: usize,
}

/// AWS's on-failure record of a DynamoDB Streams batch (its `DDBStreamBatchInfo`).
pub fn on_failure_record(batch: &GivenUpBatch<'_>, now: DateTime) -> Value {
    let mut response_context = json!({
        "statusCode": 200,
        "executedVersion": "$LATEST",
    });
    if let Some(function_error) = batch.function_error {
        response_context["functionError"] = json!(function_error);
    }
    json!({
        "requestContext": {
            "requestId": batch.request_id,
            "functionArn": batch.function_arn,
            "condition": batch.condition,
            "approximateInvokeCount": batch.invocations,
        },
        "responseContext": response_context,
        "version": "1.0",
        // Milliseconds, as AWS writes it.
        "timestamp": iso8601(now.to_millis().map_or(now, DateTime::from_millis)),
        "DDBStreamBatchInfo": {
            "shardId": batch.shard_id,
            "startSequenceNumber": batch.first_sequence_number,
            "endSequenceNumber": batch.last_sequence_number,
            "approximateArrivalOfFirstRecord": batch.first_created.map(iso8601),
            "approximateArrivalOfLastRecord": batch.last_created.map(iso8601),
            "batchSize": batch.batch_size,
            "streamArn": batch.stream_arn,
        },
    })
}

/// `2019-11-14T00:13:49.717Z`.
fn iso8601(time: DateTime) -> String {
    // Dates between years 0 and 9999 always format.
    time.fmt(Format::DateTime).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_has_the_shape_aws_sends() {
        let batch = GivenUpBatch {
            condition: "RetryAttemptsExhausted",
            request_id: "316aa6d0-8154-4e8a-9af7-85d5f4a6bc81",
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:event-relay",
            invocations: 3,
            function_error: Some("Unhandled"),
            stream_arn: "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-12-06T10:06:04.804",
            shard_id: "shardId-00000001796551564844-24886fd9",
            first_sequence_number: "000000000000000000003",
            last_sequence_number: "000000000000000000004",
            first_created: Some(DateTime::from_secs(1_573_690_399)),
            last_created: Some(DateTime::from_secs(1_573_690_400)),
            batch_size: 2,
        };
        let record = on_failure_record(&batch, DateTime::from_millis(1_573_690_429_717));
        assert_eq!(
            record,
            json!({
                "requestContext": {
                    "requestId": "316aa6d0-8154-4e8a-9af7-85d5f4a6bc81",
                    "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:event-relay",
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": 3
                },
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled"
                },
                "version": "1.0",
                "timestamp": "2019-11-14T00:13:49.717Z",
                "DDBStreamBatchInfo": {
                    "shardId": "shardId-00000001796551564844-24886fd9",
                    "startSequenceNumber": "000000000000000000003",
                    "endSequenceNumber": "000000000000000000004",
                    "approximateArrivalOfFirstRecord": "2019-11-14T00:13:19Z",
                    "approximateArrivalOfLastRecord": "2019-11-14T00:13:20Z",
                    "batchSize": 2,
                    "streamArn": "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-12-06T10:06:04.804"
                }
            })
        );
        let answered = GivenUpBatch {
            function_error: None,
            ..batch
        };
        let record = on_failure_record(&answered, DateTime::from_secs_and_nanos(0, 123_456_789));
        assert_eq!(record["responseContext"].get("functionError"), None);
        assert_eq!(record["timestamp"], "1970-01-01T00:00:00.123Z");
    }
}
