//! The paysaga GraphQL subgraph (Apollo Federation 2): the caller's wallets, their transactions
//! and payments, and the mutations that move money, over the same rules as the REST `api`
//! ([`SelfService`]). One axum router serves API Gateway (through `lambda_http`) and, locally,
//! a plain HTTP server.
//!
//! | route                  | does                                                          |
//! |------------------------|---------------------------------------------------------------|
//! | `POST /graphql`        | runs `{"query", "variables", "operationName"}`                |
//! | `GET /graphql?query=…` | runs a query (`&variables=` JSON, `&operationName=`); not a mutation (405) |
//! | `GET /graphiql`        | GraphiQL when the configuration turns it on (404 otherwise)   |
//! | `GET /graphql`, a browser's, without `query` | the same page (400 when it is off)      |
//!
//! | schema                                     | answers                                        |
//! |--------------------------------------------|------------------------------------------------|
//! | `viewer { wallets }`                       | the caller's wallets (never its token's subject) |
//! | `wallet(id:)`, `payment(id:)`              | a wallet of the caller's; a payment touching one |
//! | `Wallet { id currency available reserved createdAt }` | balances as `Money { minorUnits currency }` |
//! | `Wallet { transactions payments }`         | read models, newest first: Relay connections (`first`, `after`) |
//! | `Payment { id status kind amount failure … }` | a payment as it stands; its parties as ids |
//! | `openWallet`, `submitPayment`, `topUp`, `payout` | open a wallet; move money (`idempotencyKey`) |
//! | `_service { sdl }`, `_entities`            | federation: `Wallet`, `Payment` keyed by `id` |
//!
//! Amounts are whole minor units, the `MinorUnits` scalar (a JSON number up to 10^15, never a
//! float nor a 32-bit `Int`). Errors are GraphQL errors with `extensions.code` and
//! `extensions.reason` ([`errors`]); a query deeper or costlier than [`limits`] allows is
//! refused before anything is read. Wallets asked for by id are read in batches (`src/loader.rs`).
//! The schema as a router composes it is checked in as `schema.graphql`.
//!
//! Every request to `/graphql` needs a caller ([`Caller`]: the claims API Gateway's JWT
//! authorizer vouched for; a 401 otherwise), and a body of at most [`MAX_BODY_BYTES`] (a 413).
//! The page is a static one holding no token ([`graphiql`]), so `/graphiql`'s route has no
//! authorizer; behind the gateway, a browser reaches `GET /graphql` only with a token.
//! A handler here reads the request and answers the response; who may do what is
//! [`SelfService`]'s.

mod config;
pub mod errors;
pub mod graphiql;
mod inputs;
pub mod limits;
mod loader;
mod objects;
mod schema;

use std::sync::Arc;

use async_graphql::Variables;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use paysaga_http::request::JsonBody;
use paysaga_http::{ApiError, Caller};
use paysaga_services::self_service::SelfService;
use serde::Deserialize;

pub use config::{Config, Graphiql};
pub use graphiql::GraphiqlAssets;
pub use schema::{PaysagaSchema, federation_sdl, schema};

use errors::GraphqlError;
use schema::CallerScope;

/// Request bodies larger than this are refused with a 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The routes of the table above, without GraphiQL.
pub fn router(service: Arc<SelfService>) -> Router {
    router_with(service, Graphiql::Disabled)
}

/// The routes of the table above, with GraphiQL as `graphiql` says.
pub fn router_with(service: Arc<SelfService>, graphiql: Graphiql) -> Router {
    let door = Door {
        schema: schema(),
        service,
        graphiql_page: match graphiql {
            Graphiql::Disabled => None,
            Graphiql::Enabled(assets) => Some(graphiql::page(&assets).into()),
        },
    };
    Router::new()
        .route("/graphql", get(get_graphql).post(post_graphql))
        .route("/graphiql", get(graphiql_page))
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(door))
}

/// What every request shares: the schema (built once), the owner's operations, the page.
struct Door {
    schema: PaysagaSchema,
    service: Arc<SelfService>,
    graphiql_page: Option<Arc<str>>,
}

impl Door {
    /// Runs `request` for `caller`: 200 with `{"data", "errors"}`, whatever the errors.
    async fn execute(&self, caller: &Caller, request: async_graphql::Request) -> Response {
        let scope = CallerScope::new(self.service.clone(), caller.owner().clone());
        let response = self.schema.execute(request.data(scope)).await;
        axum::Json(response).into_response()
    }

    /// The GraphiQL page, if it is on.
    fn graphiql(&self) -> Option<Response> {
        let page = self.graphiql_page.as_ref()?;
        let headers = [(header::CACHE_CONTROL, "no-store")];
        Some((headers, Html(page.to_string())).into_response())
    }
}

/// A POST body: the query, its variables and which operation of it to run.
#[derive(Deserialize)]
struct GraphqlBody {
    query: String,
    #[serde(default, rename = "operationName")]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Variables>,
}

impl From<GraphqlBody> for async_graphql::Request {
    fn from(body: GraphqlBody) -> Self {
        let request = Self::new(body.query).variables(body.variables.unwrap_or_default());
        match body.operation_name {
            Some(name) => request.operation_name(name),
            None => request,
        }
    }
}

async fn post_graphql(
    State(door): State<Arc<Door>>,
    caller: Caller,
    JsonBody(body): JsonBody<GraphqlBody>,
) -> Response {
    door.execute(&caller, body.into()).await
}

/// GET's query string: the query, `variables` as JSON text, `operationName`.
#[derive(Deserialize)]
struct GraphqlParameters {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
}

async fn get_graphql(
    State(door): State<Arc<Door>>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    parameters: Result<Query<GraphqlParameters>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(parameters) =
        parameters.map_err(|rejection| ApiError::InvalidRequest(rejection.body_text()))?;
    let Some(query) = parameters.query else {
        return door
            .graphiql()
            .filter(|_| accepts_html(&headers))
            .ok_or_else(|| ApiError::InvalidRequest(NO_QUERY.to_owned()));
    };
    let caller = caller?;
    let variables = match parameters.variables {
        None => Variables::default(),
        Some(json) => serde_json::from_str(&json)
            .map_err(|_| ApiError::InvalidRequest("variables must be a JSON object".to_owned()))?,
    };
    let mut request = async_graphql::Request::new(query).variables(variables);
    if let Some(name) = parameters.operation_name {
        request = request.operation_name(name);
    }
    if runs_a_mutation(&mut request) {
        return Ok(mutation_over_get());
    }
    Ok(door.execute(&caller, request).await)
}

async fn graphiql_page(State(door): State<Arc<Door>>) -> Result<Response, ApiError> {
    door.graphiql().ok_or_else(|| {
        ApiError::NotFound("GraphiQL is not served here (GRAPHIQL=disabled)".to_owned())
    })
}

const NO_QUERY: &str = "GET /graphql runs the query in ?query=… (with ?variables= as JSON and \
                        ?operationName=); send mutations, or large queries, as POST /graphql \
                        with a JSON body";

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Whether the operation `request` would run is a mutation (or a subscription): GET runs
/// queries only, so that a link or a prefetch never moves money. A query that does not parse,
/// or names no operation it has, is left for the schema to refuse with its own error.
fn runs_a_mutation(request: &mut async_graphql::Request) -> bool {
    let name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return false;
    };
    let operation = match (&document.operations, name.as_deref()) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    };
    operation.is_some_and(|operation| operation.node.ty != OperationType::Query)
}

/// 405, as GraphQL over HTTP has it, with the GraphQL error saying why.
fn mutation_over_get() -> Response {
    let error = GraphqlError::bad_user_input(
        "mutation_over_get",
        "GET /graphql runs queries only: send a mutation as POST /graphql",
    )
    .into_server_error();
    let body = async_graphql::Response::from_errors(vec![error]);
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST")],
        axum::Json(body),
    )
        .into_response()
}
