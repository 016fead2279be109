//! The external payment processor: [`HttpPaymentProcessor`] speaks its HTTP API (timeouts,
//! retries with backoff), [`GuardedProcessor`] puts a circuit breaker in front of it, and
//! [`ProcessorConfig`] reads how both are tuned from the environment (in `main`).
//!
//! ```text
//! saga ──> GuardedProcessor (circuit breaker) ──> HttpPaymentProcessor (timeout, retries) ──> processor
//! ```

pub mod circuit_breaker;
pub mod http;

use std::time::Duration;

use lambda_toolkit::env::{ConfigError, Environment};
use url::Url;

pub use circuit_breaker::{
    BreakerConfig, CallOutcome, CircuitBreaker, CircuitOpen, CircuitState, Clock, GuardedProcessor,
    Permit, SystemClock,
};
pub use http::{ClientBuildError, HttpPaymentProcessor, RetryPolicy};

/// The environment variables [`ProcessorConfig::from_env`] reads.
pub mod env {
    /// The processor's API root, `http(s)://host[:port][/path]`. Required.
    pub const URL: &str = "PAYMENT_PROCESSOR_URL";
    /// Timeout of each attempt in milliseconds (default 2000).
    pub const TIMEOUT_MS: &str = "PROCESSOR_TIMEOUT_MS";
    /// Attempts per call, the first included (default 3).
    pub const RETRY_ATTEMPTS: &str = "PROCESSOR_RETRY_ATTEMPTS";
    /// Consecutive failures that open the circuit (default 5).
    pub const BREAKER_FAILURES: &str = "PROCESSOR_BREAKER_FAILURES";
    /// How long an open circuit fails fast, in milliseconds (default 5000).
    pub const BREAKER_OPEN_MS: &str = "PROCESSOR_BREAKER_OPEN_MS";
}

/// The processor's configured URL is not one it can be reached at, or its client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorConfigError {
    // The value is not repeated: a URL may carry what should not be logged.
    #[error("{0} must be an http:// or https:// URL without credentials, query or fragment")]
    BadUrl(&'static str),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

/// How the saga talks to the payment processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    /// The processor's API root, checked when the client is built ([`Self::processor`]).
    pub url: String,
    /// Each attempt's timeout, connecting included.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
}

impl ProcessorConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// The configuration with every default, for the processor at `url`.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
        }
    }

    /// Reads the variables of [`env`]; only `PAYMENT_PROCESSOR_URL` is required. The numbers
    /// are bounded: a saga step must finish well inside the function's 30 s timeout.
    pub fn from_env(environment: &Environment) -> Result<Self, ConfigError> {
        let mut config = Self::with_url(environment.required(env::URL)?);
        let number = |name, max, expected| bounded(environment, name, max, expected);
        if let Some(ms) = number(env::TIMEOUT_MS, 60_000, "milliseconds from 1 to 60000")? {
            config.timeout = Duration::from_millis(ms);
        }
        if let Some(n) = number(env::RETRY_ATTEMPTS, 10, "a number of attempts from 1 to 10")? {
            config.retry.attempts = n as u32;
        }
        if let Some(n) = number(env::BREAKER_FAILURES, 1_000, "a count from 1 to 1000")? {
            config.breaker.failure_threshold = n as u32;
        }
        if let Some(ms) = number(
            env::BREAKER_OPEN_MS,
            3_600_000,
            "milliseconds from 1 to 3600000",
        )? {
            config.breaker.open_for = Duration::from_millis(ms);
        }
        Ok(config)
    }

    /// The processor the saga is given: HTTP with retries, behind the circuit breaker.
    pub fn processor(
        &self,
    ) -> Result<GuardedProcessor<HttpPaymentProcessor>, ProcessorConfigError> {
        let url = parse_url(&self.url)?;
        let http = HttpPaymentProcessor::new(&url, self.timeout, self.retry)?;
        Ok(GuardedProcessor::new(http, self.breaker))
    }
}

/// The whole number in `name`, from 1 to `max`, when set.
fn bounded(
    environment: &Environment,
    name: &'static str,
    max: u64,
    expected: &'static str,
) -> Result<Option<u64>, ConfigError> {
    let Some(value) = environment.optional(name) else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ConfigError::Invalid {
            name,
            expected,
            value,
        }),
    }
}

fn parse_url(value: &str) -> Result<Url, ProcessorConfigError> {
    let bad = || ProcessorConfigError::BadUrl(env::URL);
    let url = Url::parse(value.trim()).map_err(|_| bad())?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.has_host()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if plain { Ok(url) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<ProcessorConfig, ConfigError> {
        ProcessorConfig::from_env(&Environment::from_pairs(vars.iter().copied()))
    }

    #[test]
    fn only_the_url_is_required_and_the_rest_has_defaults() {
        let config = config(&[(env::URL, "http://127.0.0.1:4010")]).unwrap();
        assert_eq!(config.url, "http://127.0.0.1:4010");
        assert_eq!(config.timeout, Duration::from_secs(2));
        assert_eq!(
            config.retry,
            RetryPolicy {
                attempts: 3,
                base: Duration::from_millis(50),
                max: Duration::from_secs(1)
            }
        );
        assert_eq!(
            config.breaker,
            BreakerConfig {
                failure_threshold: 5,
                open_for: Duration::from_secs(5),
                half_open_max_calls: 1
            }
        );
    }

    #[test]
    fn every_setting_can_be_set() {
        let config = config(&[
            (env::URL, "https://processor.example/v1"),
            (env::TIMEOUT_MS, "750"),
            (env::RETRY_ATTEMPTS, "5"),
            (env::BREAKER_FAILURES, "2"),
            (env::BREAKER_OPEN_MS, "1500"),
        ])
        .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(750));
        assert_eq!(config.retry.attempts, 5);
        assert_eq!(config.breaker.failure_threshold, 2);
        assert_eq!(config.breaker.open_for, Duration::from_millis(1500));
    }

    #[test]
    fn a_missing_or_empty_url_is_an_error() {
        assert!(matches!(config(&[]), Err(ConfigError::Missing(env::URL))));
        assert!(matches!(
            config(&[(env::URL, " ")]),
            Err(ConfigError::Missing(env::URL))
        ));
    }

    #[test]
    fn urls_that_are_not_plain_http_are_refused_without_echoing_them() {
        for url in [
            "processor.example",
            "ftp://processor.example",
            "https://user:secret@processor.example",
            "https://processor.example/?key=secret",
            "https://processor.example/#x",
        ] {
            let Err(error) = config(&[(env::URL, url)]).unwrap().processor() else {
                panic!("{url} is refused");
            };
            assert!(
                matches!(error, ProcessorConfigError::BadUrl(env::URL)),
                "{url}"
            );
            assert!(!error.to_string().contains("secret"));
        }
    }

    #[test]
    fn numbers_out_of_range_or_not_numbers_are_refused() {
        for (name, value) in [
            (env::TIMEOUT_MS, "0"),
            (env::TIMEOUT_MS, "2s"),
            (env::RETRY_ATTEMPTS, "0"),
            (env::RETRY_ATTEMPTS, "11"),
            (env::BREAKER_FAILURES, "-1"),
            (env::BREAKER_OPEN_MS, "1.5"),
        ] {
            let error = config(&[(env::URL, "http://p.test"), (name, value)]).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Invalid { name: n, value: v, .. } if *n == name && v == value),
                "{name}={value}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn the_configured_processor_starts_closed() {
        let config = config(&[(env::URL, "https://processor.example.invalid")]).unwrap();
        let processor = config
            .processor()
            .expect("the HTTP client builds with rustls");
        assert_eq!(processor.state(), CircuitState::Closed);
    }
}
