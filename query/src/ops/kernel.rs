//! What every kind of operator shares: the element traits ([`Elem`], [`Num`], [`Int`]), the
//! operands (a scalar broadcast to every row, or a borrowed column) with the loops that walk
//! them, the type classes and comparison domains, readers of scalars, and the error texts of
//! the binary operators.

use std::cmp::Ordering;

use xrepl_core::operator::BinOp;
use xrepl_core::value::{DataType, Scalar, Value, Vector, NULL_BOOL, NULL_INT, NULL_LONG};

// ---------------------------------------------------------------------------------------------
// Element traits
// ---------------------------------------------------------------------------------------------

/// An element type of a [`Vector`] with its NULL sentinel.
pub(super) trait Elem: Clone {
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
pub(super) trait Num: Elem + Copy {
    /// As a DOUBLE; NULL becomes NaN.
    fn float(self) -> f64;
    /// As a LONG, DOUBLEs rounded half away from zero; NULL and out-of-range values give NULL.
    fn rounded(self) -> i64;
    /// Non-NULL and non-zero.
    fn truth(self) -> bool;
}

/// An integer storage element (BOOL, INT, LONG and the temporals).
pub(super) trait Int: Num {
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
pub(super) fn narrow(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(NULL_INT)
}

// ---------------------------------------------------------------------------------------------
// Operands: a scalar broadcast to every row, or a borrowed column
// ---------------------------------------------------------------------------------------------

pub(super) enum Col<'a, T> {
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
pub(super) enum Out<R> {
    One(R),
    Many(Vec<R>),
}

impl<R> Out<R> {
    pub(super) fn into_value(
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
pub(super) fn zip_map<A, B, R>(a: &Col<'_, A>, b: &Col<'_, B>, f: impl Fn(&A, &B) -> R) -> Out<R> {
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
pub(super) fn map1<A, R>(a: &Col<'_, A>, f: impl Fn(&A) -> R) -> Out<R> {
    match a {
        Col::One(x) => Out::One(f(x)),
        Col::Many(xs) => Out::Many(xs.iter().map(f).collect()),
    }
}

/// Every element of `c` through `f`.
pub(super) fn collect_col<T, K>(c: &Col<'_, T>, f: impl Fn(&T) -> K) -> Vec<K> {
    match c {
        Col::One(x) => vec![f(x)],
        Col::Many(xs) => xs.iter().map(f).collect(),
    }
}

/// The storage of an operand; its logical type is in [`Operand::ty`].
pub(super) enum Cols<'a> {
    Bool(Col<'a, i8>),
    I32(Col<'a, i32>),
    I64(Col<'a, i64>),
    F64(Col<'a, f64>),
    Str(Col<'a, String>),
}

pub(super) struct Operand<'a> {
    pub(super) ty: DataType,
    pub(super) cols: Cols<'a>,
}

/// An integer view of an operand (BOOL, INT, LONG or a temporal's storage).
pub(super) enum IntCol<'r, 'a> {
    B(&'r Col<'a, i8>),
    I(&'r Col<'a, i32>),
    L(&'r Col<'a, i64>),
}

/// A numeric view of an operand.
pub(super) enum NumCol<'r, 'a> {
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

pub(super) use {with_int, with_num};

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

    pub(super) fn of_value(v: &'a Value) -> Option<Operand<'a>> {
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

    pub(super) fn ints(&self) -> Option<IntCol<'_, 'a>> {
        match &self.cols {
            Cols::Bool(c) => Some(IntCol::B(c)),
            Cols::I32(c) => Some(IntCol::I(c)),
            Cols::I64(c) => Some(IntCol::L(c)),
            Cols::F64(_) | Cols::Str(_) => None,
        }
    }

    pub(super) fn nums(&self) -> Option<NumCol<'_, 'a>> {
        match &self.cols {
            Cols::Bool(c) => Some(NumCol::B(c)),
            Cols::I32(c) => Some(NumCol::I(c)),
            Cols::I64(c) => Some(NumCol::L(c)),
            Cols::F64(c) => Some(NumCol::D(c)),
            Cols::Str(_) => None,
        }
    }

    pub(super) fn strs(&self) -> Option<&Col<'a, String>> {
        match &self.cols {
            Cols::Str(c) => Some(c),
            _ => None,
        }
    }
}

pub(super) fn check_rows(x: &Operand, y: &Operand) -> Result<(), String> {
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
pub(super) enum Unit {
    Day,
    Sec,
    Milli,
    Nano,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// BOOL, INT, LONG
    Int,
    /// DOUBLE
    Float,
    /// STRING, SYMBOL
    Str,
    Time(Unit),
}

pub(super) fn class(t: DataType) -> Class {
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
pub(super) fn ratio(coarse: Unit, fine: Unit) -> i64 {
    (unit_nanos(coarse) / unit_nanos(fine)).max(1)
}

/// Where values of several types are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dom {
    /// BOOL, INT, LONG as LONG.
    Ints,
    /// Temporals as LONG counts of the given (finest) unit.
    Time(Unit),
    /// Numbers with a DOUBLE among them, as DOUBLE.
    F64,
    /// STRING and SYMBOL.
    Str,
}

pub(super) fn domain(types: &[DataType]) -> Option<Dom> {
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
pub(super) fn factor(t: DataType, dom: Dom) -> i64 {
    match (class(t), dom) {
        (Class::Time(u), Dom::Time(f)) => ratio(u, f),
        _ => 1,
    }
}

/// A LONG key scaled to a finer unit; NULL stays NULL (the smallest), overflow saturates.
#[inline]
pub(super) fn scaled(w: i64, f: i64) -> i64 {
    if f == 1 || w == NULL_LONG {
        w
    } else {
        w.saturating_mul(f).max(NULL_LONG + 1)
    }
}

/// A total order on DOUBLEs where NaN (NULL) is the smallest value and equals itself.
#[inline]
pub(super) fn cmp_f64(a: f64, b: f64) -> Ordering {
    match a.partial_cmp(&b) {
        Some(o) => o,
        None => a.is_nan().cmp(&b.is_nan()).reverse(),
    }
}

pub(super) fn scalar_wide(s: &Scalar) -> Option<i64> {
    match s {
        Scalar::Bool(v) => Some(v.wide()),
        Scalar::Int(v) | Scalar::Date(v) | Scalar::DateTime(v) => Some(v.wide()),
        Scalar::Long(v) | Scalar::Timestamp(v) | Scalar::NanoTimestamp(v) => Some(*v),
        _ => None,
    }
}

pub(super) fn scalar_float(s: &Scalar) -> Option<f64> {
    match s {
        Scalar::Bool(v) => Some(v.float()),
        Scalar::Int(v) => Some(v.float()),
        Scalar::Long(v) => Some(v.float()),
        Scalar::Double(v) => Some(*v),
        _ => None,
    }
}

pub(super) fn scalar_str(s: &Scalar) -> Option<&str> {
    match s {
        Scalar::String(v) | Scalar::Symbol(v) => Some(v),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Error texts of the binary operators
// ---------------------------------------------------------------------------------------------

pub(super) fn op_symbol(op: BinOp) -> &'static str {
    op.symbol()
}

/// `cannot add STRING and INT`, `cannot subtract DATE from INT`, `cannot compare ...`.
pub(super) fn type_error(op: BinOp, a: &str, b: &str) -> String {
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

/// Value builders and checks shared by the tests of every kind.
#[cfg(test)]
pub(super) mod testing {
    use xrepl_core::operator::BinOp;
    use xrepl_core::value::{Scalar, Value, Vector};

    pub(crate) fn ok<T>(r: Result<T, String>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    pub(crate) fn err<T: std::fmt::Debug>(r: Result<T, String>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e,
        }
    }

    pub(crate) fn sc(x: Scalar) -> Value {
        Value::Scalar(x)
    }

    pub(crate) fn vc(x: Vector) -> Value {
        Value::Vector(x)
    }

    pub(crate) fn int(x: i32) -> Value {
        sc(Scalar::Int(x))
    }

    pub(crate) fn ints(xs: &[i32]) -> Value {
        vc(Vector::Int(xs.to_vec()))
    }

    pub(crate) fn bools(xs: &[i8]) -> Value {
        vc(Vector::Bool(xs.to_vec()))
    }

    pub(crate) fn b(x: bool) -> Value {
        sc(Scalar::bool(x))
    }

    pub(crate) fn strs(xs: &[&str]) -> Vector {
        Vector::String(xs.iter().map(|s| s.to_string()).collect())
    }

    pub(crate) fn bin(op: BinOp, a: &Value, b: &Value) -> Value {
        ok(crate::ops::binary(op, a, b))
    }

    /// The DOUBLEs of a result, NULL as `None` (NaN is not equal to itself).
    pub(crate) fn doubles(v: &Value) -> Vec<Option<f64>> {
        let opt = |x: f64| (!x.is_nan()).then_some(x);
        match v {
            Value::Scalar(Scalar::Double(x)) => vec![opt(*x)],
            Value::Vector(Vector::Double(xs)) => xs.iter().map(|x| opt(*x)).collect(),
            other => panic!("expected DOUBLEs, got {other:?}"),
        }
    }

    // 2023.01.08, 2023.01.08T09:30:00
    pub(crate) const D0108: i32 = 19_365;
    pub(crate) const DT0930: i32 = 1_673_170_200;
}
