//! What the handler tests share: a world of wallets in the in-memory fakes behind the real
//! router, and the API Gateway events of `tests/fixtures/` sent through it as `lambda_http`
//! hands them over on Lambda.

#![allow(dead_code)] // each test file uses its own part of this module

use std::sync::Arc;

use axum::Router;
use chrono::Utc;
use graphql::{Graphiql, router_with};
use http::{HeaderMap, StatusCode};
use paysaga_domain::ports::WalletStore;
use paysaga_domain::{Limits, Owner, Wallet, WalletId};
pub use paysaga_http::test_support::As;
use paysaga_services::fakes::{InMemoryLedger, InMemoryReadModels, self_service};
use paysaga_services::read_models::replay;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Alice holds two euro wallets, the first with 100.00 EUR deposited; Bob holds one.
pub const ALICE: &str = "alice";
pub const BOB: &str = "bob";
pub const ALICE_MAIN: &str = "wal_alice_main";
pub const ALICE_SAVINGS: &str = "wal_alice_savings";
pub const BOBS: &str = "wal_bob";

/// The router over in-memory adapters, and the adapters, to look behind it.
pub struct World {
    pub app: Router,
    pub ledger: Arc<InMemoryLedger>,
    pub read_models: Arc<InMemoryReadModels>,
}

impl World {
    /// Alice's and Bob's wallets, GraphiQL off.
    pub async fn new() -> Self {
        Self::with_graphiql(Graphiql::Disabled).await
    }

    pub async fn with_graphiql(graphiql: Graphiql) -> Self {
        let ledger = Arc::new(InMemoryLedger::default());
        let read_models = Arc::new(InMemoryReadModels::default());
        let eur = "EUR".parse().expect("EUR");
        for (id, holder) in [(ALICE_MAIN, ALICE), (ALICE_SAVINGS, ALICE), (BOBS, BOB)] {
            let wallet = Wallet::open(WalletId::parse(id).expect("an id"), eur, Utc::now())
                .owned_by(Owner::parse(holder).expect("an owner"));
            ledger.open_wallet(&wallet).await.expect("opened");
        }
        ledger.fund(ALICE_MAIN, 10_000).await;
        let service = Arc::new(self_service(
            ledger.clone(),
            read_models.clone(),
            Limits::default(),
        ));
        let world = Self {
            app: router_with(service, graphiql),
            ledger,
            read_models,
        };
        world.project().await;
        world
    }

    /// The read models caught up with everything announced so far (as the read-models
    /// function does from the bus; what was projected already changes nothing).
    pub async fn project(&self) {
        replay(&self.ledger.announced().await, self.read_models.as_ref())
            .await
            .expect("projected");
    }

    /// `query` with `variables`, POSTed by `who`: the status and the JSON body.
    pub async fn graphql(&self, who: As, query: &str, variables: Value) -> (StatusCode, Value) {
        let body = json!({ "query": query, "variables": variables });
        self.send(post(who, &body.to_string())).await
    }

    /// Sends an API Gateway event: its status and JSON body.
    pub async fn send(&self, event: Value) -> (StatusCode, Value) {
        let (status, _, body) = self.send_raw(event).await;
        let body = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON: {body}"));
        (status, body)
    }

    /// Sends an API Gateway event: its status, headers and body as text.
    pub async fn send_raw(&self, event: Value) -> (StatusCode, HeaderMap, String) {
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a body");
        let text = String::from_utf8(bytes.to_vec()).expect("a UTF-8 body");
        (parts.status, parts.headers, text)
    }
}

/// The fixture `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).expect("fixtures are JSON")
}

/// The fixture as `who` sends it: the authorizer's claims name `who`, or there are none.
pub fn sent_by(mut event: Value, who: As) -> Value {
    let context = event["requestContext"]
        .as_object_mut()
        .expect("a request context");
    match who {
        As::Nobody => {
            context.remove("authorizer");
        }
        As::Caller(sub) | As::Admin(sub) => {
            context.insert(
                "authorizer".to_owned(),
                json!({ "jwt": { "claims": { "sub": sub }, "scopes": null } }),
            );
        }
    }
    event
}

/// `POST /graphql` with `body`, sent by `who`.
pub fn post(who: As, body: &str) -> Value {
    let mut event = sent_by(fixture("apigw-graphql-post.json"), who);
    event["body"] = Value::String(body.to_owned());
    event
}

/// `GET /graphql?<parameters>` (each value percent-encoded here), sent by `who`, accepting
/// `accept`.
pub fn get(who: As, parameters: &[(&str, &str)], accept: &str) -> Value {
    let mut event = sent_by(fixture("apigw-graphql-get.json"), who);
    let query: Vec<String> = parameters
        .iter()
        .map(|(name, value)| format!("{name}={}", percent_encoded(value)))
        .collect();
    event["rawQueryString"] = json!(query.join("&"));
    event["headers"]["accept"] = json!(accept);
    event
}

fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The `extensions.code` of each error of a GraphQL response, in order.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error["extensions"]["code"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `extensions.reason` of each error of a GraphQL response, in order.
pub fn error_reasons(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error["extensions"]["reason"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}
