//! SQL on a session: [`select`] (distributed reads and their merge), [`dml`] (`update`,
//! `delete`, `insert into`, each one transaction) and [`compile`] (conditions and values into
//! what the participants evaluate).

pub mod compile;
pub mod dml;
pub mod select;
