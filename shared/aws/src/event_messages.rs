//! paysaga's events as SQS messages: what an EventBridge rule delivers to a queue, each body
//! one event in its EventBridge envelope. A consumer of events says what it does with one
//! event ([`EventHandler`]); [`EventMessages`] reads each message against the event contracts
//! first, and a message that breaks them fails as permanent, with why (to the DLQ with its
//! reason on its last delivery).
//!
//! Each event handled is observed as `EventLag` (milliseconds, by `event` detail-type): from
//! the write that made it true (`occurred_at`) to this function having done its part, the
//! whole way an event travels (the relay, the bus, the queue, the handler).

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use chrono::Utc;
use lambda_toolkit::metrics::{InvocationMetrics, Unit, milliseconds};
use lambda_toolkit::sqs_batch::MessageFailure;
use lambda_toolkit::sqs_consumer::{Handled, MessageHandler};
use paysaga_domain::DomainEvent;

/// What a function does with one paysaga event.
#[async_trait]
pub trait EventHandler: Send + Sync {
    async fn handle(&self, event: &DomainEvent, metrics: &InvocationMetrics) -> Handled;
}

/// The [`MessageHandler`] of a queue of paysaga events, handing each to its [`EventHandler`].
pub struct EventMessages<H>(pub H);

#[async_trait]
impl<H: EventHandler> MessageHandler for EventMessages<H> {
    async fn handle(&self, message: &SqsMessage, metrics: &InvocationMetrics) -> Handled {
        let event = DomainEvent::from_eventbridge(message.body.as_deref().unwrap_or_default())
            .map_err(MessageFailure::permanent)?;
        self.0.handle(&event, metrics).await?;
        let lag = (Utc::now() - event.occurred_at())
            .to_std()
            .unwrap_or_default();
        let event_type = [("event", event.detail_type())];
        metrics.observe(
            "EventLag",
            &event_type,
            milliseconds(lag),
            Unit::Milliseconds,
        );
        Ok(())
    }
}
