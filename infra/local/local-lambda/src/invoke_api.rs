//! The Lambda Invoke API, served on loopback:
//! `POST /2015-03-31/functions/{FunctionName}/invocations` as AWS Lambda answers it, so `aws lambda invoke --endpoint-url ...`, an SDK client with
//! `AWS_ENDPOINT_URL_LAMBDA`, and `cargo lambda invoke --invoke-port ...` reach the local
//! functions.
//!
//! `FunctionName` is a function's name, its logical id in the template, or a full or partial
//! ARN (`arn:aws:lambda:<region>:<account>:function:<name>`, `<account>:function:<name>`),
//! with or without a `:qualifier`; a `Qualifier` query parameter is accepted too. Versions and
//! aliases do not exist locally: every invocation runs `$LATEST`.
//!
//! `X-Amz-Invocation-Type`:
//! - `RequestResponse` (the default): waits, then answers 200 with the function's response;
//!   when the invocation failed, 200 with `X-Amz-Function-Error: Unhandled` and the error
//!   document (`{"errorType": .., "errorMessage": ..}`): the runtime's own, or
//!   `Runtime.ExitError` when the process died, `Sandbox.Timedout` when it ran out of time;
//! - `Event`: 202 at once; the invocation runs in the background (not retried on failure);
//! - `DryRun`: 204 once the function and payload are checked.
//!
//! Requests Lambda would refuse are answered with its status, an `x-amzn-ErrorType` header
//! and a `{"Type": "User", "message": ..}` body: 404 `ResourceNotFoundException`, 400
//! `InvalidParameterValueException` (unknown invocation type, or a function served as an HTTP
//! server), 400 `InvalidRequestContentException` (payload not JSON), 413
//! `RequestTooLargeException` (payload over 6 MB). Every answer carries `x-amzn-RequestId`.
//!
//! Not emulated: `X-Amz-Log-Type: Tail` (the logs are in local-lambda's output),
//! `X-Amz-Client-Context`, response streaming, throttling (past the pool's size, callers wait),
//! and the retries and destinations of asynchronous invocations.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aws::describe_error;
use crate::instance::StartError;
use crate::local_function::LOCAL_ACCOUNT_ID;
use crate::on_demand::{OnDemandError, OnDemandPool};
use crate::runtime_api::{FunctionErrorReport, InvokeError, new_request_id};

/// The Invoke operation's path; `{function_name}` is the `FunctionName` parameter.
pub const INVOKE_PATH: &str = "/2015-03-31/functions/{function_name}/invocations";
/// Largest payload of a synchronous invocation, as in Lambda.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

const INVOCATION_TYPE_HEADER: HeaderName = HeaderName::from_static("x-amz-invocation-type");
const FUNCTION_ERROR_HEADER: HeaderName = HeaderName::from_static("x-amz-function-error");
const EXECUTED_VERSION_HEADER: HeaderName = HeaderName::from_static("x-amz-executed-version");
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ERROR_TYPE_HEADER: HeaderName = HeaderName::from_static("x-amzn-errortype");

/// How a function of the wiring can be reached.
pub enum InvokeTarget {
    /// Invocable: through its on-demand pool.
    OnDemand(Arc<OnDemandPool>),
    /// Served as an HTTP server at this address; not invocable.
    HttpServer(SocketAddr),
    /// In the wiring, but not run (left out by `--only`).
    NotStarted,
}

struct KnownFunction {
    name: String,
    logical_id: String,
    target: InvokeTarget,
}

/// The functions the Invoke API knows, by name and logical id.
pub struct InvokeTargets {
    region: String,
    functions: Vec<KnownFunction>,
}

impl InvokeTargets {
    /// `region` goes into the ARNs of error messages.
    pub fn new(region: String) -> Self {
        InvokeTargets {
            region,
            functions: Vec::new(),
        }
    }

    pub fn add(&mut self, name: &str, logical_id: &str, target: InvokeTarget) {
        self.functions.push(KnownFunction {
            name: name.to_owned(),
            logical_id: logical_id.to_owned(),
            target,
        });
    }

    /// The function a `FunctionName` refers to: see [`referenced_function`].
    fn find(&self, function_name: &str) -> Option<&KnownFunction> {
        let name = referenced_function(function_name);
        self.functions
            .iter()
            .find(|function| function.name == name || function.logical_id == name)
    }

    fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{LOCAL_ACCOUNT_ID}:function:{name}",
            self.region
        )
    }
}

/// The function name (or logical id) in an Invoke API `FunctionName`: `my-function`,
/// `my-function:qualifier`, `123456789012:function:my-function[:qualifier]` or
/// `arn:aws:lambda:<region>:<account>:function:my-function[:qualifier]`. The qualifier is
/// dropped (there are no versions locally); region and account are not checked.
pub fn referenced_function(function_name: &str) -> &str {
    let segments: Vec<&str> = function_name.split(':').collect();
    // `function` marks an ARN (full or partial) when something precedes it: a function may
    // itself be named `function`.
    match segments
        .iter()
        .skip(1)
        .position(|segment| *segment == "function")
    {
        Some(position) => segments.get(position + 2).copied().unwrap_or_default(),
        None => segments[0],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeApiError {
    #[error("{address} is already in use; pick another with --invoke-addr")]
    AddressInUse {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve the Invoke API on {address}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The Invoke API's listening sockets, bound before the functions start so that a taken
/// address stops local-lambda at once.
pub struct InvokeApi {
    address: SocketAddr,
    listeners: Vec<TcpListener>,
}

impl InvokeApi {
    /// Binds `address`. On the usual loopback addresses with a fixed port it also listens on
    /// the other family's loopback, same port: `cargo lambda invoke` sends to `[::1]` unless
    /// told `--invoke-address 127.0.0.1`, SDKs to `127.0.0.1`.
    pub async fn bind(address: SocketAddr) -> Result<Self, InvokeApiError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| bind_error(address, source))?;
        let address = listener
            .local_addr()
            .map_err(|source| InvokeApiError::Bind { address, source })?;
        let mut listeners = vec![listener];
        if let Some(companion) = companion_loopback(address) {
            match TcpListener::bind(companion).await {
                Ok(listener) => listeners.push(listener),
                Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                    tracing::warn!(
                        address = %companion,
                        "address taken: the Invoke API serves on {address} only \
                         (cargo lambda invoke then needs --invoke-address {})",
                        address.ip()
                    );
                }
                // IPv6 (or IPv4) disabled on this machine.
                Err(error) => tracing::debug!(address = %companion, %error, "not listening"),
            }
        }
        Ok(InvokeApi { address, listeners })
    }

    /// The address given to `bind` (with the port the system chose, if it was 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where a function is invoked.
    pub fn invocations_url(&self, function_name: &str) -> String {
        format!(
            "http://{}{}",
            self.address,
            INVOKE_PATH.replace("{function_name}", function_name)
        )
    }

    /// Answers until shutdown is requested; requests in flight then finish (each waits for
    /// its invocation, which the function's on-demand pool bounds by its timeout).
    pub async fn serve(self, targets: Arc<InvokeTargets>, shutdown: CancellationToken) {
        let router = Router::new()
            .route(INVOKE_PATH, post(invoke))
            .fallback(unknown_operation)
            .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
            .with_state(targets);
        let mut servers = JoinSet::new();
        for listener in self.listeners {
            let router = router.clone();
            let shutdown = shutdown.clone();
            servers.spawn(async move {
                let address = listener.local_addr().ok();
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await;
                if let Err(error) = served {
                    tracing::error!(%error, ?address, "Invoke API server stopped");
                }
            });
        }
        while servers.join_next().await.is_some() {}
    }
}

fn bind_error(address: SocketAddr, source: std::io::Error) -> InvokeApiError {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        InvokeApiError::AddressInUse { address, source }
    } else {
        InvokeApiError::Bind { address, source }
    }
}

fn companion_loopback(address: SocketAddr) -> Option<SocketAddr> {
    let port = address.port();
    match address.ip() {
        _ if port == 0 => None,
        IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST => Some((Ipv6Addr::LOCALHOST, port).into()),
        IpAddr::V6(ip) if ip == Ipv6Addr::LOCALHOST => Some((Ipv4Addr::LOCALHOST, port).into()),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

/// A request Lambda would refuse, or could not serve: answered with `status`, the error type
/// in `x-amzn-ErrorType` and `{"Type": .., "message": ..}`.
struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, error_type: &'static str, message: String) -> Self {
        ApiError {
            status,
            error_type,
            message,
        }
    }

    fn into_response(self, request_id: &str) -> Response {
        let fault = if self.status.is_server_error() {
            "Service"
        } else {
            "User"
        };
        let body = serde_json::json!({ "Type": fault, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        insert_header(headers, ERROR_TYPE_HEADER, self.error_type);
        insert_header(headers, REQUEST_ID_HEADER, request_id);
        response
    }
}

fn insert_header(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    // Request ids, error types and versions are ASCII.
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

async fn invoke(
    State(targets): State<Arc<InvokeTargets>>,
    Path(function_name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = new_request_id();
    match answer(&targets, &function_name, &headers, body, &request_id).await {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(
                function = %function_name,
                request_id = %request_id,
                status = error.status.as_u16(),
                error_type = %error.error_type,
                message = %error.message,
                "Invoke API request refused"
            );
            error.into_response(&request_id)
        }
    }
}

async fn answer(
    targets: &InvokeTargets,
    function_name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    request_id: &str,
) -> Result<Response, ApiError> {
    let invocation_type = invocation_type(headers)?;
    let name = referenced_function(function_name);
    let Some(function) = targets.find(function_name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {}", targets.arn(name)),
        ));
    };
    let pool = match &function.target {
        InvokeTarget::OnDemand(pool) => Arc::clone(pool),
        InvokeTarget::HttpServer(address) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!(
                    "Function {} has HTTP routes: local-lambda serves it as an HTTP server on \
                     http://{address}, which takes its requests; it cannot be invoked",
                    function.name
                ),
            ));
        }
        InvokeTarget::NotStarted => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!(
                    "Function not found: {} (it is in the wiring, but local-lambda runs \
                     without it: see --only)",
                    targets.arn(&function.name)
                ),
            ));
        }
    };
    let payload = payload(body)?;

    let mut response = match invocation_type {
        InvocationType::DryRun => StatusCode::NO_CONTENT.into_response(),
        InvocationType::Event => {
            let request_id = request_id.to_owned();
            tokio::spawn(async move {
                // The pool logs the outcome; Lambda would retry a failure, locally it is not.
                let _ = pool.invoke(request_id, payload, "Invoke API, Event").await;
            });
            StatusCode::ACCEPTED.into_response()
        }
        InvocationType::RequestResponse => {
            // In a task of its own, so a client that hangs up does not cancel the invocation.
            let invocation = tokio::spawn({
                let request_id = request_id.to_owned();
                async move { pool.invoke(request_id, payload, "Invoke API").await }
            });
            let outcome = invocation.await.map_err(|error| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceException",
                    format!("the invocation task failed: {error}"),
                )
            })?;
            let mut response = match outcome {
                Ok(response) => (StatusCode::OK, response).into_response(),
                Err(error) => {
                    let report = error_document(request_id, error)?;
                    let document = serde_json::json!({
                        "errorType": report.error_type,
                        "errorMessage": report.error_message,
                    });
                    let mut response = (StatusCode::OK, document.to_string()).into_response();
                    insert_header(response.headers_mut(), FUNCTION_ERROR_HEADER, "Unhandled");
                    response
                }
            };
            let headers = response.headers_mut();
            insert_header(headers, EXECUTED_VERSION_HEADER, "$LATEST");
            insert_header(headers, header::CONTENT_TYPE.clone(), "application/json");
            response
        }
    };
    insert_header(response.headers_mut(), REQUEST_ID_HEADER, request_id);
    Ok(response)
}

fn invocation_type(headers: &HeaderMap) -> Result<InvocationType, ApiError> {
    let Some(value) = headers.get(INVOCATION_TYPE_HEADER) else {
        return Ok(InvocationType::RequestResponse);
    };
    match value.to_str() {
        Ok("RequestResponse") => Ok(InvocationType::RequestResponse),
        Ok("Event") => Ok(InvocationType::Event),
        Ok("DryRun") => Ok(InvocationType::DryRun),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            format!(
                "1 validation error detected: Value '{}' at 'invocationType' failed to satisfy \
                 constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
                String::from_utf8_lossy(value.as_bytes())
            ),
        )),
    }
}

/// The event to send: the body, which must be JSON; an empty body is `{}`, as in Lambda.
fn payload(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    let body = match body {
        Ok(body) => body,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                format!(
                    "Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the \
                     InvokeFunction operation"
                ),
            ));
        }
        Err(rejection) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                rejection.body_text(),
            ));
        }
    };
    if body.trim_ascii().is_empty() {
        return Ok(Bytes::from_static(b"{}"));
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        Ok(_) => Ok(body),
        Err(error) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!(
                "Could not parse request body into json: Could not parse payload into json: {error}"
            ),
        )),
    }
}

/// The error document of a failed invocation, as Lambda words it; `Err` for the failures
/// that are local-lambda's, not the function's.
fn error_document(request_id: &str, error: OnDemandError) -> Result<FunctionErrorReport, ApiError> {
    let report = |error_type: &str, error: String| FunctionErrorReport {
        error_type: error_type.to_owned(),
        error_message: format!("RequestId: {request_id} Error: {error}"),
    };
    let service_error = |message: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            message,
        )
    };
    match error {
        OnDemandError::Invoke(InvokeError::Function(report))
        | OnDemandError::Invoke(InvokeError::InitFailed(report))
        | OnDemandError::Start(StartError::InitError { report, .. }) => Ok(report),
        OnDemandError::Invoke(InvokeError::Timeout(timeout)) => Ok(report(
            "Sandbox.Timedout",
            format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
        )),
        OnDemandError::Invoke(InvokeError::RuntimeExited(exit)) => Ok(report(
            "Runtime.ExitError",
            format!("Runtime exited with error: {exit}"),
        )),
        OnDemandError::Start(StartError::ExitedDuringInit { exit, .. }) => Ok(report(
            "Runtime.ExitError",
            format!("Runtime exited with error: {exit}"),
        )),
        OnDemandError::Start(StartError::InitTimeout { limit, .. }) => Ok(report(
            "Sandbox.Timedout",
            format!(
                "the init phase did not end within {:.2} seconds",
                limit.as_secs_f64()
            ),
        )),
        OnDemandError::Start(StartError::Process(error)) => {
            Ok(report("Runtime.InvalidEntrypoint", describe_error(&error)))
        }
        error @ OnDemandError::Invoke(InvokeError::NotRunning | InvokeError::Abandoned) => {
            Ok(report("Runtime.Unknown", error.to_string()))
        }
        OnDemandError::Start(error @ StartError::RuntimeApi(_)) => {
            Err(service_error(describe_error(&error)))
        }
        OnDemandError::ShuttingDown => Err(service_error(OnDemandError::ShuttingDown.to_string())),
    }
}

async fn unknown_operation() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        format!("local-lambda serves only the Lambda Invoke API: POST {INVOKE_PATH}"),
    )
    .into_response(&new_request_id())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use reqwest::header::HeaderMap as ReplyHeaders;

    use super::*;
    use crate::on_demand::MAX_ON_DEMAND_INSTANCES;
    use crate::test_support::ScriptFunction;

    #[test]
    fn function_names_logical_ids_and_arns_name_the_function() {
        for reference in [
            "dlq-redrive",
            "dlq-redrive:prod",
            "dlq-redrive:$LATEST",
            "000000000000:function:dlq-redrive",
            "000000000000:function:dlq-redrive:7",
            "arn:aws:lambda:us-east-1:000000000000:function:dlq-redrive",
            "arn:aws:lambda:eu-west-1:123456789012:function:dlq-redrive:live",
        ] {
            assert_eq!(referenced_function(reference), "dlq-redrive", "{reference}");
        }
        assert_eq!(
            referenced_function("DlqRedriveFunction"),
            "DlqRedriveFunction"
        );
        assert_eq!(referenced_function("function"), "function");
        assert_eq!(referenced_function("function:live"), "function");
        assert_eq!(
            referenced_function("arn:aws:lambda:us-east-1:0:function"),
            ""
        );
        assert_eq!(referenced_function(""), "");
    }

    #[test]
    fn the_other_loopback_is_served_only_for_a_fixed_port() {
        let companion = |address: &str| companion_loopback(address.parse().expect("address"));
        assert_eq!(
            companion("127.0.0.1:9001"),
            Some("[::1]:9001".parse().expect("v6"))
        );
        assert_eq!(
            companion("[::1]:9001"),
            Some("127.0.0.1:9001".parse().expect("v4"))
        );
        assert_eq!(companion("127.0.0.1:0"), None);
        assert_eq!(companion("127.0.0.2:9001"), None);
    }

    /// An Invoke API on an ephemeral loopback port knowing `echo` (logical id `EchoFunction`,
    /// invocable), `api` (an HTTP server) and `ledger` (not started).
    struct LocalInvokeApi {
        base: String,
        client: InvokeClient,
        pool: Arc<OnDemandPool>,
        shutdown: CancellationToken,
        server: tokio::task::JoinHandle<()>,
    }

    /// Sends Invoke requests, as the AWS CLI or `cargo lambda invoke` would.
    #[derive(Clone)]
    struct InvokeClient {
        http: reqwest::Client,
        base: String,
    }

    impl InvokeClient {
        async fn invoke(&self, function: &str, invocation_type: Option<&str>, body: &str) -> Reply {
            let url = format!("{}/2015-03-31/functions/{function}/invocations", self.base);
            let mut request = self.http.post(url).body(body.to_owned());
            if let Some(invocation_type) = invocation_type {
                request = request.header("X-Amz-Invocation-Type", invocation_type);
            }
            let response = request.send().await.expect("the Invoke API answers");
            Reply {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.text().await.expect("a body"),
            }
        }
    }

    struct Reply {
        status: u16,
        headers: ReplyHeaders,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|value| value.to_str().ok())
        }

        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).expect("a JSON body")
        }
    }

    impl LocalInvokeApi {
        async fn start(script: &ScriptFunction) -> Self {
            let shutdown = CancellationToken::new();
            let pool = Arc::new(
                OnDemandPool::new(
                    Arc::new(script.function.clone()),
                    &script.logs,
                    shutdown.clone(),
                )
                .expect("log files open"),
            );
            let mut targets = InvokeTargets::new("us-east-1".to_owned());
            targets.add(
                &script.function.name,
                "EchoFunction",
                InvokeTarget::OnDemand(Arc::clone(&pool)),
            );
            let api_address = "127.0.0.1:3000".parse().expect("address");
            targets.add("api", "ApiFunction", InvokeTarget::HttpServer(api_address));
            targets.add("ledger", "LedgerFunction", InvokeTarget::NotStarted);
            let api = InvokeApi::bind((Ipv4Addr::LOCALHOST, 0).into())
                .await
                .expect("binds an ephemeral port");
            let base = format!("http://{}", api.address());
            assert_eq!(
                api.invocations_url("echo"),
                format!("{base}/2015-03-31/functions/echo/invocations")
            );
            let server = tokio::spawn(api.serve(Arc::new(targets), shutdown.clone()));
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client");
            LocalInvokeApi {
                client: InvokeClient {
                    http,
                    base: base.clone(),
                },
                base,
                pool,
                shutdown,
                server,
            }
        }

        async fn invoke(&self, function: &str, invocation_type: Option<&str>, body: &str) -> Reply {
            self.client.invoke(function, invocation_type, body).await
        }

        async fn stop(self) {
            self.shutdown.cancel();
            self.pool.drain().await;
            self.server.await.expect("the server stops");
        }
    }

    fn assert_function_error(reply: &Reply, error_type: &str, message_part: &str) {
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(reply.header("x-amz-executed-version"), Some("$LATEST"));
        let document = reply.json();
        assert_eq!(document["errorType"], error_type, "{}", reply.body);
        let message = document["errorMessage"].as_str().expect("a message");
        assert!(message.contains(message_part), "{message}");
    }

    fn assert_refused(reply: &Reply, status: u16, error_type: &str, message_part: &str) {
        assert_eq!(reply.status, status, "{}", reply.body);
        assert_eq!(reply.header("x-amzn-errortype"), Some(error_type));
        assert!(reply.header("x-amzn-requestid").is_some());
        let body = reply.json();
        assert_eq!(body["Type"], "User");
        let message = body["message"].as_str().expect("a message");
        assert!(message.contains(message_part), "{message}");
    }

    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn names_logical_ids_arns_and_qualifiers_all_invoke_the_function() {
        let script = ScriptFunction::fake_runtime("echo");
        let api = LocalInvokeApi::start(&script).await;
        for function in [
            "echo",
            "EchoFunction",
            "echo:$LATEST",
            "000000000000:function:echo",
            "arn:aws:lambda:us-east-1:000000000000:function:echo",
            "arn:aws:lambda:us-east-1:000000000000:function:echo:live",
            // As botocore sends it, percent-encoded.
            "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho",
        ] {
            let reply = api.invoke(function, None, r#""ping""#).await;
            assert_eq!(reply.status, 200, "{function}: {}", reply.body);
            assert_eq!(reply.body, r#"echo:"ping""#, "{function}");
            assert_eq!(reply.header("x-amz-executed-version"), Some("$LATEST"));
            assert_eq!(reply.header("x-amz-function-error"), None);
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert!(
                reply
                    .header("x-amzn-requestid")
                    .is_some_and(|id| id.len() == 36)
            );
        }
        let url = format!(
            "{}/2015-03-31/functions/echo/invocations?Qualifier=%24LATEST",
            api.base
        );
        let qualified = api
            .client
            .http
            .post(url)
            .body("1")
            .send()
            .await
            .expect("answers");
        assert_eq!(qualified.status(), 200);
        assert_eq!(qualified.text().await.expect("body"), "echo:1");
        api.stop().await;
    }

    #[tokio::test]
    async fn event_answers_202_and_runs_in_the_background_dry_run_204_runs_nothing() {
        let script = ScriptFunction::fake_runtime("echo");
        let api = LocalInvokeApi::start(&script).await;
        let dry_run = api.invoke("echo", Some("DryRun"), r#""dry-run""#).await;
        assert_eq!(dry_run.status, 204);
        assert!(dry_run.body.is_empty());
        assert!(dry_run.header("x-amzn-requestid").is_some());

        let event = api
            .invoke("echo", Some("Event"), r#""in-the-background""#)
            .await;
        assert_eq!(event.status, 202);
        assert!(event.body.is_empty());
        eventually("the event reaches the function", || {
            script.log().contains(r#"event: "in-the-background""#)
        })
        .await;

        let explicit = api.invoke("echo", Some("RequestResponse"), "2").await;
        assert_eq!((explicit.status, explicit.body.as_str()), (200, "echo:2"));
        assert!(!script.log().contains("dry-run"), "{}", script.log());

        for invocation_type in ["Async", "event", ""] {
            let refused = api.invoke("echo", Some(invocation_type), "{}").await;
            assert_refused(
                &refused,
                400,
                "InvalidParameterValueException",
                "at 'invocationType' failed to satisfy constraint",
            );
        }
        api.stop().await;
    }

    #[tokio::test]
    async fn unknown_not_started_and_http_functions_are_refused_as_lambda_refuses() {
        let script = ScriptFunction::fake_runtime("echo");
        let api = LocalInvokeApi::start(&script).await;
        let unknown = api.invoke("nope", None, "{}").await;
        assert_refused(&unknown, 404, "ResourceNotFoundException", "");
        assert_eq!(
            unknown.json(),
            serde_json::json!({
                "Type": "User",
                "message": "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"
            })
        );
        let not_started = api.invoke("LedgerFunction", None, "{}").await;
        assert_refused(
            &not_started,
            404,
            "ResourceNotFoundException",
            "function:ledger (it is in the wiring, but local-lambda runs without it: see --only)",
        );
        let http = api.invoke("api", None, "{}").await;
        assert_refused(
            &http,
            400,
            "InvalidParameterValueException",
            "HTTP server on http://127.0.0.1:3000",
        );
        let other = api
            .client
            .http
            .get(format!("{}/2015-03-31/functions", api.base))
            .send()
            .await
            .expect("answers");
        assert_eq!(other.status(), 404);
        assert_eq!(
            other.headers()["x-amzn-errortype"],
            "UnknownOperationException"
        );
        api.stop().await;
    }

    #[tokio::test]
    async fn payloads_must_be_json_under_6_mb_and_an_empty_one_is_an_empty_object() {
        let script = ScriptFunction::fake_runtime("echo");
        let api = LocalInvokeApi::start(&script).await;
        let empty = api.invoke("echo", None, "").await;
        assert_eq!((empty.status, empty.body.as_str()), (200, "echo:{}"));
        let not_json = api.invoke("echo", None, "ping").await;
        assert_refused(
            &not_json,
            400,
            "InvalidRequestContentException",
            "Could not parse request body into json",
        );
        let too_large = format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES));
        let refused = api.invoke("echo", None, &too_large).await;
        assert_refused(
            &refused,
            413,
            "RequestTooLargeException",
            "Request must be smaller than 6291456 bytes",
        );
        api.stop().await;
    }

    #[tokio::test]
    async fn function_errors_crashes_and_timeouts_answer_200_with_the_error_document() {
        let mut script = ScriptFunction::fake_runtime("echo");
        script.function.timeout = Duration::from_secs(1);
        let api = LocalInvokeApi::start(&script).await;

        let failed = api.invoke("echo", None, r#""fail""#).await;
        assert_function_error(&failed, "FakeFailure", "asked to fail");
        assert_eq!(failed.json()["errorMessage"], "asked to fail");

        let crashed = api.invoke("echo", None, r#""crash""#).await;
        assert_function_error(&crashed, "Runtime.ExitError", "Runtime exited with error");
        let request_id = crashed.header("x-amzn-requestid").expect("a request id");
        let message = crashed.json()["errorMessage"].to_string();
        assert!(
            message.contains(&format!("RequestId: {request_id} Error:")),
            "{message}"
        );
        assert!(message.contains("exit status: 7"), "{message}");
        // The next invocation gets a new environment (after the instance's restart backoff).
        let after_crash = api.invoke("echo", None, r#""again""#).await;
        assert_eq!(
            (after_crash.status, after_crash.body.as_str()),
            (200, r#"echo:"again""#)
        );

        let timed_out = api.invoke("echo", None, r#""hang""#).await;
        assert_function_error(
            &timed_out,
            "Sandbox.Timedout",
            "Task timed out after 1.00 seconds",
        );
        let after_timeout = api.invoke("echo", None, r#""still here""#).await;
        assert_eq!(after_timeout.status, 200);
        assert_eq!(after_timeout.body, r#"echo:"still here""#);
        api.stop().await;
    }

    #[tokio::test]
    async fn a_function_that_cannot_start_answers_its_init_failure() {
        let script = ScriptFunction::new("echo", "echo 'missing configuration' >&2; exit 3");
        let api = LocalInvokeApi::start(&script).await;
        let reply = api.invoke("echo", None, "{}").await;
        assert_function_error(&reply, "Runtime.ExitError", "exit status: 3");
        api.stop().await;
    }

    /// The bodies of `concurrent` simultaneous `whoami` invocations: the pids that ran them.
    async fn pids_of_concurrent_invocations(
        api: &LocalInvokeApi,
        concurrent: usize,
    ) -> BTreeSet<String> {
        let mut replies = tokio::task::JoinSet::new();
        for _ in 0..concurrent {
            let client = api.client.clone();
            replies.spawn(async move { client.invoke("echo", None, r#""whoami""#).await });
        }
        let mut pids = BTreeSet::new();
        while let Some(reply) = replies.join_next().await {
            let reply = reply.expect("the invocation task ends");
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert!(reply.body.starts_with("pid:"), "{}", reply.body);
            pids.insert(reply.body);
        }
        pids
    }

    #[tokio::test]
    async fn concurrent_invocations_get_their_own_instance_up_to_four_then_wait() {
        let script = ScriptFunction::fake_runtime("echo");
        let api = LocalInvokeApi::start(&script).await;
        let two = pids_of_concurrent_invocations(&api, 2).await;
        assert_eq!(
            two.len(),
            2,
            "two concurrent invocations, two instances: {two:?}"
        );

        // A warm instance is reused: no new process.
        let again = api.invoke("echo", None, r#""whoami""#).await;
        assert!(two.contains(&again.body), "{} not in {two:?}", again.body);

        // Six at once: four instances at most, the other two wait for one.
        let six = pids_of_concurrent_invocations(&api, 6).await;
        assert_eq!(six.len(), MAX_ON_DEMAND_INSTANCES, "{six:?}");
        assert!(
            two.is_subset(&six),
            "warm instances first: {two:?} in {six:?}"
        );
        api.stop().await;
    }

    #[tokio::test]
    async fn shutdown_lets_an_invocation_in_flight_finish_and_refuses_new_ones() {
        let script = ScriptFunction::fake_runtime("echo");
        let api = LocalInvokeApi::start(&script).await;
        let client = api.client.clone();
        let in_flight =
            tokio::spawn(async move { client.invoke("echo", None, r#""whoami""#).await });
        eventually("the invocation reaches the function", || {
            script.log().contains(r#"event: "whoami""#)
        })
        .await;
        api.shutdown.cancel();
        let refused = api
            .pool
            .invoke(new_request_id(), Bytes::from_static(b"{}"), "test")
            .await;
        assert!(
            matches!(refused, Err(OnDemandError::ShuttingDown)),
            "{refused:?}"
        );
        api.pool.drain().await;
        let reply = in_flight.await.expect("the client task ends");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.starts_with("pid:"), "{}", reply.body);
        api.server.await.expect("the server stops");
    }
}
