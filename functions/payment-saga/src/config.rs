//! The function's environment.

use lambda_toolkit::env::{ConfigError, Environment};
use lambda_toolkit::sqs_consumer::SqsConsumerSettings;
use paysaga_aws::config::{Resources, saga_settings};
use paysaga_processor::ProcessorConfig;
use paysaga_services::saga::SagaSettings;

pub struct Config {
    /// The tables.
    pub resources: Resources,
    /// `MAX_PAYMENT_MINOR_UNITS`, `CHARGE_DEADLINE_SECONDS`.
    pub saga: SagaSettings,
    /// `PAYMENT_PROCESSOR_URL` and the client's tuning.
    pub processor: ProcessorConfig,
    /// `MAX_RECEIVE_COUNT`, and each queue's DLQ in `DEAD_LETTER_QUEUES`.
    pub consumer: SqsConsumerSettings,
    /// `CONSENT_JWKS` (empty or unset: none), `CONSENT_ISSUER`, `CONSENT_AUDIENCE`: how a
    /// payment requested on the bus proves its payer's consent ([`crate::consent`]).
    pub consent: ConsentSettings,
}

pub struct ConsentSettings {
    pub jwks: String,
    pub issuer: String,
    pub audience: String,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            resources: Resources::from_env(env)?,
            saga: saga_settings(env)?,
            processor: ProcessorConfig::from_env(env)?,
            consumer: SqsConsumerSettings::from_env(env)?,
            consent: ConsentSettings {
                jwks: env.optional("CONSENT_JWKS").unwrap_or_default(),
                issuer: env.required("CONSENT_ISSUER")?,
                audience: env.required("CONSENT_AUDIENCE")?,
            },
        })
    }
}
