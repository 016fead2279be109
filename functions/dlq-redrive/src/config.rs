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
            dead_letter_queues: env
                .required("DEAD_LETTER_QUEUES")?
                .split(',')
                .map(|url| url.trim().to_owned())
                .filter(|url| !url.is_empty())
                .collect(),
            journal_table: env.required("REDRIVE_JOURNAL_TABLE")?,
            parked_messages_table: env.required("PARKED_MESSAGES_TABLE")?,
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
