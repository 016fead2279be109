//! What the functions write, read as CloudWatch would read it: every metrics line in the
//! functions' output is a valid Embedded Metric Format document.
//!
//! local-lambda writes each function instance's output to `.local/logs/local-lambda.log`, each
//! line prefixed with the instance's label (`payment-saga#2 | ...`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use lambda_toolkit::metrics::check_document;
use paysaga_tests::{Stack, eventually, repo_root, unique};
use serde_json::{Value, json};

/// One line of a function's output that carries metrics.
struct MetricsLine {
    function: String,
    /// The document, or why the line is not JSON.
    document: Result<Value, String>,
}

/// Every line of the functions' output that claims to be a metrics document (it names `_aws`).
fn metrics_lines(log: &str) -> Vec<MetricsLine> {
    log.lines()
        .filter_map(|line| line.split_once(" | "))
        .filter(|(_, output)| output.contains("\"_aws\""))
        .map(|(label, output)| MetricsLine {
            function: label.split('#').next().unwrap_or(label).to_owned(),
            document: serde_json::from_str(output).map_err(|error| format!("{error}: {output}")),
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn every_metrics_line_the_functions_write_is_valid_emf() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let log_path = repo_root().join(".local/logs/local-lambda.log");
    let (alice, bob) = stack.alice_and_bob(10_000).await?;
    let started_ms = chrono::Utc::now().timestamp_millis();
    let payment = json!({"from_wallet": alice, "to_wallet": bob, "amount": {"minor_units": 700, "currency": "EUR"}});
    let (status, accepted) = stack.post("/payments", payment, Some(&unique())).await?;
    ensure!(
        status == 202,
        "POST /payments answered {status}: {accepted}"
    );
    let payment_id = accepted["payment_id"].as_str().context("payment_id")?;
    let settled = stack
        .settled_payment(payment_id, Duration::from_secs(60))
        .await?;
    ensure!(settled["status"] == "COMPLETED", "{settled}");

    // The saga flushes an invocation's metrics as the invocation ends, just after the payment
    // is settled: wait for a document of this run that counts a completed payment.
    let lines = eventually(
        Duration::from_secs(30),
        "payment-saga's metrics of a payment completed in this test",
        || async {
            let log = std::fs::read_to_string(&log_path)
                .with_context(|| format!("cannot read {}", log_path.display()))?;
            let lines = metrics_lines(&log);
            let counted = lines.iter().any(|line| {
                line.function == "payment-saga"
                    && line.document.as_ref().is_ok_and(|document| {
                        document.get("PaymentsCompleted").is_some()
                            && document["_aws"]["Timestamp"]
                                .as_i64()
                                .is_some_and(|at| at >= started_ms)
                    })
            });
            Ok(counted.then_some(lines))
        },
    )
    .await?;

    let mut per_function: BTreeMap<&str, usize> = BTreeMap::new();
    let mut invalid = Vec::new();
    for line in &lines {
        *per_function.entry(&line.function).or_default() += 1;
        let checked = line
            .document
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|document| check_document(document).map_err(|error| error.to_string()));
        if let Err(error) = checked {
            invalid.push(format!("{}: {error}", line.function));
        }
    }
    println!(
        "{} metrics lines in {}: {per_function:?}",
        lines.len(),
        log_path.display()
    );
    ensure!(
        invalid.is_empty(),
        "{} of {} metrics lines are not valid EMF:\n{}",
        invalid.len(),
        lines.len(),
        invalid.join("\n")
    );
    Ok(())
}
