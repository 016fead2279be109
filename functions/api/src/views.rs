//! The JSON the API answers with.

use axum::Json;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use paysaga_domain::payment::{Flow, FlowKind};
use paysaga_domain::{
    Currency, FailureReason, Money, Payment, PaymentId, PaymentStatus, Priority, Wallet, WalletId,
};
use schemars::JsonSchema;
use serde::Serialize;

/// A wallet and its balances, as they are at the read.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Wallet")]
pub struct WalletView {
    wallet_id: WalletId,
    #[schemars(with = "Currency")]
    currency: String,
    /// What the wallet can pay with.
    available: Money,
    /// What payments under way hold until they settle.
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

/// A payment (a transfer, a top-up or a payout) and where it stands.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Payment")]
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

/// A failure reason with its machine-readable fields and a sentence for people (`message`).
/// Written by hand: a reason with a `message` of its own (the processor's, when it declined)
/// and the sentence, both flattened, would put `"message"` in the object twice; the sentence
/// quotes the processor's message, so it is the one kept.
#[derive(JsonSchema)]
#[schemars(rename = "PaymentFailure")]
pub(crate) struct FailureView {
    #[serde(flatten)]
    reason: FailureReason,
    message: String,
}

impl Serialize for FailureView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let serde_json::Value::Object(fields) =
            serde_json::to_value(&self.reason).map_err(S::Error::custom)?
        else {
            return Err(S::Error::custom("a failure reason is a JSON object"));
        };
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in fields.iter().filter(|(name, _)| *name != "message") {
            map.serialize_entry(name, value)?;
        }
        map.serialize_entry("message", &self.message)?;
        map.end()
    }
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
            failure: payment.failure.clone().map(FailureView::from),
            version: payment.version,
            created_at: payment.created_at,
            updated_at: payment.updated_at,
        }
    }
}

impl From<FailureReason> for FailureView {
    fn from(reason: FailureReason) -> Self {
        Self {
            message: reason.to_string(),
            reason,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declined_payments_failure_says_message_once() {
        let view = FailureView::from(FailureReason::PaymentDeclined {
            message: "card expired".to_owned(),
        });
        let text = serde_json::to_string(&view).expect("a failure serializes");
        assert_eq!(text.matches("\"message\"").count(), 1, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["code"], "payment_declined");
        assert_eq!(
            value["message"],
            "the payment processor declined the payment: card expired"
        );
    }
}
