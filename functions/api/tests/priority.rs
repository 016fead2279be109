//! `POST /payments` with a `priority`: the API Gateway fixture of `events/lambda/` with its body
//! replaced, against the in-memory adapters.

use paysaga_http::test_support as support;

use std::sync::Arc;
use support::{fixture, send};

use api::router;
use axum::Router;
use chrono::Utc;
use http::StatusCode;
use paysaga_domain::ports::WalletStore;
use paysaga_domain::{DomainEvent, Owner, Wallet, WalletId};
use paysaga_services::fakes::{InMemoryLedger, self_service};
use serde_json::{Value, json};

struct TestApi {
    app: Router,
    /// What the relay publishes from the ledger's writes.
    ledger: Arc<InMemoryLedger>,
}

/// The API, Alice's wallet open and belonging to the fixtures' caller (`demo-alice`).
async fn test_api() -> TestApi {
    let ledger = Arc::new(InMemoryLedger::default());
    let alice = Wallet::open(
        WalletId::parse("wal_demo_alice").expect("an id"),
        "EUR".parse().expect("EUR"),
        Utc::now(),
    )
    .owned_by(Owner::parse("demo-alice").expect("an owner"));
    ledger.open_wallet(&alice).await.expect("opened");
    let app = router(Arc::new(self_service(
        ledger.clone(),
        Default::default(),
        Default::default(),
    )));
    TestApi { app, ledger }
}

/// `POST /payments` with `body` and the fixture's Idempotency-Key (`payment-demo-0001`), or a
/// key of its own (a new payment each time).
fn submit(body: Value, fixture_key: bool) -> Value {
    let mut event = fixture("apigw-submit-payment.json");
    event["body"] = Value::String(body.to_string());
    if !fixture_key {
        static NEXT_KEY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let key = NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        event["headers"]["idempotency-key"] = json!(format!("priority-test-{key}"));
    }
    event
}

fn read(payment_id: &str) -> Value {
    let mut event = submit(json!({}), false);
    event["routeKey"] = json!("GET /payments/{payment_id}");
    event["rawPath"] = json!(format!("/payments/{payment_id}"));
    event["body"] = Value::Null;
    event["requestContext"]["http"]["method"] = json!("GET");
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event
}

fn payment(priority: Option<&str>) -> Value {
    let mut body = json!({
        "from_wallet": "wal_demo_alice",
        "to_wallet": "wal_demo_bob",
        "amount": {"minor_units": 1250, "currency": "EUR"},
    });
    if let Some(priority) = priority {
        body["priority"] = json!(priority);
    }
    body
}

/// The `data.priority` of the PaymentRequested events published so far.
async fn announced_priorities(api: &TestApi) -> Vec<Value> {
    api.ledger
        .announced()
        .await
        .iter()
        .map(|event: &DomainEvent| {
            let detail: Value = serde_json::from_str(&event.detail_json()).expect("JSON");
            detail["data"]["priority"].clone()
        })
        .collect()
}

#[tokio::test]
async fn an_urgent_payment_is_announced_and_shown_as_urgent() {
    let api = test_api().await;
    let (status, accepted) = send(&api.app, &submit(payment(Some("urgent")), false)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["priority"], "urgent");
    assert_eq!(announced_priorities(&api).await, [json!("urgent")]);

    let payment_id = accepted["payment_id"].as_str().expect("a payment id");
    let (status, shown) = send(&api.app, &read(payment_id)).await;
    assert_eq!(
        (status, shown["priority"].as_str()),
        (StatusCode::OK, Some("urgent"))
    );
}

#[tokio::test]
async fn a_payment_without_a_priority_is_ordinary_and_says_so() {
    let api = test_api().await;
    for priority in [None, Some("ordinary")] {
        let (status, accepted) = send(&api.app, &submit(payment(priority), false)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        assert_eq!(accepted["priority"], "ordinary", "{priority:?}");
    }
    // Written on the bus too, so rules can route on it.
    assert_eq!(
        announced_priorities(&api).await,
        [json!("ordinary"), json!("ordinary")]
    );
}

#[tokio::test]
async fn an_unknown_priority_is_a_bad_request_and_nothing_happens() {
    let api = test_api().await;
    for priority in [json!("asap"), json!("URGENT"), json!(1), Value::Null] {
        let mut body = payment(None);
        body["priority"] = priority.clone();
        let (status, answer) = send(&api.app, &submit(body, false)).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{priority} -> {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("priority")),
            "{answer}"
        );
    }
    assert!(api.ledger.announced().await.is_empty());
}

#[tokio::test]
async fn the_priority_is_part_of_an_idempotency_keys_terms() {
    let api = test_api().await;
    let (status, first) = send(&api.app, &submit(payment(Some("urgent")), true)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");

    let (status, retried) = send(&api.app, &submit(payment(Some("urgent")), true)).await;
    assert_eq!(
        (status, retried["payment_id"].as_str()),
        (StatusCode::ACCEPTED, first["payment_id"].as_str())
    );

    // The same key asking for another priority is another request: refused, as other terms are.
    for other in [None, Some("ordinary")] {
        let (status, refused) = send(&api.app, &submit(payment(other), true)).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("idempotency_key_reused")),
            "{other:?} -> {refused}"
        );
    }
    let (_, shown) = send(&api.app, &read(first["payment_id"].as_str().expect("id"))).await;
    assert_eq!(shown["priority"], "urgent");
}
