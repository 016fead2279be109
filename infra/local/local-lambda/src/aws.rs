//! The clients the pollers use, pointed at the local stack: SQS (queues and on-failure
//! destinations) and DynamoDB Streams (on DynamoDB's endpoint, as DynamoDB Local serves both).

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, Region};

use crate::wiring::LocalAws;

pub async fn sqs_client(aws: &LocalAws) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config(aws, &aws.endpoint_url).await)
}

/// The Streams API of DynamoDB Local: DynamoDB's own endpoint when the wiring has one.
pub async fn dynamodb_streams_client(aws: &LocalAws) -> aws_sdk_dynamodbstreams::Client {
    let endpoint = aws
        .dynamodb_endpoint_url
        .as_deref()
        .unwrap_or(&aws.endpoint_url);
    aws_sdk_dynamodbstreams::Client::new(&sdk_config(aws, endpoint).await)
}

/// The SDK configuration of a client of the local stack at `endpoint_url`, with its
/// credentials and region.
pub async fn sdk_config(aws: &LocalAws, endpoint_url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(aws.region.clone()))
        .endpoint_url(endpoint_url)
        .credentials_provider(Credentials::new(
            &aws.access_key_id,
            &aws.secret_access_key,
            None,
            None,
            "local-lambda",
        ))
        .load()
        .await
}

/// An SDK error and its causes on one line ("dispatch failure: io error: ... refused").
pub fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut description = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        description.push_str(": ");
        description.push_str(&error.to_string());
        cause = error.source();
    }
    description
}
