//! The read models (CQRS) in DynamoDB: one table, `pk` a wallet's list
//! (`wallet#<id>#activity`, [`activity_list`]), `sk` the order key (`<time>#<id>`), so a Query
//! with `ScanIndexForward=false` reads a list newest first. An item is a wallet's line for one
//! deposit or payment: its transaction (the `transaction` map) and, for a payment, its payment
//! entry (the `payment` map). The transactions are every item of the list; the payments are
//! the items with a `payment` map, read with a filter.
//!
//! Each change is one `UpdateItem` under the condition `attribute_not_exists(pk) OR
//! status_rank < :rank`: a duplicate, or an event older than what is stored, fails the
//! condition and writes nothing; otherwise the item's maps are set and its `revision` goes up
//! by one. A transfer's event is two writes (one per wallet), a deposit's one.

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
    Applied, Cursor, Page, PageRequest, ReadModelChange, Revised, TransactionEntry, WalletPayment,
    activity_list,
};

/// The table's key and bookkeeping attributes, and the two views' maps.
const PK: &str = "pk";
const SK: &str = "sk";
const RANK: &str = "status_rank";
const REVISION: &str = "revision";
const TRANSACTION: &str = "transaction";
const PAYMENT: &str = "payment";

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

    /// A page of `wallet`'s list as the read model of `view` (`TRANSACTION` or `PAYMENT`) shows
    /// it. The payments skip the items without a payment entry (deposits): the query is
    /// filtered, and DynamoDB's `Limit` counts the items it evaluated before the filter, so a
    /// page may take more than one query.
    async fn page<T: DeserializeOwned>(
        &self,
        wallet: &WalletId,
        view: &'static str,
        page: &PageRequest,
    ) -> Result<Page<Revised<T>>, StoreError> {
        let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut start = None;
        let more = loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#revision", REVISION)
                .expression_attribute_names("#view", view)
                .expression_attribute_values(":pk", s(&activity_list(wallet)))
                .projection_expression("#sk, #revision, #view")
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                // One more than asked: whether it comes back says whether there is a next page.
                .limit(i32::try_from(page.limit.saturating_add(1)).unwrap_or(i32::MAX));
            if view == PAYMENT {
                query = query.filter_expression("attribute_exists(#view)");
            }
            query = match &page.after {
                Some(after) => query
                    .key_condition_expression("#pk = :pk AND #sk < :after")
                    .expression_attribute_values(":after", s(after.order())),
                None => query.key_condition_expression("#pk = :pk"),
            };
            let output = query
                .send()
                .await
                .map_err(|error| sdk_error("Query", error))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if items.len() <= limit => start = Some(key),
                last => break items.len() > limit || last.is_some(),
            }
        };
        items.truncate(limit);
        let next = match items.last() {
            Some(last) if more => Some(Cursor::after(&string_attribute(last, SK)?)),
            _ => None,
        };
        let items = items
            .into_iter()
            .map(|item| revised(item, view))
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

/// An item as stored, as the read model of `view` shows it: its entry, and its revision.
fn revised<T: DeserializeOwned>(mut item: Item, view: &str) -> Result<Revised<T>, StoreError> {
    let revision = match item.remove(REVISION) {
        Some(AttributeValue::N(number)) => number.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| StoreError::Permanent("read model item without a revision".to_owned()))?;
    let Some(AttributeValue::M(entry)) = item.remove(view) else {
        return Err(StoreError::Permanent(format!(
            "read model item without a {view} map"
        )));
    };
    Ok(Revised {
        entry: from_item(entry)?,
        revision,
    })
}

fn map<T: Serialize>(entry: &T) -> Result<AttributeValue, StoreError> {
    to_item(entry).map(AttributeValue::M)
}

#[async_trait]
impl ReadModelWriter for DynamoDbReadModels {
    async fn apply(&self, change: &ReadModelChange) -> Result<Applied, StoreError> {
        let position = change.position();
        let mut names = HashMap::from([
            ("#pk".to_owned(), PK.to_owned()),
            ("#rank".to_owned(), RANK.to_owned()),
            ("#revision".to_owned(), REVISION.to_owned()),
            ("#transaction".to_owned(), TRANSACTION.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":rank".to_owned(), n(u64::from(change.rank()))),
            (":zero".to_owned(), n(0)),
            (":one".to_owned(), n(1)),
            (":transaction".to_owned(), map(&change.transaction)?),
        ]);
        let mut expression = "SET #rank = :rank, \
                              #revision = if_not_exists(#revision, :zero) + :one, \
                              #transaction = :transaction"
            .to_owned();
        // A deposit's item never holds a payment entry (its id is no payment's), so a change
        // without one has nothing to remove.
        if let Some(payment) = &change.payment {
            names.insert("#payment".to_owned(), PAYMENT.to_owned());
            values.insert(":payment".to_owned(), map(payment)?);
            expression.push_str(", #payment = :payment");
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
        self.page(wallet, TRANSACTION, page).await
    }

    async fn payments(
        &self,
        wallet: &WalletId,
        page: &PageRequest,
    ) -> Result<Page<Revised<WalletPayment>>, StoreError> {
        self.page(wallet, PAYMENT, page).await
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
