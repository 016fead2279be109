//! The reconciler ([`paysaga_services::reconciler`]): each SQS message is a payment's deadline
//! check, scheduled by the event relay when the payment's request was recorded and delayed
//! until its deadline. A terminal payment's check is done with. A payment not terminal yet is
//! looked at again: at its deadline when that is still ahead, or, once overdue, after its
//! request is announced again for the saga to drive it on, every `RECHECK_SECONDS` until it is
//! terminal (the message's next delivery is delayed: [`MessageFailure::Later`]).
//!
//! A check carrying a `parked_id` was scheduled by the DLQ redrive, at once, for a payment's
//! request it parked on its way to the saga: the same check, and once the payment is terminal
//! the parked message is marked settled ([`reconciler::check_parked`]). A payment the log does
//! not hold leaves its parked message for an operator.
//!
//! Metrics, besides the consumer's: `OverduePayments` (checks that found a payment past its
//! deadline and drove it on: an alarm fires on one), `PaymentsSettledInTime` (a payment's own
//! check that found it terminal), `ParkedMessagesSettled` (parked messages it settled),
//! `StrayHoldsGivenBack` (terminal payments it found funds still held for, and gave them back:
//! a duplicate delivery's late reservation that stopped before giving its hold back itself).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use lambda_toolkit::env::{ConfigError, Environment};
use lambda_toolkit::metrics::InvocationMetrics;
use lambda_toolkit::sqs_batch::MessageFailure;
use lambda_toolkit::sqs_consumer::{Handled, MessageHandler, SqsConsumerSettings};
use paysaga_aws::DeadlineCheck;
use paysaga_domain::ports::{EventPublisher, PaymentLog};
use paysaga_services::reconciler::{self, Finding, Settlement};
use paysaga_services::redrive::ParkedSettlement;
use tracing::{info, warn};

/// What the reconciler may touch.
pub struct Reconciler {
    pub log: Arc<dyn PaymentLog>,
    /// Where an overdue payment's request is announced again.
    pub events: Arc<dyn EventPublisher>,
    /// Where a parked message of a terminal payment is marked settled.
    pub parking: Arc<dyn ParkedSettlement>,
    pub settings: ReconcilerSettings,
}

/// How long a payment may take, and how often an overdue one is looked at again.
#[derive(Debug, Clone, Copy)]
pub struct ReconcilerSettings {
    pub flow_deadline: chrono::Duration,
    pub recheck: Duration,
}

#[async_trait]
impl MessageHandler for Reconciler {
    async fn handle(&self, message: &SqsMessage, metrics: &InvocationMetrics) -> Handled {
        let body = message.body.as_deref().unwrap_or_default();
        let check: DeadlineCheck = serde_json::from_str(body).map_err(|error| {
            MessageFailure::permanent(format!(
                "not a deadline check: {}",
                redact::json_error(&error)
            ))
        })?;
        let (log, events) = (self.log.as_ref(), self.events.as_ref());
        let (deadline, now) = (self.settings.flow_deadline, chrono::Utc::now());
        let (finding, settlement) = match &check.parked_id {
            None => reconciler::check(log, events, &check.payment_id, deadline, now)
                .await
                .map(|finding| (finding, None)),
            Some(parked_id) => {
                let parking = self.parking.as_ref();
                reconciler::check_parked(
                    log,
                    events,
                    parking,
                    &check.payment_id,
                    parked_id,
                    deadline,
                    now,
                )
                .await
                .map(|(finding, settlement)| (finding, Some(settlement)))
            }
        }
        .map_err(|error| MessageFailure::of(&error, error.is_transient()))?;
        let parked_id = check.parked_id.as_deref();
        match finding {
            Finding::Terminal {
                status,
                stray_hold_given_back,
            } => {
                if stray_hold_given_back {
                    metrics.count("StrayHoldsGivenBack", &[], 1);
                }
                match settlement {
                    None => {
                        metrics.count("PaymentsSettledInTime", &[], 1);
                        info!(payment_id = %check.payment_id, ?status, "payment terminal by its deadline");
                    }
                    Some(Settlement::Settled(outcome)) => {
                        metrics.count("ParkedMessagesSettled", &[], 1);
                        info!(payment_id = %check.payment_id, parked_id, %outcome, "parked message settled: its payment is terminal");
                    }
                    Some(Settlement::NotParked | Settlement::StillParked) => {
                        info!(payment_id = %check.payment_id, parked_id, "payment terminal; its parked message is not parked any more (replayed, or settled)");
                    }
                }
                Ok(())
            }
            Finding::Unknown => {
                match parked_id {
                    None => {
                        warn!(payment_id = %check.payment_id, "a deadline check of a payment the log does not hold")
                    }
                    Some(parked_id) => {
                        warn!(payment_id = %check.payment_id, parked_id, "a parked message of a payment the log does not hold: it stays parked for an operator")
                    }
                }
                Ok(())
            }
            Finding::NotDue { due_in } => Err(MessageFailure::Later {
                reason: format!("payment {} is due in {due_in}", check.payment_id),
                retry_in: due_in
                    .to_std()
                    .unwrap_or_default()
                    .max(Duration::from_secs(1)),
            }),
            Finding::Overdue { status, overdue_by } => {
                metrics.count("OverduePayments", &[], 1);
                warn!(payment_id = %check.payment_id, ?status, overdue_seconds = overdue_by.num_seconds(), "payment past its deadline: announced again for the saga");
                Err(MessageFailure::Later {
                    reason: format!(
                        "payment {} is {status:?} past its deadline: driven on",
                        check.payment_id
                    ),
                    retry_in: self.settings.recheck,
                })
            }
        }
    }
}

/// The function's environment.
pub struct Config {
    /// `PAYMENTS_TABLE`.
    pub payments_table: String,
    /// `WALLETS_TABLE`: where funds still held for a terminal payment (a duplicate delivery's
    /// late reservation) are given back ([`paysaga_domain::ports::PaymentLog::lift_stray_hold`]).
    pub wallets_table: String,
    /// `EVENT_BUS_NAME`.
    pub event_bus_name: String,
    /// `PARKED_MESSAGES_TABLE`: the redrive's parking table.
    pub parked_messages_table: String,
    /// `FLOW_DEADLINE_SECONDS` (15 minutes by default) and `RECHECK_SECONDS` (5 minutes).
    pub settings: ReconcilerSettings,
    pub consumer: SqsConsumerSettings,
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let deadline = env.number_or("FLOW_DEADLINE_SECONDS", 900_u64)?;
        let flow_deadline = i64::try_from(deadline)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .ok_or(ConfigError::Invalid {
                name: "FLOW_DEADLINE_SECONDS",
                expected: "a number of seconds",
                value: deadline.to_string(),
            })?;
        Ok(Self {
            payments_table: env.required("PAYMENTS_TABLE")?,
            wallets_table: env.required("WALLETS_TABLE")?,
            event_bus_name: env.required("EVENT_BUS_NAME")?,
            parked_messages_table: env.required("PARKED_MESSAGES_TABLE")?,
            settings: ReconcilerSettings {
                flow_deadline,
                recheck: Duration::from_secs(env.number_or("RECHECK_SECONDS", 300)?),
            },
            consumer: SqsConsumerSettings::from_env(env)?,
        })
    }
}
