//! Start-up of the `read-models` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use lambda_toolkit::aws::{sdk_config, sqs_consumer};
use lambda_toolkit::metrics::MetricsSink;
use paysaga_aws::{DynamoDbReadModels, EventMessages, METRICS_NAMESPACE};
use read_models::{Config, ReadModels};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let sdk = sdk_config().await?;
    let read_models = Arc::new(DynamoDbReadModels::from_config(
        &sdk,
        config.read_models_table,
    ));
    let handler = EventMessages(ReadModels { read_models });
    let metrics = MetricsSink::stdout(METRICS_NAMESPACE, "read-models");
    let consumer = sqs_consumer(handler, metrics, &config.consumer, &sdk);
    consumer.run().await.map_err(anyhow::Error::from_boxed)
}
