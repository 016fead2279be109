//! Start-up of the `notifications` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use lambda_toolkit::aws::{DynamoDbIdempotencyStore, sdk_config, sqs_consumer};
use lambda_toolkit::metrics::MetricsSink;
use notifications::{Config, Notifications};
use paysaga_aws::{DynamoDbInbox, EventMessages, METRICS_NAMESPACE};
use paysaga_services::notifications::idempotency_config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let sdk = sdk_config().await?;
    let idempotency = DynamoDbIdempotencyStore::from_config(&sdk, config.idempotency_table);
    let handler = EventMessages(Notifications {
        notifier: Arc::new(DynamoDbInbox::from_config(&sdk, config.notifications_table)),
        idempotency: Arc::new(idempotency),
        idempotency_config: idempotency_config(),
    });
    let metrics = MetricsSink::stdout(METRICS_NAMESPACE, "notifications");
    let consumer = sqs_consumer(handler, metrics, &config.consumer, &sdk);
    consumer.run().await.map_err(anyhow::Error::from_boxed)
}
