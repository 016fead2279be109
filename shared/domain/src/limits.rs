//! What the API accepts at its edge: the currencies wallets may hold, and the largest payment
//! and deposit. Read once from configuration (`ALLOWED_CURRENCIES`, `MAX_PAYMENT_MINOR_UNITS`,
//! `MAX_DEPOSIT_MINOR_UNITS`; [`paysaga_aws::config::limits_from_env`]), passed to the API as a plain
//! value.
//!
//! The payment limit is the saga's own ([`PaymentLimits`], the same variable): the API refuses
//! an amount the saga would fail anyway, at once and with a 422, and the saga keeps its check
//! for payments that reach the bus another way.
//!
//! By default wallets hold EUR, USD or GBP. A limit is a number of minor units, whatever the
//! currency: allowing only currencies with two decimals keeps one figure meaning about the
//! same amount everywhere (100,000,000 minor units is 1,000,000.00 EUR, but 100,000,000 JPY,
//! about 600,000 EUR, and 100,000.000 KWD). An operator who adds JPY or KWD should know this.

use std::fmt;

use super::money::{Currency, Money};
use super::saga::PaymentLimits;

/// The currencies of [`Limits::default`].
pub const DEFAULT_CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];

/// The edge's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wallets can be opened in these currencies only (so money moves in these only).
    pub currencies: Vec<Currency>,
    /// The largest payment (the saga's limit).
    pub payment: PaymentLimits,
    /// The largest single deposit, in minor units.
    pub max_deposit_minor_units: u64,
}

impl Default for Limits {
    /// EUR, USD and GBP; payments and deposits up to 100,000,000 minor units (1,000,000.00).
    fn default() -> Self {
        Self {
            currencies: DEFAULT_CURRENCIES
                .iter()
                .map(|code| {
                    code.parse()
                        .expect("the default currencies are ISO 4217 codes")
                })
                .collect(),
            payment: PaymentLimits::default(),
            max_deposit_minor_units: PaymentLimits::default().max_minor_units,
        }
    }
}

/// Why an amount or a currency is refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    #[error("{currency} is not accepted; wallets can hold {}", Codes(.allowed))]
    CurrencyNotAllowed {
        currency: Currency,
        allowed: Vec<Currency>,
    },
    #[error("a {what} moves at most {limit}")]
    AmountOverLimit { what: &'static str, limit: Money },
}

impl LimitRefusal {
    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CurrencyNotAllowed { .. } => "currency_not_allowed",
            Self::AmountOverLimit { .. } => "amount_over_limit",
        }
    }
}

/// `EUR, USD, GBP`.
struct Codes<'a>(&'a [Currency]);

impl fmt::Display for Codes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, currency) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(currency.code())?;
        }
        Ok(())
    }
}

/// A limit setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("ALLOWED_CURRENCIES must list ISO 4217 codes separated by commas: {0}")]
    Currency(String),
    #[error("ALLOWED_CURRENCIES lists no currency")]
    NoCurrency,
}

impl Limits {
    /// The currencies of a comma-separated list (`EUR,USD`), each an ISO 4217 code.
    pub fn parse_currencies(list: &str) -> Result<Vec<Currency>, LimitsError> {
        let mut currencies: Vec<Currency> = Vec::new();
        for code in list
            .split(',')
            .map(str::trim)
            .filter(|code| !code.is_empty())
        {
            let currency = code
                .parse()
                .map_err(|error: super::MoneyError| LimitsError::Currency(error.to_string()))?;
            if !currencies.contains(&currency) {
                currencies.push(currency);
            }
        }
        if currencies.is_empty() {
            return Err(LimitsError::NoCurrency);
        }
        Ok(currencies)
    }

    /// Ok when wallets may hold `currency`.
    pub fn check_currency(&self, currency: Currency) -> Result<(), LimitRefusal> {
        if self.currencies.contains(&currency) {
            Ok(())
        } else {
            Err(LimitRefusal::CurrencyNotAllowed {
                currency,
                allowed: self.currencies.clone(),
            })
        }
    }

    /// Ok when a payment of `amount` is within the limits.
    pub fn check_payment(&self, amount: Money) -> Result<(), LimitRefusal> {
        self.check_currency(amount.currency())?;
        over("payment", amount, self.payment.max_minor_units)
    }

    /// Ok when a deposit of `amount` is within the limits.
    pub fn check_deposit(&self, amount: Money) -> Result<(), LimitRefusal> {
        self.check_currency(amount.currency())?;
        over("deposit", amount, self.max_deposit_minor_units)
    }
}

fn over(what: &'static str, amount: Money, max_minor_units: u64) -> Result<(), LimitRefusal> {
    if amount.minor_units() <= max_minor_units {
        return Ok(());
    }
    // A configured maximum above what `Money` holds is no limit below it.
    match Money::new(max_minor_units, amount.currency()) {
        Ok(limit) => Err(LimitRefusal::AmountOverLimit { what, limit }),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor_units: u64, code: &str) -> Money {
        Money::new(minor_units, code.parse().unwrap()).unwrap()
    }

    #[test]
    fn the_defaults_are_eur_usd_gbp_and_a_million_each() {
        let limits = Limits::default();
        assert_eq!(limits.check_payment(money(100_000_000, "EUR")), Ok(()));
        assert_eq!(limits.check_deposit(money(100_000_000, "GBP")), Ok(()));
        let refused = limits.check_payment(money(100_000_001, "USD")).unwrap_err();
        assert_eq!(refused.code(), "amount_over_limit");
        assert_eq!(
            refused.to_string(),
            "a payment moves at most 1000000.00 USD"
        );
        let refused = limits.check_currency("JPY".parse().unwrap()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "JPY is not accepted; wallets can hold EUR, USD, GBP"
        );
        assert_eq!(refused.code(), "currency_not_allowed");
    }

    #[test]
    fn deposits_and_payments_have_their_own_maximum() {
        let limits = Limits {
            max_deposit_minor_units: 500,
            payment: PaymentLimits {
                max_minor_units: 1_000,
            },
            ..Limits::default()
        };
        assert!(limits.check_deposit(money(501, "EUR")).is_err());
        assert_eq!(limits.check_payment(money(501, "EUR")), Ok(()));
        assert!(limits.check_payment(money(1_001, "EUR")).is_err());
        assert!(matches!(
            limits.check_deposit(money(1, "JPY")),
            Err(LimitRefusal::CurrencyNotAllowed { .. })
        ));
    }

    #[test]
    fn currency_lists_are_iso_codes_separated_by_commas() {
        let currencies = Limits::parse_currencies(" EUR,JPY ,EUR,").unwrap();
        let codes: Vec<&str> = currencies.iter().map(|c| c.code()).collect();
        assert_eq!(codes, ["EUR", "JPY"]);
        assert_eq!(
            Limits::parse_currencies(" , "),
            Err(LimitsError::NoCurrency)
        );
        assert!(matches!(
            Limits::parse_currencies("EUR,euro"),
            Err(LimitsError::Currency(_))
        ));
    }
}
