//! Submitting a payment and reading it back.

use chrono::Utc;

use super::ServiceError;
use crate::domain::{
    DomainEvent, IdempotencyKey, Payment, PaymentId, PaymentLogEntry, PaymentRequest,
};
use crate::ports::{BeginPayment, EventPublisher, PaymentLog};

/// How a submission ended.
#[derive(Debug)]
pub enum Submission {
    /// The payment is recorded and announced; the saga takes it from here.
    Accepted(Payment),
    /// The idempotency key was used before for different terms: nothing happened.
    KeyReused,
}

/// Records a payment request (once per idempotency key) and announces it on the bus, where a
/// rule routes it to the saga. A replay announces a still-pending payment again, in case the
/// first attempt stopped between recording and announcing.
pub async fn submit_payment(
    log: &dyn PaymentLog,
    events: &dyn EventPublisher,
    request: PaymentRequest,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<Submission, ServiceError> {
    let now = Utc::now();
    let payment = match log.begin(&request, idempotency_key, now).await? {
        BeginPayment::Begun => Payment::from_log(&[PaymentLogEntry::requested(request, now)])?,
        BeginPayment::Replayed(original) => payment(log, &original).await?.ok_or_else(|| {
            ServiceError::Inconsistent(format!(
                "idempotency key points at missing payment {original}"
            ))
        })?,
        BeginPayment::KeyReused => return Ok(Submission::KeyReused),
        BeginPayment::AlreadyExists => {
            return Err(ServiceError::Inconsistent(format!(
                "payment id {} is already taken",
                request.payment_id()
            )));
        }
    };
    if !payment.status.is_terminal() && payment.version == 1 {
        events
            .publish(&[DomainEvent::payment_requested(&payment.request, now)])
            .await?;
    }
    Ok(Submission::Accepted(payment))
}

/// A payment as its log tells it, or `None` when unknown.
pub async fn payment(
    log: &dyn PaymentLog,
    id: &PaymentId,
) -> Result<Option<Payment>, ServiceError> {
    let history = log.history(id).await?;
    if history.is_empty() {
        return Ok(None);
    }
    Ok(Some(Payment::from_log(&history)?))
}
