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
/// The three flows of the saga, as the bench drives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchFlow {
    /// A payment from one wallet to another.
    Transfer,
    /// Money into a wallet, charged to a funding instrument.
    TopUp,
    /// Money out of a wallet, to a destination outside paysaga.
    Payout,
}

impl BenchFlow {
    pub const FUNDING_INSTRUMENT: &str = "fi_bench_card";
    pub const DESTINATION: &str = "dst_bench_bank";

    pub fn name(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::TopUp => "top-up",
            Self::Payout => "payout",
        }
    }

    fn requested_type(self) -> &'static str {
        match self {
            Self::Transfer => "PaymentRequested",
            Self::TopUp => "TopUpRequested",
            Self::Payout => "PayoutRequested",
        }
    }

    /// The API call that submits one: its fixture, path, path parameter and body.
    pub fn submission(
        self,
        (payer, payee): (&str, &str),
        minor_units: u64,
    ) -> (&'static str, String, Option<(&'static str, String)>, Value) {
        let amount = json!({"minor_units": minor_units, "currency": "EUR"});
        match self {
            Self::Transfer => (
                "apigw-submit-payment.json",
                "/payments".to_owned(),
                None,
                json!({"from_wallet": payer, "to_wallet": payee, "amount": amount}),
            ),
            Self::TopUp => (
                "apigw-top-up.json",
                format!("/wallets/{payee}/top-ups"),
                Some(("wallet_id", payee.to_owned())),
                json!({"funding_instrument": Self::FUNDING_INSTRUMENT, "amount": amount}),
            ),
            Self::Payout => (
                "apigw-payout.json",
                format!("/wallets/{payer}/payouts"),
                Some(("wallet_id", payer.to_owned())),
                json!({"destination": Self::DESTINATION, "amount": amount}),
            ),
        }
    }
}

pub struct Fixtures {
    dir: PathBuf,
    /// The payer's consent the requested payments carry (a development token of the sample
    /// events' caller, who owns the bench's wallets), when given.
    consent: Option<String>,
}

impl Fixtures {
    pub fn new(repository: &Path) -> Self {
        Self {
            dir: repository.join("events/lambda"),
            consent: None,
        }
    }

    /// Requested payments carry `token` as their payer's consent (`detail.consent`).
    pub fn with_consent(self, token: String) -> Self {
        Self {
            consent: Some(token),
            ..self
        }
    }

    /// `body`'s detail with the consent token, when the body is a requested payment carrying
    /// one (the sample's placeholder).
    fn consented(&self, body: &mut Value) {
        if let Some(token) = &self.consent
            && body["detail"].get("consent").is_some()
        {
            body["detail"]["consent"] = json!({ "bearer_token": token });
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
        self.requested(BenchFlow::Transfer, payment_id, (from, to), minor_units)
    }

    /// An SQS event holding the requested event (`PaymentRequested`, `TopUpRequested` or
    /// `PayoutRequested`) of one payment of `flow` between `payer` and `payee` (a top-up
    /// credits the payee from a funding instrument; a payout debits the payer to a
    /// destination).
    pub fn requested(
        &self,
        flow: BenchFlow,
        payment_id: &str,
        (payer, payee): (&str, &str),
        minor_units: u64,
    ) -> anyhow::Result<Value> {
        let mut event = self.load("sqs-payment-requested.json")?;
        let record = &mut event["Records"][0];
        let mut body: Value = serde_json::from_str(record["body"].as_str().context("a body")?)?;
        body["detail-type"] = json!(flow.requested_type());
        body["detail"]["event_id"] = json!(format!("{payment_id}/1"));
        // The envelope repeats the ids the event is about; consumers refuse a mismatch.
        body["detail"]["payment_id"] = json!(payment_id);
        let amount = json!({"minor_units": minor_units, "currency": "EUR"});
        let (wallets, data) = match flow {
            BenchFlow::Transfer => (
                json!([payer, payee]),
                json!({"payment_id": payment_id, "from_wallet": payer, "to_wallet": payee, "amount": amount}),
            ),
            BenchFlow::TopUp => (
                json!([payee]),
                json!({"payment_id": payment_id, "funding_instrument": BenchFlow::FUNDING_INSTRUMENT,
                    "to_wallet": payee, "amount": amount}),
            ),
            BenchFlow::Payout => (
                json!([payer]),
                json!({"payment_id": payment_id, "from_wallet": payer,
                    "destination": BenchFlow::DESTINATION, "amount": amount}),
            ),
        };
        body["detail"]["wallet_ids"] = wallets;
        body["detail"]["data"] = data;
        self.consented(&mut body);
        record["body"] = json!(body.to_string());
        record["messageId"] = json!(uuid::Uuid::now_v7().to_string());
        Ok(event)
    }
}

impl Fixtures {
    /// The SQS event of `fixture` with fresh ids, so that each run does real work: every
    /// `pay_demo_` and `dep_demo_` id becomes `pay_bench_<tag>_...` / `dep_bench_<tag>_...`
    /// (event ids with them), the demo wallets become `payer` and `payee`, and every message
    /// and envelope gets a new id.
    pub fn sqs_with_fresh_ids(
        &self,
        fixture: &str,
        tag: &str,
        (payer, payee): (&str, &str),
    ) -> anyhow::Result<Value> {
        let mut event = self.load(fixture)?;
        let records = event["Records"]
            .as_array_mut()
            .with_context(|| format!("{fixture} holds no Records"))?;
        for record in records {
            let body = record["body"].as_str().context("a body")?;
            let body = body
                .replace("pay_demo_", &format!("pay_bench_{tag}_"))
                .replace("dep_demo_", &format!("dep_bench_{tag}_"))
                .replace("wal_demo_alice", payer)
                .replace("wal_demo_bob", payee);
            let mut body: Value = serde_json::from_str(&body)?;
            body["id"] = json!(uuid::Uuid::now_v7().to_string());
            self.consented(&mut body);
            record["body"] = json!(body.to_string());
            record["messageId"] = json!(uuid::Uuid::now_v7().to_string());
        }
        Ok(event)
    }

    /// An SQS event holding `messages` (message id, body) as the event source mapping of the
    /// queue `queue_arn` delivers them, shaped like the `sqs-payment-completed.json` record.
    pub fn sqs_messages<'a>(
        &self,
        queue_arn: &str,
        messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> anyhow::Result<Value> {
        let template = self.load("sqs-payment-completed.json")?["Records"][0].clone();
        ensure!(
            template.is_object(),
            "sqs-payment-completed.json holds no record"
        );
        let records: Vec<Value> = messages
            .into_iter()
            .map(|(message_id, body)| {
                let mut record = template.clone();
                record["messageId"] = json!(message_id);
                record["receiptHandle"] = json!(format!("bench-{message_id}"));
                record["body"] = json!(body);
                record["eventSourceARN"] = json!(queue_arn);
                record
            })
            .collect();
        Ok(json!({ "Records": records }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Fixtures {
        Fixtures::new(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.."))
    }

    #[test]
    fn consumer_fixtures_get_fresh_ids_and_the_bench_wallets() {
        for fixture in [
            "sqs-payment-completed.json",
            "sqs-audit-trail-events.json",
            "sqs-read-models-events.json",
        ] {
            let event = fixtures()
                .sqs_with_fresh_ids(fixture, "run1_cold_0", ("wal_bench_a", "wal_bench_b"))
                .unwrap();
            let again = fixtures()
                .sqs_with_fresh_ids(fixture, "run1_cold_1", ("wal_bench_a", "wal_bench_b"))
                .unwrap();
            let records = event["Records"].as_array().unwrap();
            assert!(!records.is_empty());
            for (record, other) in records.iter().zip(again["Records"].as_array().unwrap()) {
                let text = record["body"].as_str().unwrap();
                assert!(!text.contains("_demo_"), "{fixture}: {text}");
                let body: Value = serde_json::from_str(text).unwrap();
                assert!(
                    body["detail"]["wallet_ids"][0]
                        .as_str()
                        .unwrap()
                        .starts_with("wal_bench_")
                );
                assert!(
                    body["detail"]["event_id"]
                        .as_str()
                        .unwrap()
                        .contains("bench_run1_cold_0_")
                );
                assert_ne!(record["messageId"], other["messageId"]);
                let other: Value = serde_json::from_str(other["body"].as_str().unwrap()).unwrap();
                assert_ne!(body["id"], other["id"]);
                assert_ne!(body["detail"]["event_id"], other["detail"]["event_id"]);
            }
        }
    }

    #[test]
    fn a_payment_request_names_its_payment_and_wallets_in_the_envelope_too() {
        let event = fixtures()
            .payment_requested("pay_bench_x", "wal_bench_a", "wal_bench_b", 100)
            .unwrap();
        let body: Value =
            serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
        let detail = &body["detail"];
        assert_eq!(detail["payment_id"], "pay_bench_x");
        assert_eq!(detail["data"]["payment_id"], "pay_bench_x");
        assert_eq!(detail["wallet_ids"], json!(["wal_bench_a", "wal_bench_b"]));
        assert_eq!(detail["event_id"], "pay_bench_x/1");
    }

    #[test]
    fn captured_messages_become_the_queues_sqs_event() {
        let event = fixtures()
            .sqs_messages(
                "arn:aws:sqs:us-east-1:000000000000:q",
                [("m1", "{\"a\":1}"), ("m2", "{\"b\":2}")],
            )
            .unwrap();
        let records = event["Records"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1]["messageId"], "m2");
        assert_eq!(records[1]["body"], "{\"b\":2}");
        assert_eq!(
            records[0]["eventSourceARN"],
            "arn:aws:sqs:us-east-1:000000000000:q"
        );
        assert_eq!(records[0]["eventSource"], "aws:sqs");
    }
}
