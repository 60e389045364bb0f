//! `meta-memory [--tasks N] [--dir DIR]`: what the controller's metadata costs in memory per
//! queued task. Through the real metadata writer and store, a master's controller records N
//! commits of a replicated database, each making a task, while the one registered slave
//! finishes none (a slave stopped for a while), and every participant reports its decision
//! applied (as data nodes do). Prints one JSON line: resident memory before and after, and
//! the bytes per queued task.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use xrepl_controller::meta::{MetaCommand, MetaHandle};
use xrepl_core::catalog::{CatalogChange, PartitionScheme};
use xrepl_core::value::Vector;
use xrepl_proto::task::{OperationType, Scope, TaskMeta};
use xrepl_proto::txn::Verdict;

#[derive(Parser)]
#[command(about = "controller memory per queued replication task")]
struct Args {
    /// Tasks to queue.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: u64,
    /// Where to keep the metadata (a new folder under the system's temporary folder if not
    /// given; removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Commands in flight at once, so that the writer groups them as it does under load.
const IN_FLIGHT: u64 = 1_024;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn decide(tid: u64, task: Option<TaskMeta>, changes: Vec<CatalogChange>) -> MetaCommand {
    MetaCommand::Decide {
        tid,
        user: "admin".into(),
        verdict: Verdict::Commit,
        reason: String::new(),
        changes,
        task: task.map(Box::new),
        master: true,
        now_ns: 1,
        replay: vec![],
        participants: Some(vec!["dnode1".into()]),
    }
}

fn append_task(partition: u32) -> TaskMeta {
    TaskMeta {
        op: OperationType::Append,
        db: "dfs://memory".into(),
        table: "kline".into(),
        scope: Scope::Chunks {
            db: "dfs://memory".into(),
            table: "kline".into(),
            partitions: vec![partition],
        },
        src_host: "127.0.0.1".into(),
        src_port: 8849,
        data_written: true,
        data_bytes: 250,
        snapshot: None,
        for_slave: None,
    }
}

async fn run(args: Args, dir: PathBuf) -> Result<String, String> {
    let m = MetaHandle::open(&dir).map_err(|e| e.to_string())?;
    let (first, _) = m
        .lease_tids(args.tasks + 1)
        .await
        .map_err(|e| e.to_string())?;
    m.apply(decide(
        first,
        None,
        vec![
            CatalogChange::CreateDatabase {
                path: "dfs://memory".into(),
                scheme: PartitionScheme::Value(Vector::Int((0..30).collect())),
            },
            CatalogChange::SetReplication {
                path: "dfs://memory".into(),
                enabled: true,
            },
        ],
    ))
    .await
    .map_err(|e| e.to_string())?;
    m.apply(MetaCommand::RegisterSlave {
        slave: "stopped".into(),
        user: "admin".into(),
        max: 2,
        now_ms: 0,
    })
    .await
    .map_err(|e| e.to_string())?;
    let before_kb = rss_kb();
    let start = Instant::now();
    let mut next = first + 1;
    let last = first + args.tasks;
    while next <= last {
        let end = (next + IN_FLIGHT - 1).min(last);
        let calls: Vec<_> = (next..=end)
            .map(|tid| {
                let m = m.clone();
                tokio::spawn(async move {
                    m.apply(decide(tid, Some(append_task((tid % 30) as u32)), vec![]))
                        .await
                })
            })
            .collect();
        for c in calls {
            c.await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        m.apply(MetaCommand::Settle {
            node: "dnode1".into(),
            tids: (next..=end).collect(),
        })
        .await
        .map_err(|e| e.to_string())?;
        next = end + 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let after_kb = rss_kb();
    let (queued, decisions, ranges) =
        m.read(|s| (s.send.tasks.len(), s.decisions.len(), s.settled.ranges()));
    let per_task = (after_kb.saturating_sub(before_kb) * 1024) as f64 / args.tasks.max(1) as f64;
    Ok(serde_json::json!({
        "workload": "controller_memory_per_task",
        "tasks": args.tasks,
        "queued_tasks": queued,
        "decisions_kept": decisions,
        "settled_ranges": ranges,
        "seconds": secs,
        "rss_before_mb": before_kb as f64 / 1024.0,
        "rss_after_mb": after_kb as f64 / 1024.0,
        "bytes_per_queued_task": per_task,
        "mb_for_1m_tasks": per_task * 1e6 / 1048576.0 + before_kb as f64 / 1024.0,
    })
    .to_string())
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let args = Args::parse();
    let (dir, remove) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("xrepl-meta-memory-{}", std::process::id())),
            true,
        ),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = rt.block_on(run(args, dir.clone()));
    drop(rt);
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
        let mut wal = dir.into_os_string();
        wal.push(".wal");
        let _ = std::fs::remove_dir_all(PathBuf::from(wal));
    }
    match out {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
