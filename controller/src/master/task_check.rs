//! What a master controller checks of the task a coordinator proposes with a commit, so that
//! nothing the coordinator says decides on its own whether a task exists, which database it
//! names or where its data lives (pure; the catalog and the configuration are passed in):
//!
//! - a commit that writes a replicated database must make its task (else the slaves would
//!   silently miss it);
//! - the task names a database the transaction writes (by its catalog changes or its checked
//!   database, which the rights were checked against); a transaction that names none makes
//!   no task;
//! - the task's data lives on a data node of this cluster: its `host:port` in `cluster.nodes`
//!   or its `clusterReplicationPublicAddress`.

use std::collections::BTreeSet;

use xrepl_core::catalog::CatalogChange;
use xrepl_proto::rpc::CatalogCheck;
use xrepl_proto::task::TaskMeta;

/// The databases a transaction writes: those of its catalog changes and the one its chunk
/// operations were planned against. With `replicated_only`, not those whose only change is to
/// a replication setting (`setDatabaseForClusterReplication`, the execution set): turning
/// replication off or moving a database makes no task.
fn written<'a>(
    changes: &'a [CatalogChange],
    check: Option<&'a CatalogCheck>,
    replicated_only: bool,
) -> BTreeSet<&'a str> {
    changes
        .iter()
        .filter(|c| {
            !replicated_only
                || !matches!(
                    c,
                    CatalogChange::SetReplication { .. } | CatalogChange::SetExecutionSet { .. }
                )
        })
        .map(CatalogChange::db)
        .chain(check.map(|c| c.db.as_str()))
        .collect()
}

/// Checks the task of a commit on an enabled master. `replicated` says whether a database's
/// replication flag is on now (before the commit); `sources` are the addresses a task's data
/// may live at.
pub fn check_task(
    task: Option<&TaskMeta>,
    changes: &[CatalogChange],
    check: Option<&CatalogCheck>,
    replicated: impl Fn(&str) -> bool,
    sources: &BTreeSet<(String, u16)>,
) -> Result<(), String> {
    let dbs = written(changes, check, false);
    let Some(t) = task else {
        return match written(changes, check, true)
            .into_iter()
            .find(|db| replicated(db))
        {
            Some(db) => Err(format!(
                "this commit writes the replicated database '{db}' but brings no replication task; it is rolled back"
            )),
            None => Ok(()),
        };
    };
    // Every write names its database: a DDL in its catalog changes, a write of rows (an
    // append, an update, a delete, a truncate) in its catalog check.
    if !dbs.contains(t.db.as_str()) {
        return Err(format!(
            "the replication task names database '{}', which this transaction does not write (it writes {}); it is rolled back",
            t.db,
            if dbs.is_empty() {
                "none".to_string()
            } else {
                dbs.iter()
                    .map(|d| format!("'{d}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    if !sources.contains(&(t.src_host.clone(), t.src_port)) {
        return Err(format!(
            "the replication task's data is said to be on {}:{}, which is not a data node of this cluster (cluster.nodes, clusterReplicationPublicAddress); it is rolled back",
            t.src_host, t.src_port
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use xrepl_core::catalog::Right;
    use xrepl_proto::task::{OperationType, Scope};

    use super::*;

    fn sources() -> BTreeSet<(String, u16)> {
        [
            ("127.0.0.1".to_string(), 8849),
            ("10.0.0.7".to_string(), 28849),
        ]
        .into_iter()
        .collect()
    }

    fn task(db: &str, port: u16) -> TaskMeta {
        TaskMeta {
            op: OperationType::Append,
            db: db.into(),
            table: "t".into(),
            scope: Scope::Tables {
                db: db.into(),
                tables: vec!["t".into()],
            },
            src_host: "127.0.0.1".into(),
            src_port: port,
            data_written: true,
            data_bytes: 250,
            snapshot: None,
            for_slave: None,
        }
    }

    fn check(db: &str) -> CatalogCheck {
        CatalogCheck {
            db: db.into(),
            version: 1,
            need: Right::Write,
        }
    }

    #[test]
    fn a_task_must_name_a_written_database_and_a_data_node_of_this_cluster() {
        let on = |db: &str| db == "dfs://r";
        let s = sources();
        assert_eq!(
            check_task(
                Some(&task("dfs://r", 8849)),
                &[],
                Some(&check("dfs://r")),
                on,
                &s
            ),
            Ok(())
        );
        // A transaction that names no database makes no task.
        let e = check_task(Some(&task("dfs://r", 8849)), &[], None, on, &s).expect_err("refused");
        assert!(e.contains("it writes none"), "{e}");
        let e = check_task(
            Some(&task("dfs://r", 8849)),
            &[],
            Some(&check("dfs://x")),
            on,
            &s,
        )
        .expect_err("refused");
        assert!(e.contains("it writes 'dfs://x'"), "{e}");
        let e = check_task(
            Some(&task("dfs://r", 1)),
            &[],
            Some(&check("dfs://r")),
            on,
            &s,
        )
        .expect_err("refused");
        assert!(
            e.contains("127.0.0.1:1, which is not a data node of this cluster"),
            "{e}"
        );
        let mut public = task("dfs://r", 28849);
        public.src_host = "10.0.0.7".into();
        assert_eq!(
            check_task(Some(&public), &[], Some(&check("dfs://r")), on, &s),
            Ok(())
        );
    }

    #[test]
    fn a_commit_on_a_replicated_database_must_bring_its_task_but_replication_settings_need_none() {
        let on = |db: &str| db == "dfs://r";
        let s = sources();
        let e = check_task(None, &[], Some(&check("dfs://r")), on, &s).expect_err("refused");
        assert!(
            e.contains("writes the replicated database 'dfs://r' but brings no replication task"),
            "{e}"
        );
        assert_eq!(
            check_task(None, &[], Some(&check("dfs://plain")), on, &s),
            Ok(())
        );
        let off = CatalogChange::SetReplication {
            path: "dfs://r".into(),
            enabled: false,
        };
        assert_eq!(check_task(None, &[off], None, on, &s), Ok(()));
        let drop = CatalogChange::DropTable {
            db: "dfs://r".into(),
            name: "t".into(),
        };
        assert!(check_task(None, &[drop], None, on, &s).is_err());
    }
}
