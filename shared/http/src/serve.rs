//! Serving a router, for every function behind the HTTP API (`api`, `admin-api`): on Lambda,
//! API Gateway's events (`lambda_http`); with `PAYSAGA_LOCAL_HTTP_ADDR` set (`make run` does),
//! plain HTTP on that address, behind the local stand-in for the JWT authorizer. Either way
//! each request runs in its X-Ray trace ([`crate::trace`]).

use axum::Router;

/// Serves `app` until the process ends.
pub async fn serve(app: Router) -> anyhow::Result<()> {
    // Every request in its X-Ray trace, down to the events it publishes.
    let app = app.layer(axum::middleware::from_fn(crate::trace::traced));
    match std::env::var("PAYSAGA_LOCAL_HTTP_ADDR") {
        Ok(address) => serve_plain_http(app, &address).await,
        Err(_) => lambda_http::run(app)
            .await
            .map_err(|error| anyhow::anyhow!(error)),
    }
}

/// Locally there is no API Gateway in front: the development key's stand-in for its JWT
/// authorizer checks every request's token (`PAYSAGA_LOCAL_JWT_*`, set by the local stack),
/// and a plain HTTP server serves the router. Only the `local-authorizer` build has it: the
/// deployed binary links no HTTP server of its own.
#[cfg(feature = "local-authorizer")]
async fn serve_plain_http(app: Router, address: &str) -> anyhow::Result<()> {
    use anyhow::Context;

    let app = local_authorizer(app)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!(%address, "serving over plain HTTP");
    axum::serve(listener, app)
        .await
        .context("HTTP server failed")
}

#[cfg(not(feature = "local-authorizer"))]
async fn serve_plain_http(_app: Router, _address: &str) -> anyhow::Result<()> {
    anyhow::bail!(
        "serving plain HTTP needs a stand-in for API Gateway's JWT authorizer: \
         build with the local-authorizer feature (make build-local does)"
    )
}

#[cfg(feature = "local-authorizer")]
fn local_authorizer(app: Router) -> anyhow::Result<Router> {
    use std::sync::Arc;

    use anyhow::Context;

    use crate::local_authorizer::{LocalAuthorizer, authorize};
    let variable = |name: &str| {
        std::env::var(name).with_context(|| format!("{name} must be set to serve plain HTTP"))
    };
    let authorizer = LocalAuthorizer::new(
        std::path::Path::new(&variable("PAYSAGA_LOCAL_JWT_PUBLIC_KEY")?),
        &variable("PAYSAGA_LOCAL_JWT_ISSUER")?,
        &variable("PAYSAGA_LOCAL_JWT_AUDIENCE")?,
    )?
    .with_open_routes(&std::env::var("PAYSAGA_LOCAL_OPEN_ROUTES").unwrap_or_default());
    Ok(app.layer(axum::middleware::from_fn_with_state(
        Arc::new(authorizer),
        authorize,
    )))
}
