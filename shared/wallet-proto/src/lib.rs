//! The protobuf contract of paysaga's `WalletService`, `proto/paysaga/wallet/v1/wallet.proto`,
//! as Rust: its messages ([`v1::GetBalanceRequest`], [`v1::Money`], [`v1::Payment`], ...), the
//! service trait the `wallet-rpc` function implements ([`v1::WalletService`]) and a typed
//! client ([`v1::WalletServiceClient`]). The code is generated at build time (`build.rs`) by
//! [connectrpc](https://connectrpc.com)'s Rust implementation, with messages from `buffa`, from
//! a descriptor set that `protox`, a protobuf compiler written in Rust, builds: no `protoc`.
//!
//! | RPC (`POST /paysaga.wallet.v1.WalletService/<Method>`) | does |
//! |---|---|
//! | `GetBalance` | a wallet's available, reserved and total balance |
//! | `TransferFunds` | submits a transfer between wallets (a payment, PENDING; idempotent per key) |
//! | `UpdateBalance` | submits a top-up (money in) or a payout (money out): never sets a balance |
//!
//! # On the wire
//!
//! The service answers unary calls over HTTP/1.1 (API Gateway's HTTP API carries nothing else),
//! every one with `Authorization: Bearer <token>`:
//!
//! | protocol | request `Content-Type` | request body | answer |
//! |---|---|---|---|
//! | Connect, JSON | `application/json` | the message in proto3 JSON | `200` and the message as JSON; an error is a 4xx/5xx with `{"code":"permission_denied","message":"forbidden: ...","details":[...]}` |
//! | Connect, binary | `application/proto` | the message's protobuf bytes | `200` and protobuf bytes; an error as above (always JSON) |
//! | gRPC-Web | `application/grpc-web+proto` (or `application/grpc-web`) | one frame: a `0x00` byte, the message's length as 4 bytes big-endian, the message | `200` always: a data frame (`0x00`, length, message) when it succeeded, then a trailer frame (`0x80`, length, `grpc-status: 0\r\n...`); an error is in `grpc-status` / `grpc-message` (headers, or the trailer frame) |
//!
//! With curl (`$token` a bearer token; on the local stack `make -s token SUB=alice`):
//!
//! ```text
//! # Connect, JSON: 64-bit integers are strings in proto3 JSON ("10000"), numbers are read too
//! curl -s localhost:3000/paysaga.wallet.v1.WalletService/GetBalance \
//!   -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
//!   -d '{"wallet_id":"wal_demo_alice"}'
//! # {"walletId":"wal_demo_alice","available":{"minorUnits":"10000","currency":"EUR"},...}
//!
//! # Connect, binary: field 1 (wallet_id), length 14, the id
//! printf '\x0a\x0ewal_demo_alice' | curl -s --data-binary @- \
//!   localhost:3000/paysaga.wallet.v1.WalletService/GetBalance \
//!   -H "Authorization: Bearer $token" -H 'Content-Type: application/proto' | xxd
//!
//! # gRPC-Web: the same 16 bytes in a frame (flag 0, length 16)
//! printf '\x00\x00\x00\x00\x10\x0a\x0ewal_demo_alice' | curl -s --data-binary @- \
//!   localhost:3000/paysaga.wallet.v1.WalletService/GetBalance \
//!   -H "Authorization: Bearer $token" -H 'Content-Type: application/grpc-web+proto' | xxd
//! ```
//!
//! Every error carries an [`v1::ErrorReason`] detail with a stable code
//! (`idempotency_key_reused`, `forbidden`, ...), read with [`error_reason`]; the message starts
//! with the same code.
//!
//! # From Rust
//!
//! The generated [`v1::WalletServiceClient`] speaks all three over any transport: with the
//! `client` feature, connectrpc's `HttpClient` (hyper; HTTP/1.1 for `http://`). One client
//! per protocol, the token a default header:
//!
//! ```no_run
//! # #[cfg(feature = "client")]
//! # async fn example(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use paysaga_wallet_proto::connectrpc::Protocol;
//! use paysaga_wallet_proto::connectrpc::client::{ClientConfig, HttpClient};
//! use paysaga_wallet_proto::v1::{GetBalanceRequest, WalletServiceClient};
//!
//! let config = ClientConfig::new("http://127.0.0.1:3000".parse()?)
//!     .with_default_header("authorization", format!("Bearer {token}"));
//! let connect_json = WalletServiceClient::new(HttpClient::plaintext(), config.clone().json());
//! let connect_proto = WalletServiceClient::new(HttpClient::plaintext(), config.clone().proto());
//! let grpc_web = WalletServiceClient::new(
//!     HttpClient::plaintext(),
//!     config.with_protocol(Protocol::GrpcWeb).proto(),
//! );
//! for client in [connect_json, connect_proto, grpc_web] {
//!     let request = GetBalanceRequest {
//!         wallet_id: "wal_demo_alice".into(),
//!         ..Default::default()
//!     };
//!     match client.get_balance(request).await {
//!         Ok(answer) => {
//!             let balance = answer.into_owned();
//!             println!("{} available", balance.available.minor_units);
//!         }
//!         Err(error) => {
//!             // error.code: ErrorCode::PermissionDenied, ...; the stable code in its detail:
//!             let reason = paysaga_wallet_proto::error_reason(&error);
//!             println!("{:?} {reason:?}", error.code);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Any `tower::Service` over `http` requests is a transport too
//! (`connectrpc::client::ServiceTransport`): `wallet-rpc`'s tests drive its router that way.

connectrpc::include_generated!();

/// The generated code's runtime, at the versions it was generated for.
pub use buffa;
pub use buffa_types;
pub use connectrpc;

/// `paysaga.wallet.v1`: every message, enum, the service trait and the client.
pub use self::paysaga::wallet::v1;

/// The generated `oneof`s, by shorter names.
pub mod oneof {
    /// [`v1::Payment::flow`](super::v1::Payment::flow): a transfer, a top-up or a payout.
    pub use super::v1::__buffa::oneof::payment::Flow;
    /// [`v1::UpdateBalanceRequest::movement`](super::v1::UpdateBalanceRequest::movement): a
    /// top-up or a payout.
    pub use super::v1::__buffa::oneof::update_balance_request::Movement;
}

/// The service's full name, as its paths start: `/paysaga.wallet.v1.WalletService/GetBalance`.
pub const SERVICE_NAME: &str = v1::WALLET_SERVICE_SERVICE_NAME;

/// The request content types the service answers, one per protocol and codec.
pub mod content_type {
    /// Connect, unary, JSON.
    pub const CONNECT_JSON: &str = "application/json";
    /// Connect, unary, binary protobuf.
    pub const CONNECT_PROTO: &str = "application/proto";
    /// gRPC-Web, binary protobuf (`application/grpc-web` is the same).
    pub const GRPC_WEB: &str = "application/grpc-web+proto";
}

/// The path of a method: `/paysaga.wallet.v1.WalletService/<method>`.
pub fn path(method: &str) -> String {
    format!("/{SERVICE_NAME}/{method}")
}

/// The type name an [`v1::ErrorReason`] detail carries (a gRPC `Any` prefixes it with
/// `type.googleapis.com/`).
pub const ERROR_REASON_TYPE: &str = "paysaga.wallet.v1.ErrorReason";

/// The [`v1::ErrorReason`] of an error the service answered: its stable code
/// (`idempotency_key_reused`, `forbidden`, ...). `None` for an error without one (the
/// gateway's own 401, a transport failure).
pub fn error_reason(error: &connectrpc::ConnectError) -> Option<v1::ErrorReason> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    error.details.iter().find_map(|detail| {
        let name = detail
            .type_url
            .rsplit_once('/')
            .map_or(detail.type_url.as_str(), |(_, name)| name);
        if name != ERROR_REASON_TYPE {
            return None;
        }
        let value = detail.value.as_deref()?;
        let bytes = STANDARD_NO_PAD
            .decode(value)
            .or_else(|_| STANDARD.decode(value))
            .ok()?;
        buffa::Message::decode_from_slice(&bytes).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectrpc::{ConnectError, ErrorCode, ErrorDetail};

    #[test]
    fn paths_name_the_service_and_method() {
        assert_eq!(
            path("GetBalance"),
            "/paysaga.wallet.v1.WalletService/GetBalance"
        );
    }

    #[test]
    fn an_error_reason_is_read_back_from_its_detail_with_or_without_the_any_prefix() {
        let reason = v1::ErrorReason {
            code: "idempotency_key_reused".into(),
            ..Default::default()
        };
        let connect = ConnectError::new(ErrorCode::AlreadyExists, "reused")
            .with_detail(ErrorDetail::from_message(ERROR_REASON_TYPE, &reason));
        assert_eq!(
            error_reason(&connect).map(|reason| reason.code),
            Some("idempotency_key_reused".to_owned())
        );

        let mut detail = ErrorDetail::from_message(ERROR_REASON_TYPE, &reason);
        detail.type_url = format!("type.googleapis.com/{ERROR_REASON_TYPE}");
        let grpc = ConnectError::new(ErrorCode::AlreadyExists, "reused").with_detail(detail);
        assert!(error_reason(&grpc).is_some());

        let other = ConnectError::new(ErrorCode::Internal, "x")
            .with_detail(ErrorDetail::from_message("google.rpc.RetryInfo", &reason));
        assert_eq!(error_reason(&other), None);
    }

    #[test]
    fn money_is_integer_minor_units_in_proto3_json() {
        let money = v1::Money {
            minor_units: 10_000,
            currency: "EUR".into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&money).expect("serialisable");
        assert_eq!(
            json,
            serde_json::json!({"minorUnits": "10000", "currency": "EUR"})
        );
        let read: v1::Money =
            serde_json::from_str(r#"{"minor_units": 250, "currency": "EUR"}"#).expect("a number");
        assert_eq!(read.minor_units, 250);
    }
}
