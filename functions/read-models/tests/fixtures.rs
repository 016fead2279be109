//! The read-models handler fed with the SQS events in `events/lambda/`, against the in-memory
//! read models.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use lambda_toolkit::testing::{TestConsumer, set_receive_count};
use paysaga_aws::EventMessages;
use paysaga_domain::ports::{ReadModelReader, ReadModelWriter, StoreError};
use paysaga_domain::test_support::lambda_event;
use paysaga_domain::{PaymentStatus, WalletId};
use paysaga_services::read_models::{
    Applied, InMemoryReadModels, PageRequest, ReadModelChange, TransactionKind,
};
use read_models::ReadModels;

fn fixture(name: &str) -> SqsEvent {
    lambda_event(name)
}

/// A table that is not reachable.
struct Unreachable;

#[async_trait]
impl ReadModelWriter for Unreachable {
    async fn apply(&self, _: &ReadModelChange) -> Result<Applied, StoreError> {
        Err(StoreError::Transient("throttled".into()))
    }
}

struct TestFunction {
    function: TestConsumer<EventMessages<ReadModels>>,
    models: Arc<InMemoryReadModels>,
}

/// The function, giving up on a message's third delivery.
fn test_function() -> TestFunction {
    let models = Arc::new(InMemoryReadModels::default());
    let handler = ReadModels {
        read_models: models.clone(),
    };
    TestFunction {
        function: TestConsumer::new(EventMessages(handler), 3),
        models,
    }
}

fn alice() -> WalletId {
    WalletId::parse("wal_demo_alice").expect("id")
}

#[tokio::test]
async fn events_become_a_wallets_history_and_payments_once_however_often_delivered() {
    let test = test_function();
    assert!(
        test.function
            .deliver(fixture("sqs-read-models-events.json"))
            .await
            .is_empty()
    );
    assert!(
        test.function
            .deliver(fixture("sqs-read-models-events.json"))
            .await
            .is_empty()
    );

    let history = test
        .models
        .transactions(&alice(), &PageRequest::default())
        .await
        .expect("history");
    let lines: Vec<_> = history
        .items
        .iter()
        .map(|item| {
            (
                item.entry.kind,
                item.entry.amount.minor_units,
                item.entry.status,
                item.revision,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            // Newest first; the payment was PENDING, then COMPLETED: two changes.
            (
                TransactionKind::PaymentSent,
                -1_250,
                PaymentStatus::Completed,
                2
            ),
            (
                TransactionKind::Deposit,
                10_000,
                PaymentStatus::Completed,
                1
            ),
        ]
    );
    let bob = WalletId::parse("wal_demo_bob").expect("id");
    let payments = test
        .models
        .payments(&bob, &PageRequest::default())
        .await
        .expect("payments");
    assert_eq!(payments.items.len(), 1);
    assert_eq!(
        payments.items[0].entry.payment_id.as_str(),
        "pay_demo_rm_0001"
    );

    let changed = test.function.metric("ReadModelItemsChanged");
    let unchanged = test.function.metric("ReadModelItemsUnchanged");
    // 1 + 2 + 2 changes the first time (one item per wallet; the outcome moves the request's 2
    // items on); the second delivery's 5 writes change nothing.
    assert_eq!((changed, unchanged), (5.0, 5.0));
    // Each event handled, the duplicates too, is one lag since it became true (the fixtures'
    // events are from the past).
    let lags = test.function.observed("EventLag");
    assert_eq!(lags.len(), 6, "{lags:?}");
    assert!(lags.iter().all(|lag| *lag > 0.0), "{lags:?}");
}

#[tokio::test]
async fn an_unknown_version_fails_alone_and_goes_to_the_dlq_with_its_reason_on_its_last_delivery() {
    let test = test_function();
    let mut event = fixture("sqs-read-models-events.json");
    let newer = &mut event.records[0];
    newer.body = newer
        .body
        .as_ref()
        .map(|body| body.replace(r#""version": 1"#, r#""version": 2"#));
    let first = test.function.deliver(event.clone()).await;
    assert_eq!(first, [event.records[0].message_id.clone().expect("id")]);
    assert!(test.function.dead_letters.records().is_empty());

    set_receive_count(&mut event.records[0], 3);
    let last = test.function.deliver(event).await;
    assert!(last.is_empty(), "sent to the DLQ, not back to the queue");
    let records: Vec<_> = test
        .function
        .dead_letters
        .records()
        .into_iter()
        .map(|(_, record)| record)
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, "permanent");
    assert!(
        records[0].reason.contains("version 2"),
        "{}",
        records[0].reason
    );

    // Its batch-mates were projected.
    let bob = WalletId::parse("wal_demo_bob").expect("id");
    let payments = test
        .models
        .payments(&bob, &PageRequest::default())
        .await
        .expect("payments");
    assert_eq!(payments.items.len(), 1);
}

#[tokio::test]
async fn a_store_outage_sends_the_messages_back_to_be_retried() {
    let read_models = Arc::new(Unreachable);
    let function = TestConsumer::new(EventMessages(ReadModels { read_models }), 3);
    let event = fixture("sqs-read-models-events.json");
    let failed = function.deliver(event.clone()).await;
    assert_eq!(failed.len(), event.records.len());
    assert!(function.dead_letters.records().is_empty());
}
