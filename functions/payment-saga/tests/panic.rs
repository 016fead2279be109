//! A payment whose handling panics fails alone: its message is the only one reported (or, on its
//! last delivery, given up to the DLQ as a bug), its batch-mates complete and move their money
//! once, never compensated for its sake, and the panic's message, which quotes what it was
//! handling, reaches no log and no failure record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use lambda_toolkit::testing::TestConsumer;
use payment_saga::PaymentSaga;
use paysaga_domain::ports::{PaymentLog, PaymentProcessor, ProcessorError, WalletStore};
use paysaga_domain::test_support::lambda_event;
use paysaga_domain::{ChargeId, PaymentId, PaymentRequest, PaymentStatus, WalletId};
use paysaga_hostile::harness::{MAX_RECEIVE_COUNT, run_logged};
use paysaga_hostile::{EMAIL, leaks, sqs_event};
use paysaga_services::fakes::{InMemoryLedger, InMemoryProcessor, StaticConsent};
use paysaga_services::payments::payment;
use paysaga_services::saga::SagaSettings;

/// The payment whose charge panics, and the batch it comes in: four payments of 10.00 EUR from
/// alice to bob, messages `m-1` to `m-4`.
const PANICKING: &str = "pay_panic_0002";
const PAYMENTS: [&str; 4] = [
    "pay_panic_0001",
    PANICKING,
    "pay_panic_0003",
    "pay_panic_0004",
];
const AMOUNT: u64 = 1_000;
const ALICE_HOLDS: u64 = 10_000;

/// The processor, but a charge of [`PANICKING`] captures the money and then panics (as a bug
/// reading the processor's answer would), with a message quoting an e-mail address, until the
/// bug is fixed ([`PanicsOnOnePayment::fix`]).
struct PanicsOnOnePayment {
    inner: InMemoryProcessor,
    fixed: AtomicBool,
}

impl PanicsOnOnePayment {
    fn fix(&self) {
        self.fixed.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl PaymentProcessor for PanicsOnOnePayment {
    async fn execute(&self, request: &PaymentRequest) -> Result<ChargeId, ProcessorError> {
        let charged = self.inner.execute(request).await;
        if request.payment_id().as_str() == PANICKING && !self.fixed.load(Ordering::Relaxed) {
            panic!("unreadable answer to the charge for {EMAIL}: {charged:?}");
        }
        charged
    }

    async fn reverse(&self, request: &PaymentRequest) -> Result<(), ProcessorError> {
        self.inner.reverse(request).await
    }
}

struct TestSaga {
    saga: TestConsumer<PaymentSaga>,
    ledger: Arc<InMemoryLedger>,
    processor: Arc<PanicsOnOnePayment>,
}

async fn saga() -> TestSaga {
    let ledger = Arc::new(
        InMemoryLedger::euro_wallets(&[("wal_demo_alice", ALICE_HOLDS), ("wal_demo_bob", 0)]).await,
    );
    let processor = Arc::new(PanicsOnOnePayment {
        inner: InMemoryProcessor::default(),
        fixed: AtomicBool::new(false),
    });
    let handler = PaymentSaga {
        payments: ledger.clone(),
        wallets: ledger.clone(),
        consent: Arc::new(StaticConsent::demo()),
        processor: processor.clone(),
        settings: SagaSettings::default(),
        max_receive_count: MAX_RECEIVE_COUNT,
        circuit: None,
    };
    TestSaga {
        saga: TestConsumer::new(handler, MAX_RECEIVE_COUNT),
        ledger,
        processor,
    }
}

/// `PaymentRequested` events of `payment_ids` (the fixture's, renamed), in messages `m-<n>`,
/// each delivered `receive_count` times.
fn requests(payment_ids: &[&str], receive_count: u32) -> SqsEvent {
    let fixture: serde_json::Value = lambda_event("sqs-payment-requested.json");
    let body = fixture["Records"][0]["body"].as_str().expect("a body");
    let bodies: Vec<String> = payment_ids
        .iter()
        .map(|id| {
            let mut event: serde_json::Value = serde_json::from_str(body).expect("an event");
            let detail = &mut event["detail"];
            detail["payment_id"] = (*id).into();
            detail["event_id"] = format!("{id}/1").into();
            detail["data"]["payment_id"] = (*id).into();
            detail["data"]["amount"]["minor_units"] = AMOUNT.into();
            event.to_string()
        })
        .collect();
    let mut event = sqs_event(&bodies, receive_count);
    for (index, record) in event["Records"]
        .as_array_mut()
        .expect("records")
        .iter_mut()
        .enumerate()
    {
        record["messageId"] = format!("m-{}", index + 1).into();
    }
    serde_json::from_value(event).expect("an SqsEvent")
}

async fn deliver(test: &TestSaga, event: SqsEvent) -> Vec<String> {
    test.saga.deliver(event).await
}

async fn status(test: &TestSaga, id: &str) -> PaymentStatus {
    let id = PaymentId::parse(id).expect("id");
    payment(test.ledger.as_ref() as &dyn PaymentLog, &id)
        .await
        .expect("read")
        .expect("exists")
        .status
}

/// Each wallet's (available, reserved).
async fn balances(test: &TestSaga) -> [(u64, u64); 2] {
    let mut balances = [(0, 0); 2];
    for (balance, id) in balances.iter_mut().zip(["wal_demo_alice", "wal_demo_bob"]) {
        let wallet = test
            .ledger
            .wallet(&WalletId::parse(id).expect("id"))
            .await
            .expect("read")
            .expect("exists");
        *balance = (
            wallet.available().minor_units(),
            wallet.reserved().minor_units(),
        );
    }
    balances
}

/// The payments announced, by event type, in order of payment id.
async fn announced(test: &TestSaga) -> Vec<(String, &'static str)> {
    let mut announced: Vec<(String, &'static str)> = test
        .ledger
        .payment_events()
        .await
        .iter()
        .map(|event| {
            let id = event.payment_id().expect("a payment's event").to_string();
            (id, event.detail_type())
        })
        .collect();
    announced.sort();
    announced
}

/// The documents' values of `name`, added up.
fn metric(test: &TestSaga, name: &str) -> f64 {
    let documents = test.saga.metrics.documents().expect("JSON lines");
    documents
        .iter()
        .filter_map(|document| document[name].as_f64())
        .sum()
}

#[test]
fn a_panicking_payment_fails_alone_and_its_batch_mates_complete_once() {
    let ((test, failed), logs) = run_logged(async {
        let test = saga().await;
        let failed = deliver(&test, requests(&PAYMENTS, 1)).await;
        (test, failed)
    });
    assert_eq!(failed, ["m-2"], "only the panicking payment's message");

    let ((statuses, balances), _) = run_logged(async {
        let mut statuses = Vec::new();
        for id in PAYMENTS {
            statuses.push(status(&test, id).await);
        }
        (statuses, balances(&test).await)
    });
    use PaymentStatus::{Completed, FundsReserved};
    assert_eq!(statuses, [Completed, FundsReserved, Completed, Completed]);
    assert_eq!(
        balances,
        [(ALICE_HOLDS - 4 * AMOUNT, AMOUNT), (3 * AMOUNT, 0)],
        "three payments moved their money once; the fourth holds its reservation"
    );
    let completed: Vec<(String, &str)> = ["pay_panic_0001", "pay_panic_0003", "pay_panic_0004"]
        .into_iter()
        .map(|id| (id.to_owned(), "PaymentCompleted"))
        .collect();
    let (announced_payments, _) = run_logged(announced(&test));
    assert_eq!(announced_payments, completed, "each announced once");
    assert_eq!(metric(&test, "MessagesPanicked"), 1.0);
    assert_eq!(metric(&test, "MessagesFailed"), 1.0);
    assert_eq!(metric(&test, "PaymentsCompleted"), 3.0);

    let panicked: Vec<serde_json::Value> = logs
        .iter()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .filter(|line: &serde_json::Value| line["level"] == "ERROR")
        .collect();
    assert_eq!(panicked.len(), 1, "one error line, the panic's: {logs:#?}");
    assert_eq!(panicked[0]["fields"]["message_id"], "m-2");
    let panic = panicked[0]["fields"]["panic"].as_str().expect("the panic");
    assert!(
        panic.starts_with("panicked at functions/payment-saga/tests/panic.rs:"),
        "the reason names where it panicked: {panic}"
    );
    let leaked = leaks(logs.iter().map(String::as_str));
    assert!(
        leaked.is_empty(),
        "the panic's message was logged: {leaked:#?}"
    );
}

#[test]
fn on_its_last_delivery_a_panicking_payment_is_given_up_as_a_bug_and_completes_once_fixed() {
    let ((test, failed), logs) = run_logged(async {
        let test = saga().await;
        let failed = deliver(&test, requests(&PAYMENTS, MAX_RECEIVE_COUNT)).await;
        (test, failed)
    });
    assert!(failed.is_empty(), "given up on, to the DLQ: {failed:?}");
    let dead_letters = test.saga.dead_letters.records();
    assert_eq!(dead_letters.len(), 1, "{dead_letters:#?}");
    let (message_id, record) = &dead_letters[0];
    assert_eq!(message_id, "m-2");
    assert_eq!(
        record.kind, "permanent",
        "a bug: no retry of this code helps"
    );
    assert!(
        record
            .reason
            .starts_with("the handler panicked at functions/payment-saga/tests/panic.rs:"),
        "{}",
        record.reason
    );
    assert!(
        leaks([record.reason.as_str()]).is_empty(),
        "{}",
        record.reason
    );
    assert!(
        leaks(logs.iter().map(String::as_str)).is_empty(),
        "{logs:#?}"
    );

    // Its batch-mates' last delivery completed them: none compensated for the panic's sake.
    let (statuses, _) = run_logged(async {
        let mut statuses = Vec::new();
        for id in PAYMENTS {
            statuses.push(status(&test, id).await);
        }
        statuses
    });
    use PaymentStatus::{Completed, FundsReserved};
    assert_eq!(statuses, [Completed, FundsReserved, Completed, Completed]);
    assert_eq!(metric(&test, "PaymentsCompensated"), 0.0);

    // The fix is deployed and the parked message replayed (a new message, delivered once): the
    // payment resumes from its log, and its charge, captured before the panic, is not repeated.
    test.processor.fix();
    let (failed, _) = run_logged(deliver(&test, requests(&[PANICKING], 1)));
    assert!(failed.is_empty(), "{failed:?}");
    let (balances, _) = run_logged(balances(&test));
    assert_eq!(
        balances,
        [(ALICE_HOLDS - 4 * AMOUNT, 0), (4 * AMOUNT, 0)],
        "every payment moved its money once"
    );
    let (announced_payments, _) = run_logged(announced(&test));
    assert_eq!(announced_payments.len(), 4, "each payment announced once");
}
