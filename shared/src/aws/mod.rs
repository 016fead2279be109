//! The only place that knows the AWS SDKs: adapters of the ports, and their set-up.

pub mod calls;
pub mod dynamodb;
pub mod eventbridge;
pub mod parking;
pub mod redrive;
pub mod sqs;

pub use dynamodb::{DynamoDbLedger, TableNames};
pub use eventbridge::EventBridgePublisher;
pub use parking::{DynamoDbJournal, DynamoDbParking};
pub use redrive::{EventBridgeRules, SqsRedriveQueues};
pub use sqs::SqsDeadLetterQueue;

/// The SDK configuration of the environment: credentials, region, and endpoints (including
/// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_DYNAMODB`, which point it at the local stack).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
