//! What the handler tests of the functions behind the HTTP API share (feature `test-support`):
//! the API Gateway fixtures of `events/lambda/`, sent by a chosen caller, through the router as
//! `lambda_http` hands them over on Lambda.

use axum::Router;
use http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The fixture `events/lambda/<name>`.
pub fn fixture(name: &str) -> Value {
    // This crate sits in shared/http.
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

/// Who sends a request, as the authorizer's claims say.
#[derive(Clone, Copy)]
pub enum As {
    Nobody,
    Caller(&'static str),
    Admin(&'static str),
}

/// The fixture `name`, sent by `who`, with `body` instead of its own when given.
pub fn request(name: &str, who: As, body: Option<Value>) -> Value {
    let mut event = fixture(name);
    let context = event["requestContext"]
        .as_object_mut()
        .expect("a request context");
    match who {
        As::Nobody => {
            context.remove("authorizer");
        }
        As::Caller(sub) | As::Admin(sub) => {
            let jwt = &mut context["authorizer"]["jwt"];
            jwt["claims"]["sub"] = json!(sub);
            if matches!(who, As::Admin(_)) {
                jwt["claims"]["scope"] = json!("paysaga/admin");
                jwt["scopes"] = json!(["paysaga/admin"]);
            } else if let Some(claims) = jwt["claims"].as_object_mut() {
                // A caller without the scope, whatever the fixture's token had.
                claims.remove("scope");
                jwt["scopes"] = Value::Null;
            }
        }
    }
    if let Some(body) = body {
        event["body"] = Value::String(body.to_string());
    }
    event
}

/// The fixture sent to another path (and route key) with another method.
pub fn at(mut event: Value, method: &str, path: &str, route: &str) -> Value {
    event["rawPath"] = json!(path);
    event["routeKey"] = json!(format!("{method} {route}"));
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["routeKey"] = event["routeKey"].clone();
    event
}
