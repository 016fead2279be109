//! A fake external payment processor: the HTTP contract paysaga's `HttpPaymentProcessor`
//! speaks, over an in-memory ledger keyed by payment id, plus control endpoints with which
//! tests inject latency, errors, declines and outages.
//!
//! The processor API:
//!
//! | request | answer |
//! |---|---|
//! | `POST /charges`, `Idempotency-Key: <payment_id>`, `{"payment_id","from_wallet","to_wallet","amount":{"minor_units","currency"}}` | 201 `{"charge_id","payment_id","status":"captured","amount"}`; 200 with the same charge on a replay (its status may since be `refunded`); 402 `declined` (amount over the decline threshold); 409 `voided` (refunded before any charge); 422 `idempotency_conflict` (same payment id, other terms); 400 `invalid_request` |
//! | `POST /charges/{payment_id}/refund` | 200 `{"payment_id","status":"refunded"\|"voided"}`; idempotent; an unknown payment id is voided, so a later charge of it gets 409 |
//! | `GET /charges/{payment_id}` | 200 `{"payment_id","charge_id"?,"status","amount"?}`; 404 `not_found` |
//! | `GET /charges` | 200 `{"charges":[...]}`, every payment id in the order first seen |
//!
//! Errors are `{"error":{"code","message"}}`. Injected faults (latency, `error_rate`, outages:
//! 503 `unavailable`) hit the two calls paysaga makes, `POST /charges` and
//! `POST /charges/{payment_id}/refund`; the reads stay answerable so tests can check the
//! ledger at any time.
//!
//! The control API (for tests): `GET /_control` (settings, outage, counters),
//! `PUT /_control` `{"latency_ms":0,"error_rate":0.0,"decline_over_minor_units":null}` (a field
//! left out takes that default), `POST /_control/outage` `{"seconds":N}` (every charge and
//! refund answers 503 for N seconds from now; 0 ends an outage), `POST /_control/reset`
//! (empty ledger, default settings, counters at zero).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

/// The longest latency and outage the control API accepts.
const MAX_LATENCY_MS: u64 = 60_000;
const MAX_OUTAGE_SECONDS: f64 = 3_600.0;

/// The processor: its ledger, settings and counters. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct FakeProcessor {
    state: Arc<Mutex<ProcessorState>>,
}

#[derive(Default)]
struct ProcessorState {
    ledger: HashMap<String, Entry>,
    settings: Settings,
    outage_until: Option<Instant>,
    counters: Counters,
}

/// What the processor knows of one payment id.
#[derive(Debug, Clone)]
struct Entry {
    /// Order of first sight, for listings.
    seq: u64,
    status: Status,
    /// Set once captured.
    charge: Option<Charge>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Charge {
    charge_id: String,
    from_wallet: String,
    to_wallet: String,
    amount: Amount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Captured,
    Refunded,
    Voided,
}

/// An amount as the contract carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub minor_units: u64,
    pub currency: String,
}

/// Faults and rules the tests set through `PUT /_control`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Wait this long before answering a charge or refund.
    pub latency_ms: u64,
    /// Probability (0 to 1) that a charge or refund is answered 503 before anything is done.
    pub error_rate: f64,
    /// Decline (402) every new charge of more than this many minor units.
    pub decline_over_minor_units: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            decline_over_minor_units: None,
        }
    }
}

/// What the processor has done since it started (or was reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every request under `/charges`.
    pub requests: u64,
    pub charge_requests: u64,
    pub refund_requests: u64,
    /// Charges captured (replays not counted).
    pub captured: u64,
    /// Captured charges refunded.
    pub refunded: u64,
    /// Payment ids voided by a refund before any charge.
    pub voided: u64,
    /// Charges declined (402 for the amount, 409 for a voided payment id).
    pub declined: u64,
    /// 503s from `error_rate`.
    pub injected_errors: u64,
    /// 503s from an outage.
    pub outage_rejections: u64,
}

impl FakeProcessor {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, ProcessorState> {
        // No code path panics while holding the lock with the state half-changed.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The counters now (for tests in-process).
    pub fn counters(&self) -> Counters {
        self.state().counters.clone()
    }
}

/// The processor's HTTP API and control API.
pub fn router(processor: FakeProcessor) -> Router {
    Router::new()
        .route("/charges", post(charge).get(list_charges))
        .route("/charges/{payment_id}", get(get_charge))
        .route("/charges/{payment_id}/refund", post(refund))
        .route("/_control", get(get_control).put(put_control))
        .route("/_control/outage", post(start_outage))
        .route("/_control/reset", post(reset))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .with_state(processor)
}

/// An error answer: `{"error":{"code","message"}}` with its status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn unavailable(message: &str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

/// A payment id as the processor accepts it: 1 to 128 characters, letters, digits, `_`, `-`.
fn check_payment_id(id: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.len() <= 128 && id.chars().all(allowed) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "a payment id must be 1 to 128 letters, digits, '_' or '-'",
        ))
    }
}

/// Latency, outage and random errors, in that order, before a charge or refund is looked at.
async fn inject_faults(processor: &FakeProcessor) -> Result<(), ApiError> {
    let latency = Duration::from_millis(processor.state().settings.latency_ms);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = processor.state();
    if state
        .outage_until
        .is_some_and(|until| Instant::now() < until)
    {
        state.counters.outage_rejections += 1;
        return Err(ApiError::unavailable("processor outage (injected)"));
    }
    let rate = state.settings.error_rate;
    if rate > 0.0 && fastrand::f64() < rate {
        state.counters.injected_errors += 1;
        return Err(ApiError::unavailable("processor error (injected)"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    payment_id: String,
    from_wallet: String,
    to_wallet: String,
    amount: Amount,
}

impl ChargeRequest {
    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        check_payment_id(&self.payment_id)?;
        if self.from_wallet.is_empty() || self.to_wallet.is_empty() {
            return Err(ApiError::invalid(
                "from_wallet and to_wallet must not be empty",
            ));
        }
        if self.amount.minor_units == 0 {
            return Err(ApiError::invalid(
                "amount.minor_units must be greater than zero",
            ));
        }
        let currency = &self.amount.currency;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ApiError::invalid(
                "amount.currency must be a three-letter ISO 4217 code",
            ));
        }
        match headers.get("idempotency-key").map(|v| v.to_str()) {
            Some(Ok(key)) if key == self.payment_id => Ok(()),
            Some(_) => Err(ApiError::invalid(
                "the Idempotency-Key header must be the payment_id",
            )),
            None => Err(ApiError::invalid("the Idempotency-Key header is required")),
        }
    }
}

fn charge_view(payment_id: &str, entry: &Entry) -> serde_json::Value {
    let mut view = json!({"payment_id": payment_id, "status": entry.status});
    if let Some(charge) = &entry.charge {
        view["charge_id"] = json!(charge.charge_id);
        view["amount"] = json!(charge.amount);
    }
    view
}

impl ProcessorState {
    /// Charges once per payment id: 201 when captured now, 200 with the charge as it stands
    /// on a replay, or the refusal.
    fn charge(
        &mut self,
        request: ChargeRequest,
    ) -> Result<(StatusCode, serde_json::Value), ApiError> {
        let ChargeRequest {
            payment_id,
            from_wallet,
            to_wallet,
            amount,
        } = request;
        if let Some(entry) = self.ledger.get(&payment_id) {
            return match &entry.charge {
                None => {
                    self.counters.declined += 1;
                    Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "voided",
                        "the payment id was voided by a refund before any charge",
                    ))
                }
                Some(charge)
                    if (&charge.from_wallet, &charge.to_wallet, &charge.amount)
                        == (&from_wallet, &to_wallet, &amount) =>
                {
                    Ok((StatusCode::OK, charge_view(&payment_id, entry)))
                }
                Some(_) => Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_conflict",
                    "the payment id was charged before with other terms",
                )),
            };
        }
        if let Some(limit) = self.settings.decline_over_minor_units
            && amount.minor_units > limit
        {
            self.counters.declined += 1;
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "declined",
                format!("amount over the limit of {limit} minor units"),
            ));
        }
        let entry = Entry {
            seq: self.ledger.len() as u64,
            status: Status::Captured,
            charge: Some(Charge {
                charge_id: format!("ch_{}", uuid::Uuid::now_v7().simple()),
                from_wallet,
                to_wallet,
                amount,
            }),
        };
        let view = charge_view(&payment_id, &entry);
        self.ledger.insert(payment_id, entry);
        self.counters.captured += 1;
        Ok((StatusCode::CREATED, view))
    }

    /// Refunds a captured charge, or voids a payment id never charged; idempotent.
    fn refund(&mut self, payment_id: &str) -> Status {
        let seq = self.ledger.len() as u64;
        let entry = self.ledger.entry(payment_id.to_owned()).or_insert_with(|| {
            self.counters.voided += 1;
            Entry {
                seq,
                status: Status::Voided,
                charge: None,
            }
        });
        if entry.status == Status::Captured {
            entry.status = Status::Refunded;
            self.counters.refunded += 1;
        }
        entry.status
    }
}

async fn charge(
    State(processor): State<FakeProcessor>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    {
        let mut state = processor.state();
        state.counters.requests += 1;
        state.counters.charge_requests += 1;
    }
    inject_faults(&processor).await?;
    let request: ChargeRequest = parse_json(&body)?;
    request.check(&headers)?;
    let payment_id = request.payment_id.clone();
    let outcome = processor.state().charge(request);
    let status = outcome
        .as_ref()
        .map_or_else(|e| e.status, |(status, _)| *status);
    tracing::info!(%payment_id, status = status.as_u16(), "charge");
    outcome.map(|(status, view)| (status, axum::Json(view)).into_response())
}

async fn refund(
    State(processor): State<FakeProcessor>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    {
        let mut state = processor.state();
        state.counters.requests += 1;
        state.counters.refund_requests += 1;
    }
    inject_faults(&processor).await?;
    check_payment_id(&payment_id)?;
    let status = processor.state().refund(&payment_id);
    tracing::info!(%payment_id, status = 200, outcome = ?status, "refund");
    Ok(axum::Json(json!({"payment_id": payment_id, "status": status})).into_response())
}

async fn get_charge(
    State(processor): State<FakeProcessor>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    let mut state = processor.state();
    state.counters.requests += 1;
    match state.ledger.get(&payment_id) {
        Some(entry) => Ok(axum::Json(charge_view(&payment_id, entry)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no charge for this payment id",
        )),
    }
}

async fn list_charges(State(processor): State<FakeProcessor>) -> Response {
    let mut state = processor.state();
    state.counters.requests += 1;
    let mut entries: Vec<_> = state.ledger.iter().collect();
    entries.sort_by_key(|(_, entry)| entry.seq);
    let charges: Vec<_> = entries
        .into_iter()
        .map(|(id, entry)| charge_view(id, entry))
        .collect();
    axum::Json(json!({ "charges": charges })).into_response()
}

fn control_view(state: &ProcessorState) -> Response {
    let remaining = state
        .outage_until
        .map(|until| until.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    axum::Json(json!({
        "settings": state.settings,
        "outage": {"active": !remaining.is_zero(), "remaining_ms": remaining.as_millis() as u64},
        "counters": state.counters,
    }))
    .into_response()
}

async fn get_control(State(processor): State<FakeProcessor>) -> Response {
    control_view(&processor.state())
}

async fn put_control(
    State(processor): State<FakeProcessor>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let settings: Settings = parse_json(&body)?;
    if !(0.0..=1.0).contains(&settings.error_rate) {
        return Err(ApiError::invalid("error_rate must be from 0.0 to 1.0"));
    }
    if settings.latency_ms > MAX_LATENCY_MS {
        return Err(ApiError::invalid(format!(
            "latency_ms must be at most {MAX_LATENCY_MS}"
        )));
    }
    tracing::info!(?settings, "settings changed");
    let mut state = processor.state();
    state.settings = settings;
    Ok(control_view(&state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Outage {
    seconds: f64,
}

async fn start_outage(
    State(processor): State<FakeProcessor>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let outage: Outage = parse_json(&body)?;
    if !(0.0..=MAX_OUTAGE_SECONDS).contains(&outage.seconds) {
        return Err(ApiError::invalid(format!(
            "seconds must be from 0 to {MAX_OUTAGE_SECONDS}"
        )));
    }
    tracing::info!(seconds = outage.seconds, "outage");
    let mut state = processor.state();
    state.outage_until = Some(Instant::now() + Duration::from_secs_f64(outage.seconds));
    Ok(control_view(&state))
}

async fn reset(State(processor): State<FakeProcessor>) -> Response {
    tracing::info!("reset");
    let mut state = processor.state();
    *state = ProcessorState::default();
    control_view(&state)
}

#[cfg(test)]
mod tests;
