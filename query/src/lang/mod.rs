//! The console language: lexer, parser and syntax tree.

pub mod ast;
mod error;
pub mod lexer;
pub mod parser;

pub use error::ParseError;
pub use parser::parse;
