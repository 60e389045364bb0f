//! Where each replication function may run, and the messages for calling it elsewhere.
//!
//! Every node checks a replication function call against this table before running it:
//! `Replication is not enabled. ...` without `clusterReplicationMode`, `<fn> must be executed
//! on ...` on the wrong node. The master functions run in `controller/src/master.rs`, the
//! slave ones in `controller/src/slave/`, the data node ones in `datanode/src/dbfns.rs`.

use crate::config::{NodeRole, ReplicationMode};

/// The message for any replication function on a cluster without `clusterReplicationMode`.
pub const NOT_ENABLED: &str =
    "Replication is not enabled. Specify the configuration parameters first.";

/// Where a replication function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub role: NodeRole,
    /// `None`: on either cluster.
    pub cluster: Option<ReplicationMode>,
}

const fn at(role: NodeRole, cluster: Option<ReplicationMode>) -> Placement {
    Placement { role, cluster }
}

use NodeRole::{Controller as C, DataNode as D};
use ReplicationMode::{Master as M, Slave as S};

/// Every replication function of `shared/spec/replication.md` and where it runs.
pub const FUNCTIONS: &[(&str, Placement)] = &[
    ("setDatabaseForClusterReplication", at(D, None)),
    ("setDatabaseClusterReplicationExecutionSet", at(D, Some(M))),
    ("getDatabaseClusterReplicationStatus", at(D, Some(M))),
    ("startClusterReplication", at(C, None)),
    ("stopClusterReplication", at(C, None)),
    ("skipClusterReplicationTask", at(C, Some(S))),
    ("getMasterReplicationStatus", at(C, Some(M))),
    ("getRecentSlaveReplicationInfo", at(C, Some(M))),
    ("getMasterReplicationInfo", at(C, Some(M))),
    ("getMasterReplicationSlaveLag", at(C, Some(M))),
    ("getClusterReplicationLag", at(C, Some(S))),
    ("dropClusterReplicationSlave", at(C, Some(M))),
    ("getSlaveReplicationStatus", at(C, Some(S))),
    ("getSlaveReplicationQueueStatus", at(C, Some(S))),
    ("getSlaveReplicationExecutionStatus", at(D, Some(S))),
    ("getClusterReplicationMetrics", at(C, Some(S))),
    ("getClusterReplicationBootstrapStatus", at(C, None)),
    ("resyncClusterReplicationTable", at(C, Some(S))),
    ("resyncClusterReplicationDatabase", at(C, Some(S))),
    ("checkClusterReplicationConsistency", at(D, Some(S))),
];

/// Where `name` runs, if it is a replication function.
pub fn placement(name: &str) -> Option<Placement> {
    FUNCTIONS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// Checks a replication function call on a node of kind `here` in a cluster whose mode is
/// `mode`; `Err` carries the user's message.
pub fn check_placement(
    name: &str,
    want: Placement,
    here: NodeRole,
    mode: Option<ReplicationMode>,
) -> Result<(), String> {
    let Some(mode) = mode else {
        return Err(NOT_ENABLED.to_string());
    };
    let right_cluster = want.cluster.is_none_or(|c| c == mode);
    if want.role == here && right_cluster {
        return Ok(());
    }
    let node = match want.role {
        NodeRole::Controller => "the controller",
        NodeRole::DataNode => "a data node",
    };
    Err(match want.cluster {
        Some(c) => format!("{name} must be executed on {node} of the {c} cluster."),
        None => format!("{name} must be executed on {node}."),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, here: NodeRole, mode: Option<ReplicationMode>) -> Result<(), String> {
        check_placement(name, placement(name).expect("known"), here, mode)
    }

    #[test]
    fn messages_follow_the_spec() {
        assert_eq!(
            check("getMasterReplicationStatus", C, None),
            Err(NOT_ENABLED.to_string())
        );
        assert_eq!(
            check("getMasterReplicationStatus", C, Some(S)),
            Err("getMasterReplicationStatus must be executed on the controller of the master cluster.".into())
        );
        assert_eq!(
            check("getSlaveReplicationStatus", D, Some(S)),
            Err("getSlaveReplicationStatus must be executed on the controller of the slave cluster.".into())
        );
        assert_eq!(
            check("setDatabaseClusterReplicationExecutionSet", C, Some(M)),
            Err("setDatabaseClusterReplicationExecutionSet must be executed on a data node of the master cluster.".into())
        );
        assert_eq!(
            check("stopClusterReplication", D, Some(M)),
            Err("stopClusterReplication must be executed on the controller.".into())
        );
        assert_eq!(check("stopClusterReplication", C, Some(S)), Ok(()));
        assert_eq!(check("getMasterReplicationStatus", C, Some(M)), Ok(()));
    }
}
