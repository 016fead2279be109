//! The event relay: publishes what the ledger's writes made true, from the streams of the
//! tables they were written to. No function publishes a change's event after writing the
//! change; the event is written with it, and published from there:
//!
//! - a payment's log: version 1 of a request made through the API announces it, the terminal
//!   entry announces the outcome ([`DomainEvent::announced_by`]);
//! - the outbox: an event written in its change's transaction (a deposit's), or as that
//!   change's own record (an operator's action).
//!
//! A stream hands each record on at least once, so an event may be published twice; it keeps
//! its id, and consumers de-duplicate on it.

use chrono::{DateTime, Utc};
use futures::future::{join, join_all};
use paysaga_domain::payment::Announces;
use paysaga_domain::ports::{DeadlineChecks, EventPublisher, PaymentHistory};
use paysaga_domain::{DomainEvent, PaymentId, PaymentLogEntry};

use super::ServiceError;

/// PutEvents takes at most this many entries a call.
pub const EVENTS_PER_CALL: usize = 10;

/// A record a table's stream handed on: what was written.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// An entry of a payment's log.
    LogEntry(PaymentLogEntry),
    /// An event written to the outbox, read against its contract.
    Outboxed(DomainEvent),
}

/// A stream record as the relay takes it: what was written, and the trace it was written in
/// (a tracing system's header, opaque here), which its event is published in.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub written: Written,
    pub trace: Option<String>,
}

impl From<Written> for Record {
    fn from(written: Written) -> Self {
        Self {
            written,
            trace: None,
        }
    }
}

/// The event `written` makes true, if any. A payment's outcome is made from its terminal entry,
/// which carries the request it concludes; an entry written before it carried it has its
/// outcome folded from the log up to it, read back (strongly consistent, so the entry is there).
pub async fn announcement(
    log: &dyn PaymentHistory,
    written: Written,
) -> Result<Option<DomainEvent>, ServiceError> {
    let entry = match written {
        Written::Outboxed(event) => return Ok(Some(event)),
        Written::LogEntry(entry) => entry,
    };
    match entry.announces() {
        None => Ok(None),
        // An urgent request's announcement went through the outbox: published from there.
        Some(Announces::Request) if entry.announced_through_outbox() => Ok(None),
        Some(Announces::Request) => Ok(DomainEvent::announced_by(&[entry])?),
        Some(Announces::Outcome) if entry.concludes.is_some() => {
            Ok(DomainEvent::announced_by(&[entry])?)
        }
        Some(Announces::Outcome) => {
            let mut history = log.history(&entry.payment_id).await?;
            history.retain(|earlier| earlier.version <= entry.version);
            if history.last() != Some(&entry) {
                return Err(ServiceError::Inconsistent(format!(
                    "the log of {} does not hold its version {} as the stream showed it",
                    entry.payment_id, entry.version
                )));
            }
            Ok(DomainEvent::announced_by(&history)?)
        }
    }
}

/// How relaying a batch of records went.
#[derive(Debug)]
pub struct Relayed {
    /// Events published (each record announces one event at most).
    pub published: usize,
    /// Deadline checks scheduled (one per payment request).
    pub scheduled: usize,
    /// Each published event's detail-type and when it became true, in the batch's order: how
    /// far behind its write the relay published it is the caller's to measure.
    pub announced: Vec<(&'static str, DateTime<Utc>)>,
    /// The first record not relayed and why: the stream hands it on again, and every record
    /// after it. `None`: all were.
    pub stopped_at: Option<(usize, ServiceError)>,
}

/// Where the relay sends what the records make true.
pub struct Outputs<'a> {
    pub events: &'a dyn EventPublisher,
    /// Each payment's deadline check, scheduled from its request's record.
    pub deadlines: &'a dyn DeadlineChecks,
}

/// SQS's SendMessageBatch takes at most this many checks a call.
pub const CHECKS_PER_CALL: usize = 10;

/// Publishes the events `records` make true, each in its record's trace, [`EVENTS_PER_CALL`] a
/// call, and schedules the deadline check of every payment requested among them,
/// [`CHECKS_PER_CALL`] a call; every call of the batch at once, so that a batch takes one
/// call's time, not the sum of twenty (the stream's next batch waits for this one, and the
/// requests in it with it). The records are read in order up to the first whose event cannot be
/// read; the batch stops at the first record that could not be read, published or checked.
/// Records after it may have been published already: handed on again, their events are
/// published again, with the same ids, which consumers de-duplicate (events carry no order on
/// the bus either way).
pub async fn relay(
    log: &dyn PaymentHistory,
    outputs: &Outputs<'_>,
    records: Vec<Record>,
) -> Relayed {
    let mut stops = Vec::new();
    let mut events = Vec::new();
    let mut checks = Vec::new();
    for (index, record) in records.into_iter().enumerate() {
        if let Written::LogEntry(entry) = &record.written
            && entry.version == 1
        {
            checks.push((index, entry.payment_id.clone()));
        }
        match announcement(log, record.written).await {
            Ok(Some(event)) => events.push((index, event, record.trace)),
            Ok(None) => {}
            Err(error) => {
                // Not read, so not checked either: the check goes with the record's retry.
                checks.retain(|(checked, _)| *checked < index);
                stops.push((index, error));
                break;
            }
        }
    }
    let publishing = events.chunks(EVENTS_PER_CALL).map(|chunk| async move {
        let (events, traces): (Vec<DomainEvent>, Vec<Option<String>>) = chunk
            .iter()
            .map(|(_, event, trace)| (event.clone(), trace.clone()))
            .unzip();
        let published = outputs.events.publish_traced(&events, &traces).await;
        (
            chunk[0].0,
            chunk.len(),
            published.map_err(ServiceError::from),
        )
    });
    let scheduling = checks.chunks(CHECKS_PER_CALL).map(|chunk| async move {
        let payments: Vec<PaymentId> = chunk.iter().map(|(_, payment)| payment.clone()).collect();
        let scheduled = outputs.deadlines.schedule(&payments).await;
        (
            chunk[0].0,
            chunk.len(),
            scheduled.map_err(ServiceError::from),
        )
    });
    let (published, scheduled) = join(join_all(publishing), join_all(scheduling)).await;
    let mut relayed = Relayed {
        published: 0,
        scheduled: 0,
        announced: Vec::new(),
        stopped_at: None,
    };
    for ((_, _, outcome), chunk) in published.iter().zip(events.chunks(EVENTS_PER_CALL)) {
        if outcome.is_ok() {
            let announced = chunk
                .iter()
                .map(|(_, event, _)| (event.detail_type(), event.occurred_at()));
            relayed.announced.extend(announced);
        }
    }
    for (calls, count) in [
        (published, &mut relayed.published),
        (scheduled, &mut relayed.scheduled),
    ] {
        for (first, size, outcome) in calls {
            match outcome {
                Ok(()) => *count += size,
                Err(error) => stops.push((first, error)),
            }
        }
    }
    relayed.stopped_at = stops.into_iter().min_by_key(|(index, _)| *index);
    relayed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryLedger, RecordingDeadlines, RecordingPublisher};
    use chrono::Utc;
    use paysaga_domain::ports::PaymentHistory;
    use paysaga_domain::ports::{BeginPayment, PaymentRequests, PublishError, StoreError};
    use paysaga_domain::test_support::request;
    use paysaga_domain::{Payment, PaymentId, PaymentStep, RequestChannel};

    /// A log entry's record for each step of a payment that completes, written to `log`.
    async fn completed_payment(log: &InMemoryLedger, id: &str) -> Vec<Record> {
        let template = request(100);
        let request = paysaga_domain::PaymentRequest::of_flow(
            PaymentId::parse(id).unwrap(),
            template.flow().clone(),
            template.amount(),
        )
        .unwrap();
        let now = Utc::now();
        let begun = log
            .begin(&request, RequestChannel::Api, None, now)
            .await
            .unwrap();
        assert_eq!(begun, BeginPayment::Begun);
        let mut entries = log.history(request.payment_id()).await.unwrap();
        for step in [
            PaymentStep::FundsReserved,
            PaymentStep::Charged {
                charge_id: paysaga_domain::ChargeId::parse("ch_1").unwrap(),
            },
            PaymentStep::Completed,
        ] {
            let next = Payment::from_log(&entries).unwrap().next_entry(step, now);
            log.append_unchecked(next.clone());
            entries.push(next);
        }
        entries
            .into_iter()
            .map(|entry| Written::LogEntry(entry).into())
            .collect()
    }

    #[tokio::test]
    async fn each_payment_is_announced_twice_and_ten_events_go_in_one_call() {
        let log = InMemoryLedger::default();
        let mut records = Vec::new();
        for n in 0..6 {
            records.extend(completed_payment(&log, &format!("pay_{n}")).await);
        }
        let (events, deadlines) = (RecordingPublisher::default(), RecordingDeadlines::default());
        let outputs = Outputs {
            events: &events,
            deadlines: &deadlines,
        };
        let relayed = relay(&log, &outputs, records.clone()).await;
        assert!(relayed.stopped_at.is_none(), "{:?}", relayed.stopped_at);
        assert_eq!(relayed.published, 12, "a request and an outcome each");
        assert_eq!(relayed.scheduled, 6, "a deadline check each");
        let checked: Vec<String> = deadlines
            .scheduled()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            checked,
            ["pay_0", "pay_1", "pay_2", "pay_3", "pay_4", "pay_5"]
        );
        let ids: Vec<String> = events
            .published()
            .iter()
            .map(|event| event.event_id().to_owned())
            .collect();
        assert_eq!(ids[..2], ["pay_0/1", "pay_0/4"]);
        assert_eq!(events.calls(), [10, 2], "ten a call");
        let announced: Vec<_> = events
            .published()
            .iter()
            .map(|event| (event.detail_type(), event.occurred_at()))
            .collect();
        assert_eq!(
            relayed.announced, announced,
            "each published event, as published"
        );

        // Relayed again (a stream's retry), the same events, ids and all.
        let again = RecordingPublisher::default();
        let outputs = Outputs {
            events: &again,
            deadlines: &deadlines,
        };
        relay(&log, &outputs, records).await;
        assert_eq!(again.published(), events.published());
    }

    #[tokio::test]
    async fn an_urgent_request_is_published_from_the_outbox_once_and_checked_from_the_log() {
        let log = InMemoryLedger::default();
        let request = request(100).with_priority(paysaga_domain::Priority::Urgent);
        let begun = log
            .begin(&request, RequestChannel::Api, None, Utc::now())
            .await
            .unwrap();
        assert_eq!(begun, BeginPayment::Begun);
        // What the ledger wrote: the announcement in the outbox, and the log's version 1,
        // each a record of its own table's stream.
        let written = log.written();
        assert!(
            matches!(&written[..], [Written::Outboxed(_), Written::LogEntry(entry)] if entry.announced_through_outbox()),
            "{written:?}"
        );
        let records: Vec<Record> = written.into_iter().map(Record::from).collect();
        let (events, deadlines) = (RecordingPublisher::default(), RecordingDeadlines::default());
        let outputs = Outputs {
            events: &events,
            deadlines: &deadlines,
        };
        let relayed = relay(&log, &outputs, records).await;
        assert!(relayed.stopped_at.is_none(), "{:?}", relayed.stopped_at);
        let published: Vec<_> = events
            .published()
            .iter()
            .map(|event| event.event_id().to_owned())
            .collect();
        assert_eq!(published, ["pay_test/1"], "published from the outbox alone");
        assert_eq!(
            deadlines.scheduled(),
            [request.payment_id().clone()],
            "its deadline check, from the log"
        );
    }

    /// Calls that each wait until `calls` of them are in flight: relayed one after the other,
    /// the first would wait for ever.
    struct AllAtOnce(tokio::sync::Barrier);

    #[async_trait::async_trait]
    impl EventPublisher for AllAtOnce {
        async fn publish(&self, _: &[DomainEvent]) -> Result<(), PublishError> {
            self.0.wait().await;
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl DeadlineChecks for AllAtOnce {
        async fn schedule(&self, _: &[PaymentId]) -> Result<(), StoreError> {
            self.0.wait().await;
            Ok(())
        }

        async fn schedule_for_parked(&self, _: &PaymentId, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_call_of_a_batch_is_made_at_once() {
        let log = InMemoryLedger::default();
        let mut records = Vec::new();
        for n in 0..12 {
            records.extend(completed_payment(&log, &format!("pay_{n}")).await);
        }
        // 24 events (3 calls) and 12 checks (2 calls).
        let outputs = AllAtOnce(tokio::sync::Barrier::new(5));
        let relayed = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            relay(
                &log,
                &Outputs {
                    events: &outputs,
                    deadlines: &outputs,
                },
                records,
            ),
        )
        .await
        .expect("the five calls were in flight together");
        assert!(relayed.stopped_at.is_none(), "{:?}", relayed.stopped_at);
        assert_eq!((relayed.published, relayed.scheduled), (24, 12));
    }

    #[tokio::test]
    async fn a_failed_call_stops_the_batch_at_its_first_event_record() {
        let log = InMemoryLedger::default();
        let mut records = Vec::new();
        for n in 0..6 {
            records.extend(completed_payment(&log, &format!("pay_{n}")).await);
        }
        let (events, deadlines) = (RecordingPublisher::default(), RecordingDeadlines::default());
        events.refuse_from_call(2);
        let outputs = Outputs {
            events: &events,
            deadlines: &deadlines,
        };
        let relayed = relay(&log, &outputs, records).await;
        assert_eq!(relayed.published, 10);
        assert_eq!(relayed.announced.len(), 10, "only the published events");
        assert_eq!(relayed.scheduled, 6, "the checks go their own way");
        let (index, error) = relayed.stopped_at.expect("stopped");
        // The eleventh event is pay_5's request, its log's first record (the 21st).
        assert_eq!(index, 20);
        assert!(error.is_transient(), "{error}");
    }

    #[tokio::test]
    async fn a_check_that_cannot_be_scheduled_stops_the_batch_at_its_request() {
        let log = InMemoryLedger::default();
        let records = completed_payment(&log, "pay_1").await;
        let (events, deadlines) = (RecordingPublisher::default(), RecordingDeadlines::default());
        deadlines.set_down(true);
        let outputs = Outputs {
            events: &events,
            deadlines: &deadlines,
        };
        let relayed = relay(&log, &outputs, records).await;
        let (index, error) = relayed.stopped_at.expect("stopped");
        assert_eq!(index, 0, "handed on from the request");
        assert!(error.is_transient(), "{error}");
        assert_eq!(relayed.scheduled, 0);
    }

    /// `records` as the terminal entries were written before they carried their request.
    fn without_outcomes(records: &[Record]) -> Vec<Record> {
        records
            .iter()
            .cloned()
            .map(|mut record| {
                if let Written::LogEntry(entry) = &mut record.written {
                    entry.concludes = None;
                }
                record
            })
            .collect()
    }

    #[tokio::test]
    async fn an_outcome_is_published_from_its_entry_alone_as_the_log_would_fold_it() {
        let records = completed_payment(&InMemoryLedger::default(), "pay_1").await;
        let deadlines = RecordingDeadlines::default();
        let outputs = |events| Outputs {
            events,
            deadlines: &deadlines,
        };
        // The terminal entry carries its request: a log that holds nothing is never read.
        let carried = RecordingPublisher::default();
        let relayed = relay(
            &InMemoryLedger::default(),
            &outputs(&carried),
            records.clone(),
        )
        .await;
        assert!(relayed.stopped_at.is_none(), "{:?}", relayed.stopped_at);
        assert_eq!(relayed.published, 2);
        // Folded from the log, as an entry written before it carried it is: the same event.
        let records = without_outcomes(&records);
        let older_log = InMemoryLedger::default();
        for record in &records {
            if let Written::LogEntry(entry) = &record.written {
                older_log.append_unchecked(entry.clone());
            }
        }
        let folded = RecordingPublisher::default();
        let relayed = relay(&older_log, &outputs(&folded), records).await;
        assert!(relayed.stopped_at.is_none(), "{:?}", relayed.stopped_at);
        assert_eq!(carried.published(), folded.published());
        assert!(matches!(
            carried.published()[1],
            DomainEvent::PaymentCompleted(_)
        ));
    }

    #[tokio::test]
    async fn an_outcome_not_carried_whose_log_cannot_be_read_stops_the_batch_there() {
        let log = InMemoryLedger::default();
        let records = without_outcomes(&completed_payment(&log, "pay_1").await);
        let other = InMemoryLedger::default();
        let (events, deadlines) = (RecordingPublisher::default(), RecordingDeadlines::default());
        let outputs = Outputs {
            events: &events,
            deadlines: &deadlines,
        };
        // A log that does not hold the terminal entry the stream showed.
        let relayed = relay(&other, &outputs, records).await;
        assert_eq!(relayed.published, 1, "the request needs no read");
        let (index, error) = relayed.stopped_at.expect("stopped");
        assert_eq!(index, 3);
        assert!(matches!(error, ServiceError::Inconsistent(_)), "{error}");
    }
}
