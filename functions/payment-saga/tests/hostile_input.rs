//! Property tests: hostile SQS messages through the saga's handler, against the in-memory
//! ledger and processor. Whatever arrives, the handler answers the batch, gives up on a message
//! only with a reason, logs no card number, token or e-mail address, and conserves money: the
//! wallets hold together what they held before.

use std::sync::Arc;

use lambda_toolkit::testing::TestConsumer;
use payment_saga::PaymentSaga;
use paysaga_hostile::harness::{MAX_RECEIVE_COUNT, batch, bodies, check_batch, run_logged};
use paysaga_hostile::{fixture_events, leaks};
use paysaga_services::fakes::{InMemoryLedger, InMemoryProcessor, StaticConsent};
use paysaga_services::saga::SagaSettings;
use proptest::prelude::*;

struct TestSaga {
    saga: TestConsumer<PaymentSaga>,
    ledger: Arc<InMemoryLedger>,
}

/// The fixtures' wallets, alice holding 10,000.00 EUR.
async fn saga() -> TestSaga {
    let ledger = Arc::new(
        InMemoryLedger::euro_wallets(&[("wal_demo_alice", 1_000_000), ("wal_demo_bob", 0)]).await,
    );
    let handler = PaymentSaga {
        payments: ledger.clone(),
        wallets: ledger.clone(),
        consent: Arc::new(StaticConsent::demo()),
        processor: Arc::new(InMemoryProcessor::default()),
        settings: SagaSettings::default(),
        max_receive_count: MAX_RECEIVE_COUNT,
        circuit: None,
    };
    TestSaga {
        saga: TestConsumer::new(handler, MAX_RECEIVE_COUNT),
        ledger,
    }
}

fn total(ledger: &InMemoryLedger) -> u64 {
    ledger
        .wallets()
        .iter()
        .map(|wallet| wallet.available().minor_units() + wallet.reserved().minor_units())
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn hostile_messages_are_answered_with_reasons_no_leaks_and_money_conserved(
        bodies in bodies(fixture_events()),
        receive_count in 1..=MAX_RECEIVE_COUNT,
    ) {
        let size = bodies.len();
        let (outcome, logs) = run_logged(async {
            let test = saga().await;
            let before = total(&test.ledger);
            let answer = test.saga.consumer.handle(batch(&bodies, receive_count)).await;
            (test, before, answer)
        });
        let (test, before, answer) = outcome;
        check_batch(&answer, size, &test.saga.dead_letters, &logs)?;
        prop_assert_eq!(total(&test.ledger), before, "money appeared or vanished");
        let metrics: Vec<String> = test.saga.metrics.documents().expect("EMF documents")
            .iter().map(ToString::to_string).collect();
        prop_assert!(leaks(metrics.iter().map(String::as_str)).is_empty(), "metrics: {metrics:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Valid requests still go through: the payment completes and moves exactly its amount.
    #[test]
    fn valid_requests_complete_and_move_exactly_their_amount(
        minor_units in 1u64..=1_000_000,
        id in "[a-z0-9]{1,12}".prop_map(|suffix| format!("pay_hostile_{suffix}")),
    ) {
        let mut event = paysaga_hostile::fixture_events_of("PaymentRequested")[0].clone();
        event["detail"]["event_id"] = format!("{id}/1").into();
        event["detail"]["payment_id"] = id.clone().into();
        event["detail"]["data"]["payment_id"] = id.into();
        event["detail"]["data"]["amount"]["minor_units"] = minor_units.into();
        let (outcome, logs) = run_logged(async {
            let test = saga().await;
            let answer = test.saga.consumer.handle(batch(&[event.to_string().into_bytes()], 1)).await;
            (test, answer)
        });
        let (test, answer) = outcome;
        check_batch(&answer, 1, &test.saga.dead_letters, &logs)?;
        prop_assert_eq!(answer.map(|response| response.batch_item_failures.len()).ok(), Some(0));
        let balances: Vec<u64> = test.ledger.wallets().iter()
            .map(|wallet| wallet.available().minor_units()).collect();
        prop_assert!(balances.contains(&(1_000_000 - minor_units)), "{balances:?}");
        prop_assert!(balances.contains(&minor_units), "{balances:?}");
    }
}
