//! Function processes: a function's binary started the way Lambda starts a runtime, its
//! output forwarded line by line under a label, and its life tied to local-lambda's.
//!
//! A child never outlives local-lambda: it is killed when its handle is dropped, it runs in
//! its own process group (so a terminal's Ctrl-C reaches local-lambda alone, which then
//! drains and stops the children itself), and on Linux the kernel kills it if local-lambda
//! dies without cleaning up (`PR_SET_PDEATHSIG`). The kernel ties that signal to the thread
//! that spawned the child, which is why the binary runs a current-thread Tokio runtime.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open log file {path}")]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the functions' output goes: local-lambda's own stdout/stderr, or one file per
/// function in a directory.
#[derive(Debug, Clone)]
pub enum LogSink {
    Terminal,
    Directory(PathBuf),
}

impl LogSink {
    /// The output routing of one function instance: its lines are prefixed with `label`.
    pub fn for_instance(
        &self,
        function_name: &str,
        label: &str,
    ) -> Result<InstanceOutput, ProcessError> {
        let destination = match self {
            LogSink::Terminal => OutputDestination::Terminal,
            LogSink::Directory(directory) => {
                let path = directory.join(format!("{function_name}.log"));
                let file = std::fs::create_dir_all(directory)
                    .and_then(|()| OpenOptions::new().create(true).append(true).open(&path))
                    .map_err(|source| ProcessError::LogFile { path, source })?;
                OutputDestination::File(Arc::new(file))
            }
        };
        Ok(InstanceOutput {
            prefix: format!("{label} | ").into_bytes().into(),
            destination,
        })
    }
}

#[derive(Debug, Clone)]
enum OutputDestination {
    Terminal,
    /// Opened in append mode: each line is one `write`, so instances sharing it do not mix lines.
    File(Arc<File>),
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Where one instance's output goes, and under which label.
#[derive(Debug, Clone)]
pub struct InstanceOutput {
    prefix: Arc<[u8]>,
    destination: OutputDestination,
}

impl InstanceOutput {
    fn write_line(&self, stream: Stream, line: &[u8]) {
        let mut buffer = Vec::with_capacity(self.prefix.len() + line.len() + 1);
        buffer.extend_from_slice(&self.prefix);
        buffer.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            buffer.push(b'\n');
        }
        // A closed terminal or a full disk must not stop the function: the line is dropped.
        let _ = match (&self.destination, stream) {
            (OutputDestination::Terminal, Stream::Stdout) => {
                std::io::stdout().lock().write_all(&buffer)
            }
            (OutputDestination::Terminal, Stream::Stderr) => {
                std::io::stderr().lock().write_all(&buffer)
            }
            (OutputDestination::File(file), _) => (&**file).write_all(&buffer),
        };
    }

    fn forward(&self, stream: Stream, pipe: impl AsyncRead + Unpin + Send + 'static) {
        let output = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match lines.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => output.write_line(stream, &line),
                }
            }
        });
    }
}

/// How a function process ended, for logs and errors.
#[derive(Debug, Clone)]
pub struct ProcessExit(String);

impl fmt::Display for ProcessExit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl From<std::io::Result<ExitStatus>> for ProcessExit {
    fn from(status: std::io::Result<ExitStatus>) -> Self {
        match status {
            Ok(status) => ProcessExit(status.to_string()),
            Err(error) => ProcessExit(format!("unknown exit ({error})")),
        }
    }
}

/// A running function binary.
#[derive(Debug)]
pub struct FunctionProcess {
    child: Child,
}

impl FunctionProcess {
    pub fn spawn(
        program: &Path,
        environment: &[(String, String)],
        output: &InstanceOutput,
    ) -> Result<Self, ProcessError> {
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(environment.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: program.to_owned(),
            source,
        })?;
        if let Some(stdout) = child.stdout.take() {
            output.forward(Stream::Stdout, stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            output.forward(Stream::Stderr, stderr);
        }
        Ok(FunctionProcess { child })
    }

    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resolves when the process exits. Cancel-safe.
    pub async fn exited(&mut self) -> ProcessExit {
        self.child.wait().await.into()
    }

    /// The exit, if the process has already exited.
    pub fn exit_if_exited(&mut self) -> Option<ProcessExit> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(ProcessExit::from(Ok(status))),
            Err(error) => Some(ProcessExit::from(Err(error))),
        }
    }

    /// SIGTERM, then SIGKILL if the process is still there after `grace`.
    pub async fn stop(mut self, grace: Duration) -> ProcessExit {
        if let Some(exit) = self.exit_if_exited() {
            return exit;
        }
        if let Some(pid) = self
            .child
            .id()
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
        {
            // SAFETY: kill(2) has no memory-safety preconditions. The pid is our own child's,
            // not yet reaped (id() is None once it is), so it cannot name another process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            if let Ok(exit) = tokio::time::timeout(grace, self.child.wait()).await {
                return exit.into();
            }
        }
        // Already-exited children make start_kill fail harmlessly; wait() reports either way.
        let _ = self.child.start_kill();
        self.child.wait().await.into()
    }
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if std::os::unix::process::parent_id() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::test_support::{scratch_directory, script};

    async fn file_eventually_contains(path: &Path, expected: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if expected.iter().all(|line| text.contains(line)) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn output_goes_to_the_log_file_prefixed_and_the_environment_is_only_what_was_given() {
        let scratch = scratch_directory();
        let directory = scratch.path();
        let program = script(
            directory,
            "echo \"hello $GREETING home=$HOME\"; echo oops >&2",
        );
        let output = LogSink::Directory(directory.join("logs"))
            .for_instance("echo", "echo#1")
            .expect("log file opens");
        let environment = [("GREETING".to_owned(), "world".to_owned())];
        let mut process = FunctionProcess::spawn(&program, &environment, &output).expect("starts");
        let exit = process.exited().await;
        assert_eq!(exit.to_string(), "exit status: 0");
        let log = directory.join("logs/echo.log");
        let expected = ["echo#1 | hello world home=\n", "echo#1 | oops\n"];
        let text = file_eventually_contains(&log, &expected).await;
        for line in expected {
            assert!(text.contains(line), "{line:?} missing from {text:?}");
        }
    }

    #[tokio::test]
    async fn stop_kills_a_process_that_ignores_sigterm() {
        let scratch = scratch_directory();
        let directory = scratch.path();
        let program = script(
            directory,
            "trap '' TERM; echo trapped; while :; do sleep 0.05; done",
        );
        let output = LogSink::Directory(directory.to_owned())
            .for_instance("stubborn", "stubborn")
            .expect("log file opens");
        let environment = [("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
        let mut process = FunctionProcess::spawn(&program, &environment, &output).expect("starts");
        let log = directory.join("stubborn.log");
        let text = file_eventually_contains(&log, &["trapped"]).await;
        assert!(text.contains("trapped"), "{text:?}");
        assert!(process.exit_if_exited().is_none());
        let exit = process.stop(Duration::from_millis(200)).await;
        assert!(exit.to_string().contains("SIGKILL"), "{exit}");
    }
}
