//! The payments domain: plain Rust, no AWS types, no I/O.

pub mod events;
pub mod failure;
pub mod history;
pub mod ids;
pub mod limits;
pub mod money;
pub mod notification;
pub mod owner;
pub mod payment;
pub mod saga;
pub mod wallet;

pub use events::DomainEvent;
pub use failure::FailureReason;
pub use ids::{ChargeId, DepositId, IdError, IdempotencyKey, PaymentId, WalletId};
pub use limits::{LimitRefusal, Limits};
pub use money::{Currency, Money, MoneyError};
pub use owner::{MalformedOwner, Owner};
pub use payment::{Payment, PaymentLogEntry, PaymentRequest, PaymentStatus, PaymentStep, Priority};
pub use saga::{PaymentLimits, SagaStep, StepPlan};
pub use wallet::{Wallet, WalletChange, WalletEffect, WalletRejection};
