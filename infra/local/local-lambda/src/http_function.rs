//! A function with HTTP routes, served locally by the function binary itself: started with
//! `PAYSAGA_LOCAL_HTTP_ADDR`, it serves its router as a plain HTTP server instead of talking
//! to a Runtime API. local-lambda waits until it accepts connections and restarts it if it
//! exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::instance::STOP_GRACE;
use crate::local_function::LocalFunction;
use crate::process::{FunctionProcess, InstanceOutput, ProcessError, ProcessExit};

/// How often to try connecting while the server starts.
const ACCEPT_POLL_INTERVAL: Duration = Duration::from_millis(25);

#[derive(Debug, thiserror::Error)]
pub enum HttpFunctionError {
    #[error("{address} is already in use; pick another with --http-addr")]
    AddressInUse {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{function} exited before accepting connections on {address} ({exit})")]
    ExitedDuringStart {
        function: String,
        address: SocketAddr,
        exit: ProcessExit,
    },
    #[error("{function} did not accept connections on {address} within {} s", .limit.as_secs())]
    StartTimeout {
        function: String,
        address: SocketAddr,
        limit: Duration,
    },
}

pub struct HttpFunction {
    function: Arc<LocalFunction>,
    address: SocketAddr,
    output: InstanceOutput,
    process: FunctionProcess,
}

impl HttpFunction {
    /// Starts the function's server on `address` and waits until it accepts connections.
    pub async fn start(
        function: Arc<LocalFunction>,
        address: SocketAddr,
        output: InstanceOutput,
    ) -> Result<Self, HttpFunctionError> {
        // Something else listening there would pass the readiness check below.
        std::net::TcpListener::bind(address)
            .map_err(|source| HttpFunctionError::AddressInUse { address, source })?;
        let process = spawn_and_wait_until_accepting(&function, address, &output).await?;
        Ok(HttpFunction {
            function,
            address,
            output,
            process,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Restarts the server (with backoff) whenever it exits, until shutdown; then stops it.
    pub async fn supervise(mut self, shutdown: CancellationToken) {
        let mut restart_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            let Some(exit) = shutdown.run_until_cancelled(self.process.exited()).await else {
                break;
            };
            tracing::warn!(
                function = %self.function.name,
                %exit,
                "HTTP function exited; restarting"
            );
            loop {
                let delay = tokio::time::sleep(restart_backoff.next_delay());
                if shutdown.run_until_cancelled(delay).await.is_none() {
                    return;
                }
                let Some(restarted) = shutdown.run_until_cancelled(self.respawn()).await else {
                    return;
                };
                match restarted {
                    Ok(process) => {
                        self.process = process;
                        restart_backoff.reset();
                        tracing::info!(
                            function = %self.function.name,
                            address = %self.address,
                            "HTTP function restarted"
                        );
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "HTTP function failed to restart; will retry")
                    }
                }
            }
        }
        let exit = self.process.stop(STOP_GRACE).await;
        tracing::debug!(function = %self.function.name, %exit, "HTTP function stopped");
    }

    async fn respawn(&self) -> Result<FunctionProcess, HttpFunctionError> {
        spawn_and_wait_until_accepting(&self.function, self.address, &self.output).await
    }
}

async fn spawn_and_wait_until_accepting(
    function: &LocalFunction,
    address: SocketAddr,
    output: &InstanceOutput,
) -> Result<FunctionProcess, HttpFunctionError> {
    let environment = function.http_environment(address);
    let mut process = FunctionProcess::spawn(&function.program, &environment, output)?;
    let deadline = Instant::now() + function.init_timeout;
    loop {
        if TcpStream::connect(address).await.is_ok() {
            return Ok(process);
        }
        if Instant::now() >= deadline {
            return Err(HttpFunctionError::StartTimeout {
                function: function.name.clone(),
                address,
                limit: function.init_timeout,
            });
        }
        tokio::select! {
            exit = process.exited() => {
                return Err(HttpFunctionError::ExitedDuringStart {
                    function: function.name.clone(),
                    address,
                    exit,
                });
            }
            () = tokio::time::sleep(ACCEPT_POLL_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ScriptFunction;

    async fn start(api: &ScriptFunction, address: SocketAddr) -> HttpFunctionError {
        let function = Arc::new(api.function.clone());
        HttpFunction::start(function, address, api.output.clone())
            .await
            .err()
            .expect("the server cannot start")
    }

    #[tokio::test]
    async fn an_address_already_taken_is_reported_before_starting() {
        let api = ScriptFunction::new("api", "exit 0");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let error = start(&api, taken.local_addr().expect("address")).await;
        assert!(
            matches!(error, HttpFunctionError::AddressInUse { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_server_that_exits_before_listening_fails_to_start() {
        let api = ScriptFunction::new("api", "exit 4");
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = free.local_addr().expect("address");
        drop(free);
        let error = start(&api, address).await;
        let HttpFunctionError::ExitedDuringStart { exit, .. } = &error else {
            panic!("expected an exit during start, got {error}");
        };
        assert_eq!(exit.to_string(), "exit status: 4");
    }
}
