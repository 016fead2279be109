//! Every way a request can fail, as an HTTP status and a JSON body:
//! `{"error": {"code": "...", "message": "..."}}` ([`ErrorBody`]).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use paysaga_domain::FailureReason;
use paysaga_services::ServiceError;
use paysaga_services::self_service::Refusal;
use serde::Serialize;

/// The body of every error the functions answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable, machine-readable `code` and a sentence for people.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ErrorDetail {
    /// Stable and machine-readable: `invalid_request`, `not_found`, `idempotency_key_reused`, ...
    pub code: String,
    /// What is wrong, for people; never quotes a secret.
    pub message: String,
}

/// The body of what API Gateway answers itself, before or instead of a function (an invalid
/// token's 401, a missing scope's 403, a failed integration's 500 or 503):
/// `{"message": "Unauthorized"}`. The local stand-ins for the gateway answer the same.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct GatewayError {
    pub message: String,
}

#[derive(Debug)]
pub enum ApiError {
    /// The body or a header is not what the route takes (400).
    InvalidRequest(String),
    /// The body is larger than the API accepts (413).
    PayloadTooLarge,
    /// Well-formed, but the request cannot be carried out as asked (422).
    Unprocessable { code: &'static str, message: String },
    /// No verified identity: no token, or claims the API cannot use (401).
    Unauthenticated(&'static str),
    /// The caller may not touch this resource or route (403).
    Forbidden(String),
    /// No such resource (404).
    NotFound(String),
    /// It conflicts with what exists (409).
    Conflict { code: &'static str, message: String },
    /// A dependency failed; retrying the same request (with the same key) is safe (503).
    Unavailable,
    /// Something that should not happen; details are logged, not returned (500).
    Internal,
}

impl ApiError {
    /// A business refusal: an unknown wallet is a 404, anything else cannot be processed.
    pub fn refused(reason: &FailureReason) -> Self {
        match reason {
            FailureReason::UnknownWallet { .. } => Self::NotFound(reason.to_string()),
            _ => Self::Unprocessable {
                code: reason.code(),
                message: reason.to_string(),
            },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        if error.is_transient() {
            tracing::warn!(%error, "dependency unavailable");
            Self::Unavailable
        } else {
            tracing::error!(%error, "request failed");
            Self::Internal
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(message) => Self::NotFound(message),
            Refusal::Forbidden(message) => Self::Forbidden(message),
            Refusal::Unprocessable { code, message } => Self::Unprocessable { code, message },
            Refusal::Conflict { code, message } => Self::Conflict { code, message },
            Refusal::Failed(error) => error.into(),
        }
    }
}

impl ApiError {
    /// The status it is answered with, its code, and its message.
    fn parts(self) -> (StatusCode, &'static str, String) {
        match self {
            Self::InvalidRequest(message) => (StatusCode::BAD_REQUEST, "invalid_request", message),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large".to_owned(),
            ),
            Self::Unprocessable { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            Self::Unauthenticated(message) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                message.to_owned(),
            ),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "forbidden", message),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", message),
            Self::Conflict { code, message } => (StatusCode::CONFLICT, code, message),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "a dependency is unavailable; retry with the same Idempotency-Key".to_owned(),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the request failed; it has been logged".to_owned(),
            ),
        }
    }

    /// The status it is answered with, and its code: what a client (and the API's OpenAPI
    /// document) can rely on.
    pub fn status_and_code(self) -> (StatusCode, &'static str) {
        let (status, code, _) = self.parts();
        (status, code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
            },
        });
        if status == StatusCode::SERVICE_UNAVAILABLE {
            (status, [(header::RETRY_AFTER, "1")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}
