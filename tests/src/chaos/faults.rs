//! The fault schedule of the chaos soak: SIGKILLs and restarts of every kind of process, cuts
//! of the controller link and of the data links, a kill during a cut, replication stopped and
//! started, re-syncs of a table or a database asked by the slave, and a database's replication
//! turned off and on again on the master (a bootstrap of it), in seeded rounds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{console_retry, Options, Rng};
use crate::proxy::Proxy;
use crate::{Pair, ADMIN};

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillMasterController,
    KillMasterDataNode,
    KillSlaveController,
    KillSlaveDataNode,
    CutLink,
    /// Cuts the links from the slave data nodes to the master data nodes (task data).
    CutDataLinks,
    /// Cuts a link and, while it is cut, kills a process and starts it again.
    KillDuringCut,
    StopStartReplication,
    /// `resyncClusterReplicationTable` (or `...Database`) on the slave.
    Resync,
    /// `setDatabaseForClusterReplication(db, false)`, then `true` on the master: a bootstrap.
    Bootstrap,
}

const FAULTS: [Fault; 10] = [
    Fault::KillMasterController,
    Fault::KillMasterDataNode,
    Fault::KillSlaveController,
    Fault::KillSlaveDataNode,
    Fault::CutLink,
    Fault::CutDataLinks,
    Fault::KillDuringCut,
    Fault::StopStartReplication,
    Fault::Resync,
    Fault::Bootstrap,
];

/// What the faults did.
#[derive(Debug, Default, Clone)]
pub(super) struct FaultCounts {
    pub(super) kills: BTreeMap<&'static str, u64>,
    pub(super) cuts: u64,
    pub(super) cut_ms: u64,
    pub(super) data_cuts: u64,
    pub(super) data_cut_ms: u64,
    /// Kills during a cut.
    pub(super) overlaps: u64,
    pub(super) stop_starts: u64,
    pub(super) resyncs: u64,
    pub(super) bootstraps: u64,
}

pub(super) fn inject_faults(
    pair: &mut Pair,
    proxy: &Proxy,
    data_proxies: &[Proxy],
    rng: &mut Rng,
    opts: &Options,
    say: &dyn Fn(String),
) -> FaultCounts {
    let end = Instant::now() + opts.duration;
    let mut counts = FaultCounts::default();
    let mut plan: Vec<Fault> = Vec::new();
    // A quiet start, so that some tasks flow before the first fault.
    std::thread::sleep(rng.millis(1_000, 3_000).min(opts.duration / 4));
    while Instant::now() < end {
        if plan.is_empty() {
            // Every kind once per round, in a seeded order.
            plan = FAULTS.to_vec();
            rng.shuffle(&mut plan);
        }
        let fault = plan.remove(0);
        let left = end.saturating_duration_since(Instant::now());
        match fault {
            Fault::KillMasterController | Fault::KillSlaveController => {
                let (c, name) = if fault == Fault::KillMasterController {
                    (&mut pair.master, "masterController")
                } else {
                    (&mut pair.slave, "slaveController")
                };
                let down = rng.millis(100, 3_000).min(left);
                say(format!("kill {name} for {down:?}"));
                c.kill("controller1");
                std::thread::sleep(down);
                c.spawn_controller();
                *counts.kills.entry(name).or_default() += 1;
            }
            Fault::KillMasterDataNode | Fault::KillSlaveDataNode => {
                let (c, name) = if fault == Fault::KillMasterDataNode {
                    (&mut pair.master, "masterDataNode")
                } else {
                    (&mut pair.slave, "slaveDataNode")
                };
                let i = rng.range(0, c.datanodes.len() as u64) as usize;
                let alias = c.datanodes[i].alias.clone();
                let down = rng.millis(100, 3_000).min(left);
                say(format!("kill {name} {alias} for {down:?}"));
                c.kill(&alias);
                std::thread::sleep(down);
                c.spawn_datanode(&alias);
                *counts.kills.entry(name).or_default() += 1;
            }
            Fault::CutLink => {
                let cut = rng.millis(500, 8_000).min(left);
                say(format!("cut the link slave -> master for {cut:?}"));
                proxy.cut();
                std::thread::sleep(cut);
                proxy.heal();
                counts.cuts += 1;
                counts.cut_ms += cut.as_millis() as u64;
            }
            Fault::CutDataLinks => {
                let cut = rng.millis(500, 8_000).min(left);
                say(format!(
                    "cut the links slave data nodes -> master data nodes for {cut:?}"
                ));
                data_proxies.iter().for_each(Proxy::cut);
                std::thread::sleep(cut);
                data_proxies.iter().for_each(Proxy::heal);
                counts.data_cuts += 1;
                counts.data_cut_ms += cut.as_millis() as u64;
            }
            Fault::KillDuringCut => {
                let cut = rng.millis(1_000, 8_000).min(left);
                let data = rng.range(0, 2) == 1;
                let cut_now = |on: bool| {
                    let links: Vec<&Proxy> = if data {
                        data_proxies.iter().collect()
                    } else {
                        vec![proxy]
                    };
                    for p in links {
                        if on {
                            p.cut()
                        } else {
                            p.heal()
                        }
                    }
                };
                let (c, name) = if rng.range(0, 2) == 1 {
                    (&mut pair.master, "master")
                } else {
                    (&mut pair.slave, "slave")
                };
                let i = rng.range(0, c.datanodes.len() as u64 + 1) as usize;
                let alias = c
                    .datanodes
                    .get(i)
                    .map_or("controller1".to_string(), |n| n.alias.clone());
                let before = rng.millis(0, 1_000).min(cut / 2);
                let down = rng.millis(100, 3_000).min(cut - before);
                say(format!(
                    "cut the {} for {cut:?}; {before:?} in, kill {name} {alias} for {down:?}",
                    if data {
                        "data links"
                    } else {
                        "link slave -> master"
                    }
                ));
                cut_now(true);
                std::thread::sleep(before);
                c.kill(&alias);
                std::thread::sleep(down);
                if alias == "controller1" {
                    c.spawn_controller();
                } else {
                    c.spawn_datanode(&alias);
                }
                std::thread::sleep(cut.saturating_sub(before + down));
                cut_now(false);
                let kind = match (name, alias == "controller1") {
                    ("master", true) => "masterController",
                    ("master", false) => "masterDataNode",
                    (_, true) => "slaveController",
                    (_, false) => "slaveDataNode",
                };
                *counts.kills.entry(kind).or_default() += 1;
                counts.overlaps += 1;
                if data {
                    counts.data_cuts += 1;
                    counts.data_cut_ms += cut.as_millis() as u64;
                } else {
                    counts.cuts += 1;
                    counts.cut_ms += cut.as_millis() as u64;
                }
            }
            Fault::Resync => {
                let db = if rng.range(0, 2) == 1 { "a" } else { "b" };
                let script = if rng.range(0, 3) == 0 {
                    say(format!("re-sync database dfs://chaos_{db} on the slave"));
                    format!("rpc(getControllerAlias(), resyncClusterReplicationDatabase, \"dfs://chaos_{db}\")")
                } else {
                    let w = rng.range(0, opts.writers as u64);
                    let db = if w.is_multiple_of(2) { "a" } else { "b" };
                    say(format!(
                        "re-sync table t{w} of dfs://chaos_{db} on the slave"
                    ));
                    format!("rpc(getControllerAlias(), resyncClusterReplicationTable, \"dfs://chaos_{db}\", \"t{w}\")")
                };
                match console_retry(&pair.slave, ADMIN, &script, Duration::from_secs(30)) {
                    Ok(_) => counts.resyncs += 1,
                    Err(e) => say(format!("re-sync refused: {e}")),
                }
            }
            Fault::Bootstrap => {
                let db = if rng.range(0, 2) == 1 { "a" } else { "b" };
                let off = rng.millis(0, 2_000).min(left);
                say(format!(
                    "turn replication of dfs://chaos_{db} off for {off:?}, then on: a bootstrap"
                ));
                let flag = |on: bool| {
                    console_retry(
                        &pair.master,
                        ADMIN,
                        &format!(
                            "setDatabaseForClusterReplication(database(\"dfs://chaos_{db}\"), {on})"
                        ),
                        Duration::from_secs(60),
                    )
                };
                if let Err(e) = flag(false) {
                    say(format!("turning it off failed: {e}"));
                }
                std::thread::sleep(off);
                // On again whatever happened: the soak must end replicated.
                match flag(true) {
                    Ok(_) => counts.bootstraps += 1,
                    Err(e) => say(format!("turning it on failed: {e}")),
                }
            }
            Fault::StopStartReplication => {
                let off = rng.millis(500, 5_000).min(left);
                say(format!("stop replication on the slave for {off:?}"));
                let call = |f: &str| {
                    console_retry(
                        &pair.slave,
                        ADMIN,
                        &format!("rpc(getControllerAlias(), {f})"),
                        Duration::from_secs(30),
                    )
                };
                if let Err(e) = call("stopClusterReplication") {
                    say(format!("stop failed: {e}"));
                } else {
                    std::thread::sleep(off);
                    counts.stop_starts += 1;
                }
                if let Err(e) = call("startClusterReplication") {
                    say(format!("start failed: {e}"));
                }
            }
        }
        std::thread::sleep(
            rng.millis(500, 3_000)
                .min(end.saturating_duration_since(Instant::now())),
        );
    }
    proxy.heal();
    data_proxies.iter().for_each(Proxy::heal);
    counts
}
