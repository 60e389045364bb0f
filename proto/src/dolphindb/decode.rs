//! Objects from the wire into [`Value`]s: the arguments of `function` and `variable` requests.
//!
//! Every object starts with a type byte and a form byte. Types xrepl has no counterpart for
//! are mapped to the nearest one where nothing is lost (CHAR and SHORT to INT, FLOAT to
//! DOUBLE, VOID to an INT NULL) and refused, by name, where something would be (MONTH, TIME,
//! DECIMAL, UUID, ...).
//!
//! These bytes come from the network: a declared length is never trusted for an allocation
//! (vectors grow in bounded chunks as their bytes arrive), strings and nesting are bounded,
//! and nothing panics.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use xrepl_core::value::{Scalar, Table, Value, Vector, NULL_BOOL, NULL_INT};

use super::types::{self, type_name};
use super::{preview, MAX_DEPTH, MAX_STRING, MAX_SYMBOL_EXPANSION};

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The input failed or ended before the object did: the connection is unusable.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not an object xrepl can take; the message says which part, on one line.
    /// Where the refused object ends is unknown, so the connection cannot go on either, but
    /// the client should be told why.
    #[error("{0}")]
    Malformed(String),
}

fn malformed<T>(message: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::Malformed(message.into()))
}

/// Bytes read per chunk of a fixed-width vector: the most a declared length can make the
/// decoder allocate before the bytes are there.
const CHUNK: usize = 64 << 10;

/// Reads one whole object. Each call starts with no symbol bases.
pub fn read_object<R: BufRead>(r: &mut R) -> Result<Value, DecodeError> {
    Decoder {
        r,
        bases: HashMap::new(),
        expanded: 0,
    }
    .object(0)
}

struct Decoder<'a, R> {
    r: &'a mut R,
    /// Symbol bases by id, for a later vector that reuses one (base size 0). Scoped to a
    /// table, as the clients scope them.
    bases: HashMap<i32, Vec<String>>,
    /// Bytes of strings copied out of symbol bases so far ([`MAX_SYMBOL_EXPANSION`]).
    expanded: usize,
}

/// A vector's elements: typed, or whole objects (an ANY vector).
enum Elements {
    Typed(Vector),
    Any(Vec<Value>),
}

impl<R: BufRead> Decoder<'_, R> {
    fn object(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return malformed(format!("objects nest deeper than {MAX_DEPTH} levels"));
        }
        let [ty, form] = self.array::<2>()?;
        match form {
            types::FORM_SCALAR => self.scalar(ty).map(Value::Scalar),
            types::FORM_VECTOR => Ok(match self.vector(ty, depth)? {
                Elements::Typed(v) => Value::Vector(v),
                Elements::Any(v) => Value::Tuple(v),
            }),
            types::FORM_PAIR => self.pair(ty, depth),
            types::FORM_MATRIX => malformed("matrices are not supported by xrepl"),
            types::FORM_SET => {
                let [ty, form] = self.array::<2>()?;
                if form != types::FORM_VECTOR {
                    return malformed(format!(
                        "a set holds a vector, not a {}",
                        types::form_name(form)
                    ));
                }
                Ok(match self.vector(ty, depth)? {
                    Elements::Typed(v) => Value::Vector(v),
                    Elements::Any(v) => Value::Tuple(v),
                })
            }
            types::FORM_DICTIONARY => self.dictionary(depth),
            types::FORM_TABLE => self.table(ty, depth),
            other => {
                let name = types::form_name(other);
                if name.starts_with("form ") {
                    malformed(format!("{name} is not supported by xrepl"))
                } else {
                    malformed(format!("{name}s are not supported by xrepl"))
                }
            }
        }
    }

    fn scalar(&mut self, ty: u8) -> Result<Scalar, DecodeError> {
        Ok(match ty {
            types::VOID => {
                self.array::<1>()?;
                Scalar::Int(NULL_INT)
            }
            types::BOOL => Scalar::Bool(bool_of(self.array()?)),
            types::CHAR => Scalar::Int(char_of(self.array()?)),
            types::SHORT => Scalar::Int(short_of(self.array()?)),
            types::INT => Scalar::Int(i32::from_le_bytes(self.array()?)),
            types::DATE => Scalar::Date(i32::from_le_bytes(self.array()?)),
            types::DATETIME => Scalar::DateTime(i32::from_le_bytes(self.array()?)),
            types::LONG => Scalar::Long(i64::from_le_bytes(self.array()?)),
            types::TIMESTAMP => Scalar::Timestamp(i64::from_le_bytes(self.array()?)),
            types::NANOTIMESTAMP => Scalar::NanoTimestamp(i64::from_le_bytes(self.array()?)),
            types::FLOAT => Scalar::Double(float_of(self.array()?)),
            types::DOUBLE => Scalar::Double(double_of(self.array()?)),
            types::SYMBOL => Scalar::Symbol(self.string()?),
            types::STRING => Scalar::String(self.string()?),
            other => return unsupported(other),
        })
    }

    /// A vector's body after its type and form bytes: rows, columns (1), elements.
    fn vector(&mut self, ty: u8, depth: usize) -> Result<Elements, DecodeError> {
        // Refused before its length is read, so that the refusal does not depend on it.
        if !matches!(
            ty,
            types::VOID..=types::LONG
                | types::DATE
                | types::DATETIME
                | types::TIMESTAMP
                | types::NANOTIMESTAMP
                | types::FLOAT..=types::STRING
                | types::SYMBOL_BASE
                | types::ANY
        ) {
            return unsupported(ty);
        }
        let rows = self.count("a vector's length")?;
        let columns = i32::from_le_bytes(self.array()?);
        if columns != 1 {
            return malformed(format!(
                "a vector of {} with {columns} columns (matrices and array vectors are not \
                 supported by xrepl)",
                type_name(ty)
            ));
        }
        let v = match ty {
            types::VOID => Vector::Int(self.fixed(rows, |_: [u8; 1]| NULL_INT)?),
            types::BOOL => Vector::Bool(self.fixed(rows, bool_of)?),
            types::CHAR => Vector::Int(self.fixed(rows, char_of)?),
            types::SHORT => Vector::Int(self.fixed(rows, short_of)?),
            types::INT => Vector::Int(self.fixed(rows, i32::from_le_bytes)?),
            types::DATE => Vector::Date(self.fixed(rows, i32::from_le_bytes)?),
            types::DATETIME => Vector::DateTime(self.fixed(rows, i32::from_le_bytes)?),
            types::LONG => Vector::Long(self.fixed(rows, i64::from_le_bytes)?),
            types::TIMESTAMP => Vector::Timestamp(self.fixed(rows, i64::from_le_bytes)?),
            types::NANOTIMESTAMP => Vector::NanoTimestamp(self.fixed(rows, i64::from_le_bytes)?),
            types::FLOAT => Vector::Double(self.fixed(rows, float_of)?),
            types::DOUBLE => Vector::Double(self.fixed(rows, double_of)?),
            types::SYMBOL => Vector::Symbol(self.strings(rows)?),
            types::STRING => Vector::String(self.strings(rows)?),
            types::SYMBOL_BASE => Vector::Symbol(self.symbols(rows)?),
            types::ANY => {
                let mut items = Vec::new();
                for _ in 0..rows {
                    items.push(self.object(depth + 1)?);
                }
                return Ok(Elements::Any(items));
            }
            other => return unsupported(other),
        };
        Ok(Elements::Typed(v))
    }

    fn pair(&mut self, ty: u8, depth: usize) -> Result<Value, DecodeError> {
        let elements = self.vector(ty, depth)?;
        let Elements::Typed(v) = elements else {
            return malformed("a pair of ANY is not supported by xrepl");
        };
        match (v.get(0), v.get(1), v.len()) {
            (Some(a), Some(b), 2) => Ok(Value::Pair(Box::new(a), Box::new(b))),
            (.., n) => malformed(format!("a pair needs 2 elements, not {n}")),
        }
    }

    fn dictionary(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let [kt, kf] = self.array::<2>()?;
        if kf != types::FORM_VECTOR {
            return malformed(format!(
                "a dictionary's keys are a vector, not a {}",
                types::form_name(kf)
            ));
        }
        if !matches!(kt, types::STRING | types::SYMBOL | types::SYMBOL_BASE) {
            return malformed(format!(
                "dictionary keys must be STRING or SYMBOL for xrepl, not {}",
                type_name(kt)
            ));
        }
        let keys = match self.vector(kt, depth)? {
            Elements::Typed(Vector::String(k) | Vector::Symbol(k)) => k,
            _ => return malformed("dictionary keys must be STRING or SYMBOL for xrepl"),
        };
        let [vt, vf] = self.array::<2>()?;
        if vf != types::FORM_VECTOR {
            return malformed(format!(
                "a dictionary's values are a vector, not a {}",
                types::form_name(vf)
            ));
        }
        let values: Vec<Value> = match self.vector(vt, depth)? {
            Elements::Any(v) => v,
            Elements::Typed(v) => (0..v.len())
                .filter_map(|i| v.get(i))
                .map(Value::Scalar)
                .collect(),
        };
        if keys.len() != values.len() {
            return malformed(format!(
                "a dictionary with {} keys and {} values",
                keys.len(),
                values.len()
            ));
        }
        Ok(Value::Dict(keys.into_iter().zip(values).collect()))
    }

    fn table(&mut self, kind: u8, depth: usize) -> Result<Value, DecodeError> {
        // Kind 8 is what a client connected with compress=True sends; its columns are plain
        // unless one has a compression method, which is refused below (type COMPRESS).
        if kind != 0 && kind != types::TABLE_COMPRESSED {
            return malformed(format!("table kind {kind} is not supported by xrepl"));
        }
        let rows = self.count("a table's row count")?;
        let columns = self.count("a table's column count")?;
        self.string()?; // the table's name: xrepl's values have none
        let mut names = Vec::new();
        for _ in 0..columns {
            names.push(self.string()?);
        }
        // Symbol bases are numbered per table.
        let outer = std::mem::take(&mut self.bases);
        let decoded = self.columns(&names, rows, depth);
        self.bases = outer;
        let table = Table::new(names, decoded?).map_err(DecodeError::Malformed)?;
        Ok(Value::Table(table))
    }

    fn columns(
        &mut self,
        names: &[String],
        rows: usize,
        depth: usize,
    ) -> Result<Vec<Vector>, DecodeError> {
        let mut columns = Vec::new();
        for name in names {
            let [ty, form] = self.array::<2>()?;
            if form != types::FORM_VECTOR {
                return malformed(format!(
                    "column '{}' is a {}, not a vector",
                    preview(name),
                    types::form_name(form)
                ));
            }
            if ty == types::ANY {
                return malformed(format!(
                    "column '{}' is an ANY vector: not supported by xrepl",
                    preview(name)
                ));
            }
            let Elements::Typed(column) = self.vector(ty, depth)? else {
                return malformed(format!("column '{}' is not typed", preview(name)));
            };
            if column.len() != rows {
                return malformed(format!(
                    "column '{}' has {} rows but the table has {rows}",
                    preview(name),
                    column.len()
                ));
            }
            columns.push(column);
        }
        Ok(columns)
    }

    /// A symbol vector with its base, after rows and columns: base id, base size, the base's
    /// strings, then one index into the base per row.
    fn symbols(&mut self, rows: usize) -> Result<Vec<String>, DecodeError> {
        let id = i32::from_le_bytes(self.array()?);
        let size = self.count("a symbol base's size")?;
        let base = if size == 0 {
            self.bases.remove(&id).unwrap_or_default()
        } else {
            self.strings(size)?
        };
        let out = self.fixed(rows, i32::from_le_bytes).and_then(|indices| {
            // Sizes first, so that a refusal has copied nothing.
            for i in &indices {
                let Some(s) = usize::try_from(*i).ok().and_then(|i| base.get(i)) else {
                    return malformed(format!(
                        "symbol index {i} is out of range of base {id} ({} entries)",
                        base.len()
                    ));
                };
                self.expanded = self
                    .expanded
                    .saturating_add(s.len() + std::mem::size_of::<String>());
            }
            if self.expanded > MAX_SYMBOL_EXPANSION {
                return malformed(format!(
                    "symbol vectors expand to more than {MAX_SYMBOL_EXPANSION} bytes"
                ));
            }
            Ok(indices
                .iter()
                .filter_map(|i| usize::try_from(*i).ok().and_then(|i| base.get(i)))
                .cloned()
                .collect())
        });
        self.bases.insert(id, base);
        out
    }

    fn strings(&mut self, rows: usize) -> Result<Vec<String>, DecodeError> {
        let mut out = Vec::new();
        for _ in 0..rows {
            out.push(self.string()?);
        }
        Ok(out)
    }

    /// One UTF-8 string ending in NUL, at most [`MAX_STRING`] bytes.
    fn string(&mut self) -> Result<String, DecodeError> {
        let mut buf = Vec::new();
        let limit = MAX_STRING as u64 + 1;
        (&mut *self.r).take(limit).read_until(0, &mut buf)?;
        if buf.pop() != Some(0) {
            if buf.len() >= MAX_STRING {
                return malformed(format!("a string longer than {MAX_STRING} bytes"));
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the input ended inside a string",
            )
            .into());
        }
        String::from_utf8(buf).map_err(|e| {
            DecodeError::Malformed(format!(
                "a string is not valid UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ))
        })
    }

    /// `rows` elements of `W` bytes each, read in chunks of at most [`CHUNK`] bytes, so that
    /// memory grows only as the bytes arrive.
    fn fixed<T, const W: usize>(
        &mut self,
        rows: usize,
        convert: impl Fn([u8; W]) -> T,
    ) -> Result<Vec<T>, DecodeError> {
        let per_chunk = CHUNK / W;
        let mut scratch = vec![0u8; rows.min(per_chunk) * W];
        let mut out = Vec::new();
        let mut left = rows;
        while left > 0 {
            let n = left.min(per_chunk);
            let bytes = &mut scratch[..n * W];
            self.r.read_exact(bytes)?;
            out.reserve(n);
            out.extend(bytes.chunks_exact(W).map(|c| {
                let mut a = [0u8; W];
                a.copy_from_slice(c);
                convert(a)
            }));
            left -= n;
        }
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        self.r.read_exact(&mut a)?;
        Ok(a)
    }

    /// A length or a count (i32); a negative one is refused.
    fn count(&mut self, what: &str) -> Result<usize, DecodeError> {
        let n = i32::from_le_bytes(self.array()?);
        usize::try_from(n).or_else(|_| malformed(format!("{what} is negative ({n})")))
    }
}

fn unsupported<T>(ty: u8) -> Result<T, DecodeError> {
    match ty {
        types::COMPRESS => {
            malformed("compressed tables are not supported: connect with compress=False")
        }
        _ => {
            let name = type_name(ty);
            let name = if name.starts_with("type ") {
                name
            } else {
                format!("type {name}")
            };
            malformed(format!("{name} is not supported by xrepl"))
        }
    }
}

fn bool_of([b]: [u8; 1]) -> i8 {
    match b {
        0 => 0,
        0x80 => NULL_BOOL,
        _ => 1,
    }
}

fn char_of([b]: [u8; 1]) -> i32 {
    match b as i8 {
        i8::MIN => NULL_INT,
        v => i32::from(v),
    }
}

fn short_of(b: [u8; 2]) -> i32 {
    match i16::from_le_bytes(b) {
        i16::MIN => NULL_INT,
        v => i32::from(v),
    }
}

fn float_of(b: [u8; 4]) -> f64 {
    match f32::from_le_bytes(b) {
        v if v == -f32::MAX => f64::NAN,
        v => f64::from(v),
    }
}

fn double_of(b: [u8; 8]) -> f64 {
    match f64::from_le_bytes(b) {
        v if v == -f64::MAX => f64::NAN,
        v => v,
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
