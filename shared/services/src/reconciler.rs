//! The reconciler: no payment is left half-done with nobody coming back for it.
//!
//! Every payment's deadline check is scheduled when its request is recorded
//! ([`paysaga_domain::ports::DeadlineChecks`], by the event relay from the log's version 1, so
//! it is as certain as the request's announcement). Once the deadline has passed, the check
//! reads the payment's log: a terminal payment is done with; one that is not is driven on
//! **through the saga**, never around it: its request is announced again (the same event, id
//! and time as the first announcement), and the saga continues or compensates from its log, by
//! its own rules. The check comes back until the payment is terminal.
//!
//! What strands a payment this finds: a message parked by the redrive after an outage longer
//! than every redelivery and redrive, a request whose announcement the relay could not publish
//! for a day, a compensation unfinished on its last delivery whose fresh message could not be
//! sent.
//!
//! A payment's request the redrive parked on its way to the saga has a check of its own, due
//! at once and carrying the parked message's id ([`check_parked`]): the same check, which also
//! marks the message settled once the payment is terminal, so it no longer waits for an
//! operator ([`crate::redrive::parking::ParkedSettlement`]).

use chrono::{DateTime, Utc};

use super::ServiceError;
use crate::redrive::parking::{FlowOutcome, ParkedSettlement};
use paysaga_domain::ports::{EventPublisher, PaymentLog};
use paysaga_domain::{DomainEvent, Payment, PaymentId, PaymentStatus};

/// What a deadline check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// COMPLETED or FAILED: nothing to do but give back funds still held for it, if any were.
    Terminal {
        status: PaymentStatus,
        /// Funds were still held for it, and this check gave them back
        /// ([`PaymentLog::lift_stray_hold`]).
        stray_hold_given_back: bool,
    },
    /// Not terminal, but its deadline has not passed yet: look again in this long.
    NotDue { due_in: chrono::Duration },
    /// Not terminal past its deadline: announced again for the saga to drive on.
    Overdue {
        status: PaymentStatus,
        /// How long past its deadline.
        overdue_by: chrono::Duration,
    },
    /// The log holds no such payment (a check scheduled for a log written around paysaga):
    /// nothing to drive.
    Unknown,
}

/// Checks `payment` against its deadline (`deadline` after its request) at `now`, and drives it
/// on through the saga when it is overdue.
pub async fn check(
    log: &dyn PaymentLog,
    events: &dyn EventPublisher,
    payment: &PaymentId,
    deadline: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Finding, ServiceError> {
    let history = log.history(payment).await?;
    if history.is_empty() {
        return Ok(Finding::Unknown);
    }
    let payment = Payment::from_log(&history)?;
    if payment.status.is_terminal() {
        // A reservation that landed after its payment was done with funds, and stopped before
        // giving them back, left them held with nobody coming back for them: this check is who
        // does.
        let stray_hold_given_back = log.lift_stray_hold(&payment).await?;
        if stray_hold_given_back {
            tracing::warn!(
                payment_id = %payment.request.payment_id(),
                "funds still held for a terminal payment, given back"
            );
        }
        return Ok(Finding::Terminal {
            status: payment.status,
            stray_hold_given_back,
        });
    }
    let due = payment.created_at + deadline;
    if now < due {
        return Ok(Finding::NotDue { due_in: due - now });
    }
    // The same event as the first announcement: consumers de-duplicate it, and the saga's rule
    // routes it to the saga's queue by its priority.
    let again = DomainEvent::payment_requested(&payment.request, payment.created_at);
    events.publish(&[again]).await?;
    Ok(Finding::Overdue {
        status: payment.status,
        overdue_by: now - due,
    })
}

/// What a check carrying a parked message's id did with that message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The payment is terminal: the message is settled now, as its outcome.
    Settled(FlowOutcome),
    /// The payment is terminal, but the message was not parked any more: an operator replayed
    /// it, or an earlier check settled it.
    NotParked,
    /// The payment is not terminal yet, or the log does not hold it: the message stays parked.
    StillParked,
}

/// [`check`]s `payment` for the message `parked_id` the redrive parked on its way to the
/// payment's saga, and marks that message settled once the payment is terminal.
pub async fn check_parked(
    log: &dyn PaymentLog,
    events: &dyn EventPublisher,
    parking: &dyn ParkedSettlement,
    payment: &PaymentId,
    parked_id: &str,
    deadline: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<(Finding, Settlement), ServiceError> {
    let finding = check(log, events, payment, deadline, now).await?;
    let Finding::Terminal { status, .. } = finding else {
        return Ok((finding, Settlement::StillParked));
    };
    let outcome = FlowOutcome::of(status).expect("a Terminal finding holds a terminal status");
    let settlement = if parking.mark_settled(parked_id, outcome, now).await? {
        Settlement::Settled(outcome)
    } else {
        Settlement::NotParked
    };
    Ok((finding, settlement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryLedger, InMemoryParking, RecordingPublisher};
    use crate::redrive::letter::tests::{DLQ, SOURCE, event_body, letter, queue, with_record};
    use crate::redrive::parking::{ParkedMessage, ParkedStatus, ParkingLot};
    use paysaga_domain::ports::PaymentHistory;
    use paysaga_domain::ports::PaymentRequests;
    use paysaga_domain::test_support::request;
    use paysaga_domain::{PaymentStep, RequestChannel};

    fn minutes(n: i64) -> chrono::Duration {
        chrono::Duration::minutes(n)
    }

    #[tokio::test]
    async fn a_payment_past_its_deadline_is_announced_again_until_it_is_terminal() {
        let log = InMemoryLedger::default();
        let bus = RecordingPublisher::default();
        let requested_at = Utc::now();
        let request = request(100);
        log.begin(&request, RequestChannel::Api, None, requested_at)
            .await
            .unwrap();
        let id = request.payment_id();

        let early = check(&log, &bus, id, minutes(15), requested_at + minutes(5)).await;
        assert_eq!(
            early.unwrap(),
            Finding::NotDue {
                due_in: minutes(10)
            }
        );
        assert!(bus.published().is_empty());

        let late = check(&log, &bus, id, minutes(15), requested_at + minutes(20)).await;
        assert_eq!(
            late.unwrap(),
            Finding::Overdue {
                status: PaymentStatus::Pending,
                overdue_by: minutes(5)
            }
        );
        assert_eq!(
            bus.published(),
            [DomainEvent::payment_requested(&request, requested_at)],
            "the first announcement again, id and time"
        );

        let history = log.history(id).await.unwrap();
        let failed = Payment::from_log(&history).unwrap().next_entry(
            PaymentStep::Failed {
                reason: paysaga_domain::FailureReason::InsufficientFunds {
                    wallet_id: request.payer_wallet().clone(),
                },
            },
            Utc::now(),
        );
        log.append_unchecked(failed);
        let done = check(&log, &bus, id, minutes(15), requested_at + minutes(30)).await;
        assert_eq!(
            done.unwrap(),
            Finding::Terminal {
                status: PaymentStatus::Failed,
                stray_hold_given_back: false,
            }
        );
        assert_eq!(bus.published().len(), 1, "nothing more once terminal");
    }

    /// The in-memory ledger, remembering which payments' stray holds it was asked to lift (and
    /// saying it lifted one each time).
    #[derive(Default)]
    struct StrayHolds {
        ledger: InMemoryLedger,
        lifted: std::sync::Mutex<Vec<PaymentId>>,
    }

    #[async_trait::async_trait]
    impl PaymentHistory for StrayHolds {
        async fn history(
            &self,
            id: &PaymentId,
        ) -> Result<Vec<paysaga_domain::PaymentLogEntry>, paysaga_domain::ports::StoreError>
        {
            self.ledger.history(id).await
        }
    }

    #[async_trait::async_trait]
    impl PaymentRequests for StrayHolds {
        async fn begin(
            &self,
            request: &paysaga_domain::PaymentRequest,
            channel: RequestChannel,
            key: Option<&paysaga_domain::IdempotencyKey>,
            now: DateTime<Utc>,
        ) -> Result<paysaga_domain::ports::BeginPayment, paysaga_domain::ports::StoreError>
        {
            self.ledger.begin(request, channel, key, now).await
        }
    }

    #[async_trait::async_trait]
    impl PaymentLog for StrayHolds {
        async fn record(
            &self,
            plan: &paysaga_domain::StepPlan,
        ) -> Result<paysaga_domain::ports::RecordStep, paysaga_domain::ports::StoreError> {
            self.ledger.record(plan).await
        }

        async fn lift_stray_hold(
            &self,
            payment: &Payment,
        ) -> Result<bool, paysaga_domain::ports::StoreError> {
            let mut lifted = self.lifted.lock().unwrap();
            lifted.push(payment.request.payment_id().clone());
            Ok(true)
        }
    }

    #[tokio::test]
    async fn a_terminal_payment_has_any_funds_still_held_for_it_given_back() {
        use paysaga_domain::saga::fail_before_reservation;
        use paysaga_domain::{FailureReason, PaymentRequest, WalletId};

        let log = StrayHolds::default();
        let bus = RecordingPublisher::default();
        let at = Utc::now();
        let refused = request(100);
        let open = PaymentRequest::new(
            PaymentId::parse("pay_open").unwrap(),
            refused.payer_wallet().clone(),
            WalletId::parse("wal_bob").unwrap(),
            refused.amount(),
        )
        .unwrap();
        for request in [&refused, &open] {
            log.begin(request, RequestChannel::Api, None, at)
                .await
                .unwrap();
        }
        let history = log.history(refused.payment_id()).await.unwrap();
        let short = FailureReason::InsufficientFunds {
            wallet_id: refused.payer_wallet().clone(),
        };
        let failed = fail_before_reservation(&Payment::from_log(&history).unwrap(), short, at);
        log.record(&failed).await.unwrap();

        let terminal = check(&log, &bus, refused.payment_id(), minutes(15), at).await;
        let given_back = Finding::Terminal {
            status: PaymentStatus::Failed,
            stray_hold_given_back: true,
        };
        assert_eq!(terminal.unwrap(), given_back);
        let overdue = check(&log, &bus, open.payment_id(), minutes(15), at + minutes(20)).await;
        assert!(matches!(overdue.unwrap(), Finding::Overdue { .. }));
        assert_eq!(
            *log.lifted.lock().unwrap(),
            [refused.payment_id().clone()],
            "only a terminal payment holds nothing rightly"
        );
    }

    /// The request of `request(100)` as the redrive parks it on its way to the saga; its id.
    async fn parked_request(parking: &InMemoryParking) -> String {
        let parked = ParkedMessage::new(
            &with_record(letter("m-1", &event_body(100)), "permanent", SOURCE),
            &queue(DLQ),
            &[queue(SOURCE)],
            "failed again after 3 redrives".to_owned(),
            Utc::now(),
        );
        parking.park(&parked).await.unwrap();
        parked.parked_id
    }

    fn status_of(parking: &InMemoryParking, parked_id: &str) -> ParkedStatus {
        let all = parking.all();
        let parked = all.iter().find(|parked| parked.parked_id == parked_id);
        parked.expect("a parked message").status
    }

    #[tokio::test]
    async fn a_parked_request_is_settled_once_its_payment_is_terminal_and_not_before() {
        let log = InMemoryLedger::default();
        let bus = RecordingPublisher::default();
        let parking = InMemoryParking::default();
        let parked_id = parked_request(&parking).await;
        let requested_at = Utc::now() - minutes(60);
        let request = request(100);
        log.begin(&request, RequestChannel::Api, None, requested_at)
            .await
            .unwrap();
        let id = request.payment_id();
        let at = |now| check_parked(&log, &bus, &parking, id, &parked_id, minutes(15), now);

        // Not due yet, then overdue: driven on as by its own check, and still parked.
        let (early, kept) = at(requested_at + minutes(5)).await.unwrap();
        assert_eq!(
            (early, kept),
            (
                Finding::NotDue {
                    due_in: minutes(10)
                },
                Settlement::StillParked
            )
        );
        let (late, kept) = at(requested_at + minutes(20)).await.unwrap();
        assert!(matches!(late, Finding::Overdue { .. }), "{late:?}");
        assert_eq!(kept, Settlement::StillParked);
        assert_eq!(bus.published().len(), 1, "announced again");
        assert_eq!(status_of(&parking, &parked_id), ParkedStatus::Parked);
        assert_eq!(parking.waiting().await.unwrap(), 1);

        // The saga ends it: the parked message is settled as the payment ended, once.
        let history = log.history(id).await.unwrap();
        let failed = Payment::from_log(&history).unwrap().next_entry(
            PaymentStep::Failed {
                reason: paysaga_domain::FailureReason::InsufficientFunds {
                    wallet_id: request.payer_wallet().clone(),
                },
            },
            Utc::now(),
        );
        log.append_unchecked(failed);
        let settled_at = requested_at + minutes(30);
        let (done, settled) = at(settled_at).await.unwrap();
        assert_eq!(
            done,
            Finding::Terminal {
                status: PaymentStatus::Failed,
                stray_hold_given_back: false,
            }
        );
        assert_eq!(settled, Settlement::Settled(FlowOutcome::Failed));
        let all = parking.all();
        assert_eq!(all[0].status, ParkedStatus::Settled);
        assert_eq!(
            (all[0].settled_as, all[0].settled_at),
            (Some(FlowOutcome::Failed), Some(settled_at))
        );
        assert_eq!(parking.waiting().await.unwrap(), 0, "nobody waits for it");
        let (_, again) = at(settled_at + minutes(1)).await.unwrap();
        assert_eq!(again, Settlement::NotParked, "settled once");
        assert_eq!(bus.published().len(), 1, "nothing more announced");
    }

    #[tokio::test]
    async fn a_replayed_message_stays_replayed_and_an_unknown_payment_s_stays_parked() {
        let log = InMemoryLedger::default();
        let bus = RecordingPublisher::default();
        let parking = InMemoryParking::default();
        let parked_id = parked_request(&parking).await;
        let id = request(100).payment_id().clone();

        let (unknown, kept) = check_parked(
            &log,
            &bus,
            &parking,
            &id,
            &parked_id,
            minutes(15),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!((unknown, kept), (Finding::Unknown, Settlement::StillParked));
        assert_eq!(status_of(&parking, &parked_id), ParkedStatus::Parked);

        // An operator replayed it before the payment ended.
        assert!(parking.mark_replayed(&parked_id, Utc::now()).await.unwrap());
        log.begin(&request(100), RequestChannel::Api, None, Utc::now())
            .await
            .unwrap();
        let history = log.history(&id).await.unwrap();
        let failed = Payment::from_log(&history).unwrap().next_entry(
            PaymentStep::Failed {
                reason: paysaga_domain::FailureReason::InsufficientFunds {
                    wallet_id: request(100).payer_wallet().clone(),
                },
            },
            Utc::now(),
        );
        log.append_unchecked(failed);
        let (done, replayed) = check_parked(
            &log,
            &bus,
            &parking,
            &id,
            &parked_id,
            minutes(15),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            done,
            Finding::Terminal {
                status: PaymentStatus::Failed,
                stray_hold_given_back: false,
            }
        );
        assert_eq!(replayed, Settlement::NotParked);
        assert_eq!(status_of(&parking, &parked_id), ParkedStatus::Replayed);
    }

    #[tokio::test]
    async fn an_unknown_payment_is_nothing_to_drive_and_a_bus_outage_is_worth_a_retry() {
        let log = InMemoryLedger::default();
        let bus = RecordingPublisher::default();
        let unknown = check(&log, &bus, request(1).payment_id(), minutes(1), Utc::now()).await;
        assert_eq!(unknown.unwrap(), Finding::Unknown);

        let requested_at = Utc::now() - minutes(60);
        log.begin(&request(1), RequestChannel::Api, None, requested_at)
            .await
            .unwrap();
        bus.set_down(true);
        let error = check(&log, &bus, request(1).payment_id(), minutes(15), Utc::now())
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
    }
}
