//! A function's environment variables, read once in its `main`: the error names what is
//! missing or malformed.

/// The environment does not configure a function as its deployment should.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} must be set (the template sets it for every function)")]
    Missing(&'static str),
    #[error("environment variable {name} must be {expected}, not {value:?}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
}

/// A variable that must be set, and not empty.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// A whole number from the environment, or `default` when the variable is not set.
pub fn number_or(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            expected: "a whole number",
            value,
        }),
    }
}
