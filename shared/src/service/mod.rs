//! What the functions do, written once against the ports: open and fund wallets, submit a
//! payment, run the payment saga. Handlers translate events into these calls and back.

pub mod audit;
pub mod payments;
pub mod saga;
pub mod wallets;

use crate::domain::payment::PaymentLogError;
use crate::ports::{PublishError, StoreError};

/// A service call failed for a reason that is not the caller's input.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Log(#[from] PaymentLogError),
    #[error("{0}")]
    Inconsistent(String),
}

impl ServiceError {
    /// Whether the same call may succeed later (so a 503 or a redelivery, not a 500 or a DLQ).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::Transient(_)) | Self::Publish(_)
        )
    }
}
