//! Domain events onto an EventBridge bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use paysaga_domain::DomainEvent;
use paysaga_domain::ports::{EventPublisher, PublishError};

/// PutEvents takes at most this many entries a call.
const ENTRIES_PER_CALL: usize = 10;

/// The EventBridge adapter of [`EventPublisher`].
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus_name: String) -> Self {
        Self { client, bus_name }
    }

    pub fn from_config(config: &aws_config::SdkConfig, bus_name: String) -> Self {
        Self::new(lambda_toolkit::aws::calls::eventbridge(config), bus_name)
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        for chunk in events.chunks(ENTRIES_PER_CALL) {
            // In the current trace ([`lambda_toolkit::trace`]): EventBridge hands it on to SQS targets.
            let trace_header = lambda_toolkit::trace::current().map(|trace| trace.to_string());
            let entries = chunk
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(event.source())
                        .detail_type(event.detail_type())
                        .detail(event.detail_json())
                        .set_trace_header(trace_header.clone())
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
