//! The wire between xrepl processes, and what travels on it.
//!
//! Layers, bottom to top: [`rpc::frame`] (length-delimited units, chunking), [`rpc::message`]
//! (the greeting, the request families and their replies, error codes), [`rpc::client`] and
//! [`rpc::server`] (connections); then the payloads: [`txn`] (what a transaction asks of a
//! participant, what a scan answers), [`task`] (replication tasks) and [`ticket`] (a slave's
//! permission to fetch task data); and the two clients
//! built on it: [`client`] (a session on a data node, for programs) and [`master_client`] (a
//! slave cluster's connection to its master).
//! Beside them, [`dolphindb`]: DolphinDB's client API protocol as a pure codec (no IO).
//!
//! **Invariant:** no input from the network panics: every decoder refuses malformed bytes
//! with an error (`proto/tests/hostile_decoders.rs`).

pub mod client;
pub mod dolphindb;
pub mod master_client;
pub mod rpc;
pub mod task;
pub mod ticket;
pub mod txn;
pub mod web;
