//! What the functions do, written once against the ports (`paysaga_domain::ports`): open and
//! fund wallets ([`wallets`]), submit a payment ([`payments`]), run the payment saga ([`saga`]),
//! publish what the ledger's writes made true ([`relay`]), keep the audit trail ([`audit`]),
//! apply and rebuild the read models ([`read_models`]), tell payers and payees
//! ([`notifications`]), drive on the payments past their deadline ([`reconciler`]), and redrive
//! dead letters ([`redrive`]); and what a wallet's owner may do through any of the API's
//! doors, REST, GraphQL or Connect ([`self_service`]). Handlers translate events into these
//! calls and back.
//!
//! [`fakes`] (feature `fakes`) holds in-memory adapters of every port, for tests; [`faults`]
//! (feature `fault-injection`) the test-only fault injection.

pub mod audit;
pub mod contention;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod faults;
pub mod notifications;
pub mod payments;
pub mod read_models;
pub mod reconciler;
pub mod redrive;
pub mod relay;
pub mod saga;
pub mod self_service;
pub mod wallets;

use paysaga_domain::payment::PaymentLogError;
use paysaga_domain::ports::{PublishError, StoreError};

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
        match self {
            Self::Store(error) => error.is_transient(),
            Self::Publish(_) => true,
            Self::Log(_) | Self::Inconsistent(_) => false,
        }
    }
}
