//! Start-up of the `api` function: configuration, clients, tracing; then serve.
//!
//! On Lambda it answers API Gateway HTTP API events. With `PAYSAGA_LOCAL_HTTP_ADDR` set
//! (`make run` does), the same router serves plain HTTP on that address instead.

use std::sync::Arc;

use anyhow::Context;
use api::{Api, ReadApi, read_router, router};
use lambda_toolkit::aws::sdk_config;
use paysaga_aws::config::Resources;
use paysaga_aws::{DynamoDbLedger, DynamoDbReadModels, EventBridgePublisher};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let resources = Resources::from_env()?;
    let config = sdk_config().await.context("cannot set up the AWS SDK")?;
    let ledger = Arc::new(DynamoDbLedger::from_config(&config, resources.tables));
    let required = |name: &str| {
        std::env::var(name).with_context(|| format!("{name} must be set (the template sets it)"))
    };
    let read_models = Arc::new(DynamoDbReadModels::from_config(
        &config,
        required("READ_MODELS_TABLE")?,
    ));
    let limits = paysaga_aws::config::limits_from_env()?;
    let app = router(Arc::new(Api {
        limits,
        wallets: ledger.clone(),
        payments: ledger.clone(),
        events: Arc::new(EventBridgePublisher::from_config(
            &config,
            resources.event_bus_name,
        )),
    }))
    .merge(read_router(Arc::new(ReadApi {
        read_models,
        wallets: ledger,
    })));
    paysaga_http::serve(app).await
}
