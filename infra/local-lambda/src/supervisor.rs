//! Starts every selected function's event sources, says when all are up, and on shutdown
//! lets in-flight invocations finish before stopping the function processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aws::describe_error;
use crate::http_function::{HttpFunction, HttpFunctionError};
use crate::instance::{FunctionInstance, STOP_GRACE, StartError};
use crate::local_function::LocalFunction;
use crate::process::{LogSink, ProcessError};
use crate::sqs_event_source::SqsPoller;
use crate::wiring::{self, LocalAws, SqsTrigger, Wiring};

/// The line scripts wait for.
pub const READY_LINE: &str = "local-lambda: ready";

pub struct LocalLambdaConfig {
    pub wiring: Wiring,
    pub aws: LocalAws,
    pub bin_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub logs: LogSink,
    /// Function names or logical ids to run; empty runs every function.
    pub only: Vec<String>,
    /// Variables passed through from local-lambda's environment (`RUST_LOG`, ...).
    pub inherited_environment: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalLambdaError {
    #[error("no function {name:?} in the wiring (functions: {known})")]
    UnknownFunction { name: String, known: String },
    #[error(
        "{function}: binary {} not found (build it first: cargo build --bin {binary})",
        .path.display()
    )]
    MissingBinary {
        function: String,
        binary: String,
        path: PathBuf,
    },
    #[error(
        "{function}: queue {queue} is not reachable at {url}: {reason} (is the local stack up?)"
    )]
    QueueUnreachable {
        function: String,
        queue: String,
        url: String,
        reason: String,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    HttpFunction(#[from] HttpFunctionError),
    #[error(transparent)]
    Output(#[from] ProcessError),
    #[error("a function task stopped unexpectedly: {0}")]
    TaskEnded(String),
}

/// Runs until `shutdown` is requested. Prints one line per function when it is up and
/// [`READY_LINE`] once all are.
pub async fn run(
    config: LocalLambdaConfig,
    sqs: aws_sdk_sqs::Client,
    shutdown: CancellationToken,
) -> Result<(), LocalLambdaError> {
    let functions = select_functions(&config.wiring, &config.only)?;
    for function in &functions {
        let path = config.bin_dir.join(&function.binary);
        if !path.is_file() {
            return Err(LocalLambdaError::MissingBinary {
                function: function.name.clone(),
                binary: function.binary.clone(),
                path,
            });
        }
    }

    let mut tasks = JoinSet::new();
    tokio::select! {
        started = start_functions(&config, &functions, &sqs, &shutdown, &mut tasks) => started?,
        // Dropping the tasks kills whatever had started.
        () = shutdown.cancelled() => return Ok(()),
    }
    println!("{READY_LINE}");

    let drain_limit = functions
        .iter()
        .map(|function| function.timeout())
        .max()
        .unwrap_or_default()
        + STOP_GRACE
        + Duration::from_secs(1);
    tokio::select! {
        () = shutdown.cancelled() => {}
        ended = tasks.join_next() => {
            let reason = match ended {
                Some(Err(error)) => error.to_string(),
                Some(Ok(())) | None => "exited".to_owned(),
            };
            return Err(LocalLambdaError::TaskEnded(reason));
        }
    }
    tracing::info!(
        limit_s = drain_limit.as_secs(),
        "shutting down: letting in-flight invocations finish"
    );
    let drained = tokio::time::timeout(drain_limit, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight work did not finish in time; killing the functions");
        tasks.shutdown().await;
    }
    Ok(())
}

fn select_functions<'wiring>(
    wiring: &'wiring Wiring,
    only: &[String],
) -> Result<Vec<&'wiring wiring::Function>, LocalLambdaError> {
    for name in only {
        let known = wiring
            .functions
            .iter()
            .any(|function| &function.name == name || &function.logical_id == name);
        if !known {
            let names: Vec<&str> = wiring.functions.iter().map(|f| f.name.as_str()).collect();
            return Err(LocalLambdaError::UnknownFunction {
                name: name.clone(),
                known: names.join(", "),
            });
        }
    }
    Ok(wiring
        .functions
        .iter()
        .filter(|function| {
            only.is_empty()
                || only
                    .iter()
                    .any(|name| &function.name == name || &function.logical_id == name)
        })
        .collect())
}

async fn start_functions(
    config: &LocalLambdaConfig,
    functions: &[&wiring::Function],
    sqs: &aws_sdk_sqs::Client,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(), LocalLambdaError> {
    for function in functions {
        let local = Arc::new(LocalFunction::new(
            function,
            &config.bin_dir,
            &config.aws,
            &config.inherited_environment,
        ));
        for trigger in &function.sqs_triggers {
            check_queue(sqs, function, trigger).await?;
            let pollers = trigger.pollers();
            for number in 1..=pollers {
                let label = if pollers == 1 {
                    function.name.clone()
                } else {
                    format!("{}#{number}", function.name)
                };
                let output = config.logs.for_instance(&function.name, &label)?;
                let mut instance = FunctionInstance::new(Arc::clone(&local), label, output);
                instance.start().await?;
                let poller = SqsPoller::new(
                    sqs.clone(),
                    trigger.clone(),
                    config.wiring.region.clone(),
                    instance,
                );
                tasks.spawn(poller.run(shutdown.clone()));
            }
            println!(
                "{}: {pollers} poller{} on {} (batch {}, window {} s)",
                function.name,
                if pollers == 1 { "" } else { "s" },
                trigger.queue,
                trigger.batch_size,
                trigger.maximum_batching_window_seconds
            );
        }
        if !function.http_routes.is_empty() {
            let output = config.logs.for_instance(&function.name, &function.name)?;
            let server = HttpFunction::start(Arc::clone(&local), config.http_addr, output).await?;
            println!("{}: http://{}", function.name, server.address());
            tasks.spawn(server.supervise(shutdown.clone()));
        }
        if function.sqs_triggers.is_empty() && function.http_routes.is_empty() {
            println!(
                "{}: no HTTP routes or SQS triggers; not started",
                function.name
            );
        }
    }
    Ok(())
}

/// Fails fast when the queue is missing, and warns about a visibility timeout shorter than
/// the function's timeout (AWS refuses such a mapping; locally it means redeliveries while
/// an invocation still runs).
async fn check_queue(
    sqs: &aws_sdk_sqs::Client,
    function: &wiring::Function,
    trigger: &SqsTrigger,
) -> Result<(), LocalLambdaError> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&trigger.queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|error| LocalLambdaError::QueueUnreachable {
            function: function.name.clone(),
            queue: trigger.queue.clone(),
            url: trigger.queue_url.clone(),
            reason: describe_error(&error),
        })?;
    let visibility_timeout = attributes
        .attributes
        .as_ref()
        .and_then(|attributes| attributes.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|seconds| seconds.parse::<u64>().ok());
    if let Some(seconds) = visibility_timeout
        && seconds < function.timeout_seconds
    {
        tracing::warn!(
            queue = %trigger.queue,
            visibility_timeout_s = seconds,
            function = %function.name,
            function_timeout_s = function.timeout_seconds,
            "queue visibility timeout is shorter than the function timeout: \
             a slow batch can be delivered again while it runs"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn wiring() -> Wiring {
        Wiring::parse(
            include_str!("../tests/fixtures/wiring.json"),
            Path::new("wiring.json"),
        )
        .expect("fixture is valid")
    }

    #[test]
    fn only_selects_by_name_or_logical_id_and_rejects_unknown_names() {
        let wiring = wiring();
        let names = |only: &[&str]| -> Result<Vec<String>, LocalLambdaError> {
            let only: Vec<String> = only.iter().map(|name| (*name).to_owned()).collect();
            Ok(select_functions(&wiring, &only)?
                .into_iter()
                .map(|function| function.name.clone())
                .collect())
        };
        assert_eq!(names(&[]).expect("all"), ["api", "payment-saga"]);
        assert_eq!(names(&["payment-saga"]).expect("by name"), ["payment-saga"]);
        assert_eq!(names(&["ApiFunction"]).expect("by logical id"), ["api"]);
        let error = names(&["ledger"]).expect_err("unknown");
        assert!(error.to_string().contains("api, payment-saga"), "{error}");
    }
}
