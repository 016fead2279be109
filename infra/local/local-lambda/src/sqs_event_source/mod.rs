//! The SQS event source mapping, played as AWS plays it: pollers long-poll the queue, gather
//! a batch within the batching window, invoke the function with an `SqsEvent`, and delete
//! the messages the function processed; the rest become visible again after the queue's
//! visibility timeout, and the queue's redrive policy moves them to the DLQ in the end.

pub mod event;
pub mod poller;
pub mod settlement;

pub use event::sqs_event;
pub use poller::SqsPoller;
pub use settlement::BatchVerdict;
