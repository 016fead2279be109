//! The WalletService's messages to domain values and back: every request field is parsed here,
//! once, into a type that cannot hold a bad value ([`WalletId`], [`Money`], [`Flow`], ...);
//! every answer is shaped here from the domain's values.

use paysaga_domain::ids::{FundingInstrumentId, IdError, PayoutDestinationId};
use paysaga_domain::payment::Flow;
use paysaga_domain::{
    Currency, IdempotencyKey, Money, MoneyError, Payment, PaymentStatus, Priority, Wallet, WalletId,
};
use paysaga_services::self_service::PaymentOrder;
use paysaga_wallet_proto::buffa::{EnumValue, MessageField};
use paysaga_wallet_proto::buffa_types::google::protobuf::Timestamp;
use paysaga_wallet_proto::oneof::{Flow as WireFlow, Movement};
use paysaga_wallet_proto::v1;

/// Why a request's fields are not what the service takes: an `invalid_argument`, whatever the
/// wallets or payments are. Each message names the field, in the `.proto`'s spelling.
#[derive(Debug, thiserror::Error)]
pub enum InvalidRequest {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{field}: {source}")]
    Id {
        field: &'static str,
        source: IdError,
    },
    #[error("amount: {0}")]
    Amount(MoneyError),
    #[error("priority: {0} is not a priority (PRIORITY_ORDINARY or PRIORITY_URGENT)")]
    Priority(i32),
    #[error("one of top_up and payout is required")]
    NoMovement,
}

/// A payment a caller asks for, and the key that makes asking again harmless.
#[derive(Debug)]
pub struct Submission {
    pub order: PaymentOrder,
    pub key: IdempotencyKey,
}

/// A transfer between two wallets.
impl TryFrom<v1::TransferFundsRequest> for Submission {
    type Error = InvalidRequest;

    fn try_from(request: v1::TransferFundsRequest) -> Result<Self, InvalidRequest> {
        let flow = Flow::Transfer {
            from_wallet: id("from_wallet_id", &request.from_wallet_id, WalletId::parse)?,
            to_wallet: id("to_wallet_id", &request.to_wallet_id, WalletId::parse)?,
        };
        submission(
            flow,
            request.amount.into_option(),
            &request.idempotency_key,
            request.priority,
        )
    }
}

/// A top-up into the wallet, or a payout out of it.
impl TryFrom<v1::UpdateBalanceRequest> for Submission {
    type Error = InvalidRequest;

    fn try_from(request: v1::UpdateBalanceRequest) -> Result<Self, InvalidRequest> {
        let wallet = id("wallet_id", &request.wallet_id, WalletId::parse)?;
        let flow = match request.movement {
            Some(Movement::TopUp(top_up)) => Flow::TopUp {
                funding_instrument: id(
                    "top_up.funding_instrument_id",
                    &top_up.funding_instrument_id,
                    FundingInstrumentId::parse,
                )?,
                to_wallet: wallet,
            },
            Some(Movement::Payout(payout)) => Flow::Payout {
                from_wallet: wallet,
                destination: id(
                    "payout.destination_id",
                    &payout.destination_id,
                    PayoutDestinationId::parse,
                )?,
            },
            None => return Err(InvalidRequest::NoMovement),
        };
        submission(
            flow,
            request.amount.into_option(),
            &request.idempotency_key,
            request.priority,
        )
    }
}

fn submission(
    flow: Flow,
    amount: Option<v1::Money>,
    key: &str,
    priority: EnumValue<v1::Priority>,
) -> Result<Submission, InvalidRequest> {
    let order = PaymentOrder {
        flow,
        amount: money(amount)?,
        priority: self::priority(priority)?,
    };
    if key.is_empty() {
        // A payment retried without a key (its answer lost) would be made twice.
        return Err(InvalidRequest::Missing("idempotency_key"));
    }
    let key = IdempotencyKey::parse(key).map_err(|source| InvalidRequest::Id {
        field: "idempotency_key",
        source,
    })?;
    Ok(Submission { order, key })
}

/// An id field, or why it is not one.
pub fn id<T>(
    field: &'static str,
    text: &str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<T, InvalidRequest> {
    if text.is_empty() {
        return Err(InvalidRequest::Missing(field));
    }
    parse(text).map_err(|source| InvalidRequest::Id { field, source })
}

/// An amount: up to the largest paysaga takes, in a currency with minor units. Whether it may
/// be moved (greater than zero, within the limits) is the service's rule, not the wire's.
fn money(amount: Option<v1::Money>) -> Result<Money, InvalidRequest> {
    let amount = amount.ok_or(InvalidRequest::Missing("amount"))?;
    let currency: Currency = amount.currency.parse().map_err(InvalidRequest::Amount)?;
    Money::new(amount.minor_units, currency).map_err(InvalidRequest::Amount)
}

fn priority(priority: EnumValue<v1::Priority>) -> Result<Priority, InvalidRequest> {
    match priority {
        EnumValue::Known(v1::Priority::PRIORITY_UNSPECIFIED | v1::Priority::PRIORITY_ORDINARY) => {
            Ok(Priority::Ordinary)
        }
        EnumValue::Known(v1::Priority::PRIORITY_URGENT) => Ok(Priority::Urgent),
        EnumValue::Unknown(value) => Err(InvalidRequest::Priority(value)),
    }
}

/// A wallet's balances: available, reserved for payments in flight, and their total.
pub fn balance(wallet: &Wallet) -> v1::GetBalanceResponse {
    let currency = wallet.currency();
    v1::GetBalanceResponse {
        wallet_id: wallet.id().to_string(),
        available: MessageField::some(wire_money(wallet.available())),
        reserved: MessageField::some(wire_money(wallet.reserved())),
        // Each part is at most MAX_MINOR_UNITS, so the sum fits a u64 (and is no `Money`, which
        // stops at that maximum).
        total: MessageField::some(v1::Money {
            minor_units: wallet.balance_minor_units(),
            currency: currency.code().to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A payment as its log tells it.
pub fn payment(payment: &Payment) -> v1::Payment {
    let request = &payment.request;
    let flow = match request.flow() {
        Flow::Transfer {
            from_wallet,
            to_wallet,
        } => WireFlow::from(v1::TransferFlow {
            from_wallet_id: from_wallet.to_string(),
            to_wallet_id: to_wallet.to_string(),
            ..Default::default()
        }),
        Flow::TopUp {
            funding_instrument,
            to_wallet,
        } => WireFlow::from(v1::TopUpFlow {
            funding_instrument_id: funding_instrument.to_string(),
            to_wallet_id: to_wallet.to_string(),
            ..Default::default()
        }),
        Flow::Payout {
            from_wallet,
            destination,
        } => WireFlow::from(v1::PayoutFlow {
            from_wallet_id: from_wallet.to_string(),
            destination_id: destination.to_string(),
            ..Default::default()
        }),
    };
    v1::Payment {
        payment_id: request.payment_id().to_string(),
        status: EnumValue::Known(status(payment.status)),
        flow: Some(flow),
        amount: MessageField::some(wire_money(request.amount())),
        priority: EnumValue::Known(match request.priority() {
            Priority::Ordinary => v1::Priority::PRIORITY_ORDINARY,
            Priority::Urgent => v1::Priority::PRIORITY_URGENT,
        }),
        failure: payment
            .failure
            .as_ref()
            .map(|reason| v1::PaymentFailure {
                code: reason.code().to_owned(),
                message: reason.to_string(),
                ..Default::default()
            })
            .into(),
        version: payment.version,
        created_at: MessageField::some(Timestamp::from(payment.created_at)),
        updated_at: MessageField::some(Timestamp::from(payment.updated_at)),
        ..Default::default()
    }
}

fn status(status: PaymentStatus) -> v1::PaymentStatus {
    match status {
        PaymentStatus::Pending => v1::PaymentStatus::PAYMENT_STATUS_PENDING,
        PaymentStatus::FundsReserved => v1::PaymentStatus::PAYMENT_STATUS_FUNDS_RESERVED,
        PaymentStatus::Charged => v1::PaymentStatus::PAYMENT_STATUS_CHARGED,
        PaymentStatus::Completed => v1::PaymentStatus::PAYMENT_STATUS_COMPLETED,
        PaymentStatus::Compensating => v1::PaymentStatus::PAYMENT_STATUS_COMPENSATING,
        PaymentStatus::Failed => v1::PaymentStatus::PAYMENT_STATUS_FAILED,
    }
}

fn wire_money(money: Money) -> v1::Money {
    v1::Money {
        minor_units: money.minor_units(),
        currency: money.currency().code().to_owned(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor_units: u64) -> v1::Money {
        v1::Money {
            minor_units,
            currency: "EUR".into(),
            ..Default::default()
        }
    }

    fn transfer() -> v1::TransferFundsRequest {
        v1::TransferFundsRequest {
            from_wallet_id: "wal_a".into(),
            to_wallet_id: "wal_b".into(),
            amount: eur(250).into(),
            idempotency_key: "order-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_transfer_request_becomes_an_order_and_its_key() {
        let submission = Submission::try_from(v1::TransferFundsRequest {
            priority: EnumValue::Known(v1::Priority::PRIORITY_URGENT),
            ..transfer()
        })
        .expect("valid");
        assert_eq!(submission.order.amount.minor_units(), 250);
        assert_eq!(submission.order.priority, Priority::Urgent);
        assert_eq!(submission.key.as_str(), "order-1");
        assert!(matches!(submission.order.flow, Flow::Transfer { .. }));
        let ordinary = Submission::try_from(transfer()).expect("valid");
        assert_eq!(ordinary.order.priority, Priority::Ordinary);
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (
                v1::TransferFundsRequest {
                    from_wallet_id: String::new(),
                    ..transfer()
                },
                "from_wallet_id is required",
            ),
            (
                v1::TransferFundsRequest {
                    to_wallet_id: "bob".into(),
                    ..transfer()
                },
                "to_wallet_id: a wallet id must start with 'wal_'",
            ),
            (
                v1::TransferFundsRequest {
                    amount: MessageField::none(),
                    ..transfer()
                },
                "amount is required",
            ),
            (
                v1::TransferFundsRequest {
                    amount: MessageField::some(v1::Money {
                        minor_units: 1,
                        currency: "XXX".into(),
                        ..Default::default()
                    }),
                    ..transfer()
                },
                "amount: 'XXX' is not",
            ),
            (
                v1::TransferFundsRequest {
                    idempotency_key: String::new(),
                    ..transfer()
                },
                "idempotency_key is required",
            ),
            (
                v1::TransferFundsRequest {
                    priority: EnumValue::Unknown(7),
                    ..transfer()
                },
                "priority: 7 is not a priority",
            ),
        ];
        for (request, expected) in cases {
            let error = Submission::try_from(request).expect_err(expected);
            assert!(error.to_string().starts_with(expected), "{error}");
        }
    }

    #[test]
    fn an_update_is_a_top_up_or_a_payout_of_the_wallet() {
        let update = |movement: Option<Movement>| v1::UpdateBalanceRequest {
            wallet_id: "wal_a".into(),
            movement,
            amount: eur(100).into(),
            idempotency_key: "k".into(),
            ..Default::default()
        };
        let top_up = Submission::try_from(update(Some(Movement::from(v1::TopUp {
            funding_instrument_id: "fi_card".into(),
            ..Default::default()
        }))))
        .expect("a top-up");
        assert!(matches!(
            top_up.order.flow,
            Flow::TopUp { ref to_wallet, .. } if to_wallet.as_str() == "wal_a"
        ));
        let payout = Submission::try_from(update(Some(Movement::from(v1::Payout {
            destination_id: "dst_bank".into(),
            ..Default::default()
        }))))
        .expect("a payout");
        assert!(matches!(
            payout.order.flow,
            Flow::Payout { ref from_wallet, .. } if from_wallet.as_str() == "wal_a"
        ));
        let neither = Submission::try_from(update(None)).expect_err("no movement");
        assert!(matches!(neither, InvalidRequest::NoMovement));
    }
}
