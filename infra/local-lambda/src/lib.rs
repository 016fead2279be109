//! local-lambda plays AWS Lambda on a developer's machine: it runs each function binary
//! behind its own Lambda Runtime API, polls SQS for the functions' SQS triggers as the event
//! source mapping does, and starts functions with HTTP routes as local HTTP servers, all
//! wired by `.local/wiring.json` (generated from `infra/template.yaml`).
//!
//! [`runtime_api`] is usable on its own, e.g. to time cold starts (spawn to first `/next`).

pub mod aws;
pub mod backoff;
pub mod cli;
pub mod http_function;
pub mod instance;
pub mod local_function;
pub mod process;
pub mod runtime_api;
pub mod sqs_event_source;
pub mod supervisor;
#[cfg(test)]
pub(crate) mod test_support;
pub mod wiring;
