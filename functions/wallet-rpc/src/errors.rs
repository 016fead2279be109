//! Every way a call can fail, as a Connect error: a code, which connectrpc writes as the
//! protocol the caller speaks wants it (Connect: an HTTP status and a JSON body; gRPC-Web:
//! `grpc-status` and `grpc-message`), a message that starts with paysaga's stable code
//! (`"forbidden: wallet wal_x belongs to another caller"`), and the same code as an
//! [`v1::ErrorReason`] detail, so a client tells `idempotency_key_reused` from any other
//! `already_exists` without reading sentences.
//!
//! | the service's answer | code | HTTP (Connect) | grpc-status |
//! |---|---|---|---|
//! | no verified caller | `unauthenticated` | 401 | 16 |
//! | a field unparseable (a malformed id, no key, an unknown currency) | `invalid_argument` | 400 | 3 |
//! | [`Refusal::Unprocessable`]: well-formed, but not something paysaga does (a zero amount, one wallet paying itself, a currency or amount over the limits) | `invalid_argument` | 400 | 3 |
//! | [`Refusal::NotFound`] | `not_found` | 404 | 5 |
//! | [`Refusal::Forbidden`] | `permission_denied` | 403 | 7 |
//! | [`Refusal::Conflict`] (an idempotency key used for other terms) | `already_exists` | 409 | 6 |
//! | [`Refusal::Failed`], transient | `unavailable` | 503 | 14 |
//! | [`Refusal::Failed`], otherwise | `internal` | 500 | 13 |
//!
//! Unprocessable is `invalid_argument`, not `failed_precondition`: every one of those refusals
//! is about the request alone, against fixed rules, and sending it again unchanged can never
//! succeed; `failed_precondition` says the system's state must change first, which is what a
//! payment's own failure (insufficient funds) is, and that is the saga's answer, later, on the
//! payment. The detail's code tells the two kinds of `invalid_argument` apart
//! (`invalid_request` for unparseable input, `invalid_amount`, `currency_not_allowed`, ... for
//! the service's rules). A conflict is `already_exists`, not `aborted`: the key names a payment
//! that exists with other terms, and retrying does not help, where `aborted` invites a retry.
//!
//! Failures are logged, never answered: their text may name tables or conditions.

use std::fmt::Display;

use connectrpc::{ConnectError, ErrorCode, ErrorDetail};
use paysaga_services::self_service::Refusal;
use paysaga_wallet_proto::{ERROR_REASON_TYPE, v1};

use crate::messages::InvalidRequest;

/// No verified caller: the claims API Gateway's JWT authorizer hands over are missing or
/// unusable.
pub fn unauthenticated(why: &str) -> ConnectError {
    error(ErrorCode::Unauthenticated, "unauthenticated", why)
}

/// What the service refused, by what the caller can do about it.
pub fn refused(refusal: Refusal) -> ConnectError {
    match refusal {
        Refusal::NotFound(message) => error(ErrorCode::NotFound, "not_found", message),
        Refusal::Forbidden(message) => error(ErrorCode::PermissionDenied, "forbidden", message),
        Refusal::Unprocessable { code, message } => {
            error(ErrorCode::InvalidArgument, code, message)
        }
        Refusal::Conflict { code, message } => error(ErrorCode::AlreadyExists, code, message),
        Refusal::Failed(failure) if failure.is_transient() => {
            tracing::warn!(error = %failure, "dependency unavailable");
            error(
                ErrorCode::Unavailable,
                "temporarily_unavailable",
                "a dependency is unavailable; retry with the same idempotency_key",
            )
        }
        Refusal::Failed(failure) => {
            tracing::error!(error = %failure, "call failed");
            error(
                ErrorCode::Internal,
                "internal_error",
                "the call failed; it has been logged",
            )
        }
    }
}

/// Input that does not parse.
impl From<InvalidRequest> for ConnectError {
    fn from(invalid: InvalidRequest) -> Self {
        error(ErrorCode::InvalidArgument, "invalid_request", invalid)
    }
}

/// `code` (connectrpc's), and paysaga's `reason` both at the start of the message and as the
/// [`v1::ErrorReason`] detail.
fn error(code: ErrorCode, reason: &str, message: impl Display) -> ConnectError {
    let detail = v1::ErrorReason {
        code: reason.to_owned(),
        ..Default::default()
    };
    ConnectError::new(code, format!("{reason}: {message}"))
        .with_detail(ErrorDetail::from_message(ERROR_REASON_TYPE, &detail))
}

#[cfg(test)]
mod tests {
    use paysaga_domain::ports::StoreError;
    use paysaga_services::ServiceError;

    use super::*;

    fn reason(error: &ConnectError) -> Option<String> {
        paysaga_wallet_proto::error_reason(error).map(|reason| reason.code)
    }

    #[test]
    fn each_refusal_has_its_code_and_keeps_the_services_reason() {
        let conflict = refused(Refusal::Conflict {
            code: "idempotency_key_reused",
            message: "used for a different request".to_owned(),
        });
        assert_eq!(conflict.code, ErrorCode::AlreadyExists);
        assert_eq!(reason(&conflict).as_deref(), Some("idempotency_key_reused"));
        assert_eq!(
            conflict.message.as_deref(),
            Some("idempotency_key_reused: used for a different request")
        );

        let cases = [
            (
                Refusal::NotFound("x".into()),
                ErrorCode::NotFound,
                "not_found",
            ),
            (
                Refusal::Forbidden("x".into()),
                ErrorCode::PermissionDenied,
                "forbidden",
            ),
            (
                Refusal::Unprocessable {
                    code: "invalid_amount",
                    message: "x".into(),
                },
                ErrorCode::InvalidArgument,
                "invalid_amount",
            ),
        ];
        for (refusal, code, expected) in cases {
            let error = refused(refusal);
            assert_eq!(error.code, code);
            assert_eq!(reason(&error).as_deref(), Some(expected));
        }
    }

    #[test]
    fn a_failure_is_unavailable_or_internal_and_its_text_stays_in_the_log() {
        let transient = refused(Refusal::Failed(ServiceError::Store(StoreError::Transient(
            "ProvisionedThroughputExceeded on table wallets-secret".into(),
        ))));
        assert_eq!(transient.code, ErrorCode::Unavailable);
        assert_eq!(
            reason(&transient).as_deref(),
            Some("temporarily_unavailable")
        );
        let permanent = refused(Refusal::Failed(ServiceError::Store(StoreError::Permanent(
            "ValidationException on table wallets-secret".into(),
        ))));
        assert_eq!(permanent.code, ErrorCode::Internal);
        for error in [transient, permanent] {
            let message = error.message.unwrap_or_default();
            assert!(!message.contains("wallets-secret"), "{message}");
        }
    }
}
