//! Values for tests, here and in the crates that use the domain (feature `test-support`).

use chrono::Utc;

use crate::events::{DomainEvent, FundsDeposited};
use crate::{DepositId, FailureReason, Money, PaymentId, PaymentRequest, PaymentStatus, WalletId};

/// A request of `minor_units` euro cents from `wal_alice` to `wal_bob`, as `pay_test`.
pub fn request(minor_units: u64) -> PaymentRequest {
    PaymentRequest::new(
        PaymentId::parse("pay_test").unwrap(),
        WalletId::parse("wal_alice").unwrap(),
        WalletId::parse("wal_bob").unwrap(),
        Money::new(minor_units, "EUR".parse().unwrap()).unwrap(),
    )
    .unwrap()
}

pub fn eur(minor_units: u64) -> Money {
    Money::new(minor_units, "EUR".parse().expect("EUR is a currency")).expect("in range")
}

pub fn wallet(id: &str) -> WalletId {
    WalletId::parse(id).expect("a wallet id")
}

pub fn deposit(id: &str, wallet_id: &str, minor_units: u64) -> DomainEvent {
    DomainEvent::funds_deposited(
        FundsDeposited {
            deposit_id: DepositId::parse(id).expect("a deposit id"),
            wallet_id: wallet(wallet_id),
            amount: eur(minor_units),
            issued_by: Some(operator().issued_by),
            reason: Some(operator().reason),
        },
        Utc::now(),
    )
}

/// An operator (`ops-test`) and the reason they give.
pub fn operator() -> crate::OperatorRecord {
    crate::OperatorRecord {
        issued_by: crate::Owner::parse("ops-test").expect("an owner"),
        reason: crate::OperatorReason::parse("test funds").expect("a reason"),
    }
}

fn request_between(id: &str, from: &str, to: &str, minor_units: u64) -> PaymentRequest {
    PaymentRequest::new(
        PaymentId::parse(id).expect("a payment id"),
        wallet(from),
        wallet(to),
        eur(minor_units),
    )
    .expect("a valid request")
}

/// The request and the outcome of a payment that ended with `status`.
pub fn payment(
    id: &str,
    from: &str,
    to: &str,
    minor_units: u64,
    status: PaymentStatus,
) -> (DomainEvent, DomainEvent) {
    let request = request_between(id, from, to, minor_units);
    let requested = DomainEvent::payment_requested(&request, Utc::now());
    let mut payment = crate::Payment::from_log(&[crate::PaymentLogEntry::requested(
        request.clone(),
        Utc::now(),
    )])
    .expect("a log of one request");
    payment.status = status;
    payment.version = 4;
    if status == PaymentStatus::Failed {
        payment.failure = Some(FailureReason::InsufficientFunds {
            wallet_id: wallet(from),
        });
    }
    let outcome = DomainEvent::payment_outcome(&payment).expect("a terminal payment");
    (requested, outcome)
}

/// The sample Lambda event `events/lambda/<name>`, read as a `T` (an `SqsEvent`, a JSON value).
pub fn lambda_event<T: serde::de::DeserializeOwned>(name: &str) -> T {
    // This crate sits in shared/domain.
    let path = format!("{}/../../events/lambda/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path}: {error}"))
}
