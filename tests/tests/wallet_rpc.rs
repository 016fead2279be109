//! The WalletService on the local stack (`wallet-rpc`, behind the same HTTP front and JWT check
//! as the REST API): a client generated from `wallet.proto` calls it over Connect with JSON, over
//! Connect with binary protobuf, and over gRPC-Web, with a bearer token. It reads only the
//! caller's wallets, moves money only from them, once per idempotency key, and answers no token
//! with `unauthenticated`.

use std::time::Duration;

use anyhow::{Context, ensure};
use paysaga_tests::{Stack, unique};
use paysaga_wallet_proto::buffa::EnumValue;
use paysaga_wallet_proto::connectrpc::client::{ClientConfig, HttpClient};
use paysaga_wallet_proto::connectrpc::{ErrorCode, Protocol};
use paysaga_wallet_proto::v1::{
    GetBalanceRequest, Money, PaymentStatus, TransferFundsRequest, WalletServiceClient,
};

const SETTLE: Duration = Duration::from_secs(120);

type Client = WalletServiceClient<HttpClient>;

/// One client per protocol and codec, each sending `token` (none: no Authorization header).
fn clients(stack: &Stack, token: Option<&str>) -> anyhow::Result<Vec<(&'static str, Client)>> {
    let mut config = ClientConfig::new(stack.api_url.parse().context("the API's URL")?);
    if let Some(token) = token {
        config = config.with_default_header("authorization", format!("Bearer {token}"));
    }
    Ok(vec![
        (
            "Connect, JSON",
            WalletServiceClient::new(HttpClient::plaintext(), config.clone().json()),
        ),
        (
            "Connect, binary",
            WalletServiceClient::new(HttpClient::plaintext(), config.clone().proto()),
        ),
        (
            "gRPC-Web",
            WalletServiceClient::new(
                HttpClient::plaintext(),
                config.with_protocol(Protocol::GrpcWeb).proto(),
            ),
        ),
    ])
}

fn balance_of(wallet_id: &str) -> GetBalanceRequest {
    GetBalanceRequest {
        wallet_id: wallet_id.to_owned(),
        ..Default::default()
    }
}

fn eur(minor_units: u64) -> Money {
    Money {
        minor_units,
        currency: "EUR".to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn every_protocol_reads_the_callers_balance_and_nobody_elses() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let (mine, theirs) = (
        format!("wal_rpc_mine_{}", unique()),
        format!("wal_rpc_theirs_{}", unique()),
    );
    stack
        .funded_wallet(&mine, "EUR", 7_500, &format!("rpc-{mine}"))
        .await?;
    let mut someone_else = Stack::connect().await?;
    someone_else.act_as(&format!("rpc-someone-else-{}", unique()))?;
    someone_else.funded_wallet(&theirs, "EUR", 0, "").await?;

    for (protocol, client) in clients(&stack, Some(&stack.token))? {
        let balance = client
            .get_balance(balance_of(&mine))
            .await
            .map_err(|error| anyhow::anyhow!("{protocol}: {error:?}"))?
            .into_owned();
        assert_eq!(balance.wallet_id, mine, "{protocol}");
        assert_eq!(
            (
                balance.available.minor_units,
                balance.reserved.minor_units,
                balance.total.minor_units
            ),
            (7_500, 0, 7_500),
            "{protocol}"
        );
        assert_eq!(balance.available.currency, "EUR", "{protocol}");

        let refused = client
            .get_balance(balance_of(&theirs))
            .await
            .err()
            .with_context(|| format!("{protocol}: someone else's balance was answered"))?;
        assert_eq!(refused.code, ErrorCode::PermissionDenied, "{protocol}");
        assert_eq!(
            paysaga_wallet_proto::error_reason(&refused).map(|reason| reason.code),
            Some("forbidden".to_owned()),
            "{protocol}"
        );
    }
    for (protocol, client) in clients(&stack, None)? {
        let refused = client
            .get_balance(balance_of(&mine))
            .await
            .err()
            .with_context(|| format!("{protocol}: answered without a token"))?;
        assert_eq!(refused.code, ErrorCode::Unauthenticated, "{protocol}");
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn transfer_funds_moves_money_once_per_key_in_every_protocol() -> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let (payer, payee) = (
        format!("wal_rpc_payer_{}", unique()),
        format!("wal_rpc_payee_{}", unique()),
    );
    stack
        .funded_wallet(&payer, "EUR", 10_000, &format!("rpc-{payer}"))
        .await?;
    stack.funded_wallet(&payee, "EUR", 0, "").await?;

    let mut payments = Vec::new();
    for (index, (protocol, client)) in clients(&stack, Some(&stack.token))?.into_iter().enumerate()
    {
        let transfer = TransferFundsRequest {
            from_wallet_id: payer.clone(),
            to_wallet_id: payee.clone(),
            amount: eur(1_000 + index as u64).into(),
            idempotency_key: format!("rpc-transfer-{index}-{}", unique()),
            ..Default::default()
        };
        // The same request twice (its first answer lost, say): one payment.
        let first = client
            .transfer_funds(transfer.clone())
            .await
            .map_err(|error| anyhow::anyhow!("{protocol}: {error:?}"))?
            .into_owned();
        let again = client
            .transfer_funds(transfer.clone())
            .await
            .map_err(|error| anyhow::anyhow!("{protocol}, again: {error:?}"))?
            .into_owned();
        let payment_id = first.payment.payment_id.clone();
        ensure!(
            payment_id.starts_with("pay_"),
            "{protocol}: {payment_id:?} is not a payment id"
        );
        assert_eq!(again.payment.payment_id, payment_id, "{protocol}");
        assert_eq!(
            first.payment.status,
            EnumValue::Known(PaymentStatus::PAYMENT_STATUS_PENDING),
            "{protocol}"
        );
        // The same key with other terms is refused, and moves nothing.
        let other_terms = TransferFundsRequest {
            amount: eur(9_999).into(),
            ..transfer
        };
        let refused = client
            .transfer_funds(other_terms)
            .await
            .err()
            .with_context(|| format!("{protocol}: a reused key was accepted"))?;
        assert_eq!(refused.code, ErrorCode::AlreadyExists, "{protocol}");
        assert_eq!(
            paysaga_wallet_proto::error_reason(&refused).map(|reason| reason.code),
            Some("idempotency_key_reused".to_owned()),
            "{protocol}"
        );
        payments.push(payment_id);
    }
    for payment_id in &payments {
        let settled = stack.settled_payment(payment_id, SETTLE).await?;
        assert_eq!(settled["status"], "COMPLETED", "{settled}");
    }
    // Three transfers, each once: 1,000 + 1,001 + 1,002 moved.
    let client = &clients(&stack, Some(&stack.token))?[0].1;
    let payer_balance = client.get_balance(balance_of(&payer)).await?.into_owned();
    let payee_balance = client.get_balance(balance_of(&payee)).await?.into_owned();
    assert_eq!(payer_balance.total.minor_units, 10_000 - 3_003);
    assert_eq!(payee_balance.total.minor_units, 3_003);

    // From someone else's wallet: refused, nothing moves.
    let mut someone_else = Stack::connect().await?;
    someone_else.act_as(&format!("rpc-thief-{}", unique()))?;
    for (protocol, client) in clients(&stack, Some(&someone_else.token))? {
        let refused = client
            .transfer_funds(TransferFundsRequest {
                from_wallet_id: payer.clone(),
                to_wallet_id: payee.clone(),
                amount: eur(100).into(),
                idempotency_key: format!("rpc-theft-{}", unique()),
                ..Default::default()
            })
            .await
            .err()
            .with_context(|| format!("{protocol}: a transfer from someone else's wallet"))?;
        assert_eq!(refused.code, ErrorCode::PermissionDenied, "{protocol}");
    }
    let after = client.get_balance(balance_of(&payer)).await?.into_owned();
    assert_eq!(after.total.minor_units, 10_000 - 3_003);
    println!(
        "wallet-rpc: 3 transfers, one per protocol, each sent twice and once with other terms: \
         3 payments, {} moved",
        payee_balance.total.minor_units
    );
    Ok(())
}
