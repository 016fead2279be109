//! GetBalance in each protocol: the same balances, each in its own wire format, and binary
//! answers leaving as binary (base64 to API Gateway), JSON ones as text.

mod support;

use http::StatusCode;
use paysaga_wallet_proto::v1;
use serde_json::json;
use support::{ALICE, Protocol, World};

fn alices_wallet() -> v1::GetBalanceRequest {
    v1::GetBalanceRequest {
        wallet_id: "wal_alice".into(),
        ..Default::default()
    }
}

/// Alice's balances as the wire carries them: 75.00 available, 25.00 reserved, 100.00 in all.
fn alices_balance(answer: &v1::GetBalanceResponse) {
    assert_eq!(answer.wallet_id, "wal_alice");
    let amounts = [&answer.available, &answer.reserved, &answer.total]
        .map(|money| (money.minor_units, money.currency.as_str()));
    assert_eq!(amounts, [(7_500, "EUR"), (2_500, "EUR"), (10_000, "EUR")]);
}

#[tokio::test]
async fn get_balance_over_connect_json() {
    let world = World::new().await;
    let answer = world
        .call(Protocol::ConnectJson, "GetBalance", ALICE, &alices_wallet())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.content_type().starts_with("application/json"));
    // proto3 JSON: lowerCamelCase names, 64-bit integers as strings.
    assert_eq!(
        answer.json(),
        json!({
            "walletId": "wal_alice",
            "available": {"minorUnits": "7500", "currency": "EUR"},
            "reserved": {"minorUnits": "2500", "currency": "EUR"},
            "total": {"minorUnits": "10000", "currency": "EUR"},
        })
    );
}

#[tokio::test]
async fn get_balance_over_connect_json_takes_the_protos_field_names_too() {
    let world = World::new().await;
    let event = support::event(
        "GetBalance",
        ALICE,
        "application/json",
        support::Body::Text(r#"{"wallet_id": "wal_alice"}"#.to_owned()),
    );
    let answer = world.send(&event).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["total"]["minorUnits"], "10000");
}

#[tokio::test]
async fn get_balance_over_connect_binary() {
    let world = World::new().await;
    let answer = world
        .call(
            Protocol::ConnectProto,
            "GetBalance",
            ALICE,
            &alices_wallet(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "application/proto");
    alices_balance(&answer.proto());
}

#[tokio::test]
async fn get_balance_over_grpc_web() {
    let world = World::new().await;
    let answer = world
        .call(Protocol::GrpcWeb, "GetBalance", ALICE, &alices_wallet())
        .await;
    assert_eq!(answer.content_type(), "application/grpc-web+proto");
    let grpc_web = answer.grpc_web();
    assert_eq!(grpc_web.status(), "0");
    alices_balance(&grpc_web.decode());
}

#[tokio::test]
async fn a_wallet_that_does_not_exist_is_not_found() {
    let world = World::new().await;
    let missing = v1::GetBalanceRequest {
        wallet_id: "wal_nobody".into(),
        ..Default::default()
    };
    let answer = world
        .call(Protocol::ConnectJson, "GetBalance", ALICE, &missing)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.connect_error(),
        ("not_found".to_owned(), "not_found".to_owned())
    );
    let grpc_web = world
        .call(Protocol::GrpcWeb, "GetBalance", ALICE, &missing)
        .await;
    assert_eq!(grpc_web.grpc_web().status(), "5");
}
