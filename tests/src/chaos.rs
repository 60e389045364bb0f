//! The chaos soak: a master and a slave cluster of real processes, writers running a mixed
//! workload on the master, and a seeded schedule of faults (SIGKILL and restart of every kind of
//! process, cuts of the link between the controllers and of the links from the slave data
//! nodes to the master data nodes, a kill while a link is cut, replication stopped and
//! started). At the
//! end the writers stop and the run checks that the slave caught up, that
//! `checkClusterReplicationConsistency` finds every partition equal, that every write the
//! master acknowledged is on the slave, and that the slave applied exactly the master's tasks.
//!
//! Used by `tests/tests/t98_chaos.rs` (a short run in CI) and by the `xrepl-chaos` binary
//! (`scripts/chaos.sh --seed N --minutes M`). Every wait is bounded: a run stops by itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use xrepl_core::value::Vector;
use xrepl_proto::client::Client;

use crate::proxy::Proxy;
use crate::{free_ports, ints, texts, Cluster, Pair, Spec, ADMIN, ADMIN_JSON};

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// How long the writers write and the faults come.
    pub duration: Duration,
    /// Writers of rows (each on its own table); one more writer runs DDL.
    pub writers: usize,
    /// How long the slave may take to catch up once the writers stopped (at least a third of
    /// `duration`: the slave falls behind during faults).
    pub converge_limit: Duration,
    /// Print each fault as it happens.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            seed: 1,
            duration: Duration::from_secs(60),
            writers: 4,
            converge_limit: Duration::from_secs(180),
            verbose: false,
        }
    }
}

/// A small seeded generator (splitmix64): the same seed gives the same schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.range(0, i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

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
}

const FAULTS: [Fault; 8] = [
    Fault::KillMasterController,
    Fault::KillMasterDataNode,
    Fault::KillSlaveController,
    Fault::KillSlaveDataNode,
    Fault::CutLink,
    Fault::CutDataLinks,
    Fault::KillDuringCut,
    Fault::StopStartReplication,
];

/// What the faults did.
#[derive(Debug, Default, Clone)]
struct FaultCounts {
    kills: BTreeMap<&'static str, u64>,
    cuts: u64,
    cut_ms: u64,
    data_cuts: u64,
    data_cut_ms: u64,
    /// Kills during a cut.
    overlaps: u64,
    stop_starts: u64,
}

/// What a writer expects of one row id.
#[derive(Debug, Clone)]
enum Expect {
    /// The master acknowledged the last write of this id: the row is (`Some(v)`) or is not.
    Known(Option<i64>),
    /// The last write was not acknowledged: any of these; the id is not written again.
    Either(Vec<Option<i64>>),
}

/// A writer's table and what it expects of it.
#[derive(Debug, Default)]
struct Model {
    db: String,
    table: String,
    rows: BTreeMap<i32, Expect>,
    acked: u64,
    uncertain: u64,
}

impl Model {
    fn present(&self) -> Vec<(i32, i64)> {
        self.rows
            .iter()
            .filter_map(|(id, e)| match e {
                Expect::Known(Some(v)) => Some((*id, *v)),
                _ => None,
            })
            .collect()
    }

    /// Checks a table's `id -> v` against the expectations.
    fn check(&self, side: &str, got: &BTreeMap<i32, i64>) -> Result<(), String> {
        for (id, e) in &self.rows {
            let have = got.get(id).copied();
            let ok = match e {
                Expect::Known(v) => have == *v,
                Expect::Either(vs) => vs.contains(&have),
            };
            if !ok {
                return Err(format!(
                    "{side} {}/{}: id {id} is {have:?}, expected {e:?}",
                    self.db, self.table
                ));
            }
        }
        if let Some(id) = got.keys().find(|id| !self.rows.contains_key(id)) {
            return Err(format!(
                "{side} {}/{}: id {id} was never written",
                self.db, self.table
            ));
        }
        Ok(())
    }
}

/// A DDL writer's database and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbFate {
    Exists,
    Dropped,
    Unknown,
}

/// What a run found: its JSON summary (with `"ok"` and, when a check failed, `"failure"`),
/// and the failure with the last lines of the controllers' logs.
#[derive(Debug)]
pub struct Report {
    pub summary: Json,
    pub failure: Option<String>,
}

/// Runs one soak; `Err` when it could not even start.
pub fn run(opts: &Options) -> Result<Report, String> {
    let started = Instant::now();
    let mut rng = Rng::new(opts.seed);
    let say = |m: String| {
        if opts.verbose {
            eprintln!("[chaos {:>6.1}s] {m}", started.elapsed().as_secs_f64());
        }
    };
    // The slave data nodes fetch task data through a proxy per master data node (its
    // `clusterReplicationPublicAddress`), so that the chaos can cut those links too.
    let spec = Spec {
        replication_mode: Some("master"),
        ..Spec::default()
    };
    let data_ports = free_ports(spec.datanodes);
    let mut cluster_cfg = String::from("clusterReplicationSyncPersistence=true\n");
    for (i, port) in data_ports.iter().enumerate() {
        cluster_cfg.push_str(&format!(
            "dnode{}.clusterReplicationPublicAddress=127.0.0.1:{port}\n",
            i + 1
        ));
    }
    let master = Cluster::start(&Spec {
        cluster_cfg,
        ..spec
    });
    let proxy = Proxy::start(free_ports(1)[0], &master.controller.site());
    let data_proxies: Vec<Proxy> = data_ports
        .iter()
        .zip(&master.datanodes)
        .map(|(port, n)| Proxy::start(*port, &n.site()))
        .collect();
    let slave = Cluster::start(&Spec {
        replication_mode: Some("slave"),
        controller_cfg: format!(
            "clusterReplicationMasterCtl={}\nclusterReplicationRetryIntervalMs=200\n",
            proxy.site()
        ),
        ..Spec::default()
    });
    let mut pair = Pair { master, slave };
    say(format!(
        "master {} (via proxy {}), slave {}",
        pair.master.controller.site(),
        proxy.site(),
        pair.slave.controller.site()
    ));
    let mut setup = String::from(
        "a = database(\"dfs://chaos_a\", HASH, [INT, 4])\n\
         setDatabaseForClusterReplication(a, true)\n\
         b = database(\"dfs://chaos_b\", HASH, [INT, 4])\n\
         setDatabaseForClusterReplication(b, true)\n\
         setDatabaseClusterReplicationExecutionSet(b, 1)\n",
    );
    let mut models = Vec::new();
    for w in 0..opts.writers {
        let db = if w % 2 == 0 { "a" } else { "b" };
        setup.push_str(&format!(
            "{db}.createPartitionedTable(table(1:0, `id`v`tag, [INT, LONG, STRING]), \"t{w}\", `id)\n"
        ));
        models.push(Model {
            db: format!("dfs://chaos_{db}"),
            table: format!("t{w}"),
            ..Model::default()
        });
    }
    pair.master.ok(&setup);

    let stop = Arc::new(AtomicBool::new(false));
    let sites: Vec<String> = pair.master.datanodes.iter().map(|n| n.site()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let writers: Vec<_> = models
        .into_iter()
        .enumerate()
        .map(|(w, m)| {
            runtime.spawn(row_writer(
                m,
                w,
                Rng::new(opts.seed.wrapping_add(1 + w as u64)),
                sites.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let ddl_fates = Arc::new(Mutex::new(Vec::<(String, DbFate)>::new()));
    let ddl = runtime.spawn(ddl_writer(
        Rng::new(opts.seed.wrapping_add(1000)),
        sites.clone(),
        stop.clone(),
        ddl_fates.clone(),
    ));

    // The faults, until the time is up.
    let faults = inject_faults(&mut pair, &proxy, &data_proxies, &mut rng, opts, &say);
    stop.store(true, Ordering::SeqCst);
    let writers_stopped = Instant::now();
    let mut models = Vec::new();
    for w in writers {
        models.push(
            runtime
                .block_on(w)
                .map_err(|e| format!("a writer failed: {e}"))?,
        );
    }
    runtime
        .block_on(ddl)
        .map_err(|e| format!("the DDL writer failed: {e}"))?;
    say("writers stopped".into());

    let mut summary = json!({
        "seed": opts.seed,
        "minutes": opts.duration.as_secs_f64() / 60.0,
        "writers": opts.writers,
        "kills": faults.kills,
        "cuts": faults.cuts,
        "cutSeconds": faults.cut_ms as f64 / 1000.0,
        "dataLinkCuts": faults.data_cuts,
        "dataLinkCutSeconds": faults.data_cut_ms as f64 / 1000.0,
        "killsDuringCuts": faults.overlaps,
        "stopStarts": faults.stop_starts,
        "ackedWrites": models.iter().map(|m| m.acked).sum::<u64>(),
        "uncertainWrites": models.iter().map(|m| m.uncertain).sum::<u64>(),
    });
    let checked = verify(
        &pair,
        &runtime,
        &models,
        &ddl_fates,
        opts,
        writers_stopped,
        &say,
    );
    // Disk use against the live data: the rows the writers' tables hold (id INT, v LONG and
    // a tag of about 12 characters: ~24 raw bytes a row), and the blocks allocated under each
    // cluster's data folder (stores, logs, task data, block files).
    let live_rows: u64 = models.iter().map(|m| m.present().len() as u64).sum();
    let live_bytes: u64 = models
        .iter()
        .flat_map(|m| m.present())
        .map(|(id, _)| 12 + format!("w0-0000-{id}").len() as u64)
        .sum();
    let disk = |c: &Cluster| bytes_under(&c.cfg_dir().join("data"));
    let (master_kinds, slave_kinds) = (disk(&pair.master), disk(&pair.slave));
    let (master_disk, slave_disk): (u64, u64) =
        (master_kinds.iter().sum(), slave_kinds.iter().sum());
    let kinds =
        |k: [u64; 4]| json!({"sled": k[0], "wal": k[1], "blockFiles": k[2], "taskFiles": k[3]});
    if let Some(o) = summary.as_object_mut() {
        o.insert("liveRows".into(), json!(live_rows));
        o.insert("liveRawBytes".into(), json!(live_bytes));
        o.insert("masterDiskBytes".into(), json!(master_disk));
        o.insert("slaveDiskBytes".into(), json!(slave_disk));
        o.insert("masterDiskByKind".into(), kinds(master_kinds));
        o.insert("slaveDiskByKind".into(), kinds(slave_kinds));
        o.insert(
            "masterDiskPerLiveByte".into(),
            json!((master_disk as f64 / live_bytes.max(1) as f64 * 10.0).round() / 10.0),
        );
        o.insert(
            "slaveDiskPerLiveByte".into(),
            json!((slave_disk as f64 / live_bytes.max(1) as f64 * 10.0).round() / 10.0),
        );
    }
    if let Some(o) = summary.as_object_mut() {
        let (fields, ok) = match &checked {
            Ok(f) => (f.clone(), true),
            Err((f, _)) => (f.clone(), false),
        };
        for (k, v) in fields {
            o.insert(k, v);
        }
        o.insert("ok".into(), json!(ok));
        o.insert(
            "seconds".into(),
            json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
        );
        if let Err((_, why)) = &checked {
            o.insert("failure".into(), json!(why));
        }
    }
    let failure = checked.err().map(|(_, why)| {
        let tail = |c: &Cluster, alias: &str| {
            let log = c.read_log(alias);
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        format!(
            "{why}\nslave controller log (last lines):\n{}\nmaster controller log (last lines):\n{}",
            tail(&pair.slave, "controller1"),
            tail(&pair.master, "controller1")
        )
    });
    Ok(Report { summary, failure })
}

/// Bytes on disk (allocated blocks, as `du` counts them) under `dir`, recursively, by kind:
/// [sled trees, write-ahead logs, column block files, task data files].
fn bytes_under(dir: &std::path::Path) -> [u64; 4] {
    use std::os::unix::fs::MetadataExt;
    let mut out = [0u64; 4];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let path = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => {
                for (o, n) in out.iter_mut().zip(bytes_under(&path)) {
                    *o += n;
                }
            }
            Ok(m) => {
                let p = path.to_string_lossy();
                let kind = if p.contains("storage.blocks") {
                    2
                } else if p.ends_with(".task") {
                    3
                } else if p.contains(".wal") || p.contains("/wal/") {
                    1
                } else {
                    0
                };
                out[kind] += m.blocks() * 512;
            }
            Err(_) => {}
        }
    }
    out
}

/// Runs a console script on any data node of `c` that answers, for up to `limit`.
fn console_retry(
    c: &Cluster,
    args: &[&str],
    script: &str,
    limit: Duration,
) -> Result<String, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < limit {
        for n in &c.datanodes {
            let out = c.console_at(&n.site(), args, script);
            if out.code == 0 {
                return Ok(out.stdout);
            }
            last = out.stderr;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("`{script}` failed for {limit:?}: {last}"))
}

/// The rows of the table a script prints last (JSON), retried while nodes come back.
fn rows_retry(c: &Cluster, script: &str, limit: Duration) -> Result<Vec<Json>, String> {
    let out = console_retry(c, ADMIN_JSON, script, limit)?;
    let last = out.lines().last().unwrap_or_default();
    match serde_json::from_str::<Json>(last) {
        Ok(Json::Array(rows)) => Ok(rows),
        other => Err(format!("`{script}` did not print a table: {other:?}")),
    }
}

fn inject_faults(
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

/// Connects to any master data node, from a random one on.
async fn connect_any(sites: &[String], rng: &mut Rng, stop: &AtomicBool) -> Option<Client> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let i = rng.range(0, sites.len() as u64) as usize;
        for k in 0..sites.len() {
            let site = &sites[(i + k) % sites.len()];
            if let Ok(Ok(c)) = tokio::time::timeout(
                Duration::from_secs(5),
                Client::connect(site, "admin", "123456"),
            )
            .await
            {
                return Some(c);
            }
        }
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Runs one script with a time limit: true when the master acknowledged it.
async fn attempt(client: &mut Option<Client>, script: &str) -> bool {
    let Some(c) = client.as_ref() else {
        return false;
    };
    match tokio::time::timeout(Duration::from_secs(30), c.run(script)).await {
        Ok(Ok(_)) => true,
        _ => {
            *client = None;
            false
        }
    }
}

fn longs(v: &[i64]) -> String {
    let items: Vec<String> = v.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn tags(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// Appends, updates, deletes and upserts on one table until `stop`; every write not
/// acknowledged leaves its ids uncertain and untouched from then on.
async fn row_writer(
    mut m: Model,
    w: usize,
    mut rng: Rng,
    sites: Vec<String>,
    stop: Arc<AtomicBool>,
) -> Model {
    let mut next_id: i32 = 1;
    let mut seq: u64 = 0;
    let mut client: Option<Client> = None;
    let target = format!("loadTable(\"{}\", \"{}\")", m.db, m.table);
    while !stop.load(Ordering::SeqCst) {
        if client.is_none() {
            client = connect_any(&sites, &mut rng, &stop).await;
            if client.is_none() {
                continue;
            }
        }
        seq += 1;
        let value = rng.range(0, 1_000_000_000_000) as i64;
        let present = m.present();
        let pick = |rng: &mut Rng| -> Option<(i32, i64)> {
            (!present.is_empty()).then(|| present[rng.range(0, present.len() as u64) as usize])
        };
        let op = rng.range(0, 10);
        // (script, ids with their state if acknowledged and their old state)
        let mut changes: Vec<(i32, Option<i64>, Option<i64>)> = Vec::new();
        let script = match op {
            0..=3 => {
                let n = rng.range(1, 20) as i32;
                let ids: Vec<i64> = (next_id..next_id + n).map(i64::from).collect();
                next_id += n;
                let vs: Vec<i64> = ids.iter().map(|i| value + i).collect();
                let ts: Vec<String> = ids.iter().map(|i| format!("w{w}-{seq}-{i}")).collect();
                for (i, v) in ids.iter().zip(&vs) {
                    changes.push((*i as i32, Some(*v), None));
                }
                format!(
                    "id = {}\nv = {}\ntag = {}\n{target}.append!(table(id, v, tag))",
                    longs(&ids),
                    longs(&vs),
                    tags(&ts)
                )
            }
            4 | 5 => match pick(&mut rng) {
                Some((id, old)) => {
                    changes.push((id, Some(value), Some(old)));
                    format!("update {target} set v = {value} where id = {id}")
                }
                None => continue,
            },
            6 => match pick(&mut rng) {
                Some((id, old)) => {
                    changes.push((id, None, Some(old)));
                    format!("delete from {target} where id = {id}")
                }
                None => continue,
            },
            _ => {
                let fresh = next_id;
                next_id += 1;
                let mut ids = vec![i64::from(fresh)];
                changes.push((fresh, Some(value), None));
                if let Some((id, old)) = pick(&mut rng) {
                    ids.push(i64::from(id));
                    changes.push((id, Some(value), Some(old)));
                }
                let vs = vec![value; ids.len()];
                let ts: Vec<String> = ids.iter().map(|i| format!("u{w}-{seq}-{i}")).collect();
                format!(
                    "id = {}\nv = {}\ntag = {}\nupsert!({target}, table(id, v, tag), keyColNames=`id)",
                    longs(&ids),
                    longs(&vs),
                    tags(&ts)
                )
            }
        };
        let acked = attempt(&mut client, &script).await;
        for (id, new, old) in changes {
            let e = if acked {
                Expect::Known(new)
            } else {
                Expect::Either(vec![old, new])
            };
            m.rows.insert(id, e);
        }
        if acked {
            m.acked += 1;
        } else {
            m.uncertain += 1;
        }
        tokio::time::sleep(rng.millis(5, 40)).await;
    }
    m
}

/// Creates databases (in both execution sets), tables, rows and columns, and drops the
/// databases it made a few steps earlier, until `stop`.
async fn ddl_writer(
    mut rng: Rng,
    sites: Vec<String>,
    stop: Arc<AtomicBool>,
    fates: Arc<Mutex<Vec<(String, DbFate)>>>,
) {
    let mut client: Option<Client> = None;
    let mut n: u64 = 0;
    let set_fate = |db: &str, f: DbFate| {
        let mut v = fates.lock().unwrap_or_else(|p| p.into_inner());
        match v.iter_mut().find(|(d, _)| d == db) {
            Some(e) => e.1 = f,
            None => v.push((db.to_string(), f)),
        }
    };
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let db = format!("dfs://chaos_d{n}");
        let steps = [
            format!(
                "d = database(\"{db}\", VALUE, 1..3)\nsetDatabaseForClusterReplication(d, true)\nsetDatabaseClusterReplicationExecutionSet(d, {})",
                n % 2
            ),
            format!(
                "database(\"{db}\").createPartitionedTable(table(1:0, `k`x, [INT, DOUBLE]), \"p\", `k)"
            ),
            format!(
                "k = [1, 2, 3]\nx = [{}.5, 2.25, -0.0]\nloadTable(\"{db}\", \"p\").append!(table(k, x))",
                rng.range(0, 1000)
            ),
            format!("addColumn(loadTable(\"{db}\", \"p\"), `y, INT)"),
            format!("update loadTable(\"{db}\", \"p\") set y = k * 2 where k > 1"),
        ];
        set_fate(&db, DbFate::Unknown);
        let mut all = true;
        for s in &steps {
            if client.is_none() {
                client = connect_any(&sites, &mut rng, &stop).await;
            }
            if !attempt(&mut client, s).await {
                all = false;
                break;
            }
            tokio::time::sleep(rng.millis(50, 300)).await;
        }
        if all {
            set_fate(&db, DbFate::Exists);
        }
        // Drop the database made three rounds ago, if it was made in full.
        if n > 3 {
            let old = format!("dfs://chaos_d{}", n - 3);
            let known = fates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|(d, f)| d == &old && *f == DbFate::Exists);
            if known {
                if client.is_none() {
                    client = connect_any(&sites, &mut rng, &stop).await;
                }
                let fate = if attempt(&mut client, &format!("dropDatabase(\"{old}\")")).await {
                    DbFate::Dropped
                } else {
                    DbFate::Unknown
                };
                set_fate(&old, fate);
            }
        }
        tokio::time::sleep(rng.millis(100, 500)).await;
    }
}

type Fields = serde_json::Map<String, Json>;

/// The end of a run: everything up, the slave caught up, and every check.
fn verify(
    pair: &Pair,
    runtime: &tokio::runtime::Runtime,
    models: &[Model],
    ddl_fates: &Mutex<Vec<(String, DbFate)>>,
    opts: &Options,
    writers_stopped: Instant,
    say: &dyn Fn(String),
) -> Result<Fields, (Fields, String)> {
    let mut f = Fields::new();
    macro_rules! check {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((f, e)),
            }
        };
    }
    for c in [&pair.master, &pair.slave] {
        check!(wait_up(c, Duration::from_secs(60)));
    }
    check!(console_retry(
        &pair.slave,
        ADMIN,
        "rpc(getControllerAlias(), startClusterReplication)",
        Duration::from_secs(30)
    ));
    say("all up; waiting for the slave to catch up".into());

    // Caught up: the slave finished every task the master made. Polled cheaply (the slave's
    // metrics and its latest finished task; the master's list every 5 s): the full status
    // tables are tens of thousands of rows after a long run, and building them twice a second
    // slowed the slave it was waiting for.
    let master_status = "rpc(getControllerAlias(), getMasterReplicationStatus)";
    let slave_status = "rpc(getControllerAlias(), getSlaveReplicationStatus)";
    let master_last = || -> Result<i64, String> {
        let m = rows_retry(&pair.master, master_status, Duration::from_secs(30))?;
        Ok(ints(&m, "taskId").into_iter().max().unwrap_or(0))
    };
    let limit = opts.converge_limit.max(opts.duration / 3);
    let deadline = Instant::now() + limit;
    let mut last = check!(master_last());
    let mut master_checked = Instant::now();
    let mut backlog: Option<i64> = None;
    let mut progress_said = Instant::now();
    loop {
        let metrics = check!(rows_retry(
            &pair.slave,
            "rpc(getControllerAlias(), getClusterReplicationMetrics)",
            Duration::from_secs(30)
        ));
        let unfinished = ints(&metrics, "unfinishedTasks")
            .first()
            .copied()
            .unwrap_or(-1);
        if texts(&metrics, "status").first().map(String::as_str) == Some("STOPPED") {
            let s = check!(rows_retry(
                &pair.slave,
                slave_status,
                Duration::from_secs(30)
            ));
            let failed: Vec<&Json> = s.iter().filter(|r| r["state"] == "FAILED").collect();
            return Err((f, format!("the slave is STOPPED; FAILED tasks: {failed:?}")));
        }
        let top = check!(rows_retry(
            &pair.slave,
            "rpc(getControllerAlias(), getSlaveReplicationStatus, 1)",
            Duration::from_secs(30)
        ));
        let finished = ints(&top, "taskId").first().copied().unwrap_or(0);
        if backlog.is_none() {
            backlog = Some((last - finished).max(unfinished).max(0));
        }
        if opts.verbose && progress_said.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "[chaos] converging for {:.0?}: master's last task {last}, slave's latest {finished}, {unfinished} unfinished",
                writers_stopped.elapsed()
            );
            progress_said = Instant::now();
        }
        if unfinished == 0 && finished >= last {
            // Settled transactions may still have made tasks: ask the master once more.
            let again = check!(master_last());
            if again == last {
                break;
            }
            last = again;
            continue;
        }
        if Instant::now() > deadline {
            return Err((
                f,
                format!(
                    "the slave did not catch up within {limit:?}: master's last task {last}, slave's latest finished {finished}, {unfinished} unfinished"
                ),
            ));
        }
        if master_checked.elapsed() > Duration::from_secs(5) {
            last = check!(master_last());
            master_checked = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let converge = writers_stopped.elapsed();
    f.insert("tasks".into(), json!(last));
    f.insert("backlogAtStop".into(), json!(backlog.unwrap_or(0)));
    f.insert(
        "convergeSeconds".into(),
        json!((converge.as_secs_f64() * 10.0).round() / 10.0),
    );
    say(format!("caught up with task {last} in {converge:?}"));
    let master_ids = ints(
        &check!(rows_retry(
            &pair.master,
            master_status,
            Duration::from_secs(30)
        )),
        "taskId",
    );
    let slave_rows = check!(rows_retry(
        &pair.slave,
        slave_status,
        Duration::from_secs(30)
    ));
    if let Some(r) = slave_rows.iter().find(|r| r["state"] != "FINISHED") {
        return Err((
            f,
            format!("a slave task is not FINISHED after catching up: {r}"),
        ));
    }

    // Exactly the master's tasks: the same ids over the span both keep, without gaps, each once.
    let slave_ids = ints(&slave_rows, "taskId");
    let from = master_ids
        .iter()
        .min()
        .copied()
        .unwrap_or(1)
        .max(slave_ids.iter().min().copied().unwrap_or(1));
    let window = |v: &[i64]| -> Vec<i64> { v.iter().copied().filter(|i| *i >= from).collect() };
    let (mw, sw) = (window(&master_ids), window(&slave_ids));
    let expected: Vec<i64> = (from..=last).collect();
    if mw != expected || sw != expected {
        return Err((
            f,
            format!(
                "task ids differ from {from} to {last}: master has {} ({} missing), slave has {} ({} missing)",
                mw.len(),
                expected.len().saturating_sub(mw.len()),
                sw.len(),
                expected.len().saturating_sub(sw.len())
            ),
        ));
    }
    f.insert("taskIdsCompared".into(), json!(expected.len()));
    let duplicates = pair
        .slave
        .read_log("controller1")
        .matches("duplicate replay rolled back")
        .count();
    f.insert("duplicateReplaysRefused".into(), json!(duplicates));

    // Every acknowledged write is on the master and on the slave.
    for m in models {
        for (side, c) in [("master", &pair.master), ("slave", &pair.slave)] {
            let got = check!(runtime.block_on(read_table(c, m)));
            check!(m.check(side, &got));
        }
    }
    let total_rows: usize = models.iter().map(|m| m.present().len()).sum();
    f.insert("rowsAcked".into(), json!(total_rows));

    // The DDL writer's databases exist on both clusters or on neither, as acknowledged.
    let fates = ddl_fates.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut dbs = vec!["dfs://chaos_a".to_string(), "dfs://chaos_b".to_string()];
    let mut dropped = 0;
    let mut not_replicated = 0;
    for (db, fate) in &fates {
        let exists = |c: &Cluster| -> Result<bool, String> {
            let out = console_retry(
                c,
                ADMIN_JSON,
                &format!("existsDatabase(\"{db}\")"),
                Duration::from_secs(30),
            )?;
            Ok(out.trim() == "true")
        };
        let (m, s) = (check!(exists(&pair.master)), check!(exists(&pair.slave)));
        // A database made on the master whose replication flag never turned on (the call
        // after `database(...)` was not acknowledged) is rightly not on the slave.
        if m && !s && *fate == DbFate::Unknown {
            let flag = check!(console_retry(
                &pair.master,
                ADMIN_JSON,
                &format!("schema(database(\"{db}\")).clusterReplicationEnabled"),
                Duration::from_secs(30),
            ));
            if flag.trim() == "false" {
                not_replicated += 1;
                continue;
            }
        }
        let ok = m == s
            && match fate {
                DbFate::Exists => m,
                DbFate::Dropped => !m,
                DbFate::Unknown => true,
            };
        if !ok {
            return Err((
                f,
                format!("{db} ({fate:?}): exists on the master {m}, on the slave {s}"),
            ));
        }
        if m {
            dbs.push(db.clone());
        } else {
            dropped += 1;
        }
    }
    f.insert("databasesCreated".into(), json!(fates.len()));
    f.insert("databasesDropped".into(), json!(dropped));
    f.insert("databasesNotReplicated".into(), json!(not_replicated));

    // checkClusterReplicationConsistency: every partition equal (retried for a while: a
    // transaction decided while its coordinator was down becomes visible on the master's
    // participants when they settle it).
    let mut partitions = 0;
    let mut master_rows = 0;
    let started = Instant::now();
    for db in &dbs {
        let script = format!("checkClusterReplicationConsistency(\"{db}\")");
        loop {
            let r = check!(rows_retry(&pair.slave, &script, Duration::from_secs(30)));
            let unequal: Vec<&Json> = r
                .iter()
                .filter(|x| x["equal"] != Json::Bool(true))
                .collect();
            if unequal.is_empty() {
                partitions += r.len();
                master_rows += ints(&r, "masterRows").iter().sum::<i64>();
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err((f, format!("{db} differs: {unequal:?}")));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    f.insert("partitionsEqual".into(), json!(partitions));
    f.insert("rows".into(), json!(master_rows));

    // No process panicked.
    for (name, c) in [("master", &pair.master), ("slave", &pair.slave)] {
        for alias in
            std::iter::once(&c.controller.alias).chain(c.datanodes.iter().map(|n| &n.alias))
        {
            if c.read_log(alias).contains("panicked") {
                return Err((f, format!("the {name}'s {alias} panicked (see its log)")));
            }
        }
    }
    Ok(f)
}

fn wait_up(c: &Cluster, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    let total = c.datanodes.len() + 1;
    while start.elapsed() < limit {
        if let Some(states) = c.node_states() {
            if states.len() == total && states.iter().all(|(_, s)| s == "up") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "not every node is up after {limit:?}: {:?}",
        c.node_states()
    ))
}

/// A writer's table as `id -> v`, read on a data node of `c`.
async fn read_table(c: &Cluster, m: &Model) -> Result<BTreeMap<i32, i64>, String> {
    let sql = format!("select id, v from loadTable(\"{}\", \"{}\")", m.db, m.table);
    let mut last = String::new();
    for _ in 0..30 {
        for n in &c.datanodes {
            let Ok(client) = Client::connect(&n.site(), "admin", "123456").await else {
                continue;
            };
            match client.query(&sql).await {
                Ok(t) => {
                    let (Some(Vector::Int(ids)), Some(Vector::Long(vs))) =
                        (t.column("id"), t.column("v"))
                    else {
                        return Err(format!("{sql}: unexpected columns"));
                    };
                    return Ok(ids.iter().copied().zip(vs.iter().copied()).collect());
                }
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("{sql} failed: {last}"))
}
