// The crate's documentation is its README, whose examples run as doctests: a README that
// drifts from the code fails `cargo test -p lambda-toolkit` (its testing helpers' example with
// `--features testing`, as `cargo test --workspace` builds the crate).
#![doc = include_str!("../README.md")]

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
