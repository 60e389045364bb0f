//! Replication on a data node.
//!
//! On a master: [`taskstore`] keeps the task data of the transactions this node coordinates,
//! [`serve`] hands it (and checksums) to slaves, [`sweep`] deletes what no slave needs any
//! more, [`snapshot`] sends the chunks it holds when a bootstrap asks for them. On a slave: [`replay`] runs the workers that apply the master's tasks. On both:
//! [`consistency`] (`checkClusterReplicationConsistency`) and [`functions`] (the replication
//! functions a session calls on a data node).

pub mod consistency;
pub mod functions;
pub mod replay;
pub mod serve;
pub mod snapshot;
pub mod sweep;
pub mod taskstore;
