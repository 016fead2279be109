//! The on-demand execution environments of one function: what serves its invocations through
//! the Invoke API and its schedules, apart from the instances its SQS pollers own.
//!
//! As in Lambda, an invocation takes an idle environment if there is one (a warm start) and
//! otherwise starts one (a cold start), up to [`MAX_ON_DEMAND_INSTANCES`]; past that, callers
//! wait for one to be free (where Lambda would throttle). An environment lost to a crash or
//! a timeout is started again by the next invocation that takes it, after the instance's
//! restart backoff; a failed start is that invocation's error, not retried.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::instance::{FunctionInstance, StartAttemptError, StartError};
use crate::local_function::LocalFunction;
use crate::process::{LogSink, ProcessError};
use crate::runtime_api::InvokeError;

/// Most environments one function runs on demand at once.
pub const MAX_ON_DEMAND_INSTANCES: usize = 4;

/// Why an on-demand invocation has no response.
#[derive(Debug, thiserror::Error)]
pub enum OnDemandError {
    /// The environment it needed could not be started (the init phase failed).
    #[error(transparent)]
    Start(StartError),
    #[error(transparent)]
    Invoke(InvokeError),
    #[error("local-lambda is shutting down")]
    ShuttingDown,
}

pub struct OnDemandPool {
    function: Arc<LocalFunction>,
    /// Instances not in use, warm or not; the last one pushed is the first reused.
    idle: Mutex<Vec<FunctionInstance>>,
    /// One per instance: holding one is holding an instance.
    permits: Semaphore,
    shutdown: CancellationToken,
}

impl OnDemandPool {
    /// A pool of not yet started instances labelled `<function>#invoke-<n>` in the logs.
    pub fn new(
        function: Arc<LocalFunction>,
        logs: &LogSink,
        shutdown: CancellationToken,
    ) -> Result<Self, ProcessError> {
        let mut instances = (1..=MAX_ON_DEMAND_INSTANCES)
            .map(|number| {
                let label = format!("{}#invoke-{number}", function.name);
                let output = logs.for_instance(&function.name, &label)?;
                Ok(FunctionInstance::new(Arc::clone(&function), label, output))
            })
            .collect::<Result<Vec<_>, ProcessError>>()?;
        // Popped from the end: #invoke-1 is the first started.
        instances.reverse();
        Ok(OnDemandPool {
            function,
            idle: Mutex::new(instances),
            permits: Semaphore::new(MAX_ON_DEMAND_INSTANCES),
            shutdown,
        })
    }

    pub fn function(&self) -> &LocalFunction {
        &self.function
    }

    /// Invokes the function with `payload` under `request_id` and logs the outcome in one
    /// line; `via` says what asked (the Invoke API, a schedule). Waits for a free instance
    /// when all are busy. Cancelling the returned future abandons the invocation: callers
    /// that must not lose it (a disconnecting HTTP client) run it in a task of its own.
    pub async fn invoke(
        &self,
        request_id: String,
        payload: Bytes,
        via: &str,
    ) -> Result<Bytes, OnDemandError> {
        let started = Instant::now();
        let mut lease = self.lease().await?;
        let instance = lease.instance();
        let label = instance.label().to_owned();
        let outcome = match instance.start_if_needed(&self.shutdown).await {
            Ok(init) => {
                let outcome = instance
                    .invoke_with_request_id(request_id.clone(), payload)
                    .await
                    .map_err(OnDemandError::Invoke);
                (init, outcome)
            }
            Err(StartAttemptError::Start(error)) => (None, Err(OnDemandError::Start(error))),
            Err(StartAttemptError::ShutdownRequested) => (None, Err(OnDemandError::ShuttingDown)),
        };
        drop(lease);
        let (init, outcome) = outcome;
        let invocation = InvocationRecord {
            function: &self.function.name,
            instance: &label,
            via,
            request_id: &request_id,
        };
        invocation.log(started.elapsed(), init, &outcome);
        outcome
    }

    /// Waits for the invocations in flight, refuses new ones, and stops every instance.
    /// Call once shutdown is requested (invocations waiting for an instance then give up).
    pub async fn drain(&self) {
        let permits = u32::try_from(MAX_ON_DEMAND_INSTANCES).unwrap_or(u32::MAX);
        // Closed only here, so acquiring cannot fail; either way no invocation is left.
        let _all = self.permits.acquire_many(permits).await;
        self.permits.close();
        let instances = std::mem::take(&mut *self.idle());
        for mut instance in instances {
            instance.stop().await;
        }
        tracing::debug!(function = %self.function.name, "on-demand instances stopped");
    }

    async fn lease(&self) -> Result<Lease<'_>, OnDemandError> {
        let permit = tokio::select! {
            // Once shutdown is requested, no invocation starts.
            biased;
            () = self.shutdown.cancelled() => return Err(OnDemandError::ShuttingDown),
            permit = self.permits.acquire() => permit.map_err(|_| OnDemandError::ShuttingDown)?,
        };
        let mut idle = self.idle();
        let warm = idle.iter().rposition(FunctionInstance::is_warm);
        let instance = match warm {
            Some(position) => idle.remove(position),
            // A permit is only had while an instance is idle.
            None => idle
                .pop()
                .expect("an instance is idle for every free permit"),
        };
        Ok(Lease {
            pool: self,
            instance: Some(instance),
            _permit: permit,
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<FunctionInstance>> {
        // Every operation on the list is one call: a panicking holder cannot leave it torn.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An instance taken from the pool; given back, then its permit released, when dropped (also
/// when the invocation is abandoned half-way).
struct Lease<'pool> {
    pool: &'pool OnDemandPool,
    instance: Option<FunctionInstance>,
    _permit: SemaphorePermit<'pool>,
}

impl Lease<'_> {
    fn instance(&mut self) -> &mut FunctionInstance {
        self.instance
            .as_mut()
            .expect("a lease holds its instance until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            self.pool.idle().push(instance);
        }
    }
}

/// Who ran an invocation and why, for its log line.
struct InvocationRecord<'a> {
    function: &'a str,
    instance: &'a str,
    via: &'a str,
    request_id: &'a str,
}

impl InvocationRecord<'_> {
    fn log(
        &self,
        elapsed: Duration,
        init: Option<Duration>,
        outcome: &Result<Bytes, OnDemandError>,
    ) {
        let InvocationRecord {
            function,
            instance,
            via,
            request_id,
        } = *self;
        let duration_ms = format!("{:.1}", elapsed.as_secs_f64() * 1000.0);
        // Cold starts say how long the init phase took (it is part of the duration).
        let init_ms = init.map_or_else(
            || "-".to_owned(),
            |init| format!("{:.1}", init.as_secs_f64() * 1000.0),
        );
        match outcome {
            Ok(response) => tracing::info!(
                function = %function,
                instance = %instance,
                via = %via,
                request_id = %request_id,
                duration_ms = %duration_ms,
                init_ms = %init_ms,
                response_bytes = response.len(),
                "invocation succeeded"
            ),
            Err(error) => tracing::warn!(
                function = %function,
                instance = %instance,
                via = %via,
                request_id = %request_id,
                duration_ms = %duration_ms,
                init_ms = %init_ms,
                %error,
                "invocation failed"
            ),
        }
    }
}
