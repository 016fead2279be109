//! The configuration the payments functions share, read from their environment (in `main`,
//! into each function's own `Config`).

use lambda_toolkit::env::{ConfigError, Environment};

use crate::TableNames;
use paysaga_domain::{Limits, PaymentLimits};
use paysaga_services::saga::SagaSettings;

/// The CloudWatch namespace of every function's metrics (`MetricsSink::stdout(METRICS_NAMESPACE,
/// service)`), unless its environment's `POWERTOOLS_METRICS_NAMESPACE` names another. The
/// template's alarms and dashboard name it; infra/deploy/checks/code_model.py reads it here.
pub const METRICS_NAMESPACE: &str = "paysaga";

/// The resources a payments function works with.
#[derive(Debug, Clone)]
pub struct Resources {
    pub tables: TableNames,
}

impl Resources {
    /// `WALLETS_TABLE`, `PAYMENTS_TABLE`, `IDEMPOTENCY_TABLE`, and `OUTBOX_TABLE` where the
    /// function makes deposits.
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            tables: TableNames {
                wallets: env.required("WALLETS_TABLE")?,
                payments: env.required("PAYMENTS_TABLE")?,
                idempotency: env.required("IDEMPOTENCY_TABLE")?,
                outbox: env.optional("OUTBOX_TABLE"),
            },
        })
    }
}

/// How the saga behaves: `MAX_PAYMENT_MINOR_UNITS` and `CHARGE_DEADLINE_SECONDS`, each with
/// the default of [`SagaSettings`] when unset.
pub fn saga_settings(env: &Environment) -> Result<SagaSettings, ConfigError> {
    let defaults = SagaSettings::default();
    let max_minor_units =
        env.number_or("MAX_PAYMENT_MINOR_UNITS", defaults.limits.max_minor_units)?;
    let deadline = env.number_or(
        "CHARGE_DEADLINE_SECONDS",
        defaults.charge_deadline.num_seconds().unsigned_abs(),
    )?;
    let charge_deadline = i64::try_from(deadline)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .ok_or(ConfigError::Invalid {
            name: "CHARGE_DEADLINE_SECONDS",
            expected: "a number of seconds",
            value: deadline.to_string(),
        })?;
    Ok(SagaSettings {
        limits: PaymentLimits { max_minor_units },
        charge_deadline,
    })
}

/// The API's limits: `ALLOWED_CURRENCIES` (comma-separated ISO 4217 codes),
/// `MAX_PAYMENT_MINOR_UNITS` (the saga's limit) and `MAX_DEPOSIT_MINOR_UNITS`, each with the
/// default of [`Limits`] when unset.
pub fn limits(env: &Environment) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let currencies = match env.optional("ALLOWED_CURRENCIES") {
        None => defaults.currencies,
        Some(list) => Limits::parse_currencies(&list).map_err(|_| ConfigError::Invalid {
            name: "ALLOWED_CURRENCIES",
            expected: "ISO 4217 codes separated by commas",
            value: list,
        })?,
    };
    Ok(Limits {
        currencies,
        payment: PaymentLimits {
            max_minor_units: env
                .number_or("MAX_PAYMENT_MINOR_UNITS", defaults.payment.max_minor_units)?,
        },
        max_deposit_minor_units: env
            .number_or("MAX_DEPOSIT_MINOR_UNITS", defaults.max_deposit_minor_units)?,
    })
}
