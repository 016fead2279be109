//! Submitting a payment and reading it back.

use chrono::Utc;

use super::ServiceError;
use paysaga_domain::ports::{BeginPayment, PaymentHistory, PaymentRequests};
use paysaga_domain::{
    IdempotencyKey, Payment, PaymentId, PaymentLogEntry, PaymentRequest, RequestChannel,
};

/// How a submission ended.
#[derive(Debug)]
pub enum Submission {
    /// The payment is recorded, and with it its announcement: the event relay publishes it
    /// from the log, a rule routes it to the saga.
    Accepted(Payment),
    /// The idempotency key was used before for different terms: nothing happened.
    KeyReused,
}

/// Records a payment request (once per idempotency key). The record is the request's
/// announcement: the event relay publishes `PaymentRequested` (or its flow's) from it, so an
/// accepted payment is never left unannounced, whatever fails after the write.
///
/// With an idempotency key, the request's id must be the one the key names (make the request
/// with [`PaymentRequest::submitted`]): the key has no record of its own, the payment is it.
pub async fn submit_payment(
    log: &dyn PaymentRequests,
    request: PaymentRequest,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<Submission, ServiceError> {
    if let Some(key) = idempotency_key {
        let keyed = PaymentId::for_idempotency_key(request.payer_wallet(), key);
        if request.payment_id() != &keyed {
            return Err(ServiceError::Inconsistent(format!(
                "payment {} was submitted with a key that names {keyed}",
                request.payment_id()
            )));
        }
    }
    let now = Utc::now();
    let payment = match log
        .begin(&request, RequestChannel::Api, idempotency_key, now)
        .await?
    {
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
    Ok(Submission::Accepted(payment))
}

/// A payment as its log tells it, or `None` when unknown.
pub async fn payment(
    log: &dyn PaymentHistory,
    id: &PaymentId,
) -> Result<Option<Payment>, ServiceError> {
    let history = log.history(id).await?;
    if history.is_empty() {
        return Ok(None);
    }
    Ok(Some(Payment::from_log(&history)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::InMemoryLedger;
    use paysaga_domain::payment::Flow;
    use paysaga_domain::ports::PaymentHistory;
    use paysaga_domain::{Money, PaymentStatus, WalletId};

    fn submitted(payer: &str, minor_units: u64, key: Option<&IdempotencyKey>) -> PaymentRequest {
        let flow = Flow::Transfer {
            from_wallet: WalletId::parse(payer).unwrap(),
            to_wallet: WalletId::parse("wal_shop").unwrap(),
        };
        PaymentRequest::submitted(
            flow,
            Money::new(minor_units, "EUR".parse().unwrap()).unwrap(),
            key,
        )
        .unwrap()
    }

    fn accepted(submission: Submission) -> Payment {
        match submission {
            Submission::Accepted(payment) => payment,
            Submission::KeyReused => panic!("the key was refused"),
        }
    }

    #[tokio::test]
    async fn a_key_names_one_payment_per_payer_and_refuses_other_terms() {
        let log = InMemoryLedger::default();
        let key = IdempotencyKey::parse("order-42").unwrap();
        let submit = |request| submit_payment(&log, request, Some(&key));

        let first = accepted(
            submit(submitted("wal_alice", 100, Some(&key)))
                .await
                .unwrap(),
        );
        let retried = accepted(
            submit(submitted("wal_alice", 100, Some(&key)))
                .await
                .unwrap(),
        );
        assert_eq!(retried.request.payment_id(), first.request.payment_id());
        assert_eq!(retried.status, PaymentStatus::Pending);
        assert_eq!(
            retried.created_at, first.created_at,
            "the first request's time"
        );
        let reused = submit(submitted("wal_alice", 101, Some(&key)))
            .await
            .unwrap();
        assert!(matches!(reused, Submission::KeyReused));

        // Another payer's equal key is another payment.
        let bobs = accepted(submit(submitted("wal_bob", 100, Some(&key))).await.unwrap());
        assert_ne!(bobs.request.payment_id(), first.request.payment_id());

        let announced: Vec<String> = log
            .announced()
            .await
            .iter()
            .map(|event| event.event_id().to_owned())
            .collect();
        let (alices, bobs) = (first.request.payment_id(), bobs.request.payment_id());
        assert_eq!(
            announced,
            [format!("{alices}/1"), format!("{bobs}/1")],
            "each payment's record announces it once; a replay writes nothing"
        );
    }

    #[tokio::test]
    async fn a_keyed_request_must_carry_the_id_its_key_names() {
        let log = InMemoryLedger::default();
        let key = IdempotencyKey::parse("order-42").unwrap();
        let unkeyed = submitted("wal_alice", 100, None);
        let error = submit_payment(&log, unkeyed.clone(), Some(&key))
            .await
            .unwrap_err();
        assert!(matches!(error, ServiceError::Inconsistent(_)), "{error}");
        assert!(log.history(unkeyed.payment_id()).await.unwrap().is_empty());
        assert!(log.announced().await.is_empty());
    }
}
