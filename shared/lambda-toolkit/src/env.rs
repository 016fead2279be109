//! A function's environment variables, read once in its `main` into its own typed
//! configuration: the error names what is missing or malformed.
//!
//! Every read goes through an [`Environment`], which remembers the variables asked for and
//! whether each was required. [`Environment::describe`] reads nothing (every variable unset, a
//! required one answered by a placeholder instead of an error), so a configuration type read
//! from it lists the variables it reads, for a deployment check to compare with the template:
//!
//! ```
//! use lambda_toolkit::env::{ConfigError, Environment, Requirement};
//!
//! struct OrdersConfig {
//!     table: String,
//!     batch_size: u64,
//! }
//!
//! impl OrdersConfig {
//!     fn from_env(env: &Environment) -> Result<Self, ConfigError> {
//!         Ok(Self {
//!             table: env.required("ORDERS_TABLE")?,
//!             batch_size: env.number_or("BATCH_SIZE", 10)?,
//!         })
//!     }
//! }
//!
//! let env = Environment::from_pairs([("ORDERS_TABLE", "orders")]);
//! let config = OrdersConfig::from_env(&env).expect("set");
//! assert_eq!((config.table.as_str(), config.batch_size), ("orders", 10));
//! assert!(OrdersConfig::from_env(&Environment::from_pairs([])).is_err());
//!
//! let described = Environment::describe();
//! OrdersConfig::from_env(&described).expect("describing never fails on a missing variable");
//! assert_eq!(
//!     described.variables(),
//!     [("BATCH_SIZE", Requirement::Optional), ("ORDERS_TABLE", Requirement::Required)]
//! );
//! ```
//!
//! A function reads its configuration in `main` with [`load`]: run as
//! `<binary> --describe-config`, it prints the variables instead (JSON) and exits, which is how
//! the deployment checks compare each function with the template without running it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The environment does not configure a function as its deployment should.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} must be set (the function's deployment sets it)")]
    Missing(&'static str),
    #[error("environment variable {name} must be {expected}, not {value:?}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
}

/// Whether a configuration needs a variable set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    Required,
    Optional,
}

/// Where variables are read from, and which were asked for.
pub struct Environment {
    source: Source,
    asked: Mutex<BTreeMap<&'static str, Requirement>>,
}

enum Source {
    Process,
    Pairs(HashMap<String, String>),
    Describe,
}

impl Environment {
    /// The process's environment (what Lambda sets).
    pub fn process() -> Self {
        Self::with(Source::Process)
    }

    /// These variables and no others (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let pairs = pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Self::with(Source::Pairs(pairs))
    }

    /// No variable set, and a required one answered with an empty placeholder: reading a
    /// configuration from it lists its variables ([`Environment::variables`]).
    pub fn describe() -> Self {
        Self::with(Source::Describe)
    }

    fn with(source: Source) -> Self {
        Self {
            source,
            asked: Mutex::new(BTreeMap::new()),
        }
    }

    /// A variable that must be set, and not blank.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.ask(name, Requirement::Required);
        if matches!(self.source, Source::Describe) {
            return Ok(String::new());
        }
        self.value(name).ok_or(ConfigError::Missing(name))
    }

    /// A variable that may be unset (a blank value counts as unset).
    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.ask(name, Requirement::Optional);
        self.value(name)
    }

    /// A whole number, or `default` when the variable is not set.
    pub fn number_or(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
                name,
                expected: "a whole number",
                value,
            }),
        }
    }

    /// Every variable asked for so far, by name, with whether it was required (required wins
    /// when a variable was asked for both ways).
    pub fn variables(&self) -> Vec<(&'static str, Requirement)> {
        self.asked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(name, requirement)| (*name, *requirement))
            .collect()
    }

    fn ask(&self, name: &'static str, requirement: Requirement) {
        let mut asked = self
            .asked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = asked.entry(name).or_insert(requirement);
        *entry = (*entry).min(requirement);
    }

    fn value(&self, name: &str) -> Option<String> {
        let value = match &self.source {
            Source::Process => std::env::var(name).ok(),
            Source::Pairs(pairs) => pairs.get(name).cloned(),
            Source::Describe => None,
        };
        value.filter(|value| !value.trim().is_empty())
    }
}

/// The argument that makes a function print what it reads instead of running ([`load`]).
pub const DESCRIBE_CONFIG: &str = "--describe-config";

/// A function's configuration, read by `read` from the process's environment.
///
/// Run as `<binary> --describe-config`, the process prints instead the variables `read` asks
/// for, as JSON (`{"variables": [{"name": "ORDERS_TABLE", "requirement": "required"}, …]}`),
/// and exits: 0, or 1 when `read` cannot describe itself (it failed on a placeholder).
pub fn load<T, E: std::fmt::Display>(read: impl Fn(&Environment) -> Result<T, E>) -> Result<T, E> {
    if std::env::args().nth(1).as_deref() == Some(DESCRIBE_CONFIG) {
        std::process::exit(describe(read));
    }
    read(&Environment::process())
}

/// Prints what `read` reads (see [`load`]); the process's exit status.
fn describe<T, E: std::fmt::Display>(read: impl Fn(&Environment) -> Result<T, E>) -> i32 {
    let described = Environment::describe();
    if let Err(error) = read(&described) {
        eprintln!("cannot describe the configuration: {error}");
        return 1;
    }
    let variables: Vec<serde_json::Value> = described
        .variables()
        .into_iter()
        .map(|(name, requirement)| serde_json::json!({"name": name, "requirement": requirement}))
        .collect();
    println!("{}", serde_json::json!({ "variables": variables }));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_numbers_and_empty_values_are_told_apart_from_unset_ones() {
        let env = Environment::from_pairs([("N", "x"), ("EMPTY", "")]);
        assert!(matches!(
            env.number_or("N", 1),
            Err(ConfigError::Invalid { name: "N", .. })
        ));
        assert!(matches!(
            env.required("EMPTY"),
            Err(ConfigError::Missing("EMPTY"))
        ));
        assert_eq!(env.number_or("UNSET", 7).ok(), Some(7));
    }

    #[test]
    fn a_variable_asked_for_both_ways_is_required() {
        let env = Environment::describe();
        env.optional("A");
        env.required("A").expect("a placeholder");
        assert_eq!(env.variables(), [("A", Requirement::Required)]);
    }
}
