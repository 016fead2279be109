//! Why a payment failed, in a form machines can act on.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::WalletId;
use super::money::{Currency, Money};

/// A business reason for a payment (or deposit) to fail. Serialised with a stable `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum FailureReason {
    InsufficientFunds {
        wallet_id: WalletId,
    },
    UnknownWallet {
        wallet_id: WalletId,
    },
    CurrencyMismatch {
        wallet_id: WalletId,
        wallet_currency: Currency,
    },
    BalanceLimitExceeded {
        wallet_id: WalletId,
    },
    /// The amount is above what a single payment may move.
    AmountOverLimit {
        limit: Money,
    },
    /// The payment processor declined the charge.
    PaymentDeclined {
        message: String,
    },
    /// The payment processor did not answer before the charge step's deadline.
    ProcessorUnavailable,
    /// A test run's fault injection failed this step (only builds with `fault-injection`).
    InjectedFault {
        step: String,
    },
}

impl FailureReason {
    /// The stable, machine-readable code (`insufficient_funds`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::UnknownWallet { .. } => "unknown_wallet",
            Self::CurrencyMismatch { .. } => "currency_mismatch",
            Self::BalanceLimitExceeded { .. } => "balance_limit_exceeded",
            Self::AmountOverLimit { .. } => "amount_over_limit",
            Self::PaymentDeclined { .. } => "payment_declined",
            Self::ProcessorUnavailable => "processor_unavailable",
            Self::InjectedFault { .. } => "injected_fault",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InsufficientFunds { wallet_id } => {
                write!(f, "wallet {wallet_id} has insufficient available funds")
            }
            Self::UnknownWallet { wallet_id } => write!(f, "wallet {wallet_id} does not exist"),
            Self::CurrencyMismatch {
                wallet_id,
                wallet_currency,
            } => {
                write!(
                    f,
                    "wallet {wallet_id} holds {wallet_currency}, not the currency of the amount"
                )
            }
            Self::BalanceLimitExceeded { wallet_id } => {
                write!(f, "wallet {wallet_id} would exceed the maximum balance")
            }
            Self::AmountOverLimit { limit } => write!(f, "the amount is over the limit of {limit}"),
            Self::PaymentDeclined { message } => {
                write!(f, "the payment processor declined the payment: {message}")
            }
            Self::ProcessorUnavailable => {
                write!(f, "the payment processor did not answer in time")
            }
            Self::InjectedFault { step } => write!(f, "fault injected at step {step}"),
        }
    }
}
