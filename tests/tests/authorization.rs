//! Authorization on the local stack: the API checks each request's bearer token against the
//! development key (as API Gateway's JWT authorizer does in AWS), and a caller reads and moves
//! only its own wallets; the admin routes need the `paysaga/admin` scope.

use std::time::Duration;

use anyhow::{Context, ensure};
use paysaga_tests::{Stack, unique};
use reqwest::Method;
use serde_json::{Value, json};

const HOUR: Duration = Duration::from_secs(3600);

/// Opens a EUR wallet as the caller of `token`; answers its id.
async fn open_wallet(stack: &Stack, token: &str) -> anyhow::Result<String> {
    let wallet_id = format!("wal_{}", unique());
    let body = json!({"currency": "EUR", "wallet_id": wallet_id});
    let (status, answer) = stack
        .call_with_token(Some(token), Method::POST, "/wallets", Some(body), None)
        .await?;
    ensure!(status == 201, "POST /wallets answered {status}: {answer}");
    Ok(wallet_id)
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn without_a_valid_token_the_api_answers_401() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let wallet_id = open_wallet(&stack, &stack.token).await?;
    let path = format!("/wallets/{wallet_id}");
    let mut tampered = stack.tokens.token("paysaga-tests", false, HOUR)?;
    // Another subject in the payload, the original signature: the signature no longer fits.
    let other = stack.tokens.token("someone-else", false, HOUR)?;
    let payload_of = |token: &str| token.split('.').nth(1).map(str::to_owned);
    tampered = tampered.replace(
        &payload_of(&tampered).context("a JWT")?,
        &payload_of(&other).context("a JWT")?,
    );
    for (what, token) in [
        ("no token", None),
        ("not a JWT", Some("not-a-jwt")),
        ("a tampered JWT", Some(tampered.as_str())),
    ] {
        let (status, body) = stack
            .call_with_token(token, Method::GET, &path, None, None)
            .await?;
        ensure!(
            status == 401,
            "{what}: GET {path} answered {status}: {body}"
        );
        ensure!(body == json!({"message": "Unauthorized"}), "{what}: {body}");
    }
    let (status, body) = stack.get(&path).await?;
    ensure!(
        status == 200,
        "with the test caller's token: {status} {body}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn a_caller_reads_and_moves_only_its_own_wallets() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let alice = stack
        .tokens
        .token(&format!("alice-{}", unique()), false, HOUR)?;
    let bob = stack
        .tokens
        .token(&format!("bob-{}", unique()), false, HOUR)?;
    let alices = open_wallet(&stack, &alice).await?;
    let bobs = open_wallet(&stack, &bob).await?;
    stack
        .operator_deposit(&alices, "EUR", 1_000, &unique())
        .await?;
    let top_up = json!({"funding_instrument": "fi_card_visa",
                        "amount": {"minor_units": 1_000, "currency": "EUR"}});
    let top_ups = format!("/wallets/{alices}/top-ups");
    let payout = json!({"destination": "dst_bank_main",
                        "amount": {"minor_units": 100, "currency": "EUR"}});

    let payment = json!({"from_wallet": alices, "to_wallet": bobs,
                         "amount": {"minor_units": 100, "currency": "EUR"}});
    let requests: [(Method, String, Option<Value>); 6] = [
        (Method::GET, format!("/wallets/{alices}"), None),
        (Method::POST, top_ups, Some(top_up)),
        (
            Method::POST,
            format!("/wallets/{alices}/payouts"),
            Some(payout),
        ),
        (Method::POST, "/payments".to_owned(), Some(payment.clone())),
        (Method::GET, format!("/wallets/{alices}/transactions"), None),
        (Method::GET, format!("/payments?wallet={alices}"), None),
    ];
    for (method, path, body) in requests {
        // Money-moving requests carry a key (required); Bob's and Alice's each their own.
        let key = || (method == Method::POST).then(unique);
        let (status, answer) = stack
            .call_with_token(
                Some(&bob),
                method.clone(),
                &path,
                body.clone(),
                key().as_deref(),
            )
            .await?;
        ensure!(
            status == 403,
            "Bob: {method} {path} answered {status}: {answer}"
        );
        ensure!(answer["error"]["code"] == "forbidden", "{answer}");
        let (status, answer) = stack
            .call_with_token(Some(&alice), method.clone(), &path, body, key().as_deref())
            .await?;
        ensure!(
            (200..300).contains(&status),
            "Alice: {method} {path} answered {status}: {answer}"
        );
    }
    let (_, wallet) = stack
        .call_with_token(
            Some(&alice),
            Method::GET,
            &format!("/wallets/{alices}"),
            None,
            None,
        )
        .await?;
    ensure!(
        wallet["available"]["minor_units"].as_u64().unwrap_or(0)
            + wallet["reserved"]["minor_units"].as_u64().unwrap_or(0)
            <= 2_000,
        "only the operator's deposit and Alice's top-up, less what she paid, can be in her wallet: {wallet}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn the_admin_routes_need_the_admin_scope() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let admin = stack.tokens.token("paysaga-ops", true, HOUR)?;
    let replay = "/admin/parked/no-such-parked-message/replay";
    let rebuild = "/admin/read-models/rebuild";
    for path in [replay, rebuild] {
        let (status, answer) = stack.call(Method::POST, path, None, None).await?;
        ensure!(
            status == 403,
            "POST {path} without the scope: {status} {answer}"
        );
        ensure!(answer["error"]["code"] == "forbidden", "{answer}");
    }
    let why = json!({"reason": "authorization test"});
    let (status, answer) = stack
        .call_with_token(Some(&admin), Method::POST, replay, Some(why.clone()), None)
        .await?;
    ensure!(
        status == 404,
        "an unknown parked message, as an admin: {status} {answer}"
    );
    // An admin's action needs a reason, kept in the audit trail.
    for path in [replay, rebuild] {
        let (status, answer) = stack
            .call_with_token(Some(&admin), Method::POST, path, Some(json!({})), None)
            .await?;
        ensure!(
            status == 400,
            "POST {path} without a reason: {status} {answer}"
        );
    }

    // One page of the audit trail applied to the live read models (changing nothing new).
    let (status, page) = stack
        .call_with_token(Some(&admin), Method::POST, rebuild, Some(why), None)
        .await?;
    ensure!(status == 200, "POST {rebuild} as an admin: {status} {page}");
    ensure!(
        page["events"].is_u64() && page.get("next").is_some() && page["action_id"].is_string(),
        "{page}"
    );
    let bad = json!({"after": "not a page token", "reason": "authorization test"});
    let (status, answer) = stack
        .call_with_token(Some(&admin), Method::POST, rebuild, Some(bad), None)
        .await?;
    ensure!(status == 400, "a made-up page token: {status} {answer}");
    Ok(())
}
