//! The chaos soak's writers: row writers (one table each, every write's fate remembered in
//! the table's model) and a DDL writer that creates and drops databases.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xrepl_proto::client::Client;

use super::{DbFate, Expect, Model, Rng};

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
pub(super) async fn row_writer(
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
pub(super) async fn ddl_writer(
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
