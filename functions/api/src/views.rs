//! The JSON the API answers with.

use axum::Json;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use paysaga_domain::payment::{Flow, FlowKind};
use paysaga_domain::{
    FailureReason, Money, Payment, PaymentId, PaymentStatus, Priority, Wallet, WalletId,
};
use serde::Serialize;

#[derive(Serialize)]
pub struct WalletView {
    wallet_id: WalletId,
    currency: String,
    available: Money,
    reserved: Money,
    created_at: DateTime<Utc>,
}

impl From<&Wallet> for WalletView {
    fn from(wallet: &Wallet) -> Self {
        Self {
            wallet_id: wallet.id().clone(),
            currency: wallet.currency().code().to_owned(),
            available: wallet.available(),
            reserved: wallet.reserved(),
            created_at: wallet.created_at(),
        }
    }
}

#[derive(Serialize)]
pub struct PaymentView {
    payment_id: PaymentId,
    status: PaymentStatus,
    /// `transfer`, `top_up` or `payout`.
    kind: FlowKind,
    /// The payment's parties, as its request names them.
    #[serde(flatten)]
    flow: Flow,
    amount: Money,
    priority: Priority,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<FailureView>,
    /// The version of the payment's log: how many steps are recorded.
    version: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A failure reason with its machine-readable fields and a sentence for people.
#[derive(Serialize)]
struct FailureView {
    #[serde(flatten)]
    reason: FailureReason,
    message: String,
}

impl From<&Payment> for PaymentView {
    fn from(payment: &Payment) -> Self {
        let request = &payment.request;
        Self {
            payment_id: request.payment_id().clone(),
            status: payment.status,
            kind: request.kind(),
            flow: request.flow().clone(),
            amount: request.amount(),
            priority: request.priority(),
            failure: payment.failure.as_ref().map(|reason| FailureView {
                reason: reason.clone(),
                message: reason.to_string(),
            }),
            version: payment.version,
            created_at: payment.created_at,
            updated_at: payment.updated_at,
        }
    }
}

macro_rules! json_response {
    ($($view:ty),*) => {$(
        impl IntoResponse for $view {
            fn into_response(self) -> Response {
                Json(self).into_response()
            }
        }
    )*};
}
json_response!(WalletView, PaymentView);
