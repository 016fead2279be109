//! Each endpoint's behaviour, through the router (no network).

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::Value;
use tower::ServiceExt;

use super::*;

struct Fake {
    app: Router,
}

impl Fake {
    fn new() -> Self {
        Self {
            app: router(FakeProcessor::new()),
        }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, json)
    }

    async fn charge(&self, payment_id: &str, minor_units: u64) -> (u16, Value) {
        self.call(
            Method::POST,
            "/charges",
            Some(payment_id),
            charge_body(payment_id, minor_units),
        )
        .await
    }

    async fn refund(&self, payment_id: &str) -> (u16, Value) {
        let uri = format!("/charges/{payment_id}/refund");
        self.call(Method::POST, &uri, None, Value::Null).await
    }

    async fn get(&self, uri: &str) -> (u16, Value) {
        self.call(Method::GET, uri, None, Value::Null).await
    }

    async fn control(&self, settings: Value) -> (u16, Value) {
        self.call(Method::PUT, "/_control", None, settings).await
    }

    async fn counters(&self) -> Value {
        self.get("/_control").await.1["counters"].clone()
    }
}

fn charge_body(payment_id: &str, minor_units: u64) -> Value {
    json!({
        "payment_id": payment_id, "from_wallet": "wal_a", "to_wallet": "wal_b",
        "amount": {"minor_units": minor_units, "currency": "EUR"}
    })
}

#[tokio::test]
async fn a_charge_is_captured_once_and_replayed_with_the_same_charge() {
    let fake = Fake::new();
    let (status, first) = fake.charge("pay_1", 1250).await;
    assert_eq!(status, 201);
    assert_eq!(first["status"], "captured");
    assert_eq!(first["payment_id"], "pay_1");
    assert_eq!(
        first["amount"],
        json!({"minor_units": 1250, "currency": "EUR"})
    );
    assert!(first["charge_id"].as_str().unwrap().starts_with("ch_"));

    let (status, replay) = fake.charge("pay_1", 1250).await;
    assert_eq!(status, 200);
    assert_eq!(replay, first);
    assert_eq!(fake.counters().await["captured"], 1);
    assert_eq!(fake.counters().await["charge_requests"], 2);
    assert_eq!(fake.get("/charges/pay_1").await, (200, first));
}

#[tokio::test]
async fn a_replay_with_other_terms_is_an_idempotency_conflict() {
    let fake = Fake::new();
    fake.charge("pay_1", 1250).await;
    let (status, body) = fake.charge("pay_1", 9999).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "idempotency_conflict");
}

#[tokio::test]
async fn a_charge_needs_the_payment_id_as_idempotency_key_and_a_valid_body() {
    let fake = Fake::new();
    let body = charge_body("pay_1", 100);
    for key in [None, Some("pay_2")] {
        let (status, answer) = fake.call(Method::POST, "/charges", key, body.clone()).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key")
        );
    }
    for bad in [
        json!({"payment_id": "pay_1"}),
        charge_body("pay_1", 0),
        charge_body("pay 1", 100),
        json!({"payment_id": "pay_1", "from_wallet": "wal_a", "to_wallet": "wal_b",
               "amount": {"minor_units": 1, "currency": "euro"}}),
    ] {
        let key = bad["payment_id"].as_str();
        let (status, answer) = fake.call(Method::POST, "/charges", key, bad.clone()).await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &json!("invalid_request")),
            "{bad}"
        );
    }
    assert_eq!(fake.get("/charges").await.1, json!({"charges": []}));
}

#[tokio::test]
async fn a_refund_refunds_a_captured_charge_once() {
    let fake = Fake::new();
    let (_, charge) = fake.charge("pay_1", 500).await;
    for _ in 0..2 {
        assert_eq!(
            fake.refund("pay_1").await,
            (200, json!({"payment_id": "pay_1", "status": "refunded"}))
        );
    }
    assert_eq!(fake.counters().await["refunded"], 1);
    let (status, view) = fake.get("/charges/pay_1").await;
    assert_eq!((status, &view["status"]), (200, &json!("refunded")));
    assert_eq!(view["charge_id"], charge["charge_id"]);
    // Replaying the charge answers the same charge, as it now stands.
    let (status, replay) = fake.charge("pay_1", 500).await;
    assert_eq!((status, &replay["status"]), (200, &json!("refunded")));
}

#[tokio::test]
async fn refunding_an_unknown_payment_voids_it_and_a_later_charge_gets_409() {
    let fake = Fake::new();
    for _ in 0..2 {
        assert_eq!(
            fake.refund("pay_late").await,
            (200, json!({"payment_id": "pay_late", "status": "voided"}))
        );
    }
    let (status, body) = fake.charge("pay_late", 100).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "voided");
    assert_eq!(
        fake.get("/charges/pay_late").await,
        (200, json!({"payment_id": "pay_late", "status": "voided"}))
    );
    let counters = fake.counters().await;
    assert_eq!(
        (counters["voided"].clone(), counters["captured"].clone()),
        (json!(1), json!(0))
    );
}

#[tokio::test]
async fn charges_over_the_decline_threshold_are_declined_and_not_recorded() {
    let fake = Fake::new();
    let (status, _) = fake
        .control(json!({"decline_over_minor_units": 1000}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = fake.charge("pay_big", 1001).await;
    assert_eq!(status, 402);
    assert_eq!(body["error"]["code"], "declined");
    assert_eq!(fake.get("/charges/pay_big").await.0, 404);
    assert_eq!(fake.charge("pay_limit", 1000).await.0, 201);
    assert_eq!(fake.counters().await["declined"], 1);
    // Lifting the threshold lets the same payment id through.
    fake.control(json!({})).await;
    assert_eq!(fake.charge("pay_big", 1001).await.0, 201);
}

#[tokio::test(start_paused = true)]
async fn an_outage_answers_503_to_charges_and_refunds_until_it_ends() {
    let fake = Fake::new();
    fake.charge("pay_before", 100).await;
    let (status, control) = fake
        .call(
            Method::POST,
            "/_control/outage",
            None,
            json!({"seconds": 2}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        control["outage"],
        json!({"active": true, "remaining_ms": 2000})
    );

    let (status, body) = fake.charge("pay_1", 100).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("unavailable"))
    );
    assert_eq!(fake.refund("pay_before").await.0, 503);
    assert_eq!(
        fake.get("/charges/pay_before").await.1["status"],
        "captured"
    );
    assert_eq!(fake.get("/charges").await.0, 200);

    tokio::time::advance(Duration::from_millis(1999)).await;
    assert_eq!(fake.charge("pay_1", 100).await.0, 503);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(fake.charge("pay_1", 100).await.0, 201);
    assert_eq!(fake.counters().await["outage_rejections"], 3);
    assert_eq!(fake.get("/_control").await.1["outage"]["active"], false);
}

#[tokio::test(start_paused = true)]
async fn an_outage_of_zero_seconds_ends_one() {
    let fake = Fake::new();
    let outage = |seconds: f64| {
        fake.call(
            Method::POST,
            "/_control/outage",
            None,
            json!({"seconds": seconds}),
        )
    };
    outage(60.0).await;
    assert_eq!(fake.charge("pay_1", 100).await.0, 503);
    outage(0.0).await;
    assert_eq!(fake.charge("pay_1", 100).await.0, 201);
    assert_eq!(outage(-1.0).await.0, 400);
}

#[tokio::test]
async fn the_error_rate_answers_503_before_anything_is_done() {
    let fake = Fake::new();
    fake.control(json!({"error_rate": 1.0})).await;
    for i in 0..5 {
        assert_eq!(fake.charge(&format!("pay_{i}"), 100).await.0, 503);
    }
    assert_eq!(fake.refund("pay_x").await.0, 503);
    let counters = fake.counters().await;
    assert_eq!(counters["injected_errors"], 6);
    assert_eq!(counters["captured"], 0);
    assert_eq!(counters["voided"], 0, "the refund was not applied");
    fake.control(json!({"error_rate": 0.0})).await;
    assert_eq!(fake.charge("pay_0", 100).await.0, 201);
}

#[tokio::test]
async fn an_error_rate_in_between_fails_some_calls() {
    let fake = Fake::new();
    fake.control(json!({"error_rate": 0.5})).await;
    let mut failed = 0;
    for i in 0..200 {
        if fake.charge(&format!("pay_{i}"), 100).await.0 == 503 {
            failed += 1;
        }
    }
    assert!(
        (50..150).contains(&failed),
        "{failed} of 200 failed at rate 0.5"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_delays_charges_and_refunds() {
    let fake = Fake::new();
    fake.control(json!({"latency_ms": 750})).await;
    let started = Instant::now();
    assert_eq!(fake.charge("pay_1", 100).await.0, 201);
    assert_eq!(fake.refund("pay_1").await.0, 200);
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    // Reads are not delayed.
    let started = Instant::now();
    fake.get("/charges/pay_1").await;
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn control_settings_are_validated_and_shown() {
    let fake = Fake::new();
    for bad in [
        json!({"error_rate": 1.5}),
        json!({"error_rate": -0.1}),
        json!({"latency_ms": 60001}),
        json!({"latency": 5}),
    ] {
        assert_eq!(fake.control(bad.clone()).await.0, 400, "{bad}");
    }
    let settings = json!({"latency_ms": 5, "error_rate": 0.25, "decline_over_minor_units": 10});
    let (status, control) = fake.control(settings.clone()).await;
    assert_eq!((status, &control["settings"]), (200, &settings));
    assert_eq!(fake.get("/_control").await.1["settings"], settings);
}

#[tokio::test]
async fn reset_forgets_the_ledger_settings_and_counters() {
    let fake = Fake::new();
    fake.charge("pay_1", 100).await;
    fake.refund("pay_2").await;
    fake.control(json!({"error_rate": 1.0})).await;
    let (status, control) = fake
        .call(Method::POST, "/_control/reset", None, Value::Null)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        control["settings"],
        json!({"latency_ms": 0, "error_rate": 0.0, "decline_over_minor_units": null})
    );
    assert_eq!(
        control["counters"],
        serde_json::to_value(Counters::default()).unwrap()
    );
    assert_eq!(fake.get("/charges").await.1, json!({"charges": []}));
    assert_eq!(
        fake.charge("pay_2", 100).await.0,
        201,
        "the void was forgotten too"
    );
}

#[tokio::test]
async fn the_listing_shows_every_payment_id_in_the_order_first_seen() {
    let fake = Fake::new();
    fake.charge("pay_b", 100).await;
    fake.refund("pay_a").await;
    fake.charge("pay_c", 300).await;
    fake.refund("pay_c").await;
    let (status, list) = fake.get("/charges").await;
    assert_eq!(status, 200);
    let summary: Vec<_> = list["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["payment_id"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("pay_b", "captured"),
            ("pay_a", "voided"),
            ("pay_c", "refunded")
        ]
    );
    assert_eq!(
        fake.counters().await["requests"],
        5,
        "4 calls and the listing"
    );
}

#[tokio::test]
async fn unknown_paths_and_payment_ids_are_json_404s() {
    let fake = Fake::new();
    let (status, body) = fake.get("/nope").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, body) = fake.get("/charges/pay_unknown").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
}
