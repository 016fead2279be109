//! The function's environment.

use lambda_toolkit::env::{ConfigError, Environment};
use paysaga_aws::config::{Resources, limits};
use paysaga_domain::Limits;

pub struct Config {
    /// The tables and the event bus.
    pub resources: Resources,
    /// `READ_MODELS_TABLE`.
    pub read_models_table: String,
    /// `ALLOWED_CURRENCIES`, `MAX_PAYMENT_MINOR_UNITS`.
    pub limits: Limits,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            resources: Resources::from_env(env)?,
            read_models_table: env.required("READ_MODELS_TABLE")?,
            limits: limits(env)?,
        })
    }
}
