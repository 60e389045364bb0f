//! The console language and the computations on values: the lexer, parser and syntax tree
//! ([`lang`]), the vectorised operators and functions ([`ops`]), and how values are shown
//! ([`format`]). Used by the data node (which evaluates scripts) and the console (which shows
//! results); the controller does not link it.

pub mod format;
pub mod lang;
pub mod ops;
