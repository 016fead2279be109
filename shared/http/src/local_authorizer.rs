//! Locally, the part API Gateway's JWT authorizer plays in AWS: `make run` serves the router as
//! plain HTTP with no gateway in front, so this layer checks each request's bearer token
//! against the local stack's development key (RS256; issuer and audience as the stack sets
//! them) and hands the token's claims to the router in an API Gateway request context, exactly
//! where the authorizer puts them. [`crate::Caller`] reads them from there in both cases.
//!
//! Like the gateway, it answers `401 {"message":"Unauthorized"}` itself for a missing, expired
//! or badly signed token; the function never sees such a request. Built only with the
//! `local-authorizer` feature (`make build-local`): the deployed binary has no such path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use serde_json::Value;

use crate::error::GatewayError;

#[derive(Debug, thiserror::Error)]
pub enum LocalAuthorizerError {
    #[error("cannot read the development public key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an RSA public key in PEM: {source}")]
    Key {
        path: PathBuf,
        source: jsonwebtoken::errors::Error,
    },
}

/// The development key and the claims a token must carry.
#[derive(Clone)]
pub struct LocalAuthorizer {
    key: DecodingKey,
    validation: Validation,
    /// Routes without an authorizer (`Auth: {Authorizer: NONE}` in the template), as
    /// `(METHOD, /path)`: passed on untouched, without claims.
    open_routes: Vec<(String, String)>,
}

impl LocalAuthorizer {
    pub fn new(
        public_key_pem: &Path,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, LocalAuthorizerError> {
        let pem = std::fs::read(public_key_pem).map_err(|source| LocalAuthorizerError::Read {
            path: public_key_pem.to_owned(),
            source,
        })?;
        let key = DecodingKey::from_rsa_pem(&pem).map_err(|source| LocalAuthorizerError::Key {
            path: public_key_pem.to_owned(),
            source,
        })?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            key,
            validation,
            open_routes: Vec::new(),
        })
    }

    /// Lets the routes of `open_routes` through without a token, as the gateway does for a route
    /// with no authorizer: `"GET /graphiql,POST /hooks"` (literal paths; what
    /// `PAYSAGA_LOCAL_OPEN_ROUTES` holds, from the template).
    pub fn with_open_routes(mut self, open_routes: &str) -> Self {
        self.open_routes = open_routes
            .split(',')
            .filter_map(|route| route.trim().split_once(' '))
            .map(|(method, path)| (method.to_ascii_uppercase(), path.trim().to_owned()))
            .collect();
        self
    }

    fn is_open(&self, method: &str, path: &str) -> bool {
        self.open_routes
            .iter()
            .any(|(open_method, open_path)| open_method == method && open_path == path)
    }

    /// The claims of a valid bearer token, as API Gateway passes them: every value a string.
    fn claims(&self, authorization: Option<&str>) -> Option<HashMap<String, String>> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let data =
            jsonwebtoken::decode::<HashMap<String, Value>>(token, &self.key, &self.validation)
                .ok()?;
        Some(
            data.claims
                .into_iter()
                .map(|(name, value)| match value {
                    Value::String(text) => (name, text),
                    other => (name, other.to_string()),
                })
                .collect(),
        )
    }
}

/// The middleware: `router.layer(axum::middleware::from_fn_with_state(authorizer, authorize))`.
pub async fn authorize(
    State(authorizer): State<Arc<LocalAuthorizer>>,
    mut request: Request,
    next: Next,
) -> Response {
    if authorizer.is_open(request.method().as_str(), request.uri().path()) {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let Some(claims) = authorizer.claims(authorization) else {
        let body = GatewayError {
            message: "Unauthorized".to_owned(),
        };
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    };
    let scopes = claims
        .get("scope")
        .map(|scopes| scopes.split_whitespace().map(str::to_owned).collect());
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = claims;
    jwt.scopes = scopes;
    let mut authorizer_context = ApiGatewayRequestAuthorizer::default();
    authorizer_context.jwt = Some(jwt);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.authorizer = Some(authorizer_context);
    request
        .extensions_mut()
        .insert(RequestContext::ApiGatewayV2(context));
    next.run(request).await
}
