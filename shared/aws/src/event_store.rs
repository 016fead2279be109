//! The audit trail's event store in DynamoDB: one table, key `stream` (string) and `version`
//! (number), three kinds of item (`kind`):
//!
//! - `entry`: an event in a stream, `stream` = `payment#<id>`, `wallet#<id>` or
//!   `operator#<key>`, `version` = 1, 2, 3, ... in arrival order;
//! - `event`: the event's de-duplication marker, once per event, `stream` = `event#<event_id>`,
//!   `version` = 0, holding the event and the stream positions it was given (what
//!   [`EventStore::all_events`] pages through);
//! - `snapshot`: an aggregate folded up to a version, `stream` = `snapshot#<stream>`;
//! - `parts`: how many parts a hot wallet's stream is spread over, `stream` =
//!   `parts#wallet#<id>`, `version` = 0 (absent for a wallet whose events all go to its own
//!   stream).
//!
//! An append reads the head of each stream the event is about (a consistent query for the last
//! version), then writes the marker and one entry per stream at `head + 1`, each put on the
//! condition that its key is free, in one `TransactWriteItems` (with a snapshot of a stream whose
//! new version is due one). The marker's condition failing means the event is in the store
//! already (a duplicate delivery): nothing was written. An entry's failing means another append
//! took that version first: heads are read again and the append retried, a bounded number of
//! times. Every event's `detail` is stored as the JSON the contracts define, and read back
//! through [`DomainEvent::parse`].
//!
//! A wallet's stream takes one append at a time: many payments into one wallet at once would
//! queue on its head. An append that keeps losing on a wallet's stream
//! ([`contention::SPREAD_AFTER`] times) spreads it over [`HOT_WALLET_STREAM_PARTS`] parts
//! (`wallet#<id>#<k>`, [`StreamId::WalletPart`]; the wallet's own stream is part 0) by writing
//! its `parts` item, and each later event of the wallet goes to one part, at random: each part
//! numbered without gaps, the event once in one of them (its marker), the wallet rebuilt from
//! them all. An instance learns a wallet's parts when an append of it loses (it reads the
//! `parts` item then): until it does, it appends to part 0, which is always right.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use tracing::warn;

use super::dynamodb::{Item, build_error, contention_of, n, s, sdk_error};
use paysaga_domain::history::{
    AggregateState, HOT_WALLET_STREAM_PARTS, RecordedEvent, StreamEvent, StreamId, snapshot_due,
    streams_of,
};
use paysaga_domain::ports::{
    AppendOutcome, Contention, EventPage, EventPageToken, EventStore, StoreError,
};
use paysaga_domain::{DomainEvent, WalletId};
use paysaga_services::contention::{self, ContentionRetry};

/// The condition of every put: its key is free.
const KEY_IS_FREE: &str = "attribute_not_exists(#stream)";

const ENTRY: &str = "entry";
const EVENT: &str = "event";
const SNAPSHOT: &str = "snapshot";
const PARTS: &str = "parts";

/// The DynamoDB adapter of [`EventStore`].
#[derive(Debug, Clone)]
pub struct DynamoDbEventStore {
    client: Client,
    table: String,
    snapshot_every: u64,
    /// The wallets whose streams this instance knows are spread, and over how many parts.
    spread: Arc<Mutex<HashMap<WalletId, u16>>>,
}

/// The snapshot an append is due to write with an entry.
enum Snapshot {
    Folded(AggregateState),
    /// The stream does not fold (a broken invariant, logged): the entry goes without one.
    Unfoldable,
    /// Another append took the entry's version meanwhile.
    VersionTaken,
}

/// What became of one attempt at an append.
enum Attempt {
    Committed(Vec<(StreamId, u64)>),
    Duplicate,
    /// Another append took a version of these streams, or a transaction on them conflicted:
    /// read the heads again.
    Conflict {
        streams: Vec<StreamId>,
        codes: String,
    },
}

impl DynamoDbEventStore {
    /// `snapshot_every`: a snapshot with every version that is a multiple of it (0: none).
    pub fn new(client: Client, table: impl Into<String>, snapshot_every: u64) -> Self {
        Self {
            client,
            table: table.into(),
            snapshot_every,
            spread: Arc::default(),
        }
    }

    pub fn from_config(
        config: &aws_config::SdkConfig,
        table: impl Into<String>,
        snapshot_every: u64,
    ) -> Self {
        Self::new(
            lambda_toolkit::aws::calls::dynamodb(config),
            table,
            snapshot_every,
        )
    }

    fn marker_key(event: &DomainEvent) -> Item {
        key(&format!("{EVENT}#{}", event.event_id()), 0)
    }

    async fn is_recorded(&self, event: &DomainEvent) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::marker_key(event)))
            .projection_expression("#stream")
            .expression_attribute_names("#stream", "stream")
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        Ok(output.item.is_some())
    }

    async fn head_of(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.head(&stream.to_string()).await
    }

    /// The last version of a stream (0 when it has none).
    async fn head(&self, stream_key: &str) -> Result<u64, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#stream = :stream")
            .expression_attribute_names("#stream", "stream")
            .expression_attribute_values(":stream", s(stream_key))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("Query", error))?;
        match output.items.unwrap_or_default().first() {
            Some(item) => number(item, "version"),
            None => Ok(0),
        }
    }

    /// Every item of a partition with a version above `after`, in version order.
    async fn query_after(&self, stream_key: &str, after: u64) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#stream = :stream AND #version > :after")
                .expression_attribute_names("#stream", "stream")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":stream", s(stream_key))
                .expression_attribute_values(":after", n(after))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|error| sdk_error("Query", error))?;
            items.extend(output.items.unwrap_or_default());
            start_key = output.last_evaluated_key;
            if start_key.is_none() {
                return Ok(items);
            }
        }
    }

    /// The aggregate of `entry`'s stream folded up to `entry`, for a snapshot; `None` (and a
    /// warning) when the stream does not fold, which leaves the append without it.
    async fn snapshot_with(&self, entry: &StreamEvent) -> Result<Snapshot, StoreError> {
        let start = self
            .latest_snapshot(&entry.stream)
            .await?
            .unwrap_or_else(|| AggregateState::empty(&entry.stream));
        let tail = self.stream(&entry.stream, start.version()).await?;
        let head = tail.last().map_or(start.version(), |last| last.version);
        if head >= entry.version {
            // A concurrent append went past the head read: its version is taken.
            return Ok(Snapshot::VersionTaken);
        }
        match start.replay(tail.iter().chain([entry])) {
            Ok(state) => Ok(Snapshot::Folded(state)),
            Err(error) => {
                warn!(stream = %entry.stream, %error, "no snapshot: the stream does not fold");
                Ok(Snapshot::Unfoldable)
            }
        }
    }

    /// The stream an event of `stream` goes to: for a wallet whose stream is spread, one of
    /// its parts at random.
    fn part_of(&self, stream: StreamId) -> StreamId {
        let StreamId::Wallet(wallet) = stream else {
            return stream;
        };
        let spread = self.spread.lock().unwrap_or_else(PoisonError::into_inner);
        match spread.get(&wallet) {
            Some(&parts) if parts > 1 => StreamId::wallet_part(wallet, fastrand::u16(..parts)),
            _ => StreamId::Wallet(wallet),
        }
    }

    fn parts_key(wallet: &WalletId) -> Item {
        key(&format!("{PARTS}#{}", StreamId::Wallet(wallet.clone())), 0)
    }

    /// How many parts `wallet`'s stream is spread over, as its `parts` item says (1 without
    /// one); remembered when more than 1.
    async fn read_parts(&self, wallet: &WalletId) -> Result<u16, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::parts_key(wallet)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        let parts = match output.item {
            Some(item) => u16::try_from(number(&item, PARTS)?)
                .map_err(|error| corrupt("a stream's parts", error))?,
            None => 1,
        };
        if parts > 1 {
            self.spread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(wallet.clone(), parts);
        }
        Ok(parts)
    }

    /// Spreads `wallet`'s stream over [`HOT_WALLET_STREAM_PARTS`] parts, unless it is spread
    /// already, and remembers them.
    async fn spread_stream(&self, wallet: &WalletId) -> Result<(), StoreError> {
        let mut item = Self::parts_key(wallet);
        item.insert("kind".to_owned(), s(PARTS));
        item.insert(PARTS.to_owned(), n(u64::from(HOT_WALLET_STREAM_PARTS)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(KEY_IS_FREE)
            .expression_attribute_names("#stream", "stream")
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(wallet_id = %wallet, parts = HOT_WALLET_STREAM_PARTS, "a hot wallet's stream spread over parts");
            }
            Err(error) if super::dynamodb::is_conditional_check_failure(&error) => {}
            Err(error) => return Err(sdk_error("PutItem", error)),
        }
        self.read_parts(wallet).await.map(|_| ())
    }

    async fn attempt(
        &self,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<Attempt, StoreError> {
        // Every head at once: the sooner the versions are taken, the fewer appends take them
        // first.
        let streams: Vec<StreamId> = streams_of(event)
            .into_iter()
            .map(|stream| self.part_of(stream))
            .collect();
        let heads =
            futures::future::try_join_all(streams.iter().map(|stream| self.head_of(stream)))
                .await?;
        let entries: Vec<StreamEvent> = streams
            .into_iter()
            .zip(heads)
            .map(|(stream, head)| StreamEvent {
                stream,
                version: head + 1,
                event: event.clone(),
                recorded_at: now,
            })
            .collect();
        let positions: Vec<(StreamId, u64)> = entries
            .iter()
            .map(|entry| (entry.stream.clone(), entry.version))
            .collect();
        // The marker first: its index (0) in the cancellation reasons says "duplicate".
        let mut items = vec![self.put(marker_item(event, now, &positions))?];
        for entry in &entries {
            items.push(self.put(entry_item(entry))?);
        }
        for entry in entries
            .iter()
            .filter(|entry| snapshot_due(entry.version, self.snapshot_every))
        {
            match self.snapshot_with(entry).await? {
                Snapshot::Folded(state) => items.push(self.put(snapshot_item(&state, now)?)?),
                Snapshot::Unfoldable => {}
                Snapshot::VersionTaken => {
                    return Ok(Attempt::Conflict {
                        streams: vec![entry.stream.clone()],
                        codes: format!("{} version {} taken", entry.stream, entry.version),
                    });
                }
            }
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(crate::dynamodb::request_token())
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Attempt::Committed(positions)),
            Err(error) => error,
        };
        let reasons = match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancelled.cancellation_reasons().to_vec()
            }
            _ => return Err(sdk_error("TransactWriteItems", error)),
        };
        if reasons.first().is_some_and(is_condition_failure) {
            return Ok(Attempt::Duplicate);
        }
        let retryable = |reason: &CancellationReason| {
            matches!(
                reason.code(),
                Some("ConditionalCheckFailed" | "TransactionConflict" | "None") | None
            )
        };
        let codes = describe(&reasons);
        if reasons.iter().all(retryable) {
            // The items after the marker are the entries, in `positions`' order, then snapshots.
            let streams = reasons
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, reason)| {
                    matches!(
                        reason.code(),
                        Some("ConditionalCheckFailed" | "TransactionConflict")
                    )
                })
                .filter_map(|(index, _)| positions.get(index - 1).map(|(stream, _)| stream.clone()))
                .collect();
            Ok(Attempt::Conflict { streams, codes })
        } else if let Some(contention) = contention_of(&reasons) {
            Err(StoreError::Contended(
                contention,
                format!("TransactWriteItems cancelled: {codes}"),
            ))
        } else {
            Err(StoreError::Permanent(format!(
                "TransactWriteItems cancelled: {codes}"
            )))
        }
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(KEY_IS_FREE)
            .expression_attribute_names("#stream", "stream")
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait]
impl EventStore for DynamoDbEventStore {
    async fn append(
        &self,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome, StoreError> {
        // The common duplicate (a redelivery) costs one read; a racing one is caught by the
        // marker's condition in the transaction.
        if self.is_recorded(event).await? {
            return Ok(AppendOutcome::Duplicate);
        }
        let (mut attempt, mut losses) = (0, HashMap::<WalletId, u32>::new());
        loop {
            attempt += 1;
            let (streams, conflict) = match self.attempt(event, now).await? {
                Attempt::Committed(positions) => return Ok(AppendOutcome::Appended(positions)),
                Attempt::Duplicate => return Ok(AppendOutcome::Duplicate),
                Attempt::Conflict { streams, codes } => (streams, codes),
            };
            // A wallet's stream this append lost on: spread already (by another instance)?
            // Spread it, once it has lost there often enough.
            for wallet in streams.iter().filter_map(StreamId::wallet) {
                let lost = losses.entry(wallet.clone()).or_default();
                *lost += 1;
                if *lost == 1 {
                    self.read_parts(wallet).await?;
                } else if *lost == contention::SPREAD_AFTER {
                    self.spread_stream(wallet).await?;
                }
            }
            let Some(backoff) = ContentionRetry::STORE.backoff_after(attempt) else {
                return Err(StoreError::Contended(
                    Contention::Conflict,
                    format!(
                        "event {}: a concurrent append took its versions {attempt} times \
                         ({conflict})",
                        event.event_id()
                    ),
                ));
            };
            tokio::time::sleep(backoff).await;
        }
    }

    async fn stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StreamEvent>, StoreError> {
        self.query_after(&stream.to_string(), after)
            .await?
            .into_iter()
            .map(|item| stream_event(stream, &item))
            .collect()
    }

    async fn wallet_parts(&self, wallet: &WalletId) -> Result<u16, StoreError> {
        self.read_parts(wallet).await
    }

    async fn latest_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<AggregateState>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#stream = :stream")
            .expression_attribute_names("#stream", "stream")
            .expression_attribute_values(":stream", s(&format!("{SNAPSHOT}#{stream}")))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("Query", error))?;
        let Some(item) = output.items.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let state: AggregateState = serde_json::from_str(&string(&item, "state")?)
            .map_err(|error| corrupt(&format!("snapshot of {stream}"), error))?;
        Ok(Some(state))
    }

    /// A consistent `Scan` of the markers: each event once, in DynamoDB's scan order (by hash
    /// of the key, no time order). A page reads `max_items` items (its `Limit`; entries and
    /// snapshots count, the filter keeps the markers) or 1 MB, whichever comes first; the
    /// next-page token is the last key read.
    async fn all_events(
        &self,
        page: Option<&EventPageToken>,
        max_items: usize,
    ) -> Result<EventPage, StoreError> {
        let start_key = page.map(start_key).transpose()?;
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("#kind = :event")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":event", s(EVENT))
            .consistent_read(true)
            .limit(i32::try_from(max_items.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|error| sdk_error("Scan", error))?;
        let events = output
            .items
            .unwrap_or_default()
            .iter()
            .map(recorded_event)
            .collect::<Result<_, _>>()?;
        let next = output.last_evaluated_key.map(page_token).transpose()?;
        Ok(EventPage { events, next })
    }

    /// The event's marker key: a scan started after it goes on with the item after it.
    fn resume_after(&self, event: &RecordedEvent) -> EventPageToken {
        EventPageToken(
            serde_json::to_string(&(format!("{EVENT}#{}", event.event.event_id()), 0u64))
                .expect("a (string, number) pair always encodes as JSON"),
        )
    }
}

fn key(stream_key: &str, version: u64) -> Item {
    HashMap::from([
        ("stream".to_owned(), s(stream_key)),
        ("version".to_owned(), n(version)),
    ])
}

/// The attributes an event is stored with, in an entry and in its marker.
fn event_attributes(item: &mut Item, event: &DomainEvent, recorded_at: DateTime<Utc>) {
    item.insert("event_id".to_owned(), s(event.event_id()));
    item.insert("source".to_owned(), s(event.source()));
    item.insert("detail_type".to_owned(), s(event.detail_type()));
    item.insert("detail".to_owned(), s(&event.detail_json()));
    item.insert("recorded_at".to_owned(), s(&recorded_at.to_rfc3339()));
}

fn entry_item(entry: &StreamEvent) -> Item {
    let mut item = key(&entry.stream.to_string(), entry.version);
    item.insert("kind".to_owned(), s(ENTRY));
    event_attributes(&mut item, &entry.event, entry.recorded_at);
    item
}

fn marker_item(event: &DomainEvent, now: DateTime<Utc>, positions: &[(StreamId, u64)]) -> Item {
    let mut item = DynamoDbEventStore::marker_key(event);
    item.insert("kind".to_owned(), s(EVENT));
    event_attributes(&mut item, event, now);
    let positions = positions
        .iter()
        .map(|(stream, version)| {
            AttributeValue::M(HashMap::from([
                ("stream".to_owned(), s(&stream.to_string())),
                ("version".to_owned(), n(*version)),
            ]))
        })
        .collect();
    item.insert("positions".to_owned(), AttributeValue::L(positions));
    item
}

fn snapshot_item(state: &AggregateState, now: DateTime<Utc>) -> Result<Item, StoreError> {
    let mut item = key(&format!("{SNAPSHOT}#{}", state.stream()), state.version());
    item.insert("kind".to_owned(), s(SNAPSHOT));
    let json = serde_json::to_string(state)
        .map_err(|error| StoreError::Permanent(format!("cannot encode a snapshot: {error}")))?;
    item.insert("state".to_owned(), s(&json));
    item.insert("recorded_at".to_owned(), s(&now.to_rfc3339()));
    Ok(item)
}

fn stream_event(stream: &StreamId, item: &Item) -> Result<StreamEvent, StoreError> {
    let (event, recorded_at) = stored_event(item)?;
    Ok(StreamEvent {
        stream: stream.clone(),
        version: number(item, "version")?,
        event,
        recorded_at,
    })
}

fn recorded_event(item: &Item) -> Result<RecordedEvent, StoreError> {
    let (event, recorded_at) = stored_event(item)?;
    let positions = match item.get("positions") {
        Some(AttributeValue::L(positions)) => positions
            .iter()
            .map(|position| {
                let AttributeValue::M(position) = position else {
                    return Err(corrupt("a position", "not a map"));
                };
                let stream = string(position, "stream")?
                    .parse()
                    .map_err(|error| corrupt("a position's stream", error))?;
                Ok((stream, number(position, "version")?))
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok(RecordedEvent {
        event,
        recorded_at,
        positions,
    })
}

fn stored_event(item: &Item) -> Result<(DomainEvent, DateTime<Utc>), StoreError> {
    let event = DomainEvent::parse(
        &string(item, "source")?,
        &string(item, "detail_type")?,
        &string(item, "detail")?,
    )
    .map_err(|error| corrupt("a stored event", error))?;
    let recorded_at = DateTime::parse_from_rfc3339(&string(item, "recorded_at")?)
        .map_err(|error| corrupt("recorded_at", error))?
        .with_timezone(&Utc);
    Ok((event, recorded_at))
}

fn string(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(corrupt(name, "missing or not a string")),
    }
}

fn number(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().map_err(|error| corrupt(name, error)),
        _ => Err(corrupt(name, "missing or not a number")),
    }
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(format!("event store: cannot read {what}: {error}"))
}

/// The next-page token: the last key read, as `[stream, version]` JSON.
fn page_token(last_key: Item) -> Result<EventPageToken, StoreError> {
    let json =
        serde_json::to_string(&(string(&last_key, "stream")?, number(&last_key, "version")?))
            .map_err(|error| corrupt("a page key", error))?;
    Ok(EventPageToken(json))
}

fn start_key(token: &EventPageToken) -> Result<Item, StoreError> {
    let (stream_key, version): (String, u64) = serde_json::from_str(&token.0)
        .map_err(|error| StoreError::Permanent(format!("not an event page token: {error}")))?;
    Ok(key(&stream_key, version))
}

fn is_condition_failure(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}

fn describe(reasons: &[CancellationReason]) -> String {
    let codes: Vec<&str> = reasons
        .iter()
        .map(|reason| reason.code().unwrap_or("?"))
        .collect();
    codes.join(",")
}
