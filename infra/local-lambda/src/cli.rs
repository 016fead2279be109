//! Command line: a handful of flags, parsed without a framework.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const USAGE: &str = "\
Plays AWS Lambda and the SQS event source mapping locally, wired by .local/wiring.json.

Usage: local-lambda [OPTIONS]

Options:
  --wiring PATH      wiring file (default: $PAYSAGA_WIRING, else .local/wiring.json)
  --bin-dir DIR      where the function binaries are (default: target/debug)
  --http-addr ADDR   address HTTP functions serve on (default: 127.0.0.1:3000)
  --log-dir DIR      write each function's output to DIR/<function>.log instead of the terminal
  --only NAME...     run only these functions (names or logical ids; repeat or comma-separate)
  -h, --help         print this help

Prints `local-lambda: ready` once every function is up; stops cleanly on SIGINT/SIGTERM.
";

const DEFAULT_BIN_DIR: &str = "target/debug";
const DEFAULT_HTTP_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 3000);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `None`: take `PAYSAGA_WIRING` or the default path.
    pub wiring: Option<PathBuf>,
    pub bin_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub log_dir: Option<PathBuf>,
    /// Empty: every function.
    pub only: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            wiring: None,
            bin_dir: PathBuf::from(DEFAULT_BIN_DIR),
            http_addr: DEFAULT_HTTP_ADDR,
            log_dir: None,
            only: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("unknown argument {0:?}")]
    UnknownArgument(String),
    #[error("--http-addr {0:?} is not an IP:port address")]
    InvalidHttpAddr(String),
    #[error("arguments must be UTF-8")]
    NotUtf8,
}

/// Parses the arguments after the program name.
pub fn parse(arguments: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    let arguments: Vec<String> = arguments
        .into_iter()
        .map(|argument| argument.into_string().map_err(|_| CliError::NotUtf8))
        .collect::<Result<_, _>>()?;
    let mut options = Options::default();
    let mut remaining = arguments.into_iter().peekable();
    while let Some(argument) = remaining.next() {
        let (flag, inline_value) = match argument.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (argument, None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| remaining.next_if(|next| !next.starts_with("--")))
                .ok_or_else(|| CliError::MissingValue(flag.clone()))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--wiring" => options.wiring = Some(PathBuf::from(value()?)),
            "--bin-dir" => options.bin_dir = PathBuf::from(value()?),
            "--log-dir" => options.log_dir = Some(PathBuf::from(value()?)),
            "--http-addr" => {
                let text = value()?;
                options.http_addr = text.parse().map_err(|_| CliError::InvalidHttpAddr(text))?;
            }
            "--only" => {
                let mut names = vec![value()?];
                if inline_value.is_none() {
                    while let Some(name) = remaining.next_if(|next| !next.starts_with('-')) {
                        names.push(name);
                    }
                }
                options.only.extend(
                    names
                        .iter()
                        .flat_map(|name| name.split(','))
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned),
                );
            }
            _ => return Err(CliError::UnknownArgument(flag)),
        }
    }
    Ok(Command::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(arguments: &[&str]) -> Result<Options, CliError> {
        match parse(arguments.iter().map(OsString::from))? {
            Command::Run(options) => Ok(options),
            Command::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        assert_eq!(run(&[]), Ok(Options::default()));
        assert_eq!(Options::default().http_addr.to_string(), "127.0.0.1:3000");
    }

    #[test]
    fn every_flag_in_both_spellings() {
        let options = run(&[
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
        assert_eq!(options.wiring, Some(PathBuf::from("/tmp/w.json")));
        assert_eq!(options.bin_dir, PathBuf::from("target/release"));
        assert_eq!(options.http_addr.to_string(), "127.0.0.1:3100");
        assert_eq!(options.log_dir, Some(PathBuf::from(".local/logs")));
        assert_eq!(options.only, ["api", "payment-saga", "audit", "ledger"]);
    }

    #[test]
    fn mistakes_are_reported() {
        assert_eq!(
            run(&["--wiring"]),
            Err(CliError::MissingValue("--wiring".to_owned()))
        );
        assert_eq!(
            run(&["--bin-dir", "--only", "api"]),
            Err(CliError::MissingValue("--bin-dir".to_owned()))
        );
        assert_eq!(
            run(&["--http-addr", "localhost"]),
            Err(CliError::InvalidHttpAddr("localhost".to_owned()))
        );
        assert_eq!(
            run(&["--verbose"]),
            Err(CliError::UnknownArgument("--verbose".to_owned()))
        );
        assert_eq!(parse([OsString::from("-h")]), Ok(Command::Help));
    }
}
