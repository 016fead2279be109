//! Which process of the local stack a measurement keeps busy: CPU time by role over a window,
//! read from `/proc` (the `procfs` crate), so that a throughput figure says where its limit is.
//!
//! The roles are the processes the stack's scripts record in `.local/run/<name>.pid`
//! (DynamoDB Local, LocalStack, local-lambda, the fake payment processor) and the bench itself.
//! local-lambda's own time (its HTTP front, Runtime API and event source mappings) is told
//! apart from its children's, the functions' processes: those are counted with what they spent
//! while alive (`utime + stime` of each live descendant, with the children it reaped) and, once
//! local-lambda has reaped them, through its `cutime + cstime`, so a function instance that
//! ends inside the window is counted once. Every other role counts its process and its live
//! descendants the same way.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use procfs::process::{Process, Stat};
use serde::Serialize;

/// The roles, each with the pid file `.local/run/<file>.pid` that names its process.
const ROLES: [(&str, &str); 4] = [
    ("DynamoDB Local", "dynamodb"),
    ("LocalStack", "localstack"),
    ("local-lambda", "local-lambda"),
    ("payment processor", "payment-processor"),
];
/// local-lambda's children, reported apart from it.
const FUNCTIONS: &str = "functions (local-lambda's children)";
const BENCH: &str = "bench";

/// CPU time by role at one instant, in clock ticks.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    ticks: Vec<(String, u64)>,
}

/// One role's share of the CPU over a window: cores kept busy on average (1.0 = one core).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuShare {
    pub role: String,
    pub cores: f64,
}

/// What each role used over a window, busiest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuUse {
    pub seconds: f64,
    /// This machine's cores: the most the roles together could use.
    pub cores: usize,
    pub roles: Vec<CpuShare>,
}

impl CpuUse {
    /// The busiest role, the likeliest bottleneck.
    pub fn busiest(&self) -> Option<&CpuShare> {
        self.roles.first()
    }

    /// `"DynamoDB Local 1.10, LocalStack 0.52, …"`: cores per role.
    pub fn describe(&self) -> String {
        self.roles
            .iter()
            .map(|share| format!("{} {:.2}", share.role, share.cores))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The time each role's processes have used so far. A role whose pid file is missing or whose
/// process is gone counts nothing (the stack may run without the processor, say).
pub fn sample(run_dir: &Path) -> CpuSample {
    let processes = live_processes();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for stat in processes.values() {
        children.entry(stat.ppid).or_default().push(stat.pid);
    }
    let descendants_time = |pid: i32| -> u64 {
        let mut total = 0;
        let mut pending = children.get(&pid).cloned().unwrap_or_default();
        while let Some(child) = pending.pop() {
            if let Some(stat) = processes.get(&child) {
                total += whole(stat);
            }
            pending.extend(children.get(&child).into_iter().flatten().copied());
        }
        total
    };
    let mut ticks = Vec::new();
    for (role, file) in ROLES {
        let stat = std::fs::read_to_string(run_dir.join(format!("{file}.pid")))
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .and_then(|pid| processes.get(&pid));
        let Some(stat) = stat else {
            ticks.push((role.to_owned(), 0));
            if file == "local-lambda" {
                ticks.push((FUNCTIONS.to_owned(), 0));
            }
            continue;
        };
        if file == "local-lambda" {
            ticks.push((role.to_owned(), stat.utime + stat.stime));
            let reaped = reaped(stat);
            ticks.push((FUNCTIONS.to_owned(), reaped + descendants_time(stat.pid)));
        } else {
            ticks.push((role.to_owned(), whole(stat) + descendants_time(stat.pid)));
        }
    }
    let me = i32::try_from(std::process::id()).ok();
    let bench = me.and_then(|pid| processes.get(&pid)).map_or(0, whole);
    ticks.push((BENCH.to_owned(), bench));
    CpuSample {
        at: Instant::now(),
        ticks,
    }
}

/// What each role used between `before` and `after`.
pub fn between(before: &CpuSample, after: &CpuSample) -> CpuUse {
    let seconds = (after.at - before.at).as_secs_f64();
    let per_second = procfs::ticks_per_second() as f64;
    let earlier: HashMap<&str, u64> = before
        .ticks
        .iter()
        .map(|(role, ticks)| (role.as_str(), *ticks))
        .collect();
    let mut roles: Vec<CpuShare> = after
        .ticks
        .iter()
        .map(|(role, ticks)| {
            let used = ticks.saturating_sub(earlier.get(role.as_str()).copied().unwrap_or(0));
            CpuShare {
                role: role.clone(),
                cores: if seconds > 0.0 {
                    used as f64 / per_second / seconds
                } else {
                    0.0
                },
            }
        })
        .collect();
    roles.sort_by(|a, b| b.cores.total_cmp(&a.cores));
    CpuUse {
        seconds,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        roles,
    }
}

/// Every process readable now, by pid (one that ends while being read is left out).
fn live_processes() -> HashMap<i32, Stat> {
    procfs::process::all_processes()
        .map(|all| {
            all.filter_map(Result::ok)
                .filter_map(|process: Process| process.stat().ok())
                .map(|stat| (stat.pid, stat))
                .collect()
        })
        .unwrap_or_default()
}

/// A process's own time and that of the children it reaped.
fn whole(stat: &Stat) -> u64 {
    stat.utime + stat.stime + reaped(stat)
}

fn reaped(stat: &Stat) -> u64 {
    u64::try_from(stat.cutime + stat.cstime).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_window_gives_each_role_its_cores_busiest_first() {
        let at = Instant::now();
        let per_second = procfs::ticks_per_second();
        let before = CpuSample {
            at,
            ticks: vec![
                ("LocalStack".to_owned(), 0),
                ("DynamoDB Local".to_owned(), 10),
            ],
        };
        let after = CpuSample {
            at: at + Duration::from_secs(2),
            // Over 2 s: half a core, then a core and a half.
            ticks: vec![
                ("LocalStack".to_owned(), per_second),
                ("DynamoDB Local".to_owned(), 10 + 3 * per_second),
            ],
        };
        let used = between(&before, &after);
        let shares: Vec<(&str, f64)> = used
            .roles
            .iter()
            .map(|share| (share.role.as_str(), share.cores))
            .collect();
        assert_eq!(shares, [("DynamoDB Local", 1.5), ("LocalStack", 0.5)]);
        assert_eq!(
            used.busiest().map(|share| share.role.as_str()),
            Some("DynamoDB Local")
        );
    }

    #[test]
    fn a_role_is_the_process_its_pid_file_names() {
        let run_dir =
            std::env::temp_dir().join(format!("paysaga-bench-cpu-{}", std::process::id()));
        std::fs::create_dir_all(&run_dir).expect("a scratch directory");
        // This test's own process stands for DynamoDB Local; it works for a while.
        std::fs::write(run_dir.join("dynamodb.pid"), std::process::id().to_string())
            .expect("a pid file");
        let before = sample(&run_dir);
        let deadline = Instant::now() + Duration::from_millis(300);
        let mut spin = 0_u64;
        while Instant::now() < deadline {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let used = between(&before, &sample(&run_dir));
        std::fs::remove_dir_all(&run_dir).expect("scratch removed");
        let cores = |role: &str| {
            used.roles
                .iter()
                .find(|share| share.role == role)
                .map(|share| share.cores)
        };
        assert!(
            cores("DynamoDB Local").is_some_and(|cores| cores > 0.3),
            "{used:?}"
        );
        // No pid file: nothing counted.
        assert_eq!(cores("LocalStack"), Some(0.0));
    }
}
