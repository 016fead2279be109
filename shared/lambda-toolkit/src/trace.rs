//! One trace id across every hop: AWS X-Ray's trace header
//! (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`), as AWS itself
//! carries it from API Gateway to the function, from a `PutEvents` entry (`TraceHeader`) to the
//! SQS message an EventBridge rule sends (its `AWSTraceHeader` system attribute), and from there
//! to the consumer's record (`attributes.AWSTraceHeader`).
//!
//! - [`TraceHeader`] is the header, parsed: a hostile one is refused whole (never a panic), and
//!   only its validated parts are ever written back or logged.
//! - [`scope`] runs a future with a header as the *current trace* (a `tokio` task-local, as the
//!   X-Ray SDKs keep theirs); the EventBridge adapter stamps every entry it publishes with
//!   [`current`], so a handler publishes in its message's trace without passing it along.
//! - [`span`] opens the span that puts `trace_id` (the Root) on every log line written inside.
//!
//! ```
//! use lambda_toolkit::trace::{self, TraceHeader};
//!
//! let header: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
//!     .parse()
//!     .expect("a well-formed header");
//! assert_eq!(header.trace_id().as_str(), "1-5759e988-bd862e3fe1be46a994272793");
//! assert!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=nope".parse::<TraceHeader>().is_err());
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let seen = trace::scope(Some(header.clone()), async { trace::current() }).await;
//! assert_eq!(seen, Some(header));
//! assert_eq!(trace::current(), None, "outside the scope there is no current trace");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use aws_lambda_events::sqs::SqsMessage;
use chrono::{DateTime, Utc};

/// The SQS system attribute (and Lambda record attribute) that carries the trace header.
pub const SQS_ATTRIBUTE: &str = "AWSTraceHeader";

/// The HTTP header API Gateway and the AWS services read and write.
pub const HTTP_HEADER: &str = "x-amzn-trace-id";

/// Longer headers are refused without being read (X-Ray's are well under this, lineage included).
pub const MAX_HEADER_CHARS: usize = 512;

/// A trace's id, the header's `Root`: `1-<8 hex digits: epoch seconds>-<24 hex digits>`,
/// lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceId(String);

impl TraceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A new id, started at `now`, with 96 random bits.
    pub fn generate(now: DateTime<Utc>) -> Self {
        let seconds = u32::try_from(now.timestamp()).unwrap_or(u32::MAX);
        let random = u128::from(fastrand::u64(..)) << 32 | u128::from(fastrand::u32(..));
        Self(format!("1-{seconds:08x}-{random:024x}"))
    }

    fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split('-');
        let (Some("1"), Some(seconds), Some(random), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        (is_hex(seconds, 8) && is_hex(random, 24)).then(|| Self(value.to_ascii_lowercase()))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An X-Ray trace header: the trace's id, the calling segment (`Parent`, 16 hex digits) and the
/// sampling decision (`Sampled`: `1`, `0`; absent or `?` when not yet made). Other keys
/// (`Lineage`, `Self`, ...) are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    trace_id: TraceId,
    parent: Option<String>,
    sampled: Option<bool>,
}

/// Why a trace header was refused. It never holds the header itself: a hostile header is not
/// logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTraceHeader {
    #[error("trace header longer than {MAX_HEADER_CHARS} characters")]
    TooLong,
    #[error("trace header without a well-formed Root")]
    Root,
    #[error("trace header with a malformed Parent")]
    Parent,
    #[error("trace header with a malformed Sampled")]
    Sampled,
    #[error("trace header with a part that is not key=value")]
    Part,
}

impl TraceHeader {
    /// A new trace, started at `now`, with no parent and no sampling decision.
    pub fn generate(now: DateTime<Utc>) -> Self {
        Self {
            trace_id: TraceId::generate(now),
            parent: None,
            sampled: None,
        }
    }

    pub fn trace_id(&self) -> &TraceId {
        &self.trace_id
    }

    pub fn parent(&self) -> Option<&str> {
        self.parent.as_deref()
    }

    pub fn sampled(&self) -> Option<bool> {
        self.sampled
    }

    /// The header of an SQS record (its `AWSTraceHeader` attribute), when it has a valid one.
    pub fn of_sqs_message(message: &SqsMessage) -> Option<Self> {
        message
            .attributes
            .get(SQS_ATTRIBUTE)
            .and_then(|header| header.parse().ok())
    }
}

impl FromStr for TraceHeader {
    type Err = InvalidTraceHeader;

    fn from_str(header: &str) -> Result<Self, Self::Err> {
        if header.len() > MAX_HEADER_CHARS {
            return Err(InvalidTraceHeader::TooLong);
        }
        let (mut root, mut parent, mut sampled) = (None, None, None);
        for part in header
            .split(';')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let (key, value) = part.split_once('=').ok_or(InvalidTraceHeader::Part)?;
            match key.trim() {
                "Root" => {
                    root = Some(TraceId::parse(value.trim()).ok_or(InvalidTraceHeader::Root)?)
                }
                "Parent" => {
                    let value = value.trim();
                    if !is_hex(value, 16) {
                        return Err(InvalidTraceHeader::Parent);
                    }
                    parent = Some(value.to_ascii_lowercase());
                }
                "Sampled" => {
                    sampled = match value.trim() {
                        "1" => Some(true),
                        "0" => Some(false),
                        "?" => None,
                        _ => return Err(InvalidTraceHeader::Sampled),
                    }
                }
                _ => {}
            }
        }
        Ok(Self {
            trace_id: root.ok_or(InvalidTraceHeader::Root)?,
            parent,
            sampled,
        })
    }
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root={}", self.trace_id)?;
        if let Some(parent) = &self.parent {
            write!(f, ";Parent={parent}")?;
        }
        match self.sampled {
            Some(true) => f.write_str(";Sampled=1"),
            Some(false) => f.write_str(";Sampled=0"),
            None => Ok(()),
        }
    }
}

fn is_hex(value: &str, digits: usize) -> bool {
    value.len() == digits && value.bytes().all(|byte| byte.is_ascii_hexdigit())
}

tokio::task_local! {
    static CURRENT: Option<TraceHeader>;
}

/// Runs `future` with `trace` as the current trace (see [`current`]).
pub async fn scope<F: Future>(trace: Option<TraceHeader>, future: F) -> F::Output {
    CURRENT.scope(trace, future).await
}

/// The trace of the work in progress: the header [`scope`] was given, if any.
pub fn current() -> Option<TraceHeader> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// The span that puts `trace_id` (the header's Root, nothing else of it) on every log line
/// written inside; `trace_id` is empty without a header.
pub fn span(trace: Option<&TraceHeader>) -> tracing::Span {
    match trace {
        Some(trace) => tracing::info_span!("trace", trace_id = %trace.trace_id()),
        None => tracing::info_span!("trace", trace_id = tracing::field::Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS_EXAMPLE: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    #[test]
    fn a_header_reads_and_writes_back_the_same() {
        let header: TraceHeader = AWS_EXAMPLE.parse().unwrap();
        assert_eq!(
            header.trace_id().as_str(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(header.parent(), Some("53995c3f42cd8ad8"));
        assert_eq!(header.sampled(), Some(true));
        assert_eq!(header.to_string(), AWS_EXAMPLE);
    }

    #[test]
    fn a_root_alone_is_a_header_and_other_keys_are_dropped() {
        let header: TraceHeader =
            " Sampled=? ; Root=1-5759E988-BD862E3FE1BE46A994272793;Lineage=a87bd80c:1|68fd508a:5 "
                .parse()
                .unwrap();
        assert_eq!(
            header.to_string(),
            "Root=1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(header.sampled(), None);
    }

    #[test]
    fn malformed_headers_are_refused_without_echoing_them() {
        let long = format!("{AWS_EXAMPLE};Self={}", "a".repeat(MAX_HEADER_CHARS));
        let cases = [
            ("", InvalidTraceHeader::Root),
            ("Parent=53995c3f42cd8ad8", InvalidTraceHeader::Root),
            (
                "Root=1-5759e988-bd862e3fe1be46a99427279",
                InvalidTraceHeader::Root,
            ),
            (
                "Root=2-5759e988-bd862e3fe1be46a994272793",
                InvalidTraceHeader::Root,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793-00",
                InvalidTraceHeader::Root,
            ),
            (
                "Root=1-5759e98g-bd862e3fe1be46a994272793",
                InvalidTraceHeader::Root,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a99427279\u{e9}",
                InvalidTraceHeader::Root,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
                InvalidTraceHeader::Parent,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=yes",
                InvalidTraceHeader::Sampled,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;<script>",
                InvalidTraceHeader::Part,
            ),
            (long.as_str(), InvalidTraceHeader::TooLong),
        ];
        for (header, expected) in cases {
            let refused = header.parse::<TraceHeader>().unwrap_err();
            assert_eq!(refused, expected, "{header}");
            assert!(!refused.to_string().contains("5759e988"), "{refused}");
        }
    }

    #[test]
    fn generated_ids_are_well_formed_dated_and_distinct() {
        let now = DateTime::parse_from_rfc3339("2016-06-09T22:11:20Z")
            .unwrap()
            .to_utc();
        let (one, two) = (TraceHeader::generate(now), TraceHeader::generate(now));
        assert_ne!(one.trace_id(), two.trace_id());
        let again: TraceHeader = one.to_string().parse().unwrap();
        assert_eq!(again, one);
        assert!(
            one.trace_id().as_str().starts_with("1-5759e988-"),
            "{}",
            one.trace_id()
        );
        assert_eq!(one.parent(), None);
    }

    #[test]
    fn an_sqs_record_gives_its_valid_header_only() {
        let mut message = SqsMessage::default();
        assert_eq!(TraceHeader::of_sqs_message(&message), None);
        message
            .attributes
            .insert(SQS_ATTRIBUTE.into(), "Root=garbage".into());
        assert_eq!(TraceHeader::of_sqs_message(&message), None);
        message
            .attributes
            .insert(SQS_ATTRIBUTE.into(), AWS_EXAMPLE.into());
        assert_eq!(
            TraceHeader::of_sqs_message(&message).map(|header| header.to_string()),
            Some(AWS_EXAMPLE.to_owned())
        );
    }

    /// `process_batch` gives each record its own trace: the handler's current trace (what the
    /// EventBridge adapter stamps on what it publishes) and `trace_id` on its log lines.
    #[tokio::test]
    async fn each_sqs_record_is_handled_in_its_own_trace() {
        use std::sync::Mutex;

        use aws_lambda_events::sqs::SqsEvent;
        use tracing_subscriber::prelude::*;

        use crate::logging::{LogBuffer, json_layer};
        use crate::sqs_batch::process_batch;

        let traced = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let mut event = SqsEvent::default();
        for (id, header) in [
            ("traced", Some(traced)),
            ("untraced", None),
            ("hostile", Some("Root=<script>")),
        ] {
            let mut message = SqsMessage::default();
            message.message_id = Some(id.to_owned());
            if let Some(header) = header {
                message
                    .attributes
                    .insert(SQS_ATTRIBUTE.into(), header.into());
            }
            event.records.push(message);
        }
        let seen = Mutex::new(Vec::new());
        let metrics = crate::metrics::MetricsSink::new("example", "test", Vec::new()).invocation();
        let buffer = LogBuffer::default();
        let _logs = tracing::subscriber::set_default(
            tracing_subscriber::registry().with(json_layer(buffer.clone())),
        );
        let response = process_batch(event, None, None, &metrics, |message| {
            let seen = &seen;
            async move {
                tokio::task::yield_now().await;
                tracing::info!("handled");
                let current = current().map(|trace| trace.to_string());
                seen.lock()
                    .unwrap()
                    .push((message.message_id.unwrap_or_default(), current));
                Ok(())
            }
        })
        .await
        .unwrap();
        assert!(response.batch_item_failures.is_empty());
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("hostile".to_owned(), None),
                ("traced".to_owned(), Some(traced.to_owned())),
                ("untraced".to_owned(), None)
            ]
        );
        let lines = buffer.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let trace_ids: Vec<serde_json::Value> = lines
            .iter()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["spans"][0]["trace_id"]
                    .clone()
            })
            .filter(|trace_id| !trace_id.is_null())
            .collect();
        assert_eq!(trace_ids, ["1-5759e988-bd862e3fe1be46a994272793"]);
        assert!(
            !lines.iter().any(|line| line.contains("<script>")),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_scopes_keep_their_own_trace() {
        let (one, two) = (
            TraceHeader::generate(Utc::now()),
            TraceHeader::generate(Utc::now()),
        );
        let seen = |header: TraceHeader| {
            scope(Some(header), async {
                tokio::task::yield_now().await;
                current()
            })
        };
        let (a, b) = futures::join!(seen(one.clone()), seen(two.clone()));
        assert_eq!((a, b), (Some(one), Some(two)));
        assert_eq!(scope(None, async { current() }).await, None);
    }
}
