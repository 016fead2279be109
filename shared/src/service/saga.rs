//! Runs the payment saga for one payment request, as far as it can go.
//!
//! Safe under at-least-once delivery: every step is a conditional append of the next log
//! version together with its wallet changes, so a duplicate or concurrent run finds the version
//! taken, reloads the log and carries on from there. Nothing is applied twice.

use chrono::Utc;
use tracing::{info, instrument};

use super::ServiceError;
use crate::domain::saga::fail_before_reservation;
use crate::domain::{
    DomainEvent, Payment, PaymentId, PaymentLogEntry, PaymentRequest, SagaStep, WalletRejection,
};
use crate::ports::{BeginPayment, EventPublisher, PaymentLog, RecordStep};

/// Why the saga stopped short of a terminal state.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The request names a payment id that exists with other terms.
    #[error("payment {0} exists with different terms")]
    ConflictingRequest(PaymentId),
}

impl SagaError {
    /// Whether a redelivery of the same message may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Service(error) if error.is_transient())
    }
}

impl From<crate::ports::StoreError> for SagaError {
    fn from(error: crate::ports::StoreError) -> Self {
        Self::Service(error.into())
    }
}

/// Drives the payment in `request` to COMPLETED or FAILED, then announces every step of its
/// log (again, for steps an earlier delivery recorded: event ids de-duplicate).
#[instrument(skip_all, fields(payment_id = %request.payment_id()))]
pub async fn run_payment_saga(
    log: &dyn PaymentLog,
    events: &dyn EventPublisher,
    request: &PaymentRequest,
) -> Result<Payment, SagaError> {
    let mut history = load_or_begin(log, request).await?;
    let mut payment = Payment::from_log(&history).map_err(ServiceError::from)?;
    if payment.request.payment_id() != request.payment_id()
        || !payment.request.same_terms_as(request)
    {
        return Err(SagaError::ConflictingRequest(request.payment_id().clone()));
    }

    while let Some(step) = SagaStep::next_for(&payment) {
        let plan = step.plan(&payment, Utc::now());
        let plan = match log.record(&plan).await? {
            RecordStep::Recorded => plan,
            RecordStep::Refused(WalletRejection::Business(reason))
                if step == SagaStep::ReserveFunds =>
            {
                let failure = fail_before_reservation(&payment, reason, Utc::now());
                match log.record(&failure).await? {
                    RecordStep::Recorded => failure,
                    RecordStep::VersionTaken => {
                        (history, payment) = reload(log, request.payment_id()).await?;
                        continue;
                    }
                    RecordStep::Refused(refusal) => return Err(inconsistent(refusal)),
                }
            }
            RecordStep::Refused(refusal) => return Err(inconsistent(refusal)),
            RecordStep::VersionTaken => {
                (history, payment) = reload(log, request.payment_id()).await?;
                continue;
            }
        };
        payment = payment.after(&plan.entry).map_err(ServiceError::from)?;
        info!(version = plan.entry.version, status = ?payment.status, "payment step recorded");
        history.push(plan.entry);
    }

    let announcements: Vec<DomainEvent> = history
        .iter()
        .filter_map(|entry| DomainEvent::for_log_entry(&payment, entry))
        .collect();
    events
        .publish(&announcements)
        .await
        .map_err(ServiceError::from)?;
    Ok(payment)
}

/// The payment's log, writing version 1 from the request first when the payment is new
/// (a request published straight onto the bus, not through the API).
async fn load_or_begin(
    log: &dyn PaymentLog,
    request: &PaymentRequest,
) -> Result<Vec<PaymentLogEntry>, SagaError> {
    let history = log.history(request.payment_id()).await?;
    if !history.is_empty() {
        return Ok(history);
    }
    let now = Utc::now();
    match log.begin(request, None, now).await? {
        BeginPayment::Begun => Ok(vec![PaymentLogEntry::requested(request.clone(), now)]),
        BeginPayment::AlreadyExists => Ok(log.history(request.payment_id()).await?),
        other => Err(
            ServiceError::Inconsistent(format!("begin without a key answered {other:?}")).into(),
        ),
    }
}

async fn reload(
    log: &dyn PaymentLog,
    id: &PaymentId,
) -> Result<(Vec<PaymentLogEntry>, Payment), SagaError> {
    let history = log.history(id).await?;
    let payment = Payment::from_log(&history).map_err(ServiceError::from)?;
    Ok((history, payment))
}

fn inconsistent(refusal: WalletRejection) -> SagaError {
    ServiceError::Inconsistent(refusal.to_string()).into()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use futures::future::join_all;

    use super::*;
    use crate::domain::{FailureReason, Money, PaymentStatus, Wallet, WalletId};
    use crate::memory::{InMemoryLedger, RecordingPublisher};
    use crate::ports::{Deposit, PublishError, WalletStore};

    fn eur(minor_units: u64) -> Money {
        Money::new(minor_units, "EUR".parse().unwrap()).unwrap()
    }

    async fn ledger_with(wallets: &[(&str, &str, u64)]) -> InMemoryLedger {
        let ledger = InMemoryLedger::default();
        for (id, currency, minor_units) in wallets {
            let id = WalletId::parse(id).unwrap();
            let currency = currency.parse().unwrap();
            ledger
                .open_wallet(&Wallet::open(id.clone(), currency, Utc::now()))
                .await
                .unwrap();
            let amount = Money::new(*minor_units, currency).unwrap();
            let deposit = Deposit {
                deposit_id: crate::domain::DepositId::generate(),
                wallet_id: id,
                amount,
                idempotency_key: None,
            };
            ledger.deposit(&deposit, Utc::now()).await.unwrap();
        }
        ledger
    }

    fn request(amount: u64) -> PaymentRequest {
        PaymentRequest::new(
            PaymentId::parse("pay_saga").unwrap(),
            WalletId::parse("wal_alice").unwrap(),
            WalletId::parse("wal_bob").unwrap(),
            eur(amount),
        )
        .unwrap()
    }

    fn available(ledger: &InMemoryLedger, id: &str) -> (u64, u64) {
        let wallet = ledger
            .wallets()
            .into_iter()
            .find(|wallet| wallet.id().as_str() == id)
            .unwrap();
        (
            wallet.available().minor_units(),
            wallet.reserved().minor_units(),
        )
    }

    #[tokio::test]
    async fn concurrent_duplicate_deliveries_apply_every_step_once() {
        let ledger = ledger_with(&[("wal_alice", "EUR", 1_000), ("wal_bob", "EUR", 0)]).await;
        let events = RecordingPublisher::default();
        let request = request(300);
        let runs = (0..8).map(|_| run_payment_saga(&ledger, &events, &request));
        for result in join_all(runs).await {
            assert_eq!(result.unwrap().status, PaymentStatus::Completed);
        }
        assert_eq!(available(&ledger, "wal_alice"), (700, 0));
        assert_eq!(available(&ledger, "wal_bob"), (300, 0));
        let history = ledger.history(request.payment_id()).await.unwrap();
        let versions: Vec<u32> = history.iter().map(|entry| entry.version).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn business_refusals_fail_the_payment_without_moving_money() {
        let cases = [
            (
                vec![("wal_alice", "EUR", 100), ("wal_bob", "EUR", 0)],
                "insufficient_funds",
            ),
            (vec![("wal_alice", "EUR", 1_000)], "unknown_wallet"),
            (
                vec![("wal_alice", "EUR", 1_000), ("wal_bob", "USD", 0)],
                "currency_mismatch",
            ),
            (vec![("wal_bob", "EUR", 0)], "unknown_wallet"),
        ];
        for (wallets, code) in cases {
            let ledger = ledger_with(&wallets).await;
            let events = RecordingPublisher::default();
            let payment = run_payment_saga(&ledger, &events, &request(300))
                .await
                .unwrap();
            assert_eq!(payment.status, PaymentStatus::Failed);
            assert_eq!(
                payment.failure.as_ref().map(FailureReason::code),
                Some(code)
            );
            for wallet in ledger.wallets() {
                let deposited = wallets
                    .iter()
                    .find(|(id, ..)| *id == wallet.id().as_str())
                    .unwrap()
                    .2;
                assert_eq!(
                    wallet.available().minor_units(),
                    deposited,
                    "{code}: {:?}",
                    wallet.id()
                );
                assert!(wallet.reserved().is_zero());
            }
            let published = events.published();
            assert_eq!(
                published
                    .iter()
                    .map(DomainEvent::detail_type)
                    .collect::<Vec<_>>(),
                ["PaymentFailed"]
            );
        }
    }

    #[tokio::test]
    async fn a_request_contradicting_the_stored_payment_is_refused_for_good() {
        let ledger = ledger_with(&[("wal_alice", "EUR", 1_000), ("wal_bob", "EUR", 0)]).await;
        let events = RecordingPublisher::default();
        run_payment_saga(&ledger, &events, &request(300))
            .await
            .unwrap();
        let error = run_payment_saga(&ledger, &events, &request(301))
            .await
            .unwrap_err();
        assert!(matches!(error, SagaError::ConflictingRequest(_)));
        assert!(!error.is_transient());
        assert_eq!(available(&ledger, "wal_alice"), (700, 0));
    }

    /// A bus that is down until told otherwise.
    #[derive(Default)]
    struct FlakyBus {
        up: AtomicBool,
        delivered: RecordingPublisher,
    }

    #[async_trait]
    impl EventPublisher for FlakyBus {
        async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
            if !self.up.load(Ordering::SeqCst) {
                return Err(PublishError("bus down".into()));
            }
            self.delivered.publish(events).await
        }
    }

    #[tokio::test]
    async fn events_lost_to_an_outage_are_announced_on_redelivery() {
        let ledger = ledger_with(&[("wal_alice", "EUR", 1_000), ("wal_bob", "EUR", 0)]).await;
        let bus = FlakyBus::default();
        let error = run_payment_saga(&ledger, &bus, &request(300))
            .await
            .unwrap_err();
        assert!(error.is_transient(), "an unreachable bus is worth a retry");
        assert_eq!(
            available(&ledger, "wal_bob"),
            (300, 0),
            "the steps themselves were recorded"
        );

        bus.up.store(true, Ordering::SeqCst);
        run_payment_saga(&ledger, &bus, &request(300))
            .await
            .unwrap();
        let published = bus.delivered.published();
        let announced: Vec<&str> = published.iter().map(DomainEvent::detail_type).collect();
        assert_eq!(
            announced,
            ["FundsReserved", "FundsTransferred", "PaymentCompleted"]
        );
        assert_eq!(available(&ledger, "wal_bob"), (300, 0));
    }
}
