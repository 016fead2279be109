//! Money in and out on the local stack: a top-up charges the caller's funding instrument at the
//! (fake) processor and credits the wallet; a payout reserves, pays the caller's destination and
//! debits the wallet; each is a payment of the same saga, idempotent under its key, and fails
//! without moving money when the processor refuses. The fake processor's test conventions (as a
//! real processor's test mode has test cards): an instrument `fi_declined_…` is always declined,
//! a destination `dst_refusing_…` always refuses a payout.

use std::time::Duration;

use anyhow::{Context, ensure};
use paysaga_tests::{Stack, eventually, unique};
use serde_json::{Value, json};

/// How long a top-up or a payout may take to settle: generous, as the bank test runs beside
/// these with processor outages and an error rate that hold every payment back.
const SETTLED: Duration = Duration::from_secs(180);

fn eur(minor_units: u64) -> Value {
    json!({"minor_units": minor_units, "currency": "EUR"})
}

/// Opens an empty EUR wallet of the test caller.
async fn open_wallet(stack: &Stack) -> anyhow::Result<String> {
    let wallet_id = format!("wal_flows_{}", unique());
    stack.funded_wallet(&wallet_id, "EUR", 0, &unique()).await?;
    Ok(wallet_id)
}

/// Submits a top-up or a payout (`route`: `top-ups` or `payouts`); answers the payment id
/// after checking the 202 and what it says.
async fn submit(
    stack: &Stack,
    wallet_id: &str,
    route: &str,
    body: Value,
    key: &str,
) -> anyhow::Result<String> {
    let path = format!("/wallets/{wallet_id}/{route}");
    let (status, answer) = stack.post(&path, body, Some(key)).await?;
    ensure!(status == 202, "POST {path} answered {status}: {answer}");
    let kind = if route == "top-ups" {
        "top_up"
    } else {
        "payout"
    };
    ensure!(answer["kind"] == kind, "{answer}");
    answer["payment_id"]
        .as_str()
        .map(str::to_owned)
        .context("a payment id in the answer")
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_top_up_credits_the_wallet_once_and_a_payout_debits_it() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let wallet = open_wallet(&stack).await?;
    let top_up = json!({"funding_instrument": "fi_card_visa", "amount": eur(10_000)});
    let key = unique();
    let id = submit(&stack, &wallet, "top-ups", top_up.clone(), &key).await?;
    let settled = stack.settled_payment(&id, SETTLED).await?;
    ensure!(settled["status"] == "COMPLETED", "{settled}");
    ensure!(settled["to_wallet"] == wallet.as_str(), "{settled}");
    ensure!(settled["funding_instrument"] == "fi_card_visa", "{settled}");
    ensure!(settled.get("from_wallet").is_none(), "{settled}");
    ensure!(stack.balances(&wallet).await? == (10_000, 0));

    // The same key again: the same payment, nothing charged or credited twice.
    let again = submit(&stack, &wallet, "top-ups", top_up, &key).await?;
    ensure!(
        again == id,
        "a retry names the same payment: {again} vs {id}"
    );
    ensure!(stack.balances(&wallet).await? == (10_000, 0));

    let payout = json!({"destination": "dst_bank_main", "amount": eur(3_000)});
    let id = submit(&stack, &wallet, "payouts", payout, &unique()).await?;
    let settled = stack.settled_payment(&id, SETTLED).await?;
    ensure!(settled["status"] == "COMPLETED", "{settled}");
    ensure!(settled["destination"] == "dst_bank_main", "{settled}");
    ensure!(stack.balances(&wallet).await? == (7_000, 0));

    // More than the wallet holds: refused before the processor hears of it.
    let payout = json!({"destination": "dst_bank_main", "amount": eur(7_001)});
    let id = submit(&stack, &wallet, "payouts", payout, &unique()).await?;
    let settled = stack.settled_payment(&id, SETTLED).await?;
    ensure!(
        settled["status"] == "FAILED" && settled["failure"]["code"] == "insufficient_funds",
        "{settled}"
    );
    ensure!(stack.balances(&wallet).await? == (7_000, 0));

    // The wallet's transactions show the money in and out, newest first.
    let path = format!("/wallets/{wallet}/transactions");
    let kinds = eventually(SETTLED, "the transactions read model", || async {
        let (status, body) = stack.get(&path).await?;
        ensure!(status == 200, "GET {path} answered {status}: {body}");
        let rows: Vec<(String, i64, String)> = body["transactions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                (
                    row["kind"].as_str().unwrap_or_default().to_owned(),
                    row["amount"]["minor_units"].as_i64().unwrap_or_default(),
                    row["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let settled = rows.len() == 3 && rows.iter().all(|(_, _, status)| status != "PENDING");
        Ok(settled.then_some(rows))
    })
    .await?;
    let expected = [
        ("payout", -7_001, "FAILED"),
        ("payout", -3_000, "COMPLETED"),
        ("top_up", 10_000, "COMPLETED"),
    ]
    .map(|(kind, amount, status)| (kind.to_owned(), amount, status.to_owned()));
    ensure!(kinds == expected, "{kinds:?}");
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_refused_top_up_or_payout_moves_no_money() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let wallet = open_wallet(&stack).await?;
    let declined = json!({"funding_instrument": "fi_declined_card", "amount": eur(5_000)});
    let id = submit(&stack, &wallet, "top-ups", declined, &unique()).await?;
    let settled = stack.settled_payment(&id, SETTLED).await?;
    ensure!(
        settled["status"] == "FAILED" && settled["failure"]["code"] == "payment_declined",
        "{settled}"
    );
    ensure!(stack.balances(&wallet).await? == (0, 0));

    let funding = json!({"funding_instrument": "fi_card_visa", "amount": eur(5_000)});
    let id = submit(&stack, &wallet, "top-ups", funding, &unique()).await?;
    ensure!(stack.settled_payment(&id, SETTLED).await?["status"] == "COMPLETED");
    // The destination refuses after the wallet's funds were reserved: the reservation is given
    // back in full.
    let refused = json!({"destination": "dst_refusing_bank", "amount": eur(2_000)});
    let id = submit(&stack, &wallet, "payouts", refused, &unique()).await?;
    let settled = stack.settled_payment(&id, SETTLED).await?;
    ensure!(
        settled["status"] == "FAILED" && settled["failure"]["code"] == "payment_declined",
        "{settled}"
    );
    ensure!(stack.balances(&wallet).await? == (5_000, 0));
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn nobody_tops_up_or_pays_out_a_wallet_of_another_caller() -> anyhow::Result<()> {
    let mut stack = Stack::connect().await?;
    let wallet = open_wallet(&stack).await?;
    stack.act_as("someone-else")?;
    for (route, body) in [
        (
            "top-ups",
            json!({"funding_instrument": "fi_card_visa", "amount": eur(100)}),
        ),
        (
            "payouts",
            json!({"destination": "dst_bank_main", "amount": eur(100)}),
        ),
    ] {
        let path = format!("/wallets/{wallet}/{route}");
        let (status, answer) = stack.post(&path, body, Some(&unique())).await?;
        ensure!(
            status == 403,
            "POST {path} as another caller: {status} {answer}"
        );
    }
    Ok(())
}
