//! The function's environment.

use lambda_toolkit::env::{ConfigError, Environment};
use lambda_toolkit::sqs_consumer::SqsConsumerSettings;
use paysaga_aws::config::{Resources, saga_settings};
use paysaga_processor::ProcessorConfig;
use paysaga_services::saga::SagaSettings;

pub struct Config {
    /// The tables and the event bus.
    pub resources: Resources,
    /// `MAX_PAYMENT_MINOR_UNITS`, `CHARGE_DEADLINE_SECONDS`.
    pub saga: SagaSettings,
    /// `PAYMENT_PROCESSOR_URL` and the client's tuning.
    pub processor: ProcessorConfig,
    /// `MAX_RECEIVE_COUNT`, and each queue's DLQ in `DEAD_LETTER_QUEUES`.
    pub consumer: SqsConsumerSettings,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            resources: Resources::from_env(env)?,
            saga: saga_settings(env)?,
            processor: ProcessorConfig::from_env(env)?,
            consumer: SqsConsumerSettings::from_env(env)?,
        })
    }
}
