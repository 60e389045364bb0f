//! The cluster's definitions, shared by every xrepl process: the values the database holds,
//! the operators over them, configuration, the catalog and partition schemes, users and rights,
//! where each replication function runs, and process setup.
//!
//! **Invariant:** nothing here touches sled or the network; storage belongs to the controller
//! and the data node (and `xrepl-store`, which they share), the wire to `xrepl-proto`.

pub mod auth;
pub mod catalog;
pub mod cluster_key;
pub mod config;
pub mod operator;
mod packed;
pub mod placement;
pub mod process;
pub mod secrets;
pub mod value;
