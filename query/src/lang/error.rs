//! The error of the console language's lexer and parser: a [`ParseError`] is a syntax
//! error with the position (line and column) it was found at.

use super::ast::{self, Span};

/// A syntax error with the position it was found at.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub span: ast::Span,
    pub message: String,
}

impl ParseError {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        ParseError {
            span,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Syntax error at {}: {}", self.span, self.message)
    }
}

impl std::error::Error for ParseError {}
