//! `make bench`: what paysaga costs to run, measured on this machine against the local stack.
//!
//! - [`cold_start`]: each function's release binary started against a Runtime API served here:
//!   spawn to first `/next` (init), spawn to the first response of a representative event (with
//!   its real calls to the local stack), peak RSS; beside a bare `lambda_runtime` binary.
//! - [`calls`]: the AWS API calls the functions make per payment, counted from the lines the
//!   SDK interceptor (`lambda_toolkit::aws::calls`) logs.
//! - [`cost`]: cost per million payments at AWS list prices, beside Step Functions.
//! - [`relay_feed`]: the event relay's input for the bench's payments, read from their logs.
//! - [`downstream`]: what a payment's events cost past the payment path (the consumers the
//!   stack's rules deliver them to), for the whole system's figures.
//! - [`throughput`]: payments through the API to completion on the local stack, and the
//!   emulator's own call ceiling measured in the same run, each with the CPU each process of
//!   the stack used ([`cpu`]).
//! - [`latency`]: where one payment's time goes, by hop (the api, the relay, the queue, each
//!   saga step, each consumer's lag), unloaded and under the throughput run's load.
//! - [`hot_wallet`]: payments/s into one payee against the same load spread over 100 payees,
//!   simulated on DynamoDB's item model in virtual time, and on the local stack
//!   ([`throughput::measure_hot_wallet`]).
//! - [`ceiling`]: the emulators' ceiling, like for like: every AWS call of a payment, the
//!   whole system's, in a closed loop with no function in between.
//! - [`charts`]: the SVG charts written beside the report.
//! - [`report`]: the Markdown table on stdout and the JSON under `target/bench/`.

pub mod calls;
pub mod ceiling;
pub mod charts;
pub mod cold_start;
pub mod cost;
pub mod cpu;
pub mod downstream;
pub mod hot_wallet;
pub mod instance;
pub mod latency;
pub mod relay_feed;
pub mod report;
pub mod subjects;
pub mod throughput;
