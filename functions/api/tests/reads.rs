//! The read endpoints fed with the API Gateway HTTP API events in `events/lambda/`, against
//! in-memory read models filled by replaying events.

use paysaga_http::test_support as support;

use std::sync::Arc;
use support::{fixture, send};

use api::router;
use axum::Router;
use chrono::{Duration, TimeZone, Utc};
use http::StatusCode;
use paysaga_domain::events::FundsDeposited;
use paysaga_domain::ports::WalletStore;
use paysaga_domain::{
    DepositId, DomainEvent, Money, Owner, PaymentId, PaymentRequest, Wallet, WalletId,
};
use paysaga_services::fakes::{InMemoryLedger, self_service};
use paysaga_services::read_models::{InMemoryReadModels, replay};
use serde_json::{Value, json};

fn wallet(id: &str) -> WalletId {
    WalletId::parse(id).expect("a wallet id")
}

/// The whole API (as `main` assembles it), its read models holding a deposit into Alice's
/// wallet and then `payments` payments from Alice to Bob, a minute apart.
async fn app_with(payments: i64) -> Router {
    let models = Arc::new(InMemoryReadModels::default());
    let eur = "EUR".parse().expect("EUR");
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    let mut events = vec![DomainEvent::funds_deposited(
        FundsDeposited {
            deposit_id: DepositId::parse("dep_demo_0").expect("id"),
            wallet_id: wallet("wal_demo_alice"),
            amount: Money::new(10_000, eur).expect("amount"),
            issued_by: None,
            reason: None,
        },
        t0,
    )];
    for i in 1..=payments {
        let request = PaymentRequest::new(
            PaymentId::parse(&format!("pay_demo_{i}")).expect("id"),
            wallet("wal_demo_alice"),
            wallet("wal_demo_bob"),
            Money::new(100, eur).expect("amount"),
        )
        .expect("a request");
        events.push(DomainEvent::payment_requested(
            &request,
            t0 + Duration::minutes(i),
        ));
    }
    replay(&events, models.as_ref()).await.expect("replayed");
    let ledger = Arc::new(InMemoryLedger::default());
    // Both wallets belong to the fixtures' caller (their authorizer claims' `sub`).
    for id in ["wal_demo_alice", "wal_demo_bob"] {
        let opened = Wallet::open(wallet(id), eur, t0)
            .owned_by(Owner::parse("demo-alice").expect("an owner"));
        ledger.open_wallet(&opened).await.expect("opened");
    }
    router(Arc::new(self_service(
        ledger.clone(),
        models,
        Default::default(),
    )))
}

/// The fixture with another query string.
fn with_query(mut event: Value, query: &str) -> Value {
    event["rawQueryString"] = query.into();
    let parameters: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.into()))
        .collect();
    event["queryStringParameters"] = Value::Object(parameters);
    event
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| {
            item["transaction_id"]
                .as_str()
                .or(item["payment_id"].as_str())
                .expect("an id")
        })
        .collect()
}

#[tokio::test]
async fn a_wallets_transactions_come_newest_first_a_page_at_a_time() {
    let app = app_with(3).await;
    let (status, first) = send(&app, &fixture("apigw-wallet-transactions.json")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["wallet_id"], "wal_demo_alice");
    assert_eq!(ids(&first["transactions"]), ["pay_demo_3", "pay_demo_2"]);
    assert_eq!(
        first["transactions"][0]["amount"],
        json!({"minor_units": -100, "currency": "EUR"})
    );
    assert_eq!(first["transactions"][0]["kind"], "payment_sent");
    assert_eq!(first["transactions"][0]["counterparty"], "wal_demo_bob");
    assert_eq!(first["transactions"][0]["status"], "PENDING");

    let cursor = first["next"].as_str().expect("a next page");
    let next = with_query(
        fixture("apigw-wallet-transactions.json"),
        &format!("limit=2&cursor={cursor}"),
    );
    let (status, second) = send(&app, &next).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(ids(&second["transactions"]), ["pay_demo_1", "dep_demo_0"]);
    assert_eq!(second["transactions"][1]["amount"]["minor_units"], 10_000);
    assert_eq!(second["next"], Value::Null);
}

#[tokio::test]
async fn a_wallets_payments_are_listed_by_wallet() {
    let app = app_with(3).await;
    let (status, body) = send(&app, &fixture("apigw-list-payments.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        ids(&body["payments"]),
        ["pay_demo_3", "pay_demo_2", "pay_demo_1"]
    );
    assert_eq!(body["payments"][0]["role"], "payer");
    assert_eq!(body["next"], Value::Null);

    let bob = with_query(fixture("apigw-list-payments.json"), "wallet=wal_demo_bob");
    let (status, body) = send(&app, &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["payments"][0]["role"], "payee");
    assert_eq!(body["payments"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn bad_paging_and_a_missing_wallet_are_answered_with_a_json_400() {
    let app = app_with(1).await;
    let cases = [
        ("apigw-list-payments.json", "limit=10"),
        ("apigw-list-payments.json", "wallet=not-a-wallet"),
        ("apigw-list-payments.json", "wallet=wal_demo_alice&limit=0"),
        ("apigw-wallet-transactions.json", "limit=101"),
        ("apigw-wallet-transactions.json", "limit=ten"),
        ("apigw-wallet-transactions.json", "cursor=nothex"),
        // Hex, but not of an order key this API gave out.
        ("apigw-wallet-transactions.json", "cursor=68656c6c6f"),
    ];
    for (file, query) in cases {
        let (status, body) = send(&app, &with_query(fixture(file), query)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{file} ?{query}: {body}"
        );
    }
}
