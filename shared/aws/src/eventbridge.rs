//! Domain events onto an EventBridge bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use paysaga_domain::DomainEvent;
use paysaga_domain::ports::{EventPublisher, PublishError};

/// PutEvents takes at most this many entries a call.
const ENTRIES_PER_CALL: usize = 10;

/// The EventBridge adapter of [`EventPublisher`], for the event types one function publishes.
///
/// A function names the `detail-type`s it publishes where it builds its publisher, and the
/// publisher refuses any other: its role in the template may put only those on the bus (IAM's
/// `events:source`/`events:detail-type` conditions), and `infra/deploy/checks/iam.py` reads
/// the list from the call to compare it with the role.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
    publishes: &'static [&'static str],
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus_name: String, publishes: &'static [&'static str]) -> Self {
        Self {
            client,
            bus_name,
            publishes,
        }
    }

    /// A publisher of the `detail-type`s in `publishes` (constants of
    /// [`paysaga_domain::events`]) onto the bus `bus_name`.
    pub fn from_config(
        config: &aws_config::SdkConfig,
        bus_name: String,
        publishes: &'static [&'static str],
    ) -> Self {
        Self::new(
            lambda_toolkit::aws::calls::eventbridge(config),
            bus_name,
            publishes,
        )
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        self.publish_traced(events, &[]).await
    }

    /// Each entry carries its event's trace header (`TraceHeader`), which EventBridge hands
    /// on to SQS targets; an event without one (or with one that is not an X-Ray header) is
    /// published in the current trace ([`lambda_toolkit::trace`]).
    async fn publish_traced(
        &self,
        events: &[DomainEvent],
        traces: &[Option<String>],
    ) -> Result<(), PublishError> {
        if let Some(event) = events
            .iter()
            .find(|event| !self.publishes.contains(&event.detail_type()))
        {
            return Err(PublishError(format!(
                "this function publishes {}, not {} (nor may its role)",
                self.publishes.join(", "),
                event.detail_type()
            )));
        }
        let current = lambda_toolkit::trace::current().map(|trace| trace.to_string());
        let trace_of = |index: usize| {
            traces
                .get(index)
                .cloned()
                .flatten()
                .filter(|header| header.parse::<lambda_toolkit::trace::TraceHeader>().is_ok())
                .or_else(|| current.clone())
        };
        for (chunk_index, chunk) in events.chunks(ENTRIES_PER_CALL).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(event.source())
                        .detail_type(event.detail_type())
                        .detail(event.detail_json())
                        .set_trace_header(trace_of(chunk_index * ENTRIES_PER_CALL + index))
                        .build()
                })
                .collect();
            let output = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| {
                    PublishError(format!(
                        "PutEvents: {}",
                        aws_sdk_eventbridge::error::DisplayErrorContext(&error)
                    ))
                })?;
            if output.failed_entry_count() > 0 {
                let codes: Vec<&str> = output
                    .entries()
                    .iter()
                    .filter_map(|entry| entry.error_code())
                    .collect();
                return Err(PublishError(format!(
                    "PutEvents refused {} of {} entries: {}",
                    output.failed_entry_count(),
                    chunk.len(),
                    codes.join(",")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use paysaga_domain::events::{FundsDeposited, PAYMENT_COMPLETED, PAYMENT_FAILED};
    use paysaga_domain::{DepositId, Money, WalletId};

    use super::*;

    #[tokio::test]
    async fn an_event_type_the_function_does_not_publish_is_refused_before_any_call() {
        // No endpoint can answer: a call would fail otherwise than with the refusal.
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_eventbridge::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let publisher = EventBridgePublisher::new(
            Client::from_conf(config),
            "bus".to_owned(),
            &[PAYMENT_COMPLETED, PAYMENT_FAILED],
        );
        let deposit = DomainEvent::funds_deposited(
            FundsDeposited {
                deposit_id: DepositId::parse("dep_1").unwrap(),
                wallet_id: WalletId::parse("wal_1").unwrap(),
                amount: Money::new(100, "EUR".parse().unwrap()).unwrap(),
                issued_by: None,
                reason: None,
            },
            Utc::now(),
        );
        let PublishError(refusal) = publisher.publish(&[deposit]).await.unwrap_err();
        assert_eq!(
            refusal,
            "this function publishes PaymentCompleted, PaymentFailed, not FundsDeposited (nor may its role)"
        );
    }
}
