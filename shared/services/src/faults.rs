//! Fault injection for test runs: fail a chosen saga step, make it unavailable for a while (as
//! a store outage would), or crash the function right after a step is recorded (before the
//! message is acknowledged). Directives travel in the payment
//! request's event (`data.test_faults`), so one test run can aim faults at chosen payments.
//!
//! Without the `fault-injection` cargo feature (every production build), [`Faults`] is empty,
//! directives in events are ignored, and every check below is a constant `false`.

use chrono::{DateTime, Utc};

use paysaga_domain::{PaymentId, SagaStep};

/// The faults aimed at one payment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "fault-injection", derive(serde::Deserialize))]
pub struct Faults {
    /// Fail this step for good ([`SagaStep::name`], e.g. `charge_payment`).
    #[cfg(feature = "fault-injection")]
    #[serde(default)]
    pub fail_step: Option<String>,
    /// Crash right after recording this step, on the message's first delivery only.
    #[cfg(feature = "fault-injection")]
    #[serde(default)]
    pub crash_after: Option<String>,
    /// Make a step fail as an unavailable store would, until a time.
    #[cfg(feature = "fault-injection")]
    #[serde(default)]
    pub outage: Option<InjectedOutage>,
}

/// A step that fails transiently until `until`.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct InjectedOutage {
    pub step: String,
    pub until: DateTime<Utc>,
}

impl Faults {
    /// The faults a `PaymentRequested` event (an EventBridge event's JSON) aims at its payment,
    /// in `detail.data.test_faults`: none without the `fault-injection` feature.
    pub fn of_event(body: &str) -> Result<Self, serde_json::Error> {
        #[cfg(feature = "fault-injection")]
        {
            #[derive(serde::Deserialize)]
            struct Event {
                detail: Detail,
            }
            #[derive(serde::Deserialize)]
            struct Detail {
                data: Data,
            }
            #[derive(serde::Deserialize)]
            struct Data {
                #[serde(default)]
                test_faults: Faults,
            }
            serde_json::from_str::<Event>(body).map(|event| event.detail.data.test_faults)
        }
        #[cfg(not(feature = "fault-injection"))]
        {
            let _ = body;
            Ok(Self::default())
        }
    }

    /// Whether `step` is to fail for good.
    pub fn fails(&self, step: SagaStep) -> bool {
        #[cfg(feature = "fault-injection")]
        return self.fail_step.as_deref() == Some(step.name());
        #[cfg(not(feature = "fault-injection"))]
        {
            let _ = step;
            false
        }
    }

    /// Whether `step` is in an injected outage at `now`.
    pub fn unavailable(&self, step: SagaStep, now: DateTime<Utc>) -> bool {
        #[cfg(feature = "fault-injection")]
        return self
            .outage
            .as_ref()
            .is_some_and(|outage| outage.step == step.name() && now < outage.until);
        #[cfg(not(feature = "fault-injection"))]
        {
            let _ = (step, now);
            false
        }
    }

    /// Whether to crash once `step` is recorded, on this delivery of the message.
    pub fn crashes_after(&self, step: SagaStep, receive_count: u32) -> bool {
        #[cfg(feature = "fault-injection")]
        return receive_count <= 1 && self.crash_after.as_deref() == Some(step.name());
        #[cfg(not(feature = "fault-injection"))]
        {
            let _ = (step, receive_count);
            false
        }
    }
}

/// An injected crash: in fault-injection builds the process dies here, before the message is
/// acknowledged, as a crashed function would. Elsewhere no crash is ever injected, and this
/// only answers what to report.
pub fn crash(step: &str, payment_id: &PaymentId) -> String {
    #[cfg(feature = "fault-injection")]
    {
        tracing::warn!(step, %payment_id, "fault injection: crashing before the message is acknowledged");
        std::process::exit(70);
    }
    #[cfg(not(feature = "fault-injection"))]
    format!("injected crash of {payment_id} after {step}")
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    #[test]
    fn directives_aim_at_named_steps_and_crash_only_on_first_delivery() {
        let faults: Faults =
            serde_json::from_str(r#"{"fail_step":"charge_payment","crash_after":"reserve_funds"}"#)
                .unwrap();
        assert!(faults.fails(SagaStep::ChargePayment));
        assert!(!faults.fails(SagaStep::SettleFunds));
        assert!(faults.crashes_after(SagaStep::ReserveFunds, 1));
        assert!(!faults.crashes_after(SagaStep::ReserveFunds, 2));
    }

    #[test]
    fn an_outage_fails_its_step_until_it_ends() {
        let faults: Faults = serde_json::from_str(
            r#"{"outage":{"step":"reserve_funds","until":"2026-11-26T12:00:00Z"}}"#,
        )
        .unwrap();
        let at = |time: &str| time.parse::<DateTime<Utc>>().unwrap();
        assert!(faults.unavailable(SagaStep::ReserveFunds, at("2026-11-26T11:59:59Z")));
        assert!(!faults.unavailable(SagaStep::ReserveFunds, at("2026-11-26T12:00:00Z")));
        assert!(!faults.unavailable(SagaStep::SettleFunds, at("2026-11-26T11:00:00Z")));
    }
}
