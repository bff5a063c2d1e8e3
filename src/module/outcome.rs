//! What running a task produced: its status, message and data, before the engine turns it
//! into a record.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::transport::{CommandOutput, TransportError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
    Unreachable,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Unreachable => "unreachable",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Diff {
    pub before: String,
    pub after: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub changed: bool,
    pub msg: String,
    pub rc: Option<i32>,
    pub stderr_tail: Option<String>,
    pub diff: Option<Diff>,
    /// Module-specific result data (`stat`, `rc`/`stdout` of commands) for `register`.
    pub result: Json,
}

impl Outcome {
    /// An outcome with a status and message, and nothing else.
    pub fn new(status: Status, msg: impl Into<String>) -> Self {
        Outcome { status, changed: status == Status::Changed, msg: msg.into(), rc: None, stderr_tail: None, diff: None, result: json!({}) }
    }
    pub fn ok(msg: impl Into<String>) -> Self {
        Self::new(Status::Ok, msg)
    }
    pub fn changed(msg: impl Into<String>) -> Self {
        Self::new(Status::Changed, msg)
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        Self::new(Status::Failed, msg)
    }
    pub fn skipped(msg: impl Into<String>) -> Self {
        Self::new(Status::Skipped, msg)
    }
    pub fn from_transport(e: TransportError) -> Self {
        match e {
            TransportError::Unreachable(m) => Self::new(Status::Unreachable, m),
            TransportError::Timeout(d) => Self::failed(format!("the command did not finish within {} s (--command-timeout)", d.as_secs())),
            other => Self::failed(other.to_string()),
        }
    }
    /// The result as `register:` stores it: the module's data, plus Ansible's `changed`,
    /// `failed`, `skipped` and `msg`.
    pub fn registered(&self) -> Json {
        let mut m = match &self.result {
            Json::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        m.insert("changed".into(), Json::Bool(self.changed));
        m.insert("failed".into(), Json::Bool(self.status == Status::Failed));
        if self.status == Status::Skipped {
            m.insert("skipped".into(), Json::Bool(true));
        }
        m.entry("msg").or_insert(Json::String(self.msg.clone()));
        Json::Object(m)
    }

    /// A remote command that exited non-zero: its exit code and the last lines of stderr.
    pub fn command_failed(what: &str, out: &CommandOutput, explanation: Option<String>) -> Self {
        let tail = out.tail(5);
        let msg = match explanation {
            Some(e) => e,
            None => format!(
                "{what} exited with code {}{}",
                out.rc,
                if tail.is_empty() { String::new() } else { format!(": {}", tail.lines().last().unwrap_or("")) }
            ),
        };
        let mut o = Self::failed(msg);
        o.rc = Some(out.rc);
        o.stderr_tail = (!tail.is_empty()).then_some(tail);
        o
    }
}
