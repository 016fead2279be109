//! The only place that knows the AWS SDKs: adapters of the ports, and their set-up.

pub mod calls;
pub mod dynamodb;
pub mod event_store;
pub mod eventbridge;
pub mod idempotency;
pub mod notifications;
pub mod parking;
pub mod read_models;
pub mod redrive;
pub mod setup;
pub mod sqs;

pub use dynamodb::{DynamoDbLedger, TableNames};
pub use event_store::DynamoDbEventStore;
pub use eventbridge::EventBridgePublisher;
pub use idempotency::DynamoDbIdempotencyStore;
pub use notifications::DynamoDbInbox;
pub use parking::{DynamoDbJournal, DynamoDbParking};
pub use read_models::DynamoDbReadModels;
pub use redrive::{EventBridgeRules, SqsRedriveQueues};
pub use setup::{SetupError, sdk_config, sdk_config_or_default_chains};
pub use sqs::SqsDeadLetterQueue;
