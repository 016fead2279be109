//! `paysaga-admin`: operator commands, run from a shell with AWS credentials (or the local
//! stack's environment, `.local/stack.env`).
//!
//! ```text
//! paysaga-admin dlq status                     queue and DLQ depths, parked messages waiting
//! paysaga-admin dlq parked [--all]             the parking table (waiting ones, or all)
//! paysaga-admin dlq show <parked id>           one parked message, whole
//! paysaga-admin dlq replay <parked id> --reason <why> [--body-file <file>] [--to <queue ARN>] [--force]
//! paysaga-admin dlq redrive [<queue>] [--rate <n>] [--max <n>] [--whole-queue]
//! paysaga-admin rebuild-read-models --from <event store table> --into <table> [--create]
//! paysaga-admin dev-token --sub <subject> [--admin] [--hours <n>]
//! ```
//!
//! `dlq` commands invoke the stack's dlq-redrive function ([`paysaga_admin::dlq`]):
//! `--function` (`DLQ_REDRIVE_FUNCTION`) names it, the stack's `DlqRedriveFunctionName` output
//! for a deployed stack; `make dlq`, `make dlq-redrive`, `make dlq-show` and `make dlq-replay`
//! run them on the local stack. `dlq replay` alone calls the admin API instead
//! ([`paysaga_admin::admin_api`]: `--api`, `PAYSAGA_API_URL`, the stack's `ApiUrl` output;
//! `--token`, `PAYSAGA_TOKEN`, an operator's token with the `paysaga/admin` scope), so that
//! the audit trail records who replayed what, and why.
//!
//! `dev-token` prints a token for the local stack's API, signed by its development key
//! ([`paysaga_admin::dev_token`]): `make token SUB=alice [ADMIN=1]`.
//!
//! `rebuild-read-models` replays every event of the audit trail (the event store) into the
//! read models of `--into` ([`paysaga_services::read_models::rebuild`]), printing its progress after each page. With `--create` it creates that
//! table first (the template's key schema) and refuses one that exists, so live read models are
//! never written over by mistake; without it the table must exist, and replaying into live read
//! models changes nothing they already hold (every write is conditional). Point the API at the
//! new table (`READ_MODELS_TABLE`) once it is built, or compare it with the live one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use lambda_toolkit::aws::sdk_config_or_default_chains;
use paysaga_admin::admin_api::{self, AdminApi, ReplayAsk};
use paysaga_admin::dlq::{self, RedriveFunction};
use paysaga_aws::{DynamoDbEventStore, DynamoDbReadModels};
use paysaga_services::read_models::rebuild_with_progress;
use paysaga_services::redrive::operator::Mode;

#[derive(Parser)]
#[command(name = "paysaga-admin", about = "Operator commands for paysaga")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The dead-letter queues and the parking table, through the dlq-redrive function.
    Dlq {
        /// The dlq-redrive function (name or ARN).
        #[arg(long, env = "DLQ_REDRIVE_FUNCTION", default_value = dlq::DEFAULT_FUNCTION, global = true)]
        function: String,
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Replays the audit trail into read models.
    RebuildReadModels {
        /// The event store table (the template's EventStoreTable).
        #[arg(long, env = "EVENT_STORE_TABLE")]
        from: String,
        /// The read-model table to fill.
        #[arg(long)]
        into: String,
        /// Create `--into` first; fails if it exists.
        #[arg(long)]
        create: bool,
    },
    /// Prints a development token for the local stack's API.
    DevToken {
        /// The caller's identity (the token's subject): the owner of the wallets it opens.
        #[arg(long)]
        sub: String,
        /// Adds the paysaga/admin scope (replaying parked messages, rebuilding read models).
        #[arg(long)]
        admin: bool,
        /// How long the token is valid.
        #[arg(long, default_value_t = 12)]
        hours: u64,
        /// The local stack's files.
        #[arg(long, default_value = ".local")]
        local_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Depths of every queue and its dead-letter queue; parked messages waiting.
    Status,
    /// The parking table: the messages waiting for an operator.
    Parked {
        /// Replayed and settled messages too.
        #[arg(long)]
        all: bool,
    },
    /// One parked message, whole, with why it was parked.
    Show { parked_id: String },
    /// Sends a parked message again (consumers de-duplicate replays), through the admin API,
    /// which records it in the audit trail.
    Replay {
        parked_id: String,
        /// Why (required): kept in the audit trail with the operator's subject.
        #[arg(long)]
        reason: String,
        /// The admin API (the stack's `ApiUrl` output).
        #[arg(long, env = "PAYSAGA_API_URL", default_value = admin_api::LOCAL_API_URL)]
        api: String,
        /// An operator's bearer token, with the `paysaga/admin` scope.
        #[arg(long, env = "PAYSAGA_TOKEN", hide_env_values = true)]
        token: String,
        /// The fixed body to send instead of the parked one.
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// The queue (ARN) to send it to, when the message names none.
        #[arg(long)]
        to: Option<String>,
        /// Send a body that breaks the event contracts all the same.
        #[arg(long)]
        force: bool,
    },
    /// Redrives one dead-letter queue (name, short name, URL or ARN), or all of them, now.
    Redrive {
        queue: Option<String>,
        /// Messages per second, at most.
        #[arg(long)]
        rate: Option<u32>,
        /// Messages to examine, at most.
        #[arg(long)]
        max: Option<u32>,
        /// Have SQS move the whole queue back to its source, unread (after an outage).
        #[arg(long)]
        whole_queue: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain on one line, no backtrace: an operator's error, not a crash.
            eprintln!("paysaga-admin: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dlq { function, command } => {
            let config = sdk_config_or_default_chains()
                .await
                .context("cannot set up the AWS SDK")?;
            let redrive = RedriveFunction::new(&config, function);
            print!("{}", dlq_command(&redrive, command).await?);
            Ok(())
        }
        Command::DevToken {
            sub,
            admin,
            hours,
            local_dir,
        } => {
            let issuer = paysaga_admin::dev_token::DevTokenIssuer::from_local_dir(&local_dir)?;
            let lifetime = Duration::from_secs(hours.saturating_mul(3600));
            println!("{}", issuer.token(&sub, admin, lifetime)?);
            Ok(())
        }
        Command::RebuildReadModels { from, into, create } => {
            let config = sdk_config_or_default_chains()
                .await
                .context("cannot set up the AWS SDK")?;
            // Snapshots are the audit-trail function's business; reading needs no cadence.
            let store = DynamoDbEventStore::from_config(&config, &from, 0);
            let read_models = DynamoDbReadModels::from_config(&config, &into);
            if create {
                read_models
                    .create_table()
                    .await
                    .with_context(|| format!("cannot create table {into}"))?;
            }
            let started = Instant::now();
            let counts = rebuild_with_progress(&store, &read_models, |so_far| {
                eprintln!(
                    "  {} events replayed, {} items written, {:.1} s",
                    so_far.events,
                    so_far.changed,
                    started.elapsed().as_secs_f64()
                );
            })
            .await
            .with_context(|| {
                format!(
                    "rebuilding {into} from {from} failed; run it again without --create to go on \
                     (replaying is idempotent)"
                )
            })?;
            println!(
                "rebuilt read models in {into} from {from}: {} events, {} items written, {} unchanged, {:.1} s",
                counts.events,
                counts.changed,
                counts.unchanged,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// What one `dlq` command prints.
async fn dlq_command(redrive: &RedriveFunction, command: DlqCommand) -> anyhow::Result<String> {
    Ok(match command {
        DlqCommand::Status => dlq::status_table(&redrive.status().await?),
        DlqCommand::Parked { all } => {
            let messages = redrive.parked(all).await?;
            if messages.is_empty() {
                let hint = if all {
                    ""
                } else {
                    " waiting (--all shows replayed and settled ones)"
                };
                format!("no parked messages{hint}\n")
            } else {
                dlq::parked_table(&messages)
                    + "\nshow one: paysaga-admin dlq show <parked id>; replay it: \
                       paysaga-admin dlq replay <parked id> --reason <why> [--body-file <file>]\n"
            }
        }
        DlqCommand::Show { parked_id } => dlq::shown(&redrive.show(&parked_id).await?) + "\n",
        DlqCommand::Replay {
            parked_id,
            reason,
            api,
            token,
            body_file,
            to,
            force,
        } => {
            let body = match body_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                ),
                None => None,
            };
            let ask = ReplayAsk {
                body,
                destination: to,
                force,
                reason,
            };
            let replayed = AdminApi::new(&api, token).replay(&parked_id, &ask).await?;
            dlq::replayed_line(&replayed) + "\n"
        }
        DlqCommand::Redrive {
            queue,
            rate,
            max,
            whole_queue,
        } => {
            let mode = if whole_queue {
                Mode::WholeQueue
            } else {
                Mode::Selective
            };
            dlq::redrive_report(&redrive.redrive(queue, mode, rate, max).await?)
        }
    })
}
