//! Log redaction on the local stack: a card number, an e-mail address and tokens go in every
//! place a client or a publisher can put them (bodies, unknown fields, ids in paths and bodies,
//! `Idempotency-Key`s, headers, query strings, EventBridge details, SQS bodies, the redrive
//! function's requests); once every function has handled them, no file under `.local/logs/`
//! holds any of those values, nor anything that looks like a card number (Luhn-valid 13 to 19
//! digits), a JWT or an e-mail address ([`redact::findings`]). A failure names the
//! file and the line.
//!
//! The emulators' own logs are scanned too, but only reported: LocalStack logs, at INFO, every
//! event no rule matched, whole (`localstack.log`); in AWS, EventBridge, SQS and DynamoDB write
//! nothing into the account's logs. What paysaga's functions, the Lambda emulator and the fake
//! payment processor write (`local-lambda.log`, `payment-processor.log`) must hold nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use paysaga_tests::{Stack, eventually, repo_root, unique};
use reqwest::Method;
use serde_json::{Value, json};

/// A fresh Luhn-valid 16-digit card number (a Visa test range).
fn card_number() -> String {
    let body: String = (0..14)
        .map(|_| char::from(b'0' + fastrand::u8(0..10)))
        .collect();
    (0..10)
        .map(|check| format!("4{body}{check}"))
        .find(|candidate| {
            let digits: Vec<u8> = candidate.bytes().map(|b| b - b'0').collect();
            redact::luhn(&digits)
        })
        .expect("one check digit of ten passes Luhn")
}

/// What the run plants.
struct Secrets {
    card: String,
    email: String,
    /// A JWT that is not the stack's (unsigned).
    fake_jwt: String,
    /// Valid development tokens, sent as bearer tokens.
    tokens: Vec<String>,
}

impl Secrets {
    fn all(&self) -> Vec<&str> {
        let mut all = vec![
            self.card.as_str(),
            self.email.as_str(),
            self.fake_jwt.as_str(),
        ];
        all.extend(self.tokens.iter().map(String::as_str));
        all
    }
}

/// Every file under `directory`, recursively.
fn files(directory: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).with_context(|| directory.display().to_string())? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files(&path)?);
        } else {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// `file:line: what` for every planted value and every sensitive-looking value in the logs.
fn leaks(logs: &Path, secrets: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut leaks = Vec::new();
    for file in files(logs)? {
        let bytes = std::fs::read(&file)?;
        let text = String::from_utf8_lossy(&bytes);
        for (number, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.display(), number + 1);
            for secret in secrets {
                if line.contains(secret) {
                    leaks.push(format!("{at}: the planted {secret:?}"));
                }
            }
            for finding in redact::findings(line) {
                if is_segment_id(line, &finding) {
                    continue;
                }
                let value = &line[finding.start..finding.end];
                leaks.push(format!("{at}: {} ({value:?})", finding.kind));
            }
        }
    }
    Ok(leaks)
}

/// Whether `finding` is a trace header's segment id (`Parent=` and 16 hex digits): an id the
/// tracing side draws at random, all decimal and Luhn-valid about once in 25,000, not a value
/// of a client's. A planted card number there is still found by its value.
fn is_segment_id(line: &str, finding: &redact::Finding) -> bool {
    let value = &line[finding.start..finding.end];
    finding.kind == redact::Sensitive::CardNumber
        && value.len() == 16
        && line[..finding.start].ends_with("Parent=")
        && !line[finding.end..].starts_with(|c: char| c.is_ascii_hexdigit())
}

/// Whether a finding is in a log an AWS service writes for itself, not into the account:
/// LocalStack's, DynamoDB Local's, the installers' of the local stack.
fn is_emulator_log(finding: &str) -> bool {
    let file = finding.split(':').next().unwrap_or_default();
    let name = Path::new(file)
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    name == "localstack.log" || name == "dynamodb.log" || name.starts_with("install-")
}

/// Whether any log file mentions `marker`.
fn logged(logs: &Path, marker: &str) -> anyhow::Result<bool> {
    for file in files(logs)? {
        let bytes = std::fs::read(&file)?;
        if String::from_utf8_lossy(&bytes).contains(marker) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Requests carrying the secrets everywhere a client can put them.
async fn hostile_requests(stack: &Stack, secrets: &Secrets) -> anyhow::Result<usize> {
    let Secrets {
        card,
        email,
        fake_jwt,
        ..
    } = secrets;
    let wallet = format!("wal_{}", unique());
    let (status, body) = stack
        .post(
            "/wallets",
            json!({"currency": "EUR", "wallet_id": wallet}),
            None,
        )
        .await?;
    ensure!(status == 201, "POST /wallets: {status} {body}");
    let amount = json!({"minor_units": 100, "currency": "EUR"});
    let card_as_number: u64 = card.parse()?;
    let requests: Vec<(Method, String, Option<Value>, Option<&str>)> = vec![
        (
            Method::POST,
            "/wallets".into(),
            Some(json!({"currency": email})),
            None,
        ),
        (
            Method::POST,
            "/wallets".into(),
            Some(json!({"currency": "EUR", "wallet_id": format!("wal_{card}")})),
            None,
        ),
        (
            Method::POST,
            "/wallets".into(),
            Some(json!({"currency": "EUR", "email": email, "card": card})),
            None,
        ),
        (
            Method::POST,
            "/wallets".into(),
            Some(json!({email: fake_jwt})),
            None,
        ),
        (
            Method::POST,
            format!("/wallets/{wallet}/top-ups"),
            Some(
                json!({"funding_instrument": "fi_card", "amount": {"minor_units": card_as_number, "currency": "EUR"}}),
            ),
            Some("redaction-key-1"),
        ),
        (
            Method::POST,
            format!("/wallets/{wallet}/top-ups"),
            Some(json!({"amount": {"minor_units": card, "currency": fake_jwt}})),
            Some("redaction-key-2"),
        ),
        (
            Method::POST,
            format!("/wallets/{wallet}/top-ups"),
            Some(json!({"amount": amount})),
            Some(email.as_str()),
        ),
        (
            Method::POST,
            format!("/wallets/{wallet}/top-ups"),
            Some(json!({"amount": amount})),
            Some(fake_jwt.as_str()),
        ),
        (
            Method::POST,
            format!("/wallets/{wallet}/top-ups"),
            Some(json!({"amount": amount})),
            Some(card.as_str()),
        ),
        (
            Method::POST,
            format!("/wallets/{wallet}/top-ups"),
            Some(json!({"amount": amount, "funding_instrument": format!("fi_{email}")})),
            Some("redaction-key-3"),
        ),
        (
            Method::POST,
            format!("/wallets/{email}/top-ups"),
            Some(json!({"amount": amount})),
            None,
        ),
        (
            Method::POST,
            "/payments".into(),
            Some(json!({"from_wallet": wallet, "to_wallet": email, "amount": amount})),
            Some(card.as_str()),
        ),
        (
            Method::POST,
            "/payments".into(),
            Some(
                json!({"from_wallet": wallet, "to_wallet": format!("wal_{card}"), "amount": amount}),
            ),
            None,
        ),
        (
            Method::POST,
            "/payments".into(),
            Some(
                json!({"from_wallet": wallet, "to_wallet": "wal_x", "amount": amount, "priority": fake_jwt}),
            ),
            None,
        ),
        (
            Method::POST,
            "/payments".into(),
            Some(
                json!({"from_wallet": wallet, "to_wallet": "wal_x", "amount": amount, "reference": card}),
            ),
            None,
        ),
        (Method::GET, format!("/wallets/{card}"), None, None),
        (Method::GET, format!("/wallets/wal_{card}"), None, None),
        (Method::GET, format!("/payments/{fake_jwt}"), None, None),
        (Method::GET, format!("/payments/pay_{card}"), None, None),
        (Method::GET, format!("/payments?wallet={email}"), None, None),
        (
            Method::GET,
            format!("/wallets/{wallet}/transactions?cursor={fake_jwt}&limit={card}"),
            None,
            None,
        ),
        (Method::GET, format!("/{email}/{card}"), None, None),
    ];
    let mut refused = 0;
    for (method, path, body, key) in requests {
        let (status, answer) = stack.call(method.clone(), &path, body, key).await?;
        ensure!(
            (400..500).contains(&status),
            "{method} {path}: hostile input answered {status}: {answer}"
        );
        refused += 1;
    }
    // Headers: the planted values in headers the API does not read, and a raw body.
    let response = stack
        .http
        .post(format!("{}/payments", stack.api_url))
        .bearer_auth(&stack.token)
        .header("X-Customer-Email", email.as_str())
        .header("X-Card", card.as_str())
        .header("X-Forwarded-Authorization", format!("Bearer {fake_jwt}"))
        .header(
            "X-Amzn-Trace-Id",
            format!("Root=1-{card}-{email};Parent={fake_jwt}"),
        )
        .header("User-Agent", format!("{email} {card}"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"from_wallet\": \"{card}\", \"email\": \"{email}\""
        ))
        .send()
        .await?;
    ensure!(
        response.status().is_client_error(),
        "a cut body answered {}",
        response.status()
    );
    // A token whose subject is the e-mail address: whatever the API makes of it, it never logs it.
    let (status, _) = stack
        .call_with_token(
            Some(&secrets.tokens[1]),
            Method::GET,
            &format!("/wallets/{wallet}"),
            None,
            None,
        )
        .await?;
    ensure!(
        status == 403 || status == 401,
        "another caller read the wallet: {status}"
    );
    Ok(refused + 2)
}

/// EventBridge events with the secrets in their details; answers the marker the read-models
/// function logs once it has handled the last of them.
async fn hostile_events(stack: &Stack, secrets: &Secrets) -> anyhow::Result<String> {
    let Secrets {
        card,
        email,
        fake_jwt,
        ..
    } = secrets;
    let payment_id = format!("pay_{}", unique());
    let amount = json!({"minor_units": 100, "currency": "EUR"});
    let marker = format!("Hostile{}", unique());
    let events = [
        (
            "paysaga.payments",
            "PaymentRequested".to_owned(),
            json!({
                "version": 1, "event_id": email, "payment_id": payment_id,
                "occurred_at": "2026-11-26T12:00:00Z",
                "data": {"payment_id": payment_id, "from_wallet": format!("wal_{card}"), "to_wallet": email,
                         "amount": amount, "card": card, "token": fake_jwt},
            }),
        ),
        (
            "paysaga.payments",
            "PaymentRequested".to_owned(),
            json!({
                "version": 1, "event_id": format!("{payment_id}/1"), "payment_id": payment_id,
                "occurred_at": "2026-11-26T12:00:00Z",
                "data": {"payment_id": payment_id, "from_wallet": "wal_a", "to_wallet": "wal_b",
                         "amount": {"minor_units": card, "currency": email}},
            }),
        ),
        (
            "paysaga.payments",
            "PaymentCompleted".to_owned(),
            json!({
                "version": 1, "event_id": fake_jwt, "occurred_at": "2026-11-26T12:00:00Z",
                "data": {"payment_id": payment_id, "from_wallet": "wal_a", "to_wallet": "wal_b",
                         "amount": amount, "status": card, "email": email},
            }),
        ),
        (
            "paysaga.wallets",
            "FundsDeposited".to_owned(),
            json!({
                "version": card, "event_id": email, "occurred_at": "2026-11-26T12:00:00Z",
                "data": {"deposit_id": format!("dep_{card}"), "wallet_id": email, "amount": amount},
            }),
        ),
        (
            "paysaga.payments",
            format!("{marker}{card}"),
            json!({"version": 1, "email": email}),
        ),
        (
            "paysaga.wallets",
            marker.clone(),
            json!({"version": 1, "event_id": email, "card": card}),
        ),
    ];
    let entries: Vec<PutEventsRequestEntry> = events
        .iter()
        .map(|(source, detail_type, detail)| {
            PutEventsRequestEntry::builder()
                .event_bus_name(&stack.event_bus_name)
                .source(*source)
                .detail_type(detail_type)
                .detail(detail.to_string())
                .build()
        })
        .collect();
    let put = stack
        .eventbridge
        .put_events()
        .set_entries(Some(entries))
        .send()
        .await?;
    ensure!(put.failed_entry_count() == 0, "PutEvents failed: {put:?}");
    Ok(marker)
}

/// SQS bodies with the secrets, straight onto every consumer's queue; answers the message ids.
async fn hostile_messages(stack: &Stack, secrets: &Secrets) -> anyhow::Result<Vec<String>> {
    let Secrets {
        card,
        email,
        fake_jwt,
        ..
    } = secrets;
    let bodies = [
        format!("card {card} mail {email} token {fake_jwt}"),
        json!({"source": "paysaga.payments", "detail-type": "PaymentRequested",
               "detail": {"version": 1, "event_id": card, "occurred_at": email, "data": fake_jwt}})
        .to_string(),
        json!({"source": email, "detail-type": card, "detail": {"version": fake_jwt}}).to_string(),
    ];
    let mut ids = Vec::new();
    for queue in [
        "PaymentsQueue",
        "PaymentEventsQueue",
        "AuditTrailQueue",
        "ReadModelsQueue",
    ] {
        let url = &stack.wiring.queue(queue)?.url;
        for body in &bodies {
            let sent = stack
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await?;
            ids.push(sent.message_id().context("a message id")?.to_owned());
        }
    }
    Ok(ids)
}

/// Requests to the redrive function with the secrets in them.
async fn hostile_invocations(stack: &Stack, secrets: &Secrets) -> anyhow::Result<()> {
    for payload in [
        json!({"action": "show", "parked_id": secrets.email}),
        json!({"action": "redrive", "queue": secrets.card}),
        json!({"action": "replay", "parked_id": secrets.fake_jwt, "body": secrets.card}),
        json!({"action": secrets.email}),
    ] {
        let answer = stack
            .invoke("dlq-redrive", &payload, Duration::from_secs(30))
            .await?;
        ensure!(answer.is_err(), "{payload} was carried out: {answer:?}");
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn no_card_number_token_or_email_reaches_the_logs() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let hour = Duration::from_secs(3600);
    let email = format!("mallory.{}@example.com", unique());
    let secrets = Secrets {
        card: card_number(),
        fake_jwt: format!(
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5LXt9In0.{}",
            unique()
        ),
        tokens: vec![
            stack.token.clone(),
            stack.tokens.token(&email, false, hour)?,
            stack.tokens.token("paysaga-tests", true, hour)?,
        ],
        email,
    };
    let started = std::time::Instant::now();
    let requests = hostile_requests(&stack, &secrets).await?;
    let marker = hostile_events(&stack, &secrets).await?;
    let message_ids = hostile_messages(&stack, &secrets).await?;
    hostile_invocations(&stack, &secrets).await?;

    // Every function has handled what it was sent once its logs name each message (and the
    // read-models function the last event's detail-type, shown, not quoted, in its refusal).
    let logs = repo_root().join(".local/logs");
    eventually(
        Duration::from_secs(60),
        "every hostile message handled",
        || {
            let logs = logs.clone();
            let ids = message_ids.clone();
            let marker = marker.clone();
            async move {
                for id in ids.iter().chain(std::iter::once(&marker)) {
                    if !logged(&logs, id)? {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            }
        },
    )
    .await?;
    let (emulated, leaks): (Vec<String>, Vec<String>) = leaks(&logs, &secrets.all())?
        .into_iter()
        .partition(|leak| is_emulator_log(leak));
    let scanned = files(&logs)?.len();
    if !emulated.is_empty() {
        println!(
            "{} findings in the emulators' own logs (not the account's in AWS), e.g. {}",
            emulated.len(),
            emulated[0].chars().take(200).collect::<String>()
        );
    }
    println!(
        "{requests} requests, 6 events, {} messages, 4 invocations; {scanned} log files scanned after {:?}",
        message_ids.len(),
        started.elapsed()
    );
    ensure!(
        leaks.is_empty(),
        "{} leaks in the logs:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    Ok(())
}

#[test]
fn a_trace_headers_segment_id_is_no_card_number_but_the_same_digits_elsewhere_are() {
    let only_card = |line: &str| -> Vec<bool> {
        redact::findings(line)
            .iter()
            .filter(|finding| finding.kind == redact::Sensitive::CardNumber)
            .map(|finding| is_segment_id(line, finding))
            .collect()
    };
    // The segment id of the run that failed: 16 hex digits, all decimal, Luhn-valid.
    let traced = r#"xrayTraceId="Root=1-6b156b94-3ca3716383084606a17b8d1c;Parent=8308460781025083;Sampled=0""#;
    assert_eq!(only_card(traced), [true]);
    assert_eq!(only_card("a body with 8308460781025083 in it"), [false]);
    assert_eq!(only_card("Root=1-8308460781025083-x"), [false]);
}
