//! One task in Ansible's syntax, parsed with the location of every part.

use serde_json::Value as Json;

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
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    /// Conditions, all of which must hold (Ansible's list form of `when`).
    pub when: Vec<String>,
    pub register: Option<String>,
    pub tags: Vec<String>,
    pub ignore_errors: bool,
    pub vars: Vars,
    pub changed_when: Vec<String>,
    pub failed_when: Vec<String>,
    pub no_log: bool,
    pub check_mode: Option<bool>,
    /// The role the task came from, if any.
    pub role: Option<String>,
    pub location: Location,
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

const KEYWORDS: &[&str] = &[
    "name",
    "become",
    "become_user",
    "become_method",
    "when",
    "register",
    "tags",
    "ignore_errors",
    "vars",
    "changed_when",
    "failed_when",
    "no_log",
    "check_mode",
    "args",
    "diff",
    "timeout",
];

/// Keywords Ansible has that gafix does not run yet: an explicit error beats a silent skip.
const UNSUPPORTED: &[&str] = &[
    "loop",
    "with_items",
    "with_list",
    "with_dict",
    "loop_control",
    "notify",
    "listen",
    "block",
    "rescue",
    "always",
    "delegate_to",
    "delegate_facts",
    "run_once",
    "until",
    "retries",
    "delay",
    "environment",
    "async",
    "poll",
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "local_action",
    "action",
    "any_errors_fatal",
    "throttle",
    "vars_files",
];

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
        become_: None,
        become_user: None,
        when: Vec::new(),
        register: None,
        tags: Vec::new(),
        ignore_errors: false,
        vars: Vars::new(),
        changed_when: Vec::new(),
        failed_when: Vec::new(),
        no_log: false,
        check_mode: None,
        role: role.map(str::to_string),
        location: node.location.clone(),
    };
    for (key_node, value) in entries {
        let key = key_node.key_string();
        match key.as_str() {
            "name" => task.name = string_value(value, "name", errors),
            "become" => task.become_ = bool_value(value, "become", errors),
            "become_user" => task.become_user = string_value(value, "become_user", errors),
            "become_method" => {
                if value.as_str() != Some("sudo") {
                    errors.push(Diagnostic::new(&value.location, "only 'become_method: sudo' is supported"));
                }
            }
            "when" => task.when = conditions(value, "when", errors),
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
            "tags" => task.tags = string_list(value, "tags", errors),
            "ignore_errors" => task.ignore_errors = bool_value(value, "ignore_errors", errors).unwrap_or(false),
            "no_log" => task.no_log = bool_value(value, "no_log", errors).unwrap_or(false),
            "check_mode" => task.check_mode = bool_value(value, "check_mode", errors),
            "vars" => task.vars = vars_value(value, "vars", errors),
            "args" => extra_args = Some(value),
            "diff" | "timeout" => {}
            _ => {
                if let Some(kind) = ModuleRef::lookup(&key) {
                    if let Some((other, _, _)) = module {
                        errors.push(Diagnostic::new(
                            &key_node.location,
                            format!("conflicting action statements: {} and {key}", other.name()),
                        ));
                    } else {
                        module = Some((kind, key_node, value));
                    }
                } else if UNSUPPORTED.contains(&key.as_str()) {
                    errors.push(Diagnostic::new(
                        &key_node.location,
                        format!("task keyword '{key}' is not supported by gafix yet; supported keywords: {}", KEYWORDS.join(", ")),
                    ));
                } else {
                    errors.push(Diagnostic::new(
                        &key_node.location,
                        format!("unknown module or task keyword '{key}'; supported modules: {}", ModuleRef::supported_list()),
                    ));
                }
            }
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
