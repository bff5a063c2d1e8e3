//! gafix: converge fleets of virtual machines over SSH.
//!
//! The path of data: inventory + roles -> plan -> per-host execution over a transport ->
//! events -> reporters.

pub mod diag;
pub mod facts;
pub mod inventory;
pub mod module;
pub mod role;
pub mod yaml;
