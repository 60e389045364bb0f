//! Shared parts of xrepl used by the controller, the data node and the console.
//!
//! **Invariant:** nothing here touches sled; storage belongs to the controller and data node.

pub mod auth;
pub mod catalog;
pub mod client;
pub mod config;
pub mod format;
pub mod lang;
pub mod master_client;
pub mod ops;
pub mod process;
pub mod replication;
pub mod rpc;
pub mod task;
pub mod txn;
pub mod value;
