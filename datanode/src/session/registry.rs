//! Every function a session can call, by name, and where it is implemented: the session's
//! own ([`super::builtins`]), the data functions ([`super::datafns`]), the database functions
//! (`crate::db`) and the replication functions (`crate::replication::functions`), which first
//! pass the placement check every node makes (`Replication is not enabled...`, `... must be
//! executed on ...`).
//!
//! To add a function: write its handler (`fn(&mut Session, &str, Args) -> Result<Value,
//! EvalError>`) in the room it belongs to and add it to that room's `FUNCTIONS`.

use xrepl_core::config::NodeRole;
use xrepl_core::placement;
use xrepl_core::value::Value;
use xrepl_proto::rpc::ErrorCode;

use super::args::{Args, EvalError};
use super::state::{Handler, Session};
use super::{builtins, clientfns, datafns};
use crate::db;
use crate::replication::functions as replication;

/// The tables of functions a session calls by name (the replication functions apart).
const TABLES: &[&[(&str, Handler)]] = &[
    db::ddl::FUNCTIONS,
    db::schema::FUNCTIONS,
    db::write::FUNCTIONS,
    datafns::FUNCTIONS,
    builtins::FUNCTIONS,
    clientfns::FUNCTIONS,
];

fn lookup(table: &[(&str, Handler)], name: &str) -> Option<Handler> {
    table.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// The handler of `name`, if it is a function of the session (not a replication function).
fn handler(name: &str) -> Option<Handler> {
    TABLES.iter().find_map(|t| lookup(t, name))
}

/// Whether `name` names a function (it may not be a variable's name, and evaluates to a
/// function as a value).
pub fn is_function(name: &str) -> bool {
    name == "table" || handler(name).is_some() || placement::placement(name).is_some()
}

impl Session {
    /// Calls function `name`.
    pub(crate) fn call(&mut self, name: &str, args: Args) -> Result<Value, EvalError> {
        if let Some(h) = handler(name) {
            return h(self, name, args);
        }
        let Some(want) = placement::placement(name) else {
            return Err(EvalError::new(
                ErrorCode::NotFound,
                format!("unknown function '{name}'"),
            ));
        };
        self.require_admin(name)?;
        let mode = self.node.cfg.replication.as_ref().map(|r| r.mode);
        placement::check_placement(name, want, NodeRole::DataNode, mode)
            .map_err(|m| EvalError::new(ErrorCode::BadRequest, m))?;
        match lookup(replication::FUNCTIONS, name) {
            Some(h) => h(self, name, args),
            None => Err(EvalError::new(
                ErrorCode::Internal,
                format!("{name} passed its placement check but has no handler on a data node"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_one_home() {
        let mut seen = std::collections::BTreeSet::new();
        for t in TABLES.iter().chain([&replication::FUNCTIONS]) {
            for (n, _) in t.iter() {
                assert!(seen.insert(*n), "'{n}' is defined twice");
            }
        }
        for (n, _) in replication::FUNCTIONS {
            assert!(placement::placement(n).is_some(), "'{n}' has no placement");
        }
        for (n, p) in placement::FUNCTIONS {
            if p.role == NodeRole::DataNode {
                assert!(
                    lookup(replication::FUNCTIONS, n).is_some(),
                    "'{n}' has no handler"
                );
            }
        }
        assert!(is_function("table") && is_function("append!") && is_function("rand"));
        assert!(!is_function("x"));
    }
}
