//! The `admin-api` function: the operators' routes of the HTTP API, for callers with the
//! `paysaga/admin` scope (the gateway checks the scope on these routes; each handler takes an
//! [`Admin`], so a route added without it in the template still refuses other callers). A
//! function of its own, apart from `api`, so that the public API's role holds no access to
//! dead letters, queues or the audit trail, and its binary stays small:
//!
//! Every action is in the audit trail, in the operator's stream, with who (the token's
//! subject), when, what and why (a required `reason`): a deposit in its `FundsDeposited`; a
//! replay or a rebuild page in an `OperatorActionStarted` published before the action takes
//! effect (an action that cannot be recorded answers 503 and does nothing).
//!
//! - `POST /admin/parked/{parked_id}/replay`, `{"reason": "…"}`: sends a parked dead letter (or
//!   its fixed body, `"body": "…"`) back to its queue (`make dlq-replay`, `paysaga-admin dlq
//!   replay`). Optional `destination` (a queue ARN) and `force` (replay a body that breaks
//!   the event contracts). Recorded with the destination, the SHA-256 of the body sent, whether
//!   it was edited, and `force`.
//! - `POST /admin/wallets/{wallet_id}/deposits`, `{"amount": …, "reason": "…"}`: an operator
//!   puts money into a wallet from the outside world's adjustments account (a correction, a
//!   goodwill credit, test funds on a local stack), recorded with who issued it (the token's
//!   subject) and why (required) in its `FundsDeposited` event, so in the audit trail.
//!   `Idempotency-Key` required (a keyless retry would credit twice). A wallet's holder adds
//!   money by a top-up, never this way.
//! - `POST /admin/read-models/rebuild`, `{"reason": "…"}`: applies one page of the audit trail
//!   to the live read models and answers the counts and the `next` page's token; call again
//!   with `{"after": next, "reason": "…"}` until `next` is `null`. Each call is recorded. A page is bounded ([`REBUILD_PAGE`]: so many
//!   items read, so much time) so that a call answers well within the HTTP API's 30 s: one out
//!   of time answers a `next` right after its last event. Idempotent: a page applied twice
//!   changes nothing the second time, so an interrupted rebuild is simply resumed or restarted.
//!
//! What each route reads, answers and refuses is in the API's OpenAPI document
//! (`docs/openapi.json`), written from [`openapi`] (feature `openapi`).

mod config;
#[cfg(feature = "openapi")]
pub mod openapi;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use chrono::Utc;
use paysaga_domain::ports::{
    Deposit, EventPageToken, EventPublisher, EventStore, ReadModelWriter, StoreError,
    WalletDeposits,
};
use paysaga_domain::{
    DepositId, FailureReason, Limits, Money, OperatorActionId, OperatorReason, OperatorRecord,
    Wallet, WalletId,
};
use paysaga_services::ServiceError;
use paysaga_services::read_models::{self, PageBudget, RebuildStepError};
use paysaga_services::redrive::parking::{ReplayError, ReplayRequest, Replayed, replay};
use paysaga_services::redrive::{ParkingLot, QueueError, RedriveQueues};
use paysaga_services::wallets::{self, DepositResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use paysaga_http::request::{JsonBody, idempotency_key, parse_id};
use paysaga_http::{Admin, ApiError};

pub use config::Config;

/// What one `POST /admin/read-models/rebuild` takes on: 200 items of the audit trail (a few
/// writes per event), and no event started after 20 s. API Gateway gives an HTTP API's
/// integration 30 s (and the function's timeout is 30 s): a full DynamoDB page (1 MB, a few
/// thousand events) could outlast it, and its caller would then retry that same page forever.
pub const REBUILD_PAGE: PageBudget = PageBudget {
    items: 200,
    time: Duration::from_secs(20),
};

/// What the admin handlers may touch.
pub struct AdminApi {
    pub parking: Arc<dyn ParkingLot>,
    pub queues: Arc<dyn RedriveQueues>,
    pub event_store: Arc<dyn EventStore>,
    pub read_models: Arc<dyn ReadModelWriter>,
    /// How much of the audit trail one rebuild call takes on ([`REBUILD_PAGE`] in `main`).
    pub rebuild_page: PageBudget,
    /// Where an operator's deposit is credited.
    pub wallets: Arc<dyn WalletDeposits>,
    /// Where the actions other than a deposit (whose store records its announcement) are
    /// recorded for the audit trail: the outbox, which the event relay publishes.
    pub events: Arc<dyn EventPublisher>,
    /// The largest deposit, and the currencies wallets hold.
    pub limits: Limits,
}

/// What [`OperatorReason::parse`] accepts, as far as a schema can say: up to 500 characters,
/// not blank, no control characters (one holding a secret or personal data is refused too).
fn reason_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    const NOT_CONTROL: &str = r"[^\u0000-\u001f\u007f-\u009f]";
    const NOT_BLANK: &str = r"[^\s\u0000-\u001f\u007f-\u009f]";
    schemars::json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": OperatorReason::MAX_CHARS,
        "pattern": format!("^{NOT_CONTROL}*{NOT_BLANK}{NOT_CONTROL}*$"),
    })
}

/// `POST /admin/wallets/{wallet_id}/deposits`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DepositBody {
    /// Greater than zero and at most `MAX_DEPOSIT_MINOR_UNITS`, in the wallet's currency (a
    /// 422 otherwise).
    amount: Money,
    /// Why: required, kept in the audit trail for good (1 to 500 characters, no control
    /// characters, no secret or personal data: a 400 otherwise).
    #[schemars(schema_with = "reason_schema")]
    reason: OperatorReason,
}

/// A deposit made (or made before, under the same key), and the wallet's balances after it.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Deposit")]
struct DepositView {
    deposit_id: DepositId,
    amount: Money,
    /// The wallet's balances after the deposit.
    wallet_id: WalletId,
    available: Money,
    reserved: Money,
}

impl DepositView {
    fn new(deposit: &Deposit, wallet: &Wallet) -> Self {
        Self {
            deposit_id: deposit.deposit_id.clone(),
            amount: deposit.amount,
            wallet_id: wallet.id().clone(),
            available: wallet.available(),
            reserved: wallet.reserved(),
        }
    }
}

async fn deposit(
    State(admin): State<Arc<AdminApi>>,
    operator: Admin,
    Path(wallet_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<DepositBody>,
) -> Result<Response, ApiError> {
    let amount =
        Money::positive(body.amount.minor_units(), body.amount.currency()).map_err(|error| {
            ApiError::Unprocessable {
                code: "invalid_amount",
                message: error.to_string(),
            }
        })?;
    admin
        .limits
        .check_deposit(amount)
        .map_err(|refusal| ApiError::Unprocessable {
            code: refusal.code(),
            message: refusal.to_string(),
        })?;
    let deposit = Deposit {
        deposit_id: DepositId::generate(),
        wallet_id: parse_id(&wallet_id, WalletId::parse)?,
        amount,
        // Required: a deposit retried without one (its answer lost) would credit twice.
        idempotency_key: Some(idempotency_key(&headers)?.ok_or_else(|| {
            ApiError::InvalidRequest(
                "the Idempotency-Key header is required: a deposit retried without one would \
                 credit the wallet twice"
                    .to_owned(),
            )
        })?),
        operator: operator_record(&operator, body.reason),
    };
    let (status, deposit, wallet) = match wallets::deposit(admin.wallets.as_ref(), deposit).await? {
        DepositResult::Deposited { deposit, wallet } => (StatusCode::CREATED, deposit, wallet),
        DepositResult::Replayed { deposit, wallet } => (StatusCode::OK, deposit, wallet),
        DepositResult::KeyReused => {
            return Err(ApiError::Conflict {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used for a different request".to_owned(),
            });
        }
        DepositResult::Refused(FailureReason::UnknownWallet { wallet_id }) => {
            return Err(ApiError::NotFound(format!(
                "wallet {wallet_id} does not exist"
            )));
        }
        DepositResult::Refused(reason) => return Err(ApiError::refused(&reason)),
    };
    // The reason and the operator stay out of the log: the audit trail keeps them.
    tracing::info!(deposit_id = %deposit.deposit_id, wallet_id = %deposit.wallet_id, replayed = status == StatusCode::OK, "operator deposit");
    Ok((status, Json(DepositView::new(&deposit, &wallet))).into_response())
}

/// Who acts (the admin token's subject) and why.
fn operator_record(operator: &Admin, reason: OperatorReason) -> OperatorRecord {
    OperatorRecord {
        issued_by: operator.caller().owner().clone(),
        reason,
    }
}

/// Every operator's route: a path, and what each method does there.
fn routes() -> [(&'static str, MethodRouter<Arc<AdminApi>>); 3] {
    [
        ("/admin/wallets/{wallet_id}/deposits", post(deposit)),
        ("/admin/parked/{parked_id}/replay", post(replay_parked)),
        ("/admin/read-models/rebuild", post(rebuild_read_models)),
    ]
}

/// Every path the router serves, for the tests that hold the OpenAPI document and the
/// template to the router.
pub fn paths() -> Vec<&'static str> {
    routes().into_iter().map(|(path, _)| path).collect()
}

pub fn admin_router(admin: Arc<AdminApi>) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .with_state(admin)
}

/// `POST /admin/parked/{parked_id}/replay`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    /// Why: required, kept in the audit trail for good (1 to 500 characters, no control
    /// characters, no secret or personal data: a 400 otherwise).
    #[schemars(schema_with = "reason_schema")]
    reason: OperatorReason,
    /// The fixed body, when the operator fixed the message rather than the consumer.
    body: Option<String>,
    /// The queue (ARN) to send it to, when the parked message names none.
    destination: Option<String>,
    /// Send a body that breaks the event contracts all the same.
    #[serde(default)]
    force: bool,
}

/// A parked message sent back to its queue.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Replay")]
struct ReplayedView {
    /// The replay's record in the audit trail (`OperatorActionStarted`).
    action_id: OperatorActionId,
    parked_id: String,
    /// The queue's name.
    sent_to: String,
    /// Whether the operator's own body was sent instead of the parked one.
    body_edited: bool,
}

impl From<Replayed> for ReplayedView {
    fn from(replayed: Replayed) -> Self {
        Self {
            action_id: replayed.action_id,
            parked_id: replayed.parked_id,
            sent_to: replayed.sent_to,
            body_edited: replayed.body_edited,
        }
    }
}

async fn replay_parked(
    State(admin): State<Arc<AdminApi>>,
    operator: Admin,
    Path(parked_id): Path<String>,
    JsonBody(body): JsonBody<ReplayBody>,
) -> Result<Response, ApiError> {
    let request = ReplayRequest {
        parked_id,
        body: body.body,
        destination: body.destination,
        force: body.force,
        operator: operator_record(&operator, body.reason),
    };
    let replayed = replay(
        admin.queues.as_ref(),
        admin.parking.as_ref(),
        admin.events.as_ref(),
        &request,
        Utc::now(),
    )
    .await
    .map_err(replay_error)?;
    tracing::info!(parked_id = %replayed.parked_id, sent_to = %replayed.sent_to, "parked message replayed");
    Ok(Json(ReplayedView::from(replayed)).into_response())
}

fn replay_error(error: ReplayError) -> ApiError {
    match error {
        ReplayError::NotFound(_) => ApiError::NotFound(error.to_string()),
        ReplayError::AlreadyReplayed { .. } => ApiError::Conflict {
            code: "already_replayed",
            message: error.to_string(),
        },
        ReplayError::Settled { .. } => ApiError::Conflict {
            code: "settled",
            message: error.to_string(),
        },
        ReplayError::NoDestination(_) => ApiError::Unprocessable {
            code: "no_destination",
            message: error.to_string(),
        },
        ReplayError::Contract(_) => ApiError::Unprocessable {
            code: "contract_violation",
            message: error.to_string(),
        },
        ReplayError::Queue(QueueError::NotFound(_)) => ApiError::Unprocessable {
            code: "no_such_queue",
            message: error.to_string(),
        },
        ReplayError::Refused
        | ReplayError::Unrecorded(_)
        | ReplayError::Queue(QueueError::Unavailable(_)) => {
            tracing::warn!(%error, "replay not sent");
            ApiError::Unavailable
        }
        ReplayError::Store(error) => ServiceError::from(error).into(),
    }
}

/// `POST /admin/read-models/rebuild`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RebuildBody {
    /// The `next` of the previous call; none to start from the beginning.
    after: Option<String>,
    /// Why: required, kept in the audit trail for good (1 to 500 characters, no control
    /// characters, no secret or personal data: a 400 otherwise).
    #[schemars(schema_with = "reason_schema")]
    reason: OperatorReason,
}

/// A page of the audit trail applied to the read models.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "RebuildPage")]
struct RebuildPage {
    /// This call's record in the audit trail.
    action_id: OperatorActionId,
    /// Events of the audit trail this page applied.
    events: u64,
    /// Read-model items they changed.
    changed: u64,
    /// Read-model items that were already as they said.
    unchanged: u64,
    /// Where the next call starts; `null` when the audit trail has been applied whole.
    next: Option<String>,
}

async fn rebuild_read_models(
    State(admin): State<Arc<AdminApi>>,
    operator: Admin,
    JsonBody(body): JsonBody<RebuildBody>,
) -> Result<Response, ApiError> {
    let after = body.after.map(EventPageToken);
    let (action_id, page) = match read_models::rebuild_page_by(
        &operator_record(&operator, body.reason),
        admin.events.as_ref(),
        admin.event_store.as_ref(),
        admin.read_models.as_ref(),
        after.as_ref(),
        admin.rebuild_page,
        Utc::now(),
    )
    .await
    {
        Ok(recorded) => recorded,
        // The store refuses a token it did not give: the caller's mistake, not the store's.
        Err(RebuildStepError::Read(StoreError::Permanent(message))) if after.is_some() => {
            return Err(ApiError::InvalidRequest(format!(
                "after must be the next of an earlier call ({message})"
            )));
        }
        Err(RebuildStepError::Read(error) | RebuildStepError::Write(error)) => {
            return Err(ServiceError::from(error).into());
        }
        Err(RebuildStepError::Unrecorded(error)) => {
            tracing::warn!(%error, "rebuild step not taken: not recorded");
            return Err(ApiError::Unavailable);
        }
    };
    let counts = page.counts;
    tracing::info!(
        events = counts.events,
        changed = counts.changed,
        "read models: a page of the audit trail applied"
    );
    Ok(Json(RebuildPage {
        action_id,
        events: counts.events,
        changed: counts.changed,
        unchanged: counts.unchanged,
        next: page.next.map(|token| token.0),
    })
    .into_response())
}
