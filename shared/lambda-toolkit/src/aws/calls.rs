//! Every AWS API request a function makes through the clients built here, logged at `debug`
//! under the target [`AWS_CALL_TARGET`] (`lambda_toolkit::aws_call`) with its service, operation
//! and, for batches and transactions, the number of items (what DynamoDB and EventBridge bill
//! by), and for DynamoDB's reads whether they are eventually consistent (half the read units): what a benchmark counts per invocation, with `RUST_LOG=info,lambda_toolkit::aws_call=debug`
//! (and `AWS_LAMBDA_LOG_FORMAT=JSON` for lines a program reads). At the default level the lines
//! are filtered out before they are formatted, so production pays nothing for them. One line per
//! request as the code makes it; the SDK's own retries of a request are not counted apart.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The `tracing` target of the lines.
pub const AWS_CALL_TARGET: &str = "lambda_toolkit::aws_call";

/// Logs each request the code makes.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsCallLog;

impl Intercept for AwsCallLog {
    fn name(&self) -> &'static str {
        "AwsCallLog"
    }

    // Not `read_before_execution`: a client's interceptors see that hook before the operation's
    // configuration (its `Metadata`) is in the bag.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            tracing::debug!(
                target: AWS_CALL_TARGET,
                service = metadata.service(),
                operation = metadata.name(),
                items = items(context.input()),
                eventually_consistent = eventually_consistent(context.input()),
                "aws call"
            );
        }
        Ok(())
    }
}

/// How many items a batch or transaction carries (1 for any other request).
fn items(input: &Input) -> usize {
    use aws_sdk_dynamodb::operation as dynamodb;
    if let Some(input) =
        input.downcast_ref::<dynamodb::transact_write_items::TransactWriteItemsInput>()
    {
        return input.transact_items().len();
    }
    if let Some(input) = input.downcast_ref::<dynamodb::batch_write_item::BatchWriteItemInput>() {
        return input
            .request_items()
            .map_or(0, |tables| tables.values().map(Vec::len).sum());
    }
    if let Some(input) = input.downcast_ref::<dynamodb::batch_get_item::BatchGetItemInput>() {
        return input.request_items().map_or(0, |tables| {
            tables.values().map(|keys| keys.keys().len()).sum()
        });
    }
    if let Some(input) =
        input.downcast_ref::<aws_sdk_eventbridge::operation::put_events::PutEventsInput>()
    {
        return input.entries().len();
    }
    if let Some(input) =
        input.downcast_ref::<aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput>()
    {
        return input.entries().len();
    }
    if let Some(input) = input
        .downcast_ref::<aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchInput>()
    {
        return input.entries().len();
    }
    1
}

/// Whether the request is a DynamoDB read that is not strongly consistent (the default of
/// `GetItem`, `Query`, `Scan` and `BatchGetItem`'s tables): it costs half a read unit per 4 KB.
fn eventually_consistent(input: &Input) -> bool {
    use aws_sdk_dynamodb::operation as dynamodb;
    let consistent = if let Some(input) = input.downcast_ref::<dynamodb::get_item::GetItemInput>() {
        input.consistent_read()
    } else if let Some(input) = input.downcast_ref::<dynamodb::query::QueryInput>() {
        input.consistent_read()
    } else if let Some(input) = input.downcast_ref::<dynamodb::scan::ScanInput>() {
        input.consistent_read()
    } else if let Some(input) = input.downcast_ref::<dynamodb::batch_get_item::BatchGetItemInput>()
    {
        input.request_items().and_then(|tables| {
            tables
                .values()
                .all(|keys| keys.consistent_read() == Some(true))
                .then_some(true)
        })
    } else {
        return false;
    };
    consistent != Some(true)
}

/// A DynamoDB client of `config` that logs its calls.
pub fn dynamodb(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(AwsCallLog)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An SQS client of `config` that logs its calls.
pub fn sqs(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(config)
        .interceptor(AwsCallLog)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// An EventBridge client of `config` that logs its calls.
pub fn eventbridge(config: &aws_config::SdkConfig) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::config::Builder::from(config)
        .interceptor(AwsCallLog)
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::get_item::GetItemInput;
    use aws_sdk_dynamodb::operation::query::QueryInput;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
    use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
    use aws_sdk_eventbridge::operation::put_events::PutEventsInput;
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;

    use super::*;

    #[test]
    fn batches_and_transactions_count_their_items() {
        let check = TransactWriteItem::builder()
            .condition_check(
                ConditionCheck::builder()
                    .table_name("t")
                    .key("k", aws_sdk_dynamodb::types::AttributeValue::S("v".into()))
                    .condition_expression("attribute_exists(k)")
                    .build()
                    .unwrap(),
            )
            .build();
        let transaction = TransactWriteItemsInput::builder()
            .transact_items(check.clone())
            .transact_items(check)
            .build()
            .unwrap();
        assert_eq!(items(&Input::erase(transaction)), 2);
        let events = PutEventsInput::builder()
            .entries(PutEventsRequestEntry::builder().build())
            .entries(PutEventsRequestEntry::builder().build())
            .entries(PutEventsRequestEntry::builder().build())
            .build()
            .unwrap();
        assert_eq!(items(&Input::erase(events)), 3);
        let query = QueryInput::builder().table_name("t").build().unwrap();
        assert_eq!(items(&Input::erase(query)), 1);
    }

    #[test]
    fn reads_say_whether_they_are_eventually_consistent() {
        let query = |consistent: Option<bool>| {
            let query = QueryInput::builder()
                .table_name("t")
                .set_consistent_read(consistent)
                .build()
                .unwrap();
            eventually_consistent(&Input::erase(query))
        };
        assert!(query(None), "DynamoDB's default");
        assert!(query(Some(false)));
        assert!(!query(Some(true)));
        let get = GetItemInput::builder()
            .table_name("t")
            .consistent_read(true)
            .build()
            .unwrap();
        assert!(!eventually_consistent(&Input::erase(get)));
        let events = PutEventsInput::builder().build().unwrap();
        assert!(!eventually_consistent(&Input::erase(events)), "not a read");
    }
}
