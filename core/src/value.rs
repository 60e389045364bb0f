//! Values: typed scalars, column vectors and tables.
//!
//! One representation serves the wire (rmp-serde), the storage (column blocks) and the
//! interpreter. NULLs are sentinels inside the typed vectors, as in DolphinDB, so that
//! vectorised arithmetic never branches on an `Option`:
//! BOOL `i8::MIN`, INT/DATE/DATETIME `i32::MIN`, LONG/TIMESTAMP/NANOTIMESTAMP `i64::MIN`,
//! DOUBLE `NaN`, STRING/SYMBOL the empty string.

use std::fmt;

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};

/// The element types of the data model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Bool,
    Int,
    Long,
    Double,
    String,
    Symbol,
    Date,
    DateTime,
    Timestamp,
    NanoTimestamp,
}

impl DataType {
    pub const ALL: [DataType; 10] = [
        DataType::Bool,
        DataType::Int,
        DataType::Long,
        DataType::Double,
        DataType::String,
        DataType::Symbol,
        DataType::Date,
        DataType::DateTime,
        DataType::Timestamp,
        DataType::NanoTimestamp,
    ];

    /// The name users write: `INT`, `DATETIME`, ...
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Int => "INT",
            DataType::Long => "LONG",
            DataType::Double => "DOUBLE",
            DataType::String => "STRING",
            DataType::Symbol => "SYMBOL",
            DataType::Date => "DATE",
            DataType::DateTime => "DATETIME",
            DataType::Timestamp => "TIMESTAMP",
            DataType::NanoTimestamp => "NANOTIMESTAMP",
        }
    }

    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub const NULL_BOOL: i8 = i8::MIN;
pub const NULL_INT: i32 = i32::MIN;
pub const NULL_LONG: i64 = i64::MIN;

/// One value of a [`DataType`], NULL included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    Bool(i8),
    Int(i32),
    Long(i64),
    Double(f64),
    String(String),
    Symbol(String),
    /// days since 1970-01-01
    Date(i32),
    /// seconds since the epoch
    DateTime(i32),
    /// milliseconds since the epoch
    Timestamp(i64),
    /// nanoseconds since the epoch
    NanoTimestamp(i64),
}

impl Scalar {
    pub fn bool(b: bool) -> Scalar {
        Scalar::Bool(i8::from(b))
    }

    pub fn string(s: impl Into<String>) -> Scalar {
        Scalar::String(s.into())
    }

    pub fn data_type(&self) -> DataType {
        match self {
            Scalar::Bool(_) => DataType::Bool,
            Scalar::Int(_) => DataType::Int,
            Scalar::Long(_) => DataType::Long,
            Scalar::Double(_) => DataType::Double,
            Scalar::String(_) => DataType::String,
            Scalar::Symbol(_) => DataType::Symbol,
            Scalar::Date(_) => DataType::Date,
            Scalar::DateTime(_) => DataType::DateTime,
            Scalar::Timestamp(_) => DataType::Timestamp,
            Scalar::NanoTimestamp(_) => DataType::NanoTimestamp,
        }
    }

    pub fn is_null(&self) -> bool {
        match self {
            Scalar::Bool(v) => *v == NULL_BOOL,
            Scalar::Int(v) | Scalar::Date(v) | Scalar::DateTime(v) => *v == NULL_INT,
            Scalar::Long(v) | Scalar::Timestamp(v) | Scalar::NanoTimestamp(v) => *v == NULL_LONG,
            Scalar::Double(v) => v.is_nan(),
            Scalar::String(v) | Scalar::Symbol(v) => v.is_empty(),
        }
    }

    /// The value as text, the way the console shows it (`""` for NULL).
    /// The value as a hash key, for grouping: equal values give equal keys, every NaN (DOUBLE's
    /// NULL) one key and -0.0 the key of 0.0. Far cheaper than [`Scalar::render`] per row.
    pub fn key(&self) -> ScalarKey {
        match self {
            Scalar::Bool(v) => ScalarKey::Number(i64::from(*v)),
            Scalar::Int(v) | Scalar::Date(v) | Scalar::DateTime(v) => {
                ScalarKey::Number(i64::from(*v))
            }
            Scalar::Long(v) | Scalar::Timestamp(v) | Scalar::NanoTimestamp(v) => {
                ScalarKey::Number(*v)
            }
            Scalar::Double(v) => ScalarKey::Bits(if v.is_nan() {
                f64::NAN.to_bits()
            } else if *v == 0.0 {
                0
            } else {
                v.to_bits()
            }),
            Scalar::String(s) | Scalar::Symbol(s) => ScalarKey::Text(s.clone()),
        }
    }

    pub fn render(&self) -> String {
        if self.is_null() {
            return String::new();
        }
        match self {
            Scalar::Bool(v) => (*v != 0).to_string(),
            Scalar::Int(v) => v.to_string(),
            Scalar::Long(v) => v.to_string(),
            Scalar::Double(v) => render_double(*v),
            Scalar::String(v) | Scalar::Symbol(v) => v.clone(),
            Scalar::Date(v) => render_date(*v),
            Scalar::DateTime(v) => render_nanos(i64::from(*v) * 1_000_000_000, 0),
            Scalar::Timestamp(v) => render_nanos(v.saturating_mul(1_000_000), 3),
            Scalar::NanoTimestamp(v) => render_nanos(*v, 9),
        }
    }

    /// The value as JSON: numbers as numbers, temporals as their text, NULL as `null`.
    pub fn to_json(&self) -> serde_json::Value {
        if self.is_null() {
            return serde_json::Value::Null;
        }
        match self {
            Scalar::Bool(v) => serde_json::Value::Bool(*v != 0),
            Scalar::Int(v) => (*v).into(),
            Scalar::Long(v) => (*v).into(),
            Scalar::Double(v) => serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::String(self.render()),
        }
    }
}

fn render_double(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').to_string()
    }
}

fn render_date(days: i32) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(i64::from(days))))
        .map(|d| d.format("%Y.%m.%d").to_string())
        .unwrap_or_else(|| format!("<bad date {days}>"))
}

/// `2023.01.08T09:30:00` with `digits` fraction digits (0, 3 or 9).
fn render_nanos(nanos: i64, digits: usize) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    let Some(t) = DateTime::from_timestamp(secs, 0) else {
        return format!("<bad time {nanos}>");
    };
    let base = t.format("%Y.%m.%dT%H:%M:%S").to_string();
    match digits {
        0 => base,
        3 => format!("{base}.{:03}", sub / 1_000_000),
        _ => format!("{base}.{sub:09}"),
    }
}

/// A [`Scalar`] as a hash key ([`Scalar::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScalarKey {
    Number(i64),
    Bits(u64),
    Text(String),
}

/// A typed column of values. Encoded with a numeric column as one run of bytes
/// (`packed.rs`).
#[derive(Debug, Clone, PartialEq)]
pub enum Vector {
    Bool(Vec<i8>),
    Int(Vec<i32>),
    Long(Vec<i64>),
    Double(Vec<f64>),
    String(Vec<String>),
    Symbol(Vec<String>),
    Date(Vec<i32>),
    DateTime(Vec<i32>),
    Timestamp(Vec<i64>),
    NanoTimestamp(Vec<i64>),
}

impl Vector {
    pub fn empty(t: DataType) -> Vector {
        match t {
            DataType::Bool => Vector::Bool(Vec::new()),
            DataType::Int => Vector::Int(Vec::new()),
            DataType::Long => Vector::Long(Vec::new()),
            DataType::Double => Vector::Double(Vec::new()),
            DataType::String => Vector::String(Vec::new()),
            DataType::Symbol => Vector::Symbol(Vec::new()),
            DataType::Date => Vector::Date(Vec::new()),
            DataType::DateTime => Vector::DateTime(Vec::new()),
            DataType::Timestamp => Vector::Timestamp(Vec::new()),
            DataType::NanoTimestamp => Vector::NanoTimestamp(Vec::new()),
        }
    }

    pub fn data_type(&self) -> DataType {
        match self {
            Vector::Bool(_) => DataType::Bool,
            Vector::Int(_) => DataType::Int,
            Vector::Long(_) => DataType::Long,
            Vector::Double(_) => DataType::Double,
            Vector::String(_) => DataType::String,
            Vector::Symbol(_) => DataType::Symbol,
            Vector::Date(_) => DataType::Date,
            Vector::DateTime(_) => DataType::DateTime,
            Vector::Timestamp(_) => DataType::Timestamp,
            Vector::NanoTimestamp(_) => DataType::NanoTimestamp,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Vector::Bool(v) => v.len(),
            Vector::Int(v) | Vector::Date(v) | Vector::DateTime(v) => v.len(),
            Vector::Long(v) | Vector::Timestamp(v) | Vector::NanoTimestamp(v) => v.len(),
            Vector::Double(v) => v.len(),
            Vector::String(v) | Vector::Symbol(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves `other`'s values to the end of this vector when both have the same type (in
    /// time linear in `other`); gives `other` back otherwise.
    pub fn extend_with(&mut self, other: Vector) -> Result<(), Vector> {
        match (self, other) {
            (Vector::Bool(a), Vector::Bool(b)) => a.extend(b),
            (Vector::Int(a), Vector::Int(b))
            | (Vector::Date(a), Vector::Date(b))
            | (Vector::DateTime(a), Vector::DateTime(b)) => a.extend(b),
            (Vector::Long(a), Vector::Long(b))
            | (Vector::Timestamp(a), Vector::Timestamp(b))
            | (Vector::NanoTimestamp(a), Vector::NanoTimestamp(b)) => a.extend(b),
            (Vector::Double(a), Vector::Double(b)) => a.extend(b),
            (Vector::String(a), Vector::String(b)) | (Vector::Symbol(a), Vector::Symbol(b)) => {
                a.extend(b)
            }
            (_, other) => return Err(other),
        }
        Ok(())
    }

    /// Whether element `i` is NULL (false past the end); reads it in place.
    pub fn is_null(&self, i: usize) -> bool {
        match self {
            Vector::Bool(v) => v.get(i) == Some(&NULL_BOOL),
            Vector::Int(v) | Vector::Date(v) | Vector::DateTime(v) => v.get(i) == Some(&NULL_INT),
            Vector::Long(v) | Vector::Timestamp(v) | Vector::NanoTimestamp(v) => {
                v.get(i) == Some(&NULL_LONG)
            }
            Vector::Double(v) => v.get(i).is_some_and(|x| x.is_nan()),
            Vector::String(v) | Vector::Symbol(v) => v.get(i).is_some_and(String::is_empty),
        }
    }

    /// Element `i` as a scalar, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Scalar> {
        Some(match self {
            Vector::Bool(v) => Scalar::Bool(*v.get(i)?),
            Vector::Int(v) => Scalar::Int(*v.get(i)?),
            Vector::Long(v) => Scalar::Long(*v.get(i)?),
            Vector::Double(v) => Scalar::Double(*v.get(i)?),
            Vector::String(v) => Scalar::String(v.get(i)?.clone()),
            Vector::Symbol(v) => Scalar::Symbol(v.get(i)?.clone()),
            Vector::Date(v) => Scalar::Date(*v.get(i)?),
            Vector::DateTime(v) => Scalar::DateTime(*v.get(i)?),
            Vector::Timestamp(v) => Scalar::Timestamp(*v.get(i)?),
            Vector::NanoTimestamp(v) => Scalar::NanoTimestamp(*v.get(i)?),
        })
    }

    /// Appends a scalar of the same type; a different type is refused with both names.
    pub fn push(&mut self, s: Scalar) -> Result<(), String> {
        match (self, s) {
            (Vector::Bool(v), Scalar::Bool(x)) => v.push(x),
            (Vector::Int(v), Scalar::Int(x)) => v.push(x),
            (Vector::Long(v), Scalar::Long(x)) => v.push(x),
            (Vector::Double(v), Scalar::Double(x)) => v.push(x),
            (Vector::String(v), Scalar::String(x)) => v.push(x),
            (Vector::Symbol(v), Scalar::Symbol(x)) => v.push(x),
            (Vector::Date(v), Scalar::Date(x)) => v.push(x),
            (Vector::DateTime(v), Scalar::DateTime(x)) => v.push(x),
            (Vector::Timestamp(v), Scalar::Timestamp(x)) => v.push(x),
            (Vector::NanoTimestamp(v), Scalar::NanoTimestamp(x)) => v.push(x),
            (v, s) => {
                return Err(format!(
                    "cannot put a {} into a {} vector",
                    s.data_type(),
                    v.data_type()
                ))
            }
        }
        Ok(())
    }
}

/// A named, typed column set of equal lengths. Decoding checks that too (through
/// [`Table::new`]): a table from the network or a file is never ragged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTable")]
pub struct Table {
    pub names: Vec<String>,
    pub columns: Vec<Vector>,
}

/// A [`Table`] as encoded, before its checks.
#[derive(Deserialize)]
struct RawTable {
    names: Vec<String>,
    columns: Vec<Vector>,
}

impl TryFrom<RawTable> for Table {
    type Error = String;

    fn try_from(t: RawTable) -> Result<Table, String> {
        Table::new(t.names, t.columns)
    }
}

impl Table {
    /// Builds a table, refusing duplicate names and unequal column lengths.
    pub fn new(names: Vec<String>, columns: Vec<Vector>) -> Result<Table, String> {
        if names.len() != columns.len() {
            return Err(format!(
                "a table needs as many names ({}) as columns ({})",
                names.len(),
                columns.len()
            ));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(format!("duplicate column name '{n}'"));
            }
        }
        if let Some(first) = columns.first() {
            if let Some((i, c)) = columns
                .iter()
                .enumerate()
                .find(|(_, c)| c.len() != first.len())
            {
                return Err(format!(
                    "column '{}' has {} rows but '{}' has {}",
                    names[i],
                    c.len(),
                    names[0],
                    first.len()
                ));
            }
        }
        Ok(Table { names, columns })
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Vector::len)
    }

    pub fn column(&self, name: &str) -> Option<&Vector> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.columns.get(i))
    }
}

/// `an INT`, `a DOUBLE`.
fn with_article(t: DataType) -> String {
    let article = if t.name().starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// A named function, passed as a value (`rpc(getControllerAlias(), getClusterPerf)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRef(pub String);

/// Anything a statement can evaluate to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// The result of a statement that returns nothing (an assignment, `login`).
    Void,
    Scalar(Scalar),
    Vector(Vector),
    /// `1:0`
    Pair(Box<Scalar>, Box<Scalar>),
    Table(Table),
    Function(FunctionRef),
    /// A type constant such as `INT`.
    Type(DataType),
    /// A word constant: a partition kind (`VALUE`, `RANGE`, `HASH`, `LIST`) or a right
    /// (`DB_READ`, `DB_WRITE`, `DB_OWNER`).
    Keyword(String),
    /// A handle on a database, as `database(...)` returns it.
    Database(String),
    /// A handle on a table of a database, as `loadTable` returns it.
    TableRef {
        db: String,
        table: String,
    },
    /// A vector of anything (e.g. the lists of a LIST scheme, a vector of types).
    Tuple(Vec<Value>),
    /// Named values in order, e.g. what `schema(db)` returns.
    Dict(Vec<(String, Value)>),
    /// `f{a, b}`: the function `func` with its first arguments fixed; calling it with more
    /// arguments calls `func` with all of them.
    Partial {
        func: String,
        args: Vec<Value>,
    },
}

impl Value {
    /// What kind of value this is, for error messages ("expects a table, got a vector").
    pub fn kind_name(&self) -> String {
        match self {
            Value::Void => "nothing".into(),
            Value::Scalar(s) => format!("{} scalar", with_article(s.data_type())),
            Value::Vector(v) => format!("{} vector", with_article(v.data_type())),
            Value::Pair(..) => "a pair".into(),
            Value::Table(_) => "a table".into(),
            Value::Function(_) => "a function".into(),
            Value::Type(_) => "a type".into(),
            Value::Keyword(_) => "a constant".into(),
            Value::Database(_) => "a database handle".into(),
            Value::TableRef { .. } => "a DFS table handle".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::Dict(_) => "a dictionary".into(),
            Value::Partial { .. } => "a partial application".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the hostile-input review: a decoded table skipped `Table::new`'s checks, so a
    /// peer could send one with more names than columns, or columns of unequal lengths, and
    /// code indexing by name or by row went out of bounds.
    #[test]
    fn grouping_keys_are_equal_exactly_when_the_values_are() {
        assert_eq!(
            Scalar::Double(f64::NAN).key(),
            Scalar::Double(-f64::NAN).key()
        );
        assert_eq!(Scalar::Double(-0.0).key(), Scalar::Double(0.0).key());
        assert_ne!(Scalar::Double(0.1 + 0.2).key(), Scalar::Double(0.3).key());
        assert_eq!(Scalar::DateTime(5).key(), Scalar::DateTime(5).key());
        assert_ne!(Scalar::Long(5).key(), Scalar::Long(6).key());
        assert_eq!(Scalar::string("a").key(), Scalar::string("a").key());
        assert_ne!(Scalar::string("a").key(), Scalar::string("b").key());
        assert_ne!(Scalar::string("5").key(), Scalar::Long(5).key());
    }

    #[test]
    fn regression_a_ragged_table_from_the_network_was_accepted() {
        #[derive(Serialize)]
        struct Raw {
            names: Vec<String>,
            columns: Vec<Vector>,
        }
        let ragged = [
            Raw {
                names: vec!["a".into(), "b".into()],
                columns: vec![Vector::Int(vec![1])],
            },
            Raw {
                names: vec!["a".into(), "b".into()],
                columns: vec![Vector::Int(vec![1]), Vector::Int(vec![1, 2])],
            },
            Raw {
                names: vec!["a".into(), "a".into()],
                columns: vec![Vector::Int(vec![1]), Vector::Int(vec![2])],
            },
        ];
        for r in &ragged {
            let bytes = rmp_serde::to_vec(r).expect("encode");
            let e = rmp_serde::from_slice::<Table>(&bytes).expect_err("refused");
            assert!(!e.to_string().is_empty());
        }
        let ok = Table::new(vec!["a".into()], vec![Vector::Int(vec![1, 2])]).expect("table");
        let bytes = rmp_serde::to_vec(&ok).expect("encode");
        assert_eq!(rmp_serde::from_slice::<Table>(&bytes).expect("decode"), ok);
    }

    #[test]
    fn renders_scalars_like_the_console() {
        assert_eq!(Scalar::Int(7).render(), "7");
        assert_eq!(Scalar::Int(NULL_INT).render(), "");
        assert_eq!(Scalar::bool(true).render(), "true");
        assert_eq!(Scalar::Double(1.5).render(), "1.5");
        assert_eq!(Scalar::Double(2.0).render(), "2");
        assert_eq!(Scalar::Date(19358).render(), "2023.01.01");
        assert_eq!(
            Scalar::DateTime(1_673_170_200).render(),
            "2023.01.08T09:30:00"
        );
        assert_eq!(
            Scalar::Timestamp(1_673_170_200_123).render(),
            "2023.01.08T09:30:00.123"
        );
        assert_eq!(
            Scalar::NanoTimestamp(1_678_940_754_175_813_489).render(),
            "2023.03.16T04:25:54.175813489"
        );
    }

    #[test]
    fn tables_refuse_ragged_columns_and_duplicate_names() {
        let ok = Table::new(
            vec!["a".into(), "b".into()],
            vec![Vector::Int(vec![1, 2]), Vector::Long(vec![3, 4])],
        );
        assert_eq!(ok.map(|t| t.rows()), Ok(2));
        assert!(Table::new(
            vec!["a".into(), "b".into()],
            vec![Vector::Int(vec![1]), Vector::Int(vec![1, 2])]
        )
        .is_err());
        assert!(Table::new(
            vec!["a".into(), "a".into()],
            vec![Vector::Int(vec![]), Vector::Int(vec![])]
        )
        .is_err());
    }

    #[test]
    fn push_refuses_other_types() {
        let mut v = Vector::empty(DataType::Int);
        assert!(v.push(Scalar::Int(1)).is_ok());
        assert!(v.push(Scalar::string("x")).is_err());
        assert_eq!(v.len(), 1);
    }
}
