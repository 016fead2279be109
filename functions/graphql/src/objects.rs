//! The GraphQL types a query answers: wallets, payments, money, a wallet's transactions and
//! payments as Relay connections, and the enums and scalars they use. Each is built from a
//! domain value (or a read model's item) and shows it; nothing here decides anything.

use async_graphql::{
    Context, Enum, ID, InputValueError, InputValueResult, Object, Scalar, ScalarType, SimpleObject,
    Value,
};
use chrono::Utc;
use paysaga_domain as domain;
use paysaga_domain::payment::FlowParties;
use paysaga_domain::read_models::{
    Cursor, Page, PageRequest, Revised, SignedAmount, TransactionEntry,
};

use crate::errors::GraphqlError;
use crate::limits::page_complexity;
use crate::schema::CallerScope;

/// An amount in minor units: the `MinorUnits` scalar (the schema's description is the one on
/// its `ScalarType` impl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinorUnits(pub u64);

/// Whole minor units of a currency (cents for EUR: `1250` EUR is 12.50 EUR), from 0 to 10^15,
/// as a JSON number. Never a float, and not `Int`, which GraphQL makes 32-bit (at most
/// 2,147,483,647 cents); every amount up to 10^15 is exact as a JSON number in any client
/// (below 2^53).
#[Scalar(name = "MinorUnits")]
impl ScalarType for MinorUnits {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(number) => number.as_u64().map(Self).ok_or_else(|| {
                InputValueError::custom("an amount is a whole, non-negative number of minor units")
            }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::Number(number) if number.is_u64())
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

/// A signed amount in minor units: the `SignedMinorUnits` scalar (described on its impl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedMinorUnits(pub i64);

/// Whole minor units with a sign: negative when money left the wallet. From -10^15 to 10^15,
/// as a JSON number (exact in any client, below 2^53); never a float.
#[Scalar(name = "SignedMinorUnits")]
impl ScalarType for SignedMinorUnits {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(number) => number
                .as_i64()
                .map(Self)
                .ok_or_else(|| InputValueError::custom("a whole number of minor units")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::Number(number) if number.is_i64())
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

/// A point in time: the `DateTime` scalar (described on its impl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(chrono::DateTime<Utc>);

/// A point in time, as RFC 3339 text in UTC with the fraction of a second it has
/// (`2026-11-25T12:00:00.123456789Z`).
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|time| Self(time.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom("an RFC 3339 date and time")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(time: chrono::DateTime<Utc>) -> Self {
        Self(time)
    }
}

/// An amount of money: whole minor units of an ISO 4217 currency. There is no floating point
/// anywhere.
#[derive(SimpleObject)]
pub struct Money {
    /// The amount in minor units of `currency` (cents for EUR).
    minor_units: MinorUnits,
    /// The ISO 4217 code, e.g. `EUR`.
    currency: String,
}

impl From<domain::Money> for Money {
    fn from(money: domain::Money) -> Self {
        Self {
            minor_units: MinorUnits(money.minor_units()),
            currency: money.currency().code().to_owned(),
        }
    }
}

/// An amount with a sign, as a wallet's transaction shows it: negative when money left the
/// wallet.
#[derive(SimpleObject)]
pub struct SignedMoney {
    /// The amount in minor units of `currency`, negative when money left the wallet.
    minor_units: SignedMinorUnits,
    /// The ISO 4217 code, e.g. `EUR`.
    currency: String,
}

impl From<SignedAmount> for SignedMoney {
    fn from(amount: SignedAmount) -> Self {
        Self {
            minor_units: SignedMinorUnits(amount.minor_units),
            currency: amount.currency.code().to_owned(),
        }
    }
}

/// Where a payment stands. `COMPLETED` and `FAILED` are final.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "paysaga_domain::PaymentStatus")]
pub enum PaymentStatus {
    /// Asked for; the saga has not reserved the funds yet.
    Pending,
    /// The payer's funds are held for the payment.
    FundsReserved,
    /// The payment processor did its part.
    Charged,
    /// Done: the money moved.
    Completed,
    /// A step failed for good: the saga is undoing what it did.
    Compensating,
    /// Failed, and nothing moved (see `failure`).
    Failed,
}

/// Which way a payment moves money.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "PaymentKind", remote = "paysaga_domain::payment::FlowKind")]
pub enum FlowKind {
    /// From one wallet to another (`fromWallet` to `toWallet`).
    Transfer,
    /// Into a wallet (`toWallet`) from its holder's funding instrument, which the processor
    /// charges.
    TopUp,
    /// Out of a wallet (`fromWallet`) to its holder's destination outside paysaga.
    Payout,
}

/// How urgently a payment is worked on: an urgent payment has a queue of its own.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(remote = "paysaga_domain::Priority")]
pub enum Priority {
    #[default]
    Ordinary,
    Urgent,
}

/// What a line of a wallet's history is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "paysaga_domain::read_models::TransactionKind")]
pub enum TransactionKind {
    /// An operator's deposit.
    Deposit,
    /// A transfer this wallet paid.
    PaymentSent,
    /// A transfer this wallet was paid.
    PaymentReceived,
    /// Money in from the holder's funding instrument.
    TopUp,
    /// Money out to the holder's destination.
    Payout,
}

/// A wallet's side of a payment.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "paysaga_domain::read_models::PaymentRole")]
pub enum PaymentRole {
    /// The payment debits the wallet (a transfer's payer, a payout's wallet).
    Payer,
    /// The payment credits the wallet (a transfer's payee, a top-up's wallet).
    Payee,
}

/// Why a payment failed.
#[derive(SimpleObject)]
pub struct PaymentFailure {
    /// Stable and machine-readable: `insufficient_funds`, `payment_declined`, …
    code: String,
    /// A sentence for people.
    message: String,
}

impl From<&domain::FailureReason> for PaymentFailure {
    fn from(reason: &domain::FailureReason) -> Self {
        Self {
            code: reason.code().to_owned(),
            message: reason.to_string(),
        }
    }
}

/// A wallet, as its owner reads it.
pub struct Wallet(domain::Wallet);

impl From<domain::Wallet> for Wallet {
    fn from(wallet: domain::Wallet) -> Self {
        Self(wallet)
    }
}

/// A wallet of the caller's: its balances as they are at the read, and its history (the read
/// models, which trail the ledger by a moment). Holds one currency.
#[Object]
impl Wallet {
    /// The wallet's id, `wal_…`.
    async fn id(&self) -> ID {
        ID(self.0.id().to_string())
    }

    /// The ISO 4217 code of the one currency the wallet holds.
    async fn currency(&self) -> &str {
        self.0.currency().code()
    }

    /// What the wallet can pay now.
    async fn available(&self) -> Money {
        self.0.available().into()
    }

    /// What payments under way hold, until they complete or fail.
    async fn reserved(&self) -> Money {
        self.0.reserved().into()
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at().into()
    }

    /// The wallet's transactions, newest first, a page at a time: `first` 1 to 100, `after`
    /// the `endCursor` of the page before.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn transactions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<TransactionConnection, GraphqlError> {
        let page = page_request(first, after)?;
        let caller = CallerScope::of(ctx)?;
        let page = caller
            .service()
            .transactions_of(caller.owner(), &self.0, &page)
            .await?;
        Ok(connection(page, transaction_position, Transaction::from))
    }

    /// The payments that debit or credit the wallet, newest first, a page at a time: `first`
    /// 1 to 100, `after` the `endCursor` of the page before.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn payments(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<WalletPaymentConnection, GraphqlError> {
        let page = page_request(first, after)?;
        let caller = CallerScope::of(ctx)?;
        let page = caller
            .service()
            .payments_of_wallet(caller.owner(), &self.0, &page)
            .await?;
        Ok(connection(page, payment_position, WalletPayment::from))
    }
}

/// A payment, readable by the owner of any wallet it touches. The wallets and the processor's
/// references it names are ids: the other side of a transfer is someone else's wallet. A
/// party the payment's kind does not have is null.
#[derive(SimpleObject)]
pub struct Payment {
    /// The payment's id, `pay_…`.
    id: ID,
    status: PaymentStatus,
    kind: FlowKind,
    /// The wallet debited (a transfer's payer, a payout's wallet).
    from_wallet: Option<ID>,
    /// The wallet credited (a transfer's payee, a top-up's wallet).
    to_wallet: Option<ID>,
    /// What a top-up charges (`fi_…`).
    funding_instrument: Option<ID>,
    /// Where a payout goes (`dst_…`).
    destination: Option<ID>,
    amount: Money,
    priority: Priority,
    /// Why it failed, once it has.
    failure: Option<PaymentFailure>,
    created_at: DateTime,
    updated_at: DateTime,
}

impl From<domain::Payment> for Payment {
    fn from(payment: domain::Payment) -> Self {
        let request = &payment.request;
        let parties = Parties::of(request.flow());
        Self {
            id: ID(request.payment_id().to_string()),
            status: payment.status.into(),
            kind: request.kind().into(),
            from_wallet: parties.from_wallet,
            to_wallet: parties.to_wallet,
            funding_instrument: parties.funding_instrument,
            destination: parties.destination,
            amount: request.amount().into(),
            priority: request.priority().into(),
            failure: payment.failure.as_ref().map(PaymentFailure::from),
            created_at: payment.created_at.into(),
            updated_at: payment.updated_at.into(),
        }
    }
}

/// A flow's parties as ids, null where the flow has none.
struct Parties {
    from_wallet: Option<ID>,
    to_wallet: Option<ID>,
    funding_instrument: Option<ID>,
    destination: Option<ID>,
}

impl Parties {
    fn of(flow: &domain::payment::Flow) -> Self {
        let parties = FlowParties::from(flow.clone());
        let id = |text: String| ID(text);
        Self {
            from_wallet: parties.from_wallet.map(String::from).map(id),
            to_wallet: parties.to_wallet.map(String::from).map(id),
            funding_instrument: parties.funding_instrument.map(String::from).map(id),
            destination: parties.destination.map(String::from).map(id),
        }
    }
}

/// One line of a wallet's history (the transactions read model).
#[derive(SimpleObject)]
pub struct Transaction {
    /// The payment's id (`pay_…`) or the deposit's (`dep_…`).
    id: ID,
    kind: TransactionKind,
    /// The other wallet of a transfer.
    counterparty: Option<ID>,
    /// Positive into the wallet, negative out of it.
    amount: SignedMoney,
    /// A deposit is `COMPLETED`; a payment is `PENDING` until its outcome.
    status: PaymentStatus,
    failure: Option<PaymentFailure>,
    /// When it was asked for: the payment's request time, the deposit's time.
    at: DateTime,
    /// When its status last changed.
    updated_at: DateTime,
}

impl From<TransactionEntry> for Transaction {
    fn from(entry: TransactionEntry) -> Self {
        Self {
            id: ID(entry.transaction_id),
            kind: entry.kind.into(),
            counterparty: entry.counterparty.map(|wallet| ID(wallet.to_string())),
            amount: entry.amount.into(),
            status: entry.status.into(),
            failure: entry.failure.as_ref().map(PaymentFailure::from),
            at: entry.at.into(),
            updated_at: entry.updated_at.into(),
        }
    }
}

/// A payment in the list of a wallet's payments (the payments read model).
#[derive(SimpleObject)]
pub struct WalletPayment {
    /// The payment's id, `pay_…` (`payment(id:)` reads it whole).
    payment_id: ID,
    /// The wallet's side of it.
    role: PaymentRole,
    kind: FlowKind,
    /// The wallet debited (a transfer's payer, a payout's wallet).
    from_wallet: Option<ID>,
    /// The wallet credited (a transfer's payee, a top-up's wallet).
    to_wallet: Option<ID>,
    /// What a top-up charges (`fi_…`).
    funding_instrument: Option<ID>,
    /// Where a payout goes (`dst_…`).
    destination: Option<ID>,
    amount: Money,
    status: PaymentStatus,
    failure: Option<PaymentFailure>,
    requested_at: DateTime,
    updated_at: DateTime,
}

impl From<domain::read_models::WalletPayment> for WalletPayment {
    fn from(payment: domain::read_models::WalletPayment) -> Self {
        let parties = Parties::of(&payment.flow);
        Self {
            payment_id: ID(payment.payment_id.to_string()),
            role: payment.role.into(),
            kind: payment.flow.kind().into(),
            from_wallet: parties.from_wallet,
            to_wallet: parties.to_wallet,
            funding_instrument: parties.funding_instrument,
            destination: parties.destination,
            amount: payment.amount.into(),
            status: payment.status.into(),
            failure: payment.failure.as_ref().map(PaymentFailure::from),
            requested_at: payment.requested_at.into(),
            updated_at: payment.updated_at.into(),
        }
    }
}

/// Where a page stands in its list (Relay's `PageInfo`).
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether older items follow: pass `endCursor` as `after` for them.
    has_next_page: bool,
    /// The cursor of the page's last item; null on an empty page.
    end_cursor: Option<String>,
}

/// A transaction and where it stands in the list.
#[derive(SimpleObject)]
pub struct TransactionEdge {
    /// Pass it as `after` for the items older than this one.
    cursor: String,
    node: Transaction,
}

/// A page of a wallet's transactions, newest first.
#[derive(SimpleObject)]
pub struct TransactionConnection {
    edges: Vec<TransactionEdge>,
    page_info: PageInfo,
}

/// A wallet's payment and where it stands in the list.
#[derive(SimpleObject)]
pub struct WalletPaymentEdge {
    /// Pass it as `after` for the items older than this one.
    cursor: String,
    node: WalletPayment,
}

/// A page of a wallet's payments, newest first.
#[derive(SimpleObject)]
pub struct WalletPaymentConnection {
    edges: Vec<WalletPaymentEdge>,
    page_info: PageInfo,
}

/// The edges and page info of a read model's page: each item's cursor is its position in its
/// list, where the next page starts after it (as the store's own `next` cursor is made).
fn connection<T, N, C: FromEdges<N>>(
    page: Page<Revised<T>>,
    position: fn(&T) -> String,
    node: fn(T) -> N,
) -> C {
    let edges: Vec<(String, N)> = page
        .items
        .into_iter()
        .map(|item| {
            let cursor = Cursor::after(&position(&item.entry)).encode();
            (cursor, node(item.entry))
        })
        .collect();
    let page_info = PageInfo {
        has_next_page: page.next.is_some(),
        end_cursor: edges.last().map(|(cursor, _)| cursor.clone()),
    };
    C::from_edges(edges, page_info)
}

/// A connection made of its edges and page info.
trait FromEdges<N> {
    fn from_edges(edges: Vec<(String, N)>, page_info: PageInfo) -> Self;
}

impl FromEdges<Transaction> for TransactionConnection {
    fn from_edges(edges: Vec<(String, Transaction)>, page_info: PageInfo) -> Self {
        Self {
            edges: edges
                .into_iter()
                .map(|(cursor, node)| TransactionEdge { cursor, node })
                .collect(),
            page_info,
        }
    }
}

impl FromEdges<WalletPayment> for WalletPaymentConnection {
    fn from_edges(edges: Vec<(String, WalletPayment)>, page_info: PageInfo) -> Self {
        Self {
            edges: edges
                .into_iter()
                .map(|(cursor, node)| WalletPaymentEdge { cursor, node })
                .collect(),
            page_info,
        }
    }
}

/// A transaction's order key in its list, as the read models place it.
fn transaction_position(entry: &TransactionEntry) -> String {
    entry.order()
}

/// A wallet's payment's order key in its list, as the read models place it.
fn payment_position(payment: &domain::read_models::WalletPayment) -> String {
    payment.order()
}

/// `first` and `after` as a page request, or a `BAD_USER_INPUT` saying what is wrong.
fn page_request(first: Option<i32>, after: Option<String>) -> Result<PageRequest, GraphqlError> {
    let out_of_range = || {
        GraphqlError::bad_user_input(
            "invalid_page_size",
            format!("first must be from 1 to {}", PageRequest::MAX_LIMIT),
        )
    };
    let limit = first
        .map(|first| u32::try_from(first).map_err(|_| out_of_range()))
        .transpose()?;
    let after = after
        .as_deref()
        .map(Cursor::decode)
        .transpose()
        .map_err(|error| GraphqlError::bad_user_input("invalid_cursor", error.to_string()))?;
    PageRequest::new(limit, after).map_err(|_| out_of_range())
}
