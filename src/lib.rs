//! gafix: converge fleets of virtual machines over SSH.
//!
//! The path of data: inventory + roles -> plan -> per-host execution over a transport ->
//! events -> reporters.

pub mod app;
pub mod cli;
pub mod diag;
pub mod engine;
pub mod facts;
pub mod inventory;
pub mod module;
pub mod names;
pub mod plan;
pub mod report;
pub mod role;
pub mod secrets;
pub mod session;
pub mod shell;
pub mod template;
pub mod transport;
pub mod vars;
pub mod yaml;
