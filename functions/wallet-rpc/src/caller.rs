//! Who is calling: [`Caller`], from the claims API Gateway's JWT authorizer vouched for, taken
//! by `paysaga_http`'s own extractor in a layer in front of the RPCs ([`identify`]) and read by
//! each RPC from its request's extensions ([`caller`]). The layer never answers itself: a call
//! without a caller reaches its RPC, which answers `unauthenticated` in the protocol the call
//! speaks (a Connect 401, or gRPC-Web's `grpc-status: 16`), which only connectrpc knows how to
//! write.

use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::Response;
use connectrpc::{ConnectError, RequestContext};
use paysaga_http::{ApiError, Caller};

use crate::errors;

/// The caller of a call, or why there is none.
#[derive(Clone)]
enum Identity {
    Caller(Caller),
    Unverified(&'static str),
}

/// Puts the request's [`Identity`] into its extensions, which connectrpc hands each RPC.
pub async fn identify(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let identity = match Caller::from_request_parts(&mut parts, &()).await {
        Ok(caller) => Identity::Caller(caller),
        Err(ApiError::Unauthenticated(why)) => Identity::Unverified(why),
        Err(_) => Identity::Unverified("no verified identity"),
    };
    parts.extensions.insert(identity);
    next.run(Request::from_parts(parts, body)).await
}

/// The call's caller, or the `unauthenticated` error to answer.
pub fn caller(context: &RequestContext) -> Result<&Caller, ConnectError> {
    match context.extensions().get::<Identity>() {
        Some(Identity::Caller(caller)) => Ok(caller),
        Some(Identity::Unverified(why)) => Err(errors::unauthenticated(why)),
        // Only a router without the `identify` layer gets here.
        None => Err(errors::unauthenticated("no verified identity")),
    }
}
