//! `xrepl-bench`: benchmarks through the Rust client API against a running cluster.
//! Prints one JSON object per line, each with at least `workload`, `rows` and `seconds`.
//!
//! `xrepl-bench ingest --host H`: the tutorial's K-line table (5,000 securities x 242
//! minutes = 1,210,000 rows, 9 columns, VALUE-partitioned by date), appended once in one
//! transaction and once in batches of 10,000 rows.
//!
//! `xrepl-bench master --label L [--replicate] [--pull CTL] --hosts H1,H2`: the master's write
//! throughput: the K-line ingest (three single-transaction runs) and a stream of small
//! transactions (10 rows each, 4 clients spread over the data nodes), on databases that are
//! replicated or not. With `--pull`, a slave is played in the same process: it pulls every task
//! from the master controller, fetches its data from the master data node and acknowledges it,
//! as a slave cluster does, so the master serves while it writes.
//!
//! `xrepl-bench replication --host MASTER_DN --slave SLAVE_DN --hosts H1,H2`: replication lag
//! between a running master and slave: (a) the tutorial's 1.21 M-row append, from the
//! master's commit to the slave's count matching (three runs); (b) a stream of 10-row
//! transactions from 4 clients: per task, the slave's finishTime minus the master's
//! submitTime (both recorded by the controllers, in their commit steps), and the catch-up time
//! after the stream stops.
//!
//! `xrepl-bench memory --pid-file CTL.pid --pull CTL --hosts H1,H2 [--seconds S]`: the
//! controller's resident memory, sampled every 2 s through a long stream of small
//! transactions on a replicated database while a played slave pulls and acknowledges every
//! task, and its growth per transaction after the first quarter (which should be about 0).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use xrepl_core::value::{Table, Vector};
use xrepl_proto::client::Client;
use xrepl_proto::master_client::MasterClient;

#[derive(Parser)]
#[command(about = "xrepl benchmarks (see docs/benchmarks.md)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8849")]
    host: String,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, default_value = "123456")]
    password: String,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// The tutorial's master script: data generation in the session, then its append!.
    Tutorial,
    /// The 1.21 M-row K-line ingest, as one transaction and in batches.
    Ingest {
        /// Rows per transaction in the batched run.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
    /// Replication lag: the 1.21 M-row append and a stream of small transactions.
    Replication {
        /// A data node of the slave cluster.
        #[arg(long)]
        slave: String,
        /// Master data nodes the small-transaction clients spread over (comma-separated).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Length of the small-transaction stream.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Catch-up: with the slave stopped, the master commits `tasks` 10-row transactions
    /// from `clients` clients; then the slave starts, and the time until it has finished them
    /// all gives its tasks per second.
    CatchUp {
        /// A data node of the slave cluster.
        #[arg(long)]
        slave: String,
        /// Master data nodes the clients spread over (comma-separated).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        tasks: u64,
        /// Name of this run in the output (`replication_catch_up[_<label>]`).
        #[arg(long)]
        label: Option<String>,
    },
    /// Only the stream of small transactions (for profiling and memory): creates the
    /// database, then appends 10-row tables from `clients` clients for `seconds`.
    SmallTx {
        /// Turn replication on for the database.
        #[arg(long)]
        replicate: bool,
        /// Data nodes the clients spread over (comma-separated).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Controller memory over a long stream of small transactions with replication on and a
    /// slave pulling and acknowledging every task: the controller's resident memory sampled
    /// as the stream runs, and its growth per transaction after the warm-up.
    Memory {
        /// The controller's pid file (its memory is read from /proc).
        #[arg(long)]
        pid_file: std::path::PathBuf,
        /// The master controller a slave is played against (host:port).
        #[arg(long)]
        pull: String,
        /// Data nodes the clients spread over (comma-separated).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
    },
    /// Master write overhead of replication: ingest and small transactions.
    Master {
        /// Name of this configuration in the output.
        #[arg(long)]
        label: String,
        /// Turn replication on for the benchmark's databases.
        #[arg(long)]
        replicate: bool,
        /// Play a slave pulling from this master controller (host:port).
        #[arg(long)]
        pull: Option<String>,
        /// Data nodes the small-transaction clients spread over (comma-separated).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Length of the small-transaction stream.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

/// Raw bytes per K-line row: SYMBOL(6) + DATETIME(4) + 5 DOUBLE(40) + INT(4) + DOUBLE(8).
const ROW_BYTES: f64 = 62.0;

/// A small deterministic generator (xorshift64*), so every run appends the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn price(&mut self) -> f64 {
        (10.0 + (self.next() % 10_000) as f64 / 100.0 * 1.0).round()
            + (self.next() % 100) as f64 / 100.0
    }
}

/// The tutorial's table: every security at every minute of 2023.01.08's two sessions.
fn kline() -> Table {
    let minutes: Vec<i32> = (0..121)
        .map(|i| 1_673_170_200 + i * 60) // 2023.01.08T09:30:00
        .chain((0..121).map(|i| 1_673_182_800 + i * 60)) // 2023.01.08T13:00:00
        .collect();
    let n = 5_000 * minutes.len();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut sec = Vec::with_capacity(n);
    let mut time = Vec::with_capacity(n);
    for s in 0..5_000 {
        let id = format!("{s:06}");
        for m in &minutes {
            sec.push(id.clone());
            time.push(*m);
        }
    }
    let mut px = || (0..n).map(|_| rng.price()).collect::<Vec<f64>>();
    let (pre, open, high, low, last) = (px(), px(), px(), px(), px());
    let mut rng = Rng(7);
    let volume: Vec<i32> = (0..n).map(|_| 100 + (rng.next() % 100) as i32).collect();
    let amount: Vec<f64> = last
        .iter()
        .zip(&volume)
        .map(|(p, v)| (p * f64::from(*v) * 100.0).round() / 100.0)
        .collect();
    Table {
        names: [
            "SecurityID",
            "DateTime",
            "PreClosePx",
            "OpenPx",
            "HighPx",
            "LowPx",
            "LastPx",
            "Volume",
            "Amount",
        ]
        .map(String::from)
        .to_vec(),
        columns: vec![
            Vector::Symbol(sec),
            Vector::DateTime(time),
            Vector::Double(pre),
            Vector::Double(open),
            Vector::Double(high),
            Vector::Double(low),
            Vector::Double(last),
            Vector::Int(volume),
            Vector::Double(amount),
        ],
    }
}

fn slice(t: &Table, from: usize, to: usize) -> Table {
    let idx: Vec<usize> = (from..to).collect();
    Table {
        names: t.names.clone(),
        columns: t
            .columns
            .iter()
            .map(|c| xrepl_query::ops::take_indices(c, &idx))
            .collect(),
    }
}

const DB: &str = "dfs://bench_ingest";

async fn fresh_table(c: &Client) -> Result<(), String> {
    c.run(&format!(
        r#"if (existsDatabase("{DB}")) {{ dropDatabase("{DB}") }}
db = database("{DB}", VALUE, 2023.01.01..2023.12.31)
schemaTable = table(1:0, `SecurityID`DateTime`PreClosePx`OpenPx`HighPx`LowPx`LastPx`Volume`Amount, [SYMBOL, DATETIME, DOUBLE, DOUBLE, DOUBLE, DOUBLE, DOUBLE, INT, DOUBLE])
db.createPartitionedTable(table=schemaTable, tableName="kline", partitionColumns=`DateTime)"#
    ))
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

async fn count(c: &Client) -> Result<i64, String> {
    let t = c
        .query(&format!(
            "select count(*) from loadTable(\"{DB}\", \"kline\")"
        ))
        .await
        .map_err(|e| e.to_string())?;
    match t.columns.first().and_then(|v| v.get(0)) {
        Some(xrepl_core::value::Scalar::Long(n)) => Ok(n),
        other => Err(format!("unexpected count {other:?}")),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[allow(clippy::print_stdout)]
async fn ingest(c: &Client, batch: usize) -> Result<(), String> {
    let gen_start = Instant::now();
    let data = kline();
    let rows = data.rows();
    let gen_s = gen_start.elapsed().as_secs_f64();

    fresh_table(c).await?;
    let start = Instant::now();
    c.append(DB, "kline", data.clone())
        .await
        .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let n = count(c).await?;
    if n != rows as i64 {
        return Err(format!("expected {rows} rows after the append, found {n}"));
    }
    println!(
        "{}",
        serde_json::json!({
            "workload": "ingest_single_transaction",
            "rows": rows,
            "seconds": secs,
            "rows_per_s": rows as f64 / secs,
            "mb_per_s": rows as f64 * ROW_BYTES / secs / 1e6,
            "commit_latency_ms": secs * 1e3,
            "client_generation_s": gen_s,
        })
    );

    fresh_table(c).await?;
    let mut lat = Vec::new();
    let start = Instant::now();
    for from in (0..rows).step_by(batch.max(1)) {
        let part = slice(&data, from, (from + batch).min(rows));
        let t = Instant::now();
        c.append(DB, "kline", part)
            .await
            .map_err(|e| e.to_string())?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let secs = start.elapsed().as_secs_f64();
    let n = count(c).await?;
    if n != rows as i64 {
        return Err(format!("expected {rows} rows after the batches, found {n}"));
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "workload": format!("ingest_batches_{batch}"),
            "rows": rows,
            "seconds": secs,
            "transactions": lat.len(),
            "rows_per_s": rows as f64 / secs,
            "mb_per_s": rows as f64 * ROW_BYTES / secs / 1e6,
            "commit_latency_ms_p50": percentile(&lat, 0.5),
            "commit_latency_ms_p99": percentile(&lat, 0.99),
            "commit_latency_ms_max": percentile(&lat, 1.0),
        })
    );
    c.run(&format!("dropDatabase(\"{DB}\")"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The tutorial's master statements, as tests/scripts/tutorial_master.dos holds them.
const TUTORIAL: &str = include_str!("../../../tests/scripts/tutorial_master.dos");

#[allow(clippy::print_stdout)]
async fn tutorial(c: &Client) -> Result<(), String> {
    const APPEND: &str = "loadTable(dbName, tbName).append!(t)";
    let at = TUTORIAL
        .find(APPEND)
        .ok_or("the tutorial script has no append! line")?;
    let (setup, rest) = TUTORIAL.split_at(at);
    // The DDL before the generation, timed apart so that generation is measured alone.
    let gen_at = setup
        .find("n = 1210000")
        .ok_or("the tutorial script has no 'n = ' line")?;
    let (ddl, generation) = setup.split_at(gen_at);
    let err = |e: xrepl_proto::client::ClientError| e.to_string();
    let total = Instant::now();
    c.run(ddl).await.map_err(err)?;
    let t = Instant::now();
    c.run(generation).await.map_err(err)?;
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    c.run(rest).await.map_err(err)?;
    let append_s = t.elapsed().as_secs_f64();
    let total_s = total.elapsed().as_secs_f64();
    let n = c
        .query("select count(*) from loadTable(\"dfs://testDB\", \"testTB\")")
        .await
        .map_err(err)?
        .columns
        .first()
        .and_then(|v| v.get(0))
        .map(|s| s.render())
        .unwrap_or_default();
    if n != "1210000" {
        return Err(format!("expected 1210000 rows, found {n}"));
    }
    for (workload, secs) in [
        ("tutorial_generation", gen_s),
        ("tutorial_append_and_count", append_s),
        ("tutorial_total", total_s),
    ] {
        println!(
            "{}",
            serde_json::json!({ "workload": workload, "rows": 1_210_000, "seconds": secs })
        );
    }
    Ok(())
}

/// A slave played in-process: pulls, fetches every task's data, acknowledges.
struct Puller {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Result<(u64, u64, u64), String>>,
}

impl Puller {
    fn start(master: String) -> Puller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            let m = MasterClient::connect(&master, "admin", "123456", "bench-slave:0", &tls())
                .await
                .map_err(|e| e.to_string())?;
            m.register().await.map_err(|e| e.to_string())?;
            let (mut after, mut tasks, mut bytes) = (0u64, 0u64, 0u64);
            let mut finished: Vec<u64> = Vec::new();
            loop {
                let (got, data, _) = m
                    .pull(after, &finished, 1000, 200, 8 << 20)
                    .await
                    .map_err(|e| e.to_string())?;
                finished.clear();
                if got.is_empty() && flag.load(Ordering::Relaxed) {
                    return Ok((tasks, bytes, after));
                }
                let came: std::collections::HashMap<u64, usize> =
                    data.iter().map(|d| (d.task_id, d.bytes.len())).collect();
                for t in got {
                    bytes += match came.get(&t.task_id) {
                        Some(&n) => n as u64,
                        None => m
                            .fetch_task_bytes(&t)
                            .await
                            .map_err(|e| e.to_string())?
                            .len() as u64,
                    };
                    tasks += 1;
                    after = t.task_id;
                    finished.push(t.task_id);
                }
            }
        });
        Puller { stop, handle }
    }

    /// Stops once everything queued is pulled; answers (tasks, bytes, last task id).
    async fn finish(self) -> Result<(u64, u64, u64), String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.map_err(|e| e.to_string())?
    }
}

const SMALL_DB: &str = "dfs://bench_small";

#[allow(clippy::print_stdout)]
async fn master(
    c: &Client,
    label: &str,
    replicate: bool,
    pull: Option<String>,
    hosts: Vec<String>,
    clients: usize,
    seconds: f64,
) -> Result<(), String> {
    let err = |e: xrepl_proto::client::ClientError| e.to_string();
    let flag = |db: &str| {
        if replicate {
            format!("setDatabaseForClusterReplication(database(\"{db}\"), true)")
        } else {
            String::new()
        }
    };
    let puller = pull.map(Puller::start);
    let pull_start = Instant::now();
    // The K-line ingest, three times on a fresh table.
    let data = kline();
    let rows = data.rows();
    let mut runs = Vec::new();
    for _ in 0..3 {
        fresh_table(c).await?;
        c.run(&flag(DB)).await.map_err(err)?;
        let start = Instant::now();
        c.append(DB, "kline", data.clone()).await.map_err(err)?;
        runs.push(start.elapsed().as_secs_f64());
        if count(c).await? != rows as i64 {
            return Err("the ingest lost rows".into());
        }
    }
    drop(data);
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "workload": format!("master_ingest_{label}"),
            "rows": rows,
            "seconds": sorted[1],
            "runs_s": runs,
            "rows_per_s": rows as f64 / sorted[1],
        })
    );

    // Small transactions: 10 rows each, `clients` clients over the data nodes.
    c.run(&format!(
        r#"if (existsDatabase("{SMALL_DB}")) {{ dropDatabase("{SMALL_DB}") }}
db = database("{SMALL_DB}", VALUE, 2023.01.01..2023.01.31)
db.createPartitionedTable(table(1:0, `d`id`v, [DATE, INT, DOUBLE]), "t", `d)
{}"#,
        flag(SMALL_DB)
    ))
    .await
    .map_err(err)?;
    let hosts = if hosts.is_empty() {
        vec!["127.0.0.1:8849".to_string()]
    } else {
        hosts
    };
    let start = Instant::now();
    let mut lat = small_tx_stream(&hosts, clients, seconds).await?;
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "workload": format!("master_small_tx_{label}"),
            "rows": lat.len() * 10,
            "seconds": secs,
            "transactions": lat.len(),
            "clients": clients,
            "tx_per_s": lat.len() as f64 / secs,
            "commit_latency_ms_p50": percentile(&lat, 0.5),
            "commit_latency_ms_p99": percentile(&lat, 0.99),
        })
    );
    if let Some(p) = puller {
        let (tasks, bytes, last) = p.finish().await?;
        println!(
            "{}",
            serde_json::json!({
                "workload": format!("master_pulled_{label}"),
                "rows": 0,
                "seconds": pull_start.elapsed().as_secs_f64(),
                "tasks_pulled": tasks,
                "task_bytes_fetched": bytes,
                "last_task_id": last,
            })
        );
    }
    Ok(())
}

/// A column of a status table as i64 (ids and nanosecond times).
fn longs(t: &Table, name: &str) -> Result<Vec<i64>, String> {
    match t.column(name) {
        Some(Vector::Long(v) | Vector::NanoTimestamp(v)) => Ok(v.clone()),
        other => Err(format!("column {name}: {other:?}")),
    }
}

/// Waits until the slave has finished every task up to the master's last; returns when.
/// Drops and re-creates the replicated database of small transactions on the master, and
/// waits until the slave has it too.
async fn fresh_small_db(m: &Client, s: &Client) -> Result<(), String> {
    m.run(&format!(
        r#"if (existsDatabase("{SMALL_DB}")) {{ dropDatabase("{SMALL_DB}") }}
db = database("{SMALL_DB}", VALUE, 2023.01.01..2023.01.31)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `d`id`v, [DATE, INT, DOUBLE]), "t", `d)"#
    ))
    .await
    .map_err(|e| e.to_string())?;
    caught_up(m, s).await?;
    Ok(())
}

async fn caught_up(m: &Client, s: &Client) -> Result<Instant, String> {
    let err = |e: xrepl_proto::client::ClientError| e.to_string();
    let master = m
        .query("rpc(getControllerAlias(), getMasterReplicationStatus)")
        .await
        .map_err(err)?;
    let last = longs(&master, "taskId")?.into_iter().max().unwrap_or(0);
    let limit = Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let t = s
            .query("rpc(getControllerAlias(), getClusterReplicationMetrics, -1)")
            .await
            .map_err(err)?;
        let unfinished = longs(&t, "unfinishedTasks")?.first().copied().unwrap_or(1);
        if unfinished == 0 {
            let st = s
                .query("rpc(getControllerAlias(), getSlaveReplicationStatus, 1)")
                .await
                .map_err(err)?;
            if longs(&st, "taskId")?.into_iter().max().unwrap_or(0) >= last {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > limit {
            return Err(format!(
                "the slave did not catch up with task {last} in 300 s"
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[allow(clippy::print_stdout)]
async fn replication(
    m: &Client,
    slave: &str,
    hosts: Vec<String>,
    clients: usize,
    seconds: f64,
) -> Result<(), String> {
    let err = |e: xrepl_proto::client::ClientError| e.to_string();
    let s = connect(slave, "admin", "123456").await.map_err(err)?;
    // (a) The tutorial's append: master commit -> the slave's count matches.
    let data = kline();
    let rows = data.rows() as i64;
    let mut lags = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..3 {
        // Replicated before the table is made, so that the slave has the table too.
        m.run(&format!(
            r#"if (existsDatabase("{DB}")) {{ dropDatabase("{DB}") }}
db = database("{DB}", VALUE, 2023.01.01..2023.12.31)
setDatabaseForClusterReplication(db, true)
schemaTable = table(1:0, `SecurityID`DateTime`PreClosePx`OpenPx`HighPx`LowPx`LastPx`Volume`Amount, [SYMBOL, DATETIME, DOUBLE, DOUBLE, DOUBLE, DOUBLE, DOUBLE, INT, DOUBLE])
db.createPartitionedTable(table=schemaTable, tableName="kline", partitionColumns=`DateTime)"#
        ))
        .await
        .map_err(err)?;
        caught_up(m, &s).await?;
        let start = Instant::now();
        m.append(DB, "kline", data.clone()).await.map_err(err)?;
        let committed = Instant::now();
        loop {
            if count(&s).await.ok() == Some(rows) {
                break;
            }
            if committed.elapsed().as_secs() > 300 {
                return Err("the slave's count did not match in 300 s".into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        lags.push(committed.elapsed().as_secs_f64());
        totals.push(start.elapsed().as_secs_f64());
    }
    drop(data);
    let mut sorted = lags.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "workload": "replication_append_1210000",
            "rows": rows,
            "seconds": sorted[1],
            "commit_to_slave_count_s": lags,
            "append_start_to_slave_count_s": totals,
        })
    );

    // (b) Small transactions; lag per task from the controllers' own timestamps.
    fresh_small_db(m, &s).await?;
    let first = longs(
        &m.query("rpc(getControllerAlias(), getMasterReplicationStatus)")
            .await
            .map_err(err)?,
        "taskId",
    )?
    .into_iter()
    .max()
    .unwrap_or(0);
    let hosts = if hosts.is_empty() {
        vec!["127.0.0.1:8849".to_string()]
    } else {
        hosts
    };
    let txs = small_tx_stream(&hosts, clients, seconds).await?.len() as u64;
    let stopped = Instant::now();
    let done = caught_up(m, &s).await?;
    let catch_up_s = done.duration_since(stopped).as_secs_f64();
    let master = m
        .query("rpc(getControllerAlias(), getMasterReplicationStatus)")
        .await
        .map_err(err)?;
    let slave_rows = s
        .query("rpc(getControllerAlias(), getSlaveReplicationStatus)")
        .await
        .map_err(err)?;
    let submitted: std::collections::HashMap<i64, i64> = longs(&master, "taskId")?
        .into_iter()
        .zip(longs(&master, "submitTime")?)
        .collect();
    let mut lag: Vec<f64> = longs(&slave_rows, "taskId")?
        .into_iter()
        .zip(longs(&slave_rows, "finishTime")?)
        .filter(|(id, _)| *id > first as i64)
        .filter_map(|(id, fin)| submitted.get(&id).map(|sub| (fin - sub) as f64 / 1e6))
        .collect();
    lag.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "workload": "replication_small_tx_stream",
            "rows": txs * 10,
            "seconds": seconds,
            "transactions": txs,
            "clients": clients,
            "tx_per_s": txs as f64 / seconds,
            "tasks_measured": lag.len(),
            "lag_ms_p50": percentile(&lag, 0.5),
            "lag_ms_p99": percentile(&lag, 0.99),
            "lag_ms_max": lag.last().copied().unwrap_or(0.0),
            "catch_up_s": catch_up_s,
        })
    );
    Ok(())
}

/// `clients` clients over `hosts` commit `n` 10-row transactions to `SMALL_DB` in all.
async fn small_tx_count(hosts: &[String], clients: usize, n: u64) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let host = hosts[w % hosts.len()].clone();
            let next = next.clone();
            tokio::spawn(async move {
                let c = connect(&host, "admin", "123456")
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<(), String>(());
                    }
                    let i = i as i32;
                    let t = Table {
                        names: vec!["d".into(), "id".into(), "v".into()],
                        columns: vec![
                            Vector::Date(vec![19_358 + (i % 30); 10]),
                            Vector::Int((0..10).map(|k| i * 10 + k).collect()),
                            Vector::Double(vec![f64::from(i); 10]),
                        ],
                    };
                    c.append(SMALL_DB, "t", t)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn catch_up(
    m: &Client,
    slave: &str,
    hosts: Vec<String>,
    clients: usize,
    tasks: u64,
    label: Option<String>,
) -> Result<(), String> {
    let err = |e: xrepl_proto::client::ClientError| e.to_string();
    let s = connect(slave, "admin", "123456").await.map_err(err)?;
    fresh_small_db(m, &s).await?;
    s.run("rpc(getControllerAlias(), stopClusterReplication)")
        .await
        .map_err(err)?;
    let hosts = if hosts.is_empty() {
        vec!["127.0.0.1:8849".to_string()]
    } else {
        hosts
    };
    let start = Instant::now();
    small_tx_count(&hosts, clients, tasks).await?;
    let master_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    s.run("rpc(getControllerAlias(), startClusterReplication)")
        .await
        .map_err(err)?;
    caught_up(m, &s).await?;
    // A task is FINISHED once its decision is durable; its rows become visible on each
    // participant when the commit message reaches it a moment later. Equal means the rows.
    let count = || async {
        let t = s
            .query(&format!(
                "select count(*) from loadTable(\"{SMALL_DB}\", \"t\")"
            ))
            .await
            .map_err(err)?;
        Ok::<i64, String>(
            t.columns
                .first()
                .and_then(|c| match c {
                    Vector::Long(v) => v.first().copied(),
                    Vector::Int(v) => v.first().map(|x| i64::from(*x)),
                    _ => None,
                })
                .unwrap_or(0),
        )
    };
    let limit = Instant::now() + std::time::Duration::from_secs(10);
    let mut rows = count().await?;
    while rows != tasks as i64 * 10 && Instant::now() < limit {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        rows = count().await?;
    }
    let secs = start.elapsed().as_secs_f64();
    if rows != tasks as i64 * 10 {
        return Err(format!(
            "the slave holds {rows} rows after catching up, not {}",
            tasks * 10
        ));
    }
    let workload = match label {
        Some(l) => format!("replication_catch_up_{l}"),
        None => "replication_catch_up".to_string(),
    };
    println!(
        "{}",
        serde_json::json!({
            "workload": workload,
            "rows": rows,
            "seconds": secs,
            "tasks": tasks,
            "tasks_per_s": tasks as f64 / secs,
            "master_commit_s": master_s,
        })
    );
    Ok(())
}

/// The small-transaction stream alone, on a fresh `SMALL_DB`.
#[allow(clippy::print_stdout)]
async fn small_tx_only(
    c: &Client,
    replicate: bool,
    hosts: Vec<String>,
    clients: usize,
    seconds: f64,
) -> Result<(), String> {
    let flag = if replicate {
        format!("setDatabaseForClusterReplication(database(\"{SMALL_DB}\"), true)")
    } else {
        String::new()
    };
    c.run(&format!(
        r#"if (existsDatabase("{SMALL_DB}")) {{ dropDatabase("{SMALL_DB}") }}
db = database("{SMALL_DB}", VALUE, 2023.01.01..2023.01.31)
db.createPartitionedTable(table(1:0, `d`id`v, [DATE, INT, DOUBLE]), "t", `d)
{flag}"#
    ))
    .await
    .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut lat = small_tx_stream(&hosts, clients, seconds).await?;
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "workload": "small_tx",
            "rows": lat.len() * 10,
            "seconds": secs,
            "transactions": lat.len(),
            "clients": clients,
            "tx_per_s": lat.len() as f64 / secs,
            "commit_latency_ms_p50": percentile(&lat, 0.5),
            "commit_latency_ms_p99": percentile(&lat, 0.99),
        })
    );
    Ok(())
}

/// `clients` clients over `hosts` append 10-row tables to `SMALL_DB` (one partition per
/// transaction, rotating over 30 days) for `seconds`; returns each commit's latency in ms.
async fn small_tx_stream(
    hosts: &[String],
    clients: usize,
    seconds: f64,
) -> Result<Vec<f64>, String> {
    small_tx_counted(hosts, clients, seconds, Arc::default()).await
}

/// [`small_tx_stream`], counting commits in `done` as they happen.
async fn small_tx_counted(
    hosts: &[String],
    clients: usize,
    seconds: f64,
    done: Arc<AtomicU64>,
) -> Result<Vec<f64>, String> {
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let host = hosts[w % hosts.len()].clone();
            let done = done.clone();
            tokio::spawn(async move {
                let c = connect(&host, "admin", "123456")
                    .await
                    .map_err(|e| e.to_string())?;
                let mut lat = Vec::new();
                let mut i = 0i32;
                while Instant::now() < deadline {
                    let day = 19_358 + ((w as i32 * 7 + i) % 30);
                    let t = Table {
                        names: vec!["d".into(), "id".into(), "v".into()],
                        columns: vec![
                            Vector::Date(vec![day; 10]),
                            Vector::Int((0..10).map(|k| i * 10 + k).collect()),
                            Vector::Double(vec![f64::from(i); 10]),
                        ],
                    };
                    let t0 = Instant::now();
                    c.append(SMALL_DB, "t", t)
                        .await
                        .map_err(|e| e.to_string())?;
                    lat.push(t0.elapsed().as_secs_f64() * 1e3);
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                Ok::<Vec<f64>, String>(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await.map_err(|e| e.to_string())??);
    }
    Ok(lat)
}

/// A process's resident memory in bytes (0 when it cannot be read).
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The slope of the least-squares line through `points` (x, y).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

#[allow(clippy::print_stdout)]
async fn memory(
    c: &Client,
    pid_file: &std::path::Path,
    pull: String,
    hosts: Vec<String>,
    clients: usize,
    seconds: f64,
) -> Result<(), String> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .map_err(|e| format!("{}: {e}", pid_file.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", pid_file.display()))?;
    c.run(&format!(
        r#"if (existsDatabase("{SMALL_DB}")) {{ dropDatabase("{SMALL_DB}") }}
db = database("{SMALL_DB}", VALUE, 2023.01.01..2023.01.31)
db.createPartitionedTable(table(1:0, `d`id`v, [DATE, INT, DOUBLE]), "t", `d)
setDatabaseForClusterReplication(db, true)"#
    ))
    .await
    .map_err(|e| e.to_string())?;
    let puller = Puller::start(pull);
    let before = rss_of(pid);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    // (seconds, transactions, bytes) every 2 s while the stream runs.
    let sampler = {
        let (done, stop) = (done.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = vec![];
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                samples.push((
                    start.elapsed().as_secs_f64(),
                    done.load(Ordering::Relaxed),
                    rss_of(pid),
                ));
            }
            samples
        })
    };
    let lat = small_tx_counted(&hosts, clients, seconds, done.clone()).await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.map_err(|e| e.to_string())?;
    let lat = lat?;
    let secs = start.elapsed().as_secs_f64();
    let (tasks, _, _) = puller.finish().await?;
    let after = rss_of(pid);
    // Growth after the warm-up (the first quarter: caches and buffers fill).
    let warm: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _, _)| *t >= seconds / 4.0)
        .map(|(_, n, b)| (*n as f64, *b as f64))
        .collect();
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{}",
        serde_json::json!({
            "workload": "controller_memory_stream",
            "rows": lat.len() * 10,
            "seconds": secs,
            "transactions": lat.len(),
            "tx_per_s": lat.len() as f64 / secs,
            "tasks_pulled": tasks,
            "rss_mb_before": mb(before),
            "rss_mb_after": mb(after),
            "rss_mb_max": samples.iter().map(|s| mb(s.2)).fold(mb(after), f64::max),
            "growth_bytes_per_tx_after_warmup": slope(&warm),
            "samples_s_tx_mb": samples
                .iter()
                .map(|(t, n, b)| (format!("{t:.0}"), n, format!("{:.1}", mb(*b))))
                .collect::<Vec<_>>(),
        })
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        let c = connect(&args.host, &args.user, &args.password)
            .await
            .map_err(|e| e.to_string())?;
        match args.workload {
            Workload::Ingest { batch } => ingest(&c, batch).await,
            Workload::Tutorial => tutorial(&c).await,
            Workload::Master {
                label,
                replicate,
                pull,
                hosts,
                clients,
                seconds,
            } => master(&c, &label, replicate, pull, hosts, clients, seconds).await,
            Workload::Memory {
                pid_file,
                pull,
                hosts,
                clients,
                seconds,
            } => memory(&c, &pid_file, pull, hosts, clients, seconds).await,
            Workload::Replication {
                slave,
                hosts,
                clients,
                seconds,
            } => replication(&c, &slave, hosts, clients, seconds).await,
            Workload::CatchUp {
                slave,
                hosts,
                clients,
                tasks,
                label,
            } => catch_up(&c, &slave, hosts, clients, tasks, label).await,
            Workload::SmallTx {
                replicate,
                hosts,
                clients,
                seconds,
            } => small_tx_only(&c, replicate, hosts, clients, seconds).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How the benchmark connects: over TLS when `XREPL_TLS_CA` names a CA file (scripts/bench.sh
/// sets it with `XREPL_BENCH_TLS=1`), else in plain text.
fn tls() -> xrepl_proto::rpc::ClientTls {
    static TLS: std::sync::OnceLock<xrepl_proto::rpc::ClientTls> = std::sync::OnceLock::new();
    TLS.get_or_init(|| match std::env::var_os("XREPL_TLS_CA") {
        Some(ca) => xrepl_proto::rpc::ClientTls::with_ca(std::path::Path::new(&ca))
            .unwrap_or_else(|e| panic!("XREPL_TLS_CA: {e}")),
        None => xrepl_proto::rpc::ClientTls::plain(),
    })
    .clone()
}

/// A logged-in session on `host` (see [`tls`]).
async fn connect(
    host: &str,
    user: &str,
    password: &str,
) -> Result<Client, xrepl_proto::client::ClientError> {
    Client::connect_with(host, user, password, &tls()).await
}
