//! The catalog: databases, their partition schemes, tables, columns, where each chunk lives,
//! and users' rights. Pure data and decision logic, no IO: the controller keeps it in its
//! metadata and changes it only through [`CatalogChange`]s carried by transactions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

use crate::value::{DataType, Scalar, Vector, NULL_INT, NULL_LONG};

mod change;
pub use change::{is_hidden, is_retired, retired_name, shadow_name, shadow_of, CatalogChange};

/// Fixed SipHash keys: every hash that decides placement agrees on every node, cluster and run.
const HASH_KEYS: (u64, u64) = (0x7872_6570_6c5f_6b30, 0x7368_6172_645f_6b31);

/// A stable 64-bit hash of `bytes` (SipHash-1-3 with fixed keys).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(HASH_KEYS.0, HASH_KEYS.1);
    h.write(bytes);
    h.finish()
}

/// How a database splits its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartitionScheme {
    /// One partition per value.
    Value(Vector),
    /// Sorted boundaries `b0 < b1 < ... < bn`: partition `i` holds `[b_i, b_{i+1})`.
    Range(Vector),
    /// `buckets` partitions by a stable hash of a value of type `ty`.
    Hash { ty: DataType, buckets: u32 },
    /// One partition per list of values.
    List(Vec<Vector>),
}

/// Keys a value is compared by: integer-like types as i64, strings as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Str(String),
}

/// Whether values of type `t` compare as integers (`Some(false)`: strings; `None`: unsupported).
fn integer_like(t: DataType) -> Option<bool> {
    match t {
        DataType::Bool
        | DataType::Int
        | DataType::Long
        | DataType::Date
        | DataType::DateTime
        | DataType::Timestamp
        | DataType::NanoTimestamp => Some(true),
        DataType::String | DataType::Symbol => Some(false),
        DataType::Double => None,
    }
}

/// Converts a column to keys in the unit of `scheme` (e.g. DATETIME seconds to DATE days).
/// `None` marks a NULL.
fn keys(col: &Vector, scheme: DataType) -> Result<Vec<Option<Key>>, String> {
    let day = |v: i64, per_day: i64| Key::Int(v.div_euclid(per_day));
    let bad = || {
        format!(
            "a {} column cannot be partitioned by a {} scheme",
            col.data_type(),
            scheme
        )
    };
    let ints = |v: &[i32], f: &dyn Fn(i64) -> Key| {
        v.iter()
            .map(|x| (*x != NULL_INT).then(|| f(i64::from(*x))))
            .collect::<Vec<_>>()
    };
    let longs = |v: &[i64], f: &dyn Fn(i64) -> Key| {
        v.iter()
            .map(|x| (*x != NULL_LONG).then(|| f(*x)))
            .collect::<Vec<_>>()
    };
    let same = |x: i64| Key::Int(x);
    Ok(match (col, scheme) {
        (Vector::String(v) | Vector::Symbol(v), DataType::String | DataType::Symbol) => v
            .iter()
            .map(|s| (!s.is_empty()).then(|| Key::Str(s.clone())))
            .collect(),
        (Vector::Bool(v), DataType::Bool) => v
            .iter()
            .map(|x| (*x != i8::MIN).then(|| Key::Int(i64::from(*x))))
            .collect(),
        (Vector::Int(v), DataType::Int | DataType::Long) => ints(v, &same),
        (Vector::Long(v), DataType::Int | DataType::Long) => longs(v, &same),
        (Vector::Date(v), DataType::Date) => ints(v, &same),
        (Vector::DateTime(v), DataType::Date) => ints(v, &|x| day(x, 86_400)),
        (Vector::DateTime(v), DataType::DateTime) => ints(v, &same),
        (Vector::Timestamp(v), DataType::Date) => longs(v, &|x| day(x, 86_400_000)),
        (Vector::Timestamp(v), DataType::Timestamp) => longs(v, &same),
        (Vector::NanoTimestamp(v), DataType::Date) => longs(v, &|x| day(x, 86_400_000_000_000)),
        (Vector::NanoTimestamp(v), DataType::NanoTimestamp) => longs(v, &same),
        _ => return Err(bad()),
    })
}

/// A scalar in the scheme's own type (INT widens to LONG, STRING and SYMBOL interchange).
fn conform(s: Scalar, t: DataType) -> Result<Scalar, String> {
    Ok(match (s, t) {
        (s, t) if s.data_type() == t => s,
        (Scalar::Int(v), DataType::Long) => Scalar::Long(if v == NULL_INT {
            NULL_LONG
        } else {
            i64::from(v)
        }),
        (Scalar::String(v), DataType::Symbol) => Scalar::Symbol(v),
        (Scalar::Symbol(v), DataType::String) => Scalar::String(v),
        (s, t) => return Err(format!("a {} cannot extend a {t} scheme", s.data_type())),
    })
}

fn key_bytes(k: &Key) -> Vec<u8> {
    match k {
        Key::Int(i) => i.to_le_bytes().to_vec(),
        Key::Str(s) => s.as_bytes().to_vec(),
    }
}

/// A value the scheme has no partition for, for the error message.
fn render_key(k: &Key, t: DataType) -> String {
    match k {
        Key::Str(s) => s.clone(),
        Key::Int(i) => {
            let s = match t {
                DataType::Date => Scalar::Date(*i as i32),
                DataType::DateTime => Scalar::DateTime(*i as i32),
                DataType::Timestamp => Scalar::Timestamp(*i),
                DataType::NanoTimestamp => Scalar::NanoTimestamp(*i),
                _ => Scalar::Long(*i),
            };
            s.render()
        }
    }
}

impl PartitionScheme {
    /// Checks a scheme given by a user; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            PartitionScheme::Value(v) => {
                let t = v.data_type();
                integer_like(t).ok_or(format!("a VALUE scheme cannot hold {t}"))?;
                let ks = keys(v, t)?;
                let mut seen = BTreeSet::new();
                for k in ks {
                    let k = k.ok_or("a VALUE scheme cannot hold NULL")?;
                    if !seen.insert(k.clone()) {
                        return Err(format!(
                            "the VALUE scheme lists {} twice",
                            render_key(&k, t)
                        ));
                    }
                }
                if seen.is_empty() {
                    return Err("a VALUE scheme needs at least one value".into());
                }
            }
            PartitionScheme::Range(v) => {
                let t = v.data_type();
                integer_like(t).ok_or(format!("a RANGE scheme cannot hold {t}"))?;
                let ks = keys(v, t)?;
                if ks.len() < 2 {
                    return Err("a RANGE scheme needs at least two boundaries".into());
                }
                for w in ks.windows(2) {
                    match (&w[0], &w[1]) {
                        (Some(a), Some(b)) if a < b => {}
                        _ => {
                            return Err(
                                "RANGE boundaries must increase strictly, without NULL".into()
                            )
                        }
                    }
                }
            }
            PartitionScheme::Hash { ty, buckets } => {
                integer_like(*ty).ok_or(format!("a HASH scheme cannot hash {ty}"))?;
                if *buckets == 0 || *buckets > 65_536 {
                    return Err(format!(
                        "a HASH scheme needs 1 to 65536 buckets, got {buckets}"
                    ));
                }
            }
            PartitionScheme::List(lists) => {
                let Some(first) = lists.first() else {
                    return Err("a LIST scheme needs at least one list".into());
                };
                let t = first.data_type();
                integer_like(t).ok_or(format!("a LIST scheme cannot hold {t}"))?;
                let mut seen = BTreeSet::new();
                for l in lists {
                    for k in keys(l, t)? {
                        let k = k.ok_or("a LIST scheme cannot hold NULL")?;
                        if !seen.insert(k.clone()) {
                            return Err(format!(
                                "the LIST scheme lists {} twice",
                                render_key(&k, t)
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            PartitionScheme::Value(_) => "VALUE",
            PartitionScheme::Range(_) => "RANGE",
            PartitionScheme::Hash { .. } => "HASH",
            PartitionScheme::List(_) => "LIST",
        }
    }

    /// The type partition values are compared in.
    pub fn data_type(&self) -> DataType {
        match self {
            PartitionScheme::Value(v) | PartitionScheme::Range(v) => v.data_type(),
            PartitionScheme::Hash { ty, .. } => *ty,
            PartitionScheme::List(l) => l.first().map_or(DataType::Int, Vector::data_type),
        }
    }

    /// How many partitions there are.
    pub fn partitions(&self) -> u32 {
        let n = match self {
            PartitionScheme::Value(v) => v.len(),
            PartitionScheme::Range(v) => v.len().saturating_sub(1),
            PartitionScheme::Hash { buckets, .. } => *buckets as usize,
            PartitionScheme::List(l) => l.len(),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// A partition's name, as `dropPartition` and the status functions show it.
    pub fn partition_name(&self, p: u32) -> String {
        let at = |v: &Vector, i: u32| v.get(i as usize).map(|s| s.render()).unwrap_or_default();
        match self {
            PartitionScheme::Value(v) => at(v, p),
            PartitionScheme::Range(v) => format!("{}_{}", at(v, p), at(v, p + 1)),
            PartitionScheme::Hash { .. } => format!("Key{p}"),
            PartitionScheme::List(_) => format!("List{p}"),
        }
    }

    /// Checks that a column of type `t` can be partitioned by this scheme.
    pub fn accepts(&self, t: DataType) -> Result<(), String> {
        keys(&Vector::empty(t), self.data_type()).map(|_| ())
    }

    /// The partition of every row of `col`; a value outside every partition (or NULL, except
    /// for HASH) is refused with a message naming it.
    pub fn route(&self, col: &Vector) -> Result<Vec<u32>, String> {
        let t = self.data_type();
        let ks = keys(col, t)?;
        let outside = |k: &Option<Key>| match k {
            Some(k) => format!(
                "{} is outside every partition of the {} scheme",
                render_key(k, t),
                self.kind_name()
            ),
            None => format!("NULL cannot be placed in a {} partition", self.kind_name()),
        };
        match self {
            PartitionScheme::Value(v) => {
                let map: HashMap<Key, u32> = keys(v, t)?
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, k)| Some((k?, u32::try_from(i).ok()?)))
                    .collect();
                ks.iter()
                    .map(|k| {
                        k.as_ref()
                            .and_then(|k| map.get(k).copied())
                            .ok_or_else(|| outside(k))
                    })
                    .collect()
            }
            PartitionScheme::Range(v) => {
                let bounds: Vec<Key> = keys(v, t)?.into_iter().flatten().collect();
                ks.iter()
                    .map(|k| {
                        let key = k.as_ref().ok_or_else(|| outside(k))?;
                        let i = bounds.partition_point(|b| b <= key);
                        if i == 0 || i >= bounds.len() {
                            return Err(outside(k));
                        }
                        u32::try_from(i - 1).map_err(|_| outside(k))
                    })
                    .collect()
            }
            PartitionScheme::Hash { buckets, .. } => Ok(ks
                .iter()
                .map(|k| match k {
                    Some(k) => (stable_hash(&key_bytes(k)) % u64::from(*buckets)) as u32,
                    None => 0,
                })
                .collect()),
            PartitionScheme::List(lists) => {
                let mut map = HashMap::new();
                for (i, l) in lists.iter().enumerate() {
                    for k in keys(l, t)?.into_iter().flatten() {
                        map.insert(k, u32::try_from(i).unwrap_or(u32::MAX));
                    }
                }
                ks.iter()
                    .map(|k| {
                        k.as_ref()
                            .and_then(|k| map.get(k).copied())
                            .ok_or_else(|| outside(k))
                    })
                    .collect()
            }
        }
    }

    /// Adds partitions: new values for VALUE, new upper boundaries for RANGE.
    fn extend(&mut self, more: &Vector) -> Result<u32, String> {
        let t = self.data_type();
        let new = keys(more, t)?;
        match self {
            PartitionScheme::Value(v) => {
                let have: BTreeSet<Key> = keys(v, t)?.into_iter().flatten().collect();
                let mut added = 0;
                for (i, k) in new.iter().enumerate() {
                    let Some(k) = k else {
                        return Err("cannot add a NULL partition".into());
                    };
                    if !have.contains(k) {
                        let s = more.get(i).ok_or("index")?;
                        v.push(conform(s, t)?)?;
                        added += 1;
                    }
                }
                Ok(added)
            }
            PartitionScheme::Range(v) => {
                let last = keys(v, t)?.into_iter().flatten().last();
                let mut prev = last;
                for (i, k) in new.iter().enumerate() {
                    let Some(k) = k else {
                        return Err("cannot add a NULL boundary".into());
                    };
                    if prev.as_ref().is_some_and(|p| k <= p) {
                        return Err(format!(
                            "new RANGE boundary {} must be above the last one",
                            render_key(k, t)
                        ));
                    }
                    let s = more.get(i).ok_or("index")?;
                    v.push(conform(s, t)?)?;
                    prev = Some(k.clone());
                }
                u32::try_from(new.len()).map_err(|e| e.to_string())
            }
            _ => Err(format!(
                "partitions cannot be added to a {} scheme",
                self.kind_name()
            )),
        }
    }
}

/// A column of a table. Data blocks store columns by `id`, so renames touch no data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub id: u32,
    pub name: String,
    pub ty: DataType,
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableKind {
    /// Partitioned by the named column.
    Partitioned { column: String },
    /// Not partitioned: one chunk.
    Dimension,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Unique in the cluster, never reused; data is keyed by it.
    pub id: u64,
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<ColumnDef>,
    pub next_column_id: u32,
    /// Partition number → data node alias holding that chunk.
    pub chunks: BTreeMap<u32, String>,
}

impl TableMeta {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn column_mut(&mut self, name: &str) -> Result<&mut ColumnDef, String> {
        let table = self.name.clone();
        self.columns
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("table '{table}' has no column '{name}'"))
    }

    /// The partitioning column, for partitioned tables.
    pub fn partition_column(&self) -> Option<&ColumnDef> {
        match &self.kind {
            TableKind::Partitioned { column } => self.column(column),
            TableKind::Dimension => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseMeta {
    pub path: String,
    pub scheme: PartitionScheme,
    pub tables: BTreeMap<String, TableMeta>,
    pub replication_enabled: bool,
    pub execution_set: u8,
    /// Changes whenever the database's definition changes (its scheme, tables, columns, flags;
    /// not when a new chunk is placed: placed chunks never move), and is never reused, also
    /// after the database is dropped and created again: a cached copy with the same version
    /// is the current definition. Set by the controller (the number of the metadata command
    /// that last changed it).
    #[serde(default)]
    pub version: u64,
}

/// A right on a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Right {
    /// Read its tables.
    Read,
    /// Append, update, delete, truncate, drop partitions.
    Write,
    /// Everything on it: the above, DDL, dropping it.
    Owner,
    /// For the whole cluster, on a master: a slave cluster may log in as this user to pull
    /// tasks, fetch their data and report its progress, and nothing else.
    ClusterReplication,
}

impl Right {
    pub fn name(self) -> &'static str {
        match self {
            Right::Read => "DB_READ",
            Right::Write => "DB_WRITE",
            Right::Owner => "DB_OWNER",
            Right::ClusterReplication => "CLUSTER_REPLICATION",
        }
    }

    pub fn from_name(s: &str) -> Option<Right> {
        [
            Right::Read,
            Right::Write,
            Right::Owner,
            Right::ClusterReplication,
        ]
        .into_iter()
        .find(|r| r.name() == s)
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a user may do besides being an administrator: rights granted and rights denied
/// (`deny`), as DolphinDB keeps them. A deny wins over a grant, also over a `DB_OWNER` that
/// implies the right denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// `grant(user, DB_OWNER)` without a database: may create databases (and owns them).
    pub create_databases: bool,
    pub dbs: BTreeMap<String, BTreeSet<Right>>,
    /// `grant(user, CLUSTER_REPLICATION)`: a slave may log in as this user.
    #[serde(default)]
    pub cluster_replication: bool,
    /// `deny(user, right, db)`.
    #[serde(default)]
    pub denied: BTreeMap<String, BTreeSet<Right>>,
    /// `deny(user, DB_OWNER)` (no creating databases), `deny(user, CLUSTER_REPLICATION)`.
    #[serde(default)]
    pub denied_global: BTreeSet<Right>,
}

impl Grants {
    /// Whether the grants allow `right` on `db`: granted (DB_OWNER implies the others) and
    /// not denied.
    pub fn allows(&self, right: Right, db: &str) -> bool {
        let granted = self
            .dbs
            .get(db)
            .is_some_and(|rs| rs.contains(&right) || rs.contains(&Right::Owner));
        granted && !self.denied.get(db).is_some_and(|rs| rs.contains(&right))
    }

    /// Whether the user may create databases.
    pub fn may_create_databases(&self) -> bool {
        self.create_databases && !self.denied_global.contains(&Right::Owner)
    }

    /// Whether a slave cluster may log in as the user.
    pub fn may_replicate(&self) -> bool {
        self.cluster_replication && !self.denied_global.contains(&Right::ClusterReplication)
    }

    /// Applies `grant`, `deny` or `revoke` of `right` (on `db`, or for the whole cluster when
    /// `None`). A grant replaces a deny of the same right and a deny a grant; a revoke removes
    /// either. Whether the right fits the scope is the caller's check ([`Right::check_scope`]).
    pub fn set(&mut self, right: Right, db: Option<&str>, to: Access) {
        match db {
            None => {
                let flag = match right {
                    Right::ClusterReplication => &mut self.cluster_replication,
                    _ => &mut self.create_databases,
                };
                *flag = to == Access::Allow;
                if to == Access::Deny {
                    self.denied_global.insert(right);
                } else {
                    self.denied_global.remove(&right);
                }
            }
            Some(db) => {
                remove_right(&mut self.dbs, db, right, to != Access::Allow);
                remove_right(&mut self.denied, db, right, to != Access::Deny);
                let target = match to {
                    Access::Allow => Some(&mut self.dbs),
                    Access::Deny => Some(&mut self.denied),
                    Access::None => None,
                };
                if let Some(t) = target {
                    t.entry(db.to_string()).or_default().insert(right);
                }
            }
        }
    }
}

/// Removes `right` on `db` from `m` when `yes`, and the entry when it becomes empty.
fn remove_right(m: &mut BTreeMap<String, BTreeSet<Right>>, db: &str, right: Right, yes: bool) {
    if !yes {
        return;
    }
    if let Some(rs) = m.get_mut(db) {
        rs.remove(&right);
        if rs.is_empty() {
            m.remove(db);
        }
    }
}

/// What `grant`, `deny` and `revoke` set a right to: DolphinDB's ALLOW, DENY and NONE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    Allow,
    Deny,
    None,
}

impl Right {
    /// Refuses a right given the wrong scope: CLUSTER_REPLICATION is for the whole cluster;
    /// DB_READ and DB_WRITE need a database; DB_OWNER takes either (without one: creating
    /// databases).
    pub fn check_scope(self, db: Option<&str>) -> Result<(), String> {
        match (self, db) {
            (Right::ClusterReplication, Some(_)) => Err(format!(
                "{self} is for the whole cluster: give it without a database"
            )),
            (Right::Read | Right::Write, None) => Err(format!("{self} needs a database")),
            _ => Ok(()),
        }
    }
}

/// Checks a column or table name.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(char::is_alphabetic);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name '{name}': a letter, then letters, digits or '_'"
        ))
    }
}

/// Checks a database path: `dfs://name`.
pub fn check_db_path(path: &str) -> Result<(), String> {
    match path.strip_prefix("dfs://") {
        Some(rest)
            if !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_-./".contains(c)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "invalid database path '{path}': expected dfs://name"
        )),
    }
}

/// Every database, by path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub dbs: BTreeMap<String, DatabaseMeta>,
    pub next_table_id: u64,
}

impl Catalog {
    pub fn db(&self, path: &str) -> Result<&DatabaseMeta, String> {
        self.dbs
            .get(path)
            .ok_or_else(|| format!("database '{path}' does not exist"))
    }

    fn db_mut(&mut self, path: &str) -> Result<&mut DatabaseMeta, String> {
        self.dbs
            .get_mut(path)
            .ok_or_else(|| format!("database '{path}' does not exist"))
    }

    pub fn table(&self, db: &str, name: &str) -> Result<&TableMeta, String> {
        self.db(db)?
            .tables
            .get(name)
            .ok_or_else(|| format!("table '{name}' does not exist in database '{db}'"))
    }

    fn table_mut(&mut self, db: &str, name: &str) -> Result<&mut TableMeta, String> {
        self.db_mut(db)?
            .tables
            .get_mut(name)
            .ok_or_else(|| format!("table '{name}' does not exist in database '{db}'"))
    }

    /// Applies changes all or nothing: on error the catalog is as it was.
    pub fn apply_all(&mut self, changes: &[CatalogChange]) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut next = self.clone();
        for c in changes {
            next.apply(c)?;
        }
        *self = next;
        Ok(())
    }
}

/// Chooses the data node for a new chunk: a stable hash of the chunk's path over the live
/// data nodes (sorted, so every caller agrees).
pub fn place_chunk(db: &str, table_id: u64, partition: u32, live: &[String]) -> Option<String> {
    if live.is_empty() {
        return None;
    }
    let mut sorted = live.to_vec();
    sorted.sort();
    let path = format!("{db}/{table_id}/{partition}");
    let i = (stable_hash(path.as_bytes()) % sorted.len() as u64) as usize;
    sorted.get(i).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(from: i32, n: i32) -> Vector {
        Vector::Date((from..from + n).collect())
    }

    #[test]
    fn value_scheme_routes_datetimes_to_their_date() {
        // 2023.01.01 is day 19358.
        let s = PartitionScheme::Value(dates(19358, 365));
        s.validate().expect("valid");
        let dt = Vector::DateTime(vec![1_673_170_200, 1_673_170_200 + 3600, 1_672_531_200]);
        assert_eq!(s.route(&dt), Ok(vec![7, 7, 0]));
        let e = s
            .route(&Vector::Date(vec![19358 + 400]))
            .expect_err("outside");
        assert_eq!(
            e,
            "2024.02.05 is outside every partition of the VALUE scheme"
        );
        assert!(s.route(&Vector::Double(vec![1.0])).is_err());
    }

    #[test]
    fn range_scheme_is_half_open() {
        let s = PartitionScheme::Range(Vector::Int(vec![0, 10, 20]));
        s.validate().expect("valid");
        assert_eq!(
            s.route(&Vector::Int(vec![0, 9, 10, 19])),
            Ok(vec![0, 0, 1, 1])
        );
        assert!(s.route(&Vector::Int(vec![20])).is_err());
        assert!(s.route(&Vector::Int(vec![-1])).is_err());
        assert_eq!(s.partition_name(1), "10_20");
        assert!(PartitionScheme::Range(Vector::Int(vec![5, 5]))
            .validate()
            .is_err());
    }

    #[test]
    fn hash_buckets_follow_a_fixed_mapping() {
        // This mapping must never change: data placed by it lives on disk and in other clusters.
        let s = PartitionScheme::Hash {
            ty: DataType::Int,
            buckets: 10,
        };
        let got = s.route(&Vector::Int((0..12).collect())).expect("route");
        assert_eq!(got, vec![9, 9, 3, 5, 6, 1, 0, 7, 5, 0, 6, 5]);
        let s = PartitionScheme::Hash {
            ty: DataType::Symbol,
            buckets: 4,
        };
        let got = s
            .route(&Vector::Symbol(vec![
                "000001".into(),
                "600000".into(),
                "AAPL".into(),
            ]))
            .expect("route");
        assert_eq!(got, vec![2, 2, 1]);
        assert_eq!(stable_hash(b"xrepl"), 13_836_329_139_450_792_192);
    }

    #[test]
    fn list_scheme_and_duplicates() {
        let s = PartitionScheme::List(vec![
            Vector::String(vec!["A".into(), "B".into()]),
            Vector::String(vec!["C".into()]),
        ]);
        s.validate().expect("valid");
        assert_eq!(
            s.route(&Vector::Symbol(vec!["C".into(), "A".into()])),
            Ok(vec![1, 0])
        );
        assert!(s.route(&Vector::Symbol(vec!["D".into()])).is_err());
        let dup = PartitionScheme::List(vec![
            Vector::String(vec!["A".into()]),
            Vector::String(vec!["A".into()]),
        ]);
        assert_eq!(dup.validate(), Err("the LIST scheme lists A twice".into()));
    }

    fn cat() -> Catalog {
        let mut c = Catalog::default();
        c.apply(&CatalogChange::CreateDatabase {
            path: "dfs://db".into(),
            scheme: PartitionScheme::Value(dates(19358, 3)),
        })
        .expect("db");
        c.apply(&CatalogChange::CreateTable {
            db: "dfs://db".into(),
            name: "t".into(),
            kind: TableKind::Partitioned { column: "d".into() },
            columns: vec![
                ("d".into(), DataType::DateTime),
                ("x".into(), DataType::Int),
            ],
        })
        .expect("table");
        c
    }

    #[test]
    fn a_shadow_is_filled_out_of_sight_and_replaces_its_table_in_one_step() {
        let mut c = cat();
        let shadow = CatalogChange::CreateShadow {
            db: "dfs://db".into(),
            table: "t".into(),
            kind: TableKind::Dimension,
            columns: vec![("x".into(), DataType::Int)],
        };
        c.apply(&shadow).expect("shadow");
        assert_eq!(shadow_name("t"), "t~resync");
        assert_eq!(shadow_of("t~resync"), Some("t"));
        assert_eq!(shadow_of("t"), None);
        let s = c.table("dfs://db", "t~resync").expect("the shadow").clone();
        assert_eq!((s.id, s.kind.clone()), (2, TableKind::Dimension));
        assert_eq!(c.table("dfs://db", "t").map(|t| t.id), Ok(1), "t unchanged");
        // No user's table can take a shadow's name.
        assert!(c
            .apply(&CatalogChange::CreateTable {
                db: "dfs://db".into(),
                name: "u~resync".into(),
                kind: TableKind::Dimension,
                columns: vec![("x".into(), DataType::Int)],
            })
            .is_err());
        let swap = CatalogChange::SwapShadow {
            db: "dfs://db".into(),
            table: "t".into(),
        };
        c.apply(&swap).expect("swap");
        let t = c.table("dfs://db", "t").expect("t");
        assert_eq!((t.id, t.name.as_str()), (2, "t"), "the shadow is t now");
        assert!(c.table("dfs://db", "t~resync").is_err());
        assert_eq!(
            c.table("dfs://db", "t~retired").map(|t| t.id),
            Ok(1),
            "the old copy is retired, out of sight"
        );
        assert!(is_hidden("t~retired") && is_hidden("t~resync") && !is_hidden("t"));
        assert_eq!(
            c.apply(&swap),
            Err("table 't' of database 'dfs://db' has no re-sync under way".into())
        );
    }

    #[test]
    fn ddl_changes_apply_and_refusals_change_nothing() {
        let mut c = cat();
        assert_eq!(c.table("dfs://db", "t").map(|t| t.id), Ok(1));
        let before = c.clone();
        let bad = [
            CatalogChange::AddColumn {
                db: "dfs://db".into(),
                table: "t".into(),
                name: "y".into(),
                ty: DataType::Long,
            },
            CatalogChange::DropColumns {
                db: "dfs://db".into(),
                table: "t".into(),
                names: vec!["d".into()],
            },
        ];
        assert_eq!(
            c.apply_all(&bad),
            Err("'d' is the partition column and cannot be dropped".into())
        );
        assert_eq!(c, before, "all or nothing");
        c.apply(&CatalogChange::RenameColumn {
            db: "dfs://db".into(),
            table: "t".into(),
            from: "d".into(),
            to: "day".into(),
        })
        .expect("rename");
        let t = c.table("dfs://db", "t").expect("t");
        assert_eq!(
            t.kind,
            TableKind::Partitioned {
                column: "day".into()
            }
        );
        assert_eq!(t.column("day").map(|c| c.id), Some(0));
        c.apply(&CatalogChange::RenameTable {
            db: "dfs://db".into(),
            from: "t".into(),
            to: "u".into(),
        })
        .expect("rename table");
        assert!(c.table("dfs://db", "t").is_err());
        assert_eq!(c.table("dfs://db", "u").map(|t| t.id), Ok(1));
        assert!(
            c.apply(&CatalogChange::CreateTable {
                db: "dfs://db".into(),
                name: "v".into(),
                kind: TableKind::Partitioned { column: "x".into() },
                columns: vec![("x".into(), DataType::Int)],
            })
            .is_err(),
            "an INT column cannot be partitioned by DATE values"
        );
    }

    #[test]
    fn adding_partitions() {
        let mut c = cat();
        c.apply(&CatalogChange::AddPartitions {
            path: "dfs://db".into(),
            values: dates(19360, 3),
        })
        .expect("add");
        assert_eq!(c.db("dfs://db").map(|d| d.scheme.partitions()), Ok(5));
    }

    #[test]
    fn chunk_placement_is_stable_and_spreads() {
        let live = vec!["dnode2".to_string(), "dnode1".to_string()];
        let a = place_chunk("dfs://db", 1, 7, &live);
        let b = place_chunk("dfs://db", 1, 7, &["dnode1".into(), "dnode2".into()]);
        assert_eq!(a, b);
        let spread: BTreeSet<String> = (0..20)
            .filter_map(|p| place_chunk("dfs://db", 1, p, &live))
            .collect();
        assert_eq!(spread.len(), 2);
        assert_eq!(place_chunk("dfs://db", 1, 0, &[]), None);
    }
}
