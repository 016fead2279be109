//! Command line: the flags, their defaults and `--help`, declared with clap.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::wiring::{Wiring, WiringError};

/// Plays AWS Lambda locally (the Runtime API, the SQS and DynamoDB Streams event source
/// mappings, schedules and the Invoke API), wired by .local/wiring.json.
#[derive(Debug, Clone, PartialEq, Eq, clap::Parser)]
#[command(
    name = "local-lambda",
    after_help = "Functions with HTTP routes are served as HTTP servers on --http-addr; the \
                  others are invoked by their SQS and DynamoDB stream triggers, their \
                  schedules and the Lambda Invoke API on --invoke-addr (aws lambda invoke --endpoint-url \
                  http://127.0.0.1:9001 ..., cargo lambda invoke --invoke-port 9001 ...).\n\
                  Prints `local-lambda: ready` once every function is up; \
                  stops cleanly on SIGINT/SIGTERM."
)]
pub struct Options {
    /// Wiring file
    #[arg(
        long,
        value_name = "PATH",
        env = "PAYSAGA_WIRING",
        default_value = ".local/wiring.json",
        global = true
    )]
    pub wiring: PathBuf,
    /// Instead of running the functions, print what the wiring says and exit
    #[command(subcommand)]
    pub query: Option<Query>,
    /// Where the function binaries are
    #[arg(long, value_name = "DIR", default_value = "target/debug")]
    pub bin_dir: PathBuf,
    /// Address HTTP functions serve on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub http_addr: SocketAddr,
    /// Write each function's output to DIR/<function>.log instead of the terminal
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Address of the Lambda Invoke API (loopback only; with 127.0.0.1 or ::1 and a fixed
    /// port, the other loopback is served too)
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9001",
        value_parser = loopback_address
    )]
    pub invoke_addr: SocketAddr,
    /// Do not run the functions' schedules (rate expressions of EventBridge rules)
    #[arg(long)]
    pub no_schedules: bool,
    /// Run only these functions (names or logical ids; repeat or comma-separate)
    #[arg(long, value_name = "NAME", num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,
    /// Serve the files of DIR under the path PREFIX of the HTTP front, as a CDN would in AWS
    /// (GraphiQL's browser assets: the machine may have no internet); repeatable
    #[arg(long, value_name = "PREFIX=DIR", value_parser = static_assets)]
    pub assets: Vec<StaticAssets>,
}

/// A directory of static files and the path it is served under (`--assets /graphiql/assets=DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAssets {
    /// `/graphiql/assets`: starts with `/`, no trailing `/`.
    pub prefix: String,
    pub dir: PathBuf,
}

fn static_assets(text: &str) -> Result<StaticAssets, String> {
    let (prefix, dir) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not PREFIX=DIR"))?;
    let prefix = prefix.trim_end_matches('/');
    if !prefix.starts_with('/') || prefix.len() < 2 {
        return Err(format!(
            "the prefix {prefix:?} must be a path such as /assets"
        ));
    }
    Ok(StaticAssets {
        prefix: prefix.to_owned(),
        dir: PathBuf::from(dir),
    })
}

/// Questions about the wiring file, for the scripts and checks that need one of its facts:
/// they ask here rather than parse the file themselves, so [`Wiring`] is its one reader.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Query {
    /// Print one fact of the wiring file
    Wiring {
        #[command(subcommand)]
        fact: WiringFact,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum WiringFact {
    /// Every function's binary, one per line
    Binaries,
    /// The name of a table, by its logical id in the template
    Table { logical_id: String },
    /// Every value the functions give an environment variable, one per line, sorted, once each
    Variable { name: String },
    /// Every function's binary and environment, as one JSON object
    Environments,
}

impl WiringFact {
    /// What `local-lambda wiring <fact>` prints.
    pub fn answer(&self, wiring: &Wiring) -> Result<String, WiringError> {
        let lines = |values: Vec<&str>| values.iter().map(|value| format!("{value}\n")).collect();
        Ok(match self {
            Self::Binaries => lines(wiring.functions.iter().map(|f| f.binary.as_str()).collect()),
            Self::Table { logical_id } => lines(vec![wiring.table(logical_id)?]),
            Self::Variable { name } => {
                let values: BTreeSet<&str> = wiring
                    .functions
                    .iter()
                    .filter_map(|function| function.environment.get(name))
                    .map(String::as_str)
                    .collect();
                if values.is_empty() {
                    return Err(WiringError::NotWired(format!(
                        "{name} in any function's environment"
                    )));
                }
                lines(values.into_iter().collect())
            }
            Self::Environments => {
                let environments: BTreeMap<&str, &BTreeMap<String, String>> = wiring
                    .functions
                    .iter()
                    .map(|function| (function.binary.as_str(), &function.environment))
                    .collect();
                // Strings keyed by strings: serializing cannot fail.
                serde_json::to_string_pretty(&environments).unwrap_or_default() + "\n"
            }
        })
    }
}

/// The Invoke API runs any function for whoever asks, with no authentication: loopback only.
fn loopback_address(text: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = text
        .parse()
        .map_err(|error| format!("{error} (expected IP:PORT, e.g. 127.0.0.1:9001)"))?;
    if address.ip().is_loopback() {
        Ok(address)
    } else {
        Err(format!(
            "{address} is not a loopback address: the Invoke API has no authentication"
        ))
    }
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
        assert_eq!(options.invoke_addr.to_string(), "127.0.0.1:9001");
        assert!(!options.no_schedules);
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
            "--invoke-addr",
            "[::1]:9101",
            "--no-schedules",
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
        assert_eq!(options.invoke_addr.to_string(), "[::1]:9101");
        assert!(options.no_schedules);
        assert_eq!(options.only, ["api", "payment-saga", "audit", "ledger"]);
    }

    /// The fixture the wiring module's tests read.
    fn sample() -> Wiring {
        let text = include_str!("../tests/fixtures/wiring.json");
        Wiring::parse(text, std::path::Path::new("fixtures/wiring.json")).expect("a valid fixture")
    }

    fn answer(arguments: &[&str]) -> Result<String, WiringError> {
        let options = parse(arguments).expect("a valid query");
        assert_eq!(
            options.wiring,
            PathBuf::from("/tmp/w.json"),
            "--wiring after the query"
        );
        match options.query {
            Some(Query::Wiring { fact }) => fact.answer(&sample()),
            None => panic!("{arguments:?} is a query"),
        }
    }

    #[test]
    fn the_wiring_answers_what_scripts_ask() {
        let ask = |fact: &[&str]| {
            let arguments: Vec<&str> = ["wiring"]
                .iter()
                .chain(fact)
                .chain(&["--wiring", "/tmp/w.json"])
                .copied()
                .collect();
            answer(&arguments)
        };
        assert_eq!(
            ask(&["binaries"]).expect("binaries"),
            "api\npayment-saga\ndlq-redrive\nevent-relay\n"
        );
        assert_eq!(
            ask(&["table", "PaymentsTable"]).expect("a table"),
            "paysaga-local-PaymentsTable\n"
        );
        assert!(matches!(
            ask(&["table", "NoSuchTable"]),
            Err(WiringError::NotWired(what)) if what == "table NoSuchTable"
        ));
        // Two functions give it the same value: printed once.
        let buses = ask(&["variable", "EVENT_BUS_NAME"]).expect("a variable");
        assert_eq!(buses.lines().count(), 1, "{buses}");
        assert!(matches!(
            ask(&["variable", "NOT_SET_ANYWHERE"]),
            Err(WiringError::NotWired(_))
        ));
        let environments: serde_json::Value =
            serde_json::from_str(&ask(&["environments"]).expect("environments")).expect("JSON");
        assert_eq!(
            environments["dlq-redrive"]["REDRIVE_MAX_PER_SECOND"],
            sample()
                .function_env("dlq-redrive", "REDRIVE_MAX_PER_SECOND")
                .expect("set")
        );
        assert_eq!(environments.as_object().map(|all| all.len()), Some(4));
    }

    #[test]
    fn without_a_query_it_runs_the_functions() {
        assert_eq!(
            parse(&["--no-schedules"]).map(|options| options.query),
            Ok(None)
        );
        assert_eq!(
            parse(&["wiring"]).err(),
            Some(ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand)
        );
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
        assert_eq!(
            parse(&["--invoke-addr", "0.0.0.0:9001"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            parse(&["--invoke-addr", "192.168.1.10:9001"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            parse(&["--invoke-addr", "9001"]),
            Err(ErrorKind::ValueValidation)
        );
        assert!(parse(&["--invoke-addr", "127.0.0.2:9001"]).is_ok());
        assert_eq!(
            parse(&["--no-schedules=yes"]),
            Err(ErrorKind::TooManyValues)
        );
        assert_eq!(parse(&["--verbose"]), Err(ErrorKind::UnknownArgument));
        assert_eq!(parse(&["-h"]), Err(ErrorKind::DisplayHelp));
    }
}
