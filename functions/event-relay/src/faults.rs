//! Test-only fault injection (feature `fault-injection`; deployed builds never have it): the
//! bus refuses `PutEvents` for a window and at a rate that a file says, read on every call, so
//! a test can turn an outage on and off while the relay runs.
//!
//! The file (`event-relay.json` in the directory `PAYSAGA_FAULTS_DIR` names) holds `{"fail_until": "<RFC 3339 time>",
//! "fail_rate": <0.0..=1.0>, "only_events_mentioning": "<text>"}`, each optional; no file, no
//! faults. With `only_events_mentioning`, only a call carrying an event whose detail mentions
//! the text fails (a test's own wallets, so that the tests beside it are not slowed).

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysaga_domain::DomainEvent;
use paysaga_domain::ports::{EventPublisher, PublishError};
use serde::Deserialize;

/// The faults the file asks for.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BusFaults {
    /// Every call before this time fails.
    #[serde(default)]
    pub fail_until: Option<DateTime<Utc>>,
    /// The share of the other calls that fail, at random (a probability, not an amount).
    #[serde(default)]
    pub fail_rate: f64,
    /// Only calls with an event whose detail mentions this fail.
    #[serde(default)]
    pub only_events_mentioning: Option<String>,
}

impl BusFaults {
    fn fails(&self, events: &[DomainEvent], now: DateTime<Utc>, draw: f64) -> bool {
        let aimed_at = match &self.only_events_mentioning {
            Some(text) => events
                .iter()
                .any(|event| event.detail_json().contains(text)),
            None => true,
        };
        aimed_at && (self.fail_until.is_some_and(|until| now < until) || draw < self.fail_rate)
    }
}

/// A publisher whose calls fail as the faults file says.
pub struct FaultyBus<P> {
    pub inner: P,
    pub faults_file: PathBuf,
}

impl<P> FaultyBus<P> {
    fn faults(&self) -> Result<BusFaults, PublishError> {
        match std::fs::read_to_string(&self.faults_file) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|error| PublishError(format!("unreadable faults file: {error}"))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BusFaults::default()),
            Err(error) => Err(PublishError(format!("faults file: {error}"))),
        }
    }
}

#[async_trait]
impl<P: EventPublisher> EventPublisher for FaultyBus<P> {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        self.publish_traced(events, &[]).await
    }

    async fn publish_traced(
        &self,
        events: &[DomainEvent],
        traces: &[Option<String>],
    ) -> Result<(), PublishError> {
        if self.faults()?.fails(events, Utc::now(), fastrand::f64()) {
            return Err(PublishError("injected PutEvents failure".to_owned()));
        }
        self.inner.publish_traced(events, traces).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paysaga_domain::test_support::request;

    #[test]
    fn a_window_fails_every_call_a_rate_some_and_only_those_aimed_at() {
        let now = Utc::now();
        let events = [DomainEvent::payment_requested(&request(100), now)];
        let window = BusFaults {
            fail_until: Some(now + chrono::Duration::seconds(5)),
            ..BusFaults::default()
        };
        assert!(window.fails(&events, now, 0.99));
        assert!(!window.fails(&events, now + chrono::Duration::seconds(6), 0.0));
        let rate = BusFaults {
            fail_rate: 0.25,
            ..BusFaults::default()
        };
        assert!(rate.fails(&events, now, 0.1));
        assert!(!rate.fails(&events, now, 0.3));
        assert!(!BusFaults::default().fails(&events, now, 0.0));

        let aimed = |text: &str| BusFaults {
            fail_rate: 1.0,
            only_events_mentioning: Some(text.to_owned()),
            ..BusFaults::default()
        };
        assert!(aimed("wal_alice").fails(&events, now, 0.5));
        assert!(!aimed("wal_carol").fails(&events, now, 0.5));
    }

    #[tokio::test]
    async fn without_faults_each_event_keeps_its_trace() {
        let bus = FaultyBus {
            inner: paysaga_services::fakes::RecordingPublisher::default(),
            faults_file: PathBuf::from("/nonexistent/relay-faults.json"),
        };
        let events = [DomainEvent::payment_requested(&request(100), Utc::now())];
        let trace = Some("Root=1-5759e988-bd862e3fe1be46a994272793".to_owned());
        bus.publish_traced(&events, std::slice::from_ref(&trace))
            .await
            .unwrap();
        assert_eq!(bus.inner.traces(), [trace]);
    }
}
