//! Start-up of the `admin-api` function: configuration, clients, tracing; then serve (as the
//! `api` function does: [`paysaga_http::serve`]).

use std::sync::Arc;

use admin_api::{AdminApi, Config, REBUILD_PAGE, admin_router};
use lambda_toolkit::aws::sdk_config;
use paysaga_aws::{
    DynamoDbEventStore, DynamoDbLedger, DynamoDbOutbox, DynamoDbParking, DynamoDbReadModels,
    SqsRedriveQueues,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let sdk = sdk_config().await?;
    let app = admin_router(Arc::new(AdminApi {
        parking: Arc::new(DynamoDbParking::from_config(
            &sdk,
            config.parked_messages_table,
        )),
        queues: Arc::new(SqsRedriveQueues::from_config(&sdk)),
        // Reads only: snapshots are the audit-trail function's business.
        event_store: Arc::new(DynamoDbEventStore::from_config(
            &sdk,
            config.event_store_table,
            0,
        )),
        read_models: Arc::new(DynamoDbReadModels::from_config(
            &sdk,
            config.read_models_table,
        )),
        rebuild_page: REBUILD_PAGE,
        wallets: Arc::new(DynamoDbLedger::from_config(&sdk, config.resources.tables)),
        events: Arc::new(DynamoDbOutbox::from_config(&sdk, config.outbox_table)),
        limits: config.limits,
    }));
    paysaga_http::serve(app).await
}
