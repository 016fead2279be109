//! What the bench starts (each function's release binary and the two reference binaries) and
//! the representative events it sends them, built from the fixtures in `events/lambda/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use local_lambda::local_function::LocalFunction;
use local_lambda::wiring::{LocalAws, Wiring};
use serde_json::{Value, json};

use crate::calls::LOG_ENVIRONMENT;
use crate::instance::Binary;

/// The binaries every function is compared with.
pub const BARE_RUNTIME: &str = "hello-runtime";
pub const RUNTIME_WITH_SDK: &str = "hello-sdk";

/// Loads the wiring and builds each function's binary with the environment Lambda would give
/// it, logging its AWS calls, publishing on `event_bus` (a scratch bus no rule listens to, so
/// the bench's payments stay the bench's).
pub fn binaries(
    wiring_path: &Path,
    bin_dir: &Path,
    event_bus: &str,
) -> anyhow::Result<Vec<Binary>> {
    let wiring = Wiring::load(wiring_path)?;
    let aws = LocalAws::resolve(&wiring, |name| std::env::var(name).ok());
    let placeholder = "127.0.0.1:9".parse().expect("a socket address");
    let environment_of = |function: &local_lambda::wiring::Function| {
        let local = LocalFunction::new(function, bin_dir, &aws, &[]);
        let mut environment: Vec<(String, String)> = local
            .runtime_environment(placeholder)
            .into_iter()
            .filter(|(name, _)| name != "AWS_LAMBDA_RUNTIME_API" && name != "EVENT_BUS_NAME")
            .collect();
        environment.extend(
            LOG_ENVIRONMENT
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        environment.push(("EVENT_BUS_NAME".to_owned(), event_bus.to_owned()));
        environment.push(("PATH".to_owned(), "/usr/bin:/bin".to_owned()));
        environment
    };
    let mut binaries = Vec::new();
    for function in &wiring.functions {
        binaries.push(Binary {
            name: function.name.clone(),
            program: bin_dir.join(&function.binary),
            environment: environment_of(function),
            timeout: function.timeout(),
        });
    }
    let reference = binaries
        .first()
        .context("the wiring has no function")?
        .environment
        .clone();
    for name in [BARE_RUNTIME, RUNTIME_WITH_SDK] {
        binaries.push(Binary {
            name: name.to_owned(),
            program: bin_dir.join(name),
            environment: reference.clone(),
            timeout: Duration::from_secs(10),
        });
    }
    for binary in &binaries {
        ensure!(
            binary.program.is_file(),
            "{} is missing: make bench builds it (cargo build --release)",
            binary.program.display()
        );
    }
    Ok(binaries)
}

/// The event fixtures.
pub struct Fixtures {
    dir: PathBuf,
}

impl Fixtures {
    pub fn new(repository: &Path) -> Self {
        Self {
            dir: repository.join("events/lambda"),
        }
    }

    fn load(&self, name: &str) -> anyhow::Result<Value> {
        let path = self.dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// An API Gateway HTTP API event of `fixture`, for `path` with its path parameter, `body`
    /// and an idempotency key.
    pub fn api(
        &self,
        fixture: &str,
        path: &str,
        parameter: Option<(&str, &str)>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut event = self.load(fixture)?;
        event["rawPath"] = json!(path);
        event["requestContext"]["http"]["path"] = json!(path);
        if let Some((name, value)) = parameter {
            event["pathParameters"] = json!({ name: value });
        }
        if let Some(body) = body {
            event["body"] = json!(body.to_string());
        }
        match key {
            Some(key) => event["headers"]["idempotency-key"] = json!(key),
            None => {
                if let Some(headers) = event["headers"].as_object_mut() {
                    headers.remove("idempotency-key");
                }
            }
        }
        Ok(event)
    }

    /// An SQS event holding the `PaymentRequested` event of one payment, as the payments
    /// queue's event source mapping delivers it.
    pub fn payment_requested(
        &self,
        payment_id: &str,
        from: &str,
        to: &str,
        minor_units: u64,
    ) -> anyhow::Result<Value> {
        let mut event = self.load("sqs-payment-requested.json")?;
        let record = &mut event["Records"][0];
        let mut body: Value = serde_json::from_str(record["body"].as_str().context("a body")?)?;
        body["detail"]["event_id"] = json!(format!("{payment_id}/1"));
        body["detail"]["data"] = json!({"payment_id": payment_id, "from_wallet": from, "to_wallet": to,
            "amount": {"minor_units": minor_units, "currency": "EUR"}});
        record["body"] = json!(body.to_string());
        record["messageId"] = json!(uuid::Uuid::now_v7().to_string());
        Ok(event)
    }
}

/// An API Gateway response's status and JSON body.
pub fn api_response(response: &Value) -> anyhow::Result<(u64, Value)> {
    let status = response["statusCode"]
        .as_u64()
        .context("an API Gateway response")?;
    let body = response["body"]
        .as_str()
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or(Value::Null);
    Ok((status, body))
}

/// Fails unless an SQS handler's response reports no failed message.
pub fn no_batch_failures(response: &Value) -> anyhow::Result<()> {
    match response["batchItemFailures"].as_array() {
        Some(failures) if failures.is_empty() => Ok(()),
        Some(_) => bail!("the batch failed: {response}"),
        None => bail!("not an SQS batch response: {response}"),
    }
}
