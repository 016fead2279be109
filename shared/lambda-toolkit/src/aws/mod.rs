//! The AWS side of the toolkit: the SDK's set-up ([`setup`]), every request counted
//! ([`calls`]), DynamoDB helpers ([`dynamodb`]), and the adapters of the toolkit's own ports
//! (the idempotency store, an SQS dead-letter queue, a message's delayed redelivery).

pub mod calls;
pub mod delays;
pub mod dynamodb;
pub mod idempotency;
pub mod setup;
pub mod sqs;

pub use idempotency::DynamoDbIdempotencyStore;
pub use setup::{SetupError, sdk_config, sdk_config_or_default_chains};
pub use sqs::{SqsDeadLetterQueue, dead_letter_queues, sqs_consumer};
