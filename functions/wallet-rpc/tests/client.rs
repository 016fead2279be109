//! The generated `WalletServiceClient` against the router, in each protocol, as the
//! integration tests call the local stack (there over connectrpc's `HttpClient`; here over the
//! router itself as a tower service, behind a stand-in for the JWT authorizer whose token is
//! the caller's name).

mod support;

use std::collections::HashMap;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use connectrpc::client::{ClientConfig, ServiceTransport};
use connectrpc::{ErrorCode, Protocol};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use paysaga_wallet_proto::v1::{GetBalanceRequest, WalletServiceClient};
use support::World;

/// `Authorization: Bearer <name>` vouches for `<name>`, as the authorizer hands claims over.
async fn stand_in_authorizer(mut request: Request, next: Next) -> Response {
    let subject = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let Some(subject) = subject {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = HashMap::from([("sub".to_owned(), subject)]);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.authorizer = Some(authorizer);
        request
            .extensions_mut()
            .insert(RequestContext::ApiGatewayV2(context));
    }
    next.run(request).await
}

fn config(token: &str) -> ClientConfig {
    ClientConfig::new("http://wallet-rpc.test".parse().expect("a URI"))
        .with_default_header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn the_generated_client_calls_in_connect_json_connect_binary_and_grpc_web() {
    let world = World::new().await;
    let transport = ServiceTransport::new(
        world
            .app
            .clone()
            .layer(middleware::from_fn(stand_in_authorizer)),
    );
    let configs = |token: &str| {
        [
            config(token).json(),
            config(token).proto(),
            config(token).with_protocol(Protocol::GrpcWeb).proto(),
        ]
    };
    let alices = || GetBalanceRequest {
        wallet_id: "wal_alice".into(),
        ..Default::default()
    };
    for config in configs("alice") {
        let protocol = (config.protocol(), config.codec_format());
        let client = WalletServiceClient::new(transport.clone(), config);
        let balance = client
            .get_balance(alices())
            .await
            .unwrap_or_else(|error| panic!("{protocol:?}: {error:?}"))
            .into_owned();
        assert_eq!(balance.total.minor_units, 10_000, "{protocol:?}");
        assert_eq!(balance.reserved.minor_units, 2_500, "{protocol:?}");
    }
    for config in configs("bob") {
        let protocol = (config.protocol(), config.codec_format());
        let client = WalletServiceClient::new(transport.clone(), config);
        let error = client
            .get_balance(alices())
            .await
            .expect_err("Alice's wallet is not Bob's");
        assert_eq!(error.code, ErrorCode::PermissionDenied, "{protocol:?}");
        let reason = paysaga_wallet_proto::error_reason(&error).map(|reason| reason.code);
        assert_eq!(reason.as_deref(), Some("forbidden"), "{protocol:?}");
    }
}
