//! Who may do what: the API Gateway fixtures of `events/lambda/` sent with other callers'
//! claims (as the JWT authorizer passes them), or none, against the in-memory adapters.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use support::{fixture, send};

use api::{AdminApi, Api, ReadApi, admin_router, read_router, router};
use axum::Router;
use chrono::Utc;
use http::StatusCode;
use paysaga::domain::events::FundsDeposited;
use paysaga::domain::{DepositId, DomainEvent, Money, WalletId};
use paysaga::memory::{
    InMemoryEventStore, InMemoryLedger, InMemoryParking, InMemoryQueues, RecordingPublisher,
};
use paysaga::ports::{EventStore, ReadModelReader};
use paysaga::read_models::{InMemoryReadModels, PageRequest};
use paysaga::redrive::parking::ParkedStatus;
use paysaga::redrive::{ParkedMessage, ParkingLot, QueueRef};
use serde_json::{Value, json};

const PAYMENTS_QUEUE: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-payments";

struct World {
    app: Router,
    ledger: Arc<InMemoryLedger>,
    queues: Arc<InMemoryQueues>,
    parking: Arc<InMemoryParking>,
    event_store: Arc<InMemoryEventStore>,
    read_models: Arc<InMemoryReadModels>,
}

/// The whole API, as `main` assembles it.
fn world() -> World {
    let ledger = Arc::new(InMemoryLedger::default());
    let queues = Arc::new(InMemoryQueues::default());
    queues.create(QueueRef {
        arn: PAYMENTS_QUEUE.to_owned(),
        url: "http://sqs.local/000000000000/paysaga-payments".to_owned(),
    });
    let parking = Arc::new(InMemoryParking::default());
    let event_store = Arc::new(InMemoryEventStore::new(10));
    let read_models = Arc::new(InMemoryReadModels::default());
    let app = router(Arc::new(Api {
        wallets: ledger.clone(),
        payments: ledger.clone(),
        events: Arc::new(RecordingPublisher::default()),
        limits: Default::default(),
    }))
    .merge(read_router(Arc::new(ReadApi {
        read_models: read_models.clone(),
        wallets: ledger.clone(),
    })))
    .merge(admin_router(Arc::new(AdminApi {
        parking: parking.clone(),
        queues: queues.clone(),
        event_store: event_store.clone(),
        read_models: read_models.clone(),
    })));
    World {
        app,
        ledger,
        queues,
        parking,
        event_store,
        read_models,
    }
}

/// Who sends a request, as the authorizer's claims say.
#[derive(Clone, Copy)]
enum As {
    Nobody,
    Caller(&'static str),
    Admin(&'static str),
}

/// The fixture `name`, sent by `who`, with `body` instead of its own when given.
fn request(name: &str, who: As, body: Option<Value>) -> Value {
    let mut event = fixture(name);
    let context = event["requestContext"]
        .as_object_mut()
        .expect("a request context");
    match who {
        As::Nobody => {
            context.remove("authorizer");
        }
        As::Caller(sub) | As::Admin(sub) => {
            let claims = &mut context["authorizer"]["jwt"]["claims"];
            claims["sub"] = json!(sub);
            if matches!(who, As::Admin(_)) {
                claims["scope"] = json!("paysaga/admin");
            }
        }
    }
    if let Some(body) = body {
        event["body"] = Value::String(body.to_string());
    }
    event
}

/// The fixture sent to another path (and route key) with another method.
fn at(mut event: Value, method: &str, path: &str, route: &str) -> Value {
    event["rawPath"] = json!(path);
    event["routeKey"] = json!(format!("{method} {route}"));
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["routeKey"] = event["routeKey"].clone();
    event
}

fn open(wallet_id: &str, who: As) -> Value {
    request(
        "apigw-open-wallet.json",
        who,
        Some(json!({"currency": "EUR", "wallet_id": wallet_id})),
    )
}

fn deposit(wallet_id: &str, minor_units: u64, who: As) -> Value {
    let event = request(
        "apigw-deposit.json",
        who,
        Some(json!({"amount": {"minor_units": minor_units, "currency": "EUR"}})),
    );
    let path = format!("/wallets/{wallet_id}/deposits");
    at(event, "POST", &path, "/wallets/{wallet_id}/deposits")
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
        deposit("wal_alice", 100, As::Nobody),
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
    assert_eq!(
        send(&world.app, &deposit("wal_alice", 1_000, ALICE))
            .await
            .0,
        StatusCode::CREATED
    );

    // Alice's own wallet: 2xx.
    let (status, wallet) = send(&world.app, &read_wallet("wal_alice", ALICE)).await;
    assert_eq!(status, StatusCode::OK, "{wallet}");
    assert_eq!(wallet["available"]["minor_units"], 1_000);
    let (status, accepted) = send(&world.app, &pay("wal_alice", "wal_bob", ALICE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");

    // Someone else's: 403 with a JSON body, and nothing moves.
    let forbidden = [
        read_wallet("wal_alice", BOB),
        deposit("wal_alice", 5, BOB),
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
        "bob's deposit did not land"
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
    let (status, _) = send(&world.app, &deposit("wal_nobody", 5, MALLORY)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn parked(parked_id: &str, body: &str) -> ParkedMessage {
    ParkedMessage {
        parked_id: parked_id.to_owned(),
        dead_letter_queue: format!("{PAYMENTS_QUEUE}-dlq"),
        destination: Some(PAYMENTS_QUEUE.to_owned()),
        body: body.to_owned(),
        attributes: BTreeMap::new(),
        reason: "permanent: a test".to_owned(),
        origin: "consumer".to_owned(),
        source_receive_count: Some(5),
        dead_letter_receive_count: 1,
        redrives: 0,
        first_sent_at: None,
        parked_at: Utc::now(),
        status: ParkedStatus::Parked,
        replayed_at: None,
    }
}

fn admin_post(path: &str, route: &str, who: As, body: Option<Value>) -> Value {
    let mut event = at(
        request("apigw-open-wallet.json", who, None),
        "POST",
        path,
        route,
    );
    event["body"] = body.map_or(Value::Null, |body| Value::String(body.to_string()));
    event
}

#[tokio::test]
async fn replaying_a_parked_message_needs_the_admin_scope() {
    let world = world();
    let body = std::fs::read_to_string(format!(
        "{}/../../events/lambda/eventbridge-payment-requested.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the fixture");
    world
        .parking
        .park(&parked("payments-dlq/m1", &body))
        .await
        .expect("parked");
    let path = "/admin/parked/payments-dlq%2Fm1/replay";
    let route = "/admin/parked/{parked_id}/replay";

    for who in [ALICE, As::Nobody] {
        let (status, answer) = send(&world.app, &admin_post(path, route, who, None)).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED,
            "{status} {answer}"
        );
    }
    assert_eq!(world.queues.len(PAYMENTS_QUEUE), 0, "nothing was sent");

    let (status, answer) = send(&world.app, &admin_post(path, route, As::Admin("ops"), None)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["sent_to"], "paysaga-payments");
    assert_eq!(world.queues.messages(PAYMENTS_QUEUE)[0].body, body);
    let again = send(
        &world.app,
        &admin_post(path, route, As::Admin("ops"), Some(json!({}))),
    )
    .await;
    assert_eq!(again.0, StatusCode::CONFLICT, "{}", again.1);
    let missing = admin_post("/admin/parked/nope/replay", route, As::Admin("ops"), None);
    assert_eq!(send(&world.app, &missing).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rebuilding_the_read_models_needs_the_admin_scope_and_goes_page_by_page() {
    let world = world();
    let wallet_id = WalletId::parse("wal_alice").expect("an id");
    let eur = "EUR".parse().expect("EUR");
    for n in 0..3 {
        let deposited = DomainEvent::funds_deposited(
            FundsDeposited {
                deposit_id: DepositId::parse(&format!("dep_{n}")).expect("an id"),
                wallet_id: wallet_id.clone(),
                amount: Money::new(100, eur).expect("an amount"),
            },
            Utc::now(),
        );
        world
            .event_store
            .append(&deposited, Utc::now())
            .await
            .expect("appended");
    }
    let path = "/admin/read-models/rebuild";
    let (status, body) = send(&world.app, &admin_post(path, path, ALICE, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let mut events = 0;
    let mut after: Option<String> = None;
    loop {
        let body = after.as_ref().map(|after| json!({"after": after}));
        let (status, page) =
            send(&world.app, &admin_post(path, path, As::Admin("ops"), body)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        events += page["events"].as_u64().expect("a count");
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(events, 3);
    let transactions = world
        .read_models
        .transactions(&wallet_id, &PageRequest::new(None, None).expect("a page"))
        .await
        .expect("read");
    assert_eq!(transactions.items.len(), 3);
}
