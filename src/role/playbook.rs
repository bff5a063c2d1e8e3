//! Playbooks in Ansible's format: a list of plays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::keywords::{self, Support};
use super::task::{self, Keywords, RoleCall, Task};
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

/// A `roles:` entry, or a dependency in a role's `meta/main.yml`.
#[derive(Clone, Debug)]
pub struct RoleRef {
    pub name: String,
    /// Role parameters (`vars:` and any key that is not a keyword).
    pub vars: Vars,
    pub kw: Keywords,
    pub location: Location,
}

/// Ansible's `order`: the order a play takes its hosts in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostOrder {
    #[default]
    Inventory,
    ReverseInventory,
    Sorted,
    ReverseSorted,
    Shuffle,
}

/// Ansible's `strategy`: every host finishes a task before any starts the next (`linear`),
/// or each host goes at its own pace (`free`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    #[default]
    Linear,
    Free,
}

/// A `vars_files` entry: a file, or a list of candidates of which the first found is read.
#[derive(Clone, Debug)]
pub struct VarsFile {
    pub candidates: Vec<String>,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Play {
    pub name: String,
    pub hosts: String,
    /// Keywords the play's tasks inherit (become, tags, environment, ...).
    pub kw: Keywords,
    pub remote_user: Option<String>,
    pub serial: Vec<Serial>,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    /// `force_handlers`: a host that failed still runs the handlers it notified.
    pub force_handlers: bool,
    pub order: HostOrder,
    pub strategy: Strategy,
    pub vars: Vars,
    pub vars_files: Vec<VarsFile>,
    pub roles: Vec<RoleRef>,
    pub pre_tasks: Vec<Task>,
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    /// Validated; they run only when notified (`notify` is not supported yet).
    pub handlers: Vec<Task>,
    pub gather_facts: bool,
    /// gafix extension: hosts must have passed this earlier play to run this one.
    pub gate: Option<String>,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Playbook {
    pub plays: Vec<Play>,
    pub source: String,
    /// The playbook's directory: `vars_files` and roles are found from it.
    pub dir: PathBuf,
}

/// One run of a role in a play: the role and its parameters (its tasks carry the keywords
/// they inherit).
#[derive(Clone, Debug)]
pub struct RoleInstance {
    pub role: Role,
    pub params: Vars,
    /// Its defaults and vars are seen by the play's other tasks (Ansible's default for
    /// `roles:` and `import_role`); an `include_role`'s are its own unless `public: true`.
    pub public: bool,
}

/// A play with its roles loaded and its tasks in run order (pre_tasks, each role after its
/// dependencies, tasks, post_tasks), each with the keywords it inherits.
#[derive(Clone, Debug)]
pub struct ResolvedPlay {
    pub play: Play,
    pub roles: Vec<RoleInstance>,
    /// Every task in run order; a `meta: flush_handlers` ends each section (pre_tasks,
    /// roles and tasks, post_tasks), where Ansible runs the notified handlers.
    pub tasks: Vec<Task>,
    /// The roles' handlers (in role order), then the play's: the order they run in.
    pub handlers: Vec<Task>,
}

impl Playbook {
    pub fn load(path: &Path) -> Result<Playbook, Diagnostics> {
        let (book, errors) = Self::load_collecting(path);
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
        let loaded = yaml::load_file(path);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let book = match loaded {
            Ok(node) => Self::from_node(node.as_ref(), &path.display().to_string(), dir, &mut errors),
            // One problem is one error: a file that does not parse is not also "empty".
            Err(e) => {
                errors.push(Diagnostic::from(&e));
                Playbook { plays: Vec::new(), source: path.display().to_string(), dir }
            }
        };
        (book, errors)
    }

    pub fn parse(text: &str, name: &str) -> Result<Playbook, Diagnostics> {
        let mut errors = Vec::new();
        let node = match yaml::parse_str(text, Path::new(name)) {
            Ok(n) => n,
            Err(e) => return Err(Diagnostics(vec![Diagnostic::from(&e)])),
        };
        let book = Self::from_node(node.as_ref(), name, PathBuf::new(), &mut errors);
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

    fn from_node(node: Option<&Node>, source: &str, dir: PathBuf, errors: &mut Vec<Diagnostic>) -> Playbook {
        let mut plays = Vec::new();
        match node {
            None => errors.push(Diagnostic::new(&Location::synthetic(source), "the playbook is empty")),
            Some(Node { value: Value::Seq(items), .. }) => {
                for item in items {
                    if let Some(play) = parse_play(item, &super::TaskFiles::Dir(dir.clone()), errors) {
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
        Playbook { plays, source: source.into(), dir }
    }

    /// Loads every role the plays name (and their dependencies); reports all problems at once.
    pub fn resolve(&self, roles: &RoleSource) -> Result<Vec<ResolvedPlay>, Vec<RoleError>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let mut cache: HashMap<String, Result<Role, ()>> = HashMap::new();
        for play in &self.plays {
            let mut expansion =
                Expansion { source: roles, cache: &mut cache, errors: &mut errors, roles: Vec::new(), tasks: Vec::new(), seen: Vec::new() };
            let inherit = |tasks: &[Task], kw: &Keywords| tasks.iter().map(|t| t.inherit(kw, None)).collect::<Vec<_>>();
            expansion.tasks = expansion.expand_calls(inherit(&play.pre_tasks, &play.kw), &mut Vec::new());
            let pre_tasks = expansion.tasks.len();
            for r in &play.roles {
                expansion.add(r, &play.kw, &mut Vec::new());
            }
            let main = expansion.expand_calls(inherit(&play.tasks, &play.kw), &mut Vec::new());
            expansion.tasks.extend(main);
            let main_end = expansion.tasks.len();
            let post = expansion.expand_calls(inherit(&play.post_tasks, &play.kw), &mut Vec::new());
            expansion.tasks.extend(post);
            let (instances, mut tasks) = (expansion.roles, expansion.tasks);
            let mut handlers: Vec<Task> = instances
                .iter()
                .enumerate()
                .flat_map(|(i, inst)| inst.role.handlers.iter().map(move |h| h.inherit(&play.kw, Some(i))))
                .collect();
            handlers.extend(inherit(&play.handlers, &play.kw));
            check_notify(&tasks, &handlers, &instances, &mut errors);
            // Where Ansible runs the notified handlers: after each section (only plays that
            // have handlers need the marks).
            if !handlers.is_empty() {
                let flush = || Task { name: Some(task::IMPLICIT_FLUSH.into()), ..task::flush_task(None, &play.location) };
                tasks.push(flush());
                tasks.insert(main_end, flush());
                tasks.insert(pre_tasks, flush());
            }
            out.push(ResolvedPlay { play: play.clone(), roles: instances, tasks, handlers });
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

/// Whether a notification names the handler: by its name, or as `role : name`.
pub fn handler_named(handler: &Task, role: Option<&str>, notified: &str) -> bool {
    let name = handler.name.as_deref();
    name == Some(notified) || role.zip(name).is_some_and(|(r, n)| notified == format!("{r} : {n}"))
}

/// Whether a handler answers a notification: by name (see [`handler_named`]) or by a
/// `listen` topic, as Ansible matches them.
pub fn handler_matches(handler: &Task, role: Option<&str>, notified: &str) -> bool {
    handler_named(handler, role, notified) || handler.listen.iter().any(|l| l == notified)
}

/// Every `notify` names a handler of the play (a templated name is checked when it fires).
fn check_notify(tasks: &[Task], handlers: &[Task], instances: &[RoleInstance], errors: &mut Vec<RoleError>) {
    let role_of = |h: &Task| h.role_instance.map(|i| instances[i].role.name.as_str());
    let mut problems = Vec::new();
    for t in tasks.iter().chain(handlers).flat_map(Task::flattened) {
        for n in t.notify.iter().filter(|n| !n.contains("{{")) {
            if !handlers.iter().any(|h| handler_matches(h, role_of(h), n)) {
                problems.push(Diagnostic::new(
                    &t.location,
                    format!(
                        "notify: no handler is named or listens to '{n}' (handlers: {})",
                        handlers.iter().filter_map(|h| h.name.clone()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    if !problems.is_empty() {
        errors.push(RoleError::Invalid(Diagnostics(problems)));
    }
}

/// Roles expanded into a play's task list.
struct Expansion<'a> {
    source: &'a RoleSource,
    /// Each role loaded once per run (an error is reported once).
    cache: &'a mut HashMap<String, Result<Role, ()>>,
    errors: &'a mut Vec<RoleError>,
    roles: Vec<RoleInstance>,
    tasks: Vec<Task>,
    /// Role identities already run in the play (a dependency runs once per play).
    seen: Vec<(String, String)>,
}

impl Expansion<'_> {
    /// Adds a role after its dependencies; like Ansible, a role runs once per set of
    /// parameters in a play unless it allows duplicates.
    fn add(&mut self, r: &RoleRef, outer: &Keywords, chain: &mut Vec<String>) {
        let tasks = self.instantiate(r, None, outer, chain);
        self.tasks.extend(tasks);
    }

    /// The tasks a role entry (or an `include_role`/`import_role`) runs: its dependencies',
    /// then its own, each inheriting `outer` and the entry's keywords, with role calls among
    /// them expanded. Each run of the role is a new instance (its variables and handlers).
    fn instantiate(&mut self, r: &RoleRef, call: Option<&RoleCall>, outer: &Keywords, chain: &mut Vec<String>) -> Vec<Task> {
        if chain.contains(&r.name) {
            let cycle = chain.iter().chain(std::iter::once(&r.name)).cloned().collect::<Vec<_>>().join(" -> ");
            let d = Diagnostic::new(&r.location, format!("role dependencies form a cycle: {cycle}"));
            self.errors.push(RoleError::Invalid(Diagnostics(vec![d])));
            return Vec::new();
        }
        let loaded =
            self.cache.entry(r.name.clone()).or_insert_with(|| self.source.load(&r.name, &r.location).map_err(|e| self.errors.push(e)));
        let Ok(role) = loaded.clone() else {
            // The role's own problems are reported; its dependencies' are too.
            chain.push(r.name.clone());
            for dep in self.source.dependencies(&r.name) {
                self.instantiate(&dep, None, outer, chain);
            }
            chain.pop();
            return Vec::new();
        };
        let role = match call.map(|c| role.called(c, &r.location)) {
            None => role,
            Some(Ok(called)) => called,
            Some(Err(e)) => {
                self.errors.push(e);
                return Vec::new();
            }
        };
        let kw = r.kw.inside(outer);
        let mut out = Vec::new();
        chain.push(r.name.clone());
        for dep in &role.dependencies {
            out.extend(self.instantiate(dep, None, &kw, chain));
        }
        chain.pop();
        // Ansible's role identity: the role (where it was found), its parameters (in any
        // order), and the entry's own `when` and `tags`.
        let params: std::collections::BTreeMap<&String, &serde_json::Value> = r.vars.iter().collect();
        let key = (
            format!("{}/{}", role.origin, role.name),
            format!("{}|{:?}|{:?}", serde_json::to_string(&params).unwrap_or_default(), r.kw.when, r.kw.tags),
        );
        // A role called by include_role/import_role runs each time it is called.
        if self.seen.contains(&key) && !role.allow_duplicates && call.is_none() {
            return out;
        }
        self.seen.push(key);
        let index = self.roles.len();
        let own: Vec<Task> = role.tasks.iter().map(|t| t.inherit(&kw, Some(index))).collect();
        let public = call.is_none_or(|c| c.is_import || c.public);
        self.roles.push(RoleInstance { role, params: r.vars.clone(), public });
        chain.push(r.name.clone());
        out.extend(self.expand_calls(own, chain));
        chain.pop();
        out
    }

    /// Role calls in a task list: an `import_role` is replaced by its role's tasks (which
    /// take its keywords), an `include_role` gets them to run per host when it runs.
    fn expand_calls(&mut self, tasks: Vec<Task>, chain: &mut Vec<String>) -> Vec<Task> {
        let mut out = Vec::with_capacity(tasks.len());
        for mut t in tasks {
            if let Some(b) = &mut t.block {
                for list in [&mut b.block, &mut b.rescue, &mut b.always] {
                    *list = self.expand_calls(std::mem::take(list), chain);
                }
            }
            let Some(call) = t.include.as_ref().and_then(|i| i.role.clone()) else {
                out.push(t);
                continue;
            };
            let r = RoleRef { name: call.name.clone(), vars: t.vars.clone(), kw: Keywords::default(), location: t.location.clone() };
            if call.is_import {
                out.extend(self.instantiate(&r, Some(&call), &t.kw, chain));
            } else {
                let tasks = self.instantiate(&r, Some(&call), &Keywords::default(), chain);
                if let Some(c) = t.include.as_mut().and_then(|i| i.role.as_mut()) {
                    c.tasks = tasks;
                }
                out.push(t);
            }
        }
        out
    }
}

fn parse_play(node: &Node, files: &super::TaskFiles, errors: &mut Vec<Diagnostic>) -> Option<Play> {
    let Some(entries) = node.as_map() else {
        errors.push(Diagnostic::new(&node.location, format!("a play must be a mapping, found {}", node.type_name())));
        return None;
    };
    let mut play = Play {
        name: String::new(),
        hosts: String::new(),
        kw: Keywords::default(),
        remote_user: None,
        serial: Vec::new(),
        max_fail_percentage: None,
        any_errors_fatal: false,
        force_handlers: false,
        order: HostOrder::default(),
        strategy: Strategy::default(),
        vars: Vars::new(),
        vars_files: Vec::new(),
        roles: Vec::new(),
        pre_tasks: Vec::new(),
        tasks: Vec::new(),
        post_tasks: Vec::new(),
        handlers: Vec::new(),
        gather_facts: true,
        gate: None,
        location: node.location.clone(),
    };
    let mut has_hosts = false;
    for (k, v) in entries {
        let key = k.key_string();
        match keywords::lookup(keywords::PLAY, &key) {
            None => {
                errors.push(Diagnostic::new(&k.location, keywords::unknown("play keyword", &key, &keywords::supported(keywords::PLAY))));
                continue;
            }
            Some(Support::NotYet) => {
                errors.push(Diagnostic::new(&k.location, keywords::not_supported(&key)));
                continue;
            }
            Some(Support::Yes) => {}
        }
        if play.kw.parse(&key, v, errors) {
            continue;
        }
        match key.as_str() {
            "name" => play.name = task::string_value(v, "name", errors).unwrap_or_default(),
            "hosts" => {
                has_hosts = true;
                play.hosts = match &v.value {
                    Value::Seq(items) => items.iter().filter_map(|i| task::string_value(i, "hosts", errors)).collect::<Vec<_>>().join(","),
                    _ => task::string_value(v, "hosts", errors).unwrap_or_default(),
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
            "force_handlers" => play.force_handlers = task::bool_value(v, "force_handlers", errors).unwrap_or(false),
            "order" => match v.as_str() {
                Some("inventory") => play.order = HostOrder::Inventory,
                Some("reverse_inventory") => play.order = HostOrder::ReverseInventory,
                Some("sorted") => play.order = HostOrder::Sorted,
                Some("reverse_sorted") => play.order = HostOrder::ReverseSorted,
                Some("shuffle") => play.order = HostOrder::Shuffle,
                _ => errors.push(Diagnostic::new(
                    &v.location,
                    "'order' must be one of inventory, reverse_inventory, sorted, reverse_sorted, shuffle",
                )),
            },
            "strategy" => match v.as_str() {
                Some("linear") => play.strategy = Strategy::Linear,
                Some("free") => play.strategy = Strategy::Free,
                Some(other) => errors.push(Diagnostic::new(
                    &v.location,
                    format!("{} (linear and free are)", keywords::not_supported(&format!("strategy: {other}"))),
                )),
                None => errors.push(Diagnostic::new(&v.location, "'strategy' must be a name (linear or free)")),
            },
            "vars" => play.vars = task::vars_value(v, "vars", errors),
            "vars_files" => play.vars_files = parse_vars_files(v, errors),
            "roles" => play.roles = parse_roles(v, errors),
            "pre_tasks" => play.pre_tasks = task::parse_tasks(Some(v), None, files, errors),
            "tasks" => play.tasks = task::parse_tasks(Some(v), None, files, errors),
            "post_tasks" => play.post_tasks = task::parse_tasks(Some(v), None, files, errors),
            "handlers" => play.handlers = task::parse_tasks(Some(v), None, files, errors),
            "gather_facts" => play.gather_facts = task::bool_value(v, "gather_facts", errors).unwrap_or(true),
            "gafix_gate" => play.gate = task::string_value(v, "gafix_gate", errors),
            other => unreachable!("play keyword '{other}' is in the table but not parsed"),
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
    has_hosts.then_some(play)
}

fn parse_vars_files(node: &Node, errors: &mut Vec<Diagnostic>) -> Vec<VarsFile> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        _ => vec![node],
    };
    items
        .into_iter()
        .filter_map(|item| {
            let candidates = match &item.value {
                Value::Seq(c) => c.iter().filter_map(|c| task::string_value(c, "vars_files", errors)).collect(),
                _ => task::string_value(item, "vars_files", errors).into_iter().collect::<Vec<_>>(),
            };
            (!candidates.is_empty()).then(|| VarsFile { candidates, location: item.location.clone() })
        })
        .collect()
}

/// A `roles:` list (or a role's `dependencies:`).
pub(super) fn parse_roles(node: &Node, errors: &mut Vec<Diagnostic>) -> Vec<RoleRef> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            errors.push(Diagnostic::new(&node.location, format!("'roles' must be a list, found {}", node.type_name())));
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let mut r = RoleRef { name: String::new(), vars: Vars::new(), kw: Keywords::default(), location: item.location.clone() };
        match &item.value {
            Value::String(name) => r.name = name.clone(),
            Value::Map(entries) => {
                for (k, v) in entries {
                    let key = k.key_string();
                    match keywords::lookup(keywords::ROLE_ENTRY, &key) {
                        Some(Support::NotYet) => errors.push(Diagnostic::new(&k.location, keywords::not_supported(&key))),
                        Some(Support::Yes) if r.kw.parse(&key, v, errors) => {}
                        Some(Support::Yes) => match key.as_str() {
                            "role" | "name" => r.name = task::string_value(v, "role", errors).unwrap_or_default(),
                            "vars" => r.vars.extend(task::vars_value(v, "vars", errors)),
                            other => unreachable!("role keyword '{other}' is in the table but not parsed"),
                        },
                        // Ansible passes other keys as role parameters.
                        None => {
                            r.vars.insert(key, v.to_json());
                        }
                    }
                }
            }
            _ => {
                errors
                    .push(Diagnostic::new(&item.location, format!("a role entry must be a name or a mapping, found {}", item.type_name())));
                continue;
            }
        }
        if r.name.is_empty() {
            errors.push(Diagnostic::new(&item.location, "a role entry needs 'role: NAME'"));
        } else {
            out.push(r);
        }
    }
    out
}
