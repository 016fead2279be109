//! Whose money, whichever way the request comes: a `PaymentRequested` put straight on the bus
//! moves money only with its payer's consent, a token whose subject owns the payer's wallet,
//! checked by the saga with the local stack's development key as it would be with an identity
//! provider's keys in AWS. Without it, or with someone else's, nothing is recorded, no money
//! moves, and the message ends in the payments DLQ saying why.

use std::time::Duration;

use anyhow::ensure;
use chrono::Utc;
use paysaga_tests::{Stack, unique};
use serde_json::{Value, json};

const TO_THE_DLQ: Duration = Duration::from_secs(180);
const SETTLED: Duration = Duration::from_secs(120);

/// Puts a request for `minor_units` from `from` to `to` on the bus, with `consent` (or none).
async fn request_on_the_bus(
    stack: &Stack,
    payment_id: &str,
    (from, to): (&str, &str),
    minor_units: u64,
    consent: Option<Value>,
) -> anyhow::Result<()> {
    let mut detail = json!({
        "version": 1,
        "event_id": format!("{payment_id}/1"),
        "occurred_at": Utc::now(),
        "data": {"payment_id": payment_id, "from_wallet": from, "to_wallet": to,
                 "amount": {"minor_units": minor_units, "currency": "EUR"}},
    });
    if let Some(consent) = consent {
        detail["consent"] = consent;
    }
    stack
        .put_event("paysaga.payments", "PaymentRequested", &detail.to_string())
        .await
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_payment_on_the_bus_its_payer_did_not_consent_to_ends_in_the_dlq_and_moves_nothing()
-> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let (alice, bob) = stack.alice_and_bob(1_000).await?;
    // The test caller owns both wallets; someone else signs the forged consent.
    let someone_else = stack
        .tokens
        .token("someone-else", false, Duration::from_secs(600))?;
    let attempts = [
        (None, "consent_missing"),
        (
            Some(json!({"bearer_token": someone_else})),
            "consent_not_the_owner",
        ),
        (
            Some(json!({"bearer_token": "not-a-token"})),
            "consent_invalid",
        ),
    ];
    for (consent, code) in attempts {
        let payment_id = format!("pay_consent_{}", unique());
        request_on_the_bus(&stack, &payment_id, (&alice, &bob), 400, consent).await?;
        let mut attributes = stack
            .wait_in_queue("PaymentsDeadLetterQueue", &payment_id, TO_THE_DLQ)
            .await?;
        if !attributes.contains_key("failure-record") {
            // Moved by the queue's redrive policy, not given up by the saga: a delivery of it
            // died with its batch (another test's injected crash of the saga), so the saga never
            // saw its last one. The redrive sends such a message back; its next last delivery
            // is the saga's.
            let redrive = json!({"action": "redrive", "queue": "payments-dlq"});
            stack
                .invoke("dlq-redrive", &redrive, Duration::from_secs(300))
                .await?
                .map_err(|error| anyhow::anyhow!("redrive failed: {error}"))?;
            attributes = stack
                .wait_in_queue("PaymentsDeadLetterQueue", &payment_id, TO_THE_DLQ)
                .await?;
        }
        let record = attributes
            .get("failure-record")
            .cloned()
            .unwrap_or_default();
        ensure!(
            record.contains(code),
            "{code}: the dead letter says {attributes:?}"
        );
        ensure!(
            !record.contains(&someone_else),
            "the refusal quotes no token: {record}"
        );
        let (status, body) = stack.get(&format!("/payments/{payment_id}")).await?;
        ensure!(
            status == 404,
            "{code}: nothing recorded, yet {status} {body}"
        );
    }
    ensure!(
        stack.balances(&alice).await? == (1_000, 0),
        "alice's money moved"
    );
    ensure!(stack.balances(&bob).await? == (0, 0), "bob got money");

    // With her owner's consent, the same request moves the money.
    let payment_id = format!("pay_consent_{}", unique());
    let consent = Some(stack.consent());
    request_on_the_bus(&stack, &payment_id, (&alice, &bob), 400, consent).await?;
    let settled = stack.settled_payment(&payment_id, SETTLED).await?;
    ensure!(settled["status"] == "COMPLETED", "{settled}");
    ensure!(stack.balances(&alice).await? == (600, 0));
    Ok(())
}

/// A caller cannot raise the total of the wallets it owns by any API call but a top-up the
/// processor charged: a transfer between its own wallets, a declined top-up, a deposit (the
/// route is an operator's), a payout, each leaves the total as it was or lowers it.
#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn only_a_charged_top_up_raises_what_a_caller_owns() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let (first, second) = stack.alice_and_bob(1_000).await?;
    let total = async || -> anyhow::Result<u64> {
        let (a, b) = (
            stack.balances(&first).await?,
            stack.balances(&second).await?,
        );
        Ok(a.0 + a.1 + b.0 + b.1)
    };
    let eur = |minor_units: u64| json!({"minor_units": minor_units, "currency": "EUR"});

    // A transfer between its own wallets: the total stays.
    let body = json!({"from_wallet": first, "to_wallet": second, "amount": eur(300)});
    let (status, answer) = stack.post("/payments", body, Some(&unique())).await?;
    ensure!(status == 202, "{status} {answer}");
    let id = answer["payment_id"].as_str().unwrap_or_default().to_owned();
    ensure!(stack.settled_payment(&id, SETTLED).await?["status"] == "COMPLETED");
    ensure!(total().await? == 1_000);

    // A deposit is no caller's route; the operators' needs the admin scope.
    let deposit = json!({"amount": eur(5_000), "reason": "my own money"});
    let (status, _) = stack
        .post(&format!("/wallets/{first}/deposits"), deposit.clone(), None)
        .await?;
    ensure!(status == 404, "a caller's deposit route: {status}");
    let (status, _) = stack
        .post(&format!("/admin/wallets/{first}/deposits"), deposit, None)
        .await?;
    ensure!(
        status == 403,
        "an operator's deposit without the scope: {status}"
    );

    // A top-up the processor declines: the total stays; one it charges: the total rises by it.
    for (instrument, raised) in [("fi_declined_card", 0), ("fi_card_visa", 2_500)] {
        let body = json!({"funding_instrument": instrument, "amount": eur(2_500)});
        let path = format!("/wallets/{first}/top-ups");
        let (status, answer) = stack.post(&path, body, Some(&unique())).await?;
        ensure!(status == 202, "{status} {answer}");
        let id = answer["payment_id"].as_str().unwrap_or_default().to_owned();
        stack.settled_payment(&id, SETTLED).await?;
        ensure!(total().await? == 1_000 + raised, "{instrument}");
    }

    // A payout lowers it.
    let body = json!({"destination": "dst_bank_main", "amount": eur(500)});
    let (status, answer) = stack
        .post(&format!("/wallets/{first}/payouts"), body, Some(&unique()))
        .await?;
    ensure!(status == 202, "{status} {answer}");
    let id = answer["payment_id"].as_str().unwrap_or_default().to_owned();
    ensure!(stack.settled_payment(&id, SETTLED).await?["status"] == "COMPLETED");
    ensure!(total().await? == 3_000);
    Ok(())
}
