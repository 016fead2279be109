//! The event contracts as files: the JSON Schemas in `events/schemas/` are what the Rust types
//! generate (regenerate with `make schemas`), the sample events in `events/` honour them, and
//! the rules in `infra/template.yaml` name only events the contracts define.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::Utc;
use paysaga_domain::events::{
    ContractSchema, ContractViolation, DomainEvent, EVENT_TYPES, FundsDeposited, contract_schemas,
};
use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
use paysaga_domain::payment::Flow;
use paysaga_domain::{
    Currency, DepositId, FailureReason, Money, Payment, PaymentId, PaymentLogEntry, PaymentRequest,
    PaymentStatus, PaymentStep, WalletId,
};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the domain crate sits in shared/domain")
        .to_path_buf()
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Regenerates `events/schemas/` from the Rust types: `make schemas`.
#[test]
#[ignore = "writes events/schemas/; run by `make schemas`"]
fn write_schemas() {
    let dir = repo_root().join("events/schemas");
    fs::create_dir_all(&dir).expect("events/schemas/ can be created");
    for entry in fs::read_dir(&dir).expect("events/schemas/ is readable") {
        let path = entry.expect("events/schemas/ is readable").path();
        if path.extension().is_some_and(|ext| ext == "json") {
            fs::remove_file(&path).expect("an old schema can be removed");
        }
    }
    for contract in contract_schemas() {
        let path = repo_root().join(contract.path());
        fs::write(&path, contract.file_text()).expect("a schema can be written");
        println!("wrote {}", path.display());
    }
}

#[test]
fn checked_in_schemas_are_what_the_rust_types_generate() {
    let mut drift = Vec::new();
    let contracts = contract_schemas();
    for contract in &contracts {
        let path = repo_root().join(contract.path());
        match fs::read_to_string(&path) {
            Ok(text) if text == contract.file_text() => {}
            Ok(_) => drift.push(format!("{} differs from its Rust types", contract.path())),
            Err(error) => drift.push(format!("{} cannot be read: {error}", contract.path())),
        }
    }
    let expected: Vec<String> = contracts.iter().map(ContractSchema::path).collect();
    for entry in fs::read_dir(repo_root().join("events/schemas")).expect("events/schemas/") {
        let name = entry.expect("events/schemas/").file_name();
        let path = format!("events/schemas/{}", name.to_string_lossy());
        if !expected.contains(&path) {
            drift.push(format!("{path} is no event type's schema"));
        }
    }
    assert!(
        drift.is_empty(),
        "the event schemas drifted from shared/domain/src/events.rs:\n  {}\n\
         regenerate them with `make schemas` and commit events/schemas/",
        drift.join("\n  ")
    );
}

fn schema_of(detail_type: &str) -> jsonschema::Validator {
    let path = repo_root().join(format!("events/schemas/{detail_type}.json"));
    let schema = read_json(&path);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks one event (`source`, `detail-type`, `detail`) against its checked-in schema and the
/// Rust parser, which must agree; returns whether it honours its contract.
fn honours_contract(source: &str, detail_type: &str, detail: &Value) -> bool {
    let by_schema = schema_of(detail_type)
        .validate(detail)
        .map_err(|error| error.to_string());
    let by_rust = DomainEvent::parse(source, detail_type, &detail.to_string());
    assert_eq!(
        by_schema.is_ok(),
        by_rust.is_ok(),
        "the schema ({by_schema:?}) and the Rust types ({by_rust:?}) disagree on {detail}"
    );
    by_schema.is_ok()
}

/// A paysaga event found in a fixture: (file, source, detail-type, detail).
type FixtureEvent = (String, String, String, Value);

/// The paysaga events in the fixtures under `events/`.
fn fixture_events() -> Vec<FixtureEvent> {
    fn push(
        events: &mut Vec<FixtureEvent>,
        file: &Path,
        event: &Value,
        (source, detail_type, detail): (&str, &str, &str),
    ) {
        let source = event[source].as_str().unwrap_or_default();
        if !source.starts_with("paysaga.") {
            return;
        }
        let detail = match &event[detail] {
            Value::String(text) => serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("{}: detail: {e}", file.display())),
            other => other.clone(),
        };
        let detail_type = event[detail_type].as_str().unwrap_or_default().to_owned();
        events.push((
            file.display().to_string(),
            source.to_owned(),
            detail_type,
            detail,
        ));
    }
    let mut events = Vec::new();
    for dir in ["events/put-events", "events/lambda"] {
        let mut files: Vec<PathBuf> = fs::read_dir(repo_root().join(dir))
            .expect("the fixtures' directory is readable")
            .map(|entry| entry.expect("a fixture").path())
            .collect();
        files.sort();
        for file in files {
            let json = read_json(&file);
            for entry in json.as_array().into_iter().flatten() {
                // put-events entries
                push(
                    &mut events,
                    &file,
                    entry,
                    ("Source", "DetailType", "Detail"),
                );
            }
            // an EventBridge event
            push(
                &mut events,
                &file,
                &json,
                ("source", "detail-type", "detail"),
            );
            for record in json["Records"].as_array().into_iter().flatten() {
                // SQS records whose bodies are EventBridge events (some are broken on purpose)
                let body = record["body"].as_str().unwrap_or_default();
                if let Ok(event) = serde_json::from_str::<Value>(body) {
                    push(
                        &mut events,
                        &file,
                        &event,
                        ("source", "detail-type", "detail"),
                    );
                }
            }
        }
    }
    events
}

#[test]
fn the_sample_events_honour_their_schemas() {
    let events = fixture_events();
    assert!(events.len() >= 4, "too few sample events found: {events:?}");
    for (file, source, detail_type, detail) in events {
        assert!(
            honours_contract(&source, &detail_type, &detail),
            "{file}: {detail_type} breaks its schema"
        );
    }
}

fn wallet(id: &str) -> WalletId {
    WalletId::parse(id).expect("a valid wallet id")
}

fn eur(minor_units: u64) -> Money {
    let currency: Currency = "EUR".parse().expect("EUR is a currency");
    Money::new(minor_units, currency).expect("a small amount")
}

fn payment_requested() -> DomainEvent {
    let request = PaymentRequest::new(
        PaymentId::parse("pay_contract_1").expect("a valid payment id"),
        wallet("wal_alice"),
        wallet("wal_bob"),
        eur(1_250),
    )
    .expect("a valid request");
    DomainEvent::payment_requested(&request, Utc::now())
}

fn detail_of(event: &DomainEvent) -> Value {
    serde_json::from_str(&event.detail_json()).expect("a detail is JSON")
}

#[test]
fn the_events_paysaga_writes_honour_their_schemas_and_carry_their_ids() {
    let deposit = DomainEvent::funds_deposited(
        FundsDeposited {
            deposit_id: DepositId::generate(),
            wallet_id: wallet("wal_alice"),
            amount: eur(10_000),
            issued_by: None,
            reason: None,
        },
        Utc::now(),
    );
    let requested = detail_of(&payment_requested());
    assert!(honours_contract(
        "paysaga.payments",
        "PaymentRequested",
        &requested
    ));
    assert_eq!(requested["payment_id"], "pay_contract_1");
    assert_eq!(requested["wallet_ids"], json!(["wal_alice", "wal_bob"]));

    let deposited = detail_of(&deposit);
    assert!(honours_contract(
        deposit.source(),
        deposit.detail_type(),
        &deposited
    ));
    assert_eq!(deposited["wallet_ids"], json!(["wal_alice"]));
    assert!(deposited.get("payment_id").is_none(), "{deposited}");
}

/// A top-up and a payout, each with its request and both outcomes, as the saga announces them.
fn top_up_and_payout_events() -> Vec<DomainEvent> {
    let flows = [
        Flow::TopUp {
            funding_instrument: FundingInstrumentId::parse("fi_card_1").expect("an instrument"),
            to_wallet: wallet("wal_alice"),
        },
        Flow::Payout {
            from_wallet: wallet("wal_alice"),
            destination: PayoutDestinationId::parse("dst_bank_1").expect("a destination"),
        },
    ];
    let mut events = Vec::new();
    for (n, flow) in flows.into_iter().enumerate() {
        let id = PaymentId::parse(&format!("pay_flow_{n}")).expect("a payment id");
        let request = PaymentRequest::of_flow(id, flow, eur(900)).expect("a valid request");
        events.push(DomainEvent::payment_requested(&request, Utc::now()));
        let log = [PaymentLogEntry::requested(request, Utc::now())];
        let pending = Payment::from_log(&log).expect("a log of one request");
        let step = PaymentStep::Failed {
            reason: FailureReason::ProcessorUnavailable,
        };
        let failed = pending
            .after(&pending.next_entry(step, Utc::now()))
            .expect("a failure before anything was reserved");
        events.extend(DomainEvent::payment_outcome(&failed));
        let mut completed = pending.clone();
        completed.status = PaymentStatus::Completed;
        events.extend(DomainEvent::payment_outcome(&completed));
    }
    events
}

#[test]
fn each_flow_has_its_own_types_and_a_detail_of_another_flow_breaks_them() {
    let events = top_up_and_payout_events();
    let types: Vec<&str> = events.iter().map(DomainEvent::detail_type).collect();
    assert_eq!(
        types,
        [
            "TopUpRequested",
            "TopUpFailed",
            "TopUpCompleted",
            "PayoutRequested",
            "PayoutFailed",
            "PayoutCompleted"
        ]
    );
    for event in &events {
        let detail = detail_of(event);
        assert!(
            honours_contract(event.source(), event.detail_type(), &detail),
            "{}: {detail}",
            event.detail_type()
        );
        assert_eq!(detail["wallet_ids"], json!(["wal_alice"]));
        // The same detail under another flow's type honours neither that type's schema nor
        // the Rust types: a rule matching one flow's types never sees another's payments.
        let other_type = if event.detail_type().starts_with("TopUp") {
            event.detail_type().replace("TopUp", "Payment")
        } else {
            event.detail_type().replace("Payout", "TopUp")
        };
        assert!(
            !honours_contract(event.source(), &other_type, &detail),
            "{} as {other_type}",
            event.detail_type()
        );
    }
    // A transfer naming another flow's party too is no transfer.
    let mut transfer = detail_of(&payment_requested());
    transfer["data"]["destination"] = json!("dst_bank_1");
    assert!(!honours_contract(
        "paysaga.payments",
        "PaymentRequested",
        &transfer
    ));
}

#[test]
fn additive_fields_are_accepted_and_a_float_amount_is_not() {
    let mut detail = detail_of(&payment_requested());
    detail["trace_id"] = json!("abc");
    detail["data"]["note"] = json!("for lunch");
    assert!(honours_contract(
        "paysaga.payments",
        "PaymentRequested",
        &detail
    ));

    detail["data"]["amount"]["minor_units"] = json!(12.5);
    assert!(!honours_contract(
        "paysaga.payments",
        "PaymentRequested",
        &detail
    ));
}

#[test]
fn an_unknown_version_is_a_contract_violation_and_breaks_the_schema() {
    let mut detail = detail_of(&payment_requested());
    detail["version"] = json!(2);
    assert_eq!(
        DomainEvent::parse("paysaga.payments", "PaymentRequested", &detail.to_string()),
        Err(ContractViolation::UnsupportedVersion {
            detail_type: "PaymentRequested".into(),
            version: Some(2)
        })
    );
    assert!(!schema_of("PaymentRequested").is_valid(&detail));
}

#[test]
fn envelope_ids_that_are_not_the_datas_break_the_contract() {
    let detail = detail_of(&payment_requested());
    let mut other_payment = detail.clone();
    other_payment["payment_id"] = json!("pay_someone_else");
    let mut other_wallets = detail.clone();
    other_wallets["wallet_ids"] = json!(["wal_bob", "wal_alice"]);
    for broken in [other_payment, other_wallets] {
        let parsed =
            DomainEvent::parse("paysaga.payments", "PaymentRequested", &broken.to_string());
        assert!(
            matches!(parsed, Err(ContractViolation::InvalidDetail { .. })),
            "{parsed:?}"
        );
    }
    // Written before the envelope carried them: still version 1, still read.
    let mut without_ids = detail;
    let fields = without_ids.as_object_mut().expect("a detail is an object");
    fields.remove("wallet_ids");
    fields.remove("payment_id");
    assert!(honours_contract(
        "paysaga.payments",
        "PaymentRequested",
        &without_ids
    ));
}

/// A rule's `source` or `detail-type` list in an event pattern: (rule, field, values).
type PatternField = (String, String, Vec<String>);

/// The `source` and `detail-type` lists of the event patterns in `infra/template.yaml`. The
/// patterns are written in the template's one style: `field: [a, b]`, or `field:` followed by
/// `- a` lines; a rule is a resource (a key indented by two spaces).
fn rule_patterns(template: &str) -> Vec<PatternField> {
    let mut patterns = Vec::new();
    let mut rule = String::new();
    let mut lines = template.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if line.starts_with("  ") && !line.starts_with("   ") && trimmed.ends_with(':') {
            rule = trimmed.trim_end_matches(':').to_owned();
        }
        for field in ["source", "detail-type"] {
            let Some(rest) = trimmed.strip_prefix(&format!("{field}:")) else {
                continue;
            };
            let rest = rest.trim();
            let values: Vec<String> = if rest.is_empty() {
                let mut values = Vec::new();
                while let Some(item) = lines.peek().and_then(|l| l.trim().strip_prefix("- ")) {
                    values.push(item.trim().to_owned());
                    lines.next();
                }
                values
            } else {
                rest.trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(|value| value.trim().trim_matches('"').to_owned())
                    .collect()
            };
            patterns.push((rule.clone(), field.to_owned(), values));
        }
    }
    patterns
}

/// What is wrong with the rules' patterns, measured against [`EVENT_TYPES`].
fn unknown_events_in(patterns: &[PatternField]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (rule, field, values) in patterns {
        if field != "detail-type" {
            continue;
        }
        let sources: Vec<&String> = patterns
            .iter()
            .filter(|(r, f, _)| r == rule && f == "source")
            .flat_map(|(_, _, values)| values)
            .collect();
        for detail_type in values {
            let defined = EVENT_TYPES
                .iter()
                .any(|(s, d)| d == detail_type && sources.iter().any(|source| source == s));
            if !defined {
                wrong.push(format!(
                    "rule {rule} matches detail-type {detail_type:?} from {sources:?}, \
                     which no event contract defines"
                ));
            }
        }
    }
    wrong
}

#[test]
fn the_templates_rules_name_only_events_the_contracts_define() {
    let template = fs::read_to_string(repo_root().join("infra/template.yaml"))
        .expect("infra/template.yaml is readable");
    let patterns = rule_patterns(&template);
    let detail_types = patterns.iter().filter(|(_, f, _)| f == "detail-type");
    assert!(
        detail_types.count() >= 2,
        "no rule patterns found: {patterns:?}"
    );
    let wrong = unknown_events_in(&patterns);
    assert!(
        wrong.is_empty(),
        "infra/template.yaml:\n  {}\n(the contracts: shared/domain/src/events.rs, EVENT_TYPES)",
        wrong.join("\n  ")
    );
}

#[test]
fn a_rule_naming_an_undefined_event_is_caught() {
    let template = "  BadRule:\n    Properties:\n      EventPattern:\n        source: [paysaga.payments]\n        detail-type:\n          - PaymentCompleted\n          - PaymentExploded\n          - FundsDeposited\n";
    let patterns = rule_patterns(template);
    assert_eq!(patterns.len(), 2, "{patterns:?}");
    let wrong = unknown_events_in(&patterns);
    assert_eq!(wrong.len(), 2, "{wrong:?}");
    assert!(wrong[0].contains("PaymentExploded"), "{wrong:?}");
    // FundsDeposited is defined, but comes from paysaga.wallets
    assert!(wrong[1].contains("FundsDeposited"), "{wrong:?}");
}
