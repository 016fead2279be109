//! The read side (CQRS): a wallet's transaction history and its payments, read from the read
//! models the `read-models` function projects from the events. Newest first, a page at a time:
//! `?limit=` (1 to 100, 20 by default) and `?cursor=` (the `next` of the previous page; `null`
//! on the last page). The read models trail the ledger by the time an event takes to be
//! projected; a wallet with no events has an empty list. Only the wallet's owner reads them.

use paysaga_domain::payment::{Flow, FlowKind};
use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use chrono::{DateTime, Utc};
use paysaga_domain::{Money, PaymentId, PaymentStatus, WalletId};
use paysaga_services::read_models::{
    Cursor, PageRequest, PaymentRole, SignedAmount, TransactionEntry, TransactionKind,
    WalletPayment,
};
use schemars::JsonSchema;
use serde::Serialize;

use crate::views::FailureView;
use crate::{ApiError, Caller, Service};
use paysaga_http::request::parse_id;

/// `GET /wallets/{wallet_id}/transactions` and `GET /payments?wallet=…`.
pub(crate) fn routes() -> [(&'static str, MethodRouter<Service>); 2] {
    [
        ("/wallets/{wallet_id}/transactions", get(transactions)),
        ("/payments", get(payments)),
    ]
}

type QueryParameters = Result<Query<HashMap<String, String>>, QueryRejection>;

async fn transactions(
    State(service): State<Service>,
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
    State(service): State<Service>,
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

/// A page of a wallet's transactions, newest first.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "TransactionPage")]
pub(crate) struct TransactionsView {
    wallet_id: WalletId,
    transactions: Vec<TransactionView>,
    /// Pass it back as `?cursor=` for the next page; `null` on the last.
    next: Option<String>,
}

/// One transaction of a wallet: a payment sent or received, a top-up, a payout, a deposit.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Transaction")]
struct TransactionView {
    #[schemars(with = "schema::TransactionKind")]
    kind: TransactionKind,
    /// The payment's id (`pay_…`), or the deposit's (`dep_…`).
    transaction_id: String,
    /// The other wallet of a transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    counterparty: Option<WalletId>,
    /// Negative when money left the wallet.
    #[schemars(with = "schema::SignedAmount")]
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

/// A page of a wallet's payments, newest first.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "WalletPaymentPage")]
pub(crate) struct PaymentsView {
    wallet_id: WalletId,
    payments: Vec<WalletPaymentView>,
    /// Pass it back as `?cursor=` for the next page; `null` on the last.
    next: Option<String>,
}

/// One payment in a wallet's list, from the wallet's side.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "WalletPayment")]
struct WalletPaymentView {
    payment_id: PaymentId,
    /// The wallet's side of the payment: `payer` (debited) or `payee` (credited).
    #[schemars(with = "schema::PaymentRole")]
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

/// The schemas of the read models' types that `paysaga_domain` defines without one: their
/// wire form as serde writes it (a test reads every value back into the domain's types).
mod schema {
    use paysaga_domain::Currency;
    use schemars::JsonSchema;

    /// What a wallet's transaction is.
    #[derive(JsonSchema)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)] // a schema only
    pub(super) enum TransactionKind {
        /// An operator's deposit.
        Deposit,
        PaymentSent,
        PaymentReceived,
        /// Money in from the holder's funding instrument.
        TopUp,
        /// Money out to the holder's destination.
        Payout,
    }

    /// A wallet's side of a payment.
    #[derive(JsonSchema)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)] // a schema only
    pub(super) enum PaymentRole {
        /// The payment debits the wallet (a transfer's payer, a payout's wallet).
        Payer,
        /// The payment credits the wallet (a transfer's payee, a top-up's wallet).
        Payee,
    }

    /// An amount with a sign: negative when money leaves the wallet. Integer minor units
    /// and a currency, as `Money`.
    #[derive(JsonSchema)]
    #[allow(dead_code)] // a schema only
    pub(super) struct SignedAmount {
        #[schemars(range(min = -1_000_000_000_000_000_i64, max = 1_000_000_000_000_000_i64))]
        minor_units: i64,
        currency: Currency,
    }

    #[cfg(test)]
    mod tests {
        use paysaga_services::read_models::{PaymentRole, SignedAmount, TransactionKind};
        use serde::de::DeserializeOwned;
        use serde_json::{Value, json};

        /// Every value the schema `T` enumerates.
        fn enumerated<T: super::JsonSchema>() -> Vec<Value> {
            let schema = schemars::schema_for!(T);
            let values: Vec<Value> = schema
                .get("oneOf")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .chain(
                    schema
                        .get("enum")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                )
                .flat_map(|value| match value.get("enum").or(value.get("const")) {
                    Some(Value::Array(values)) => values.clone(),
                    Some(one) => vec![one.clone()],
                    None if value.is_string() => vec![value.clone()],
                    None => Vec::new(),
                })
                .collect();
            assert!(!values.is_empty(), "no values in {schema:?}");
            values
        }

        fn reads_back<D: DeserializeOwned>(values: &[Value]) {
            for value in values {
                assert!(
                    serde_json::from_value::<D>(value.clone()).is_ok(),
                    "{value} is in the schema, and not a value of the domain's type"
                );
            }
        }

        #[test]
        fn every_kind_and_role_in_the_schemas_reads_back() {
            let kinds = enumerated::<super::TransactionKind>();
            assert_eq!(kinds.len(), 5, "{kinds:?}");
            reads_back::<TransactionKind>(&kinds);
            let roles = enumerated::<super::PaymentRole>();
            assert_eq!(roles.len(), 2, "{roles:?}");
            reads_back::<PaymentRole>(&roles);
            reads_back::<SignedAmount>(&[json!({"minor_units": -250, "currency": "EUR"})]);
        }
    }
}
