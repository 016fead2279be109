//! Start-up of the `api` function: configuration, clients, tracing; then serve.
//!
//! On Lambda it answers API Gateway HTTP API events. With `PAYSAGA_LOCAL_HTTP_ADDR` set
//! (`make run` does), the same router serves plain HTTP on that address instead.

use std::sync::Arc;

use anyhow::Context;
use api::{Api, ReadApi, read_router, router};
use paysaga::aws::{DynamoDbLedger, DynamoDbReadModels, EventBridgePublisher, sdk_config};
use paysaga::config::Resources;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    paysaga::logging::init();
    let resources = Resources::from_env()?;
    let config = sdk_config().await.context("cannot set up the AWS SDK")?;
    let ledger = Arc::new(DynamoDbLedger::from_config(&config, resources.tables));
    let read_models_table = std::env::var("READ_MODELS_TABLE")
        .context("READ_MODELS_TABLE must be set (the template sets it)")?;
    let app = router(Arc::new(Api {
        wallets: ledger.clone(),
        payments: ledger,
        events: Arc::new(EventBridgePublisher::from_config(
            &config,
            resources.event_bus_name,
        )),
    }))
    .merge(read_router(Arc::new(ReadApi {
        read_models: Arc::new(DynamoDbReadModels::from_config(&config, read_models_table)),
    })));

    match std::env::var("PAYSAGA_LOCAL_HTTP_ADDR") {
        Ok(address) => {
            let listener = tokio::net::TcpListener::bind(&address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            tracing::info!(%address, "serving the API over plain HTTP");
            axum::serve(listener, app)
                .await
                .context("HTTP server failed")
        }
        Err(_) => lambda_http::run(app)
            .await
            .map_err(|error| anyhow::anyhow!(error)),
    }
}
