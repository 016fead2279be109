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
//! | `GET /wallets/{wallet_id}/transactions` | a wallet's transactions, newest first, paged ([`read_router`]) |
//! | `GET /payments?wallet={wallet_id}`  | a wallet's payments, newest first, paged ([`read_router`]) |
//!
//! Every route needs a caller ([`Caller`]: the claims API Gateway's JWT authorizer vouched
//! for); a caller reads and moves only the wallets it owns (403 otherwise). Money enters a
//! wallet only by a top-up the processor charged, and leaves it only by a transfer or a
//! payout: all three are payments, run by the saga, read at `GET /payments/{payment_id}`.
//! The operators' routes (`/admin/...`, an operator's deposit among them) are another
//! function's, `admin-api`; both serve with `paysaga_http`.

mod config;
mod limits;
mod reads;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
use paysaga_domain::payment::Flow;
use paysaga_domain::ports::{OpenWallet, Ownership, PaymentLog, WalletStore};
use paysaga_domain::{
    Currency, IdempotencyKey, Money, PaymentId, PaymentRequest, Priority, WalletId,
};
use paysaga_services::payments::{self, Submission};
use paysaga_services::wallets;
use serde::Deserialize;

pub use config::Config;
use paysaga_http::request::{JsonBody, idempotency_key, parse_id};
pub use paysaga_http::{ADMIN_SCOPE, ApiError, Caller};
pub use reads::{ReadApi, read_router};
use views::{PaymentView, WalletView};

/// Request bodies larger than this are refused with a 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the handlers may touch.
pub struct Api {
    pub wallets: Arc<dyn WalletStore>,
    /// The payments' log: a request written to it is announced from it (the event relay).
    pub payments: Arc<dyn PaymentLog>,
    /// The currencies wallets may hold and the largest payment.
    pub limits: paysaga_domain::Limits,
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/wallets", post(open_wallet))
        .route("/wallets/{wallet_id}", get(read_wallet))
        .route("/wallets/{wallet_id}/top-ups", post(submit_top_up))
        .route("/wallets/{wallet_id}/payouts", post(submit_payout))
        .route("/payments", post(submit_payment))
        .route("/payments/{payment_id}", get(read_payment))
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenWalletBody {
    currency: Currency,
    /// Optional: a caller-chosen id (`wal_…`), for wallets that already have one elsewhere.
    wallet_id: Option<WalletId>,
}

async fn open_wallet(
    State(api): State<Arc<Api>>,
    caller: Caller,
    JsonBody(body): JsonBody<OpenWalletBody>,
) -> Result<Response, ApiError> {
    api.limits
        .check_currency(body.currency)
        .map_err(limits::refused)?;
    let owner = caller.owner().clone();
    match wallets::open_wallet(api.wallets.as_ref(), body.wallet_id, body.currency, owner).await? {
        OpenWallet::Opened(wallet) => {
            Ok((StatusCode::CREATED, WalletView::from(&wallet)).into_response())
        }
        OpenWallet::AlreadyOpen(wallet) => {
            caller.may_use(&wallet)?;
            if wallet.currency() == body.currency {
                return Ok((StatusCode::OK, WalletView::from(&wallet)).into_response());
            }
            Err(ApiError::Conflict {
                code: "wallet_exists",
                message: format!(
                    "wallet {} exists with currency {}",
                    wallet.id(),
                    wallet.currency()
                ),
            })
        }
    }
}

async fn read_wallet(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(wallet_id): Path<String>,
) -> Result<Response, ApiError> {
    let wallet_id: WalletId = parse_id(&wallet_id, WalletId::parse)?;
    match api
        .wallets
        .wallet(&wallet_id)
        .await
        .map_err(paysaga_services::ServiceError::from)?
    {
        Some(wallet) => {
            caller.may_use(&wallet)?;
            Ok(WalletView::from(&wallet).into_response())
        }
        None => Err(ApiError::NotFound(format!(
            "wallet {wallet_id} does not exist"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentBody {
    from_wallet: WalletId,
    to_wallet: WalletId,
    amount: Money,
    /// `"urgent"` or `"ordinary"` (the default); any other value is a 400, like any bad body.
    #[serde(default)]
    priority: Priority,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUpBody {
    /// The caller's funding instrument at the processor (`fi_…`), which it charges.
    funding_instrument: FundingInstrumentId,
    amount: Money,
    #[serde(default)]
    priority: Priority,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayoutBody {
    /// The caller's destination at the processor (`dst_…`), which it pays.
    destination: PayoutDestinationId,
    amount: Money,
    #[serde(default)]
    priority: Priority,
}

/// A payment of `flow` as submitted: named by its idempotency key (a retry names the same
/// payment).
fn submitted(
    flow: Flow,
    amount: Money,
    priority: Priority,
    key: &IdempotencyKey,
) -> Result<PaymentRequest, ApiError> {
    PaymentRequest::submitted(flow, amount, Some(key))
        .map(|request| request.with_priority(priority))
        .map_err(|error| ApiError::Unprocessable {
            code: "invalid_payment",
            message: error.to_string(),
        })
}

async fn submit_payment(
    State(api): State<Arc<Api>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PaymentBody>,
) -> Result<Response, ApiError> {
    let flow = Flow::Transfer {
        from_wallet: body.from_wallet,
        to_wallet: body.to_wallet,
    };
    submit(&api, &caller, &headers, flow, body.amount, body.priority).await
}

async fn submit_top_up(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(wallet_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<TopUpBody>,
) -> Result<Response, ApiError> {
    let flow = Flow::TopUp {
        funding_instrument: body.funding_instrument,
        to_wallet: parse_id(&wallet_id, WalletId::parse)?,
    };
    submit(&api, &caller, &headers, flow, body.amount, body.priority).await
}

async fn submit_payout(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(wallet_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PayoutBody>,
) -> Result<Response, ApiError> {
    let flow = Flow::Payout {
        from_wallet: parse_id(&wallet_id, WalletId::parse)?,
        destination: body.destination,
    };
    submit(&api, &caller, &headers, flow, body.amount, body.priority).await
}

/// Submits a payment of any flow for its payer's owner: 202 with the payment and where to
/// follow it.
async fn submit(
    api: &Api,
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
    let request = submitted(flow, positive(amount)?, priority, &key)?;
    limits::payment(&api.limits, request.amount())?;
    must_own(api.wallets.as_ref(), caller, request.payer_wallet()).await?;
    match payments::submit_payment(api.payments.as_ref(), request, Some(&key)).await? {
        Submission::Accepted(payment) => {
            let location = format!("/payments/{}", payment.request.payment_id());
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                PaymentView::from(&payment),
            )
                .into_response())
        }
        Submission::KeyReused => Err(key_reused()),
    }
}

async fn read_payment(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    let payment_id: PaymentId = parse_id(&payment_id, PaymentId::parse)?;
    match payments::payment(api.payments.as_ref(), &payment_id).await? {
        Some(payment) => {
            // The owner of any wallet it touches may read it (a transfer's payer and payee).
            let mut readable = false;
            for wallet_id in payment.request.flow().wallet_ids() {
                readable = readable || owns(api.wallets.as_ref(), &caller, &wallet_id).await?;
            }
            if !readable {
                return Err(ApiError::Forbidden(format!(
                    "payment {payment_id} is between wallets of other callers"
                )));
            }
            Ok(PaymentView::from(&payment).into_response())
        }
        None => Err(ApiError::NotFound(format!(
            "payment {payment_id} does not exist"
        ))),
    }
}

/// Whether the caller owns the wallet (a wallet that does not exist is nobody's).
pub(crate) async fn owns(
    wallets: &dyn WalletStore,
    caller: &Caller,
    wallet_id: &WalletId,
) -> Result<bool, ApiError> {
    let ownership = wallets
        .ownership(wallet_id)
        .await
        .map_err(paysaga_services::ServiceError::from)?;
    Ok(ownership.is(caller.owner()))
}

/// Ok when the caller owns the wallet; a 404 when there is no such wallet, a 403 when it is
/// someone else's.
pub(crate) async fn must_own(
    wallets: &dyn WalletStore,
    caller: &Caller,
    wallet_id: &WalletId,
) -> Result<(), ApiError> {
    let ownership = wallets
        .ownership(wallet_id)
        .await
        .map_err(paysaga_services::ServiceError::from)?;
    match ownership {
        Ownership::NoSuchWallet => Err(ApiError::NotFound(format!(
            "wallet {wallet_id} does not exist"
        ))),
        ownership if ownership.is(caller.owner()) => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "wallet {wallet_id} belongs to another caller"
        ))),
    }
}

fn positive(amount: Money) -> Result<Money, ApiError> {
    Money::positive(amount.minor_units(), amount.currency()).map_err(|error| {
        ApiError::Unprocessable {
            code: "invalid_amount",
            message: error.to_string(),
        }
    })
}

fn key_reused() -> ApiError {
    ApiError::Conflict {
        code: "idempotency_key_reused",
        message: "this Idempotency-Key was used for a different request".to_owned(),
    }
}
