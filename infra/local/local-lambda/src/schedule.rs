//! EventBridge schedules, played locally: an `AWS::Events::Rule` whose `ScheduleExpression`
//! is `rate(...)` becomes a timer that invokes its target function through the function's
//! on-demand pool, with the target's `Input` when it has one, else the event EventBridge
//! sends for a schedule. `cron(...)` expressions are parsed but not emulated.
//!
//! As in EventBridge, the first invocation comes one period after the rule starts, not at
//! once. Unlike EventBridge, a schedule's invocations never overlap: the ticks that come
//! while its previous invocation still runs make one invocation, as soon as that one ends.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::on_demand::OnDemandPool;
use crate::runtime_api::new_request_id;
pub use crate::schedule_expression::{Rate, ScheduleExpression, ScheduleExpressionError};

/// What one schedule sends on each tick.
#[derive(Debug, Clone)]
pub enum TickPayload {
    /// The rule target's `Input`, sent as it is.
    Input(Bytes),
    /// The event EventBridge sends for a schedule, made afresh for each tick.
    ScheduledEvent {
        rule_arn: String,
        region: String,
        account: String,
    },
}

impl TickPayload {
    pub fn at(&self, now: SystemTime) -> Bytes {
        match self {
            TickPayload::Input(input) => input.clone(),
            TickPayload::ScheduledEvent {
                rule_arn,
                region,
                account,
            } => scheduled_event(rule_arn, region, account, now),
        }
    }
}

/// The event EventBridge sends to a schedule's target ("Scheduled Event" from `aws.events`,
/// the rule in `resources`, an empty `detail`).
pub fn scheduled_event(rule_arn: &str, region: &str, account: &str, now: SystemTime) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct ScheduledEvent<'a> {
        version: &'static str,
        id: String,
        detail_type: &'static str,
        source: &'static str,
        account: &'a str,
        time: String,
        region: &'a str,
        resources: [&'a str; 1],
        detail: serde_json::Map<String, serde_json::Value>,
    }
    let event = ScheduledEvent {
        version: "0",
        id: Uuid::now_v7().to_string(),
        detail_type: "Scheduled Event",
        source: "aws.events",
        account,
        time: utc_timestamp(now),
        region,
        resources: [rule_arn],
        detail: serde_json::Map::new(),
    };
    // Strings and an empty map: serialising cannot fail.
    Bytes::from(serde_json::to_vec(&event).expect("a scheduled event serialises"))
}

/// `2025-11-25T12:00:00Z`: the second-precision UTC time EventBridge puts in `time`.
fn utc_timestamp(now: SystemTime) -> String {
    let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Year, month and day of a count of days since 1970-01-01, in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// One emulated schedule: the rule, its rate and what it sends.
#[derive(Debug, Clone)]
pub struct EmulatedSchedule {
    pub rule: String,
    pub rate: Rate,
    pub payload: TickPayload,
}

impl EmulatedSchedule {
    /// Invokes the function through `pool` on every tick until shutdown; an invocation in
    /// progress then finishes.
    pub async fn run(self, pool: Arc<OnDemandPool>, shutdown: CancellationToken) {
        let via = format!("schedule {}", self.rule);
        every(self.rate.period(), &shutdown, || async {
            let payload = self.payload.at(SystemTime::now());
            // The pool logs the outcome; a failed scheduled invocation is not retried.
            let _ = pool.invoke(new_request_id(), payload, &via).await;
        })
        .await;
        tracing::debug!(rule = %self.rule, "schedule stopped");
    }
}

/// Runs `tick` every `period`, the first time one period from now, until shutdown. The
/// ticks due while the previous one still runs make one tick, as soon as it ends.
async fn every<Tick, Ticked>(period: Duration, shutdown: &CancellationToken, mut tick: Tick)
where
    Tick: FnMut() -> Ticked,
    Ticked: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    while shutdown.run_until_cancelled(ticks.tick()).await.is_some() {
        tick().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn the_scheduled_event_has_the_shape_eventbridge_sends() {
        let rule_arn =
            "arn:aws:events:us-east-1:000000000000:rule/paysaga-local-RedriveScheduleRule";
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let event = scheduled_event(rule_arn, "us-east-1", "000000000000", at);
        let json: serde_json::Value = serde_json::from_slice(&event).expect("JSON");
        assert_eq!(json["version"], "0");
        assert_eq!(json["detail-type"], "Scheduled Event");
        assert_eq!(json["source"], "aws.events");
        assert_eq!(json["account"], "000000000000");
        assert_eq!(json["time"], "2023-11-14T22:13:20Z");
        assert_eq!(json["region"], "us-east-1");
        assert_eq!(json["resources"], serde_json::json!([rule_arn]));
        assert_eq!(json["detail"], serde_json::json!({}));
        assert!(json["id"].as_str().is_some_and(|id| id.len() == 36));
        // Functions parse it with the runtime's own type.
        let parsed: aws_lambda_events::eventbridge::EventBridgeEvent =
            serde_json::from_slice(&event).expect("an EventBridgeEvent");
        assert_eq!(parsed.detail_type, "Scheduled Event");
    }

    #[test]
    fn utc_timestamps_cover_epoch_leap_days_and_year_ends() {
        let at = |seconds: u64| utc_timestamp(UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(at(1_772_323_200), "2026-03-01T00:00:00Z");
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_tick_comes_after_one_period_then_every_period_until_shutdown() {
        let period = Duration::from_secs(60);
        let shutdown = CancellationToken::new();
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ticks);
        let schedule = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                every(period, &shutdown, || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    std::future::ready(())
                })
                .await;
            }
        });
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "no tick at start");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
        shutdown.cancel();
        schedule.await.expect("the schedule stops on shutdown");
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_due_while_the_previous_one_runs_make_one_tick_when_it_ends() {
        let period = Duration::from_secs(60);
        let shutdown = CancellationToken::new();
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ticks);
        let schedule = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                every(period, &shutdown, || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    // Each run takes two and a half periods.
                    tokio::time::sleep(Duration::from_secs(150))
                })
                .await;
            }
        });
        // Runs 60..210, then at once 210..360 (ticks 120 and 180 missed), then 360..510.
        let started = Instant::now();
        let count_at = |seconds: u64| {
            let ticks = Arc::clone(&ticks);
            async move {
                tokio::time::sleep_until(started + Duration::from_secs(seconds)).await;
                ticks.load(Ordering::SeqCst)
            }
        };
        assert_eq!(count_at(209).await, 1);
        assert_eq!(count_at(211).await, 2);
        assert_eq!(count_at(359).await, 2);
        assert_eq!(count_at(361).await, 3);
        assert_eq!(count_at(509).await, 3);
        shutdown.cancel();
        schedule
            .await
            .expect("stops once the tick in progress ends");
    }
}
