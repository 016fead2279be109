//! The payment saga consumer: each SQS message is a requested payment of one of the three flows
//! (`PaymentRequested`, `TopUpRequested`, `PayoutRequested`; from the payments queue or, for
//! urgent payments, the urgent payments queue: two triggers, each with its own concurrency and
//! DLQ), driven to COMPLETED or FAILED ([`paysaga_services::saga`]).
//!
//! A payment whose compensation cannot finish yet (the processor refuses to undo it, the store
//! throttles), or whose step lost to other writers on the same wallet, is never given up: its
//! message comes back later, and on its last delivery the consumer sends it again as a fresh
//! message instead of to the DLQ ([`MessageFailure::Unfinished`], [`Redelivery`]).
//!
//! Metrics, besides the consumer's: `PaymentsCompleted`, `PaymentsFailed`, `PaymentsCompensated`
//! (FAILED after undoing a reservation or a charge), `CompensationsRefused` (the processor
//! refused to undo a payment, which stays COMPENSATING and is asked again, backing off: its
//! message's next delivery is delayed) and the processor's `CircuitBreakerState`.
//!
//! Why a panic fails its message alone, whatever state it leaves: docs/toolkit.md ("In paysaga").

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use chrono::Utc;
use lambda_toolkit::metrics::{InvocationMetrics, Unit};
use lambda_toolkit::sqs_batch::{MessageFailure, receive_count};
use lambda_toolkit::sqs_consumer::{Handled, MessageHandler};
use paysaga_domain::PaymentStatus;
use paysaga_domain::ports::{ConsentVerifier, PaymentLog, PaymentProcessor, WalletOwners};
use paysaga_processor::CircuitState;
use paysaga_services::faults;
use paysaga_services::saga::{Redelivery, RequestedPayment, Saga, SagaError, SagaSettings};
use tracing::info;

mod config;
pub mod consent;
pub use config::Config;

/// What the saga function may touch, and how it behaves.
pub struct PaymentSaga {
    pub payments: Arc<dyn PaymentLog>,
    pub processor: Arc<dyn PaymentProcessor>,
    pub settings: SagaSettings,
    /// The queues' `maxReceiveCount` (both the same): the last delivery compensates.
    pub max_receive_count: u32,
    /// The processor client's circuit state, when the processor has a circuit breaker.
    pub circuit: Option<Arc<dyn Fn() -> CircuitState + Send + Sync>>,
    /// Checks the payer's consent on a payment requested straight on the bus ...
    pub consent: Arc<dyn ConsentVerifier>,
    /// ... against who owns the payer's wallet.
    pub wallets: Arc<dyn WalletOwners>,
}

#[async_trait]
impl MessageHandler for PaymentSaga {
    async fn handle(&self, message: &SqsMessage, metrics: &InvocationMetrics) -> Handled {
        let requested = RequestedPayment::from_event(message.body.as_deref().unwrap_or_default())
            .map_err(MessageFailure::permanent)?;
        let payment_id = requested.request.payment_id();
        let delivery = requested.delivery(receive_count(message), self.max_receive_count);
        let saga = Saga {
            log: &*self.payments,
            processor: &*self.processor,
            settings: &self.settings,
            consent: &*self.consent,
            wallets: &*self.wallets,
        };
        let run = saga.run(&requested.request, &delivery).await;
        if let Err(SagaError::InjectedCrash(step)) = &run {
            return Err(MessageFailure::Transient(faults::crash(step, payment_id)));
        }
        let payment = run.map_err(|error| {
            if let SagaError::CompensationUnfinished(cause) = &error
                && matches!(**cause, SagaError::ReversalRefused { .. })
            {
                metrics.count("CompensationsRefused", &[], 1);
            }
            let reason = error.to_string();
            match error.redelivery(Utc::now()) {
                Redelivery::Never => MessageFailure::Permanent(reason),
                Redelivery::Again(None) => MessageFailure::Transient(reason),
                Redelivery::Again(Some(retry_in)) => MessageFailure::Later { reason, retry_in },
                Redelivery::Unfinished(retry_in) => MessageFailure::Unfinished { reason, retry_in },
            }
        })?;
        info!(%payment_id, status = ?payment.status, "payment saga ran");
        let outcome = match payment.status {
            PaymentStatus::Completed => "PaymentsCompleted",
            PaymentStatus::Failed => "PaymentsFailed",
            _ => return Ok(()),
        };
        metrics.count(outcome, &[], 1);
        if payment.charge_refunded || payment.reservation_released {
            metrics.count("PaymentsCompensated", &[], 1);
        }
        Ok(())
    }

    fn after_batch(&self, metrics: &InvocationMetrics) {
        if let Some(circuit) = &self.circuit {
            metrics.gauge("CircuitBreakerState", &[], circuit().level(), Unit::None);
        }
    }
}
