//! The redrive's parking table and journal in DynamoDB.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, Select, WriteRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::dynamodb::{
    BATCH_ROUNDS, build_error, from_item, get_batch, is_conditional_check_failure, s, sdk_error,
    to_item,
};
use paysaga_domain::ports::StoreError;
use paysaga_services::redrive::parking::{FlowOutcome, ParkedPage, ParkedSettlement, Parking};
use paysaga_services::redrive::{JournalEntry, ParkedMessage, ParkingLot, RedriveJournal};

/// Journal entries outlive the longest a copy can sit in a dead-letter queue (14 days).
const JOURNAL_LIFETIME: chrono::Duration = chrono::Duration::days(15);

/// The DynamoDB adapter of [`ParkingLot`] and [`ParkedSettlement`] (table keyed by
/// `parked_id`).
#[derive(Debug, Clone)]
pub struct DynamoDbParking {
    client: Client,
    table: String,
}

impl DynamoDbParking {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: String) -> Self {
        Self::new(lambda_toolkit::aws::calls::dynamodb(config), table)
    }

    /// Moves a message out of `parked` into `status` (`replayed`, `settled`), recording when
    /// (`<status>_at`) and, with `also`, one more attribute; `false` when it had left `parked`
    /// already (nothing was written).
    async fn leave_parked(
        &self,
        parked_id: &str,
        status: &str,
        at: DateTime<Utc>,
        also: Option<(&str, &str)>,
    ) -> Result<bool, StoreError> {
        let mut update = format!("SET #status = :status, {status}_at = :at");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("parked_id", s(parked_id))
            .condition_expression("#status = :parked")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":parked", s("parked"))
            .expression_attribute_values(":at", s(&at.to_rfc3339()));
        if let Some((name, value)) = also {
            update.push_str(&format!(", {name} = :also"));
            request = request.expression_attribute_values(":also", s(value));
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_check_failure(&error) => Ok(false),
            Err(error) => Err(sdk_error("UpdateItem", error)),
        }
    }
}

#[async_trait]
impl ParkingLot for DynamoDbParking {
    async fn park(&self, message: &ParkedMessage) -> Result<Parking, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(message)?))
            .condition_expression("attribute_not_exists(parked_id)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(Parking::Parked),
            Err(error) if is_conditional_check_failure(&error) => Ok(Parking::AlreadyParked),
            Err(error) => Err(sdk_error("PutItem", error)),
        }
    }

    async fn parked(&self, parked_id: &str) -> Result<Option<ParkedMessage>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("parked_id", s(parked_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        got.item.map(from_item).transpose()
    }

    async fn list(&self, limit: u32, after: Option<&str>) -> Result<ParkedPage, StoreError> {
        let scanned = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000))
            .set_exclusive_start_key(
                after.map(|id| HashMap::from([("parked_id".to_owned(), s(id))])),
            )
            .send()
            .await
            .map_err(|error| sdk_error("Scan", error))?;
        let mut messages: Vec<ParkedMessage> = scanned
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        messages.sort_by_key(|message| message.parked_at);
        let next = scanned
            .last_evaluated_key
            .and_then(|key| key.get("parked_id").and_then(|id| id.as_s().ok()).cloned());
        Ok(ParkedPage { messages, next })
    }

    async fn waiting(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .select(Select::Count)
                .filter_expression("#status = :parked")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":parked", s("parked"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| sdk_error("Scan", error))?;
            total += u64::try_from(page.count).unwrap_or(0);
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(total);
            }
        }
    }

    async fn mark_replayed(&self, parked_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.leave_parked(parked_id, "replayed", at, None).await
    }
}

#[async_trait]
impl ParkedSettlement for DynamoDbParking {
    async fn mark_settled(
        &self,
        parked_id: &str,
        outcome: FlowOutcome,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.leave_parked(
            parked_id,
            "settled",
            at,
            Some(("settled_as", outcome.as_str())),
        )
        .await
    }
}

/// The DynamoDB adapter of [`RedriveJournal`] (table keyed by `entry_key`, TTL `expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoDbJournal {
    client: Client,
    table: String,
}

impl DynamoDbJournal {
    pub fn from_config(config: &aws_config::SdkConfig, table: String) -> Self {
        Self {
            client: lambda_toolkit::aws::calls::dynamodb(config),
            table,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct JournalRecord {
    entry_key: String,
    destination: String,
    sent_back_at: DateTime<Utc>,
    expires_at: i64,
}

#[async_trait]
impl RedriveJournal for DynamoDbJournal {
    async fn sent_back(&self, keys: &[String]) -> Result<HashSet<String>, StoreError> {
        let wanted = keys
            .iter()
            .map(|key| HashMap::from([("entry_key".to_owned(), s(key))]))
            .collect();
        let items = get_batch(&self.client, &self.table, wanted, Some("entry_key")).await?;
        let found = items
            .iter()
            .filter_map(|item| item.get("entry_key").and_then(|key| key.as_s().ok()))
            .cloned()
            .collect();
        Ok(found)
    }

    async fn record(&self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        // BatchWriteItem takes 25 items a call.
        for chunk in entries.chunks(25) {
            let mut writes = chunk
                .iter()
                .map(|entry| {
                    let record = JournalRecord {
                        entry_key: entry.key.clone(),
                        destination: entry.destination.clone(),
                        sent_back_at: entry.at,
                        expires_at: (entry.at + JOURNAL_LIFETIME).timestamp(),
                    };
                    let put = PutRequest::builder()
                        .set_item(Some(to_item(&record)?))
                        .build()
                        .map_err(build_error)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            for _ in 0..BATCH_ROUNDS {
                if writes.is_empty() {
                    break;
                }
                let written = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut writes))
                    .send()
                    .await
                    .map_err(|error| sdk_error("BatchWriteItem", error))?;
                writes = written
                    .unprocessed_items
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default();
            }
            if !writes.is_empty() {
                return Err(StoreError::Transient(
                    "BatchWriteItem: items left unprocessed".into(),
                ));
            }
        }
        Ok(())
    }
}
