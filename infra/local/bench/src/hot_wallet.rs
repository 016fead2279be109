//! A hot wallet (issue 22): payments/s into one payee against the same load spread over 100
//! payees, simulated here and measured on the local stack ([`crate::throughput::measure_hot_wallet`]).
//!
//! **Simulated.** The hot wallet simulation of `paysaga_services::fakes::load`, at AWS's scale
//! on DynamoDB's item model ([`ItemLimits::DYNAMODB`]) in virtual time, with the load of the
//! `hot_wallet` test (`shared/services/tests/hot_wallet.rs`), as that test runs it: [`LOAD`]
//! spread over 100 payees with the DynamoDB adapters' design ([`Design::SPREAD_WHEN_HOT`]),
//! into one payee with the same design (the hot wallet), and into one payee with the design
//! before hot wallets were spread ([`Design::ONE_ITEM_ONE_STREAM`], the baseline, shown beside
//! them with no target); each payment delivered as the payments queue delivers it
//! ([`Deliveries::PAYMENTS_QUEUE`]) and each completed payment's event appended to the audit
//! trail. The simulation's randomness is seeded: a run is the same every time, on any machine;
//! its figures are the model's, not this machine's.

use anyhow::Context;
use paysaga_services::fakes::capacity::ItemLimits;
use paysaga_services::fakes::load::{self, Deliveries, Design, Latency, Load, LoadRun};
use serde::Serialize;

use crate::throughput::HotWalletThroughput;

/// The hot wallet simulation's load, the `hot_wallet` test's: 100 payers paying 100 payees,
/// 1,200 payments a second arriving at random for 5 s; into one payee, the same with one.
pub const LOAD: Load = load::HOT_WALLET_LOAD;

/// The hot wallet's figures: simulated, and on the local stack when the end-to-end runs are on.
#[derive(Debug, Clone, Serialize)]
pub struct HotWallet {
    pub simulation: HotWalletSimulation,
    pub local_stack: Option<HotWalletThroughput>,
}

/// The three simulated runs of [`LOAD`].
#[derive(Debug, Clone, Serialize)]
pub struct HotWalletSimulation {
    pub payers: usize,
    pub payments_per_second_offered: u32,
    pub seconds: u32,
    /// Over [`LOAD`]'s 100 payees, [`Design::SPREAD_WHEN_HOT`].
    pub spread: SimulatedRun,
    /// Into one payee, [`Design::SPREAD_WHEN_HOT`]: the hot wallet.
    pub hot: SimulatedRun,
    /// Into one payee, [`Design::ONE_ITEM_ONE_STREAM`]: the design before hot wallets were
    /// spread, for comparison (no target).
    pub baseline: SimulatedRun,
}

/// What one simulated run came to ([`LoadRun`], the figures the report shows).
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedRun {
    pub payees: usize,
    /// The name of the [`Design`] constant the stores followed.
    pub design: String,
    pub submitted: usize,
    pub completed: usize,
    /// Payments completed while the load was offered, a second ([`LoadRun::completed_per_second`]).
    pub payments_per_second: f64,
    /// From each completed payment's request to its completion.
    pub latency_ms: SimulatedLatency,
    /// Payments' events appended to the audit trail while the load was offered, a second.
    pub audit_appends_per_second: f64,
    /// From each payment's completion to its event's append.
    pub audit_lag_ms: SimulatedLatency,
    /// Deliveries after a first that failed.
    pub redelivered: usize,
    /// Payments given up on after their last delivery.
    pub dead_lettered: usize,
}

/// Percentiles of a simulated time, in milliseconds of virtual time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SimulatedLatency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl From<Latency> for SimulatedLatency {
    fn from(latency: Latency) -> Self {
        let ms = |duration: std::time::Duration| duration.as_secs_f64() * 1_000.0;
        Self {
            p50: ms(latency.p50),
            p99: ms(latency.p99),
            max: ms(latency.max),
        }
    }
}

impl SimulatedRun {
    fn of(design: Design, payees: usize, run: &LoadRun) -> Self {
        Self {
            payees,
            design: design_name(design),
            submitted: run.submitted,
            completed: run.completed,
            payments_per_second: run.completed_per_second,
            latency_ms: run.latency.into(),
            audit_appends_per_second: run.audit.appended_per_second,
            audit_lag_ms: run.audit.lag.into(),
            redelivered: run.redelivered,
            dead_lettered: run.dead_lettered,
        }
    }
}

/// `Design`'s constants by name.
fn design_name(design: Design) -> String {
    if design == Design::SPREAD_WHEN_HOT {
        "SPREAD_WHEN_HOT".to_owned()
    } else if design == Design::ONE_ITEM_ONE_STREAM {
        "ONE_ITEM_ONE_STREAM".to_owned()
    } else {
        format!("{design:?}")
    }
}

/// Runs the three loads one after the other, as the `hot_wallet` test does, on a runtime of its
/// own with paused time on the calling thread, which it blocks (from async code:
/// [`simulate_in_the_background`]). A few seconds of real time in a release build.
pub fn simulate() -> anyhow::Result<HotWalletSimulation> {
    // One thread, paused time: the simulation's clock is virtual, and its randomness is the
    // thread's generator, which `load::run` seeds.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .context("cannot build the simulation's runtime")?;
    let simulated = |payees: usize, design: Design| {
        let run = runtime.block_on(load::run(
            Load { payees, ..LOAD },
            ItemLimits::DYNAMODB,
            design,
            Deliveries::PAYMENTS_QUEUE,
        ));
        SimulatedRun::of(design, payees, &run)
    };
    let spread = simulated(LOAD.payees, Design::SPREAD_WHEN_HOT);
    let baseline = simulated(1, Design::ONE_ITEM_ONE_STREAM);
    let hot = simulated(1, Design::SPREAD_WHEN_HOT);
    Ok(HotWalletSimulation {
        payers: LOAD.payers,
        payments_per_second_offered: LOAD.payments_per_second,
        seconds: LOAD.seconds,
        spread,
        hot,
        baseline,
    })
}

/// [`simulate`] on a thread of tokio's blocking pool, so the caller's runtime goes on.
pub async fn simulate_in_the_background() -> anyhow::Result<HotWalletSimulation> {
    tokio::task::spawn_blocking(simulate)
        .await
        .context("the hot wallet simulation stopped")?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulation started from a runtime like the bench's own: every payment of every run
    /// completes (the figures themselves are the `hot_wallet` test's to check).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_simulation_runs_beside_the_benchs_runtime() {
        let simulation = simulate_in_the_background()
            .await
            .expect("the simulation runs");
        let runs = [
            (&simulation.spread, 100, "SPREAD_WHEN_HOT"),
            (&simulation.hot, 1, "SPREAD_WHEN_HOT"),
            (&simulation.baseline, 1, "ONE_ITEM_ONE_STREAM"),
        ];
        for (run, payees, design) in runs {
            assert_eq!((run.payees, run.design.as_str()), (payees, design));
            assert_eq!(
                (run.submitted, run.completed, run.dead_lettered),
                (6_000, 6_000, 0)
            );
            assert!(run.payments_per_second > 0.0 && run.audit_appends_per_second > 0.0);
        }
        println!("{simulation:#?}");
    }
}
