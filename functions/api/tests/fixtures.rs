//! The API router fed with the API Gateway HTTP API events in `events/lambda/`, against the
//! in-memory adapters.

use paysaga_http::test_support as support;

use std::sync::Arc;
use support::{fixture, send};

use api::router;
use axum::Router;
use http::StatusCode;
use paysaga_domain::{DomainEvent, IdempotencyKey, PaymentId, WalletId};
use paysaga_services::fakes::{InMemoryLedger, self_service};
use serde_json::{Value, json};

struct TestApi {
    app: Router,
    /// What the relay publishes from the ledger's writes.
    ledger: Arc<InMemoryLedger>,
}

fn test_api() -> TestApi {
    let ledger = Arc::new(InMemoryLedger::default());
    let app = router(Arc::new(self_service(
        ledger.clone(),
        Default::default(),
        Default::default(),
    )));
    TestApi { app, ledger }
}

/// The fixture with its JSON body replaced.
fn with_body(mut event: Value, body: Value) -> Value {
    event["body"] = Value::String(body.to_string());
    event
}

async fn open_demo_wallets(api: &TestApi) {
    let open = fixture("apigw-open-wallet.json");
    assert_eq!(send(&api.app, &open).await.0, StatusCode::CREATED);
    let bob = with_body(
        open,
        json!({"currency": "EUR", "wallet_id": "wal_demo_bob"}),
    );
    assert_eq!(send(&api.app, &bob).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn opening_a_wallet_twice_returns_the_same_wallet() {
    let api = test_api();
    let (status, first) = send(&api.app, &fixture("apigw-open-wallet.json")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["wallet_id"], "wal_demo_alice");
    assert_eq!(
        first["available"],
        json!({"minor_units": 0, "currency": "EUR"})
    );
    let (status, again) = send(&api.app, &fixture("apigw-open-wallet.json")).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));

    let other_currency = with_body(
        fixture("apigw-open-wallet.json"),
        json!({"currency": "USD", "wallet_id": "wal_demo_alice"}),
    );
    let (status, body) = send(&api.app, &other_currency).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("wallet_exists"))
    );
}

#[tokio::test]
async fn no_caller_deposits_money_a_top_up_is_the_way_in() {
    let api = test_api();
    open_demo_wallets(&api).await;
    let mut deposit = with_body(
        fixture("apigw-top-up.json"),
        json!({"amount": {"minor_units": 10_000, "currency": "EUR"}}),
    );
    deposit["rawPath"] = json!("/wallets/wal_demo_alice/deposits");
    deposit["requestContext"]["http"]["path"] = deposit["rawPath"].clone();
    let (status, body) = send(&api.app, &deposit).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, wallet) = send(&api.app, &fixture("apigw-read-wallet.json")).await;
    assert_eq!(wallet["available"]["minor_units"], 0);
    assert!(api.ledger.announced().await.is_empty());
}

#[tokio::test]
async fn a_payment_is_accepted_announced_and_idempotent() {
    let api = test_api();
    open_demo_wallets(&api).await;
    let (status, payment) = send(&api.app, &fixture("apigw-submit-payment.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(
        payment["amount"],
        json!({"minor_units": 1250, "currency": "EUR"})
    );
    let payment_id = payment["payment_id"]
        .as_str()
        .expect("a payment id")
        .to_owned();

    let requested: Vec<DomainEvent> = api.ledger.announced().await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].detail_type(), "PaymentRequested");
    assert_eq!(requested[0].event_id(), format!("{payment_id}/1"));

    let (status, retried) = send(&api.app, &fixture("apigw-submit-payment.json")).await;
    assert_eq!(
        (status, retried["payment_id"].as_str()),
        (StatusCode::ACCEPTED, Some(payment_id.as_str()))
    );

    let changed = with_body(
        fixture("apigw-submit-payment.json"),
        json!({"from_wallet": "wal_demo_alice", "to_wallet": "wal_demo_bob", "amount": {"minor_units": 1, "currency": "EUR"}}),
    );
    let (status, body) = send(&api.app, &changed).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_key_reused"))
    );

    // The key names the payment, within the paying wallet: Bob's equal key is his own payment.
    let key = IdempotencyKey::parse("payment-demo-0001").expect("the fixture's key");
    let alice = WalletId::parse("wal_demo_alice").expect("id");
    assert_eq!(
        payment_id,
        PaymentId::for_idempotency_key(&alice, &key).as_str()
    );
    let bobs = with_body(
        fixture("apigw-submit-payment.json"),
        json!({"from_wallet": "wal_demo_bob", "to_wallet": "wal_demo_alice", "amount": {"minor_units": 1250, "currency": "EUR"}}),
    );
    let (status, bobs) = send(&api.app, &bobs).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{bobs}");
    assert_ne!(bobs["payment_id"].as_str(), Some(payment_id.as_str()));

    let mut read = fixture("apigw-read-payment.json");
    read["rawPath"] = json!(format!("/payments/{payment_id}"));
    read["requestContext"]["http"]["path"] = read["rawPath"].clone();
    let (status, body) = send(&api.app, &read).await;
    assert_eq!(
        (status, body["payment_id"].as_str()),
        (StatusCode::OK, Some(payment_id.as_str()))
    );
}

#[tokio::test]
async fn a_top_up_and_a_payout_are_payments_of_their_wallet_accepted_and_idempotent() {
    let api = test_api();
    open_demo_wallets(&api).await;
    for (fixture_name, kind, party, detail_type) in [
        (
            "apigw-top-up.json",
            "top_up",
            ("funding_instrument", "fi_demo_card"),
            "TopUpRequested",
        ),
        (
            "apigw-payout.json",
            "payout",
            ("destination", "dst_demo_bank"),
            "PayoutRequested",
        ),
    ] {
        let (status, payment) = send(&api.app, &fixture(fixture_name)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{payment}");
        assert_eq!(
            (payment["kind"].as_str(), payment["status"].as_str()),
            (Some(kind), Some("PENDING"))
        );
        assert_eq!(payment[party.0], party.1);
        let wallet_side = if kind == "top_up" {
            "to_wallet"
        } else {
            "from_wallet"
        };
        assert_eq!(payment[wallet_side], "wal_demo_alice");
        let (status, again) = send(&api.app, &fixture(fixture_name)).await;
        assert_eq!(
            (status, &again["payment_id"]),
            (StatusCode::ACCEPTED, &payment["payment_id"])
        );
        let announced = api.ledger.announced().await;
        let last = announced.last().expect("announced");
        assert_eq!(last.detail_type(), detail_type);
        assert_eq!(
            last.event_id(),
            format!("{}/1", payment["payment_id"].as_str().expect("an id"))
        );
    }
    // Neither moved money yet: the saga does that.
    let (_, wallet) = send(&api.app, &fixture("apigw-read-wallet.json")).await;
    assert_eq!(wallet["available"]["minor_units"], 0);

    // Another caller's wallet is not the caller's to top up or pay out.
    for fixture_name in ["apigw-top-up.json", "apigw-payout.json"] {
        let mut other = fixture(fixture_name);
        other["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("demo-mallory");
        let (status, body) = send(&api.app, &other).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{fixture_name}: {body}");
    }
    // A malformed instrument is a 4xx saying so.
    let bad = with_body(
        fixture("apigw-top-up.json"),
        json!({"funding_instrument": "card-4111", "amount": {"minor_units": 1, "currency": "EUR"}}),
    );
    let (status, body) = send(&api.app, &bad).await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("funding instrument"),
        "{body}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_json_error_saying_what_is_wrong() {
    let api = test_api();
    let (status, body) = send(&api.app, &fixture("apigw-submit-payment-invalid.json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid JSON body"),
        "{body}"
    );

    let cases = [
        (
            json!({"from_wallet": "wal_a", "to_wallet": "wal_a", "amount": {"minor_units": 1, "currency": "EUR"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"from_wallet": "wal_a", "to_wallet": "wal_b", "amount": {"minor_units": 1, "currency": "EURO"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_wallet": "alice", "to_wallet": "wal_b", "amount": {"minor_units": 1, "currency": "EUR"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_wallet": "wal_a", "to_wallet": "wal_b", "amount": {"minor_units": 0, "currency": "EUR"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"from_wallet": "wal_a", "to_wallet": "wal_b", "amount": {"minor_units": 1, "currency": "EUR"}, "memo": "x"}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, expected) in cases {
        let event = with_body(fixture("apigw-submit-payment-invalid.json"), body.clone());
        let (status, answer) = send(&api.app, &event).await;
        assert_eq!(status, expected, "{body} -> {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    // Without an Idempotency-Key, a payment cannot be retried safely: refused.
    let mut keyless = fixture("apigw-submit-payment.json");
    keyless["headers"]
        .as_object_mut()
        .expect("the fixture has headers")
        .remove("idempotency-key");
    let (status, answer) = send(&api.app, &keyless).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("Idempotency-Key")),
        "{answer}"
    );
    assert!(api.ledger.announced().await.is_empty());

    let (status, body) = send(&api.app, &fixture("apigw-read-payment.json")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let mut oversized = fixture("apigw-open-wallet.json");
    oversized["body"] = json!("x".repeat(api::MAX_BODY_BYTES + 1));
    let (status, body) = send(&api.app, &oversized).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
}
