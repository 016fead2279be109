//! What the functions behind paysaga's HTTP API share (`api`, `admin-api`): the caller that
//! API Gateway's JWT authorizer vouched for ([`Caller`]), errors as JSON bodies ([`ApiError`]),
//! request bodies, ids and idempotency keys ([`request`]), serving one axum router on Lambda or
//! as a local server ([`serve`]), and the X-Ray trace of each request ([`trace`]); with the
//! `openapi` feature, the assembler of the API's OpenAPI document ([`openapi`]).

pub mod auth;
pub mod error;
#[cfg(feature = "local-authorizer")]
pub mod local_authorizer;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod request;
pub mod serve;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod trace;

pub use auth::{ADMIN_SCOPE, Admin, Caller};
pub use error::ApiError;
pub use serve::serve;
