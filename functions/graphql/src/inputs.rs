//! The mutations' inputs, and how each becomes the domain's values (`TryFrom`, at this one
//! place): an id, amount, currency or key that cannot be read is a `BAD_USER_INPUT` naming it.
//! What the values then mean (may this caller move this wallet, is the amount allowed, was the
//! key used for other terms) is [`SelfService`](paysaga_services::self_service::SelfService)'s.

use async_graphql::{ID, InputObject};
use paysaga_domain::ids::{FundingInstrumentId, IdError, PayoutDestinationId};
use paysaga_domain::payment::Flow;
use paysaga_domain::{Currency, IdempotencyKey, Money, PaymentId, WalletId};
use paysaga_services::self_service::PaymentOrder;

use crate::errors::GraphqlError;
use crate::objects::{MinorUnits, Priority};

/// An amount to move: whole minor units of an ISO 4217 currency (`{minorUnits: 1250, currency:
/// "EUR"}` is 12.50 EUR).
#[derive(InputObject)]
pub struct MoneyInput {
    /// The amount in minor units of `currency` (cents for EUR), greater than zero.
    pub minor_units: MinorUnits,
    /// The ISO 4217 code, e.g. `EUR`.
    pub currency: String,
}

impl TryFrom<MoneyInput> for Money {
    type Error = GraphqlError;

    fn try_from(input: MoneyInput) -> Result<Self, GraphqlError> {
        let currency = currency(&input.currency)?;
        Money::new(input.minor_units.0, currency)
            .map_err(|error| GraphqlError::bad_user_input("invalid_amount", error.to_string()))
    }
}

/// A wallet to open.
#[derive(InputObject)]
pub struct OpenWalletInput {
    /// The ISO 4217 code of the one currency the wallet will hold.
    pub currency: String,
    /// A caller-chosen id (`wal_…`), for a wallet that has one elsewhere; one is generated
    /// when left out. Opening the same id again answers the same wallet.
    pub wallet_id: Option<ID>,
}

/// A wallet to open, as the domain takes it.
pub struct WalletOpening {
    pub id: Option<WalletId>,
    pub currency: Currency,
}

impl TryFrom<OpenWalletInput> for WalletOpening {
    type Error = GraphqlError;

    fn try_from(input: OpenWalletInput) -> Result<Self, GraphqlError> {
        Ok(Self {
            id: input.wallet_id.map(|id| wallet_id(&id)).transpose()?,
            currency: currency(&input.currency)?,
        })
    }
}

/// A transfer from one of the caller's wallets to another wallet.
#[derive(InputObject)]
pub struct SubmitPaymentInput {
    /// The caller's wallet that pays.
    pub from_wallet: ID,
    /// The wallet paid (anyone's).
    pub to_wallet: ID,
    pub amount: MoneyInput,
    #[graphql(default)]
    pub priority: Priority,
    /// Names the payment: the same key with the same terms answers the same payment (send it
    /// again when an answer is lost); with other terms it is a `CONFLICT`.
    pub idempotency_key: String,
}

/// Money into one of the caller's wallets from its funding instrument, which the processor
/// charges.
#[derive(InputObject)]
pub struct TopUpInput {
    /// The caller's wallet to fund.
    pub wallet: ID,
    /// The caller's funding instrument at the processor (`fi_…`).
    pub funding_instrument: ID,
    pub amount: MoneyInput,
    #[graphql(default)]
    pub priority: Priority,
    /// Names the payment: the same key with the same terms answers the same payment.
    pub idempotency_key: String,
}

/// Money out of one of the caller's wallets to its destination outside paysaga.
#[derive(InputObject)]
pub struct PayoutInput {
    /// The caller's wallet to pay out of.
    pub wallet: ID,
    /// The caller's destination at the processor (`dst_…`).
    pub destination: ID,
    pub amount: MoneyInput,
    #[graphql(default)]
    pub priority: Priority,
    /// Names the payment: the same key with the same terms answers the same payment.
    pub idempotency_key: String,
}

/// A payment as [`SelfService::submit`](paysaga_services::self_service::SelfService::submit)
/// takes it: the order and the key that names it.
pub struct PaymentSubmission {
    pub order: PaymentOrder,
    pub key: IdempotencyKey,
}

impl PaymentSubmission {
    fn new(
        flow: Flow,
        amount: MoneyInput,
        priority: Priority,
        key: &str,
    ) -> Result<Self, GraphqlError> {
        Ok(Self {
            order: PaymentOrder {
                flow,
                amount: amount.try_into()?,
                priority: priority.into(),
            },
            key: IdempotencyKey::parse(key).map_err(|error| {
                GraphqlError::bad_user_input("invalid_idempotency_key", error.to_string())
            })?,
        })
    }
}

impl TryFrom<SubmitPaymentInput> for PaymentSubmission {
    type Error = GraphqlError;

    fn try_from(input: SubmitPaymentInput) -> Result<Self, GraphqlError> {
        let flow = Flow::Transfer {
            from_wallet: wallet_id(&input.from_wallet)?,
            to_wallet: wallet_id(&input.to_wallet)?,
        };
        Self::new(flow, input.amount, input.priority, &input.idempotency_key)
    }
}

impl TryFrom<TopUpInput> for PaymentSubmission {
    type Error = GraphqlError;

    fn try_from(input: TopUpInput) -> Result<Self, GraphqlError> {
        let flow = Flow::TopUp {
            funding_instrument: id(&input.funding_instrument, FundingInstrumentId::parse)?,
            to_wallet: wallet_id(&input.wallet)?,
        };
        Self::new(flow, input.amount, input.priority, &input.idempotency_key)
    }
}

impl TryFrom<PayoutInput> for PaymentSubmission {
    type Error = GraphqlError;

    fn try_from(input: PayoutInput) -> Result<Self, GraphqlError> {
        let flow = Flow::Payout {
            from_wallet: wallet_id(&input.wallet)?,
            destination: id(&input.destination, PayoutDestinationId::parse)?,
        };
        Self::new(flow, input.amount, input.priority, &input.idempotency_key)
    }
}

/// A wallet id (`wal_…`), or a `BAD_USER_INPUT` saying what one looks like.
pub fn wallet_id(text: &str) -> Result<WalletId, GraphqlError> {
    id(text, WalletId::parse)
}

/// A payment id (`pay_…`), or a `BAD_USER_INPUT` saying what one looks like.
pub fn payment_id(text: &str) -> Result<PaymentId, GraphqlError> {
    id(text, PaymentId::parse)
}

fn id<T>(text: &str, parse: fn(&str) -> Result<T, IdError>) -> Result<T, GraphqlError> {
    parse(text).map_err(|error| GraphqlError::bad_user_input("invalid_id", error.to_string()))
}

fn currency(code: &str) -> Result<Currency, GraphqlError> {
    code.parse().map_err(|error: paysaga_domain::MoneyError| {
        GraphqlError::bad_user_input("invalid_currency", error.to_string())
    })
}
