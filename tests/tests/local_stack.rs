//! paysaga end to end on the local AWS stack: the API, EventBridge rules, SQS queues with their
//! dead-letter queues, the payment saga played by `local-lambda`, and DynamoDB.
//!
//! These need the stack running, so `cargo test` alone skips them; `make test` starts the
//! stack and runs them with `--ignored`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use lambda_toolkit::sqs_batch::FAILURE_ATTRIBUTE;
use paysaga_tests::{Stack, eventually, repo_root, unique};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_payment_moves_money_between_two_wallets_end_to_end() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let (alice, bob) = stack.alice_and_bob(10_000).await?;

    let key = unique();
    let payment = json!({"from_wallet": alice, "to_wallet": bob, "amount": {"minor_units": 2_500, "currency": "EUR"}});
    let (status, accepted) = stack.post("/payments", payment.clone(), Some(&key)).await?;
    ensure!(
        status == 202,
        "POST /payments answered {status}: {accepted}"
    );
    let payment_id = accepted["payment_id"]
        .as_str()
        .context("payment_id")?
        .to_owned();
    let (status, retried) = stack.post("/payments", payment, Some(&key)).await?;
    ensure!(
        status == 202 && retried["payment_id"] == accepted["payment_id"],
        "a retried POST made another payment: {retried}"
    );
    // The key names Alice's payment: other terms are refused, Bob's equal key is his own.
    let other_terms = json!({"from_wallet": alice, "to_wallet": bob, "amount": {"minor_units": 2_501, "currency": "EUR"}});
    let (status, refused) = stack.post("/payments", other_terms, Some(&key)).await?;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused")),
        "{refused}"
    );
    // (More than there is in both wallets, so it fails whenever it runs and moves nothing.)
    let bobs = json!({"from_wallet": bob, "to_wallet": alice, "amount": {"minor_units": 50_000, "currency": "EUR"}});
    let (status, bobs) = stack.post("/payments", bobs, Some(&key)).await?;
    ensure!(
        status == 202 && bobs["payment_id"] != accepted["payment_id"],
        "Bob's payment with Alice's key answered {status}: {bobs}"
    );

    let settled = stack.settled_payment(&payment_id, SETTLE).await?;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");
    let bobs_id = bobs["payment_id"].as_str().context("payment_id")?;
    let bobs = stack.settled_payment(bobs_id, SETTLE).await?;
    assert_eq!(bobs["failure"]["code"], "insufficient_funds", "{bobs}");
    assert_eq!(stack.balances(&alice).await?, (7_500, 0));
    assert_eq!(stack.balances(&bob).await?, (2_500, 0));

    // The saga announced the outcome on the bus (its steps stay in the log), and the lifecycle
    // rule routed it to its queue, whose consumer (the notifications function) told the payer.
    // (The queue has a consumer now, so the test reads what it did rather than the queue.)
    let event_id = format!("{payment_id}/4");
    let told = eventually(SETTLE, "the payer's notification", || async {
        let output = stack
            .dynamodb
            .query()
            .table_name(stack.wiring.table("NotificationsTable")?)
            .key_condition_expression("wallet_id = :wallet")
            .expression_attribute_values(":wallet", AttributeValue::S(alice.clone()))
            .send()
            .await?;
        let told = output
            .items()
            .iter()
            .find(|item| item.get("event_id").and_then(|id| id.as_s().ok()) == Some(&event_id));
        Ok(told.cloned())
    })
    .await?;
    assert_eq!(
        told.get("kind")
            .and_then(|kind| kind.as_s().ok())
            .map(String::as_str),
        Some("payment_sent"),
        "{told:?}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_payee_that_cannot_receive_fails_the_payment_before_any_money_moves() -> anyhow::Result<()>
{
    let stack = Stack::connect().await?;
    let (alice, bob) = stack.alice_and_bob(1_000).await?;
    let dollars = format!("wal_usd_{}", unique());
    stack.funded_wallet(&dollars, "USD", 0, &unique()).await?;
    let nobody = format!("wal_nobody_{}", unique());

    // The payee check is a read before the reserve transaction; it refuses as the transaction
    // did, and a payer short of funds is still the reason given first.
    let cases = [
        (&alice, &nobody, 500, "unknown_wallet"),
        (&alice, &dollars, 500, "currency_mismatch"),
        (&bob, &nobody, 500, "insufficient_funds"),
    ];
    for (from, to, amount, code) in cases {
        let payment = json!({"from_wallet": from, "to_wallet": to, "amount": {"minor_units": amount, "currency": "EUR"}});
        let (status, accepted) = stack.post("/payments", payment, Some(&unique())).await?;
        ensure!(
            status == 202,
            "POST /payments answered {status}: {accepted}"
        );
        let payment_id = accepted["payment_id"].as_str().context("payment_id")?;
        let settled = stack.settled_payment(payment_id, SETTLE).await?;
        assert_eq!(
            (
                settled["status"].as_str(),
                settled["failure"]["code"].as_str()
            ),
            (Some("FAILED"), Some(code)),
            "{from} -> {to}: {settled}"
        );
    }
    assert_eq!(
        stack.balances(&alice).await?,
        (1_000, 0),
        "nothing reserved or moved"
    );
    assert_eq!(stack.balances(&bob).await?, (0, 0));
    assert_eq!(stack.balances(&dollars).await?, (0, 0));
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn an_unparseable_message_ends_in_the_dlq_without_failing_its_batch_mates()
-> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let (alice, bob) = stack.alice_and_bob(1_000).await?;

    // One good PaymentRequested event and one message that is not JSON, sent as one batch.
    let payment_id = format!("pay_{}", unique());
    let detail = json!({"version": 1, "event_id": format!("{payment_id}/1"), "consent": stack.consent(), "occurred_at": "2026-11-25T12:00:00Z",
        "data": {"payment_id": payment_id, "from_wallet": alice, "to_wallet": bob, "amount": {"minor_units": 400, "currency": "EUR"}}});
    let good = json!({"version": "0", "id": unique(), "detail-type": "PaymentRequested", "source": "paysaga.payments",
        "account": "000000000000", "time": "2026-11-25T12:00:00Z", "region": stack.wiring.region, "resources": [], "detail": detail});
    let poison = format!("{{not json {}", unique());
    let payments = stack.wiring.queue("PaymentsQueue")?;
    let entries = [("good", good.to_string()), ("poison", poison.clone())]
        .into_iter()
        .map(|(id, body)| {
            SendMessageBatchRequestEntry::builder()
                .id(id)
                .message_body(body)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    stack.send_batch(&payments.url, entries).await?;

    let settled = stack.settled_payment(&payment_id, SETTLE).await?;
    assert_eq!(
        settled["status"], "COMPLETED",
        "the good message was processed: {settled}"
    );
    assert_eq!(stack.balances(&bob).await?, (400, 0));

    let max_receive_count = payments
        .max_receive_count
        .context("PaymentsQueue has a redrive policy")?;
    let dlq = stack.wiring.queue("PaymentsDeadLetterQueue")?;
    // The consumer gave up on its last delivery and sent it to the DLQ with why.
    let failure: Value = eventually(
        Duration::from_secs(120),
        "the poison message in the DLQ",
        || async {
            let output = stack
                .sqs
                .receive_message()
                .queue_url(&dlq.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(1)
                .message_attribute_names("All")
                .send()
                .await?;
            for message in output.messages() {
                if message.body() != Some(poison.as_str()) {
                    continue;
                }
                if let Some(handle) = message.receipt_handle() {
                    stack
                        .sqs
                        .delete_message()
                        .queue_url(&dlq.url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
                let record = message
                    .message_attributes()
                    .and_then(|attributes| attributes.get(FAILURE_ATTRIBUTE))
                    .and_then(|attribute| attribute.string_value())
                    .context("the DLQ message carries its failure record")?;
                return Ok(Some(serde_json::from_str(record)?));
            }
            Ok(None)
        },
    )
    .await?;
    assert_eq!(failure["kind"], "permanent", "{failure}");
    assert!(
        failure["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not a requested payment"),
        "{failure}"
    );
    let receive_count = failure["receive_count"].as_u64().unwrap_or(0);
    assert!(
        receive_count >= u64::from(max_receive_count),
        "given up after {receive_count} receives, maxReceiveCount is {max_receive_count}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn the_readme_walkthrough_and_its_aws_cli_event_work_verbatim() -> anyhow::Result<()> {
    // The walk-through's callers: Alice pays, Bob is paid.
    let mut stack = Stack::connect().await?;
    stack.act_as("alice")?;
    let mut bob = Stack::connect().await?;
    bob.act_as("bob")?;
    let root = repo_root();

    // What the stack held before: the walk-through opens the wallets, tops Alice's up and pays
    // Bob 25.00, each under an Idempotency-Key (again on a stack that served it before: nothing
    // changes), and the AWS CLI example pays him 12.50 as pay_demo_cli_0001 (once: a replayed
    // event changes nothing).
    let opened_before = stack.get("/wallets/wal_demo_alice").await?.0 == 200;
    let cli_paid_before = stack.get("/payments/pay_demo_cli_0001").await?.0 == 200;
    let before = if opened_before {
        (
            stack.balances("wal_demo_alice").await?.0,
            bob.balances("wal_demo_bob").await?.0,
        )
    } else {
        (0, 0)
    };

    // The README's walk-through and its put-events block, exactly as written there, pasted into
    // one shell as a reader does (the block uses the walk-through's `$alice` and `settled`).
    let started = chrono::Utc::now();
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let marker = "--- put-events block ---";
    let script = format!(
        "{}\necho '{marker}'\n{}",
        readme_block(&readme, "walkthrough")?,
        readme_block(&readme, "put-events")?
    );
    let output = Command::new("bash")
        .current_dir(&root)
        .args(["-euo", "pipefail", "-c", &script])
        .output()?;
    let printed = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "the README's blocks failed: {printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (walkthrough, put_events) = printed.split_once(marker).context("both blocks ran")?;

    // What the README promises each block shows.
    let finished = |payment: &str, text: &str| {
        text.lines().any(|line| {
            line.contains(payment)
                && (line.contains(r#""status":"COMPLETED""#)
                    || line.contains(r#""status":"FAILED""#))
        })
    };
    let location = walkthrough
        .lines()
        .find(|line| line.starts_with("/payments/pay_"))
        .context("the walk-through prints the payment's location")?;
    let payment_id = location.trim_start_matches("/payments/");
    assert!(
        finished(payment_id, walkthrough),
        "the payment finished: {walkthrough}"
    );
    assert!(
        walkthrough
            .lines()
            .any(|line| line.contains(r#""kind":"top_up""#)
                && line.contains(r#""status":"COMPLETED""#)),
        "Alice's top-up completed: {walkthrough}"
    );
    assert!(
        walkthrough.contains(r#""code":"forbidden""#),
        "Alice's 403: {walkthrough}"
    );
    assert!(
        walkthrough
            .lines()
            .any(|line| line == r#"{"message":"Unauthorized"}"#),
        "the 401 without a token: {walkthrough}"
    );
    assert!(
        walkthrough.contains(r#""wallet_id":"wal_demo_bob""#),
        "{walkthrough}"
    );
    // The other two doors: Bob's wallets through GraphQL, with the payment as his newest
    // transaction; Alice's balance through the WalletService over Connect.
    let graphql = walkthrough
        .lines()
        .find(|line| line.starts_with(r#"{"data":{"viewer""#))
        .with_context(|| format!("the GraphQL answer: {walkthrough}"))?;
    let graphql: serde_json::Value = serde_json::from_str(graphql)?;
    let bobs = &graphql["data"]["viewer"]["wallets"];
    let bobs_wallet = bobs
        .as_array()
        .and_then(|wallets| wallets.iter().find(|wallet| wallet["id"] == "wal_demo_bob"))
        .with_context(|| format!("Bob's wallet through GraphQL: {graphql}"))?;
    assert_eq!(bobs_wallet["available"]["currency"], "EUR", "{graphql}");
    assert!(
        bobs_wallet["available"]["minorUnits"].as_u64() >= Some(2_500),
        "Bob was paid: {graphql}"
    );
    // The read model trails the ledger by a moment: his newest transaction, once there, is a
    // payment he received.
    let edges = bobs_wallet["transactions"]["edges"]
        .as_array()
        .with_context(|| format!("Bob's transactions through GraphQL: {graphql}"))?;
    if let Some(newest) = edges.first() {
        assert_eq!(newest["node"]["kind"], "PAYMENT_RECEIVED", "{graphql}");
    }
    let connect = walkthrough
        .lines()
        .find(|line| line.starts_with(r#"{"walletId":"wal_demo_alice""#))
        .with_context(|| format!("the Connect answer: {walkthrough}"))?;
    let connect: serde_json::Value = serde_json::from_str(connect)?;
    assert_eq!(connect["available"]["currency"], "EUR", "{connect}");
    assert!(
        put_events.contains(r#""FailedEntryCount": 0"#),
        "{put_events}"
    );
    assert!(finished("pay_demo_cli_0001", put_events), "{put_events}");
    assert!(
        !printed.contains(r#""status":"PENDING""#),
        "a payment still PENDING: {printed}"
    );

    // And the money moved as they say, exactly once.
    let settled = stack.settled_payment(payment_id, SETTLE).await?;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");
    assert_eq!(settled["amount"]["minor_units"], 2_500);
    // Made by this run, or by an earlier one on this stack (its key replayed).
    let created_at: chrono::DateTime<chrono::Utc> = settled["created_at"]
        .as_str()
        .context("the payment's created_at")?
        .parse()?;
    let paid = if created_at >= started { 2_500 } else { 0 };
    let settled = stack.settled_payment("pay_demo_cli_0001", SETTLE).await?;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");
    let topped_up = if opened_before { 0 } else { 10_000 };
    let cli = if cli_paid_before { 0 } else { 1_250 };
    let after = (
        stack.balances("wal_demo_alice").await?.0,
        bob.balances("wal_demo_bob").await?.0,
    );
    assert_eq!(
        after,
        (before.0 + topped_up - paid - cli, before.1 + paid + cli),
        "Alice and Bob before: {before:?}"
    );
    Ok(())
}

/// The shell commands of the README between its `<!-- {name}:start -->` and
/// `<!-- {name}:end -->` markers.
fn readme_block(readme: &str, name: &str) -> anyhow::Result<String> {
    let start = readme
        .find(&format!("<!-- {name}:start -->"))
        .with_context(|| format!("README has a {name}:start marker"))?;
    let end = readme
        .find(&format!("<!-- {name}:end -->"))
        .with_context(|| format!("README has a {name}:end marker"))?;
    let commands: Vec<&str> = readme[start..end]
        .lines()
        .skip(1)
        .filter(|line| !line.starts_with("```"))
        .collect();
    Ok(commands.join("\n"))
}
