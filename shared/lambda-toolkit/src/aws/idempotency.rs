//! Idempotency records ([`crate::idempotency`]) in DynamoDB: a table whose hash key is
//! `idempotency_key` (a string), with DynamoDB's TTL on the attribute `expires_at`. The table
//! may hold the application's own items too: the toolkit's keys are namespaced
//! (`<namespace>#<key>`), and an item that is not one of its records is refused as a permanent
//! error, never taken for one.
//!
//! An item: `idempotency_key`, `status` (`IN_PROGRESS` or `COMPLETED`), `payload_hash`,
//! `expires_at` (epoch seconds: DynamoDB's TTL), `in_progress_expires_at` (epoch milliseconds)
//! and, when stored, `result` (JSON text). A claim is one conditional `PutItem`; a repeat reads
//! the record that refused it from the failed write itself
//! (`ReturnValuesOnConditionCheckFailure`), or with a consistent read where that is missing.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, TimeZone, Utc};

use super::dynamodb::{Item, SdkFailure, classify, is_conditional_check_failure, n, s};
use crate::idempotency::{Claim, IdempotencyRecord, IdempotencyStore, RecordStatus, StoreError};

/// A failed call as the idempotency store's error.
fn sdk_error<E>(operation: &str, error: aws_sdk_dynamodb::error::SdkError<E>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(operation, error) {
        SdkFailure::Transient(text) => StoreError::Transient(text),
        SdkFailure::Permanent(text) => StoreError::Permanent(text),
    }
}

/// A claim's condition: no record, or an expired one, or a crashed attempt's claim.
const CLAIMABLE: &str = "attribute_not_exists(idempotency_key) OR expires_at < :now \
    OR (#status = :in_progress AND in_progress_expires_at < :now_ms)";

/// The DynamoDB adapter of [`IdempotencyStore`].
#[derive(Debug, Clone)]
pub struct DynamoDbIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoDbIdempotencyStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: String) -> Self {
        Self::new(super::calls::dynamodb(config), table)
    }

    async fn read(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("idempotency_key", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        output.item.map(from_item).transpose()
    }
}

#[async_trait]
impl IdempotencyStore for DynamoDbIdempotencyStore {
    async fn claim(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(CLAIMABLE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(epoch_seconds(now)))
            .expression_attribute_values(":now_ms", n(epoch_millis(now)))
            .expression_attribute_values(":in_progress", s(RecordStatus::InProgress.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Claim::Claimed),
            Err(error) if is_conditional_check_failure(&error) => error,
            Err(error) => return Err(sdk_error("PutItem", error)),
        };
        let returned = error.as_service_error().and_then(|service| {
            match service {
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                failed,
            ) => failed.item.clone(),
            _ => None,
        }
        });
        let held = match returned {
            Some(item) => Some(from_item(item)?),
            None => self.read(&record.key).await?,
        };
        // Gone between the write and the read (TTL, or a release): the caller retries.
        held.map(Claim::Held).ok_or_else(|| {
            StoreError::Transient(format!("{} changed while being claimed", record.key))
        })
    }

    async fn complete(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .send()
            .await
            .map_err(|error| sdk_error("PutItem", error))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("idempotency_key", s(key))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s(RecordStatus::InProgress.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Completed (or gone) meanwhile: nothing to release.
            Err(error) if is_conditional_check_failure(&error) => Ok(()),
            Err(error) => Err(sdk_error("DeleteItem", error)),
        }
    }
}

fn epoch_seconds(time: DateTime<Utc>) -> u64 {
    u64::try_from(time.timestamp()).unwrap_or(0)
}

fn epoch_millis(time: DateTime<Utc>) -> u64 {
    u64::try_from(time.timestamp_millis()).unwrap_or(0)
}

fn to_item(record: &IdempotencyRecord) -> Item {
    let mut item = HashMap::from([
        ("idempotency_key".to_owned(), s(&record.key)),
        ("status".to_owned(), s(record.status.as_str())),
        ("payload_hash".to_owned(), s(&record.payload_hash)),
        ("expires_at".to_owned(), n(epoch_seconds(record.expires_at))),
        (
            "in_progress_expires_at".to_owned(),
            n(epoch_millis(record.in_progress_until)),
        ),
    ]);
    if let Some(result) = &record.result {
        item.insert("result".to_owned(), s(result));
    }
    item
}

fn from_item(item: Item) -> Result<IdempotencyRecord, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(StoreError::Permanent(format!(
            "idempotency record without a text {name}"
        ))),
    };
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse::<i64>().map_err(|_| {
            StoreError::Permanent(format!("idempotency record with a malformed {name}"))
        }),
        _ => Err(StoreError::Permanent(format!(
            "idempotency record without a number {name}"
        ))),
    };
    let status = text("status")?;
    let status = RecordStatus::parse(&status).ok_or_else(|| {
        StoreError::Permanent(format!("idempotency record with status {status:?}"))
    })?;
    let time = |value: Option<DateTime<Utc>>, name: &str| {
        value.ok_or_else(|| {
            StoreError::Permanent(format!("idempotency record's {name} is out of range"))
        })
    };
    Ok(IdempotencyRecord {
        key: text("idempotency_key")?,
        status,
        payload_hash: text("payload_hash")?,
        expires_at: time(
            Utc.timestamp_opt(number("expires_at")?, 0).single(),
            "expires_at",
        )?,
        in_progress_until: time(
            Utc.timestamp_millis_opt(number("in_progress_expires_at")?)
                .single(),
            "in_progress_expires_at",
        )?,
        result: text("result").ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_its_item() {
        let record = IdempotencyRecord {
            key: "notifications#ord_1/4".into(),
            status: RecordStatus::Completed,
            payload_hash: "ab12".into(),
            expires_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            in_progress_until: Utc.timestamp_millis_opt(1_790_000_000_123).unwrap(),
            result: Some("{\"sent\":2}".into()),
        };
        let item = to_item(&record);
        assert_eq!(item["expires_at"], AttributeValue::N("1800000000".into()));
        assert_eq!(item["status"], AttributeValue::S("COMPLETED".into()));
        assert_eq!(from_item(item).unwrap(), record);
    }

    #[test]
    fn another_item_of_the_table_is_not_mistaken_for_a_record() {
        let reservation = HashMap::from([
            ("idempotency_key".to_owned(), s("reservation#basket_a#k")),
            ("expires_at".to_owned(), n(1_800_000_000)),
        ]);
        assert!(matches!(
            from_item(reservation),
            Err(StoreError::Permanent(_))
        ));
    }
}
