//! `paysaga-admin`: operator commands, run from a shell with AWS credentials (or the local
//! stack's environment, `.local/stack.env`).
//!
//! ```text
//! paysaga-admin rebuild-read-models --from <event store table> --into <table> [--create]
//! paysaga-admin dev-token --sub <subject> [--admin] [--hours <n>]
//! ```
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
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use lambda_toolkit::aws::sdk_config_or_default_chains;
use paysaga_aws::{DynamoDbEventStore, DynamoDbReadModels};
use paysaga_services::read_models::rebuild_with_progress;

#[derive(Parser)]
#[command(name = "paysaga-admin", about = "Operator commands for paysaga")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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
