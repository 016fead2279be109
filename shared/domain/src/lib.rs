//! The payments domain: plain Rust, no AWS types, no I/O, no async runtime.
//!
//! Money, wallets, payments, the saga's steps and the event contracts; [`read_models`]: what the
//! API lists, projected from the events; [`ports`]: the small traits the services need (a
//! wallet store, a payment log, an event publisher, ...), whose adapters live elsewhere
//! (`paysaga-aws`, and in-memory ones in `paysaga-services`' `fakes`).

pub mod consent;
pub mod events;
pub mod failure;
pub mod history;
pub mod ids;
pub mod ledger;
pub mod limits;
pub mod money;
pub mod notification;
pub mod operator;
pub mod owner;
pub mod payment;
pub mod ports;
pub mod read_models;
pub mod saga;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod wallet;

pub use events::DomainEvent;
pub use failure::FailureReason;
pub use ids::{
    ChargeId, DepositId, IdError, IdempotencyKey, OperatorActionId, PaymentId, WalletId,
};
pub use ledger::{Account, Balances, Transfer, TransferError, WorldAccount};
pub use limits::{LimitRefusal, Limits};
pub use money::{Currency, Money, MoneyError};
pub use operator::{
    OperatorAction, OperatorActionKind, OperatorKey, OperatorReason, OperatorRecord,
};
pub use owner::{MalformedOwner, Owner};
pub use payment::{
    Payment, PaymentLogEntry, PaymentRequest, PaymentStatus, PaymentStep, Priority, RequestChannel,
};
pub use saga::{PaymentLimits, SagaStep, StepPlan};
pub use wallet::{Wallet, WalletChange, WalletEffect, WalletRejection};
