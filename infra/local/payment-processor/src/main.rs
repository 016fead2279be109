//! `payment-processor`: the fake payment processor for the local stack (see the library).

use std::io::IsTerminal;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use payment_processor::{FakeProcessor, router};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// A fake payment processor for the local stack and the tests (in-memory, forgets on exit).
///
/// Prints `payment-processor: listening on http://ADDR` once it accepts connections; stops on
/// SIGINT/SIGTERM. The API and the control endpoints (/_control) are described in the crate docs.
#[derive(Debug, Parser)]
#[command(name = "payment-processor")]
struct Options {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:4010")]
    addr: SocketAddr,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(error) = run(options.addr).await {
        eprintln!("payment-processor: {error:#}");
        std::process::exit(1);
    }
}

async fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr().context("no local address")?;
    // The line scripts wait for (infra/local/system.sh); stdout is line-buffered.
    println!("payment-processor: listening on http://{addr}");
    axum::serve(listener, router(FakeProcessor::new()))
        .with_graceful_shutdown(stop_signal())
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn stop_signal() {
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_address_defaults_and_can_be_given() {
        Options::command().debug_assert();
        let parse = |args: &[&str]| Options::try_parse_from(args).map(|options| options.addr);
        assert_eq!(
            parse(&["payment-processor"]).unwrap(),
            "127.0.0.1:4010".parse().unwrap()
        );
        assert_eq!(
            parse(&["p", "--addr", "127.0.0.1:0"]).unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse(&["p", "--addr=[::1]:9"]).unwrap(),
            "[::1]:9".parse().unwrap()
        );
        for bad in [
            &["p", "--addr"][..],
            &["p", "--addr", "localhost:1"],
            &["p", "--port", "1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
