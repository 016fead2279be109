//! Errors as GraphQL errors: every error this subgraph answers carries `extensions.code`, what
//! the client can do about it, and `extensions.reason`, the stable machine-readable reason (the
//! [`Refusal::code`] every door shows, e.g. `idempotency_key_reused`).
//!
//! | `code`            | when                                                             |
//! |-------------------|------------------------------------------------------------------|
//! | `UNAUTHENTICATED` | no caller (the HTTP layer answers a 401 before GraphQL runs)     |
//! | `FORBIDDEN`       | someone else's wallet or payment                                 |
//! | `NOT_FOUND`       | no such wallet or payment                                        |
//! | `BAD_USER_INPUT`  | an id, amount, key, cursor or query that cannot be read; a query over the limits |
//! | `UNPROCESSABLE`   | well-formed, but not something paysaga does (a currency, an amount) |
//! | `CONFLICT`        | conflicts with what exists (a key used for other terms)          |
//! | `UNAVAILABLE`     | a dependency failed; retry the same request, with the same key   |
//! | `INTERNAL`        | a fault of ours; logged, and its text never answered             |

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest};
use async_graphql::{ErrorExtensionValues, Response, ServerError};
use paysaga_services::self_service::Refusal;

/// What a client can do about an error: its `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Unprocessable,
    Conflict,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The code as the response spells it: `FORBIDDEN`, `BAD_USER_INPUT`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unprocessable => "UNPROCESSABLE",
            Self::Conflict => "CONFLICT",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }
}

/// Why a field could not be answered, as the client sees it.
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into a GraphQL error
/// carrying its text and no code, so a resolver that returns this type can only fail with a
/// code, a reason and a message chosen here (an internal error's text is logged, not answered).
#[derive(Debug, Clone)]
pub struct GraphqlError {
    code: ErrorCode,
    reason: &'static str,
    message: String,
}

impl GraphqlError {
    /// Input that cannot be read: an id, an amount, a key, a cursor, a page size.
    pub fn bad_user_input(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadUserInput,
            reason,
            message: message.into(),
        }
    }

    /// A field ran without a caller: the HTTP layer answers a 401 first, so only a schema
    /// executed without a caller (`CallerScope`) gets here.
    pub fn unauthenticated() -> Self {
        Self {
            code: ErrorCode::Unauthenticated,
            reason: "unauthenticated",
            message: "no verified identity: send Authorization: Bearer <token>".to_owned(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn reason(&self) -> &'static str {
        self.reason
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error of a request that failed before any field ran (a limit, a mutation over GET).
    pub fn into_server_error(self) -> ServerError {
        let mut error = ServerError::new(self.message, None);
        error.extensions = Some(extensions(self.code, self.reason));
        error
    }
}

/// A refusal of [`SelfService`](paysaga_services::self_service::SelfService) as the client
/// sees it; a failure is logged (without the caller) and answered without its text.
impl From<Refusal> for GraphqlError {
    fn from(refusal: Refusal) -> Self {
        let reason = refusal.code();
        let (code, message) = match refusal {
            Refusal::NotFound(message) => (ErrorCode::NotFound, message),
            Refusal::Forbidden(message) => (ErrorCode::Forbidden, message),
            Refusal::Unprocessable { message, .. } => (ErrorCode::Unprocessable, message),
            Refusal::Conflict { message, .. } => (ErrorCode::Conflict, message),
            Refusal::Failed(error) if error.is_transient() => {
                tracing::warn!(%error, "dependency unavailable");
                (
                    ErrorCode::Unavailable,
                    "a dependency is unavailable; retry the same request (with the same \
                     idempotency key)"
                        .to_owned(),
                )
            }
            Refusal::Failed(error) => {
                tracing::error!(%error, "request failed");
                (
                    ErrorCode::Internal,
                    "the request failed; it has been logged".to_owned(),
                )
            }
        };
        Self {
            code,
            reason,
            message,
        }
    }
}

impl From<GraphqlError> for async_graphql::Error {
    fn from(error: GraphqlError) -> Self {
        Self {
            message: error.message,
            source: None,
            extensions: Some(extensions(error.code, error.reason)),
        }
    }
}

fn extensions(code: ErrorCode, reason: &'static str) -> ErrorExtensionValues {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code.as_str());
    extensions.set("reason", reason);
    extensions
}

/// The schema extension that gives every error a code: the engine's own errors (a query that
/// does not parse or validate, an argument of the wrong type, an unknown entity) are the
/// client's input, so `BAD_USER_INPUT` with the reason `invalid_query` (before any field ran)
/// or `invalid_argument` (a field's).
pub struct TypedErrors;

impl ExtensionFactory for TypedErrors {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(TypedErrors)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for TypedErrors {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            let coded = error
                .extensions
                .as_ref()
                .is_some_and(|extensions| extensions.get("code").is_some());
            if !coded {
                let reason = if error.path.is_empty() {
                    "invalid_query"
                } else {
                    "invalid_argument"
                };
                error.extensions = Some(extensions(ErrorCode::BadUserInput, reason));
            }
        }
        response
    }
}
