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
