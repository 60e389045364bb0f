//! Durable storage shared by the controller and the data node: a write-ahead log with group
//! commit ([`wal`]), sled trees whose changes it makes durable ([`logged`]), and files for
//! bulk bytes that a record names only once they are durable ([`files`]).
//!
//! **Invariant:** a change is acknowledged to anyone only after the log record that holds it
//! is durable; after a crash, the tree holds exactly the durable records (and possibly later
//! ones it wrote itself), each applied once, in order.

pub mod files;
pub mod logged;
pub mod wal;

pub use files::{FileError, FileRef};
pub use logged::{Change, LoggedTree, StoreError};
