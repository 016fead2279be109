//! Payments and their append-only log. A payment's state is never stored on its own: it is
//! derived from the log entries, version 1 (the request) upwards.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::failure::FailureReason;
use super::ids::{
    ChargeId, FundingInstrumentId, IdempotencyKey, PaymentId, PayoutDestinationId, WalletId,
};
use super::ledger::{Account, Transfer, WorldAccount};
use super::money::{Currency, Money};

/// Why a payment request was refused before anything happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRequestError {
    #[error("a payment needs two different wallets")]
    SameWallet,
    #[error("the amount of a payment must be greater than zero")]
    ZeroAmount,
    #[error(
        "a payment is from_wallet and to_wallet (a transfer), funding_instrument and to_wallet \
         (a top-up), or from_wallet and destination (a payout)"
    )]
    UnknownFlow,
}

/// Which way a payment moves money. One saga runs all three: it holds what the payment will
/// debit, has the processor do its part, then settles with one transfer of the ledger.
///
/// | flow | processor's part | settles as |
/// |---|---|---|
/// | transfer | charge | payer's wallet → payee's wallet |
/// | top-up | charge the funding instrument | `world:funding` → the wallet |
/// | payout | pay the destination | the wallet → `world:payouts` |
///
/// On the wire the flow is which parties the request names (`from_wallet` and `to_wallet`,
/// `funding_instrument` and `to_wallet`, or `from_wallet` and `destination`), so a transfer
/// reads as every payment did before top-ups and payouts existed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "FlowParties", into = "FlowParties")]
pub enum Flow {
    /// From one wallet to another.
    Transfer {
        from_wallet: WalletId,
        to_wallet: WalletId,
    },
    /// Into a wallet, from its holder's funding instrument, which the processor charges.
    TopUp {
        funding_instrument: FundingInstrumentId,
        to_wallet: WalletId,
    },
    /// Out of a wallet, to its holder's destination outside paysaga, which the processor pays.
    Payout {
        from_wallet: WalletId,
        destination: PayoutDestinationId,
    },
}

/// The three flows by name, as the API and the read models show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    Transfer,
    TopUp,
    Payout,
}

impl FlowKind {
    pub const ALL: [FlowKind; 3] = [Self::Transfer, Self::TopUp, Self::Payout];

    /// `transfer`, `top_up`, `payout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::TopUp => "top_up",
            Self::Payout => "payout",
        }
    }
}

/// A flow's parties as the wire carries them: the pairs [`Flow`] names, nothing else.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlowParties {
    /// The wallet debited (a transfer's payer, a payout's wallet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_wallet: Option<WalletId>,
    /// The wallet credited (a transfer's payee, a top-up's wallet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_wallet: Option<WalletId>,
    /// What a top-up charges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_instrument: Option<FundingInstrumentId>,
    /// Where a payout goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<PayoutDestinationId>,
}

impl TryFrom<FlowParties> for Flow {
    type Error = PaymentRequestError;
    fn try_from(parties: FlowParties) -> Result<Self, Self::Error> {
        let flow = match parties {
            FlowParties {
                from_wallet: Some(from_wallet),
                to_wallet: Some(to_wallet),
                funding_instrument: None,
                destination: None,
            } => Self::Transfer {
                from_wallet,
                to_wallet,
            },
            FlowParties {
                from_wallet: None,
                to_wallet: Some(to_wallet),
                funding_instrument: Some(funding_instrument),
                destination: None,
            } => Self::TopUp {
                funding_instrument,
                to_wallet,
            },
            FlowParties {
                from_wallet: Some(from_wallet),
                to_wallet: None,
                funding_instrument: None,
                destination: Some(destination),
            } => Self::Payout {
                from_wallet,
                destination,
            },
            _ => return Err(PaymentRequestError::UnknownFlow),
        };
        if let Self::Transfer {
            from_wallet,
            to_wallet,
        } = &flow
            && from_wallet == to_wallet
        {
            return Err(PaymentRequestError::SameWallet);
        }
        Ok(flow)
    }
}

impl From<Flow> for FlowParties {
    fn from(flow: Flow) -> Self {
        match flow {
            Flow::Transfer {
                from_wallet,
                to_wallet,
            } => Self {
                from_wallet: Some(from_wallet),
                to_wallet: Some(to_wallet),
                ..Self::default()
            },
            Flow::TopUp {
                funding_instrument,
                to_wallet,
            } => Self {
                to_wallet: Some(to_wallet),
                funding_instrument: Some(funding_instrument),
                ..Self::default()
            },
            Flow::Payout {
                from_wallet,
                destination,
            } => Self {
                from_wallet: Some(from_wallet),
                destination: Some(destination),
                ..Self::default()
            },
        }
    }
}

impl schemars::JsonSchema for Flow {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        FlowParties::schema_name()
    }

    /// The parties' properties, to be flattened into a payment's (whose description stands).
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = FlowParties::json_schema(generator);
        schema.remove("description");
        schema
    }
}

impl Flow {
    pub fn kind(&self) -> FlowKind {
        match self {
            Self::Transfer { .. } => FlowKind::Transfer,
            Self::TopUp { .. } => FlowKind::TopUp,
            Self::Payout { .. } => FlowKind::Payout,
        }
    }

    /// The wallet the payment debits, if it debits one (not a top-up).
    pub fn from_wallet(&self) -> Option<&WalletId> {
        match self {
            Self::Transfer { from_wallet, .. } | Self::Payout { from_wallet, .. } => {
                Some(from_wallet)
            }
            Self::TopUp { .. } => None,
        }
    }

    /// The wallet the payment credits, if it credits one (not a payout).
    pub fn to_wallet(&self) -> Option<&WalletId> {
        match self {
            Self::Transfer { to_wallet, .. } | Self::TopUp { to_wallet, .. } => Some(to_wallet),
            Self::Payout { .. } => None,
        }
    }

    /// The wallet whose holder asks for the payment and pays for it: a transfer's payer, the
    /// wallet a top-up funds (its holder's instrument is charged), the wallet a payout empties.
    /// Idempotency keys are scoped to it, and only its owner may ask.
    pub fn payer_wallet(&self) -> &WalletId {
        match self {
            Self::Transfer { from_wallet, .. } | Self::Payout { from_wallet, .. } => from_wallet,
            Self::TopUp { to_wallet, .. } => to_wallet,
        }
    }

    /// Every wallet the payment touches, the debited one first.
    pub fn wallet_ids(&self) -> Vec<WalletId> {
        self.from_wallet()
            .into_iter()
            .chain(self.to_wallet())
            .cloned()
            .collect()
    }

    /// The account debited when the payment settles: a wallet, or for a top-up the outside
    /// world's funding account in `currency`.
    pub fn debit_account(&self, currency: Currency) -> Account {
        match self.from_wallet() {
            Some(wallet) => Account::wallet(wallet.clone()),
            None => Account::world(WorldAccount::Funding, currency),
        }
    }

    /// The account credited when the payment settles: a wallet, or for a payout the outside
    /// world's payouts account in `currency`.
    pub fn credit_account(&self, currency: Currency) -> Account {
        match self.to_wallet() {
            Some(wallet) => Account::wallet(wallet.clone()),
            None => Account::world(WorldAccount::Payouts, currency),
        }
    }
}

/// How urgently a payment should be worked on. An urgent payment travels on its own queue,
/// with its own concurrency, so a backlog of ordinary payments does not delay it.
///
/// An additive field of the contract: always written, and a request without it is ordinary
/// (what every payment was before priorities existed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Ordinary,
    Urgent,
}

/// Read by hand only for the error, which names what a priority may be whatever was sent
/// (`invalid value: string "asap", expected a payment priority, "ordinary" or "urgent"`).
impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PriorityVisitor;
        impl serde::de::Visitor<'_> for PriorityVisitor {
            type Value = Priority;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str(r#"a payment priority, "ordinary" or "urgent""#)
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Priority, E> {
                match value {
                    "ordinary" => Ok(Priority::Ordinary),
                    "urgent" => Ok(Priority::Urgent),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_str(PriorityVisitor)
    }
}

/// What a client asked for: move `amount` the way its [`Flow`] says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPaymentRequest", into = "RawPaymentRequest")]
pub struct PaymentRequest {
    payment_id: PaymentId,
    flow: Flow,
    amount: Money,
    priority: Priority,
}

#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "PaymentRequest")]
struct RawPaymentRequest {
    payment_id: PaymentId,
    #[serde(flatten)]
    flow: Flow,
    amount: Money,
    /// `urgent` payments have a queue of their own; missing means `ordinary`.
    #[serde(default)]
    priority: Priority,
}

/// The wire shape (the wallets must also differ, which the schema does not say).
impl schemars::JsonSchema for PaymentRequest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RawPaymentRequest::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawPaymentRequest::json_schema(generator)
    }
}

impl TryFrom<RawPaymentRequest> for PaymentRequest {
    type Error = PaymentRequestError;
    fn try_from(raw: RawPaymentRequest) -> Result<Self, Self::Error> {
        Self::of_flow(raw.payment_id, raw.flow, raw.amount)
            .map(|request| request.with_priority(raw.priority))
    }
}

impl From<PaymentRequest> for RawPaymentRequest {
    fn from(request: PaymentRequest) -> Self {
        Self {
            payment_id: request.payment_id,
            flow: request.flow,
            amount: request.amount,
            priority: request.priority,
        }
    }
}

impl PaymentRequest {
    /// An ordinary transfer from one wallet to another ([`PaymentRequest::with_priority`]
    /// makes it urgent).
    pub fn new(
        payment_id: PaymentId,
        from_wallet: WalletId,
        to_wallet: WalletId,
        amount: Money,
    ) -> Result<Self, PaymentRequestError> {
        if from_wallet == to_wallet {
            return Err(PaymentRequestError::SameWallet);
        }
        let flow = Flow::Transfer {
            from_wallet,
            to_wallet,
        };
        Self::of_flow(payment_id, flow, amount)
    }

    /// An ordinary payment of any flow.
    pub fn of_flow(
        payment_id: PaymentId,
        flow: Flow,
        amount: Money,
    ) -> Result<Self, PaymentRequestError> {
        if amount.is_zero() {
            return Err(PaymentRequestError::ZeroAmount);
        }
        if let Flow::Transfer {
            from_wallet,
            to_wallet,
        } = &flow
            && from_wallet == to_wallet
        {
            return Err(PaymentRequestError::SameWallet);
        }
        Ok(Self {
            payment_id,
            flow,
            amount,
            priority: Priority::Ordinary,
        })
    }

    /// The money the payment moves once it settles: its amount, from the flow's debit account
    /// to its credit account (payer to payee; the world's funding account to a topped-up
    /// wallet; a paid-out wallet to the world's payouts account).
    pub fn transfer(&self) -> Transfer {
        let currency = self.amount.currency();
        Transfer::new(
            self.flow.debit_account(currency),
            self.flow.credit_account(currency),
            self.amount,
        )
        .expect("a payment request names two different accounts and a positive amount")
    }

    /// The same request with `priority`.
    pub fn with_priority(self, priority: Priority) -> Self {
        Self { priority, ..self }
    }

    /// A payment a client submits: its id is derived from the payer's wallet
    /// ([`Flow::payer_wallet`]) and the client's idempotency key when there is one
    /// ([`PaymentId::for_idempotency_key`]), so a retry of the request names the same payment
    /// (and the same key on another flow of that wallet names the same id, with other terms:
    /// a conflict); a new, time-ordered id otherwise.
    pub fn submitted(
        flow: Flow,
        amount: Money,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Self, PaymentRequestError> {
        let payment_id = match idempotency_key {
            Some(key) => PaymentId::for_idempotency_key(flow.payer_wallet(), key),
            None => PaymentId::generate(),
        };
        Self::of_flow(payment_id, flow, amount)
    }

    pub fn payment_id(&self) -> &PaymentId {
        &self.payment_id
    }
    pub fn flow(&self) -> &Flow {
        &self.flow
    }
    pub fn kind(&self) -> FlowKind {
        self.flow.kind()
    }
    /// See [`Flow::from_wallet`].
    pub fn from_wallet(&self) -> Option<&WalletId> {
        self.flow.from_wallet()
    }
    /// See [`Flow::to_wallet`].
    pub fn to_wallet(&self) -> Option<&WalletId> {
        self.flow.to_wallet()
    }
    /// See [`Flow::payer_wallet`].
    pub fn payer_wallet(&self) -> &WalletId {
        self.flow.payer_wallet()
    }
    pub fn amount(&self) -> Money {
        self.amount
    }
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// Whether `other` asks for the same movement of money with the same priority (ids of the
    /// payment aside): what a retried request with the same idempotency key must match. The
    /// priority is a term: a retry that asks for another one is another request.
    pub fn same_terms_as(&self, other: &PaymentRequest) -> bool {
        (&self.flow, self.amount, self.priority) == (&other.flow, other.amount, other.priority)
    }
}

/// Where a payment stands. `Completed` and `Failed` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Pending,
    FundsReserved,
    Charged,
    /// The reservation was paid out to the receiver: the payment is done.
    Completed,
    /// A step failed for good after funds were reserved: the saga is undoing what it did.
    Compensating,
    Failed,
}

impl PaymentStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// One thing that happened to a payment, as recorded in its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStep {
    Requested {
        request: PaymentRequest,
        /// How the request reached paysaga, which says who announced it.
        #[serde(default, skip_serializing_if = "RequestChannel::is_api")]
        channel: RequestChannel,
    },
    /// The amount moved from the sender's available funds to its reserved funds.
    FundsReserved,
    /// The payment processor captured the amount.
    Charged {
        charge_id: ChargeId,
    },
    /// The reservation paid out of the sender's wallet and into the receiver's (written in the
    /// same transaction as those two wallet changes): the payment is complete.
    Completed,
    /// A later step failed for good; what was done is undone in reverse order.
    CompensationStarted {
        reason: FailureReason,
    },
    /// The processor refunded the charge (or voided the payment, when nothing was captured).
    ChargeRefunded,
    /// The reservation went back to the sender's available funds.
    ReservationReleased,
    Failed {
        reason: FailureReason,
    },
}

impl PaymentStep {
    /// The status a payment has once this step is recorded.
    pub fn resulting_status(&self) -> PaymentStatus {
        match self {
            Self::Requested { .. } => PaymentStatus::Pending,
            Self::FundsReserved => PaymentStatus::FundsReserved,
            Self::Charged { .. } => PaymentStatus::Charged,
            Self::Completed => PaymentStatus::Completed,
            Self::CompensationStarted { .. } | Self::ChargeRefunded | Self::ReservationReleased => {
                PaymentStatus::Compensating
            }
            Self::Failed { .. } => PaymentStatus::Failed,
        }
    }
}

/// How a payment's request reached paysaga. The log's version 1 records it, because it decides
/// whether that entry is the request's announcement: a payment's events are published from the
/// log's entries that make them true (the event relay), except a request that was on the bus
/// before paysaga recorded it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RequestChannel {
    /// Through paysaga's API: the log's version 1 is the request's first record, and
    /// `PaymentRequested` (or its flow's) is published from it.
    #[default]
    Api,
    /// Published straight onto the bus by an outside requester and begun by the saga: the
    /// event was on the bus first, so nothing publishes it again.
    Bus,
}

impl RequestChannel {
    pub fn is_api(&self) -> bool {
        *self == Self::Api
    }
}

/// An entry of a payment's log: version `n` is written only if `n - 1` exists and `n` does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLogEntry {
    pub payment_id: PaymentId,
    pub version: u32,
    #[serde(flatten)]
    pub step: PaymentStep,
    pub recorded_at: DateTime<Utc>,
    /// On the terminal entry, the request it concludes, as the log's version 1 recorded it
    /// (see [`Payment::next_entry`]): with the entry's own step, all its outcome event says, so
    /// the event relay publishes the outcome from this entry alone, without reading the rest of
    /// the log back. `None` on every other entry, and on terminal entries written before it was
    /// added, whose outcome is folded from the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concludes: Option<RecordedRequest>,
}

/// A payment's request and when its log recorded it (its version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub request: PaymentRequest,
    pub recorded_at: DateTime<Utc>,
}

impl PaymentLogEntry {
    /// Version 1 of a payment's log, for a request made through the API.
    pub fn requested(request: PaymentRequest, now: DateTime<Utc>) -> Self {
        Self::requested_through(request, RequestChannel::Api, now)
    }

    /// Version 1 of every payment's log.
    pub fn requested_through(
        request: PaymentRequest,
        channel: RequestChannel,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            payment_id: request.payment_id().clone(),
            version: 1,
            step: PaymentStep::Requested { request, channel },
            recorded_at: now,
            concludes: None,
        }
    }
}

/// What a payment log entry makes true on the bus: the event relay publishes it from the
/// entry ([`crate::DomainEvent::announced_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announces {
    /// Version 1 of a request made through the API: its `*Requested` event.
    Request,
    /// The terminal entry: the payment's outcome, `*Completed` or `*Failed`.
    Outcome,
}

impl PaymentLogEntry {
    /// What this entry announces, if anything. The steps in between announce nothing: they
    /// stay in the log.
    pub fn announces(&self) -> Option<Announces> {
        match &self.step {
            PaymentStep::Requested {
                channel: RequestChannel::Api,
                ..
            } => Some(Announces::Request),
            PaymentStep::Requested { .. } => None,
            step if step.resulting_status().is_terminal() => Some(Announces::Outcome),
            _ => None,
        }
    }

    /// Whether this entry's announcement is written to the outbox with it, in one transaction:
    /// an urgent request made through the API. The outbox's stream is not the payments
    /// table's, so the relay publishes an urgent request without waiting behind the ordinary
    /// records ahead of it there (what makes the urgent lane urgent all the way to the saga);
    /// from the log, the relay does not publish it again.
    pub fn announced_through_outbox(&self) -> bool {
        matches!(
            &self.step,
            PaymentStep::Requested {
                request,
                channel: RequestChannel::Api,
            } if request.priority() == Priority::Urgent
        )
    }
}

/// A log that cannot be folded into a payment: a gap, a wrong first entry, an impossible
/// transition. Never a client's fault; it means the store was written around paysaga.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentLogError {
    #[error("payment log is empty")]
    Empty,
    #[error("payment log of {payment_id} does not start with the request")]
    MissingRequest { payment_id: PaymentId },
    #[error("payment log of {payment_id} has version {found} where {expected} was expected")]
    Gap {
        payment_id: PaymentId,
        expected: u32,
        found: u32,
    },
    #[error("payment {payment_id} cannot go from {from:?} to {to:?}")]
    IllegalTransition {
        payment_id: PaymentId,
        from: PaymentStatus,
        to: PaymentStatus,
    },
}

/// A payment as its log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub request: PaymentRequest,
    pub status: PaymentStatus,
    /// The version of the last log entry.
    pub version: u32,
    /// The processor's charge, once captured.
    pub charge: Option<ChargeId>,
    /// Why the payment failed (set when compensation starts, or when it fails outright).
    pub failure: Option<FailureReason>,
    /// What compensation has undone so far.
    pub charge_refunded: bool,
    pub reservation_released: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Payment {
    /// Folds a log (ordered by version) into the payment it describes, checking every
    /// transition on the way.
    pub fn from_log(entries: &[PaymentLogEntry]) -> Result<Payment, PaymentLogError> {
        let (first, rest) = entries.split_first().ok_or(PaymentLogError::Empty)?;
        let PaymentStep::Requested { request, .. } = &first.step else {
            return Err(PaymentLogError::MissingRequest {
                payment_id: first.payment_id.clone(),
            });
        };
        if first.version != 1 {
            return Err(PaymentLogError::Gap {
                payment_id: first.payment_id.clone(),
                expected: 1,
                found: first.version,
            });
        }
        let mut payment = Payment {
            request: request.clone(),
            status: PaymentStatus::Pending,
            version: 1,
            charge: None,
            failure: None,
            charge_refunded: false,
            reservation_released: false,
            created_at: first.recorded_at,
            updated_at: first.recorded_at,
        };
        for entry in rest {
            payment = payment.after(entry)?;
        }
        Ok(payment)
    }

    /// This payment once `entry` is applied, if the log allows it.
    pub fn after(&self, entry: &PaymentLogEntry) -> Result<Payment, PaymentLogError> {
        let payment_id = self.request.payment_id().clone();
        if entry.version != self.version + 1 {
            return Err(PaymentLogError::Gap {
                payment_id,
                expected: self.version + 1,
                found: entry.version,
            });
        }
        if !self.accepts(&entry.step) {
            let to = entry.step.resulting_status();
            return Err(PaymentLogError::IllegalTransition {
                payment_id,
                from: self.status,
                to,
            });
        }
        let mut next = self.clone();
        next.status = entry.step.resulting_status();
        next.version = entry.version;
        next.updated_at = entry.recorded_at;
        match &entry.step {
            PaymentStep::Charged { charge_id } => next.charge = Some(charge_id.clone()),
            PaymentStep::CompensationStarted { reason } | PaymentStep::Failed { reason } => {
                next.failure = Some(reason.clone());
            }
            PaymentStep::ChargeRefunded => next.charge_refunded = true,
            PaymentStep::ReservationReleased => next.reservation_released = true,
            _ => {}
        }
        Ok(next)
    }

    /// Whether the payment holds funds on its payer's wallet now: reserved, and neither paid
    /// out (settled) nor given back (released) yet, nor failed before reserving.
    pub fn holds_funds(&self) -> bool {
        match self.status {
            PaymentStatus::FundsReserved | PaymentStatus::Charged => true,
            PaymentStatus::Compensating => !self.reservation_released,
            PaymentStatus::Pending | PaymentStatus::Completed | PaymentStatus::Failed => false,
        }
    }

    /// The next log entry for `step`, one version above this payment's.
    ///
    /// A terminal entry carries the request it concludes ([`PaymentLogEntry::concludes`]): the
    /// outcome event is written with the entry that makes it true.
    pub fn next_entry(&self, step: PaymentStep, now: DateTime<Utc>) -> PaymentLogEntry {
        let concludes = step
            .resulting_status()
            .is_terminal()
            .then(|| RecordedRequest {
                request: self.request.clone(),
                recorded_at: self.created_at,
            });
        PaymentLogEntry {
            payment_id: self.request.payment_id().clone(),
            version: self.version + 1,
            step,
            recorded_at: now,
            concludes,
        }
    }

    /// The saga's transitions. Compensation undoes in reverse order: the charge is refunded
    /// (or voided) first, then the reservation released, and only then is the payment failed.
    fn accepts(&self, step: &PaymentStep) -> bool {
        use PaymentStatus as Status;
        use PaymentStep as Step;
        match (self.status, step) {
            (Status::Pending, Step::FundsReserved | Step::Failed { .. }) => true,
            (Status::FundsReserved, Step::Charged { .. } | Step::CompensationStarted { .. }) => {
                true
            }
            (Status::Charged, Step::Completed | Step::CompensationStarted { .. }) => true,
            (Status::Compensating, Step::ChargeRefunded) => !self.charge_refunded,
            (Status::Compensating, Step::ReservationReleased) => {
                self.charge_refunded && !self.reservation_released
            }
            (Status::Compensating, Step::Failed { .. }) => {
                self.charge_refunded && self.reservation_released
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::request;

    fn entry(version: u32, step: PaymentStep) -> PaymentLogEntry {
        PaymentLogEntry {
            payment_id: PaymentId::parse("pay_test").unwrap(),
            version,
            step,
            recorded_at: Utc::now(),
            concludes: None,
        }
    }

    #[test]
    fn requests_need_two_wallets_and_a_positive_amount() {
        let eur = |n| Money::new(n, "EUR".parse().unwrap()).unwrap();
        let alice = WalletId::parse("wal_alice").unwrap();
        let bob = WalletId::parse("wal_bob").unwrap();
        let id = PaymentId::generate();
        assert_eq!(
            PaymentRequest::new(id.clone(), alice.clone(), alice.clone(), eur(1)),
            Err(PaymentRequestError::SameWallet)
        );
        assert_eq!(
            PaymentRequest::new(id.clone(), alice.clone(), bob.clone(), eur(0)),
            Err(PaymentRequestError::ZeroAmount)
        );
        assert!(PaymentRequest::new(id, alice, bob, eur(1)).is_ok());
    }

    fn charged() -> PaymentStep {
        PaymentStep::Charged {
            charge_id: ChargeId::parse("ch_1").unwrap(),
        }
    }

    fn statuses(log: &[PaymentLogEntry]) -> Vec<PaymentStatus> {
        (1..=log.len())
            .map(|n| Payment::from_log(&log[..n]).unwrap().status)
            .collect()
    }

    #[test]
    fn the_happy_log_folds_to_completed() {
        let log = [
            PaymentLogEntry::requested(request(100), Utc::now()),
            entry(2, PaymentStep::FundsReserved),
            entry(3, charged()),
            entry(4, PaymentStep::Completed),
        ];
        use PaymentStatus::*;
        assert_eq!(statuses(&log), [Pending, FundsReserved, Charged, Completed]);
        let payment = Payment::from_log(&log).unwrap();
        assert_eq!(
            (payment.version, payment.charge.map(String::from)),
            (4, Some("ch_1".into()))
        );
    }

    #[test]
    fn compensation_undoes_in_reverse_order_then_fails() {
        let reason = FailureReason::PaymentDeclined {
            message: "card".into(),
        };
        let before_compensation = [
            vec![PaymentStep::FundsReserved],
            vec![PaymentStep::FundsReserved, charged()],
        ];
        for done in before_compensation {
            let mut log = vec![PaymentLogEntry::requested(request(100), Utc::now())];
            let compensation = [
                PaymentStep::CompensationStarted {
                    reason: reason.clone(),
                },
                PaymentStep::ChargeRefunded,
                PaymentStep::ReservationReleased,
                PaymentStep::Failed {
                    reason: reason.clone(),
                },
            ];
            for step in done.into_iter().chain(compensation) {
                log.push(entry(log.len() as u32 + 1, step));
            }
            let payment = Payment::from_log(&log).unwrap();
            assert_eq!(payment.status, PaymentStatus::Failed);
            assert!(payment.charge_refunded && payment.reservation_released);
            assert_eq!(payment.failure, Some(reason.clone()));
        }
    }

    #[test]
    fn compensation_cannot_skip_or_reorder_its_steps() {
        let reason = FailureReason::ProcessorUnavailable;
        let start = [
            PaymentLogEntry::requested(request(100), Utc::now()),
            entry(2, PaymentStep::FundsReserved),
            entry(
                3,
                PaymentStep::CompensationStarted {
                    reason: reason.clone(),
                },
            ),
        ];
        let wrong_steps = [
            PaymentStep::ReservationReleased,
            PaymentStep::Failed { reason },
            PaymentStep::Completed,
            charged(),
        ];
        for wrong in wrong_steps {
            let mut log = start.to_vec();
            log.push(entry(4, wrong.clone()));
            let folded = Payment::from_log(&log);
            assert!(
                matches!(folded, Err(PaymentLogError::IllegalTransition { .. })),
                "{wrong:?}"
            );
        }
        let mut refunded_twice = start.to_vec();
        refunded_twice.push(entry(4, PaymentStep::ChargeRefunded));
        refunded_twice.push(entry(5, PaymentStep::ChargeRefunded));
        assert!(Payment::from_log(&refunded_twice).is_err());
    }

    #[test]
    fn settled_payments_cannot_be_compensated() {
        let mut log = vec![
            PaymentLogEntry::requested(request(100), Utc::now()),
            entry(2, PaymentStep::FundsReserved),
            entry(3, charged()),
            entry(4, PaymentStep::Completed),
        ];
        log.push(entry(
            5,
            PaymentStep::CompensationStarted {
                reason: FailureReason::ProcessorUnavailable,
            },
        ));
        assert!(matches!(
            Payment::from_log(&log),
            Err(PaymentLogError::IllegalTransition { .. })
        ));
    }

    #[test]
    fn a_failed_log_keeps_its_reason() {
        let reason = FailureReason::InsufficientFunds {
            wallet_id: WalletId::parse("wal_alice").unwrap(),
        };
        let log = [
            PaymentLogEntry::requested(request(100), Utc::now()),
            entry(
                2,
                PaymentStep::Failed {
                    reason: reason.clone(),
                },
            ),
        ];
        let payment = Payment::from_log(&log).unwrap();
        assert_eq!(
            (payment.status, payment.failure),
            (PaymentStatus::Failed, Some(reason))
        );
    }

    #[test]
    fn gaps_and_illegal_transitions_are_refused() {
        let requested = PaymentLogEntry::requested(request(100), Utc::now());
        assert_eq!(Payment::from_log(&[]), Err(PaymentLogError::Empty));
        assert!(matches!(
            Payment::from_log(&[entry(1, PaymentStep::Completed)]),
            Err(PaymentLogError::MissingRequest { .. })
        ));
        assert!(matches!(
            Payment::from_log(&[requested.clone(), entry(3, PaymentStep::FundsReserved)]),
            Err(PaymentLogError::Gap {
                expected: 2,
                found: 3,
                ..
            })
        ));
        assert!(matches!(
            Payment::from_log(&[requested.clone(), entry(2, PaymentStep::Completed)]),
            Err(PaymentLogError::IllegalTransition { .. })
        ));
        let completed = [
            requested,
            entry(2, PaymentStep::FundsReserved),
            entry(3, charged()),
            entry(4, PaymentStep::Completed),
            entry(5, PaymentStep::FundsReserved),
        ];
        assert!(matches!(
            Payment::from_log(&completed),
            Err(PaymentLogError::IllegalTransition { .. })
        ));
    }

    #[test]
    fn a_submitted_payment_is_named_by_its_key_or_gets_a_new_id() {
        let eur = Money::new(100, "EUR".parse().unwrap()).unwrap();
        let (alice, bob) = (
            WalletId::parse("wal_alice").unwrap(),
            WalletId::parse("wal_bob").unwrap(),
        );
        let submit = |key: Option<&IdempotencyKey>| {
            let flow = Flow::Transfer {
                from_wallet: alice.clone(),
                to_wallet: bob.clone(),
            };
            PaymentRequest::submitted(flow, eur, key).unwrap()
        };
        let key = IdempotencyKey::parse("order-42").unwrap();
        let keyed = submit(Some(&key));
        assert_eq!(
            keyed.payment_id(),
            &PaymentId::for_idempotency_key(&alice, &key)
        );
        assert_eq!(submit(Some(&key)).payment_id(), keyed.payment_id());
        assert_ne!(submit(None).payment_id(), submit(None).payment_id());
        assert_eq!(
            PaymentRequest::submitted(
                Flow::Transfer {
                    from_wallet: alice.clone(),
                    to_wallet: alice.clone()
                },
                eur,
                Some(&key)
            ),
            Err(PaymentRequestError::SameWallet)
        );
    }

    #[test]
    fn terms_compare_without_the_payment_id() {
        let a = request(100);
        let b =
            PaymentRequest::of_flow(PaymentId::generate(), a.flow().clone(), a.amount()).unwrap();
        assert!(a.same_terms_as(&b));
        assert!(!a.same_terms_as(&request(101)));
        assert!(!a.same_terms_as(&b.clone().with_priority(Priority::Urgent)));
        assert!(
            b.clone()
                .with_priority(Priority::Urgent)
                .same_terms_as(&a.with_priority(Priority::Urgent))
        );
    }

    #[test]
    fn priority_is_always_written_and_ordinary_when_missing() {
        let ordinary = request(100);
        assert_eq!(ordinary.priority(), Priority::Ordinary);
        let json = serde_json::to_value(&ordinary).unwrap();
        assert_eq!(json["priority"], "ordinary");

        let urgent = ordinary.clone().with_priority(Priority::Urgent);
        let json = serde_json::to_value(&urgent).unwrap();
        assert_eq!(json["priority"], "urgent");
        assert_eq!(
            serde_json::from_value::<PaymentRequest>(json).unwrap(),
            urgent
        );

        let mut without = serde_json::to_value(&ordinary).unwrap();
        without.as_object_mut().unwrap().remove("priority");
        assert_eq!(
            serde_json::from_value::<PaymentRequest>(without).unwrap(),
            ordinary
        );

        let mut unknown = serde_json::to_value(&ordinary).unwrap();
        unknown["priority"] = "asap".into();
        assert!(serde_json::from_value::<PaymentRequest>(unknown).is_err());
    }

    #[test]
    fn the_parties_named_say_the_flow_and_anything_else_is_refused() {
        let read = |json: serde_json::Value| serde_json::from_value::<PaymentRequest>(json);
        let with = |parties: serde_json::Value| {
            let mut json = serde_json::json!({
                "payment_id": "pay_1",
                "amount": {"minor_units": 500, "currency": "EUR"}
            });
            for (key, value) in parties.as_object().unwrap() {
                json[key] = value.clone();
            }
            json
        };
        let transfer = read(with(
            serde_json::json!({"from_wallet": "wal_a", "to_wallet": "wal_b"}),
        ));
        let top_up = read(with(
            serde_json::json!({"funding_instrument": "fi_card", "to_wallet": "wal_a"}),
        ));
        let payout = read(with(
            serde_json::json!({"from_wallet": "wal_a", "destination": "dst_bank"}),
        ));
        assert_eq!(
            [&transfer, &top_up, &payout].map(|request| request.as_ref().unwrap().kind()),
            [FlowKind::Transfer, FlowKind::TopUp, FlowKind::Payout]
        );
        for (request, wallet) in [(&transfer, "wal_a"), (&top_up, "wal_a"), (&payout, "wal_a")] {
            assert_eq!(request.as_ref().unwrap().payer_wallet().as_str(), wallet);
        }
        // What a request writes is what it reads, and names only its flow's parties.
        let written = serde_json::to_value(top_up.as_ref().unwrap()).unwrap();
        assert!(written.get("from_wallet").is_none() && written.get("destination").is_none());
        assert_eq!(read(written).unwrap(), top_up.unwrap());
        for refused in [
            serde_json::json!({"to_wallet": "wal_b"}),
            serde_json::json!({"funding_instrument": "fi_card", "destination": "dst_bank"}),
            serde_json::json!({"from_wallet": "wal_a", "to_wallet": "wal_b", "destination": "dst_bank"}),
            serde_json::json!({"funding_instrument": "fi_card", "to_wallet": "wal_b", "from_wallet": "wal_a"}),
            serde_json::json!({"from_wallet": "wal_a", "to_wallet": "wal_a"}),
        ] {
            assert!(read(with(refused.clone())).is_err(), "{refused}");
        }
    }

    #[test]
    fn each_flow_settles_with_one_transfer_and_the_world_stands_outside() {
        use crate::ledger::WorldAccount;
        let eur: crate::Currency = "EUR".parse().unwrap();
        let amount = Money::new(700, eur).unwrap();
        let alice = WalletId::parse("wal_alice").unwrap();
        let top_up = Flow::TopUp {
            funding_instrument: FundingInstrumentId::parse("fi_card").unwrap(),
            to_wallet: alice.clone(),
        };
        let payout = Flow::Payout {
            from_wallet: alice.clone(),
            destination: PayoutDestinationId::parse("dst_bank").unwrap(),
        };
        let transfer_of = |flow: Flow| {
            let request = PaymentRequest::of_flow(PaymentId::generate(), flow, amount).unwrap();
            let transfer = request.transfer();
            (transfer.debit().clone(), transfer.credit().clone())
        };
        assert_eq!(
            transfer_of(top_up),
            (
                Account::world(WorldAccount::Funding, eur),
                Account::wallet(alice.clone())
            )
        );
        assert_eq!(
            transfer_of(payout),
            (
                Account::wallet(alice),
                Account::world(WorldAccount::Payouts, eur)
            )
        );
    }
}
