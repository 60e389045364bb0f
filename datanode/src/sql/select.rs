//! `select` over a DFS table (one scan per data node holding its chunks, computed close to
//! the data: filtered rows or partial aggregates) or over an in-memory table, then merged,
//! ordered and limited here.

use std::collections::{BTreeMap, HashMap};

use xrepl_core::catalog::{ColumnDef, Right};
use xrepl_core::operator::BinOp;
use xrepl_core::value::{DataType, Scalar, ScalarKey, Table, Value, Vector};
use xrepl_proto::txn::{AggFn, ColExpr, Partial, ScanResult, ScanShape};
use xrepl_query::lang::ast::{Expr, ExprKind, Select, SelectItem};
use xrepl_query::ops;

use crate::compute::{Aggregate, EvalColumns};
use crate::db::schema::defs_of;
use crate::plan::scans_by_node;
use crate::session::args::{bad, not_found, EvalError};
use crate::session::state::Session;

/// Column name for a select item without an alias.
fn item_name(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ident(n) => n.clone(),
        ExprKind::Call { func, args } => {
            let f = match &func.kind {
                ExprKind::Ident(n) => n.clone(),
                _ => "col".into(),
            };
            match args.first().map(|a| &a.value.kind) {
                Some(ExprKind::Ident(c)) => format!("{f}_{c}"),
                _ => f,
            }
        }
        _ => "col".into(),
    }
}

/// What a select computes per item.
enum Item {
    Column(String),
    Agg(AggFn, Option<String>),
}

impl Session {
    /// `select ...` over a DFS table or a table in a variable.
    pub(crate) fn sql_select(&mut self, q: &Select) -> Result<Value, EvalError> {
        let source = self.eval(&q.from)?;
        let (defs, dfs) = match &source {
            Value::TableRef { db, table } => {
                let (_, t) = self.table_meta(db, table, Some(Right::Read))?;
                (t.columns.clone(), Some(t))
            }
            Value::Table(t) => (defs_of(t), None),
            other => {
                return Err(bad(format!(
                    "select needs a table, got {}",
                    other.kind_name()
                )))
            }
        };
        // What to compute.
        let mut items: Vec<(String, Item)> = Vec::new();
        for it in &q.items {
            match it {
                SelectItem::All => {
                    for d in &defs {
                        items.push((d.name.clone(), Item::Column(d.name.clone())));
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    let name = alias.clone().unwrap_or_else(|| item_name(expr));
                    let item = match &expr.kind {
                        ExprKind::Ident(c) if defs.iter().any(|d| &d.name == c) => {
                            Item::Column(c.clone())
                        }
                        ExprKind::Call { func, args } => {
                            let f = match &func.kind {
                                ExprKind::Ident(n) => n.to_ascii_lowercase(),
                                _ => String::new(),
                            };
                            let agg = AggFn::from_name(&f).ok_or_else(|| bad(format!("'{f}' is not an aggregate select supports (count, sum, avg, min, max)")))?;
                            match args.first().map(|a| &a.value.kind) {
                                Some(ExprKind::Star) if agg == AggFn::Count => Item::Agg(agg, None),
                                Some(ExprKind::Ident(c)) if defs.iter().any(|d| &d.name == c) => {
                                    Item::Agg(agg, Some(c.clone()))
                                }
                                _ => return Err(bad(format!("{f} takes one column of the table"))),
                            }
                        }
                        ExprKind::Ident(c) => {
                            return Err(not_found(format!("the table has no column '{c}'")))
                        }
                        _ => {
                            return Err(bad(
                                "select items must be columns or aggregates of columns",
                            ))
                        }
                    };
                    items.push((name, item));
                }
            }
        }
        if q.group_by.len() > 1 {
            return Err(bad("group by one column is supported"));
        }
        let group_by = q.group_by.first().cloned();
        if let Some(g) = &group_by {
            if !defs.iter().any(|d| &d.name == g) {
                return Err(not_found(format!("the table has no column '{g}'")));
            }
        }
        let aggregate = group_by.is_some() || items.iter().any(|(_, i)| matches!(i, Item::Agg(..)));
        // The group column leads the result, as in DolphinDB, unless it was selected.
        if let Some(g) = &group_by {
            if !items
                .iter()
                .any(|(_, i)| matches!(i, Item::Column(c) if c == g))
            {
                items.insert(0, (g.clone(), Item::Column(g.clone())));
            }
        }
        if aggregate {
            for (n, i) in &items {
                if let Item::Column(c) = i {
                    if group_by.as_ref() != Some(c) {
                        return Err(bad(format!(
                            "'{n}' must be the group by column or an aggregate"
                        )));
                    }
                }
            }
        }
        let filter = q
            .filter
            .as_ref()
            .map(|f| self.col_expr(f, &defs))
            .transpose()?;
        let shape = if aggregate {
            ScanShape::Aggregate {
                group_by: group_by.clone(),
                aggs: items
                    .iter()
                    .filter_map(|(_, i)| match i {
                        Item::Agg(f, c) => Some((*f, c.clone())),
                        Item::Column(_) => None,
                    })
                    .collect(),
            }
        } else {
            ScanShape::Rows {
                project: items
                    .iter()
                    .filter_map(|(_, i)| match i {
                        Item::Column(c) => Some(c.clone()),
                        Item::Agg(..) => None,
                    })
                    .collect(),
            }
        };
        let results: Vec<ScanResult> = match (&dfs, &source) {
            (Some(t), _) => {
                let scans = scans_by_node(t, &defs, filter.as_ref(), &shape);
                let txn = self.node.txn.clone();
                self.block_on(async move { txn.scan_all(scans).await })
                    .map_err(EvalError::from)?
            }
            (None, Value::Table(local)) => vec![scan_local(local, &defs, filter.as_ref(), &shape)?],
            _ => Vec::new(),
        };
        let mut out = combine(&items, &defs, &shape, results)?;
        order_and_limit(self, &mut out, q)?;
        Ok(Value::Table(out))
    }
}

/// Reads an in-memory table as one chunk.
fn scan_local(
    t: &Table,
    defs: &[ColumnDef],
    filter: Option<&ColExpr>,
    shape: &ScanShape,
) -> Result<ScanResult, EvalError> {
    let rows = t.rows();
    let lookup = |n: &str| t.column(n);
    let mask = match filter {
        None => vec![true; rows],
        Some(f) => f.mask(&lookup, rows).map_err(EvalError::runtime)?,
    };
    let col = |n: &str| -> Result<Vector, EvalError> {
        t.column(n)
            .map(|v| ops::filter(v, &mask))
            .ok_or_else(|| not_found(format!("the table has no column '{n}'")))
    };
    let _ = defs;
    match shape {
        ScanShape::Checksum => Err(bad("a checksum scan of an in-memory table")),
        ScanShape::Rows { project } => Ok(ScanResult::Rows(
            project.iter().map(|n| col(n)).collect::<Result<_, _>>()?,
        )),
        ScanShape::Aggregate { group_by, aggs } => {
            let hits = mask.iter().filter(|m| **m).count();
            let part = |c: &Option<String>, idx: Option<&[usize]>| -> Result<Partial, EvalError> {
                match c {
                    None => Ok(Partial {
                        count: idx.map_or(hits, <[usize]>::len) as i64,
                        ..Partial::empty()
                    }),
                    Some(c) => {
                        let v = col(c)?;
                        let v = match idx {
                            Some(i) => ops::take_indices(&v, i),
                            None => v,
                        };
                        Partial::of(&v).map_err(EvalError::runtime)
                    }
                }
            };
            match group_by {
                None => Ok(ScanResult::Groups {
                    keys: None,
                    partials: aggs
                        .iter()
                        .map(|(_, c)| part(c, None).map(|p| vec![p]))
                        .collect::<Result<_, _>>()?,
                }),
                Some(g) => {
                    let keys = col(g)?;
                    let mut order: Vec<Scalar> = Vec::new();
                    let mut idx: HashMap<ScalarKey, Vec<usize>> = HashMap::new();
                    for i in 0..keys.len() {
                        let k = keys
                            .get(i)
                            .unwrap_or(Scalar::Int(xrepl_core::value::NULL_INT));
                        let e = idx.entry(k.key()).or_insert_with(|| {
                            order.push(k.clone());
                            Vec::new()
                        });
                        e.push(i);
                    }
                    let mut kv = Vector::empty(keys.data_type());
                    let mut partials = vec![Vec::new(); aggs.len()];
                    for k in order {
                        let rows = idx.remove(&k.key()).unwrap_or_default();
                        for (j, (_, c)) in aggs.iter().enumerate() {
                            partials[j].push(part(c, Some(&rows))?);
                        }
                        kv.push(k).map_err(EvalError::runtime)?;
                    }
                    Ok(ScanResult::Groups {
                        keys: Some(kv),
                        partials,
                    })
                }
            }
        }
    }
}

/// Merges the participants' answers into the result table.
fn combine(
    items: &[(String, Item)],
    defs: &[ColumnDef],
    shape: &ScanShape,
    results: Vec<ScanResult>,
) -> Result<Table, EvalError> {
    let type_of = |c: &str| {
        defs.iter()
            .find(|d| d.name == c)
            .map_or(DataType::Int, |d| d.ty)
    };
    match shape {
        ScanShape::Checksum => Err(bad("select does not compute checksums")),
        ScanShape::Rows { project } => {
            let mut acc: Vec<Vector> = project.iter().map(|c| Vector::empty(type_of(c))).collect();
            for r in results {
                if let ScanResult::Rows(cols) = r {
                    for (a, c) in acc.iter_mut().zip(cols) {
                        *a = ops::concat(a, &c).map_err(EvalError::runtime)?;
                    }
                }
            }
            Table::new(items.iter().map(|(n, _)| n.clone()).collect(), acc)
                .map_err(EvalError::runtime)
        }
        ScanShape::Aggregate { group_by, aggs } => {
            // Group key (rendered) -> (key, partial per aggregate)
            let mut groups: Vec<(Option<Scalar>, Vec<Partial>)> = Vec::new();
            let mut at: BTreeMap<String, usize> = BTreeMap::new();
            for r in results {
                let ScanResult::Groups { keys, partials } = r else {
                    continue;
                };
                let n = partials.first().map_or(0, Vec::len);
                for g in 0..n {
                    let key = keys.as_ref().and_then(|k| k.get(g));
                    let name = key.as_ref().map(Scalar::render).unwrap_or_default();
                    let ps: Vec<Partial> = partials
                        .iter()
                        .map(|p| p.get(g).cloned().unwrap_or_else(Partial::empty))
                        .collect();
                    match at.get(&name) {
                        Some(i) => {
                            for (acc, p) in groups[*i].1.iter_mut().zip(&ps) {
                                acc.merge(p).map_err(EvalError::runtime)?;
                            }
                        }
                        None => {
                            at.insert(name, groups.len());
                            groups.push((key, ps));
                        }
                    }
                }
            }
            if group_by.is_none() && groups.is_empty() {
                groups.push((None, aggs.iter().map(|_| Partial::empty()).collect()));
            }
            // Groups come out in key order.
            groups.sort_by(|(a, _), (b, _)| match (a, b) {
                (Some(a), Some(b)) => compare(a, b),
                _ => std::cmp::Ordering::Equal,
            });
            let mut names = Vec::new();
            let mut cols = Vec::new();
            let mut agg_i = 0;
            for (n, item) in items {
                names.push(n.clone());
                match item {
                    Item::Column(c) => {
                        let mut v = Vector::empty(type_of(c));
                        for (k, _) in &groups {
                            v.push(k.clone().unwrap_or_else(|| ops::null_of(type_of(c))))
                                .map_err(EvalError::runtime)?;
                        }
                        cols.push(v);
                    }
                    Item::Agg(f, c) => {
                        let t = c.as_deref().map_or(DataType::Long, type_of);
                        let values: Vec<Scalar> = groups
                            .iter()
                            .map(|(_, ps)| ps[agg_i].finish(*f, t))
                            .collect();
                        let mut v =
                            Vector::empty(values.first().map_or(DataType::Long, Scalar::data_type));
                        for s in values {
                            v.push(s).map_err(EvalError::runtime)?;
                        }
                        cols.push(v);
                        agg_i += 1;
                    }
                }
            }
            Table::new(names, cols).map_err(EvalError::runtime)
        }
    }
}

fn order_and_limit(s: &mut Session, t: &mut Table, q: &Select) -> Result<(), EvalError> {
    if !q.order_by.is_empty() {
        let mut idx: Vec<usize> = (0..t.rows()).collect();
        let keys: Vec<(&Vector, bool)> = q
            .order_by
            .iter()
            .map(|(c, desc)| {
                t.column(c).map(|v| (v, *desc)).ok_or_else(|| {
                    not_found(format!("cannot order by '{c}': not a column of the result"))
                })
            })
            .collect::<Result<_, _>>()?;
        idx.sort_by(|a, b| {
            for (v, desc) in &keys {
                let (x, y) = (v.get(*a), v.get(*b));
                let o = match (x, y) {
                    (Some(x), Some(y)) => compare(&x, &y),
                    _ => std::cmp::Ordering::Equal,
                };
                if o != std::cmp::Ordering::Equal {
                    return if *desc { o.reverse() } else { o };
                }
            }
            std::cmp::Ordering::Equal
        });
        t.columns = t
            .columns
            .iter()
            .map(|c| ops::take_indices(c, &idx))
            .collect();
    }
    if let Some(l) = &q.limit {
        let n = match s.eval(l)? {
            Value::Scalar(Scalar::Int(n)) if n >= 0 => n as usize,
            Value::Scalar(Scalar::Long(n)) if n >= 0 => n as usize,
            other => {
                return Err(bad(format!(
                    "limit needs a count, got {}",
                    other.kind_name()
                )))
            }
        };
        let idx: Vec<usize> = (0..t.rows().min(n)).collect();
        t.columns = t
            .columns
            .iter()
            .map(|c| ops::take_indices(c, &idx))
            .collect();
    }
    Ok(())
}

fn compare(a: &Scalar, b: &Scalar) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let lt = |x: &Scalar, y: &Scalar| {
        matches!(
            ops::binary(
                BinOp::Lt,
                &Value::Scalar(x.clone()),
                &Value::Scalar(y.clone())
            ),
            Ok(Value::Scalar(Scalar::Bool(1)))
        )
    };
    if lt(a, b) {
        Ordering::Less
    } else if lt(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}
