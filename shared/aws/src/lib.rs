//! The AWS adapters of paysaga's ports (DynamoDB, EventBridge, SQS), and [`config`]: the
//! environment the template gives each function. The SDK's set-up and the adapters of the
//! toolkit's own ports are `lambda_toolkit::aws`'s.

pub mod config;
pub mod deadlines;
pub mod doors;
pub mod dynamodb;
pub mod event_messages;
pub mod event_store;
pub mod eventbridge;
pub mod notifications;
pub mod outbox;
pub mod parking;
pub mod read_models;
pub mod redrive;

pub use config::METRICS_NAMESPACE;
pub use deadlines::{DeadlineCheck, SqsDeadlineChecks};
pub use dynamodb::{DynamoDbLedger, TableNames};
pub use event_messages::{EventHandler, EventMessages};
pub use event_store::DynamoDbEventStore;
pub use eventbridge::EventBridgePublisher;
pub use notifications::DynamoDbInbox;
pub use outbox::{DynamoDbOutbox, OutboxRecord};
pub use parking::{DynamoDbJournal, DynamoDbParking};
pub use read_models::DynamoDbReadModels;
pub use redrive::{EventBridgeRules, SqsRedriveQueues};
