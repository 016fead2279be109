//! What a caller does through the GraphQL door: open wallets and move money, once per
//! idempotency key, only from its own wallets; each refusal a typed GraphQL error.

mod support;

use http::StatusCode;
use serde_json::{Value, json};
use support::{ALICE, ALICE_MAIN, As, BOB, BOBS, World, error_codes, error_reasons};

const SUBMIT: &str = "mutation($input: SubmitPaymentInput!) {
    submitPayment(input: $input) { id status kind fromWallet toWallet amount { minorUnits currency } priority }
}";

fn transfer(minor_units: u64, key: &str) -> Value {
    json!({ "input": {
        "fromWallet": ALICE_MAIN, "toWallet": BOBS,
        "amount": { "minorUnits": minor_units, "currency": "EUR" },
        "idempotencyKey": key
    }})
}

#[tokio::test]
async fn the_same_idempotency_key_twice_is_one_payment_and_other_terms_under_it_conflict() {
    let world = World::new().await;
    let (status, first) = world
        .graphql(As::Caller(ALICE), SUBMIT, transfer(2500, "order-7"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["errors"], Value::Null, "{first}");
    let payment = &first["data"]["submitPayment"];
    assert!(
        payment["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("pay_"))
    );
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["kind"], "TRANSFER");
    assert_eq!(
        payment["amount"],
        json!({ "minorUnits": 2500, "currency": "EUR" })
    );
    assert_eq!(payment["priority"], "ORDINARY");

    let (_, again) = world
        .graphql(As::Caller(ALICE), SUBMIT, transfer(2500, "order-7"))
        .await;
    assert_eq!(
        again["data"]["submitPayment"]["id"], payment["id"],
        "{again}"
    );
    let requested = world
        .ledger
        .payment_events()
        .await
        .iter()
        .filter(|event| matches!(event, paysaga_domain::DomainEvent::PaymentRequested(_)))
        .count();
    assert_eq!(requested, 1, "one payment asked for, whatever the retries");

    let (_, other_terms) = world
        .graphql(As::Caller(ALICE), SUBMIT, transfer(2501, "order-7"))
        .await;
    assert_eq!(other_terms["data"], Value::Null);
    assert_eq!(error_codes(&other_terms), ["CONFLICT"]);
    assert_eq!(error_reasons(&other_terms), ["idempotency_key_reused"]);
}

#[tokio::test]
async fn a_caller_moves_only_its_own_wallets_money() {
    let world = World::new().await;
    let (_, stolen) = world
        .graphql(As::Caller(BOB), SUBMIT, transfer(100, "bobs-try"))
        .await;
    assert_eq!(error_codes(&stolen), ["FORBIDDEN"], "{stolen}");
    assert_eq!(stolen["data"], Value::Null);
    assert!(
        world.ledger.payment_events().await.is_empty(),
        "nothing asked for"
    );
}

#[tokio::test]
async fn top_ups_and_payouts_are_payments_of_their_own_kind() {
    let world = World::new().await;
    let (_, top_up) = world
        .graphql(
            As::Caller(ALICE),
            "mutation($input: TopUpInput!) { topUp(input: $input) {
                kind fromWallet toWallet fundingInstrument destination priority } }",
            json!({ "input": {
                "wallet": ALICE_MAIN, "fundingInstrument": "fi_alice_card",
                "amount": { "minorUnits": 1000, "currency": "EUR" },
                "priority": "URGENT", "idempotencyKey": "top-up-1"
            }}),
        )
        .await;
    assert_eq!(
        top_up["data"]["topUp"],
        json!({ "kind": "TOP_UP", "fromWallet": null, "toWallet": ALICE_MAIN,
                "fundingInstrument": "fi_alice_card", "destination": null, "priority": "URGENT" }),
        "{top_up}"
    );
    let (_, payout) = world
        .graphql(
            As::Caller(ALICE),
            "mutation($input: PayoutInput!) { payout(input: $input) {
                kind fromWallet toWallet destination amount { minorUnits } } }",
            json!({ "input": {
                "wallet": ALICE_MAIN, "destination": "dst_alice_bank",
                "amount": { "minorUnits": 500, "currency": "EUR" }, "idempotencyKey": "payout-1"
            }}),
        )
        .await;
    assert_eq!(
        payout["data"]["payout"],
        json!({ "kind": "PAYOUT", "fromWallet": ALICE_MAIN, "toWallet": null,
                "destination": "dst_alice_bank", "amount": { "minorUnits": 500 } }),
        "{payout}"
    );
}

#[tokio::test]
async fn a_wallet_opened_twice_is_one_wallet_and_a_currency_not_held_is_unprocessable() {
    let world = World::new().await;
    let open = "mutation($input: OpenWalletInput!) { openWallet(input: $input) {
        id currency available { minorUnits currency } } }";
    let input = json!({ "input": { "currency": "USD", "walletId": "wal_alice_dollars" } });
    let (_, opened) = world.graphql(As::Caller(ALICE), open, input.clone()).await;
    assert_eq!(
        opened["data"]["openWallet"],
        json!({ "id": "wal_alice_dollars", "currency": "USD",
                "available": { "minorUnits": 0, "currency": "USD" } }),
        "{opened}"
    );
    let (_, again) = world.graphql(As::Caller(ALICE), open, input).await;
    assert_eq!(again["data"], opened["data"]);

    let (_, generated) = world
        .graphql(
            As::Caller(BOB),
            open,
            json!({ "input": { "currency": "GBP" } }),
        )
        .await;
    assert!(
        generated["data"]["openWallet"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("wal_")),
        "{generated}"
    );

    let (_, yen) = world
        .graphql(
            As::Caller(ALICE),
            open,
            json!({ "input": { "currency": "JPY" } }),
        )
        .await;
    assert_eq!(error_codes(&yen), ["UNPROCESSABLE"]);
    assert_eq!(error_reasons(&yen), ["currency_not_allowed"]);

    let (_, bobs_id) = world
        .graphql(
            As::Caller(BOB),
            open,
            json!({ "input": { "currency": "USD", "walletId": "wal_alice_dollars" } }),
        )
        .await;
    assert_eq!(error_codes(&bobs_id), ["FORBIDDEN"]);
}

#[tokio::test]
async fn unreadable_ids_amounts_currencies_and_keys_are_bad_user_input() {
    let world = World::new().await;
    let bad = |input: Value| {
        let world = &world;
        async move {
            let (status, body) = world
                .graphql(
                    As::Caller(ALICE),
                    "mutation($input: SubmitPaymentInput!) { submitPayment(input: $input) { id } }",
                    json!({ "input": input }),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["data"], Value::Null, "{body}");
            (error_codes(&body), error_reasons(&body))
        }
    };
    let amount = |minor_units: Value, currency: &str| json!({ "minorUnits": minor_units, "currency": currency });
    let input = |from: &str, amount: Value, key: &str| json!({ "fromWallet": from, "toWallet": BOBS, "amount": amount, "idempotencyKey": key });
    let bad_input = |reason: &str| (vec!["BAD_USER_INPUT".to_owned()], vec![reason.to_owned()]);
    assert_eq!(
        bad(input("alice", amount(json!(100), "EUR"), "k1")).await,
        bad_input("invalid_id")
    );
    assert_eq!(
        bad(input(ALICE_MAIN, amount(json!(100), "EURO"), "k2")).await,
        bad_input("invalid_currency")
    );
    assert_eq!(
        bad(input(
            ALICE_MAIN,
            amount(json!(100), "EUR"),
            "a key with spaces"
        ))
        .await,
        bad_input("invalid_idempotency_key")
    );
    // More than 10^15 minor units is no amount paysaga holds.
    assert_eq!(
        bad(input(
            ALICE_MAIN,
            amount(json!(1_000_000_000_000_001_u64), "EUR"),
            "k3"
        ))
        .await,
        bad_input("invalid_amount")
    );
    // Never a float, nor a negative amount: the scalar refuses them before any field runs.
    for refused in [json!(12.5), json!(-100), json!("100")] {
        let (codes, _) = bad(input(ALICE_MAIN, amount(refused.clone(), "EUR"), "k4")).await;
        assert_eq!(codes, ["BAD_USER_INPUT"], "{refused}");
    }
    // Zero is an amount, but not one that moves money: SelfService's rule.
    assert_eq!(
        bad(input(ALICE_MAIN, amount(json!(0), "EUR"), "k5")).await,
        (
            vec!["UNPROCESSABLE".to_owned()],
            vec!["invalid_amount".to_owned()]
        )
    );
}
