//! Start-up of the `api` function: configuration, clients, tracing; then serve.
//!
//! On Lambda it answers API Gateway HTTP API events. With `PAYSAGA_LOCAL_HTTP_ADDR` set
//! (`make run` does), the same router serves plain HTTP on that address instead.

use std::sync::Arc;

use anyhow::Context;
use api::{AdminApi, Api, ReadApi, admin_router, read_router, router};
use paysaga::aws::{
    DynamoDbEventStore, DynamoDbLedger, DynamoDbParking, DynamoDbReadModels, EventBridgePublisher,
    SqsRedriveQueues, sdk_config,
};
use paysaga::config::Resources;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    paysaga::logging::init();
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
    let limits = paysaga::config::limits_from_env()?;
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
        read_models: read_models.clone(),
        wallets: ledger,
    })))
    .merge(admin_router(Arc::new(AdminApi {
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
        read_models,
    })))
    // Every request in its X-Ray trace, down to the events it publishes (api::trace).
    .layer(axum::middleware::from_fn(api::trace::traced));

    match std::env::var("PAYSAGA_LOCAL_HTTP_ADDR") {
        Ok(address) => {
            let app = local_authorizer(app)?;
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

/// Locally there is no API Gateway in front: the development key's stand-in for its JWT
/// authorizer checks every request's token (`PAYSAGA_LOCAL_JWT_*`, set by the local stack).
#[cfg(feature = "local-authorizer")]
fn local_authorizer(app: axum::Router) -> anyhow::Result<axum::Router> {
    use api::local_authorizer::{LocalAuthorizer, authorize};
    let variable = |name: &str| {
        std::env::var(name).with_context(|| format!("{name} must be set to serve plain HTTP"))
    };
    let authorizer = LocalAuthorizer::new(
        std::path::Path::new(&variable("PAYSAGA_LOCAL_JWT_PUBLIC_KEY")?),
        &variable("PAYSAGA_LOCAL_JWT_ISSUER")?,
        &variable("PAYSAGA_LOCAL_JWT_AUDIENCE")?,
    )?;
    Ok(app.layer(axum::middleware::from_fn_with_state(
        Arc::new(authorizer),
        authorize,
    )))
}

#[cfg(not(feature = "local-authorizer"))]
fn local_authorizer(_app: axum::Router) -> anyhow::Result<axum::Router> {
    anyhow::bail!(
        "serving plain HTTP needs a stand-in for API Gateway's JWT authorizer: \
         build with --features api/local-authorizer (make build-local does)"
    )
}
