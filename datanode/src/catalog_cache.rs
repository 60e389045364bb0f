//! The data node's copies of database definitions, so that a write does not ask the controller
//! for them every time. A copy is refreshed whenever the node reads the database from the
//! controller, and is never trusted blindly: a transaction planned with a copy sends the copy's
//! version with its decision, and the controller refuses the commit if the database changed
//! since (`ErrorCode::StaleCatalog`); the writer then forgets the copy, reads the database
//! again and plans again. Placed chunks never move, so a copy learns new placements without a
//! new version.

use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;
use xrepl_core::catalog::DatabaseMeta;

#[derive(Default)]
pub struct CatalogCache {
    dbs: DashMap<String, Arc<DatabaseMeta>>,
}

impl CatalogCache {
    /// The cached definition of `db`, if any.
    pub fn get(&self, db: &str) -> Option<Arc<DatabaseMeta>> {
        self.dbs.get(db).map(|d| d.clone())
    }

    /// Keeps a definition just read from the controller (unless a newer one is kept already:
    /// two reads may answer out of order).
    pub fn put(&self, d: DatabaseMeta) -> Arc<DatabaseMeta> {
        let d = Arc::new(d);
        let mut kept = d.clone();
        self.dbs
            .entry(d.path.clone())
            .and_modify(|old| {
                if old.version <= d.version {
                    *old = d.clone();
                } else {
                    kept = old.clone();
                }
            })
            .or_insert_with(|| d.clone());
        kept
    }

    /// Forgets `db` (it changed, or is gone).
    pub fn forget(&self, db: &str) {
        self.dbs.remove(db);
    }

    /// Adds chunk placements of table `table_id` of `db` that the controller just gave.
    pub fn learn_placement(&self, db: &str, table_id: u64, placement: &BTreeMap<u32, String>) {
        if let Some(mut entry) = self.dbs.get_mut(db) {
            let mut d = (**entry).clone();
            if let Some(t) = d.tables.values_mut().find(|t| t.id == table_id) {
                for (p, node) in placement {
                    t.chunks.entry(*p).or_insert_with(|| node.clone());
                }
                *entry = Arc::new(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xrepl_core::catalog::{PartitionScheme, TableKind, TableMeta};
    use xrepl_core::value::Vector;

    fn db(version: u64) -> DatabaseMeta {
        let t = TableMeta {
            id: 9,
            name: "t".into(),
            kind: TableKind::Dimension,
            columns: vec![],
            next_column_id: 0,
            chunks: BTreeMap::new(),
        };
        DatabaseMeta {
            path: "dfs://c".into(),
            scheme: PartitionScheme::Value(Vector::Int(vec![1])),
            tables: [("t".to_string(), t)].into(),
            replication_enabled: false,
            execution_set: 0,
            version,
        }
    }

    #[test]
    fn an_older_read_does_not_replace_a_newer_copy_and_placements_are_learned() {
        let c = CatalogCache::default();
        c.put(db(5));
        assert_eq!(c.put(db(3)).version, 5, "the newer copy stays");
        assert_eq!(c.get("dfs://c").map(|d| d.version), Some(5));
        c.learn_placement("dfs://c", 9, &[(0, "dnode2".to_string())].into());
        let d = c.get("dfs://c").expect("cached");
        assert_eq!(d.tables["t"].chunks[&0], "dnode2");
        assert_eq!(d.version, 5, "a placement is no new version");
        c.forget("dfs://c");
        assert!(c.get("dfs://c").is_none());
    }
}
