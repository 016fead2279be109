//! The function's environment.

use lambda_toolkit::env::{ConfigError, Environment};
use paysaga_aws::config::{Resources, limits};
use paysaga_domain::Limits;

pub struct Config {
    /// `PARKED_MESSAGES_TABLE`: the messages the redrive parked, for replays.
    pub parked_messages_table: String,
    /// `EVENT_STORE_TABLE`: the audit trail, read to rebuild the read models.
    pub event_store_table: String,
    /// `READ_MODELS_TABLE`.
    pub read_models_table: String,
    /// The tables an operator's deposit writes, its announcement in the outbox among them.
    pub resources: Resources,
    /// `OUTBOX_TABLE`: where an operator's deposit and every other action are recorded for the
    /// event relay to publish.
    pub outbox_table: String,
    /// `ALLOWED_CURRENCIES`, `MAX_DEPOSIT_MINOR_UNITS` (an operator's deposit).
    pub limits: Limits,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            parked_messages_table: env.required("PARKED_MESSAGES_TABLE")?,
            event_store_table: env.required("EVENT_STORE_TABLE")?,
            read_models_table: env.required("READ_MODELS_TABLE")?,
            resources: Resources::from_env(env)?,
            outbox_table: env.required("OUTBOX_TABLE")?,
            limits: limits(env)?,
        })
    }
}
