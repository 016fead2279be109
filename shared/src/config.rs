//! Configuration from the environment, read once in each function's `main`.

use crate::aws::TableNames;

/// A required environment variable is missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} must be set (the template sets it for every function)")]
pub struct MissingVariable(pub &'static str);

fn required(name: &'static str) -> Result<String, MissingVariable> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .ok_or(MissingVariable(name))
}

/// The resources a payments function works with.
#[derive(Debug, Clone)]
pub struct Resources {
    pub tables: TableNames,
    pub event_bus_name: String,
}

impl Resources {
    pub fn from_env() -> Result<Self, MissingVariable> {
        Ok(Self {
            tables: TableNames {
                wallets: required("WALLETS_TABLE")?,
                payments: required("PAYMENTS_TABLE")?,
                idempotency: required("IDEMPOTENCY_TABLE")?,
            },
            event_bus_name: required("EVENT_BUS_NAME")?,
        })
    }
}
