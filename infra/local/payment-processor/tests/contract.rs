//! The contract, end to end: paysaga's `HttpPaymentProcessor` (and its circuit breaker)
//! against this fake over real HTTP on 127.0.0.1.

use std::time::Duration;

use payment_processor::{FakeProcessor, router};
use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
use paysaga_domain::payment::Flow;
use paysaga_domain::ports::{PaymentProcessor, ProcessorError};
use paysaga_domain::{Money, PaymentId, PaymentRequest, WalletId};
use paysaga_processor::{
    BreakerConfig, CircuitState, GuardedProcessor, HttpPaymentProcessor, RetryPolicy,
};
use reqwest::Url;
use serde_json::{Value, json};

struct Running {
    url: Url,
    fake: FakeProcessor,
    control: reqwest::Client,
}

impl Running {
    async fn start() -> Self {
        let fake = FakeProcessor::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: Url::parse(&format!("http://{addr}/")).unwrap(),
            fake,
            control: reqwest::Client::new(),
        }
    }

    fn client(&self, attempts: u32) -> HttpPaymentProcessor {
        let retry = RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            max: Duration::from_millis(10),
        };
        HttpPaymentProcessor::new(&self.url, Duration::from_millis(500), retry).unwrap()
    }

    async fn post_control(&self, path: &str, body: Value) {
        let url = self.url.join(path).unwrap();
        let response = if path == "_control" {
            self.control.put(url).json(&body).send().await.unwrap()
        } else {
            self.control.post(url).json(&body).send().await.unwrap()
        };
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    async fn status_of(&self, payment_id: &str) -> Value {
        self.read(&format!("charges/{payment_id}")).await
    }

    async fn payout_of(&self, payment_id: &str) -> Value {
        self.read(&format!("payouts/{payment_id}")).await
    }

    async fn read(&self, path: &str) -> Value {
        let url = self.url.join(path).unwrap();
        self.control
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn request(payment_id: &str, minor_units: u64) -> PaymentRequest {
    PaymentRequest::new(
        PaymentId::parse(payment_id).unwrap(),
        WalletId::parse("wal_alice").unwrap(),
        WalletId::parse("wal_bob").unwrap(),
        Money::positive(minor_units, "EUR".parse().unwrap()).unwrap(),
    )
    .unwrap()
}

fn eur(minor_units: u64) -> Money {
    Money::positive(minor_units, "EUR".parse().unwrap()).unwrap()
}

fn top_up(payment_id: &str, instrument: &str, minor_units: u64) -> PaymentRequest {
    let flow = Flow::TopUp {
        funding_instrument: FundingInstrumentId::parse(instrument).unwrap(),
        to_wallet: WalletId::parse("wal_alice").unwrap(),
    };
    PaymentRequest::of_flow(
        PaymentId::parse(payment_id).unwrap(),
        flow,
        eur(minor_units),
    )
    .unwrap()
}

fn payout(payment_id: &str, minor_units: u64) -> PaymentRequest {
    let flow = Flow::Payout {
        from_wallet: WalletId::parse("wal_alice").unwrap(),
        destination: PayoutDestinationId::parse("dst_bank").unwrap(),
    };
    PaymentRequest::of_flow(
        PaymentId::parse(payment_id).unwrap(),
        flow,
        eur(minor_units),
    )
    .unwrap()
}

#[tokio::test]
async fn charge_replay_and_refund() {
    let processor = Running::start().await;
    let client = processor.client(3);
    let payment = request("pay_contract_1", 2500);
    let charge = client.execute(&payment).await.unwrap();
    assert!(charge.as_str().starts_with("ch_"));
    assert_eq!(
        client.execute(&payment).await,
        Ok(charge.clone()),
        "a replay is the same charge"
    );
    assert_eq!(client.reverse(&payment).await, Ok(()));
    assert_eq!(
        client.reverse(&payment).await,
        Ok(()),
        "refunds are idempotent"
    );
    assert_eq!(
        processor.status_of("pay_contract_1").await["status"],
        "refunded"
    );
    // A late retry of the charge after the compensation cannot capture again.
    assert_eq!(
        client.execute(&payment).await,
        Err(ProcessorError::Declined(format!(
            "charge {charge} was refunded"
        )))
    );
    let counters = processor.fake.counters();
    assert_eq!((counters.captured, counters.refunded), (1, 1));
}

#[tokio::test]
async fn a_refund_before_the_charge_voids_it() {
    let processor = Running::start().await;
    let client = processor.client(3);
    let payment = request("pay_contract_void", 100);
    assert_eq!(client.reverse(&payment).await, Ok(()));
    let Err(ProcessorError::Declined(reason)) = client.execute(&payment).await else {
        panic!("a charge after a void is declined");
    };
    assert!(reason.starts_with("voided:"), "{reason}");
    assert_eq!(processor.fake.counters().captured, 0);
}

#[tokio::test]
async fn a_decline_carries_the_processors_reason() {
    let processor = Running::start().await;
    processor
        .post_control("_control", json!({"decline_over_minor_units": 1000}))
        .await;
    let result = processor
        .client(3)
        .execute(&request("pay_contract_big", 1001))
        .await;
    assert_eq!(
        result,
        Err(ProcessorError::Declined(
            "declined: amount over the limit of 1000 minor units".into()
        ))
    );
    assert_eq!(
        processor.fake.counters().charge_requests,
        1,
        "declines are not retried"
    );
}

#[tokio::test]
async fn an_outage_is_retried_then_opens_the_circuit() {
    let processor = Running::start().await;
    processor
        .post_control("_control/outage", json!({"seconds": 60}))
        .await;
    let breaker = BreakerConfig {
        failure_threshold: 2,
        open_for: Duration::from_secs(60),
        half_open_max_calls: 1,
    };
    let guarded = GuardedProcessor::new(processor.client(3), breaker);
    for n in 1..=2 {
        let result = guarded
            .execute(&request(&format!("pay_contract_out{n}"), 100))
            .await;
        assert_eq!(
            result,
            Err(ProcessorError::Unavailable(
                "HTTP 503 Service Unavailable".into()
            ))
        );
    }
    assert_eq!(
        processor.fake.counters().outage_rejections,
        6,
        "3 attempts per call"
    );
    assert_eq!(guarded.state(), CircuitState::Open);
    let open = Err(ProcessorError::Unavailable("circuit open".into()));
    let payout = payout("pay_contract_out3", 100);
    assert_eq!(
        guarded.reverse(&request("pay_contract_out1", 100)).await,
        open
    );
    assert_eq!(guarded.reverse(&payout).await, open);
    assert_eq!(
        guarded.execute(&payout).await,
        Err(ProcessorError::Unavailable("circuit open".into()))
    );
    let counters = processor.fake.counters();
    assert_eq!(
        (
            counters.requests,
            counters.payout_requests,
            counters.cancel_requests
        ),
        (6, 0, 0),
        "an open circuit sends nothing"
    );
}

#[tokio::test]
async fn retries_ride_out_injected_errors() {
    let processor = Running::start().await;
    processor
        .post_control("_control", json!({"error_rate": 0.3}))
        .await;
    let client = processor.client(10);
    for n in 0..20 {
        // 10 attempts at a 30 % error rate: all fail with probability 6e-6 per payment.
        let payment = request(&format!("pay_contract_err{n}"), 100);
        client.execute(&payment).await.unwrap();
    }
    let counters = processor.fake.counters();
    assert_eq!(counters.captured, 20);
    assert_eq!(counters.charge_requests, 20 + counters.injected_errors);
}

#[tokio::test]
async fn a_top_up_charges_the_funding_instrument_and_is_refunded() {
    let processor = Running::start().await;
    let client = processor.client(3);
    let payment = top_up("pay_contract_top", "fi_card_visa", 4000);
    let charge = client.execute(&payment).await.unwrap();
    assert!(charge.as_str().starts_with("ch_"), "{charge}");
    assert_eq!(client.execute(&payment).await, Ok(charge.clone()));
    let view = processor.status_of("pay_contract_top").await;
    assert_eq!(
        (
            &view["funding_instrument"],
            &view["status"],
            &view["charge_id"]
        ),
        (
            &json!("fi_card_visa"),
            &json!("captured"),
            &json!(charge.as_str())
        )
    );
    // The same payment id for another instrument is another charge: refused as invalid.
    let Err(ProcessorError::Declined(reason)) = client
        .execute(&top_up("pay_contract_top", "fi_other", 4000))
        .await
    else {
        panic!("other terms are refused");
    };
    assert!(reason.contains("idempotency_conflict"), "{reason}");

    assert_eq!(client.reverse(&payment).await, Ok(()));
    assert_eq!(
        processor.status_of("pay_contract_top").await["status"],
        "refunded"
    );
    assert_eq!(
        client.execute(&payment).await,
        Err(ProcessorError::Declined(format!(
            "charge {charge} was refunded"
        )))
    );
    let counters = processor.fake.counters();
    assert_eq!((counters.captured, counters.refunded), (1, 1));
}

#[tokio::test]
async fn a_declined_funding_instrument_declines_the_top_up() {
    let processor = Running::start().await;
    let result = processor
        .client(3)
        .execute(&top_up("pay_contract_card", "fi_declined_card", 100))
        .await;
    let Err(ProcessorError::Declined(reason)) = result else {
        panic!("a declined instrument is a decline: {result:?}");
    };
    assert!(reason.starts_with("declined:"), "{reason}");
    let counters = processor.fake.counters();
    assert_eq!((counters.declined, counters.charge_requests), (1, 1));
}

#[tokio::test]
async fn a_payout_is_paid_replayed_and_cancelled() {
    let processor = Running::start().await;
    let client = processor.client(3);
    let payment = payout("pay_contract_po", 3000);
    let paid = client.execute(&payment).await.unwrap();
    assert!(paid.as_str().starts_with("po_"), "{paid}");
    assert_eq!(
        client.execute(&payment).await,
        Ok(paid.clone()),
        "a replay is the same payout"
    );
    let view = processor.payout_of("pay_contract_po").await;
    assert_eq!(
        (&view["payout_id"], &view["status"], &view["destination"]),
        (&json!(paid.as_str()), &json!("paid"), &json!("dst_bank"))
    );

    assert_eq!(client.reverse(&payment).await, Ok(()));
    assert_eq!(
        client.reverse(&payment).await,
        Ok(()),
        "cancels are idempotent"
    );
    assert_eq!(
        processor.payout_of("pay_contract_po").await["status"],
        "cancelled"
    );
    // A late retry of the payout after the compensation cannot pay again.
    assert_eq!(
        client.execute(&payment).await,
        Err(ProcessorError::Declined(format!(
            "payout {paid} was cancelled"
        )))
    );
    let counters = processor.fake.counters();
    assert_eq!(
        (
            counters.paid_out,
            counters.cancelled,
            counters.captured,
            counters.refunded
        ),
        (1, 1, 0, 0)
    );
}

#[tokio::test]
async fn a_cancel_before_the_payout_voids_it() {
    let processor = Running::start().await;
    let client = processor.client(3);
    let payment = payout("pay_contract_po_void", 100);
    assert_eq!(client.reverse(&payment).await, Ok(()));
    let Err(ProcessorError::Declined(reason)) = client.execute(&payment).await else {
        panic!("a payout after a void is declined");
    };
    assert!(reason.starts_with("voided:"), "{reason}");
    let counters = processor.fake.counters();
    assert_eq!((counters.paid_out, counters.voided), (0, 1));
}

#[tokio::test]
async fn a_refusing_destination_declines_the_payout_without_retries() {
    let processor = Running::start().await;
    processor
        .post_control(
            "_control",
            json!({"decline_payouts_over_minor_units": 1000}),
        )
        .await;
    let client = processor.client(3);
    assert_eq!(
        client.execute(&payout("pay_contract_po_big", 1001)).await,
        Err(ProcessorError::Declined(
            "declined: the destination refuses payouts over 1000 minor units".into()
        ))
    );
    assert!(
        client
            .execute(&payout("pay_contract_po_ok", 1000))
            .await
            .is_ok()
    );
    let counters = processor.fake.counters();
    assert_eq!(
        (
            counters.payout_requests,
            counters.payouts_declined,
            counters.paid_out
        ),
        (2, 1, 1),
        "declines are not retried"
    );
}

#[tokio::test]
async fn payouts_and_cancels_ride_out_injected_errors() {
    let processor = Running::start().await;
    processor
        .post_control("_control", json!({"error_rate": 0.3}))
        .await;
    let client = processor.client(10);
    for n in 0..10 {
        // 10 attempts at a 30 % error rate: all fail with probability 6e-6 per call.
        let payment = payout(&format!("pay_contract_po_err{n}"), 100);
        client.execute(&payment).await.unwrap();
        client.reverse(&payment).await.unwrap();
    }
    let counters = processor.fake.counters();
    assert_eq!((counters.paid_out, counters.cancelled), (10, 10));
    assert_eq!(
        counters.payout_requests + counters.cancel_requests,
        20 + counters.injected_errors
    );
}
