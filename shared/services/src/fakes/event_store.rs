//! The audit trail's event store in memory, with the DynamoDB adapter's rules: one append per
//! event id, each stream numbered in arrival order, a snapshot every `snapshot_every` versions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use paysaga_domain::DomainEvent;
use paysaga_domain::history::{
    AggregateState, RecordedEvent, StreamEvent, StreamId, snapshot_due, streams_of,
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
        let mut positions = Vec::new();
        for stream in streams_of(event) {
            let entries = state.streams.entry(stream.clone()).or_default();
            let entry = StreamEvent {
                stream: stream.clone(),
                version: entries.len() as u64 + 1,
                event: event.clone(),
                recorded_at: now,
            };
            entries.push(entry.clone());
            positions.push((stream.clone(), entry.version));
            if snapshot_due(entry.version, self.snapshot_every) {
                let entries = entries.clone();
                let snapshots = state.snapshots.entry(stream.clone()).or_default();
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
        state.events.insert(
            event.event_id().to_owned(),
            RecordedEvent {
                event: event.clone(),
                recorded_at: now,
                positions: positions.clone(),
            },
        );
        Ok(AppendOutcome::Appended(positions))
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
