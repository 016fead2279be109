//! local-lambda plays AWS Lambda on a developer's machine, wired by `.local/wiring.json`
//! (generated from `infra/template.yaml`):
//!
//! - functions with HTTP routes run as local HTTP servers ([`http_function`]), several of
//!   them behind one address by route, as one API Gateway HTTP API ([`http_front`]);
//! - every other function runs as its real binary behind a Lambda Runtime API per execution
//!   environment ([`runtime_api`], [`instance`]), invoked by
//!   - its SQS triggers, polled as the event source mapping does ([`sqs_event_source`]), each
//!     poller with an instance of its own;
//!   - its DynamoDB stream triggers, read from DynamoDB Local's Streams API as the event source
//!     mapping does ([`dynamodb_stream_event_source`]: filters, batches, partial batch
//!     responses, retries and bisection, the on-failure queue, checkpoints kept across
//!     restarts in `.local/stream-checkpoints.json`), a poller with an instance of its own per
//!     shard;
//!   - the Lambda Invoke API on loopback ([`invoke_api`]: `aws lambda invoke`,
//!     `cargo lambda invoke`, an SDK with `AWS_ENDPOINT_URL_LAMBDA`), and
//!   - its EventBridge schedules' `rate(...)` expressions ([`schedule`]),
//!
//!   both through the function's on-demand pool ([`on_demand`]): up to four environments,
//!   started on first use, reused when idle.
//!
//! [`supervisor`] starts all of it and drains it on shutdown. [`runtime_api`] is usable on
//! its own, e.g. to time cold starts (spawn to first `/next`).
//!
//! [`wiring`] is the wiring file's one reader: the bench and the integration tests use it as a
//! library, and scripts ask `local-lambda wiring binaries|table|variable|environments`
//! ([`cli::WiringFact`]) rather than parse the file.

pub mod aws;
pub mod backoff;
pub mod cli;
pub mod dynamodb_stream_event_source;
pub mod http_front;
pub mod http_function;
pub mod instance;
pub mod invoke_api;
pub mod local_function;
pub mod on_demand;
pub mod process;
pub mod runtime_api;
pub mod schedule;
pub mod schedule_expression;
pub mod sqs_event_source;
pub mod supervisor;
#[cfg(test)]
pub(crate) mod test_support;
pub mod wiring;
