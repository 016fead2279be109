//! `payment-processor`: the fake payment processor for the local stack (see the library).

use std::io::IsTerminal;
use std::net::SocketAddr;

use anyhow::Context;
use payment_processor::{FakeProcessor, router};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
A fake payment processor for the local stack and the tests (in-memory, forgets on exit).

Usage: payment-processor [--addr ADDR]

Options:
  --addr ADDR   address to listen on (default: 127.0.0.1:4010; port 0 picks a free one)
  -h, --help    print this help

Prints `payment-processor: listening on http://ADDR` once it accepts connections; stops on
SIGINT/SIGTERM. The API and the control endpoints (/_control) are described in the crate docs.
";

const DEFAULT_ADDR: &str = "127.0.0.1:4010";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<SocketAddr>, String> {
    let mut addr = DEFAULT_ADDR.to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => addr = args.next().ok_or("--addr needs a value")?,
            other => match other.strip_prefix("--addr=") {
                Some(value) => addr = value.to_owned(),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    addr.parse()
        .map(Some)
        .map_err(|_| format!("--addr {addr:?} is not an IP address and port"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = match parse_args(std::env::args().skip(1)) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            print!("{USAGE}");
            return;
        }
        Err(error) => {
            eprintln!("payment-processor: {error}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(error) = run(addr).await {
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
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<SocketAddr>, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn the_address_defaults_and_can_be_given() {
        assert_eq!(parse(&[]), Ok(Some(DEFAULT_ADDR.parse().unwrap())));
        assert_eq!(
            parse(&["--addr", "127.0.0.1:0"]),
            Ok(Some("127.0.0.1:0".parse().unwrap()))
        );
        assert_eq!(
            parse(&["--addr=[::1]:9"]),
            Ok(Some("[::1]:9".parse().unwrap()))
        );
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["--addr"]).is_err());
        assert!(parse(&["--addr", "localhost:1"]).is_err());
        assert!(parse(&["--port", "1"]).is_err());
    }
}
