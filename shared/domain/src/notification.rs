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
use super::payment::{Flow, FlowKind};

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
    /// To a wallet's holder: the top-up charged their funding instrument and credited the wallet.
    TopUpCompleted,
    /// To a wallet's holder: the top-up failed (the reason goes with it); nothing was charged.
    TopUpFailed,
    /// To a wallet's holder: the payout left the wallet for their destination.
    PayoutSent,
    /// To a wallet's holder: the payout failed (the reason goes with it); nothing left the wallet.
    PayoutFailed,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentSent => "payment_sent",
            Self::PaymentFailed => "payment_failed",
            Self::PaymentReceived => "payment_received",
            Self::TopUpCompleted => "top_up_completed",
            Self::TopUpFailed => "top_up_failed",
            Self::PayoutSent => "payout_sent",
            Self::PayoutFailed => "payout_failed",
        }
    }

    /// Whether it tells of a failure (and carries the reason).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::PaymentFailed | Self::TopUpFailed | Self::PayoutFailed
        )
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
    /// The other wallet of a transfer (none for a top-up or a payout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<WalletId>,
    /// Why the payment failed, for the failure kinds ([`NotificationKind::is_failure`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReason>,
    pub occurred_at: DateTime<Utc>,
}

impl Notification {
    /// The text shown to the recipient. Wallet ids only: no names or other personal data
    /// (nor the funding instrument's or destination's references).
    pub fn text(&self) -> String {
        let amount = self.amount;
        let to = |what: &str| match &self.counterparty {
            Some(counterparty) => format!("{what} {counterparty}"),
            None => String::new(),
        };
        let failed = |what: String| match &self.failure {
            Some(reason) => format!("{what} failed: {reason}."),
            None => format!("{what} failed."),
        };
        match self.kind {
            NotificationKind::PaymentSent => format!("You paid {amount}{}.", to(" to")),
            NotificationKind::PaymentReceived => format!("You received {amount}{}.", to(" from")),
            NotificationKind::PaymentFailed => {
                failed(format!("Your payment of {amount}{}", to(" to")))
            }
            NotificationKind::TopUpCompleted => format!("You topped up {amount}."),
            NotificationKind::TopUpFailed => failed(format!("Your top-up of {amount}")),
            NotificationKind::PayoutSent => format!("You paid out {amount}."),
            NotificationKind::PayoutFailed => failed(format!("Your payout of {amount}")),
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.kind.as_str(), self.recipient)
    }
}

/// The notifications an event calls for: a completed transfer tells its payer and its payee, a
/// failed one its payer (its payee never expected anything); a top-up's or a payout's outcome
/// tells the wallet's holder; other events tell no one.
pub fn notifications_for(event: &DomainEvent) -> Vec<Notification> {
    let notification = |detail: &EventDetail<PaymentEventData>, kind, recipient: &WalletId| {
        let data = &detail.data;
        let counterparty = match &data.flow {
            Flow::Transfer {
                from_wallet,
                to_wallet,
            } if recipient == from_wallet => Some(to_wallet.clone()),
            Flow::Transfer { from_wallet, .. } => Some(from_wallet.clone()),
            Flow::TopUp { .. } | Flow::Payout { .. } => None,
        };
        Notification {
            recipient: recipient.clone(),
            kind,
            event_id: detail.event_id.clone(),
            payment_id: data.payment_id.clone(),
            amount: data.amount,
            counterparty,
            failure: kind.is_failure().then(|| data.failure.clone()).flatten(),
            occurred_at: detail.occurred_at,
        }
    };
    use NotificationKind as Kind;
    let (detail, kinds): (_, &[(Kind, Option<&WalletId>)]) = match event {
        DomainEvent::PaymentCompleted(detail) => {
            let flow = &detail.data.flow;
            let (from, to) = (flow.from_wallet(), flow.to_wallet());
            match flow.kind() {
                FlowKind::Transfer => (
                    detail,
                    &[(Kind::PaymentSent, from), (Kind::PaymentReceived, to)][..],
                ),
                FlowKind::TopUp => (detail, &[(Kind::TopUpCompleted, to)][..]),
                FlowKind::Payout => (detail, &[(Kind::PayoutSent, from)][..]),
            }
        }
        DomainEvent::PaymentFailed(detail) => {
            let kind = match detail.data.flow.kind() {
                FlowKind::Transfer => Kind::PaymentFailed,
                FlowKind::TopUp => Kind::TopUpFailed,
                FlowKind::Payout => Kind::PayoutFailed,
            };
            return vec![notification(detail, kind, detail.data.flow.payer_wallet())];
        }
        DomainEvent::PaymentRequested(_)
        | DomainEvent::FundsDeposited(_)
        | DomainEvent::OperatorActionStarted(_) => return Vec::new(),
    };
    kinds
        .iter()
        .filter_map(|(kind, recipient)| {
            recipient.map(|recipient| notification(detail, *kind, recipient))
        })
        .collect()
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
            .map(|n| {
                let counterparty = n.counterparty.as_ref().map_or("", WalletId::as_str);
                (n.recipient.as_str(), n.kind, counterparty)
            })
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

    fn outcome_of(
        parties: serde_json::Value,
        status: PaymentStatus,
        failure: Option<FailureReason>,
    ) -> EventDetail<PaymentEventData> {
        let mut data = parties;
        data["payment_id"] = "pay_1".into();
        data["amount"] = serde_json::json!({"minor_units": 1_250, "currency": "EUR"});
        data["status"] = serde_json::to_value(status).unwrap();
        data["failure"] = serde_json::to_value(failure).unwrap();
        let data: PaymentEventData = serde_json::from_value(data).expect("an outcome");
        EventDetail::new("pay_1/4".into(), Utc::now(), data)
    }

    #[test]
    fn a_top_up_or_a_payout_tells_the_wallets_holder_alone_without_references() {
        let top_up =
            serde_json::json!({"funding_instrument": "fi_card1", "to_wallet": "wal_alice"});
        let payout = serde_json::json!({"from_wallet": "wal_alice", "destination": "dst_bank1"});
        let declined = FailureReason::PaymentDeclined {
            message: "card declined".into(),
        };
        let cases = [
            (
                DomainEvent::PaymentCompleted(outcome_of(
                    top_up.clone(),
                    PaymentStatus::Completed,
                    None,
                )),
                NotificationKind::TopUpCompleted,
                "You topped up 12.50 EUR.",
            ),
            (
                DomainEvent::PaymentFailed(outcome_of(
                    top_up,
                    PaymentStatus::Failed,
                    Some(declined.clone()),
                )),
                NotificationKind::TopUpFailed,
                "Your top-up of 12.50 EUR failed: ",
            ),
            (
                DomainEvent::PaymentCompleted(outcome_of(
                    payout.clone(),
                    PaymentStatus::Completed,
                    None,
                )),
                NotificationKind::PayoutSent,
                "You paid out 12.50 EUR.",
            ),
            (
                DomainEvent::PaymentFailed(outcome_of(
                    payout,
                    PaymentStatus::Failed,
                    Some(declined),
                )),
                NotificationKind::PayoutFailed,
                "Your payout of 12.50 EUR failed: ",
            ),
        ];
        for (event, kind, text) in cases {
            let sent = notifications_for(&event);
            assert_eq!(sent.len(), 1, "{kind:?}");
            assert_eq!(
                (sent[0].recipient.as_str(), sent[0].kind),
                ("wal_alice", kind)
            );
            assert_eq!(sent[0].counterparty, None);
            assert_eq!(sent[0].failure.is_some(), kind.is_failure());
            assert!(sent[0].text().starts_with(text), "{}", sent[0].text());
            assert!(!sent[0].text().contains("fi_") && !sent[0].text().contains("dst_"));
        }
    }
}
