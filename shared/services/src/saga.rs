//! Runs the payment saga for one payment request, as far as it can go.
//!
//! Safe under at-least-once delivery: every step is a conditional append of the next log
//! version together with its wallet changes, so a duplicate or concurrent run finds the version
//! taken, reloads the log and carries on from there. Nothing is applied twice. Calls to the
//! payment processor are idempotent per payment id, so repeating one after a crash is harmless.
//!
//! A step that fails for good after funds were reserved starts compensation; a processor that
//! does not answer is retried by redelivery until the charge step's deadline or the message's
//! last delivery, and then compensated too, so no payment is left in between.
//!
//! Compensation never gives up: a processor that will not undo a payment (no answer, or a
//! refusal: [`SagaError::ReversalRefused`]) is asked again, on later deliveries and, past the
//! message's last, on a fresh one, until it does. Nor does contention: a run that lost to
//! other writers on the same wallet is tried again a moment later, never given up
//! ([`SagaError::redelivery`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, instrument, warn};

use super::ServiceError;
use crate::contention;
use crate::faults::Faults;
use paysaga_domain::consent::{ConsentProof, ConsentRefusal};
use paysaga_domain::events::{ContractViolation, PaymentRequestEvent};
use paysaga_domain::ports::{
    BeginPayment, ConsentVerifier, PaymentLog, PaymentProcessor, ProcessorError, RecordStep,
    StoreError, WalletOwners,
};
use paysaga_domain::saga::{charged, fail_before_reservation, start_compensation};
use paysaga_domain::{
    DomainEvent, FailureReason, Payment, PaymentId, PaymentLimits, PaymentLogEntry, PaymentRequest,
    PaymentStatus, RequestChannel, SagaStep, StepPlan, WalletRejection,
};

/// Why the saga stopped short of a terminal state.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Processor(#[from] ProcessorError),
    /// The request names a payment id that exists with other terms.
    #[error("payment {0} exists with different terms")]
    ConflictingRequest(PaymentId),
    /// Fault injection: the function is to crash now, before acknowledging the message.
    #[error("injected crash after step {0}")]
    InjectedCrash(&'static str),
    /// A payment requested on the bus without a proof that its payer's owner asked for it:
    /// nothing is recorded, no money moves.
    #[error("payment {payment_id} refused ({code}): {refusal}", code = refusal.code())]
    NotConsented {
        payment_id: PaymentId,
        refusal: ConsentRefusal,
    },
    /// Compensation could not finish on this run (its cause, a transient one): the payment
    /// stays COMPENSATING, what it holds still held, and must be carried on by a later
    /// delivery, never given up (its consumer sends the request again as a fresh message
    /// rather than to a dead-letter queue).
    #[error("compensation unfinished: {0}")]
    CompensationUnfinished(Box<SagaError>),
    /// The processor refuses to undo the payment ([`ProcessorError::Refused`]): it stays
    /// COMPENSATING, what it reserved still reserved, and is asked again after
    /// [`Self::retry_in`].
    #[error("payment {payment_id} stays compensating: {refusal}")]
    ReversalRefused {
        payment_id: PaymentId,
        refusal: String,
        /// When its compensation began (the log's last entry).
        compensating_since: DateTime<Utc>,
    },
}

/// How long a refused reversal waits before it is asked again: as long as the payment has been
/// compensating, within these bounds (so 30 s, 30 s, 1 min, 2, 4, 8, then every 15 min).
pub const REFUSED_REVERSAL_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(30), Duration::from_secs(15 * 60));

impl SagaError {
    /// Whether a redelivery of the same message may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Service(error) => error.is_transient(),
            Self::Processor(error) => !matches!(error, ProcessorError::Declined(_)),
            Self::InjectedCrash(_)
            | Self::ReversalRefused { .. }
            | Self::CompensationUnfinished(_) => true,
            Self::ConflictingRequest(_) | Self::NotConsented { .. } => false,
        }
    }

    /// How long to wait before a redelivery, when asking again at once would not help: a
    /// refused reversal backs off ([`REFUSED_REVERSAL_BACKOFF`]). `None`: the queue's own
    /// visibility timeout.
    pub fn retry_in(&self, now: DateTime<Utc>) -> Option<Duration> {
        let compensating_since = match self {
            Self::ReversalRefused {
                compensating_since, ..
            } => compensating_since,
            Self::CompensationUnfinished(cause) => return cause.retry_in(now),
            _ => return None,
        };
        let (shortest, longest) = REFUSED_REVERSAL_BACKOFF;
        let compensating = (now - *compensating_since).to_std().unwrap_or_default();
        Some(compensating.clamp(shortest, longest))
    }
}

/// When a request whose run failed is tried again: the saga's word, which its consumer turns
/// into its queue's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Never: the request itself is wrong, and no run of it can succeed.
    Never,
    /// Again, after the queue's own visibility timeout (`None`) or after this long; given up
    /// after the queue's last delivery.
    Again(Option<Duration>),
    /// Again after this long (zero: the queue's visibility timeout), and never given up: past
    /// the queue's last delivery, as a fresh request. Contention, and compensation that
    /// cannot finish yet.
    Unfinished(Duration),
}

impl SagaError {
    /// When the request is tried again ([`Redelivery`]).
    pub fn redelivery(&self, now: DateTime<Utc>) -> Redelivery {
        if let Some(wait) = self.contention_wait() {
            return Redelivery::Unfinished(wait);
        }
        match self {
            Self::CompensationUnfinished(cause) => {
                Redelivery::Unfinished(cause.retry_in(now).unwrap_or_default())
            }
            error if error.is_transient() => Redelivery::Again(error.retry_in(now)),
            _ => Redelivery::Never,
        }
    }

    /// A wait within [`contention::CONTENTION_WAIT`] when the run lost to contention, its
    /// cause or its compensation's.
    fn contention_wait(&self) -> Option<Duration> {
        match self {
            Self::Service(ServiceError::Store(StoreError::Contended(..))) => {
                Some(contention::redelivery_wait())
            }
            Self::CompensationUnfinished(cause) => cause.contention_wait(),
            _ => None,
        }
    }
}

impl From<paysaga_domain::ports::StoreError> for SagaError {
    fn from(error: paysaga_domain::ports::StoreError) -> Self {
        Self::Service(error.into())
    }
}

impl From<paysaga_domain::payment::PaymentLogError> for SagaError {
    fn from(error: paysaga_domain::payment::PaymentLogError) -> Self {
        Self::Service(error.into())
    }
}

/// A requested payment of any flow (`PaymentRequested`, `TopUpRequested`, `PayoutRequested`),
/// as the saga reads it from a message body.
#[derive(Debug, Clone)]
pub struct RequestedPayment {
    pub request: PaymentRequest,
    /// The event's `occurred_at`: a payment published straight onto the bus is dated by it.
    pub requested_at: DateTime<Utc>,
    /// The faults a test run aims at the payment (`data.test_faults`; fault-injection builds
    /// only, always empty otherwise).
    pub faults: Faults,
    /// The payer's consent (`detail.consent`), which a payment published straight onto the bus
    /// needs ([`paysaga_domain::consent`]).
    pub consent: Option<ConsentProof>,
}

/// A message body that can never be a payment request.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableRequest {
    #[error("not a requested payment: {0}")]
    NotAnEvent(#[from] ContractViolation),
    #[error("expected a requested payment, got {detail_type} from {from}")]
    OtherEvent {
        detail_type: &'static str,
        from: &'static str,
    },
    #[error("unreadable test_faults: {0}")]
    Faults(serde_json::Error),
    #[error("unreadable consent: {0}")]
    Consent(String),
}

impl RequestedPayment {
    /// The payment request in `body`, an EventBridge event read against its contract.
    pub fn from_event(body: &str) -> Result<Self, UnreadableRequest> {
        let detail = match DomainEvent::payment_request_from_eventbridge(body)? {
            PaymentRequestEvent::Requested(detail) => detail,
            PaymentRequestEvent::Other {
                source,
                detail_type,
            } => {
                return Err(UnreadableRequest::OtherEvent {
                    detail_type,
                    from: source,
                });
            }
        };
        Ok(Self {
            request: detail.data,
            requested_at: detail.occurred_at,
            faults: Faults::of_event(body).map_err(UnreadableRequest::Faults)?,
            // The error quotes no part of the body: a consent holds a token.
            consent: ConsentProof::of_event(body)
                .map_err(|error| UnreadableRequest::Consent(redact::json_error(&error)))?,
        })
    }

    /// The run's view of this delivery: the `receive_count`th of a queue whose
    /// `maxReceiveCount` is `max_receive_count`.
    pub fn delivery(&self, receive_count: u32, max_receive_count: u32) -> Delivery {
        Delivery {
            receive_count,
            max_receive_count,
            faults: self.faults.clone(),
            requested_at: Some(self.requested_at),
            consent: self.consent.clone(),
        }
    }
}

/// How the saga behaves.
#[derive(Debug, Clone)]
pub struct SagaSettings {
    pub limits: PaymentLimits,
    /// How long after the reservation the charge step keeps retrying an unavailable processor
    /// before it gives up and compensates.
    pub charge_deadline: chrono::Duration,
}

impl Default for SagaSettings {
    fn default() -> Self {
        Self {
            limits: PaymentLimits::default(),
            charge_deadline: chrono::Duration::seconds(120),
        }
    }
}

/// What a run of the saga may touch.
pub struct Saga<'a> {
    pub log: &'a dyn PaymentLog,
    pub processor: &'a dyn PaymentProcessor,
    pub settings: &'a SagaSettings,
    /// Whom a payment requested on the bus speaks for ...
    pub consent: &'a dyn ConsentVerifier,
    /// ... and whether they own its payer's wallet.
    pub wallets: &'a dyn WalletOwners,
}

/// Which delivery of the request this run handles.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// 1 on the first delivery.
    pub receive_count: u32,
    /// The queue's `maxReceiveCount` (0 when unknown): the last delivery before the DLQ.
    pub max_receive_count: u32,
    pub faults: Faults,
    /// When the payment was requested (the `PaymentRequested` event's `occurred_at`): a payment
    /// the saga begins itself (published straight onto the bus) is dated by it, so its log and
    /// every event about it agree on when it was requested. `None`: now.
    pub requested_at: Option<DateTime<Utc>>,
    /// The payer's consent the request carried, if any.
    pub consent: Option<ConsentProof>,
}

impl Delivery {
    /// Whether the queue gives up on the message after this delivery.
    pub fn is_last(&self) -> bool {
        self.max_receive_count > 0 && self.receive_count >= self.max_receive_count
    }
}

impl Saga<'_> {
    /// Drives the payment in `request` to COMPLETED or FAILED (or, when its compensation cannot
    /// finish yet, leaves it to a later delivery: [`SagaError::CompensationUnfinished`]).
    /// Its outcome is announced by the terminal entry itself: the event relay publishes
    /// `PaymentCompleted` or `PaymentFailed` from the log ([`crate::relay`]). The steps in
    /// between are not announced; they stay in the payment's log.
    #[instrument(skip_all, fields(payment_id = %request.payment_id(), receive_count = delivery.receive_count))]
    pub async fn run(
        &self,
        request: &PaymentRequest,
        delivery: &Delivery,
    ) -> Result<Payment, SagaError> {
        let mut history = self.load_or_begin(request, delivery).await?;
        let mut payment = Payment::from_log(&history)?;
        if !payment.request.same_terms_as(request) {
            return Err(SagaError::ConflictingRequest(request.payment_id().clone()));
        }

        match self.drive(&mut history, &mut payment, delivery).await {
            Ok(()) => Ok(payment),
            // Compensation never gives up: whatever stops it now (a processor refusing, a
            // store throttling), a later delivery carries it on, so the DLQ never holds the
            // funds it reserved.
            Err(error)
                if error.is_transient()
                    && !matches!(error, SagaError::InjectedCrash(_))
                    && payment.status == PaymentStatus::Compensating =>
            {
                warn!(%error, "compensation cannot finish on this delivery; a later one carries it on");
                Err(SagaError::CompensationUnfinished(Box::new(error)))
            }
            Err(error) => Err(error),
        }
    }

    /// Runs steps until the payment is terminal, keeping `history` and `payment` current.
    async fn drive(
        &self,
        history: &mut Vec<PaymentLogEntry>,
        payment: &mut Payment,
        delivery: &Delivery,
    ) -> Result<(), SagaError> {
        while let Some(step) = SagaStep::next_for(payment) {
            let plan = self.plan(payment, step, delivery).await?;
            let Some(recorded) = self.record(plan, step).await? else {
                // A duplicate or concurrent delivery got there first: carry on from its state.
                *history = self.log.history(payment.request.payment_id()).await?;
                *payment = Payment::from_log(history)?;
                continue;
            };
            *payment = payment.after(&recorded.entry)?;
            info!(step = step.name(), version = recorded.entry.version, status = ?payment.status, "payment step recorded");
            history.push(recorded.entry);
            if delivery.faults.crashes_after(step, delivery.receive_count) {
                return Err(SagaError::InjectedCrash(step.name()));
            }
        }
        Ok(())
    }

    /// What `step` writes, once its outside work (the processor's) is done.
    async fn plan(
        &self,
        payment: &Payment,
        step: SagaStep,
        delivery: &Delivery,
    ) -> Result<StepPlan, SagaError> {
        let now = Utc::now();
        if delivery.faults.unavailable(step, now) {
            let outage = format!("injected outage of {}", step.name());
            return Err(paysaga_domain::ports::StoreError::Transient(outage).into());
        }
        if delivery.faults.fails(step) {
            let reason = FailureReason::InjectedFault {
                step: step.name().to_owned(),
            };
            match step {
                SagaStep::ReserveFunds => return Ok(fail_before_reservation(payment, reason, now)),
                SagaStep::ChargePayment | SagaStep::SettleFunds => {
                    return Ok(start_compensation(payment, reason, now));
                }
                // Compensation cannot fail for good: nothing to inject.
                _ => {}
            }
        }
        match step {
            SagaStep::ReserveFunds => {
                if let Some(reason) = self.settings.limits.refusal(&payment.request) {
                    return Ok(fail_before_reservation(payment, reason, now));
                }
            }
            SagaStep::ChargePayment => return self.charge(payment, delivery, now).await,
            SagaStep::RefundCharge => {
                self.processor
                    .reverse(&payment.request)
                    .await
                    .map_err(|error| match error {
                        ProcessorError::Refused(refusal) => {
                            error!(%refusal, "the payment processor refuses to undo the payment; asking again later");
                            SagaError::ReversalRefused {
                                payment_id: payment.request.payment_id().clone(),
                                refusal,
                                compensating_since: payment.updated_at,
                            }
                        }
                        other => other.into(),
                    })?
            }
            _ => {}
        }
        Ok(step
            .plan(payment, now)
            .expect("only the charge step waits for the processor's answer"))
    }

    async fn charge(
        &self,
        payment: &Payment,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<StepPlan, SagaError> {
        match self.processor.execute(&payment.request).await {
            Ok(charge_id) => Ok(charged(payment, charge_id, now)),
            Err(ProcessorError::Declined(message)) => Ok(start_compensation(
                payment,
                FailureReason::PaymentDeclined { message },
                now,
            )),
            Err(error)
                if delivery.is_last()
                    || now - payment.updated_at >= self.settings.charge_deadline =>
            {
                warn!(%error, "giving up on the processor; compensating");
                Ok(start_compensation(
                    payment,
                    FailureReason::ProcessorUnavailable,
                    now,
                ))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Appends `plan`; when a wallet refuses it for a business reason, appends what the saga
    /// does instead (fail before anything was reserved, or compensate a refused settlement).
    /// `None` when the version was taken by another delivery.
    async fn record(&self, plan: StepPlan, step: SagaStep) -> Result<Option<StepPlan>, SagaError> {
        let reason = match self.log.record(&plan).await? {
            RecordStep::Recorded => return Ok(Some(plan)),
            RecordStep::VersionTaken => return Ok(None),
            RecordStep::Refused(WalletRejection::Business(reason)) => reason,
            RecordStep::Refused(refusal) => return Err(inconsistent(refusal)),
        };
        let payment_before = plan.entry.version - 1;
        let instead = match step {
            SagaStep::ReserveFunds => fail_before_reservation,
            SagaStep::SettleFunds => start_compensation,
            _ => return Err(inconsistent(WalletRejection::Business(reason))),
        };
        let history = self.log.history(&plan.entry.payment_id).await?;
        let payment = Payment::from_log(&history)?;
        if payment.version != payment_before {
            return Ok(None);
        }
        let fallback = instead(&payment, reason, Utc::now());
        match self.log.record(&fallback).await? {
            RecordStep::Recorded => Ok(Some(fallback)),
            RecordStep::VersionTaken => Ok(None),
            RecordStep::Refused(refusal) => Err(inconsistent(refusal)),
        }
    }

    /// The payment's log, writing version 1 from the request first when the payment is new
    /// (a request published straight onto the bus, not through the API).
    async fn load_or_begin(
        &self,
        request: &PaymentRequest,
        delivery: &Delivery,
    ) -> Result<Vec<PaymentLogEntry>, SagaError> {
        let history = self.log.history(request.payment_id()).await?;
        if !history.is_empty() {
            return Ok(history);
        }
        self.check_consent(request, delivery).await?;
        let requested_at = delivery.requested_at.unwrap_or_else(Utc::now);
        // The request was on the bus before it was recorded: nothing announces it again.
        match self
            .log
            .begin(request, RequestChannel::Bus, None, requested_at)
            .await?
        {
            BeginPayment::Begun => Ok(vec![PaymentLogEntry::requested_through(
                request.clone(),
                RequestChannel::Bus,
                requested_at,
            )]),
            BeginPayment::AlreadyExists => Ok(self.log.history(request.payment_id()).await?),
            other => Err(ServiceError::Inconsistent(format!(
                "begin without a key answered {other:?}"
            ))
            .into()),
        }
    }
}

impl Saga<'_> {
    /// Ok when the request carries a proof of consent whose subject owns the payer's wallet.
    /// Asked only of a payment the saga would begin itself (the API records the request first,
    /// having checked its caller: such a payment is found begun).
    async fn check_consent(
        &self,
        request: &PaymentRequest,
        delivery: &Delivery,
    ) -> Result<(), SagaError> {
        let refused = |refusal| SagaError::NotConsented {
            payment_id: request.payment_id().clone(),
            refusal,
        };
        let proof = delivery
            .consent
            .as_ref()
            .ok_or_else(|| refused(ConsentRefusal::Missing))?;
        let owner = self.consent.verify(proof).map_err(refused)?;
        let ownership = self.wallets.ownership(request.payer_wallet()).await?;
        if !ownership.is(&owner) {
            return Err(refused(ConsentRefusal::NotTheOwner));
        }
        Ok(())
    }
}

fn inconsistent(refusal: WalletRejection) -> SagaError {
    ServiceError::Inconsistent(refusal.to_string()).into()
}

#[cfg(test)]
mod tests {
    use futures::future::join_all;

    use super::*;
    use crate::fakes::{ChargeState, InMemoryLedger, InMemoryProcessor, StaticConsent};
    use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
    use paysaga_domain::money::MAX_MINOR_UNITS;
    use paysaga_domain::payment::{Flow, FlowKind};
    use paysaga_domain::ports::PaymentHistory;
    use paysaga_domain::ports::{Deposit, PaymentRequests, WalletDeposits, WalletStore};
    use paysaga_domain::{Money, PaymentStatus, Wallet, WalletId};

    struct World {
        ledger: InMemoryLedger,
        processor: InMemoryProcessor,
        settings: SagaSettings,
        consent: StaticConsent,
    }

    /// Every wallet of a [`World`] belongs to `holder`, whose token is `token-holder`.
    const HOLDER: &str = "holder";
    const HOLDERS_TOKEN: &str = "token-holder";

    impl World {
        async fn with(wallets: &[(&str, &str, u64)]) -> World {
            let ledger = InMemoryLedger::default();
            for (id, currency, minor_units) in wallets {
                let id = WalletId::parse(id).unwrap();
                let currency = currency.parse().unwrap();
                ledger
                    .open_wallet(
                        &Wallet::open(id.clone(), currency, Utc::now())
                            .owned_by(paysaga_domain::Owner::parse(HOLDER).unwrap()),
                    )
                    .await
                    .unwrap();
                if *minor_units == 0 {
                    continue; // nothing to deposit: a deposit moves a positive amount
                }
                let amount = Money::new(*minor_units, currency).unwrap();
                let deposit_id = paysaga_domain::DepositId::generate();
                let deposit = Deposit {
                    deposit_id,
                    wallet_id: id,
                    amount,
                    idempotency_key: None,
                    operator: paysaga_domain::OperatorRecord {
                        issued_by: paysaga_domain::Owner::parse("ops-test").unwrap(),
                        reason: paysaga_domain::OperatorReason::parse("test funds").unwrap(),
                    },
                };
                ledger.deposit(&deposit, Utc::now()).await.unwrap();
            }
            let processor = InMemoryProcessor::default();
            World {
                ledger,
                processor,
                settings: SagaSettings::default(),
                consent: StaticConsent::default()
                    .with(HOLDERS_TOKEN, HOLDER)
                    .with("token-someone-else", "someone-else"),
            }
        }

        async fn alice_pays_bob() -> World {
            World::with(&[("wal_alice", "EUR", 1_000), ("wal_bob", "EUR", 0)]).await
        }

        fn saga(&self) -> Saga<'_> {
            Saga {
                log: &self.ledger,
                processor: &self.processor,
                settings: &self.settings,
                consent: &self.consent,
                wallets: &self.ledger,
            }
        }

        async fn run(&self, amount: u64, delivery: &Delivery) -> Result<Payment, SagaError> {
            self.saga().run(&request(amount), delivery).await
        }

        fn wallet(&self, id: &str) -> (u64, u64) {
            let wallet = self
                .ledger
                .wallets()
                .into_iter()
                .find(|wallet| wallet.id().as_str() == id)
                .unwrap();
            (
                wallet.available().minor_units(),
                wallet.reserved().minor_units(),
            )
        }

        async fn status(&self) -> PaymentStatus {
            let history = self.ledger.history(request(1).payment_id()).await.unwrap();
            Payment::from_log(&history).unwrap().status
        }

        /// What reaches the bus about payments: what the relay publishes from the ledger's
        /// writes (the wallets' funding aside).
        async fn announcements(&self) -> Vec<DomainEvent> {
            self.ledger.payment_events().await
        }

        async fn announced(&self) -> Vec<&'static str> {
            self.announcements()
                .await
                .iter()
                .map(DomainEvent::detail_type)
                .collect()
        }

        fn charge(&self) -> Option<ChargeState> {
            self.processor.charge_state(request(1).payment_id())
        }
    }

    fn request(amount: u64) -> PaymentRequest {
        PaymentRequest::new(
            PaymentId::parse("pay_saga").unwrap(),
            WalletId::parse("wal_alice").unwrap(),
            WalletId::parse("wal_bob").unwrap(),
            Money::new(amount, "EUR".parse().unwrap()).unwrap(),
        )
        .unwrap()
    }

    /// The first delivery of a request published on the bus with its payer's consent.
    fn first() -> Delivery {
        Delivery {
            receive_count: 1,
            max_receive_count: 3,
            consent: Some(ConsentProof::bearer(HOLDERS_TOKEN)),
            ..Delivery::default()
        }
    }

    fn last() -> Delivery {
        Delivery {
            receive_count: 3,
            ..first()
        }
    }

    #[tokio::test]
    async fn a_payment_the_saga_begins_is_dated_by_its_request_event() {
        let world = World::alice_pays_bob().await;
        let requested_at = Utc::now() - chrono::Duration::minutes(5);
        let delivery = Delivery {
            requested_at: Some(requested_at),
            ..first()
        };
        let payment = world.run(300, &delivery).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Completed);
        assert_eq!(payment.created_at, requested_at);
    }

    /// Payments that complete, are declined, or want more than the payer has: afterwards every
    /// wallet's balance is the sum of its entries in the ledger's journal, and the books in
    /// each currency, the outside world's account included, sum to zero.
    #[tokio::test]
    async fn every_balance_is_the_sum_of_its_entries_and_the_books_sum_to_zero() {
        use paysaga_domain::ledger::{Account, Balances, WorldAccount};

        let world = World::with(&[
            ("wal_alice", "EUR", 1_000),
            ("wal_bob", "EUR", 250),
            ("wal_carol", "EUR", 0),
        ])
        .await;
        let pay = |n: u32, from: &str, to: &str, amount: u64| {
            PaymentRequest::new(
                PaymentId::parse(&format!("pay_books_{n}")).unwrap(),
                WalletId::parse(from).unwrap(),
                WalletId::parse(to).unwrap(),
                Money::new(amount, "EUR".parse().unwrap()).unwrap(),
            )
            .unwrap()
        };
        let saga = world.saga();
        let mut outcomes = Vec::new();
        for (n, (from, to, amount, declined)) in [
            ("wal_alice", "wal_bob", 300, false),
            ("wal_bob", "wal_carol", 500, false),
            ("wal_alice", "wal_carol", 200, true),
            ("wal_bob", "wal_carol", 99_999, false),
            ("wal_carol", "wal_alice", 100, false),
        ]
        .into_iter()
        .enumerate()
        {
            world.processor.set_declining(declined);
            let payment = saga
                .run(&pay(n as u32, from, to, amount), &first())
                .await
                .unwrap();
            outcomes.push(payment.status);
        }
        use PaymentStatus::{Completed, Failed};
        assert_eq!(outcomes, [Completed, Completed, Failed, Failed, Completed]);

        let eur = "EUR".parse().unwrap();
        let books: Balances = world.ledger.journal().iter().collect();
        for wallet in world.ledger.wallets() {
            let (available, reserved) = (wallet.available(), wallet.reserved());
            assert_eq!(
                reserved.minor_units(),
                0,
                "{}: nothing left reserved",
                wallet.id()
            );
            assert_eq!(
                books.of(&Account::wallet(wallet.id().clone()), eur),
                i128::from(available.minor_units()),
                "{}: its balance is the sum of its entries",
                wallet.id()
            );
        }
        let outside = Account::world(WorldAccount::Adjustments, eur);
        assert_eq!(
            books.of(&outside, eur),
            -1_250,
            "the deposits came from outside"
        );
        assert_eq!(books.sum_by_currency().get("EUR"), Some(&0));
    }

    /// A payment published straight onto the bus moves money only with a proof that its payer's
    /// owner asked for it: without one, with a bad one, or with someone else's, nothing is
    /// recorded, the processor hears nothing, no money moves, and the refusal is permanent.
    #[tokio::test]
    async fn a_payment_requested_on_the_bus_needs_its_payers_consent() {
        let world = World::alice_pays_bob().await;
        let proofs = [
            (None, "consent_missing"),
            (Some("a-forged-token"), "consent_invalid"),
            (Some("token-someone-else"), "consent_not_the_owner"),
        ];
        for (token, code) in proofs {
            let delivery = Delivery {
                consent: token.map(ConsentProof::bearer),
                ..first()
            };
            let error = world.run(300, &delivery).await.unwrap_err();
            let SagaError::NotConsented { refusal, .. } = &error else {
                panic!("{code}: {error}")
            };
            assert_eq!(refusal.code(), code);
            assert!(
                !error.is_transient(),
                "{code}: the same event never moves money"
            );
            assert!(!error.to_string().contains("a-forged-token"), "{error}");
        }
        assert!(
            world
                .ledger
                .history(request(1).payment_id())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(world.processor.charge_calls(), 0);
        assert_eq!(
            (world.wallet("wal_alice"), world.wallet("wal_bob")),
            ((1_000, 0), (0, 0))
        );
        assert!(world.announcements().await.is_empty());

        // A top-up's payer is the wallet it funds: its owner's consent, no one else's.
        let top_up = top_up("pay_consent_top_up", "wal_bob", 500);
        let someone_else = Delivery {
            consent: Some(ConsentProof::bearer("token-someone-else")),
            ..first()
        };
        assert!(world.saga().run(&top_up, &someone_else).await.is_err());
        let topped_up = world.saga().run(&top_up, &first()).await.unwrap();
        assert_eq!(topped_up.status, PaymentStatus::Completed);
    }

    /// The API records a request (having checked its caller) before it announces it: the saga
    /// finds it begun and asks for nothing more.
    #[tokio::test]
    async fn a_payment_the_api_recorded_needs_no_proof_on_the_bus() {
        let world = World::alice_pays_bob().await;
        world
            .ledger
            .begin(&request(300), RequestChannel::Api, None, Utc::now())
            .await
            .unwrap();
        let delivery = Delivery {
            consent: None,
            ..first()
        };
        let payment = world.run(300, &delivery).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Completed);
    }

    fn eur(minor_units: u64) -> Money {
        Money::new(minor_units, "EUR".parse().unwrap()).unwrap()
    }

    fn top_up(id: &str, wallet: &str, minor_units: u64) -> PaymentRequest {
        let flow = Flow::TopUp {
            funding_instrument: FundingInstrumentId::parse("fi_card").unwrap(),
            to_wallet: WalletId::parse(wallet).unwrap(),
        };
        PaymentRequest::of_flow(PaymentId::parse(id).unwrap(), flow, eur(minor_units)).unwrap()
    }

    fn payout(id: &str, wallet: &str, minor_units: u64) -> PaymentRequest {
        let flow = Flow::Payout {
            from_wallet: WalletId::parse(wallet).unwrap(),
            destination: PayoutDestinationId::parse("dst_bank").unwrap(),
        };
        PaymentRequest::of_flow(PaymentId::parse(id).unwrap(), flow, eur(minor_units)).unwrap()
    }

    /// Top-ups (one declined by the processor), transfers and payouts (one declined after its
    /// reservation, one for more than the wallet holds), with duplicates: each wallet's balance
    /// is the sum of its entries, the books in each currency sum to zero with the outside
    /// world's accounts, and the processor holds a captured charge for every credited top-up
    /// and a paid payout for every settled one, nothing else.
    #[tokio::test]
    async fn the_three_flows_keep_the_books_at_zero_and_agree_with_the_processor() {
        use paysaga_domain::ledger::{Account, Balances, WorldAccount};

        let world = World::with(&[("wal_alice", "EUR", 0), ("wal_bob", "EUR", 0)]).await;
        let saga = world.saga();
        let transfer = |id: &str, amount| {
            PaymentRequest::new(
                PaymentId::parse(id).unwrap(),
                WalletId::parse("wal_alice").unwrap(),
                WalletId::parse("wal_bob").unwrap(),
                eur(amount),
            )
            .unwrap()
        };
        let runs = [
            (top_up("pay_t1", "wal_alice", 1_000), None),
            (top_up("pay_t2", "wal_alice", 500), Some(FlowKind::TopUp)),
            (transfer("pay_p1", 400), None),
            (payout("pay_o1", "wal_bob", 150), None),
            (payout("pay_o2", "wal_bob", 100), Some(FlowKind::Payout)),
            (payout("pay_o3", "wal_alice", 601), None),
            (payout("pay_o4", "wal_alice", 600), None),
        ];
        let mut outcomes = Vec::new();
        for (request, declined) in &runs {
            world.processor.set_declining(false);
            if let Some(kind) = declined {
                world.processor.set_declining_flow(*kind, true);
            }
            let payment = saga.run(request, &first()).await.unwrap();
            // A duplicate delivery changes nothing.
            let again = saga.run(request, &first()).await.unwrap();
            assert_eq!(
                (again.status, again.version),
                (payment.status, payment.version)
            );
            outcomes.push(payment.status);
        }
        use PaymentStatus::{Completed, Failed};
        assert_eq!(
            outcomes,
            [
                Completed, Failed, Completed, Completed, Failed, Failed, Completed
            ]
        );
        assert_eq!(
            (world.wallet("wal_alice"), world.wallet("wal_bob")),
            ((0, 0), (250, 0)),
            "1000 topped up, 400 sent, 600 paid out; bob got 400 and paid out 150"
        );

        let eur_currency = "EUR".parse().unwrap();
        let books: Balances = world.ledger.journal().iter().collect();
        for wallet in world.ledger.wallets() {
            assert_eq!(
                books.of(&Account::wallet(wallet.id().clone()), eur_currency),
                i128::from(wallet.balance_minor_units()),
                "{}: its balance is the sum of its entries",
                wallet.id()
            );
        }
        let world_account =
            |account| books.of(&Account::world(account, eur_currency), eur_currency);
        assert_eq!(world_account(WorldAccount::Funding), -1_000);
        assert_eq!(world_account(WorldAccount::Payouts), 750);
        assert_eq!(books.sum_by_currency().get("EUR"), Some(&0));

        let mut held: Vec<(String, FlowKind, ChargeState)> = world
            .processor
            .executions()
            .into_iter()
            .map(|(id, kind, state)| (id.to_string(), kind, state))
            .collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            held,
            [
                (
                    "pay_o1".to_owned(),
                    FlowKind::Payout,
                    ChargeState::Captured(eur(150))
                ),
                ("pay_o2".to_owned(), FlowKind::Payout, ChargeState::Voided),
                (
                    "pay_o4".to_owned(),
                    FlowKind::Payout,
                    ChargeState::Captured(eur(600))
                ),
                (
                    "pay_p1".to_owned(),
                    FlowKind::Transfer,
                    ChargeState::Captured(eur(400))
                ),
                (
                    "pay_t1".to_owned(),
                    FlowKind::TopUp,
                    ChargeState::Captured(eur(1_000))
                ),
                ("pay_t2".to_owned(), FlowKind::TopUp, ChargeState::Voided),
            ],
            "the payout over the balance never reached the processor"
        );
    }

    #[tokio::test]
    async fn a_payout_that_fails_after_its_reservation_gives_the_reservation_back() {
        let world = World::with(&[("wal_alice", "EUR", 1_000)]).await;
        world.processor.set_declining_flow(FlowKind::Payout, true);
        let payment = world
            .saga()
            .run(&payout("pay_out", "wal_alice", 300), &first())
            .await
            .unwrap();
        assert_eq!(payment.status, PaymentStatus::Failed);
        assert!(payment.reservation_released && payment.charge_refunded);
        assert_eq!(world.wallet("wal_alice"), (1_000, 0));
        assert_eq!(world.announced().await, ["PayoutFailed"]);
    }

    #[tokio::test]
    async fn a_top_up_into_a_wallet_of_another_currency_charges_nothing() {
        let world = World::with(&[("wal_alice", "USD", 0)]).await;
        let payment = world
            .saga()
            .run(&top_up("pay_top", "wal_alice", 300), &first())
            .await
            .unwrap();
        assert_eq!(payment.status, PaymentStatus::Failed);
        assert_eq!(
            payment.failure.as_ref().map(FailureReason::code),
            Some("currency_mismatch")
        );
        assert_eq!(world.processor.charge_calls(), 0);
        assert_eq!(world.announced().await, ["TopUpFailed"]);
    }

    #[tokio::test]
    async fn a_payment_reserves_charges_and_settles_which_completes_it() {
        let world = World::alice_pays_bob().await;
        let payment = world.run(300, &first()).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Completed);
        assert_eq!(
            (world.wallet("wal_alice"), world.wallet("wal_bob")),
            ((700, 0), (300, 0))
        );
        assert_eq!(
            world.charge(),
            Some(ChargeState::Captured(
                Money::new(300, "EUR".parse().unwrap()).unwrap()
            ))
        );
        let published = world.announcements().await;
        assert_eq!(
            published
                .iter()
                .map(|event| (event.detail_type(), event.event_id()))
                .collect::<Vec<_>>(),
            [("PaymentCompleted", "pay_saga/4")],
            "the outcome only, not the steps"
        );
    }

    #[tokio::test]
    async fn concurrent_duplicate_deliveries_apply_every_step_once() {
        let world = World::alice_pays_bob().await;
        let delivery = first();
        let runs = (0..8).map(|_| world.run(300, &delivery));
        for result in join_all(runs).await {
            assert_eq!(result.unwrap().status, PaymentStatus::Completed);
        }
        assert_eq!(
            (world.wallet("wal_alice"), world.wallet("wal_bob")),
            ((700, 0), (300, 0))
        );
        let history = world.ledger.history(request(1).payment_id()).await.unwrap();
        let versions: Vec<u32> = history.iter().map(|entry| entry.version).collect();
        assert_eq!(
            versions,
            [1, 2, 3, 4],
            "requested, reserved, charged, completed"
        );
        let outcomes: std::collections::HashSet<(&str, String)> = world
            .announcements()
            .await
            .iter()
            .map(|event| (event.detail_type(), event.event_id().to_owned()))
            .collect();
        assert_eq!(
            outcomes,
            std::collections::HashSet::from([("PaymentCompleted", "pay_saga/4".to_owned())]),
            "every delivery announces the one outcome, under one event id"
        );
    }

    /// No one owns a wallet that does not exist, so no one can consent to paying from it: a
    /// request naming one on the bus is refused before anything is recorded (through the API,
    /// it is a 404).
    #[tokio::test]
    async fn a_payer_wallet_that_does_not_exist_is_nobodys_to_pay_from() {
        let world = World::with(&[("wal_bob", "EUR", 0)]).await;
        let error = world.run(300, &first()).await.unwrap_err();
        assert!(
            matches!(&error, SagaError::NotConsented { refusal, .. } if refusal.code() == "consent_not_the_owner"),
            "{error}"
        );
        assert!(
            world
                .ledger
                .history(request(1).payment_id())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn business_refusals_fail_the_payment_before_anything_moves() {
        let cases = [
            (
                vec![("wal_alice", "EUR", 100), ("wal_bob", "EUR", 0)],
                300,
                "insufficient_funds",
            ),
            (vec![("wal_alice", "EUR", 1_000)], 300, "unknown_wallet"),
            // Both wallets refuse: the payer's refusal comes first, in every store.
            (vec![("wal_alice", "EUR", 100)], 300, "insufficient_funds"),
            (
                vec![("wal_alice", "EUR", 1_000), ("wal_bob", "USD", 0)],
                300,
                "currency_mismatch",
            ),
            (
                vec![("wal_alice", "EUR", 1_000), ("wal_bob", "EUR", 0)],
                200_000_000,
                "amount_over_limit",
            ),
        ];
        for (wallets, amount, code) in cases {
            let world = World::with(&wallets).await;
            let payment = world.run(amount, &first()).await.unwrap();
            assert_eq!(payment.status, PaymentStatus::Failed);
            assert_eq!(
                payment.failure.as_ref().map(FailureReason::code),
                Some(code)
            );
            for (id, _, deposited) in &wallets {
                assert_eq!(world.wallet(id), (*deposited, 0), "{code}: {id}");
            }
            assert_eq!(
                world.processor.charge_calls(),
                0,
                "{code}: the processor was not called"
            );
            assert_eq!(world.announced().await, ["PaymentFailed"]);
        }
    }

    #[tokio::test]
    async fn a_declined_charge_is_compensated() {
        let world = World::alice_pays_bob().await;
        world.processor.set_declining(true);
        let payment = world.run(300, &first()).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Failed);
        assert_eq!(
            payment.failure.as_ref().map(FailureReason::code),
            Some("payment_declined")
        );
        assert_eq!(
            (world.wallet("wal_alice"), world.wallet("wal_bob")),
            ((1_000, 0), (0, 0))
        );
        assert_eq!(
            world.charge(),
            Some(ChargeState::Voided),
            "a late charge would be refused"
        );
        let published = world.announcements().await;
        assert_eq!(world.announced().await, ["PaymentFailed"]);
        assert!(
            published[0]
                .detail_json()
                .contains(r#""code":"payment_declined""#),
            "{}",
            published[0].detail_json()
        );
    }

    #[tokio::test]
    async fn an_unavailable_processor_is_retried_by_redelivery_then_compensated_on_the_last() {
        let world = World::alice_pays_bob().await;
        world.processor.set_unavailable(true);
        let error = world.run(300, &first()).await.unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(
            !matches!(error, SagaError::CompensationUnfinished(_)),
            "charging, not compensating: {error}"
        );
        assert_eq!(
            world.wallet("wal_alice"),
            (700, 300),
            "reserved while the charge is pending"
        );

        // The last delivery gives up on the charge; the void needs the processor too, so the
        // compensation is left unfinished, for a later delivery to carry on.
        let unfinished = world.run(300, &last()).await.unwrap_err();
        assert!(
            matches!(unfinished, SagaError::CompensationUnfinished(_)),
            "{unfinished}"
        );
        assert!(unfinished.is_transient());
        assert_eq!(world.status().await, PaymentStatus::Compensating);
        assert_eq!(
            world.announced().await,
            Vec::<&str>::new(),
            "no outcome yet"
        );

        // Compensation never gives up: once the processor answers, it completes.
        world.processor.set_unavailable(false);
        let payment = world.run(300, &first()).await.unwrap();
        assert_eq!(
            payment.failure.as_ref().map(FailureReason::code),
            Some("processor_unavailable")
        );
        assert_eq!(world.wallet("wal_alice"), (1_000, 0));
        assert_eq!(
            world.charge(),
            Some(ChargeState::Voided),
            "a charge arriving late is refused"
        );
        assert_eq!(world.announced().await, ["PaymentFailed"]);
    }

    #[tokio::test]
    async fn a_processor_refusing_to_undo_is_asked_again_backing_off_never_an_outcome() {
        let world = World::alice_pays_bob().await;
        world.processor.set_declining(true);
        world.processor.set_refusing_reversals(true);
        // Declined, so compensating; the void is refused: no outcome, the funds stay reserved.
        let unfinished = world.run(300, &first()).await.unwrap_err();
        let SagaError::CompensationUnfinished(refused) = &unfinished else {
            panic!("compensation unfinished, not {unfinished}");
        };
        let SagaError::ReversalRefused {
            compensating_since, ..
        } = &**refused
        else {
            panic!("a refused reversal, not {refused}");
        };
        assert!(refused.is_transient());
        assert_eq!(world.status().await, PaymentStatus::Compensating);
        assert_eq!(world.wallet("wal_alice"), (700, 300));
        assert_eq!(world.announced().await, Vec::<&str>::new());
        // The wait grows with the time spent compensating, within its bounds.
        let (shortest, longest) = REFUSED_REVERSAL_BACKOFF;
        let after =
            |seconds| refused.retry_in(*compensating_since + chrono::Duration::seconds(seconds));
        assert_eq!(after(0), Some(shortest));
        assert_eq!(after(200), Some(Duration::from_secs(200)));
        assert_eq!(after(86_400), Some(longest));
        assert_eq!(
            unfinished.retry_in(*compensating_since),
            Some(shortest),
            "the refusal's wait"
        );
        assert_eq!(SagaError::InjectedCrash("x").retry_in(Utc::now()), None);

        // The last delivery is no different: still unfinished, the refusal its cause.
        let unfinished = world.run(300, &last()).await.unwrap_err();
        let SagaError::CompensationUnfinished(cause) = &unfinished else {
            panic!("compensation unfinished, not {unfinished}");
        };
        assert!(
            matches!(**cause, SagaError::ReversalRefused { .. }),
            "{cause}"
        );
        assert_eq!(world.processor.refused_reversals(), 2);

        world.processor.set_refusing_reversals(false);
        let payment = world.run(300, &first()).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Failed);
        assert_eq!(world.wallet("wal_alice"), (1_000, 0));
        assert_eq!(world.charge(), Some(ChargeState::Voided));
        assert_eq!(world.announced().await, ["PaymentFailed"]);
    }

    #[tokio::test]
    async fn a_processor_silent_past_the_charge_deadline_is_compensated_on_any_delivery() {
        let mut world = World::alice_pays_bob().await;
        world.settings.charge_deadline = chrono::Duration::zero();
        world.processor.set_unavailable(true);
        world.run(300, &first()).await.unwrap_err();
        world.processor.set_unavailable(false);
        let payment = world.run(300, &first()).await.unwrap();
        assert_eq!(
            payment.failure.as_ref().map(FailureReason::code),
            Some("processor_unavailable")
        );
        assert_eq!(world.wallet("wal_alice"), (1_000, 0));
    }

    #[tokio::test]
    async fn a_refused_settlement_refunds_the_charge_and_releases_the_reservation() {
        let world = World::with(&[
            ("wal_alice", "EUR", 1_000),
            ("wal_bob", "EUR", MAX_MINOR_UNITS),
        ])
        .await;
        let payment = world.run(300, &first()).await.unwrap();
        assert_eq!(
            payment.failure.as_ref().map(FailureReason::code),
            Some("balance_limit_exceeded")
        );
        assert_eq!(
            (world.wallet("wal_alice"), world.wallet("wal_bob")),
            ((1_000, 0), (MAX_MINOR_UNITS, 0))
        );
        assert!(matches!(world.charge(), Some(ChargeState::Refunded(_))));
        assert_eq!(world.announced().await, ["PaymentFailed"]);
    }

    #[test]
    fn contention_and_unfinished_compensation_are_never_given_up_a_wrong_request_is() {
        let now = Utc::now();
        let contended = || {
            SagaError::from(StoreError::Contended(
                paysaga_domain::ports::Contention::Conflict,
                "a busy wallet".into(),
            ))
        };
        let (shortest, longest) = contention::CONTENTION_WAIT;
        for error in [
            contended(),
            SagaError::CompensationUnfinished(Box::new(contended())),
        ] {
            let Redelivery::Unfinished(wait) = error.redelivery(now) else {
                panic!("{error}: {:?}", error.redelivery(now));
            };
            assert!(wait >= shortest && wait <= longest, "{wait:?}");
        }
        let refused = SagaError::ReversalRefused {
            payment_id: PaymentId::parse("pay_1").unwrap(),
            refusal: "403".into(),
            compensating_since: now,
        };
        assert_eq!(
            SagaError::CompensationUnfinished(Box::new(refused)).redelivery(now),
            Redelivery::Unfinished(REFUSED_REVERSAL_BACKOFF.0)
        );
        assert_eq!(
            SagaError::from(StoreError::Transient("unreachable".into())).redelivery(now),
            Redelivery::Again(None),
            "an outage is the queue's to retry, and to give up on"
        );
        assert_eq!(
            SagaError::ConflictingRequest(PaymentId::parse("pay_1").unwrap()).redelivery(now),
            Redelivery::Never
        );
    }

    #[tokio::test]
    async fn a_request_contradicting_the_stored_payment_is_refused_for_good() {
        let world = World::alice_pays_bob().await;
        world.run(300, &first()).await.unwrap();
        let error = world.run(301, &first()).await.unwrap_err();
        assert!(matches!(error, SagaError::ConflictingRequest(_)));
        assert!(!error.is_transient());
        assert_eq!(world.wallet("wal_alice"), (700, 0));
    }

    /// The saga publishes nothing itself: the terminal entry is its announcement, which the
    /// relay publishes from the log, so no bus outage can stop a payment or lose its event.
    #[tokio::test]
    async fn a_payment_is_announced_by_its_log_alone() {
        let world = World::alice_pays_bob().await;
        let payment = world.run(300, &first()).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Completed);
        assert_eq!(world.wallet("wal_bob"), (300, 0));
        let announced: Vec<(&str, String)> = world
            .announcements()
            .await
            .iter()
            .map(|event| (event.detail_type(), event.event_id().to_owned()))
            .collect();
        assert_eq!(announced, [("PaymentCompleted", "pay_saga/4".to_owned())]);
    }

    #[cfg(feature = "fault-injection")]
    mod injected {
        use super::*;

        fn with_faults(json: &str) -> Delivery {
            Delivery {
                faults: serde_json::from_str(json).unwrap(),
                ..first()
            }
        }

        #[tokio::test]
        async fn an_injected_step_failure_is_compensated_like_a_real_one() {
            for (step, code_of_charge) in [
                ("charge_payment", Some(ChargeState::Voided)),
                ("settle_funds", None),
            ] {
                let world = World::alice_pays_bob().await;
                let payment = world
                    .run(300, &with_faults(&format!(r#"{{"fail_step":"{step}"}}"#)))
                    .await
                    .unwrap();
                assert_eq!(
                    payment.failure.as_ref().map(FailureReason::code),
                    Some("injected_fault")
                );
                assert_eq!(
                    (world.wallet("wal_alice"), world.wallet("wal_bob")),
                    ((1_000, 0), (0, 0)),
                    "{step}"
                );
                if let Some(state) = code_of_charge {
                    assert_eq!(world.charge(), Some(state));
                } else {
                    assert!(matches!(world.charge(), Some(ChargeState::Refunded(_))));
                }
            }
        }

        #[tokio::test]
        async fn a_crash_after_a_step_is_recovered_by_the_redelivery() {
            // After the charge, and after the last step (settling, which completes the payment
            // before the message is acknowledged).
            // The outcome is announced by its entry, crash or not.
            let announced_at_crash: [(_, _, &[&str]); 2] = [
                ("charge_payment", 3, &[]),
                ("settle_funds", 4, &["PaymentCompleted"]),
            ];
            for (step, version_at_crash, announced) in announced_at_crash {
                let world = World::alice_pays_bob().await;
                let crash = with_faults(&format!(r#"{{"crash_after":"{step}"}}"#));
                let error = world.run(300, &crash).await.unwrap_err();
                assert!(
                    matches!(error, SagaError::InjectedCrash(crashed) if crashed == step),
                    "{error}"
                );
                assert_eq!(world.announced().await, announced, "{step}");
                let logged = world.ledger.history(request(1).payment_id()).await.unwrap();
                assert_eq!(logged.len(), version_at_crash, "{step}");
                let payment = world
                    .run(
                        300,
                        &Delivery {
                            receive_count: 2,
                            ..crash
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    (payment.status, payment.version),
                    (PaymentStatus::Completed, 4),
                    "{step}"
                );
                assert_eq!(
                    (world.wallet("wal_alice"), world.wallet("wal_bob")),
                    ((700, 0), (300, 0)),
                    "{step}: the money moved once"
                );
                assert_eq!(
                    world.announced().await,
                    ["PaymentCompleted"],
                    "{step}: once"
                );
            }
        }

        #[tokio::test]
        async fn an_injected_outage_fails_transiently_even_on_the_last_delivery() {
            let world = World::alice_pays_bob().await;
            let until = Utc::now() + chrono::Duration::hours(1);
            let outage = Delivery {
                receive_count: 5,
                max_receive_count: 5,
                ..with_faults(&format!(
                    r#"{{"outage":{{"step":"reserve_funds","until":"{}"}}}}"#,
                    until.to_rfc3339()
                ))
            };
            let error = world.run(300, &outage).await.unwrap_err();
            assert!(error.is_transient(), "{error}");
            assert_eq!(
                (world.wallet("wal_alice"), world.wallet("wal_bob")),
                ((1_000, 0), (0, 0)),
                "nothing moved"
            );
        }
    }
}
