//! A payment's hold on its payer's wallet, on DynamoDB Local: a reservation and its release are
//! two plain writes each (the wallet's item, then the log entry: `paysaga_aws::dynamodb::holds`),
//! so every way of stopping between them is tried here, through the adapter itself. A ledger
//! whose payments table does not exist writes the hold and then fails on the log entry: a
//! delivery that stopped between its two writes. The payments' logs go to a table of the test's
//! own, which no relay reads, so no saga runs them but the test; the wallets are the stack's.
//!
//! Asserted, for each: the wallet's available and reserved funds, its holds, and what `record`
//! answers, once the step is written again (the next delivery) or the payment's deadline check
//! looks at it (`PaymentLog::lift_stray_hold`).
//!
//! Needs the stack (`make run`), then:
//! `cargo test --locked -p paysaga-tests --test holds -- --ignored --nocapture`.

use std::collections::HashMap;

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use paysaga_aws::{DynamoDbLedger, TableNames};
use paysaga_domain::ports::{
    BeginPayment, PaymentHistory, PaymentLog, PaymentRequests, RecordStep, WalletStore,
};
use paysaga_domain::saga::{charged, fail_before_reservation, start_compensation};
use paysaga_domain::{
    ChargeId, FailureReason, Money, Payment, PaymentId, PaymentRequest, PaymentStatus,
    RequestChannel, SagaStep, StepPlan, WalletId,
};
use paysaga_tests::{Stack, unique};

/// A ledger on the local stack's wallets, its payment logs in `payments_table`.
fn stack_ledger(stack: &Stack, payments_table: &str) -> anyhow::Result<DynamoDbLedger> {
    Ok(DynamoDbLedger::new(
        stack.dynamodb.clone(),
        TableNames {
            wallets: stack.wiring.table("WalletsTable")?.to_owned(),
            payments: payments_table.to_owned(),
            idempotency: stack.wiring.table("IdempotencyTable")?.to_owned(),
            outbox: None,
        },
    ))
}

/// A payments table of the test's own, keyed as the stack's, with no stream: the relay does not
/// announce the requests written to it, so no saga runs these payments but the test.
async fn scratch_payments_table(stack: &Stack) -> anyhow::Result<String> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = format!("paysaga-holds-{}", unique());
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    stack
        .dynamodb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("payment_id", ScalarAttributeType::S)?)
        .attribute_definitions(attribute("version", ScalarAttributeType::N)?)
        .key_schema(key("payment_id", KeyType::Hash)?)
        .key_schema(key("version", KeyType::Range)?)
        .send()
        .await
        .with_context(|| format!("creating {name}"))?;
    Ok(name)
}

fn eur(minor_units: u64) -> anyhow::Result<Money> {
    Ok(Money::new(minor_units, "EUR".parse()?)?)
}

/// A payment of `minor_units` from `payer` to `payee`, its request written: pending.
async fn pending(
    ledger: &DynamoDbLedger,
    payer: &str,
    payee: &str,
    minor_units: u64,
) -> anyhow::Result<Payment> {
    let request = PaymentRequest::new(
        PaymentId::parse(&format!("pay_holds_{}", unique()))?,
        WalletId::parse(payer)?,
        WalletId::parse(payee)?,
        eur(minor_units)?,
    )?;
    let begun = ledger
        .begin(&request, RequestChannel::Api, None, Utc::now())
        .await?;
    ensure!(matches!(begun, BeginPayment::Begun));
    Ok(Payment::from_log(
        &ledger.history(request.payment_id()).await?,
    )?)
}

fn plan(step: SagaStep, payment: &Payment) -> anyhow::Result<StepPlan> {
    step.plan(payment, Utc::now())
        .with_context(|| format!("no plan for {step:?}"))
}

/// `payment` once `plan` is written.
fn after(payment: &Payment, plan: &StepPlan) -> anyhow::Result<Payment> {
    Ok(payment.after(&plan.entry)?)
}

/// A wallet's available and reserved funds, and its holds (payment id, amount).
async fn wallet(
    stack: &Stack,
    ledger: &DynamoDbLedger,
    id: &str,
) -> anyhow::Result<(u64, u64, HashMap<String, u64>)> {
    let wallet = ledger
        .wallet(&WalletId::parse(id)?)
        .await?
        .with_context(|| format!("no wallet {id}"))?;
    let item = stack
        .dynamodb
        .get_item()
        .table_name(stack.wiring.table("WalletsTable")?)
        .key("wallet_id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .with_context(|| format!("no item of {id}"))?;
    let mut holds = HashMap::new();
    for (name, value) in item {
        if let Some(payment) = name.strip_prefix("hold#") {
            let units = value
                .as_n()
                .map_err(|_| anyhow::anyhow!("hold {name} is not a number"))?;
            holds.insert(payment.to_owned(), units.parse()?);
        }
    }
    Ok((
        wallet.available().minor_units(),
        wallet.reserved().minor_units(),
        holds,
    ))
}

fn held(payment: &Payment, minor_units: u64) -> HashMap<String, u64> {
    HashMap::from([(payment.request.payment_id().to_string(), minor_units)])
}

#[tokio::test]
#[ignore = "needs the local stack: make run"]
async fn a_hold_is_taken_and_given_back_once_whatever_stops_between_its_two_writes()
-> anyhow::Result<()> {
    let stack = Stack::connect().await?;
    let (alice, bob) = stack.alice_and_bob(1_000).await?;
    let payments = scratch_payments_table(&stack).await?;
    let ledger = stack_ledger(&stack, &payments)?;
    // Writes the hold, then fails on the log entry: a delivery that stopped in between.
    let stops_after_the_hold = stack_ledger(&stack, "paysaga-no-such-table")?;

    // A reservation stopped after its hold: the next delivery writes the log entry alone.
    let paid = pending(&ledger, &alice, &bob, 300).await?;
    let reserve = plan(SagaStep::ReserveFunds, &paid)?;
    ensure!(
        stops_after_the_hold.record(&reserve).await.is_err(),
        "the log entry's write should have failed"
    );
    ensure!(wallet(&stack, &ledger, &alice).await? == (700, 300, held(&paid, 300)));
    ensure!(matches!(
        ledger.record(&reserve).await?,
        RecordStep::Recorded
    ));
    ensure!(matches!(
        ledger.record(&reserve).await?,
        RecordStep::VersionTaken
    ));
    ensure!(
        wallet(&stack, &ledger, &alice).await? == (700, 300, held(&paid, 300)),
        "held once, however often the reservation was written"
    );

    // Settling pays the hold out, in its transaction with the payee's credit.
    let reserved = after(&paid, &reserve)?;
    ensure!(
        !ledger.lift_stray_hold(&reserved).await?,
        "a payment in flight holds its funds rightly"
    );
    let charge = charged(&reserved, ChargeId::parse("ch_holds")?, Utc::now());
    ensure!(matches!(
        ledger.record(&charge).await?,
        RecordStep::Recorded
    ));
    let settle = plan(SagaStep::SettleFunds, &after(&reserved, &charge)?)?;
    ensure!(matches!(
        ledger.record(&settle).await?,
        RecordStep::Recorded
    ));
    ensure!(matches!(
        ledger.record(&settle).await?,
        RecordStep::VersionTaken
    ));
    ensure!(wallet(&stack, &ledger, &alice).await? == (700, 0, HashMap::new()));
    ensure!(wallet(&stack, &ledger, &bob).await?.0 == 300);

    // A delivery that read the payment before it settled reserves once more, now that the hold
    // is paid out: it finds the version taken, reads the log, and gives its hold back.
    ensure!(matches!(
        ledger.record(&reserve).await?,
        RecordStep::VersionTaken
    ));
    ensure!(wallet(&stack, &ledger, &alice).await? == (700, 0, HashMap::new()));
    // The same, stopped before it reads the log: the deadline check gives it back, once.
    ensure!(stops_after_the_hold.record(&reserve).await.is_err());
    ensure!(wallet(&stack, &ledger, &alice).await? == (400, 300, held(&paid, 300)));
    let settled = after(&after(&reserved, &charge)?, &settle)?;
    ensure!(settled.status == PaymentStatus::Completed);
    ensure!(ledger.lift_stray_hold(&settled).await?, "a stray hold");
    ensure!(!ledger.lift_stray_hold(&settled).await?, "given back once");
    ensure!(wallet(&stack, &ledger, &alice).await? == (700, 0, HashMap::new()));

    // A release stopped after giving the funds back: the next delivery writes its log entry
    // alone, and gives nothing back twice.
    let compensated = pending(&ledger, &alice, &bob, 200).await?;
    let reserve = plan(SagaStep::ReserveFunds, &compensated)?;
    ensure!(matches!(
        ledger.record(&reserve).await?,
        RecordStep::Recorded
    ));
    let mut payment = after(&compensated, &reserve)?;
    let reason = FailureReason::InjectedFault {
        step: "charge_payment".into(),
    };
    let compensate = start_compensation(&payment, reason, Utc::now());
    ensure!(matches!(
        ledger.record(&compensate).await?,
        RecordStep::Recorded
    ));
    payment = after(&payment, &compensate)?;
    loop {
        let step = SagaStep::next_for(&payment).context("compensation ended early")?;
        let next = plan(step, &payment)?;
        if step == SagaStep::ReleaseReservation {
            ensure!(next.hold_alone().is_some());
            ensure!(stops_after_the_hold.record(&next).await.is_err());
            ensure!(wallet(&stack, &ledger, &alice).await? == (700, 0, HashMap::new()));
        }
        ensure!(matches!(ledger.record(&next).await?, RecordStep::Recorded));
        payment = after(&payment, &next)?;
        if payment.status.is_terminal() {
            break;
        }
    }
    ensure!(payment.status == PaymentStatus::Failed);
    ensure!(
        wallet(&stack, &ledger, &alice).await? == (700, 0, HashMap::new()),
        "given back once"
    );

    // A reservation that lost its version to the payment's failure (refused a moment before
    // funds arrived): it gives its hold back itself, as above.
    let raced = pending(&ledger, &alice, &bob, 500).await?;
    let short = FailureReason::InsufficientFunds {
        wallet_id: WalletId::parse(&alice)?,
    };
    let failed = fail_before_reservation(&raced, short.clone(), Utc::now());
    ensure!(matches!(
        ledger.record(&failed).await?,
        RecordStep::Recorded
    ));
    ensure!(matches!(
        ledger
            .record(&plan(SagaStep::ReserveFunds, &raced)?)
            .await?,
        RecordStep::VersionTaken
    ));
    ensure!(wallet(&stack, &ledger, &alice).await? == (700, 0, HashMap::new()));

    // The same race, the reservation stopped after its hold: the payment's deadline check gives
    // it back, once.
    let stray = pending(&ledger, &alice, &bob, 400).await?;
    let reserve = plan(SagaStep::ReserveFunds, &stray)?;
    ensure!(stops_after_the_hold.record(&reserve).await.is_err());
    let failed = fail_before_reservation(&stray, short, Utc::now());
    ensure!(matches!(
        ledger.record(&failed).await?,
        RecordStep::Recorded
    ));
    ensure!(wallet(&stack, &ledger, &alice).await? == (300, 400, held(&stray, 400)));
    let failed = after(&stray, &failed)?;
    ensure!(ledger.lift_stray_hold(&failed).await?, "a stray hold");
    ensure!(!ledger.lift_stray_hold(&failed).await?, "given back once");
    ensure!(wallet(&stack, &ledger, &alice).await? == (700, 0, HashMap::new()));

    // Too little available: refused, nothing held.
    let too_much = pending(&ledger, &alice, &bob, 701).await?;
    ensure!(matches!(
        ledger
            .record(&plan(SagaStep::ReserveFunds, &too_much)?)
            .await?,
        RecordStep::Refused(_)
    ));
    ensure!(wallet(&stack, &ledger, &alice).await? == (700, 0, HashMap::new()));
    stack
        .dynamodb
        .delete_table()
        .table_name(&payments)
        .send()
        .await?;
    Ok(())
}
