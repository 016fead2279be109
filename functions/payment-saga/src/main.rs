//! Start-up of the `payment-saga` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use lambda_toolkit::aws::{sdk_config, sqs_consumer};
use payment_saga::{Config, PaymentSaga};
use paysaga_aws::{DynamoDbLedger, EventBridgePublisher};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let processor = Arc::new(config.processor.processor()?);
    let guarded = processor.clone();
    let sdk = sdk_config().await?;
    let bus = config.resources.event_bus_name;
    let handler = PaymentSaga {
        payments: Arc::new(DynamoDbLedger::from_config(&sdk, config.resources.tables)),
        events: Arc::new(EventBridgePublisher::from_config(&sdk, bus)),
        processor,
        settings: config.saga,
        max_receive_count: config.consumer.max_receive_count,
        circuit: Some(Arc::new(move || guarded.state())),
    };
    let consumer = sqs_consumer(handler, "payment-saga", &config.consumer, &sdk);
    consumer.run().await.map_err(anyhow::Error::from_boxed)
}
