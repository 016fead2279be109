//! Starts every selected function's event sources (SQS pollers, DynamoDB stream mappings, HTTP
//! server, on-demand pool behind the Invoke API, schedules), says when all are up, and on
//! shutdown lets in-flight invocations finish before stopping the function processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use axum::body::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aws::describe_error;
use crate::dynamodb_stream_event_source::checkpoint::CheckpointError;
use crate::dynamodb_stream_event_source::{CheckpointStore, StreamMapping, StreamMappingError};
use crate::http_front::{self, RouteTable};
use crate::http_function::{HttpFunction, HttpFunctionError};
use crate::instance::{FunctionInstance, STOP_GRACE, StartError};
use crate::invoke_api::{InvokeApi, InvokeApiError, InvokeTarget, InvokeTargets};
use crate::local_function::{LOCAL_ACCOUNT_ID, LocalFunction};
use crate::on_demand::OnDemandPool;
use crate::process::{LogSink, ProcessError};
use crate::schedule::{EmulatedSchedule, ScheduleExpression, TickPayload};
use crate::sqs_event_source::SqsPoller;
use crate::wiring::{self, LocalAws, SqsTrigger, StreamTrigger, Wiring};

/// The line scripts wait for.
pub const READY_LINE: &str = "local-lambda: ready";

pub struct LocalLambdaConfig {
    pub wiring: Wiring,
    pub aws: LocalAws,
    pub bin_dir: PathBuf,
    pub http_addr: SocketAddr,
    /// Where the Lambda Invoke API listens (loopback).
    pub invoke_addr: SocketAddr,
    /// Whether to run the functions' `rate(...)` schedules.
    pub schedules: bool,
    pub logs: LogSink,
    /// Function names or logical ids to run; empty runs every function.
    pub only: Vec<String>,
    /// Variables passed through from local-lambda's environment (`RUST_LOG`, ...).
    pub inherited_environment: Vec<(String, String)>,
    /// Where the stream mappings keep their checkpoints
    /// ([`crate::dynamodb_stream_event_source::checkpoint_file_beside`] the wiring file).
    pub stream_checkpoints: PathBuf,
    /// Directories of static files the HTTP front serves (what a CDN serves in AWS).
    pub assets: Vec<crate::cli::StaticAssets>,
}

/// The AWS clients of the event sources: SQS (queues, on-failure destinations) and DynamoDB
/// Streams.
#[derive(Debug, Clone)]
pub struct EventSourceClients {
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb_streams: aws_sdk_dynamodbstreams::Client,
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
    #[error("{function}: a stream trigger cannot start")]
    StreamMapping {
        function: String,
        source: StreamMappingError,
    },
    #[error(transparent)]
    Checkpoints(#[from] CheckpointError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    HttpFunction(#[from] HttpFunctionError),
    #[error("cannot serve the HTTP API on {address}: {source}")]
    HttpFront {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    InvokeApi(#[from] InvokeApiError),
    #[error(transparent)]
    Output(#[from] ProcessError),
    #[error("a function task stopped unexpectedly: {0}")]
    TaskEnded(String),
}

/// Runs until `shutdown` is requested. Prints one line per function when it is up and
/// [`READY_LINE`] once all are.
pub async fn run(
    config: LocalLambdaConfig,
    clients: EventSourceClients,
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

    // Bound first: a taken address stops local-lambda before any function starts.
    let invoke_api = InvokeApi::bind(config.invoke_addr).await?;

    let mut tasks = JoinSet::new();
    let started = start_functions(
        &config,
        &functions,
        &clients,
        &invoke_api,
        &shutdown,
        &mut tasks,
    );
    let targets = tokio::select! {
        targets = started => targets?,
        // Dropping the tasks kills whatever had started.
        () = shutdown.cancelled() => return Ok(()),
    };
    tasks.spawn(invoke_api.serve(Arc::new(targets), shutdown.clone()));
    println!("{READY_LINE}");

    let drain_limit = functions
        .iter()
        .map(|function| function.timeout())
        .max()
        .unwrap_or_default()
        + STOP_GRACE
        + Duration::from_secs(1);
    tokio::select! {
        // Every task ends soon after shutdown is requested: that is not a task failing.
        biased;
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

/// Starts the selected functions and returns what the Invoke API can reach: every function
/// of the wiring, the ones left out as not started.
async fn start_functions(
    config: &LocalLambdaConfig,
    functions: &[&wiring::Function],
    clients: &EventSourceClients,
    invoke_api: &InvokeApi,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<InvokeTargets, LocalLambdaError> {
    let mut targets = InvokeTargets::new(config.wiring.region.clone());
    // Read only when a stream is to be read: a damaged file stops nothing else.
    let checkpoints = if functions.iter().any(|f| !f.stream_triggers.is_empty()) {
        Some(Arc::new(CheckpointStore::open(
            config.stream_checkpoints.clone(),
        )?))
    } else {
        None
    };
    for function in &config.wiring.functions {
        if !functions
            .iter()
            .any(|selected| selected.name == function.name)
        {
            targets.add(
                &function.name,
                &function.logical_id,
                InvokeTarget::NotStarted,
            );
        }
    }
    // One function with routes serves the HTTP address itself; several sit behind a front
    // that routes each request to its function, as one API Gateway HTTP API does.
    let behind_front = functions.iter().filter(|f| f.serves_http()).count() > 1;
    let mut routes = RouteTable::default();
    for function in functions {
        let local = Arc::new(LocalFunction::new(
            function,
            &config.bin_dir,
            &config.aws,
            &config.inherited_environment,
        ));
        for trigger in &function.sqs_triggers {
            start_pollers(
                config,
                function,
                trigger,
                &local,
                &clients.sqs,
                shutdown,
                tasks,
            )
            .await?;
        }
        if let Some(checkpoints) = &checkpoints {
            for trigger in &function.stream_triggers {
                let mapping = StreamMapping::start(
                    clients.dynamodb_streams.clone(),
                    clients.sqs.clone(),
                    Arc::clone(checkpoints),
                    trigger.clone(),
                    Arc::clone(&local),
                    config.logs.clone(),
                    config.wiring.region.clone(),
                    shutdown.clone(),
                )
                .await
                .map_err(|source| LocalLambdaError::StreamMapping {
                    function: function.name.clone(),
                    source,
                })?;
                println!("{}", stream_summary(function, trigger, &mapping));
                tasks.spawn(mapping.run());
            }
        }
        let target = if function.serves_http() {
            let output = config.logs.for_instance(&function.name, &function.name)?;
            let address = if behind_front {
                free_loopback_port()?
            } else {
                config.http_addr
            };
            let server = HttpFunction::start(Arc::clone(&local), address, output).await?;
            println!("{}: http://{}", function.name, server.address());
            let address = server.address();
            for route in &function.http_routes {
                routes.add(route, address);
            }
            tasks.spawn(server.supervise(shutdown.clone()));
            InvokeTarget::HttpServer(address)
        } else {
            // Separate from the pollers' instances, and started only when first invoked.
            let pool = Arc::new(OnDemandPool::new(
                Arc::clone(&local),
                &config.logs,
                shutdown.clone(),
            )?);
            println!(
                "{}: invoke on {}",
                function.name,
                invoke_api.invocations_url(&function.name)
            );
            tasks.spawn({
                let pool = Arc::clone(&pool);
                let shutdown = shutdown.clone();
                async move {
                    shutdown.cancelled().await;
                    pool.drain().await;
                }
            });
            InvokeTarget::OnDemand(pool)
        };
        start_schedules(config, function, &target, shutdown, tasks);
        targets.add(&function.name, &function.logical_id, target);
    }
    if behind_front {
        let listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| LocalLambdaError::HttpFront {
                address: config.http_addr,
                source,
            })?;
        println!(
            "HTTP API: http://{} (routes to the functions above)",
            config.http_addr
        );
        let shutdown = shutdown.clone();
        let assets = config.assets.clone();
        for served in &assets {
            println!(
                "HTTP API: http://{}{}/ serves {}",
                config.http_addr,
                served.prefix,
                served.dir.display()
            );
        }
        tasks.spawn(async move {
            if let Err(error) = http_front::serve(listener, routes, &assets, shutdown).await {
                tracing::error!(%error, "the HTTP front stopped");
            }
        });
    }
    Ok(targets)
}

/// A loopback address no one listens on now, for a function behind the HTTP front.
fn free_loopback_port() -> Result<SocketAddr, LocalLambdaError> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|source| LocalLambdaError::HttpFront {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
    Ok(probe)
}

/// The pollers of one SQS trigger, each with its own instance, started now so a failing
/// function shows at start-up.
async fn start_pollers(
    config: &LocalLambdaConfig,
    function: &wiring::Function,
    trigger: &SqsTrigger,
    local: &Arc<LocalFunction>,
    sqs: &aws_sdk_sqs::Client,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(), LocalLambdaError> {
    check_queue(sqs, function, trigger).await?;
    let pollers = trigger.pollers();
    for number in 1..=pollers {
        let label = if pollers == 1 {
            function.name.clone()
        } else {
            format!("{}#{number}", function.name)
        };
        let output = config.logs.for_instance(&function.name, &label)?;
        let mut instance = FunctionInstance::new(Arc::clone(local), label, output);
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
    Ok(())
}

/// The start-up line of a stream mapping.
fn stream_summary<S, D>(
    function: &wiring::Function,
    trigger: &StreamTrigger,
    mapping: &StreamMapping<S, D>,
) -> String {
    let retries = match trigger.retry_limit() {
        Some(limit) => format!("{limit} retries"),
        None => "retries until expiry".to_owned(),
    };
    format!(
        "{}: {} poller{} on {}'s stream ({} shard{}; batch {}, window {} s, from {}, {} \
         filter{}, {retries}{}{})",
        function.name,
        mapping.pollers(),
        if mapping.pollers() == 1 { "" } else { "s" },
        trigger.table,
        mapping.shard_count(),
        if mapping.shard_count() == 1 { "" } else { "s" },
        trigger.batch_size,
        trigger.maximum_batching_window_seconds,
        trigger.starting_position,
        trigger.filters.len(),
        if trigger.filters.len() == 1 { "" } else { "s" },
        if trigger.bisect_batch_on_function_error {
            ", bisect"
        } else {
            ""
        },
        if trigger.on_failure_queue_url.is_some() {
            ", on-failure queue"
        } else {
            ""
        },
    )
}

/// One line per schedule of the function; a task per schedule that is emulated: an enabled
/// `rate(...)` rule of an invocable function, unless `--no-schedules`.
fn start_schedules(
    config: &LocalLambdaConfig,
    function: &wiring::Function,
    target: &InvokeTarget,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    for schedule in &function.schedules {
        let heading = format!(
            "{}: schedule {}, {}",
            function.name, schedule.rule, schedule.expression
        );
        let rate = match schedule.expression() {
            Ok(ScheduleExpression::Rate(rate)) => rate,
            Ok(ScheduleExpression::Cron(_)) => {
                println!("{heading}: not emulated (cron expressions are not)");
                continue;
            }
            // The wiring was checked when loaded.
            Err(error) => {
                println!("{heading}: not emulated ({error})");
                continue;
            }
        };
        if !schedule.enabled {
            println!("{heading}: not emulated (the rule is disabled)");
            continue;
        }
        if !config.schedules {
            println!("{heading}: not emulated (--no-schedules)");
            continue;
        }
        let InvokeTarget::OnDemand(pool) = target else {
            println!("{heading}: not emulated (the function is served as an HTTP server)");
            continue;
        };
        let payload = match &schedule.input {
            Some(input) => TickPayload::Input(Bytes::from(input.clone())),
            None => TickPayload::ScheduledEvent {
                // CloudFormation names a rule `<stack>-<logical id>-<random suffix>`; locally
                // there is no deployed rule, so no suffix.
                rule_arn: format!(
                    "arn:aws:events:{}:{LOCAL_ACCOUNT_ID}:rule/{}-{}",
                    config.wiring.region, config.wiring.stack_name, schedule.rule
                ),
                region: config.wiring.region.clone(),
                account: LOCAL_ACCOUNT_ID.to_owned(),
            },
        };
        println!(
            "{heading}: first invocation in {} s",
            rate.period().as_secs()
        );
        let emulated = EmulatedSchedule {
            rule: schedule.rule.clone(),
            rate,
            payload,
        };
        tasks.spawn(emulated.run(Arc::clone(pool), shutdown.clone()));
    }
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
    use crate::test_support::scratch_directory;

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
        assert_eq!(
            names(&[]).expect("all"),
            ["api", "payment-saga", "dlq-redrive", "event-relay"]
        );
        assert_eq!(names(&["payment-saga"]).expect("by name"), ["payment-saga"]);
        assert_eq!(names(&["ApiFunction"]).expect("by logical id"), ["api"]);
        let error = names(&["ledger"]).expect_err("unknown");
        assert!(
            error.to_string().contains("api, payment-saga, dlq-redrive"),
            "{error}"
        );
    }

    /// A free loopback port (free a moment ago: the test binds it again at once).
    fn free_port() -> SocketAddr {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address")
    }

    #[tokio::test]
    async fn a_function_without_routes_or_triggers_is_invoked_through_the_invoke_api() {
        let scratch = scratch_directory();
        let bin_dir = scratch.path().join("bin");
        std::fs::create_dir_all(&bin_dir).expect("bin dir");
        let fake_runtime =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-runtime.sh");
        std::os::unix::fs::symlink(fake_runtime, bin_dir.join("dlq-redrive"))
            .expect("the fake runtime plays dlq-redrive");
        let wiring = wiring();
        let aws = LocalAws::resolve(&wiring, |_| None);
        let clients = EventSourceClients {
            sqs: crate::aws::sqs_client(&aws).await,
            dynamodb_streams: crate::aws::dynamodb_streams_client(&aws).await,
        };
        let invoke_addr = free_port();
        let config = LocalLambdaConfig {
            wiring,
            aws,
            bin_dir,
            http_addr: free_port(),
            invoke_addr,
            schedules: true,
            logs: LogSink::Directory(scratch.path().join("logs")),
            // No SQS trigger, no HTTP server: nothing else to reach.
            only: vec!["DlqRedriveFunction".to_owned()],
            inherited_environment: vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())],
            stream_checkpoints: scratch.path().join("stream-checkpoints.json"),
            assets: Vec::new(),
        };
        let shutdown = CancellationToken::new();
        let local_lambda = tokio::spawn(run(config, clients, shutdown.clone()));

        let http = reqwest::Client::new();
        let invoke = |function: &str| {
            http.post(format!(
                "http://{invoke_addr}/2015-03-31/functions/{function}/invocations"
            ))
            .body(r#"{"redrive":"all"}"#)
            .send()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let reply = loop {
            match invoke("DlqRedriveFunction").await {
                Ok(reply) => break reply,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "never ready: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        assert_eq!(reply.status(), 200);
        assert_eq!(
            reply.text().await.expect("body"),
            r#"echo:{"redrive":"all"}"#
        );
        let not_started = invoke("payment-saga").await.expect("answers");
        assert_eq!(not_started.status(), 404);

        shutdown.cancel();
        let stopped = local_lambda.await.expect("the supervisor task ends");
        assert!(stopped.is_ok(), "{stopped:?}");
        let log = std::fs::read_to_string(scratch.path().join("logs/dlq-redrive.log"))
            .expect("the function's log");
        assert!(
            log.contains(r#"dlq-redrive#invoke-1 | event: {"redrive":"all"}"#),
            "{log}"
        );
    }
}
