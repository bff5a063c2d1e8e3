#![warn(missing_docs)]
//! gafix: converge fleets of virtual machines over SSH.
//!
//! The path of data: inventory + roles -> plan -> per-host execution over a transport ->
//! events -> reporters.

pub mod app;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod diag;
pub(crate) mod engine;
pub(crate) mod facts;
pub(crate) mod hypervisor;
pub(crate) mod inventory;
pub(crate) mod module;
pub(crate) mod names;
pub(crate) mod plan;
pub(crate) mod pyre;
pub(crate) mod report;
pub(crate) mod role;
pub(crate) mod secrets;
pub(crate) mod session;
pub mod shell;
pub(crate) mod template;
pub(crate) mod transport;
pub(crate) mod vars;
pub(crate) mod yaml;
