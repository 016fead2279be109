//! The only place that knows the AWS SDKs: adapters of the ports, and their set-up.

pub mod calls;
pub mod dynamodb;
pub mod eventbridge;
pub mod parking;
pub mod redrive;
pub mod setup;
pub mod sqs;

pub use dynamodb::{DynamoDbLedger, TableNames};
pub use eventbridge::EventBridgePublisher;
pub use parking::{DynamoDbJournal, DynamoDbParking};
pub use redrive::{EventBridgeRules, SqsRedriveQueues};
pub use setup::{SetupError, sdk_config};
pub use sqs::SqsDeadLetterQueue;
