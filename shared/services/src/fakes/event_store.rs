//! The audit trail's event store in memory, with the DynamoDB adapter's rules: one append per
//! event id, each stream numbered in arrival order, a snapshot every `snapshot_every` versions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use paysaga_domain::DomainEvent;
use paysaga_domain::WalletId;
use paysaga_domain::history::{
    AggregateState, HOT_WALLET_STREAM_PARTS, RecordedEvent, StreamEvent, StreamId, snapshot_due,
    streams_of,
};
use paysaga_domain::ports::{
    AppendOutcome, Contention, EventPage, EventPageToken, EventStore, StoreError,
};

/// An [`EventStore`] in one process's memory.
pub struct InMemoryEventStore {
    snapshot_every: u64,
    unavailable: AtomicBool,
    contended: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Every event once, by event id (the order of [`EventStore::all_events`]).
    events: BTreeMap<String, RecordedEvent>,
    streams: HashMap<StreamId, Vec<StreamEvent>>,
    snapshots: HashMap<StreamId, BTreeMap<u64, AggregateState>>,
    /// The wallets whose streams are spread over parts, and how many.
    wallet_parts: HashMap<WalletId, u16>,
}

impl State {
    /// Appends `event` to `streams` at their next versions, with the snapshots due.
    fn append_to(
        &mut self,
        event: &DomainEvent,
        streams: Vec<StreamId>,
        now: DateTime<Utc>,
        snapshot_every: u64,
    ) -> AppendOutcome {
        let mut positions = Vec::new();
        for stream in streams {
            let entries = self.streams.entry(stream.clone()).or_default();
            let entry = StreamEvent {
                stream: stream.clone(),
                version: entries.len() as u64 + 1,
                event: event.clone(),
                recorded_at: now,
            };
            entries.push(entry.clone());
            positions.push((stream.clone(), entry.version));
            if snapshot_due(entry.version, snapshot_every) {
                let entries = entries.clone();
                let snapshots = self.snapshots.entry(stream.clone()).or_default();
                let start = snapshots
                    .values()
                    .next_back()
                    .cloned()
                    .unwrap_or_else(|| AggregateState::empty(&stream));
                let tail = entries.iter().skip(start.version() as usize);
                match start.replay(tail) {
                    Ok(folded) => {
                        snapshots.insert(entry.version, folded);
                    }
                    Err(error) => {
                        tracing::warn!(stream = %stream, %error, "no snapshot: the stream does not fold")
                    }
                }
            }
        }
        self.events.insert(
            event.event_id().to_owned(),
            RecordedEvent {
                event: event.clone(),
                recorded_at: now,
                positions: positions.clone(),
            },
        );
        AppendOutcome::Appended(positions)
    }

    /// The stream an event of `stream` goes to: for a wallet spread over parts, one of them at
    /// random (the DynamoDB adapter's choice too: the event's marker makes it once in any).
    fn part_of(&self, stream: StreamId) -> StreamId {
        match stream {
            StreamId::Wallet(wallet) => match self.wallet_parts.get(&wallet) {
                Some(&parts) if parts > 1 => {
                    let part = fastrand::u16(..parts);
                    StreamId::wallet_part(wallet, part)
                }
                _ => StreamId::Wallet(wallet),
            },
            other => other,
        }
    }
}

/// How many events a page of [`InMemoryEventStore::all_events`] holds at most.
const PAGE_SIZE: usize = 100;

impl InMemoryEventStore {
    pub fn new(snapshot_every: u64) -> Self {
        Self {
            snapshot_every,
            unavailable: AtomicBool::new(false),
            contended: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// While `true`, every call fails as a store outage does ([`StoreError::Transient`]).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// While `true`, every append loses to other appends to its streams, through every retry
    /// a store would make ([`StoreError::Contended`]).
    pub fn set_contended(&self, contended: bool) {
        self.contended.store(contended, Ordering::SeqCst);
    }

    /// Spreads `wallet`'s stream over [`HOT_WALLET_STREAM_PARTS`] parts, as the DynamoDB
    /// adapter does once appends to it contend: each later event of the wallet goes to one of
    /// them, at random.
    pub fn spread_wallet_stream(&self, wallet: &WalletId) {
        self.state()
            .wallet_parts
            .insert(wallet.clone(), HOT_WALLET_STREAM_PARTS);
    }

    /// The head (last version) of each stream `event` would be appended to now, its wallets'
    /// parts chosen: what a store reads before it writes the next versions.
    pub fn heads_for(&self, event: &DomainEvent) -> Vec<(StreamId, u64)> {
        let state = self.state();
        streams_of(event)
            .into_iter()
            .map(|stream| {
                let stream = state.part_of(stream);
                let head = state.streams.get(&stream).map_or(0, Vec::len) as u64;
                (stream, head)
            })
            .collect()
    }

    /// Appends `event` at the heads [`Self::heads_for`] read, as a store's conditional writes
    /// do; nothing written, and the streams whose heads another append moved since, when
    /// there are any.
    pub fn append_at(
        &self,
        event: &DomainEvent,
        heads: &[(StreamId, u64)],
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome, Vec<StreamId>> {
        let mut state = self.state();
        if state.events.contains_key(event.event_id()) {
            return Ok(AppendOutcome::Duplicate);
        }
        let moved: Vec<StreamId> = heads
            .iter()
            .filter(|(stream, head)| state.streams.get(stream).map_or(0, Vec::len) as u64 != *head)
            .map(|(stream, _)| stream.clone())
            .collect();
        if !moved.is_empty() {
            return Err(moved);
        }
        let streams = heads.iter().map(|(stream, _)| stream.clone()).collect();
        Ok(state.append_to(event, streams, now, self.snapshot_every))
    }

    /// The versions that hold a snapshot of `stream`.
    pub fn snapshot_versions(&self, stream: &StreamId) -> Vec<u64> {
        self.state()
            .snapshots
            .get(stream)
            .map(|snapshots| snapshots.keys().copied().collect())
            .unwrap_or_default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        super::lock(&self.state)
    }

    fn available(&self) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Transient(
                "the event store is unavailable".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append(
        &self,
        event: &DomainEvent,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome, StoreError> {
        self.available()?;
        let mut state = self.state();
        if state.events.contains_key(event.event_id()) {
            return Ok(AppendOutcome::Duplicate);
        }
        if self.contended.load(Ordering::SeqCst) {
            return Err(StoreError::Contended(
                Contention::Conflict,
                format!(
                    "event {}: other appends took its versions",
                    event.event_id()
                ),
            ));
        }
        let streams: Vec<StreamId> = streams_of(event)
            .into_iter()
            .map(|stream| state.part_of(stream))
            .collect();
        Ok(state.append_to(event, streams, now, self.snapshot_every))
    }

    async fn stream(&self, stream: &StreamId, after: u64) -> Result<Vec<StreamEvent>, StoreError> {
        self.available()?;
        let state = self.state();
        let entries = state.streams.get(stream).map(Vec::as_slice).unwrap_or(&[]);
        Ok(entries
            .iter()
            .filter(|entry| entry.version > after)
            .cloned()
            .collect())
    }

    async fn wallet_parts(&self, wallet: &WalletId) -> Result<u16, StoreError> {
        self.available()?;
        Ok(self.state().wallet_parts.get(wallet).copied().unwrap_or(1))
    }

    async fn latest_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<AggregateState>, StoreError> {
        self.available()?;
        Ok(self
            .state()
            .snapshots
            .get(stream)
            .and_then(|snapshots| snapshots.values().next_back().cloned()))
    }

    async fn all_events(
        &self,
        page: Option<&EventPageToken>,
        max_items: usize,
    ) -> Result<EventPage, StoreError> {
        self.available()?;
        let state = self.state();
        let after = page.map(|token| token.0.as_str());
        let mut events = state
            .events
            .iter()
            .filter(|(event_id, _)| after.is_none_or(|after| event_id.as_str() > after));
        let page: Vec<(&String, &RecordedEvent)> = events
            .by_ref()
            .take(PAGE_SIZE.min(max_items.max(1)))
            .collect();
        let next = match (events.next(), page.last()) {
            (Some(_), Some((last, _))) => Some(EventPageToken((*last).clone())),
            _ => None,
        };
        Ok(EventPage {
            events: page.into_iter().map(|(_, event)| event.clone()).collect(),
            next,
        })
    }

    /// Pages are in event id order: the next one starts after this id.
    fn resume_after(&self, event: &RecordedEvent) -> EventPageToken {
        EventPageToken(event.event.event_id().to_owned())
    }
}
