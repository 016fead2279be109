//! The notifications function against the local stack: a payment's outcome reaches its payer's
//! and payee's inboxes once, however often the event is delivered; an event of a version it does
//! not read ends in the payment-events DLQ with its reason.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::Utc;
use lambda_toolkit::sqs_batch::{FAILURE_ATTRIBUTE, FailureRecord};
use paysaga_domain::events::{DomainEvent, EventDetail, PaymentEventData};
use paysaga_tests::{Stack, deliveries_logged, eventually, unique};
use serde_json::{Value, json};

const NOTIFIED: Duration = Duration::from_secs(60);
/// maxReceiveCount deliveries at the local visibility timeout (5 × 5 s), and some.
const TO_THE_DLQ: Duration = Duration::from_secs(120);

/// A `PaymentCompleted` of a fresh payment between fresh wallets (none of them exist: the
/// notifications function needs only the event).
fn payment_completed() -> anyhow::Result<DomainEvent> {
    let data: PaymentEventData = serde_json::from_value(json!({
        "payment_id": format!("pay_notify_{}", unique()),
        "from_wallet": format!("wal_payer_{}", unique()),
        "to_wallet": format!("wal_payee_{}", unique()),
        "amount": {"minor_units": 4_200, "currency": "EUR"},
        "status": "COMPLETED",
    }))?;
    let event_id = format!("{}/4", data.payment_id);
    Ok(DomainEvent::PaymentCompleted(EventDetail::new(
        event_id,
        Utc::now(),
        data,
    )))
}

async fn put_event(stack: &Stack, detail_type: &str, detail: String) -> anyhow::Result<()> {
    stack
        .put_event("paysaga.payments", detail_type, &detail)
        .await
}

/// A wallet's inbox, oldest first.
async fn inbox(
    stack: &Stack,
    wallet: &str,
) -> anyhow::Result<Vec<HashMap<String, AttributeValue>>> {
    let output = stack
        .dynamodb
        .query()
        .table_name(stack.wiring.table("NotificationsTable")?)
        .key_condition_expression("wallet_id = :wallet")
        .expression_attribute_values(":wallet", AttributeValue::S(wallet.to_owned()))
        .consistent_read(true)
        .send()
        .await?;
    Ok(output.items().to_vec())
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map_or("", String::as_str)
}

/// Polls until `wallet`'s inbox holds at least `count` notifications; answers them.
async fn notified(
    stack: &Stack,
    wallet: &str,
    count: usize,
) -> anyhow::Result<Vec<HashMap<String, AttributeValue>>> {
    eventually(
        NOTIFIED,
        &format!("{count} notification(s) for {wallet}"),
        || async {
            let items = inbox(stack, wallet).await?;
            Ok((items.len() >= count).then_some(items))
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_outcome_delivered_twice_notifies_each_recipient_once() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let event = payment_completed()?;
    let DomainEvent::PaymentCompleted(detail) = &event else {
        unreachable!("built as a PaymentCompleted")
    };
    let wallets = detail.data.flow.wallet_ids();
    let [payer, payee] = [&wallets[0], &wallets[1]].map(ToString::to_string);
    // The same event (same event_id) published twice, as a producer retrying would.
    for _ in 0..2 {
        put_event(&stack, event.detail_type(), event.detail_json()).await?;
    }
    let paid = notified(&stack, &payer, 1).await?;
    let received = notified(&stack, &payee, 1).await?;
    assert_eq!(text(&paid[0], "kind"), "payment_sent");
    assert_eq!(text(&received[0], "kind"), "payment_received");
    assert_eq!(text(&received[0], "event_id"), event.event_id());
    assert_eq!(
        text(&received[0], "text"),
        format!("You received 42.00 EUR from {payer}.")
    );

    // Both copies handled: the consumer logged each notification once "sent" and, on the
    // second copy, once "sent before". (Not "the queue drained": other tests keep it busy.)
    deliveries_logged(event.event_id(), &[r#"outcome="sent before""#], 2, NOTIFIED).await?;
    assert_eq!(inbox(&stack, &payer).await?.len(), 1, "the payer told once");
    assert_eq!(inbox(&stack, &payee).await?.len(), 1, "the payee told once");

    // The inbox is idempotent by itself: its conditional put is the only record kept, no
    // idempotency record beside it (one write per notification instead of three).
    for wallet in [&payer, &payee] {
        let key = format!("notifications#{}#{wallet}", event.event_id());
        let record = stack
            .dynamodb
            .get_item()
            .table_name(stack.wiring.table("IdempotencyTable")?)
            .key("idempotency_key", AttributeValue::S(key.clone()))
            .consistent_read(true)
            .send()
            .await?
            .item;
        ensure!(record.is_none(), "an idempotency record {key}: {record:?}");
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_outcome_of_an_unknown_version_ends_in_the_dlq_with_its_reason() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let event = payment_completed()?;
    let mut detail: Value = serde_json::from_str(&event.detail_json())?;
    detail["version"] = json!(2);
    put_event(&stack, event.detail_type(), detail.to_string()).await?;

    let dlq = stack
        .wiring
        .queue("PaymentEventsDeadLetterQueue")?
        .url
        .clone();
    let started = std::time::Instant::now();
    let record = eventually(
        TO_THE_DLQ,
        "the event in the payment-events DLQ",
        || async {
            let output = stack
                .sqs
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await?;
            let mut found = None;
            for message in output.messages() {
                let body: Value =
                    serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
                let handle = message.receipt_handle().unwrap_or_default();
                if body["detail"]["event_id"] != event.event_id() {
                    // Not ours: visible again at once for whoever is looking for it.
                    stack
                        .sqs
                        .change_message_visibility()
                        .queue_url(&dlq)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await?;
                    continue;
                }
                let attribute = message
                    .message_attributes()
                    .and_then(|attributes| attributes.get(FAILURE_ATTRIBUTE))
                    .and_then(|value| value.string_value())
                    .context("no failure record on the dead letter")?;
                found = Some(serde_json::from_str::<FailureRecord>(attribute)?);
                stack
                    .sqs
                    .delete_message()
                    .queue_url(&dlq)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
            Ok(found)
        },
    )
    .await?;
    println!(
        "unknown version to the DLQ in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(record.kind, "permanent", "{record:?}");
    assert!(
        record
            .reason
            .contains("PaymentCompleted version 2 is not supported"),
        "{record:?}"
    );
    assert!(
        record
            .source_queue
            .as_deref()
            .is_some_and(|queue| queue.ends_with("-payment-events")),
        "{record:?}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_payment_through_the_api_notifies_its_payer_and_payee() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let (alice, bob) = stack.alice_and_bob(10_000).await?;
    let payment = json!({"from_wallet": alice, "to_wallet": bob, "amount": {"minor_units": 2_500, "currency": "EUR"}});
    let (status, accepted) = stack.post("/payments", payment, Some(&unique())).await?;
    ensure!(
        status == 202,
        "POST /payments answered {status}: {accepted}"
    );
    let payment_id = accepted["payment_id"].as_str().context("payment_id")?;
    let settled = stack.settled_payment(payment_id, NOTIFIED).await?;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");

    let paid = notified(&stack, &alice, 1).await?;
    let received = notified(&stack, &bob, 1).await?;
    assert_eq!(
        (text(&paid[0], "kind"), text(&paid[0], "payment_id")),
        ("payment_sent", payment_id)
    );
    assert_eq!(
        (
            text(&received[0], "kind"),
            text(&received[0], "counterparty")
        ),
        ("payment_received", alice.as_str())
    );
    assert_eq!(
        text(&paid[0], "text"),
        format!("You paid 25.00 EUR to {bob}.")
    );
    Ok(())
}
