//! Start-up of the `audit-trail` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use audit_trail::{AuditTrail, Config};
use lambda_toolkit::aws::delays::SqsMessageDelay;
use lambda_toolkit::aws::{sdk_config, sqs_consumer};
use lambda_toolkit::metrics::MetricsSink;
use paysaga_aws::{DynamoDbEventStore, EventMessages, METRICS_NAMESPACE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let sdk = sdk_config().await?;
    let store =
        DynamoDbEventStore::from_config(&sdk, config.event_store_table, config.snapshot_every);
    let handler = EventMessages(AuditTrail {
        store: Arc::new(store),
    });
    let metrics = MetricsSink::stdout(METRICS_NAMESPACE, "audit-trail");
    // An append that lost to contention comes back a moment later, and is sent again past
    // its last delivery.
    let consumer = sqs_consumer(handler, metrics, &config.consumer, &sdk)
        .delaying_retries_with(Arc::new(SqsMessageDelay::from_config(&sdk)));
    consumer.run().await.map_err(anyhow::Error::from_boxed)
}
