//! Property tests: hostile EventBridge events and details through the contracts' parser
//! ([`DomainEvent::from_eventbridge`], [`DomainEvent::parse`]). It never panics; what it refuses
//! it refuses with a [`ContractViolation`] whose message is not empty and quotes no secret; what
//! it accepts honours the contract (it reads back the same after writing).

use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
use paysaga_domain::payment::{Flow, FlowKind};
use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use paysaga_domain::events::ContractViolation;
use paysaga_domain::{DomainEvent, Money, PaymentRequest, Priority, WalletId};
use paysaga_hostile::{body, fixture_events, hostile_string, leaks, mutated};
use proptest::prelude::*;
use serde_json::Value;

static EVENTS: LazyLock<Vec<Value>> = LazyLock::new(fixture_events);

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig::with_cases(cases)
}

/// A refusal: a clear message, no secret in it.
fn check_refusal(violation: &ContractViolation) -> Result<(), TestCaseError> {
    let message = violation.to_string();
    prop_assert!(message.len() > 10, "unclear refusal: {message:?}");
    let leaked = leaks([message.as_str()]);
    prop_assert!(leaked.is_empty(), "the refusal quotes input: {leaked:?}");
    Ok(())
}

/// An accepted event honours the contract: written again, it reads back the same.
fn check_accepted(event: &DomainEvent) -> Result<(), TestCaseError> {
    let again = DomainEvent::parse(event.source(), event.detail_type(), &event.detail_json());
    prop_assert_eq!(again.as_ref(), Ok(event));
    prop_assert!(leaks([event.event_id()]).is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(config(2_000))]

    /// Whole events: mutations of valid ones, cut texts, deep nesting, random bytes.
    #[test]
    fn hostile_events_are_refused_with_a_reason_or_honour_the_contract(
        text in prop::sample::select(EVENTS.clone()).prop_flat_map(body)
    ) {
        let text = String::from_utf8_lossy(&text);
        match DomainEvent::from_eventbridge(&text) {
            Ok(event) => check_accepted(&event)?,
            Err(violation) => check_refusal(&violation)?,
        }
    }
}

proptest! {
    #![proptest_config(config(1_000))]

    /// A detail under any `source` and `detail-type`, known or not.
    #[test]
    fn hostile_details_under_any_type_are_refused_with_a_reason_or_honour_the_contract(
        event in prop::sample::select(EVENTS.clone()),
        source in prop_oneof![Just(None), hostile_string().prop_map(Some)],
        detail_type in prop_oneof![Just(None), hostile_string().prop_map(Some)],
        detail in prop::sample::select(EVENTS.clone())
            .prop_flat_map(|event| mutated(event["detail"].clone())),
    ) {
        let source = source.unwrap_or_else(|| event["source"].as_str().unwrap_or_default().to_owned());
        let detail_type = detail_type
            .unwrap_or_else(|| event["detail-type"].as_str().unwrap_or_default().to_owned());
        match DomainEvent::parse(&source, &detail_type, &detail.text()) {
            Ok(event) => check_accepted(&event)?,
            Err(violation) => check_refusal(&violation)?,
        }
    }
}

/// A valid wallet id: `wal_` and 1 to 64 id characters.
fn wallet_id() -> impl Strategy<Value = WalletId> {
    prop::collection::vec(
        prop::sample::select(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
                .chars()
                .collect::<Vec<_>>(),
        ),
        1..=64,
    )
    .prop_filter_map("ids hold no card number", |chars| {
        WalletId::parse(&format!("wal_{}", chars.into_iter().collect::<String>())).ok()
    })
}

proptest! {
    #![proptest_config(config(500))]

    /// Every valid payment request is accepted, whatever its amount, currency and wallets.
    /// Of every flow: a transfer, a top-up (`from` read as the instrument's name) or a payout
    /// (`to` read as the destination's).
    #[test]
    fn valid_payment_requests_are_accepted(
        from in wallet_id(),
        to in wallet_id(),
        kind in prop::sample::select(FlowKind::ALL.to_vec()),
        minor_units in 1..=paysaga_domain::money::MAX_MINOR_UNITS,
        currency in prop::sample::select(vec!["EUR", "USD", "GBP", "JPY", "KWD", "CHF"]),
        urgent in any::<bool>(),
        seconds in 0i64..4_000_000_000,
    ) {
        prop_assume!(from != to);
        let amount = Money::new(minor_units, currency.parse().expect("a currency"))
            .expect("within the maximum");
        let priority = if urgent { Priority::Urgent } else { Priority::Ordinary };
        let flow = match kind {
            FlowKind::Transfer => Flow::Transfer { from_wallet: from, to_wallet: to },
            FlowKind::TopUp => Flow::TopUp {
                funding_instrument: FundingInstrumentId::parse(&format!("fi_{}", &from.as_str()[4..]))
                    .expect("a wallet id's tail is an id's tail"),
                to_wallet: to,
            },
            FlowKind::Payout => Flow::Payout {
                from_wallet: from,
                destination: PayoutDestinationId::parse(&format!("dst_{}", &to.as_str()[4..]))
                    .expect("a wallet id's tail is an id's tail"),
            },
        };
        let request = PaymentRequest::submitted(flow, amount, None)
            .expect("a valid request")
            .with_priority(priority);
        let at = Utc.timestamp_opt(seconds, 0).single().expect("a time");
        let event = DomainEvent::payment_requested(&request, at);
        let parsed = DomainEvent::parse(event.source(), event.detail_type(), &event.detail_json());
        prop_assert_eq!(parsed, Ok(event));
    }
}
