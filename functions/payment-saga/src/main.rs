//! Start-up of the `payment-saga` function: configuration, clients, tracing; then run.

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
use lambda_toolkit::sqs_dead_letters::{DeadLettersBySource, parse_routes};
use payment_saga::{SagaFunction, handle};
use paysaga_aws::config::{Resources, number_or, saga_settings_from_env};
use paysaga_aws::{DynamoDbLedger, EventBridgePublisher};
use paysaga_processor::ProcessorConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let resources = Resources::from_env()?;
    let processor = Arc::new(
        ProcessorConfig::from_env()?
            .processor()
            .context("cannot build the payment processor's HTTP client")?,
    );
    let guarded = processor.clone();
    let config = sdk_config().await.context("cannot set up the AWS SDK")?;
    let function = SagaFunction {
        payments: Arc::new(DynamoDbLedger::from_config(&config, resources.tables)),
        events: Arc::new(EventBridgePublisher::from_config(
            &config,
            resources.event_bus_name,
        )),
        processor,
        settings: saga_settings_from_env()?,
        max_receive_count: u32::try_from(number_or("MAX_RECEIVE_COUNT", 0)?).unwrap_or(u32::MAX),
        dead_letters: dead_letters(|url| {
            Arc::new(SqsDeadLetterQueue::from_config(&config, url)) as Arc<dyn DeadLetterQueue>
        })?,
        metrics: MetricsSink::stdout("payment-saga"),
        circuit: Some(Arc::new(move || guarded.state())),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| handle(&function, event)))
        .await
        .map_err(|error| anyhow::anyhow!(error))
}

/// Where a message given up on goes: the dead-letter queue of the queue it came from
/// (`DEAD_LETTER_QUEUES`: `<queue ARN>=<DLQ URL>` pairs, one per trigger), or the one
/// `DEAD_LETTER_QUEUE_URL`; without either, the queues' redrive policies move it, unrecorded.
fn dead_letters(
    queue: impl Fn(String) -> Arc<dyn DeadLetterQueue>,
) -> anyhow::Result<Option<Arc<dyn DeadLetterQueue>>> {
    if let Ok(routes) = std::env::var("DEAD_LETTER_QUEUES") {
        let routes = parse_routes("DEAD_LETTER_QUEUES", &routes)?;
        let by_source = routes.into_iter().map(|(arn, url)| (arn, queue(url)));
        return Ok(Some(Arc::new(DeadLettersBySource::new(by_source))));
    }
    Ok(std::env::var("DEAD_LETTER_QUEUE_URL").ok().map(queue))
}
