//! Reading requests: JSON bodies, ids in paths, the `Idempotency-Key` header. Every way they
//! can be wrong becomes an [`ApiError`] with a message saying what is wrong.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use paysaga_domain::{IdError, IdempotencyKey};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body parsed into `T`; malformed or oversized bodies are refused with a JSON error.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The body's bytes, or a 413 / 400.
async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection: BytesRejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidRequest(rejection.body_text())
            }
        })
}

/// The body as `T`, or a 400 saying what is wrong with it.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let error = redact::json_error(&error);
        ApiError::InvalidRequest(format!("invalid JSON body: {error}"))
    })
}

/// A JSON body that may be left out: an empty body is `None`, anything else as [`JsonBody`].
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        if bytes.trim_ascii().is_empty() {
            return Ok(Self(None));
        }
        parse_json(&bytes).map(|value| Self(Some(value)))
    }
}

/// An id from the path, or a 400 saying what an id looks like.
pub fn parse_id<T>(raw: &str, parse: fn(&str) -> Result<T, IdError>) -> Result<T, ApiError> {
    parse(raw).map_err(|error| ApiError::InvalidRequest(error.to_string()))
}

/// The optional `Idempotency-Key` header.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| IdError::MalformedIdempotencyKey);
    text.and_then(IdempotencyKey::parse)
        .map(Some)
        .map_err(|error| ApiError::InvalidRequest(error.to_string()))
}
