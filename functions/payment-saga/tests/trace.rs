//! The saga publishes its outcome in the trace of the message it handled: the `AWSTraceHeader`
//! of the record is the current trace ([`lambda_toolkit::trace`]) when the publisher is called, so the
//! EventBridge adapter stamps it on the outcome's `PutEvents` entry.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use lambda_toolkit::metrics::MetricsSink;
use lambda_toolkit::sqs_consumer::SqsConsumer;
use lambda_toolkit::trace;
use payment_saga::PaymentSaga;
use paysaga_domain::DomainEvent;
use paysaga_domain::ports::{EventPublisher, PublishError};
use paysaga_domain::test_support::lambda_event;
use paysaga_services::fakes::{InMemoryLedger, InMemoryProcessor, StaticConsent};
use paysaga_services::saga::SagaSettings;

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// A bus that keeps each event's detail type with the trace it was published in.
#[derive(Default)]
struct TracedPublisher(Mutex<Vec<(String, Option<String>)>>);

#[async_trait]
impl EventPublisher for TracedPublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        let current = trace::current().map(|header| header.to_string());
        let mut published = self.0.lock().unwrap();
        for event in events {
            published.push((event.detail_type().to_owned(), current.clone()));
        }
        Ok(())
    }
}

async fn saga(events: Arc<TracedPublisher>) -> SqsConsumer<PaymentSaga> {
    let ledger = Arc::new(
        InMemoryLedger::euro_wallets(&[("wal_demo_alice", 10_000), ("wal_demo_bob", 0)]).await,
    );
    let handler = PaymentSaga {
        payments: ledger.clone(),
        wallets: ledger,
        consent: Arc::new(StaticConsent::demo()),
        events,
        processor: Arc::new(InMemoryProcessor::default()),
        settings: SagaSettings::default(),
        max_receive_count: 3,
        circuit: None,
    };
    SqsConsumer::new(
        handler,
        MetricsSink::new("paysaga", "payment-saga", Vec::new()),
    )
}

fn payment_requested(trace_header: Option<&str>) -> SqsEvent {
    let mut event: SqsEvent = lambda_event("sqs-payment-requested.json");
    for record in &mut event.records {
        match trace_header {
            Some(header) => record
                .attributes
                .insert(trace::SQS_ATTRIBUTE.into(), header.into()),
            None => record.attributes.remove(trace::SQS_ATTRIBUTE),
        };
    }
    event
}

async fn published_after(trace_header: Option<&str>) -> Vec<(String, Option<String>)> {
    let events = Arc::new(TracedPublisher::default());
    let function = saga(events.clone()).await;
    let event = payment_requested(trace_header);
    let response = function.handle(event).await.expect("a batch response");
    assert!(response.batch_item_failures.is_empty());
    events.0.lock().unwrap().clone()
}

#[tokio::test]
async fn the_outcome_is_published_in_the_trace_of_the_request() {
    assert_eq!(
        published_after(Some(TRACE)).await,
        [("PaymentCompleted".to_owned(), Some(TRACE.to_owned()))]
    );
}

#[tokio::test]
async fn without_a_trace_on_the_message_the_outcome_carries_none() {
    assert_eq!(
        published_after(None).await,
        [("PaymentCompleted".to_owned(), None)]
    );
}
