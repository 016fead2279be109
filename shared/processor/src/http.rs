//! [`HttpPaymentProcessor`]: the [`PaymentProcessor`] port over the processor's HTTP API.
//!
//! The contract (the local fake in `infra/local/payment-processor` implements it), by the
//! payment's flow:
//!
//! | flow | [`execute`](PaymentProcessor::execute) | [`reverse`](PaymentProcessor::reverse) |
//! |---|---|---|
//! | transfer | `POST {base}/charges` `{"payment_id","from_wallet","to_wallet","amount"}` | `POST {base}/charges/{payment_id}/refund` |
//! | top-up | `POST {base}/charges` `{"payment_id","funding_instrument","to_wallet","amount"}` | `POST {base}/charges/{payment_id}/refund` |
//! | payout | `POST {base}/payouts` `{"payment_id","from_wallet","destination","amount"}` | `POST {base}/payouts/{payment_id}/cancel` |
//!
//! - Executions carry `Idempotency-Key: <payment_id>`; `amount` is
//!   `{"minor_units","currency"}`.
//! - A charge answers 201 (200 on a replay) `{"charge_id","payment_id","status":"captured",..}`;
//!   a payout 201 (200 on a replay) `{"payout_id","payment_id","status":"paid",..}`. A replay
//!   answered `refunded`, `cancelled` or `voided` is declined: the payment id is spent.
//! - Either refuses with 402 `{"error":{"code":"declined","message"}}`, or 409
//!   `{"error":{"code":"voided",..}}` when the payment id was voided by a refund or a cancel
//!   before any execution.
//! - A refund answers 200 `{"payment_id","status":"refunded"|"voided"}`, a cancel 200
//!   `{"payment_id","status":"cancelled"|"voided"}`.
//!
//! Each attempt has its own timeout; transient failures (connect errors, timeouts, 5xx, 408,
//! 429) are retried with exponential backoff and full jitter. Every call is idempotent per
//! payment id, so a retry of a request whose answer was lost is safe. Redirects are not part of
//! the contract: a 3xx is an unexpected answer, never followed.
//!
//! The requests go over the AWS SDK's own HTTP stack (hyper and rustls with *ring*, from
//! `aws-smithy-http-client`), trusting the system's root certificates: one HTTP client in the
//! binary instead of two keeps the saga's arm64 zip within its target (README "Bench"). The
//! connection pool is built on the first call, so loading those certificates is not part of a
//! cold start.
//!
//! Logged: the payment id, the attempt and HTTP statuses. Never bodies, amounts, wallets,
//! funding instruments or destinations.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_smithy_http_client::Connector;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::error::display::DisplayErrorContext;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
use paysaga_domain::payment::Flow;
use paysaga_domain::ports::{PaymentProcessor, ProcessorError};
use paysaga_domain::{ChargeId, Money, PaymentId, PaymentRequest, WalletId};

/// How failed attempts are retried: `attempts` in all (at least 1), waiting a random time
/// between zero and `base * 2^n`, capped at `max`, before retry `n` ("full jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub const DEFAULT_ATTEMPTS: u32 = 3;
    pub const DEFAULT_BASE: Duration = Duration::from_millis(50);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(1);

    /// The delays before each retry (one fewer than the attempts).
    fn delays(&self) -> impl Iterator<Item = Duration> + Send + Sync + Unpin + use<> {
        let retries = self.attempts.max(1) as usize - 1;
        ExponentialBuilder::new()
            .with_min_delay(self.base)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_max_times(retries)
            .build()
            .map(full_jitter as fn(Duration) -> Duration)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: Self::DEFAULT_ATTEMPTS,
            base: Self::DEFAULT_BASE,
            max: Self::DEFAULT_MAX,
        }
    }
}

/// A uniformly random wait in `[0, ceiling]`: retries of many callers spread out instead of
/// arriving together (backon's own jitter only adds to the delay).
fn full_jitter(ceiling: Duration) -> Duration {
    ceiling.mul_f64(fastrand::f64())
}

/// The HTTP client could not be built (its TLS set-up failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the payment processor's HTTP client: {0}")]
pub struct ClientBuildError(String);

/// The payment processor over HTTP. Build it once in `main` and share it.
#[derive(Debug, Clone)]
pub struct HttpPaymentProcessor {
    transport: Arc<Transport>,
    charges: Url,
    payouts: Url,
    retry: RetryPolicy,
}

/// The HTTP connection pool, built on first use, and each attempt's timeout.
#[derive(Debug)]
struct Transport {
    tls: TlsContext,
    connector: OnceLock<Connector>,
    timeout: Duration,
}

impl Transport {
    fn connector(&self) -> &Connector {
        self.connector.get_or_init(|| {
            Connector::builder()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .tls_context(self.tls.clone())
                .build()
        })
    }

    /// POSTs `body` (JSON, when there is one) to `url` and reads the whole answer, all within
    /// the attempt's timeout.
    async fn post(
        &self,
        url: &Url,
        idempotency_key: Option<&PaymentId>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), AttemptError> {
        let json = body.is_some();
        let mut request = HttpRequest::new(body.map_or_else(SdkBody::empty, SdkBody::from));
        request
            .set_method("POST")
            .and_then(|()| request.set_uri(url.as_str()))
            .map_err(|e| AttemptError::Malformed(format!("cannot form the request: {e}")))?;
        let headers = request.headers_mut();
        headers.insert("user-agent", concat!("paysaga/", env!("CARGO_PKG_VERSION")));
        headers.insert("accept", "application/json");
        if json {
            headers.insert("content-type", "application/json");
        }
        if let Some(key) = idempotency_key {
            headers.insert("idempotency-key", key.as_str().to_owned());
        }
        let exchange = async {
            let response = self
                .connector()
                .call(request)
                .await
                .map_err(AttemptError::from_connector)?;
            // The SDK's status type holds any u16 from 100 to 999, as http's does.
            let status = StatusCode::from_u16(response.status().as_u16())
                .map_err(|e| AttemptError::Malformed(format!("answer status: {e}")))?;
            let bytes = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| {
                    AttemptError::Transient(format!(
                        "answer cut short: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            Ok((status, bytes.to_vec()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                AttemptError::Transient(format!("timed out after {} ms", self.timeout.as_millis()))
            })?
    }
}

impl HttpPaymentProcessor {
    /// `base_url` is the processor's API root (`https://processor.example/v1`); `timeout`
    /// bounds each attempt, connecting and reading the whole answer included.
    pub fn new(
        base_url: &Url,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, ClientBuildError> {
        let tls = TlsContext::builder()
            .with_trust_store(TrustStore::default())
            .build()
            .map_err(|e| ClientBuildError(DisplayErrorContext(&e).to_string()))?;
        Ok(Self {
            transport: Arc::new(Transport {
                tls,
                connector: OnceLock::new(),
                timeout,
            }),
            charges: endpoint(base_url, &["charges"]),
            payouts: endpoint(base_url, &["payouts"]),
            retry,
        })
    }

    /// One request of a call, and its answer read as `A`: `body` (JSON) posted to `url` with
    /// the payment id as `Idempotency-Key` when the call creates something, a refusal turned
    /// into its [`AttemptError`], an answer that is not an `A` into a malformed one.
    async fn exchange<A: DeserializeOwned>(
        &self,
        call: &'static str,
        url: &Url,
        payment_id: &PaymentId,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<A, AttemptError> {
        let json = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| AttemptError::Malformed(format!("cannot write the {call}: {e}")))?;
        let key = json.is_some().then_some(payment_id);
        let (status, bytes) = self.transport.post(url, key, json).await?;
        tracing::debug!(%payment_id, status = status.as_u16(), call, "processor answered");
        if !status.is_success() {
            return Err(AttemptError::from_refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| AttemptError::Malformed(format!("{call} answer (HTTP {status}): {e}")))
    }

    /// One attempt to charge (a transfer's payer or a top-up's funding instrument).
    async fn try_charge(&self, body: &ChargeBody<'_>) -> Result<ChargeId, AttemptError> {
        let answer: ChargeAnswer = self
            .exchange("charge", &self.charges, body.payment_id, Some(body))
            .await?;
        if &answer.payment_id != body.payment_id {
            return Err(AttemptError::Malformed(format!(
                "charge answer is for another payment ({})",
                answer.payment_id
            )));
        }
        match answer.status {
            ChargeStatus::Captured => Ok(answer.charge_id),
            // A replay after a refund: the payment id is spent, the charge will not stand.
            ChargeStatus::Refunded | ChargeStatus::Voided => Err(AttemptError::Declined(format!(
                "charge {} was {}",
                answer.charge_id,
                answer.status.as_str()
            ))),
        }
    }

    /// One attempt to pay out.
    async fn try_payout(&self, body: &PayoutBody<'_>) -> Result<ChargeId, AttemptError> {
        let answer: PayoutAnswer = self
            .exchange("payout", &self.payouts, body.payment_id, Some(body))
            .await?;
        if &answer.payment_id != body.payment_id {
            return Err(AttemptError::Malformed(format!(
                "payout answer is for another payment ({})",
                answer.payment_id
            )));
        }
        match answer.status {
            PayoutStatus::Paid => Ok(answer.payout_id),
            // A replay after a cancel: the payment id is spent, the payout will not stand.
            PayoutStatus::Cancelled | PayoutStatus::Voided => Err(AttemptError::Declined(format!(
                "payout {} was {}",
                answer.payout_id,
                answer.status.as_str()
            ))),
        }
    }

    /// One attempt to refund a charge (or void its payment id).
    async fn try_refund(&self, payment_id: &PaymentId) -> Result<(), AttemptError> {
        let url = endpoint(&self.charges, &[payment_id.as_str(), "refund"]);
        let answer: RefundAnswer = self
            .exchange("refund", &url, payment_id, None::<&()>)
            .await?;
        match answer.status {
            ChargeStatus::Refunded | ChargeStatus::Voided => Ok(()),
            ChargeStatus::Captured => Err(AttemptError::Malformed(
                "refund answered with status captured".to_owned(),
            )),
        }
    }

    /// One attempt to cancel a payout (or void its payment id).
    async fn try_cancel(&self, payment_id: &PaymentId) -> Result<(), AttemptError> {
        let url = endpoint(&self.payouts, &[payment_id.as_str(), "cancel"]);
        let answer: CancelAnswer = self
            .exchange("cancel", &url, payment_id, None::<&()>)
            .await?;
        match answer.status {
            PayoutStatus::Cancelled | PayoutStatus::Voided => Ok(()),
            PayoutStatus::Paid => Err(AttemptError::Malformed(
                "cancel answered with status paid".to_owned(),
            )),
        }
    }

    /// Runs `attempt` under the retry policy; logs each retry.
    async fn with_retries<T, F, Fut>(
        &self,
        call: &'static str,
        payment_id: &PaymentId,
        attempt: F,
    ) -> Result<T, ProcessorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        attempt
            .retry(self.retry.delays())
            .when(AttemptError::is_transient)
            .notify(|error, wait| {
                tracing::warn!(
                    %payment_id,
                    call,
                    error = %error,
                    retry_in_ms = wait.as_millis() as u64,
                    "payment processor call failed; retrying"
                );
            })
            .await
            .map_err(ProcessorError::from)
    }
}

#[async_trait]
impl PaymentProcessor for HttpPaymentProcessor {
    async fn execute(&self, request: &PaymentRequest) -> Result<ChargeId, ProcessorError> {
        let payment_id = request.payment_id();
        let amount = request.amount();
        let (payer, to_wallet) = match request.flow() {
            Flow::Transfer {
                from_wallet,
                to_wallet,
            } => (Payer::FromWallet(from_wallet), to_wallet),
            Flow::TopUp {
                funding_instrument,
                to_wallet,
            } => (Payer::FundingInstrument(funding_instrument), to_wallet),
            Flow::Payout {
                from_wallet,
                destination,
            } => {
                let body = PayoutBody {
                    payment_id,
                    from_wallet,
                    destination,
                    amount,
                };
                return self
                    .with_retries("payout", payment_id, || self.try_payout(&body))
                    .await;
            }
        };
        let body = ChargeBody {
            payment_id,
            payer,
            to_wallet,
            amount,
        };
        self.with_retries("charge", payment_id, || self.try_charge(&body))
            .await
    }

    async fn reverse(&self, request: &PaymentRequest) -> Result<(), ProcessorError> {
        let payment_id = request.payment_id();
        let reversed = match request.flow() {
            Flow::Transfer { .. } | Flow::TopUp { .. } => {
                self.with_retries("refund", payment_id, || self.try_refund(payment_id))
                    .await
            }
            Flow::Payout { .. } => {
                self.with_retries("cancel", payment_id, || self.try_cancel(payment_id))
                    .await
            }
        };
        // A refusal to undo is no outcome: the money stays held until the processor agrees.
        reversed.map_err(|error| match error {
            ProcessorError::Declined(why) => ProcessorError::Refused(why),
            other => other,
        })
    }
}

/// `base` with `segments` appended as path segments (each percent-encoded as needed).
fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    // Only URLs that cannot be a base (`mailto:`...) refuse segments; the configuration only
    // accepts http(s) URLs.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// How one attempt ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum AttemptError {
    /// No answer, or one that says "later": retry.
    #[error("{0}")]
    Transient(String),
    /// A definite no.
    #[error("{0}")]
    Declined(String),
    /// An answer outside the contract: retrying the same request will not help, and the
    /// outcome is unknown.
    #[error("{0}")]
    Malformed(String),
}

impl AttemptError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    fn from_connector(error: ConnectorError) -> Self {
        // Refused or reset connections, a failed TLS handshake, a body cut short: the answer
        // did not arrive. The error's text names the host, which the configuration keeps free
        // of credentials and query strings.
        let kind = if error.is_timeout() {
            "timed out"
        } else if error.is_io() {
            "connection failed"
        } else {
            "request failed"
        };
        Self::Transient(format!("{kind}: {}", DisplayErrorContext(&error)))
    }

    fn from_refusal(status: StatusCode, body: &[u8]) -> Self {
        let detail = || {
            serde_json::from_slice::<ErrorAnswer>(body)
                .map(|answer| answer.error.summary())
                .unwrap_or_else(|_| "no error details".to_owned())
        };
        match status {
            StatusCode::PAYMENT_REQUIRED | StatusCode::CONFLICT => Self::Declined(detail()),
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                Self::Transient(format!("HTTP {status}"))
            }
            s if s.is_server_error() => Self::Transient(format!("HTTP {status}")),
            s if s.is_client_error() => Self::Declined(format!(
                "the processor refused our request as invalid (HTTP {status}): {}",
                detail()
            )),
            s => Self::Malformed(format!("unexpected HTTP {s}")),
        }
    }
}

impl From<AttemptError> for ProcessorError {
    fn from(error: AttemptError) -> Self {
        match error {
            AttemptError::Transient(why) => Self::Unavailable(why),
            AttemptError::Declined(why) => Self::Declined(why),
            AttemptError::Malformed(why) => Self::Unavailable(format!(
                "unexpected answer from the payment processor: {why}"
            )),
        }
    }
}

#[derive(Serialize)]
struct ChargeBody<'a> {
    payment_id: &'a PaymentId,
    #[serde(flatten)]
    payer: Payer<'a>,
    to_wallet: &'a WalletId,
    amount: Money,
}

/// Who a charge takes the money from: one field of the body, named by the flow.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Payer<'a> {
    /// A transfer's payer.
    FromWallet(&'a WalletId),
    /// A top-up's funding instrument.
    FundingInstrument(&'a FundingInstrumentId),
}

#[derive(Serialize)]
struct PayoutBody<'a> {
    payment_id: &'a PaymentId,
    from_wallet: &'a WalletId,
    destination: &'a PayoutDestinationId,
    amount: Money,
}

#[derive(Deserialize)]
struct ChargeAnswer {
    charge_id: ChargeId,
    payment_id: PaymentId,
    status: ChargeStatus,
}

#[derive(Deserialize)]
struct RefundAnswer {
    status: ChargeStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChargeStatus {
    Captured,
    Refunded,
    Voided,
}

impl ChargeStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Captured => "captured",
            Self::Refunded => "refunded",
            Self::Voided => "voided",
        }
    }
}

#[derive(Deserialize)]
struct PayoutAnswer {
    payout_id: ChargeId,
    payment_id: PaymentId,
    status: PayoutStatus,
}

#[derive(Deserialize)]
struct CancelAnswer {
    status: PayoutStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PayoutStatus {
    Paid,
    Cancelled,
    Voided,
}

impl PayoutStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Voided => "voided",
        }
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: Option<String>,
}

impl ErrorDetail {
    /// `code: message`, bounded: it ends up in a payment's failure reason.
    fn summary(&self) -> String {
        let text = match &self.message {
            Some(message) if !message.is_empty() => format!("{}: {message}", self.code),
            _ => self.code.clone(),
        };
        text.chars().take(200).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    use super::*;

    /// One scripted answer of the test server.
    #[derive(Clone)]
    struct Answer {
        status: u16,
        body: String,
        delay: Duration,
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// What the server saw: one line per request.
    #[derive(Default)]
    struct Script {
        answers: VecDeque<Answer>,
        /// Answer given once the script is used up.
        then: Option<Answer>,
        seen: Vec<Seen>,
    }

    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        idempotency_key: Option<String>,
        body: String,
    }

    type Shared = Arc<Mutex<Script>>;

    async fn serve(
        State(script): State<Shared>,
        path: String,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, String) {
        let next = {
            let mut script = script.lock().unwrap();
            script.seen.push(Seen {
                path,
                idempotency_key: headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body,
            });
            let then = script.then.clone();
            script
                .answers
                .pop_front()
                .or(then)
                .expect("the script has an answer")
        };
        tokio::time::sleep(next.delay).await;
        (StatusCode::from_u16(next.status).unwrap(), next.body)
    }

    /// A server answering `answers` in order, then `then` for ever.
    async fn server(answers: Vec<Answer>, then: Option<Answer>) -> (Url, Shared) {
        let script: Shared = Arc::new(Mutex::new(Script {
            answers: answers.into(),
            then,
            seen: Vec::new(),
        }));
        let app = Router::new()
            .route(
                "/v1/charges",
                post(|state: State<Shared>, headers: HeaderMap, body: String| {
                    serve(state, "/v1/charges".to_owned(), headers, body)
                }),
            )
            .route(
                "/v1/charges/{payment_id}/refund",
                post(
                    |state: State<Shared>,
                     Path(id): Path<String>,
                     headers: HeaderMap,
                     body: String| {
                        serve(state, format!("/v1/charges/{id}/refund"), headers, body)
                    },
                ),
            )
            .route(
                "/v1/payouts",
                post(|state: State<Shared>, headers: HeaderMap, body: String| {
                    serve(state, "/v1/payouts".to_owned(), headers, body)
                }),
            )
            .route(
                "/v1/payouts/{payment_id}/cancel",
                post(
                    |state: State<Shared>,
                     Path(id): Path<String>,
                     headers: HeaderMap,
                     body: String| {
                        serve(state, format!("/v1/payouts/{id}/cancel"), headers, body)
                    },
                ),
            )
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (Url::parse(&format!("http://{addr}/v1/")).unwrap(), script)
    }

    fn fast_retries(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        }
    }

    fn client(url: &Url, attempts: u32) -> HttpPaymentProcessor {
        HttpPaymentProcessor::new(url, Duration::from_millis(500), fast_retries(attempts)).unwrap()
    }

    fn request() -> PaymentRequest {
        PaymentRequest::new(
            PaymentId::parse("pay_http_1").unwrap(),
            WalletId::parse("wal_from").unwrap(),
            WalletId::parse("wal_to").unwrap(),
            Money::positive(1250, "EUR".parse().unwrap()).unwrap(),
        )
        .unwrap()
    }

    fn eur(minor_units: u64) -> Money {
        Money::positive(minor_units, "EUR".parse().unwrap()).unwrap()
    }

    fn top_up() -> PaymentRequest {
        let flow = Flow::TopUp {
            funding_instrument: FundingInstrumentId::parse("fi_card").unwrap(),
            to_wallet: WalletId::parse("wal_to").unwrap(),
        };
        PaymentRequest::of_flow(PaymentId::parse("pay_http_1").unwrap(), flow, eur(1250)).unwrap()
    }

    fn payout() -> PaymentRequest {
        let flow = Flow::Payout {
            from_wallet: WalletId::parse("wal_from").unwrap(),
            destination: PayoutDestinationId::parse("dst_bank").unwrap(),
        };
        PaymentRequest::of_flow(PaymentId::parse("pay_http_1").unwrap(), flow, eur(1250)).unwrap()
    }

    const PAID: &str = r#"{"payout_id":"po_123","payment_id":"pay_http_1","status":"paid","amount":{"minor_units":1250,"currency":"EUR"},"from_wallet":"wal_from","destination":"dst_bank"}"#;

    const CAPTURED: &str = r#"{"charge_id":"ch_123","payment_id":"pay_http_1","status":"captured","amount":{"minor_units":1250,"currency":"EUR"}}"#;

    fn seen(script: &Shared) -> Vec<Seen> {
        script.lock().unwrap().seen.clone()
    }

    #[tokio::test]
    async fn a_charge_posts_the_contract_body_with_the_payment_id_as_idempotency_key() {
        let (url, script) = server(vec![answer(201, CAPTURED)], None).await;
        let charge = client(&url, 3).execute(&request()).await;
        assert_eq!(charge, Ok(ChargeId::parse("ch_123").unwrap()));
        let seen = seen(&script);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/v1/charges");
        assert_eq!(seen[0].idempotency_key.as_deref(), Some("pay_http_1"));
        let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "payment_id": "pay_http_1", "from_wallet": "wal_from", "to_wallet": "wal_to",
                "amount": {"minor_units": 1250, "currency": "EUR"}
            })
        );
    }

    #[tokio::test]
    async fn a_replayed_charge_answered_200_is_the_same_charge() {
        let (url, _) = server(vec![answer(200, CAPTURED)], None).await;
        assert_eq!(
            client(&url, 1).execute(&request()).await,
            Ok(ChargeId::parse("ch_123").unwrap())
        );
    }

    #[tokio::test]
    async fn declines_and_voids_are_declined_with_the_processors_reason_and_not_retried() {
        for (status, body, reason) in [
            (
                402,
                r#"{"error":{"code":"declined","message":"insufficient funds at issuer"}}"#,
                "declined: insufficient funds at issuer",
            ),
            (
                409,
                r#"{"error":{"code":"voided","message":"payment was voided"}}"#,
                "voided: payment was voided",
            ),
            (402, "not json", "no error details"),
        ] {
            let (url, script) = server(vec![answer(status, body)], None).await;
            assert_eq!(
                client(&url, 3).execute(&request()).await,
                Err(ProcessorError::Declined(reason.to_owned())),
                "HTTP {status}"
            );
            assert_eq!(seen(&script).len(), 1, "HTTP {status} is not retried");
        }
    }

    #[tokio::test]
    async fn other_client_errors_are_declined_as_our_mistake() {
        let body = r#"{"error":{"code":"invalid_request","message":"amount missing"}}"#;
        let (url, script) = server(vec![answer(422, body)], None).await;
        let Err(ProcessorError::Declined(reason)) = client(&url, 3).execute(&request()).await
        else {
            panic!("a 422 is a decline");
        };
        assert!(
            reason.contains("refused our request as invalid (HTTP 422"),
            "{reason}"
        );
        assert!(
            reason.contains("invalid_request: amount missing"),
            "{reason}"
        );
        assert_eq!(seen(&script).len(), 1);
    }

    #[tokio::test]
    async fn server_errors_and_throttling_are_retried_until_an_answer() {
        let (url, script) = server(
            vec![answer(503, ""), answer(429, ""), answer(201, CAPTURED)],
            None,
        )
        .await;
        assert!(client(&url, 3).execute(&request()).await.is_ok());
        assert_eq!(seen(&script).len(), 3);
    }

    #[tokio::test]
    async fn retries_stop_after_the_configured_attempts() {
        for attempts in [1, 3, 5] {
            let (url, script) = server(vec![], Some(answer(500, ""))).await;
            let result = client(&url, attempts).execute(&request()).await;
            assert_eq!(
                result,
                Err(ProcessorError::Unavailable(
                    "HTTP 500 Internal Server Error".into()
                ))
            );
            assert_eq!(seen(&script).len(), attempts as usize);
        }
    }

    #[tokio::test]
    async fn each_attempt_times_out_and_a_timeout_is_retried() {
        let slow = Answer {
            delay: Duration::from_secs(5),
            ..answer(201, CAPTURED)
        };
        let (url, script) = server(vec![slow], Some(answer(201, CAPTURED))).await;
        let processor =
            HttpPaymentProcessor::new(&url, Duration::from_millis(100), fast_retries(2)).unwrap();
        let started = std::time::Instant::now();
        assert!(processor.execute(&request()).await.is_ok());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(seen(&script).len(), 2);

        let (url, script) = server(vec![], Some(slow_answer())).await;
        let processor =
            HttpPaymentProcessor::new(&url, Duration::from_millis(100), fast_retries(3)).unwrap();
        let Err(ProcessorError::Unavailable(why)) = processor.execute(&request()).await else {
            panic!("timeouts make the processor unavailable");
        };
        assert!(why.starts_with("timed out"), "{why}");
        assert_eq!(seen(&script).len(), 3);
    }

    fn slow_answer() -> Answer {
        Answer {
            delay: Duration::from_secs(5),
            ..answer(201, CAPTURED)
        }
    }

    #[tokio::test]
    async fn an_unreachable_processor_is_unavailable_after_the_retries() {
        // A port nobody listens on: bind one, then free it.
        let addr: SocketAddr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let url = Url::parse(&format!("http://{addr}/")).unwrap();
        let Err(ProcessorError::Unavailable(why)) = client(&url, 2).execute(&request()).await
        else {
            panic!("no listener means unavailable");
        };
        assert!(why.starts_with("connection failed"), "{why}");
        assert!(
            why.contains("Connection refused"),
            "the cause is named: {why}"
        );
    }

    #[tokio::test]
    async fn answers_outside_the_contract_are_unavailable_and_not_retried() {
        for body in [
            "{}",
            r#"{"charge_id":"ch_1","payment_id":"pay_other","status":"captured"}"#,
        ] {
            let (url, script) = server(vec![], Some(answer(201, body))).await;
            assert!(matches!(
                client(&url, 3).execute(&request()).await,
                Err(ProcessorError::Unavailable(why)) if why.starts_with("unexpected answer")
            ));
            assert_eq!(seen(&script).len(), 1);
        }
    }

    #[tokio::test]
    async fn a_redirect_is_an_unexpected_answer_and_not_followed() {
        let (url, script) = server(vec![], Some(answer(302, ""))).await;
        assert_eq!(
            client(&url, 3).execute(&request()).await,
            Err(ProcessorError::Unavailable(
                "unexpected answer from the payment processor: unexpected HTTP 302 Found".into()
            ))
        );
        assert_eq!(seen(&script).len(), 1);
    }

    #[tokio::test]
    async fn a_charge_replayed_after_a_refund_is_declined() {
        let refunded = r#"{"charge_id":"ch_9","payment_id":"pay_http_1","status":"refunded"}"#;
        let (url, _) = server(vec![answer(200, refunded)], None).await;
        assert_eq!(
            client(&url, 1).execute(&request()).await,
            Err(ProcessorError::Declined("charge ch_9 was refunded".into()))
        );
    }

    #[tokio::test]
    async fn a_refund_posts_to_the_payments_refund_path_and_accepts_refunded_or_voided() {
        for (request, status) in [
            (request(), "refunded"),
            (request(), "voided"),
            (top_up(), "refunded"),
            (top_up(), "voided"),
        ] {
            let body = format!(r#"{{"payment_id":"pay_http_1","status":"{status}"}}"#);
            let (url, script) = server(vec![answer(503, ""), answer(200, &body)], None).await;
            assert_eq!(client(&url, 3).reverse(&request).await, Ok(()), "{status}");
            let seen = seen(&script);
            assert_eq!(seen.len(), 2);
            assert_eq!(seen[1].path, "/v1/charges/pay_http_1/refund");
            assert_eq!(seen[1].idempotency_key, None);
        }
    }

    #[tokio::test]
    async fn a_refund_answered_captured_is_outside_the_contract() {
        let body = r#"{"payment_id":"pay_http_1","status":"captured"}"#;
        let (url, script) = server(vec![], Some(answer(200, body))).await;
        assert_eq!(
            client(&url, 3).reverse(&request()).await,
            Err(ProcessorError::Unavailable(
                "unexpected answer from the payment processor: refund answered with status \
                 captured"
                    .into()
            ))
        );
        assert_eq!(seen(&script).len(), 1);
    }

    #[tokio::test]
    async fn a_top_up_charges_the_funding_instrument_and_names_no_payer_wallet() {
        let (url, script) = server(vec![answer(201, CAPTURED)], None).await;
        assert_eq!(
            client(&url, 3).execute(&top_up()).await,
            Ok(ChargeId::parse("ch_123").unwrap())
        );
        let seen = seen(&script);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/v1/charges");
        assert_eq!(seen[0].idempotency_key.as_deref(), Some("pay_http_1"));
        let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "payment_id": "pay_http_1", "funding_instrument": "fi_card", "to_wallet": "wal_to",
                "amount": {"minor_units": 1250, "currency": "EUR"}
            })
        );
    }

    #[tokio::test]
    async fn a_payout_posts_the_payout_body_and_answers_the_payout_id() {
        for status in [201, 200] {
            let (url, script) = server(vec![answer(status, PAID)], None).await;
            assert_eq!(
                client(&url, 3).execute(&payout()).await,
                Ok(ChargeId::parse("po_123").unwrap()),
                "HTTP {status}"
            );
            let seen = seen(&script);
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].path, "/v1/payouts");
            assert_eq!(seen[0].idempotency_key.as_deref(), Some("pay_http_1"));
            let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({
                    "payment_id": "pay_http_1", "from_wallet": "wal_from", "destination": "dst_bank",
                    "amount": {"minor_units": 1250, "currency": "EUR"}
                })
            );
        }
    }

    #[tokio::test]
    async fn a_payout_replayed_after_a_cancel_is_declined() {
        for status in ["cancelled", "voided"] {
            let body =
                format!(r#"{{"payout_id":"po_9","payment_id":"pay_http_1","status":"{status}"}}"#);
            let (url, _) = server(vec![answer(200, &body)], None).await;
            assert_eq!(
                client(&url, 1).execute(&payout()).await,
                Err(ProcessorError::Declined(format!(
                    "payout po_9 was {status}"
                )))
            );
        }
    }

    #[tokio::test]
    async fn payout_refusals_are_declined_and_not_retried_and_outages_are_retried() {
        for (status, body, reason) in [
            (
                402,
                r#"{"error":{"code":"declined","message":"the destination refuses"}}"#,
                "declined: the destination refuses",
            ),
            (
                409,
                r#"{"error":{"code":"voided","message":"cancelled before any payout"}}"#,
                "voided: cancelled before any payout",
            ),
        ] {
            let (url, script) = server(vec![answer(status, body)], None).await;
            assert_eq!(
                client(&url, 3).execute(&payout()).await,
                Err(ProcessorError::Declined(reason.to_owned())),
                "HTTP {status}"
            );
            assert_eq!(seen(&script).len(), 1, "HTTP {status} is not retried");
        }
        let (url, script) = server(vec![answer(503, ""), answer(201, PAID)], None).await;
        assert_eq!(
            client(&url, 3).execute(&payout()).await,
            Ok(ChargeId::parse("po_123").unwrap())
        );
        assert_eq!(seen(&script).len(), 2);
        let (url, script) = server(vec![], Some(answer(503, ""))).await;
        assert_eq!(
            client(&url, 2).execute(&payout()).await,
            Err(ProcessorError::Unavailable(
                "HTTP 503 Service Unavailable".into()
            ))
        );
        assert_eq!(seen(&script).len(), 2);
    }

    #[tokio::test]
    async fn payout_answers_outside_the_contract_are_unavailable_and_not_retried() {
        for body in [
            // A charge's answer, not a payout's.
            CAPTURED,
            r#"{"payout_id":"po_1","payment_id":"pay_other","status":"paid"}"#,
            r#"{"payout_id":"po_1","payment_id":"pay_http_1","status":"captured"}"#,
        ] {
            let (url, script) = server(vec![], Some(answer(201, body))).await;
            let result = client(&url, 3).execute(&payout()).await;
            assert!(
                matches!(&result, Err(ProcessorError::Unavailable(why)) if why.starts_with("unexpected answer")),
                "{body}: {result:?}"
            );
            assert_eq!(seen(&script).len(), 1);
        }
    }

    #[tokio::test]
    async fn reversing_a_payout_cancels_it_and_accepts_cancelled_or_voided() {
        for status in ["cancelled", "voided"] {
            let body = format!(r#"{{"payment_id":"pay_http_1","status":"{status}"}}"#);
            let (url, script) = server(vec![answer(503, ""), answer(200, &body)], None).await;
            assert_eq!(client(&url, 3).reverse(&payout()).await, Ok(()), "{status}");
            let seen = seen(&script);
            assert_eq!(seen.len(), 2, "the 503 was retried");
            assert_eq!(seen[1].path, "/v1/payouts/pay_http_1/cancel");
            assert_eq!(seen[1].idempotency_key, None);
            assert_eq!(seen[1].body, "");
        }
    }

    #[tokio::test]
    async fn a_cancel_answered_paid_or_refused_is_not_a_reversal() {
        let paid = r#"{"payment_id":"pay_http_1","status":"paid"}"#;
        let (url, _) = server(vec![], Some(answer(200, paid))).await;
        assert_eq!(
            client(&url, 3).reverse(&payout()).await,
            Err(ProcessorError::Unavailable(
                "unexpected answer from the payment processor: cancel answered with status paid"
                    .into()
            ))
        );
        let conflict = r#"{"error":{"code":"flow_conflict","message":"the payment id is a charge's; refund it instead"}}"#;
        let (url, script) = server(vec![], Some(answer(422, conflict))).await;
        let Err(ProcessorError::Refused(reason)) = client(&url, 3).reverse(&payout()).await else {
            panic!("a 422 to a cancel is a refusal to undo, no outcome");
        };
        assert!(reason.contains("flow_conflict"), "{reason}");
        assert_eq!(seen(&script).len(), 1);
    }

    #[tokio::test]
    async fn a_refund_refused_is_a_refusal_to_undo_and_never_a_decline() {
        let forbidden = r#"{"error":{"code":"forbidden","message":"this key may not refund"}}"#;
        for (status, body) in [(403, forbidden), (402, forbidden), (401, "")] {
            let (url, script) = server(vec![], Some(answer(status, body))).await;
            let reversed = client(&url, 3).reverse(&request()).await;
            let Err(ProcessorError::Refused(reason)) = reversed else {
                panic!("HTTP {status} to a refund answered {reversed:?}");
            };
            if status == 403 {
                assert!(reason.contains("forbidden"), "{reason}");
            }
            // Not retried within the call: the saga asks again later, backing off.
            assert_eq!(seen(&script).len(), 1, "HTTP {status}");
        }
        // The same answer to a charge stays a decline: a business outcome.
        let (url, _) = server(vec![], Some(answer(403, forbidden))).await;
        assert!(matches!(
            client(&url, 3).execute(&request()).await,
            Err(ProcessorError::Declined(_))
        ));
    }

    #[test]
    fn endpoints_keep_the_base_path_with_or_without_a_trailing_slash() {
        for base in ["http://p.test/v1", "http://p.test/v1/"] {
            let url = endpoint(&Url::parse(base).unwrap(), &["charges", "pay_1", "refund"]);
            assert_eq!(url.as_str(), "http://p.test/v1/charges/pay_1/refund");
        }
        let root = endpoint(&Url::parse("https://p.test").unwrap(), &["charges"]);
        assert_eq!(root.as_str(), "https://p.test/charges");
    }

    #[test]
    fn retry_delays_are_fully_jittered_exponential_and_capped() {
        let policy = RetryPolicy {
            attempts: 8,
            base: Duration::from_millis(50),
            max: Duration::from_secs(1),
        };
        let ceilings = [50, 100, 200, 400, 800, 1000, 1000];
        for _ in 0..200 {
            let delays: Vec<_> = policy.delays().collect();
            assert_eq!(delays.len(), 7);
            for (delay, ceiling) in delays.iter().zip(ceilings) {
                assert!(
                    *delay <= Duration::from_millis(ceiling),
                    "{delay:?} > {ceiling} ms"
                );
            }
        }
        // Full jitter: waits well below the ceiling happen (not "ceiling plus noise").
        let low = (0..200)
            .filter(|_| policy.delays().nth(4).unwrap() < Duration::from_millis(400))
            .count();
        assert!(low > 50, "only {low} of 200 waits below half the ceiling");
        assert_eq!(
            RetryPolicy {
                attempts: 1,
                ..policy
            }
            .delays()
            .count(),
            0
        );
    }
}
