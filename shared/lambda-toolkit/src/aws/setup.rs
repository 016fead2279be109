//! The AWS SDK set-up of a function, built from the Lambda environment in well under a
//! millisecond.
//!
//! `aws_config::load_defaults` walks provider chains (environment, profile files, SSO, web
//! identity, container and instance metadata) and makes its HTTPS client trust every root
//! certificate of the system, parsing ~150 of them from PEM: 5-6 ms of a cold start, as measured
//! on a function, which is twice a bare `lambda_runtime` binary's whole init. In Lambda the
//! environment already holds everything that chain would find first (credentials in
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; the region in
//! `AWS_REGION`), so when they are set the configuration is built from them directly:
//!
//! - credentials and region: from the environment, as the default chains would resolve them;
//! - endpoints: `AWS_ENDPOINT_URL_<SERVICE>` (`AWS_ENDPOINT_URL_DYNAMODB`, ...), then
//!   `AWS_ENDPOINT_URL`, as the SDK documents them; `AWS_USE_FIPS_ENDPOINT` and
//!   `AWS_USE_DUALSTACK_ENDPOINT`;
//! - TLS: rustls (with *ring*, which a function's other HTTPS clients can share) trusting the
//!   roots of Amazon Trust Services, which every AWS endpoint's certificate chains to: 5
//!   certificates instead of the system's ~150. `AWS_CA_BUNDLE` names a PEM file to trust
//!   instead (a TLS-inspecting proxy, a private CA in front of an emulator).
//!
//! A function's [`sdk_config`] reads nothing else: without credentials and a region in the
//! environment it fails, saying so. That keeps the default provider chains, and the STS client
//! they link, out of every function's binary (about 0.1 MB of each arm64 zip). Command-line tools
//! run anywhere (a laptop with profiles or SSO): [`sdk_config_or_default_chains`] falls back to
//! `load_defaults` there, with the same HTTPS client. Retries, timeouts, the identity cache and
//! stalled-stream protection are the SDK clients' own defaults in every case.

use std::path::PathBuf;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

/// The root certificates of Amazon Trust Services, with their provenance and fingerprints.
const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("amazon-trust-services.pem");

/// Why the SDK could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read the certificate bundle named by AWS_CA_BUNDLE ({path}): {source}")]
    CaBundle {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error(
        "AWS_REGION (or AWS_DEFAULT_REGION) and AWS_ACCESS_KEY_ID must be set, as Lambda sets them \
         for a function; command-line tools use sdk_config_or_default_chains"
    )]
    NotInLambda,
}

/// The SDK configuration of a function, from the Lambda environment (see the module docs).
pub async fn sdk_config() -> Result<SdkConfig, SetupError> {
    let http_client = https_client(std::env::var_os("AWS_CA_BUNDLE").map(PathBuf::from))?;
    from_lambda_environment(http_client, |name| std::env::var(name).ok())
        .ok_or(SetupError::NotInLambda)
}

/// The SDK configuration of a command-line tool: from the environment when it holds credentials
/// and a region, as in Lambda, else from the default provider chains (profiles, SSO, ...).
pub async fn sdk_config_or_default_chains() -> Result<SdkConfig, SetupError> {
    let http_client = https_client(std::env::var_os("AWS_CA_BUNDLE").map(PathBuf::from))?;
    match from_lambda_environment(http_client.clone(), |name| std::env::var(name).ok()) {
        Some(config) => Ok(config),
        None => Ok(aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .load()
            .await),
    }
}

/// The configuration the environment (`variable`) describes, if it holds credentials and a
/// region.
fn from_lambda_environment(
    http_client: SharedHttpClient,
    variable: impl Fn(&str) -> Option<String>,
) -> Option<SdkConfig> {
    let environment = |name| variable(name).filter(|value: &String| !value.is_empty());
    let region = environment("AWS_REGION").or_else(|| environment("AWS_DEFAULT_REGION"))?;
    environment("AWS_ACCESS_KEY_ID")?;
    let flag = |name| environment(name).is_some_and(|value| value.eq_ignore_ascii_case("true"));
    Some(
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(SharedCredentialsProvider::new(
                EnvironmentVariableCredentialsProvider::new(),
            ))
            .http_client(http_client)
            .service_config(EnvironmentEndpoints {
                variable: |name| std::env::var(name).ok(),
            })
            .use_fips(flag("AWS_USE_FIPS_ENDPOINT"))
            .use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT"))
            .build(),
    )
}

/// The HTTPS client of every SDK client: rustls with *ring*, trusting Amazon Trust Services'
/// roots, or the certificates of `ca_bundle`.
fn https_client(ca_bundle: Option<PathBuf>) -> Result<SharedHttpClient, SetupError> {
    let roots = match ca_bundle {
        None => AMAZON_TRUST_SERVICES.to_vec(),
        Some(path) => {
            std::fs::read(&path).map_err(|source| SetupError::CaBundle { path, source })?
        }
    };
    let context = TlsContext::builder()
        .with_trust_store(
            TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(roots),
        )
        .build()
        .map_err(|error| SetupError::Tls(error.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https())
}

/// Endpoints from `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL` (the SDK's service
/// configuration keys, read from the environment only).
#[derive(Debug)]
struct EnvironmentEndpoints {
    variable: fn(&str) -> Option<String>,
}

impl LoadServiceConfig for EnvironmentEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_uppercase().replace(' ', "_");
        [format!("{}_{service}", key.env()), key.env().to_owned()]
            .iter()
            .find_map(|name| (self.variable)(name).filter(|value| !value.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn amazon_trust_services_bundle_holds_its_five_roots() {
        let certificates = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES)
            .collect::<Result<Vec<_>, _>>()
            .expect("the bundle parses");
        assert_eq!(certificates.len(), 5);
    }

    #[test]
    fn a_function_is_configured_from_the_lambda_environment_only() {
        let client = || https_client(None).expect("the built-in roots");
        let lambda = |name: &str| match name {
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
            _ => None,
        };
        let config = from_lambda_environment(client(), lambda).expect("Lambda's variables");
        assert_eq!(config.region().map(Region::as_ref), Some("eu-west-1"));
        // No credentials, or no region: not Lambda's environment.
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID"] {
            let partial = |name: &str| (name != missing).then(|| lambda(name)).flatten();
            assert!(
                from_lambda_environment(client(), partial).is_none(),
                "{missing}"
            );
        }
    }

    #[test]
    fn a_missing_ca_bundle_is_a_clear_error() {
        let error =
            https_client(Some(PathBuf::from("/nonexistent/bundle.pem"))).expect_err("no such file");
        assert!(
            error.to_string().contains("/nonexistent/bundle.pem"),
            "{error}"
        );
    }

    #[test]
    fn service_endpoints_come_before_the_general_one() {
        let endpoints = EnvironmentEndpoints {
            variable: |name| match name {
                "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:4566".to_owned()),
                "AWS_ENDPOINT_URL_DYNAMODB" => Some("http://127.0.0.1:8000".to_owned()),
                "AWS_ENDPOINT_URL_EVENTBRIDGE" => Some(String::new()),
                _ => None,
            },
        };
        let endpoint = |service| {
            let key = ServiceConfigKey::builder()
                .service_id(service)
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .expect("all fields set");
            endpoints.load_config(key)
        };
        assert_eq!(
            endpoint("DynamoDB").as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(endpoint("SQS").as_deref(), Some("http://127.0.0.1:4566"));
        // Set but empty counts as unset.
        assert_eq!(
            endpoint("EventBridge").as_deref(),
            Some("http://127.0.0.1:4566")
        );
    }
}
