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

mod faults;
mod writers;

use faults::inject_faults;
use writers::{ddl_writer, row_writer};

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
        "resyncs": faults.resyncs,
        "bootstraps": faults.bootstraps,
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
            // A bootstrap or re-sync still sending makes more tasks: wait for it.
            let boots = check!(rows_retry(
                &pair.master,
                "rpc(getControllerAlias(), getClusterReplicationBootstrapStatus)",
                Duration::from_secs(30)
            ));
            let sending = texts(&boots, "state")
                .iter()
                .filter(|s| *s != "DONE" && *s != "ENDED")
                .count();
            // Settled transactions may still have made tasks: ask the master once more.
            let again = check!(master_last());
            if again == last && sending == 0 {
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
