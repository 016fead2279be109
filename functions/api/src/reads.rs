//! The read side (CQRS): a wallet's transaction history and its payments, read from the read
//! models the `read-models` function projects from the events. Newest first, a page at a time:
//! `?limit=` (1 to 100, 20 by default) and `?cursor=` (the `next` of the previous page; `null`
//! on the last page). The read models trail the ledger by the time an event takes to be
//! projected; a wallet with no events has an empty list. Only the wallet's owner reads them.

use paysaga_domain::payment::{Flow, FlowKind};
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use paysaga_domain::{FailureReason, Money, PaymentId, PaymentStatus, WalletId};
use paysaga_services::read_models::{
    Cursor, PageRequest, PaymentRole, SignedAmount, TransactionEntry, TransactionKind,
    WalletPayment,
};
use serde::Serialize;

use crate::{ApiError, Caller};
use paysaga_http::request::parse_id;
use paysaga_services::self_service::SelfService;

/// `GET /wallets/{wallet_id}/transactions` and `GET /payments?wallet=…`.
pub(crate) fn router() -> Router<Arc<SelfService>> {
    Router::new()
        .route("/wallets/{wallet_id}/transactions", get(transactions))
        .route("/payments", get(payments))
}

type QueryParameters = Result<Query<HashMap<String, String>>, QueryRejection>;

async fn transactions(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    Path(wallet_id): Path<String>,
    query: QueryParameters,
) -> Result<Response, ApiError> {
    let wallet_id: WalletId = parse_id(&wallet_id, WalletId::parse)?;
    let page_request = page_request(&parameters(query)?)?;
    let page = service
        .transactions(caller.owner(), &wallet_id, &page_request)
        .await?;
    Ok(Json(TransactionsView {
        transactions: page
            .items
            .into_iter()
            .map(|item| TransactionView::from(item.entry))
            .collect(),
        next: page.next.as_ref().map(Cursor::encode),
        wallet_id,
    })
    .into_response())
}

async fn payments(
    State(service): State<Arc<SelfService>>,
    caller: Caller,
    query: QueryParameters,
) -> Result<Response, ApiError> {
    let parameters = parameters(query)?;
    let wallet = parameters.get("wallet").ok_or_else(|| {
        ApiError::InvalidRequest("the query parameter wallet (a wallet id) is required".into())
    })?;
    let wallet_id: WalletId = parse_id(wallet, WalletId::parse)?;
    let page_request = page_request(&parameters)?;
    let page = service
        .payments_of(caller.owner(), &wallet_id, &page_request)
        .await?;
    Ok(Json(PaymentsView {
        payments: page
            .items
            .into_iter()
            .map(|item| WalletPaymentView::from(item.entry))
            .collect(),
        next: page.next.as_ref().map(Cursor::encode),
        wallet_id,
    })
    .into_response())
}

fn parameters(query: QueryParameters) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(parameters)| parameters)
        .map_err(|rejection| ApiError::InvalidRequest(rejection.body_text()))
}

/// `?limit=` and `?cursor=`, or a 400 saying what is wrong with them.
fn page_request(parameters: &HashMap<String, String>) -> Result<PageRequest, ApiError> {
    let limit = match parameters.get("limit") {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            ApiError::InvalidRequest(format!(
                "limit must be a whole number from 1 to {}",
                PageRequest::MAX_LIMIT
            ))
        })?),
    };
    let after = parameters
        .get("cursor")
        .map(|text| Cursor::decode(text))
        .transpose()
        .map_err(|error| ApiError::InvalidRequest(error.to_string()))?;
    PageRequest::new(limit, after).map_err(|error| ApiError::InvalidRequest(error.to_string()))
}

#[derive(Serialize)]
struct TransactionsView {
    wallet_id: WalletId,
    transactions: Vec<TransactionView>,
    /// Pass it back as `?cursor=` for the next page; `null` on the last.
    next: Option<String>,
}

#[derive(Serialize)]
struct TransactionView {
    kind: TransactionKind,
    transaction_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    counterparty: Option<WalletId>,
    /// Negative when money left the wallet.
    amount: SignedAmount,
    status: PaymentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<FailureView>,
    at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<TransactionEntry> for TransactionView {
    fn from(entry: TransactionEntry) -> Self {
        Self {
            kind: entry.kind,
            transaction_id: entry.transaction_id,
            counterparty: entry.counterparty,
            amount: entry.amount,
            status: entry.status,
            failure: entry.failure.map(FailureView::from),
            at: entry.at,
            updated_at: entry.updated_at,
        }
    }
}

#[derive(Serialize)]
struct PaymentsView {
    wallet_id: WalletId,
    payments: Vec<WalletPaymentView>,
    /// Pass it back as `?cursor=` for the next page; `null` on the last.
    next: Option<String>,
}

#[derive(Serialize)]
struct WalletPaymentView {
    payment_id: PaymentId,
    /// The wallet's side of the payment: `payer` (debited) or `payee` (credited).
    role: PaymentRole,
    /// `transfer`, `top_up` or `payout`.
    kind: FlowKind,
    /// The payment's parties, as its request names them.
    #[serde(flatten)]
    flow: Flow,
    amount: Money,
    status: PaymentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<FailureView>,
    requested_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<WalletPayment> for WalletPaymentView {
    fn from(payment: WalletPayment) -> Self {
        Self {
            payment_id: payment.payment_id,
            role: payment.role,
            kind: payment.flow.kind(),
            flow: payment.flow,
            amount: payment.amount,
            status: payment.status,
            failure: payment.failure.map(FailureView::from),
            requested_at: payment.requested_at,
            updated_at: payment.updated_at,
        }
    }
}

/// A failure reason with its machine-readable fields and a sentence for people (as
/// `GET /payments/{id}` shows it).
#[derive(Serialize)]
struct FailureView {
    #[serde(flatten)]
    reason: FailureReason,
    message: String,
}

impl From<FailureReason> for FailureView {
    fn from(reason: FailureReason) -> Self {
        Self {
            message: reason.to_string(),
            reason,
        }
    }
}
