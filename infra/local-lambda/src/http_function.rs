//! A function with HTTP routes, served locally by the function binary itself: started with
//! `PAYSAGA_LOCAL_HTTP_ADDR`, it serves its router as a plain HTTP server instead of talking
//! to a Runtime API. local-lambda waits until it accepts connections and restarts it if it
//! exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::backoff::Backoff;
use crate::instance::STOP_GRACE;
use crate::local_function::LocalFunction;
use crate::process::{FunctionProcess, InstanceOutput, ProcessError, ProcessExit};
use crate::shutdown::Shutdown;

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
    pub async fn supervise(mut self, shutdown: Shutdown) {
        let mut restart_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            let exit = tokio::select! {
                exit = self.process.exited() => exit,
                () = shutdown.requested() => break,
            };
            tracing::warn!(
                function = %self.function.name,
                %exit,
                "HTTP function exited; restarting"
            );
            loop {
                if shutdown.delay(restart_backoff.next_delay()).await.is_err() {
                    return;
                }
                let restarted = tokio::select! {
                    restarted = self.respawn() => restarted,
                    () = shutdown.requested() => return,
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
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::process::LogSink;
    use crate::wiring::{self, LocalAws};

    fn function_running(test: &str, script_body: &str) -> (Arc<LocalFunction>, PathBuf) {
        let directory =
            std::env::temp_dir().join(format!("local-lambda-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("scratch directory");
        let program = directory.join("api");
        std::fs::write(&program, format!("#!/bin/sh\n{script_body}\n")).expect("write script");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .expect("make script executable");
        let definition: wiring::Function = serde_json::from_value(serde_json::json!({
            "logical_id": "ApiFunction", "name": "api", "binary": "api",
            "http_routes": [{"method": "GET", "path": "/"}]
        }))
        .expect("valid function");
        let aws = LocalAws {
            region: "us-east-1".to_owned(),
            endpoint_url: "http://127.0.0.1:1".to_owned(),
            dynamodb_endpoint_url: None,
            access_key_id: "test".to_owned(),
            secret_access_key: "test".to_owned(),
        };
        let mut function = LocalFunction::new(&definition, &directory, &aws, &[]);
        function.init_timeout = Duration::from_secs(5);
        (Arc::new(function), directory)
    }

    fn output() -> InstanceOutput {
        LogSink::Terminal
            .for_instance("api", "api")
            .expect("terminal output")
    }

    #[tokio::test]
    async fn an_address_already_taken_is_reported_before_starting() {
        let (function, directory) = function_running("http-in-use", "exit 0");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = taken.local_addr().expect("address");
        let error = HttpFunction::start(function, address, output())
            .await
            .err()
            .expect("address is taken");
        assert!(
            matches!(error, HttpFunctionError::AddressInUse { .. }),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(Path::new(&directory));
    }

    #[tokio::test]
    async fn a_server_that_exits_before_listening_fails_to_start() {
        let (function, directory) = function_running("http-exit", "exit 4");
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = free.local_addr().expect("address");
        drop(free);
        let error = HttpFunction::start(function, address, output())
            .await
            .err()
            .expect("server exits");
        let HttpFunctionError::ExitedDuringStart { exit, .. } = &error else {
            panic!("expected an exit during start, got {error}");
        };
        assert_eq!(exit.to_string(), "exit status: 4");
        let _ = std::fs::remove_dir_all(Path::new(&directory));
    }
}
