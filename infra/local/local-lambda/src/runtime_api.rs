//! The Lambda Runtime API of one execution environment, served on loopback.
//!
//! A function binary built with `lambda_runtime` finds this server through
//! `AWS_LAMBDA_RUNTIME_API` and long-polls `GET /2018-06-01/runtime/invocation/next`;
//! [`RuntimeApi::invoke`] queues an event for it and waits for the function's
//! `.../response` or `.../error`, at most the function's timeout. As in Lambda, one
//! environment handles one invocation at a time, and a timed-out environment is not reused
//! (the caller kills and replaces the process: see `crate::instance`).
//!
//! [`RuntimeApi::initialised`] resolves at the runtime's first `/next` call, which is what
//! Lambda calls the end of the init phase: a cold-start benchmark spawns a binary and times
//! that:
//!
//! ```no_run
//! # async fn cold_start() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, Instant};
//! use local_lambda::runtime_api::{FunctionIdentity, RuntimeApi};
//!
//! let api = RuntimeApi::start(FunctionIdentity {
//!     arn: "arn:aws:lambda:us-east-1:000000000000:function:bench".to_owned(),
//!     timeout: Duration::from_secs(10),
//! })
//! .await?;
//! let spawned_at = Instant::now();
//! // `LocalFunction::runtime_environment` gives the full environment Lambda would set.
//! let _function = tokio::process::Command::new("target/release/payment-saga")
//!     .env("AWS_LAMBDA_RUNTIME_API", api.address().to_string())
//!     .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
//!     .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
//!     .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
//!     .kill_on_drop(true)
//!     .spawn()?;
//! let init = api.initialised().await? - spawned_at;
//! let response = api.invoke(r#"{"Records":[]}"#.into()).await?;
//! # let _ = (init, response);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Largest response a function may return, as for a synchronous Lambda invocation.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const RESPONSE_PATH: &str = "/2018-06-01/runtime/invocation/{request_id}/response";
const ERROR_PATH: &str = "/2018-06-01/runtime/invocation/{request_id}/error";
const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

const REQUEST_ID_HEADER: &str = "lambda-runtime-aws-request-id";
const DEADLINE_HEADER: &str = "lambda-runtime-deadline-ms";
const FUNCTION_ARN_HEADER: &str = "lambda-runtime-invoked-function-arn";
const TRACE_ID_HEADER: &str = "lambda-runtime-trace-id";
const FUNCTION_ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";

/// What the Runtime API needs to know about the function it serves.
#[derive(Debug, Clone)]
pub struct FunctionIdentity {
    pub arn: String,
    pub timeout: Duration,
}

/// An error the function's runtime reported through `/error` or `/init/error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {error_message}")]
pub struct FunctionErrorReport {
    pub error_type: String,
    pub error_message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot serve the Lambda Runtime API on loopback")]
pub struct RuntimeApiError(#[from] std::io::Error);

/// Why an invocation produced no response. Every variant means "the event was not
/// processed"; [`InvokeError::environment_lost`] tells whether the environment is still usable.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("function returned an error: {0}")]
    Function(FunctionErrorReport),
    #[error("function timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("function failed to initialise: {0}")]
    InitFailed(FunctionErrorReport),
    #[error("function process exited during the invocation: {0}")]
    RuntimeExited(String),
    #[error("function is not running")]
    NotRunning,
    #[error("the Runtime API closed before the invocation finished")]
    Abandoned,
}

impl InvokeError {
    /// Whether the execution environment must be replaced before the next invocation
    /// (Lambda reuses an environment after a function error, not after a timeout or crash).
    pub fn environment_lost(&self) -> bool {
        !matches!(self, InvokeError::Function(_))
    }
}

/// Where the runtime is in its life, as seen from the Runtime API.
#[derive(Debug, Clone)]
enum RuntimeStatus {
    Initialising,
    Ready { first_next_at: Instant },
    InitFailed(FunctionErrorReport),
}

type InvocationOutcome = Result<Bytes, InvokeError>;

struct QueuedInvocation {
    request_id: String,
    deadline_ms: u128,
    trace_id: String,
    payload: Bytes,
    responder: oneshot::Sender<InvocationOutcome>,
}

struct RuntimeState {
    function_arn: String,
    queued: tokio::sync::Mutex<mpsc::UnboundedReceiver<QueuedInvocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<InvocationOutcome>>>,
    status: watch::Sender<RuntimeStatus>,
}

impl RuntimeState {
    fn in_flight(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<InvocationOutcome>>> {
        // The map stays consistent even if a holder panicked: every operation is one call.
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands an invocation's outcome to the waiting `invoke`. False if no invocation with
    /// this id is in flight (unknown, already answered, or timed out).
    fn complete(&self, request_id: &str, outcome: InvocationOutcome) -> bool {
        match self.in_flight().remove(request_id) {
            Some(responder) => {
                // The invoker may have just given up; the outcome then has no one to go to.
                let _ = responder.send(outcome);
                true
            }
            None => false,
        }
    }
}

/// One execution environment's Runtime API. Dropping it stops the server.
pub struct RuntimeApi {
    address: SocketAddr,
    function: FunctionIdentity,
    state: Arc<RuntimeState>,
    invocations: mpsc::UnboundedSender<QueuedInvocation>,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(function: FunctionIdentity) -> Result<Self, RuntimeApiError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (invocations, queued) = mpsc::unbounded_channel();
        let (status, _) = watch::channel(RuntimeStatus::Initialising);
        let state = Arc::new(RuntimeState {
            function_arn: function.arn.clone(),
            queued: tokio::sync::Mutex::new(queued),
            in_flight: Mutex::new(HashMap::new()),
            status,
        });
        let router = Router::new()
            .route(NEXT_PATH, get(next_invocation))
            .route(RESPONSE_PATH, post(invocation_response))
            .route(ERROR_PATH, post(invocation_error))
            .route(INIT_ERROR_PATH, post(init_error))
            .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, %address, "Runtime API server stopped");
            }
        });
        Ok(RuntimeApi {
            address,
            function,
            state,
            invocations,
            server,
        })
    }

    /// The value for the function's `AWS_LAMBDA_RUNTIME_API` variable.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Waits for the end of the runtime's init phase: its first `/next` call (returned as the
    /// instant it arrived), or its `/init/error` report.
    pub async fn initialised(&self) -> Result<Instant, FunctionErrorReport> {
        let mut status = self.state.status.subscribe();
        let settled = status
            .wait_for(|status| !matches!(status, RuntimeStatus::Initialising))
            .await
            .map(|status| status.clone());
        match settled {
            Ok(RuntimeStatus::Ready { first_next_at }) => Ok(first_next_at),
            Ok(RuntimeStatus::InitFailed(report)) => Err(report),
            // The state (and so the sender) lives as long as `self`: neither arm is reachable.
            Ok(RuntimeStatus::Initialising) | Err(_) => Err(FunctionErrorReport {
                error_type: "Runtime.Unknown".to_owned(),
                error_message: "Runtime API closed during init".to_owned(),
            }),
        }
    }

    /// Sends `payload` to the function and waits, at most the function's timeout, for its
    /// response body.
    pub async fn invoke(&self, payload: Bytes) -> Result<Bytes, InvokeError> {
        self.invoke_with_request_id(new_request_id(), payload).await
    }

    /// [`RuntimeApi::invoke`] under a request id the caller chose (the Invoke API answers
    /// with it in `x-amzn-RequestId`); it must be unique among this environment's invocations.
    pub async fn invoke_with_request_id(
        &self,
        request_id: String,
        payload: Bytes,
    ) -> Result<Bytes, InvokeError> {
        let timeout = self.function.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let (responder, response) = oneshot::channel();
        self.invocations
            .send(QueuedInvocation {
                request_id: request_id.clone(),
                deadline_ms,
                trace_id: trace_id_of(&payload).unwrap_or_else(new_trace_id),
                payload,
                responder,
            })
            .map_err(|_| InvokeError::Abandoned)?;
        tracing::debug!(%request_id, runtime_api = %self.address, "invocation queued");

        let mut status = self.state.status.subscribe();
        let init_failure = async move {
            let failed = status
                .wait_for(|status| matches!(status, RuntimeStatus::InitFailed(_)))
                .await
                .ok()
                .and_then(|status| match &*status {
                    RuntimeStatus::InitFailed(report) => Some(report.clone()),
                    _ => None,
                });
            match failed {
                Some(report) => report,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            outcome = response => outcome.unwrap_or(Err(InvokeError::Abandoned)),
            report = init_failure => Err(InvokeError::InitFailed(report)),
            () = tokio::time::sleep_until(deadline) => {
                // A response arriving after this is answered 400, as Lambda does.
                self.state.in_flight().remove(&request_id);
                Err(InvokeError::Timeout(timeout))
            }
        }
    }
}

/// A new invocation request id (a UUID, as Lambda's are).
pub fn new_request_id() -> String {
    Uuid::now_v7().to_string()
}

/// The trace an event continues, as Lambda's SQS event source gives it: the first record's
/// `AWSTraceHeader` (each record keeps its own in its `attributes`), when it looks like one.
fn trace_id_of(payload: &[u8]) -> Option<String> {
    let event: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let header = event
        .get("Records")?
        .get(0)?
        .get("attributes")?
        .get("AWSTraceHeader")?
        .as_str()?;
    let plausible = header.starts_with("Root=1-")
        && header.len() <= 512
        && header.bytes().all(|byte| byte.is_ascii_graphic());
    plausible.then(|| header.to_owned())
}

/// An X-Ray style trace header, so runtimes that set `_X_AMZN_TRACE_ID` see a well-formed one.
fn new_trace_id() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // 32 ASCII hex digits each; their low bits are random.
    let root = Uuid::now_v7().simple().to_string();
    let parent = Uuid::now_v7().simple().to_string();
    format!(
        "Root=1-{seconds:08x}-{};Parent={};Sampled=0",
        &root[8..],
        &parent[16..]
    )
}

async fn next_invocation(State(state): State<Arc<RuntimeState>>) -> Response {
    state.status.send_if_modified(|status| {
        if matches!(status, RuntimeStatus::Initialising) {
            *status = RuntimeStatus::Ready {
                first_next_at: Instant::now(),
            };
            true
        } else {
            false
        }
    });
    let mut queued = state.queued.lock().await;
    loop {
        let Some(invocation) = queued.recv().await else {
            return runtime_api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Runtime.Shutdown",
                "the execution environment is shutting down",
            );
        };
        if invocation.responder.is_closed() {
            // The invoker gave up (timeout) before the runtime asked for the event.
            continue;
        }
        state
            .in_flight()
            .insert(invocation.request_id.clone(), invocation.responder);
        let headers = [
            (REQUEST_ID_HEADER, invocation.request_id),
            (DEADLINE_HEADER, invocation.deadline_ms.to_string()),
            (FUNCTION_ARN_HEADER, state.function_arn.clone()),
            (TRACE_ID_HEADER, invocation.trace_id),
            ("content-type", "application/json".to_owned()),
        ];
        return (StatusCode::OK, headers, invocation.payload).into_response();
    }
}

async fn invocation_response(
    State(state): State<Arc<RuntimeState>>,
    Path(request_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => accepted_or_unknown(state.complete(&request_id, Ok(body)), &request_id),
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            let report = FunctionErrorReport {
                error_type: "Function.ResponseSizeTooLarge".to_owned(),
                error_message: format!(
                    "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                ),
            };
            state.complete(&request_id, Err(InvokeError::Function(report)));
            runtime_api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "response payload too large",
            )
        }
        Err(rejection) => rejection.into_response(),
    }
}

async fn invocation_error(
    State(state): State<Arc<RuntimeState>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let report = error_report(&headers, &body);
    tracing::debug!(%request_id, %report, "function reported an invocation error");
    accepted_or_unknown(
        state.complete(&request_id, Err(InvokeError::Function(report))),
        &request_id,
    )
}

async fn init_error(
    State(state): State<Arc<RuntimeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let report = error_report(&headers, &body);
    tracing::debug!(%report, "function reported an init error");
    state.status.send_replace(RuntimeStatus::InitFailed(report));
    accepted()
}

/// Reads the runtime's error document (`{"errorType": .., "errorMessage": ..}`), leniently:
/// a body that is not that JSON becomes the message.
fn error_report(headers: &HeaderMap, body: &[u8]) -> FunctionErrorReport {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorDocument {
        error_type: Option<String>,
        error_message: Option<String>,
    }
    let document = serde_json::from_slice::<ErrorDocument>(body).ok();
    let header_type = headers
        .get(FUNCTION_ERROR_TYPE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let (document_type, document_message) = match document {
        Some(document) => (document.error_type, document.error_message),
        None => (None, None),
    };
    FunctionErrorReport {
        error_type: document_type
            .or(header_type)
            .unwrap_or_else(|| "Unhandled".to_owned()),
        error_message: document_message
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}

fn accepted_or_unknown(known: bool, request_id: &str) -> Response {
    if known {
        accepted()
    } else {
        runtime_api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!("no invocation {request_id} is in flight"),
        )
    }
}

fn runtime_api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal runtime client, as `lambda_runtime` would talk to the API.
    struct FakeRuntime {
        http: reqwest::Client,
        base: String,
    }

    struct NextEvent {
        request_id: String,
        headers: reqwest::header::HeaderMap,
        body: Bytes,
    }

    impl FakeRuntime {
        fn new(api: &RuntimeApi) -> Self {
            FakeRuntime {
                http: reqwest::Client::new(),
                base: format!("http://{}/2018-06-01/runtime", api.address()),
            }
        }

        async fn next(&self) -> NextEvent {
            let response = self
                .http
                .get(format!("{}/invocation/next", self.base))
                .send()
                .await
                .expect("GET next");
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            let headers = response.headers().clone();
            let request_id = headers[REQUEST_ID_HEADER]
                .to_str()
                .expect("request id is ASCII")
                .to_owned();
            let body = response.bytes().await.expect("event body");
            NextEvent {
                request_id,
                headers,
                body,
            }
        }

        async fn post(&self, path: &str, body: &'static str) -> reqwest::StatusCode {
            self.http
                .post(format!("{}/{path}", self.base))
                .header(FUNCTION_ERROR_TYPE_HEADER, "unhandled")
                .body(body)
                .send()
                .await
                .expect("POST")
                .status()
        }
    }

    async fn api_with_timeout(timeout: Duration) -> RuntimeApi {
        RuntimeApi::start(FunctionIdentity {
            arn: "arn:aws:lambda:us-east-1:000000000000:function:echo".to_owned(),
            timeout,
        })
        .await
        .expect("runtime API starts")
    }

    #[tokio::test]
    async fn an_sqs_batch_is_invoked_in_its_first_records_trace() {
        let traced = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let batch = |header: &str| {
            Bytes::from(
                serde_json::json!({"Records": [
                    {"messageId": "m1", "attributes": {"AWSTraceHeader": header}},
                    {"messageId": "m2", "attributes": {"AWSTraceHeader": "Root=1-6b08666f-248374edb729ba5d9153baa7"}},
                ]})
                .to_string(),
            )
        };
        let api = api_with_timeout(Duration::from_secs(5)).await;
        let runtime = FakeRuntime::new(&api);
        for (payload, expected) in [
            (batch(traced), Some(traced)),
            (batch("Root=1-x\nInjected: yes"), None),
            (Bytes::from_static(b"{\"Records\": []}"), None),
        ] {
            let function = async {
                let event = runtime.next().await;
                let trace = event.headers[TRACE_ID_HEADER]
                    .to_str()
                    .expect("ASCII")
                    .to_owned();
                let path = format!("invocation/{}/response", event.request_id);
                runtime.post(&path, "{}").await;
                trace
            };
            let (response, trace) = tokio::join!(api.invoke(payload), function);
            response.expect("response");
            match expected {
                Some(expected) => assert_eq!(trace, expected),
                None => assert!(
                    trace.starts_with("Root=1-") && !trace.contains("Injected"),
                    "{trace}"
                ),
            }
        }
    }

    #[tokio::test]
    async fn next_then_response_completes_the_invocation() {
        let api = api_with_timeout(Duration::from_secs(5)).await;
        let runtime = FakeRuntime::new(&api);
        let function = async {
            let event = runtime.next().await;
            assert_eq!(event.body, Bytes::from_static(b"{\"ping\":1}"));
            assert_eq!(
                event.headers[FUNCTION_ARN_HEADER],
                "arn:aws:lambda:us-east-1:000000000000:function:echo"
            );
            let deadline_ms: u128 = event.headers[DEADLINE_HEADER]
                .to_str()
                .expect("ASCII")
                .parse()
                .expect("deadline is epoch milliseconds");
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis();
            assert!(deadline_ms > now_ms && deadline_ms <= now_ms + 5_000);
            let trace = event.headers[TRACE_ID_HEADER].to_str().expect("ASCII");
            assert!(trace.starts_with("Root=1-"), "{trace}");
            let path = format!("invocation/{}/response", event.request_id);
            assert_eq!(
                runtime.post(&path, "{\"pong\":1}").await,
                reqwest::StatusCode::ACCEPTED
            );
            // Answering twice is an error, as in Lambda.
            assert_eq!(
                runtime.post(&path, "{}").await,
                reqwest::StatusCode::BAD_REQUEST
            );
        };
        let (response, ()) =
            tokio::join!(api.invoke(Bytes::from_static(b"{\"ping\":1}")), function);
        assert_eq!(
            response.expect("response"),
            Bytes::from_static(b"{\"pong\":1}")
        );
        assert!(api.initialised().await.is_ok());
    }

    #[tokio::test]
    async fn next_then_error_reports_the_function_error() {
        let api = api_with_timeout(Duration::from_secs(5)).await;
        let runtime = FakeRuntime::new(&api);
        let function = async {
            let event = runtime.next().await;
            let path = format!("invocation/{}/error", event.request_id);
            let body = r#"{"errorType":"PaymentRejected","errorMessage":"insufficient funds"}"#;
            assert_eq!(
                runtime.post(&path, body).await,
                reqwest::StatusCode::ACCEPTED
            );
        };
        let (response, ()) = tokio::join!(api.invoke(Bytes::from_static(b"{}")), function);
        match response {
            Err(error @ InvokeError::Function(_)) => {
                assert!(!error.environment_lost());
                let InvokeError::Function(report) = error else {
                    unreachable!()
                };
                assert_eq!(report.error_type, "PaymentRejected");
                assert_eq!(report.error_message, "insufficient funds");
            }
            other => panic!("expected a function error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unanswered_invocation_times_out_and_a_late_answer_is_refused() {
        let api = api_with_timeout(Duration::from_millis(200)).await;
        let runtime = FakeRuntime::new(&api);
        let (response, event) = tokio::join!(api.invoke(Bytes::from_static(b"{}")), runtime.next());
        match response {
            Err(error @ InvokeError::Timeout(_)) => assert!(error.environment_lost()),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let path = format!("invocation/{}/response", event.request_id);
        assert_eq!(
            runtime.post(&path, "{}").await,
            reqwest::StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn init_error_fails_init_and_pending_invocations() {
        let api = api_with_timeout(Duration::from_secs(5)).await;
        let runtime = FakeRuntime::new(&api);
        let body =
            r#"{"errorType":"Runtime.ConfigError","errorMessage":"WALLETS_TABLE is not set"}"#;
        let report_init_error = async {
            assert_eq!(
                runtime.post("init/error", body).await,
                reqwest::StatusCode::ACCEPTED
            );
        };
        let (response, ()) = tokio::join!(api.invoke(Bytes::from_static(b"{}")), report_init_error);
        assert!(
            matches!(response, Err(InvokeError::InitFailed(_))),
            "{response:?}"
        );
        let report = api.initialised().await.expect_err("init failed");
        assert_eq!(report.error_type, "Runtime.ConfigError");
        assert_eq!(report.error_message, "WALLETS_TABLE is not set");
    }

    #[test]
    fn error_report_falls_back_to_header_and_raw_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            FUNCTION_ERROR_TYPE_HEADER,
            axum::http::HeaderValue::from_static("Runtime.ExitError"),
        );
        let report = error_report(&headers, b"not json");
        assert_eq!(report.error_type, "Runtime.ExitError");
        assert_eq!(report.error_message, "not json");
    }
}
