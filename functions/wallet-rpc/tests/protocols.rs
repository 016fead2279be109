//! The edges of the wire: what API Gateway cannot carry (native gRPC) is refused before it
//! runs, as are bodies over the limit, other content types and unknown methods.

mod support;

use http::StatusCode;
use paysaga_wallet_proto::buffa::Message;
use paysaga_wallet_proto::v1;
use support::{ALICE, Body, World, eur};

fn transfer() -> v1::TransferFundsRequest {
    v1::TransferFundsRequest {
        from_wallet_id: "wal_alice".into(),
        to_wallet_id: "wal_bob".into(),
        amount: eur(100).into(),
        idempotency_key: "edge-1".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn native_grpc_is_refused_before_it_runs_with_a_trailers_only_unimplemented() {
    let world = World::new().await;
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let body = Body::Binary(support::grpc_web_frame(&transfer().encode_to_vec()));
        let answer = world
            .send(&support::event("TransferFunds", ALICE, content_type, body))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers["grpc-status"], "12", "{content_type}");
        let message = answer.headers["grpc-message"].to_str().expect("ASCII");
        assert!(message.contains("gRPC-Web"), "{message}");
    }
    assert!(world.payments().is_empty(), "{:?}", world.payments());
}

#[tokio::test]
async fn a_body_over_16_kib_is_refused() {
    let world = World::new().await;
    let large = v1::TransferFundsRequest {
        idempotency_key: "k".repeat(17 * 1024),
        ..transfer()
    };
    for protocol in support::Protocol::ALL {
        let answer = world.call(protocol, "TransferFunds", ALICE, &large).await;
        let refused = match protocol {
            support::Protocol::GrpcWeb => answer.grpc_web().status() == "8",
            _ => answer.json()["code"] == "resource_exhausted",
        };
        assert!(refused, "{protocol:?}: {} {:?}", answer.status, answer.body);
    }
    assert!(world.payments().is_empty());
}

#[tokio::test]
async fn other_content_types_and_unknown_methods_are_refused() {
    let world = World::new().await;
    let form = world
        .send(&support::event(
            "GetBalance",
            ALICE,
            "application/x-www-form-urlencoded",
            Body::Text("wallet_id=wal_alice".to_owned()),
        ))
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let unknown = world
        .send(&support::event(
            "SetBalance",
            ALICE,
            "application/json",
            Body::Text("{}".to_owned()),
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["code"], "unimplemented");
}
