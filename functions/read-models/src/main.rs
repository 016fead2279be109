//! Start-up of the `read-models` function: configuration, clients, tracing; then run.

// An SQS consumer: one message's panic fails that message alone only in a binary that unwinds
// (`lambda_toolkit::sqs_batch`); with panic = "abort" it would fail the whole batch.
#[cfg(panic = "abort")]
compile_error!(
    "SQS consumers unwind on a panic: build with the release profile, not release-abort"
);

use std::sync::Arc;

use anyhow::Context;
use lambda_runtime::{LambdaEvent, service_fn};
use lambda_toolkit::aws::{SqsDeadLetterQueue, sdk_config};
use lambda_toolkit::metrics::MetricsSink;
use lambda_toolkit::sqs_batch::DeadLetterQueue;
use paysaga_aws::DynamoDbReadModels;
use paysaga_aws::config::number_or;
use read_models::{ReadModelsFunction, handle};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let table = std::env::var("READ_MODELS_TABLE")
        .context("READ_MODELS_TABLE must be set (the template sets it)")?;
    let config = sdk_config().await.context("cannot set up the AWS SDK")?;
    let function = ReadModelsFunction {
        read_models: Arc::new(DynamoDbReadModels::from_config(&config, table)),
        max_receive_count: u32::try_from(number_or("MAX_RECEIVE_COUNT", 0)?).unwrap_or(u32::MAX),
        dead_letters: std::env::var("DEAD_LETTER_QUEUE_URL").ok().map(|url| {
            Arc::new(SqsDeadLetterQueue::from_config(&config, url)) as Arc<dyn DeadLetterQueue>
        }),
        metrics: MetricsSink::stdout("read-models"),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| handle(&function, event)))
        .await
        .map_err(|error| anyhow::anyhow!(error))
}
