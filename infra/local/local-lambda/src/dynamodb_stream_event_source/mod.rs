//! The DynamoDB Streams event source mapping, played as AWS plays it: per `Type: DynamoDB`
//! trigger, a [`StreamMapping`] finds the table's stream and keeps a [`ShardPoller`] per
//! readable shard, each with a function instance of its own. A poller reads its shard in
//! order (an empty shard four times a second), lets the trigger's filters pick the records
//! ([`filter`]), gathers a batch within the batching window, invokes the function with the
//! DynamoDB Streams event ([`event`]), and checkpoints what was processed ([`settlement`]:
//! partial batch responses, retries, bisection, the on-failure destination ([`on_failure`])
//! once retries are exhausted). Checkpoints are kept in a file beside the wiring
//! ([`checkpoint`]), so a restarted local-lambda goes on where it stopped.
//!
//! The Streams calls go through a narrow trait ([`streams::StreamsApi`]): DynamoDB Local's
//! Streams API, on the same endpoint as its tables, or a test's fake.

pub mod checkpoint;
pub mod event;
pub mod filter;
pub mod mapping;
pub mod on_failure;
pub mod poller;
pub mod settlement;
pub mod streams;
#[cfg(test)]
mod tests;

pub use checkpoint::{CheckpointStore, checkpoint_file_beside};
pub use mapping::{StreamMapping, StreamMappingError};
pub use poller::ShardPoller;
