//! Idempotency for any function: an operation keyed by a chosen part of its payload runs once,
//! however often the payload is delivered (Powertools' idempotency utility, for Rust).
//!
//! [`Idempotent::run`] claims the key with a conditional write of an `IN_PROGRESS` record, runs
//! the operation, then marks the record `COMPLETED` with the operation's result (JSON). A later
//! delivery of the same payload finds the record and gets the stored result back without running
//! anything. The claim succeeds only where no live record holds the key:
//!
//! - a record past its expiry ([`IdempotencyConfig::expires_after`]; DynamoDB's TTL deletes it
//!   some time later) counts as absent;
//! - an `IN_PROGRESS` record past its in-progress timeout
//!   ([`IdempotencyConfig::in_progress_timeout`]) is a crashed attempt's, and is taken over;
//! - when the operation fails, its claim is deleted, so a retry runs it again.
//!
//! Each record keeps a SHA-256 hash of the whole payload (as JSON), so the same key sent with a
//! different payload is refused rather than answered with another payload's result. Keys are
//! namespaced (`<namespace>#<key>`, the namespace usually the function's name), so functions
//! sharing a table never see each other's records.
//!
//! The store is a port ([`IdempotencyStore`]): [`crate::aws::DynamoDbIdempotencyStore`] keeps
//! the records in DynamoDB, [`InMemoryIdempotencyStore`] in memory for tests.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use lambda_toolkit::idempotency::{
//!     IdempotencyConfig, IdempotencyError, Idempotent, InMemoryIdempotencyStore, Outcome,
//! };
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct Event {
//!     event_id: String,
//!     amount: u64,
//! }
//!
//! # tokio_test_block_on(async {
//! let store = InMemoryIdempotencyStore::default();
//! let config = IdempotencyConfig::new("notifications");
//! let idempotent = Idempotent::new(&store, &config, |event: &Event| event.event_id.clone());
//! let event = Event { event_id: "ord_1/4".into(), amount: 1_250 };
//! let now = Utc::now();
//!
//! let first = idempotent
//!     .run(&event, now, || async { Ok::<u32, std::io::Error>(1) })
//!     .await;
//! assert!(matches!(first, Ok(Outcome::Ran(1))));
//!
//! // The same event again: nothing runs, the first run's result comes back.
//! let again = idempotent
//!     .run(&event, now, || async { Ok::<u32, std::io::Error>(99) })
//!     .await;
//! assert!(matches!(again, Ok(Outcome::AlreadyCompleted(Some(1)))));
//!
//! // The same key with another payload is refused.
//! let other = Event { event_id: "ord_1/4".into(), amount: 9_999 };
//! let refused = idempotent
//!     .run(&other, now, || async { Ok::<u32, std::io::Error>(0) })
//!     .await;
//! assert!(matches!(refused, Err(IdempotencyError::PayloadMismatch { .. })));
//!
//! // Once the record has expired, the key is free again.
//! let later = now + config.expires_after + Duration::seconds(1);
//! let expired = idempotent
//!     .run(&event, later, || async { Ok::<u32, std::io::Error>(2) })
//!     .await;
//! assert!(matches!(expired, Ok(Outcome::Ran(2))));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(future)
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tracing::warn;

/// The store of records failed. Grouped by what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Throttling, a conflicting write, the service unreachable: retry later.
    #[error("store temporarily unavailable: {0}")]
    Transient(String),
    /// A record that does not parse, a missing table: retrying will not help.
    #[error("store failed: {0}")]
    Permanent(String),
}

/// How records are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyConfig {
    /// Prefixed to every key (`<namespace>#<key>`): usually the function's name.
    pub namespace: String,
    /// How long a completed record answers repeats; afterwards the key runs again.
    pub expires_after: Duration,
    /// How long an `IN_PROGRESS` record blocks others; afterwards it is taken to be a crashed
    /// attempt's and taken over. Keep it above the function's timeout.
    pub in_progress_timeout: Duration,
    /// Whether the operation's result is stored, and given back to repeats.
    pub store_results: bool,
}

impl IdempotencyConfig {
    /// Records kept for a day, in-progress claims for a minute, results stored.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            expires_after: Duration::hours(24),
            in_progress_timeout: Duration::seconds(60),
            store_results: true,
        }
    }
}

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    InProgress,
    Completed,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "IN_PROGRESS" => Some(Self::InProgress),
            "COMPLETED" => Some(Self::Completed),
            _ => None,
        }
    }
}

/// One key's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The namespaced key (`<namespace>#<key>`).
    pub key: String,
    pub status: RecordStatus,
    /// SHA-256 of the payload's JSON, in hex.
    pub payload_hash: String,
    /// After this the record counts as absent (and DynamoDB's TTL removes it).
    pub expires_at: DateTime<Utc>,
    /// For `IN_PROGRESS`: after this the claim is a crashed attempt's.
    pub in_progress_until: DateTime<Utc>,
    /// The operation's result as JSON, when stored.
    pub result: Option<String>,
}

impl IdempotencyRecord {
    /// Whether the record still holds its key at `now`: not expired, and not an abandoned
    /// claim. The stores' conditional writes implement the same rule.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        let abandoned = self.status == RecordStatus::InProgress && self.in_progress_until < now;
        self.expires_at >= now && !abandoned
    }
}

/// How claiming a key went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The record was written: run the operation.
    Claimed,
    /// A live record holds the key (as stored).
    Held(IdempotencyRecord),
}

/// Where idempotency records are kept. Writes are conditional, so concurrent attempts on the
/// same key cannot both claim it.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Writes `record` (`IN_PROGRESS`) unless a live record (at `now`) holds its key.
    async fn claim(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;
    /// Replaces the claim by its `COMPLETED` record.
    async fn complete(&self, record: &IdempotencyRecord) -> Result<(), StoreError>;
    /// Deletes an `IN_PROGRESS` record of this key (a completed one stays).
    async fn release(&self, key: &str) -> Result<(), StoreError>;
}

/// What [`Idempotent::run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    /// The operation ran now, and answered this.
    Ran(R),
    /// An earlier run completed; its stored result (`None` when results are not stored).
    AlreadyCompleted(Option<R>),
}

/// Why [`Idempotent::run`] did not run the operation to completion. Grouped by what the caller
/// does next: [`IdempotencyError::is_transient`] says whether a retry later can help.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError<E> {
    /// Another attempt holds the key and has not finished (nor timed out): retry later.
    #[error("{key} is in progress elsewhere; retry later")]
    InProgress { key: String },
    /// The key was used for a different payload: refuse it; retrying will not help.
    #[error("{key} was used for a different payload")]
    PayloadMismatch { key: String },
    /// The operation failed; its claim was released, so a retry runs it again.
    #[error(transparent)]
    Operation(E),
    /// The record store failed (transient or not, as it says).
    #[error("idempotency store: {0}")]
    Store(StoreError),
    /// The stored result or the payload does not (de)serialise: a bug, not a retry.
    #[error("idempotency record unusable: {0}")]
    Unusable(String),
}

impl<E> IdempotencyError<E> {
    /// Whether retrying later can help (for [`Self::Operation`], ask the operation's error).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::InProgress { .. } | Self::Store(StoreError::Transient(_)) => true,
            Self::PayloadMismatch { .. }
            | Self::Store(StoreError::Permanent(_))
            | Self::Unusable(_) => false,
            Self::Operation(_) => true,
        }
    }
}

/// Operations keyed by a part of their payload, made idempotent with a store.
pub struct Idempotent<'a, K> {
    store: &'a dyn IdempotencyStore,
    config: &'a IdempotencyConfig,
    key: K,
}

impl<'a, K> Idempotent<'a, K> {
    /// `key` picks the part of the payload that names it (an event id, a request id).
    pub fn new(store: &'a dyn IdempotencyStore, config: &'a IdempotencyConfig, key: K) -> Self {
        Self { store, config, key }
    }

    /// Runs `operation` for `payload` unless a run for the same key completed (its result comes
    /// back) or is in progress elsewhere (an error to retry later).
    pub async fn run<P, R, E, F, Fut>(
        &self,
        payload: &P,
        now: DateTime<Utc>,
        operation: F,
    ) -> Result<Outcome<R>, IdempotencyError<E>>
    where
        P: Serialize + ?Sized,
        K: Fn(&P) -> String,
        R: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let key = format!("{}#{}", self.config.namespace, (self.key)(payload));
        let payload_hash = payload_hash(payload).map_err(IdempotencyError::Unusable)?;
        let mut record = IdempotencyRecord {
            key: key.clone(),
            status: RecordStatus::InProgress,
            payload_hash,
            expires_at: now + self.config.expires_after,
            in_progress_until: now + self.config.in_progress_timeout,
            result: None,
        };
        match self
            .store
            .claim(&record, now)
            .await
            .map_err(IdempotencyError::Store)?
        {
            Claim::Claimed => {}
            Claim::Held(held) if held.payload_hash != record.payload_hash => {
                return Err(IdempotencyError::PayloadMismatch { key });
            }
            Claim::Held(held) if held.status == RecordStatus::InProgress => {
                return Err(IdempotencyError::InProgress { key });
            }
            Claim::Held(held) => {
                let result = match held.result {
                    Some(json) if self.config.store_results => Some(
                        serde_json::from_str(&json)
                            .map_err(|error| IdempotencyError::Unusable(error.to_string()))?,
                    ),
                    _ => None,
                };
                return Ok(Outcome::AlreadyCompleted(result));
            }
        }
        let result = match operation().await {
            Ok(result) => result,
            Err(error) => {
                if let Err(release) = self.store.release(&key).await {
                    warn!(%key, error = %release, "claim not released; it blocks retries until its in-progress timeout");
                }
                return Err(IdempotencyError::Operation(error));
            }
        };
        if self.config.store_results {
            record.result = Some(
                serde_json::to_string(&result)
                    .map_err(|error| IdempotencyError::Unusable(error.to_string()))?,
            );
        }
        record.status = RecordStatus::Completed;
        // The operation's effect happened: a failure to record it is not the caller's to
        // retry (that would repeat the effect once the claim times out), only to know about.
        if let Err(error) = self.store.complete(&record).await {
            warn!(%key, %error, "operation ran but its record stays IN_PROGRESS until its timeout");
        }
        Ok(Outcome::Ran(result))
    }
}

/// SHA-256 of the payload's JSON, in hex: what a record keeps to tell payloads apart.
pub fn payload_hash<P: Serialize + ?Sized>(payload: &P) -> Result<String, String> {
    let json = serde_json::to_vec(payload).map_err(|error| error.to_string())?;
    let digest = Sha256::digest(&json);
    Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Idempotency records in one process's memory, with the DynamoDB adapter's conditions.
#[derive(Debug, Default)]
pub struct InMemoryIdempotencyStore {
    records: Mutex<HashMap<String, IdempotencyRecord>>,
}

impl InMemoryIdempotencyStore {
    /// The record of a namespaced key, as stored (expired or not).
    pub fn record(&self, key: &str) -> Option<IdempotencyRecord> {
        self.records().get(key).cloned()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, IdempotencyRecord>> {
        // Every write replaces a whole record, so a poisoned map is still consistent.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn claim(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let mut records = self.records();
        if let Some(held) = records.get(&record.key).filter(|held| held.is_live(now)) {
            return Ok(Claim::Held(held.clone()));
        }
        records.insert(record.key.clone(), record.clone());
        Ok(Claim::Claimed)
    }

    async fn complete(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        self.records().insert(record.key.clone(), record.clone());
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut records = self.records();
        if records
            .get(key)
            .is_some_and(|held| held.status == RecordStatus::InProgress)
        {
            records.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Serialize)]
    struct Event {
        id: &'static str,
        body: &'static str,
    }

    const EVENT: Event = Event {
        id: "evt_1",
        body: "hello",
    };

    fn key(event: &Event) -> String {
        event.id.to_owned()
    }

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("operation failed")]
    struct Failed;

    async fn count(counter: &AtomicU32) -> Result<u32, Failed> {
        Ok(counter.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[tokio::test]
    async fn a_repeat_gets_the_stored_result_without_running() {
        let store = InMemoryIdempotencyStore::default();
        let config = IdempotencyConfig::new("test");
        let idempotent = Idempotent::new(&store, &config, key);
        let runs = AtomicU32::new(0);
        let now = Utc::now();
        let first = idempotent.run(&EVENT, now, || count(&runs)).await.unwrap();
        let second = idempotent.run(&EVENT, now, || count(&runs)).await.unwrap();
        assert_eq!(first, Outcome::Ran(1));
        assert_eq!(second, Outcome::AlreadyCompleted(Some(1)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let record = store
            .record("test#evt_1")
            .expect("a record under the namespaced key");
        assert_eq!(record.status, RecordStatus::Completed);
        assert_eq!(record.result.as_deref(), Some("1"));
        assert_eq!(record.expires_at, now + config.expires_after);
    }

    #[tokio::test]
    async fn without_stored_results_a_repeat_gets_none() {
        let store = InMemoryIdempotencyStore::default();
        let config = IdempotencyConfig {
            store_results: false,
            ..IdempotencyConfig::new("test")
        };
        let idempotent = Idempotent::new(&store, &config, key);
        let runs = AtomicU32::new(0);
        let now = Utc::now();
        idempotent.run(&EVENT, now, || count(&runs)).await.unwrap();
        let second = idempotent.run(&EVENT, now, || count(&runs)).await.unwrap();
        assert_eq!(second, Outcome::AlreadyCompleted(None));
        assert_eq!(store.record("test#evt_1").unwrap().result, None);
    }

    #[tokio::test]
    async fn an_expired_record_lets_the_key_run_again() {
        let store = InMemoryIdempotencyStore::default();
        let config = IdempotencyConfig::new("test");
        let idempotent = Idempotent::new(&store, &config, key);
        let runs = AtomicU32::new(0);
        let now = Utc::now();
        idempotent.run(&EVENT, now, || count(&runs)).await.unwrap();
        let just_before = now + config.expires_after;
        let still = idempotent
            .run(&EVENT, just_before, || count(&runs))
            .await
            .unwrap();
        assert_eq!(still, Outcome::AlreadyCompleted(Some(1)));
        let after = just_before + Duration::seconds(1);
        let again = idempotent
            .run(&EVENT, after, || count(&runs))
            .await
            .unwrap();
        assert_eq!(again, Outcome::Ran(2));
    }

    #[tokio::test]
    async fn a_crashed_attempt_blocks_until_its_in_progress_timeout_then_is_taken_over() {
        let store = InMemoryIdempotencyStore::default();
        let config = IdempotencyConfig::new("test");
        let idempotent = Idempotent::new(&store, &config, key);
        let now = Utc::now();
        // An attempt that claims the key and never finishes (its future is dropped mid-way, as
        // a crashed or timed-out function's would be).
        let crashed = idempotent.run(&EVENT, now, || {
            std::future::pending::<Result<u32, Failed>>()
        });
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(10), crashed).await;
        assert!(timed_out.is_err(), "the crashed attempt never answers");
        assert_eq!(
            store.record("test#evt_1").unwrap().status,
            RecordStatus::InProgress
        );

        let runs = AtomicU32::new(0);
        let soon = now + Duration::seconds(1);
        let blocked = idempotent.run(&EVENT, soon, || count(&runs)).await;
        assert!(
            matches!(&blocked, Err(error @ IdempotencyError::InProgress { .. }) if error.is_transient()),
            "{blocked:?}"
        );
        let later = now + config.in_progress_timeout + Duration::seconds(1);
        let taken_over = idempotent
            .run(&EVENT, later, || count(&runs))
            .await
            .unwrap();
        assert_eq!(taken_over, Outcome::Ran(1));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_operation_releases_its_claim_for_a_retry() {
        let store = InMemoryIdempotencyStore::default();
        let config = IdempotencyConfig::new("test");
        let idempotent = Idempotent::new(&store, &config, key);
        let now = Utc::now();
        let failed = idempotent
            .run(&EVENT, now, || async { Err::<u32, _>(Failed) })
            .await;
        assert!(matches!(failed, Err(IdempotencyError::Operation(Failed))));
        assert_eq!(store.record("test#evt_1"), None, "the claim is gone");
        let runs = AtomicU32::new(0);
        let retried = idempotent.run(&EVENT, now, || count(&runs)).await.unwrap();
        assert_eq!(retried, Outcome::Ran(1));
    }

    #[tokio::test]
    async fn the_same_key_with_another_payload_is_refused() {
        let store = InMemoryIdempotencyStore::default();
        let config = IdempotencyConfig::new("test");
        let idempotent = Idempotent::new(&store, &config, key);
        let runs = AtomicU32::new(0);
        let now = Utc::now();
        idempotent.run(&EVENT, now, || count(&runs)).await.unwrap();
        let other = Event {
            id: "evt_1",
            body: "something else",
        };
        let refused = idempotent.run(&other, now, || count(&runs)).await;
        assert!(
            matches!(&refused, Err(error @ IdempotencyError::PayloadMismatch { key }) if key == "test#evt_1" && !error.is_transient()),
            "{refused:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn namespaces_keep_functions_apart() {
        let store = InMemoryIdempotencyStore::default();
        let (one, two) = (IdempotencyConfig::new("one"), IdempotencyConfig::new("two"));
        let runs = AtomicU32::new(0);
        let now = Utc::now();
        let first = Idempotent::new(&store, &one, key)
            .run(&EVENT, now, || count(&runs))
            .await
            .unwrap();
        let second = Idempotent::new(&store, &two, key)
            .run(&EVENT, now, || count(&runs))
            .await
            .unwrap();
        assert_eq!((first, second), (Outcome::Ran(1), Outcome::Ran(2)));
    }
}
