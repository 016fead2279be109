//! The event relay on the local stack, broken on purpose: its `PutEvents` fails for a window
//! and then at random (the fault-injection build's faults file, aimed at this test's wallets),
//! and its process is killed with SIGKILL again and again while it publishes. Once it is left
//! alone, the audit trail holds exactly one copy of every event the ledger's writes made true
//! (every deposit, every payment's request and outcome), the read models equal a rebuild from
//! the audit trail, and every wallet rebuilt from its events equals its balance.
//!
//! These need the stack running, so `cargo test` alone skips them; `make test` starts the
//! stack and runs them with `--ignored`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use futures::StreamExt;
use paysaga_aws::DynamoDbReadModels;
use paysaga_domain::history::StreamId;
use paysaga_domain::ports::EventStore;
use paysaga_domain::{PaymentId, WalletId};
use paysaga_services::read_models::rebuild;
use paysaga_tests::audit::{event_store, outcome_recorded, wallet_matches_its_events};
use paysaga_tests::read_models::{all_payments, all_transactions, live_read_models};
use paysaga_tests::{Stack, eventually, function_log, unique};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(180);
const WALLETS: usize = 4;
const PAYMENTS: usize = 40;
const FUNDS: u64 = 10_000;
/// How many times the relay is killed while the payments go through.
const KILLS: usize = 6;

/// The faults file the relay reads on every call; removed when dropped, whatever happens, so
/// that no other test meets the faults.
struct RelayFaults(PathBuf);

impl RelayFaults {
    fn turn_on(stack: &Stack, faults: serde_json::Value) -> anyhow::Result<Self> {
        let directory = PathBuf::from(
            stack
                .wiring
                .function_env("event-relay", "PAYSAGA_FAULTS_DIR")?,
        );
        std::fs::create_dir_all(&directory)?;
        let path = directory.join("event-relay.json");
        std::fs::write(&path, faults.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for RelayFaults {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Kills every running event-relay process with SIGKILL; how many there were.
fn kill_the_relay() -> anyhow::Result<usize> {
    let status = std::process::Command::new("pkill")
        .args(["-KILL", "-c", "-x", "event-relay"])
        .output()
        .context("running pkill")?;
    let count = String::from_utf8_lossy(&status.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Ok(count)
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_failing_and_killed_relay_loses_no_event_and_publishes_none_twice() -> anyhow::Result<()>
{
    let stack = Stack::connect().await?;
    let run = unique();
    let wallets: Vec<String> = (0..WALLETS)
        .map(|i| format!("wal_relay{i}_{run}"))
        .collect();
    // Every call that carries one of this run's events fails for 10 s, then one in three.
    let faults = RelayFaults::turn_on(
        &stack,
        json!({
            "fail_until": (chrono::Utc::now() + chrono::Duration::seconds(10)).to_rfc3339(),
            "fail_rate": 0.33,
            "only_events_mentioning": run,
        }),
    )?;
    for wallet in &wallets {
        stack.funded_wallet(wallet, "EUR", FUNDS, &unique()).await?;
    }

    // The payments, 8 at a time, between the run's wallets; the relay killed every 700 ms.
    let plans: Vec<(String, String, u64)> = (0..PAYMENTS)
        .map(|n| {
            let (from, to) = (n % WALLETS, (n + 1 + n / WALLETS) % WALLETS);
            let to = if to == from { (to + 1) % WALLETS } else { to };
            (wallets[from].clone(), wallets[to].clone(), 100 + n as u64)
        })
        .collect();
    let submitting = futures::stream::iter(plans)
        .map(|(from, to, amount)| {
            let stack = &stack;
            async move {
                let body = json!({"from_wallet": from, "to_wallet": to, "amount": {"minor_units": amount, "currency": "EUR"}});
                let (status, accepted) = stack.post("/payments", body, Some(&unique())).await?;
                ensure!(status == 202, "POST /payments answered {status}: {accepted}");
                Ok(accepted["payment_id"].as_str().context("payment_id")?.to_owned())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<anyhow::Result<String>>>();
    let killing = async {
        let mut killed = 0;
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(700)).await;
            killed += kill_the_relay()?;
        }
        anyhow::Ok(killed)
    };
    let (submitted, killed) = tokio::join!(submitting, killing);
    let payment_ids = submitted.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let killed = killed?;
    ensure!(killed > 0, "the relay was never running to be killed");

    for payment_id in &payment_ids {
        stack.settled_payment(payment_id, SETTLE).await?;
    }
    drop(faults);

    // The audit trail: each payment's request and outcome, once each; each wallet's deposit
    // and the payments that moved its money, once each, adding up to its balance.
    let store = event_store(&stack)?;
    for payment_id in &payment_ids {
        outcome_recorded(&store, payment_id, SETTLE).await?;
        let id = PaymentId::parse(payment_id)?;
        let events = store.stream(&StreamId::Payment(id), 0).await?;
        let ids: Vec<&str> = events.iter().map(|event| event.event.event_id()).collect();
        let unique_ids: BTreeSet<&str> = ids.iter().copied().collect();
        ensure!(
            ids.len() == 2
                && unique_ids.len() == 2
                && unique_ids.contains(format!("{payment_id}/1").as_str()),
            "{payment_id}'s stream holds its request and its outcome, once each: {ids:?}"
        );
    }
    let wallet_ids: Vec<WalletId> = wallets
        .iter()
        .map(|wallet| WalletId::parse(wallet))
        .collect::<Result<_, _>>()?;
    for wallet in &wallet_ids {
        eventually(SETTLE, &format!("{wallet}'s events to add up"), || async {
            Ok(wallet_matches_its_events(&stack, &store, wallet.as_str())
                .await
                .ok())
        })
        .await?;
        let events = paysaga_services::audit::wallet_events(&store, wallet).await?;
        let ids: Vec<&str> = events.iter().map(|event| event.event.event_id()).collect();
        let unique_ids: BTreeSet<&str> = ids.iter().copied().collect();
        ensure!(
            ids.len() == unique_ids.len(),
            "{wallet}'s stream repeats an event: {ids:?}"
        );
        ensure!(
            events
                .iter()
                .filter(|event| event.event.detail_type() == "FundsDeposited")
                .count()
                == 1,
            "{wallet}'s deposit, once: {ids:?}"
        );
    }

    // The read models equal a rebuild from the audit trail (content, not revisions: see
    // read_models.rs).
    let live = live_read_models(&stack)?;
    let fresh_table = format!("{}-relay-{run}", stack.wiring.table("ReadModelsTable")?);
    let rebuilt = DynamoDbReadModels::new(stack.dynamodb.clone(), &fresh_table);
    rebuilt.create_table().await?;
    let compared = async {
        rebuild(&store, &rebuilt).await?;
        for wallet in &wallet_ids {
            eventually(SETTLE, &format!("{wallet}'s live read models"), || async {
                let live_payments = all_payments(&live, wallet).await?;
                let terminal = live_payments
                    .iter()
                    .all(|item| item.entry.status.is_terminal());
                Ok((terminal && !live_payments.is_empty()).then_some(()))
            })
            .await?;
            let transactions = |items: Vec<paysaga_services::read_models::Revised<_>>| {
                items.into_iter().map(|item| item.entry).collect::<Vec<_>>()
            };
            ensure!(
                transactions(all_transactions(&live, wallet).await?)
                    == transactions(all_transactions(&rebuilt, wallet).await?),
                "{wallet}'s transactions differ from the rebuild"
            );
            let payments = |items: Vec<paysaga_services::read_models::Revised<_>>| {
                items.into_iter().map(|item| item.entry).collect::<Vec<_>>()
            };
            ensure!(
                payments(all_payments(&live, wallet).await?)
                    == payments(all_payments(&rebuilt, wallet).await?),
                "{wallet}'s payments differ from the rebuild"
            );
        }
        anyhow::Ok(())
    }
    .await;
    stack
        .dynamodb
        .delete_table()
        .table_name(&fresh_table)
        .send()
        .await?;
    compared?;

    // The faults were met: the relay's log says it stopped at an injected failure.
    let log = function_log()?;
    let injected = log
        .lines()
        .filter(|line| {
            line.starts_with("event-relay") && line.contains("injected PutEvents failure")
        })
        .count();
    ensure!(
        injected > 0,
        "no injected PutEvents failure in the relay's log"
    );
    println!(
        "relay: {PAYMENTS} payments and {WALLETS} deposits of run {run}; the relay killed {killed} \
         times, {injected} calls refused by injection; every event once in the audit trail"
    );
    Ok(())
}
