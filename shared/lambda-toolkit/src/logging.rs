//! The functions' logs: what `lambda_runtime::tracing::init_default_subscriber` sets up, with a
//! [`Targets`] filter instead of an `EnvFilter`.
//!
//! `EnvFilter` brings the `regex` engine into every binary for field-value filters a function
//! rarely needs; `Targets` reads the same `target=level` lists
//! (`RUST_LOG=info,lambda_toolkit::aws_call=debug`) without it. As with the runtime's default:
//!
//! - the level comes from `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls), else
//!   `RUST_LOG`, else `INFO`; a release build holds nothing below `DEBUG` (the workspace builds
//!   `tracing` with `release_max_level_debug`), so `TRACE` there logs what `DEBUG` does;
//! - `AWS_LAMBDA_LOG_FORMAT=JSON` writes one JSON object per line, else plain text;
//! - no timestamps (CloudWatch stamps each line), no targets, no colours;
//! - a panic is logged as an error line, its message only when it is a literal of the program
//!   (a formatted one may quote the input: [`crate::panics`]), instead of the default hook's
//!   full message on stderr;
//! - in JSON, every line carries the fields of the spans it was written in, outermost first
//!   (`"spans": [{"name": "handle_message", "message_id": "…", "order_id": "…"}, …]`): a
//!   handler that opens a span with the message's and the order's ids gets them on every line
//!   its work logs, down to the adapters'. The current span is the list's last element, so it is
//!   not written a second time.
//!
//! ```
//! use lambda_toolkit::logging::LogBuffer;
//! use tracing::{field, info, info_span};
//! use tracing_subscriber::prelude::*;
//!
//! let buffer = LogBuffer::default();
//! let subscriber = tracing_subscriber::registry().with(lambda_toolkit::logging::json_layer(buffer.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = info_span!("handle_message", message_id = "m-1", order_id = field::Empty);
//!     let _entered = span.enter();
//!     span.record("order_id", "ord_1"); // known once the message is parsed
//!     info!(status = "SHIPPED", "order shipped");
//! });
//! let line: serde_json::Value = serde_json::from_str(buffer.lines()[0].as_str()).unwrap();
//! assert_eq!(line["fields"]["message"], "order shipped");
//! assert_eq!(line["spans"][0]["message_id"], "m-1");
//! assert_eq!(line["spans"][0]["order_id"], "ord_1");
//! ```

use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber, and has panics logged through it, redacted
/// ([`crate::panics::log_uncaught`]); call once, first thing in `main`.
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
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(json_layer(std::io::stdout)).init();
    } else {
        let layer = fmt::layer()
            .with_target(false)
            .without_time()
            .with_ansi(false);
        registry.with(layer).init();
    }
    crate::panics::log_uncaught();
    if let Some(setting) = unreadable {
        tracing::warn!(%setting, "unreadable log level setting; logging at INFO");
    }
}

/// The JSON lines layer of [`init`], writing to `writer`: one object per event, with the
/// fields of every span it is in (`spans`).
pub fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'writer> fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(writer)
}

/// Log lines kept in memory, for tests that read what was logged.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'writer> fmt::MakeWriter<'writer> for LogBuffer {
    type Writer = Self;

    fn make_writer(&'writer self) -> Self::Writer {
        self.clone()
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
        assert!(filter.would_enable("orders_service", &Level::DEBUG));
        assert!(!filter.would_enable("orders_service", &Level::TRACE));
        assert_eq!(unreadable, None);
    }

    #[test]
    fn rust_log_sets_levels_per_target() {
        let (filter, _) = filter(None, Some("info,lambda_toolkit::aws_call=debug"));
        assert!(filter.would_enable(crate::aws::calls::AWS_CALL_TARGET, &Level::DEBUG));
        assert!(!filter.would_enable("lambda_toolkit::sqs_batch", &Level::DEBUG));
        assert!(!filter.would_enable("orders_service", &Level::DEBUG));
        assert!(filter.would_enable("orders_service", &Level::INFO));
    }

    #[test]
    fn unreadable_settings_fall_back_to_info_and_say_so() {
        let (targets, unreadable) = filter(Some("LOUD"), None);
        assert!(targets.would_enable("api", &Level::INFO));
        assert!(!targets.would_enable("api", &Level::DEBUG));
        assert_eq!(unreadable.as_deref(), Some("AWS_LAMBDA_LOG_LEVEL=LOUD"));
        let (_, unreadable) = filter(None, Some("info,orders=loud"));
        assert_eq!(unreadable.as_deref(), Some("RUST_LOG=info,orders=loud"));
    }

    #[test]
    fn json_lines_carry_the_ids_of_every_enclosing_span() {
        let buffer = LogBuffer::default();
        let subscriber = tracing_subscriber::registry().with(json_layer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let message = tracing::info_span!("handle_message", message_id = "m-1");
            let _message = message.enter();
            let run = tracing::info_span!("run", order_id = "ord_1");
            let _run = run.enter();
            tracing::warn!(attempt = 2, "shipment retried");
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["fields"]["attempt"], 2);
        assert_eq!(line["spans"][0]["message_id"], "m-1");
        assert_eq!(line["spans"][1]["order_id"], "ord_1");
        assert!(
            line.get("span").is_none(),
            "the current span is not repeated: {line}"
        );
    }

    #[test]
    fn nothing_set_is_info() {
        let (filter, unreadable) = filter(None, None);
        assert!(filter.would_enable("api", &Level::INFO));
        assert!(!filter.would_enable("api", &Level::DEBUG));
        assert_eq!(unreadable, None);
    }
}
