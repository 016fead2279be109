//! The functions' logs: what `lambda_runtime::tracing::init_default_subscriber` sets up, with a
//! [`Targets`] filter instead of an `EnvFilter`.
//!
//! `EnvFilter` brings the `regex` engine into every binary for field-value filters paysaga never
//! uses; `Targets` reads the same `target=level` lists (`RUST_LOG=info,paysaga::aws_call=debug`)
//! without it. As with the runtime's default:
//!
//! - the level comes from `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls), else
//!   `RUST_LOG`, else `INFO`;
//! - `AWS_LAMBDA_LOG_FORMAT=JSON` writes one JSON object per line, else plain text;
//! - no timestamps (CloudWatch stamps each line), no targets, no colours.

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init() {
    let variable = |name| {
        std::env::var(name)
            .ok()
            .filter(|value: &String| !value.is_empty())
    };
    let (filter, unreadable) = filter(
        variable("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        variable("RUST_LOG").as_deref(),
    );
    let json =
        variable("AWS_LAMBDA_LOG_FORMAT").is_some_and(|format| format.eq_ignore_ascii_case("json"));
    let layer = fmt::layer()
        .with_target(false)
        .without_time()
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(layer.json()).init();
    } else {
        registry.with(layer).init();
    }
    if let Some(setting) = unreadable {
        tracing::warn!(%setting, "unreadable log level setting; logging at INFO");
    }
}

/// The filter of `AWS_LAMBDA_LOG_LEVEL` (a level) or else `RUST_LOG` (a `target=level` list),
/// and the setting that could not be read, if any.
fn filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> (Targets, Option<String>) {
    let info = Targets::new().with_default(LevelFilter::INFO);
    match (lambda_level, rust_log) {
        (Some(level), _) => match LevelFilter::from_str(level) {
            Ok(level) => (Targets::new().with_default(level), None),
            Err(_) => (info, Some(format!("AWS_LAMBDA_LOG_LEVEL={level}"))),
        },
        (None, Some(directives)) => match Targets::from_str(directives) {
            Ok(targets) => (targets, None),
            Err(_) => (info, Some(format!("RUST_LOG={directives}"))),
        },
        (None, None) => (info, None),
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn the_lambda_level_comes_first() {
        let (filter, unreadable) = filter(Some("DEBUG"), Some("error"));
        assert!(filter.would_enable("paysaga::service", &Level::DEBUG));
        assert!(!filter.would_enable("paysaga::service", &Level::TRACE));
        assert_eq!(unreadable, None);
    }

    #[test]
    fn rust_log_sets_levels_per_target() {
        let (filter, _) = filter(None, Some("info,paysaga::aws_call=debug"));
        assert!(filter.would_enable("paysaga::aws_call", &Level::DEBUG));
        assert!(!filter.would_enable("paysaga::service", &Level::DEBUG));
        assert!(filter.would_enable("paysaga::service", &Level::INFO));
    }

    #[test]
    fn unreadable_settings_fall_back_to_info_and_say_so() {
        let (targets, unreadable) = filter(Some("LOUD"), None);
        assert!(targets.would_enable("api", &Level::INFO));
        assert!(!targets.would_enable("api", &Level::DEBUG));
        assert_eq!(unreadable.as_deref(), Some("AWS_LAMBDA_LOG_LEVEL=LOUD"));
        let (_, unreadable) = filter(None, Some("info,paysaga=loud"));
        assert_eq!(unreadable.as_deref(), Some("RUST_LOG=info,paysaga=loud"));
    }

    #[test]
    fn nothing_set_is_info() {
        let (filter, unreadable) = filter(None, None);
        assert!(filter.would_enable("api", &Level::INFO));
        assert!(!filter.would_enable("api", &Level::DEBUG));
        assert_eq!(unreadable, None);
    }
}
