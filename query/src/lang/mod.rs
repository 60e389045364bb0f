//! The console language: lexer, parser and syntax tree.

pub mod ast;
pub mod lexer;
pub mod parser;

pub use parser::{parse, ParseError};
