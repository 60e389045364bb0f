//! The progress bar of a bootstrap or a re-sync that a statement of this console started
//! (`setDatabaseForClusterReplication(db, true)` on a master, `resyncClusterReplicationTable`
//! or `...Database` on a slave controller): it polls
//! `getClusterReplicationBootstrapStatus()` twice a second and redraws one line on standard
//! error (chunks, rows, bytes, rate, time left) until the job is done. Only on a terminal, or
//! with `XREPL_PROGRESS=1`; Ctrl-C stops the console, not the job.

use std::io::Write;
use std::time::{Duration, Instant};

use xrepl_core::value::{Scalar, Table, Value};

/// What a statement started, if anything to follow: the job named in its answer (a re-sync),
/// or the newest bootstrap (turning the flag on).
pub enum Follow {
    Job(i64),
    NewestBootstrap,
}

/// Whether `script` starts a bootstrap or a re-sync, and how to find it in the status.
pub fn follows(script: &str, outputs: &[Value]) -> Option<Follow> {
    if script.contains("resyncClusterReplication") {
        let job = outputs.iter().rev().find_map(|v| match v {
            Value::Scalar(Scalar::String(s)) => s
                .strip_prefix("re-sync ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok()),
            _ => None,
        })?;
        return Some(Follow::Job(job));
    }
    let compact: String = script.chars().filter(|c| !c.is_whitespace()).collect();
    (compact.contains("setDatabaseForClusterReplication(") && compact.contains(",true)"))
        .then_some(Follow::NewestBootstrap)
}

/// One job's row of the status table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub job: i64,
    pub db: String,
    pub table: String,
    pub state: String,
    pub chunks: i64,
    /// Done so far: applied on a slave, sent on a master.
    pub chunks_done: i64,
    pub rows: i64,
    pub bytes: i64,
}

impl Row {
    pub fn finished(&self) -> bool {
        self.state == "DONE" || self.state == "ENDED"
    }
}

/// The rows of a `getClusterReplicationBootstrapStatus()` table.
pub fn rows(t: &Table) -> Vec<Row> {
    let long = |name: &str, i: usize| match t.column(name).and_then(|c| c.get(i)) {
        Some(Scalar::Long(n)) => n,
        Some(Scalar::Int(n)) => i64::from(n),
        _ => 0,
    };
    let text = |name: &str, i: usize| match t.column(name).and_then(|c| c.get(i)) {
        Some(Scalar::String(s)) => s,
        _ => String::new(),
    };
    let slave = t.column("chunksApplied").is_some();
    (0..t.rows())
        .map(|i| Row {
            job: long("jobId", i),
            db: text("dbName", i),
            table: text("tableName", i),
            state: text("state", i),
            chunks: long("chunks", i),
            chunks_done: long(if slave { "chunksApplied" } else { "chunksSent" }, i)
                + long("chunksSkipped", i),
            rows: long("rowsSent", i),
            bytes: long(if slave { "bytesApplied" } else { "bytesSent" }, i),
        })
        .collect()
}

/// The row to follow.
pub fn pick(rows: &[Row], follow: &Follow) -> Option<Row> {
    match follow {
        Follow::Job(j) => rows.iter().find(|r| r.job == *j).cloned(),
        Follow::NewestBootstrap => rows.iter().max_by_key(|r| r.job).cloned(),
    }
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// One line: `dfs://db/pt [#####-----] 5/10 chunks  600,000 rows  38.2 MB  9.1 MB/s  ~4 s left`.
pub fn render(r: &Row, elapsed: Duration) -> String {
    const WIDTH: i64 = 24;
    let filled = if r.chunks > 0 {
        (r.chunks_done.min(r.chunks) * WIDTH) / r.chunks
    } else {
        WIDTH
    };
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = mb(r.bytes) / secs;
    let left = if r.finished() {
        r.state.to_lowercase()
    } else if r.chunks_done > 0 && r.chunks > r.chunks_done {
        let per_chunk = secs / r.chunks_done as f64;
        format!(
            "~{:.0} s left",
            per_chunk * (r.chunks - r.chunks_done) as f64
        )
    } else {
        "estimating".to_string()
    };
    let what = if r.table.is_empty() {
        r.db.clone()
    } else {
        format!("{}/{}", r.db, r.table)
    };
    format!(
        "{what} [{bar}] {}/{} chunks  {} rows  {:.1} MB  {:.1} MB/s  {left}",
        r.chunks_done.min(r.chunks),
        r.chunks,
        thousands(r.rows),
        mb(r.bytes),
        rate
    )
}

fn thousands(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// How long a job may be missing from the status before the bar gives up.
const NOT_LISTED_FOR: Duration = Duration::from_secs(30);

/// Whether to draw: on a terminal, or when `XREPL_PROGRESS=1`.
pub fn wanted() -> bool {
    use std::io::IsTerminal;
    std::env::var("XREPL_PROGRESS").is_ok_and(|v| v == "1") || std::io::stderr().is_terminal()
}

/// Redraws the line until the job is done (or the status cannot be read): `poll` runs the
/// status statement.
pub async fn follow<F, Fut>(follow: Follow, mut poll: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Table>>,
{
    use std::io::IsTerminal;
    let start = Instant::now();
    let mut err = std::io::stderr();
    // On a terminal the line is redrawn in place; elsewhere a line is written when a chunk
    // is done.
    let terminal = err.is_terminal();
    let mut shown = -1;
    loop {
        let Some(t) = poll().await else { return };
        // A slave learns of a re-sync with its next pull answer: wait for it a while.
        let Some(r) = pick(&rows(&t), &follow) else {
            if start.elapsed() > NOT_LISTED_FOR {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if terminal {
            let _ = write!(err, "\r{}\x1b[K", render(&r, start.elapsed()));
            if r.finished() {
                let _ = writeln!(err);
            }
        } else if r.chunks_done != shown || r.finished() {
            let _ = writeln!(err, "{}", render(&r, start.elapsed()));
            shown = r.chunks_done;
        }
        let _ = err.flush();
        if r.finished() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(done: i64, state: &str) -> Row {
        Row {
            job: 3,
            db: "dfs://boot".into(),
            table: "pt".into(),
            state: state.into(),
            chunks: 10,
            chunks_done: done,
            rows: 1_234_567,
            bytes: 10 << 20,
        }
    }

    #[test]
    fn the_line_shows_chunks_rows_bytes_rate_and_time_left() {
        let line = render(&row(5, "BOOTSTRAPPING"), Duration::from_secs(2));
        assert_eq!(
            line,
            "dfs://boot/pt [############------------] 5/10 chunks  1,234,567 rows  10.0 MB  5.0 MB/s  ~2 s left"
        );
        assert!(render(&row(10, "DONE"), Duration::from_secs(4)).ends_with("done"));
        assert!(render(&row(0, "SENDING"), Duration::from_secs(1)).ends_with("estimating"));
    }

    #[test]
    fn a_statement_is_followed_only_when_it_starts_a_bootstrap_or_a_resync() {
        let answer = [Value::Scalar(Scalar::string(
            "re-sync 12 of table 'pt' of 'dfs://db' started: ...",
        ))];
        assert!(matches!(
            follows(
                "rpc(getControllerAlias(), resyncClusterReplicationTable, \"dfs://db\", \"pt\")",
                &answer
            ),
            Some(Follow::Job(12))
        ));
        assert!(matches!(
            follows("setDatabaseForClusterReplication(db, true)", &[]),
            Some(Follow::NewestBootstrap)
        ));
        assert!(follows("setDatabaseForClusterReplication(db, false)", &[]).is_none());
        assert!(follows("select * from t", &[]).is_none());
    }
}
