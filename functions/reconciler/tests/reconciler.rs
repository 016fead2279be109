//! The reconciler's handler against the in-memory ledger and parking table: a deadline check
//! that arrives early comes back at the deadline; an overdue payment is announced again and
//! looked at again until it is terminal; a terminal one's check is done with; a check carrying
//! a parked message's id settles that message once its payment is terminal; funds still held
//! for a terminal payment are given back and counted; a body that is no check is refused.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use chrono::Utc;
use lambda_toolkit::testing::{TestConsumer, sqs_message};
use paysaga_domain::ports::{
    BeginPayment, PaymentHistory, PaymentLog, PaymentRequests, RecordStep, StoreError,
};
use paysaga_domain::saga::StepPlan;
use paysaga_domain::test_support::request;
use paysaga_domain::{
    DomainEvent, IdempotencyKey, Payment, PaymentId, PaymentLogEntry, PaymentRequest, PaymentStep,
    RequestChannel,
};
use paysaga_services::fakes::{InMemoryLedger, InMemoryParking, RecordingPublisher};
use paysaga_services::redrive::parking::{FlowOutcome, ParkedStatus};
use paysaga_services::redrive::{DeadLetter, ParkedMessage, ParkingLot, QueueRef};
use reconciler::{Reconciler, ReconcilerSettings};

const RECHECK: Duration = Duration::from_secs(300);

fn reconciler(
    ledger: &Arc<impl PaymentLog + 'static>,
    bus: &Arc<RecordingPublisher>,
) -> TestConsumer<Reconciler> {
    with_parking(ledger, bus, &Arc::new(InMemoryParking::default()))
}

fn with_parking(
    ledger: &Arc<impl PaymentLog + 'static>,
    bus: &Arc<RecordingPublisher>,
    parking: &Arc<InMemoryParking>,
) -> TestConsumer<Reconciler> {
    TestConsumer::new(
        Reconciler {
            log: ledger.clone(),
            events: bus.clone(),
            parking: parking.clone(),
            settings: ReconcilerSettings {
                flow_deadline: chrono::Duration::minutes(15),
                recheck: RECHECK,
            },
        },
        50,
    )
}

/// `body` on its `receive_count`th delivery.
fn batch_of(body: &str, receive_count: u32) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = vec![sqs_message("m-1", body, receive_count)];
    event
}

fn check_of(payment_id: &str) -> SqsEvent {
    batch_of(&format!(r#"{{"payment_id":"{payment_id}"}}"#), 1)
}

/// Ends `request`'s payment FAILED in `ledger`, as the saga does when its payer is short.
async fn fail_for_want_of_funds(ledger: &InMemoryLedger, request: &PaymentRequest) {
    let history = ledger.history(request.payment_id()).await.unwrap();
    let failed = Payment::from_log(&history).unwrap().next_entry(
        PaymentStep::Failed {
            reason: paysaga_domain::FailureReason::InsufficientFunds {
                wallet_id: request.payer_wallet().clone(),
            },
        },
        Utc::now(),
    );
    ledger.append_unchecked(failed);
}

#[tokio::test]
async fn an_overdue_payment_is_driven_on_and_checked_again_until_it_is_terminal() {
    let (ledger, bus) = (
        Arc::new(InMemoryLedger::default()),
        Arc::new(RecordingPublisher::default()),
    );
    let consumer = reconciler(&ledger, &bus);
    let request = request(100);
    let id = request.payment_id().to_string();

    // Requested a minute ago: not due for 14 minutes.
    let requested_at = Utc::now() - chrono::Duration::minutes(1);
    ledger
        .begin(&request, RequestChannel::Api, None, requested_at)
        .await
        .unwrap();
    assert_eq!(
        consumer.deliver(check_of(&id)).await,
        ["m-1"],
        "back at its deadline"
    );
    assert!(bus.published().is_empty());

    // Requested an hour ago and still PENDING: announced again, looked at again.
    let overdue = Arc::new(InMemoryLedger::default());
    let requested_at = Utc::now() - chrono::Duration::hours(1);
    overdue
        .begin(&request, RequestChannel::Api, None, requested_at)
        .await
        .unwrap();
    let consumer = reconciler(&overdue, &bus);
    assert_eq!(consumer.deliver(check_of(&id)).await, ["m-1"]);
    assert_eq!(
        bus.published(),
        [DomainEvent::payment_requested(&request, requested_at)],
        "the first announcement again"
    );
    assert_eq!(consumer.metric("OverduePayments"), 1.0);

    // Once the saga has ended it, the check is done with.
    fail_for_want_of_funds(&overdue, &request).await;
    assert!(consumer.deliver(check_of(&id)).await.is_empty());
    assert_eq!(consumer.metric("PaymentsSettledInTime"), 1.0);
    assert_eq!(bus.published().len(), 1);
}

/// `body` as the redrive parks it from the payments DLQ; its parked id.
async fn parked(parking: &InMemoryParking, body: &str) -> String {
    let queue = |name: &str| QueueRef {
        arn: format!("arn:aws:sqs:us-east-1:000000000000:{name}"),
        url: format!("http://sqs.local/000000000000/{name}"),
    };
    let letter = DeadLetter {
        message_id: "m-9".to_owned(),
        receipt_handle: "receipt-m-9".to_owned(),
        body: body.to_owned(),
        attributes: Default::default(),
        source_arn: None,
        receive_count: 1,
        sent_at: Some(Utc::now()),
        trace_header: None,
    };
    let message = ParkedMessage::new(
        &letter,
        &queue("payments-dlq"),
        &[queue("payments")],
        "failed again after 3 redrives".to_owned(),
        Utc::now(),
    );
    parking.park(&message).await.unwrap();
    message.parked_id
}

#[tokio::test]
async fn a_parked_request_s_check_settles_it_once_its_payment_is_terminal() {
    let (ledger, bus, parking) = (
        Arc::new(InMemoryLedger::default()),
        Arc::new(RecordingPublisher::default()),
        Arc::new(InMemoryParking::default()),
    );
    let consumer = with_parking(&ledger, &bus, &parking);
    let request = request(100);
    let id = request.payment_id().to_string();
    let requested_at = Utc::now() - chrono::Duration::hours(1);
    ledger
        .begin(&request, RequestChannel::Api, None, requested_at)
        .await
        .unwrap();
    let announced = DomainEvent::payment_requested(&request, requested_at);
    let body = serde_json::json!({"source": announced.source(), "detail-type": announced.detail_type(),
        "detail": serde_json::from_str::<serde_json::Value>(&announced.detail_json()).unwrap()});
    let parked_id = parked(&parking, &body.to_string()).await;
    let check = || {
        let body = serde_json::json!({"payment_id": id, "parked_id": parked_id});
        batch_of(&body.to_string(), 1)
    };

    // Overdue and PENDING: driven on, looked at again, the message still parked.
    assert_eq!(consumer.deliver(check()).await, ["m-1"]);
    assert_eq!(bus.published(), std::slice::from_ref(&announced));
    assert_eq!(consumer.metric("OverduePayments"), 1.0);
    assert_eq!(parking.all()[0].status, ParkedStatus::Parked);
    assert_eq!(parking.waiting().await.unwrap(), 1);

    // The saga ends it FAILED: the check is done with, and the message settled as FAILED.
    fail_for_want_of_funds(&ledger, &request).await;
    assert!(consumer.deliver(check()).await.is_empty());
    assert_eq!(consumer.metric("ParkedMessagesSettled"), 1.0);
    assert_eq!(
        consumer.metric("PaymentsSettledInTime"),
        0.0,
        "a parked message's check is not its payment's own"
    );
    let settled = &parking.all()[0];
    assert_eq!(settled.status, ParkedStatus::Settled);
    assert_eq!(settled.settled_as, Some(FlowOutcome::Failed));
    assert!(settled.settled_at.is_some());
    assert_eq!(parking.waiting().await.unwrap(), 0);

    // Delivered again (at least once): done with, counted once.
    assert!(consumer.deliver(check()).await.is_empty());
    assert_eq!(consumer.metric("ParkedMessagesSettled"), 1.0);
    assert_eq!(bus.published().len(), 1);
}

#[tokio::test]
async fn a_parked_message_of_a_payment_the_log_does_not_hold_stays_parked() {
    let (ledger, bus, parking) = (
        Arc::new(InMemoryLedger::default()),
        Arc::new(RecordingPublisher::default()),
        Arc::new(InMemoryParking::default()),
    );
    let consumer = with_parking(&ledger, &bus, &parking);
    let parked_id = parked(&parking, "{}").await;
    let body = serde_json::json!({"payment_id": "pay_unknown", "parked_id": parked_id});
    assert!(
        consumer
            .deliver(batch_of(&body.to_string(), 1))
            .await
            .is_empty()
    );
    assert_eq!(parking.all()[0].status, ParkedStatus::Parked);
    assert_eq!(consumer.metric("ParkedMessagesSettled"), 0.0);
    assert!(bus.published().is_empty());
}

#[tokio::test]
async fn a_body_that_is_no_deadline_check_goes_to_the_dead_letter_queue_with_why() {
    let (ledger, bus) = (
        Arc::new(InMemoryLedger::default()),
        Arc::new(RecordingPublisher::default()),
    );
    let consumer = reconciler(&ledger, &bus);
    // Refused on every delivery, given up on the last, with why.
    assert_eq!(
        consumer
            .deliver(batch_of(r#"{"payment":"pay_1"}"#, 1))
            .await,
        ["m-1"]
    );
    assert!(consumer.dead_letters.records().is_empty());
    let last = batch_of(r#"{"payment":"pay_1"}"#, 50);
    assert!(consumer.deliver(last).await.is_empty());
    let records = consumer.dead_letters.records();
    assert_eq!(records.len(), 1);
    assert!(
        format!("{:?}", records[0].1).contains("not a deadline check"),
        "{:?}",
        records[0].1
    );
}

/// The in-memory ledger, with funds still held for some payments as a late reservation that
/// stopped before giving its hold back leaves them (which the in-memory ledger, writing every
/// step at once, never does): the DynamoDB adapter's `lift_stray_hold` gives them back once.
#[derive(Default)]
struct StrayHolds {
    ledger: InMemoryLedger,
    held_for: Mutex<HashSet<PaymentId>>,
}

#[async_trait]
impl PaymentHistory for StrayHolds {
    async fn history(&self, id: &PaymentId) -> Result<Vec<PaymentLogEntry>, StoreError> {
        self.ledger.history(id).await
    }
}

#[async_trait]
impl PaymentRequests for StrayHolds {
    async fn begin(
        &self,
        request: &PaymentRequest,
        channel: RequestChannel,
        idempotency_key: Option<&IdempotencyKey>,
        now: chrono::DateTime<Utc>,
    ) -> Result<BeginPayment, StoreError> {
        self.ledger
            .begin(request, channel, idempotency_key, now)
            .await
    }
}

#[async_trait]
impl PaymentLog for StrayHolds {
    async fn record(&self, plan: &StepPlan) -> Result<RecordStep, StoreError> {
        self.ledger.record(plan).await
    }

    async fn lift_stray_hold(&self, payment: &Payment) -> Result<bool, StoreError> {
        let mut held_for = self.held_for.lock().unwrap();
        Ok(held_for.remove(payment.request.payment_id()))
    }
}

#[tokio::test]
async fn funds_still_held_for_a_terminal_payment_are_given_back_once_and_counted() {
    let (log, bus) = (
        Arc::new(StrayHolds::default()),
        Arc::new(RecordingPublisher::default()),
    );
    let consumer = reconciler(&log, &bus);
    let request = request(100);
    let id = request.payment_id().to_string();
    log.ledger
        .begin(&request, RequestChannel::Api, None, Utc::now())
        .await
        .unwrap();
    fail_for_want_of_funds(&log.ledger, &request).await;
    log.held_for
        .lock()
        .unwrap()
        .insert(request.payment_id().clone());

    assert!(consumer.deliver(check_of(&id)).await.is_empty());
    assert!(log.held_for.lock().unwrap().is_empty(), "given back");
    assert_eq!(consumer.metric("StrayHoldsGivenBack"), 1.0);
    assert_eq!(consumer.metric("PaymentsSettledInTime"), 1.0);

    // Delivered again (at least once): nothing held any more, nothing counted.
    assert!(consumer.deliver(check_of(&id)).await.is_empty());
    assert_eq!(consumer.metric("StrayHoldsGivenBack"), 1.0);
    assert_eq!(consumer.metric("PaymentsSettledInTime"), 2.0);
    assert!(bus.published().is_empty());
}
