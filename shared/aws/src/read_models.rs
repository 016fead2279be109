//! The read models (CQRS) in DynamoDB: one table, `pk` the list (`wallet#<id>#transactions`,
//! `wallet#<id>#payments`), `sk` the order key (`<time>#<id>`), so a Query with
//! `ScanIndexForward=false` reads a list newest first.
//!
//! Each change is one `UpdateItem` under the condition `attribute_not_exists(pk) OR
//! status_rank < :rank`: a duplicate, or an event older than what is stored, fails the
//! condition and writes nothing; otherwise the item's fields are set and its `revision` goes up
//! by one.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dynamodb::{
    Item, build_error, from_item, is_conditional_check_failure, n, s, sdk_error, to_item,
};
use paysaga_domain::WalletId;
use paysaga_domain::ports::{ReadModelReader, ReadModelWriter, StoreError};
use paysaga_services::read_models::{
    Applied, Cursor, Page, PageRequest, ReadModel, ReadModelChange, ReadModelItem, Revised,
    TransactionEntry, WalletPayment,
};

/// The table's key and bookkeeping attributes; the entry's own fields sit beside them.
const PK: &str = "pk";
const SK: &str = "sk";
const RANK: &str = "status_rank";
const REVISION: &str = "revision";
/// Fields an entry may leave out: removed from the item when a change leaves them out.
const OPTIONAL_FIELDS: [&str; 2] = ["failure", "counterparty"];

/// The DynamoDB adapter of [`ReadModelWriter`] and [`ReadModelReader`].
#[derive(Debug, Clone)]
pub struct DynamoDbReadModels {
    client: Client,
    table: String,
}

impl DynamoDbReadModels {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(lambda_toolkit::aws::calls::dynamodb(config), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn page<T: DeserializeOwned>(
        &self,
        list: String,
        page: &PageRequest,
    ) -> Result<Page<Revised<T>>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(&list))
            .scan_index_forward(false)
            // One more than asked: whether it comes back says whether there is a next page.
            .limit(i32::try_from(page.limit.saturating_add(1)).unwrap_or(i32::MAX));
        query = match &page.after {
            Some(after) => query
                .key_condition_expression("#pk = :pk AND #sk < :after")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":after", s(after.order())),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let output = query
            .send()
            .await
            .map_err(|error| sdk_error("Query", error))?;
        let mut items = output.items.unwrap_or_default();
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        let more = items.len() > limit || output.last_evaluated_key.is_some();
        items.truncate(limit);
        let next = match items.last() {
            Some(last) if more => Some(Cursor::after(&string_attribute(last, SK)?)),
            _ => None,
        };
        let items = items
            .into_iter()
            .map(revised)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next })
    }
}

fn string_attribute(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(StoreError::Permanent(format!(
            "read model item without a string {name}"
        ))),
    }
}

/// An item as stored: its entry, and its revision.
fn revised<T: DeserializeOwned>(mut item: Item) -> Result<Revised<T>, StoreError> {
    let revision = match item.remove(REVISION) {
        Some(AttributeValue::N(number)) => number.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| StoreError::Permanent("read model item without a revision".to_owned()))?;
    for bookkeeping in [PK, SK, RANK] {
        item.remove(bookkeeping);
    }
    Ok(Revised {
        entry: from_item(item)?,
        revision,
    })
}

fn entry_item(change: &ReadModelChange) -> Result<Item, StoreError> {
    fn encode<T: Serialize>(entry: &T) -> Result<Item, StoreError> {
        to_item(entry)
    }
    match &change.item {
        ReadModelItem::Transaction(entry) => encode(entry),
        ReadModelItem::Payment(payment) => encode(payment),
    }
}

#[async_trait]
impl ReadModelWriter for DynamoDbReadModels {
    async fn apply(&self, change: &ReadModelChange) -> Result<Applied, StoreError> {
        let position = change.position();
        let fields = entry_item(change)?;
        let mut names = HashMap::from([
            ("#pk".to_owned(), PK.to_owned()),
            ("#rank".to_owned(), RANK.to_owned()),
            ("#revision".to_owned(), REVISION.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":rank".to_owned(), n(u64::from(change.rank()))),
            (":zero".to_owned(), n(0)),
            (":one".to_owned(), n(1)),
        ]);
        let mut sets = vec![
            "#rank = :rank".to_owned(),
            "#revision = if_not_exists(#revision, :zero) + :one".to_owned(),
        ];
        for (index, (name, value)) in fields.into_iter().enumerate() {
            names.insert(format!("#f{index}"), name);
            values.insert(format!(":f{index}"), value);
            sets.push(format!("#f{index} = :f{index}"));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        let absent: Vec<&str> = OPTIONAL_FIELDS
            .into_iter()
            .filter(|field| !names.values().any(|name| name == field))
            .collect();
        let mut removed = Vec::new();
        for (index, field) in absent.into_iter().enumerate() {
            names.insert(format!("#r{index}"), field.to_owned());
            removed.push(format!("#r{index}"));
        }
        if !removed.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&position.list))
            .key(SK, s(&position.order))
            .update_expression(expression)
            .condition_expression("attribute_not_exists(#pk) OR #rank < :rank")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Applied::Changed),
            Err(error) if is_conditional_check_failure(&error) => Ok(Applied::Unchanged),
            Err(error) => Err(sdk_error("UpdateItem", error)),
        }
    }
}

#[async_trait]
impl ReadModelReader for DynamoDbReadModels {
    async fn transactions(
        &self,
        wallet: &WalletId,
        page: &PageRequest,
    ) -> Result<Page<Revised<TransactionEntry>>, StoreError> {
        self.page(ReadModel::Transactions.list(wallet), page).await
    }

    async fn payments(
        &self,
        wallet: &WalletId,
        page: &PageRequest,
    ) -> Result<Page<Revised<WalletPayment>>, StoreError> {
        self.page(ReadModel::Payments.list(wallet), page).await
    }
}

impl DynamoDbReadModels {
    /// Creates this adapter's table with the template's key schema (on-demand) and waits until
    /// it is active (up to a minute), for a rebuild into a fresh table. A table that exists
    /// already is an error: a rebuild never writes over live read models.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TableStatus,
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_error)
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .send()
            .await
            .map_err(|error| sdk_error("CreateTable", error))?;
        for _ in 0..60 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|error| sdk_error("DescribeTable", error))?;
            let status = described.table.and_then(|table| table.table_status);
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Err(StoreError::Transient(format!(
            "table {} is not active after a minute",
            self.table
        )))
    }
}
