//! Start-up of the `payment-saga` function: configuration, clients, tracing; then run.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use payment_saga::{Saga, handle};
use paysaga::aws::{DynamoDbLedger, EventBridgePublisher, sdk_config};
use paysaga::config::Resources;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let resources = Resources::from_env()?;
    let config = sdk_config().await;
    let saga = Saga {
        payments: Arc::new(DynamoDbLedger::from_config(&config, resources.tables)),
        events: Arc::new(EventBridgePublisher::from_config(
            &config,
            resources.event_bus_name,
        )),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| handle(&saga, event))).await
}
