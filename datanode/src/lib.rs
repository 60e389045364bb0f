//! The data node: serves client sessions, stores chunks, coordinates and takes part in
//! transactions, and on a replication cluster keeps and serves task data (a master) or replays
//! the master's tasks (a slave).
//!
//! Rooms, in the order a write flows through them:
//! - [`server`]: connections and what each may send; the background tasks;
//! - [`session`]: one actor per client connection, the evaluator and the function registry;
//! - [`db`] and [`sql`]: the database functions and SQL a session runs;
//! - [`plan`]: which chunk operations a write or a read makes (pure);
//! - [`txn`]: two-phase commit (coordinator, participant, settling after a crash);
//! - [`storage`]: chunks as column blocks in sled; [`compute`]: conditions and aggregates
//!   over a chunk's columns;
//! - [`replication`]: task data and serving slaves (a master), replay (a slave), the
//!   consistency check and the replication functions;
//! - [`node`] (what everything shares, and the role), [`link`] (the controller),
//!   [`catalog_cache`] (database definitions kept between writes),
//!   [`failpoint`] (test hooks), [`error`].

pub mod catalog_cache;
pub mod compute;
pub mod db;
pub mod dolphindb;
pub mod error;
pub mod failpoint;
pub mod link;
pub mod node;
pub mod plan;
pub mod replication;
pub mod server;
pub mod session;
pub mod sql;
pub mod storage;
pub mod txn;
pub mod web;

pub use error::DataNodeError;
pub use node::DataNode;
pub use server::{bind, run};
