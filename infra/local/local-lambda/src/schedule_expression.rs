//! A rule's `ScheduleExpression`, read as EventBridge reads it: `rate(...)`, which
//! [`crate::schedule`] plays, and `cron(...)`, recognised but not emulated.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
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
}
