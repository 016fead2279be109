//! CQRS read models: what the API lists, projected from the domain events.
//!
//! Two read models, each a list per wallet, newest first:
//! - a wallet's **transactions** ([`TransactionEntry`]): its deposits, top-ups and payouts and
//!   the transfers it sent and received, with their status, a signed amount and the
//!   counterparty of a transfer;
//! - a wallet's **payments** ([`WalletPayment`]): every payment of any flow that debits it
//!   (payer) or credits it (payee), with its parties, status, amount and failure.
//!
//! Both are read from one list per wallet, its **activity**: one item per deposit or payment of
//! the wallet ([`ReadModelChange`]), holding its transaction and, for a payment, its payment
//! entry. The transactions are every item of the list, the payments the items with a payment
//! entry. A payment's event therefore costs one write per wallet it touches (two for a
//! transfer), where a list per read model would cost two.
//!
//! [`project`] turns one event into the items it changes; a
//! [`ReadModelWriter`](crate::ports::ReadModelWriter) applies each one under a condition, so
//! that:
//! - a duplicate changes nothing: an item is written only when it is new or its status
//!   ranks higher than the stored one ([`status_rank`]); deposits rank as final at once;
//! - events out of order are harmless: a `PaymentRequested` arriving after the payment's
//!   outcome ranks lower and changes nothing. The item's content is therefore the projection of
//!   the highest-ranked event seen, whatever the order; its `revision` counts the changes
//!   applied to it (1 for an item written once).
//!
//! Every item sits at a [`Position`]: its wallet's list ([`activity_list`],
//! `wallet#<id>#activity`) and an order key, `<time>#<id>`, whose time is the payment's request
//! time (`requested_at` of its outcome, the `occurred_at` of its `PaymentRequested`) or the
//! deposit's time, written with nanoseconds so that the keys sort as the times do.
//!
//! Applying events to a store, and rebuilding the read models from the audit trail, is
//! `paysaga_services::read_models`'s.
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::EventDetail;
use crate::events::PaymentEventData;
use crate::payment::{Flow, FlowKind};
use crate::{
    Currency, DomainEvent, FailureReason, Money, PaymentId, PaymentRequest, PaymentStatus, WalletId,
};

/// What a wallet's transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Deposit,
    PaymentSent,
    PaymentReceived,
    /// Money in from the holder's funding instrument.
    TopUp,
    /// Money out to the holder's destination.
    Payout,
}

/// An amount with a sign: negative when money leaves the wallet. Integer minor units and a
/// currency, as [`Money`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAmount {
    pub minor_units: i64,
    pub currency: Currency,
}

impl SignedAmount {
    fn credit(amount: Money) -> Self {
        Self {
            minor_units: Self::magnitude(amount),
            currency: amount.currency(),
        }
    }

    fn debit(amount: Money) -> Self {
        Self {
            minor_units: -Self::magnitude(amount),
            currency: amount.currency(),
        }
    }

    fn magnitude(amount: Money) -> i64 {
        i64::try_from(amount.minor_units())
            .expect("Money holds at most MAX_MINOR_UNITS (10^18), below i64::MAX")
    }
}

/// One line of a wallet's transaction history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionEntry {
    pub wallet_id: WalletId,
    pub kind: TransactionKind,
    /// The deposit's or the payment's id.
    pub transaction_id: String,
    /// The other wallet of a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<WalletId>,
    /// Positive into the wallet, negative out of it.
    pub amount: SignedAmount,
    /// A deposit is `COMPLETED`; a payment `PENDING` until its outcome.
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReason>,
    /// When it was asked for: the payment's request time, the deposit's time.
    pub at: DateTime<Utc>,
    /// When its status was last known to change.
    pub updated_at: DateTime<Utc>,
}

impl TransactionEntry {
    /// Its order key in its wallet's list.
    pub fn order(&self) -> String {
        order_key(self.at, &self.transaction_id)
    }
}

/// A wallet's side of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentRole {
    /// The payment debits the wallet (a transfer's payer, a payout's wallet).
    Payer,
    /// The payment credits the wallet (a transfer's payee, a top-up's wallet).
    Payee,
}

/// One payment in the list of a wallet's payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletPayment {
    pub wallet_id: WalletId,
    pub role: PaymentRole,
    pub payment_id: PaymentId,
    /// The payment's parties, as its request names them.
    #[serde(flatten)]
    pub flow: Flow,
    pub amount: Money,
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReason>,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WalletPayment {
    /// Its order key in its wallet's list: its transaction's.
    pub fn order(&self) -> String {
        order_key(self.requested_at, self.payment_id.as_str())
    }
}

/// The list of `wallet`'s deposits and payments, which both read models read (the table's
/// partition key).
pub fn activity_list(wallet: &WalletId) -> String {
    format!("wallet#{wallet}#activity")
}

/// Where an item sits: its list and its order key in it (the table's sort key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub list: String,
    pub order: String,
}

/// The order key of something that happened at `at`, identified by `id`: keys sort as times.
pub fn order_key(at: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", at.format("%Y-%m-%dT%H:%M:%S%.9fZ"))
}

/// One item to write, a wallet's line for one deposit or payment as an event tells it: it
/// replaces the stored one only if it is new or its status ranks higher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadModelChange {
    /// What the wallet's transactions show of it.
    pub transaction: TransactionEntry,
    /// What the wallet's payments show of it; `None` for a deposit, which is no payment. A
    /// payment's entry is of the same wallet and sits at its transaction's order key.
    pub payment: Option<WalletPayment>,
}

impl ReadModelChange {
    pub fn position(&self) -> Position {
        Position {
            list: activity_list(&self.transaction.wallet_id),
            order: self.transaction.order(),
        }
    }

    /// The rank of the item's status: a write applies only above the stored rank.
    pub fn rank(&self) -> u8 {
        status_rank(self.transaction.status)
    }
}

/// How far a status is along: the read models only ever move an item forward. Terminal
/// statuses (and deposits, which are `COMPLETED` from the start) rank highest, so nothing
/// overwrites them.
pub fn status_rank(status: PaymentStatus) -> u8 {
    match status {
        PaymentStatus::Pending => 1,
        PaymentStatus::FundsReserved | PaymentStatus::Charged | PaymentStatus::Compensating => 2,
        PaymentStatus::Completed | PaymentStatus::Failed => 3,
    }
}

/// An item as stored, with the number of changes applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revised<T> {
    pub entry: T,
    pub revision: u32,
}

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The item was new or moved forward: its revision went up by one.
    Changed,
    /// A duplicate, or an event older than what is stored: nothing was written.
    Unchanged,
}

/// A page of a list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Which page of a list to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    /// Items after this cursor (older than it); from the newest when `None`.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Items per page when the client does not say.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// The most items a page holds.
    pub const MAX_LIMIT: u32 = 100;

    /// A page request, refusing a limit outside `1..=MAX_LIMIT`.
    pub fn new(limit: Option<u32>, after: Option<Cursor>) -> Result<Self, PageError> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(PageError::Limit(limit));
        }
        Ok(Self { limit, after })
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// A page request a client got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("limit must be between 1 and {max}, not {0}", max = PageRequest::MAX_LIMIT)]
    Limit(u32),
    #[error("cursor is not one this API gave out")]
    Cursor,
}

/// Where a page ends: opaque to clients (hex of the last item's order key).
#[derive(Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    /// The cursor after the item at `order`.
    pub fn after(order: &str) -> Self {
        Self(order.to_owned())
    }

    /// The order key it points after.
    pub fn order(&self) -> &str {
        &self.0
    }

    /// The text a client passes back (`?cursor=`).
    pub fn encode(&self) -> String {
        self.0.bytes().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Reads what [`Cursor::encode`] wrote; anything else is a [`PageError::Cursor`].
    pub fn decode(text: &str) -> Result<Self, PageError> {
        if text.is_empty() || !text.len().is_multiple_of(2) || text.len() > 512 {
            return Err(PageError::Cursor);
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|at| {
                text.get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(PageError::Cursor)?;
        let order = String::from_utf8(bytes).map_err(|_| PageError::Cursor)?;
        let (time, id) = order.split_once('#').ok_or(PageError::Cursor)?;
        if id.is_empty() || DateTime::parse_from_rfc3339(time).is_err() {
            return Err(PageError::Cursor);
        }
        Ok(Self(order))
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({})", self.0)
    }
}

/// The read-model items `event` changes: for a payment event, each wallet's item, its
/// transaction with its payment entry (the payer's first: two items for a transfer, one for a
/// top-up or a payout, which touch one wallet); for a deposit, the wallet's transaction;
/// nothing for an operator's action.
pub fn project(event: &DomainEvent) -> Vec<ReadModelChange> {
    match event {
        DomainEvent::PaymentRequested(detail) => requested(detail),
        DomainEvent::PaymentCompleted(detail) | DomainEvent::PaymentFailed(detail) => {
            outcome(detail)
        }
        DomainEvent::FundsDeposited(detail) => {
            let deposit = &detail.data;
            let transaction = TransactionEntry {
                wallet_id: deposit.wallet_id.clone(),
                kind: TransactionKind::Deposit,
                transaction_id: deposit.deposit_id.to_string(),
                counterparty: None,
                amount: SignedAmount::credit(deposit.amount),
                status: PaymentStatus::Completed,
                failure: None,
                at: detail.occurred_at,
                updated_at: detail.occurred_at,
            };
            vec![ReadModelChange {
                transaction,
                payment: None,
            }]
        }
        DomainEvent::OperatorActionStarted(_) => Vec::new(),
    }
}

/// A payment as one of its events tells it.
struct PaymentFacts<'a> {
    payment_id: &'a PaymentId,
    flow: &'a Flow,
    amount: Money,
    status: PaymentStatus,
    failure: Option<&'a FailureReason>,
    requested_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn requested(detail: &EventDetail<PaymentRequest>) -> Vec<ReadModelChange> {
    let request = &detail.data;
    payment_items(&PaymentFacts {
        payment_id: request.payment_id(),
        flow: request.flow(),
        amount: request.amount(),
        status: PaymentStatus::Pending,
        failure: None,
        requested_at: detail.occurred_at,
        updated_at: detail.occurred_at,
    })
}

fn outcome(detail: &EventDetail<PaymentEventData>) -> Vec<ReadModelChange> {
    let data = &detail.data;
    payment_items(&PaymentFacts {
        payment_id: &data.payment_id,
        flow: &data.flow,
        amount: data.amount,
        status: data.status,
        failure: data.failure.as_ref(),
        // Outcomes published before `requested_at` existed are placed at their own time.
        requested_at: data.requested_at.unwrap_or(detail.occurred_at),
        updated_at: detail.occurred_at,
    })
}

fn payment_items(facts: &PaymentFacts<'_>) -> Vec<ReadModelChange> {
    let transaction =
        |wallet: &WalletId, kind, counterparty: Option<&WalletId>, amount| TransactionEntry {
            wallet_id: wallet.clone(),
            kind,
            transaction_id: facts.payment_id.to_string(),
            counterparty: counterparty.cloned(),
            amount,
            status: facts.status,
            failure: facts.failure.cloned(),
            at: facts.requested_at,
            updated_at: facts.updated_at,
        };
    let payment = |wallet: &WalletId, role| {
        Some(WalletPayment {
            wallet_id: wallet.clone(),
            role,
            payment_id: facts.payment_id.clone(),
            flow: facts.flow.clone(),
            amount: facts.amount,
            status: facts.status,
            failure: facts.failure.cloned(),
            requested_at: facts.requested_at,
            updated_at: facts.updated_at,
        })
    };
    let (from, to) = (facts.flow.from_wallet(), facts.flow.to_wallet());
    let (sent, received) = match facts.flow.kind() {
        FlowKind::Transfer => (
            TransactionKind::PaymentSent,
            TransactionKind::PaymentReceived,
        ),
        FlowKind::TopUp | FlowKind::Payout => (TransactionKind::Payout, TransactionKind::TopUp),
    };
    let debited = from.map(|wallet| ReadModelChange {
        transaction: transaction(wallet, sent, to, SignedAmount::debit(facts.amount)),
        payment: payment(wallet, PaymentRole::Payer),
    });
    let credited = to.map(|wallet| ReadModelChange {
        transaction: transaction(wallet, received, from, SignedAmount::credit(facts.amount)),
        payment: payment(wallet, PaymentRole::Payee),
    });
    debited.into_iter().chain(credited).collect()
}
