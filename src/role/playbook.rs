//! Playbooks in Ansible's format: a list of plays.

use std::path::Path;

use super::task::{self, Task};
use super::{Role, RoleError, RoleSource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::vars::Vars;
use crate::yaml::{self, Location, Node, Value};

/// One step of `serial`: a host count or a percentage of the play's hosts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Serial {
    Count(u64),
    Percent(f64),
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Serial::Count(n) => write!(f, "{n}"),
            Serial::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serial {
    pub fn parse(v: &serde_json::Value) -> Result<Serial, String> {
        let bad = || format!("serial must be a positive number or a percentage like \"25%\", found {v}");
        match v {
            serde_json::Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(Serial::Count).ok_or_else(bad),
            serde_json::Value::String(s) => {
                let s = s.trim();
                if let Some(p) = s.strip_suffix('%') {
                    p.trim().parse::<f64>().ok().filter(|p| *p > 0.0 && *p <= 100.0).map(Serial::Percent).ok_or_else(bad)
                } else {
                    s.parse::<u64>().ok().filter(|n| *n > 0).map(Serial::Count).ok_or_else(bad)
                }
            }
            _ => Err(bad()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RoleRef {
    pub name: String,
    pub vars: Vars,
    pub when: Vec<String>,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Play {
    pub name: String,
    pub hosts: String,
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    pub remote_user: Option<String>,
    pub serial: Vec<Serial>,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    pub vars: Vars,
    pub roles: Vec<RoleRef>,
    pub pre_tasks: Vec<Task>,
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    pub gather_facts: bool,
    /// gafix extension: hosts must have passed this earlier play to run this one.
    pub gate: Option<String>,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Playbook {
    pub plays: Vec<Play>,
    pub source: String,
}

/// A play with its roles loaded.
#[derive(Clone, Debug)]
pub struct ResolvedPlay {
    pub play: Play,
    pub roles: Vec<Role>,
}

const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "become",
    "become_user",
    "become_method",
    "remote_user",
    "serial",
    "max_fail_percentage",
    "any_errors_fatal",
    "vars",
    "roles",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "gather_facts",
    "gafix_gate",
    "tags",
    "order",
    "strategy",
];
const UNSUPPORTED_PLAY_KEYS: &[&str] =
    &["handlers", "vars_files", "vars_prompt", "environment", "import_playbook", "include_playbook", "connection", "collections"];

impl Playbook {
    pub fn load(path: &Path) -> Result<Playbook, Diagnostics> {
        let mut errors = Vec::new();
        let node = super::load_yaml(path, &mut errors);
        let book = Self::from_node(node.as_ref(), &path.display().to_string(), &mut errors);
        if errors.is_empty() {
            Ok(book)
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// Loads what can be loaded and every problem found: `validate` reports role problems
    /// too, even when a play has errors of its own.
    pub fn load_collecting(path: &Path) -> (Playbook, Vec<Diagnostic>) {
        let mut errors = Vec::new();
        let node = super::load_yaml(path, &mut errors);
        let book = Self::from_node(node.as_ref(), &path.display().to_string(), &mut errors);
        (book, errors)
    }

    pub fn parse(text: &str, name: &str) -> Result<Playbook, Diagnostics> {
        let mut errors = Vec::new();
        let node = match yaml::parse_str(text, Path::new(name)) {
            Ok(n) => n,
            Err(e) => return Err(Diagnostics(vec![Diagnostic::from(&e)])),
        };
        let book = Self::from_node(node.as_ref(), name, &mut errors);
        if errors.is_empty() {
            Ok(book)
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// The built-in plan: qemu_ga_fix, then patch_reboot gated on it.
    pub fn default_plan() -> Playbook {
        let (name, text) = super::DEFAULT_PLAN;
        Self::parse(text, &format!("<embedded>/{name}")).expect("the embedded default plan parses")
    }

    fn from_node(node: Option<&Node>, source: &str, errors: &mut Vec<Diagnostic>) -> Playbook {
        let mut plays = Vec::new();
        match node {
            None => errors.push(Diagnostic::new(&Location::synthetic(source), "the playbook is empty")),
            Some(Node { value: Value::Seq(items), .. }) => {
                for item in items {
                    if let Some(play) = parse_play(item, errors) {
                        plays.push(play);
                    }
                }
            }
            Some(n) => errors.push(Diagnostic::new(&n.location, format!("a playbook must be a list of plays, found {}", n.type_name()))),
        }
        // Gates must name an earlier play.
        for (i, play) in plays.iter().enumerate() {
            if let Some(gate) = &play.gate {
                if !plays[..i].iter().any(|p| &p.name == gate) {
                    errors.push(Diagnostic::new(&play.location, format!("gafix_gate '{gate}' does not name an earlier play")));
                }
            }
        }
        Playbook { plays, source: source.into() }
    }

    /// Loads every role the plays name; reports all problems at once.
    pub fn resolve(&self, roles: &RoleSource) -> Result<Vec<ResolvedPlay>, Vec<RoleError>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for play in &self.plays {
            let mut loaded = Vec::new();
            for r in &play.roles {
                match roles.load(&r.name, &r.location) {
                    Ok(mut role) => {
                        // Role-level `when` applies to each of its tasks, as in Ansible.
                        for t in &mut role.tasks {
                            let mut when = r.when.clone();
                            when.append(&mut t.when);
                            t.when = when;
                        }
                        loaded.push(role)
                    }
                    Err(e) => errors.push(e),
                }
            }
            out.push(ResolvedPlay { play: play.clone(), roles: loaded });
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

fn parse_play(node: &Node, errors: &mut Vec<Diagnostic>) -> Option<Play> {
    let Some(entries) = node.as_map() else {
        errors.push(Diagnostic::new(&node.location, format!("a play must be a mapping, found {}", node.type_name())));
        return None;
    };
    let before = errors.len();
    let mut play = Play {
        name: String::new(),
        hosts: String::new(),
        become_: None,
        become_user: None,
        remote_user: None,
        serial: Vec::new(),
        max_fail_percentage: None,
        any_errors_fatal: false,
        vars: Vars::new(),
        roles: Vec::new(),
        pre_tasks: Vec::new(),
        tasks: Vec::new(),
        post_tasks: Vec::new(),
        gather_facts: true,
        gate: None,
        location: node.location.clone(),
    };
    let mut has_hosts = false;
    for (k, v) in entries {
        let key = k.key_string();
        match key.as_str() {
            "name" => play.name = task::string_value(v, "name", errors).unwrap_or_default(),
            "hosts" => {
                has_hosts = true;
                play.hosts = match &v.value {
                    Value::Seq(items) => items.iter().filter_map(|i| task::string_value(i, "hosts", errors)).collect::<Vec<_>>().join(","),
                    _ => task::string_value(v, "hosts", errors).unwrap_or_default(),
                }
            }
            "become" => play.become_ = task::bool_value(v, "become", errors),
            "become_user" => play.become_user = task::string_value(v, "become_user", errors),
            "become_method" => {
                if v.as_str() != Some("sudo") {
                    errors.push(Diagnostic::new(&v.location, "only 'become_method: sudo' is supported"));
                }
            }
            "remote_user" => play.remote_user = task::string_value(v, "remote_user", errors),
            "serial" => {
                let items: Vec<serde_json::Value> = match v.to_json() {
                    serde_json::Value::Array(a) => a,
                    other => vec![other],
                };
                for item in items {
                    match Serial::parse(&item) {
                        Ok(s) => play.serial.push(s),
                        Err(m) => errors.push(Diagnostic::new(&v.location, m)),
                    }
                }
            }
            "max_fail_percentage" => match v.to_json().as_f64().or_else(|| v.as_str().and_then(|s| s.trim_end_matches('%').parse().ok())) {
                Some(p) if (0.0..=100.0).contains(&p) => play.max_fail_percentage = Some(p),
                _ => errors.push(Diagnostic::new(&v.location, "max_fail_percentage must be a number from 0 to 100")),
            },
            "any_errors_fatal" => play.any_errors_fatal = task::bool_value(v, "any_errors_fatal", errors).unwrap_or(false),
            "vars" => play.vars = task::vars_value(v, "vars", errors),
            "roles" => play.roles = parse_roles(v, errors),
            "pre_tasks" => play.pre_tasks = task::parse_tasks(Some(v), None, errors),
            "tasks" => play.tasks = task::parse_tasks(Some(v), None, errors),
            "post_tasks" => play.post_tasks = task::parse_tasks(Some(v), None, errors),
            "gather_facts" => play.gather_facts = task::bool_value(v, "gather_facts", errors).unwrap_or(true),
            "gafix_gate" => play.gate = task::string_value(v, "gafix_gate", errors),
            "tags" | "order" | "strategy" => {}
            other if UNSUPPORTED_PLAY_KEYS.contains(&other) => errors.push(Diagnostic::new(
                &k.location,
                format!("play keyword '{other}' is not supported by gafix yet; supported: {}", PLAY_KEYS.join(", ")),
            )),
            other => {
                errors.push(Diagnostic::new(&k.location, format!("unknown play keyword '{other}'; supported: {}", PLAY_KEYS.join(", "))))
            }
        }
    }
    if !has_hosts {
        errors.push(Diagnostic::new(&node.location, "a play needs 'hosts' (a host pattern such as 'all')"));
    }
    if play.name.is_empty() {
        play.name = play.hosts.clone();
    }
    // A play whose tasks had errors is still returned (its errors are recorded), so that its
    // roles can be checked too; a play without hosts is not a play.
    let _ = before;
    has_hosts.then_some(play)
}

fn parse_roles(node: &Node, errors: &mut Vec<Diagnostic>) -> Vec<RoleRef> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            errors.push(Diagnostic::new(&node.location, format!("'roles' must be a list, found {}", node.type_name())));
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match &item.value {
            Value::String(name) => {
                out.push(RoleRef { name: name.clone(), vars: Vars::new(), when: Vec::new(), location: item.location.clone() })
            }
            Value::Map(entries) => {
                let mut r = RoleRef { name: String::new(), vars: Vars::new(), when: Vec::new(), location: item.location.clone() };
                for (k, v) in entries {
                    match k.key_string().as_str() {
                        "role" | "name" => r.name = task::string_value(v, "role", errors).unwrap_or_default(),
                        "when" => r.when = task::conditions(v, "when", errors),
                        "vars" => r.vars.extend(task::vars_value(v, "vars", errors)),
                        "tags" | "become" => {}
                        other => {
                            // Ansible passes other keys as role parameters.
                            r.vars.insert(other.to_string(), v.to_json());
                        }
                    }
                }
                if r.name.is_empty() {
                    errors.push(Diagnostic::new(&item.location, "a role entry needs 'role: NAME'"));
                } else {
                    out.push(r);
                }
            }
            _ => errors
                .push(Diagnostic::new(&item.location, format!("a role entry must be a name or a mapping, found {}", item.type_name()))),
        }
    }
    out
}
