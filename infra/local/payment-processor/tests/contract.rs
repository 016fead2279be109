//! The contract, end to end: paysaga's `HttpPaymentProcessor` (and its circuit breaker)
//! against this fake over real HTTP on 127.0.0.1.

use std::time::Duration;

use payment_processor::{FakeProcessor, router};
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
        let url = self.url.join(&format!("charges/{payment_id}")).unwrap();
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

#[tokio::test]
async fn charge_replay_and_refund() {
    let processor = Running::start().await;
    let client = processor.client(3);
    let payment = request("pay_contract_1", 2500);
    let charge = client.charge(&payment).await.unwrap();
    assert!(charge.as_str().starts_with("ch_"));
    assert_eq!(
        client.charge(&payment).await,
        Ok(charge.clone()),
        "a replay is the same charge"
    );
    assert_eq!(client.refund(payment.payment_id()).await, Ok(()));
    assert_eq!(
        client.refund(payment.payment_id()).await,
        Ok(()),
        "refunds are idempotent"
    );
    assert_eq!(
        processor.status_of("pay_contract_1").await["status"],
        "refunded"
    );
    // A late retry of the charge after the compensation cannot capture again.
    assert_eq!(
        client.charge(&payment).await,
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
    assert_eq!(client.refund(payment.payment_id()).await, Ok(()));
    let Err(ProcessorError::Declined(reason)) = client.charge(&payment).await else {
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
        .charge(&request("pay_contract_big", 1001))
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
            .charge(&request(&format!("pay_contract_out{n}"), 100))
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
    assert_eq!(
        guarded
            .refund(&PaymentId::parse("pay_contract_out1").unwrap())
            .await,
        Err(ProcessorError::Unavailable("circuit open".into()))
    );
    assert_eq!(
        processor.fake.counters().requests,
        6,
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
        client.charge(&payment).await.unwrap();
    }
    let counters = processor.fake.counters();
    assert_eq!(counters.captured, 20);
    assert_eq!(counters.charge_requests, 20 + counters.injected_errors);
}
