//! The encoded form of a [`Vector`]: a numeric column is one run of little-endian bytes (a
//! MessagePack `bin`), not one MessagePack number per element. Encoding is then a copy,
//! decoding a copy and a length check, and the frame checks of `xrepl-proto` see one value
//! instead of millions; a 1.21 M-row table moves through the replication path that many times.
//!
//! Strings stay a sequence. A numeric column written element by element (by xrepl before
//! this form, in column blocks and task data already on disk) still decodes.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::value::Vector;

/// A fixed-width number stored little-endian.
pub(crate) trait Packable: Copy + for<'de> Deserialize<'de> {
    const WIDTH: usize;
    const NAME: &'static str;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

macro_rules! packable {
    ($t:ty, $name:literal) => {
        impl Packable for $t {
            const WIDTH: usize = std::mem::size_of::<$t>();
            const NAME: &'static str = $name;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    };
}
packable!(i8, "BOOL");
packable!(i32, "INT");
packable!(i64, "LONG");
packable!(f64, "DOUBLE");

/// A numeric column, borrowed, encoded as bytes.
struct PackedRef<'a, T>(&'a [T]);

impl<T: Packable> Serialize for PackedRef<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(self.0.len() * T::WIDTH);
        for v in self.0 {
            v.put(&mut out);
        }
        s.serialize_bytes(&out)
    }
}

/// A numeric column as decoded: from bytes, or from a sequence of numbers (the older form).
struct Packed<T>(Vec<T>);

impl<'de, T: Packable> Deserialize<'de> for Packed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PackedVisitor(PhantomData))
    }
}

struct PackedVisitor<T>(PhantomData<T>);

impl<'de, T: Packable> Visitor<'de> for PackedVisitor<T> {
    type Value = Packed<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} column (bytes or a sequence of numbers)", T::NAME)
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
        if !b.len().is_multiple_of(T::WIDTH) {
            return Err(E::custom(format!(
                "a {} column of {} bytes, not a multiple of {}",
                T::NAME,
                b.len(),
                T::WIDTH
            )));
        }
        Ok(Packed(b.chunks_exact(T::WIDTH).map(T::get).collect()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // What a peer declares is not reserved up front: the elements must be there first.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<T>()? {
            out.push(v);
        }
        Ok(Packed(out))
    }
}

/// [`Vector`] as written: the same variants, in the same order, under the same names.
#[derive(Serialize)]
#[serde(rename = "Vector")]
enum WireRef<'a> {
    Bool(PackedRef<'a, i8>),
    Int(PackedRef<'a, i32>),
    Long(PackedRef<'a, i64>),
    Double(PackedRef<'a, f64>),
    String(&'a [String]),
    Symbol(&'a [String]),
    Date(PackedRef<'a, i32>),
    DateTime(PackedRef<'a, i32>),
    Timestamp(PackedRef<'a, i64>),
    NanoTimestamp(PackedRef<'a, i64>),
}

/// [`Vector`] as read.
#[derive(Deserialize)]
#[serde(rename = "Vector")]
enum Wire {
    Bool(Packed<i8>),
    Int(Packed<i32>),
    Long(Packed<i64>),
    Double(Packed<f64>),
    String(Vec<String>),
    Symbol(Vec<String>),
    Date(Packed<i32>),
    DateTime(Packed<i32>),
    Timestamp(Packed<i64>),
    NanoTimestamp(Packed<i64>),
}

impl Serialize for Vector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Vector::Bool(v) => WireRef::Bool(PackedRef(v)),
            Vector::Int(v) => WireRef::Int(PackedRef(v)),
            Vector::Long(v) => WireRef::Long(PackedRef(v)),
            Vector::Double(v) => WireRef::Double(PackedRef(v)),
            Vector::String(v) => WireRef::String(v),
            Vector::Symbol(v) => WireRef::Symbol(v),
            Vector::Date(v) => WireRef::Date(PackedRef(v)),
            Vector::DateTime(v) => WireRef::DateTime(PackedRef(v)),
            Vector::Timestamp(v) => WireRef::Timestamp(PackedRef(v)),
            Vector::NanoTimestamp(v) => WireRef::NanoTimestamp(PackedRef(v)),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Wire::deserialize(d)? {
            Wire::Bool(p) => Vector::Bool(p.0),
            Wire::Int(p) => Vector::Int(p.0),
            Wire::Long(p) => Vector::Long(p.0),
            Wire::Double(p) => Vector::Double(p.0),
            Wire::String(v) => Vector::String(v),
            Wire::Symbol(v) => Vector::Symbol(v),
            Wire::Date(p) => Vector::Date(p.0),
            Wire::DateTime(p) => Vector::DateTime(p.0),
            Wire::Timestamp(p) => Vector::Timestamp(p.0),
            Wire::NanoTimestamp(p) => Vector::NanoTimestamp(p.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived form xrepl wrote before: one number per element.
    #[derive(Serialize)]
    #[serde(rename = "Vector")]
    enum Old {
        Bool(Vec<i8>),
        Int(Vec<i32>),
        Long(Vec<i64>),
        Double(Vec<f64>),
        String(Vec<String>),
    }

    fn all() -> Vec<Vector> {
        vec![
            Vector::Bool(vec![1, 0, i8::MIN]),
            Vector::Int(vec![1, -2, i32::MIN, i32::MAX]),
            Vector::Long(vec![7, i64::MIN]),
            Vector::Double(vec![1.5, f64::NAN, -0.0, f64::INFINITY]),
            Vector::String(vec!["a".into(), String::new()]),
            Vector::Symbol(vec!["s".into()]),
            Vector::Date(vec![19_358]),
            Vector::DateTime(vec![0, i32::MIN]),
            Vector::Timestamp(vec![1_700_000_000_000]),
            Vector::NanoTimestamp(vec![]),
        ]
    }

    /// Equal, NaNs included (a NaN is DOUBLE's NULL).
    fn same(a: &Vector, b: &Vector) -> bool {
        match (a, b) {
            (Vector::Double(x), Vector::Double(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            _ => a == b,
        }
    }

    #[test]
    fn every_type_round_trips() {
        for v in all() {
            let bytes = rmp_serde::to_vec(&v).expect("encode");
            let back: Vector = rmp_serde::from_slice(&bytes).expect("decode");
            assert!(same(&v, &back), "{v:?} came back as {back:?}");
        }
    }

    #[test]
    fn a_numeric_column_is_one_run_of_bytes() {
        let v = Vector::Double(vec![0.5; 1000]);
        let bytes = rmp_serde::to_vec(&v).expect("encode");
        // The tag, a bin32 header and 8,000 bytes: no per-element markers.
        assert!(bytes.len() < 8_000 + 32, "{} bytes", bytes.len());
    }

    #[test]
    fn the_older_element_by_element_form_still_decodes() {
        let cases = [
            (Old::Bool(vec![1, i8::MIN]), Vector::Bool(vec![1, i8::MIN])),
            (Old::Int(vec![3, i32::MIN]), Vector::Int(vec![3, i32::MIN])),
            (Old::Long(vec![i64::MAX]), Vector::Long(vec![i64::MAX])),
            (Old::Double(vec![2.25]), Vector::Double(vec![2.25])),
            (
                Old::String(vec!["x".into()]),
                Vector::String(vec!["x".into()]),
            ),
        ];
        for (old, want) in cases {
            let bytes = rmp_serde::to_vec(&old).expect("encode");
            let back: Vector = rmp_serde::from_slice(&bytes).expect("decode");
            assert_eq!(back, want);
        }
    }

    #[test]
    fn a_ragged_run_of_bytes_is_refused() {
        #[derive(Serialize)]
        #[serde(rename = "Vector")]
        enum Bad {
            #[allow(dead_code)]
            Bool(Vec<i8>),
            Int(serde_bytes::ByteBuf),
        }
        let bytes =
            rmp_serde::to_vec(&Bad::Int(serde_bytes::ByteBuf::from(vec![1u8; 7]))).expect("encode");
        let e = rmp_serde::from_slice::<Vector>(&bytes).expect_err("refused");
        assert!(e.to_string().contains("not a multiple of 4"), "{e}");
    }
}
