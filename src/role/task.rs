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
    /// Handlers to notify when the task changes something.
    pub notify: Vec<String>,
    /// A handler's topics: notifying one runs it too.
    pub listen: Vec<String>,
    /// `meta: flush_handlers` (written, or at the end of a play section): runs the handlers
    /// the host notified; the task's module is not run.
    pub flush_handlers: bool,
    /// `meta: end_host`, `end_play` or `clear_facts` (its module is not run).
    pub meta: Option<Meta>,
    /// `loop:` or `with_<lookup>:`, with its `loop_control`.
    pub loop_: Option<Loop>,
    /// `include_tasks`: the tasks of a file chosen when the task runs, per host.
    pub include: Option<Include>,
    /// The keywords around the task (its block, import, role and play), without its own:
    /// what an include's tasks inherit.
    pub outer_kw: Keywords,
    /// `block:` with its `rescue:` and `always:` (this task runs them; its module does not run).
    pub block: Option<Box<Block>>,
    /// `until` conditions, checked after each attempt (with the result under `register`).
    pub until: Vec<String>,
    /// `retries`: attempts after the first (3 when `until` is set and this is not).
    pub retries: Option<Deferred<u64>>,
    /// `delay`: seconds between attempts (5 by default).
    pub delay: Option<Deferred<u64>>,
}

/// A keyword's value that may be a template (`retries: "{{ n }}"`, `ignore_errors: "{{ x }}"`),
/// decided per host when the task runs, as Ansible templates them.
#[derive(Clone, Debug, PartialEq)]
pub enum Deferred<T> {
    Known(T),
    Template(String),
}

impl<T: Copy> Deferred<T> {
    /// The value, rendering a template with the task's variables; `decode` reads the rendered value.
    pub fn decide(
        &self,
        what: &str,
        expected: &str,
        templar: &crate::template::Templar,
        vars: &Vars,
        decode: impl Fn(&Json) -> Option<T>,
    ) -> Result<T, String> {
        match self {
            Deferred::Known(v) => Ok(*v),
            Deferred::Template(t) => {
                let rendered = templar.render(&Json::String(t.clone()), vars).map_err(|e| format!("{what}: {e}"))?;
                decode(&rendered).ok_or_else(|| format!("'{what}' must be {expected}, found {rendered}"))
            }
        }
    }
}

/// A whole number of seconds or attempts (0 to a day), literal or a template.
fn deferred_count(value: &Node, what: &str, errors: &mut Vec<Diagnostic>) -> Option<Deferred<u64>> {
    match value.to_json() {
        Json::String(s) if s.contains("{{") => Some(Deferred::Template(s)),
        v => match count(&v) {
            Some(n) => Some(Deferred::Known(n)),
            None => {
                errors.push(Diagnostic::new(&value.location, format!("'{what}' must be a whole number (0 to 86400), found {v}")));
                None
            }
        },
    }
}

/// A count as `retries` and `delay` take it.
pub fn count(v: &Json) -> Option<u64> {
    let n = match v {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| *n <= 86_400)
}

/// A block's three task lists, each task already carrying the block's keywords and vars.
#[derive(Clone, Debug)]
pub struct Block {
    pub block: Vec<Task>,
    pub rescue: Vec<Task>,
    pub always: Vec<Task>,
}

impl Task {
    /// The task with the keywords around it (a play's, a role entry's), a block's tasks too.
    pub fn inherit(&self, kw: &Keywords, role_instance: Option<usize>) -> Task {
        let mut t = Task {
            kw: self.kw.inside(kw),
            outer_kw: self.outer_kw.inside(kw),
            role_instance: role_instance.or(self.role_instance),
            ..self.clone()
        };
        if let Some(b) = &mut t.block {
            for list in [&mut b.block, &mut b.rescue, &mut b.always] {
                *list = list.iter().map(|i| i.inherit(kw, role_instance)).collect();
            }
        }
        t
    }

    /// The task with variables from around it (an import's, a block's, an include's): its
    /// own win; a block's tasks get them too.
    pub fn with_outer_vars(&self, vars: &Vars) -> Task {
        let mut t = self.clone();
        let mut merged = vars.clone();
        merged.extend(std::mem::take(&mut t.vars));
        t.vars = merged;
        if let Some(b) = &mut t.block {
            for list in [&mut b.block, &mut b.rescue, &mut b.always] {
                *list = list.iter().map(|i| i.with_outer_vars(vars)).collect();
            }
        }
        t
    }

    /// The task and, for a block, every task inside it, and for an `include_role`, the
    /// role's tasks (depth first).
    pub fn flattened(&self) -> Vec<&Task> {
        let mut out = vec![self];
        if let Some(b) = &self.block {
            for t in b.block.iter().chain(&b.rescue).chain(&b.always) {
                out.extend(t.flattened());
            }
        }
        for t in self.include.iter().flat_map(|i| i.role.iter()).flat_map(|c| &c.tasks) {
            out.extend(t.flattened());
        }
        out
    }
}

/// `include_tasks: FILE` (or `{file: FILE, apply: {...}}`): loaded and run per host when the
/// task runs, so that a file for another OS is never read.
#[derive(Clone, Debug, PartialEq)]
pub struct Include {
    /// The file name, maybe a template (`"{{ ansible_os_family }}.yml"`).
    pub file: String,
    /// Keywords for every included task (`apply:`); the include's own apply only to itself.
    pub apply: Keywords,
    /// Where the file is found.
    pub files: super::TaskFiles,
    /// `include_role` / `import_role`: a role's tasks instead of a file's.
    pub role: Option<RoleCall>,
}

/// `include_role` / `import_role`: which role, and which of its files. The role is loaded
/// with the playbook (so `validate` checks it); an import's tasks take the import's place
/// and keywords, an include's run per host when the task runs, as `include_tasks`' do.
#[derive(Clone, Debug)]
pub struct RoleCall {
    pub name: String,
    pub tasks_from: Option<String>,
    pub vars_from: Option<String>,
    pub defaults_from: Option<String>,
    pub handlers_from: Option<String>,
    /// `import_role`: replaced by the role's tasks when the playbook loads.
    pub is_import: bool,
    /// `public: true`: an include's role variables are seen by the play's other tasks.
    pub public: bool,
    /// An include's tasks (its role's dependencies' first), set when the playbook loads.
    pub tasks: Vec<Task>,
}

/// Calls compare by what they name (their loaded tasks follow from it).
impl PartialEq for RoleCall {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.tasks_from, &self.vars_from, &self.defaults_from, &self.handlers_from, self.is_import)
            == (&other.name, &other.tasks_from, &other.vars_from, &other.defaults_from, &other.handlers_from, other.is_import)
    }
}

/// A task's loop: the items (rendered per host when the task runs) and how each is named.
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    /// `None` for `loop:`; the lookup of `with_<lookup>:` (`items`, `dict`...).
    pub lookup: Option<String>,
    /// The items as written: a template or a value.
    pub items: Json,
    pub loop_var: String,
    pub index_var: Option<String>,
    pub label: Option<String>,
    /// Seconds between items.
    pub pause: f64,
    /// `loop_control.extended`: `ansible_loop` with the item's place.
    pub extended: bool,
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
    pub ignore_errors: Option<Deferred<bool>>,
    pub no_log: Option<bool>,
    /// Seconds the task may run (0: no limit).
    pub timeout: Option<u64>,
    /// `environment:` values, outermost first (templated when the task runs).
    pub environment: Vec<Json>,
    /// `run_once`: the first host of the batch runs the task; the others get its result.
    pub run_once: Option<bool>,
    /// `ignore_unreachable`: a host that cannot be reached stays in the play.
    pub ignore_unreachable: Option<bool>,
    /// `delegate_to`: where the task runs instead (only the controller, `localhost`).
    pub delegate_to: Option<String>,
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
            "ignore_errors" => {
                self.ignore_errors = match value.as_str() {
                    Some(t) if t.contains("{{") => Some(Deferred::Template(t.to_string())),
                    _ => bool_value(value, "ignore_errors", errors).map(Deferred::Known),
                }
            }
            "no_log" => self.no_log = bool_value(value, "no_log", errors),
            "run_once" => self.run_once = bool_value(value, "run_once", errors),
            "ignore_unreachable" => self.ignore_unreachable = bool_value(value, "ignore_unreachable", errors),
            "delegate_to" => {
                self.delegate_to = string_value(value, "delegate_to", errors);
                match self.delegate_to.as_deref() {
                    Some("localhost" | "127.0.0.1") => {}
                    Some(t) if t.contains("{{") => {}
                    Some(other) => errors.push(Diagnostic::new(
                        &value.location,
                        format!(
                            "{} (only `delegate_to: localhost`, the controller)",
                            keywords::not_supported(&format!("delegate_to: {other}"))
                        ),
                    )),
                    None => {}
                }
            }
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
            ignore_errors: self.ignore_errors.clone().or_else(|| outer.ignore_errors.clone()),
            no_log: self.no_log.or(outer.no_log),
            timeout: self.timeout.or(outer.timeout),
            run_once: self.run_once.or(outer.run_once),
            ignore_unreachable: self.ignore_unreachable.or(outer.ignore_unreachable),
            delegate_to: self.delegate_to.clone().or_else(|| outer.delegate_to.clone()),
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
pub fn parse_task(node: &Node, role: Option<&str>, files: &super::TaskFiles, errors: &mut Vec<Diagnostic>) -> Option<Task> {
    let Some(entries) = node.as_map() else {
        errors.push(Diagnostic::new(&node.location, format!("a task must be a mapping, found {}", node.type_name())));
        return None;
    };
    let before = errors.len();
    let mut module: Option<(ModuleRef, &Node, &Node)> = None;
    let mut extra_args = None;
    let mut loop_control = None;
    let mut task = Task::blank(ModuleRef::lookup("command").expect("command is registered"), role, &node.location);
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
                "loop" => set_loop(&mut task, None, value, &key_node.location, errors),
                with if with.starts_with("with_") => set_loop(&mut task, Some(&with[5..]), value, &key_node.location, errors),
                "loop_control" => loop_control = Some(value),
                "until" => task.until = conditions(value, "until", errors),
                "retries" => task.retries = deferred_count(value, "retries", errors),
                "delay" => task.delay = deferred_count(value, "delay", errors),
                "block" | "rescue" | "always" => {
                    errors.push(Diagnostic::new(&key_node.location, format!("'{key}' goes with 'block:' on the same entry")))
                }
                "notify" => task.notify = string_list(value, "notify", errors),
                "listen" => task.listen = string_list(value, "listen", errors),
                other => unreachable!("task keyword '{other}' is in the table but not parsed"),
            },
            None if is_role_call(&key).is_some() => match read_role_call(value, is_role_call(&key) == Some(true), files, errors) {
                Some(include) if task.include.is_none() && module.is_none() => task.include = Some(include),
                Some(_) => errors.push(Diagnostic::new(&key_node.location, format!("conflicting action statements: {key} and another"))),
                None => {}
            },
            None if is_include_tasks(&key) => match read_include(value, files, errors) {
                Some(include) if task.include.is_none() && module.is_none() => task.include = Some(include),
                Some(_) => errors.push(Diagnostic::new(&key_node.location, format!("conflicting action statements: {key} and another"))),
                None => {}
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
    if let Some(control) = loop_control {
        // A `with_<lookup>` gafix does not run has been reported already.
        let unsupported_loop = entries.iter().any(|(k, _)| k.key_string().starts_with("with_"));
        match &mut task.loop_ {
            Some(l) => read_loop_control(l, control, errors),
            None if unsupported_loop => {}
            None => errors.push(Diagnostic::new(&control.location, "loop_control needs loop (or with_<lookup>) on the same task")),
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
        None if task.include.is_some() => {
            task.module = ModuleRef::lookup("debug").expect("debug is registered");
            let what = if task.include.as_ref().is_some_and(|i| i.role.is_some()) { "include_role" } else { "include_tasks" };
            if task.register.is_some() || !task.notify.is_empty() || !task.changed_when.is_empty() || !task.failed_when.is_empty() {
                errors.push(Diagnostic::new(&node.location, format!("{what} does not take register, notify, changed_when or failed_when")));
            }
            if task.include.as_ref().and_then(|i| i.role.as_ref()).is_some_and(|r| r.is_import) && task.loop_.is_some() {
                errors.push(Diagnostic::new(&node.location, "import_role cannot loop (a loop needs include_role)"));
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

/// A task list; `import_tasks` entries are replaced by the tasks of their file (found in
/// `files`), each inheriting the import's keywords and vars, as Ansible's static import does.
pub fn parse_tasks(node: Option<&Node>, role: Option<&str>, files: &super::TaskFiles, errors: &mut Vec<Diagnostic>) -> Vec<Task> {
    parse_tasks_at(node, role, files, 0, errors)
}

/// How deep imports may nest (a file that imports itself stops here).
const MAX_IMPORT_DEPTH: usize = 16;

fn parse_tasks_at(
    node: Option<&Node>,
    role: Option<&str>,
    files: &super::TaskFiles,
    depth: usize,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Task> {
    let Some(node) = node else { return Vec::new() };
    match &node.value {
        Value::Seq(items) => {
            let mut tasks = Vec::new();
            for item in items {
                if let Some(key) = block_of(item) {
                    tasks.extend(block_task(item, key, role, files, depth, errors));
                } else if let Some(key) = import_of(item) {
                    tasks.extend(import_tasks(item, key, role, files, depth, errors));
                } else if let Some(key) = meta_of(item) {
                    tasks.extend(meta_task(item, key, role, errors));
                } else {
                    tasks.extend(parse_task(item, role, files, errors));
                }
            }
            tasks
        }
        Value::Null => Vec::new(),
        _ => {
            errors.push(Diagnostic::new(&node.location, format!("a task list must be a list of tasks, found {}", node.type_name())));
            Vec::new()
        }
    }
}

/// The `import_tasks` key of a task entry, if it is an import.
fn import_of(item: &Node) -> Option<&Node> {
    item.as_map()?.iter().map(|(k, _)| k).find(|k| {
        let key = k.key_string();
        let short = key.strip_prefix("ansible.builtin.").or_else(|| key.strip_prefix("ansible.legacy.")).unwrap_or(&key);
        short == "import_tasks"
    })
}

fn set_loop(task: &mut Task, lookup: Option<&str>, value: &Node, at: &Location, errors: &mut Vec<Diagnostic>) {
    if task.loop_.is_some() {
        errors.push(Diagnostic::new(at, "a task takes one loop (loop or one with_<lookup>)"));
        return;
    }
    task.loop_ = Some(Loop {
        lookup: lookup.map(str::to_string),
        items: value.to_json(),
        loop_var: "item".into(),
        index_var: None,
        label: None,
        pause: 0.0,
        extended: false,
    });
}

fn read_loop_control(l: &mut Loop, node: &Node, errors: &mut Vec<Diagnostic>) {
    let Some(entries) = node.as_map() else {
        return errors.push(Diagnostic::new(&node.location, "loop_control must be a mapping"));
    };
    for (k, v) in entries {
        match k.key_string().as_str() {
            "loop_var" => {
                if let Some(name) = string_value(v, "loop_var", errors) {
                    if name.is_empty()
                        || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
                        || name.starts_with(|c: char| c.is_ascii_digit())
                    {
                        errors.push(Diagnostic::new(&v.location, format!("loop_var '{name}' is not a variable name")));
                    }
                    l.loop_var = name;
                }
            }
            "index_var" => l.index_var = string_value(v, "index_var", errors),
            "label" => l.label = Some(crate::vars::text(&v.to_json())),
            "pause" => match v.to_json().as_f64() {
                Some(p) if (0.0..=3600.0).contains(&p) => l.pause = p,
                _ => errors.push(Diagnostic::new(&v.location, "loop_control.pause must be a number of seconds (0 to 3600)")),
            },
            "extended" => l.extended = bool_value(v, "extended", errors).unwrap_or(false),
            other => errors.push(Diagnostic::new(&k.location, keywords::not_supported(&format!("loop_control.{other}")))),
        }
    }
}

/// The `block` key of a task entry, if it is a block.
fn block_of(item: &Node) -> Option<&Node> {
    item.as_map()?.iter().map(|(k, _)| k).find(|k| k.key_string() == "block")
}

/// `block:` / `rescue:` / `always:` with the keywords and vars its tasks inherit.
fn block_task(
    item: &Node,
    key: &Node,
    role: Option<&str>,
    files: &super::TaskFiles,
    depth: usize,
    errors: &mut Vec<Diagnostic>,
) -> Option<Task> {
    let before = errors.len();
    let mut task = Task::blank(ModuleRef::lookup("debug").expect("debug is registered"), role, &key.location);
    let mut kw = Keywords::default();
    let mut vars = Vars::new();
    let (mut block, mut rescue, mut always) = (Vec::new(), Vec::new(), Vec::new());
    for (k, v) in item.as_map().into_iter().flatten() {
        let name = k.key_string();
        match name.as_str() {
            "block" => block = parse_tasks_at(Some(v), role, files, depth + 1, errors),
            "rescue" => rescue = parse_tasks_at(Some(v), role, files, depth + 1, errors),
            "always" => always = parse_tasks_at(Some(v), role, files, depth + 1, errors),
            "name" => task.name = string_value(v, "name", errors),
            "vars" => vars = vars_value(v, "vars", errors),
            _ if keywords::task_keyword(&name) == Some(Support::Yes) && kw.parse(&name, v, errors) => {}
            _ => errors.push(Diagnostic::new(&k.location, format!("'{name}' cannot be used on a block"))),
        }
    }
    if errors.len() > before {
        return None;
    }
    let inherit = |list: Vec<Task>| -> Vec<Task> { list.iter().map(|t| t.inherit(&kw, None).with_outer_vars(&vars)).collect() };
    if task.name.is_none() {
        task.name = Some("block".into());
    }
    task.block = Some(Box::new(Block { block: inherit(block), rescue: inherit(rescue), always: inherit(always) }));
    Some(task)
}

/// `include_tasks` (also `ansible.builtin.`, and the legacy `include`).
fn is_include_tasks(key: &str) -> bool {
    let short = key.strip_prefix("ansible.builtin.").or_else(|| key.strip_prefix("ansible.legacy.")).unwrap_or(key);
    short != "import_tasks" && keywords::TASK_INCLUDES.contains(&short)
}

/// `Some(true)` for `import_role`, `Some(false)` for `include_role` (short or FQCN names).
fn is_role_call(key: &str) -> Option<bool> {
    match key.strip_prefix("ansible.builtin.").or_else(|| key.strip_prefix("ansible.legacy.")).unwrap_or(key) {
        "import_role" => Some(true),
        "include_role" => Some(false),
        _ => None,
    }
}

/// `include_role: {name: R, tasks_from: F, ...}` or `import_role: {...}`.
fn read_role_call(value: &Node, is_import: bool, files: &super::TaskFiles, errors: &mut Vec<Diagnostic>) -> Option<Include> {
    let action = if is_import { "import_role" } else { "include_role" };
    let mut call = RoleCall {
        name: String::new(),
        tasks_from: None,
        vars_from: None,
        defaults_from: None,
        handlers_from: None,
        is_import,
        public: false,
        tasks: Vec::new(),
    };
    let mut apply = Keywords::default();
    let Some(entries) = value.as_map() else {
        errors.push(Diagnostic::new(&value.location, format!("{action} takes a mapping ({action}: {{name: ROLE}})")));
        return None;
    };
    for (k, v) in entries {
        let key = k.key_string();
        match key.as_str() {
            "name" => call.name = string_value(v, "name", errors).unwrap_or_default(),
            "tasks_from" => call.tasks_from = string_value(v, "tasks_from", errors),
            "vars_from" => call.vars_from = string_value(v, "vars_from", errors),
            "defaults_from" => call.defaults_from = string_value(v, "defaults_from", errors),
            "handlers_from" => call.handlers_from = string_value(v, "handlers_from", errors),
            // Role variables stay with the role's tasks; public/allow_duplicates/rolespec_validate
            // change nothing gafix runs.
            "public" => call.public = bool_value(v, "public", errors).unwrap_or(false),
            "allow_duplicates" | "rolespec_validate" => {
                bool_value(v, &key, errors);
            }
            "apply" if !is_import => {
                for (ak, av) in v.as_map().into_iter().flatten() {
                    let name = ak.key_string();
                    if !apply.parse(&name, av, errors) {
                        errors.push(Diagnostic::new(&ak.location, format!("include_role: apply takes task keywords, not '{name}'")));
                    }
                }
            }
            other => errors.push(Diagnostic::new(
                &k.location,
                keywords::unknown(
                    &format!("{action} option"),
                    other,
                    &[
                        "name",
                        "tasks_from",
                        "vars_from",
                        "defaults_from",
                        "handlers_from",
                        "public",
                        "allow_duplicates",
                        "rolespec_validate",
                        "apply",
                    ],
                ),
            )),
        }
    }
    if call.name.is_empty() {
        errors.push(Diagnostic::new(&value.location, format!("{action} needs the role's name ({action}: {{name: ROLE}})")));
        return None;
    }
    let templated =
        [Some(&call.name), call.tasks_from.as_ref(), call.vars_from.as_ref(), call.defaults_from.as_ref(), call.handlers_from.as_ref()]
            .into_iter()
            .flatten()
            .any(|v| v.contains("{{"));
    if templated {
        errors.push(Diagnostic::new(&value.location, keywords::not_supported(&format!("{action} with a templated role or file name"))));
        return None;
    }
    Some(Include { file: call.name.clone(), apply, files: files.clone(), role: Some(call) })
}

/// `include_tasks: FILE` or `{file: FILE, apply: {KEYWORDS}}`.
fn read_include(value: &Node, files: &super::TaskFiles, errors: &mut Vec<Diagnostic>) -> Option<Include> {
    let mut include = Include { file: String::new(), apply: Keywords::default(), files: files.clone(), role: None };
    match value.as_map() {
        Some(entries) => {
            for (k, v) in entries {
                match k.key_string().as_str() {
                    "file" | "_raw_params" => include.file = string_value(v, "file", errors).unwrap_or_default(),
                    "apply" => {
                        for (ak, av) in v.as_map().into_iter().flatten() {
                            let name = ak.key_string();
                            if !include.apply.parse(&name, av, errors) {
                                errors
                                    .push(Diagnostic::new(&ak.location, format!("include_tasks: apply takes task keywords, not '{name}'")));
                            }
                        }
                    }
                    other => errors.push(Diagnostic::new(&k.location, keywords::not_supported(&format!("include_tasks: {other}")))),
                }
            }
        }
        None => include.file = string_value(value, "include_tasks", errors).unwrap_or_default(),
    }
    if include.file.is_empty() {
        errors.push(Diagnostic::new(&value.location, "include_tasks needs a file name (include_tasks: FILE, or {file: FILE})"));
        return None;
    }
    Some(include)
}

/// The `meta` key of a task entry, if it is a `meta` task.
fn meta_of(item: &Node) -> Option<&Node> {
    item.as_map()?
        .iter()
        .map(|(k, _)| k)
        .find(|k| matches!(k.key_string().as_str(), "meta" | "ansible.builtin.meta" | "ansible.legacy.meta"))
}

/// `meta: flush_handlers` (a task that runs the notified handlers), `end_host`, `end_play`,
/// `clear_facts` (with `when`), and `noop` (nothing); the other actions are refused.
fn meta_task(item: &Node, key: &Node, role: Option<&str>, errors: &mut Vec<Diagnostic>) -> Option<Task> {
    let value = item.as_map()?.iter().find(|(k, _)| std::ptr::eq(k, key)).map(|(_, v)| v)?;
    let action = string_value(value, "meta", errors)?;
    for (k, _) in item.as_map().into_iter().flatten() {
        let name = k.key_string();
        if !std::ptr::eq(k, key) && !matches!(name.as_str(), "name" | "tags" | "when") {
            errors.push(Diagnostic::new(&k.location, format!("'{name}' cannot be used with meta: {action}")));
            return None;
        }
        if name == "when" && action == "flush_handlers" {
            // Ansible ignores it (with a warning); silently ignoring is not an option.
            errors.push(Diagnostic::new(&k.location, "meta: flush_handlers does not take 'when' (Ansible ignores it)"));
            return None;
        }
    }
    match action.as_str() {
        "flush_handlers" => {
            let mut task = flush_task(role, &key.location);
            if let Some((_, tags)) = item.as_map().into_iter().flatten().find(|(k, _)| k.key_string() == "tags") {
                task.kw.tags = string_list(tags, "tags", errors);
            }
            Some(task)
        }
        "noop" => None,
        "end_host" | "end_play" | "clear_facts" => {
            let mut task = Task::blank(ModuleRef::lookup("debug").expect("debug is registered"), role, &key.location);
            task.name = Some(format!("meta: {action}"));
            task.meta = Some(match action.as_str() {
                "end_host" => Meta::EndHost,
                "end_play" => Meta::EndPlay,
                _ => Meta::ClearFacts,
            });
            for (k, v) in item.as_map().into_iter().flatten() {
                match k.key_string().as_str() {
                    "tags" => task.kw.tags = string_list(v, "tags", errors),
                    "when" => task.kw.when = conditions(v, "when", errors),
                    "name" => task.name = string_value(v, "name", errors),
                    _ => {}
                }
            }
            Some(task)
        }
        other => {
            errors.push(Diagnostic::new(&value.location, keywords::not_supported(&format!("meta: {other}"))));
            None
        }
    }
}

/// The `meta` actions besides `flush_handlers` and `noop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    /// The host is done with the play (not failed).
    EndHost,
    /// Every host of the batch is done with the play.
    EndPlay,
    /// The host's gathered facts are forgotten (undefined until gathered again).
    ClearFacts,
}

/// The name of the flushes put at the end of each play section (never filtered by tags).
pub const IMPLICIT_FLUSH: &str = "meta: flush_handlers (end of section)";

/// A `meta: flush_handlers` task (also put at the end of each play section).
pub fn flush_task(role: Option<&str>, location: &Location) -> Task {
    // The module is never run: the engine runs the handlers instead.
    let mut task = Task::blank(ModuleRef::lookup("debug").expect("debug is registered"), role, location);
    task.name = Some("meta: flush_handlers".into());
    task.kw.tags = vec!["always".into()];
    task.flush_handlers = true;
    task
}

impl Task {
    /// A task of `module` with no arguments and no keywords, written at `location`.
    fn blank(module: ModuleRef, role: Option<&str>, location: &Location) -> Task {
        Task {
            name: None,
            module,
            args: Args::default(),
            kw: Keywords::default(),
            register: None,
            vars: Vars::new(),
            changed_when: Vec::new(),
            failed_when: Vec::new(),
            role: role.map(str::to_string),
            role_instance: None,
            location: location.clone(),
            notify: Vec::new(),
            listen: Vec::new(),
            flush_handlers: false,
            meta: None,
            loop_: None,
            include: None,
            outer_kw: Keywords::default(),
            block: None,
            until: Vec::new(),
            retries: None,
            delay: None,
        }
    }
}

/// `import_tasks: FILE` (or `{file: FILE}`) with keywords: the file's tasks, inheriting them.
fn import_tasks(
    item: &Node,
    key: &Node,
    role: Option<&str>,
    files: &super::TaskFiles,
    depth: usize,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Task> {
    let before = errors.len();
    let mut kw = Keywords::default();
    let mut vars = Vars::new();
    let mut file = None;
    for (k, value) in item.as_map().into_iter().flatten() {
        let name = k.key_string();
        if std::ptr::eq(k, key) {
            file = match &value.value {
                Value::Map(_) => value
                    .as_map()
                    .into_iter()
                    .flatten()
                    .find(|(f, _)| f.key_string() == "file")
                    .and_then(|(_, v)| string_value(v, "file", errors)),
                _ => string_value(value, "import_tasks", errors),
            };
            if file.is_none() {
                errors.push(Diagnostic::new(
                    &value.location,
                    "import_tasks needs a file name (import_tasks: FILE, or import_tasks: {file: FILE})",
                ));
            }
            continue;
        }
        match (name.as_str(), keywords::task_keyword(&name)) {
            ("name", _) => {}
            ("vars", _) => vars = vars_value(value, "vars", errors),
            (_, Some(Support::Yes)) if kw.parse(&name, value, errors) => {}
            _ => errors.push(Diagnostic::new(
                &k.location,
                format!("'{name}' cannot be used with import_tasks (its keywords apply to every imported task)"),
            )),
        }
    }
    let Some(file) = file else { return Vec::new() };
    if file.contains("{{") || file.contains("{%") {
        errors.push(Diagnostic::new(
            &key.location,
            format!("import_tasks: '{file}' is a template; a file chosen per host needs include_tasks"),
        ));
    }
    if depth >= MAX_IMPORT_DEPTH {
        errors.push(Diagnostic::new(
            &key.location,
            format!("import_tasks: '{file}' nests more than {MAX_IMPORT_DEPTH} imports deep (does it import itself?)"),
        ));
    }
    if errors.len() > before {
        return Vec::new();
    }
    let Some(node) = files.load(&file, &key.location, errors) else { return Vec::new() };
    let tasks = parse_tasks_at(Some(&node), role, files, depth + 1, errors);
    tasks.iter().map(|t| t.inherit(&kw, None).with_outer_vars(&vars)).collect()
}
