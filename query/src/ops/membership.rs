//! Membership: [`is_in`] (hashing large sets) and [`between`], typed as comparisons; and the
//! untyped-NULL rule they share with `binary`.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use xrepl_core::value::{Scalar, Value, Vector};

use super::columns::null_of;
use super::kernel::{
    cmp_f64, collect_col, domain, factor, map1, scalar_float, scalar_str, scalar_wide, scaled,
    with_int, with_num, Col, Dom, Int, IntCol, Num, NumCol, Operand,
};

/// [`is_in`] hashes sets with more distinct elements than this and scans smaller ones.
const HASH_SET_MIN: usize = 16;

/// A NULL scalar `v` retyped to the type of `other`, when the types differ.
pub(super) fn retyped_null(v: &Value, other: &Value) -> Option<Value> {
    let Value::Scalar(s) = v else { return None };
    let t = match other {
        Value::Scalar(o) => o.data_type(),
        Value::Vector(o) => o.data_type(),
        _ => return None,
    };
    (s.is_null() && s.data_type() != t).then(|| Value::Scalar(null_of(t)))
}

/// A hasher for LONG keys (splitmix64's finaliser): fast and well mixed in every bit.
#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = self.0.rotate_left(32) ^ i;
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
}

type KeySet<K> = HashSet<K, BuildHasherDefault<MixHasher>>;

/// DOUBLE keys for hashing: `-0.0` is `0.0` and every NaN is one NULL.
#[inline]
fn f64_key(v: f64) -> u64 {
    if v.is_nan() {
        u64::MAX
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// Whether each element of `a` (a scalar or a vector) is in `set` (a scalar or a vector):
/// a BOOL of the shape of `a`. Elements compare as in `==` (numbers after promotion, temporals
/// in the finer unit, NULL matches NULL). Sets of more than 16 elements are hashed.
pub fn is_in(a: &Value, set: &Value) -> Result<Value, String> {
    let first = is_in_values(a, set);
    if first.is_err() {
        if let Some(s2) = retyped_null(set, a) {
            if let Ok(v) = is_in_values(a, &s2) {
                return Ok(v);
            }
        }
        if let Some(a2) = retyped_null(a, set) {
            if let Ok(v) = is_in_values(&a2, set) {
                return Ok(v);
            }
        }
    }
    first
}

fn is_in_values(a: &Value, set: &Value) -> Result<Value, String> {
    let (Some(x), Some(s)) = (Operand::of_value(a), Operand::of_value(set)) else {
        return Err(format!(
            "cannot look for {} in {}",
            a.kind_name(),
            set.kind_name()
        ));
    };
    let err = || format!("cannot look for {} values in {} values", x.ty, s.ty);
    let dom = domain(&[x.ty, s.ty]).ok_or_else(err)?;
    let out = match dom {
        Dom::Ints | Dom::Time(_) => {
            let (Some(p), Some(q)) = (x.ints(), s.ints()) else {
                return Err(err());
            };
            let (fa, fb) = (factor(x.ty, dom), factor(s.ty, dom));
            let mut keys = with_int!(q, |t| collect_col(t, |v| scaled(v.wide(), fb)));
            keys.sort_unstable();
            keys.dedup();
            if keys.len() > HASH_SET_MIN {
                let hashed: KeySet<i64> = keys.into_iter().collect();
                with_int!(p, |t| map1(t, |v| i8::from(
                    hashed.contains(&scaled(v.wide(), fa))
                )))
            } else {
                with_int!(p, |t| map1(t, |v| i8::from(
                    keys.contains(&scaled(v.wide(), fa))
                )))
            }
        }
        Dom::F64 => {
            let (Some(p), Some(q)) = (x.nums(), s.nums()) else {
                return Err(err());
            };
            let mut keys = with_num!(q, |t| collect_col(t, |v| f64_key(v.float())));
            keys.sort_unstable();
            keys.dedup();
            if keys.len() > HASH_SET_MIN {
                let hashed: KeySet<u64> = keys.into_iter().collect();
                with_num!(p, |t| map1(t, |v| i8::from(
                    hashed.contains(&f64_key(v.float()))
                )))
            } else {
                with_num!(p, |t| map1(t, |v| i8::from(
                    keys.contains(&f64_key(v.float()))
                )))
            }
        }
        Dom::Str => {
            let (Some(p), Some(q)) = (x.strs(), s.strs()) else {
                return Err(err());
            };
            let mut keys: Vec<&str> = match q {
                Col::One(v) => vec![v.as_str()],
                Col::Many(vs) => vs.iter().map(String::as_str).collect(),
            };
            keys.sort_unstable();
            keys.dedup();
            if keys.len() > HASH_SET_MIN {
                let hashed: HashSet<&str> = keys.into_iter().collect();
                map1(p, |v: &String| i8::from(hashed.contains(v.as_str())))
            } else {
                map1(p, |v: &String| i8::from(keys.contains(&v.as_str())))
            }
        }
    };
    Ok(out.into_value(Scalar::Bool, Vector::Bool))
}

/// Whether each element of `a` lies in `[lo, hi]` (both ends included), typed as comparisons
/// (NULL is the smallest value, so a NULL `lo` admits NULL elements). A NULL bound of a type
/// that cannot be compared with `a` (the untyped `NULL`) takes the type of `a`.
pub fn between(a: &Value, lo: &Scalar, hi: &Scalar) -> Result<Value, String> {
    let x = Operand::of_value(a)
        .ok_or_else(|| format!("between needs a scalar or a vector, got {}", a.kind_name()))?;
    let adopt = |s: &Scalar| -> Scalar {
        if s.is_null() && domain(&[x.ty, s.data_type()]).is_none() {
            null_of(x.ty)
        } else {
            s.clone()
        }
    };
    let (lo, hi) = (adopt(lo), adopt(hi));
    let (tl, th) = (lo.data_type(), hi.data_type());
    let err = || {
        let other = if domain(&[x.ty, tl]).is_none() {
            tl
        } else {
            th
        };
        format!("cannot compare {} and {}", x.ty, other)
    };
    let dom = domain(&[x.ty, tl, th]).ok_or_else(err)?;
    let out = match dom {
        Dom::Ints | Dom::Time(_) => {
            let (Some(l), Some(h), Some(p)) = (scalar_wide(&lo), scalar_wide(&hi), x.ints()) else {
                return Err(err());
            };
            let (l, h) = (scaled(l, factor(tl, dom)), scaled(h, factor(th, dom)));
            let fa = factor(x.ty, dom);
            with_int!(p, |t| map1(t, |v| {
                let k = scaled(v.wide(), fa);
                i8::from(l <= k && k <= h)
            }))
        }
        Dom::F64 => {
            let (Some(l), Some(h), Some(p)) = (scalar_float(&lo), scalar_float(&hi), x.nums())
            else {
                return Err(err());
            };
            with_num!(p, |t| map1(t, |v| {
                let k = v.float();
                i8::from(cmp_f64(k, l) != Ordering::Less && cmp_f64(k, h) != Ordering::Greater)
            }))
        }
        Dom::Str => {
            let (Some(l), Some(h), Some(p)) = (scalar_str(&lo), scalar_str(&hi), x.strs()) else {
                return Err(err());
            };
            map1(p, |v: &String| i8::from(l <= v.as_str() && v.as_str() <= h))
        }
    };
    Ok(out.into_value(Scalar::Bool, Vector::Bool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::kernel::testing::*;
    use xrepl_core::value::NULL_INT;

    #[test]
    fn membership() {
        // small set, scalar set, scalar probe
        assert_eq!(
            ok(is_in(&ints(&[1, 2, 3, NULL_INT]), &ints(&[3, 1]))),
            bools(&[1, 0, 1, 0])
        );
        assert_eq!(ok(is_in(&ints(&[1, 2]), &int(2))), bools(&[0, 1]));
        assert_eq!(ok(is_in(&int(2), &ints(&[1, 2]))), b(true));
        // NULL matches NULL
        assert_eq!(
            ok(is_in(&ints(&[NULL_INT, 1]), &ints(&[NULL_INT]))),
            bools(&[1, 0])
        );
        // a large set is hashed, with the same answers
        let big: Vec<i32> = (0..1000).map(|i| i * 3).collect();
        let probe: Vec<i32> = (0..20).collect();
        let want: Vec<i8> = probe.iter().map(|x| i8::from(x % 3 == 0)).collect();
        assert_eq!(ok(is_in(&ints(&probe), &ints(&big))), bools(&want));
        let longs = vc(Vector::Long(big.iter().map(|x| i64::from(*x)).collect()));
        assert_eq!(ok(is_in(&ints(&probe), &longs)), bools(&want));
        // numbers promote
        assert_eq!(
            ok(is_in(
                &ints(&[1, 2]),
                &vc(Vector::Double(vec![2.0, 2.5, -0.0]))
            )),
            bools(&[0, 1])
        );
        assert_eq!(
            ok(is_in(
                &sc(Scalar::Double(0.0)),
                &vc(Vector::Double(vec![-0.0]))
            )),
            b(true)
        );
        let dbl: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(
            ok(is_in(
                &vc(Vector::Double(vec![5.0, 5.5, f64::NAN])),
                &vc(Vector::Double(dbl))
            )),
            bools(&[1, 0, 0])
        );
        // strings and symbols, small and large
        let names = vc(Vector::Symbol(vec!["a".into(), "b".into()]));
        assert_eq!(
            ok(is_in(&vc(strs(&["a", "c", "b"])), &names)),
            bools(&[1, 0, 1])
        );
        let many: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
        assert_eq!(
            ok(is_in(
                &vc(strs(&["s7", "s70", ""])),
                &vc(Vector::String(many))
            )),
            bools(&[1, 0, 0])
        );
        // temporals of the same type
        assert_eq!(
            ok(is_in(
                &vc(Vector::Date(vec![1, 2, 3])),
                &vc(Vector::Date(vec![2]))
            )),
            bools(&[0, 1, 0])
        );
        assert_eq!(
            err(is_in(&ints(&[1]), &vc(strs(&["a"])))),
            "cannot look for INT values in STRING values"
        );
        assert_eq!(
            err(is_in(&Value::Void, &ints(&[1]))),
            format!(
                "cannot look for {} in an INT vector",
                Value::Void.kind_name()
            )
        );
    }

    #[test]
    fn between_is_inclusive() {
        let v = ints(&[1, 2, 3, 4, NULL_INT]);
        assert_eq!(
            ok(between(&v, &Scalar::Int(2), &Scalar::Int(3))),
            bools(&[0, 1, 1, 0, 0])
        );
        assert_eq!(
            ok(between(&v, &Scalar::Double(1.5), &Scalar::Long(4))),
            bools(&[0, 1, 1, 1, 0])
        );
        assert_eq!(
            ok(between(&int(5), &Scalar::Int(5), &Scalar::Int(5))),
            b(true)
        );
        assert_eq!(
            ok(between(&int(5), &Scalar::Int(6), &Scalar::Int(4))),
            b(false)
        );
        assert_eq!(
            ok(between(
                &vc(Vector::Double(vec![0.5, f64::NAN, 2.0])),
                &Scalar::Int(0),
                &Scalar::Int(1)
            )),
            bools(&[1, 0, 0])
        );
        // an untyped NULL lower bound: NULL is the smallest value
        assert_eq!(
            ok(between(
                &vc(Vector::Double(vec![0.5, f64::NAN, 2.0])),
                &Scalar::Int(NULL_INT),
                &Scalar::Int(1)
            )),
            bools(&[1, 1, 0])
        );
        assert_eq!(
            ok(between(
                &vc(strs(&["apple", "banana", "cherry", ""])),
                &Scalar::string("b"),
                &Scalar::Symbol("c".into())
            )),
            bools(&[0, 1, 0, 0])
        );
        // a DATETIME column between two DATEs (the upper one is midnight)
        assert_eq!(
            ok(between(
                &vc(Vector::DateTime(vec![
                    DT0930,
                    (D0108 + 1) * 86_400,
                    (D0108 + 1) * 86_400 + 1,
                    D0108 * 86_400 - 1
                ])),
                &Scalar::Date(D0108),
                &Scalar::Date(D0108 + 1)
            )),
            bools(&[1, 1, 0, 0])
        );
        assert_eq!(
            err(between(&v, &Scalar::Int(1), &Scalar::string("x"))),
            "cannot compare INT and STRING"
        );
        assert_eq!(
            err(between(
                &vc(Vector::Date(vec![1])),
                &Scalar::Int(1),
                &Scalar::Int(2)
            )),
            "cannot compare DATE and INT"
        );
    }
}
