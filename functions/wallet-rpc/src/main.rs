//! Start-up of the `wallet-rpc` function: configuration, clients, tracing; then serve.
//!
//! On Lambda it answers API Gateway HTTP API events. With `PAYSAGA_LOCAL_HTTP_ADDR` set
//! (`make run` does), the same router serves plain HTTP on that address instead.

use std::sync::Arc;

use lambda_toolkit::aws::sdk_config;
use wallet_rpc::{Config, router};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_toolkit::logging::init();
    let config = lambda_toolkit::env::load(Config::from_env)?;
    let sdk = sdk_config().await?;
    let service = Arc::new(paysaga_aws::doors::self_service(&sdk, config));
    paysaga_http::serve(router(service)).await
}
