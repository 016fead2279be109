//! EventBridge schedules, played locally: an `AWS::Events::Rule` whose `ScheduleExpression`
//! is `rate(...)` becomes a timer that invokes its target function through the function's
//! on-demand pool, with the target's `Input` when it has one, else the event EventBridge
//! sends for a schedule. `cron(...)` expressions are parsed but not emulated.
//!
//! As in EventBridge, the first invocation comes one period after the rule starts, not at
//! once. Unlike EventBridge, a schedule's invocations never overlap: the ticks that come
//! while its previous invocation still runs make one invocation, as soon as that one ends.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::on_demand::OnDemandPool;
use crate::runtime_api::new_request_id;

/// A rule's `ScheduleExpression`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpression {
    Rate(Rate),
    /// The whole `cron(...)` text; not emulated.
    Cron(String),
}

/// `rate(<value> <unit>)`: every `value` minutes, hours or days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    value: u64,
    unit: RateUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateUnit {
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    fn seconds(self) -> u64 {
        match self {
            RateUnit::Minute => 60,
            RateUnit::Hour => 60 * 60,
            RateUnit::Day => 24 * 60 * 60,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RateUnit::Minute => "minute",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }
}

impl Rate {
    /// Time between two invocations.
    pub fn period(&self) -> Duration {
        // Checked when parsed: the product fits.
        Duration::from_secs(self.value * self.unit.seconds())
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.value == 1 { "" } else { "s" };
        write!(
            formatter,
            "rate({} {}{plural})",
            self.value,
            self.unit.name()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleExpressionError {
    #[error("{0:?} is neither rate(...) nor cron(...)")]
    Unknown(String),
    #[error("{expression:?} is not a valid rate expression: {problem}")]
    InvalidRate {
        expression: String,
        problem: &'static str,
    },
    #[error("{0:?} is not a valid cron expression: it needs six fields")]
    InvalidCron(String),
}

impl FromStr for ScheduleExpression {
    type Err = ScheduleExpressionError;

    /// Parses by EventBridge's rules: `rate(1 minute)`, `rate(5 minutes)`; the value is a
    /// positive whole number, singular unit for 1 and plural above; `cron(...)` has six fields.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let inside = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
        };
        if let Some(body) = inside("rate(") {
            return parse_rate(body)
                .map(ScheduleExpression::Rate)
                .map_err(|problem| ScheduleExpressionError::InvalidRate {
                    expression: text.to_owned(),
                    problem,
                });
        }
        if let Some(body) = inside("cron(") {
            return if body.split_whitespace().count() == 6 {
                Ok(ScheduleExpression::Cron(text.to_owned()))
            } else {
                Err(ScheduleExpressionError::InvalidCron(text.to_owned()))
            };
        }
        Err(ScheduleExpressionError::Unknown(text.to_owned()))
    }
}

fn parse_rate(body: &str) -> Result<Rate, &'static str> {
    let mut words = body.split_whitespace();
    let (Some(value), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err("expected rate(<value> <unit>)");
    };
    const NOT_POSITIVE: &str = "the value must be a positive whole number";
    if !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(NOT_POSITIVE);
    }
    let value: u64 = value.parse().map_err(|_| "the value is too large")?;
    if value == 0 {
        return Err(NOT_POSITIVE);
    }
    let (unit, plural) = match unit {
        "minute" => (RateUnit::Minute, false),
        "minutes" => (RateUnit::Minute, true),
        "hour" => (RateUnit::Hour, false),
        "hours" => (RateUnit::Hour, true),
        "day" => (RateUnit::Day, false),
        "days" => (RateUnit::Day, true),
        _ => return Err("the unit must be minute(s), hour(s) or day(s)"),
    };
    if value == 1 && plural {
        return Err("a value of 1 takes a singular unit (minute, hour, day)");
    }
    if value > 1 && !plural {
        return Err("a value above 1 takes a plural unit (minutes, hours, days)");
    }
    if value.checked_mul(unit.seconds()).is_none() {
        return Err("the value is too large");
    }
    Ok(Rate { value, unit })
}

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

    fn rate(text: &str) -> Result<Duration, ScheduleExpressionError> {
        match text.parse::<ScheduleExpression>()? {
            ScheduleExpression::Rate(rate) => Ok(rate.period()),
            ScheduleExpression::Cron(cron) => panic!("{text} parsed as {cron}"),
        }
    }

    fn rate_problem(text: &str) -> &'static str {
        match text.parse::<ScheduleExpression>() {
            Err(ScheduleExpressionError::InvalidRate { problem, .. }) => problem,
            other => panic!("{text} should be an invalid rate, got {other:?}"),
        }
    }

    #[test]
    fn rate_expressions_parse_to_their_period() {
        assert_eq!(rate("rate(1 minute)"), Ok(Duration::from_secs(60)));
        assert_eq!(rate("rate(15 minutes)"), Ok(Duration::from_secs(15 * 60)));
        assert_eq!(rate("rate(1 hour)"), Ok(Duration::from_secs(3600)));
        assert_eq!(rate("rate(12 hours)"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(rate("rate(1 day)"), Ok(Duration::from_secs(86_400)));
        assert_eq!(rate("rate(7 days)"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(rate(" rate(5 minutes) "), Ok(Duration::from_secs(300)));
        let ScheduleExpression::Rate(parsed) = "rate(5 minutes)".parse().expect("valid") else {
            panic!("a rate");
        };
        assert_eq!(parsed.to_string(), "rate(5 minutes)");
    }

    #[test]
    fn singular_and_plural_units_follow_the_value_as_eventbridge_requires() {
        assert!(rate_problem("rate(1 minutes)").contains("singular"));
        assert!(rate_problem("rate(5 minute)").contains("plural"));
        assert!(rate_problem("rate(2 day)").contains("plural"));
        assert!(rate_problem("rate(1 hours)").contains("singular"));
    }

    #[test]
    fn zero_negative_fractional_and_garbage_rates_are_rejected() {
        for text in [
            "rate(0 minutes)",
            "rate(0 minute)",
            "rate(-5 minutes)",
            "rate(+5 minutes)",
            "rate(1.5 hours)",
            "rate(five minutes)",
        ] {
            assert!(rate_problem(text).contains("positive"), "{text}");
        }
        for text in [
            "rate()",
            "rate(5)",
            "rate(minutes)",
            "rate(5 minutes now)",
            "rate(5 seconds)",
            "rate(5 Minutes)",
            "rate(99999999999999999999 days)",
            "rate(999999999999999999 days)",
        ] {
            let _ = rate_problem(text);
        }
        for text in ["", "every 5 minutes", "rate 5 minutes", "rate(5 minutes"] {
            assert!(
                matches!(
                    text.parse::<ScheduleExpression>(),
                    Err(ScheduleExpressionError::Unknown(_))
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn cron_expressions_are_recognised_but_not_emulated() {
        assert_eq!(
            "cron(0 3 * * ? *)".parse::<ScheduleExpression>(),
            Ok(ScheduleExpression::Cron("cron(0 3 * * ? *)".to_owned()))
        );
        assert!(matches!(
            "cron(0 3 * *)".parse::<ScheduleExpression>(),
            Err(ScheduleExpressionError::InvalidCron(_))
        ));
    }

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
