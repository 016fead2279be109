//! What the owners' doors share (the REST `api`, `graphql`, `wallet-rpc`): their environment,
//! and [`SelfService`] over DynamoDB, built once in each one's `main`.

use std::sync::Arc;

use lambda_toolkit::env::{ConfigError, Environment};
use paysaga_domain::Limits;
use paysaga_services::self_service::SelfService;

use crate::config::{Resources, limits};
use crate::{DynamoDbLedger, DynamoDbReadModels};

/// The environment of a door: the ledger's tables, the read models, the edge's limits.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    /// `WALLETS_TABLE`, `PAYMENTS_TABLE`, `IDEMPOTENCY_TABLE`, and `OUTBOX_TABLE`, where an
    /// urgent request's announcement is written with it.
    pub resources: Resources,
    /// `READ_MODELS_TABLE`.
    pub read_models_table: String,
    /// `ALLOWED_CURRENCIES`, `MAX_PAYMENT_MINOR_UNITS`.
    pub limits: Limits,
}

impl DoorConfig {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let mut resources = Resources::from_env(env)?;
        // An urgent request's announcement is written to the outbox with it.
        resources.tables.outbox = Some(env.required("OUTBOX_TABLE")?);
        Ok(Self {
            resources,
            read_models_table: env.required("READ_MODELS_TABLE")?,
            limits: limits(env)?,
        })
    }
}

/// The owner's operations over the ledger and the read models in DynamoDB.
pub fn self_service(sdk: &aws_config::SdkConfig, config: DoorConfig) -> SelfService {
    let ledger = Arc::new(DynamoDbLedger::from_config(sdk, config.resources.tables));
    SelfService {
        wallets: ledger.clone(),
        payments: ledger.clone(),
        directory: ledger,
        read_models: Arc::new(DynamoDbReadModels::from_config(
            sdk,
            config.read_models_table,
        )),
        limits: config.limits,
    }
}
