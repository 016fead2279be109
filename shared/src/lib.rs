//! paysaga: a serverless payments backbone on AWS.
//!
//! - [`domain`]: money, wallets, payments, the saga's steps and the event contracts — plain
//!   Rust, no AWS types, no I/O.
//! - [`ports`]: the small traits the domain needs (a wallet store, a payment log, an event
//!   publisher).
//! - [`service`]: what the functions do, written once against the ports.
//! - [`aws`]: the AWS adapters of the ports; [`memory`]: in-memory ones, for tests.
//! - [`redrive`]: the DLQ redrive — what goes back, what is parked, and the replay of parked
//!   messages.
//! - [`sqs_batch`]: SQS batch handling with partial batch failures; [`config`]: the
//!   environment a function is given; [`logging`]: the functions' log set-up; [`metrics`]:
//!   CloudWatch metrics in the Embedded Metric Format; [`trace`]: one X-Ray trace id across
//!   every hop (HTTP, EventBridge, SQS) and on every log line; [`panics`]: a panic as one unit
//!   of work's failure (one SQS message's), redacted.

pub mod aws;
pub mod config;
pub mod domain;
pub mod faults;
pub mod idempotency;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod panics;
pub mod ports;
pub mod processor;
pub mod read_models;
pub mod redact;
pub mod redrive;
pub mod service;
pub mod sqs_batch;
pub mod sqs_dead_letters;
pub mod trace;
