//! Who may do what: the API Gateway fixtures of `events/lambda/` sent with other callers'
//! claims (as the JWT authorizer passes them), or none, against the in-memory adapters.

use paysaga_http::test_support as support;

use std::sync::Arc;

use api::router;
use axum::Router;
use http::StatusCode;
use paysaga_services::fakes::{InMemoryLedger, self_service};
use paysaga_services::read_models::InMemoryReadModels;
use serde_json::{Value, json};
use support::{As, at, request, send};

struct World {
    app: Router,
    ledger: Arc<InMemoryLedger>,
}

/// The API, as `main` assembles it.
fn world() -> World {
    let ledger = Arc::new(InMemoryLedger::default());
    let app = router(Arc::new(self_service(
        ledger.clone(),
        Arc::new(InMemoryReadModels::default()),
        Default::default(),
    )));
    World { app, ledger }
}

fn open(wallet_id: &str, who: As) -> Value {
    request(
        "apigw-open-wallet.json",
        who,
        Some(json!({"currency": "EUR", "wallet_id": wallet_id})),
    )
}

fn top_up(wallet_id: &str, who: As) -> Value {
    let event = request(
        "apigw-top-up.json",
        who,
        Some(
            json!({"funding_instrument": "fi_card", "amount": {"minor_units": 100, "currency": "EUR"}}),
        ),
    );
    let path = format!("/wallets/{wallet_id}/top-ups");
    at(event, "POST", &path, "/wallets/{wallet_id}/top-ups")
}

fn payout(wallet_id: &str, who: As) -> Value {
    let event = request(
        "apigw-payout.json",
        who,
        Some(json!({"destination": "dst_bank", "amount": {"minor_units": 100, "currency": "EUR"}})),
    );
    let path = format!("/wallets/{wallet_id}/payouts");
    at(event, "POST", &path, "/wallets/{wallet_id}/payouts")
}

fn pay(from: &str, to: &str, who: As) -> Value {
    request(
        "apigw-submit-payment.json",
        who,
        Some(json!({"from_wallet": from, "to_wallet": to,
                    "amount": {"minor_units": 100, "currency": "EUR"}})),
    )
}

fn read_wallet(wallet_id: &str, who: As) -> Value {
    let event = request("apigw-read-wallet.json", who, None);
    at(
        event,
        "GET",
        &format!("/wallets/{wallet_id}"),
        "/wallets/{wallet_id}",
    )
}

fn read_payment(payment_id: &str, who: As) -> Value {
    let event = request("apigw-read-payment.json", who, None);
    let path = format!("/payments/{payment_id}");
    at(event, "GET", &path, "/payments/{payment_id}")
}

fn transactions(wallet_id: &str, who: As) -> Value {
    let event = request("apigw-wallet-transactions.json", who, None);
    let path = format!("/wallets/{wallet_id}/transactions");
    at(event, "GET", &path, "/wallets/{wallet_id}/transactions")
}

fn payments_of(wallet_id: &str, who: As) -> Value {
    let mut event = request("apigw-list-payments.json", who, None);
    event["rawQueryString"] = json!(format!("wallet={wallet_id}"));
    event["queryStringParameters"] = json!({ "wallet": wallet_id });
    event
}

const ALICE: As = As::Caller("alice");
const BOB: As = As::Caller("bob");
const MALLORY: As = As::Caller("mallory");

#[tokio::test]
async fn no_verified_caller_is_a_401_on_every_route() {
    let world = world();
    let routes = [
        open("wal_alice", As::Nobody),
        top_up("wal_alice", As::Nobody),
        payout("wal_alice", As::Nobody),
        pay("wal_alice", "wal_bob", As::Nobody),
        read_wallet("wal_alice", As::Nobody),
        read_payment("pay_x", As::Nobody),
        request("apigw-wallet-transactions.json", As::Nobody, None),
        request("apigw-list-payments.json", As::Nobody, None),
    ];
    for event in routes {
        let (status, body) = send(&world.app, &event).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} -> {body}",
            event["routeKey"]
        );
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    assert!(world.ledger.wallets().is_empty(), "nothing was opened");
}

#[tokio::test]
async fn a_caller_reads_and_moves_its_own_wallets_and_no_one_elses() {
    let world = world();
    assert_eq!(
        send(&world.app, &open("wal_alice", ALICE)).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&world.app, &open("wal_bob", BOB)).await.0,
        StatusCode::CREATED
    );
    world.ledger.fund("wal_alice", 1_000).await;

    // Alice's own wallet: 2xx.
    let (status, wallet) = send(&world.app, &read_wallet("wal_alice", ALICE)).await;
    assert_eq!(status, StatusCode::OK, "{wallet}");
    assert_eq!(wallet["available"]["minor_units"], 1_000);
    let (status, accepted) = send(&world.app, &pay("wal_alice", "wal_bob", ALICE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");

    // Someone else's: 403 with a JSON body, and nothing moves.
    let forbidden = [
        read_wallet("wal_alice", BOB),
        top_up("wal_alice", BOB),
        payout("wal_alice", BOB),
        pay("wal_alice", "wal_bob", BOB),
        open("wal_alice", BOB),
        transactions("wal_alice", BOB),
        payments_of("wal_alice", BOB),
    ];
    for event in forbidden {
        let (status, body) = send(&world.app, &event).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{} -> {body}",
            event["routeKey"]
        );
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
    }
    let alice = world
        .ledger
        .wallets()
        .into_iter()
        .find(|wallet| wallet.id().as_str() == "wal_alice")
        .expect("alice's wallet");
    assert_eq!(
        alice.balance_minor_units(),
        1_000,
        "nothing bob asked for moved alice's money"
    );

    assert_eq!(
        send(&world.app, &transactions("wal_alice", ALICE)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&world.app, &payments_of("wal_alice", ALICE)).await.0,
        StatusCode::OK
    );

    // A payment is the payer's and the payee's to read, no one else's.
    let payment_id = accepted["payment_id"].as_str().expect("an id");
    assert_eq!(
        send(&world.app, &read_payment(payment_id, ALICE)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&world.app, &read_payment(payment_id, BOB)).await.0,
        StatusCode::OK
    );
    let (status, body) = send(&world.app, &read_payment(payment_id, MALLORY)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A wallet that does not exist is a 404, whoever asks.
    for event in [top_up("wal_nobody", MALLORY), payout("wal_nobody", MALLORY)] {
        let (status, body) = send(&world.app, &event).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
}
