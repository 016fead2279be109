//! The audit trail's event store in DynamoDB: one table, key `stream` (string) and `version`
//! (number), four kinds of item (`kind`):
//!
//! - `entry`: an event in a stream, `stream` = `payment#<id>`, `wallet#<id>` or
//!   `operator#<key>`, `version` = 1, 2, 3, ... in arrival order; an event's entry in its
//!   payment's stream is also its claim (below), and names the positions it was given
//!   (`positions`);
//! - `event`: the claim of an event that is about no payment (a deposit, an operator's action),
//!   once per event, `stream` = `event#<event_id>`, `version` = 0, holding the event and the
//!   positions it was given;
//! - `snapshot`: an aggregate folded up to a version, `stream` = `snapshot#<stream>`;
//! - `parts`: how many parts a hot wallet's stream is spread over, `stream` =
//!   `parts#wallet#<id>`, `version` = 0 (absent for a wallet whose events all go to its own
//!   stream).
//!
//! The claims are what [`EventStore::all_events`] pages through: each event once.
//!
//! An append is plain conditional puts, no transaction (a transactional write costs twice the
//! write units of a plain one), in two moves:
//!
//! 1. **The claim.** It reads the head of each stream the event is about (a consistent query for
//!    the last version) and puts the event's claim, on the condition that its key is free,
//!    naming the position it plans in each stream (`head + 1`):
//!    - a payment's event is claimed by its entry in the payment's stream, the first of its
//!      streams. A payment's stream holds a handful of events, so the append reads all of it:
//!      finding the event there, it takes that entry's positions and goes on with them; not
//!      finding it, it puts the entry at the head + 1, or reads the stream again if another
//!      event of the payment took that version;
//!    - any other event is claimed by its marker. The marker's condition failing means the event
//!      was claimed before (a redelivery, or another delivery at once): the append takes the
//!      positions the marker names, and goes on with them.
//! 2. **The entries.** It puts the event's entry at each other position, on the condition that
//!    the key is free. An entry that finds its key taken by the same event (the event id it
//!    holds) was placed before; one that finds another event there lost its version to a
//!    concurrent append: the append reads that stream's head again, moves the claim's position
//!    for it (on the condition that the claim still names the old one, so two deliveries of the
//!    event agree on one), and puts the entry there; a bounded number of times.
//!
//! So a delivery that stopped anywhere is finished by the next one, every event is once in
//! each of its streams, and the streams are numbered without gaps (an entry goes only where
//! the stream's head + 1 was free when it was planned, and a planned version still free is
//! still the head + 1, as entries are never deleted). A stream's snapshot is put after the
//! entry whose version is due one (a crash can leave it out: a reader replays more). Every
//! event's `detail` is stored as the JSON the contracts define, and read back through
//! [`DomainEvent::parse`]. The append that made the claim reports the event appended; any
//! other, a duplicate, whether or not it finished what the claim's first delivery left undone
//! (so two deliveries at once report it appended once). A payment's event appended whole before claims were kept (one transaction wrote
//! a marker and every entry) has an entry without positions: found, it is a duplicate.
//!
//! A wallet's stream takes one append at a time: many payments into one wallet at once would
//! queue on its head. An append that keeps losing on a wallet's stream
//! ([`contention::SPREAD_AFTER`] times) spreads it over [`HOT_WALLET_STREAM_PARTS`] parts
//! (`wallet#<id>#<k>`, [`StreamId::WalletPart`]; the wallet's own stream is part 0) by writing
//! its `parts` item, and each later event of the wallet goes to one part, at random: each part
//! numbered without gaps, the event once in one of them (its claim), the wallet rebuilt from
//! them all. An instance learns a wallet's parts when an append of it loses (it reads the
//! `parts` item then): until it does, it appends to part 0, which is always right.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use tracing::warn;

use super::dynamodb::{Item, n, s, sdk_error};
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
/// The attribute of a claim naming its event's positions.
const POSITIONS: &str = "positions";

/// The DynamoDB adapter of [`EventStore`].
#[derive(Debug, Clone)]
pub struct DynamoDbEventStore {
    client: Client,
    table: String,
    snapshot_every: u64,
    /// The wallets whose streams this instance knows are spread, and over how many parts.
    spread: Arc<Mutex<HashMap<WalletId, u16>>>,
}

/// Where an event's claim on its positions is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Its marker (`event#<event_id>`).
    Marker,
    /// Its entry in its payment's stream, the first of its streams: a payment's stream holds a
    /// handful of events, so reading all of it tells whether the event is there, and the entry
    /// needs no marker beside it (one write fewer an event).
    PaymentEntry,
}

impl Claim {
    fn of(streams: &[StreamId]) -> Self {
        match streams.first() {
            Some(StreamId::Payment(_)) => Self::PaymentEntry,
            _ => Self::Marker,
        }
    }
}

/// Where an append found an entry's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// Free: the entry is there now.
    Now,
    /// Holding this event already: an earlier delivery placed it.
    Before,
    /// Holding another event: its append took the version first.
    Taken,
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

    /// The positions the event's marker names, when it has one (a consistent read).
    async fn claimed_positions(
        &self,
        event: &DomainEvent,
    ) -> Result<Option<Vec<(StreamId, u64)>>, StoreError> {
        self.claimed_at(Self::marker_key(event)).await
    }

    /// The positions the claim at `key` names, when it is there (a consistent read).
    async fn claimed_at(&self, key: Item) -> Result<Option<Vec<(StreamId, u64)>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        output
            .item
            .map(|item| recorded_event(&item).map(|recorded| recorded.positions))
            .transpose()
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

    /// Puts the snapshot of `stream` folded up to `version` (an entry just placed there),
    /// unless its key is taken (another delivery put it). A stream that does not fold gets none,
    /// with a warning: a broken invariant, which must not hold the event up.
    async fn put_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let start = self
            .latest_snapshot(stream)
            .await?
            .unwrap_or_else(|| AggregateState::empty(stream));
        if start.version() >= version {
            return Ok(());
        }
        let tail: Vec<StreamEvent> = self
            .stream(stream, start.version())
            .await?
            .into_iter()
            .take_while(|entry| entry.version <= version)
            .collect();
        match start.replay(&tail) {
            Ok(state) if state.version() == version => {
                self.put_if_free(snapshot_item(&state, now)?).await?;
            }
            Ok(state) => {
                warn!(%stream, version, folded = state.version(), "no snapshot: entries missing below it");
            }
            Err(error) => {
                warn!(%stream, %error, "no snapshot: the stream does not fold");
            }
        }
        Ok(())
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

    /// The positions an append of `event` plans: the head + 1 of each of its streams (a hot
    /// wallet's: of one of its parts), every head read at once (the sooner the versions are
    /// taken, the fewer appends take them first).
    async fn plan(&self, streams: &[StreamId]) -> Result<Vec<(StreamId, u64)>, StoreError> {
        let streams: Vec<StreamId> = streams
            .iter()
            .map(|stream| self.part_of(stream.clone()))
            .collect();
        let heads =
            futures::future::try_join_all(streams.iter().map(|stream| self.head_of(stream)))
                .await?;
        Ok(streams
            .into_iter()
            .zip(heads.into_iter().map(|head| head + 1))
            .collect())
    }

    /// Claims positions for `event` (see [`Claim`]): `true` with them when this append claimed
    /// them, the positions of the claim made before otherwise; `None` for an event appended
    /// whole before claims were kept (one transaction put it everywhere).
    async fn claim(
        &self,
        event: &DomainEvent,
        streams: &[StreamId],
        now: DateTime<Utc>,
    ) -> Result<Option<(Vec<(StreamId, u64)>, bool)>, StoreError> {
        match Claim::of(streams) {
            Claim::Marker => self.claim_with_marker(event, streams, now).await.map(Some),
            Claim::PaymentEntry => self.claim_in_payment_stream(event, streams, now).await,
        }
    }

    /// The marker, naming the positions planned now; or, when it has one already, the
    /// positions it names.
    async fn claim_with_marker(
        &self,
        event: &DomainEvent,
        streams: &[StreamId],
        now: DateTime<Utc>,
    ) -> Result<(Vec<(StreamId, u64)>, bool), StoreError> {
        let positions = self.plan(streams).await?;
        if self
            .put_if_free(marker_item(event, now, &positions))
            .await?
        {
            return Ok((positions, true));
        }
        let claimed = self.claimed_positions(event).await?.ok_or_else(|| {
            StoreError::Transient(format!(
                "event {}: its marker's key is taken, but no marker is there",
                event.event_id()
            ))
        })?;
        Ok((claimed, false))
    }

    /// The event's entry in its payment's stream, at its head + 1, naming every position
    /// planned now; or, when the stream holds the event already (a query of the whole of it:
    /// a payment has a handful of events), the positions that entry names.
    async fn claim_in_payment_stream(
        &self,
        event: &DomainEvent,
        streams: &[StreamId],
        now: DateTime<Utc>,
    ) -> Result<Option<(Vec<(StreamId, u64)>, bool)>, StoreError> {
        let (payment, others) = streams
            .split_first()
            .ok_or_else(|| StoreError::Permanent("an event of no stream".to_owned()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let items = self.query_after(&payment.to_string(), 0).await?;
            for item in &items {
                if string(item, "event_id")? == event.event_id() {
                    let recorded = recorded_event(item)?;
                    return Ok(
                        (!recorded.positions.is_empty()).then_some((recorded.positions, false))
                    );
                }
            }
            let head = match items.last() {
                Some(item) => number(item, "version")?,
                None => 0,
            };
            let mut positions = vec![(payment.clone(), head + 1)];
            positions.extend(self.plan(others).await?);
            let entry = StreamEvent {
                stream: payment.clone(),
                version: head + 1,
                event: event.clone(),
                recorded_at: now,
            };
            let mut item = entry_item(&entry);
            item.insert(POSITIONS.to_owned(), positions_value(&positions));
            if self.put_if_free(item).await? {
                if snapshot_due(head + 1, self.snapshot_every) {
                    self.put_snapshot(payment, head + 1, now).await?;
                }
                return Ok(Some((positions, true)));
            }
            // Another event of the payment took the version: read the stream again.
            let Some(backoff) = ContentionRetry::STORE.backoff_after(attempt) else {
                return Err(StoreError::Contended(
                    Contention::Conflict,
                    format!("event {}: {payment} kept moving", event.event_id()),
                ));
            };
            tokio::time::sleep(backoff).await;
        }
    }

    /// Puts `event`'s entry at `version` of `stream`, unless the key is taken: by this event
    /// (placed before) or another.
    async fn place(
        &self,
        event: &DomainEvent,
        stream: &StreamId,
        version: u64,
        now: DateTime<Utc>,
    ) -> Result<Placed, StoreError> {
        let entry = StreamEvent {
            stream: stream.clone(),
            version,
            event: event.clone(),
            recorded_at: now,
        };
        if self.put_if_free(entry_item(&entry)).await? {
            return Ok(Placed::Now);
        }
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(&stream.to_string(), version)))
            .projection_expression("event_id")
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        let holder = output.item.as_ref().map(|item| string(item, "event_id"));
        match holder {
            Some(Ok(holder)) if holder == event.event_id() => Ok(Placed::Before),
            Some(Ok(_)) => Ok(Placed::Taken),
            Some(Err(error)) => Err(error),
            None => Err(StoreError::Transient(format!(
                "{stream} version {version}: taken, then gone"
            ))),
        }
    }

    /// Moves the claim's positions from `from` to `to` (another stream's head + 1 for the
    /// ones whose version another event took), unless another delivery of the event moved them
    /// first: the positions the claim names afterwards.
    async fn move_claim(
        &self,
        event: &DomainEvent,
        claim: Claim,
        from: &[(StreamId, u64)],
        to: &[(StreamId, u64)],
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        let claim_key = match (claim, from.first()) {
            (Claim::PaymentEntry, Some((payment, version))) => key(&payment.to_string(), *version),
            _ => Self::marker_key(event),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(claim_key.clone()))
            .update_expression("SET positions = :to")
            .condition_expression("positions = :from")
            .expression_attribute_values(":from", positions_value(from))
            .expression_attribute_values(":to", positions_value(to))
            .send()
            .await;
        match result {
            Ok(_) => Ok(to.to_vec()),
            Err(error) if super::dynamodb::is_conditional_check_failure(&error) => self
                .claimed_at(claim_key)
                .await?
                .ok_or_else(|| StoreError::Transient("an event's claim is gone".to_owned())),
            Err(error) => Err(sdk_error("UpdateItem", error)),
        }
    }

    /// Puts `item` on the condition that its key is free: `false` when it is not.
    async fn put_if_free(&self, item: Item) -> Result<bool, StoreError> {
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
            Ok(_) => Ok(true),
            Err(error) if super::dynamodb::is_conditional_check_failure(&error) => Ok(false),
            Err(error) => Err(sdk_error("PutItem", error)),
        }
    }
}

#[async_trait]
impl EventStore for DynamoDbEventStore {
    async fn append(
        &self,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome, StoreError> {
        let streams = streams_of(event);
        let claim = Claim::of(&streams);
        let Some((mut positions, claimed)) = self.claim(event, &streams, now).await? else {
            return Ok(AppendOutcome::Duplicate);
        };
        if positions.len() != streams.len() {
            return Err(StoreError::Permanent(format!(
                "event {}: its claim names {} positions for its {} streams",
                event.event_id(),
                positions.len(),
                streams.len()
            )));
        }
        let (mut attempt, mut losses) = (0, HashMap::<WalletId, u32>::new());
        loop {
            attempt += 1;
            // A claim in the payment's stream is that stream's entry: placed with the claim.
            let placed = futures::future::try_join_all(positions.iter().enumerate().map(
                |(index, (stream, version))| async move {
                    if index == 0 && claim == Claim::PaymentEntry {
                        return Ok(Placed::Before);
                    }
                    self.place(event, stream, *version, now).await
                },
            ))
            .await?;
            for ((stream, version), _) in positions
                .iter()
                .zip(&placed)
                .filter(|(_, placed)| **placed == Placed::Now)
            {
                if snapshot_due(*version, self.snapshot_every) {
                    self.put_snapshot(stream, *version, now).await?;
                }
            }
            let lost: Vec<usize> = (0..placed.len())
                .filter(|&index| placed[index] == Placed::Taken)
                .collect();
            if lost.is_empty() {
                return Ok(if claimed {
                    AppendOutcome::Appended(positions)
                } else {
                    AppendOutcome::Duplicate
                });
            }
            // A wallet's stream this append lost on: spread already (by another instance)?
            // Spread it, once it has lost there often enough.
            for wallet in lost.iter().filter_map(|&index| streams[index].wallet()) {
                let count = losses.entry(wallet.clone()).or_default();
                *count += 1;
                if *count == 1 {
                    self.read_parts(wallet).await?;
                } else if *count == contention::SPREAD_AFTER {
                    self.spread_stream(wallet).await?;
                }
            }
            let Some(backoff) = ContentionRetry::STORE.backoff_after(attempt) else {
                return Err(StoreError::Contended(
                    Contention::Conflict,
                    format!(
                        "event {}: concurrent appends took its versions {attempt} times",
                        event.event_id()
                    ),
                ));
            };
            tokio::time::sleep(backoff).await;
            let lost_streams: Vec<StreamId> =
                lost.iter().map(|&index| streams[index].clone()).collect();
            let mut replanned = self.plan(&lost_streams).await?.into_iter();
            let mut moved = positions.clone();
            for &index in &lost {
                if let Some(position) = replanned.next() {
                    moved[index] = position;
                }
            }
            positions = self.move_claim(event, claim, &positions, &moved).await?;
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

    /// A consistent `Scan` of the claims (markers, and payments' entries naming positions):
    /// each event once, in DynamoDB's scan order (by hash of the key, no time order). A page
    /// reads `max_items` items (its `Limit`; other entries and snapshots count, the filter
    /// keeps the claims) or 1 MB, whichever comes first; the next-page token is the last key
    /// read.
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
            .filter_expression("#kind = :event OR attribute_exists(#positions)")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#positions", POSITIONS)
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

    /// The key of the event's claim (its marker, or its payment's stream entry): a scan started
    /// after it goes on with the item after it.
    fn resume_after(&self, event: &RecordedEvent) -> EventPageToken {
        let claim = match (
            Claim::of(&streams_of(&event.event)),
            event.positions.first(),
        ) {
            (Claim::PaymentEntry, Some((payment, version))) => (payment.to_string(), *version),
            _ => (format!("{EVENT}#{}", event.event.event_id()), 0u64),
        };
        EventPageToken(
            serde_json::to_string(&claim).expect("a (string, number) pair always encodes as JSON"),
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
    item.insert(POSITIONS.to_owned(), positions_value(positions));
    item
}

/// A claim's `positions`: a list of `{stream, version}` maps, in the order of the event's
/// streams ([`streams_of`]).
fn positions_value(positions: &[(StreamId, u64)]) -> AttributeValue {
    AttributeValue::L(
        positions
            .iter()
            .map(|(stream, version)| {
                AttributeValue::M(HashMap::from([
                    ("stream".to_owned(), s(&stream.to_string())),
                    ("version".to_owned(), n(*version)),
                ]))
            })
            .collect(),
    )
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
