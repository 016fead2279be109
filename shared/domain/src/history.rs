//! The audit trail as an event store: every domain event, appended to the stream of each
//! aggregate it is about, under a version that stream assigns in arrival order; and the
//! aggregates folded back from their streams.
//!
//! Streams: a payment's (`payment#<id>`: its request, then its outcome), each wallet's
//! (`wallet#<id>`: its deposits, and the completed payments that debit it (a transfer's payer, a
//! payout's wallet) or credit it (a transfer's payee, a top-up's wallet); a failed payment
//! moves no money, so it stays out of the wallets' streams), and each operator's
//! (`operator#<key>`, [`OperatorKey`]: the deposits they issued and their other actions).
//! Events reach the store in any order (SQS), so each fold is order-independent within its
//! stream: a wallet keeps what was credited and what was debited, and its balance is the
//! difference; a payment's outcome wins whether it came before its request or after it.
//!
//! A snapshot is an aggregate folded up to a version ([`snapshot_due`]); loading an aggregate is
//! its latest snapshot and the events after it ([`AggregateState::replay`]), which equals the
//! replay of the whole stream (a test below proves it).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::{DomainEvent, PaymentEventData};
use super::failure::FailureReason;
use super::ids::{IdError, PaymentId, WalletId};
use super::money::{Currency, Money, MoneyError};
use super::operator::OperatorKey;
use super::payment::{Flow, PaymentStatus};

/// How often a stream is snapshotted unless configured otherwise (`SNAPSHOT_EVERY`): a load is
/// then one snapshot and at most 9 events (one small query page), and snapshots add one write
/// per 10 appends. Payment streams (2 events) never reach it; busy wallets do.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10;

/// How many parts a hot wallet's stream is spread over once appends to it keep contending
/// (the store's choice, [`EventStore::wallet_parts`](crate::ports::EventStore::wallet_parts)):
/// one stream takes an append at a time (each reads the head, then writes head + 1), about 50 a
/// second; 32 parts take the 1,000 payments a second one wallet's credits can (docs/capacity.md).
pub const HOT_WALLET_STREAM_PARTS: u16 = 32;

/// The aggregate a stream belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamId {
    Payment(PaymentId),
    Wallet(WalletId),
    /// Part `k` (1 and up) of a hot wallet's stream: such a wallet's events are spread over its
    /// own stream (part 0, [`StreamId::Wallet`]) and these, each event in one of them, each part
    /// numbered 1, 2, 3, ... as any stream. The wallet is all its parts folded together
    /// ([`WalletAggregate::combine`]): its totals are sums, which the order does not change.
    WalletPart(WalletId, u16),
    Operator(OperatorKey),
}

impl StreamId {
    /// Part `part` of a wallet's stream: the wallet's own stream for 0.
    pub fn wallet_part(wallet: WalletId, part: u16) -> Self {
        match part {
            0 => Self::Wallet(wallet),
            part => Self::WalletPart(wallet, part),
        }
    }

    /// The wallet whose stream (or part of one) this is.
    pub fn wallet(&self) -> Option<&WalletId> {
        match self {
            Self::Wallet(wallet) | Self::WalletPart(wallet, _) => Some(wallet),
            Self::Payment(_) | Self::Operator(_) => None,
        }
    }
}

impl fmt::Display for StreamId {
    /// `payment#<id>`, `wallet#<id>`, `wallet#<id>#<part>` or `operator#<key>`: the stream's
    /// key in the store.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Payment(id) => write!(f, "payment#{id}"),
            Self::Wallet(id) => write!(f, "wallet#{id}"),
            Self::WalletPart(id, part) => write!(f, "wallet#{id}#{part}"),
            Self::Operator(key) => write!(f, "operator#{key}"),
        }
    }
}

impl FromStr for StreamId {
    type Err = IdError;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        match key.split_once('#') {
            Some(("payment", id)) => Ok(Self::Payment(PaymentId::parse(id)?)),
            Some(("wallet", id)) => match id.split_once('#') {
                None => Ok(Self::Wallet(WalletId::parse(id)?)),
                Some((id, part)) => match part.parse::<u16>() {
                    Ok(part) if part > 0 => Ok(Self::WalletPart(WalletId::parse(id)?, part)),
                    _ => Err(IdError::Malformed {
                        kind: "a part of a wallet's stream",
                        prefix: "wallet#wal_...#<1 and up>",
                    }),
                },
            },
            Some(("operator", key)) => match OperatorKey::parse(key) {
                Ok(key) => Ok(Self::Operator(key)),
                Err(_) => Err(IdError::Malformed {
                    kind: "an operator's stream",
                    prefix: "operator#<64 hex digits>",
                }),
            },
            _ => Err(IdError::Malformed {
                kind: "a stream",
                prefix: "payment#pay_, wallet#wal_ or operator#",
            }),
        }
    }
}

impl Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = String::deserialize(deserializer)?;
        key.parse().map_err(serde::de::Error::custom)
    }
}

/// One event as one stream holds it, at the version the stream gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub stream: StreamId,
    /// 1, 2, 3, ... in the order the events reached the store: no gaps, no duplicates.
    pub version: u64,
    pub event: DomainEvent,
    pub recorded_at: DateTime<Utc>,
}

/// One event as the store recorded it, once (whatever the number of streams it is in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub event: DomainEvent,
    pub recorded_at: DateTime<Utc>,
    /// The streams it was appended to, and the version each gave it.
    pub positions: Vec<(StreamId, u64)>,
}

/// The streams an event is appended to, each once, payment first: a payment's request and
/// outcome go to the payment's stream; a completed payment also to its payer's and payee's;
/// a deposit to its wallet's and to the stream of the operator who issued it; an operator's
/// action to theirs.
pub fn streams_of(event: &DomainEvent) -> Vec<StreamId> {
    let mut streams = match event {
        DomainEvent::PaymentRequested(detail) => {
            vec![StreamId::Payment(detail.data.payment_id().clone())]
        }
        DomainEvent::PaymentFailed(detail) => {
            vec![StreamId::Payment(detail.data.payment_id.clone())]
        }
        DomainEvent::PaymentCompleted(detail) => {
            let wallets = detail.data.flow.wallet_ids().into_iter();
            std::iter::once(StreamId::Payment(detail.data.payment_id.clone()))
                .chain(wallets.map(StreamId::Wallet))
                .collect()
        }
        DomainEvent::FundsDeposited(detail) => {
            let operator = detail.data.issued_by.as_ref().map(OperatorKey::of);
            std::iter::once(StreamId::Wallet(detail.data.wallet_id.clone()))
                .chain(operator.map(StreamId::Operator))
                .collect()
        }
        DomainEvent::OperatorActionStarted(detail) => {
            vec![StreamId::Operator(OperatorKey::of(&detail.data.issued_by))]
        }
    };
    let mut seen = Vec::with_capacity(streams.len());
    streams.retain(|stream| {
        let first = !seen.contains(stream);
        seen.push(stream.clone());
        first
    });
    streams
}

/// Whether the entry at `version` of a stream comes with a snapshot of the aggregate folded up
/// to it: every `every` versions (never when `every` is 0).
pub fn snapshot_due(version: u64, every: u64) -> bool {
    every > 0 && version > 0 && version.is_multiple_of(every)
}

/// A stream does not fold into an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("{stream}: expected version {expected}, found {found}")]
    OutOfSequence {
        stream: StreamId,
        expected: u64,
        found: u64,
    },
    #[error("{stream}: an event of {found} was folded into it")]
    WrongStream { stream: StreamId, found: StreamId },
    #[error("{stream} is inconsistent: {detail}")]
    Inconsistent { stream: StreamId, detail: String },
    #[error("{stream}: {error}")]
    Money { stream: StreamId, error: MoneyError },
}

/// A wallet as its stream tells it: what was credited (deposits, payments received) and what
/// was debited (payments sent), both in its currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletAggregate {
    pub wallet_id: WalletId,
    /// The part of the wallet's stream it folds (0: the wallet's own stream); see
    /// [`StreamId::WalletPart`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub part: u16,
    /// The version of the last event folded in (0: none); for the wallet combined from its
    /// parts ([`Self::combine`]), how many events they hold.
    pub version: u64,
    /// `None` until the first event, which says the currency.
    pub totals: Option<WalletTotals>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletTotals {
    pub credited: Money,
    pub debited: Money,
}

fn is_zero(part: &u16) -> bool {
    *part == 0
}

impl WalletAggregate {
    pub fn new(wallet_id: WalletId) -> Self {
        Self::of_part(wallet_id, 0)
    }

    /// Part `part` of the wallet's stream, before its first event.
    pub fn of_part(wallet_id: WalletId, part: u16) -> Self {
        Self {
            wallet_id,
            part,
            version: 0,
            totals: None,
        }
    }

    fn stream(&self) -> StreamId {
        StreamId::wallet_part(self.wallet_id.clone(), self.part)
    }

    /// The wallet its stream's parts tell together: their events counted, their credits and
    /// debits added up. Every part must be of this wallet and in one currency.
    pub fn combine(
        wallet_id: &WalletId,
        parts: impl IntoIterator<Item = WalletAggregate>,
    ) -> Result<Self, HistoryError> {
        let stream = StreamId::Wallet(wallet_id.clone());
        let mut combined = Self::new(wallet_id.clone());
        for part in parts {
            if &part.wallet_id != wallet_id {
                return Err(HistoryError::WrongStream {
                    stream,
                    found: part.stream(),
                });
            }
            combined.version += part.version;
            let Some(totals) = part.totals else {
                continue;
            };
            let money = |error| HistoryError::Money {
                stream: stream.clone(),
                error,
            };
            combined.totals = Some(match combined.totals {
                None => totals,
                Some(sum) => WalletTotals {
                    credited: sum.credited.checked_add(totals.credited).map_err(money)?,
                    debited: sum.debited.checked_add(totals.debited).map_err(money)?,
                },
            });
        }
        Ok(combined)
    }

    pub fn currency(&self) -> Option<Currency> {
        self.totals.map(|totals| totals.credited.currency())
    }

    /// Credited minus debited; `None` for a wallet with no events. An error when more was
    /// debited than credited, which a complete stream never shows (the ledger refuses
    /// overdrafts) but a stream missing a deposit that is still on its way can.
    pub fn balance(&self) -> Result<Option<Money>, HistoryError> {
        self.totals
            .map(|totals| totals.credited.checked_sub(totals.debited))
            .transpose()
            .map_err(|error| HistoryError::Money {
                stream: self.stream(),
                error,
            })
    }

    /// The wallet with `entry` folded in.
    pub fn apply(&self, entry: &StreamEvent) -> Result<Self, HistoryError> {
        check_position(&self.stream(), self.version, entry)?;
        let (credit, debit) = match &entry.event {
            DomainEvent::FundsDeposited(detail) if detail.data.wallet_id == self.wallet_id => {
                (Some(detail.data.amount), None)
            }
            DomainEvent::PaymentCompleted(detail) => {
                let data = &detail.data;
                let this_wallet = Some(&self.wallet_id);
                let credit = (data.flow.to_wallet() == this_wallet).then_some(data.amount);
                let debit = (data.flow.from_wallet() == this_wallet).then_some(data.amount);
                (credit, debit)
            }
            // Nothing else moves this wallet's money (and nothing else is appended to it).
            _ => (None, None),
        };
        let mut next = self.clone();
        next.version = entry.version;
        let Some(currency) = credit.or(debit).map(Money::currency) else {
            return Ok(next);
        };
        let stream = self.stream();
        let money = |error| HistoryError::Money {
            stream: stream.clone(),
            error,
        };
        let mut totals = self.totals.unwrap_or(WalletTotals {
            credited: Money::zero(currency),
            debited: Money::zero(currency),
        });
        if let Some(amount) = credit {
            totals.credited = totals.credited.checked_add(amount).map_err(money)?;
        }
        if let Some(amount) = debit {
            totals.debited = totals.debited.checked_add(amount).map_err(money)?;
        }
        next.totals = Some(totals);
        Ok(next)
    }
}

/// A payment as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAggregate {
    pub payment_id: PaymentId,
    pub version: u64,
    /// What was asked for; `None` until the first event.
    pub terms: Option<PaymentTerms>,
    /// `PENDING` once requested (the steps in between are not events), then `COMPLETED` or
    /// `FAILED`; `None` until the first event.
    pub status: Option<PaymentStatus>,
    pub failure: Option<FailureReason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTerms {
    #[serde(flatten)]
    pub flow: Flow,
    pub amount: Money,
}

impl PaymentAggregate {
    pub fn new(payment_id: PaymentId) -> Self {
        Self {
            payment_id,
            version: 0,
            terms: None,
            status: None,
            failure: None,
        }
    }

    fn stream(&self) -> StreamId {
        StreamId::Payment(self.payment_id.clone())
    }

    /// The payment with `entry` folded in: an outcome is final, whichever order the request
    /// and the outcome arrived in; two different outcomes, or terms that disagree, are an error.
    pub fn apply(&self, entry: &StreamEvent) -> Result<Self, HistoryError> {
        check_position(&self.stream(), self.version, entry)?;
        let (terms, status, failure) = match &entry.event {
            DomainEvent::PaymentRequested(detail) => {
                let request = &detail.data;
                let terms = PaymentTerms {
                    flow: request.flow().clone(),
                    amount: request.amount(),
                };
                (terms, PaymentStatus::Pending, None)
            }
            DomainEvent::PaymentCompleted(detail) | DomainEvent::PaymentFailed(detail) => {
                let PaymentEventData {
                    flow,
                    amount,
                    status,
                    failure,
                    ..
                } = &detail.data;
                let terms = PaymentTerms {
                    flow: flow.clone(),
                    amount: *amount,
                };
                (terms, *status, failure.clone())
            }
            DomainEvent::FundsDeposited(_) | DomainEvent::OperatorActionStarted(_) => {
                return Err(HistoryError::Inconsistent {
                    stream: self.stream(),
                    detail: format!(
                        "a {} ({}) in a payment's stream",
                        entry.event.detail_type(),
                        entry.event.event_id()
                    ),
                });
            }
        };
        let inconsistent = |detail: String| HistoryError::Inconsistent {
            stream: self.stream(),
            detail,
        };
        if let Some(known) = &self.terms
            && known != &terms
        {
            return Err(inconsistent(format!(
                "event {} has other terms than the payment's",
                entry.event.event_id()
            )));
        }
        let mut next = self.clone();
        next.version = entry.version;
        next.terms = Some(terms);
        match (self.status, status) {
            // A request after the outcome changes nothing.
            (Some(known), PaymentStatus::Pending) if known.is_terminal() => {}
            (Some(known), new) if known.is_terminal() && known != new => {
                return Err(inconsistent(format!("both {known:?} and {new:?}")));
            }
            _ => {
                next.status = Some(status);
                if status.is_terminal() {
                    next.failure = failure;
                }
            }
        }
        Ok(next)
    }
}

/// An operator as their stream tells it: the deposits they issued and their other actions,
/// and when they last acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAggregate {
    pub operator: OperatorKey,
    pub version: u64,
    pub deposits: u64,
    /// Replays and read-model rebuild pages.
    pub actions: u64,
    pub last_acted_at: Option<DateTime<Utc>>,
}

impl OperatorAggregate {
    pub fn new(operator: OperatorKey) -> Self {
        Self {
            operator,
            version: 0,
            deposits: 0,
            actions: 0,
            last_acted_at: None,
        }
    }

    fn stream(&self) -> StreamId {
        StreamId::Operator(self.operator.clone())
    }

    /// The operator with `entry` folded in: an event of another operator, or one no operator
    /// issues, is an error.
    pub fn apply(&self, entry: &StreamEvent) -> Result<Self, HistoryError> {
        check_position(&self.stream(), self.version, entry)?;
        let mut next = self.clone();
        next.version = entry.version;
        let (issued_by, occurred_at) = match &entry.event {
            DomainEvent::FundsDeposited(detail) => {
                next.deposits += 1;
                (detail.data.issued_by.as_ref(), detail.occurred_at)
            }
            DomainEvent::OperatorActionStarted(detail) => {
                next.actions += 1;
                (Some(&detail.data.issued_by), detail.occurred_at)
            }
            _ => (None, entry.recorded_at),
        };
        if issued_by.map(OperatorKey::of).as_ref() != Some(&self.operator) {
            return Err(HistoryError::Inconsistent {
                stream: self.stream(),
                detail: format!(
                    "{} {} is not this operator's",
                    entry.event.detail_type(),
                    entry.event.event_id()
                ),
            });
        }
        next.last_acted_at = self.last_acted_at.max(Some(occurred_at));
        Ok(next)
    }
}

/// Any aggregate: what a snapshot holds, and what the store folds when one is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "aggregate", rename_all = "snake_case")]
pub enum AggregateState {
    Wallet(WalletAggregate),
    Payment(PaymentAggregate),
    Operator(OperatorAggregate),
}

impl AggregateState {
    /// The aggregate of `stream` before its first event.
    pub fn empty(stream: &StreamId) -> Self {
        match stream {
            StreamId::Wallet(id) => Self::Wallet(WalletAggregate::new(id.clone())),
            StreamId::WalletPart(id, part) => {
                Self::Wallet(WalletAggregate::of_part(id.clone(), *part))
            }
            StreamId::Payment(id) => Self::Payment(PaymentAggregate::new(id.clone())),
            StreamId::Operator(key) => Self::Operator(OperatorAggregate::new(key.clone())),
        }
    }

    pub fn stream(&self) -> StreamId {
        match self {
            Self::Wallet(wallet) => wallet.stream(),
            Self::Payment(payment) => payment.stream(),
            Self::Operator(operator) => operator.stream(),
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Self::Wallet(wallet) => wallet.version,
            Self::Payment(payment) => payment.version,
            Self::Operator(operator) => operator.version,
        }
    }

    pub fn apply(&self, entry: &StreamEvent) -> Result<Self, HistoryError> {
        match self {
            Self::Wallet(wallet) => wallet.apply(entry).map(Self::Wallet),
            Self::Payment(payment) => payment.apply(entry).map(Self::Payment),
            Self::Operator(operator) => operator.apply(entry).map(Self::Operator),
        }
    }

    /// This state with `entries` (the stream's events after its version, in order) folded in.
    pub fn replay<'a>(
        self,
        entries: impl IntoIterator<Item = &'a StreamEvent>,
    ) -> Result<Self, HistoryError> {
        entries
            .into_iter()
            .try_fold(self, |state, entry| state.apply(entry))
    }
}

/// The entry must be the next version of this stream.
fn check_position(
    stream: &StreamId,
    version: u64,
    entry: &StreamEvent,
) -> Result<(), HistoryError> {
    if &entry.stream != stream {
        return Err(HistoryError::WrongStream {
            stream: stream.clone(),
            found: entry.stream.clone(),
        });
    }
    if entry.version != version + 1 {
        return Err(HistoryError::OutOfSequence {
            stream: stream.clone(),
            expected: version + 1,
            found: entry.version,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self, deposit, eur, payment, wallet};

    /// Appends events to their streams the way the store does: in arrival order, each
    /// stream numbering its own, duplicates (same event id) dropped.
    pub(crate) fn append_all(events: &[DomainEvent]) -> Vec<StreamEvent> {
        let mut seen = std::collections::HashSet::new();
        let mut heads = std::collections::HashMap::<StreamId, u64>::new();
        let mut entries = Vec::new();
        for event in events {
            if !seen.insert(event.event_id().to_owned()) {
                continue;
            }
            for stream in streams_of(event) {
                let head = heads.entry(stream.clone()).or_default();
                *head += 1;
                entries.push(StreamEvent {
                    stream,
                    version: *head,
                    event: event.clone(),
                    recorded_at: Utc::now(),
                });
            }
        }
        entries
    }

    fn stream(entries: &[StreamEvent], id: &StreamId) -> Vec<StreamEvent> {
        entries
            .iter()
            .filter(|entry| &entry.stream == id)
            .cloned()
            .collect()
    }

    fn rebuilt_wallet(entries: &[StreamEvent], id: &str) -> WalletAggregate {
        let stream_id = StreamId::Wallet(wallet(id));
        match AggregateState::empty(&stream_id).replay(&stream(entries, &stream_id)) {
            Ok(AggregateState::Wallet(wallet)) => wallet,
            other => panic!("not a wallet: {other:?}"),
        }
    }

    #[test]
    fn stream_keys_round_trip() {
        for key in ["payment#pay_a1", "wallet#wal_b2", "wallet#wal_b2#31"] {
            let stream: StreamId = key.parse().unwrap();
            assert_eq!(stream.to_string(), key);
        }
        assert_eq!(
            "wallet#wal_b2#7".parse::<StreamId>().unwrap(),
            StreamId::WalletPart(wallet("wal_b2"), 7)
        );
        assert_eq!(
            StreamId::wallet_part(wallet("wal_b2"), 0),
            StreamId::Wallet(wallet("wal_b2")),
            "part 0 is the wallet's own stream"
        );
        for malformed in ["wallet#not a wallet", "wallet#wal_b2#0", "wallet#wal_b2#x"] {
            assert!(malformed.parse::<StreamId>().is_err(), "{malformed}");
        }
    }

    /// A hot wallet's events spread over parts, each part numbered as a stream of its own, fold
    /// into the wallet its one stream would have been, whichever part each event went to.
    #[test]
    fn a_wallet_spread_over_parts_combines_to_the_wallet_of_one_stream() {
        let mut events = vec![deposit("dep_1", "wal_a", 10_000)];
        for n in 0..30 {
            let (_, completed) = payment(
                &format!("pay_{n}"),
                if n % 3 == 0 { "wal_a" } else { "wal_b" },
                if n % 3 == 0 { "wal_b" } else { "wal_a" },
                100 + n,
                PaymentStatus::Completed,
            );
            events.push(completed);
        }
        let whole = rebuilt_wallet(&append_all(&events), "wal_a");

        let mut heads = std::collections::HashMap::<u16, u64>::new();
        let mut parts = std::collections::BTreeMap::<u16, AggregateState>::new();
        for (n, event) in events.iter().enumerate() {
            // Scattered over four parts, as a store's random choice would.
            let part = u16::try_from((n * 7 + n / 5) % 4).unwrap();
            let head = heads.entry(part).or_default();
            *head += 1;
            let stream = StreamId::wallet_part(wallet("wal_a"), part);
            let entry = StreamEvent {
                stream: stream.clone(),
                version: *head,
                event: event.clone(),
                recorded_at: Utc::now(),
            };
            let state = parts
                .remove(&part)
                .unwrap_or_else(|| AggregateState::empty(&stream));
            parts.insert(part, state.apply(&entry).unwrap());
        }
        assert!(parts.len() > 1, "the events went to several parts");
        let parts = parts.into_values().map(|state| match state {
            AggregateState::Wallet(wallet) => wallet,
            other => panic!("not a wallet: {other:?}"),
        });
        let combined = WalletAggregate::combine(&wallet("wal_a"), parts).unwrap();
        assert_eq!(combined, whole);
        assert_eq!(combined.version, events.len() as u64);

        let other = WalletAggregate::new(wallet("wal_b"));
        assert!(matches!(
            WalletAggregate::combine(&wallet("wal_a"), [other]),
            Err(HistoryError::WrongStream { .. })
        ));
    }

    #[test]
    fn each_event_goes_to_the_streams_of_what_it_changes() {
        let (requested, completed) =
            payment("pay_1", "wal_a", "wal_b", 500, PaymentStatus::Completed);
        let (_, failed) = payment("pay_2", "wal_a", "wal_b", 500, PaymentStatus::Failed);
        let keys = |event: &DomainEvent| -> Vec<String> {
            streams_of(event).iter().map(ToString::to_string).collect()
        };
        assert_eq!(keys(&requested), ["payment#pay_1"]);
        assert_eq!(
            keys(&completed),
            ["payment#pay_1", "wallet#wal_a", "wallet#wal_b"]
        );
        assert_eq!(keys(&failed), ["payment#pay_2"]);
        let operator = OperatorKey::of(&test_support::operator().issued_by);
        assert_eq!(
            keys(&deposit("dep_1", "wal_a", 10)),
            ["wallet#wal_a".to_owned(), format!("operator#{operator}")]
        );
        assert_eq!(
            keys(&rebuild_page("opa_1", "ops-test")),
            [format!("operator#{operator}")]
        );
    }

    /// An operator's rebuild page (`after` none) issued by `subject`.
    fn rebuild_page(action_id: &str, subject: &str) -> DomainEvent {
        DomainEvent::operator_action_started(
            crate::OperatorAction {
                action_id: crate::OperatorActionId::parse(action_id).unwrap(),
                issued_by: crate::Owner::parse(subject).unwrap(),
                reason: crate::OperatorReason::parse("a drill").unwrap(),
                action: crate::OperatorActionKind::RebuildReadModels { after: None },
            },
            Utc::now(),
        )
    }

    #[test]
    fn an_operators_stream_counts_their_deposits_and_actions_and_no_one_elses() {
        let events = [
            deposit("dep_1", "wal_a", 10),
            rebuild_page("opa_1", "ops-test"),
            deposit("dep_2", "wal_b", 10),
            rebuild_page("opa_2", "someone-else"),
        ];
        let entries = append_all(&events);
        let ours = StreamId::Operator(OperatorKey::of(&test_support::operator().issued_by));
        let folded = AggregateState::empty(&ours)
            .replay(&stream(&entries, &ours))
            .unwrap();
        let AggregateState::Operator(operator) = folded else {
            panic!("an operator")
        };
        assert_eq!(
            (operator.version, operator.deposits, operator.actions),
            (3, 2, 1)
        );
        assert!(operator.last_acted_at.is_some());

        // Someone else's action, numbered into this stream, does not fold.
        let mut foreign = stream(
            &entries,
            &StreamId::Operator(OperatorKey::of(
                &crate::Owner::parse("someone-else").unwrap(),
            )),
        );
        foreign[0].stream = ours.clone();
        foreign[0].version = 1;
        assert!(matches!(
            AggregateState::empty(&ours).replay(&foreign),
            Err(HistoryError::Inconsistent { .. })
        ));
        let key = format!(
            "operator#{}",
            OperatorKey::of(&test_support::operator().issued_by)
        );
        assert_eq!(key.parse::<StreamId>().unwrap(), ours);
        assert!(
            "operator#ops-test".parse::<StreamId>().is_err(),
            "a key, never a subject"
        );
    }

    #[test]
    fn completed_and_failed_payments_fold_into_the_right_balances() {
        let (requested_1, completed) =
            payment("pay_1", "wal_a", "wal_b", 3_000, PaymentStatus::Completed);
        let (requested_2, failed) =
            payment("pay_2", "wal_a", "wal_b", 9_000, PaymentStatus::Failed);
        let entries = append_all(&[
            deposit("dep_1", "wal_a", 10_000),
            requested_1,
            completed,
            requested_2,
            failed,
        ]);
        let a = rebuilt_wallet(&entries, "wal_a");
        let b = rebuilt_wallet(&entries, "wal_b");
        assert_eq!(a.balance(), Ok(Some(eur(7_000))));
        assert_eq!(b.balance(), Ok(Some(eur(3_000))));
        assert_eq!((a.version, b.version), (2, 1));

        let payment_stream = StreamId::Payment(PaymentId::parse("pay_2").unwrap());
        let state = AggregateState::empty(&payment_stream)
            .replay(&stream(&entries, &payment_stream))
            .unwrap();
        let AggregateState::Payment(failed) = state else {
            panic!("a payment stream folds into a payment")
        };
        assert_eq!(failed.status, Some(PaymentStatus::Failed));
        assert!(matches!(
            failed.failure,
            Some(FailureReason::InsufficientFunds { .. })
        ));
        assert_eq!(failed.terms.map(|terms| terms.amount), Some(eur(9_000)));
        assert_eq!(failed.version, 2);
    }

    #[test]
    fn duplicates_and_out_of_order_arrivals_change_nothing() {
        let (requested, completed) =
            payment("pay_1", "wal_a", "wal_b", 3_000, PaymentStatus::Completed);
        let in_order = append_all(&[
            deposit("dep_1", "wal_a", 10_000),
            requested.clone(),
            completed.clone(),
        ]);
        // The outcome before its request and before the deposit that funded it, each twice.
        let shuffled = append_all(&[
            completed.clone(),
            completed,
            requested.clone(),
            deposit("dep_1", "wal_a", 10_000),
            requested,
            deposit("dep_1", "wal_a", 10_000),
        ]);
        assert_eq!(in_order.len(), shuffled.len(), "duplicates are dropped");
        for id in ["wal_a", "wal_b"] {
            assert_eq!(
                rebuilt_wallet(&in_order, id).balance(),
                rebuilt_wallet(&shuffled, id).balance()
            );
        }
        let payment_stream = StreamId::Payment(PaymentId::parse("pay_1").unwrap());
        let fold = |entries: &[StreamEvent]| match AggregateState::empty(&payment_stream)
            .replay(&stream(entries, &payment_stream))
        {
            Ok(AggregateState::Payment(payment)) => payment.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(fold(&in_order), Some(PaymentStatus::Completed));
        assert_eq!(fold(&shuffled), Some(PaymentStatus::Completed));
    }

    #[test]
    fn a_snapshot_and_its_tail_equal_the_full_replay() {
        let mut events = Vec::new();
        for n in 0..37 {
            events.push(deposit(&format!("dep_{n}"), "wal_a", 1_000 + n));
            let (requested, outcome) = payment(
                &format!("pay_{n}"),
                "wal_a",
                "wal_b",
                500,
                if n % 3 == 0 {
                    PaymentStatus::Failed
                } else {
                    PaymentStatus::Completed
                },
            );
            events.extend([outcome, requested]);
        }
        let entries = append_all(&events);
        let stream_id = StreamId::Wallet(wallet("wal_a"));
        let wallet_entries = stream(&entries, &stream_id);
        let full = AggregateState::empty(&stream_id)
            .replay(&wallet_entries)
            .unwrap();
        let every = DEFAULT_SNAPSHOT_EVERY;
        let mut snapshots = 0;
        for cut in (1..=wallet_entries.len() as u64).filter(|v| snapshot_due(*v, every)) {
            snapshots += 1;
            let (head, tail) = wallet_entries.split_at(cut as usize);
            let snapshot = AggregateState::empty(&stream_id).replay(head).unwrap();
            assert_eq!(snapshot.version(), cut);
            // What a store holds: the snapshot as JSON.
            let stored: AggregateState =
                serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap();
            assert_eq!(stored.replay(tail).unwrap(), full);
        }
        assert!(snapshots >= 6, "{snapshots} snapshots");
        let AggregateState::Wallet(a) = full else {
            panic!("a wallet")
        };
        let credited: u64 = (0..37).map(|n| 1_000 + n).sum();
        let paid = 500 * (0..37).filter(|n| n % 3 != 0).count() as u64;
        assert_eq!(a.balance(), Ok(Some(eur(credited - paid))));
    }

    #[test]
    fn a_gap_or_another_streams_event_does_not_fold() {
        let entries = stream(
            &append_all(&[deposit("dep_1", "wal_a", 1), deposit("dep_2", "wal_a", 2)]),
            &StreamId::Wallet(wallet("wal_a")),
        );
        let state = AggregateState::empty(&StreamId::Wallet(wallet("wal_a")));
        assert!(matches!(
            state.clone().replay(&entries[1..]),
            Err(HistoryError::OutOfSequence {
                expected: 1,
                found: 2,
                ..
            })
        ));
        let other = AggregateState::empty(&StreamId::Wallet(wallet("wal_b")));
        assert!(matches!(
            other.replay(&entries),
            Err(HistoryError::WrongStream { .. })
        ));
    }

    #[test]
    fn two_outcomes_of_one_payment_are_an_error() {
        let (_, completed) = payment("pay_1", "wal_a", "wal_b", 10, PaymentStatus::Completed);
        let (_, failed) = payment("pay_1", "wal_a", "wal_b", 10, PaymentStatus::Failed);
        let mut failed = failed;
        if let DomainEvent::PaymentFailed(detail) = &mut failed {
            detail.event_id = "pay_1/5".to_owned();
        }
        let entries = append_all(&[completed, failed]);
        let stream_id = StreamId::Payment(PaymentId::parse("pay_1").unwrap());
        assert!(matches!(
            AggregateState::empty(&stream_id).replay(&stream(&entries, &stream_id)),
            Err(HistoryError::Inconsistent { .. })
        ));
    }

    #[test]
    fn more_debited_than_credited_has_no_balance() {
        let (_, completed) = payment("pay_1", "wal_a", "wal_b", 10, PaymentStatus::Completed);
        let a = rebuilt_wallet(&append_all(&[completed]), "wal_a");
        assert!(matches!(a.balance(), Err(HistoryError::Money { .. })));
        assert_eq!(a.currency().map(Currency::code), Some("EUR"));
    }
}
