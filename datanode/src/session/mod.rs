//! Client sessions: one per connection of a console or a program.
//!
//! - [`actor`]: the session's task, requests in order, scripts run statement by statement;
//! - [`state`]: the logged-in user, the variables, and the controller as the user may use it;
//! - [`args`]: what functions take and give back ([`args::Args`], [`args::EvalError`]);
//! - [`eval`]: the evaluator of the syntax tree;
//! - [`registry`]: every function by name, and where it lives;
//! - [`builtins`] and [`datafns`]: the session's own functions and the data functions;
//! - [`clientfns`]: what DolphinDB's client libraries call by themselves (`version`, `undef`,
//!   ...) and `print`.
//!
//! The database functions are in `crate::db`, SQL in `crate::sql`, the replication functions in
//! `crate::replication::functions`.

pub mod actor;
pub mod args;
pub mod builtins;
pub mod clientfns;
pub mod datafns;
pub mod eval;
pub mod registry;
pub mod state;
