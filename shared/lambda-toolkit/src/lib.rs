//! A toolkit for Rust Lambda functions that consume SQS queues and EventBridge rules, and serve
//! HTTP APIs: what every such function needs and nothing of any one application's domain, the
//! way Powertools is for Python and TypeScript.
//!
//! - [`sqs_consumer`]: an SQS-triggered function that says only what it does with one message;
//!   the batch is handled message by message ([`sqs_batch`]), with partial batch failures, a
//!   message given up on sent to its dead-letter queue with the reason, metrics and a span per
//!   message; [`sqs_dead_letters`]: one consumer of several queues, each with its own DLQ;
//!   [`env`]: the function's configuration, read from its environment into a type that lists
//!   the variables it reads; `testing` (feature `testing`): the helpers of consumers' tests.
//! - [`idempotency`]: an operation run once per key under at-least-once delivery, its records
//!   in DynamoDB ([`aws::DynamoDbIdempotencyStore`]).
//! - [`metrics`]: CloudWatch metrics in the Embedded Metric Format; [`logging`]: structured
//!   logs as Lambda's log format asks; [`trace`]: one X-Ray trace id across every hop (HTTP,
//!   EventBridge, SQS) and on every log line; [`panics`]: a panic as one unit of work's failure
//!   (one SQS message's), redacted.
//! - [`aws`]: the AWS SDK set up from the Lambda environment in well under a millisecond, every
//!   request counted, and the DynamoDB and SQS adapters of the above.
//!
//! Secrets and personal data stay out of what it logs: see the `redact` crate.

pub mod aws;
pub mod env;
pub mod idempotency;
pub mod logging;
pub mod metrics;
pub mod panics;
pub mod sqs_batch;
pub mod sqs_consumer;
pub mod sqs_dead_letters;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trace;
