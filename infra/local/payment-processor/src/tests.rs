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

    async fn top_up(&self, payment_id: &str, minor_units: u64) -> (u16, Value) {
        self.call(
            Method::POST,
            "/charges",
            Some(payment_id),
            top_up_body(payment_id, minor_units),
        )
        .await
    }

    async fn payout(&self, payment_id: &str, minor_units: u64) -> (u16, Value) {
        self.call(
            Method::POST,
            "/payouts",
            Some(payment_id),
            payout_body(payment_id, minor_units),
        )
        .await
    }

    async fn cancel(&self, payment_id: &str) -> (u16, Value) {
        let uri = format!("/payouts/{payment_id}/cancel");
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

fn top_up_body(payment_id: &str, minor_units: u64) -> Value {
    json!({
        "payment_id": payment_id, "funding_instrument": "fi_card", "to_wallet": "wal_b",
        "amount": {"minor_units": minor_units, "currency": "EUR"}
    })
}

fn payout_body(payment_id: &str, minor_units: u64) -> Value {
    json!({
        "payment_id": payment_id, "from_wallet": "wal_a", "destination": "dst_bank",
        "amount": {"minor_units": minor_units, "currency": "EUR"}
    })
}

/// `body` with `changes` written over it (a `null` removes the field).
fn with(mut body: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            body.as_object_mut().unwrap().remove(key);
        } else {
            body[key] = value.clone();
        }
    }
    body
}

/// The error code of an answer, with its status.
fn refusal((status, body): (u16, Value)) -> (u16, String) {
    let code = body["error"]["code"].as_str().unwrap_or("(no code)");
    (status, code.to_owned())
}

fn refused(status: u16, code: &str) -> (u16, String) {
    (status, code.to_owned())
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
    let settings = json!({"latency_ms": 5, "error_rate": 0.25, "decline_over_minor_units": 10,
                          "decline_payouts_over_minor_units": 20, "refuse_reversals": true});
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
        json!({"latency_ms": 0, "error_rate": 0.0, "decline_over_minor_units": null,
               "decline_payouts_over_minor_units": null, "refuse_reversals": false})
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

// ------------------------------------------------------------------ top-ups

#[tokio::test]
async fn a_top_up_charge_is_captured_once_and_shows_its_funding_instrument() {
    let fake = Fake::new();
    let (status, first) = fake.top_up("pay_top", 700).await;
    assert_eq!(status, 201);
    let charge_id = first["charge_id"].as_str().unwrap().to_owned();
    assert!(charge_id.starts_with("ch_"), "{charge_id}");
    assert_eq!(
        first,
        json!({"charge_id": charge_id, "payment_id": "pay_top", "status": "captured",
               "amount": {"minor_units": 700, "currency": "EUR"}, "funding_instrument": "fi_card"})
    );
    assert_eq!(fake.top_up("pay_top", 700).await, (200, first.clone()));
    assert_eq!(fake.get("/charges/pay_top").await, (200, first));
    // A transfer's charge names no instrument.
    let (_, transfer) = fake.charge("pay_transfer", 700).await;
    assert!(transfer.get("funding_instrument").is_none(), "{transfer}");
    let counters = fake.counters().await;
    assert_eq!(
        (&counters["captured"], &counters["charge_requests"]),
        (&json!(2), &json!(3))
    );
}

#[tokio::test]
async fn a_charge_names_exactly_one_payer_and_nothing_else() {
    let fake = Fake::new();
    for bad in [
        with(
            charge_body("pay_1", 100),
            json!({"funding_instrument": "fi_card"}),
        ),
        with(charge_body("pay_1", 100), json!({"from_wallet": null})),
        with(top_up_body("pay_1", 100), json!({"funding_instrument": ""})),
        with(top_up_body("pay_1", 100), json!({"to_wallet": null})),
        with(
            top_up_body("pay_1", 100),
            json!({"destination": "dst_bank"}),
        ),
        with(top_up_body("pay_1", 0), json!({})),
    ] {
        let answer = fake
            .call(Method::POST, "/charges", Some("pay_1"), bad.clone())
            .await;
        assert_eq!(refusal(answer), refused(400, "invalid_request"), "{bad}");
    }
    let both = with(
        charge_body("pay_1", 100),
        json!({"funding_instrument": "fi_card"}),
    );
    let (_, answer) = fake
        .call(Method::POST, "/charges", Some("pay_1"), both)
        .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not both"),
        "{answer}"
    );
    // A top-up needs the payment id as its idempotency key, as a transfer does.
    let body = top_up_body("pay_1", 100);
    for key in [None, Some("pay_2")] {
        let answer = fake.call(Method::POST, "/charges", key, body.clone()).await;
        assert_eq!(refusal(answer), refused(400, "invalid_request"), "{key:?}");
    }
    assert_eq!(fake.get("/charges").await.1, json!({"charges": []}));
    assert_eq!(fake.counters().await["captured"], 0);
}

#[tokio::test]
async fn a_charge_replay_must_ask_for_every_term_again() {
    let fake = Fake::new();
    assert_eq!(fake.top_up("pay_1", 500).await.0, 201);
    for other in [
        // The same amount and payee, but a transfer's payer.
        with(
            top_up_body("pay_1", 500),
            json!({"funding_instrument": null, "from_wallet": "fi_card"}),
        ),
        with(
            top_up_body("pay_1", 500),
            json!({"funding_instrument": "fi_other"}),
        ),
        with(top_up_body("pay_1", 500), json!({"to_wallet": "wal_c"})),
        top_up_body("pay_1", 501),
    ] {
        let answer = fake
            .call(Method::POST, "/charges", Some("pay_1"), other.clone())
            .await;
        assert_eq!(
            refusal(answer),
            refused(422, "idempotency_conflict"),
            "{other}"
        );
    }
    assert_eq!(fake.charge("pay_2", 500).await.0, 201);
    assert_eq!(
        refusal(fake.top_up("pay_2", 500).await),
        refused(422, "idempotency_conflict"),
        "a transfer's charge replayed as a top-up"
    );
    assert_eq!(fake.counters().await["captured"], 2);
}

#[tokio::test]
async fn top_ups_are_declined_over_the_threshold_and_for_a_declined_test_instrument() {
    let fake = Fake::new();
    fake.control(json!({"decline_over_minor_units": 1000}))
        .await;
    let (status, body) = fake.top_up("pay_big", 1001).await;
    assert_eq!((status, &body["error"]["code"]), (402, &json!("declined")));
    assert_eq!(
        fake.get("/charges/pay_big").await.0,
        404,
        "a decline is not recorded"
    );
    assert_eq!(fake.top_up("pay_limit", 1000).await.0, 201);

    let declined_card = with(
        top_up_body("pay_card", 1),
        json!({"funding_instrument": "fi_declined_visa"}),
    );
    fake.control(json!({})).await;
    let answer = fake
        .call(Method::POST, "/charges", Some("pay_card"), declined_card)
        .await;
    assert_eq!(
        refusal(answer),
        refused(402, "declined"),
        "whatever the settings"
    );
    // Only a funding instrument is a test instrument: a wallet of that name pays.
    let wallet_named_so = with(
        charge_body("pay_wallet", 1),
        json!({"from_wallet": "fi_declined_visa"}),
    );
    let answer = fake
        .call(
            Method::POST,
            "/charges",
            Some("pay_wallet"),
            wallet_named_so,
        )
        .await;
    assert_eq!(answer.0, 201);
    let counters = fake.counters().await;
    assert_eq!(
        (&counters["declined"], &counters["payouts_declined"]),
        (&json!(2), &json!(0))
    );
}

// ------------------------------------------------------------------ payouts

#[tokio::test]
async fn a_payout_is_paid_once_and_replayed_with_the_same_payout() {
    let fake = Fake::new();
    let (status, first) = fake.payout("pay_out", 1250).await;
    assert_eq!(status, 201);
    let payout_id = first["payout_id"].as_str().unwrap().to_owned();
    assert!(payout_id.starts_with("po_"), "{payout_id}");
    assert_eq!(
        first,
        json!({"payout_id": payout_id, "payment_id": "pay_out", "status": "paid",
               "amount": {"minor_units": 1250, "currency": "EUR"},
               "from_wallet": "wal_a", "destination": "dst_bank"})
    );
    assert_eq!(fake.payout("pay_out", 1250).await, (200, first.clone()));
    assert_eq!(fake.get("/payouts/pay_out").await, (200, first));
    let counters = fake.counters().await;
    assert_eq!(
        [
            &counters["paid_out"],
            &counters["payout_requests"],
            &counters["captured"]
        ],
        [&json!(1), &json!(2), &json!(0)]
    );
}

#[tokio::test]
async fn a_payout_replay_with_other_terms_is_an_idempotency_conflict() {
    let fake = Fake::new();
    fake.payout("pay_1", 1250).await;
    for other in [
        payout_body("pay_1", 1251),
        with(
            payout_body("pay_1", 1250),
            json!({"destination": "dst_other"}),
        ),
        with(payout_body("pay_1", 1250), json!({"from_wallet": "wal_c"})),
        with(
            payout_body("pay_1", 1250),
            json!({"amount": {"minor_units": 1250, "currency": "USD"}}),
        ),
    ] {
        let answer = fake
            .call(Method::POST, "/payouts", Some("pay_1"), other.clone())
            .await;
        assert_eq!(
            refusal(answer),
            refused(422, "idempotency_conflict"),
            "{other}"
        );
    }
    assert_eq!(
        fake.get("/payouts/pay_1").await.1["destination"],
        "dst_bank"
    );
}

#[tokio::test]
async fn a_payout_needs_the_payment_id_as_idempotency_key_and_a_valid_body() {
    let fake = Fake::new();
    let body = payout_body("pay_1", 100);
    for key in [None, Some("pay_2")] {
        let (status, answer) = fake.call(Method::POST, "/payouts", key, body.clone()).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key")
        );
    }
    for bad in [
        with(payout_body("pay_1", 100), json!({"destination": null})),
        with(payout_body("pay_1", 100), json!({"destination": ""})),
        with(payout_body("pay_1", 100), json!({"from_wallet": null})),
        with(payout_body("pay_1", 100), json!({"to_wallet": "wal_b"})),
        with(
            payout_body("pay_1", 100),
            json!({"funding_instrument": "fi_card"}),
        ),
        with(
            payout_body("pay_1", 100),
            json!({"amount": {"minor_units": 1, "currency": "euro"}}),
        ),
        payout_body("pay_1", 0),
        payout_body("pay 1", 100),
    ] {
        let key = bad["payment_id"].as_str();
        let answer = fake.call(Method::POST, "/payouts", key, bad.clone()).await;
        assert_eq!(refusal(answer), refused(400, "invalid_request"), "{bad}");
    }
    assert_eq!(fake.get("/payouts").await.1, json!({"payouts": []}));
    assert_eq!(fake.counters().await["paid_out"], 0);
}

#[tokio::test]
async fn a_destination_refuses_payouts_over_its_threshold_and_the_thresholds_are_apart() {
    let fake = Fake::new();
    let (status, control) = fake
        .control(json!({"decline_payouts_over_minor_units": 1000}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        control["settings"]["decline_payouts_over_minor_units"],
        1000
    );
    let (status, body) = fake.payout("pay_big", 1001).await;
    assert_eq!((status, &body["error"]["code"]), (402, &json!("declined")));
    assert_eq!(
        fake.get("/payouts/pay_big").await.0,
        404,
        "a decline is not recorded"
    );
    assert_eq!(fake.payout("pay_limit", 1000).await.0, 201);
    // The payout threshold leaves charges alone, and the charge threshold payouts.
    assert_eq!(fake.charge("pay_charge", 5000).await.0, 201);
    fake.control(json!({"decline_over_minor_units": 1})).await;
    assert_eq!(
        fake.payout("pay_big", 1001).await.0,
        201,
        "lifted: the same id pays"
    );
    let counters = fake.counters().await;
    assert_eq!(
        (
            &counters["payouts_declined"],
            &counters["declined"],
            &counters["paid_out"]
        ),
        (&json!(1), &json!(0), &json!(2))
    );
}

#[tokio::test]
async fn a_refusing_test_destination_always_refuses() {
    let fake = Fake::new();
    let refusing = with(
        payout_body("pay_1", 1),
        json!({"destination": "dst_refusing_bank"}),
    );
    let answer = fake
        .call(Method::POST, "/payouts", Some("pay_1"), refusing)
        .await;
    assert_eq!(refusal(answer), refused(402, "declined"));
    assert_eq!(fake.counters().await["payouts_declined"], 1);
    assert_eq!(
        fake.payout("pay_1", 1).await.0,
        201,
        "another destination is paid"
    );
}

#[tokio::test]
async fn a_cancel_cancels_a_paid_payout_once() {
    let fake = Fake::new();
    let (_, payout) = fake.payout("pay_1", 500).await;
    for _ in 0..2 {
        assert_eq!(
            fake.cancel("pay_1").await,
            (200, json!({"payment_id": "pay_1", "status": "cancelled"}))
        );
    }
    assert_eq!(fake.counters().await["cancelled"], 1);
    assert_eq!(fake.counters().await["cancel_requests"], 2);
    let (status, view) = fake.get("/payouts/pay_1").await;
    assert_eq!((status, &view["status"]), (200, &json!("cancelled")));
    assert_eq!(view["payout_id"], payout["payout_id"]);
    // Replaying the payout answers the same payout, as it now stands.
    let (status, replay) = fake.payout("pay_1", 500).await;
    assert_eq!((status, &replay["status"]), (200, &json!("cancelled")));
    assert_eq!(replay["payout_id"], payout["payout_id"]);
    assert_eq!(fake.counters().await["paid_out"], 1);
}

#[tokio::test]
async fn cancelling_an_unknown_payment_voids_it_and_a_later_payout_gets_409() {
    let fake = Fake::new();
    for _ in 0..2 {
        assert_eq!(
            fake.cancel("pay_late").await,
            (200, json!({"payment_id": "pay_late", "status": "voided"}))
        );
    }
    let (status, body) = fake.payout("pay_late", 100).await;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("voided")));
    assert_eq!(
        fake.get("/payouts/pay_late").await,
        (200, json!({"payment_id": "pay_late", "status": "voided"}))
    );
    let counters = fake.counters().await;
    assert_eq!(
        [
            &counters["voided"],
            &counters["paid_out"],
            &counters["payouts_declined"]
        ],
        [&json!(1), &json!(0), &json!(1)]
    );
}

#[tokio::test]
async fn a_payment_id_is_a_charges_or_a_payouts_never_both() {
    let fake = Fake::new();
    let (_, charge) = fake.charge("pay_charged", 100).await;
    let (_, payout) = fake.payout("pay_paid", 100).await;
    fake.refund("pay_refund_voided").await;
    fake.cancel("pay_cancel_voided").await;
    let flow_conflict = refused(422, "flow_conflict");
    for id in ["pay_charged", "pay_refund_voided"] {
        assert_eq!(
            refusal(fake.payout(id, 100).await),
            flow_conflict,
            "payout of {id}"
        );
        assert_eq!(
            refusal(fake.cancel(id).await),
            flow_conflict,
            "cancel of {id}"
        );
        assert_eq!(fake.get(&format!("/payouts/{id}")).await.0, 404, "{id}");
    }
    for id in ["pay_paid", "pay_cancel_voided"] {
        assert_eq!(
            refusal(fake.charge(id, 100).await),
            flow_conflict,
            "charge of {id}"
        );
        assert_eq!(
            refusal(fake.top_up(id, 100).await),
            flow_conflict,
            "top-up of {id}"
        );
        assert_eq!(
            refusal(fake.refund(id).await),
            flow_conflict,
            "refund of {id}"
        );
        assert_eq!(fake.get(&format!("/charges/{id}")).await.0, 404, "{id}");
    }
    // Nothing changed on either side.
    assert_eq!(fake.get("/charges/pay_charged").await.1, charge);
    assert_eq!(fake.get("/payouts/pay_paid").await.1, payout);
    let counters = fake.counters().await;
    assert_eq!(
        [
            &counters["refunded"],
            &counters["cancelled"],
            &counters["voided"]
        ],
        [&json!(0), &json!(0), &json!(2)]
    );
}

#[tokio::test]
async fn the_payout_listing_shows_its_payment_ids_in_the_order_first_seen() {
    let fake = Fake::new();
    fake.payout("pay_b", 100).await;
    fake.charge("pay_charge", 100).await;
    fake.cancel("pay_a").await;
    fake.payout("pay_c", 300).await;
    fake.cancel("pay_c").await;
    let (status, list) = fake.get("/payouts").await;
    assert_eq!(status, 200);
    let summary: Vec<_> = list["payouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["payment_id"].as_str().unwrap(),
                p["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("pay_b", "paid"),
            ("pay_a", "voided"),
            ("pay_c", "cancelled")
        ]
    );
    let (_, charges) = fake.get("/charges").await;
    assert_eq!(charges["charges"].as_array().unwrap().len(), 1, "{charges}");
    assert_eq!(charges["charges"][0]["payment_id"], "pay_charge");
    assert_eq!(
        fake.get("/payouts/pay_unknown").await.1["error"]["code"],
        "not_found"
    );
}

#[tokio::test(start_paused = true)]
async fn faults_hit_payouts_and_cancels_and_their_reads_stay_answerable() {
    let fake = Fake::new();
    fake.payout("pay_before", 100).await;

    fake.call(
        Method::POST,
        "/_control/outage",
        None,
        json!({"seconds": 2}),
    )
    .await;
    assert_eq!(
        refusal(fake.payout("pay_1", 100).await),
        refused(503, "unavailable")
    );
    assert_eq!(
        refusal(fake.cancel("pay_before").await),
        refused(503, "unavailable")
    );
    assert_eq!(fake.get("/payouts/pay_before").await.1["status"], "paid");
    assert_eq!(fake.get("/payouts").await.0, 200);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(fake.payout("pay_1", 100).await.0, 201);
    assert_eq!(fake.counters().await["outage_rejections"], 2);

    fake.control(json!({"error_rate": 1.0})).await;
    assert_eq!(fake.payout("pay_2", 100).await.0, 503);
    assert_eq!(fake.cancel("pay_1").await.0, 503);
    assert_eq!(fake.cancel("pay_never").await.0, 503);
    let counters = fake.counters().await;
    assert_eq!(counters["injected_errors"], 3);
    assert_eq!(
        [
            &counters["paid_out"],
            &counters["cancelled"],
            &counters["voided"]
        ],
        [&json!(2), &json!(0), &json!(0)],
        "nothing was applied"
    );

    fake.control(json!({"latency_ms": 750})).await;
    let started = Instant::now();
    assert_eq!(fake.payout("pay_2", 100).await.0, 201);
    assert_eq!(fake.cancel("pay_2").await.0, 200);
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    let started = Instant::now();
    fake.get("/payouts/pay_2").await;
    fake.get("/payouts").await;
    assert_eq!(started.elapsed(), Duration::ZERO, "reads are not delayed");
}

#[tokio::test]
async fn reset_forgets_payouts_their_voids_settings_and_counters() {
    let fake = Fake::new();
    fake.payout("pay_1", 100).await;
    fake.cancel("pay_2").await;
    fake.control(json!({"decline_payouts_over_minor_units": 1}))
        .await;
    let (status, control) = fake
        .call(Method::POST, "/_control/reset", None, Value::Null)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        control["settings"]["decline_payouts_over_minor_units"],
        Value::Null
    );
    for counter in ["payout_requests", "cancel_requests", "paid_out", "voided"] {
        assert_eq!(control["counters"][counter], 0, "{counter}");
    }
    assert_eq!(fake.get("/payouts").await.1, json!({"payouts": []}));
    assert_eq!(
        fake.payout("pay_2", 100).await.0,
        201,
        "the void was forgotten too"
    );
    assert_eq!(
        fake.charge("pay_1", 100).await.0,
        201,
        "the payout was forgotten: the id is free for a charge"
    );
}

#[tokio::test]
async fn refusing_reversals_answers_403_and_undoes_nothing_until_it_stops() {
    let fake = Fake::new();
    assert_eq!(fake.charge("pay_1", 100).await.0, 201);
    fake.control(json!({"refuse_reversals": true})).await;
    let (status, body) = fake.refund("pay_1").await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    assert_eq!(fake.cancel("pay_2").await.0, 403);
    assert_eq!(fake.get("/charges/pay_1").await.1["status"], "captured");
    assert_eq!(
        fake.charge("pay_2", 100).await.0,
        201,
        "the refused cancel voided nothing"
    );
    fake.control(json!({"refuse_reversals": false})).await;
    assert_eq!(fake.refund("pay_1").await.1["status"], "refunded");
}
