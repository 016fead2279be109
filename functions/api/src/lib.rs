//! The paysaga HTTP API. One axum router serves API Gateway (through `lambda_http`) and,
//! for local use, a plain HTTP server; handlers turn requests into service calls and back.
//!
//! | route                               | does                                          |
//! |-------------------------------------|-----------------------------------------------|
//! | `POST /wallets`                     | opens a wallet (`201`, or `200` if it exists)  |
//! | `GET /wallets/{wallet_id}`          | reads a wallet                                 |
//! | `POST /wallets/{wallet_id}/top-ups` | submits a top-up from a funding instrument (`202`; `Idempotency-Key`) |
//! | `POST /wallets/{wallet_id}/payouts` | submits a payout to a destination (`202`; `Idempotency-Key`) |
//! | `POST /payments`                    | submits a transfer to another wallet (`202`; `Idempotency-Key`) |
//! | `GET /payments/{payment_id}`        | reads a payment's status                       |
//! | `GET /wallets/{wallet_id}/transactions` | a wallet's transactions, newest first, paged (`reads`) |
//! | `GET /payments?wallet={wallet_id}`  | a wallet's payments, newest first, paged (`reads`) |
//!
//! Every route needs a caller ([`Caller`]: the claims API Gateway's JWT authorizer vouched
//! for); a caller reads and moves only the wallets it owns (403 otherwise). Money enters a
//! wallet only by a top-up the processor charged, and leaves it only by a transfer or a
//! payout: all three are payments, run by the saga, read at `GET /payments/{payment_id}`.
//! Who may do what is written once, in [`SelfService`], which the GraphQL and Connect doors
//! call too; a handler here parses the request and shapes the answer.
//! The operators' routes (`/admin/...`, an operator's deposit among them) are another
//! function's, `admin-api`; both serve with `paysaga_http`. What every route reads, answers
//! and refuses is in the API's OpenAPI document (`docs/openapi.json`), written from
//! [`openapi`] (feature `openapi`) and the schemas of the types below.

mod config;
#[cfg(feature = "openapi")]
pub mod openapi;
mod reads;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
use paysaga_domain::payment::Flow;
use paysaga_domain::{Currency, Money, PaymentId, Priority, WalletId};
use paysaga_services::self_service::{PaymentOrder, SelfService};
use schemars::JsonSchema;
use serde::Deserialize;

pub use config::Config;
use paysaga_http::request::{JsonBody, idempotency_key, parse_id};
pub use paysaga_http::{ADMIN_SCOPE, ApiError, Caller};
use views::{PaymentView, WalletView};

/// Request bodies larger than this are refused with a 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The state every handler shares: the owner's operations.
type Service = Arc<SelfService>;

/// Every route of the table above: a path, and what each method does there.
fn routes() -> Vec<(&'static str, MethodRouter<Service>)> {
    let mut routes = vec![
        ("/wallets", post(open_wallet)),
        ("/wallets/{wallet_id}", get(read_wallet)),
        ("/wallets/{wallet_id}/top-ups", post(submit_top_up)),
        ("/wallets/{wallet_id}/payouts", post(submit_payout)),
        ("/payments", post(submit_payment)),
        ("/payments/{payment_id}", get(read_payment)),
    ];
    routes.extend(reads::routes());
    routes
}

/// Every path the router serves (a path may be served for more than one method), for the
/// tests that hold the OpenAPI document and the template to the router.
pub fn paths() -> Vec<&'static str> {
    routes().into_iter().map(|(path, _)| path).collect()
}

/// Every route of the table above, over the owner's operations (the same the GraphQL and
/// Connect doors call).
pub fn router(service: Service) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(service)
}

/// `POST /wallets`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OpenWalletBody {
    /// The currency the wallet holds, for good: one of the currencies wallets may hold
    /// (`ALLOWED_CURRENCIES`; another is a 422).
    currency: Currency,
    /// Optional: a caller-chosen id (`wal_…`), for wallets that already have one elsewhere;
    /// left out, one is generated.
    wallet_id: Option<WalletId>,
}

async fn open_wallet(
    State(service): State<Service>,
    caller: Caller,
    JsonBody(body): JsonBody<OpenWalletBody>,
) -> Result<Response, ApiError> {
    let opened = service
        .open_wallet(caller.owner(), body.wallet_id, body.currency)
        .await?;
    let status = if opened.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, WalletView::from(&opened.wallet)).into_response())
}

async fn read_wallet(
    State(service): State<Service>,
    caller: Caller,
    Path(wallet_id): Path<String>,
) -> Result<Response, ApiError> {
    let wallet_id: WalletId = parse_id(&wallet_id, WalletId::parse)?;
    let wallet = service.wallet(caller.owner(), &wallet_id).await?;
    Ok(WalletView::from(&wallet).into_response())
}

/// `POST /payments`: a transfer from one of the caller's wallets to another wallet.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PaymentBody {
    /// The caller's wallet, which pays.
    from_wallet: WalletId,
    /// The wallet paid (another than `from_wallet`, in the same currency).
    to_wallet: WalletId,
    /// Greater than zero and at most `MAX_PAYMENT_MINOR_UNITS` (a 422 otherwise).
    amount: Money,
    /// `"urgent"` or `"ordinary"` (the default); any other value is a 400, like any bad body.
    #[serde(default)]
    priority: Priority,
}

/// `POST /wallets/{wallet_id}/top-ups`: money into the wallet from the caller's funding
/// instrument, which the processor charges.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TopUpBody {
    /// The caller's funding instrument at the processor (`fi_…`), which it charges.
    funding_instrument: FundingInstrumentId,
    /// Greater than zero and at most `MAX_PAYMENT_MINOR_UNITS` (a 422 otherwise).
    amount: Money,
    /// `"urgent"` or `"ordinary"` (the default).
    #[serde(default)]
    priority: Priority,
}

/// `POST /wallets/{wallet_id}/payouts`: money out of the wallet to the caller's destination,
/// which the processor pays.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PayoutBody {
    /// The caller's destination at the processor (`dst_…`), which it pays.
    destination: PayoutDestinationId,
    /// Greater than zero and at most `MAX_PAYMENT_MINOR_UNITS` (a 422 otherwise).
    amount: Money,
    /// `"urgent"` or `"ordinary"` (the default).
    #[serde(default)]
    priority: Priority,
}

async fn submit_payment(
    State(service): State<Service>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PaymentBody>,
) -> Result<Response, ApiError> {
    let flow = Flow::Transfer {
        from_wallet: body.from_wallet,
        to_wallet: body.to_wallet,
    };
    submit(
        &service,
        &caller,
        &headers,
        flow,
        body.amount,
        body.priority,
    )
    .await
}

async fn submit_top_up(
    State(service): State<Service>,
    caller: Caller,
    Path(wallet_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<TopUpBody>,
) -> Result<Response, ApiError> {
    let flow = Flow::TopUp {
        funding_instrument: body.funding_instrument,
        to_wallet: parse_id(&wallet_id, WalletId::parse)?,
    };
    submit(
        &service,
        &caller,
        &headers,
        flow,
        body.amount,
        body.priority,
    )
    .await
}

async fn submit_payout(
    State(service): State<Service>,
    caller: Caller,
    Path(wallet_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PayoutBody>,
) -> Result<Response, ApiError> {
    let flow = Flow::Payout {
        from_wallet: parse_id(&wallet_id, WalletId::parse)?,
        destination: body.destination,
    };
    submit(
        &service,
        &caller,
        &headers,
        flow,
        body.amount,
        body.priority,
    )
    .await
}

/// Submits a payment of any flow for its payer's owner: 202 with the payment and where to
/// follow it.
async fn submit(
    service: &SelfService,
    caller: &Caller,
    headers: &HeaderMap,
    flow: Flow,
    amount: Money,
    priority: Priority,
) -> Result<Response, ApiError> {
    // Required: a request whose answer is lost (a timeout, a 503 after the write committed)
    // can only be retried safely under the same key; without one, the retry is a second
    // payment.
    let key = idempotency_key(headers)?.ok_or_else(|| {
        ApiError::InvalidRequest(
            "the Idempotency-Key header is required: a payment retried without one (its answer \
             lost) would be made twice"
                .to_owned(),
        )
    })?;
    let order = PaymentOrder {
        flow,
        amount,
        priority,
    };
    let payment = service.submit(caller.owner(), order, &key).await?;
    let location = format!("/payments/{}", payment.request.payment_id());
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        PaymentView::from(&payment),
    )
        .into_response())
}

async fn read_payment(
    State(service): State<Service>,
    caller: Caller,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    let payment_id: PaymentId = parse_id(&payment_id, PaymentId::parse)?;
    let payment = service.payment(caller.owner(), &payment_id).await?;
    Ok(PaymentView::from(&payment).into_response())
}
