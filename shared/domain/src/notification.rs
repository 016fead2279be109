//! What a payment's outcome tells the people involved: the payer that the money went (or why
//! it did not), the payee that it arrived. Plain data, delivered by a
//! [`crate::ports::Notifier`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::{DomainEvent, EventDetail, PaymentEventData};
use super::failure::FailureReason;
use super::ids::{PaymentId, WalletId};
use super::money::Money;

/// What happened, from the recipient's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// To the payer: the payment completed.
    PaymentSent,
    /// To the payer: the payment failed (the reason goes with it); nothing was taken.
    PaymentFailed,
    /// To the payee: money arrived.
    PaymentReceived,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentSent => "payment_sent",
            Self::PaymentFailed => "payment_failed",
            Self::PaymentReceived => "payment_received",
        }
    }
}

/// One message to one wallet's holder about one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Whose inbox it goes to.
    pub recipient: WalletId,
    pub kind: NotificationKind,
    /// The event it tells of: with the recipient, it names the notification.
    pub event_id: String,
    pub payment_id: PaymentId,
    pub amount: Money,
    /// The other side of the payment.
    pub counterparty: WalletId,
    /// Why the payment failed, for [`NotificationKind::PaymentFailed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReason>,
    pub occurred_at: DateTime<Utc>,
}

impl Notification {
    /// The text shown to the recipient. Wallet ids only: no names or other personal data.
    pub fn text(&self) -> String {
        match self.kind {
            NotificationKind::PaymentSent => {
                format!("You paid {} to {}.", self.amount, self.counterparty)
            }
            NotificationKind::PaymentReceived => {
                format!("You received {} from {}.", self.amount, self.counterparty)
            }
            NotificationKind::PaymentFailed => match &self.failure {
                Some(reason) => format!(
                    "Your payment of {} to {} failed: {reason}.",
                    self.amount, self.counterparty
                ),
                None => format!(
                    "Your payment of {} to {} failed.",
                    self.amount, self.counterparty
                ),
            },
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.kind.as_str(), self.recipient)
    }
}

/// The notifications an event calls for: a completed payment tells its payer and its payee, a
/// failed one its payer (its payee never expected anything); other events tell no one.
pub fn notifications_for(event: &DomainEvent) -> Vec<Notification> {
    let notification = |detail: &EventDetail<PaymentEventData>, kind, recipient: &WalletId| {
        let data = &detail.data;
        let counterparty = if recipient == &data.from_wallet {
            &data.to_wallet
        } else {
            &data.from_wallet
        };
        Notification {
            recipient: recipient.clone(),
            kind,
            event_id: detail.event_id.clone(),
            payment_id: data.payment_id.clone(),
            amount: data.amount,
            counterparty: counterparty.clone(),
            failure: match kind {
                NotificationKind::PaymentFailed => data.failure.clone(),
                _ => None,
            },
            occurred_at: detail.occurred_at,
        }
    };
    match event {
        DomainEvent::PaymentCompleted(detail) => vec![
            notification(
                detail,
                NotificationKind::PaymentSent,
                &detail.data.from_wallet,
            ),
            notification(
                detail,
                NotificationKind::PaymentReceived,
                &detail.data.to_wallet,
            ),
        ],
        DomainEvent::PaymentFailed(detail) => vec![notification(
            detail,
            NotificationKind::PaymentFailed,
            &detail.data.from_wallet,
        )],
        DomainEvent::PaymentRequested(_) | DomainEvent::FundsDeposited(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PaymentStatus;

    fn outcome(
        status: PaymentStatus,
        failure: Option<FailureReason>,
    ) -> EventDetail<PaymentEventData> {
        let data: PaymentEventData = serde_json::from_value(serde_json::json!({
            "payment_id": "pay_1", "from_wallet": "wal_alice", "to_wallet": "wal_bob",
            "amount": {"minor_units": 1_250, "currency": "EUR"}, "status": status,
            "failure": failure,
        }))
        .expect("a payment's outcome");
        EventDetail::new("pay_1/4".into(), Utc::now(), data)
    }

    #[test]
    fn a_completed_payment_tells_the_payer_and_the_payee() {
        let event = DomainEvent::PaymentCompleted(outcome(PaymentStatus::Completed, None));
        let sent = notifications_for(&event);
        let who: Vec<(&str, NotificationKind, &str)> = sent
            .iter()
            .map(|n| (n.recipient.as_str(), n.kind, n.counterparty.as_str()))
            .collect();
        assert_eq!(
            who,
            [
                ("wal_alice", NotificationKind::PaymentSent, "wal_bob"),
                ("wal_bob", NotificationKind::PaymentReceived, "wal_alice"),
            ]
        );
        assert!(
            sent.iter()
                .all(|n| n.event_id == "pay_1/4" && n.failure.is_none())
        );
        assert_eq!(sent[1].text(), "You received 12.50 EUR from wal_alice.");
    }

    #[test]
    fn a_failed_payment_tells_the_payer_why_and_the_payee_nothing() {
        let reason = FailureReason::InsufficientFunds {
            wallet_id: WalletId::parse("wal_alice").unwrap(),
        };
        let event =
            DomainEvent::PaymentFailed(outcome(PaymentStatus::Failed, Some(reason.clone())));
        let sent = notifications_for(&event);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].recipient.as_str(), sent[0].kind),
            ("wal_alice", NotificationKind::PaymentFailed)
        );
        assert_eq!(sent[0].failure, Some(reason));
        assert!(sent[0].text().contains("failed"), "{}", sent[0].text());
    }
}
