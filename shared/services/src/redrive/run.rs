//! One redrive of one dead-letter queue: receive, decide, send back or park, delete.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use super::letter::{
    DeadLetter, RedriveStamp, RuleTargets, Surroundings, Verdict, classify, rules_named,
};
use super::parking::{ParkedMessage, Parking, ParkingLot};
use super::{
    DeadLetterRoutes, JournalEntry, OutgoingMessage, QueueError, QueueRef, RedriveJournal,
    RedriveQueues, RuleDirectory,
};
use paysaga_domain::ports::{DeadlineChecks, StoreError};

/// SQS batches hold at most this many messages.
const SQS_BATCH: u32 = 10;

/// How a redrive behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveSettings {
    /// Messages handled per second, at most: what the consumers downstream are given.
    pub max_per_second: u32,
    /// Messages examined per queue and run, at most.
    pub max_messages: u32,
    /// How long a received message stays hidden while the redrive handles it. Longer than a
    /// batch takes; a killed run's messages come back after it.
    pub visibility: Duration,
    /// A message sent back this many times and failing again is parked.
    pub max_redrives: u32,
    /// A message that cannot be sent back is parked once this old (DLQs keep 14 days).
    pub park_after: chrono::Duration,
}

impl Default for RedriveSettings {
    fn default() -> Self {
        Self {
            max_per_second: 50,
            max_messages: 10_000,
            visibility: Duration::from_secs(60),
            max_redrives: 3,
            park_after: chrono::Duration::days(10),
        }
    }
}

/// Why a run stopped before the queue was empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// `max_messages` were examined.
    MaxMessages,
    /// The invocation's time was nearly up.
    Deadline,
}

/// What a run did to one dead-letter queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReport {
    pub queue: String,
    /// Messages received and looked at.
    pub examined: u32,
    /// Sent back to the queue they failed on (or the rule target they missed).
    pub sent_back: u32,
    pub parked: u32,
    /// Parked payment requests on their way to the saga whose payment the reconciler was asked
    /// to check: it settles them once the payment is terminal. This run's and, when an earlier
    /// run was cut short before asking, that run's.
    #[serde(default)]
    pub settle_checks: u32,
    /// Found in the journal or the parking table: an earlier, interrupted run had handled them.
    pub handled_before: u32,
    /// Left in the dead-letter queue for a later run, by reason.
    pub left: BTreeMap<String, u32>,
    /// Handled, but not deleted from the dead-letter queue: they come back after the visibility
    /// timeout and the journal or the parking table recognises them. (A message parked whose
    /// payment's check could not be scheduled is not deleted either: it is counted `left`.)
    pub not_deleted: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a redrive may touch, and how it behaves.
pub struct Redrive<'a> {
    pub queues: &'a dyn RedriveQueues,
    pub rules: &'a dyn RuleDirectory,
    pub journal: &'a dyn RedriveJournal,
    pub parking: &'a dyn ParkingLot,
    /// Where a parked request of the saga's becomes a check of its payment.
    pub deadlines: &'a dyn DeadlineChecks,
    /// The queues the saga reads (ARNs): what was parked on its way to one of them belongs to a
    /// payment's flow ([`ParkedMessage::saga_payment`]).
    pub saga_queues: &'a [String],
    pub settings: &'a RedriveSettings,
}

/// What a batch became.
struct Handled {
    delete: Vec<String>,
}

impl Redrive<'_> {
    /// Redrives `routes.queue` until it is empty, `max_messages` were examined, or `deadline`
    /// is near (a batch's time before it). Every batch: the journal finds the copies an earlier
    /// run sent back; the others are classified; those going back are sent (paced to
    /// `max_per_second`) and journalled, those parked are written to the parking table (and a
    /// payment's request parked on its way to the saga is handed to the reconciler: a check of
    /// its payment, carrying the parked id); then whatever was sent back and journalled, parked
    /// (and handed on), or found handled is deleted.
    pub async fn drain(
        &self,
        routes: &DeadLetterRoutes,
        deadline: Instant,
    ) -> Result<QueueReport, RedriveError> {
        let mut report = QueueReport {
            queue: routes.queue.name().to_owned(),
            ..QueueReport::default()
        };
        let rate = self.settings.max_per_second.max(1);
        let batch = rate.min(SQS_BATCH);
        let mut pace =
            tokio::time::interval(Duration::from_secs_f64(f64::from(batch) / f64::from(rate)));
        pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut rule_targets = HashMap::new();
        let mut destinations: HashMap<String, QueueRef> = routes
            .sources
            .iter()
            .map(|source| (source.arn.clone(), source.clone()))
            .collect();
        // Time a batch may take; no batch starts closer than this to the deadline.
        let margin = Duration::from_secs(5);
        loop {
            if report.examined >= self.settings.max_messages {
                report.stopped = Some(Stopped::MaxMessages);
                break;
            }
            if Instant::now() + margin >= deadline {
                report.stopped = Some(Stopped::Deadline);
                break;
            }
            pace.tick().await;
            let wanted = batch.min(self.settings.max_messages - report.examined);
            let letters = self
                .queues
                .receive(&routes.queue, wanted, self.settings.visibility)
                .await?;
            if letters.is_empty() {
                break;
            }
            report.examined += u32::try_from(letters.len()).unwrap_or(u32::MAX);
            for rule in rules_named(&letters) {
                if let std::collections::hash_map::Entry::Vacant(entry) = rule_targets.entry(rule) {
                    let targets = self.rules.targets(entry.key()).await;
                    entry.insert(targets);
                }
            }
            let handled = self
                .handle(
                    routes,
                    letters,
                    &rule_targets,
                    &mut destinations,
                    &mut report,
                )
                .await?;
            if !handled.delete.is_empty() {
                let deleted = self.queues.delete(&routes.queue, &handled.delete).await?;
                report.not_deleted += u32::try_from(handled.delete.len() - deleted).unwrap_or(0);
            }
            // Failed lookups are tried again by the next batch.
            rule_targets.retain(|_, targets| !matches!(targets, RuleTargets::Unavailable(_)));
            info!(
                queue = %report.queue,
                examined = report.examined,
                sent_back = report.sent_back,
                parked = report.parked,
                handled_before = report.handled_before,
                left = report.left.values().sum::<u32>(),
                "redrive progress"
            );
        }
        Ok(report)
    }

    async fn handle(
        &self,
        routes: &DeadLetterRoutes,
        letters: Vec<DeadLetter>,
        rule_targets: &HashMap<String, RuleTargets>,
        destinations: &mut HashMap<String, QueueRef>,
        report: &mut QueueReport,
    ) -> Result<Handled, RedriveError> {
        let keys: Vec<String> = letters
            .iter()
            .map(|letter| letter.key(&routes.queue))
            .collect();
        let sent_before = self.journal.sent_back(&keys).await?;
        let now = Utc::now();
        let around = Surroundings {
            sources: &routes.sources,
            rule_targets,
            max_redrives: self.settings.max_redrives,
            park_after: self.settings.park_after,
            now,
        };
        let mut delete = Vec::new();
        let mut going_back: BTreeMap<String, Vec<(DeadLetter, OutgoingMessage)>> = BTreeMap::new();
        for (index, letter) in letters.into_iter().enumerate() {
            let key = letter.key(&routes.queue);
            if sent_before.contains(&key) {
                report.handled_before += 1;
                delete.push(letter.receipt_handle);
                continue;
            }
            match classify(&letter, &around) {
                Verdict::Return { destination } => {
                    let stamp = RedriveStamp {
                        redrives: letter.redrives() + 1,
                        dead_letter_queue: routes.queue.arn.clone(),
                        at: now,
                        parked_id: None,
                    };
                    let message = OutgoingMessage {
                        entry_id: format!("m{index}"),
                        body: letter.body.clone(),
                        attributes: letter.attributes_sent_back(&stamp),
                        trace_header: letter.trace_header.clone(),
                    };
                    going_back
                        .entry(destination)
                        .or_default()
                        .push((letter, message));
                }
                Verdict::Park { reason } => {
                    let parked =
                        ParkedMessage::new(&letter, &routes.queue, &routes.sources, reason, now);
                    match self.parking.park(&parked).await? {
                        Parking::Parked => {
                            warn!(parked_id = %parked.parked_id, reason = %parked.reason, "message parked");
                            report.parked += 1;
                        }
                        Parking::AlreadyParked => report.handled_before += 1,
                    }
                    // Parked first, then handed on: a run cut short between the two finds it
                    // parked already and hands it on again (the reconciler settles it once).
                    match self.hand_to_reconciler(&parked).await {
                        Ok(true) => report.settle_checks += 1,
                        Ok(false) => {}
                        Err(reason) => {
                            warn!(parked_id = %parked.parked_id, %reason, "parked message left in the dead-letter queue");
                            *report.left.entry(reason).or_default() += 1;
                            continue;
                        }
                    }
                    delete.push(letter.receipt_handle);
                }
                Verdict::Leave { reason } => {
                    warn!(key, %reason, "message left in the dead-letter queue");
                    *report.left.entry(reason).or_default() += 1;
                }
            }
        }

        for (destination, messages) in going_back {
            let queue = match destinations.get(&destination) {
                Some(queue) => queue.clone(),
                None => match self.queues.queue(&destination).await {
                    Ok(queue) => {
                        destinations.insert(destination.clone(), queue.clone());
                        queue
                    }
                    Err(error) => {
                        let reason = format!("cannot send to {destination}: {error}");
                        warn!(%reason, count = messages.len(), "messages left in the dead-letter queue");
                        *report.left.entry(reason).or_default() +=
                            u32::try_from(messages.len()).unwrap_or(u32::MAX);
                        continue;
                    }
                },
            };
            let outgoing: Vec<OutgoingMessage> = messages
                .iter()
                .map(|(_, message)| message.clone())
                .collect();
            let taken = match self.queues.send(&queue, &outgoing).await {
                Ok(taken) => taken,
                Err(error) => {
                    let reason = format!("{} refused them: {error}", queue.name());
                    *report.left.entry(reason).or_default() +=
                        u32::try_from(messages.len()).unwrap_or(u32::MAX);
                    continue;
                }
            };
            let sent: Vec<&DeadLetter> = messages
                .iter()
                .filter(|(_, message)| taken.contains(&message.entry_id))
                .map(|(letter, _)| letter)
                .collect();
            let refused = messages.len() - sent.len();
            if refused > 0 {
                let reason = format!("{} refused them", queue.name());
                *report.left.entry(reason).or_default() +=
                    u32::try_from(refused).unwrap_or(u32::MAX);
            }
            let entries: Vec<JournalEntry> = sent
                .iter()
                .map(|letter| JournalEntry {
                    key: letter.key(&routes.queue),
                    destination: destination.clone(),
                    at: now,
                })
                .collect();
            // Not journalled, not deleted: a later run sends them again (consumers de-duplicate).
            self.journal.record(&entries).await?;
            report.sent_back += u32::try_from(sent.len()).unwrap_or(u32::MAX);
            delete.extend(sent.into_iter().map(|letter| letter.receipt_handle.clone()));
        }
        Ok(Handled { delete })
    }

    /// Schedules the check of the payment a parked message was on its way to, when it was on
    /// its way to the saga (`true`); the reason it could not, otherwise (the message stays in
    /// the dead-letter queue, and the next run tries again).
    async fn hand_to_reconciler(&self, parked: &ParkedMessage) -> Result<bool, String> {
        let Some(payment) = parked.saga_payment(self.saga_queues) else {
            return Ok(false);
        };
        self.deadlines
            .schedule_for_parked(&payment, &parked.parked_id)
            .await
            .map_err(|error| {
                format!("parked, but its payment's check was not scheduled: {error}")
            })?;
        info!(parked_id = %parked.parked_id, payment_id = %payment, "parked message handed to the reconciler");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fakes::{
        InMemoryJournal, InMemoryParking, InMemoryQueues, RecordingDeadlines, StaticRules,
    };
    use crate::redrive::letter::tests::{DLQ, SOURCE, event_body, letter, queue, with_record};
    use crate::redrive::parking::{ReplayRequest, replay};
    use paysaga_domain::test_support::request;

    struct World {
        queues: Arc<InMemoryQueues>,
        journal: InMemoryJournal,
        parking: InMemoryParking,
        deadlines: RecordingDeadlines,
        saga_queues: Vec<String>,
        rules: StaticRules,
        settings: RedriveSettings,
        routes: DeadLetterRoutes,
    }

    impl World {
        fn new() -> Self {
            let queues = Arc::new(InMemoryQueues::default());
            queues.create(queue(SOURCE));
            queues.create(queue(DLQ));
            Self {
                queues,
                journal: InMemoryJournal::default(),
                parking: InMemoryParking::default(),
                deadlines: RecordingDeadlines::default(),
                // The saga reads SOURCE.
                saga_queues: vec![SOURCE.to_owned()],
                rules: StaticRules::default(),
                settings: RedriveSettings {
                    max_per_second: 1_000,
                    ..RedriveSettings::default()
                },
                routes: DeadLetterRoutes {
                    queue: queue(DLQ),
                    sources: vec![queue(SOURCE)],
                },
            }
        }

        fn redrive(&self) -> Redrive<'_> {
            Redrive {
                queues: self.queues.as_ref(),
                rules: &self.rules,
                journal: &self.journal,
                parking: &self.parking,
                deadlines: &self.deadlines,
                saga_queues: &self.saga_queues,
                settings: &self.settings,
            }
        }

        async fn drain(&self) -> QueueReport {
            let deadline = Instant::now() + Duration::from_secs(60);
            self.redrive().drain(&self.routes, deadline).await.unwrap()
        }
    }

    fn transient(id: &str) -> DeadLetter {
        with_record(letter(id, &event_body(100)), "transient", SOURCE)
    }

    #[tokio::test]
    async fn transient_failures_go_back_and_permanent_ones_are_parked() {
        let world = World::new();
        for id in ["a", "b", "c"] {
            world.queues.put(DLQ, transient(id));
        }
        world.queues.put(
            DLQ,
            with_record(letter("p", &event_body(5)), "permanent", SOURCE),
        );
        world.queues.put(DLQ, letter("junk", "{not json"));

        let report = world.drain().await;
        assert_eq!(
            (report.examined, report.sent_back, report.parked),
            (5, 3, 2)
        );
        assert_eq!(world.queues.len(DLQ), 0, "the DLQ ends empty");
        let back = world.queues.messages(SOURCE);
        assert_eq!(back.len(), 3);
        assert!(
            back.iter()
                .all(|message| message.stamp().is_some_and(|stamp| stamp.redrives == 1))
        );
        let parked = world.parking.all();
        assert_eq!(parked.len(), 2);
        let junk = parked
            .iter()
            .find(|message| message.parked_id == "payments-dlq/junk")
            .unwrap();
        assert_eq!(junk.body, "{not json");
        assert!(junk.reason.starts_with("contract: "), "{}", junk.reason);
        assert_eq!(junk.destination.as_deref(), Some(SOURCE));
        assert!(!junk.consent_removed);
    }

    #[tokio::test]
    async fn a_payment_request_parked_on_its_way_to_the_saga_is_handed_to_the_reconciler() {
        let world = World::new();
        let audit_trail = "arn:aws:sqs:us-east-1:000000000000:audit-trail";
        world.queues.put(
            DLQ,
            with_record(letter("saga", &event_body(100)), "permanent", SOURCE),
        );
        world.queues.put(
            DLQ,
            with_record(letter("audit", &event_body(100)), "permanent", audit_trail),
        );
        world.queues.put(DLQ, letter("junk", "{not json"));

        let report = world.drain().await;
        assert_eq!(
            (report.parked, report.settle_checks),
            (3, 1),
            "the saga's request alone: {report:?}"
        );
        assert_eq!(
            world.deadlines.for_parked(),
            [(
                request(100).payment_id().clone(),
                "payments-dlq/saga".to_owned()
            )]
        );
        assert!(
            world.deadlines.scheduled().is_empty(),
            "no deadline check of its own"
        );
        assert_eq!(world.queues.len(DLQ), 0);
    }

    #[tokio::test]
    async fn a_parked_request_whose_check_is_not_scheduled_stays_in_the_dlq_until_it_is() {
        let world = World::new();
        world.queues.put(
            DLQ,
            with_record(letter("saga", &event_body(100)), "permanent", SOURCE),
        );
        world.deadlines.set_down(true);
        let first = world.drain().await;
        assert_eq!((first.parked, first.settle_checks), (1, 0));
        assert_eq!(first.left.values().sum::<u32>(), 1, "{first:?}");
        assert_eq!(world.queues.len(DLQ), 1, "not deleted: it comes back");
        assert_eq!(world.parking.all().len(), 1, "parked first");

        // The next run finds it parked, and hands it on this time.
        world.deadlines.set_down(false);
        world.queues.make_visible(DLQ);
        let second = world.drain().await;
        assert_eq!(
            (second.parked, second.handled_before, second.settle_checks),
            (0, 1, 1)
        );
        assert_eq!(world.deadlines.for_parked().len(), 1);
        assert_eq!(world.queues.len(DLQ), 0);
        assert_eq!(world.parking.all().len(), 1, "parked once");
    }

    #[tokio::test]
    async fn a_payment_requested_on_the_bus_is_parked_without_its_bearer_token() {
        let world = World::new();
        let mut event: serde_json::Value = serde_json::from_str(&event_body(100)).unwrap();
        event["detail"]["consent"] = serde_json::json!({"bearer_token": "eyJhbGciOi.payer.sig"});
        world.queues.put(
            DLQ,
            with_record(letter("refused", &event.to_string()), "permanent", SOURCE),
        );
        assert_eq!(world.drain().await.parked, 1);
        let [parked] = &world.parking.all()[..] else {
            panic!("one parked message")
        };
        assert!(parked.consent_removed);
        assert!(!parked.body.contains("eyJhbGciOi"), "{}", parked.body);
        let kept: serde_json::Value = serde_json::from_str(&parked.body).unwrap();
        assert_eq!(kept["detail"]["data"], event["detail"]["data"]);
    }

    #[tokio::test]
    async fn a_message_sent_back_keeps_its_trace() {
        let world = World::new();
        let header: lambda_toolkit::trace::TraceHeader =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                .parse()
                .unwrap();
        let mut traced = transient("traced");
        traced.trace_header = Some(header.clone());
        world.queues.put(DLQ, traced);
        world.queues.put(DLQ, transient("untraced"));
        assert_eq!(world.drain().await.sent_back, 2);
        let mut traces: Vec<_> = world
            .queues
            .messages(SOURCE)
            .into_iter()
            .map(|message| message.trace_header)
            .collect();
        traces.sort_by_key(Option::is_none);
        assert_eq!(traces, [Some(header), None]);
    }

    #[tokio::test]
    async fn a_run_killed_after_sending_does_not_send_again() {
        let world = World::new();
        for id in ["a", "b"] {
            world.queues.put(DLQ, transient(id));
        }
        // The first run sends and journals, then dies before deleting.
        world.queues.fail_deletes(true);
        let first = world.drain().await;
        assert_eq!((first.sent_back, first.not_deleted), (2, 2));
        world.queues.fail_deletes(false);
        world.queues.make_visible(DLQ);

        let second = world.drain().await;
        assert_eq!((second.sent_back, second.handled_before), (0, 2));
        assert_eq!(
            world.queues.messages(SOURCE).len(),
            2,
            "each copy sent once"
        );
        assert_eq!(world.queues.len(DLQ), 0);
    }

    #[tokio::test]
    async fn what_a_queue_refuses_stays_in_the_dlq() {
        let world = World::new();
        world.queues.put(DLQ, transient("a"));
        world.queues.refuse_sends(SOURCE, true);
        let report = world.drain().await;
        assert_eq!(
            (report.sent_back, report.left.values().sum::<u32>()),
            (0, 1)
        );
        world.queues.refuse_sends(SOURCE, false);
        world.queues.make_visible(DLQ);
        assert_eq!(world.drain().await.sent_back, 1);
        assert_eq!(world.queues.len(DLQ), 0);
    }

    #[tokio::test]
    async fn max_messages_bounds_a_run() {
        let mut world = World::new();
        world.settings.max_messages = 15;
        for id in 0..40 {
            world.queues.put(DLQ, transient(&format!("m{id}")));
        }
        let report = world.drain().await;
        assert_eq!(
            (report.examined, report.stopped),
            (15, Some(Stopped::MaxMessages))
        );
        assert_eq!(world.queues.len(DLQ), 25);
    }

    #[tokio::test(start_paused = true)]
    async fn sending_back_is_paced_to_the_rate() {
        let mut world = World::new();
        world.settings.max_per_second = 20;
        for id in 0..100 {
            world.queues.put(DLQ, transient(&format!("m{id}")));
        }
        let started = Instant::now();
        let report = world.drain().await;
        assert_eq!(report.sent_back, 100);
        // 10 batches of 10, one every half second: the first at once, the last 4.5 s later.
        assert!(
            started.elapsed() >= Duration::from_millis(4_500),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_parked_message_is_replayed_once_after_its_fix() {
        let world = World::new();
        let broken = event_body(100).replace(r#""version":1"#, r#""version":9"#);
        world
            .queues
            .put(DLQ, with_record(letter("v9", &broken), "permanent", SOURCE));
        assert_eq!(world.drain().await.parked, 1);

        let trail = crate::fakes::RecordingPublisher::default();
        let request = |body: Option<String>| ReplayRequest {
            parked_id: "payments-dlq/v9".to_owned(),
            body,
            destination: None,
            force: false,
            operator: paysaga_domain::OperatorRecord {
                issued_by: paysaga_domain::Owner::parse("ops").unwrap(),
                reason: paysaga_domain::OperatorReason::parse("v9 is read now").unwrap(),
            },
        };
        let refused = replay(
            world.queues.as_ref(),
            &world.parking,
            &trail,
            &request(None),
            Utc::now(),
        )
        .await;
        assert!(
            refused.is_err(),
            "a body that still breaks the contract is not replayed"
        );
        assert!(trail.published().is_empty(), "nor recorded");
        let fixed_body = event_body(100);
        let fixed = replay(
            world.queues.as_ref(),
            &world.parking,
            &trail,
            &request(Some(fixed_body.clone())),
            Utc::now(),
        )
        .await
        .unwrap();
        assert!(fixed.body_edited);
        let sent = world.queues.messages(SOURCE);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body, fixed_body);
        assert_eq!(
            sent[0].stamp().and_then(|stamp| stamp.parked_id).as_deref(),
            Some("payments-dlq/v9")
        );
        assert_eq!(
            trail
                .published()
                .iter()
                .map(paysaga_domain::DomainEvent::event_id)
                .collect::<Vec<_>>(),
            [fixed.action_id.as_str()],
            "recorded once"
        );
        let again = replay(
            world.queues.as_ref(),
            &world.parking,
            &trail,
            &request(Some(fixed_body)),
            Utc::now(),
        )
        .await;
        assert!(again.is_err(), "a replayed message is not replayed twice");
        assert_eq!(trail.published().len(), 1);
        assert_eq!(world.queues.messages(SOURCE).len(), 1);
    }
}
