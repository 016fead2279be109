//! The event relay's work for the bench's payments: the DynamoDB stream records of their log
//! entries that the relay's trigger delivers (its template filter: a request, an outcome), read
//! back from the payments table and handed to the relay as Lambda would, so that the relay's
//! calls and durations are measured like the api's and the saga's.

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use local_lambda::dynamodb_stream_event_source::filter::{FilterPattern, delivered};
use local_lambda::wiring::Wiring;
use serde_json::{Value, json};

/// The payments table's stream, as the relay's trigger sees it.
pub struct PaymentLogStream {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    filters: Vec<FilterPattern>,
}

impl PaymentLogStream {
    /// The payments table and the relay's filter on its stream, from the wiring.
    pub fn new(aws: &aws_config::SdkConfig, wiring: &Wiring) -> anyhow::Result<Self> {
        Self::of_table(aws, wiring, wiring.table("PaymentsTable")?)
    }

    /// The same, for a payments table of the bench's own (`table`), which no stream trigger of
    /// the running stack reads: the stack's relay does not publish the measured payments'
    /// events before the bench's relay does, and the consumers measured downstream are the
    /// first to see them.
    pub fn of_table(
        aws: &aws_config::SdkConfig,
        wiring: &Wiring,
        table: &str,
    ) -> anyhow::Result<Self> {
        let table = table.to_owned();
        let trigger = wiring
            .function("event-relay")?
            .stream_triggers
            .iter()
            .find(|trigger| trigger.table == "PaymentsTable")
            .context("the event relay has no trigger on the payments table's stream")?;
        let filters = trigger
            .filters
            .iter()
            .map(|filter| filter.parse())
            .collect::<Result<_, _>>()
            .context("the relay's filter on the payments table")?;
        Ok(Self {
            dynamodb: aws_sdk_dynamodb::Client::new(aws),
            table,
            filters,
        })
    }

    /// Creates a payments table named `table`, as the template defines the stack's (its key),
    /// without a stream, and waits until it is active.
    pub async fn create_scratch_table(
        aws: &aws_config::SdkConfig,
        table: &str,
    ) -> anyhow::Result<()> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        dynamodb
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("payment_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("version")
                    .attribute_type(ScalarAttributeType::N)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("payment_id")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("version")
                    .key_type(KeyType::Range)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("creating the bench's payments table {table}"))?;
        Ok(())
    }

    /// Deletes the bench's payments table.
    pub async fn delete_scratch_table(
        aws: &aws_config::SdkConfig,
        table: &str,
    ) -> anyhow::Result<()> {
        aws_sdk_dynamodb::Client::new(aws)
            .delete_table()
            .table_name(table)
            .send()
            .await
            .with_context(|| format!("deleting the bench's payments table {table}"))?;
        Ok(())
    }

    /// The stream event of `payments`' log entries that the trigger delivers, each payment's
    /// in version order, numbered from 1.
    pub async fn event_of(&self, payments: &[String]) -> anyhow::Result<Value> {
        let stream_arn = format!(
            "arn:aws:dynamodb:ddblocal:000000000000:table/{}/stream/bench",
            self.table
        );
        let mut records = Vec::new();
        for payment_id in payments {
            let entries = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .key_condition_expression("payment_id = :payment_id")
                .expression_attribute_values(":payment_id", AttributeValue::S(payment_id.clone()))
                .consistent_read(true)
                .send()
                .await
                .with_context(|| format!("reading {payment_id}'s log"))?;
            for item in entries.items.unwrap_or_default() {
                let image: serde_dynamo::Item = item.into();
                let record = json!({
                    "eventID": format!("bench-{}", records.len() + 1),
                    "eventName": "INSERT",
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": "us-east-1",
                    "dynamodb": {
                        "ApproximateCreationDateTime": chrono::Utc::now().timestamp(),
                        "Keys": {},
                        "NewImage": serde_json::to_value(image)?,
                        "SequenceNumber": format!("{:021}", records.len() + 1),
                        "SizeBytes": 0,
                        "StreamViewType": "NEW_IMAGE"
                    },
                    "eventSourceARN": stream_arn,
                });
                if delivered(&self.filters, &record) {
                    records.push(record);
                }
            }
        }
        Ok(json!({ "Records": records }))
    }
}
