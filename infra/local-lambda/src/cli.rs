//! Command line: the flags, their defaults and `--help`, declared with clap.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Plays AWS Lambda and the SQS event source mapping locally, wired by .local/wiring.json.
#[derive(Debug, Clone, PartialEq, Eq, clap::Parser)]
#[command(
    name = "local-lambda",
    after_help = "Prints `local-lambda: ready` once every function is up; \
                  stops cleanly on SIGINT/SIGTERM."
)]
pub struct Options {
    /// Wiring file
    #[arg(
        long,
        value_name = "PATH",
        env = "PAYSAGA_WIRING",
        default_value = ".local/wiring.json"
    )]
    pub wiring: PathBuf,
    /// Where the function binaries are
    #[arg(long, value_name = "DIR", default_value = "target/debug")]
    pub bin_dir: PathBuf,
    /// Address HTTP functions serve on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub http_addr: SocketAddr,
    /// Write each function's output to DIR/<function>.log instead of the terminal
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Run only these functions (names or logical ids; repeat or comma-separate)
    #[arg(long, value_name = "NAME", num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    use super::*;

    fn parse(arguments: &[&str]) -> Result<Options, ErrorKind> {
        Options::try_parse_from(std::iter::once("local-lambda").chain(arguments.iter().copied()))
            .map_err(|error| error.kind())
    }

    #[test]
    fn the_definition_is_consistent() {
        Options::command().debug_assert();
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        let options = parse(&[]).expect("no arguments are valid");
        assert_eq!(options.bin_dir, PathBuf::from("target/debug"));
        assert_eq!(options.http_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(options.log_dir, None);
        assert!(options.only.is_empty());
        // Whether PAYSAGA_WIRING is set depends on the caller's shell (.local/stack.env sets it).
        let wiring = Options::command()
            .get_arguments()
            .find(|argument| argument.get_id() == "wiring")
            .cloned()
            .expect("--wiring is defined");
        assert_eq!(
            wiring.get_env(),
            Some(std::ffi::OsStr::new("PAYSAGA_WIRING"))
        );
        assert_eq!(wiring.get_default_values(), [".local/wiring.json"]);
    }

    #[test]
    fn every_flag_in_both_spellings() {
        let options = parse(&[
            "--wiring",
            "/tmp/w.json",
            "--bin-dir=target/release",
            "--http-addr",
            "127.0.0.1:3100",
            "--log-dir=.local/logs",
            "--only",
            "api",
            "payment-saga",
            "--only=audit,ledger",
        ])
        .expect("valid arguments");
        assert_eq!(options.wiring, PathBuf::from("/tmp/w.json"));
        assert_eq!(options.bin_dir, PathBuf::from("target/release"));
        assert_eq!(options.http_addr.to_string(), "127.0.0.1:3100");
        assert_eq!(options.log_dir, Some(PathBuf::from(".local/logs")));
        assert_eq!(options.only, ["api", "payment-saga", "audit", "ledger"]);
    }

    #[test]
    fn mistakes_are_rejected() {
        assert_eq!(parse(&["--wiring"]), Err(ErrorKind::InvalidValue));
        assert_eq!(
            parse(&["--bin-dir", "--only", "api"]),
            Err(ErrorKind::InvalidValue)
        );
        assert_eq!(
            parse(&["--http-addr", "localhost"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(parse(&["--verbose"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(parse(&["-h"]), Err(ErrorKind::DisplayHelp));
    }
}
