//! One function process behind a Runtime API served here: spawned, timed, invoked, measured,
//! killed, with everything it printed kept.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use local_lambda::runtime_api::{FunctionIdentity, RuntimeApi};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Lambda's limit on the init phase.
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// A binary and the environment Lambda would give it (without `AWS_LAMBDA_RUNTIME_API`).
#[derive(Debug, Clone)]
pub struct Binary {
    pub name: String,
    pub program: PathBuf,
    pub environment: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Binary {
    /// The same binary with the environment variable `name` set to `value` (where it has it).
    pub fn with_env(&self, name: &str, value: &str) -> Binary {
        let mut binary = self.clone();
        for (variable, current) in &mut binary.environment {
            if variable == name {
                *current = value.to_owned();
            }
        }
        binary
    }

    /// The same binary publishing on the event bus `bus`.
    pub fn on_bus(&self, bus: &str) -> Binary {
        let mut binary = self.clone();
        for (name, value) in &mut binary.environment {
            if name == "EVENT_BUS_NAME" {
                *value = bus.to_owned();
            }
        }
        binary
    }
}

/// A started function process.
pub struct Instance {
    runtime_api: RuntimeApi,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    spawned_at: Instant,
    /// Spawn to the first `/next`.
    pub init: Duration,
}

/// One invocation, timed.
pub struct Invocation {
    pub request_id: String,
    pub response: Value,
    /// Payload sent to response received.
    pub duration: Duration,
    /// Spawn of the process to response received.
    pub since_spawn: Duration,
}

impl Instance {
    /// Spawns `binary` and waits for the end of its init phase.
    pub async fn start(binary: &Binary) -> anyhow::Result<Self> {
        let runtime_api = RuntimeApi::start(FunctionIdentity {
            arn: format!(
                "arn:aws:lambda:us-east-1:000000000000:function:{}",
                binary.name
            ),
            timeout: binary.timeout,
        })
        .await?;
        let mut command = Command::new(&binary.program);
        command
            .env_clear()
            .envs(binary.environment.iter().map(|(name, value)| (name, value)))
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.address().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.program.display()))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(collect(stdout, Arc::clone(&output)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(collect(stderr, Arc::clone(&output)));
        }
        let first_next = tokio::select! {
            first_next = runtime_api.initialised() => first_next,
            status = child.wait() => bail!("{} exited during init: {status:?}", binary.name),
            () = tokio::time::sleep(INIT_LIMIT) => bail!("{} did not call /next within {INIT_LIMIT:?}", binary.name),
        };
        let first_next = first_next
            .map_err(|report| anyhow::anyhow!("{} failed its init: {report}", binary.name))?;
        Ok(Self {
            runtime_api,
            child,
            output,
            readers,
            init: first_next.saturating_duration_since(spawned_at),
            spawned_at,
        })
    }

    /// Sends `payload`; the function's response, parsed.
    pub async fn invoke(&self, payload: &Value) -> anyhow::Result<Invocation> {
        let request_id = local_lambda::runtime_api::new_request_id();
        let sent_at = Instant::now();
        let response = self
            .runtime_api
            .invoke_with_request_id(request_id.clone(), serde_json::to_vec(payload)?.into())
            .await
            .map_err(|error| anyhow::anyhow!("invocation failed: {error}"))?;
        let duration = sent_at.elapsed();
        Ok(Invocation {
            request_id,
            response: serde_json::from_slice(&response).context("the response is not JSON")?,
            duration,
            since_spawn: self.spawned_at.elapsed(),
        })
    }

    /// The process's peak resident set (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("the process has exited")?;
        peak_rss_kib(&PathBuf::from(format!("/proc/{pid}/status")))
    }

    /// Kills the process; everything it printed, line by line.
    pub async fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill().await;
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        drop(self.runtime_api);
        let mut output = self
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *output)
    }
}

fn collect(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(line);
        }
    })
}

fn peak_rss_kib(status: &Path) -> anyhow::Result<u64> {
    let text =
        std::fs::read_to_string(status).with_context(|| format!("reading {}", status.display()))?;
    parse_vm_hwm(&text).with_context(|| format!("no VmHWM in {}", status.display()))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_from_proc_status() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  123456 kB\nVmHWM:\t    7340 kB\nVmRSS:\t    7000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(7_340));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}
