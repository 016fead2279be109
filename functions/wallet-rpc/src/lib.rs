//! The paysaga `WalletService` (`shared/wallet-proto/proto/paysaga/wallet/v1/wallet.proto`)
//! behind API Gateway's HTTP API: unary RPCs over the Connect protocol, JSON and binary, and
//! gRPC-Web, on one axum router that serves API Gateway (through `lambda_http`) and, for local
//! use, a plain HTTP server.
//!
//! | RPC (`POST /paysaga.wallet.v1.WalletService/<Method>`) | does |
//! |---|---|
//! | `GetBalance` | a wallet's balances: available, reserved for payments in flight, total |
//! | `TransferFunds` | submits a transfer to another wallet: the payment, PENDING (idempotent per `idempotency_key`) |
//! | `UpdateBalance` | submits a top-up from a funding instrument (money in) or a payout to a destination (money out): the payment, PENDING (idempotent per `idempotency_key`) |
//!
//! Every call needs a caller ([`Caller`](paysaga_http::Caller): the claims API Gateway's JWT
//! authorizer vouched for); a caller reads and moves only the wallets it owns. No balance is
//! ever set: money enters a wallet only by a top-up the processor charged, and leaves it only
//! by a transfer or a payout, all three payments that the saga runs after the call has
//! answered. Who may do what is written once, in [`SelfService`], which the REST API and the
//! GraphQL subgraph call too; an RPC here parses its message ([`messages`]) and turns the
//! outcome into its answer or a Connect error ([`errors`], which has the table of codes).
//!
//! | protocol | request `Content-Type` | body |
//! |---|---|---|
//! | Connect, JSON | `application/json` | proto3 JSON |
//! | Connect, binary | `application/proto` | protobuf |
//! | gRPC-Web | `application/grpc-web+proto`, `application/grpc-web` | one frame: `0x00`, length (4 bytes, big-endian), protobuf; trailers in a `0x80` frame of the answer |
//!
//! `paysaga_wallet_proto`'s documentation shows each with curl and with its Rust client.
//! Bodies over [`MAX_BODY_BYTES`] are refused (`resource_exhausted`).
//!
//! # Why Connect and gRPC-Web, not gRPC
//!
//! API Gateway's HTTP API hands a Lambda function one request and takes one response, as
//! HTTP/1.1 carries them: no HTTP/2 end to end, no trailers, no streaming, so native gRPC
//! (which needs HTTP/2 and its `grpc-status` trailer) cannot pass through it. The Connect
//! protocol's unary calls are plain POSTs with a status and a body, and gRPC-Web puts the
//! trailers into the body, so both pass unchanged, and browsers can call them. A call in native
//! gRPC (`application/grpc`) is refused before it runs, with a trailers-only `unimplemented`
//! answer that names the way in ([`refuse_native_grpc`]), since its answer would lose its
//! trailers on the way back. A team that needs native gRPC would put an Application Load
//! Balancer with a gRPC target group, or a Network Load Balancer to the same service on ECS or
//! EKS, in front of it instead; the service's code (the connectrpc router) would not change.
//!
//! # Why connectrpc
//!
//! The official Rust implementation of ConnectRPC (`connectrpc`, from connectrpc.com; messages
//! generated with `buffa`) serves Connect (JSON and binary), gRPC and gRPC-Web unary from one
//! registration, as a tower service mounted on an axum router, and passes the ConnectRPC
//! conformance suite. The others weighed: `axum-connect` speaks Connect only (no gRPC-Web) on
//! prost 0.13; `connectrpc-axum` serves gRPC-Web only through tonic and tonic-web and calls
//! itself not ready for production; tonic with tonic-web serves gRPC-Web but no Connect, and
//! brings HTTP/2 machinery that API Gateway cannot use. With its default features off (no
//! zstd, no gzip) no framing of our own is needed, and the function stays the size of the REST
//! one: built for arm64 with `release-abort` it is 4.65 MB, 2.38 MB zipped (`api`: 4.50 MB,
//! 2.30 MB); on x86_64 `cargo build --release`, the three RPCs, connectrpc, buffa and the
//! generated code took the skeleton from 5.74 MB to 6.12 MB (zipped 2.66 to 2.83 MB).

mod caller;
mod config;
pub mod errors;
pub mod messages;
mod rpc;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use connectrpc::{ConnectRpcService, Limits};
use paysaga_services::self_service::SelfService;
use paysaga_wallet_proto::SERVICE_NAME;

pub use config::Config;
pub use rpc::WalletRpc;

/// Request bodies larger than this are refused (`resource_exhausted`).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The WalletService's three RPCs at `/paysaga.wallet.v1.WalletService/<Method>`, over the
/// owner's operations (the same the REST and GraphQL doors call).
pub fn router(service: Arc<SelfService>) -> Router {
    let rpcs = connectrpc::Router::new().add_service(Arc::new(WalletRpc::new(service)));
    let limits = Limits::default()
        .with_max_request_body_size(MAX_BODY_BYTES)
        .with_max_message_size(MAX_BODY_BYTES);
    Router::new()
        .route_service(
            &format!("/{SERVICE_NAME}/{{method}}"),
            ConnectRpcService::new(rpcs).with_limits(limits),
        )
        .layer(middleware::from_fn(caller::identify))
        .layer(middleware::from_fn(refuse_native_grpc))
}

/// Answers a native gRPC call (`application/grpc`, `application/grpc+proto`, not gRPC-Web)
/// with gRPC's trailers-only `unimplemented` (12) before it runs: its answer's `grpc-status`
/// trailer would not survive API Gateway (or the local HTTP/1.1 server), so the client would
/// see a failure whatever happened, and could retry a call that went through. A trailers-only
/// answer carries its status in headers, which do pass.
pub async fn refuse_native_grpc(request: Request, next: Next) -> Response {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let native_grpc = content_type.starts_with("application/grpc")
        && !content_type.starts_with("application/grpc-web");
    if !native_grpc {
        return next.run(request).await;
    }
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static("12"));
    // ASCII without '%', so it needs no percent-encoding.
    headers.insert(
        "grpc-message",
        HeaderValue::from_static(
            "native gRPC needs HTTP/2 trailers, which API Gateway does not carry: call with \
             gRPC-Web (application/grpc-web+proto) or Connect (application/proto)",
        ),
    );
    response
}
