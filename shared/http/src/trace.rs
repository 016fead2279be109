//! Each request in its trace ([`lambda_toolkit::trace`]): the layer that gives a request its X-Ray
//! trace header, runs the handler in it (so every event the request publishes carries it to the
//! bus), puts `trace_id` on its log lines, answers it in `X-Amzn-Trace-Id`, and logs one line
//! per request (method, route template, status, `Location`).
//!
//! The header is, in order: the invocation's (on Lambda, API Gateway has already continued a
//! caller's `X-Amzn-Trace-Id` into it), the request's own `X-Amzn-Trace-Id` (the plain HTTP
//! server of local runs), or a new one. A malformed header is ignored, never logged.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use lambda_http::RequestExt;
use lambda_toolkit::trace::{self, HTTP_HEADER, TraceHeader};
use tracing::Instrument;

/// The middleware: `router.layer(axum::middleware::from_fn(paysaga_http::trace::traced))`.
pub async fn traced(request: Request, next: Next) -> Response {
    let trace = request_trace(&request, Utc::now());
    let span = trace::span(Some(&trace));
    let answer = HeaderValue::from_str(&trace.to_string()).ok();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let served = async move {
        let mut response = next.run(request).await;
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok());
        tracing::info!(
            %method,
            route = route.as_deref().unwrap_or("-"),
            status = response.status().as_u16(),
            location,
            "request served"
        );
        if let Some(answer) = answer {
            response.headers_mut().insert(HTTP_HEADER, answer);
        }
        response
    };
    trace::scope(Some(trace), served).instrument(span).await
}

/// The trace a request belongs to: the invocation's, else the request's header, else a new one.
fn request_trace(request: &Request, now: DateTime<Utc>) -> TraceHeader {
    let invocation = request
        .lambda_context_ref()
        .and_then(|context| context.xray_trace_id.as_deref());
    let header = request
        .headers()
        .get(HTTP_HEADER)
        .and_then(|value| value.to_str().ok());
    [invocation, header]
        .into_iter()
        .flatten()
        .find_map(|candidate| candidate.parse().ok())
        .unwrap_or_else(|| TraceHeader::generate(now))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    const CALLER: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    const INVOCATION: &str =
        "Root=1-6b08666f-248374edb729ba5d9153baa7;Parent=b729ba5ea6462cbc;Sampled=0";

    /// A router whose one handler says which trace it ran in (what the EventBridge adapter
    /// would stamp on the events it publishes).
    fn app(seen: &'static Mutex<Vec<Option<String>>>) -> Router {
        Router::new()
            .route(
                "/payments",
                post(move || async move {
                    seen.lock()
                        .unwrap()
                        .push(trace::current().map(|trace| trace.to_string()));
                    "ok"
                }),
            )
            .layer(axum::middleware::from_fn(traced))
    }

    async fn send(
        request: http::Request<Body>,
        seen: &'static Mutex<Vec<Option<String>>>,
    ) -> (String, Option<String>) {
        let response = app(seen).oneshot(request).await.unwrap();
        let answered = response.headers()[HTTP_HEADER].to_str().unwrap().to_owned();
        let current = seen.lock().unwrap().pop().flatten();
        (answered, current)
    }

    fn post_payments() -> http::request::Builder {
        http::Request::post("/payments")
    }

    #[tokio::test]
    async fn the_callers_header_is_continued_and_answered() {
        static SEEN: Mutex<Vec<Option<String>>> = Mutex::new(Vec::new());
        let request = post_payments()
            .header("X-Amzn-Trace-Id", CALLER)
            .body(Body::empty())
            .unwrap();
        let (answered, current) = send(request, &SEEN).await;
        assert_eq!(answered, CALLER);
        assert_eq!(current.as_deref(), Some(CALLER));
    }

    #[tokio::test]
    async fn on_lambda_the_invocations_trace_comes_first() {
        static SEEN: Mutex<Vec<Option<String>>> = Mutex::new(Vec::new());
        let mut context = lambda_http::Context::default();
        context.xray_trace_id = Some(INVOCATION.to_owned());
        let request = post_payments()
            .header("X-Amzn-Trace-Id", CALLER)
            .body(Body::empty())
            .unwrap()
            .with_lambda_context(context);
        let (answered, current) = send(request, &SEEN).await;
        assert_eq!(answered, INVOCATION);
        assert_eq!(current.as_deref(), Some(INVOCATION));
    }

    #[tokio::test]
    async fn without_a_valid_header_a_new_trace_starts() {
        static SEEN: Mutex<Vec<Option<String>>> = Mutex::new(Vec::new());
        let mut answers = Vec::new();
        for header in [None, Some("Root=1-not-hex;Parent=<script>")] {
            let mut request = post_payments();
            if let Some(header) = header {
                request = request.header("X-Amzn-Trace-Id", header);
            }
            let (answered, current) = send(request.body(Body::empty()).unwrap(), &SEEN).await;
            let parsed: TraceHeader = answered.parse().expect("a well-formed header is answered");
            assert_eq!(current, Some(parsed.to_string()));
            assert!(!answered.contains("script"), "{answered}");
            answers.push(answered);
        }
        assert_ne!(answers[0], answers[1]);
    }
}
