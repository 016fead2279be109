//! What the tests that run a function need: a stand-in function binary (a shell script) in a
//! scratch directory that is deleted when the test ends, and the function running it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::local_function::LocalFunction;
use crate::process::{InstanceOutput, LogSink};
use crate::wiring::{self, LocalAws};

/// A directory deleted, with what is in it, when the returned value is dropped.
pub(crate) fn scratch_directory() -> TempDir {
    tempfile::Builder::new()
        .prefix("local-lambda-")
        .tempdir()
        .expect("scratch directory")
}

/// Writes `directory/bootstrap`, an executable `#!/bin/sh` script running `body`.
pub(crate) fn script(directory: &Path, body: &str) -> PathBuf {
    let path = directory.join("bootstrap");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make script executable");
    path
}

/// A function whose binary is a shell script, with its output going to a log file; both are
/// in a scratch directory that lives as long as this value, so keep it for the whole test.
pub(crate) struct ScriptFunction {
    /// Inherits only `PATH`; its AWS endpoint answers nothing; 5 s init limit.
    pub(crate) function: LocalFunction,
    pub(crate) output: InstanceOutput,
    /// Where `output` and the outputs of further instances go: [`ScriptFunction::log`].
    pub(crate) logs: LogSink,
    scratch: TempDir,
}

impl ScriptFunction {
    pub(crate) fn new(name: &str, body: &str) -> Self {
        let scratch = scratch_directory();
        script(scratch.path(), body);
        let definition: wiring::Function = serde_json::from_value(serde_json::json!({
            "logical_id": name, "name": name, "binary": "bootstrap"
        }))
        .expect("valid function");
        let aws = LocalAws {
            region: "us-east-1".to_owned(),
            endpoint_url: "http://127.0.0.1:1".to_owned(),
            dynamodb_endpoint_url: None,
            access_key_id: "test".to_owned(),
            secret_access_key: "test".to_owned(),
        };
        let path = [("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
        let mut function = LocalFunction::new(&definition, scratch.path(), &aws, &path);
        function.init_timeout = Duration::from_secs(5);
        // Into a file, so the function's lines do not interleave with the test report.
        let logs = LogSink::Directory(scratch.path().join("logs"));
        let output = logs.for_instance(name, name).expect("log file opens");
        ScriptFunction {
            function,
            output,
            logs,
            scratch,
        }
    }

    /// A function running `tests/fixtures/fake-runtime.sh`, a Runtime API client in bash.
    pub(crate) fn fake_runtime(name: &str) -> Self {
        let fake_runtime =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-runtime.sh");
        Self::new(name, &format!("exec '{}'", fake_runtime.display()))
    }

    /// What the function's instances have written so far.
    pub(crate) fn log(&self) -> String {
        let path = self
            .scratch
            .path()
            .join("logs")
            .join(format!("{}.log", self.function.name));
        std::fs::read_to_string(path).unwrap_or_default()
    }
}
