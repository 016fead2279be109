//! A circuit breaker in front of the payment processor: after `failure_threshold` consecutive
//! calls that got no answer ([`ProcessorError::Unavailable`]) it opens, and calls fail fast
//! for `open_for` instead of adding load (and Lambda time) to an outage. Then a few trial
//! calls go through (half-open): an answer closes the circuit, no answer opens it again.
//!
//! The state machine ([`CircuitBreaker`]) is plain data driven by the caller's clock, so every
//! transition is tested without waiting; [`GuardedProcessor`] wraps any [`PaymentProcessor`]
//! with it.
//!
//! A [`ProcessorError::Declined`] or [`ProcessorError::Refused`] is an answer: the processor is
//! up, so it counts as a success here (it breaks a run of failures, and a declined trial closes
//! the circuit).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use paysaga_domain::ports::{PaymentProcessor, ProcessorError};
use paysaga_domain::{ChargeId, PaymentRequest};

/// When the circuit opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (no answer) that open the circuit. At least 1.
    pub failure_threshold: u32,
    /// How long an open circuit fails calls fast before it lets trial calls through.
    pub open_for: Duration,
    /// Trial calls allowed at the same time while half-open. At least 1.
    pub half_open_max_calls: u32,
}

impl BreakerConfig {
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
    pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(5);
    pub const DEFAULT_HALF_OPEN_MAX_CALLS: u32 = 1;
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: Self::DEFAULT_FAILURE_THRESHOLD,
            open_for: Self::DEFAULT_OPEN_FOR,
            half_open_max_calls: Self::DEFAULT_HALF_OPEN_MAX_CALLS,
        }
    }
}

/// The circuit's state, as reported for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls fail fast without reaching the processor.
    Open,
    /// A limited number of trial calls go through; their outcome closes or reopens the circuit.
    HalfOpen,
}

impl CircuitState {
    /// The state as a gauge's value: 0 closed, 1 half open, 2 open.
    pub fn level(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

impl CircuitState {
    /// The name used in logs and metrics: `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// What a permitted call came to, as far as the circuit is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The processor answered (an execution, a reversal, or a decline).
    Answered,
    /// No usable answer: connection refused, timeout, 5xx, 429.
    NoAnswer,
    /// The call was given up before it finished (its future was dropped): it says nothing
    /// about the processor, but a trial slot it held is freed.
    Abandoned,
}

impl CallOutcome {
    pub fn of<T>(result: &Result<T, ProcessorError>) -> Self {
        match result {
            Ok(_) | Err(ProcessorError::Declined(_) | ProcessorError::Refused(_)) => Self::Answered,
            Err(ProcessorError::Unavailable(_)) => Self::NoAnswer,
        }
    }
}

/// Leave to make one call. Its outcome must be given back with [`CircuitBreaker::record`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "record the outcome of the call with CircuitBreaker::record"]
pub struct Permit {
    /// Which period of the circuit the call started in: an outcome that arrives after the
    /// circuit moved on (say, a slow call started while closed, ending after a trial closed
    /// it again) is ignored rather than counted against the new period.
    period: u64,
    trial: bool,
}

/// The circuit is open: the call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open")]
pub struct CircuitOpen {
    /// How long until trial calls are let through (zero while half-open trials are running).
    pub retry_in: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { trials_in_flight: u32 },
}

/// The circuit breaker's state machine. Not thread-safe by itself; [`GuardedProcessor`] keeps
/// it behind a mutex. Every method takes the current time, so tests drive the clock.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
    /// Bumped at every transition; see [`Permit`].
    period: u64,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        let config = BreakerConfig {
            failure_threshold: config.failure_threshold.max(1),
            half_open_max_calls: config.half_open_max_calls.max(1),
            ..config
        };
        Self {
            config,
            phase: Phase::Closed {
                consecutive_failures: 0,
            },
            period: 0,
        }
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    pub fn state(&self) -> CircuitState {
        match self.phase {
            Phase::Closed { .. } => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// May a call be made now? An open circuit whose time is up turns half-open here, and the
    /// call becomes one of its trials.
    pub fn permit(&mut self, now: Instant) -> Result<Permit, CircuitOpen> {
        match self.phase {
            Phase::Closed { .. } => Ok(Permit {
                period: self.period,
                trial: false,
            }),
            Phase::Open { until } if now < until => Err(CircuitOpen {
                retry_in: until - now,
            }),
            Phase::Open { .. } => {
                self.enter(Phase::HalfOpen {
                    trials_in_flight: 1,
                });
                Ok(Permit {
                    period: self.period,
                    trial: true,
                })
            }
            Phase::HalfOpen { trials_in_flight } => {
                if trials_in_flight >= self.config.half_open_max_calls {
                    return Err(CircuitOpen {
                        retry_in: Duration::ZERO,
                    });
                }
                self.phase = Phase::HalfOpen {
                    trials_in_flight: trials_in_flight + 1,
                };
                Ok(Permit {
                    period: self.period,
                    trial: true,
                })
            }
        }
    }

    /// Records how a permitted call went.
    pub fn record(&mut self, permit: Permit, outcome: CallOutcome, now: Instant) {
        if permit.period != self.period {
            return; // the circuit has moved on since this call started
        }
        match (self.phase, outcome) {
            (Phase::Closed { .. }, CallOutcome::Answered) => {
                self.phase = Phase::Closed {
                    consecutive_failures: 0,
                };
            }
            (
                Phase::Closed {
                    consecutive_failures,
                },
                CallOutcome::NoAnswer,
            ) => {
                let consecutive_failures = consecutive_failures + 1;
                if consecutive_failures >= self.config.failure_threshold {
                    tracing::warn!(
                        circuit = "open",
                        consecutive_failures,
                        open_for_ms = self.config.open_for.as_millis() as u64,
                        "payment processor circuit opened: calls fail fast"
                    );
                    self.enter(Phase::Open {
                        until: now + self.config.open_for,
                    });
                } else {
                    self.phase = Phase::Closed {
                        consecutive_failures,
                    };
                }
            }
            (Phase::HalfOpen { .. }, CallOutcome::Answered) if permit.trial => {
                tracing::info!(
                    circuit = "closed",
                    "payment processor answered a trial call: circuit closed"
                );
                self.enter(Phase::Closed {
                    consecutive_failures: 0,
                });
            }
            (Phase::HalfOpen { .. }, CallOutcome::NoAnswer) if permit.trial => {
                tracing::warn!(
                    circuit = "open",
                    open_for_ms = self.config.open_for.as_millis() as u64,
                    "payment processor failed a trial call: circuit opened again"
                );
                self.enter(Phase::Open {
                    until: now + self.config.open_for,
                });
            }
            (Phase::HalfOpen { trials_in_flight }, CallOutcome::Abandoned) if permit.trial => {
                self.phase = Phase::HalfOpen {
                    trials_in_flight: trials_in_flight.saturating_sub(1),
                };
            }
            // An abandoned call while closed says nothing; a non-trial permit cannot be of a
            // half-open period, and an open period hands out no permits.
            _ => {}
        }
    }

    fn enter(&mut self, phase: Phase) {
        if matches!(phase, Phase::HalfOpen { .. }) {
            tracing::info!(
                circuit = "half_open",
                "payment processor circuit half-open: trial calls go through"
            );
        }
        self.phase = phase;
        self.period += 1;
    }
}

/// Where [`GuardedProcessor`] reads the time: the system's monotonic clock, or a test's.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A [`PaymentProcessor`] behind a circuit breaker: the decorator the saga is given.
pub struct GuardedProcessor<P, C = SystemClock> {
    inner: P,
    breaker: Mutex<CircuitBreaker>,
    clock: C,
}

impl<P: PaymentProcessor> GuardedProcessor<P> {
    pub fn new(inner: P, config: BreakerConfig) -> Self {
        Self::with_clock(inner, config, SystemClock)
    }
}

impl<P: PaymentProcessor, C: Clock> GuardedProcessor<P, C> {
    pub fn with_clock(inner: P, config: BreakerConfig, clock: C) -> Self {
        Self {
            inner,
            breaker: Mutex::new(CircuitBreaker::new(config)),
            clock,
        }
    }

    /// The circuit's state now (for metrics).
    pub fn state(&self) -> CircuitState {
        self.breaker().state()
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }

    fn breaker(&self) -> MutexGuard<'_, CircuitBreaker> {
        // The breaker's methods do not panic between changes of its fields, so a poisoned
        // lock still guards a consistent state.
        self.breaker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, ProcessorError>>,
    ) -> Result<T, ProcessorError> {
        let permit = self
            .breaker()
            .permit(self.clock.now())
            .map_err(|open| ProcessorError::Unavailable(open.to_string()))?;
        let mut pending = PendingCall {
            breaker: &self.breaker,
            clock: &self.clock,
            permit: Some(permit),
        };
        let result = call.await;
        pending.finish(CallOutcome::of(&result));
        result
    }
}

/// A permitted call under way. Dropped before it finished (a Lambda timeout, a cancelled
/// task, a panic the SQS consumer caught: `lambda_toolkit::panics`), it gives its permit back
/// as abandoned, so a half-open trial slot is never lost.
struct PendingCall<'a> {
    breaker: &'a Mutex<CircuitBreaker>,
    clock: &'a dyn Clock,
    permit: Option<Permit>,
}

impl PendingCall<'_> {
    fn finish(&mut self, outcome: CallOutcome) {
        if let Some(permit) = self.permit.take() {
            let now = self.clock.now();
            self.breaker
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .record(permit, outcome, now);
        }
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        self.finish(CallOutcome::Abandoned);
    }
}

#[async_trait]
impl<P: PaymentProcessor, C: Clock> PaymentProcessor for GuardedProcessor<P, C> {
    async fn execute(&self, request: &PaymentRequest) -> Result<ChargeId, ProcessorError> {
        self.guarded(self.inner.execute(request)).await
    }

    async fn reverse(&self, request: &PaymentRequest) -> Result<(), ProcessorError> {
        self.guarded(self.inner.reverse(request)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use paysaga_domain::ids::PayoutDestinationId;
    use paysaga_domain::payment::Flow;
    use paysaga_domain::{Money, PaymentId, WalletId};

    const OPEN_FOR: Duration = Duration::from_secs(5);

    fn config(failure_threshold: u32, half_open_max_calls: u32) -> BreakerConfig {
        BreakerConfig {
            failure_threshold,
            open_for: OPEN_FOR,
            half_open_max_calls,
        }
    }

    /// Makes one call that ends with `outcome`.
    fn call(breaker: &mut CircuitBreaker, outcome: CallOutcome, now: Instant) {
        let permit = breaker
            .permit(now)
            .expect("the circuit lets the call through");
        breaker.record(permit, outcome, now);
    }

    /// A breaker opened by `threshold` failures at `t0`.
    fn opened(threshold: u32, half_open_max_calls: u32, t0: Instant) -> CircuitBreaker {
        let mut breaker = CircuitBreaker::new(config(threshold, half_open_max_calls));
        for _ in 0..threshold {
            call(&mut breaker, CallOutcome::NoAnswer, t0);
        }
        assert_eq!(breaker.state(), CircuitState::Open);
        breaker
    }

    #[test]
    fn closed_opens_at_the_failure_threshold() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config(3, 1));
        call(&mut breaker, CallOutcome::NoAnswer, t0);
        call(&mut breaker, CallOutcome::NoAnswer, t0);
        assert_eq!(breaker.state(), CircuitState::Closed);
        call(&mut breaker, CallOutcome::NoAnswer, t0);
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[test]
    fn closed_stays_closed_below_the_threshold_and_an_answer_resets_the_count() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config(3, 1));
        for _ in 0..5 {
            call(&mut breaker, CallOutcome::NoAnswer, t0);
            call(&mut breaker, CallOutcome::NoAnswer, t0);
            call(&mut breaker, CallOutcome::Answered, t0);
            assert_eq!(breaker.state(), CircuitState::Closed);
        }
    }

    #[test]
    fn open_fails_fast_until_the_cool_down_is_over() {
        let t0 = Instant::now();
        let mut breaker = opened(2, 1, t0);
        let just_before = t0 + OPEN_FOR - Duration::from_millis(1);
        assert_eq!(
            breaker.permit(t0 + Duration::from_secs(1)),
            Err(CircuitOpen {
                retry_in: Duration::from_secs(4)
            })
        );
        assert!(breaker.permit(just_before).is_err());
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[test]
    fn open_turns_half_open_after_the_cool_down_and_lets_a_trial_through() {
        let t0 = Instant::now();
        let mut breaker = opened(2, 1, t0);
        let permit = breaker.permit(t0 + OPEN_FOR);
        assert!(permit.is_ok_and(|p| p.trial));
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
    }

    #[test]
    fn half_open_closes_when_the_trial_is_answered() {
        let t0 = Instant::now();
        let mut breaker = opened(2, 1, t0);
        call(&mut breaker, CallOutcome::Answered, t0 + OPEN_FOR);
        assert_eq!(breaker.state(), CircuitState::Closed);
        // Closed afresh: it takes the full threshold again to open it.
        call(&mut breaker, CallOutcome::NoAnswer, t0 + OPEN_FOR);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn half_open_opens_again_when_the_trial_fails_for_a_new_cool_down() {
        let t0 = Instant::now();
        let mut breaker = opened(2, 1, t0);
        let t1 = t0 + OPEN_FOR + Duration::from_secs(1);
        call(&mut breaker, CallOutcome::NoAnswer, t1);
        assert_eq!(breaker.state(), CircuitState::Open);
        assert!(
            breaker
                .permit(t1 + OPEN_FOR - Duration::from_millis(1))
                .is_err()
        );
        assert!(breaker.permit(t1 + OPEN_FOR).is_ok());
    }

    #[test]
    fn half_open_limits_the_trials_in_flight() {
        let t0 = Instant::now();
        let t1 = t0 + OPEN_FOR;
        let mut breaker = opened(1, 2, t0);
        let first = breaker.permit(t1).expect("first trial");
        let second = breaker.permit(t1).expect("second trial");
        assert_eq!(
            breaker.permit(t1),
            Err(CircuitOpen {
                retry_in: Duration::ZERO
            })
        );
        // The first answer closes the circuit; the second trial's outcome is then stale.
        breaker.record(first, CallOutcome::Answered, t1);
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.record(second, CallOutcome::NoAnswer, t1);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn an_abandoned_trial_frees_its_slot() {
        let t0 = Instant::now();
        let t1 = t0 + OPEN_FOR;
        let mut breaker = opened(1, 1, t0);
        let trial = breaker.permit(t1).expect("trial");
        assert!(breaker.permit(t1).is_err());
        breaker.record(trial, CallOutcome::Abandoned, t1);
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert!(breaker.permit(t1).is_ok());
    }

    #[test]
    fn declines_are_answers_not_failures() {
        let t0 = Instant::now();
        let declined: Result<(), _> = Err(ProcessorError::Declined("insufficient funds".into()));
        assert_eq!(CallOutcome::of(&declined), CallOutcome::Answered);
        let unavailable: Result<(), _> = Err(ProcessorError::Unavailable("503".into()));
        assert_eq!(CallOutcome::of(&unavailable), CallOutcome::NoAnswer);

        let mut breaker = CircuitBreaker::new(config(2, 1));
        for _ in 0..10 {
            call(&mut breaker, CallOutcome::of(&declined), t0);
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        // And a declined trial closes a half-open circuit: the processor is back.
        let mut breaker = opened(2, 1, t0);
        call(&mut breaker, CallOutcome::of(&declined), t0 + OPEN_FOR);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn a_late_failure_from_an_earlier_period_does_not_count() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config(1, 1));
        let slow = breaker.permit(t0).expect("closed");
        call(&mut breaker, CallOutcome::NoAnswer, t0); // opens
        call(&mut breaker, CallOutcome::Answered, t0 + OPEN_FOR); // trial closes it
        breaker.record(slow, CallOutcome::NoAnswer, t0 + OPEN_FOR);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    // ------------------------------------------------------------------ the decorator

    /// A processor that answers with whatever `set` says, and counts its calls; its clones
    /// share one script.
    #[derive(Clone)]
    struct Scripted(Arc<Script>);

    struct Script {
        calls: AtomicU32,
        answer: Mutex<Result<(), ProcessorError>>,
    }

    impl Scripted {
        fn answering(answer: Result<(), ProcessorError>) -> Self {
            Self(Arc::new(Script {
                calls: AtomicU32::new(0),
                answer: Mutex::new(answer),
            }))
        }
        fn set(&self, answer: Result<(), ProcessorError>) {
            *self.0.answer.lock().unwrap() = answer;
        }
        fn calls(&self) -> u32 {
            self.0.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl PaymentProcessor for Scripted {
        async fn execute(&self, _request: &PaymentRequest) -> Result<ChargeId, ProcessorError> {
            self.0.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.0.answer.lock().unwrap().clone();
            answer.map(|()| ChargeId::parse("ch_test").unwrap())
        }
        async fn reverse(&self, _request: &PaymentRequest) -> Result<(), ProcessorError> {
            self.0.calls.fetch_add(1, Ordering::SeqCst);
            self.0.answer.lock().unwrap().clone()
        }
    }

    #[derive(Clone)]
    struct TestClock(Arc<Mutex<Instant>>);

    impl TestClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn request() -> PaymentRequest {
        PaymentRequest::new(
            PaymentId::parse("pay_breaker").unwrap(),
            WalletId::parse("wal_a").unwrap(),
            WalletId::parse("wal_b").unwrap(),
            Money::positive(100, "EUR".parse().unwrap()).unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_decorator_fails_fast_while_open_and_recovers_through_a_trial() {
        let processor = Scripted::answering(Err(ProcessorError::Unavailable("503".into())));
        let clock = TestClock(Arc::new(Mutex::new(Instant::now())));
        let guarded = GuardedProcessor::with_clock(processor.clone(), config(3, 1), clock.clone());
        for _ in 0..3 {
            assert!(matches!(
                guarded.execute(&request()).await,
                Err(ProcessorError::Unavailable(_))
            ));
        }
        assert_eq!(guarded.state(), CircuitState::Open);
        assert_eq!(
            guarded.reverse(&request()).await,
            Err(ProcessorError::Unavailable("circuit open".into()))
        );
        assert_eq!(processor.calls(), 3, "an open circuit does not call");

        processor.set(Ok(()));
        clock.advance(OPEN_FOR);
        assert!(guarded.execute(&request()).await.is_ok());
        assert_eq!(guarded.state(), CircuitState::Closed);
        assert_eq!(processor.calls(), 4);
    }

    #[tokio::test]
    async fn the_decorator_passes_declines_through_without_opening() {
        let declined = ProcessorError::Declined("declined: over the limit".into());
        let processor = Scripted::answering(Err(declined.clone()));
        let guarded = GuardedProcessor::new(processor.clone(), config(1, 1));
        for _ in 0..3 {
            assert_eq!(guarded.execute(&request()).await, Err(declined.clone()));
        }
        assert_eq!(guarded.state(), CircuitState::Closed);
        assert_eq!(processor.calls(), 3);
    }

    #[tokio::test]
    async fn the_decorator_hands_each_call_the_whole_request_and_guards_both() {
        /// Remembers which call saw which payment, and is unavailable throughout.
        #[derive(Default)]
        struct Recording(Mutex<Vec<(&'static str, PaymentRequest)>>);
        #[async_trait]
        impl PaymentProcessor for Recording {
            async fn execute(&self, request: &PaymentRequest) -> Result<ChargeId, ProcessorError> {
                self.0.lock().unwrap().push(("execute", request.clone()));
                Err(ProcessorError::Unavailable("down".into()))
            }
            async fn reverse(&self, request: &PaymentRequest) -> Result<(), ProcessorError> {
                self.0.lock().unwrap().push(("reverse", request.clone()));
                Err(ProcessorError::Unavailable("down".into()))
            }
        }
        let payout = PaymentRequest::of_flow(
            PaymentId::parse("pay_breaker_payout").unwrap(),
            Flow::Payout {
                from_wallet: WalletId::parse("wal_a").unwrap(),
                destination: PayoutDestinationId::parse("dst_bank").unwrap(),
            },
            Money::positive(100, "EUR".parse().unwrap()).unwrap(),
        )
        .unwrap();
        let guarded = GuardedProcessor::new(Recording::default(), config(2, 1));
        assert!(guarded.execute(&payout).await.is_err());
        assert!(guarded.reverse(&payout).await.is_err());
        assert_eq!(
            *guarded.inner().0.lock().unwrap(),
            [("execute", payout.clone()), ("reverse", payout.clone())],
            "the flow reaches the processor with each call"
        );
        // A failed execution and a failed reversal count together towards the threshold.
        assert_eq!(guarded.state(), CircuitState::Open);
        assert_eq!(
            guarded.reverse(&payout).await,
            Err(ProcessorError::Unavailable("circuit open".into()))
        );
        assert_eq!(guarded.inner().0.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_dropped_trial_call_frees_the_half_open_slot() {
        struct Hangs;
        #[async_trait]
        impl PaymentProcessor for Hangs {
            async fn execute(&self, _: &PaymentRequest) -> Result<ChargeId, ProcessorError> {
                std::future::pending().await
            }
            async fn reverse(&self, _: &PaymentRequest) -> Result<(), ProcessorError> {
                Err(ProcessorError::Unavailable("down".into()))
            }
        }
        let clock = TestClock(Arc::new(Mutex::new(Instant::now())));
        let guarded = GuardedProcessor::with_clock(Hangs, config(1, 1), clock.clone());
        let request = request();
        assert!(guarded.reverse(&request).await.is_err());
        assert_eq!(guarded.state(), CircuitState::Open);
        clock.advance(OPEN_FOR);
        let trial = guarded.execute(&request);
        // Poll it once (it takes the trial slot), then drop it, as a timeout would.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), trial)
                .await
                .is_err()
        );
        assert_eq!(guarded.state(), CircuitState::HalfOpen);
        // The slot is free again: the next call is a trial (which fails and reopens).
        assert_eq!(
            guarded.reverse(&request).await,
            Err(ProcessorError::Unavailable("down".into()))
        );
        assert_eq!(guarded.state(), CircuitState::Open);
    }
}
