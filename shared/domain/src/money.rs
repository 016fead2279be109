//! Money: integer minor units of an ISO 4217 currency. There is no floating point anywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The largest amount (in minor units) paysaga accepts anywhere: 10^15 minor units
/// (ten trillion euros). It keeps every amount exact as a JSON number in any client
/// (below 2^53) and leaves head-room so sums of balances cannot overflow a `u64`.
pub const MAX_MINOR_UNITS: u64 = 1_000_000_000_000_000;

/// Why a currency code or an amount was refused, or an arithmetic step could not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not an ISO 4217 currency code of a circulating currency")]
    UnknownCurrency(String),
    /// The message leaves the amount out: a number that large may be a card number.
    #[error("amount exceeds the maximum of {MAX_MINOR_UNITS} minor units")]
    TooLarge(u64),
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("subtracting {subtrahend} from {minuend} would go below zero")]
    Insufficient { minuend: u64, subtrahend: u64 },
}

/// An ISO 4217 currency that has minor units (funds, precious metals and test codes are refused).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// The three-letter code, e.g. `EUR`.
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// How many decimal places the minor unit has: 2 for EUR, 0 for JPY, 3 for KWD.
    pub fn minor_unit_exponent(self) -> u16 {
        // Only currencies with a defined exponent can be constructed (see `FromStr`).
        self.0.exponent().unwrap_or(0)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        let unknown = || MoneyError::UnknownCurrency(code.chars().take(8).collect());
        let currency = iso_currency::Currency::from_code(code).ok_or_else(unknown)?;
        if currency.exponent().is_none() || currency.is_fund() || currency.is_special() {
            return Err(unknown());
        }
        Ok(Self(currency))
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(code: String) -> Result<Self, Self::Error> {
        code.parse()
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.code().to_owned()
    }
}

/// A three-letter ISO 4217 code, as a JSON Schema (the code must also name a currency with
/// minor units, which a pattern cannot say).
impl schemars::JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An ISO 4217 currency code with minor units, e.g. EUR (funds, precious metals and test codes are refused).",
            "type": "string",
            "pattern": "^[A-Z]{3}$",
        })
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount of money: a whole number of minor units (cents for EUR) of one currency.
/// Zero is a valid balance; amounts that move money are [`Money::positive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMoney")]
pub struct Money {
    minor_units: u64,
    currency: Currency,
}

/// The wire shape of [`Money`], checked on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMoney {
    minor_units: u64,
    currency: Currency,
}

/// Integer minor units up to [`MAX_MINOR_UNITS`] and a currency; nothing else.
impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let currency = generator.subschema_for::<Currency>();
        schemars::json_schema!({
            "description": "An amount: a whole number of minor units (cents for EUR) of one currency. Never a float.",
            "type": "object",
            "properties": {
                "minor_units": { "type": "integer", "minimum": 0, "maximum": MAX_MINOR_UNITS },
                "currency": currency,
            },
            "required": ["minor_units", "currency"],
            "additionalProperties": false,
        })
    }
}

impl TryFrom<RawMoney> for Money {
    type Error = MoneyError;
    fn try_from(raw: RawMoney) -> Result<Self, Self::Error> {
        Money::new(raw.minor_units, raw.currency)
    }
}

impl Money {
    /// Any amount from zero to [`MAX_MINOR_UNITS`].
    pub fn new(minor_units: u64, currency: Currency) -> Result<Self, MoneyError> {
        if minor_units > MAX_MINOR_UNITS {
            return Err(MoneyError::TooLarge(minor_units));
        }
        Ok(Self {
            minor_units,
            currency,
        })
    }

    /// An amount that can be moved: greater than zero.
    pub fn positive(minor_units: u64, currency: Currency) -> Result<Self, MoneyError> {
        if minor_units == 0 {
            return Err(MoneyError::NotPositive);
        }
        Self::new(minor_units, currency)
    }

    pub fn zero(currency: Currency) -> Self {
        Self {
            minor_units: 0,
            currency,
        }
    }

    pub fn minor_units(self) -> u64 {
        self.minor_units
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    pub fn is_zero(self) -> bool {
        self.minor_units == 0
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .minor_units
            .checked_add(other.minor_units)
            .ok_or(MoneyError::TooLarge(u64::MAX))?;
        Money::new(sum, self.currency)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let difference =
            self.minor_units
                .checked_sub(other.minor_units)
                .ok_or(MoneyError::Insufficient {
                    minuend: self.minor_units,
                    subtrahend: other.minor_units,
                })?;
        Money::new(difference, self.currency)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// `12.50 EUR`, `1250 JPY`: decimal places from the currency, computed with integers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = u32::from(self.currency.minor_unit_exponent());
        let scale = 10u64.pow(exponent);
        let (major, minor) = (self.minor_units / scale, self.minor_units % scale);
        if exponent == 0 {
            write!(f, "{major} {}", self.currency)
        } else {
            write!(
                f,
                "{major}.{minor:0width$} {}",
                self.currency,
                width = exponent as usize
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        "EUR".parse().expect("EUR is a currency")
    }

    #[test]
    fn currencies_parse_from_iso_codes_only() {
        assert_eq!(eur().code(), "EUR");
        assert_eq!(
            "JPY".parse::<Currency>().map(|c| c.minor_unit_exponent()),
            Ok(0)
        );
        assert_eq!(
            "KWD".parse::<Currency>().map(|c| c.minor_unit_exponent()),
            Ok(3)
        );
        for bad in ["eur", "EURO", "", "XXX", "XAU", "ABC"] {
            assert!(bad.parse::<Currency>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn addition_and_subtraction_are_exact_and_checked() {
        let a = Money::new(1_005, eur()).unwrap();
        let b = Money::new(995, eur()).unwrap();
        assert_eq!(a.checked_add(b).unwrap().minor_units(), 2_000);
        assert_eq!(a.checked_sub(b).unwrap().minor_units(), 10);
        assert_eq!(
            b.checked_sub(a),
            Err(MoneyError::Insufficient {
                minuend: 995,
                subtrahend: 1_005
            })
        );
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies() {
        let usd: Currency = "USD".parse().unwrap();
        let a = Money::new(1, eur()).unwrap();
        let b = Money::new(1, usd).unwrap();
        assert!(matches!(
            a.checked_add(b),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert!(matches!(
            a.checked_sub(b),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn amounts_are_bounded() {
        assert_eq!(Money::positive(0, eur()), Err(MoneyError::NotPositive));
        assert!(Money::new(MAX_MINOR_UNITS, eur()).is_ok());
        assert_eq!(
            Money::new(MAX_MINOR_UNITS + 1, eur()),
            Err(MoneyError::TooLarge(MAX_MINOR_UNITS + 1))
        );
        let max = Money::new(MAX_MINOR_UNITS, eur()).unwrap();
        assert!(max.checked_add(Money::new(1, eur()).unwrap()).is_err());
    }

    #[test]
    fn displays_with_the_currency_exponent() {
        assert_eq!(Money::new(1_250, eur()).unwrap().to_string(), "12.50 EUR");
        assert_eq!(Money::new(7, eur()).unwrap().to_string(), "0.07 EUR");
        assert_eq!(
            Money::new(1_250, "JPY".parse().unwrap())
                .unwrap()
                .to_string(),
            "1250 JPY"
        );
        assert_eq!(
            Money::new(1_250, "KWD".parse().unwrap())
                .unwrap()
                .to_string(),
            "1.250 KWD"
        );
    }

    #[test]
    fn json_shape_is_minor_units_and_code() {
        let money = Money::new(1_250, eur()).unwrap();
        let json = serde_json::to_value(money).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"minor_units": 1250, "currency": "EUR"})
        );
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), money);
        for bad in [
            serde_json::json!({"minor_units": 12.5, "currency": "EUR"}),
            serde_json::json!({"minor_units": -1, "currency": "EUR"}),
            serde_json::json!({"minor_units": 1, "currency": "EURO"}),
            serde_json::json!({"minor_units": 1, "currency": "EUR", "extra": 1}),
            serde_json::json!({"minor_units": MAX_MINOR_UNITS + 1, "currency": "EUR"}),
        ] {
            assert!(
                serde_json::from_value::<Money>(bad.clone()).is_err(),
                "{bad} accepted"
            );
        }
    }
}
