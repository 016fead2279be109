//! A panic as the failure of one unit of work, not of the process: [`catch`] runs a future so
//! that a panic while it is polled becomes an `Err(`[`Panic`]`)`, the rest of the invocation
//! going on. [`crate::sqs_batch`] runs each SQS record's handling so: one message's panic is that
//! message's failure alone, its batch-mates succeed.
//!
//! A panic is a bug, and its message may quote what the code was handling (`Result::unwrap` on
//! an error that quotes the input, `expect(&format!(..))`, an index out of bounds): it must not
//! reach a log as it is. So a [`Panic`] keeps its location (`file:line:column`, program text)
//! and its message only when that is a literal of the program (`panic!("…")` without
//! arguments, `unwrap()` on `None`, `unreachable!()`, arithmetic overflow: a `&'static str`
//! payload); a formatted message (a `String` payload: anything with arguments, which includes
//! `expect("…")`, whose text std formats in) is withheld. The panic hook [`catch`] installs prints nothing
//! for a panic it catches; any other panic goes to the hook installed before it (the default,
//! which prints the message to stderr, as in tests), unless [`log_uncaught`] was called (every
//! function's [`crate::logging::init`] does): then it is logged as an error, with the same
//! redaction.
//!
//! ```
//! use lambda_toolkit::panics::catch;
//!
//! # tokio_test_block_on(async {
//! let fine = catch(async { 2 + 2 }).await;
//! assert_eq!(fine, Ok(4));
//!
//! let baskets: Vec<&str> = Vec::new();
//! let caught = catch(async {
//!     match baskets.first() {
//!         Some(basket) => basket.len(),
//!         None => panic!("no basket"),
//!     }
//! })
//! .await;
//! let panic = caught.expect_err("the future panicked");
//! assert_eq!(panic.message, Some("no basket"));
//! assert!(panic.to_string().starts_with("panicked at "), "{panic}");
//!
//! let owner = "alice@example.com";
//! let caught = catch(async { panic!("no basket of {owner}") }).await;
//! let panic = caught.expect_err("the future panicked");
//! assert_eq!(panic.message, None, "formatted: withheld");
//! assert!(!panic.to_string().contains(owner));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(future)
//! # }
//! ```

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::pin::Pin;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// A caught panic, as it may be logged and recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// Where it panicked (`file:line:column`), when this module's hook saw it.
    pub location: Option<String>,
    /// Its message, when that is a literal of the program (a `&'static str` payload); `None`
    /// when it was formatted (it may quote the input) or is not text.
    pub message: Option<&'static str>,
}

impl Panic {
    fn new(payload: &(dyn Any + Send), location: Option<String>) -> Self {
        Self {
            location,
            message: payload.downcast_ref::<&'static str>().copied(),
        }
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("panicked")?;
        if let Some(location) = &self.location {
            write!(f, " at {location}")?;
        }
        match self.message {
            Some(message) => write!(f, ": {}", redact::scrub(message)),
            None => f.write_str(" (its message is withheld: it may quote the input)"),
        }
    }
}

thread_local! {
    /// How many [`Catch`]es are polling on this thread, one inside another.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    /// Where the latest panic caught on this thread happened, for its [`Catch`].
    static LOCATION: Cell<Option<String>> = const { Cell::new(None) };
}

/// Whether panics no [`Catch`] catches are logged (redacted) instead of going to the hook
/// installed before this module's.
static LOG_UNCAUGHT: AtomicBool = AtomicBool::new(false);

/// Runs `future`; a panic while it is polled (or while it is dropped after panicking) is
/// returned as an `Err` instead of unwinding further. Needs `panic = "unwind"`: with
/// `panic = "abort"` the process ends at the panic, as before.
///
/// The future is not required to be `UnwindSafe`: what it borrows must stay usable after it
/// panicked half-way, which the state it shares with other work gets by two rules. A lock takes
/// the poisoned guard instead of panicking again (`lock().unwrap_or_else(|p| p.into_inner())`),
/// and no change under it can be left half-done (or it is not held across code that can panic);
/// what a dropped future holds (a circuit breaker's permit, a slot of a pool) is given back by a
/// `Drop`, which runs here when the panicked future is dropped.
pub fn catch<F: Future>(future: F) -> Catch<F> {
    install_hook();
    Catch {
        future: Some(Box::pin(future)),
    }
}

/// The future of [`catch`].
pub struct Catch<F: Future> {
    /// `None` once it finished.
    future: Option<Pin<Box<F>>>,
}

impl<F: Future> Future for Catch<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(future) = self.future.as_mut() else {
            panic!("a Catch was polled after it finished");
        };
        // Unwind safety. The panicked future is dropped below, never polled again; what outlives
        // it is what it borrowed, and what a panic can leave half-changed there is state behind
        // interior mutability. The toolkit's own: the AWS SDK's clients (built for being
        // cancelled at any await, and no lock of theirs is held while handler code runs), an
        // invocation's `Mutex<Metrics>`, the in-memory idempotency store's and the test doubles'
        // `Mutex`es (each takes a poisoned guard instead of panicking again, and each change under
        // it is one map update). The caller's state must keep the same rules (see [`catch`]).
        // Outside the process, a panic is a crash at that point: effects that are conditional
        // and idempotent let a redelivery resume (an idempotency claim waits out its in-progress
        // timeout, as a crashed attempt's does).
        match catching(|| future.as_mut().poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                self.future = None;
                Poll::Ready(Ok(output))
            }
            Err(payload) => {
                let panic = Panic::new(payload.as_ref(), LOCATION.take());
                // Its guards run now (a circuit breaker's permit is given back); a panic in a
                // `Drop` is as much this work's failure, and is only kept quiet.
                let future = self.future.take();
                let _ = catching(move || drop(future));
                LOCATION.take();
                Poll::Ready(Err(panic))
            }
        }
    }
}

/// Runs `work` with this module's hook told a [`Catch`] is catching on this thread.
fn catching<T>(work: impl FnOnce() -> T) -> std::thread::Result<T> {
    CATCHING.set(CATCHING.get() + 1);
    let result = std::panic::catch_unwind(AssertUnwindSafe(work));
    CATCHING.set(CATCHING.get() - 1);
    result
}

/// From now on a panic no [`catch`] catches is logged as an error, redacted as a [`Panic`] is,
/// instead of going to the previous hook (the default one prints its message to stderr, which
/// Lambda keeps in the function's logs). For binaries; tests keep the default's full message.
pub fn log_uncaught() {
    LOG_UNCAUGHT.store(true, Ordering::Relaxed);
    install_hook();
}

/// Installs this module's panic hook once, before the hook that was there.
fn install_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            let location = info.location().map(ToString::to_string);
            if CATCHING.get() > 0 {
                // Its catch logs it, in the span of the work that panicked.
                LOCATION.set(location);
            } else if LOG_UNCAUGHT.load(Ordering::Relaxed) {
                let panic = Panic::new(info.payload(), location);
                tracing::error!(%panic, "panicked");
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_finished_future_gives_its_output() {
        assert_eq!(catch(async { "done" }).await, Ok("done"));
    }

    #[tokio::test]
    async fn a_literal_message_is_kept_with_the_location() {
        let panic = catch(async {
            tokio::task::yield_now().await;
            panic!("the basket vanished");
        })
        .await
        .expect_err("it panicked");
        assert_eq!(panic.message, Some("the basket vanished"));
        let location = panic.location.clone().expect("the hook saw where");
        assert!(
            location.starts_with("shared/lambda-toolkit/src/panics.rs:"),
            "{location}"
        );
        assert_eq!(
            panic.to_string(),
            format!("panicked at {location}: the basket vanished")
        );
    }

    #[tokio::test]
    async fn a_formatted_message_is_withheld() {
        let owner = "alice@example.com";
        let panic = catch(async move { panic!("no basket for {owner}") })
            .await
            .expect_err("it panicked");
        assert_eq!(panic.message, None);
        let shown = panic.to_string();
        assert!(!shown.contains("alice"), "{shown}");
        assert!(
            shown.ends_with("(its message is withheld: it may quote the input)"),
            "{shown}"
        );
    }

    /// Dropped when its future is dropped: as a circuit breaker's pending call is.
    struct Guard<'a>(&'a Cell<bool>);

    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    #[tokio::test]
    async fn the_panicked_future_is_dropped_at_once_and_the_next_one_runs() {
        let released = Cell::new(false);
        let caught = catch(async {
            let _guard = Guard(&released);
            tokio::task::yield_now().await;
            panic!("bug");
        })
        .await;
        assert!(caught.is_err());
        assert!(released.get(), "the future's guards ran");
        assert_eq!(CATCHING.get(), 0, "nothing is left catching on this thread");
        assert_eq!(catch(async { 1 }).await, Ok(1));
    }
}
