//! Property tests: hostile requests through the API's router (the in-memory ledger and
//! publisher behind it), as API Gateway hands them over: the JWT authorizer's claims in the
//! request context. Random and mutated bodies on every route that reads one, hostile ids in
//! paths and hostile `Idempotency-Key`s:
//!
//! - nothing panics and no hostile input gets a 5xx;
//! - every refusal is a 4xx with the API's JSON error (`{"error":{"code","message"}}`), whose
//!   message quotes no card number, token or e-mail address;
//! - nothing logged holds one either;
//! - the API moves no money: the wallets hold what they held, whatever was asked (money moves
//!   only in the saga, and enters a wallet only by a top-up the processor charged);
//! - valid requests are still accepted.

use std::sync::Arc;

use api::router;
use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use paysaga_domain::Limits;
use paysaga_hostile::harness::run_logged;
use paysaga_hostile::{body, hostile_string, leaks};
use paysaga_http::test_support::ApiDocument;
use paysaga_services::fakes::{InMemoryLedger, self_service};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const ALICE: &str = "wal_demo_alice";
const BOB: &str = "wal_demo_bob";

struct World {
    app: Router,
    ledger: Arc<InMemoryLedger>,
}

/// A request as API Gateway passes it on, from the caller `subject`.
fn request(
    method: Method,
    path: &str,
    subject: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> Option<Request<Body>> {
    let context: ApiGatewayV2httpRequestContext = serde_json::from_value(json!({
        "accountId": "123456789012",
        "apiId": "hostile",
        "requestId": "request-1",
        "routeKey": "$default",
        "stage": "$default",
        "timeEpoch": 0,
        "http": {"method": method.as_str(), "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "192.0.2.1", "userAgent": "proptest"},
        "authorizer": {"jwt": {"claims": {"sub": subject}, "scopes": null}},
    }))
    .expect("a request context");
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", paysaga_hostile::JWT));
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    let mut request = builder.body(Body::from(body)).ok()?;
    request
        .extensions_mut()
        .insert(RequestContext::ApiGatewayV2(context));
    Some(request)
}

/// The status and the JSON body (`Null` when empty or not JSON).
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Alice's EUR wallet and Bob's, opened through the API.
async fn world() -> World {
    let ledger = Arc::new(InMemoryLedger::default());
    let app = router(Arc::new(self_service(
        ledger.clone(),
        Default::default(),
        Limits::default(),
    )));
    for (wallet, owner) in [(ALICE, "alice"), (BOB, "bob")] {
        let body = json!({"currency": "EUR", "wallet_id": wallet}).to_string();
        let open =
            request(Method::POST, "/wallets", owner, None, body.into_bytes()).expect("a request");
        assert_eq!(send(&app, open).await.0, StatusCode::CREATED);
    }
    World { app, ledger }
}

fn total(ledger: &InMemoryLedger) -> u64 {
    ledger
        .wallets()
        .iter()
        .map(|wallet| wallet.available().minor_units() + wallet.reserved().minor_units())
        .sum()
}

/// A response to hostile input: a success, or a 4xx with the API's JSON error, quoting nothing
/// sensitive.
fn check_response(status: StatusCode, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(
        !status.is_server_error(),
        "{status} for hostile input: {body}"
    );
    if status.is_client_error() {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        prop_assert!(!code.is_empty() && !message.is_empty(), "{status}: {body}");
        let leaked = leaks([message]);
        prop_assert!(leaked.is_empty(), "the error quotes input: {leaked:?}");
    } else {
        prop_assert!(status.is_success(), "{status}: {body}");
    }
    Ok(())
}

/// An `Idempotency-Key`: none, a plain one, or anything.
fn key() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[a-z0-9-]{1,40}".prop_map(Some),
        hostile_string().prop_map(Some),
    ]
}

/// Percent-encodes everything but unreserved characters, so any text can be a path segment.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A wallet id in a path: Alice's, Bob's, or anything.
fn wallet_in_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(ALICE.to_owned()),
        Just(BOB.to_owned()),
        hostile_string().prop_map(|text| segment(&text)),
    ]
}

/// Sends one hostile request to a fresh world; checks the answer, the logs and the money.
fn check_hostile(
    method: Method,
    path: String,
    key: Option<String>,
    body: Vec<u8>,
) -> Result<(), TestCaseError> {
    let route = (method.clone(), path.clone());
    let ((status, response, before, after), logs) = run_logged(async {
        let world = world().await;
        let before = total(&world.ledger);
        let Some(request) = request(method, &path, "alice", key.as_deref(), body) else {
            // A header value http refuses never reaches the function.
            return (None, Value::Null, before, before);
        };
        let (status, response) = send(&world.app, request).await;
        (Some(status), response, before, total(&world.ledger))
    });
    if let Some(status) = status {
        check_response(status, &response)?;
        // What the route answers is what docs/openapi.json says it may (a body that is not
        // JSON reads as none, which no documented answer is).
        let (method, path) = route;
        if let Err(problem) =
            ApiDocument::checked_in().check(method.as_str(), &path, status, &response)
        {
            return Err(TestCaseError::fail(problem));
        }
    }
    prop_assert_eq!(after, before, "money appeared or vanished: {}", response);
    let leaked = leaks(logs.iter().map(String::as_str));
    prop_assert!(leaked.is_empty(), "logged: {leaked:#?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn hostile_wallet_openings_get_a_clear_4xx_or_succeed(
        body in body(json!({"currency": "EUR", "wallet_id": "wal_new"})),
    ) {
        check_hostile(Method::POST, "/wallets".to_owned(), None, body)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_500))]

    #[test]
    fn hostile_top_ups_get_a_clear_4xx_or_are_accepted_and_move_nothing_yet(
        wallet in wallet_in_path(),
        key in key(),
        body in body(json!({"funding_instrument": "fi_card", "amount": {"minor_units": 500, "currency": "EUR"}})),
    ) {
        check_hostile(Method::POST, format!("/wallets/{wallet}/top-ups"), key, body)?;
    }

    #[test]
    fn hostile_payouts_get_a_clear_4xx_or_are_accepted_and_move_nothing_yet(
        wallet in wallet_in_path(),
        key in key(),
        body in body(json!({"destination": "dst_bank", "amount": {"minor_units": 500, "currency": "EUR"}})),
    ) {
        check_hostile(Method::POST, format!("/wallets/{wallet}/payouts"), key, body)?;
    }

    #[test]
    fn hostile_payments_get_a_clear_4xx_or_are_accepted(
        key in key(),
        body in body(json!({
            "from_wallet": ALICE,
            "to_wallet": BOB,
            "amount": {"minor_units": 500, "currency": "EUR"},
            "priority": "urgent",
        })),
    ) {
        check_hostile(Method::POST, "/payments".to_owned(), key, body)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn hostile_ids_in_paths_get_a_clear_4xx(
        id in hostile_string().prop_map(|text| segment(&text)),
        route in prop::sample::select(vec!["/wallets/", "/payments/"]),
    ) {
        check_hostile(Method::GET, format!("{route}{id}"), None, Vec::new())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Valid top-ups within the limits are accepted, whatever their key, and credit nothing
    /// until the saga has had the processor charge them.
    #[test]
    fn valid_top_ups_are_accepted_and_credit_nothing_yet(
        minor_units in 1..=Limits::default().payment.max_minor_units,
        key in "[A-Za-z0-9_-]{1,64}",
    ) {
        let ((status, answer, after), logs) = run_logged(async {
            let world = world().await;
            let body = json!({
                "funding_instrument": "fi_card",
                "amount": {"minor_units": minor_units, "currency": "EUR"}
            });
            let top_up = request(
                Method::POST,
                &format!("/wallets/{ALICE}/top-ups"),
                "alice",
                Some(&key),
                body.to_string().into_bytes(),
            )
            .expect("a request");
            let (status, answer) = send(&world.app, top_up).await;
            (status, answer, total(&world.ledger))
        });
        prop_assert_eq!(status, StatusCode::ACCEPTED, "{}", answer);
        prop_assert_eq!(&answer["kind"], "top_up");
        prop_assert_eq!(after, 0);
        prop_assert!(leaks(logs.iter().map(String::as_str)).is_empty());
    }
}

#[test]
fn amounts_over_the_limits_and_other_currencies_are_422s_saying_what_is_allowed() {
    let ((over, currency), _) = run_logged(async {
        let world = world().await;
        let limit = Limits::default().payment.max_minor_units;
        let body = json!({
            "funding_instrument": "fi_card",
            "amount": {"minor_units": limit + 1, "currency": "EUR"}
        });
        let path = format!("/wallets/{ALICE}/top-ups");
        let top_up = request(
            Method::POST,
            &path,
            "alice",
            Some("over-the-limit"),
            body.to_string().into_bytes(),
        );
        let over = send(&world.app, top_up.expect("a request")).await;
        let body = json!({"currency": "JPY"}).to_string().into_bytes();
        let open = request(Method::POST, "/wallets", "carol", None, body);
        let currency = send(&world.app, open.expect("a request")).await;
        (over, currency)
    });
    assert_eq!(over.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(over.1["error"]["code"], "amount_over_limit");
    assert_eq!(
        over.1["error"]["message"],
        "a payment moves at most 1000000.00 EUR"
    );
    assert_eq!(currency.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(currency.1["error"]["code"], "currency_not_allowed");
    assert_eq!(
        currency.1["error"]["message"],
        "JPY is not accepted; wallets can hold EUR, USD, GBP"
    );
}
