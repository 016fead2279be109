//! `local-lambda`: see the library's documentation and `local-lambda --help`.

use std::io::IsTerminal;

use clap::Parser;
use local_lambda::cli;
use local_lambda::dynamodb_stream_event_source::checkpoint_file_beside;
use local_lambda::local_function::inherited_environment;
use local_lambda::process::LogSink;
use local_lambda::supervisor::{self, EventSourceClients, LocalLambdaConfig};
use local_lambda::wiring::{LocalAws, Wiring};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

// Current-thread: function processes are spawned from this one thread, which lives as long as
// the process, so the kernel's parent-death signal fires only when local-lambda itself exits.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = cli::Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(error) = run(options).await {
        // The chain on one line; no backtrace (RUST_BACKTRACE is often set for the functions).
        eprintln!("local-lambda: {error:#}");
        std::process::exit(1);
    }
}

async fn run(options: cli::Options) -> anyhow::Result<()> {
    let wiring = Wiring::load(&options.wiring)?;
    if let Some(cli::Query::Wiring { fact }) = &options.query {
        print!("{}", fact.answer(&wiring)?);
        return Ok(());
    }
    let aws = LocalAws::resolve(&wiring, |name| std::env::var(name).ok());
    let clients = EventSourceClients {
        sqs: local_lambda::aws::sqs_client(&aws).await,
        dynamodb_streams: local_lambda::aws::dynamodb_streams_client(&aws).await,
    };
    let stream_checkpoints = checkpoint_file_beside(&options.wiring);

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signals(shutdown.clone()));
    let config = LocalLambdaConfig {
        wiring,
        aws,
        bin_dir: options.bin_dir,
        http_addr: options.http_addr,
        invoke_addr: options.invoke_addr,
        schedules: !options.no_schedules,
        logs: options
            .log_dir
            .map_or(LogSink::Terminal, LogSink::Directory),
        only: options.only,
        inherited_environment: inherited_environment(|name| std::env::var(name).ok()),
        stream_checkpoints,
        assets: options.assets,
    };
    supervisor::run(config, clients, shutdown).await?;
    Ok(())
}

/// First SIGINT/SIGTERM: drain and stop. Second: stop at once (the children die with us).
async fn stop_on_signals(shutdown: CancellationToken) {
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop local-lambda with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    for signals_seen in 1.. {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if signals_seen == 1 {
            tracing::info!("stopping (signal again to stop at once)");
            shutdown.cancel();
        } else {
            tracing::warn!("stopping at once");
            std::process::exit(130);
        }
    }
}
