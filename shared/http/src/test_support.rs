//! What the handler tests of the functions behind the HTTP API share (feature `test-support`):
//! the API Gateway fixtures of `events/lambda/`, sent by a chosen caller, through the router as
//! `lambda_http` hands them over on Lambda; and the checked-in OpenAPI document
//! (`docs/openapi.json`), which every answer [`send`] gets back must honour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The repository's `docs/openapi.json`.
pub fn openapi_path() -> std::path::PathBuf {
    // This crate sits in shared/http.
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// The API's OpenAPI document, and what it says each operation answers.
pub struct ApiDocument {
    document: Value,
    /// A compiled validator per `METHOD template status`.
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl ApiDocument {
    pub fn new(document: Value) -> Self {
        Self {
            document,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The checked-in `docs/openapi.json`, read once.
    pub fn checked_in() -> &'static ApiDocument {
        static DOCUMENT: OnceLock<ApiDocument> = OnceLock::new();
        DOCUMENT.get_or_init(|| {
            let path = openapi_path();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            let document = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            ApiDocument::new(document)
        })
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The documented operation that `method` on the concrete `path` reaches, as the gateway
    /// routes it (a `{parameter}` is one non-empty segment; literal segments win): its path
    /// template and the operation object.
    pub fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let path = path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').collect();
        let method = method.to_ascii_lowercase();
        let paths = self.document["paths"].as_object()?;
        paths
            .iter()
            .filter_map(|(template, item)| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literals = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') {
                        if segment.is_empty() {
                            return None;
                        }
                    } else if part == segment {
                        literals += 1;
                    } else {
                        return None;
                    }
                }
                Some((literals, template.as_str(), item.get(&method)?))
            })
            .max_by_key(|(literals, _, _)| *literals)
            .map(|(_, template, operation)| (template, operation))
    }

    /// Ok when the document says `method path` may answer `status` with `body` (`Null`: no
    /// body), or when no operation of the document is reached that way (the gateway would
    /// answer itself); what is wrong otherwise.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        body: &Value,
    ) -> Result<(), String> {
        let Some((template, operation)) = self.operation(method, path) else {
            return Ok(());
        };
        let route = format!("{} {template}", method.to_ascii_uppercase());
        let Some(response) = operation["responses"].get(status.as_str()) else {
            return Err(format!(
                "{route} answered {status}, which docs/openapi.json does not document: {body}"
            ));
        };
        // A response described once among the components.
        let response = match response["$ref"].as_str() {
            Some(reference) => reference
                .strip_prefix('#')
                .and_then(|pointer| self.document.pointer(pointer))
                .ok_or_else(|| format!("{route} {status}: no response at {reference}"))?,
            None => response,
        };
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            return match body {
                Value::Null => Ok(()),
                _ => Err(format!(
                    "{route} {status} is documented without a body: {body}"
                )),
            };
        };
        let validator = self.validator(&format!("{route} {status}"), schema)?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|error| format!("{error} (at `{}`)", error.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{route} {status} answered a body docs/openapi.json does not describe: {body}\n  {}",
                errors.join("\n  ")
            ))
        }
    }

    /// The validator of one response schema, its `$ref`s resolved among the components.
    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let mut validators = self
            .validators
            .lock()
            .map_err(|_| "a test panicked while it held the validators".to_owned())?;
        if let Some(validator) = validators.get(key) {
            return Ok(validator.clone());
        }
        let mut root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": { "schemas": self.document["components"]["schemas"].clone() },
        });
        root["allOf"] = json!([schema]);
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|error| format!("{key}: the document's schema does not compile: {error}"))?;
        let validator = Arc::new(validator);
        validators.insert(key.to_owned(), validator.clone());
        Ok(validator)
    }
}

/// The fixture `events/lambda/<name>`.
pub fn fixture(name: &str) -> Value {
    // This crate sits in shared/http.
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).expect("fixtures are JSON")
}

/// Sends an API Gateway v2 event to the router; its status and JSON body (`Null` when empty).
/// Panics when the answer is not what `docs/openapi.json` says the route answers.
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
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .unwrap_or_default();
    let path = event["rawPath"].as_str().unwrap_or_default();
    if let Err(problem) = ApiDocument::checked_in().check(method, path, status, &body) {
        panic!(
            "{problem}\n(if the code is right, regenerate the document: \
             UPDATE_OPENAPI=1 cargo test -p paysaga-tests --test openapi)"
        );
    }
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
