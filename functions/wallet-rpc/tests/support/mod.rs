//! What the handler tests share: the router as `main` assembles it over the in-memory
//! adapters, and calls in each protocol sent to it as API Gateway v2 events (the fixtures of
//! `events/lambda/`, through `lambda_http` as on Lambda), the answers taken back through
//! `lambda_http`'s response conversion as API Gateway would get them. The wire formats are
//! written out here by hand (a JSON body, protobuf bytes, a gRPC-Web frame), not with
//! connectrpc, so the tests check the service's framing rather than borrow it.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use http::{HeaderMap, StatusCode};
use paysaga_domain::{Owner, PaymentRequest, PaymentStep, Wallet, WalletId};
use paysaga_http::test_support::{As, at, request};
use paysaga_services::fakes::{InMemoryLedger, InMemoryReadModels, self_service};
use paysaga_services::relay::Written;
use paysaga_wallet_proto::buffa::Message;
use paysaga_wallet_proto::v1;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ALICE: As = As::Caller("alice");
pub const BOB: As = As::Caller("bob");

/// The router over an in-memory ledger: Alice's `wal_alice` holds 75.00 EUR available and
/// 25.00 EUR reserved, Bob's `wal_bob` nothing.
pub struct World {
    pub app: axum::Router,
    pub ledger: Arc<InMemoryLedger>,
}

impl World {
    pub async fn new() -> Self {
        let ledger = Arc::new(InMemoryLedger::default());
        let eur = "EUR".parse().expect("EUR");
        let wallets = [
            ("wal_alice", "alice", 7_500, 2_500),
            ("wal_bob", "bob", 0, 0),
        ];
        for (id, owner, available, reserved) in wallets {
            let id = WalletId::parse(id).expect("a wallet id");
            let wallet = Wallet::restore(id, eur, available, reserved, Utc::now())
                .expect("in range")
                .owned_by(Owner::parse(owner).expect("an owner"));
            paysaga_domain::ports::WalletStore::open_wallet(ledger.as_ref(), &wallet)
                .await
                .expect("in memory");
        }
        let service = self_service(
            ledger.clone(),
            Arc::new(InMemoryReadModels::default()),
            Default::default(),
        );
        Self {
            app: wallet_rpc::router(Arc::new(service)),
            ledger,
        }
    }

    /// Every payment request the ledger recorded (each payment's log version 1), in order.
    pub fn payments(&self) -> Vec<PaymentRequest> {
        self.ledger
            .written()
            .into_iter()
            .filter_map(|written| match written {
                Written::LogEntry(entry) => match entry.step {
                    PaymentStep::Requested { request, .. } => Some(request),
                    _ => None,
                },
                Written::Outboxed(_) => None,
            })
            .collect()
    }

    /// Sends an API Gateway event through the router; the answer as API Gateway gets it.
    pub async fn send(&self, event: &Value) -> Answer {
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let response = lambda_http::IntoResponse::into_response(response).await;
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Calls `method` with `message` in `protocol`, as `who`.
    pub async fn call<M: Message + serde::Serialize>(
        &self,
        protocol: Protocol,
        method: &str,
        who: As,
        message: &M,
    ) -> Answer {
        let body = match protocol {
            Protocol::ConnectJson => Body::Text(serde_json::to_string(message).expect("JSON")),
            Protocol::ConnectProto => Body::Binary(message.encode_to_vec()),
            Protocol::GrpcWeb => Body::Binary(grpc_web_frame(&message.encode_to_vec())),
        };
        self.send(&event(method, who, protocol.content_type(), body))
            .await
    }
}

/// The three ways in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    ConnectJson,
    ConnectProto,
    GrpcWeb,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Self::ConnectJson, Self::ConnectProto, Self::GrpcWeb];

    pub fn content_type(self) -> &'static str {
        match self {
            Self::ConnectJson => "application/json",
            Self::ConnectProto => "application/proto",
            Self::GrpcWeb => "application/grpc-web+proto",
        }
    }
}

/// A request body as API Gateway hands it over: text as it is, bytes in base64.
pub enum Body {
    Text(String),
    Binary(Vec<u8>),
}

/// A POST to `/paysaga.wallet.v1.WalletService/<method>` by `who`, with `content_type` and
/// `body`: the fixture of a REST call, moved to the RPC's path.
pub fn event(method: &str, who: As, content_type: &str, body: Body) -> Value {
    let path = paysaga_wallet_proto::path(method);
    let mut event = at(
        request("apigw-submit-payment.json", who, None),
        "POST",
        &path,
        &path,
    );
    event["headers"] = json!({
        "content-type": content_type,
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
    });
    match body {
        Body::Text(text) => {
            event["body"] = json!(text);
            event["isBase64Encoded"] = json!(false);
        }
        Body::Binary(bytes) => {
            event["body"] = json!(STANDARD.encode(bytes));
            event["isBase64Encoded"] = json!(true);
        }
    }
    event
}

/// A gRPC-Web data frame: flag 0, the length as 4 bytes big-endian, the message.
pub fn grpc_web_frame(message: &[u8]) -> Vec<u8> {
    let length = u32::try_from(message.len()).expect("a small message");
    let mut frame = vec![0];
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// An answer as API Gateway gets it from `lambda_http`.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: lambda_http::Body,
}

impl Answer {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// A text body as JSON (a Connect JSON answer, or any Connect error).
    pub fn json(&self) -> Value {
        match &self.body {
            lambda_http::Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
            other => panic!("a JSON answer is text, not {other:?}"),
        }
    }

    /// A binary body (base64 on the way to API Gateway) as protobuf.
    pub fn proto<M: Message>(&self) -> M {
        match &self.body {
            lambda_http::Body::Binary(bytes) => M::decode_from_slice(bytes).expect("protobuf"),
            other => panic!("a protobuf answer is binary, not {other:?}"),
        }
    }

    /// A gRPC-Web answer: the message of its data frame, and its status from the trailer frame
    /// or, in a trailers-only answer, from the headers.
    pub fn grpc_web(&self) -> GrpcWebAnswer {
        assert_eq!(self.status, StatusCode::OK, "gRPC-Web answers 200");
        let mut bytes: &[u8] = match &self.body {
            lambda_http::Body::Binary(bytes) => bytes,
            lambda_http::Body::Empty => &[],
            other => panic!("a gRPC-Web answer is binary, not {other:?}"),
        };
        let mut answer = GrpcWebAnswer::default();
        for (name, value) in &self.headers {
            if let Ok(value) = value.to_str() {
                answer.trailers.insert(name.to_string(), value.to_owned());
            }
        }
        while !bytes.is_empty() {
            let (header, rest) = bytes.split_at(5);
            let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let (payload, rest) = rest.split_at(usize::try_from(length).expect("a length"));
            if header[0] & 0x80 == 0 {
                assert!(answer.message.is_none(), "a unary answer has one message");
                answer.message = Some(payload.to_vec());
            } else {
                let text = std::str::from_utf8(payload).expect("trailers are text");
                for line in text.split("\r\n").filter(|line| !line.is_empty()) {
                    let (name, value) = line.split_once(':').expect("name: value");
                    answer
                        .trailers
                        .insert(name.trim().to_lowercase(), value.trim().to_owned());
                }
            }
            bytes = rest;
        }
        answer
    }

    /// The code and the stable reason of a Connect error (a JSON body, whatever the codec).
    pub fn connect_error(&self) -> (String, String) {
        let body = self.json();
        let code = body["code"].as_str().expect("a code").to_owned();
        let details = body["details"].as_array().expect("details");
        let detail = details
            .iter()
            .find(|detail| detail["type"] == "paysaga.wallet.v1.ErrorReason")
            .expect("an ErrorReason detail");
        let value = detail["value"].as_str().expect("a value");
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(value.trim_end_matches('='))
            .expect("base64");
        let reason = v1::ErrorReason::decode_from_slice(&bytes).expect("an ErrorReason");
        (code, reason.code)
    }
}

#[derive(Debug, Default)]
pub struct GrpcWebAnswer {
    pub message: Option<Vec<u8>>,
    pub trailers: HashMap<String, String>,
}

impl GrpcWebAnswer {
    pub fn status(&self) -> &str {
        self.trailers
            .get("grpc-status")
            .map(String::as_str)
            .expect("a grpc-status")
    }

    pub fn decode<M: Message>(&self) -> M {
        M::decode_from_slice(self.message.as_deref().expect("a message")).expect("protobuf")
    }
}

/// `minor_units` of EUR, as the wire carries money.
pub fn eur(minor_units: u64) -> v1::Money {
    v1::Money {
        minor_units,
        currency: "EUR".into(),
        ..Default::default()
    }
}

/// The code of an error, in whichever protocol it came: the Connect code's name, or for
/// gRPC-Web its `grpc-status` turned into that name.
pub fn error_code(protocol: Protocol, answer: &Answer) -> String {
    match protocol {
        Protocol::ConnectJson | Protocol::ConnectProto => answer.connect_error().0,
        Protocol::GrpcWeb => match answer.grpc_web().status() {
            "3" => "invalid_argument",
            "5" => "not_found",
            "6" => "already_exists",
            "7" => "permission_denied",
            "16" => "unauthenticated",
            other => panic!("unexpected grpc-status {other}"),
        }
        .to_owned(),
    }
}
