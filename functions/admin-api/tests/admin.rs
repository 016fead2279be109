//! The operators' routes: the API Gateway fixtures of `events/lambda/` sent with and without
//! the `paysaga/admin` scope in the authorizer's claims, against the in-memory adapters.

use paysaga_http::test_support as support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use admin_api::{AdminApi, REBUILD_PAGE, admin_router};
use axum::Router;
use chrono::Utc;
use http::StatusCode;
use paysaga_domain::events::FundsDeposited;
use paysaga_domain::operator::body_sha256;
use paysaga_domain::ports::{EventStore, ReadModelReader};
use paysaga_domain::{DepositId, DomainEvent, Money, OperatorAction, OperatorActionKind, WalletId};
use paysaga_services::fakes::{
    InMemoryEventStore, InMemoryLedger, InMemoryParking, InMemoryQueues, RecordingPublisher,
};
use paysaga_services::read_models::{InMemoryReadModels, PageBudget, PageRequest};
use paysaga_services::redrive::parking::ParkedStatus;
use paysaga_services::redrive::{
    FlowOutcome, ParkedMessage, ParkedSettlement, ParkingLot, QueueRef,
};
use serde_json::{Value, json};
use support::{As, at, request, send};

const PAYMENTS_QUEUE: &str = "arn:aws:sqs:us-east-1:000000000000:paysaga-payments";
const ALICE: As = As::Caller("alice");

struct World {
    app: Router,
    queues: Arc<InMemoryQueues>,
    parking: Arc<InMemoryParking>,
    event_store: Arc<InMemoryEventStore>,
    read_models: Arc<InMemoryReadModels>,
    ledger: Arc<InMemoryLedger>,
    events: Arc<RecordingPublisher>,
}

/// The admin routes, as `main` assembles them.
fn world() -> World {
    world_with(REBUILD_PAGE)
}

/// The admin routes, a rebuild call taking on `rebuild_page`.
fn world_with(rebuild_page: PageBudget) -> World {
    let queues = Arc::new(InMemoryQueues::default());
    queues.create(QueueRef {
        arn: PAYMENTS_QUEUE.to_owned(),
        url: "http://sqs.local/000000000000/paysaga-payments".to_owned(),
    });
    let parking = Arc::new(InMemoryParking::default());
    let event_store = Arc::new(InMemoryEventStore::new(10));
    let read_models = Arc::new(InMemoryReadModels::default());
    let ledger = Arc::new(InMemoryLedger::default());
    let events = Arc::new(RecordingPublisher::default());
    let app = admin_router(Arc::new(AdminApi {
        parking: parking.clone(),
        queues: queues.clone(),
        event_store: event_store.clone(),
        read_models: read_models.clone(),
        rebuild_page,
        wallets: ledger.clone(),
        events: events.clone(),
        limits: Default::default(),
    }));
    World {
        app,
        queues,
        parking,
        event_store,
        read_models,
        ledger,
        events,
    }
}

fn parked(parked_id: &str, body: &str) -> ParkedMessage {
    ParkedMessage {
        parked_id: parked_id.to_owned(),
        dead_letter_queue: format!("{PAYMENTS_QUEUE}-dlq"),
        destination: Some(PAYMENTS_QUEUE.to_owned()),
        body: body.to_owned(),
        consent_removed: false,
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
        settled_at: None,
        settled_as: None,
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

/// The operator actions published so far (what the audit trail receives), in order.
fn recorded_actions(world: &World) -> Vec<(String, OperatorAction)> {
    world
        .events
        .published()
        .into_iter()
        .filter_map(|event| match event {
            DomainEvent::OperatorActionStarted(detail) => Some((detail.event_id, detail.data)),
            _ => None,
        })
        .collect()
}

const REPLAY_ROUTE: &str = "/admin/parked/{parked_id}/replay";

fn replay_of(parked_id: &str, who: As, body: Option<Value>) -> Value {
    let path = format!("/admin/parked/{}/replay", parked_id.replace('/', "%2F"));
    admin_post(&path, REPLAY_ROUTE, who, body)
}

fn payment_requested() -> String {
    std::fs::read_to_string(format!(
        "{}/../../events/lambda/eventbridge-payment-requested.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the fixture")
}

#[tokio::test]
async fn a_replay_needs_the_admin_scope_and_a_reason_and_is_recorded_before_it_is_sent() {
    let world = world();
    let body = payment_requested();
    world
        .parking
        .park(&parked("payments-dlq/m1", &body))
        .await
        .expect("parked");
    let why = json!({"reason": "payments consumer fixed in v1.4, OPS-9"});

    for who in [ALICE, As::Nobody] {
        let (status, answer) = send(
            &world.app,
            &replay_of("payments-dlq/m1", who, Some(why.clone())),
        )
        .await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED,
            "{status} {answer}"
        );
    }
    for unexplained in [
        None,
        Some(json!({})),
        Some(json!({"reason": "for bob@example.com"})),
    ] {
        let ask = replay_of("payments-dlq/m1", As::Admin("ops"), unexplained.clone());
        let (status, answer) = send(&world.app, &ask).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{unexplained:?}: {answer}");
    }
    // The audit trail cannot be told: nothing is sent, and the message stays parked.
    world.events.set_down(true);
    let ask = replay_of("payments-dlq/m1", As::Admin("ops"), Some(why.clone()));
    let (status, answer) = send(&world.app, &ask).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    world.events.set_down(false);
    assert_eq!(world.queues.len(PAYMENTS_QUEUE), 0, "nothing was sent");
    assert!(recorded_actions(&world).is_empty());

    let (status, answer) = send(&world.app, &ask).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["sent_to"], "paysaga-payments");
    assert_eq!(world.queues.messages(PAYMENTS_QUEUE)[0].body, body);
    let [(event_id, action)] = &recorded_actions(&world)[..] else {
        panic!("one action recorded: {:?}", recorded_actions(&world))
    };
    assert_eq!(answer["action_id"], event_id.as_str());
    assert_eq!(action.issued_by.as_str(), "ops", "the token's subject");
    assert_eq!(
        action.reason.as_str(),
        "payments consumer fixed in v1.4, OPS-9"
    );
    assert_eq!(
        action.action,
        OperatorActionKind::ReplayParkedMessage {
            parked_id: "payments-dlq/m1".to_owned(),
            destination: PAYMENTS_QUEUE.to_owned(),
            body_sha256: body_sha256(&body),
            body_edited: false,
            forced: false,
        }
    );

    let (status, answer) = send(&world.app, &ask).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let missing = replay_of("nope", As::Admin("ops"), Some(why));
    assert_eq!(send(&world.app, &missing).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        recorded_actions(&world).len(),
        1,
        "refused replays did nothing"
    );
}

#[tokio::test]
async fn a_message_the_reconciler_settled_is_not_replayed() {
    let world = world();
    world
        .parking
        .park(&parked("payments-dlq/m1", &payment_requested()))
        .await
        .expect("parked");
    let settled = world
        .parking
        .mark_settled("payments-dlq/m1", FlowOutcome::Completed, Utc::now())
        .await;
    assert_eq!(settled, Ok(true));

    let why = json!({"reason": "payments consumer fixed in v1.4, OPS-9"});
    let ask = replay_of("payments-dlq/m1", As::Admin("ops"), Some(why));
    let (status, answer) = send(&world.app, &ask).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "settled", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("COMPLETED"), "{answer}");
    assert_eq!(world.queues.len(PAYMENTS_QUEUE), 0, "nothing was sent");
    assert!(recorded_actions(&world).is_empty(), "nor recorded");
}

#[tokio::test]
async fn a_forced_replay_of_an_edited_body_is_recorded_as_forced_and_edited() {
    let world = world();
    let broken = payment_requested().replace(r#""version": 1"#, r#""version": 2"#);
    world
        .parking
        .park(&parked("payments-dlq/m2", &broken))
        .await
        .expect("parked");
    // The operator edits the amount, and forces the version the consumer reads now.
    let still_broken = broken.replace(r#""minor_units": 1250"#, r#""minor_units": 1200"#);
    assert_ne!(still_broken, broken);
    let ask = |force: bool| {
        replay_of(
            "payments-dlq/m2",
            As::Admin("ops"),
            Some(json!({"body": still_broken, "force": force, "reason": "consumer reads v2 now"})),
        )
    };
    let (status, answer) = send(&world.app, &ask(false)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("contract_violation"))
    );
    assert!(recorded_actions(&world).is_empty(), "refused: not recorded");

    let (status, answer) = send(&world.app, &ask(true)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["body_edited"], true);
    let [(_, action)] = &recorded_actions(&world)[..] else {
        panic!("one action recorded")
    };
    let OperatorActionKind::ReplayParkedMessage {
        body_sha256: hash,
        body_edited,
        forced,
        ..
    } = &action.action
    else {
        panic!("a replay: {action:?}")
    };
    assert_eq!((*body_edited, *forced), (true, true));
    assert_eq!(
        hash,
        &body_sha256(&still_broken),
        "the body sent, not the parked one"
    );
}

const REBUILD: &str = "/admin/read-models/rebuild";
const REBUILD_REASON: &str = "read models lost in the restore drill, OPS-12";

/// `n` deposits to Alice's wallet in the audit trail.
async fn deposits_in_the_audit_trail(world: &World, n: usize) -> WalletId {
    let wallet_id = WalletId::parse("wal_alice").expect("an id");
    let eur = "EUR".parse().expect("EUR");
    for n in 0..n {
        let deposited = DomainEvent::funds_deposited(
            FundsDeposited {
                deposit_id: DepositId::parse(&format!("dep_{n}")).expect("an id"),
                wallet_id: wallet_id.clone(),
                amount: Money::new(100, eur).expect("an amount"),
                issued_by: None,
                reason: None,
            },
            Utc::now(),
        );
        world
            .event_store
            .append(&deposited, Utc::now())
            .await
            .expect("appended");
    }
    wallet_id
}

/// An admin's rebuild, call after call, each from the last one's `next`: the events each
/// applied.
async fn rebuild_call_by_call(world: &World) -> Vec<u64> {
    let mut applied = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = match &after {
            Some(after) => json!({"after": after, "reason": REBUILD_REASON}),
            None => json!({"reason": REBUILD_REASON}),
        };
        let (status, page) = send(
            &world.app,
            &admin_post(REBUILD, REBUILD, As::Admin("ops"), Some(body)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        applied.push(page["events"].as_u64().expect("a count"));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return applied,
        }
    }
}

async fn transactions_of(world: &World, wallet_id: &WalletId) -> usize {
    world
        .read_models
        .transactions(wallet_id, &PageRequest::new(None, None).expect("a page"))
        .await
        .expect("read")
        .items
        .len()
}

#[tokio::test]
async fn rebuilding_the_read_models_needs_the_admin_scope_and_a_reason_and_goes_page_by_page() {
    let world = world();
    let wallet_id = deposits_in_the_audit_trail(&world, 3).await;
    let why = json!({"reason": REBUILD_REASON});
    let (status, body) = send(&world.app, &admin_post(REBUILD, REBUILD, ALICE, Some(why))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let unexplained = admin_post(REBUILD, REBUILD, As::Admin("ops"), None);
    assert_eq!(
        send(&world.app, &unexplained).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(transactions_of(&world, &wallet_id).await, 0);

    let applied = rebuild_call_by_call(&world).await;
    assert_eq!(applied.iter().sum::<u64>(), 3);
    assert_eq!(transactions_of(&world, &wallet_id).await, 3);
}

#[tokio::test]
async fn every_rebuild_call_is_recorded_with_where_it_starts_and_none_goes_unrecorded() {
    let world = world_with(PageBudget {
        items: 2,
        time: Duration::from_secs(60),
    });
    let wallet_id = deposits_in_the_audit_trail(&world, 3).await;
    world.events.set_down(true);
    let ask = admin_post(
        REBUILD,
        REBUILD,
        As::Admin("ops"),
        Some(json!({"reason": REBUILD_REASON})),
    );
    let (status, answer) = send(&world.app, &ask).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(
        transactions_of(&world, &wallet_id).await,
        0,
        "not recorded: not applied"
    );
    world.events.set_down(false);

    assert_eq!(rebuild_call_by_call(&world).await, [2, 1]);
    let recorded = recorded_actions(&world);
    let starts: Vec<Option<String>> = recorded
        .iter()
        .map(|(_, action)| match &action.action {
            OperatorActionKind::RebuildReadModels { after } => after.clone(),
            other => panic!("a rebuild: {other:?}"),
        })
        .collect();
    assert_eq!(starts.len(), 2, "one record per call");
    assert_eq!(starts[0], None, "the first call starts at the beginning");
    assert!(starts[1].is_some(), "the second where the first stopped");
    assert!(
        recorded
            .iter()
            .all(|(_, action)| action.issued_by.as_str() == "ops"
                && action.reason.as_str() == REBUILD_REASON)
    );
}

#[tokio::test]
async fn a_rebuild_call_takes_on_a_bounded_page_and_the_next_resumes_where_it_stopped() {
    // So many items a call: 2, then the last 1.
    let world = world_with(PageBudget {
        items: 2,
        time: Duration::from_secs(60),
    });
    let wallet_id = deposits_in_the_audit_trail(&world, 3).await;
    assert_eq!(rebuild_call_by_call(&world).await, [2, 1]);
    assert_eq!(transactions_of(&world, &wallet_id).await, 3);

    // Out of time from the start: a call still applies one event, and answers a `next` right
    // after it (a full page would have outlasted API Gateway's 30 s and failed forever).
    let world = world_with(PageBudget {
        items: 100,
        time: Duration::ZERO,
    });
    let wallet_id = deposits_in_the_audit_trail(&world, 3).await;
    assert_eq!(rebuild_call_by_call(&world).await, [1, 1, 1]);
    assert_eq!(transactions_of(&world, &wallet_id).await, 3);
}

/// The fixture `apigw-admin-deposit.json` with its body replaced.
fn admin_deposit(body: Value) -> Value {
    let mut event = support::fixture("apigw-admin-deposit.json");
    event["body"] = Value::String(body.to_string());
    event
}

async fn open_demo_wallet(world: &World) {
    let wallet = paysaga_domain::Wallet::open(
        WalletId::parse("wal_demo_alice").expect("an id"),
        "EUR".parse().expect("EUR"),
        Utc::now(),
    );
    use paysaga_domain::ports::WalletStore;
    world.ledger.open_wallet(&wallet).await.expect("in memory");
}

#[tokio::test]
async fn an_operators_deposit_is_credited_once_and_announced_with_who_and_why() {
    let world = world();
    open_demo_wallet(&world).await;
    let (status, first) = send(&world.app, &support::fixture("apigw-admin-deposit.json")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["available"]["minor_units"], 10_000);
    let (status, replay) = send(&world.app, &support::fixture("apigw-admin-deposit.json")).await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay["deposit_id"], first["deposit_id"]);
    assert_eq!(replay["available"]["minor_units"], 10_000);

    // Announced from the deposit's own transaction, once: the replay wrote nothing.
    assert!(
        world.events.published().is_empty(),
        "nothing after the write"
    );
    let announced = world.ledger.announced().await;
    let [DomainEvent::FundsDeposited(detail)] = announced.as_slice() else {
        panic!("one FundsDeposited: {announced:?}")
    };
    assert_eq!(
        detail.data.issued_by.as_ref().map(|owner| owner.as_str()),
        Some("demo-ops"),
        "the token's subject"
    );
    assert_eq!(
        detail.data.reason.as_ref().map(|reason| reason.as_str()),
        Some("opening balance, ticket OPS-1")
    );
    // Booked from the outside world's adjustments account: the books still sum to zero.
    let books: paysaga_domain::Balances = world.ledger.journal().iter().collect();
    assert_eq!(books.sum_by_currency().get("EUR"), Some(&0));

    let other_amount =
        admin_deposit(json!({"amount": {"minor_units": 1, "currency": "EUR"}, "reason": "x"}));
    let (status, body) = send(&world.app, &other_amount).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_key_reused"))
    );
}

#[tokio::test]
async fn an_operators_deposit_needs_the_admin_scope_a_reason_and_a_wallet() {
    let world = world();
    open_demo_wallet(&world).await;
    for who in [ALICE, As::Nobody] {
        let event = at(
            request("apigw-admin-deposit.json", who, None),
            "POST",
            "/admin/wallets/wal_demo_alice/deposits",
            "/admin/wallets/{wallet_id}/deposits",
        );
        let (status, body) = send(&world.app, &event).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED,
            "{status} {body}"
        );
    }
    let amount = json!({"minor_units": 500, "currency": "EUR"});
    for (body, expected) in [
        (json!({"amount": amount}), StatusCode::BAD_REQUEST),
        (
            json!({"amount": amount, "reason": " "}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"amount": amount, "reason": "refund to bob@example.com"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, answer) = send(&world.app, &admin_deposit(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(!answer.to_string().contains("bob@example.com"), "{answer}");
    }
    // Without an Idempotency-Key: refused, since its retry would credit twice.
    let mut keyless = admin_deposit(json!({"amount": amount, "reason": "test"}));
    keyless["headers"]
        .as_object_mut()
        .expect("headers")
        .remove("idempotency-key");
    let (status, body) = send(&world.app, &keyless).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("Idempotency-Key")),
        "{body}"
    );
    let mut unknown = admin_deposit(json!({"amount": amount, "reason": "test"}));
    unknown["rawPath"] = json!("/admin/wallets/wal_nobody/deposits");
    unknown["requestContext"]["http"]["path"] = unknown["rawPath"].clone();
    unknown["headers"]["idempotency-key"] = json!("another-key");
    let (status, body) = send(&world.app, &unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(world.events.published().is_empty(), "nothing was announced");
    assert!(world.ledger.journal().is_empty(), "nothing moved");
}
