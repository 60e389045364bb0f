//! The syntax tree of the console language (see `shared/spec/language.md`).
//!
//! The parser produces it, the data node's evaluator walks it. Every node carries the
//! [`Span`] where it starts so that runtime errors can name a line and column too.

use serde::{Deserialize, Serialize};

pub use xrepl_core::operator::{BinOp, UnaryOp};

/// A position in the script text, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.col)
    }
}

/// One statement. A script is a `Vec<Stmt>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Stmt {
    /// An expression whose value is shown to the user (unless it is an assignment).
    Expr(Expr),
    /// `name = value`
    Assign {
        name: String,
        value: Expr,
        span: Span,
    },
    /// `if (cond) { then } else { otherwise }`; a branch may also be a single statement.
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Option<Vec<Stmt>>,
        span: Span,
    },
    /// `update t set a = expr, b = expr [where cond]`
    Update {
        table: Expr,
        set: Vec<(String, Expr)>,
        filter: Option<Expr>,
        span: Span,
    },
    /// `delete from t [where cond]`
    Delete {
        table: Expr,
        filter: Option<Expr>,
        span: Span,
    },
    /// `insert into t [(c1, c2)] values (e1, e2, ...)`: each value a scalar or a vector.
    Insert {
        table: Expr,
        columns: Option<Vec<String>>,
        values: Vec<Expr>,
        span: Span,
    },
}

/// `select items from table [where cond] [group by c1, c2] [order by c [asc|desc], ...] [limit n]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Select {
    pub items: Vec<SelectItem>,
    pub from: Expr,
    /// Conditions joined by `and` (DolphinDB's `where a > 1, b < 2` means `a > 1 and b < 2`).
    pub filter: Option<Expr>,
    pub group_by: Vec<String>,
    /// Column and whether it is descending.
    pub order_by: Vec<(String, bool)>,
    pub limit: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SelectItem {
    /// `*`
    All,
    /// `expr [as alias]`
    Expr { expr: Expr, alias: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExprKind {
    Literal(Literal),
    /// A variable, a function name used as a value, or a constant such as `INT` or `VALUE`.
    Ident(String),
    /// `[a, b, c]`
    Vector(Vec<Expr>),
    /// `f(a, name=b)`. `func` is usually an `Ident`.
    Call {
        func: Box<Expr>,
        args: Vec<Arg>,
    },
    /// `f{a, b}`: DolphinDB's partial application, `f` with its first arguments fixed
    /// (`tableInsert{loadTable("dfs://db", "t")}`). The `{` follows the name directly.
    Partial {
        func: Box<Expr>,
        args: Vec<Expr>,
    },
    /// `target.name(args)`, meaning `name(target, args...)`.
    Method {
        target: Box<Expr>,
        name: String,
        args: Vec<Arg>,
    },
    /// `target.name` (no parentheses): field access, e.g. `schema(db).clusterReplicationEnabled`.
    Field {
        target: Box<Expr>,
        name: String,
    },
    /// `target[index]`
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// A `select` query used as an expression.
    Select(Box<Select>),
    /// `*` as the argument of `count(*)`.
    Star,
}

/// A call argument, positional (`name == None`) or named (`name=value`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arg {
    pub name: Option<String>,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    Int(i64),
    Float(f64),
    String(String),
    Bool(bool),
    Null,
    /// `` `abc ``
    Symbol(String),
    /// `` `a`b`c `` (two or more back-ticked names written together)
    SymbolVector(Vec<String>),
    /// `2023.01.01`: days since 1970-01-01
    Date(i32),
    /// `2023.01.08T09:30:00`: seconds since the epoch
    DateTime(i64),
    /// `2023.01.08T09:30:00.000`: milliseconds since the epoch
    Timestamp(i64),
    /// `2023.01.08T09:30:00.000000000`: nanoseconds since the epoch
    NanoTimestamp(i64),
}
