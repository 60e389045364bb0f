//! Vectorised operators and functions over scalars and column vectors: arithmetic,
//! comparisons, logic, membership (`in`, `between`), casts, aggregates, and the column
//! plumbing a query needs (filter by a mask, gather by indices, concatenate).
//!
//! Every operation works on the typed `Vec`s of [`Vector`] with one tight loop per type
//! combination (chosen once, outside the loop), broadcasting a scalar operand to every row.
//! Nothing here panics on any input: a misuse is an `Err(String)` naming the types.
//!
//! The operators live in one module per kind, and everything public is re-exported here:
//!
//! * `binary`: [`binary`](fn@binary), the entry point of every binary operator, which hands
//!   each one to its kind;
//! * `arith`: `+ - * / %` and [`neg`];
//! * `compare`: `== != < <= > >=`, `and`/`or`, and [`not`];
//! * `membership`: [`is_in`] and [`between`];
//! * `cast`: [`cast`](fn@cast) and [`cast_scalar`];
//! * `aggregate`: [`sum`], [`avg`], [`min`], [`max`], [`count`];
//! * `columns`: [`filter`], [`take_indices`], [`concat`](fn@concat), [`mask_of`], [`null_of`],
//!   [`nulls`];
//! * `kernel`: what they share (element traits, operands and their loops, type classes and
//!   comparison domains).
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
//! * [`binary`](fn@binary) also runs `In` (as [`is_in`]) and `Between` (right side a
//!   [`Value::Pair`]); `Range` and `Pair` are refused: they build values rather than compute
//!   element-wise.
//!
//! [`Vector`]: xrepl_core::value::Vector
//! [`Value::Pair`]: xrepl_core::value::Value::Pair

mod aggregate;
mod arith;
mod binary;
mod cast;
mod columns;
mod compare;
mod kernel;
mod membership;

pub use aggregate::{avg, count, max, min, sum};
pub use arith::neg;
pub use binary::binary;
pub use cast::{cast, cast_exact, cast_scalar};
pub use columns::{concat, filter, mask_of, null_of, nulls, scatter, split_off, take_indices};
pub use compare::not;
pub use membership::{between, is_in};
