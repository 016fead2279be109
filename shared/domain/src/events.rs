//! Event contracts: what paysaga publishes on its event bus. Every event is a versioned
//! envelope (`version`, `event_id` for de-duplication, the `payment_id` and `wallet_ids` it is
//! about, `occurred_at`, `data`); the EventBridge `source` and `detail-type` say what it is.
//! These types are the one definition: the JSON Schemas in `events/schemas/` are generated from
//! them ([`contract_schemas`]), and a test fails when the checked-in files drift.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::failure::FailureReason;
use super::ids::{DepositId, PaymentId, WalletId};
use super::money::Money;
use super::operator::{OperatorAction, OperatorReason};
use super::owner::Owner;
use super::payment::{
    Announces, Flow, FlowKind, Payment, PaymentLogEntry, PaymentLogError, PaymentRequest,
    PaymentStatus, PaymentStep,
};

/// The EventBridge `source` of payment events.
pub const PAYMENTS_SOURCE: &str = "paysaga.payments";
/// The EventBridge `source` of wallet events.
pub const WALLETS_SOURCE: &str = "paysaga.wallets";
/// The EventBridge `source` of operators' actions that move no money.
pub const OPERATIONS_SOURCE: &str = "paysaga.operations";
/// The contract version this code writes and reads.
pub const CONTRACT_VERSION: u32 = 1;

/// The `detail` of every paysaga event. Build it with [`EventDetail::new`], which takes the
/// ids from the data, so the envelope and the data cannot disagree.
///
/// `payment_id` and `wallet_ids` repeat, at the envelope level, the ids the event is about, so
/// rules and consumers can route and filter (`"detail": {"wallet_ids": ["wal_x"]}`) without
/// knowing each `data` shape. They are always written; on reading they may be missing (version 1
/// events written before they were added), but when present they must match the data.
/// Unknown fields are ignored anywhere in the envelope and its data (additive changes keep the
/// version), except inside an amount, which is exactly `minor_units` and `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventDetail<T> {
    /// The contract version; a consumer refuses a version it does not read.
    #[schemars(extend("const" = CONTRACT_VERSION))]
    pub version: u32,
    /// Stable across re-publication: consumers de-duplicate on it.
    pub event_id: String,
    /// The payment the event is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<PaymentId>,
    /// The wallets the event is about (a payment's debited then credited wallet, one for a
    /// top-up or a payout; a deposit's wallet).
    #[serde(default)]
    pub wallet_ids: Vec<WalletId>,
    pub occurred_at: DateTime<Utc>,
    pub data: T,
}

/// The ids an event's data is about, which its envelope repeats.
pub trait EventSubject {
    fn payment_id(&self) -> Option<&PaymentId>;
    fn wallet_ids(&self) -> Vec<WalletId>;
}

impl EventSubject for PaymentRequest {
    fn payment_id(&self) -> Option<&PaymentId> {
        Some(PaymentRequest::payment_id(self))
    }
    fn wallet_ids(&self) -> Vec<WalletId> {
        self.flow().wallet_ids()
    }
}

impl EventSubject for PaymentEventData {
    fn payment_id(&self) -> Option<&PaymentId> {
        Some(&self.payment_id)
    }
    fn wallet_ids(&self) -> Vec<WalletId> {
        self.flow.wallet_ids()
    }
}

impl EventSubject for FundsDeposited {
    fn payment_id(&self) -> Option<&PaymentId> {
        None
    }
    fn wallet_ids(&self) -> Vec<WalletId> {
        vec![self.wallet_id.clone()]
    }
}

impl EventSubject for OperatorAction {
    fn payment_id(&self) -> Option<&PaymentId> {
        None
    }
    fn wallet_ids(&self) -> Vec<WalletId> {
        Vec::new()
    }
}

impl<T: EventSubject> EventDetail<T> {
    /// The current version's envelope around `data`, with the ids it is about.
    pub fn new(event_id: String, occurred_at: DateTime<Utc>, data: T) -> Self {
        Self {
            version: CONTRACT_VERSION,
            event_id,
            payment_id: data.payment_id().cloned(),
            wallet_ids: data.wallet_ids(),
            occurred_at,
            data,
        }
    }

    /// Why the envelope's ids are not the data's, if they are not.
    fn mismatched_ids(&self) -> Option<String> {
        if let Some(payment_id) = &self.payment_id
            && Some(payment_id) != self.data.payment_id()
        {
            return Some(format!(
                "payment_id {payment_id} is not the data's ({:?})",
                self.data.payment_id()
            ));
        }
        let wallet_ids = self.data.wallet_ids();
        if !self.wallet_ids.is_empty() && self.wallet_ids != wallet_ids {
            return Some(format!(
                "wallet_ids {:?} are not the data's {wallet_ids:?}",
                self.wallet_ids
            ));
        }
        None
    }
}

/// What a payment's outcome event carries (its parties as the request names them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentEventData {
    pub payment_id: PaymentId,
    #[serde(flatten)]
    pub flow: Flow,
    pub amount: Money,
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReason>,
    /// When the payment was requested (its log's version 1): what read models order a
    /// payment by, whichever of its events they see first. Always written; may be missing on
    /// reading (events published before it was added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<DateTime<Utc>>,
}

impl PaymentEventData {
    /// What the outcome event of a terminal `entry` says, from the entry alone: its step, and
    /// the request it concludes. `None` when it carries no request (or another payment's), or
    /// is not terminal.
    pub fn concluded_by(entry: &PaymentLogEntry) -> Option<Self> {
        let concluded = entry.concludes.as_ref()?;
        let request = &concluded.request;
        let status = entry.step.resulting_status();
        if request.payment_id() != &entry.payment_id || !status.is_terminal() {
            return None;
        }
        let failure = match &entry.step {
            PaymentStep::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        Some(Self {
            payment_id: request.payment_id().clone(),
            flow: request.flow().clone(),
            amount: request.amount(),
            status,
            failure,
            requested_at: Some(concluded.recorded_at),
        })
    }

    /// What the outcome event of `payment` says; `None` while it is not terminal.
    pub fn outcome_of(payment: &Payment) -> Option<Self> {
        let failure = match payment.status {
            PaymentStatus::Completed => None,
            PaymentStatus::Failed => payment.failure.clone(),
            _ => return None,
        };
        let request = &payment.request;
        Some(Self {
            payment_id: request.payment_id().clone(),
            flow: request.flow().clone(),
            amount: request.amount(),
            status: payment.status,
            failure,
            requested_at: Some(payment.created_at),
        })
    }
}

/// Money an operator put into a wallet from the outside world's adjustments account, with who
/// and why (a wallet's holder adds money by a top-up, never by a deposit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FundsDeposited {
    pub deposit_id: DepositId,
    pub wallet_id: WalletId,
    pub amount: Money,
    /// The operator who issued it (their token's subject). Always written; missing on reading
    /// only in events published before operators were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub issued_by: Option<Owner>,
    /// Why, in the operator's words. Written with `issued_by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<OperatorReason>,
}

/// Every event paysaga publishes. A payment is announced twice: when it is requested, and
/// when it has its outcome. The steps in between stay in the payment's log.
///
/// The three payment variants carry a payment of any [`Flow`]; each flow has its own
/// `detail-type`s on the bus (`PaymentRequested`, `TopUpRequested`, `PayoutRequested`, …,
/// [`DomainEvent::detail_type`]), so rules and consumers can tell them apart without reading
/// the data, and an event whose data is of another flow than its type says is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    /// A payment was asked for; the saga picks it up from the bus.
    PaymentRequested(EventDetail<PaymentRequest>),
    /// The money moved: the payment is COMPLETED.
    PaymentCompleted(EventDetail<PaymentEventData>),
    /// The payment is FAILED (its `failure` says why); whatever it had done is undone.
    PaymentFailed(EventDetail<PaymentEventData>),
    FundsDeposited(EventDetail<FundsDeposited>),
    /// An operator replayed a parked message, or applied a page of the audit trail to the
    /// read models: recorded as the action starts ([`OperatorAction`]).
    OperatorActionStarted(EventDetail<OperatorAction>),
}

/// Why an event does not honour paysaga's contracts: a consumer can never handle it as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    /// Not an EventBridge event at all (not JSON, or no `source` / `detail-type` / `detail`).
    #[error("not an EventBridge event: {0}")]
    NotAnEvent(String),
    #[error("no paysaga event is {detail_type:?} from {event_source:?}")]
    UnknownEvent {
        event_source: String,
        detail_type: String,
    },
    #[error(
        "{detail_type} {} is not supported (this code reads version {CONTRACT_VERSION})",
        match version {
            Some(version) => format!("version {version}"),
            None => format!("a version beyond {}", u32::MAX),
        }
    )]
    UnsupportedVersion {
        detail_type: String,
        /// `None` when it is too long to quote in a refusal, which is logged: a number of 12
        /// digits or more may be a card number.
        version: Option<u32>,
    },
    #[error("{detail_type} breaks its contract: {error}")]
    InvalidDetail { detail_type: String, error: String },
}

/// The `detail-type` of [`DomainEvent::PaymentRequested`].
pub const PAYMENT_REQUESTED: &str = "PaymentRequested";
/// The `detail-type` of [`DomainEvent::PaymentCompleted`].
pub const PAYMENT_COMPLETED: &str = "PaymentCompleted";
/// The `detail-type` of [`DomainEvent::PaymentFailed`].
pub const PAYMENT_FAILED: &str = "PaymentFailed";
/// The `detail-type` of [`DomainEvent::PaymentRequested`] for a top-up.
pub const TOP_UP_REQUESTED: &str = "TopUpRequested";
/// The `detail-type` of [`DomainEvent::PaymentCompleted`] for a top-up.
pub const TOP_UP_COMPLETED: &str = "TopUpCompleted";
/// The `detail-type` of [`DomainEvent::PaymentFailed`] for a top-up.
pub const TOP_UP_FAILED: &str = "TopUpFailed";
/// The `detail-type` of [`DomainEvent::PaymentRequested`] for a payout.
pub const PAYOUT_REQUESTED: &str = "PayoutRequested";
/// The `detail-type` of [`DomainEvent::PaymentCompleted`] for a payout.
pub const PAYOUT_COMPLETED: &str = "PayoutCompleted";
/// The `detail-type` of [`DomainEvent::PaymentFailed`] for a payout.
pub const PAYOUT_FAILED: &str = "PayoutFailed";
/// The `detail-type` of [`DomainEvent::FundsDeposited`].
pub const FUNDS_DEPOSITED: &str = "FundsDeposited";
/// The `detail-type` of [`DomainEvent::OperatorActionStarted`].
pub const OPERATOR_ACTION_STARTED: &str = "OperatorActionStarted";

/// Every event type paysaga defines: (`source`, `detail-type`).
pub const EVENT_TYPES: [(&str, &str); 11] = [
    (PAYMENTS_SOURCE, PAYMENT_REQUESTED),
    (PAYMENTS_SOURCE, PAYMENT_COMPLETED),
    (PAYMENTS_SOURCE, PAYMENT_FAILED),
    (PAYMENTS_SOURCE, TOP_UP_REQUESTED),
    (PAYMENTS_SOURCE, TOP_UP_COMPLETED),
    (PAYMENTS_SOURCE, TOP_UP_FAILED),
    (PAYMENTS_SOURCE, PAYOUT_REQUESTED),
    (PAYMENTS_SOURCE, PAYOUT_COMPLETED),
    (PAYMENTS_SOURCE, PAYOUT_FAILED),
    (WALLETS_SOURCE, FUNDS_DEPOSITED),
    (OPERATIONS_SOURCE, OPERATOR_ACTION_STARTED),
];

/// What a payment event says happened: it was requested, it completed, or it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentMilestone {
    Requested,
    Completed,
    Failed,
}

impl PaymentMilestone {
    /// The `detail-type` of this milestone of a payment of `kind`.
    pub fn detail_type(self, kind: FlowKind) -> &'static str {
        use FlowKind::*;
        use PaymentMilestone::*;
        match (kind, self) {
            (Transfer, Requested) => PAYMENT_REQUESTED,
            (Transfer, Completed) => PAYMENT_COMPLETED,
            (Transfer, Failed) => PAYMENT_FAILED,
            (TopUp, Requested) => TOP_UP_REQUESTED,
            (TopUp, Completed) => TOP_UP_COMPLETED,
            (TopUp, Failed) => TOP_UP_FAILED,
            (Payout, Requested) => PAYOUT_REQUESTED,
            (Payout, Completed) => PAYOUT_COMPLETED,
            (Payout, Failed) => PAYOUT_FAILED,
        }
    }

    /// The milestone and flow a payment `detail-type` stands for; `None` for any other type.
    pub fn of_detail_type(detail_type: &str) -> Option<(PaymentMilestone, FlowKind)> {
        FlowKind::ALL.into_iter().find_map(|kind| {
            [Self::Requested, Self::Completed, Self::Failed]
                .into_iter()
                .find(|milestone| milestone.detail_type(kind) == detail_type)
                .map(|milestone| (milestone, kind))
        })
    }
}

/// One event type's contract as a JSON Schema (draft 2020-12) of its `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractSchema {
    pub source: &'static str,
    pub detail_type: &'static str,
    pub schema: serde_json::Value,
}

impl ContractSchema {
    /// Where the schema is checked in, relative to the repository root.
    pub fn path(&self) -> String {
        format!("events/schemas/{}.json", self.detail_type)
    }

    /// The file's text: pretty JSON and a final newline.
    pub fn file_text(&self) -> String {
        let json = serde_json::to_string_pretty(&self.schema)
            .expect("a generated schema is plain JSON that always serialises");
        format!("{json}\n")
    }
}

/// The schemas of every event type in [`EVENT_TYPES`], generated from the Rust types.
pub fn contract_schemas() -> Vec<ContractSchema> {
    EVENT_TYPES
        .iter()
        .map(|&(source, detail_type)| {
            let mut schema = match PaymentMilestone::of_detail_type(detail_type) {
                Some((PaymentMilestone::Requested, kind)) => with_consent(of_flow(
                    schemars::schema_for!(EventDetail<PaymentRequest>),
                    kind,
                )),
                Some((_, kind)) => {
                    of_flow(schemars::schema_for!(EventDetail<PaymentEventData>), kind)
                }
                None if detail_type == OPERATOR_ACTION_STARTED => {
                    schemars::schema_for!(EventDetail<OperatorAction>)
                }
                None => schemars::schema_for!(EventDetail<FundsDeposited>),
            };
            schema.insert("title".into(), detail_type.into());
            schema.insert(
                "description".into(),
                format!(
                    "The detail of a {detail_type} event from {source}, contract version \
                     {CONTRACT_VERSION}. Generated from paysaga's Rust types \
                     (shared/domain/src/events.rs): do not edit, run `make schemas`."
                )
                .into(),
            );
            ContractSchema {
                source,
                detail_type,
                schema: schema.to_value(),
            }
        })
        .collect()
}

/// `schema` (a payment event's) narrowed to the parties of a `kind` payment: the other flows'
/// parties are refused, and this flow's two are required (and never null).
fn of_flow(mut schema: schemars::Schema, kind: FlowKind) -> schemars::Schema {
    let parties: [&str; 2] = match kind {
        FlowKind::Transfer => ["from_wallet", "to_wallet"],
        FlowKind::TopUp => ["funding_instrument", "to_wallet"],
        FlowKind::Payout => ["from_wallet", "destination"],
    };
    let all_parties = [
        "from_wallet",
        "to_wallet",
        "funding_instrument",
        "destination",
    ];
    let definitions = schema
        .get_mut("$defs")
        .and_then(serde_json::Value::as_object_mut)
        .expect("a payment event's schema defines its data");
    // The id types of the other flows' parties are no longer referenced.
    let unused = [
        ("funding_instrument", "FundingInstrumentId"),
        ("destination", "PayoutDestinationId"),
    ];
    for (party, id_type) in unused {
        if !parties.contains(&party) {
            definitions.remove(id_type);
        }
    }
    for name in ["PaymentRequest", "PaymentEventData"] {
        let Some(data) = definitions.get_mut(name) else {
            continue;
        };
        if let Some(properties) = data
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut)
        {
            // Another flow's party is refused (`false`): the Rust types read its presence as
            // another flow, and an unknown field is otherwise ignored.
            for party in all_parties.iter().filter(|party| !parties.contains(party)) {
                properties.insert((*party).to_owned(), serde_json::Value::Bool(false));
            }
            for party in parties {
                let Some(property) = properties
                    .get_mut(party)
                    .and_then(serde_json::Value::as_object_mut)
                else {
                    continue;
                };
                // `anyOf: [{$ref}, {type: null}]` becomes the `$ref`.
                if let Some(serde_json::Value::Array(choices)) = property.remove("anyOf") {
                    let reference = choices
                        .into_iter()
                        .find(|choice| choice.get("$ref").is_some());
                    if let Some(serde_json::Value::Object(reference)) = reference {
                        property.extend(reference);
                    }
                }
            }
        }
        let required = data
            .as_object_mut()
            .expect("a definition is an object")
            .entry("required")
            .or_insert_with(|| serde_json::json!([]));
        if let Some(required) = required.as_array_mut() {
            required.extend(parties.iter().map(|&party| party.into()));
        }
    }
    schema
}

/// `schema` (a requested payment's) with the payer's consent that a payment published straight
/// on the bus carries ([`crate::consent`]): read by the saga only, never part of what
/// consumers keep.
fn with_consent(mut schema: schemars::Schema) -> schemars::Schema {
    if let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        properties.insert(
            "consent".to_owned(),
            // Described, not constrained: the saga alone reads it (and refuses one it cannot
            // read); for every other consumer it is a field to ignore, as the Rust types do.
            serde_json::json!({
                "description": "The payer's consent, {\"bearer_token\": \"<JWT>\"}, required of a \
                    payment published straight on the bus (not through the API): a token of the \
                    payer wallet's owner from the identity provider the API trusts. Checked by \
                    the saga before anything is recorded; never recorded."
            }),
        );
    }
    schema
}

impl DomainEvent {
    pub fn payment_requested(request: &PaymentRequest, occurred_at: DateTime<Utc>) -> Self {
        Self::PaymentRequested(EventDetail::new(
            format!("{}/1", request.payment_id()),
            occurred_at,
            request.clone(),
        ))
    }

    /// The event announcing a payment's outcome, once it has one: `PaymentCompleted` or
    /// `PaymentFailed` (with the reason). Its id is the terminal log entry's
    /// (`<payment_id>/<version>`), the same however often it is published.
    pub fn payment_outcome(payment: &Payment) -> Option<Self> {
        let data = PaymentEventData::outcome_of(payment)?;
        Some(Self::outcome(payment.version, payment.updated_at, data))
    }

    /// The outcome event of the log entry of `version`, recorded `at`, whose data is `data`.
    fn outcome(version: u32, at: DateTime<Utc>, data: PaymentEventData) -> Self {
        let completed = data.status == PaymentStatus::Completed;
        let detail = EventDetail::new(format!("{}/{version}", data.payment_id), at, data);
        if completed {
            Self::PaymentCompleted(detail)
        } else {
            Self::PaymentFailed(detail)
        }
    }

    /// The event the last entry of `log` makes true ([`PaymentLogEntry::announces`]), where
    /// `log` is a payment's log from version 1 up to that entry, in order: the request's
    /// announcement, dated when it was recorded, or the outcome, made from the terminal entry and
    /// the request it carries ([`PaymentLogEntry::concludes`]; folded from the log when it was
    /// written without).
    /// `None` when that entry announces nothing. The same log gives the same event, id and all:
    /// a request's and a carried outcome's from the last entry alone.
    pub fn announced_by(log: &[PaymentLogEntry]) -> Result<Option<Self>, PaymentLogError> {
        let last = log.last().ok_or(PaymentLogError::Empty)?;
        match last.announces() {
            None => Ok(None),
            Some(Announces::Request) => {
                let payment = Payment::from_log(std::slice::from_ref(last))?;
                Ok(Some(Self::payment_requested(
                    &payment.request,
                    payment.created_at,
                )))
            }
            // The entry carries the request it concludes (`Payment::next_entry`): nothing to fold.
            Some(Announces::Outcome) => match PaymentEventData::concluded_by(last) {
                Some(data) => Ok(Some(Self::outcome(last.version, last.recorded_at, data))),
                None => Ok(Self::payment_outcome(&Payment::from_log(log)?)),
            },
        }
    }

    pub fn funds_deposited(deposit: FundsDeposited, occurred_at: DateTime<Utc>) -> Self {
        Self::FundsDeposited(EventDetail::new(
            deposit.deposit_id.to_string(),
            occurred_at,
            deposit,
        ))
    }

    pub fn operator_action_started(action: OperatorAction, occurred_at: DateTime<Utc>) -> Self {
        Self::OperatorActionStarted(EventDetail::new(
            action.action_id.to_string(),
            occurred_at,
            action,
        ))
    }

    /// Reads a whole EventBridge event (JSON text: the envelope with `source`, `detail-type` and
    /// `detail`, as a rule's SQS target receives it), checking it against its contract.
    pub fn from_eventbridge(event: &str) -> Result<Self, ContractViolation> {
        let envelope = Envelope::read(event)?;
        Self::parse(&envelope.source, &envelope.detail_type, &envelope.detail)
    }

    /// Reads an event from its EventBridge `source`, `detail-type` and `detail` (JSON text),
    /// checking it against the contract of that type and version.
    pub fn parse(source: &str, detail_type: &str, detail: &str) -> Result<Self, ContractViolation> {
        let checked = CheckedDetail::check(source, detail_type, detail)?;
        let event = match PaymentMilestone::of_detail_type(detail_type) {
            Some((PaymentMilestone::Requested, _)) => Self::PaymentRequested(checked.read()?),
            Some((PaymentMilestone::Completed, _)) => Self::PaymentCompleted(checked.read()?),
            Some((PaymentMilestone::Failed, _)) => Self::PaymentFailed(checked.read()?),
            None if detail_type == OPERATOR_ACTION_STARTED => {
                Self::OperatorActionStarted(checked.read()?)
            }
            None => Self::FundsDeposited(checked.read()?),
        };
        checked.of_its_flow(event.detail_type(), event.flow_kind())?;
        Ok(event)
    }

    /// Reads a whole EventBridge event as [`Self::from_eventbridge`] does, when it requests a
    /// payment of any flow; an event of another type is only named, its detail unread.
    ///
    /// For a consumer of requests alone (the saga), which thus carries no reader of the
    /// other types' details.
    pub fn payment_request_from_eventbridge(
        event: &str,
    ) -> Result<PaymentRequestEvent, ContractViolation> {
        let envelope = Envelope::read(event)?;
        let detail_type = envelope.detail_type.as_str();
        let checked = CheckedDetail::check(&envelope.source, detail_type, &envelope.detail)?;
        let Some((PaymentMilestone::Requested, _)) = PaymentMilestone::of_detail_type(detail_type)
        else {
            let (source, detail_type) = checked.event_type;
            return Ok(PaymentRequestEvent::Other {
                source,
                detail_type,
            });
        };
        let detail: EventDetail<PaymentRequest> = checked.read()?;
        let kind = detail.data.kind();
        checked.of_its_flow(PaymentMilestone::Requested.detail_type(kind), Some(kind))?;
        Ok(PaymentRequestEvent::Requested(detail))
    }

    /// The EventBridge `source`.
    pub fn source(&self) -> &'static str {
        match self {
            Self::PaymentRequested(_) | Self::PaymentCompleted(_) | Self::PaymentFailed(_) => {
                PAYMENTS_SOURCE
            }
            Self::FundsDeposited(_) => WALLETS_SOURCE,
            Self::OperatorActionStarted(_) => OPERATIONS_SOURCE,
        }
    }

    /// The EventBridge `detail-type`: the milestone of a payment of its flow, the deposit's, or
    /// the operator action's.
    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::PaymentRequested(detail) => {
                PaymentMilestone::Requested.detail_type(detail.data.kind())
            }
            Self::PaymentCompleted(detail) => {
                PaymentMilestone::Completed.detail_type(detail.data.flow.kind())
            }
            Self::PaymentFailed(detail) => {
                PaymentMilestone::Failed.detail_type(detail.data.flow.kind())
            }
            Self::FundsDeposited(_) => FUNDS_DEPOSITED,
            Self::OperatorActionStarted(_) => OPERATOR_ACTION_STARTED,
        }
    }

    /// What a payment event says happened; `None` for any other event.
    pub fn milestone(&self) -> Option<PaymentMilestone> {
        match self {
            Self::PaymentRequested(_) => Some(PaymentMilestone::Requested),
            Self::PaymentCompleted(_) => Some(PaymentMilestone::Completed),
            Self::PaymentFailed(_) => Some(PaymentMilestone::Failed),
            Self::FundsDeposited(_) | Self::OperatorActionStarted(_) => None,
        }
    }

    /// The flow of the payment a payment event is about; `None` for any other event.
    pub fn flow_kind(&self) -> Option<FlowKind> {
        match self {
            Self::PaymentRequested(detail) => Some(detail.data.kind()),
            Self::PaymentCompleted(detail) | Self::PaymentFailed(detail) => {
                Some(detail.data.flow.kind())
            }
            Self::FundsDeposited(_) | Self::OperatorActionStarted(_) => None,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Self::PaymentRequested(detail) => &detail.event_id,
            Self::PaymentCompleted(detail) | Self::PaymentFailed(detail) => &detail.event_id,
            Self::FundsDeposited(detail) => &detail.event_id,
            Self::OperatorActionStarted(detail) => &detail.event_id,
        }
    }

    /// When what the event says became true (the write that made it).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Self::PaymentRequested(detail) => detail.occurred_at,
            Self::PaymentCompleted(detail) | Self::PaymentFailed(detail) => detail.occurred_at,
            Self::FundsDeposited(detail) => detail.occurred_at,
            Self::OperatorActionStarted(detail) => detail.occurred_at,
        }
    }

    /// The payment the event is about, if any (taken from its data, which the envelope's
    /// `payment_id` repeats when present).
    pub fn payment_id(&self) -> Option<&PaymentId> {
        match self {
            Self::PaymentRequested(detail) => EventSubject::payment_id(&detail.data),
            Self::PaymentCompleted(detail) | Self::PaymentFailed(detail) => {
                EventSubject::payment_id(&detail.data)
            }
            Self::FundsDeposited(detail) => EventSubject::payment_id(&detail.data),
            Self::OperatorActionStarted(detail) => EventSubject::payment_id(&detail.data),
        }
    }

    /// The `detail`, as the JSON text EventBridge carries.
    pub fn detail_json(&self) -> String {
        let json = match self {
            Self::PaymentRequested(detail) => serde_json::to_string(detail),
            Self::PaymentCompleted(detail) | Self::PaymentFailed(detail) => {
                serde_json::to_string(detail)
            }
            Self::FundsDeposited(detail) => serde_json::to_string(detail),
            Self::OperatorActionStarted(detail) => serde_json::to_string(detail),
        };
        json.expect("event details are plain data that always serialise")
    }
}

/// What [`DomainEvent::payment_request_from_eventbridge`] found in a valid event.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentRequestEvent {
    /// A `PaymentRequested`, `TopUpRequested` or `PayoutRequested`.
    Requested(EventDetail<PaymentRequest>),
    /// An event of another type.
    Other {
        source: &'static str,
        detail_type: &'static str,
    },
}

/// An EventBridge event as a rule's SQS target receives it, its detail still JSON text.
struct Envelope {
    source: String,
    detail_type: String,
    detail: String,
}

impl Envelope {
    fn read(event: &str) -> Result<Self, ContractViolation> {
        #[derive(Deserialize)]
        struct Wire {
            source: String,
            #[serde(rename = "detail-type")]
            detail_type: String,
            detail: serde_json::Value,
        }
        let wire: Wire = serde_json::from_str(event)
            .map_err(|error| ContractViolation::NotAnEvent(redact::json_error(&error)))?;
        Ok(Self {
            source: wire.source,
            detail_type: wire.detail_type,
            detail: wire.detail.to_string(),
        })
    }
}

/// A detail that passed the checks every type's contract shares: a JSON object, of a known
/// source and type, in the contract's version; [`Self::read`] then reads it as its type.
struct CheckedDetail<'a> {
    /// Its `source` and `detail-type`, one of [`EVENT_TYPES`].
    event_type: (&'static str, &'static str),
    detail: &'a str,
}

impl<'a> CheckedDetail<'a> {
    fn check(source: &str, detail_type: &str, detail: &'a str) -> Result<Self, ContractViolation> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u64,
        }
        // Source and detail-type are echoed in refusals, which are logged: shown, not copied.
        let invalid = |error: String| ContractViolation::InvalidDetail {
            detail_type: redact::shown(detail_type),
            error,
        };
        // serde reads a struct from a JSON array too (its fields in order): a detail is an
        // object, and valid JSON that starts with `{` is one.
        if !detail.trim_start().starts_with('{') {
            return Err(invalid("the detail is not a JSON object".to_owned()));
        }
        let version = serde_json::from_str::<Versioned>(detail)
            .map_err(|error| invalid(redact::json_error(&error)))?
            .version;
        let Some(&event_type) = EVENT_TYPES
            .iter()
            .find(|&&known| known == (source, detail_type))
        else {
            return Err(ContractViolation::UnknownEvent {
                event_source: redact::shown(source),
                detail_type: redact::shown(detail_type),
            });
        };
        if version != u64::from(CONTRACT_VERSION) {
            return Err(ContractViolation::UnsupportedVersion {
                detail_type: detail_type.to_owned(),
                version: u32::try_from(version).ok(),
            });
        }
        Ok(Self { event_type, detail })
    }

    fn read<T: DeserializeOwned + EventSubject>(
        &self,
    ) -> Result<EventDetail<T>, ContractViolation> {
        let detail: EventDetail<T> = serde_json::from_str(self.detail)
            .map_err(|error| self.invalid(redact::json_error(&error)))?;
        // The event id is logged by every consumer: it may not carry personal data.
        if let Some(finding) = redact::findings(&detail.event_id).first() {
            return Err(self.invalid(format!("event_id must not hold {}", finding.kind)));
        }
        match detail.mismatched_ids() {
            Some(mismatch) => Err(self.invalid(mismatch)),
            None => Ok(detail),
        }
    }

    /// Each flow has its own types: a top-up published as a PaymentRequested is refused, so a
    /// rule matching one flow's types never sees another's payments. `detail_type` is the
    /// type the data read is of.
    fn of_its_flow(
        &self,
        detail_type: &str,
        flow: Option<FlowKind>,
    ) -> Result<(), ContractViolation> {
        if detail_type == self.event_type.1 {
            return Ok(());
        }
        Err(self.invalid(format!(
            "its data is a {} (a {detail_type})",
            flow.map_or("deposit", FlowKind::as_str),
        )))
    }

    fn invalid(&self, error: String) -> ContractViolation {
        ContractViolation::InvalidDetail {
            detail_type: self.event_type.1.to_owned(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChargeId;
    use crate::payment::{PaymentStep, RequestChannel};
    use crate::test_support::request;

    #[test]
    fn payment_requested_round_trips_through_its_json_contract() {
        let event = DomainEvent::payment_requested(&request(1_250), Utc::now());
        assert_eq!(
            (event.source(), event.detail_type()),
            ("paysaga.payments", "PaymentRequested")
        );
        assert_eq!(event.event_id(), "pay_test/1");
        let json: serde_json::Value = serde_json::from_str(&event.detail_json()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(
            json["data"]["amount"],
            serde_json::json!({"minor_units": 1250, "currency": "EUR"})
        );
        let parsed: EventDetail<PaymentRequest> = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.data, request(1_250));
    }

    #[test]
    fn events_parse_back_from_what_the_bus_carries() {
        let requested = DomainEvent::payment_requested(&request(1_250), Utc::now());
        let completed = DomainEvent::payment_outcome(&completed()).unwrap();
        let failed = DomainEvent::payment_outcome(&failed()).unwrap();
        for event in [requested, completed, failed] {
            let parsed =
                DomainEvent::parse(event.source(), event.detail_type(), &event.detail_json());
            assert_eq!(parsed, Ok(event));
        }
    }

    #[test]
    fn a_consumer_of_requests_reads_requests_alone_under_the_same_contract() {
        let on_the_bus = |event: &DomainEvent, detail_type: &str| {
            serde_json::json!({
                "source": event.source(),
                "detail-type": detail_type,
                "detail": serde_json::from_str::<serde_json::Value>(&event.detail_json()).unwrap(),
            })
            .to_string()
        };
        let requested = DomainEvent::payment_requested(&request(1_250), Utc::now());
        let DomainEvent::PaymentRequested(detail) = &requested else {
            unreachable!("payment_requested builds a PaymentRequested");
        };
        assert_eq!(
            DomainEvent::payment_request_from_eventbridge(&on_the_bus(
                &requested,
                "PaymentRequested"
            )),
            Ok(PaymentRequestEvent::Requested(detail.clone()))
        );
        let completed = DomainEvent::payment_outcome(&completed()).unwrap();
        assert_eq!(
            DomainEvent::payment_request_from_eventbridge(&on_the_bus(
                &completed,
                "PaymentCompleted"
            )),
            Ok(PaymentRequestEvent::Other {
                source: "paysaga.payments",
                detail_type: "PaymentCompleted"
            })
        );
        // A transfer labelled a top-up is refused, as DomainEvent::parse refuses it.
        let relabelled = on_the_bus(&requested, "TopUpRequested");
        let refusal = ContractViolation::InvalidDetail {
            detail_type: "TopUpRequested".into(),
            error: "its data is a transfer (a PaymentRequested)".into(),
        };
        assert_eq!(
            DomainEvent::payment_request_from_eventbridge(&relabelled),
            Err(refusal.clone())
        );
        assert_eq!(DomainEvent::from_eventbridge(&relabelled), Err(refusal));
        assert!(matches!(
            DomainEvent::payment_request_from_eventbridge(&on_the_bus(
                &requested,
                "PaymentExploded"
            )),
            Err(ContractViolation::UnknownEvent { .. })
        ));
        assert!(matches!(
            DomainEvent::payment_request_from_eventbridge("[]"),
            Err(ContractViolation::NotAnEvent(_))
        ));
    }

    /// A payment's log after `steps`, folded.
    fn payment_after(steps: Vec<PaymentStep>) -> Payment {
        let mut log = vec![PaymentLogEntry::requested(request(10), Utc::now())];
        for step in steps {
            let payment = Payment::from_log(&log).unwrap();
            log.push(payment.next_entry(step, Utc::now()));
        }
        Payment::from_log(&log).unwrap()
    }

    fn completed() -> Payment {
        let charged = PaymentStep::Charged {
            charge_id: ChargeId::parse("ch_1").unwrap(),
        };
        payment_after(vec![
            PaymentStep::FundsReserved,
            charged,
            PaymentStep::Completed,
        ])
    }

    fn failed() -> Payment {
        payment_after(vec![PaymentStep::Failed {
            reason: FailureReason::InsufficientFunds {
                wallet_id: request(10).payer_wallet().clone(),
            },
        }])
    }

    /// The relay publishes a payment's request from its version 1 and its outcome from its
    /// terminal entry, nothing from the steps in between, and the same entry always gives the
    /// same event.
    #[test]
    fn a_log_announces_its_request_and_its_outcome_only() {
        let at = Utc::now();
        let requested = PaymentLogEntry::requested(request(10), at);
        let announced = DomainEvent::announced_by(std::slice::from_ref(&requested)).unwrap();
        assert_eq!(
            announced,
            Some(DomainEvent::payment_requested(&request(10), at)),
        );
        let on_the_bus = PaymentLogEntry::requested_through(request(10), RequestChannel::Bus, at);
        assert_eq!(DomainEvent::announced_by(&[on_the_bus]).unwrap(), None);

        let mut log = vec![requested];
        let charged = PaymentStep::Charged {
            charge_id: ChargeId::parse("ch_1").unwrap(),
        };
        for step in [PaymentStep::FundsReserved, charged] {
            let payment = Payment::from_log(&log).unwrap();
            log.push(payment.next_entry(step, Utc::now()));
            assert_eq!(DomainEvent::announced_by(&log).unwrap(), None);
        }
        let payment = Payment::from_log(&log).unwrap();
        log.push(payment.next_entry(PaymentStep::Completed, Utc::now()));
        let outcome = DomainEvent::announced_by(&log).unwrap().unwrap();
        assert_eq!(
            outcome.event_id(),
            format!("{}/4", request(10).payment_id())
        );
        assert_eq!(
            Some(&outcome),
            DomainEvent::payment_outcome(&Payment::from_log(&log).unwrap()).as_ref()
        );
        assert_eq!(
            DomainEvent::announced_by(&log).unwrap(),
            Some(outcome.clone())
        );
        // The terminal entry carries it: the entry alone announces the same event.
        let terminal = log.last().unwrap().clone();
        assert!(terminal.concludes.is_some());
        assert_eq!(
            DomainEvent::announced_by(std::slice::from_ref(&terminal)).unwrap(),
            Some(outcome.clone())
        );
        // Another payment's request is not believed: the log is folded instead.
        let mut forged = log.clone();
        if let Some(concluded) = forged.last_mut().and_then(|entry| entry.concludes.as_mut()) {
            concluded.request = PaymentRequest::of_flow(
                PaymentId::parse("pay_other").unwrap(),
                concluded.request.flow().clone(),
                concluded.request.amount(),
            )
            .unwrap();
        }
        assert_eq!(DomainEvent::announced_by(&forged).unwrap(), Some(outcome));
        assert_eq!(DomainEvent::announced_by(&[]), Err(PaymentLogError::Empty));
    }

    #[test]
    fn contract_violations_say_what_is_wrong() {
        let detail = DomainEvent::payment_requested(&request(1_250), Utc::now()).detail_json();
        let parse = |source: &str, detail_type: &str, detail: &str| {
            DomainEvent::parse(source, detail_type, detail).unwrap_err()
        };
        assert!(matches!(
            parse("paysaga.payments", "PaymentExploded", &detail),
            ContractViolation::UnknownEvent { .. }
        ));
        assert!(matches!(
            parse("someone.else", "PaymentRequested", &detail),
            ContractViolation::UnknownEvent { .. }
        ));
        let newer = detail.replace(r#""version":1"#, r#""version":2"#);
        assert_eq!(
            parse("paysaga.payments", "PaymentRequested", &newer),
            ContractViolation::UnsupportedVersion {
                detail_type: "PaymentRequested".into(),
                version: Some(2)
            }
        );
        // A version that long is not quoted: it could be a card number (this one passes Luhn).
        let card_long = detail.replace(r#""version":1"#, r#""version":4684101251077256869"#);
        let violation = parse("paysaga.payments", "PaymentRequested", &card_long);
        assert_eq!(
            violation,
            ContractViolation::UnsupportedVersion {
                detail_type: "PaymentRequested".into(),
                version: None
            }
        );
        assert!(
            !violation.to_string().contains("4684101251077256869"),
            "{violation}"
        );
        // A detail that is an array is no detail, though serde would read a struct from it.
        assert_eq!(
            parse("paysaga.payments", "PaymentRequested", "[1]"),
            ContractViolation::InvalidDetail {
                detail_type: "PaymentRequested".into(),
                error: "the detail is not a JSON object".into()
            }
        );
        let float_money = detail.replace(r#""minor_units":1250"#, r#""minor_units":12.5"#);
        let violation = parse("paysaga.payments", "PaymentRequested", &float_money);
        assert!(
            matches!(violation, ContractViolation::InvalidDetail { .. }),
            "{violation}"
        );
        let unversioned = parse("paysaga.payments", "PaymentRequested", "{}");
        assert!(
            matches!(unversioned, ContractViolation::InvalidDetail { .. }),
            "{unversioned}"
        );
    }

    #[test]
    fn only_outcomes_are_announced_identified_by_the_terminal_version() {
        let pending = payment_after(vec![]);
        let reserved = payment_after(vec![PaymentStep::FundsReserved]);
        let compensating = payment_after(vec![
            PaymentStep::FundsReserved,
            PaymentStep::CompensationStarted {
                reason: FailureReason::ProcessorUnavailable,
            },
        ]);
        for unfinished in [pending, reserved, compensating] {
            assert_eq!(
                DomainEvent::payment_outcome(&unfinished),
                None,
                "{:?}",
                unfinished.status
            );
        }

        let completed = completed();
        let event = DomainEvent::payment_outcome(&completed).unwrap();
        assert_eq!(
            (event.source(), event.detail_type(), event.event_id()),
            ("paysaga.payments", "PaymentCompleted", "pay_test/4")
        );
        let json: serde_json::Value = serde_json::from_str(&event.detail_json()).unwrap();
        assert_eq!(json["data"]["status"], "COMPLETED");
        assert!(json["data"].get("failure").is_none(), "{json}");
        assert_eq!(
            json["occurred_at"],
            serde_json::to_value(completed.updated_at).unwrap()
        );
        // The request's time, which read models order the payment by; optional on reading.
        assert_eq!(
            json["data"]["requested_at"],
            serde_json::to_value(completed.created_at).unwrap()
        );
        let mut older = json.clone();
        older["data"]
            .as_object_mut()
            .unwrap()
            .remove("requested_at");
        let parsed = DomainEvent::parse(PAYMENTS_SOURCE, PAYMENT_COMPLETED, &older.to_string());
        assert!(
            matches!(&parsed, Ok(DomainEvent::PaymentCompleted(detail)) if detail.data.requested_at.is_none()),
            "{parsed:?}"
        );

        let event = DomainEvent::payment_outcome(&failed()).unwrap();
        assert_eq!(
            (event.detail_type(), event.event_id()),
            ("PaymentFailed", "pay_test/2")
        );
        let json: serde_json::Value = serde_json::from_str(&event.detail_json()).unwrap();
        assert_eq!(json["payment_id"], "pay_test");
        assert_eq!(
            json["wallet_ids"],
            serde_json::json!(["wal_alice", "wal_bob"])
        );
        assert_eq!(json["data"]["status"], "FAILED");
        assert_eq!(json["data"]["failure"]["code"], "insufficient_funds");
    }

    #[test]
    fn event_ids_holding_personal_data_are_refused() {
        let deposit = FundsDeposited {
            deposit_id: DepositId::parse("dep_1").unwrap(),
            wallet_id: WalletId::parse("wal_a").unwrap(),
            amount: Money::new(1, "EUR".parse().unwrap()).unwrap(),
            issued_by: None,
            reason: None,
        };
        let event = DomainEvent::funds_deposited(deposit, Utc::now());
        let mut detail: serde_json::Value = serde_json::from_str(&event.detail_json()).unwrap();
        detail["event_id"] = "bob@example.com".into();
        let refused =
            DomainEvent::parse(WALLETS_SOURCE, FUNDS_DEPOSITED, &detail.to_string()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "FundsDeposited breaks its contract: event_id must not hold an e-mail address"
        );
        let refused = DomainEvent::parse("4111111111111111", "x@example.com", "{\"version\":1}");
        assert_eq!(
            refused.unwrap_err().to_string(),
            "no paysaga event is \"[e-mail]\" from \"[card number]\""
        );
    }

    #[test]
    fn step_events_are_no_longer_part_of_the_contract() {
        let detail = DomainEvent::payment_outcome(&completed())
            .unwrap()
            .detail_json();
        for retired in [
            "FundsReserved",
            "PaymentCharged",
            "FundsSettled",
            "CompensationStarted",
            "ChargeRefunded",
            "ReservationReleased",
        ] {
            assert!(
                matches!(
                    DomainEvent::parse("paysaga.payments", retired, &detail),
                    Err(ContractViolation::UnknownEvent { .. })
                ),
                "{retired}"
            );
        }
    }
}
