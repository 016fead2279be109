//! The contract and what serves it cannot drift apart: the Rust is generated from
//! `wallet.proto` at build time, so its messages are the file's; what is left to check is that
//! every RPC the file declares is answered here (not `unimplemented`, not a 404) and that the
//! template routes the service's path to this function.

mod support;

use std::path::Path;

use http::StatusCode;
use support::{ALICE, Body, World};

fn repository_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The RPCs `wallet.proto` declares, by name (`rpc GetBalance(...)`).
fn declared_rpcs() -> Vec<String> {
    repository_file("shared/wallet-proto/proto/paysaga/wallet/v1/wallet.proto")
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("rpc "))
        .filter_map(|rest| rest.split('(').next())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn every_rpc_the_proto_declares_is_served() {
    let rpcs = declared_rpcs();
    assert_eq!(
        rpcs,
        ["GetBalance", "TransferFunds", "UpdateBalance"],
        "the RPCs of wallet.proto (a new one needs its handler, its tests and this list)"
    );
    let world = World::new().await;
    for rpc in &rpcs {
        // An empty message: each RPC refuses it for what it lacks, which only a handler can say.
        let answer = world
            .send(&support::event(
                rpc,
                ALICE,
                "application/json",
                Body::Text("{}".to_owned()),
            ))
            .await;
        assert_ne!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{rpc}: {:?}",
            answer.body
        );
        let (code, message) = answer.connect_error();
        assert_eq!(code, "invalid_argument", "{rpc}: {message}");
    }
}

#[test]
fn the_template_routes_the_service_to_this_function() {
    let template = repository_file("infra/template.yaml");
    let function = template
        .split("\n  WalletRpcFunction:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("WalletRpcFunction in infra/template.yaml");
    let route = format!("/{}/{{method}}", paysaga_wallet_proto::SERVICE_NAME);
    assert!(
        function.contains(&format!("Method: POST, Path: \"{route}\"")),
        "WalletRpcFunction routes POST {route}:\n{function}"
    );
}
