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
            let mut faults =
                serde_json::from_str::<Event>(body).map(|event| event.detail.data.test_faults)?;
            if faults.outage.is_none() {
                faults.outage = StoreOutage::of_process().and_then(|outage| outage.aimed_at(body));
            }
            Ok(faults)
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

/// An outage of a step for every payment whose request mentions a text, until a test ends it
/// (fault-injection builds only): the file `payment-saga.json` in the directory
/// `PAYSAGA_FAULTS_DIR` names, read for each message, `{"outage": {"step": "reserve_funds",
/// "until": "<RFC 3339 time>"}, "only_events_mentioning": "<text>"}`. A request announced again
/// (by the reconciler) carries no `test_faults`, so an outage that must outlast redeliveries,
/// redrives and the reconciler's nudges lives here, as a store outage would: the test deletes
/// the file to end it.
#[cfg(feature = "fault-injection")]
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreOutage {
    outage: InjectedOutage,
    only_events_mentioning: String,
}

#[cfg(feature = "fault-injection")]
impl StoreOutage {
    fn of_process() -> Option<Self> {
        let directory = std::env::var_os("PAYSAGA_FAULTS_DIR")?;
        let text =
            std::fs::read_to_string(std::path::Path::new(&directory).join("payment-saga.json"))
                .ok()?;
        match serde_json::from_str(&text) {
            Ok(outage) => Some(outage),
            Err(error) => {
                tracing::warn!(%error, "fault injection: unreadable payment-saga.json, ignored");
                None
            }
        }
    }

    fn aimed_at(&self, body: &str) -> Option<InjectedOutage> {
        body.contains(&self.only_events_mentioning)
            .then(|| self.outage.clone())
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
    fn a_process_outage_is_aimed_at_the_requests_that_mention_its_text() {
        let outage: StoreOutage = serde_json::from_str(
            r#"{"outage":{"step":"reserve_funds","until":"2026-11-26T12:00:00Z"},"only_events_mentioning":"wal_run7_"}"#,
        )
        .unwrap();
        assert!(outage.aimed_at(r#"{"from_wallet":"wal_other"}"#).is_none());
        let aimed = outage.aimed_at(r#"{"from_wallet":"wal_run7_a"}"#).unwrap();
        assert_eq!(aimed.step, "reserve_funds");
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
