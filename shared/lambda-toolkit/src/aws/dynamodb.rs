//! What every DynamoDB adapter needs: items, attribute values, and SDK failures sorted by what
//! the caller does next.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A number attribute.
pub fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Whether a write was refused by its condition.
pub fn is_conditional_check_failure<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

/// An SDK call's failure, sorted by what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkFailure {
    /// Throttling, a conflicting transaction, a timeout, the service unreachable: retry later.
    Transient(String),
    /// Anything else (a missing table, a malformed request): retrying will not help.
    Permanent(String),
}

/// Sorts a failed call of `operation`: the error codes DynamoDB documents as retryable, and
/// every failure without an answer (dispatch failures, timeouts, unreadable responses), are
/// transient.
pub fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    operation: &str,
    error: SdkError<E>,
) -> SdkFailure {
    const TRANSIENT_CODES: [&str; 7] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    ];
    match error.as_service_error() {
        Some(service) => {
            let code = service.code().unwrap_or("unknown");
            let text = format!("{operation}: {code}: {}", service.message().unwrap_or(""));
            if TRANSIENT_CODES.contains(&code) {
                SdkFailure::Transient(text)
            } else {
                SdkFailure::Permanent(text)
            }
        }
        None => SdkFailure::Transient(format!(
            "{operation}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&error)
        )),
    }
}
