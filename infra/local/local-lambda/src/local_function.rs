//! A function as local-lambda runs it: its binary, its limits and the environment Lambda
//! would give it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::runtime_api::FunctionIdentity;
use crate::wiring::{self, LocalAws};

/// Account id LocalStack uses; only appears in ARNs (the function's, a schedule's rule).
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";
/// Lambda's limit on the init phase of an on-demand environment.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Variables taken from local-lambda's own environment when set. Everything else a function
/// sees is set explicitly, as in Lambda, so a developer's shell (an `AWS_PROFILE`, say)
/// cannot leak into it.
const INHERITED_VARIABLES: &[&str] = &[
    "PATH",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "NO_COLOR",
    "AWS_LAMBDA_LOG_FORMAT",
    "AWS_LAMBDA_LOG_LEVEL",
];

/// Picks the inherited variables out of an environment lookup (in `main`, `std::env::var`).
pub fn inherited_environment(env_var: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    INHERITED_VARIABLES
        .iter()
        .filter_map(|name| env_var(name).map(|value| ((*name).to_owned(), value)))
        .collect()
}

#[derive(Debug, Clone)]
pub struct LocalFunction {
    pub name: String,
    pub arn: String,
    pub program: PathBuf,
    pub timeout: Duration,
    pub init_timeout: Duration,
    /// Everything but the variables that depend on how one process is run
    /// (`AWS_LAMBDA_RUNTIME_API`, `PAYSAGA_LOCAL_HTTP_ADDR`).
    environment: BTreeMap<String, String>,
}

impl LocalFunction {
    pub fn new(
        function: &wiring::Function,
        bin_dir: &Path,
        aws: &LocalAws,
        inherited: &[(String, String)],
    ) -> Self {
        let mut environment = BTreeMap::new();
        // Later entries win: the function's own variables cannot override what Lambda reserves.
        environment.extend(function.environment.clone());
        environment.extend(inherited.iter().cloned());
        environment.extend(aws.function_environment());
        let reserved = [
            ("AWS_LAMBDA_FUNCTION_NAME", function.name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                function.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", function.name),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", function.name),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("TZ", ":UTC".to_owned()),
        ];
        environment.extend(
            reserved
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        LocalFunction {
            name: function.name.clone(),
            arn: format!(
                "arn:aws:lambda:{}:{LOCAL_ACCOUNT_ID}:function:{}",
                aws.region, function.name
            ),
            program: bin_dir.join(&function.binary),
            timeout: function.timeout(),
            init_timeout: INIT_TIMEOUT,
            environment,
        }
    }

    pub fn identity(&self) -> FunctionIdentity {
        FunctionIdentity {
            arn: self.arn.clone(),
            timeout: self.timeout,
        }
    }

    /// The environment of a process that talks to the Runtime API at `runtime_api`.
    pub fn runtime_environment(&self, runtime_api: SocketAddr) -> Vec<(String, String)> {
        self.environment_with("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
    }

    /// The environment of a process that serves its HTTP routes itself on `address`.
    pub fn http_environment(&self, address: SocketAddr) -> Vec<(String, String)> {
        self.environment_with("PAYSAGA_LOCAL_HTTP_ADDR", address.to_string())
    }

    fn environment_with(&self, name: &str, value: String) -> Vec<(String, String)> {
        let mut environment = self.environment.clone();
        environment.insert(name.to_owned(), value);
        environment.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function() -> wiring::Function {
        serde_json::from_value(serde_json::json!({
            "logical_id": "PaymentSagaFunction",
            "name": "payment-saga",
            "binary": "payment-saga",
            "timeout_seconds": 30,
            "memory_mb": 256,
            "environment": { "WALLETS_TABLE": "wallets", "AWS_REGION": "eu-west-1" }
        }))
        .expect("valid function")
    }

    fn aws() -> LocalAws {
        LocalAws {
            region: "us-east-1".to_owned(),
            endpoint_url: "http://127.0.0.1:4566".to_owned(),
            dynamodb_endpoint_url: Some("http://127.0.0.1:8000".to_owned()),
            access_key_id: "test".to_owned(),
            secret_access_key: "test".to_owned(),
        }
    }

    #[test]
    fn runtime_environment_has_lambda_and_local_aws_variables() {
        let inherited = inherited_environment(|name| match name {
            "RUST_LOG" => Some("debug".to_owned()),
            "AWS_PROFILE" => Some("production".to_owned()),
            _ => None,
        });
        let local = LocalFunction::new(&function(), Path::new("target/debug"), &aws(), &inherited);
        assert_eq!(local.program, Path::new("target/debug/payment-saga"));
        assert_eq!(
            local.arn,
            "arn:aws:lambda:us-east-1:000000000000:function:payment-saga"
        );
        let environment: BTreeMap<_, _> = local
            .runtime_environment("127.0.0.1:9001".parse().expect("address"))
            .into_iter()
            .collect();
        let get = |name: &str| environment.get(name).map(String::as_str);
        assert_eq!(get("AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_NAME"), Some("payment-saga"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("256"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_VERSION"), Some("$LATEST"));
        assert_eq!(get("WALLETS_TABLE"), Some("wallets"));
        // Reserved: the function's own AWS_REGION loses to the stack's region.
        assert_eq!(get("AWS_REGION"), Some("us-east-1"));
        assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:4566"));
        assert_eq!(
            get("AWS_ENDPOINT_URL_DYNAMODB"),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(get("RUST_LOG"), Some("debug"));
        assert_eq!(get("AWS_PROFILE"), None);
        assert_eq!(get("PAYSAGA_LOCAL_HTTP_ADDR"), None);
    }

    #[test]
    fn http_environment_names_the_address_to_serve_on() {
        let local = LocalFunction::new(&function(), Path::new("bin"), &aws(), &[]);
        let environment = local.http_environment("127.0.0.1:3000".parse().expect("address"));
        assert!(
            environment
                .iter()
                .any(|(name, value)| name == "PAYSAGA_LOCAL_HTTP_ADDR" && value == "127.0.0.1:3000")
        );
        assert!(
            !environment
                .iter()
                .any(|(name, _)| name == "AWS_LAMBDA_RUNTIME_API")
        );
    }
}
