//! The function's environment.

use std::time::Duration;

use lambda_toolkit::env::{ConfigError, Environment};
use paysaga_services::redrive::RedriveSettings;

pub struct Config {
    /// `DEAD_LETTER_QUEUES`: the URLs of the dead-letter queues it serves, comma-separated.
    pub dead_letter_queues: Vec<String>,
    /// `REDRIVE_JOURNAL_TABLE`.
    pub journal_table: String,
    /// `PARKED_MESSAGES_TABLE`.
    pub parked_messages_table: String,
    /// `DEADLINE_CHECKS_QUEUE_URL`: where a payment's request parked on its way to the saga
    /// becomes a check of its payment, for the reconciler to settle it.
    pub deadline_checks_queue_url: String,
    /// `SAGA_QUEUES`: the ARNs of the queues the saga reads, comma-separated.
    pub saga_queues: Vec<String>,
    /// `REDRIVE_MAX_PER_SECOND`, `REDRIVE_MAX_MESSAGES`, `REDRIVE_MAX_REDRIVES`,
    /// `REDRIVE_VISIBILITY_TIMEOUT_SECONDS`; a request may change the first two.
    pub settings: RedriveSettings,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let defaults = RedriveSettings::default();
        let whole = |name, default: u32| {
            let value = env.number_or(name, default.into())?;
            Ok::<_, ConfigError>(u32::try_from(value).unwrap_or(u32::MAX))
        };
        let visibility = env.number_or(
            "REDRIVE_VISIBILITY_TIMEOUT_SECONDS",
            defaults.visibility.as_secs(),
        )?;
        Ok(Self {
            dead_letter_queues: list(&env.required("DEAD_LETTER_QUEUES")?),
            journal_table: env.required("REDRIVE_JOURNAL_TABLE")?,
            parked_messages_table: env.required("PARKED_MESSAGES_TABLE")?,
            deadline_checks_queue_url: env.required("DEADLINE_CHECKS_QUEUE_URL")?,
            saga_queues: list(&env.required("SAGA_QUEUES")?),
            settings: RedriveSettings {
                max_per_second: whole("REDRIVE_MAX_PER_SECOND", defaults.max_per_second)?,
                max_messages: whole("REDRIVE_MAX_MESSAGES", defaults.max_messages)?,
                max_redrives: whole("REDRIVE_MAX_REDRIVES", defaults.max_redrives)?,
                visibility: Duration::from_secs(visibility),
                ..defaults
            },
        })
    }
}

/// The items of a comma-separated list, trimmed, empty ones dropped.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}
