//! The edge's limits ([`paysaga_domain::Limits`]): an amount above the maximum, or a currency
//! wallets may not hold, is a 422 whose message says what is allowed.

use paysaga_domain::{LimitRefusal, Limits, Money};

use crate::ApiError;

/// A refusal as a 422: `currency_not_allowed` or `amount_over_limit`.
pub(crate) fn refused(refusal: LimitRefusal) -> ApiError {
    ApiError::Unprocessable {
        code: refusal.code(),
        message: refusal.to_string(),
    }
}

/// Ok when a payment of `amount` is within the limits.
pub(crate) fn payment(limits: &Limits, amount: Money) -> Result<(), ApiError> {
    limits.check_payment(amount).map_err(refused)
}
