//! Vectorised operators and functions over scalars and column vectors: arithmetic,
//! comparisons, logic, membership (`in`, `between`), casts, aggregates, and the column
//! plumbing a query needs (filter by a mask, gather by indices, concatenate).
//!
//! Every operation works on the typed `Vec`s of [`Vector`] with one tight loop per type
//! combination (chosen once, outside the loop), broadcasting a scalar operand to every row.
//! Nothing here panics on any input: a misuse is an `Err(String)` naming the types.
//!
//! # Semantics the caller must know
//!
//! * **NULLs** are the sentinels of [`xrepl_core::value`]. In arithmetic a NULL operand gives NULL.
//!   In comparisons NULL is the smallest value of its type: `NULL < 1`, `NULL == NULL` and
//!   `NaN == NaN` are true, `NULL == 1` is false. Comparisons and `and`/`or` never return NULL.
//! * **Integer arithmetic** is checked: an overflow gives NULL (never a wrapped value).
//!   `INT op INT` is INT, with a LONG it is LONG, with a DOUBLE it is DOUBLE; BOOL counts as INT.
//!   Integer `/` and `%` round the quotient down (DolphinDB: `-7/2 == -4`, `-7%2 == 1`, the
//!   remainder takes the divisor's sign); a zero divisor gives NULL, for DOUBLE too.
//! * **Temporals**: DATE/DATETIME/TIMESTAMP/NANOTIMESTAMP plus or minus an integer moves by
//!   days/seconds/milliseconds/nanoseconds and keeps the type (out of range gives NULL);
//!   `integer + temporal` likewise; `t1 - t2` of the same type is INT (DATE, DATETIME) or LONG
//!   (TIMESTAMP, NANOTIMESTAMP). Temporals of different types compare in the finer unit
//!   (DATE `2023.01.08` equals DATETIME `2023.01.08T00:00:00` and is less than any later time).
//! * **Strings**: STRING and SYMBOL mix freely; `+` concatenates into a STRING; comparisons are
//!   lexicographic by bytes, the empty (NULL) string first.
//! * **`and`/`or`/`not`** accept BOOL and numbers (non-zero is true); NULL counts as false in
//!   `and`/`or`, while `not NULL` stays NULL.
//! * **Untyped NULL**: the literal `NULL` evaluates to an INT NULL scalar. When an operator,
//!   [`is_in`] or [`between`] would refuse the types and one side is a NULL *scalar*, that side
//!   takes the other side's type (so `s == NULL` works on a STRING column).
//! * [`binary`] also runs `In` (as [`is_in`]) and `Between` (right side a [`Value::Pair`]);
//!   `Range` and `Pair` are refused: they build values rather than compute element-wise.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use xrepl_core::operator::BinOp;
use xrepl_core::value::{DataType, Scalar, Value, Vector, NULL_BOOL, NULL_INT, NULL_LONG};

/// [`is_in`] hashes sets with more distinct elements than this and scans smaller ones.
const HASH_SET_MIN: usize = 16;

// ---------------------------------------------------------------------------------------------
// Element traits
// ---------------------------------------------------------------------------------------------

/// An element type of a [`Vector`] with its NULL sentinel.
trait Elem: Clone {
    fn null() -> Self;
    fn is_nil(&self) -> bool;
}

impl Elem for i8 {
    fn null() -> i8 {
        NULL_BOOL
    }
    fn is_nil(&self) -> bool {
        *self == NULL_BOOL
    }
}

impl Elem for i32 {
    fn null() -> i32 {
        NULL_INT
    }
    fn is_nil(&self) -> bool {
        *self == NULL_INT
    }
}

impl Elem for i64 {
    fn null() -> i64 {
        NULL_LONG
    }
    fn is_nil(&self) -> bool {
        *self == NULL_LONG
    }
}

impl Elem for f64 {
    fn null() -> f64 {
        f64::NAN
    }
    fn is_nil(&self) -> bool {
        self.is_nan()
    }
}

impl Elem for String {
    fn null() -> String {
        String::new()
    }
    fn is_nil(&self) -> bool {
        self.is_empty()
    }
}

/// A numeric storage element: BOOL (`i8`), INT and the 32-bit temporals (`i32`), LONG and the
/// 64-bit temporals (`i64`), DOUBLE (`f64`).
trait Num: Elem + Copy {
    /// As a DOUBLE; NULL becomes NaN.
    fn float(self) -> f64;
    /// As a LONG, DOUBLEs rounded half away from zero; NULL and out-of-range values give NULL.
    fn rounded(self) -> i64;
    /// Non-NULL and non-zero.
    fn truth(self) -> bool;
}

/// An integer storage element (BOOL, INT, LONG and the temporals).
trait Int: Num {
    /// As a LONG; NULL becomes the LONG NULL (so it stays the smallest value).
    fn wide(self) -> i64;
}

/// `Num` and `Int` for an integer storage type whose NULL is `$null`.
macro_rules! int_storage {
    ($t:ty, $null:expr) => {
        impl Num for $t {
            #[inline]
            fn float(self) -> f64 {
                if self == $null {
                    f64::NAN
                } else {
                    self as f64
                }
            }
            #[inline]
            fn rounded(self) -> i64 {
                self.wide()
            }
            #[inline]
            fn truth(self) -> bool {
                self != $null && self != 0
            }
        }

        impl Int for $t {
            #[inline]
            fn wide(self) -> i64 {
                if self == $null {
                    NULL_LONG
                } else {
                    i64::from(self)
                }
            }
        }
    };
}

int_storage!(i8, NULL_BOOL);
int_storage!(i32, NULL_INT);
int_storage!(i64, NULL_LONG);

/// 2^63 as a DOUBLE: the first value past the LONG range.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

impl Num for f64 {
    #[inline]
    fn float(self) -> f64 {
        self
    }
    #[inline]
    fn rounded(self) -> i64 {
        let r = self.round();
        // NaN fails both comparisons; -2^63 itself would be the NULL sentinel anyway.
        if r > -TWO_POW_63 && r < TWO_POW_63 {
            r as i64
        } else {
            NULL_LONG
        }
    }
    #[inline]
    fn truth(self) -> bool {
        !self.is_nan() && self != 0.0
    }
}

/// A LONG narrowed to an INT; NULL and out-of-range values give the INT NULL.
#[inline]
fn narrow(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(NULL_INT)
}

// ---------------------------------------------------------------------------------------------
// Operands: a scalar broadcast to every row, or a borrowed column
// ---------------------------------------------------------------------------------------------

enum Col<'a, T> {
    One(T),
    Many(&'a [T]),
}

impl<T> Col<'_, T> {
    fn rows(&self) -> Option<usize> {
        match self {
            Col::One(_) => None,
            Col::Many(xs) => Some(xs.len()),
        }
    }
}

/// The result of a kernel: one value (both operands scalars) or a column.
enum Out<R> {
    One(R),
    Many(Vec<R>),
}

impl<R> Out<R> {
    fn into_value(
        self,
        scalar: impl FnOnce(R) -> Scalar,
        vector: impl FnOnce(Vec<R>) -> Vector,
    ) -> Value {
        match self {
            Out::One(x) => Value::Scalar(scalar(x)),
            Out::Many(xs) => Value::Vector(vector(xs)),
        }
    }
}

/// `f` over each pair of rows. Two columns must have equal lengths (checked by the callers;
/// a longer one would be cut, never read out of bounds).
#[inline]
fn zip_map<A, B, R>(a: &Col<'_, A>, b: &Col<'_, B>, f: impl Fn(&A, &B) -> R) -> Out<R> {
    match (a, b) {
        (Col::One(x), Col::One(y)) => Out::One(f(x, y)),
        (Col::One(x), Col::Many(ys)) => Out::Many(ys.iter().map(|y| f(x, y)).collect()),
        (Col::Many(xs), Col::One(y)) => Out::Many(xs.iter().map(|x| f(x, y)).collect()),
        (Col::Many(xs), Col::Many(ys)) => {
            Out::Many(xs.iter().zip(ys.iter()).map(|(x, y)| f(x, y)).collect())
        }
    }
}

#[inline]
fn map1<A, R>(a: &Col<'_, A>, f: impl Fn(&A) -> R) -> Out<R> {
    match a {
        Col::One(x) => Out::One(f(x)),
        Col::Many(xs) => Out::Many(xs.iter().map(f).collect()),
    }
}

/// Every element of `c` through `f`.
fn collect_col<T, K>(c: &Col<'_, T>, f: impl Fn(&T) -> K) -> Vec<K> {
    match c {
        Col::One(x) => vec![f(x)],
        Col::Many(xs) => xs.iter().map(f).collect(),
    }
}

/// The storage of an operand; its logical type is in [`Operand::ty`].
enum Cols<'a> {
    Bool(Col<'a, i8>),
    I32(Col<'a, i32>),
    I64(Col<'a, i64>),
    F64(Col<'a, f64>),
    Str(Col<'a, String>),
}

struct Operand<'a> {
    ty: DataType,
    cols: Cols<'a>,
}

/// An integer view of an operand (BOOL, INT, LONG or a temporal's storage).
enum IntCol<'r, 'a> {
    B(&'r Col<'a, i8>),
    I(&'r Col<'a, i32>),
    L(&'r Col<'a, i64>),
}

/// A numeric view of an operand.
enum NumCol<'r, 'a> {
    B(&'r Col<'a, i8>),
    I(&'r Col<'a, i32>),
    L(&'r Col<'a, i64>),
    D(&'r Col<'a, f64>),
}

/// Runs `$body` with `$x` bound to the typed column of an [`IntCol`] (one instance per type).
macro_rules! with_int {
    ($c:expr, |$x:ident| $body:expr) => {
        match $c {
            IntCol::B($x) => $body,
            IntCol::I($x) => $body,
            IntCol::L($x) => $body,
        }
    };
}

/// Runs `$body` with `$x` bound to the typed column of a [`NumCol`] (one instance per type).
macro_rules! with_num {
    ($c:expr, |$x:ident| $body:expr) => {
        match $c {
            NumCol::B($x) => $body,
            NumCol::I($x) => $body,
            NumCol::L($x) => $body,
            NumCol::D($x) => $body,
        }
    };
}

/// Builds a vector of the same type as `$v` from `$body`, with `$xs` bound to its elements.
macro_rules! per_vector {
    ($v:expr, |$xs:ident| $body:expr) => {
        match $v {
            Vector::Bool($xs) => Vector::Bool($body),
            Vector::Int($xs) => Vector::Int($body),
            Vector::Long($xs) => Vector::Long($body),
            Vector::Double($xs) => Vector::Double($body),
            Vector::String($xs) => Vector::String($body),
            Vector::Symbol($xs) => Vector::Symbol($body),
            Vector::Date($xs) => Vector::Date($body),
            Vector::DateTime($xs) => Vector::DateTime($body),
            Vector::Timestamp($xs) => Vector::Timestamp($body),
            Vector::NanoTimestamp($xs) => Vector::NanoTimestamp($body),
        }
    };
}

impl<'a> Operand<'a> {
    fn of_scalar(s: &Scalar) -> Operand<'a> {
        let cols = match s {
            Scalar::Bool(x) => Cols::Bool(Col::One(*x)),
            Scalar::Int(x) | Scalar::Date(x) | Scalar::DateTime(x) => Cols::I32(Col::One(*x)),
            Scalar::Long(x) | Scalar::Timestamp(x) | Scalar::NanoTimestamp(x) => {
                Cols::I64(Col::One(*x))
            }
            Scalar::Double(x) => Cols::F64(Col::One(*x)),
            Scalar::String(x) | Scalar::Symbol(x) => Cols::Str(Col::One(x.clone())),
        };
        Operand {
            ty: s.data_type(),
            cols,
        }
    }

    fn of_vector(v: &'a Vector) -> Operand<'a> {
        let cols = match v {
            Vector::Bool(xs) => Cols::Bool(Col::Many(xs)),
            Vector::Int(xs) | Vector::Date(xs) | Vector::DateTime(xs) => Cols::I32(Col::Many(xs)),
            Vector::Long(xs) | Vector::Timestamp(xs) | Vector::NanoTimestamp(xs) => {
                Cols::I64(Col::Many(xs))
            }
            Vector::Double(xs) => Cols::F64(Col::Many(xs)),
            Vector::String(xs) | Vector::Symbol(xs) => Cols::Str(Col::Many(xs)),
        };
        Operand {
            ty: v.data_type(),
            cols,
        }
    }

    fn of_value(v: &'a Value) -> Option<Operand<'a>> {
        match v {
            Value::Scalar(s) => Some(Operand::of_scalar(s)),
            Value::Vector(x) => Some(Operand::of_vector(x)),
            _ => None,
        }
    }

    /// The number of rows, `None` for a scalar.
    fn rows(&self) -> Option<usize> {
        match &self.cols {
            Cols::Bool(c) => c.rows(),
            Cols::I32(c) => c.rows(),
            Cols::I64(c) => c.rows(),
            Cols::F64(c) => c.rows(),
            Cols::Str(c) => c.rows(),
        }
    }

    fn ints(&self) -> Option<IntCol<'_, 'a>> {
        match &self.cols {
            Cols::Bool(c) => Some(IntCol::B(c)),
            Cols::I32(c) => Some(IntCol::I(c)),
            Cols::I64(c) => Some(IntCol::L(c)),
            Cols::F64(_) | Cols::Str(_) => None,
        }
    }

    fn nums(&self) -> Option<NumCol<'_, 'a>> {
        match &self.cols {
            Cols::Bool(c) => Some(NumCol::B(c)),
            Cols::I32(c) => Some(NumCol::I(c)),
            Cols::I64(c) => Some(NumCol::L(c)),
            Cols::F64(c) => Some(NumCol::D(c)),
            Cols::Str(_) => None,
        }
    }

    fn strs(&self) -> Option<&Col<'a, String>> {
        match &self.cols {
            Cols::Str(c) => Some(c),
            _ => None,
        }
    }
}

fn check_rows(x: &Operand, y: &Operand) -> Result<(), String> {
    match (x.rows(), y.rows()) {
        (Some(a), Some(b)) if a != b => Err(format!("vectors of different lengths: {a} and {b}")),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Type classes and comparison domains
// ---------------------------------------------------------------------------------------------

/// Temporal units, coarsest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Day,
    Sec,
    Milli,
    Nano,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// BOOL, INT, LONG
    Int,
    /// DOUBLE
    Float,
    /// STRING, SYMBOL
    Str,
    Time(Unit),
}

fn class(t: DataType) -> Class {
    match t {
        DataType::Bool | DataType::Int | DataType::Long => Class::Int,
        DataType::Double => Class::Float,
        DataType::String | DataType::Symbol => Class::Str,
        DataType::Date => Class::Time(Unit::Day),
        DataType::DateTime => Class::Time(Unit::Sec),
        DataType::Timestamp => Class::Time(Unit::Milli),
        DataType::NanoTimestamp => Class::Time(Unit::Nano),
    }
}

fn unit_nanos(u: Unit) -> i64 {
    match u {
        Unit::Day => 86_400_000_000_000,
        Unit::Sec => 1_000_000_000,
        Unit::Milli => 1_000_000,
        Unit::Nano => 1,
    }
}

/// How many `fine` units make one `coarse` unit (1 if `coarse` is not coarser).
fn ratio(coarse: Unit, fine: Unit) -> i64 {
    (unit_nanos(coarse) / unit_nanos(fine)).max(1)
}

/// Where values of several types are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dom {
    /// BOOL, INT, LONG as LONG.
    Ints,
    /// Temporals as LONG counts of the given (finest) unit.
    Time(Unit),
    /// Numbers with a DOUBLE among them, as DOUBLE.
    F64,
    /// STRING and SYMBOL.
    Str,
}

fn domain(types: &[DataType]) -> Option<Dom> {
    let classes = || types.iter().map(|t| class(*t));
    if classes().all(|c| c == Class::Int) {
        Some(Dom::Ints)
    } else if classes().all(|c| matches!(c, Class::Int | Class::Float)) {
        Some(Dom::F64)
    } else if classes().all(|c| c == Class::Str) {
        Some(Dom::Str)
    } else {
        let mut finest = None;
        for c in classes() {
            let Class::Time(u) = c else { return None };
            finest = finest.max(Some(u));
        }
        finest.map(Dom::Time)
    }
}

/// The multiplier taking values of `t` to the unit of `dom`.
fn factor(t: DataType, dom: Dom) -> i64 {
    match (class(t), dom) {
        (Class::Time(u), Dom::Time(f)) => ratio(u, f),
        _ => 1,
    }
}

/// A LONG key scaled to a finer unit; NULL stays NULL (the smallest), overflow saturates.
#[inline]
fn scaled(w: i64, f: i64) -> i64 {
    if f == 1 || w == NULL_LONG {
        w
    } else {
        w.saturating_mul(f).max(NULL_LONG + 1)
    }
}

/// A total order on DOUBLEs where NaN (NULL) is the smallest value and equals itself.
#[inline]
fn cmp_f64(a: f64, b: f64) -> Ordering {
    match a.partial_cmp(&b) {
        Some(o) => o,
        None => a.is_nan().cmp(&b.is_nan()).reverse(),
    }
}

fn scalar_wide(s: &Scalar) -> Option<i64> {
    match s {
        Scalar::Bool(v) => Some(v.wide()),
        Scalar::Int(v) | Scalar::Date(v) | Scalar::DateTime(v) => Some(v.wide()),
        Scalar::Long(v) | Scalar::Timestamp(v) | Scalar::NanoTimestamp(v) => Some(*v),
        _ => None,
    }
}

fn scalar_float(s: &Scalar) -> Option<f64> {
    match s {
        Scalar::Bool(v) => Some(v.float()),
        Scalar::Int(v) => Some(v.float()),
        Scalar::Long(v) => Some(v.float()),
        Scalar::Double(v) => Some(*v),
        _ => None,
    }
}

fn scalar_str(s: &Scalar) -> Option<&str> {
    match s {
        Scalar::String(v) | Scalar::Symbol(v) => Some(v),
        _ => None,
    }
}

/// A NULL scalar `v` retyped to the type of `other`, when the types differ.
fn retyped_null(v: &Value, other: &Value) -> Option<Value> {
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

// ---------------------------------------------------------------------------------------------
// Binary operators
// ---------------------------------------------------------------------------------------------

fn op_symbol(op: BinOp) -> &'static str {
    op.symbol()
}

/// `cannot add STRING and INT`, `cannot subtract DATE from INT`, `cannot compare ...`.
fn type_error(op: BinOp, a: &str, b: &str) -> String {
    match op {
        BinOp::Add => format!("cannot add {a} and {b}"),
        BinOp::Sub => format!("cannot subtract {b} from {a}"),
        BinOp::Mul => format!("cannot multiply {a} and {b}"),
        BinOp::Div => format!("cannot divide {a} by {b}"),
        BinOp::Mod => format!("cannot compute {a} % {b}"),
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            format!("cannot compare {a} and {b}")
        }
        _ => format!("cannot apply {} to {a} and {b}", op_symbol(op)),
    }
}

/// `a op b` element-wise, a scalar operand broadcast to every row of a vector one; two
/// scalars give a scalar. See the module documentation for the typing and NULL rules.
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    match op {
        BinOp::In => return is_in(a, b),
        BinOp::Between => {
            return match b {
                Value::Pair(lo, hi) => between(a, lo, hi),
                _ => Err(format!(
                    "between needs a pair lo:hi on its right, got {}",
                    b.kind_name()
                )),
            }
        }
        BinOp::Range | BinOp::Pair => {
            return Err(format!(
                "the operator {} is not an element-wise operator",
                op_symbol(op)
            ))
        }
        _ => {}
    }
    let first = binary_values(op, a, b);
    if first.is_err() {
        // An untyped NULL scalar takes the other side's type.
        if let Some(a2) = retyped_null(a, b) {
            if let Ok(v) = binary_values(op, &a2, b) {
                return Ok(v);
            }
        }
        if let Some(b2) = retyped_null(b, a) {
            if let Ok(v) = binary_values(op, a, &b2) {
                return Ok(v);
            }
        }
    }
    first
}

fn binary_values(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    let (Some(x), Some(y)) = (Operand::of_value(a), Operand::of_value(b)) else {
        return Err(type_error(op, &a.kind_name(), &b.kind_name()));
    };
    check_rows(&x, &y)?;
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => arith(op, &x, &y),
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            compare(op, &x, &y)
        }
        BinOp::And | BinOp::Or => logic(op, &x, &y),
        _ => Err(format!(
            "the operator {} is not an element-wise operator",
            op_symbol(op)
        )),
    }
}

fn arith(op: BinOp, x: &Operand, y: &Operand) -> Result<Value, String> {
    let err = || type_error(op, x.ty.name(), y.ty.name());
    let out = match (class(x.ty), class(y.ty)) {
        (Class::Int, Class::Int) => {
            if x.ty == DataType::Long || y.ty == DataType::Long {
                DataType::Long
            } else {
                DataType::Int
            }
        }
        (Class::Int | Class::Float, Class::Int | Class::Float) => {
            let (Some(p), Some(q)) = (x.nums(), y.nums()) else {
                return Err(err());
            };
            return float_arith(op, p, q).ok_or_else(err);
        }
        (Class::Str, Class::Str) if op == BinOp::Add => {
            let (Some(p), Some(q)) = (x.strs(), y.strs()) else {
                return Err(err());
            };
            return Ok(zip_map(p, q, |m: &String, n: &String| {
                let mut s = String::with_capacity(m.len() + n.len());
                s.push_str(m);
                s.push_str(n);
                s
            })
            .into_value(Scalar::String, Vector::String));
        }
        (Class::Time(_), Class::Int) if matches!(op, BinOp::Add | BinOp::Sub) => x.ty,
        (Class::Int, Class::Time(_)) if op == BinOp::Add => y.ty,
        (Class::Time(u), Class::Time(_)) if op == BinOp::Sub && x.ty == y.ty => {
            if u <= Unit::Sec {
                DataType::Int
            } else {
                DataType::Long
            }
        }
        _ => return Err(err()),
    };
    let (Some(p), Some(q)) = (x.ints(), y.ints()) else {
        return Err(err());
    };
    int_arith(op, p, q, out).ok_or_else(err)
}

#[inline]
fn add_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG {
        NULL_LONG
    } else {
        x.checked_add(y).unwrap_or(NULL_LONG)
    }
}

#[inline]
fn sub_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG {
        NULL_LONG
    } else {
        x.checked_sub(y).unwrap_or(NULL_LONG)
    }
}

#[inline]
fn mul_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG {
        NULL_LONG
    } else {
        x.checked_mul(y).unwrap_or(NULL_LONG)
    }
}

/// Floor division; NULL for NULL operands and a zero divisor.
#[inline]
fn div_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG || y == 0 {
        return NULL_LONG;
    }
    // x is not i64::MIN (that is NULL), so neither `/` nor `%` can overflow.
    let q = x / y;
    if x % y != 0 && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    }
}

/// The remainder of floor division (it has the sign of the divisor); NULL for a zero divisor.
#[inline]
fn mod_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG || y == 0 {
        return NULL_LONG;
    }
    let r = x % y;
    if r != 0 && ((r < 0) != (y < 0)) {
        r + y
    } else {
        r
    }
}

fn wrap_i32(out: Out<i32>, t: DataType) -> Value {
    match t {
        DataType::Date => out.into_value(Scalar::Date, Vector::Date),
        DataType::DateTime => out.into_value(Scalar::DateTime, Vector::DateTime),
        _ => out.into_value(Scalar::Int, Vector::Int),
    }
}

fn wrap_i64(out: Out<i64>, t: DataType) -> Value {
    match t {
        DataType::Timestamp => out.into_value(Scalar::Timestamp, Vector::Timestamp),
        DataType::NanoTimestamp => out.into_value(Scalar::NanoTimestamp, Vector::NanoTimestamp),
        _ => out.into_value(Scalar::Long, Vector::Long),
    }
}

/// One integer kernel: computes in LONG, then stores as `out` (INT and the 32-bit
/// temporals narrowed, NULL when out of range).
#[inline]
fn int_kernel<A: Int, B: Int>(
    a: &Col<'_, A>,
    b: &Col<'_, B>,
    out: DataType,
    f: impl Fn(i64, i64) -> i64,
) -> Value {
    match out {
        DataType::Int | DataType::Date | DataType::DateTime => {
            wrap_i32(zip_map(a, b, |x, y| narrow(f(x.wide(), y.wide()))), out)
        }
        _ => wrap_i64(zip_map(a, b, |x, y| f(x.wide(), y.wide())), out),
    }
}

fn int_arith(op: BinOp, a: IntCol, b: IntCol, out: DataType) -> Option<Value> {
    macro_rules! run {
        ($f:expr) => {
            with_int!(a, |x| with_int!(b, |y| int_kernel(x, y, out, $f)))
        };
    }
    Some(match op {
        BinOp::Add => run!(add_i64),
        BinOp::Sub => run!(sub_i64),
        BinOp::Mul => run!(mul_i64),
        BinOp::Div => run!(div_i64),
        BinOp::Mod => run!(mod_i64),
        _ => return None,
    })
}

#[inline]
fn div_f64(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        f64::NAN
    } else {
        x / y
    }
}

#[inline]
fn mod_f64(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        return f64::NAN;
    }
    let r = x % y;
    if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
        r + y
    } else {
        r
    }
}

#[inline]
fn float_kernel<A: Num, B: Num>(
    a: &Col<'_, A>,
    b: &Col<'_, B>,
    f: impl Fn(f64, f64) -> f64,
) -> Value {
    zip_map(a, b, |x, y| f(x.float(), y.float())).into_value(Scalar::Double, Vector::Double)
}

fn float_arith(op: BinOp, a: NumCol, b: NumCol) -> Option<Value> {
    macro_rules! run {
        ($f:expr) => {
            with_num!(a, |x| with_num!(b, |y| float_kernel(x, y, $f)))
        };
    }
    Some(match op {
        BinOp::Add => run!(|x, y| x + y),
        BinOp::Sub => run!(|x, y| x - y),
        BinOp::Mul => run!(|x, y| x * y),
        BinOp::Div => run!(div_f64),
        BinOp::Mod => run!(mod_f64),
        _ => return None,
    })
}

/// A comparison kernel: `c` orders two elements, `op` picks the outcome.
#[inline]
fn cmp_kernel<A, B>(
    op: BinOp,
    a: &Col<'_, A>,
    b: &Col<'_, B>,
    c: impl Fn(&A, &B) -> Ordering,
) -> Option<Value> {
    use Ordering::{Equal, Greater, Less};
    let out = match op {
        BinOp::Eq => zip_map(a, b, |x, y| i8::from(c(x, y) == Equal)),
        BinOp::Ne => zip_map(a, b, |x, y| i8::from(c(x, y) != Equal)),
        BinOp::Lt => zip_map(a, b, |x, y| i8::from(c(x, y) == Less)),
        BinOp::Le => zip_map(a, b, |x, y| i8::from(c(x, y) != Greater)),
        BinOp::Gt => zip_map(a, b, |x, y| i8::from(c(x, y) == Greater)),
        BinOp::Ge => zip_map(a, b, |x, y| i8::from(c(x, y) != Less)),
        _ => return None,
    };
    Some(out.into_value(Scalar::Bool, Vector::Bool))
}

fn compare(op: BinOp, x: &Operand, y: &Operand) -> Result<Value, String> {
    let err = || type_error(op, x.ty.name(), y.ty.name());
    let dom = domain(&[x.ty, y.ty]).ok_or_else(err)?;
    let out = match dom {
        Dom::Ints | Dom::Time(_) => {
            let (Some(p), Some(q)) = (x.ints(), y.ints()) else {
                return Err(err());
            };
            let (fa, fb) = (factor(x.ty, dom), factor(y.ty, dom));
            if fa == 1 && fb == 1 {
                with_int!(p, |s| with_int!(q, |t| cmp_kernel(op, s, t, |m, n| m
                    .wide()
                    .cmp(&n.wide()))))
            } else {
                with_int!(p, |s| with_int!(q, |t| cmp_kernel(op, s, t, |m, n| {
                    scaled(m.wide(), fa).cmp(&scaled(n.wide(), fb))
                })))
            }
        }
        Dom::F64 => {
            let (Some(p), Some(q)) = (x.nums(), y.nums()) else {
                return Err(err());
            };
            with_num!(p, |s| with_num!(q, |t| cmp_kernel(op, s, t, |m, n| {
                cmp_f64(m.float(), n.float())
            })))
        }
        Dom::Str => {
            let (Some(p), Some(q)) = (x.strs(), y.strs()) else {
                return Err(err());
            };
            cmp_kernel(op, p, q, |m: &String, n: &String| {
                m.as_str().cmp(n.as_str())
            })
        }
    };
    out.ok_or_else(err)
}

fn logic(op: BinOp, x: &Operand, y: &Operand) -> Result<Value, String> {
    let err = || type_error(op, x.ty.name(), y.ty.name());
    let numeric = |t: DataType| matches!(class(t), Class::Int | Class::Float);
    if !numeric(x.ty) || !numeric(y.ty) {
        return Err(err());
    }
    let (Some(p), Some(q)) = (x.nums(), y.nums()) else {
        return Err(err());
    };
    let out = match op {
        BinOp::And => with_num!(p, |s| with_num!(q, |t| zip_map(s, t, |m, n| i8::from(
            m.truth() && n.truth()
        )))),
        BinOp::Or => with_num!(p, |s| with_num!(q, |t| zip_map(s, t, |m, n| i8::from(
            m.truth() || n.truth()
        )))),
        _ => return Err(err()),
    };
    Ok(out.into_value(Scalar::Bool, Vector::Bool))
}

// ---------------------------------------------------------------------------------------------
// Unary operators
// ---------------------------------------------------------------------------------------------

/// `not x`: BOOL or a number (non-zero is true) to BOOL; NULL stays NULL.
pub fn not(v: &Value) -> Result<Value, String> {
    let x = Operand::of_value(v).ok_or_else(|| format!("cannot apply not to {}", v.kind_name()))?;
    if !matches!(class(x.ty), Class::Int | Class::Float) {
        return Err(format!("cannot apply not to {}", x.ty));
    }
    let p = x
        .nums()
        .ok_or_else(|| format!("cannot apply not to {}", x.ty))?;
    let out = with_num!(p, |s| map1(s, |m| if m.is_nil() {
        NULL_BOOL
    } else {
        i8::from(!m.truth())
    }));
    Ok(out.into_value(Scalar::Bool, Vector::Bool))
}

/// `-x` for numbers (BOOL gives INT); NULL stays NULL.
pub fn neg(v: &Value) -> Result<Value, String> {
    let x = Operand::of_value(v).ok_or_else(|| format!("cannot negate {}", v.kind_name()))?;
    let err = || format!("cannot negate {}", x.ty);
    // `wrapping_neg` maps the NULL sentinel (the type's MIN) to itself and nothing else there.
    Ok(match (x.ty, &x.cols) {
        (DataType::Bool, Cols::Bool(c)) => map1(c, |m| {
            if *m == NULL_BOOL {
                NULL_INT
            } else {
                -i32::from(*m)
            }
        })
        .into_value(Scalar::Int, Vector::Int),
        (DataType::Int, Cols::I32(c)) => {
            map1(c, |m| m.wrapping_neg()).into_value(Scalar::Int, Vector::Int)
        }
        (DataType::Long, Cols::I64(c)) => {
            map1(c, |m| m.wrapping_neg()).into_value(Scalar::Long, Vector::Long)
        }
        (DataType::Double, Cols::F64(c)) => {
            map1(c, |m| -*m).into_value(Scalar::Double, Vector::Double)
        }
        _ => return Err(err()),
    })
}

// ---------------------------------------------------------------------------------------------
// Membership
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Casts
// ---------------------------------------------------------------------------------------------

/// Converts a vector to `to`. NULL stays NULL; values that do not fit give NULL.
///
/// * BOOL, INT, LONG, DOUBLE among each other; DOUBLE to an integer rounds half away from
///   zero (`int(3.5) == 4`, `int(-3.5) == -4`); to BOOL, non-zero is true.
/// * Anything to STRING or SYMBOL renders like [`Scalar::render`]; STRING and SYMBOL to BOOL,
///   INT, LONG, DOUBLE parse the trimmed text (`true`/`false`/`1`/`0` for BOOL; a decimal text
///   rounds for the integers); unparseable text gives NULL.
/// * Temporals among each other: to a coarser unit floors (`1969.12.31T23:59:59` is DATE
///   `1969.12.31`), to a finer one multiplies.
/// * A temporal to INT, LONG or DOUBLE gives its count (days, seconds, ...); INT or LONG to a
///   temporal reads the number as that count.
/// * Anything else (e.g. STRING to DATE, DOUBLE to DATE, DATE to BOOL) is an error.
pub fn cast(v: &Vector, to: DataType) -> Result<Vector, String> {
    let from = v.data_type();
    if from == to {
        return Ok(v.clone());
    }
    let out = match (v, class(to)) {
        (_, Class::Str) => Some(strings_of(render_all(v), to)),
        (Vector::String(xs) | Vector::Symbol(xs), _) => parse_all(xs, to),
        (Vector::Bool(xs), Class::Int | Class::Float) => numeric_to(xs, to),
        (Vector::Int(xs), Class::Int | Class::Float) => numeric_to(xs, to),
        (Vector::Long(xs), Class::Int | Class::Float) => numeric_to(xs, to),
        (Vector::Double(xs), Class::Int | Class::Float) => numeric_to(xs, to),
        (Vector::Int(xs), Class::Time(_)) => Some(ints_to(to, xs.iter().map(|x| x.wide()))),
        (Vector::Long(xs), Class::Time(_)) => Some(ints_to(to, xs.iter().copied())),
        (Vector::Date(xs) | Vector::DateTime(xs), Class::Int | Class::Float)
            if to != DataType::Bool =>
        {
            numeric_to(xs, to)
        }
        (Vector::Timestamp(xs) | Vector::NanoTimestamp(xs), Class::Int | Class::Float)
            if to != DataType::Bool =>
        {
            numeric_to(xs, to)
        }
        (Vector::Date(xs), Class::Time(u)) => Some(time_to(xs, Unit::Day, u, to)),
        (Vector::DateTime(xs), Class::Time(u)) => Some(time_to(xs, Unit::Sec, u, to)),
        (Vector::Timestamp(xs), Class::Time(u)) => Some(time_to(xs, Unit::Milli, u, to)),
        (Vector::NanoTimestamp(xs), Class::Time(u)) => Some(time_to(xs, Unit::Nano, u, to)),
        _ => None,
    };
    out.ok_or_else(|| format!("cannot convert {from} to {to}"))
}

/// [`cast`] for one value.
pub fn cast_scalar(s: &Scalar, to: DataType) -> Result<Scalar, String> {
    if s.data_type() == to {
        return Ok(s.clone());
    }
    let mut one = Vector::empty(s.data_type());
    one.push(s.clone())?;
    cast(&one, to)?
        .get(0)
        .ok_or_else(|| format!("cannot convert {} to {to}", s.data_type()))
}

fn strings_of(xs: Vec<String>, to: DataType) -> Vector {
    if to == DataType::Symbol {
        Vector::Symbol(xs)
    } else {
        Vector::String(xs)
    }
}

fn render_all(v: &Vector) -> Vec<String> {
    match v {
        Vector::Bool(xs) => xs
            .iter()
            .map(|&x| {
                if x == NULL_BOOL {
                    String::new()
                } else {
                    (x != 0).to_string()
                }
            })
            .collect(),
        Vector::Int(xs) => xs
            .iter()
            .map(|&x| {
                if x == NULL_INT {
                    String::new()
                } else {
                    x.to_string()
                }
            })
            .collect(),
        Vector::Long(xs) => xs
            .iter()
            .map(|&x| {
                if x == NULL_LONG {
                    String::new()
                } else {
                    x.to_string()
                }
            })
            .collect(),
        Vector::Double(xs) => xs.iter().map(|&x| Scalar::Double(x).render()).collect(),
        Vector::String(xs) | Vector::Symbol(xs) => xs.clone(),
        Vector::Date(xs) => xs.iter().map(|&x| Scalar::Date(x).render()).collect(),
        Vector::DateTime(xs) => xs.iter().map(|&x| Scalar::DateTime(x).render()).collect(),
        Vector::Timestamp(xs) => xs.iter().map(|&x| Scalar::Timestamp(x).render()).collect(),
        Vector::NanoTimestamp(xs) => xs
            .iter()
            .map(|&x| Scalar::NanoTimestamp(x).render())
            .collect(),
    }
}

fn numeric_to<T: Num>(xs: &[T], to: DataType) -> Option<Vector> {
    Some(match to {
        DataType::Bool => Vector::Bool(
            xs.iter()
                .map(|&x| {
                    if x.is_nil() {
                        NULL_BOOL
                    } else {
                        i8::from(x.truth())
                    }
                })
                .collect(),
        ),
        DataType::Int => Vector::Int(xs.iter().map(|&x| narrow(x.rounded())).collect()),
        DataType::Long => Vector::Long(xs.iter().map(|&x| x.rounded()).collect()),
        DataType::Double => Vector::Double(xs.iter().map(|&x| x.float()).collect()),
        _ => return None,
    })
}

/// LONG counts (NULL as the LONG NULL) stored as an integer or temporal vector of type `t`.
fn ints_to(t: DataType, it: impl Iterator<Item = i64>) -> Vector {
    match t {
        DataType::Int => Vector::Int(it.map(narrow).collect()),
        DataType::Date => Vector::Date(it.map(narrow).collect()),
        DataType::DateTime => Vector::DateTime(it.map(narrow).collect()),
        DataType::Timestamp => Vector::Timestamp(it.collect()),
        DataType::NanoTimestamp => Vector::NanoTimestamp(it.collect()),
        _ => Vector::Long(it.collect()),
    }
}

fn time_to<T: Int>(xs: &[T], from: Unit, unit: Unit, to: DataType) -> Vector {
    if from <= unit {
        let f = ratio(from, unit);
        ints_to(
            to,
            xs.iter().map(|x| {
                let w = x.wide();
                if w == NULL_LONG {
                    w
                } else {
                    w.checked_mul(f).unwrap_or(NULL_LONG)
                }
            }),
        )
    } else {
        let f = ratio(unit, from);
        ints_to(
            to,
            xs.iter().map(|x| {
                let w = x.wide();
                if w == NULL_LONG {
                    w
                } else {
                    w.div_euclid(f)
                }
            }),
        )
    }
}

fn parse_bool(s: &str) -> i8 {
    let s = s.trim();
    if s == "1" || s.eq_ignore_ascii_case("true") {
        1
    } else if s == "0" || s.eq_ignore_ascii_case("false") {
        0
    } else {
        NULL_BOOL
    }
}

fn parse_long(s: &str) -> i64 {
    let s = s.trim();
    match s.parse::<i64>() {
        Ok(v) => v,
        Err(_) => s.parse::<f64>().map_or(NULL_LONG, Num::rounded),
    }
}

fn parse_all(xs: &[String], to: DataType) -> Option<Vector> {
    Some(match to {
        DataType::Bool => Vector::Bool(xs.iter().map(|s| parse_bool(s)).collect()),
        DataType::Int => Vector::Int(xs.iter().map(|s| narrow(parse_long(s))).collect()),
        DataType::Long => Vector::Long(xs.iter().map(|s| parse_long(s)).collect()),
        DataType::Double => Vector::Double(
            xs.iter()
                .map(|s| s.trim().parse::<f64>().unwrap_or(f64::NAN))
                .collect(),
        ),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Aggregates
// ---------------------------------------------------------------------------------------------

/// The sum of the non-NULL integers as an exact 128-bit value, and whether there was one.
fn sum_ints<T: Int>(xs: &[T]) -> (i128, usize) {
    let mut acc: i128 = 0;
    let mut n = 0usize;
    for x in xs {
        let w = x.wide();
        if w != NULL_LONG {
            acc += i128::from(w);
            n += 1;
        }
    }
    (acc, n)
}

fn sum_floats(xs: &[f64]) -> (f64, usize) {
    let mut acc = 0.0;
    let mut n = 0usize;
    for &x in xs {
        if !x.is_nan() {
            acc += x;
            n += 1;
        }
    }
    (acc, n)
}

/// The sum of the non-NULL values: LONG for BOOL, INT and LONG (NULL if it overflows),
/// DOUBLE for DOUBLE; NULL of that type when there is no non-NULL value.
pub fn sum(v: &Vector) -> Result<Scalar, String> {
    let long = |(acc, n): (i128, usize)| {
        Scalar::Long(if n == 0 {
            NULL_LONG
        } else {
            i64::try_from(acc).unwrap_or(NULL_LONG)
        })
    };
    Ok(match v {
        Vector::Bool(xs) => long(sum_ints(xs)),
        Vector::Int(xs) => long(sum_ints(xs)),
        Vector::Long(xs) => long(sum_ints(xs)),
        Vector::Double(xs) => {
            let (acc, n) = sum_floats(xs);
            Scalar::Double(if n == 0 { f64::NAN } else { acc })
        }
        _ => return Err(format!("cannot sum {} values", v.data_type())),
    })
}

/// The mean of the non-NULL numbers as a DOUBLE; NULL when there is none.
pub fn avg(v: &Vector) -> Result<Scalar, String> {
    let (acc, n) = match v {
        Vector::Bool(xs) => {
            let (acc, n) = sum_ints(xs);
            (acc as f64, n)
        }
        Vector::Int(xs) => {
            let (acc, n) = sum_ints(xs);
            (acc as f64, n)
        }
        Vector::Long(xs) => {
            let (acc, n) = sum_ints(xs);
            (acc as f64, n)
        }
        Vector::Double(xs) => sum_floats(xs),
        _ => return Err(format!("cannot average {} values", v.data_type())),
    };
    Ok(Scalar::Double(if n == 0 {
        f64::NAN
    } else {
        acc / n as f64
    }))
}

fn pick<T: Elem + Copy + Ord>(xs: &[T], max: bool) -> T {
    let it = xs.iter().copied().filter(|x| !x.is_nil());
    if max { it.max() } else { it.min() }.unwrap_or_else(T::null)
}

fn pick_f64(xs: &[f64], max: bool) -> f64 {
    // `f64::max`/`min` ignore a NaN operand, so NaN survives only if every value is NaN.
    if max {
        xs.iter().fold(f64::NAN, |a, &x| a.max(x))
    } else {
        xs.iter().fold(f64::NAN, |a, &x| a.min(x))
    }
}

fn pick_str(xs: &[String], max: bool) -> String {
    let it = xs.iter().filter(|x| !x.is_empty());
    if max { it.max() } else { it.min() }
        .cloned()
        .unwrap_or_default()
}

fn extreme(v: &Vector, max: bool) -> Scalar {
    match v {
        Vector::Bool(xs) => Scalar::Bool(pick(xs, max)),
        Vector::Int(xs) => Scalar::Int(pick(xs, max)),
        Vector::Long(xs) => Scalar::Long(pick(xs, max)),
        Vector::Double(xs) => Scalar::Double(pick_f64(xs, max)),
        Vector::String(xs) => Scalar::String(pick_str(xs, max)),
        Vector::Symbol(xs) => Scalar::Symbol(pick_str(xs, max)),
        Vector::Date(xs) => Scalar::Date(pick(xs, max)),
        Vector::DateTime(xs) => Scalar::DateTime(pick(xs, max)),
        Vector::Timestamp(xs) => Scalar::Timestamp(pick(xs, max)),
        Vector::NanoTimestamp(xs) => Scalar::NanoTimestamp(pick(xs, max)),
    }
}

/// The smallest non-NULL value, of the vector's type (every type); NULL when there is none.
pub fn min(v: &Vector) -> Result<Scalar, String> {
    Ok(extreme(v, false))
}

/// The largest non-NULL value, of the vector's type (every type); NULL when there is none.
pub fn max(v: &Vector) -> Result<Scalar, String> {
    Ok(extreme(v, true))
}

fn count_of<T: Elem>(xs: &[T]) -> usize {
    xs.iter().filter(|x| !x.is_nil()).count()
}

/// The number of non-NULL values.
pub fn count(v: &Vector) -> i64 {
    let n = match v {
        Vector::Bool(xs) => count_of(xs),
        Vector::Int(xs) | Vector::Date(xs) | Vector::DateTime(xs) => count_of(xs),
        Vector::Long(xs) | Vector::Timestamp(xs) | Vector::NanoTimestamp(xs) => count_of(xs),
        Vector::Double(xs) => count_of(xs),
        Vector::String(xs) | Vector::Symbol(xs) => count_of(xs),
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Columns: filter, gather, concatenate, masks, NULLs
// ---------------------------------------------------------------------------------------------

fn keep<T: Clone>(xs: &[T], mask: &[bool]) -> Vec<T> {
    let n = mask.iter().take(xs.len()).filter(|m| **m).count();
    let mut out = Vec::with_capacity(n);
    out.extend(
        xs.iter()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(x, _)| x.clone()),
    );
    out
}

/// The elements of `v` where `mask` is true, in order. Rows past the end of a shorter mask
/// are dropped (and mask entries past the end of `v` ignored): the result only ever holds
/// rows that both cover and select.
pub fn filter(v: &Vector, mask: &[bool]) -> Vector {
    per_vector!(v, |xs| keep(xs, mask))
}

fn gather<T: Elem>(xs: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter()
        .map(|&i| xs.get(i).cloned().unwrap_or_else(T::null))
        .collect()
}

/// `v[idx[0]], v[idx[1]], ...`; an index past the end gives NULL.
pub fn take_indices(v: &Vector, idx: &[usize]) -> Vector {
    per_vector!(v, |xs| gather(xs, idx))
}

fn joined<T: Clone>(x: &[T], y: &[T]) -> Vec<T> {
    let mut v = Vec::with_capacity(x.len() + y.len());
    v.extend_from_slice(x);
    v.extend_from_slice(y);
    v
}

fn numeric_rank(t: DataType) -> u8 {
    match t {
        DataType::Bool => 0,
        DataType::Int => 1,
        DataType::Long => 2,
        _ => 3,
    }
}

/// `a` followed by `b`. Same types join as they are; STRING and SYMBOL give STRING; numbers
/// of different types give the wider one (BOOL < INT < LONG < DOUBLE, so INT and LONG give
/// LONG). Anything else is an error.
pub fn concat(a: &Vector, b: &Vector) -> Result<Vector, String> {
    let (ta, tb) = (a.data_type(), b.data_type());
    let target = if ta == tb {
        ta
    } else {
        match (class(ta), class(tb)) {
            (Class::Str, Class::Str) => DataType::String,
            (Class::Int | Class::Float, Class::Int | Class::Float) => {
                if numeric_rank(ta) >= numeric_rank(tb) {
                    ta
                } else {
                    tb
                }
            }
            _ => return Err(format!("cannot concatenate {ta} and {tb} vectors")),
        }
    };
    let a = if ta == target {
        Cow::Borrowed(a)
    } else {
        Cow::Owned(cast(a, target)?)
    };
    let b = if tb == target {
        Cow::Borrowed(b)
    } else {
        Cow::Owned(cast(b, target)?)
    };
    Ok(match (a.as_ref(), b.as_ref()) {
        (Vector::Bool(x), Vector::Bool(y)) => Vector::Bool(joined(x, y)),
        (Vector::Int(x), Vector::Int(y)) => Vector::Int(joined(x, y)),
        (Vector::Long(x), Vector::Long(y)) => Vector::Long(joined(x, y)),
        (Vector::Double(x), Vector::Double(y)) => Vector::Double(joined(x, y)),
        (Vector::String(x), Vector::String(y)) => Vector::String(joined(x, y)),
        (Vector::Symbol(x), Vector::Symbol(y)) => Vector::Symbol(joined(x, y)),
        (Vector::Date(x), Vector::Date(y)) => Vector::Date(joined(x, y)),
        (Vector::DateTime(x), Vector::DateTime(y)) => Vector::DateTime(joined(x, y)),
        (Vector::Timestamp(x), Vector::Timestamp(y)) => Vector::Timestamp(joined(x, y)),
        (Vector::NanoTimestamp(x), Vector::NanoTimestamp(y)) => Vector::NanoTimestamp(joined(x, y)),
        _ => return Err(format!("cannot concatenate {ta} and {tb} vectors")),
    })
}

/// A row mask from a condition: a BOOL vector of exactly `rows` values (NULL is false) or a
/// BOOL scalar repeated `rows` times.
pub fn mask_of(v: &Value, rows: usize) -> Result<Vec<bool>, String> {
    match v {
        Value::Vector(Vector::Bool(xs)) => {
            if xs.len() == rows {
                Ok(xs.iter().map(|&x| x.truth()).collect())
            } else {
                Err(format!(
                    "the condition has {} values but there are {rows} rows",
                    xs.len()
                ))
            }
        }
        Value::Scalar(Scalar::Bool(x)) => Ok(vec![x.truth(); rows]),
        _ => Err(format!("a condition must be BOOL, got {}", v.kind_name())),
    }
}

/// The NULL of type `t`.
pub fn null_of(t: DataType) -> Scalar {
    match t {
        DataType::Bool => Scalar::Bool(NULL_BOOL),
        DataType::Int => Scalar::Int(NULL_INT),
        DataType::Long => Scalar::Long(NULL_LONG),
        DataType::Double => Scalar::Double(f64::NAN),
        DataType::String => Scalar::String(String::new()),
        DataType::Symbol => Scalar::Symbol(String::new()),
        DataType::Date => Scalar::Date(NULL_INT),
        DataType::DateTime => Scalar::DateTime(NULL_INT),
        DataType::Timestamp => Scalar::Timestamp(NULL_LONG),
        DataType::NanoTimestamp => Scalar::NanoTimestamp(NULL_LONG),
    }
}

/// `n` NULLs of type `t`.
pub fn nulls(t: DataType, n: usize) -> Vector {
    match t {
        DataType::Bool => Vector::Bool(vec![NULL_BOOL; n]),
        DataType::Int => Vector::Int(vec![NULL_INT; n]),
        DataType::Long => Vector::Long(vec![NULL_LONG; n]),
        DataType::Double => Vector::Double(vec![f64::NAN; n]),
        DataType::String => Vector::String(vec![String::new(); n]),
        DataType::Symbol => Vector::Symbol(vec![String::new(); n]),
        DataType::Date => Vector::Date(vec![NULL_INT; n]),
        DataType::DateTime => Vector::DateTime(vec![NULL_INT; n]),
        DataType::Timestamp => Vector::Timestamp(vec![NULL_LONG; n]),
        DataType::NanoTimestamp => Vector::NanoTimestamp(vec![NULL_LONG; n]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T>(r: Result<T, String>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err<T: std::fmt::Debug>(r: Result<T, String>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e,
        }
    }

    fn sc(x: Scalar) -> Value {
        Value::Scalar(x)
    }

    fn vc(x: Vector) -> Value {
        Value::Vector(x)
    }

    fn int(x: i32) -> Value {
        sc(Scalar::Int(x))
    }

    fn ints(xs: &[i32]) -> Value {
        vc(Vector::Int(xs.to_vec()))
    }

    fn bools(xs: &[i8]) -> Value {
        vc(Vector::Bool(xs.to_vec()))
    }

    fn b(x: bool) -> Value {
        sc(Scalar::bool(x))
    }

    fn strs(xs: &[&str]) -> Vector {
        Vector::String(xs.iter().map(|s| s.to_string()).collect())
    }

    fn bin(op: BinOp, a: &Value, b: &Value) -> Value {
        ok(binary(op, a, b))
    }

    /// The DOUBLEs of a result, NULL as `None` (NaN is not equal to itself).
    fn doubles(v: &Value) -> Vec<Option<f64>> {
        let opt = |x: f64| (!x.is_nan()).then_some(x);
        match v {
            Value::Scalar(Scalar::Double(x)) => vec![opt(*x)],
            Value::Vector(Vector::Double(xs)) => xs.iter().map(|x| opt(*x)).collect(),
            other => panic!("expected DOUBLEs, got {other:?}"),
        }
    }

    // 2023.01.08, 2023.01.08T09:30:00
    const D0108: i32 = 19_365;
    const DT0930: i32 = 1_673_170_200;

    #[test]
    fn add_broadcasts_both_ways() {
        assert_eq!(
            bin(BinOp::Add, &int(1), &ints(&[1, 2, 3])),
            ints(&[2, 3, 4])
        );
        assert_eq!(
            bin(BinOp::Add, &ints(&[1, 2, 3]), &int(10)),
            ints(&[11, 12, 13])
        );
        assert_eq!(
            bin(BinOp::Add, &ints(&[1, 2, 3]), &ints(&[10, 20, 30])),
            ints(&[11, 22, 33])
        );
        assert_eq!(bin(BinOp::Add, &int(2), &int(3)), int(5));
        assert_eq!(bin(BinOp::Sub, &int(10), &ints(&[1, 2])), ints(&[9, 8]));
        assert_eq!(bin(BinOp::Sub, &ints(&[1, 2]), &int(10)), ints(&[-9, -8]));
        assert_eq!(bin(BinOp::Mul, &int(3), &ints(&[1, 2])), ints(&[3, 6]));
        assert_eq!(bin(BinOp::Mul, &ints(&[1, 2]), &int(3)), ints(&[3, 6]));
        assert_eq!(bin(BinOp::Div, &int(12), &ints(&[3, 5])), ints(&[4, 2]));
        assert_eq!(bin(BinOp::Div, &ints(&[12, 7]), &int(2)), ints(&[6, 3]));
        assert_eq!(bin(BinOp::Mod, &int(12), &ints(&[5, 7])), ints(&[2, 5]));
        assert_eq!(bin(BinOp::Mod, &ints(&[12, 7]), &int(5)), ints(&[2, 2]));
        assert_eq!(
            bin(BinOp::Add, &ints(&[]), &int(1)),
            vc(Vector::Int(Vec::new()))
        );
    }

    #[test]
    fn numeric_promotion() {
        let long = sc(Scalar::Long(5));
        let dbl = sc(Scalar::Double(0.5));
        assert_eq!(bin(BinOp::Add, &int(1), &long), sc(Scalar::Long(6)));
        assert_eq!(bin(BinOp::Add, &long, &int(1)), sc(Scalar::Long(6)));
        assert_eq!(
            bin(BinOp::Mul, &ints(&[1, 2]), &long),
            vc(Vector::Long(vec![5, 10]))
        );
        assert_eq!(doubles(&bin(BinOp::Add, &int(1), &dbl)), vec![Some(1.5)]);
        assert_eq!(doubles(&bin(BinOp::Add, &dbl, &long)), vec![Some(5.5)]);
        assert_eq!(
            doubles(&bin(BinOp::Mul, &ints(&[2, 4]), &dbl)),
            vec![Some(1.0), Some(2.0)]
        );
        // BOOL acts as INT
        assert_eq!(bin(BinOp::Add, &b(true), &b(true)), int(2));
        assert_eq!(bin(BinOp::Add, &bools(&[1, 0]), &int(5)), ints(&[6, 5]));
        assert_eq!(bin(BinOp::Add, &b(true), &long), sc(Scalar::Long(6)));
        assert_eq!(doubles(&bin(BinOp::Add, &b(true), &dbl)), vec![Some(1.5)]);
        // DOUBLE division is real division
        assert_eq!(
            doubles(&bin(BinOp::Div, &sc(Scalar::Double(7.0)), &int(2))),
            vec![Some(3.5)]
        );
    }

    #[test]
    fn integer_division_floors_and_zero_divisor_is_null() {
        assert_eq!(bin(BinOp::Div, &int(7), &int(2)), int(3));
        assert_eq!(bin(BinOp::Div, &int(-7), &int(2)), int(-4));
        assert_eq!(bin(BinOp::Div, &int(7), &int(-2)), int(-4));
        assert_eq!(bin(BinOp::Div, &int(-7), &int(-2)), int(3));
        assert_eq!(bin(BinOp::Div, &int(-6), &int(2)), int(-3));
        assert_eq!(bin(BinOp::Mod, &int(7), &int(3)), int(1));
        assert_eq!(bin(BinOp::Mod, &int(-7), &int(3)), int(2));
        assert_eq!(bin(BinOp::Mod, &int(7), &int(-3)), int(-2));
        assert_eq!(bin(BinOp::Mod, &int(-6), &int(3)), int(0));
        assert_eq!(bin(BinOp::Div, &int(7), &int(0)), int(NULL_INT));
        assert_eq!(bin(BinOp::Mod, &int(7), &int(0)), int(NULL_INT));
        assert_eq!(
            bin(BinOp::Div, &ints(&[1, 2]), &ints(&[0, 1])),
            ints(&[NULL_INT, 2])
        );
        assert_eq!(
            bin(BinOp::Div, &sc(Scalar::Long(9)), &sc(Scalar::Long(0))),
            sc(Scalar::Long(NULL_LONG))
        );
        let d = |x: f64| sc(Scalar::Double(x));
        assert_eq!(doubles(&bin(BinOp::Div, &d(1.0), &d(0.0))), vec![None]);
        assert_eq!(doubles(&bin(BinOp::Div, &d(1.0), &int(0))), vec![None]);
        assert_eq!(doubles(&bin(BinOp::Mod, &d(5.5), &d(2.0))), vec![Some(1.5)]);
        assert_eq!(
            doubles(&bin(BinOp::Mod, &d(-5.5), &d(2.0))),
            vec![Some(0.5)]
        );
        assert_eq!(doubles(&bin(BinOp::Mod, &d(5.5), &d(0.0))), vec![None]);
    }

    #[test]
    fn integer_overflow_gives_null() {
        assert_eq!(bin(BinOp::Add, &int(i32::MAX), &int(1)), int(NULL_INT));
        assert_eq!(bin(BinOp::Sub, &int(-i32::MAX), &int(2)), int(NULL_INT));
        assert_eq!(bin(BinOp::Mul, &int(65_536), &int(65_536)), int(NULL_INT));
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Long(i64::MAX)), &int(1)),
            sc(Scalar::Long(NULL_LONG))
        );
        assert_eq!(
            bin(
                BinOp::Mul,
                &sc(Scalar::Long(i64::MAX)),
                &sc(Scalar::Long(2))
            ),
            sc(Scalar::Long(NULL_LONG))
        );
        // an INT overflow does not spill into a LONG: promotion is by type only
        assert_eq!(
            bin(BinOp::Add, &int(i32::MAX), &sc(Scalar::Long(1))),
            sc(Scalar::Long(i64::from(i32::MAX) + 1))
        );
    }

    #[test]
    fn nulls_propagate_through_arithmetic() {
        assert_eq!(bin(BinOp::Add, &int(NULL_INT), &int(1)), int(NULL_INT));
        assert_eq!(
            bin(BinOp::Mul, &ints(&[1, NULL_INT, 3]), &int(2)),
            ints(&[2, NULL_INT, 6])
        );
        assert_eq!(
            bin(BinOp::Add, &int(NULL_INT), &sc(Scalar::Long(1))),
            sc(Scalar::Long(NULL_LONG))
        );
        assert_eq!(
            doubles(&bin(BinOp::Add, &int(NULL_INT), &sc(Scalar::Double(1.0)))),
            vec![None]
        );
        assert_eq!(
            doubles(&bin(
                BinOp::Add,
                &vc(Vector::Double(vec![1.0, f64::NAN])),
                &int(1)
            )),
            vec![Some(2.0), None]
        );
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Bool(NULL_BOOL)), &int(1)),
            int(NULL_INT)
        );
        assert_eq!(bin(BinOp::Div, &int(NULL_INT), &int(0)), int(NULL_INT));
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Date(NULL_INT)), &int(1)),
            sc(Scalar::Date(NULL_INT))
        );
    }

    #[test]
    fn temporal_arithmetic() {
        let t = bin(BinOp::Add, &sc(Scalar::DateTime(DT0930)), &int(60));
        assert_eq!(t, sc(Scalar::DateTime(DT0930 + 60)));
        let Value::Scalar(s) = &t else {
            panic!("expected a scalar")
        };
        assert_eq!(s.render(), "2023.01.08T09:31:00");
        assert_eq!(
            bin(BinOp::Add, &int(60), &sc(Scalar::DateTime(DT0930))),
            sc(Scalar::DateTime(DT0930 + 60))
        );
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Date(D0108)), &int(1)),
            sc(Scalar::Date(D0108 + 1))
        );
        assert_eq!(
            bin(BinOp::Sub, &sc(Scalar::Date(D0108)), &sc(Scalar::Long(7))),
            sc(Scalar::Date(19_358))
        );
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Timestamp(1_000)), &int(500)),
            sc(Scalar::Timestamp(1_500))
        );
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::NanoTimestamp(1_000)), &b(true)),
            sc(Scalar::NanoTimestamp(1_001))
        );
        assert_eq!(
            bin(
                BinOp::Add,
                &vc(Vector::Date(vec![D0108, NULL_INT])),
                &ints(&[1, 2])
            ),
            vc(Vector::Date(vec![D0108 + 1, NULL_INT]))
        );
        assert_eq!(
            bin(
                BinOp::Add,
                &vc(Vector::DateTime(vec![DT0930, DT0930 + 1])),
                &int(60)
            ),
            vc(Vector::DateTime(vec![DT0930 + 60, DT0930 + 61]))
        );
        // differences
        assert_eq!(
            bin(
                BinOp::Sub,
                &sc(Scalar::Date(D0108)),
                &sc(Scalar::Date(19_358))
            ),
            int(7)
        );
        assert_eq!(
            bin(
                BinOp::Sub,
                &sc(Scalar::DateTime(DT0930)),
                &sc(Scalar::DateTime(DT0930 - 90))
            ),
            int(90)
        );
        assert_eq!(
            bin(
                BinOp::Sub,
                &sc(Scalar::Timestamp(5_000)),
                &sc(Scalar::Timestamp(2_000))
            ),
            sc(Scalar::Long(3_000))
        );
        assert_eq!(
            bin(
                BinOp::Sub,
                &sc(Scalar::NanoTimestamp(5)),
                &sc(Scalar::NanoTimestamp(7))
            ),
            sc(Scalar::Long(-2))
        );
        // out of range gives NULL
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::DateTime(i32::MAX - 1)), &int(60)),
            sc(Scalar::DateTime(NULL_INT))
        );
    }

    #[test]
    fn temporal_arithmetic_refuses_nonsense() {
        let d = sc(Scalar::Date(D0108));
        assert_eq!(
            err(binary(BinOp::Sub, &int(1), &d)),
            "cannot subtract DATE from INT"
        );
        assert_eq!(
            err(binary(BinOp::Mul, &d, &int(2))),
            "cannot multiply DATE and INT"
        );
        assert_eq!(err(binary(BinOp::Add, &d, &d)), "cannot add DATE and DATE");
        assert_eq!(
            err(binary(BinOp::Add, &d, &sc(Scalar::Double(1.5)))),
            "cannot add DATE and DOUBLE"
        );
        assert_eq!(
            err(binary(BinOp::Sub, &d, &sc(Scalar::DateTime(DT0930)))),
            "cannot subtract DATETIME from DATE"
        );
        assert_eq!(
            err(binary(BinOp::Div, &d, &int(2))),
            "cannot divide DATE by INT"
        );
    }

    #[test]
    fn strings_concatenate_and_refuse_numbers() {
        let a = sc(Scalar::string("ab"));
        assert_eq!(
            bin(BinOp::Add, &a, &sc(Scalar::Symbol("c".into()))),
            sc(Scalar::string("abc"))
        );
        assert_eq!(
            bin(
                BinOp::Add,
                &vc(Vector::Symbol(vec!["x".into(), "y".into()])),
                &a
            ),
            vc(strs(&["xab", "yab"]))
        );
        assert_eq!(
            err(binary(BinOp::Add, &a, &int(1))),
            "cannot add STRING and INT"
        );
        assert_eq!(
            err(binary(BinOp::Sub, &a, &a)),
            "cannot subtract STRING from STRING"
        );
        assert_eq!(
            err(binary(BinOp::Lt, &a, &int(1))),
            "cannot compare STRING and INT"
        );
        assert_eq!(
            err(binary(BinOp::And, &a, &b(true))),
            "cannot apply and to STRING and BOOL"
        );
    }

    #[test]
    fn comparisons_broadcast_and_promote() {
        assert_eq!(
            bin(BinOp::Lt, &ints(&[1, 2, 3]), &int(2)),
            bools(&[1, 0, 0])
        );
        assert_eq!(
            bin(BinOp::Lt, &int(2), &ints(&[1, 2, 3])),
            bools(&[0, 0, 1])
        );
        assert_eq!(
            bin(BinOp::Le, &ints(&[1, 2, 3]), &int(2)),
            bools(&[1, 1, 0])
        );
        assert_eq!(
            bin(BinOp::Gt, &ints(&[1, 2, 3]), &int(2)),
            bools(&[0, 0, 1])
        );
        assert_eq!(
            bin(BinOp::Ge, &ints(&[1, 2, 3]), &int(2)),
            bools(&[0, 1, 1])
        );
        assert_eq!(
            bin(BinOp::Eq, &ints(&[1, 2, 3]), &int(2)),
            bools(&[0, 1, 0])
        );
        assert_eq!(
            bin(BinOp::Ne, &ints(&[1, 2, 3]), &int(2)),
            bools(&[1, 0, 1])
        );
        assert_eq!(
            bin(BinOp::Eq, &ints(&[1, 2]), &ints(&[1, 3])),
            bools(&[1, 0])
        );
        assert_eq!(bin(BinOp::Lt, &int(1), &int(2)), b(true));
        assert_eq!(bin(BinOp::Eq, &int(2), &sc(Scalar::Long(2))), b(true));
        assert_eq!(bin(BinOp::Lt, &int(2), &sc(Scalar::Double(2.5))), b(true));
        assert_eq!(bin(BinOp::Eq, &b(true), &int(1)), b(true));
        assert_eq!(
            bin(
                BinOp::Gt,
                &vc(Vector::Long(vec![3_000_000_000, -3_000_000_000])),
                &int(0)
            ),
            bools(&[1, 0])
        );
        let s = vc(strs(&["apple", "banana", ""]));
        assert_eq!(
            bin(BinOp::Lt, &s, &sc(Scalar::Symbol("b".into()))),
            bools(&[1, 0, 1])
        );
        assert_eq!(
            bin(BinOp::Eq, &sc(Scalar::string("banana")), &s),
            bools(&[0, 1, 0])
        );
    }

    #[test]
    fn null_is_the_smallest_value_in_comparisons() {
        let null = int(NULL_INT);
        assert_eq!(bin(BinOp::Lt, &null, &int(1)), b(true));
        assert_eq!(bin(BinOp::Lt, &null, &int(-2_000_000_000)), b(true));
        assert_eq!(bin(BinOp::Eq, &null, &null), b(true));
        assert_eq!(bin(BinOp::Eq, &null, &int(1)), b(false));
        assert_eq!(bin(BinOp::Ne, &null, &int(1)), b(true));
        assert_eq!(bin(BinOp::Gt, &int(1), &null), b(true));
        // INT NULL is still smallest against a LONG below the INT range
        assert_eq!(
            bin(BinOp::Lt, &null, &sc(Scalar::Long(-3_000_000_000))),
            b(true)
        );
        let nan = sc(Scalar::Double(f64::NAN));
        assert_eq!(bin(BinOp::Lt, &nan, &sc(Scalar::Double(-1e300))), b(true));
        assert_eq!(bin(BinOp::Eq, &nan, &nan), b(true));
        assert_eq!(bin(BinOp::Eq, &nan, &int(NULL_INT)), b(true));
        assert_eq!(bin(BinOp::Ge, &nan, &int(0)), b(false));
        assert_eq!(
            bin(
                BinOp::Lt,
                &vc(Vector::Double(vec![f64::NAN, 1.0, 2.0])),
                &sc(Scalar::Double(1.5))
            ),
            bools(&[1, 1, 0])
        );
        assert_eq!(
            bin(BinOp::Lt, &sc(Scalar::string("")), &sc(Scalar::string("a"))),
            b(true)
        );
        assert_eq!(
            bin(
                BinOp::Lt,
                &sc(Scalar::Date(NULL_INT)),
                &sc(Scalar::DateTime(0))
            ),
            b(true)
        );
        assert_eq!(
            bin(BinOp::Eq, &sc(Scalar::Bool(NULL_BOOL)), &b(false)),
            b(false)
        );
    }

    #[test]
    fn dates_compare_with_finer_temporals() {
        let d = sc(Scalar::Date(D0108));
        let dt = sc(Scalar::DateTime(DT0930));
        assert_eq!(bin(BinOp::Lt, &d, &dt), b(true));
        assert_eq!(bin(BinOp::Gt, &dt, &d), b(true));
        assert_eq!(
            bin(BinOp::Eq, &d, &sc(Scalar::DateTime(D0108 * 86_400))),
            b(true)
        );
        assert_eq!(
            bin(
                BinOp::Ge,
                &vc(Vector::DateTime(vec![DT0930, D0108 * 86_400 - 1])),
                &d
            ),
            bools(&[1, 0])
        );
        let ts = sc(Scalar::Timestamp(i64::from(D0108) * 86_400_000));
        assert_eq!(bin(BinOp::Eq, &d, &ts), b(true));
        let ns = sc(Scalar::NanoTimestamp(
            i64::from(D0108) * 86_400_000_000_000 + 1,
        ));
        assert_eq!(bin(BinOp::Lt, &d, &ns), b(true));
        assert_eq!(
            bin(
                BinOp::Eq,
                &sc(Scalar::DateTime(1)),
                &sc(Scalar::Timestamp(1_000))
            ),
            b(true)
        );
        assert_eq!(
            err(binary(BinOp::Lt, &d, &int(19_365))),
            "cannot compare DATE and INT"
        );
    }

    #[test]
    fn and_or_treat_null_as_false() {
        let x = bools(&[1, 1, 0, 0, NULL_BOOL]);
        let y = bools(&[1, 0, 1, 0, 1]);
        assert_eq!(bin(BinOp::And, &x, &y), bools(&[1, 0, 0, 0, 0]));
        assert_eq!(bin(BinOp::Or, &x, &y), bools(&[1, 1, 1, 0, 1]));
        assert_eq!(bin(BinOp::And, &x, &b(true)), bools(&[1, 1, 0, 0, 0]));
        assert_eq!(bin(BinOp::Or, &b(false), &x), bools(&[1, 1, 0, 0, 0]));
        assert_eq!(bin(BinOp::And, &b(true), &b(false)), b(false));
        assert_eq!(
            bin(BinOp::Or, &sc(Scalar::Bool(NULL_BOOL)), &b(false)),
            b(false)
        );
        assert_eq!(bin(BinOp::And, &int(2), &sc(Scalar::Double(0.5))), b(true));
    }

    #[test]
    fn not_and_neg() {
        assert_eq!(
            ok(not(&bools(&[1, 0, NULL_BOOL]))),
            bools(&[0, 1, NULL_BOOL])
        );
        assert_eq!(ok(not(&int(0))), b(true));
        assert_eq!(ok(not(&sc(Scalar::Double(2.0)))), b(false));
        assert_eq!(ok(not(&int(NULL_INT))), sc(Scalar::Bool(NULL_BOOL)));
        assert_eq!(
            err(not(&sc(Scalar::string("x")))),
            "cannot apply not to STRING"
        );
        assert_eq!(ok(neg(&ints(&[1, -2, NULL_INT]))), ints(&[-1, 2, NULL_INT]));
        assert_eq!(ok(neg(&sc(Scalar::Long(5)))), sc(Scalar::Long(-5)));
        assert_eq!(
            ok(neg(&sc(Scalar::Long(NULL_LONG)))),
            sc(Scalar::Long(NULL_LONG))
        );
        assert_eq!(
            doubles(&ok(neg(&sc(Scalar::Double(1.5))))),
            vec![Some(-1.5)]
        );
        assert_eq!(doubles(&ok(neg(&sc(Scalar::Double(f64::NAN))))), vec![None]);
        assert_eq!(
            ok(neg(&bools(&[1, 0, NULL_BOOL]))),
            ints(&[-1, 0, NULL_INT])
        );
        assert_eq!(err(neg(&sc(Scalar::Date(1)))), "cannot negate DATE");
        assert_eq!(
            err(neg(&Value::Void)),
            format!("cannot negate {}", Value::Void.kind_name())
        );
    }

    #[test]
    fn errors_name_lengths_kinds_and_operators() {
        assert_eq!(
            err(binary(BinOp::Add, &ints(&[1, 2, 3]), &ints(&[1, 2, 3, 4]))),
            "vectors of different lengths: 3 and 4"
        );
        assert_eq!(
            err(binary(BinOp::Eq, &ints(&[1]), &ints(&[1, 2]))),
            "vectors of different lengths: 1 and 2"
        );
        let t = Value::Table(ok(xrepl_core::value::Table::new(vec![], vec![])));
        assert_eq!(
            err(binary(BinOp::Add, &t, &int(1))),
            "cannot add a table and an INT scalar"
        );
        assert!(err(binary(BinOp::Range, &int(1), &int(3))).contains(".."));
        assert!(err(binary(BinOp::Pair, &int(1), &int(3))).contains(':'));
        assert!(err(binary(BinOp::Between, &int(1), &int(3))).contains("pair"));
    }

    #[test]
    fn untyped_null_takes_the_other_type() {
        let null = int(NULL_INT);
        let s = vc(strs(&["a", ""]));
        assert_eq!(bin(BinOp::Eq, &s, &null), bools(&[0, 1]));
        assert_eq!(bin(BinOp::Ne, &null, &s), bools(&[1, 0]));
        assert_eq!(
            bin(BinOp::Eq, &vc(Vector::Date(vec![1, NULL_INT])), &null),
            bools(&[0, 1])
        );
        assert_eq!(bin(BinOp::Sub, &null, &sc(Scalar::Date(3))), int(NULL_INT));
        assert_eq!(ok(is_in(&s, &null)), bools(&[0, 1]));
        // a non-NULL INT is still refused
        assert_eq!(
            err(binary(BinOp::Eq, &s, &int(1))),
            "cannot compare STRING and INT"
        );
    }

    #[test]
    fn in_and_between_through_binary() {
        assert_eq!(
            bin(BinOp::In, &ints(&[1, 2, 3]), &ints(&[2, 3])),
            bools(&[0, 1, 1])
        );
        let pair = Value::Pair(Box::new(Scalar::Int(2)), Box::new(Scalar::Int(3)));
        assert_eq!(
            bin(BinOp::Between, &ints(&[1, 2, 3, 4]), &pair),
            bools(&[0, 1, 1, 0])
        );
    }

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

    #[test]
    fn casts_between_numbers() {
        let d = Vector::Double(vec![3.5, -3.5, 2.4, -2.6, f64::NAN, 1e300, 0.0]);
        assert_eq!(
            ok(cast(&d, DataType::Int)),
            Vector::Int(vec![4, -4, 2, -3, NULL_INT, NULL_INT, 0])
        );
        assert_eq!(
            ok(cast(&d, DataType::Long)),
            Vector::Long(vec![4, -4, 2, -3, NULL_LONG, NULL_LONG, 0])
        );
        assert_eq!(
            ok(cast(&d, DataType::Bool)),
            Vector::Bool(vec![1, 1, 1, 1, NULL_BOOL, 1, 0])
        );
        let i = Vector::Int(vec![1, NULL_INT, -7]);
        assert_eq!(
            ok(cast(&i, DataType::Long)),
            Vector::Long(vec![1, NULL_LONG, -7])
        );
        let Vector::Double(ds) = ok(cast(&i, DataType::Double)) else {
            panic!("expected DOUBLEs")
        };
        assert_eq!(ds.len(), 3);
        assert!(ds[0] == 1.0 && ds[1].is_nan() && ds[2] == -7.0);
        assert_eq!(
            ok(cast(&Vector::Long(vec![5_000_000_000, 5]), DataType::Int)),
            Vector::Int(vec![NULL_INT, 5])
        );
        assert_eq!(
            ok(cast(&Vector::Bool(vec![1, 0, NULL_BOOL]), DataType::Int)),
            Vector::Int(vec![1, 0, NULL_INT])
        );
        assert_eq!(ok(cast(&i, DataType::Int)), i);
        assert_eq!(
            ok(cast_scalar(&Scalar::Double(3.7), DataType::Int)),
            Scalar::Int(4)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Int(NULL_INT), DataType::Long)),
            Scalar::Long(NULL_LONG)
        );
    }

    #[test]
    fn casts_to_and_from_strings() {
        let v = Vector::Int(vec![1, NULL_INT, -3]);
        assert_eq!(ok(cast(&v, DataType::String)), strs(&["1", "", "-3"]));
        assert_eq!(
            ok(cast(&v, DataType::Symbol)),
            Vector::Symbol(vec!["1".into(), "".into(), "-3".into()])
        );
        assert_eq!(
            ok(cast(
                &Vector::Double(vec![1.5, 2.0, f64::NAN]),
                DataType::String
            )),
            strs(&["1.5", "2", ""])
        );
        assert_eq!(
            ok(cast(&Vector::Bool(vec![1, 0, NULL_BOOL]), DataType::String)),
            strs(&["true", "false", ""])
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::DateTime(DT0930), DataType::String)),
            Scalar::string("2023.01.08T09:30:00")
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Date(19_358), DataType::String)),
            Scalar::string("2023.01.01")
        );
        assert_eq!(
            ok(cast_scalar(
                &Scalar::Timestamp(1_673_170_200_123),
                DataType::Symbol
            )),
            Scalar::Symbol("2023.01.08T09:30:00.123".into())
        );
        assert_eq!(
            ok(cast(&strs(&["a", ""]), DataType::Symbol)),
            Vector::Symbol(vec!["a".into(), "".into()])
        );
        assert_eq!(
            ok(cast(&Vector::Symbol(vec!["a".into()]), DataType::String)),
            strs(&["a"])
        );
        let texts = strs(&["12", " 7 ", "x", "", "2.5", "99999999999"]);
        assert_eq!(
            ok(cast(&texts, DataType::Int)),
            Vector::Int(vec![12, 7, NULL_INT, NULL_INT, 3, NULL_INT])
        );
        assert_eq!(
            ok(cast(&texts, DataType::Long)),
            Vector::Long(vec![12, 7, NULL_LONG, NULL_LONG, 3, 99_999_999_999])
        );
        let Vector::Double(ds) = ok(cast(&strs(&["1.25", "nope", ""]), DataType::Double)) else {
            panic!("expected DOUBLEs")
        };
        assert!(ds.len() == 3 && ds[0] == 1.25 && ds[1].is_nan() && ds[2].is_nan());
        assert_eq!(
            ok(cast(
                &strs(&["true", "FALSE", "1", "0", "yes"]),
                DataType::Bool
            )),
            Vector::Bool(vec![1, 0, 1, 0, NULL_BOOL])
        );
        assert_eq!(
            err(cast(&strs(&["2023.01.01"]), DataType::Date)),
            "cannot convert STRING to DATE"
        );
    }

    #[test]
    fn casts_between_temporals() {
        // negative times floor to the previous day
        assert_eq!(
            ok(cast(
                &Vector::DateTime(vec![-1, 0, 86_399, 86_400, -86_400, -86_401, NULL_INT]),
                DataType::Date
            )),
            Vector::Date(vec![-1, 0, 0, 1, -1, -2, NULL_INT])
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::DateTime(-1), DataType::Date)),
            Scalar::Date(-1)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Date(-1), DataType::String)),
            Scalar::string("1969.12.31")
        );
        assert_eq!(
            ok(cast(
                &Vector::Timestamp(vec![-1, 86_400_000, NULL_LONG]),
                DataType::Date
            )),
            Vector::Date(vec![-1, 1, NULL_INT])
        );
        assert_eq!(
            ok(cast(
                &Vector::NanoTimestamp(vec![-1, 1_678_940_754_175_813_489]),
                DataType::Date
            )),
            Vector::Date(vec![-1, 19_432])
        );
        assert_eq!(
            ok(cast(
                &Vector::Date(vec![D0108, -1, NULL_INT]),
                DataType::DateTime
            )),
            Vector::DateTime(vec![D0108 * 86_400, -86_400, NULL_INT])
        );
        assert_eq!(
            ok(cast(&Vector::Date(vec![1]), DataType::Timestamp)),
            Vector::Timestamp(vec![86_400_000])
        );
        assert_eq!(
            ok(cast(&Vector::Date(vec![1]), DataType::NanoTimestamp)),
            Vector::NanoTimestamp(vec![86_400_000_000_000])
        );
        // a date past 2038 does not fit a DATETIME
        assert_eq!(
            ok(cast(&Vector::Date(vec![30_000]), DataType::DateTime)),
            Vector::DateTime(vec![NULL_INT])
        );
        assert_eq!(
            ok(cast(
                &Vector::DateTime(vec![DT0930, -1]),
                DataType::Timestamp
            )),
            Vector::Timestamp(vec![i64::from(DT0930) * 1_000, -1_000])
        );
        assert_eq!(
            ok(cast(
                &Vector::Timestamp(vec![1_999, -1]),
                DataType::DateTime
            )),
            Vector::DateTime(vec![1, -1])
        );
        assert_eq!(
            ok(cast(
                &Vector::NanoTimestamp(vec![1_999_999, -1]),
                DataType::Timestamp
            )),
            Vector::Timestamp(vec![1, -1])
        );
        assert_eq!(
            ok(cast(
                &Vector::Timestamp(vec![i64::MAX / 10]),
                DataType::NanoTimestamp
            )),
            Vector::NanoTimestamp(vec![NULL_LONG])
        );
        // counts
        assert_eq!(
            ok(cast_scalar(&Scalar::Date(19_358), DataType::Int)),
            Scalar::Int(19_358)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Timestamp(5), DataType::Long)),
            Scalar::Long(5)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Int(19_358), DataType::Date)),
            Scalar::Date(19_358)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Long(NULL_LONG), DataType::DateTime)),
            Scalar::DateTime(NULL_INT)
        );
        assert_eq!(
            err(cast_scalar(&Scalar::Date(1), DataType::Bool)),
            "cannot convert DATE to BOOL"
        );
        assert_eq!(
            err(cast(&Vector::Double(vec![1.0]), DataType::Date)),
            "cannot convert DOUBLE to DATE"
        );
    }

    #[test]
    fn aggregates_skip_nulls() {
        let v = Vector::Int(vec![1, NULL_INT, 3]);
        assert_eq!(ok(sum(&v)), Scalar::Long(4));
        assert_eq!(ok(avg(&v)), Scalar::Double(2.0));
        assert_eq!(ok(min(&v)), Scalar::Int(1));
        assert_eq!(ok(max(&v)), Scalar::Int(3));
        assert_eq!(count(&v), 2);
        assert_eq!(
            ok(sum(&Vector::Bool(vec![1, 1, 0, NULL_BOOL]))),
            Scalar::Long(2)
        );
        assert_eq!(
            ok(sum(&Vector::Long(vec![i64::MAX, 1]))),
            Scalar::Long(NULL_LONG)
        );
        assert_eq!(
            ok(sum(&Vector::Long(vec![i64::MAX, 1, -2]))),
            Scalar::Long(i64::MAX - 1)
        );
        assert_eq!(
            ok(sum(&Vector::Double(vec![1.5, f64::NAN, 2.0]))),
            Scalar::Double(3.5)
        );
        assert_eq!(ok(min(&Vector::Int(vec![NULL_INT, -5]))), Scalar::Int(-5));
        assert_eq!(
            ok(max(&Vector::Double(vec![f64::NAN, -1.0, -3.0]))),
            Scalar::Double(-1.0)
        );
        assert_eq!(
            ok(min(&Vector::Double(vec![f64::NAN, -1.0, -3.0]))),
            Scalar::Double(-3.0)
        );
        assert_eq!(
            ok(min(&strs(&["pear", "", "apple"]))),
            Scalar::string("apple")
        );
        assert_eq!(
            ok(max(&strs(&["pear", "", "apple"]))),
            Scalar::string("pear")
        );
        assert_eq!(
            ok(max(&Vector::Symbol(vec!["a".into(), "b".into()]))),
            Scalar::Symbol("b".into())
        );
        assert_eq!(
            ok(max(&Vector::Date(vec![1, NULL_INT, 3]))),
            Scalar::Date(3)
        );
        assert_eq!(
            ok(min(&Vector::Timestamp(vec![NULL_LONG, 7, 5]))),
            Scalar::Timestamp(5)
        );
        assert_eq!(count(&strs(&["a", "", "b"])), 2);
        assert_eq!(count(&Vector::Double(vec![f64::NAN, 1.0])), 1);
        assert_eq!(ok(avg(&Vector::Long(vec![1, 2]))), Scalar::Double(1.5));
    }

    #[test]
    fn aggregates_of_nothing_are_null() {
        for v in [Vector::Int(vec![]), Vector::Int(vec![NULL_INT, NULL_INT])] {
            assert_eq!(ok(sum(&v)), Scalar::Long(NULL_LONG));
            assert!(ok(avg(&v)).is_null());
            assert_eq!(ok(min(&v)), Scalar::Int(NULL_INT));
            assert_eq!(ok(max(&v)), Scalar::Int(NULL_INT));
            assert_eq!(count(&v), 0);
        }
        assert!(ok(sum(&Vector::Double(vec![]))).is_null());
        assert_eq!(
            ok(sum(&Vector::Double(vec![]))).data_type(),
            DataType::Double
        );
        assert!(ok(max(&Vector::Double(vec![f64::NAN]))).is_null());
        assert_eq!(ok(min(&strs(&[]))), Scalar::string(""));
        assert_eq!(
            ok(min(&Vector::NanoTimestamp(vec![]))),
            Scalar::NanoTimestamp(NULL_LONG)
        );
    }

    #[test]
    fn aggregates_refuse_strings_and_times() {
        assert_eq!(err(sum(&strs(&["a"]))), "cannot sum STRING values");
        assert_eq!(
            err(avg(&Vector::Date(vec![1]))),
            "cannot average DATE values"
        );
    }

    #[test]
    fn filter_gather_concat() {
        let v = Vector::Int(vec![10, 20, 30, 40]);
        assert_eq!(
            filter(&v, &[true, false, true, false]),
            Vector::Int(vec![10, 30])
        );
        // a short mask keeps only what it covers; a long one is cut
        assert_eq!(filter(&v, &[false, true]), Vector::Int(vec![20]));
        assert_eq!(filter(&v, &[true; 9]), v);
        assert_eq!(filter(&v, &[]), Vector::Int(vec![]));
        assert_eq!(filter(&strs(&["a", "b"]), &[false, true]), strs(&["b"]));
        assert_eq!(
            take_indices(&v, &[3, 0, 9, 0]),
            Vector::Int(vec![40, 10, NULL_INT, 10])
        );
        assert_eq!(take_indices(&strs(&["a"]), &[1, 0]), strs(&["", "a"]));
        let Vector::Double(ds) = take_indices(&Vector::Double(vec![1.0]), &[5]) else {
            panic!("expected DOUBLEs")
        };
        assert!(ds.len() == 1 && ds[0].is_nan());
        assert_eq!(
            ok(concat(&Vector::Int(vec![1]), &Vector::Int(vec![2, 3]))),
            Vector::Int(vec![1, 2, 3])
        );
        assert_eq!(
            ok(concat(
                &Vector::Int(vec![1, NULL_INT]),
                &Vector::Long(vec![2])
            )),
            Vector::Long(vec![1, NULL_LONG, 2])
        );
        assert_eq!(
            ok(concat(&Vector::Long(vec![2]), &Vector::Int(vec![1]))),
            Vector::Long(vec![2, 1])
        );
        assert_eq!(
            ok(concat(&Vector::Symbol(vec!["a".into()]), &strs(&["b"]))),
            strs(&["a", "b"])
        );
        assert_eq!(
            ok(concat(&Vector::Int(vec![1]), &Vector::Double(vec![0.5]))),
            Vector::Double(vec![1.0, 0.5])
        );
        assert_eq!(
            err(concat(&Vector::Date(vec![1]), &Vector::Int(vec![1]))),
            "cannot concatenate DATE and INT vectors"
        );
    }

    #[test]
    fn masks() {
        assert_eq!(
            ok(mask_of(&bools(&[1, 0, NULL_BOOL]), 3)),
            vec![true, false, false]
        );
        assert_eq!(ok(mask_of(&b(true), 2)), vec![true, true]);
        assert_eq!(
            ok(mask_of(&sc(Scalar::Bool(NULL_BOOL)), 2)),
            vec![false, false]
        );
        assert_eq!(ok(mask_of(&b(false), 0)), Vec::<bool>::new());
        assert_eq!(
            err(mask_of(&bools(&[1]), 2)),
            "the condition has 1 values but there are 2 rows"
        );
        assert_eq!(
            err(mask_of(&ints(&[1]), 1)),
            "a condition must be BOOL, got an INT vector"
        );
    }

    #[test]
    fn null_constructors() {
        for t in DataType::ALL {
            let n = null_of(t);
            assert_eq!(n.data_type(), t);
            assert!(n.is_null(), "{t}");
            let v = nulls(t, 3);
            assert_eq!(v.data_type(), t);
            assert_eq!(v.len(), 3);
            assert_eq!(count(&v), 0);
        }
    }

    #[test]
    fn cast_round_trips_for_every_type_pair_never_panic() {
        let samples: Vec<Vector> = vec![
            Vector::Bool(vec![1, 0, NULL_BOOL]),
            Vector::Int(vec![i32::MAX, -1, NULL_INT]),
            Vector::Long(vec![i64::MAX, -1, NULL_LONG]),
            Vector::Double(vec![f64::INFINITY, -0.5, f64::NAN]),
            strs(&["1", "x", ""]),
            Vector::Symbol(vec!["true".into(), "-2".into(), "".into()]),
            Vector::Date(vec![i32::MAX, -1, NULL_INT]),
            Vector::DateTime(vec![i32::MAX, -1, NULL_INT]),
            Vector::Timestamp(vec![i64::MAX, -1, NULL_LONG]),
            Vector::NanoTimestamp(vec![i64::MAX, -1, NULL_LONG]),
        ];
        for v in &samples {
            for t in DataType::ALL {
                if let Ok(out) = cast(v, t) {
                    assert_eq!(out.data_type(), t);
                    assert_eq!(out.len(), v.len());
                    // NULL stays NULL
                    assert!(out.get(2).is_some_and(|s| s.is_null()), "{v:?} to {t}");
                }
            }
            for w in &samples {
                for op in [
                    BinOp::Add,
                    BinOp::Sub,
                    BinOp::Mul,
                    BinOp::Div,
                    BinOp::Mod,
                    BinOp::Eq,
                    BinOp::Lt,
                    BinOp::And,
                    BinOp::In,
                ] {
                    let _ = binary(op, &vc(v.clone()), &vc(w.clone()));
                }
                let _ = concat(v, w);
            }
        }
    }

    #[test]
    fn million_row_add_completes() {
        let n = 1_000_000;
        let a: Vec<i32> = (0..n).collect();
        let b: Vec<i32> = (0..n).map(|i| n - i).collect();
        let out = bin(BinOp::Add, &vc(Vector::Int(a)), &vc(Vector::Int(b)));
        let Value::Vector(Vector::Int(xs)) = out else {
            panic!("expected an INT vector")
        };
        assert_eq!(xs.len(), 1_000_000);
        assert!(xs.iter().all(|x| *x == n));
    }
}
