//! The redrive's queues (SQS) and rules (EventBridge).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};

use paysaga_services::redrive::letter::RuleTarget;
use paysaga_services::redrive::{
    DeadLetter, DeadLetterRoutes, MessageAttribute, OutgoingMessage, QueueAdmin, QueueDepth,
    QueueError, QueueRef, RedriveQueues, RuleDirectory, RuleTargets,
};

/// Long polling for a second makes SQS look at all its servers, so an empty answer means an
/// empty queue (short polling samples some of them).
const RECEIVE_WAIT_SECONDS: i32 = 1;

/// The SQS adapter of [`RedriveQueues`] and [`QueueAdmin`].
#[derive(Debug, Clone)]
pub struct SqsRedriveQueues {
    client: aws_sdk_sqs::Client,
}

impl SqsRedriveQueues {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: lambda_toolkit::aws::calls::sqs(config),
        }
    }

    async fn arn(&self, url: &str) -> Result<String, QueueError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|error| queue_error(url, error))?;
        attributes
            .attributes()
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| QueueError::Unavailable(format!("{url}: no QueueArn in the answer")))
    }
}

fn queue_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    queue: &str,
    error: SdkError<E>,
) -> QueueError {
    let code = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code);
    if code
        .is_some_and(|code| code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist"))
    {
        return QueueError::NotFound(queue.to_owned());
    }
    QueueError::Unavailable(format!("{queue}: {}", DisplayErrorContext(&error)))
}

fn attribute_value(attribute: &MessageAttribute) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type(&attribute.data_type)
        .set_string_value(attribute.string_value.clone())
        .set_binary_value(attribute.binary_value.clone().map(Blob::new))
        .build()
        .map_err(|error| QueueError::Unavailable(format!("invalid message attribute: {error}")))
}

fn count(
    attributes: Option<&std::collections::HashMap<QueueAttributeName, String>>,
    name: QueueAttributeName,
) -> u64 {
    attributes
        .and_then(|attributes| attributes.get(&name))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl RedriveQueues for SqsRedriveQueues {
    async fn receive(
        &self,
        queue: &QueueRef,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let received = self
            .client
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(i32::try_from(visibility.as_secs()).unwrap_or(i32::MAX))
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|error| queue_error(&queue.url, error))?;
        let letters = received
            .messages()
            .iter()
            .filter_map(|message| {
                let system = |name: MessageSystemAttributeName| {
                    message
                        .attributes()
                        .and_then(|attributes| attributes.get(&name))
                        .cloned()
                };
                let attributes: BTreeMap<String, MessageAttribute> = message
                    .message_attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| {
                        let attribute = MessageAttribute {
                            data_type: value.data_type().to_owned(),
                            string_value: value.string_value().map(str::to_owned),
                            binary_value: value.binary_value().map(|blob| blob.as_ref().to_vec()),
                        };
                        (name.clone(), attribute)
                    })
                    .collect();
                Some(DeadLetter {
                    message_id: message.message_id()?.to_owned(),
                    receipt_handle: message.receipt_handle()?.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                    attributes,
                    source_arn: system(MessageSystemAttributeName::DeadLetterQueueSourceArn),
                    receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|count| count.parse().ok())
                        .unwrap_or(1),
                    sent_at: system(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|millis| millis.parse().ok())
                        .and_then(DateTime::<Utc>::from_timestamp_millis),
                    trace_header: system(MessageSystemAttributeName::AwsTraceHeader)
                        .and_then(|header| header.parse().ok()),
                })
            })
            .collect();
        Ok(letters)
    }

    async fn send(
        &self,
        queue: &QueueRef,
        messages: &[OutgoingMessage],
    ) -> Result<HashSet<String>, QueueError> {
        if messages.is_empty() {
            return Ok(HashSet::new());
        }
        let mut entries = Vec::with_capacity(messages.len());
        for message in messages {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(&message.entry_id)
                .message_body(&message.body);
            for (name, attribute) in &message.attributes {
                entry = entry.message_attributes(name, attribute_value(attribute)?);
            }
            if let Some(trace) = &message.trace_header {
                let header = MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(trace.to_string())
                    .build()
                    .map_err(|error| {
                        QueueError::Unavailable(format!("invalid trace header: {error}"))
                    })?;
                entry = entry.message_system_attributes(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    header,
                );
            }
            entries.push(entry.build().map_err(|error| {
                QueueError::Unavailable(format!("invalid batch entry: {error}"))
            })?);
        }
        let sent = self
            .client
            .send_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| queue_error(&queue.url, error))?;
        for failed in sent.failed() {
            tracing::warn!(
                queue = queue.name(),
                entry = failed.id(),
                code = failed.code(),
                "message not taken"
            );
        }
        Ok(sent
            .successful()
            .iter()
            .map(|entry| entry.id().to_owned())
            .collect())
    }

    async fn delete(
        &self,
        queue: &QueueRef,
        receipt_handles: &[String],
    ) -> Result<usize, QueueError> {
        if receipt_handles.is_empty() {
            return Ok(0);
        }
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(index, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("d{index}"))
                    .receipt_handle(receipt)
                    .build()
                    .map_err(|error| {
                        QueueError::Unavailable(format!("invalid batch entry: {error}"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let deleted = self
            .client
            .delete_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| queue_error(&queue.url, error))?;
        Ok(deleted.successful().len())
    }

    async fn queue(&self, arn: &str) -> Result<QueueRef, QueueError> {
        // arn:aws:sqs:<region>:<account>:<name>
        let parts: Vec<&str> = arn.split(':').collect();
        let [_, _, "sqs", _, account, name] = parts[..] else {
            return Err(QueueError::NotFound(format!("{arn} is not a queue ARN")));
        };
        let found = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|error| queue_error(arn, error))?;
        let url = found
            .queue_url()
            .ok_or_else(|| QueueError::NotFound(arn.to_owned()))?;
        Ok(QueueRef {
            arn: arn.to_owned(),
            url: url.to_owned(),
        })
    }

    async fn routes(&self, dead_letter_queue_url: &str) -> Result<DeadLetterRoutes, QueueError> {
        let queue = QueueRef {
            arn: self.arn(dead_letter_queue_url).await?,
            url: dead_letter_queue_url.to_owned(),
        };
        let listed = self
            .client
            .list_dead_letter_source_queues()
            .queue_url(dead_letter_queue_url)
            .max_results(1_000)
            .send()
            .await
            .map_err(|error| queue_error(dead_letter_queue_url, error))?;
        let mut sources = Vec::new();
        for url in listed.queue_urls() {
            sources.push(QueueRef {
                arn: self.arn(url).await?,
                url: url.clone(),
            });
        }
        Ok(DeadLetterRoutes { queue, sources })
    }
}

#[async_trait]
impl QueueAdmin for SqsRedriveQueues {
    async fn depth(&self, queue: &QueueRef) -> Result<QueueDepth, QueueError> {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|error| queue_error(&queue.url, error))?;
        let attributes = answer.attributes();
        Ok(QueueDepth {
            visible: count(attributes, QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(
                attributes,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ),
            delayed: count(
                attributes,
                QueueAttributeName::ApproximateNumberOfMessagesDelayed,
            ),
        })
    }

    async fn start_move_task(
        &self,
        from: &QueueRef,
        to: &QueueRef,
        max_per_second: u32,
    ) -> Result<String, QueueError> {
        let started = self
            .client
            .start_message_move_task()
            .source_arn(&from.arn)
            .destination_arn(&to.arn)
            .max_number_of_messages_per_second(
                i32::try_from(max_per_second.clamp(1, 500)).unwrap_or(500),
            )
            .send()
            .await
            .map_err(|error| queue_error(&from.arn, error))?;
        Ok(started.task_handle().unwrap_or_default().to_owned())
    }
}

/// The EventBridge adapter of [`RuleDirectory`].
#[derive(Debug, Clone)]
pub struct EventBridgeRules {
    client: aws_sdk_eventbridge::Client,
}

impl EventBridgeRules {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: lambda_toolkit::aws::calls::eventbridge(config),
        }
    }
}

/// The bus (`None`: the default bus) and name in a rule ARN:
/// `arn:aws:events:<region>:<account>:rule/[<bus>/]<name>`.
pub fn rule_of(arn: &str) -> Option<(Option<&str>, &str)> {
    let resource = arn.splitn(6, ':').nth(5)?.strip_prefix("rule/")?;
    match resource.split_once('/') {
        Some((bus, name)) => Some((Some(bus), name)),
        None => Some((None, resource)),
    }
}

#[async_trait]
impl RuleDirectory for EventBridgeRules {
    async fn targets(&self, rule_arn: &str) -> RuleTargets {
        let Some((bus, name)) = rule_of(rule_arn) else {
            return RuleTargets::NoSuchRule;
        };
        let listed = self
            .client
            .list_targets_by_rule()
            .rule(name)
            .set_event_bus_name(bus.map(str::to_owned))
            .send()
            .await;
        match listed {
            Ok(listed) => RuleTargets::Found(
                listed
                    .targets()
                    .iter()
                    .map(|target| RuleTarget {
                        arn: target.arn().to_owned(),
                        reshapes_events: target.input().is_some()
                            || target.input_path().is_some()
                            || target.input_transformer().is_some(),
                    })
                    .collect(),
            ),
            Err(error)
                if error
                    .as_service_error()
                    .and_then(ProvideErrorMetadata::code)
                    == Some("ResourceNotFoundException") =>
            {
                RuleTargets::NoSuchRule
            }
            Err(error) => RuleTargets::Unavailable(
                aws_sdk_eventbridge::error::DisplayErrorContext(&error).to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_arns_name_their_bus_and_rule() {
        assert_eq!(
            rule_of("arn:aws:events:us-east-1:000000000000:rule/paysaga-local-events/requested"),
            Some((Some("paysaga-local-events"), "requested"))
        );
        assert_eq!(
            rule_of("arn:aws:events:us-east-1:000000000000:rule/nightly"),
            Some((None, "nightly"))
        );
        assert_eq!(rule_of("arn:aws:sqs:us-east-1:000000000000:q"), None);
    }
}
