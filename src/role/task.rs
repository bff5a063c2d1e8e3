//! One task in Ansible's syntax, parsed with the location of every part.

use serde_json::Value as Json;

use super::keywords::{self, Support};
use crate::diag::Diagnostic;
use crate::module::spec::{self, Args};
use crate::module::ModuleRef;
use crate::vars::Vars;
use crate::yaml::{Location, Node, Value};

#[derive(Clone, Debug)]
pub struct Task {
    pub name: Option<String>,
    pub module: ModuleRef,
    pub args: Args,
    /// The keywords a task shares with its play and role (after planning: inherited too).
    pub kw: Keywords,
    pub register: Option<String>,
    pub vars: Vars,
    pub changed_when: Vec<String>,
    pub failed_when: Vec<String>,
    /// The role the task came from, if any.
    pub role: Option<String>,
    /// Which of the plan's role instances it belongs to (set when the plan is built).
    pub role_instance: Option<usize>,
    pub location: Location,
}

/// Keywords a play, a `roles:` entry and a task all take; an inner value wins, conditions,
/// tags and environments add up (Ansible's inheritance).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Keywords {
    /// Conditions, all of which must hold (Ansible's list form of `when`).
    pub when: Vec<String>,
    pub tags: Vec<String>,
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    pub check_mode: Option<bool>,
    pub diff: Option<bool>,
    pub ignore_errors: Option<bool>,
    pub no_log: Option<bool>,
    /// Seconds the task may run (0: no limit).
    pub timeout: Option<u64>,
    /// `environment:` values, outermost first (templated when the task runs).
    pub environment: Vec<Json>,
}

impl Keywords {
    /// Reads `key` if it is one of these keywords; false if it is not.
    pub fn parse(&mut self, key: &str, value: &Node, errors: &mut Vec<Diagnostic>) -> bool {
        match key {
            "when" => self.when = conditions(value, "when", errors),
            "tags" => self.tags = string_list(value, "tags", errors),
            "become" => self.become_ = bool_value(value, "become", errors),
            "become_user" => self.become_user = string_value(value, "become_user", errors),
            "become_method" => {
                if value.as_str() != Some("sudo") {
                    let what = format!("become_method: {}", value.key_string());
                    errors.push(Diagnostic::new(&value.location, format!("{} (only 'sudo' is)", keywords::not_supported(&what))));
                }
            }
            "check_mode" => self.check_mode = bool_value(value, "check_mode", errors),
            "diff" => self.diff = bool_value(value, "diff", errors),
            "ignore_errors" => self.ignore_errors = bool_value(value, "ignore_errors", errors),
            "no_log" => self.no_log = bool_value(value, "no_log", errors),
            "timeout" => match value.to_json().as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok())) {
                Some(n) if n <= spec::MAX_SECONDS => self.timeout = Some(n),
                _ => errors.push(Diagnostic::new(&value.location, "'timeout' must be a number of seconds from 0 to 315360000")),
            },
            "environment" => match &value.value {
                Value::Map(_) | Value::String(_) | Value::Seq(_) => self.environment = vec![value.to_json()],
                Value::Null => self.environment.clear(),
                _ => errors.push(Diagnostic::new(
                    &value.location,
                    format!("'environment' must be a mapping of variable names to values, found {}", value.type_name()),
                )),
            },
            _ => return false,
        }
        true
    }

    /// These keywords inside `outer` (a play or a role entry).
    pub fn inside(&self, outer: &Keywords) -> Keywords {
        let mut tags = outer.tags.clone();
        tags.extend(self.tags.iter().filter(|t| !outer.tags.contains(t)).cloned());
        Keywords {
            when: outer.when.iter().chain(&self.when).cloned().collect(),
            tags,
            become_: self.become_.or(outer.become_),
            become_user: self.become_user.clone().or_else(|| outer.become_user.clone()),
            check_mode: self.check_mode.or(outer.check_mode),
            diff: self.diff.or(outer.diff),
            ignore_errors: self.ignore_errors.or(outer.ignore_errors),
            no_log: self.no_log.or(outer.no_log),
            timeout: self.timeout.or(outer.timeout),
            environment: outer.environment.iter().chain(&self.environment).cloned().collect(),
        }
    }
}

impl Task {
    /// The name shown in output: the task's name, else the module and its main argument.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let main = ["name", "cmd", "_raw_params", "path", "that"].iter().find_map(|k| self.args.str(k));
        match main {
            Some(m) => format!("{} {m}", self.module.name()),
            None => self.module.name().to_string(),
        }
    }
}

/// A condition value: a string, a boolean, or a list of them.
pub fn conditions(node: &Node, what: &str, errors: &mut Vec<Diagnostic>) -> Vec<String> {
    match &node.value {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![if *b { "True" } else { "False" }.into()],
        Value::Int(i) => vec![i.to_string()],
        Value::Seq(items) => items.iter().flat_map(|i| conditions(i, what, errors)).collect(),
        Value::Null => Vec::new(),
        _ => {
            errors.push(Diagnostic::new(
                &node.location,
                format!("'{what}' must be a condition string, a boolean or a list of them, found {}", node.type_name()),
            ));
            Vec::new()
        }
    }
}

pub fn bool_value(node: &Node, what: &str, errors: &mut Vec<Diagnostic>) -> Option<bool> {
    match node.as_bool() {
        Some(b) => Some(b),
        None => {
            errors.push(Diagnostic::new(
                &node.location,
                format!("'{what}' must be a boolean (true/false, yes/no), found {}", node.type_name()),
            ));
            None
        }
    }
}

pub fn string_value(node: &Node, what: &str, errors: &mut Vec<Diagnostic>) -> Option<String> {
    match &node.value {
        Value::String(s) => Some(s.clone()),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => Some(node.key_string()),
        _ => {
            errors.push(Diagnostic::new(&node.location, format!("'{what}' must be a string, found {}", node.type_name())));
            None
        }
    }
}

pub fn vars_value(node: &Node, what: &str, errors: &mut Vec<Diagnostic>) -> Vars {
    match node.to_json() {
        Json::Object(map) => map,
        Json::Null => Vars::new(),
        _ => {
            errors.push(Diagnostic::new(&node.location, format!("'{what}' must be a mapping, found {}", node.type_name())));
            Vars::new()
        }
    }
}

pub fn string_list(node: &Node, what: &str, errors: &mut Vec<Diagnostic>) -> Vec<String> {
    match &node.value {
        Value::String(s) => s.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
        Value::Seq(items) => items.iter().filter_map(|i| string_value(i, what, errors)).collect(),
        Value::Null => Vec::new(),
        _ => {
            errors.push(Diagnostic::new(&node.location, format!("'{what}' must be a string or a list, found {}", node.type_name())));
            Vec::new()
        }
    }
}

/// Parses one task mapping; problems go to `errors` and the task is dropped.
pub fn parse_task(node: &Node, role: Option<&str>, errors: &mut Vec<Diagnostic>) -> Option<Task> {
    let Some(entries) = node.as_map() else {
        errors.push(Diagnostic::new(&node.location, format!("a task must be a mapping, found {}", node.type_name())));
        return None;
    };
    let before = errors.len();
    let mut module: Option<(ModuleRef, &Node, &Node)> = None;
    let mut extra_args = None;
    let mut task = Task {
        name: None,
        module: ModuleRef::lookup("command").expect("command is registered"),
        args: Args::default(),
        kw: Keywords::default(),
        register: None,
        vars: Vars::new(),
        changed_when: Vec::new(),
        failed_when: Vec::new(),
        role: role.map(str::to_string),
        role_instance: None,
        location: node.location.clone(),
    };
    for (key_node, value) in entries {
        let key = key_node.key_string();
        match keywords::task_keyword(&key) {
            Some(Support::NotYet) => errors.push(Diagnostic::new(&key_node.location, keywords::not_supported(&key))),
            Some(Support::Yes) if task.kw.parse(&key, value, errors) => {}
            Some(Support::Yes) => match key.as_str() {
                "name" => task.name = string_value(value, "name", errors),
                "changed_when" => task.changed_when = conditions(value, "changed_when", errors),
                "failed_when" => task.failed_when = conditions(value, "failed_when", errors),
                "register" => {
                    task.register = string_value(value, "register", errors);
                    if let Some(r) = &task.register {
                        if !r.chars().all(|c| c.is_alphanumeric() || c == '_') || r.starts_with(|c: char| c.is_ascii_digit()) {
                            errors.push(Diagnostic::new(&value.location, format!("'register: {r}' is not a valid variable name")));
                        }
                    }
                }
                "vars" => task.vars = vars_value(value, "vars", errors),
                "args" => extra_args = Some(value),
                other => unreachable!("task keyword '{other}' is in the table but not parsed"),
            },
            None => match ModuleRef::lookup(&key) {
                Some(kind) => match module {
                    Some((other, _, _)) => errors
                        .push(Diagnostic::new(&key_node.location, format!("conflicting action statements: {} and {key}", other.name()))),
                    None => module = Some((kind, key_node, value)),
                },
                None if keywords::is_ansible_module(&key) => {
                    errors.push(Diagnostic::new(&key_node.location, keywords::not_supported(&key)))
                }
                None => {
                    let mut known = ModuleRef::names();
                    known.extend(keywords::supported(keywords::TASK));
                    errors.push(Diagnostic::new(&key_node.location, keywords::unknown("module or task keyword", &key, &known)));
                }
            },
        }
    }
    match module {
        Some((kind, key_node, value)) => {
            task.module = kind;
            let before_args = errors.len();
            task.args = spec::parse_args(kind.spec(), value, extra_args, errors);
            task.location = key_node.location.clone();
            if errors.len() == before_args {
                if let Err(message) = kind.check_static(&task.args) {
                    errors.push(Diagnostic::new(&key_node.location, format!("{}: {message}", kind.name())));
                }
            }
        }
        None if errors.len() == before => {
            errors.push(Diagnostic::new(
                &node.location,
                format!("this task has no module; supported modules: {}", ModuleRef::supported_list()),
            ));
        }
        None => {}
    }
    (errors.len() == before).then_some(task)
}

pub fn parse_tasks(node: Option<&Node>, role: Option<&str>, errors: &mut Vec<Diagnostic>) -> Vec<Task> {
    let Some(node) = node else { return Vec::new() };
    match &node.value {
        Value::Seq(items) => items.iter().filter_map(|t| parse_task(t, role, errors)).collect(),
        Value::Null => Vec::new(),
        _ => {
            errors.push(Diagnostic::new(&node.location, format!("a task list must be a list of tasks, found {}", node.type_name())));
            Vec::new()
        }
    }
}
