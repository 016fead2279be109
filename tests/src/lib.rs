//! What the integration tests need to drive the local stack: its wiring (generated from
//! `infra/template.yaml` by `make local-up`), an HTTP client for the API, SQS, EventBridge and
//! DynamoDB clients, and polling with a deadline.

pub mod audit;
pub mod graphql;
pub mod read_models;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use paysaga_admin::dev_token::DevTokenIssuer;
use paysaga_admin::dlq::{self, RedriveFunction};
use serde_json::Value;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// The functions' output as `make test` and `make run` have local-lambda write it.
pub fn function_log() -> anyhow::Result<String> {
    let path = repo_root().join(".local/logs/local-lambda.log");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// Waits until the functions' log holds `times` lines that name the event `event_id` and say
/// one of `handled` (`event projected`, `event appended`, ...): one line per delivery of the
/// event a consumer handled. Tests wait for their own event's deliveries this way, not for a
/// queue that other tests keep busy to drain.
pub async fn deliveries_logged(
    event_id: &str,
    handled: &[&str],
    times: usize,
    deadline: Duration,
) -> anyhow::Result<()> {
    let this_event = format!("event_id=\"{event_id}\"");
    let what = format!("{times} deliveries of {event_id} logged as {handled:?}");
    eventually(deadline, &what, || async {
        let log = function_log()?;
        let logged = log
            .lines()
            .filter(|line| {
                line.contains(&this_event) && handled.iter().any(|said| line.contains(said))
            })
            .count();
        Ok((logged >= times).then_some(()))
    })
    .await
}

/// The local stack's `.local/wiring.json`, read as local-lambda reads it (one reader of the file).
pub use local_lambda::wiring::Wiring;

/// The fake payment processor's base URL, as the payment saga is wired to it (no trailing slash).
pub fn processor_url(wiring: &Wiring) -> anyhow::Result<String> {
    let url = wiring.function_env("payment-saga", "PAYMENT_PROCESSOR_URL")?;
    Ok(url.trim_end_matches('/').to_owned())
}

/// Where the local stack's wiring is: `PAYSAGA_WIRING`, else `.local/wiring.json`.
pub fn wiring_path() -> PathBuf {
    std::env::var("PAYSAGA_WIRING")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".local/wiring.json"))
}

/// The caller the tests act as, unless a test says otherwise.
pub const TEST_CALLER: &str = "paysaga-tests";

/// The running local stack, as the tests reach it.
pub struct Stack {
    pub wiring: Wiring,
    /// The stack's event bus (the wiring's `event_bus_name`).
    pub event_bus_name: String,
    pub api_url: String,
    /// local-lambda's Lambda Invoke API.
    pub invoke_url: String,
    pub http: reqwest::Client,
    /// Signs tokens with the local stack's development key.
    pub tokens: DevTokenIssuer,
    /// The token [`Self::call`] sends: every test's wallets belong to [`TEST_CALLER`].
    pub token: String,
    pub sqs: aws_sdk_sqs::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// The dlq-redrive function, as `paysaga-admin dlq` reaches it (the AWS SDK's Invoke).
    pub redrive_function: RedriveFunction,
    /// Pointed at the wiring's DynamoDB endpoint.
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Stack {
    /// Connects to the stack `make local-up` and `make system-up` started.
    pub async fn connect() -> anyhow::Result<Self> {
        let path = wiring_path();
        let wiring = Wiring::load(&path).with_context(|| {
            format!(
                "cannot read {} — is the local stack up? (make test starts it)",
                path.display()
            )
        })?;
        let event_bus_name = wiring
            .event_bus_name
            .clone()
            .context("the wiring names no event bus")?;
        let credentials =
            aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "paysaga-tests");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(wiring.region.clone()))
            .endpoint_url(&wiring.endpoints.aws)
            .credentials_provider(credentials)
            .load()
            .await;
        let dynamodb_endpoint = wiring
            .endpoints
            .dynamodb
            .as_deref()
            .unwrap_or(&wiring.endpoints.aws);
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
            .endpoint_url(dynamodb_endpoint)
            .build();
        let api_url =
            std::env::var("PAYSAGA_API_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".to_owned());
        let invoke_url = std::env::var("PAYSAGA_INVOKE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:9001".to_owned());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let tokens = DevTokenIssuer::from_local_dir(&repo_root().join(".local"))?;
        let token = tokens.token(TEST_CALLER, false, Duration::from_secs(3600))?;
        let redrive_function = RedriveFunction::new(
            &config.to_builder().endpoint_url(&invoke_url).build(),
            dlq::DEFAULT_FUNCTION,
        );
        Ok(Self {
            wiring,
            event_bus_name,
            api_url,
            invoke_url,
            http,
            tokens,
            token,
            sqs: aws_sdk_sqs::Client::new(&config),
            eventbridge: aws_sdk_eventbridge::Client::new(&config),
            redrive_function,
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
        })
    }

    /// From now on, [`Self::call`] (and every helper built on it) acts as `subject`.
    pub fn act_as(&mut self, subject: &str) -> anyhow::Result<()> {
        self.token = self
            .tokens
            .token(subject, false, Duration::from_secs(3600))?;
        Ok(())
    }

    /// Sends a request to the API as [`TEST_CALLER`]; answers its status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        self.call_with_token(Some(&self.token), method, path, body, idempotency_key)
            .await
    }

    /// [`Self::call`] with another bearer token, or none.
    pub async fn call_with_token(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.api_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("{method} {path} answered {text}"))?
        };
        Ok((status, body))
    }

    /// Invokes a function as `aws lambda invoke` does (local-lambda's Invoke API), waiting up to
    /// `timeout`: its response, or the function's error as `errorType: errorMessage`.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &Value,
        timeout: Duration,
    ) -> anyhow::Result<Result<Value, String>> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.invoke_url
        );
        let response = self
            .http
            .post(&url)
            .timeout(timeout)
            .json(payload)
            .send()
            .await
            .with_context(|| format!("invoking {function} at {url}"))?;
        let status = response.status().as_u16();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let text = response.text().await?;
        if status != 200 {
            bail!("invoking {function} answered {status}: {text}");
        }
        let body: Value =
            serde_json::from_str(&text).with_context(|| format!("{function} answered {text}"))?;
        if function_error {
            return Ok(Err(format!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["errorMessage"].as_str().unwrap_or("?")
            )));
        }
        Ok(Ok(body))
    }

    /// Sends one batch to the queue at `url`; fails unless SQS took every entry. Answers the
    /// message ids SQS gave them, in order.
    pub async fn send_batch(
        &self,
        url: &str,
        entries: Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry>,
    ) -> anyhow::Result<Vec<String>> {
        let sent = self
            .sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await?;
        if !sent.failed().is_empty() {
            bail!("SendMessageBatch failed: {:?}", sent.failed());
        }
        Ok(sent
            .successful()
            .iter()
            .map(|entry| entry.message_id().to_owned())
            .collect())
    }

    /// The bodies of the messages waiting in a queue of the wiring, looked at without taking
    /// them (visibility 0): receives until a round shows nothing new (SQS answers a sample per
    /// receive), at most 10 rounds.
    pub async fn peek(&self, queue: &str) -> anyhow::Result<Vec<String>> {
        let url = &self.wiring.queue(queue)?.url;
        let mut seen = HashMap::new();
        for _ in 0..10 {
            let received = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .wait_time_seconds(1)
                .send()
                .await?;
            let before = seen.len();
            for message in received.messages() {
                if let Some(id) = message.message_id() {
                    seen.insert(id.to_owned(), message.body().unwrap_or_default().to_owned());
                }
            }
            if seen.len() == before {
                break;
            }
        }
        Ok(seen.into_values().collect())
    }

    /// The bodies of every message waiting in a queue of the wiring, each received once and
    /// left there: hidden for `HIDDEN` (a few seconds) so that the next receive answers the
    /// next ones, until a receive answers none. Unlike [`Self::peek`], it sees past the first ten
    /// of a long queue; for a test that runs alone (the messages reappear after `HIDDEN`).
    pub async fn every_message(&self, queue: &str) -> anyhow::Result<Vec<String>> {
        const HIDDEN: i32 = 10;
        let url = &self.wiring.queue(queue)?.url;
        let mut bodies = HashMap::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(HIDDEN)
                .wait_time_seconds(0)
                .send()
                .await?;
            if received.messages().is_empty() {
                return Ok(bodies.into_values().collect());
            }
            for message in received.messages() {
                if let Some(id) = message.message_id() {
                    bodies.insert(id.to_owned(), message.body().unwrap_or_default().to_owned());
                }
            }
        }
    }

    /// Looks at a queue's messages without taking them (visibility 0) until one whose body
    /// contains `needle` shows up, or `deadline` passes; answers its string attributes (a dead
    /// letter's say why it failed).
    pub async fn wait_in_queue(
        &self,
        queue: &str,
        needle: &str,
        deadline: Duration,
    ) -> anyhow::Result<HashMap<String, String>> {
        let url = self.wiring.queue(queue)?.url.clone();
        eventually(
            deadline,
            &format!("a message with {needle} in {queue}"),
            || async {
                let received = self
                    .sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .visibility_timeout(0)
                    .wait_time_seconds(1)
                    .message_attribute_names("All")
                    .send()
                    .await?;
                let found = received
                    .messages()
                    .iter()
                    .find(|message| message.body().is_some_and(|body| body.contains(needle)));
                Ok(found.map(|message| {
                    message
                        .message_attributes()
                        .into_iter()
                        .flatten()
                        .filter_map(|(name, value)| {
                            Some((name.clone(), value.string_value()?.to_owned()))
                        })
                        .collect()
                }))
            },
        )
        .await
    }

    /// Messages waiting in and in flight from a queue of the wiring.
    pub async fn depth(&self, queue: &str) -> anyhow::Result<(u64, u64)> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let url = &self.wiring.queue(queue)?.url;
        let answer = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let count = |name: QueueAttributeName| {
            answer
                .attributes()
                .and_then(|attributes| attributes.get(&name))
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::GET, path, None, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::POST, path, Some(body), idempotency_key)
            .await
    }

    /// `POST /payments` with `body`, under an Idempotency-Key of its own, so that a retry after
    /// a lost answer or a 5xx is the same request and harmless: tried up to three times. The
    /// 202's body (the payment's id, status and priority).
    pub async fn submit_payment(&self, body: Value) -> anyhow::Result<Value> {
        const ATTEMPTS: u32 = 3;
        let key = unique();
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            match self.post("/payments", body.clone(), Some(&key)).await {
                Ok((202, accepted)) => return Ok(accepted),
                Ok((status, answer)) if status < 500 => bail!("POST /payments: {status} {answer}"),
                Ok((status, answer)) => last = format!("{status} {answer}"),
                Err(error) => last = format!("{error:#}"),
            }
        }
        bail!("POST /payments failed {ATTEMPTS} times, last: {last}")
    }

    /// Opens a wallet (an existing one with the same currency is fine) and funds it once per
    /// `deposit_key`, as an operator's deposit (`POST /admin/wallets/{id}/deposits`, with the
    /// admin scope and a reason): the quick way to give a test's wallet money. Tests of how
    /// money enters a wallet use top-ups (tests/tests/flows.rs).
    pub async fn funded_wallet(
        &self,
        wallet_id: &str,
        currency: &str,
        minor_units: u64,
        deposit_key: &str,
    ) -> anyhow::Result<()> {
        let (status, body) = self
            .post(
                "/wallets",
                serde_json::json!({"currency": currency, "wallet_id": wallet_id}),
                None,
            )
            .await?;
        if status != 201 && status != 200 {
            bail!("opening {wallet_id} answered {status}: {body}");
        }
        if minor_units > 0 {
            self.operator_deposit(wallet_id, currency, minor_units, deposit_key)
                .await?;
        }
        Ok(())
    }

    /// The payer's consent a payment published straight on the bus carries (`detail.consent`):
    /// the test caller's token, who owns every test wallet.
    pub fn consent(&self) -> Value {
        serde_json::json!({"bearer_token": self.token})
    }

    /// `detail` (an event's detail, JSON text) with [`Self::consent`] added.
    pub fn with_consent(&self, detail: &str) -> anyhow::Result<String> {
        let mut detail: Value = serde_json::from_str(detail)?;
        let object = detail
            .as_object_mut()
            .context("a detail is a JSON object")?;
        object.insert("consent".to_owned(), self.consent());
        Ok(detail.to_string())
    }

    /// Puts one event on the stack's bus, as `aws events put-events` does: `detail` is the
    /// event's detail (JSON text).
    pub async fn put_event(
        &self,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> anyhow::Result<()> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.event_bus_name)
            .source(source)
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let put = self.eventbridge.put_events().entries(entry).send().await?;
        if put.failed_entry_count() != 0 {
            bail!("PutEvents failed: {:?}", put.entries());
        }
        Ok(())
    }

    /// An operator's deposit into a wallet (`POST /admin/wallets/{id}/deposits`, with the admin
    /// scope and a reason), once per `key`.
    pub async fn operator_deposit(
        &self,
        wallet_id: &str,
        currency: &str,
        minor_units: u64,
        key: &str,
    ) -> anyhow::Result<()> {
        let deposit = serde_json::json!({
            "amount": {"minor_units": minor_units, "currency": currency},
            "reason": "test funds",
        });
        let operator =
            self.tokens
                .token("paysaga-tests-operator", true, Duration::from_secs(600))?;
        let (status, body) = self
            .call_with_token(
                Some(&operator),
                reqwest::Method::POST,
                &format!("/admin/wallets/{wallet_id}/deposits"),
                Some(deposit),
                Some(key),
            )
            .await?;
        if status != 201 && status != 200 {
            bail!("depositing into {wallet_id} answered {status}: {body}");
        }
        Ok(())
    }

    /// Two fresh EUR wallets, Alice's holding `alice_funds` minor units and Bob's nothing.
    pub async fn alice_and_bob(&self, alice_funds: u64) -> anyhow::Result<(String, String)> {
        let (alice, bob) = (
            format!("wal_alice_{}", unique()),
            format!("wal_bob_{}", unique()),
        );
        self.funded_wallet(&alice, "EUR", alice_funds, &unique())
            .await?;
        self.funded_wallet(&bob, "EUR", 0, &unique()).await?;
        Ok((alice, bob))
    }

    /// Polls a payment until it is COMPLETED or FAILED.
    pub async fn settled_payment(
        &self,
        payment_id: &str,
        deadline: Duration,
    ) -> anyhow::Result<Value> {
        eventually(
            deadline,
            &format!("payment {payment_id} to settle"),
            || async {
                let (status, body) = self.get(&format!("/payments/{payment_id}")).await?;
                let settled = status == 200
                    && matches!(body["status"].as_str(), Some("COMPLETED" | "FAILED"));
                Ok(settled.then_some(body))
            },
        )
        .await
    }

    /// A wallet's available and reserved minor units.
    pub async fn balances(&self, wallet_id: &str) -> anyhow::Result<(u64, u64)> {
        let (status, body) = self.get(&format!("/wallets/{wallet_id}")).await?;
        if status != 200 {
            bail!("reading {wallet_id} answered {status}: {body}");
        }
        let minor_units = |field: &str| {
            body[field]["minor_units"]
                .as_u64()
                .with_context(|| format!("{field} in {body}"))
        };
        Ok((minor_units("available")?, minor_units("reserved")?))
    }
}

/// Polls `probe` until it yields a value, or fails once `deadline` has passed. The pause
/// between probes grows from 50 ms to 1 s; it paces the polling, it does not synchronise.
pub async fn eventually<T, F, Fut>(
    deadline: Duration,
    what: &str,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if started.elapsed() > deadline {
            bail!("gave up waiting for {what} after {:?}", started.elapsed());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// A fresh, unique suffix for ids and keys.
pub fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
