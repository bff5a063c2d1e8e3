//! What the engine reports: one record per task and host, play outcomes for the gate, and
//! the events reporters print as the run goes.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::module::{ModuleRef, Outcome};

pub use crate::module::outcome::{Diff, Status};

/// The result of one task on one host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRecord {
    pub host: String,
    pub play: String,
    pub role: Option<String>,
    pub task: String,
    pub module: Option<ModuleRef>,
    /// Where the task is written (`file:line:column`).
    pub location: String,
    pub status: Status,
    pub changed: bool,
    /// Failed, but `ignore_errors` let the host go on.
    pub ignored: bool,
    /// Failed inside a block with `rescue:`: counted as rescued, as Ansible counts it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rescued: bool,
    pub msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rc: Option<i32>,
    /// The last lines of the failing command's stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Diff>,
    /// When the task started, in seconds from the start of the run.
    pub started_s: f64,
    pub duration_s: f64,
}

/// Which task, on which host, a record is about.
#[derive(Clone, Copy, Debug)]
pub struct TaskRef<'a> {
    pub host: &'a str,
    pub play: &'a str,
    pub role: Option<&'a str>,
    pub task: &'a str,
    /// `file:line:column` of the task.
    pub location: &'a str,
    pub module: Option<ModuleRef>,
}

impl TaskRecord {
    /// The record of an outcome; `started` is when the task began, `origin` when the run did.
    /// Messages are masked for secrets here, once, for every report.
    pub fn new(of: TaskRef<'_>, o: &Outcome, started: std::time::Instant, origin: std::time::Instant) -> TaskRecord {
        let mask = |s: &str| crate::secrets::redact(s).into_owned();
        TaskRecord {
            host: of.host.into(),
            play: of.play.into(),
            role: of.role.map(str::to_string),
            task: mask(of.task),
            module: of.module,
            location: of.location.into(),
            status: o.status,
            changed: o.changed,
            ignored: false,
            rescued: false,
            msg: mask(&o.msg),
            rc: o.rc,
            stderr_tail: o.stderr_tail.as_deref().map(mask),
            diff: o.diff.as_ref().map(|d| Diff { before: mask(&d.before), after: mask(&d.after) }),
            started_s: started.saturating_duration_since(origin).as_secs_f64(),
            duration_s: started.elapsed().as_secs_f64(),
        }
    }
}

/// How a host ended a play; the gate reads this.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PlayOutcome {
    Passed,
    Failed { task: String, msg: String },
    Unreachable { msg: String },
    NotApplicable { why: String },
    Gated { reason: String },
    NotRun { reason: String },
}

impl PlayOutcome {
    /// Which task ended the host's play, without the cause (told once, on its failed line).
    pub fn brief(&self) -> String {
        match self {
            PlayOutcome::Failed { task, .. } => format!("failed at \"{task}\" (cause above)"),
            PlayOutcome::Unreachable { .. } => "unreachable (cause above)".into(),
            other => other.summary(),
        }
    }

    pub fn summary(&self) -> String {
        match self {
            PlayOutcome::Passed => "passed".into(),
            PlayOutcome::Failed { task, msg } => format!("failed at \"{task}\": {msg}"),
            PlayOutcome::Unreachable { msg } => format!("unreachable: {msg}"),
            PlayOutcome::NotApplicable { why } => format!("not applicable: {why}"),
            PlayOutcome::Gated { reason } => format!("gated: {reason}"),
            PlayOutcome::NotRun { reason } => format!("not run: {reason}"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

impl Stats {
    pub fn add(&mut self, r: &TaskRecord) {
        match r.status {
            Status::Ok => self.ok += 1,
            Status::Changed => {
                self.ok += 1;
                self.changed += 1
            }
            Status::Failed if r.rescued => self.rescued += 1,
            // As Ansible counts an ignored failure: ok, ignored, and changed if it changed.
            Status::Failed if r.ignored => {
                self.ok += 1;
                self.ignored += 1;
                self.changed += u32::from(r.changed);
            }
            Status::Failed => self.failed += 1,
            Status::Skipped => self.skipped += 1,
            // `ignore_unreachable`: as Ansible counts it, ok and ignored.
            Status::Unreachable if r.ignored => {
                self.ok += 1;
                self.ignored += 1;
            }
            Status::Unreachable => self.unreachable += 1,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlayReport {
    pub name: String,
    pub gate: Option<String>,
    pub hosts: Vec<String>,
    pub batches: Vec<Vec<String>>,
    pub outcomes: BTreeMap<String, PlayOutcome>,
    /// Why later batches did not start, if they did not.
    pub stopped: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    pub gafix_version: String,
    pub playbook: String,
    pub check_mode: bool,
    pub started_unix: u64,
    pub duration_s: f64,
    pub interrupted: bool,
    pub plays: Vec<PlayReport>,
    pub stats: IndexMap<String, Stats>,
    /// Commands sent to each host (the facts probe included): SSH round trips, not counting
    /// the connection itself.
    pub round_trips: IndexMap<String, u32>,
    pub tasks: Vec<TaskRecord>,
    pub exit_code: i32,
}

impl RunReport {
    /// An empty report for a run starting now.
    pub fn new(playbook: String, check_mode: bool) -> RunReport {
        RunReport {
            gafix_version: env!("CARGO_PKG_VERSION").to_string(),
            playbook,
            check_mode,
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            duration_s: 0.0,
            interrupted: false,
            plays: Vec::new(),
            stats: IndexMap::new(),
            round_trips: IndexMap::new(),
            tasks: Vec::new(),
            exit_code: 0,
        }
    }

    /// Adds a task's record, counting it in its host's stats.
    pub fn add(&mut self, record: TaskRecord) {
        self.stats.entry(record.host.clone()).or_default().add(&record);
        self.tasks.push(record);
    }

    /// ansible-playbook's exit code: unreachable wins over failed; 99 when interrupted.
    pub fn compute_exit_code(&self) -> i32 {
        if self.interrupted {
            99
        } else if self.stats.values().any(|s| s.unreachable > 0) {
            4
        } else if self.stats.values().any(|s| s.failed > 0) {
            2
        } else {
            0
        }
    }

    /// Hosts that failed or were unreachable, for a retry file.
    pub fn failed_hosts(&self) -> Vec<String> {
        self.stats.iter().filter(|(_, s)| s.failed > 0 || s.unreachable > 0).map(|(h, _)| h.clone()).collect()
    }
}

/// Events as the run goes; reporters print them.
pub enum Event<'a> {
    PlayStart {
        name: &'a str,
        hosts: usize,
        batches: usize,
        check_mode: bool,
    },
    BatchStart {
        index: usize,
        count: usize,
        hosts: &'a [String],
    },
    /// With `strategy: linear`, every host of the batch is about to run this task (the
    /// `TASK [role : name]` header of ansible-playbook's output).
    TaskStart {
        role: Option<&'a str>,
        task: &'a str,
    },
    Task(&'a TaskRecord),
    BatchStopped {
        play: &'a str,
        reason: &'a str,
    },
    /// A host finished the current play.
    HostDone,
    Gated {
        host: &'a str,
        reason: &'a str,
    },
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}
