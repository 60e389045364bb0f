//! The operators of the language, as data: the syntax tree holds them, the vector operations
//! compute them, and the conditions a transaction carries between nodes name them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `not x`, `!x`
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// `==` (and `=` inside expressions where assignment is impossible is NOT accepted)
    Eq,
    /// `!=` or `<>`
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `and`, `&&`
    And,
    /// `or`, `||`
    Or,
    /// `a..b`
    Range,
    /// `a:b`
    Pair,
    /// `x in y`
    In,
    /// `x between a:b` (inclusive at both ends)
    Between,
}

impl BinOp {
    /// The operator as users write it.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Range => "..",
            BinOp::Pair => ":",
            BinOp::In => "in",
            BinOp::Between => "between",
        }
    }
}
