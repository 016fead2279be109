//! What the api's handler tests share: the API Gateway fixtures of `events/lambda/`, and
//! sending one through the router as `lambda_http` hands it over on Lambda.

use axum::Router;
use http::StatusCode;
use serde_json::Value;
use tower::ServiceExt;

/// The fixture `events/lambda/<name>`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).expect("fixtures are JSON")
}

/// Sends an API Gateway v2 event to the router; its status and JSON body (`Null` when empty).
pub async fn send(app: &Router, event: &Value) -> (StatusCode, Value) {
    let request =
        lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event");
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (status, body)
}
