//! TransferFunds and UpdateBalance: each submits one payment of the right flow, once per
//! idempotency key, and bad input submits nothing.

mod support;

use http::StatusCode;
use paysaga_domain::Priority;
use paysaga_domain::payment::Flow;
use paysaga_wallet_proto::buffa::EnumValue;
use paysaga_wallet_proto::oneof::{Flow as WireFlow, Movement};
use paysaga_wallet_proto::v1;
use serde_json::json;
use support::{ALICE, Body, Protocol, World, eur};

fn transfer(minor_units: u64, key: &str) -> v1::TransferFundsRequest {
    v1::TransferFundsRequest {
        from_wallet_id: "wal_alice".into(),
        to_wallet_id: "wal_bob".into(),
        amount: eur(minor_units).into(),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

fn update(movement: Movement, key: &str) -> v1::UpdateBalanceRequest {
    v1::UpdateBalanceRequest {
        wallet_id: "wal_alice".into(),
        movement: Some(movement),
        amount: eur(1_000).into(),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn transfer_funds_twice_with_one_key_is_one_payment() {
    let world = World::new().await;
    let urgent = v1::TransferFundsRequest {
        priority: EnumValue::Known(v1::Priority::PRIORITY_URGENT),
        ..transfer(250, "order-7")
    };
    let first = world
        .call(Protocol::ConnectJson, "TransferFunds", ALICE, &urgent)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let first = first.json();
    let payment = &first["payment"];
    assert_eq!(payment["status"], "PAYMENT_STATUS_PENDING");
    assert_eq!(payment["priority"], "PRIORITY_URGENT");
    assert_eq!(
        payment["transfer"],
        json!({"fromWalletId": "wal_alice", "toWalletId": "wal_bob"})
    );
    assert_eq!(
        payment["amount"],
        json!({"minorUnits": "250", "currency": "EUR"})
    );

    // The same call again (its answer lost), in another protocol: the same payment.
    let again = world
        .call(Protocol::GrpcWeb, "TransferFunds", ALICE, &urgent)
        .await
        .grpc_web();
    assert_eq!(again.status(), "0");
    let again: v1::TransferFundsResponse = again.decode();
    assert_eq!(
        again.payment.payment_id,
        payment["paymentId"].as_str().expect("an id")
    );

    let recorded = world.payments();
    assert_eq!(recorded.len(), 1, "one payment: {recorded:?}");
    assert_eq!(recorded[0].payment_id().as_str(), again.payment.payment_id);
    assert_eq!(recorded[0].amount().minor_units(), 250);
    assert_eq!(recorded[0].priority(), Priority::Urgent);

    // The same key for other terms is refused, and still one payment.
    let other_terms = world
        .call(
            Protocol::ConnectJson,
            "TransferFunds",
            ALICE,
            &transfer(251, "order-7"),
        )
        .await;
    assert_eq!(other_terms.status, StatusCode::CONFLICT);
    assert_eq!(
        other_terms.connect_error(),
        (
            "already_exists".to_owned(),
            "idempotency_key_reused".to_owned()
        )
    );
    let message = other_terms.json()["message"].clone();
    assert!(
        message
            .as_str()
            .is_some_and(|text| text.starts_with("idempotency_key_reused: ")),
        "{message}"
    );
    assert_eq!(world.payments().len(), 1);
}

#[tokio::test]
async fn update_balance_with_a_top_up_submits_a_top_up_into_the_wallet() {
    let world = World::new().await;
    let top_up = update(
        Movement::from(v1::TopUp {
            funding_instrument_id: "fi_alice_card".into(),
            ..Default::default()
        }),
        "top-up-1",
    );
    let answer = world
        .call(Protocol::ConnectProto, "UpdateBalance", ALICE, &top_up)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer: v1::UpdateBalanceResponse = answer.proto();
    let Some(WireFlow::TopUp(flow)) = &answer.payment.flow else {
        panic!("a top-up: {:?}", answer.payment.flow);
    };
    assert_eq!(
        (
            flow.funding_instrument_id.as_str(),
            flow.to_wallet_id.as_str()
        ),
        ("fi_alice_card", "wal_alice")
    );
    let recorded = world.payments();
    assert_eq!(recorded.len(), 1);
    assert!(
        matches!(
            recorded[0].flow(),
            Flow::TopUp { funding_instrument, to_wallet }
                if funding_instrument.as_str() == "fi_alice_card" && to_wallet.as_str() == "wal_alice"
        ),
        "{:?}",
        recorded[0].flow()
    );
    assert_eq!(recorded[0].amount().minor_units(), 1_000);
}

#[tokio::test]
async fn update_balance_with_a_payout_submits_a_payout_out_of_the_wallet() {
    let world = World::new().await;
    let payout = update(
        Movement::from(v1::Payout {
            destination_id: "dst_alice_bank".into(),
            ..Default::default()
        }),
        "payout-1",
    );
    let answer = world
        .call(Protocol::GrpcWeb, "UpdateBalance", ALICE, &payout)
        .await
        .grpc_web();
    assert_eq!(answer.status(), "0");
    let answer: v1::UpdateBalanceResponse = answer.decode();
    assert_eq!(
        answer.payment.status,
        EnumValue::Known(v1::PaymentStatus::PAYMENT_STATUS_PENDING)
    );
    assert!(matches!(answer.payment.flow, Some(WireFlow::Payout(_))));
    let recorded = world.payments();
    assert_eq!(recorded.len(), 1);
    assert!(
        matches!(
            recorded[0].flow(),
            Flow::Payout { from_wallet, destination }
                if from_wallet.as_str() == "wal_alice" && destination.as_str() == "dst_alice_bank"
        ),
        "{:?}",
        recorded[0].flow()
    );
}

#[tokio::test]
async fn a_top_up_of_someone_elses_wallet_is_permission_denied() {
    let world = World::new().await;
    let top_up = v1::UpdateBalanceRequest {
        wallet_id: "wal_bob".into(),
        ..update(
            Movement::from(v1::TopUp {
                funding_instrument_id: "fi_alice_card".into(),
                ..Default::default()
            }),
            "top-up-bob",
        )
    };
    let answer = world
        .call(Protocol::ConnectJson, "UpdateBalance", ALICE, &top_up)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(world.payments().is_empty());
}

#[tokio::test]
async fn bad_input_is_invalid_argument_and_submits_nothing() {
    let world = World::new().await;
    let no_movement = v1::UpdateBalanceRequest {
        movement: None,
        ..update(Movement::from(v1::Payout::default()), "no-movement")
    };
    let calls: Vec<(&str, String, &str)> = vec![
        (
            "TransferFunds",
            serde_json::to_string(&v1::TransferFundsRequest {
                to_wallet_id: "bob".into(),
                ..transfer(100, "k1")
            })
            .expect("JSON"),
            "invalid_request",
        ),
        (
            "TransferFunds",
            serde_json::to_string(&transfer(100, "")).expect("JSON"),
            "invalid_request",
        ),
        (
            "TransferFunds",
            serde_json::to_string(&v1::TransferFundsRequest {
                amount: Default::default(),
                ..transfer(100, "k2")
            })
            .expect("JSON"),
            "invalid_request",
        ),
        // Well-formed, but not a payment: the service's rule, with its own code.
        (
            "TransferFunds",
            serde_json::to_string(&transfer(0, "k3")).expect("JSON"),
            "invalid_amount",
        ),
        (
            "TransferFunds",
            r#"{"fromWalletId": "wal_alice", "toWalletId": "wal_bob", "idempotencyKey": "k4",
                "amount": {"minorUnits": "100", "currency": "EUR"}, "priority": 9}"#
                .to_owned(),
            "invalid_request",
        ),
        (
            "UpdateBalance",
            serde_json::to_string(&no_movement).expect("JSON"),
            "invalid_request",
        ),
        (
            "UpdateBalance",
            serde_json::to_string(&update(
                Movement::from(v1::TopUp {
                    funding_instrument_id: "card".into(),
                    ..Default::default()
                }),
                "k5",
            ))
            .expect("JSON"),
            "invalid_request",
        ),
        (
            "GetBalance",
            r#"{"walletId": "alice"}"#.to_owned(),
            "invalid_request",
        ),
    ];
    for (method, body, reason) in calls {
        let event = support::event(method, ALICE, "application/json", Body::Text(body.clone()));
        let answer = world.send(&event).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            answer.connect_error(),
            ("invalid_argument".to_owned(), reason.to_owned()),
            "{body}"
        );
    }

    // Bodies that are not the message at all: connectrpc refuses them before any RPC runs.
    let unparseable = [
        ("application/json", Body::Text("{not json".to_owned())),
        ("application/proto", Body::Binary(vec![0x0a, 0xff, 0x01])),
    ];
    for (content_type, body) in unparseable {
        let answer = world
            .send(&support::event("TransferFunds", ALICE, content_type, body))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{content_type}");
        assert_eq!(answer.json()["code"], "invalid_argument");
    }
    let grpc_web = world
        .send(&support::event(
            "TransferFunds",
            ALICE,
            "application/grpc-web+proto",
            Body::Binary(support::grpc_web_frame(&[0x0a, 0xff, 0x01])),
        ))
        .await;
    assert_eq!(grpc_web.grpc_web().status(), "3");
    assert!(world.payments().is_empty(), "{:?}", world.payments());
}
