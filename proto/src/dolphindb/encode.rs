//! [`Value`]s into objects, for replies: the forms and types the official clients decode.
//!
//! A SYMBOL column of a table travels as a vector with its symbol base (type 145), as
//! DolphinDB sends it, so that pandas gets the strings once per distinct value; everywhere
//! else a SYMBOL vector is sent as plain type 17, which the clients read like STRING.
//! Handles with no DolphinDB counterpart travel as what users can use: a function, keyword or
//! database as its name, a type as its type code.

use std::collections::HashMap;

use xrepl_core::value::{Scalar, Table, Value, Vector, NULL_BOOL};

use super::types::{self, code_of};
use super::MAX_DEPTH;

/// Appends `v` as one object. On an error nothing is appended, and the message (one line)
/// says what cannot be sent: a DFS table handle, a string holding a NUL byte, a vector over
/// DolphinDB's `i32` row limit, a table without columns.
pub fn write_object(v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    let written = value(v, out, 0);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

fn value(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "a value nested deeper than {MAX_DEPTH} levels cannot be sent to a DolphinDB client"
        ));
    }
    match v {
        Value::Void => out.extend_from_slice(&[types::VOID, types::FORM_SCALAR, 1]),
        Value::Scalar(s) => {
            out.extend_from_slice(&[code_of(s.data_type()), types::FORM_SCALAR]);
            scalar(s, out)?;
        }
        Value::Vector(v) => {
            out.extend_from_slice(&[code_of(v.data_type()), types::FORM_VECTOR]);
            vector(v, out)?;
        }
        Value::Pair(a, b) if a.data_type() == b.data_type() => {
            out.extend_from_slice(&[code_of(a.data_type()), types::FORM_PAIR]);
            out.extend_from_slice(&2i32.to_le_bytes());
            out.extend_from_slice(&1i32.to_le_bytes());
            scalar(a, out)?;
            scalar(b, out)?;
        }
        Value::Pair(a, b) => {
            let items = [Value::Scalar((**a).clone()), Value::Scalar((**b).clone())];
            tuple(&items, out, depth)?;
        }
        Value::Table(t) => table(t, out)?,
        Value::Tuple(items) => tuple(items, out, depth)?,
        Value::Dict(entries) => {
            out.extend_from_slice(&[types::ANY, types::FORM_DICTIONARY]);
            out.extend_from_slice(&[types::STRING, types::FORM_VECTOR]);
            header(entries.len(), out)?;
            for (k, _) in entries {
                string(k, out)?;
            }
            out.extend_from_slice(&[types::ANY, types::FORM_VECTOR]);
            header(entries.len(), out)?;
            for (_, v) in entries {
                value(v, out, depth + 1)?;
            }
        }
        Value::Function(f) => name(&f.0, out)?,
        Value::Keyword(k) => name(k, out)?,
        Value::Database(path) => name(path, out)?,
        Value::Type(t) => {
            out.extend_from_slice(&[types::INT, types::FORM_SCALAR]);
            out.extend_from_slice(&i32::from(code_of(*t)).to_le_bytes());
        }
        // A DFS table handle, and whatever the value model grows next.
        other => {
            return Err(format!(
                "{} cannot be sent to a DolphinDB client",
                other.kind_name()
            ))
        }
    }
    Ok(())
}

/// A STRING scalar: how a handle's name travels.
fn name(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&[types::STRING, types::FORM_SCALAR]);
    string(text, out)
}

fn tuple(items: &[Value], out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    out.extend_from_slice(&[types::ANY, types::FORM_VECTOR]);
    header(items.len(), out)?;
    for item in items {
        value(item, out, depth + 1)?;
    }
    Ok(())
}

fn scalar(s: &Scalar, out: &mut Vec<u8>) -> Result<(), String> {
    match s {
        Scalar::Bool(v) => out.push(bool_byte(*v)),
        Scalar::Int(v) | Scalar::Date(v) | Scalar::DateTime(v) => {
            out.extend_from_slice(&v.to_le_bytes())
        }
        Scalar::Long(v) | Scalar::Timestamp(v) | Scalar::NanoTimestamp(v) => {
            out.extend_from_slice(&v.to_le_bytes())
        }
        Scalar::Double(v) => out.extend_from_slice(&double_bytes(*v)),
        Scalar::String(v) | Scalar::Symbol(v) => string(v, out)?,
    }
    Ok(())
}

/// Rows and columns (1) of a vector.
fn header(rows: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let rows = i32::try_from(rows).map_err(|_| {
        format!(
            "a vector of {rows} rows is over DolphinDB's limit of {} rows",
            i32::MAX
        )
    })?;
    out.extend_from_slice(&rows.to_le_bytes());
    out.extend_from_slice(&1i32.to_le_bytes());
    Ok(())
}

/// A vector's body after its type and form bytes.
fn vector(v: &Vector, out: &mut Vec<u8>) -> Result<(), String> {
    header(v.len(), out)?;
    match v {
        Vector::Bool(v) => out.extend(v.iter().map(|b| bool_byte(*b))),
        Vector::Int(v) | Vector::Date(v) | Vector::DateTime(v) => {
            out.reserve(v.len() * 4);
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Vector::Long(v) | Vector::Timestamp(v) | Vector::NanoTimestamp(v) => {
            out.reserve(v.len() * 8);
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Vector::Double(v) => {
            out.reserve(v.len() * 8);
            for x in v {
                out.extend_from_slice(&double_bytes(*x));
            }
        }
        Vector::String(v) | Vector::Symbol(v) => {
            for s in v {
                string(s, out)?;
            }
        }
    }
    Ok(())
}

/// Form 6, kind 0, no name; SYMBOL columns with their bases, numbered 0, 1, ... per table.
fn table(t: &Table, out: &mut Vec<u8>) -> Result<(), String> {
    if t.columns.is_empty() {
        return Err("a table without columns cannot be sent to a DolphinDB client".into());
    }
    out.extend_from_slice(&[0, types::FORM_TABLE]);
    let (rows, columns) = (t.rows(), t.columns.len());
    let rows = i32::try_from(rows)
        .map_err(|_| format!("a table of {rows} rows is over DolphinDB's limit"))?;
    let columns = i32::try_from(columns)
        .map_err(|_| format!("a table of {columns} columns is over DolphinDB's limit"))?;
    out.extend_from_slice(&rows.to_le_bytes());
    out.extend_from_slice(&columns.to_le_bytes());
    out.push(0);
    for n in &t.names {
        string(n, out)?;
    }
    let mut next_base = 0i32;
    for c in &t.columns {
        match c {
            Vector::Symbol(s) if !s.is_empty() => {
                out.extend_from_slice(&[types::SYMBOL_BASE, types::FORM_VECTOR]);
                symbols(s, next_base, out)?;
                next_base += 1;
            }
            _ => {
                out.extend_from_slice(&[code_of(c.data_type()), types::FORM_VECTOR]);
                vector(c, out)?;
            }
        }
    }
    Ok(())
}

/// A symbol vector's body with its base: rows, 1, base id, base size, the base (`""` first,
/// then each distinct value in order of appearance), one index per row.
fn symbols(values: &[String], id: i32, out: &mut Vec<u8>) -> Result<(), String> {
    header(values.len(), out)?;
    let mut base: Vec<&str> = vec![""];
    let mut index: HashMap<&str, i32> = HashMap::from([("", 0)]);
    let mut rows = Vec::with_capacity(values.len());
    for v in values {
        let i = match index.get(v.as_str()) {
            Some(i) => *i,
            None => {
                // At most `values.len()` + 1 entries, which `header` has bounded by i32::MAX.
                let i = i32::try_from(base.len()).map_err(|_| "too many distinct symbols")?;
                base.push(v);
                index.insert(v, i);
                i
            }
        };
        rows.push(i);
    }
    out.extend_from_slice(&id.to_le_bytes());
    let size = i32::try_from(base.len()).map_err(|_| "too many distinct symbols")?;
    out.extend_from_slice(&size.to_le_bytes());
    for s in base {
        string(s, out)?;
    }
    out.reserve(rows.len() * 4);
    for i in rows {
        out.extend_from_slice(&i.to_le_bytes());
    }
    Ok(())
}

/// UTF-8 and a NUL; a NUL inside would end the string early on the client's side.
fn string(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    if s.as_bytes().contains(&0) {
        return Err(format!(
            "the string '{}' holds a NUL byte and cannot be sent to a DolphinDB client",
            super::preview(s)
        ));
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

fn bool_byte(b: i8) -> u8 {
    match b {
        NULL_BOOL => 0x80,
        0 => 0,
        _ => 1,
    }
}

/// DOUBLE's NULL (NaN for xrepl) is `-f64::MAX` on the wire.
fn double_bytes(v: f64) -> [u8; 8] {
    if v.is_nan() {
        (-f64::MAX).to_le_bytes()
    } else {
        v.to_le_bytes()
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
