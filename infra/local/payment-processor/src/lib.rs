//! A fake external payment processor: the HTTP contract paysaga's `HttpPaymentProcessor`
//! speaks, over an in-memory ledger keyed by payment id, plus control endpoints with which
//! tests inject latency, errors, declines and outages.
//!
//! Two kinds of calls do a payment's part: a **charge** (`/charges`) takes money from a wallet's
//! payer (a transfer, `from_wallet`) or from a funding instrument (a top-up,
//! `funding_instrument`); a **payout** (`/payouts`) pays money out of a wallet to a destination.
//! A payment id belongs to the kind of call that first named it (a charge or a refund; a payout
//! or a cancel): the other kind refuses it with 422 `flow_conflict`.
//!
//! The processor API:
//!
//! | request | answer |
//! |---|---|
//! | `POST /charges`, `Idempotency-Key: <payment_id>`, `{"payment_id","from_wallet","to_wallet","amount":{"minor_units","currency"}}` (a transfer) or `{"payment_id","funding_instrument","to_wallet","amount"}` (a top-up) | 201 `{"charge_id":"ch_…","payment_id","status":"captured","amount"}` (and `"funding_instrument"` for a top-up); 200 with the same charge on a replay (its status may since be `refunded`); 402 `declined` (amount over `decline_over_minor_units`, or a test instrument `fi_declined_…`); 409 `voided` (refunded before any charge); 422 `idempotency_conflict` (same payment id, other terms, a transfer's and a top-up's included); 422 `flow_conflict` (the payment id is a payout's); 400 `invalid_request` (exactly one of `from_wallet`, `funding_instrument`; no other fields) |
//! | `POST /charges/{payment_id}/refund` | 200 `{"payment_id","status":"refunded"\|"voided"}`; idempotent; an unknown payment id is voided, so a later charge of it gets 409; 422 `flow_conflict` (a payout's payment id: cancel it instead) |
//! | `GET /charges/{payment_id}` | 200 `{"payment_id","charge_id"?,"status","amount"?,"funding_instrument"?}`; 404 `not_found` (a payout's payment id too) |
//! | `GET /charges` | 200 `{"charges":[...]}`, every payment id of a charge or a refund in the order first seen |
//! | `POST /payouts`, `Idempotency-Key: <payment_id>`, `{"payment_id","from_wallet","destination","amount"}` | 201 `{"payout_id":"po_…","payment_id","status":"paid","amount","from_wallet","destination"}`; 200 with the same payout on a replay (its status may since be `cancelled`); 402 `declined` (the destination refuses: amount over `decline_payouts_over_minor_units`, or a test destination `dst_refusing_…`); 409 `voided` (cancelled before any payout); 422 `idempotency_conflict` (same payment id, other terms); 422 `flow_conflict` (the payment id is a charge's); 400 `invalid_request` |
//! | `POST /payouts/{payment_id}/cancel` | 200 `{"payment_id","status":"cancelled"\|"voided"}`; idempotent; an unknown payment id is voided, so a later payout of it gets 409; 422 `flow_conflict` (a charge's payment id: refund it instead) |
//! | `GET /payouts/{payment_id}` | 200 `{"payment_id","payout_id"?,"status","amount"?,"from_wallet"?,"destination"?}`; 404 `not_found` (a charge's payment id too) |
//! | `GET /payouts` | 200 `{"payouts":[...]}`, every payment id of a payout or a cancel in the order first seen |
//!
//! Errors are `{"error":{"code","message"}}`. Injected faults (latency, `error_rate`, outages:
//! 503 `unavailable`) hit the four calls paysaga makes, `POST /charges`,
//! `POST /charges/{payment_id}/refund`, `POST /payouts` and `POST /payouts/{payment_id}/cancel`;
//! the reads stay answerable so tests can check the ledger at any time.
//!
//! Test conventions, as a real processor's test mode has test cards: a funding instrument whose
//! id starts with `fi_declined_` is always declined, a destination whose id starts with
//! `dst_refusing_` always refuses a payout (402 `declined` both), whatever the settings.
//!
//! The control API (for tests): `GET /_control` (settings, outage, counters),
//! `PUT /_control`
//! `{"latency_ms":0,"error_rate":0.0,"decline_over_minor_units":null,"decline_payouts_over_minor_units":null,"refuse_reversals":false}`
//! (a field left out takes that default), `POST /_control/outage` `{"seconds":N}` (every
//! charge, refund, payout and cancel answers 503 for N seconds from now; 0 ends an outage),
//! `POST /_control/reset` (empty ledger, default settings, counters at zero).

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The longest latency and outage the control API accepts.
const MAX_LATENCY_MS: u64 = 60_000;
const MAX_OUTAGE_SECONDS: f64 = 3_600.0;

/// A funding instrument whose id starts so is always declined (a test instrument).
pub const DECLINED_INSTRUMENT_PREFIX: &str = "fi_declined_";
/// A destination whose id starts so always refuses a payout (a test destination).
pub const REFUSING_DESTINATION_PREFIX: &str = "dst_refusing_";

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
    record: Record,
}

/// A payment id is a charge's or a payout's, for good: whichever kind of call named it first.
#[derive(Debug, Clone)]
enum Record {
    Charge(ChargeRecord),
    Payout(PayoutRecord),
}

#[derive(Debug, Clone)]
enum ChargeRecord {
    /// Refunded before any charge: a charge arriving later is refused.
    Voided,
    Captured(Charge),
    Refunded(Charge),
}

#[derive(Debug, Clone)]
enum PayoutRecord {
    /// Cancelled before any payout: a payout arriving later is refused.
    Voided,
    Paid(Payout),
    Cancelled(Payout),
}

impl ChargeRecord {
    fn status(&self) -> &'static str {
        match self {
            Self::Voided => "voided",
            Self::Captured(_) => "captured",
            Self::Refunded(_) => "refunded",
        }
    }

    fn charge(&self) -> Option<&Charge> {
        match self {
            Self::Voided => None,
            Self::Captured(charge) | Self::Refunded(charge) => Some(charge),
        }
    }

    fn view(&self, payment_id: &str) -> Value {
        let mut view = json!({"payment_id": payment_id, "status": self.status()});
        if let Some(charge) = self.charge() {
            view["charge_id"] = json!(charge.charge_id);
            view["amount"] = json!(charge.terms.amount);
            if let Payer::FundingInstrument(instrument) = &charge.terms.payer {
                view["funding_instrument"] = json!(instrument);
            }
        }
        view
    }
}

impl PayoutRecord {
    fn status(&self) -> &'static str {
        match self {
            Self::Voided => "voided",
            Self::Paid(_) => "paid",
            Self::Cancelled(_) => "cancelled",
        }
    }

    fn payout(&self) -> Option<&Payout> {
        match self {
            Self::Voided => None,
            Self::Paid(payout) | Self::Cancelled(payout) => Some(payout),
        }
    }

    fn view(&self, payment_id: &str) -> Value {
        let mut view = json!({"payment_id": payment_id, "status": self.status()});
        if let Some(payout) = self.payout() {
            view["payout_id"] = json!(payout.payout_id);
            view["amount"] = json!(payout.terms.amount);
            view["from_wallet"] = json!(payout.terms.from_wallet);
            view["destination"] = json!(payout.terms.destination);
        }
        view
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Charge {
    charge_id: String,
    terms: ChargeTerms,
}

/// What a charge is for; a replay must ask for all of it again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChargeTerms {
    payer: Payer,
    to_wallet: String,
    amount: Amount,
}

/// Who a charge takes the money from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Payer {
    /// A transfer's payer.
    Wallet(String),
    /// A top-up's funding instrument.
    FundingInstrument(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Payout {
    payout_id: String,
    terms: PayoutTerms,
}

/// What a payout is for; a replay must ask for all of it again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PayoutTerms {
    from_wallet: String,
    destination: String,
    amount: Amount,
}

/// An amount as the contract carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub minor_units: u64,
    pub currency: String,
}

impl Amount {
    fn check(&self) -> Result<(), ApiError> {
        if self.minor_units == 0 {
            return Err(ApiError::invalid(
                "amount.minor_units must be greater than zero",
            ));
        }
        let currency = &self.currency;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ApiError::invalid(
                "amount.currency must be a three-letter ISO 4217 code",
            ));
        }
        Ok(())
    }
}

/// Faults and rules the tests set through `PUT /_control`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Wait this long before answering a charge, refund, payout or cancel.
    pub latency_ms: u64,
    /// Probability (0 to 1) that a charge, refund, payout or cancel is answered 503 before
    /// anything is done.
    pub error_rate: f64,
    /// Decline (402) every new charge (a transfer's or a top-up's) of more than this many
    /// minor units.
    pub decline_over_minor_units: Option<u64>,
    /// Decline (402) every new payout of more than this many minor units: a destination that
    /// refuses.
    pub decline_payouts_over_minor_units: Option<u64>,
    /// Refuse (403 `forbidden`) every refund and cancel, doing nothing: a key that lost the right
    /// to undo payments.
    pub refuse_reversals: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            decline_over_minor_units: None,
            decline_payouts_over_minor_units: None,
            refuse_reversals: false,
        }
    }
}

/// What the processor has done since it started (or was reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every request under `/charges` (payouts have their own counters).
    pub requests: u64,
    pub charge_requests: u64,
    pub refund_requests: u64,
    /// `POST /payouts` requests.
    pub payout_requests: u64,
    /// `POST /payouts/{payment_id}/cancel` requests.
    pub cancel_requests: u64,
    /// Charges captured (replays not counted).
    pub captured: u64,
    /// Captured charges refunded.
    pub refunded: u64,
    /// Payouts paid (replays not counted).
    pub paid_out: u64,
    /// Paid payouts cancelled.
    pub cancelled: u64,
    /// Payment ids voided before anything was done: by a refund before any charge, or by a
    /// cancel before any payout.
    pub voided: u64,
    /// Charges declined (402 for the amount or the instrument, 409 for a voided payment id).
    pub declined: u64,
    /// Payouts declined (402 for the amount or the destination, 409 for a voided payment id).
    pub payouts_declined: u64,
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

    /// Sets `refuse_reversals` (for tests in-process), as `PUT /_control` would.
    pub fn set_refusing_reversals(&self, refusing: bool) {
        self.state().settings.refuse_reversals = refusing;
    }

    fn count(&self, counted: impl FnOnce(&mut Counters)) {
        counted(&mut self.state().counters);
    }
}

/// The processor's HTTP API and control API.
pub fn router(processor: FakeProcessor) -> Router {
    Router::new()
        .route("/charges", post(charge).get(list_charges))
        .route("/charges/{payment_id}", get(get_charge))
        .route("/charges/{payment_id}/refund", post(refund))
        .route("/payouts", post(payout).get(list_payouts))
        .route("/payouts/{payment_id}", get(get_payout))
        .route("/payouts/{payment_id}/cancel", post(cancel))
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

    fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn declined(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYMENT_REQUIRED, "declined", message)
    }

    fn voided(message: &str) -> Self {
        Self::new(StatusCode::CONFLICT, "voided", message)
    }

    fn idempotency_conflict(message: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_conflict",
            message,
        )
    }

    /// The payment id belongs to the other kind of call (a charge's asked to pay out, or the
    /// other way round): same payment id, other terms, so a 422 like an idempotency conflict,
    /// with its own code because no replay of either kind can succeed.
    fn flow_conflict(message: &str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "flow_conflict", message)
    }

    fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
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

/// The `Idempotency-Key` header, which must be the payment id.
fn check_idempotency_key(headers: &HeaderMap, payment_id: &str) -> Result<(), ApiError> {
    match headers.get("idempotency-key").map(|v| v.to_str()) {
        Some(Ok(key)) if key == payment_id => Ok(()),
        Some(_) => Err(ApiError::invalid(
            "the Idempotency-Key header must be the payment_id",
        )),
        None => Err(ApiError::invalid("the Idempotency-Key header is required")),
    }
}

/// Latency, outage and random errors, in that order, before a call is looked at.
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

/// 403 to a refund or a cancel while the settings say `refuse_reversals`.
fn refuse_reversal(processor: &FakeProcessor) -> Result<(), ApiError> {
    if processor.state().settings.refuse_reversals {
        return Err(ApiError::forbidden(
            "this key may not refund or cancel (injected)",
        ));
    }
    Ok(())
}

/// `POST /charges` as sent: a transfer names `from_wallet`, a top-up `funding_instrument`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeRequest {
    payment_id: String,
    from_wallet: Option<String>,
    funding_instrument: Option<String>,
    to_wallet: String,
    amount: Amount,
}

impl ChargeRequest {
    /// The payment id and the charge's terms, or why the request is invalid.
    fn parse(self, headers: &HeaderMap) -> Result<(String, ChargeTerms), ApiError> {
        check_payment_id(&self.payment_id)?;
        let payer = match (self.from_wallet, self.funding_instrument) {
            (Some(wallet), None) if !wallet.is_empty() => Payer::Wallet(wallet),
            (None, Some(instrument)) if !instrument.is_empty() => {
                Payer::FundingInstrument(instrument)
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "a charge names from_wallet (a transfer) or funding_instrument (a top-up), \
                     not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "a charge needs from_wallet (a transfer) or funding_instrument (a top-up)",
                ));
            }
            _ => {
                return Err(ApiError::invalid(
                    "from_wallet and funding_instrument must not be empty",
                ));
            }
        };
        if self.to_wallet.is_empty() {
            return Err(ApiError::invalid("to_wallet must not be empty"));
        }
        self.amount.check()?;
        check_idempotency_key(headers, &self.payment_id)?;
        let terms = ChargeTerms {
            payer,
            to_wallet: self.to_wallet,
            amount: self.amount,
        };
        Ok((self.payment_id, terms))
    }
}

/// `POST /payouts` as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayoutRequest {
    payment_id: String,
    from_wallet: String,
    destination: String,
    amount: Amount,
}

impl PayoutRequest {
    /// The payment id and the payout's terms, or why the request is invalid.
    fn parse(self, headers: &HeaderMap) -> Result<(String, PayoutTerms), ApiError> {
        check_payment_id(&self.payment_id)?;
        if self.from_wallet.is_empty() || self.destination.is_empty() {
            return Err(ApiError::invalid(
                "from_wallet and destination must not be empty",
            ));
        }
        self.amount.check()?;
        check_idempotency_key(headers, &self.payment_id)?;
        let terms = PayoutTerms {
            from_wallet: self.from_wallet,
            destination: self.destination,
            amount: self.amount,
        };
        Ok((self.payment_id, terms))
    }
}

impl ProcessorState {
    fn next_seq(&self) -> u64 {
        self.ledger.len() as u64
    }

    /// Charges once per payment id: 201 when captured now, 200 with the charge as it stands
    /// on a replay, or the refusal.
    fn charge(
        &mut self,
        payment_id: String,
        terms: ChargeTerms,
    ) -> Result<(StatusCode, Value), ApiError> {
        if let Some(entry) = self.ledger.get(&payment_id) {
            let record = match &entry.record {
                Record::Charge(record) => record,
                Record::Payout(_) => {
                    return Err(ApiError::flow_conflict(
                        "the payment id is a payout's; it cannot be charged",
                    ));
                }
            };
            return match record.charge() {
                None => {
                    self.counters.declined += 1;
                    Err(ApiError::voided(
                        "the payment id was voided by a refund before any charge",
                    ))
                }
                Some(charge) if charge.terms == terms => {
                    Ok((StatusCode::OK, record.view(&payment_id)))
                }
                Some(_) => Err(ApiError::idempotency_conflict(
                    "the payment id was charged before with other terms",
                )),
            };
        }
        if let Some(refusal) = self.charge_refusal(&terms) {
            self.counters.declined += 1;
            return Err(refusal);
        }
        let record = ChargeRecord::Captured(Charge {
            charge_id: format!("ch_{}", uuid::Uuid::now_v7().simple()),
            terms,
        });
        let view = record.view(&payment_id);
        let seq = self.next_seq();
        self.ledger.insert(
            payment_id,
            Entry {
                seq,
                record: Record::Charge(record),
            },
        );
        self.counters.captured += 1;
        Ok((StatusCode::CREATED, view))
    }

    /// Why a new charge is declined, if it is.
    fn charge_refusal(&self, terms: &ChargeTerms) -> Option<ApiError> {
        if let Payer::FundingInstrument(instrument) = &terms.payer
            && instrument.starts_with(DECLINED_INSTRUMENT_PREFIX)
        {
            return Some(ApiError::declined(format!(
                "the funding instrument is declined (a test instrument, {DECLINED_INSTRUMENT_PREFIX}…)"
            )));
        }
        let limit = self.settings.decline_over_minor_units?;
        (terms.amount.minor_units > limit)
            .then(|| ApiError::declined(format!("amount over the limit of {limit} minor units")))
    }

    /// Pays out once per payment id: 201 when paid now, 200 with the payout as it stands on a
    /// replay, or the refusal.
    fn payout(
        &mut self,
        payment_id: String,
        terms: PayoutTerms,
    ) -> Result<(StatusCode, Value), ApiError> {
        if let Some(entry) = self.ledger.get(&payment_id) {
            let record = match &entry.record {
                Record::Payout(record) => record,
                Record::Charge(_) => {
                    return Err(ApiError::flow_conflict(
                        "the payment id is a charge's; it cannot be paid out",
                    ));
                }
            };
            return match record.payout() {
                None => {
                    self.counters.payouts_declined += 1;
                    Err(ApiError::voided(
                        "the payment id was voided by a cancel before any payout",
                    ))
                }
                Some(payout) if payout.terms == terms => {
                    Ok((StatusCode::OK, record.view(&payment_id)))
                }
                Some(_) => Err(ApiError::idempotency_conflict(
                    "the payment id was paid out before with other terms",
                )),
            };
        }
        if let Some(refusal) = self.payout_refusal(&terms) {
            self.counters.payouts_declined += 1;
            return Err(refusal);
        }
        let record = PayoutRecord::Paid(Payout {
            payout_id: format!("po_{}", uuid::Uuid::now_v7().simple()),
            terms,
        });
        let view = record.view(&payment_id);
        let seq = self.next_seq();
        self.ledger.insert(
            payment_id,
            Entry {
                seq,
                record: Record::Payout(record),
            },
        );
        self.counters.paid_out += 1;
        Ok((StatusCode::CREATED, view))
    }

    /// Why the destination refuses a new payout, if it does.
    fn payout_refusal(&self, terms: &PayoutTerms) -> Option<ApiError> {
        if terms.destination.starts_with(REFUSING_DESTINATION_PREFIX) {
            return Some(ApiError::declined(format!(
                "the destination refuses payouts (a test destination, {REFUSING_DESTINATION_PREFIX}…)"
            )));
        }
        let limit = self.settings.decline_payouts_over_minor_units?;
        (terms.amount.minor_units > limit).then(|| {
            ApiError::declined(format!(
                "the destination refuses payouts over {limit} minor units"
            ))
        })
    }

    /// Refunds a captured charge, or voids a payment id never seen; idempotent.
    fn refund(&mut self, payment_id: &str) -> Result<&'static str, ApiError> {
        let seq = self.next_seq();
        let entry = match self.ledger.entry(payment_id.to_owned()) {
            Slot::Occupied(slot) => slot.into_mut(),
            Slot::Vacant(slot) => {
                self.counters.voided += 1;
                slot.insert(Entry {
                    seq,
                    record: Record::Charge(ChargeRecord::Voided),
                })
            }
        };
        let Record::Charge(record) = &mut entry.record else {
            return Err(ApiError::flow_conflict(
                "the payment id is a payout's; cancel it instead",
            ));
        };
        if let ChargeRecord::Captured(charge) = record {
            *record = ChargeRecord::Refunded(charge.clone());
            self.counters.refunded += 1;
        }
        Ok(record.status())
    }

    /// Cancels a paid payout, or voids a payment id never seen; idempotent.
    fn cancel(&mut self, payment_id: &str) -> Result<&'static str, ApiError> {
        let seq = self.next_seq();
        let entry = match self.ledger.entry(payment_id.to_owned()) {
            Slot::Occupied(slot) => slot.into_mut(),
            Slot::Vacant(slot) => {
                self.counters.voided += 1;
                slot.insert(Entry {
                    seq,
                    record: Record::Payout(PayoutRecord::Voided),
                })
            }
        };
        let Record::Payout(record) = &mut entry.record else {
            return Err(ApiError::flow_conflict(
                "the payment id is a charge's; refund it instead",
            ));
        };
        if let PayoutRecord::Paid(payout) = record {
            *record = PayoutRecord::Cancelled(payout.clone());
            self.counters.cancelled += 1;
        }
        Ok(record.status())
    }

    /// Every entry `view` shows (the charges or the payouts), in the order first seen.
    fn listing(&self, view: impl Fn(&str, &Record) -> Option<Value>) -> Vec<Value> {
        let mut entries: Vec<_> = self.ledger.iter().collect();
        entries.sort_by_key(|(_, entry)| entry.seq);
        entries
            .into_iter()
            .filter_map(|(id, entry)| view(id, &entry.record))
            .collect()
    }
}

fn charge_view(payment_id: &str, record: &Record) -> Option<Value> {
    match record {
        Record::Charge(charge) => Some(charge.view(payment_id)),
        Record::Payout(_) => None,
    }
}

fn payout_view(payment_id: &str, record: &Record) -> Option<Value> {
    match record {
        Record::Payout(payout) => Some(payout.view(payment_id)),
        Record::Charge(_) => None,
    }
}

/// A call's answer: the status and the view, or the refusal; logged with the payment id.
fn answered(
    call: &'static str,
    payment_id: &str,
    outcome: Result<(StatusCode, Value), ApiError>,
) -> Result<Response, ApiError> {
    let status = outcome
        .as_ref()
        .map_or_else(|e| e.status, |(status, _)| *status);
    tracing::info!(%payment_id, status = status.as_u16(), call, "answered");
    outcome.map(|(status, view)| (status, axum::Json(view)).into_response())
}

async fn charge(
    State(processor): State<FakeProcessor>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    processor.count(|counters| {
        counters.requests += 1;
        counters.charge_requests += 1;
    });
    inject_faults(&processor).await?;
    let (payment_id, terms) = parse_json::<ChargeRequest>(&body)?.parse(&headers)?;
    let outcome = processor.state().charge(payment_id.clone(), terms);
    answered("charge", &payment_id, outcome)
}

async fn refund(
    State(processor): State<FakeProcessor>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    processor.count(|counters| {
        counters.requests += 1;
        counters.refund_requests += 1;
    });
    inject_faults(&processor).await?;
    check_payment_id(&payment_id)?;
    refuse_reversal(&processor)?;
    let outcome = processor.state().refund(&payment_id);
    let outcome = outcome.map(|status| {
        let view = json!({"payment_id": payment_id, "status": status});
        (StatusCode::OK, view)
    });
    answered("refund", &payment_id, outcome)
}

async fn payout(
    State(processor): State<FakeProcessor>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    processor.count(|counters| counters.payout_requests += 1);
    inject_faults(&processor).await?;
    let (payment_id, terms) = parse_json::<PayoutRequest>(&body)?.parse(&headers)?;
    let outcome = processor.state().payout(payment_id.clone(), terms);
    answered("payout", &payment_id, outcome)
}

async fn cancel(
    State(processor): State<FakeProcessor>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    processor.count(|counters| counters.cancel_requests += 1);
    inject_faults(&processor).await?;
    check_payment_id(&payment_id)?;
    refuse_reversal(&processor)?;
    let outcome = processor.state().cancel(&payment_id);
    let outcome = outcome.map(|status| {
        let view = json!({"payment_id": payment_id, "status": status});
        (StatusCode::OK, view)
    });
    answered("cancel", &payment_id, outcome)
}

async fn get_charge(
    State(processor): State<FakeProcessor>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    let mut state = processor.state();
    state.counters.requests += 1;
    state
        .ledger
        .get(&payment_id)
        .and_then(|entry| charge_view(&payment_id, &entry.record))
        .map(|view| axum::Json(view).into_response())
        .ok_or_else(|| ApiError::not_found("no charge for this payment id"))
}

async fn list_charges(State(processor): State<FakeProcessor>) -> Response {
    let mut state = processor.state();
    state.counters.requests += 1;
    let charges = state.listing(charge_view);
    axum::Json(json!({ "charges": charges })).into_response()
}

async fn get_payout(
    State(processor): State<FakeProcessor>,
    Path(payment_id): Path<String>,
) -> Result<Response, ApiError> {
    processor
        .state()
        .ledger
        .get(&payment_id)
        .and_then(|entry| payout_view(&payment_id, &entry.record))
        .map(|view| axum::Json(view).into_response())
        .ok_or_else(|| ApiError::not_found("no payout for this payment id"))
}

async fn list_payouts(State(processor): State<FakeProcessor>) -> Response {
    let payouts = processor.state().listing(payout_view);
    axum::Json(json!({ "payouts": payouts })).into_response()
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
