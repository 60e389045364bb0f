//! The database functions of a session: data definition ([`ddl`]), reading definitions
//! ([`schema`]), and writing rows ([`write`]: `append!`, `tableInsert`, `upsert!`, and how
//! any write becomes a transaction). SQL is in `crate::sql`.

pub mod ddl;
pub mod schema;
pub mod write;
