//! Start-up of the `admin-api` function: configuration, clients, tracing; then serve (as the
//! `api` function does: [`paysaga_http::serve`]).

use std::sync::Arc;

use admin_api::{AdminApi, REBUILD_PAGE, admin_router};
use anyhow::Context;
use lambda_toolkit::aws::sdk_config;
use paysaga_aws::{DynamoDbEventStore, DynamoDbParking, DynamoDbReadModels, SqsRedriveQueues};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = sdk_config().await.context("cannot set up the AWS SDK")?;
    let required = |name: &str| {
        std::env::var(name).with_context(|| format!("{name} must be set (the template sets it)"))
    };
    let app = admin_router(Arc::new(AdminApi {
        parking: Arc::new(DynamoDbParking::from_config(
            &config,
            required("PARKED_MESSAGES_TABLE")?,
        )),
        queues: Arc::new(SqsRedriveQueues::from_config(&config)),
        // Reads only: snapshots are the audit-trail function's business.
        event_store: Arc::new(DynamoDbEventStore::from_config(
            &config,
            required("EVENT_STORE_TABLE")?,
            0,
        )),
        read_models: Arc::new(DynamoDbReadModels::from_config(
            &config,
            required("READ_MODELS_TABLE")?,
        )),
        rebuild_page: REBUILD_PAGE,
    }));
    paysaga_http::serve(app).await
}
