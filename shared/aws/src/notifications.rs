//! The in-app notifications inbox in DynamoDB (the template's `NotificationsTable`): one item
//! per notification, under the recipient's wallet (`wallet_id`, the hash key) and a
//! `notification_id` that sorts by time (`<occurred_at>#<event_id>`, the range key), so a
//! wallet's inbox reads newest first with one `Query` (`ScanIndexForward=false`).
//!
//! The write is conditional on the item being new: the inbox is idempotent by itself (its key
//! derives from the event and the recipient), a repeat is no error, and it
//! [delivers once](Notifier::delivers_once): the notifications function keeps no idempotency
//! record for it, one write per notification instead of three.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::dynamodb::{is_conditional_check_failure, sdk_error, to_item};
use paysaga_domain::WalletId;
use paysaga_domain::notification::Notification;
use paysaga_domain::ports::{Delivery, Notifier};
use paysaga_domain::ports::{NotifyError, StoreError};

/// The DynamoDB adapter of [`Notifier`]: the in-app inbox.
#[derive(Debug, Clone)]
pub struct DynamoDbInbox {
    client: Client,
    table: String,
}

/// An inbox item.
#[derive(Serialize, Deserialize)]
struct InboxItem<'a> {
    wallet_id: &'a str,
    notification_id: String,
    kind: &'a str,
    text: String,
    event_id: &'a str,
    payment_id: &'a str,
    /// The amount in minor units of `currency`.
    minor_units: u64,
    currency: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    counterparty: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_code: Option<&'a str>,
    occurred_at: DateTime<Utc>,
}

impl DynamoDbInbox {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: String) -> Self {
        Self::new(lambda_toolkit::aws::calls::dynamodb(config), table)
    }
}

/// The range key of a notification: its time (RFC 3339, milliseconds, `Z`, so text order is
/// time order) and its event.
pub fn notification_id(notification: &Notification) -> String {
    format!(
        "{}#{}",
        notification
            .occurred_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        notification.event_id
    )
}

#[async_trait]
impl Notifier for DynamoDbInbox {
    async fn notify(&self, notification: &Notification) -> Result<Delivery, NotifyError> {
        let item = InboxItem {
            wallet_id: notification.recipient.as_str(),
            notification_id: notification_id(notification),
            kind: notification.kind.as_str(),
            text: notification.text(),
            event_id: &notification.event_id,
            payment_id: notification.payment_id.as_str(),
            minor_units: notification.amount.minor_units(),
            currency: notification.amount.currency().code(),
            counterparty: notification.counterparty.as_ref().map(WalletId::as_str),
            failure_code: notification.failure.as_ref().map(|reason| reason.code()),
            occurred_at: notification.occurred_at,
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item).map_err(store)?))
            .condition_expression("attribute_not_exists(wallet_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Delivery::Sent),
            // In the inbox already (the same event delivered before): nothing to add.
            Err(error) if is_conditional_check_failure(&error) => Ok(Delivery::SentBefore),
            Err(error) => Err(store(sdk_error("PutItem", error))),
        }
    }

    fn delivers_once(&self) -> bool {
        true
    }
}

fn store(error: StoreError) -> NotifyError {
    match error {
        StoreError::Transient(why) => NotifyError::Transient(why),
        error @ StoreError::Contended(..) => NotifyError::Transient(error.to_string()),
        StoreError::Permanent(why) => NotifyError::Permanent(why),
    }
}
