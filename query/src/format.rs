//! How values are shown: aligned text for people, JSON for scripts.

use xrepl_core::value::{Scalar, Table, Value, Vector};

/// Rows shown at each end of a long table; the middle is elided.
pub const TABLE_EDGE_ROWS: usize = 10;
/// Elements shown of a long vector.
pub const VECTOR_SHOWN: usize = 20;

/// A value as the console prints it; `None` for nothing (an assignment, a void call).
pub fn render(v: &Value) -> Option<String> {
    Some(match v {
        Value::Void => return None,
        Value::Scalar(s) => s.render(),
        Value::Vector(vec) => render_vector(vec),
        Value::Pair(a, b) => format!("{} : {}", a.render(), b.render()),
        Value::Table(t) => render_table(t),
        Value::Function(f) => f.0.clone(),
        Value::Partial { func, args } => partial_text(func, args),
        Value::Type(t) => t.name().to_string(),
        Value::Keyword(k) => k.clone(),
        Value::Database(p) => format!("database {p}"),
        Value::TableRef { db, table } => format!("table {table} of {db}"),
        Value::Tuple(items) => format!(
            "({})",
            items
                .iter()
                .map(|v| render(v).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Dict(entries) => entries
            .iter()
            .map(|(k, v)| {
                let text = render(v).unwrap_or_default();
                if text.contains('\n') {
                    format!("{k}:\n{text}")
                } else {
                    format!("{k}: {text}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// `f{a, b}`, each fixed argument as the console shows it.
fn partial_text(func: &str, args: &[Value]) -> String {
    let args: Vec<String> = args.iter().map(|a| render(a).unwrap_or_default()).collect();
    format!("{func}{{{}}}", args.join(", "))
}

fn render_vector(v: &Vector) -> String {
    let n = v.len();
    let shown: Vec<String> = (0..n.min(VECTOR_SHOWN))
        .filter_map(|i| v.get(i))
        .map(|s| s.render())
        .collect();
    let more = if n > VECTOR_SHOWN { ", ..." } else { "" };
    format!("[{}{more}]", shown.join(", "))
}

/// A table as aligned columns under a header and a rule. A table longer than twice
/// [`TABLE_EDGE_ROWS`] shows its first and last rows, a `...` line and the row count.
pub fn render_table(t: &Table) -> String {
    let rows = t.rows();
    let elide = rows > 2 * TABLE_EDGE_ROWS;
    let picked: Vec<Option<usize>> = if elide {
        (0..TABLE_EDGE_ROWS)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((rows - TABLE_EDGE_ROWS..rows).map(Some))
            .collect()
    } else {
        (0..rows).map(Some).collect()
    };
    let cells: Vec<Vec<String>> = t
        .columns
        .iter()
        .map(|c| {
            picked
                .iter()
                .map(|r| match r {
                    Some(i) => c.get(*i).map(|s| s.render()).unwrap_or_default(),
                    None => "...".to_string(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = t
        .names
        .iter()
        .zip(&cells)
        .map(|(n, col)| {
            col.iter()
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(n.chars().count())
        })
        .collect();
    let line = |parts: Vec<String>| -> String {
        parts
            .iter()
            .zip(&widths)
            .map(|(p, w)| format!("{p:<w$}"))
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![
        line(t.names.clone()),
        line(widths.iter().map(|w| "-".repeat(*w)).collect()),
    ];
    for r in 0..picked.len() {
        out.push(line(cells.iter().map(|c| c[r].clone()).collect()));
    }
    if elide {
        out.push(format!("[{rows} rows]"));
    }
    out.join("\n")
}

/// A value as JSON: a table is an array of row objects, a vector an array, a scalar its value.
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Void => serde_json::Value::Null,
        Value::Scalar(s) => s.to_json(),
        Value::Vector(vec) => vector_json(vec),
        Value::Pair(a, b) => serde_json::Value::Array(vec![a.to_json(), b.to_json()]),
        Value::Table(t) => serde_json::Value::Array(
            (0..t.rows())
                .map(|r| {
                    let row = t
                        .names
                        .iter()
                        .zip(&t.columns)
                        .map(|(n, c)| {
                            (
                                n.clone(),
                                c.get(r).map_or(serde_json::Value::Null, |s| s.to_json()),
                            )
                        })
                        .collect();
                    serde_json::Value::Object(row)
                })
                .collect(),
        ),
        Value::Function(f) => serde_json::Value::String(f.0.clone()),
        Value::Partial { func, args } => serde_json::Value::String(partial_text(func, args)),
        Value::Type(t) => serde_json::Value::String(t.name().to_string()),
        Value::Keyword(k) => serde_json::Value::String(k.clone()),
        Value::Database(p) => serde_json::Value::String(p.clone()),
        Value::TableRef { db, table } => serde_json::json!({ "db": db, "table": table }),
        Value::Tuple(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Dict(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

fn vector_json(v: &Vector) -> serde_json::Value {
    serde_json::Value::Array(
        (0..v.len())
            .filter_map(|i| v.get(i))
            .map(|s: Scalar| s.to_json())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: i32) -> Table {
        Table::new(
            vec!["id".into(), "name".into()],
            vec![
                Vector::Int((0..n).collect()),
                Vector::String((0..n).map(|i| format!("n{i}")).collect()),
            ],
        )
        .expect("table")
    }

    #[test]
    fn short_tables_are_aligned_under_a_rule() {
        assert_eq!(render_table(&table(2)), "id name\n-- ----\n0  n0\n1  n1");
    }

    #[test]
    fn long_tables_show_both_ends_and_the_count() {
        let s = render_table(&table(1000));
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2 + 2 * TABLE_EDGE_ROWS + 1 + 1);
        assert!(lines.contains(&"... ..."));
        assert_eq!(lines.last(), Some(&"[1000 rows]"));
        assert!(lines[lines.len() - 2].starts_with("999"));
    }

    #[test]
    fn json_tables_are_arrays_of_row_objects() {
        let j = to_json(&Value::Table(table(2)));
        assert_eq!(
            j,
            serde_json::json!([{"id":0,"name":"n0"},{"id":1,"name":"n1"}])
        );
        assert_eq!(
            to_json(&Value::Scalar(Scalar::Int(xrepl_core::value::NULL_INT))),
            serde_json::Value::Null
        );
    }
}
