//! Who may do what: a caller reads and moves only its own wallets, and a call without a
//! verified caller does nothing, in every protocol.

mod support;

use http::StatusCode;
use paysaga_http::test_support::As;
use paysaga_wallet_proto::v1;
use support::{ALICE, BOB, Protocol, World, eur};

fn balance_of(wallet_id: &str) -> v1::GetBalanceRequest {
    v1::GetBalanceRequest {
        wallet_id: wallet_id.into(),
        ..Default::default()
    }
}

fn transfer(key: &str) -> v1::TransferFundsRequest {
    v1::TransferFundsRequest {
        from_wallet_id: "wal_alice".into(),
        to_wallet_id: "wal_bob".into(),
        amount: eur(100).into(),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn someone_elses_wallet_is_permission_denied_in_every_protocol() {
    let world = World::new().await;
    for protocol in Protocol::ALL {
        let read = world
            .call(protocol, "GetBalance", BOB, &balance_of("wal_alice"))
            .await;
        assert_eq!(support::error_code(protocol, &read), "permission_denied");
        let moved = world
            .call(protocol, "TransferFunds", BOB, &transfer("bobs-try"))
            .await;
        assert_eq!(support::error_code(protocol, &moved), "permission_denied");
    }
    // A Connect error is an HTTP status with a JSON body whatever the codec, and carries the
    // service's stable code.
    let answer = world
        .call(
            Protocol::ConnectProto,
            "GetBalance",
            BOB,
            &balance_of("wal_alice"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.connect_error().1, "forbidden");
    assert!(world.payments().is_empty(), "{:?}", world.payments());
}

#[tokio::test]
async fn no_verified_caller_is_unauthenticated_in_every_protocol() {
    let world = World::new().await;
    for protocol in Protocol::ALL {
        let read = world
            .call(protocol, "GetBalance", As::Nobody, &balance_of("wal_alice"))
            .await;
        assert_eq!(support::error_code(protocol, &read), "unauthenticated");
        let moved = world
            .call(protocol, "TransferFunds", As::Nobody, &transfer("no-one"))
            .await;
        assert_eq!(support::error_code(protocol, &moved), "unauthenticated");
    }
    let answer = world
        .call(
            Protocol::ConnectJson,
            "GetBalance",
            As::Nobody,
            &balance_of("wal_alice"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let grpc_web = world
        .call(
            Protocol::GrpcWeb,
            "GetBalance",
            As::Nobody,
            &balance_of("wal_alice"),
        )
        .await
        .grpc_web();
    assert_eq!(grpc_web.status(), "16");
    assert!(grpc_web.message.is_none(), "no balance without a caller");
    assert!(world.payments().is_empty());
}

#[tokio::test]
async fn the_owner_reads_its_own_wallet() {
    let world = World::new().await;
    let answer = world
        .call(
            Protocol::ConnectJson,
            "GetBalance",
            ALICE,
            &balance_of("wal_alice"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let bobs = world
        .call(
            Protocol::ConnectJson,
            "GetBalance",
            ALICE,
            &balance_of("wal_bob"),
        )
        .await;
    assert_eq!(bobs.status, StatusCode::FORBIDDEN);
}
