//! The outbox: events written to DynamoDB with the change they report, for the event relay
//! (functions/event-relay) to publish from the table's stream.
//!
//! One item per event, keyed by its id: `{event_id, source, detail_type, detail, expires_at}`.
//! A deposit's `FundsDeposited` is put in the deposit's own transaction
//! ([`crate::DynamoDbLedger`]); an operator's `OperatorActionStarted` is the action's record,
//! put before the action ([`DynamoDbOutbox`]). Writing an event again writes the same item
//! (same id, same content), and a stream record of it is published again at most: consumers
//! de-duplicate on the id. The table's TTL removes an item a week after it was written, long
//! after the stream (24 hours) has handed it on.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dynamodb::{build_error, sdk_error, to_item, traced};
use paysaga_domain::DomainEvent;
use paysaga_domain::events::ContractViolation;
use paysaga_domain::ports::{EventPublisher, PublishError, StoreError};

/// How long an outbox item is kept (the table's TTL then removes it).
pub const OUTBOX_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// An event as the outbox holds it: what a `PutEvents` entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub event_id: String,
    pub source: String,
    pub detail_type: String,
    /// The event's detail, as JSON text.
    pub detail: String,
    /// When DynamoDB's TTL removes the item (epoch seconds).
    pub expires_at: i64,
}

impl OutboxRecord {
    pub fn of(event: &DomainEvent, now: DateTime<Utc>) -> Self {
        Self {
            event_id: event.event_id().to_owned(),
            source: event.source().to_owned(),
            detail_type: event.detail_type().to_owned(),
            detail: event.detail_json(),
            expires_at: (now + OUTBOX_RETENTION).timestamp(),
        }
    }

    /// The event, read against its contract again: an item written around paysaga is refused
    /// here rather than published.
    pub fn event(&self) -> Result<DomainEvent, ContractViolation> {
        DomainEvent::parse(&self.source, &self.detail_type, &self.detail)
    }
}

/// The put of `event`'s outbox item, for a transaction that makes it true.
pub(crate) fn outbox_put(
    table: &str,
    event: &DomainEvent,
    now: DateTime<Utc>,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(traced(to_item(&OutboxRecord::of(event, now))?)))
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Publishes events through the outbox: each is written as an item, which the relay
/// publishes. For an event that is its change's own record (an operator's action); an event
/// that reports another write goes in that write's transaction instead.
#[derive(Debug, Clone)]
pub struct DynamoDbOutbox {
    client: Client,
    table: String,
}

impl DynamoDbOutbox {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: String) -> Self {
        Self::new(lambda_toolkit::aws::calls::dynamodb(config), table)
    }
}

#[async_trait]
impl EventPublisher for DynamoDbOutbox {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        let now = Utc::now();
        for event in events {
            let item = to_item(&OutboxRecord::of(event, now))
                .map_err(|error| PublishError(error.to_string()))?;
            let item = traced(item);
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|error| PublishError(sdk_error("PutItem", error).to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paysaga_domain::events::FundsDeposited;
    use paysaga_domain::{DepositId, Money, WalletId};

    #[test]
    fn an_outbox_record_gives_back_the_event_it_was_made_of() {
        let event = DomainEvent::funds_deposited(
            FundsDeposited {
                deposit_id: DepositId::generate(),
                wallet_id: WalletId::parse("wal_alice").unwrap(),
                amount: Money::new(2_500, "EUR".parse().unwrap()).unwrap(),
                issued_by: None,
                reason: None,
            },
            Utc::now(),
        );
        let now = Utc::now();
        let record = OutboxRecord::of(&event, now);
        assert_eq!(record.event_id, event.event_id());
        assert_eq!(record.expires_at, (now + OUTBOX_RETENTION).timestamp());
        let image = to_item(&record).unwrap();
        let read: OutboxRecord = crate::dynamodb::from_item(image).unwrap();
        assert_eq!(read.event().unwrap(), event);

        let tampered = OutboxRecord {
            detail: read.detail.replace("2500", "2500.5"),
            ..read
        };
        assert!(
            tampered.event().is_err(),
            "a float amount breaks the contract"
        );
    }
}
