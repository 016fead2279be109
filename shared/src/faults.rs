//! Fault injection for test runs: fail a chosen saga step, or crash the function right after a
//! step is recorded (before the message is acknowledged). Directives travel in the payment
//! request's event (`data.test_faults`), so one test run can aim faults at chosen payments.
//!
//! Without the `fault-injection` cargo feature (every production build), [`Faults`] is empty,
//! directives in events are ignored, and every check below is a constant `false`.

use crate::domain::SagaStep;

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
}

impl Faults {
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
}
