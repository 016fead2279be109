//! What a caller reads through the GraphQL door: its wallets, their history, its payments;
//! nothing of anyone else's; and wallets asked for together read in one batch.

mod support;

use http::StatusCode;
use serde_json::{Value, json};
use support::{ALICE, ALICE_MAIN, ALICE_SAVINGS, As, BOB, BOBS, World, error_codes, error_reasons};

/// Alice pays Bob 25.00 EUR (through the mutation) and the read models catch up.
async fn alice_paid_bob(world: &World) -> String {
    let (status, body) = world
        .graphql(
            As::Caller(ALICE),
            "mutation($input: SubmitPaymentInput!) { submitPayment(input: $input) { id } }",
            json!({ "input": {
                "fromWallet": ALICE_MAIN, "toWallet": BOBS,
                "amount": { "minorUnits": 2500, "currency": "EUR" },
                "idempotencyKey": "order-1"
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    world.project().await;
    body["data"]["submitPayment"]["id"]
        .as_str()
        .expect("a payment id")
        .to_owned()
}

#[tokio::test]
async fn a_caller_reads_its_wallets_with_their_transactions_in_one_query() {
    let world = World::new().await;
    let payment = alice_paid_bob(&world).await;
    let (status, body) = world
        .graphql(
            As::Caller(ALICE),
            "{ viewer { wallets {
                 id currency createdAt available { minorUnits currency } reserved { minorUnits }
                 transactions { edges { node { id kind counterparty amount { minorUnits currency } status } }
                                pageInfo { hasNextPage } }
                 payments { edges { node { paymentId role kind fromWallet toWallet amount { minorUnits } } } }
            } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"], Value::Null, "{body}");
    let wallets = body["data"]["viewer"]["wallets"]
        .as_array()
        .expect("a list");
    let ids: Vec<&str> = wallets.iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [ALICE_MAIN, ALICE_SAVINGS], "hers, and only hers");

    let main = &wallets[0];
    // 100.00 deposited; the payment is pending (the saga, not running here, holds its funds).
    assert_eq!(
        main["available"],
        json!({ "minorUnits": 10_000, "currency": "EUR" })
    );
    assert_eq!(main["reserved"]["minorUnits"], 0);
    let created_at = main["createdAt"].as_str().expect("a time");
    assert!(
        created_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "RFC 3339 in UTC: {created_at}"
    );
    let history: Vec<&Value> = main["transactions"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| &edge["node"])
        .collect();
    assert_eq!(history.len(), 2, "{history:?}");
    // Newest first: the payment sent (a negative amount), then the deposit.
    assert_eq!(history[0]["id"], payment.as_str());
    assert_eq!(history[0]["kind"], "PAYMENT_SENT");
    assert_eq!(history[0]["counterparty"], BOBS);
    assert_eq!(
        history[0]["amount"],
        json!({ "minorUnits": -2500, "currency": "EUR" })
    );
    assert_eq!(history[0]["status"], "PENDING");
    assert_eq!(history[1]["kind"], "DEPOSIT");
    assert_eq!(history[1]["amount"]["minorUnits"], 10_000);
    assert_eq!(main["transactions"]["pageInfo"]["hasNextPage"], false);

    let payments = &main["payments"]["edges"];
    assert_eq!(payments[0]["node"]["paymentId"], payment.as_str());
    assert_eq!(payments[0]["node"]["role"], "PAYER");
    assert_eq!(payments[0]["node"]["kind"], "TRANSFER");
    assert_eq!(payments[0]["node"]["toWallet"], BOBS);
    assert_eq!(wallets[1]["transactions"]["edges"], json!([]));
}

#[tokio::test]
async fn the_viewers_wallets_are_read_in_one_batch_and_never_one_by_one() {
    let world = World::new().await;
    let before = world.ledger.wallet_reads();
    let (_, body) = world
        .graphql(
            As::Caller(ALICE),
            "{ viewer { wallets { id available { minorUnits } } } }",
            json!({}),
        )
        .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
    assert_eq!(
        body["data"]["viewer"]["wallets"][0]["available"]["minorUnits"],
        10_000
    );
    let after = world.ledger.wallet_reads();
    assert_eq!(after.single, before.single, "no wallet read one by one");
    assert_eq!(after.batched - before.batched, 1, "one batched read");
}

#[tokio::test]
async fn entities_resolve_wallets_by_key_in_one_batched_read() {
    let world = World::new().await;
    let before = world.ledger.wallet_reads();
    let (status, body) = world
        .graphql(
            As::Caller(ALICE),
            "query($representations: [_Any!]!) {
                _entities(representations: $representations) {
                    ... on Wallet { id available { minorUnits currency } }
                }
            }",
            json!({ "representations": [
                { "__typename": "Wallet", "id": ALICE_MAIN },
                { "__typename": "Wallet", "id": ALICE_SAVINGS },
                { "__typename": "Wallet", "id": ALICE_MAIN },
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"], Value::Null, "{body}");
    assert_eq!(
        body["data"]["_entities"],
        json!([
            { "id": ALICE_MAIN, "available": { "minorUnits": 10_000, "currency": "EUR" } },
            { "id": ALICE_SAVINGS, "available": { "minorUnits": 0, "currency": "EUR" } },
            { "id": ALICE_MAIN, "available": { "minorUnits": 10_000, "currency": "EUR" } },
        ])
    );
    let after = world.ledger.wallet_reads();
    assert_eq!(after.batched - before.batched, 1, "one batched read");
    assert_eq!(after.single, before.single, "no read per wallet");

    // Wallets asked for by id in one query are batched too.
    let before = world.ledger.wallet_reads();
    let (_, body) = world
        .graphql(
            As::Caller(ALICE),
            &format!(
                "{{ a: wallet(id: \"{ALICE_MAIN}\") {{ id }} b: wallet(id: \"{ALICE_SAVINGS}\") {{ id }} }}"
            ),
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["b"]["id"], ALICE_SAVINGS, "{body}");
    let after = world.ledger.wallet_reads();
    assert_eq!(
        (after.batched - before.batched, after.single),
        (1, before.single)
    );
}

#[tokio::test]
async fn a_payment_is_an_entity_too_and_reads_as_it_stands() {
    let world = World::new().await;
    let payment = alice_paid_bob(&world).await;
    let (_, body) = world
        .graphql(
            As::Caller(BOB),
            "query($representations: [_Any!]!) {
                _entities(representations: $representations) {
                    ... on Payment { id status kind fromWallet toWallet fundingInstrument
                                     amount { minorUnits currency } priority failure { code } }
                }
            }",
            json!({ "representations": [{ "__typename": "Payment", "id": payment }] }),
        )
        .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
    assert_eq!(
        body["data"]["_entities"][0],
        json!({
            "id": payment, "status": "PENDING", "kind": "TRANSFER",
            "fromWallet": ALICE_MAIN, "toWallet": BOBS, "fundingInstrument": null,
            "amount": { "minorUnits": 2500, "currency": "EUR" }, "priority": "ORDINARY",
            "failure": null
        }),
        "the payee reads the payment too"
    );
}

#[tokio::test]
async fn someone_elses_wallet_or_payment_is_forbidden_and_shows_nothing_of_it() {
    let world = World::new().await;
    let payment = alice_paid_bob(&world).await;
    let carol = As::Caller("carol");

    let (status, body) = world
        .graphql(
            carol,
            "query($id: ID!) { wallet(id: $id) { id available { minorUnits } } }",
            json!({ "id": ALICE_MAIN }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!({ "wallet": null }), "{body}");
    assert_eq!(error_codes(&body), ["FORBIDDEN"]);
    assert_eq!(error_reasons(&body), ["forbidden"]);
    assert_eq!(body["errors"][0]["path"], json!(["wallet"]));
    assert!(
        !body.to_string().contains("10000"),
        "no balance leaked: {body}"
    );

    let (_, body) = world
        .graphql(
            carol,
            "query($id: ID!) { payment(id: $id) { id amount { minorUnits } } }",
            json!({ "id": payment }),
        )
        .await;
    assert_eq!(body["data"], json!({ "payment": null }));
    assert_eq!(error_codes(&body), ["FORBIDDEN"]);
    assert!(
        !body.to_string().contains("2500"),
        "no amount leaked: {body}"
    );

    // Bob cannot page Alice's history either, nor have the router resolve her wallet.
    let (_, body) = world
        .graphql(
            As::Caller(BOB),
            "query($representations: [_Any!]!) {
                _entities(representations: $representations) { ... on Wallet { id available { minorUnits } } }
            }",
            json!({ "representations": [{ "__typename": "Wallet", "id": ALICE_MAIN }] }),
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(error_codes(&body), ["FORBIDDEN"]);
}

#[tokio::test]
async fn a_missing_wallet_is_not_found_and_an_unreadable_id_is_bad_input() {
    let world = World::new().await;
    let (_, body) = world
        .graphql(
            As::Caller(ALICE),
            "{ missing: wallet(id: \"wal_nobody\") { id } malformed: wallet(id: \"alice's\") { id }
               payment(id: \"pay_nothing\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({ "missing": null, "malformed": null, "payment": null })
    );
    let mut codes: Vec<(String, String)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| {
            (
                error["path"][0].as_str().unwrap_or("").to_owned(),
                error["extensions"]["code"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            ("malformed".to_owned(), "BAD_USER_INPUT".to_owned()),
            ("missing".to_owned(), "NOT_FOUND".to_owned()),
            ("payment".to_owned(), "NOT_FOUND".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_wallets_history_comes_a_page_at_a_time_through_its_cursors() {
    let world = World::new().await;
    alice_paid_bob(&world).await;
    let page = |after: Value| {
        let world = &world;
        async move {
            let (_, body) = world
                .graphql(
                    As::Caller(ALICE),
                    "query($id: ID!, $after: String) { wallet(id: $id) {
                        transactions(first: 1, after: $after) {
                            edges { cursor node { kind } } pageInfo { hasNextPage endCursor } } } }",
                    json!({ "id": ALICE_MAIN, "after": after }),
                )
                .await;
            assert_eq!(body["errors"], Value::Null, "{body}");
            body["data"]["wallet"]["transactions"].clone()
        }
    };
    let first = page(Value::Null).await;
    assert_eq!(first["edges"][0]["node"]["kind"], "PAYMENT_SENT");
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["pageInfo"]["endCursor"], first["edges"][0]["cursor"]);
    let second = page(first["pageInfo"]["endCursor"].clone()).await;
    assert_eq!(second["edges"][0]["node"]["kind"], "DEPOSIT");
    assert_eq!(second["pageInfo"]["hasNextPage"], false);

    let (_, body) = world
        .graphql(
            As::Caller(ALICE),
            "query($id: ID!) { wallet(id: $id) {
                big: transactions(first: 101) { pageInfo { hasNextPage } }
                odd: payments(after: \"not a cursor\") { pageInfo { hasNextPage } } } }",
            json!({ "id": ALICE_MAIN }),
        )
        .await;
    let mut reasons = error_reasons(&body);
    reasons.sort();
    assert_eq!(reasons, ["invalid_cursor", "invalid_page_size"], "{body}");
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT", "BAD_USER_INPUT"]);
}
