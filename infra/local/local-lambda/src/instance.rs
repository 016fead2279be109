//! A function instance: one execution environment (a Runtime API and the function process
//! talking to it) that handles one invocation at a time, replaced as Lambda replaces one.
//!
//! The environment is started before its first invocation (the init phase has its own
//! deadline), kept after a function error, and thrown away after a timeout, a crash or an
//! init failure; the next start after such a loss waits an exponential backoff, so a
//! function that crashes on every event does not spin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::local_function::LocalFunction;
use crate::process::{FunctionProcess, InstanceOutput, ProcessError, ProcessExit};
use crate::runtime_api::{
    FunctionErrorReport, InvokeError, RuntimeApi, RuntimeApiError, new_request_id,
};

const FIRST_RESTART_DELAY: Duration = Duration::from_millis(200);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// Time a process gets to exit on SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Returned by [`FunctionInstance::ensure_started`] when it gave up because shutdown was
/// requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutdown requested")]
pub struct ShutdownRequested;

/// Why [`FunctionInstance::start_if_needed`] has no environment to offer.
#[derive(Debug, thiserror::Error)]
pub enum StartAttemptError {
    #[error("shutdown requested")]
    ShutdownRequested,
    #[error(transparent)]
    Start(StartError),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    RuntimeApi(#[from] RuntimeApiError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{function} reported an init error: {report}")]
    InitError {
        function: String,
        report: FunctionErrorReport,
    },
    #[error("{function} exited during init ({exit})")]
    ExitedDuringInit { function: String, exit: ProcessExit },
    #[error("{function} did not call the Runtime API within the {} s init limit", .limit.as_secs())]
    InitTimeout { function: String, limit: Duration },
}

struct ExecutionEnvironment {
    runtime_api: RuntimeApi,
    process: FunctionProcess,
}

pub struct FunctionInstance {
    function: Arc<LocalFunction>,
    label: String,
    output: InstanceOutput,
    environment: Option<ExecutionEnvironment>,
    /// Set when the last environment was lost; cleared by a successful invocation.
    restart_backoff: Option<Backoff>,
}

impl FunctionInstance {
    /// `label` tells this instance apart in logs (e.g. `payment-saga#2`).
    pub fn new(function: Arc<LocalFunction>, label: String, output: InstanceOutput) -> Self {
        FunctionInstance {
            function,
            label,
            output,
            environment: None,
            restart_backoff: None,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Starts a new execution environment (replacing any current one) and waits for the end
    /// of its init phase. Returns the init duration: spawn to the first `/next`.
    pub async fn start(&mut self) -> Result<Duration, StartError> {
        self.environment = None;
        let runtime_api = RuntimeApi::start(self.function.identity()).await?;
        let environment = self.function.runtime_environment(runtime_api.address());
        let spawned_at = Instant::now();
        let mut process =
            FunctionProcess::spawn(&self.function.program, &environment, &self.output)?;
        let function = self.function.name.clone();
        let initialised = tokio::select! {
            initialised = runtime_api.initialised() => initialised,
            exit = process.exited() => return Err(StartError::ExitedDuringInit { function, exit }),
            () = tokio::time::sleep(self.function.init_timeout) => {
                return Err(StartError::InitTimeout { function, limit: self.function.init_timeout });
            }
        };
        let first_next_at =
            initialised.map_err(|report| StartError::InitError { function, report })?;
        let init = first_next_at.saturating_duration_since(spawned_at);
        tracing::info!(
            instance = %self.label,
            pid = process.id(),
            runtime_api = %runtime_api.address(),
            init_ms = %format_args!("{:.1}", init.as_secs_f64() * 1000.0),
            "function instance ready"
        );
        self.environment = Some(ExecutionEnvironment {
            runtime_api,
            process,
        });
        Ok(init)
    }

    /// Makes sure an environment is running: keeps the current one if its process is alive,
    /// otherwise starts one, after the restart backoff if the last one was lost, and retries
    /// until it starts or shutdown is requested.
    pub async fn ensure_started(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<(), ShutdownRequested> {
        loop {
            match self.start_if_needed(shutdown).await {
                Ok(_) => return Ok(()),
                Err(StartAttemptError::ShutdownRequested) => return Err(ShutdownRequested),
                Err(StartAttemptError::Start(error)) => {
                    tracing::warn!(
                        instance = %self.label,
                        %error,
                        "function instance failed to start; will retry"
                    );
                }
            }
        }
    }

    /// One attempt of [`FunctionInstance::ensure_started`], for a caller that reports a
    /// failed start instead of retrying (an on-demand invocation answers with the init
    /// error, as Lambda does). Keeps the current environment if its process is alive
    /// (`Ok(None)`); otherwise waits the restart backoff if the last environment was lost,
    /// starts one and returns its init duration (`Ok(Some(init))`: a cold start).
    pub async fn start_if_needed(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<Duration>, StartAttemptError> {
        if let Some(environment) = &mut self.environment {
            match environment.process.exit_if_exited() {
                None => return Ok(None),
                Some(exit) => {
                    tracing::warn!(
                        instance = %self.label,
                        %exit,
                        "function process exited between invocations; restarting"
                    );
                    self.environment_lost();
                }
            }
        }
        if let Some(backoff) = &mut self.restart_backoff {
            let delay = tokio::time::sleep(backoff.next_delay());
            shutdown
                .run_until_cancelled(delay)
                .await
                .ok_or(StartAttemptError::ShutdownRequested)?;
        }
        // Not started at all when shutdown was already requested.
        let started = shutdown
            .run_until_cancelled(self.start())
            .await
            .ok_or(StartAttemptError::ShutdownRequested)?;
        match started {
            Ok(init) => Ok(Some(init)),
            Err(error) => {
                self.environment_lost();
                Err(StartAttemptError::Start(error))
            }
        }
    }

    /// Whether an environment was started and not lost since (its process may still have
    /// exited on its own: [`FunctionInstance::start_if_needed`] checks).
    pub fn is_warm(&self) -> bool {
        self.environment.is_some()
    }

    /// Invokes the function with `payload`, within its timeout. A timeout or crash kills the
    /// environment; call [`FunctionInstance::ensure_started`] before the next invocation.
    pub async fn invoke(&mut self, payload: Bytes) -> Result<Bytes, InvokeError> {
        self.invoke_with_request_id(new_request_id(), payload).await
    }

    /// [`FunctionInstance::invoke`] under a request id the caller chose.
    pub async fn invoke_with_request_id(
        &mut self,
        request_id: String,
        payload: Bytes,
    ) -> Result<Bytes, InvokeError> {
        let Some(environment) = &mut self.environment else {
            return Err(InvokeError::NotRunning);
        };
        let invocation = environment
            .runtime_api
            .invoke_with_request_id(request_id, payload);
        let outcome = tokio::select! {
            // A runtime that answers and then exits has still answered.
            biased;
            outcome = invocation => outcome,
            exit = environment.process.exited() => {
                Err(InvokeError::RuntimeExited(exit.to_string()))
            }
        };
        match &outcome {
            Ok(_) => self.restart_backoff = None,
            Err(error) if error.environment_lost() => {
                tracing::warn!(
                    instance = %self.label,
                    %error,
                    "execution environment lost; it will be restarted"
                );
                self.stop_environment().await;
                self.environment_lost();
            }
            Err(_) => {}
        }
        outcome
    }

    /// Stops the current environment's process, if any.
    pub async fn stop(&mut self) {
        self.stop_environment().await;
    }

    async fn stop_environment(&mut self) {
        if let Some(environment) = self.environment.take() {
            let exit = environment.process.stop(STOP_GRACE).await;
            tracing::debug!(instance = %self.label, %exit, "function process stopped");
        }
    }

    fn environment_lost(&mut self) {
        self.environment = None;
        self.restart_backoff
            .get_or_insert_with(|| Backoff::new(FIRST_RESTART_DELAY, MAX_RESTART_DELAY));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ScriptFunction;

    fn instance(script: &ScriptFunction) -> FunctionInstance {
        let function = Arc::new(script.function.clone());
        let label = function.name.clone();
        FunctionInstance::new(function, label, script.output.clone())
    }

    #[tokio::test]
    async fn a_process_that_exits_during_init_fails_to_start() {
        let script = ScriptFunction::new("f", "exit 3");
        let error = instance(&script).start().await.expect_err("cannot start");
        let StartError::ExitedDuringInit { exit, .. } = &error else {
            panic!("expected an exit during init, got {error}");
        };
        assert_eq!(exit.to_string(), "exit status: 3");
    }

    #[tokio::test]
    async fn a_process_that_never_calls_next_hits_the_init_limit() {
        let mut script = ScriptFunction::new("f", "exec sleep 5");
        script.function.init_timeout = Duration::from_millis(300);
        let error = instance(&script).start().await.expect_err("cannot start");
        assert!(matches!(error, StartError::InitTimeout { .. }), "{error}");
    }

    #[tokio::test]
    async fn invoking_without_an_environment_is_an_error() {
        let script = ScriptFunction::new("f", "exit 0");
        let outcome = instance(&script).invoke(Bytes::from_static(b"{}")).await;
        assert!(
            matches!(outcome, Err(InvokeError::NotRunning)),
            "{outcome:?}"
        );
    }

    /// The instance life cycle against a runtime that speaks the Runtime API
    /// (`tests/fixtures/fake-runtime.sh`, plain bash).
    #[tokio::test]
    async fn invocations_crashes_and_timeouts_replace_the_environment_as_lambda_does() {
        let mut script = ScriptFunction::fake_runtime("echo");
        script.function.timeout = Duration::from_secs(2);
        let shutdown = CancellationToken::new();
        let mut instance = instance(&script);
        instance.start().await.expect("fake runtime starts");

        let echoed = instance.invoke(Bytes::from_static(b"ping")).await;
        assert_eq!(echoed.expect("answered"), Bytes::from_static(b"echo:ping"));

        let crashed = instance.invoke(Bytes::from_static(b"crash")).await;
        assert!(
            matches!(&crashed, Err(InvokeError::RuntimeExited(exit)) if exit.contains('7')),
            "{crashed:?}"
        );
        assert!(matches!(
            instance.invoke(Bytes::from_static(b"ping")).await,
            Err(InvokeError::NotRunning)
        ));
        instance.ensure_started(&shutdown).await.expect("restarts");
        let echoed = instance.invoke(Bytes::from_static(b"again")).await;
        assert_eq!(echoed.expect("answered"), Bytes::from_static(b"echo:again"));

        let hung = instance.invoke(Bytes::from_static(b"hang")).await;
        assert!(matches!(hung, Err(InvokeError::Timeout(_))), "{hung:?}");
        instance.ensure_started(&shutdown).await.expect("restarts");
        let echoed = instance.invoke(Bytes::from_static(b"once-more")).await;
        assert_eq!(
            echoed.expect("answered"),
            Bytes::from_static(b"echo:once-more")
        );
        instance.stop().await;

        shutdown.cancel();
        let outcome = instance.ensure_started(&shutdown).await;
        assert_eq!(outcome, Err(ShutdownRequested));
    }
}
