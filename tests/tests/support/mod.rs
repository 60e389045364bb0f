//! Harness modules shared by the tests that include them (`mod support;`), so that only those
//! tests link what they need.

pub mod inproc;
