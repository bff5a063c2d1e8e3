//! Ansible-style YAML inventories: groups nested to any depth, host ranges, `group_vars/` and
//! `host_vars/` beside the file, and Ansible's variable precedence.

mod ini;
pub mod output;
pub mod pattern;
mod proxmox;
mod pyliteral;
pub mod range;
mod script;
mod sources;
mod vars_files;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::diag::{Diagnostic, Diagnostics};
use crate::yaml::{self, Location, Node, Value};

pub use pattern::{select, PatternError};

pub use crate::vars::Vars;

/// Variable names whose values are secrets: never printed, never reported.
pub const SECRET_VARS: &[&str] = &[
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_sudo_pass",
    "proxmox_token_secret",
    "proxmox_password",
];
pub const MASK: &str = "********";

#[derive(Debug, Clone)]
pub struct Host {
    /// Variables from the inventory file.
    pub vars: Vars,
    /// Variables from `host_vars/NAME*`.
    pub file_vars: Vars,
    /// Variables from `host_vars/NAME*` beside the playbook (above the inventory's).
    pub playbook_vars: Vars,
    /// Groups that list this host directly, in the order they did.
    pub groups: Vec<String>,
    pub location: Location,
    /// Where each of its variables is set (a `host_vars/` file over the inventory file).
    pub var_locations: HashMap<String, Location>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub vars: Vars,
    pub file_vars: Vars,
    /// `group_vars/` beside the playbook (above the inventory's).
    pub playbook_vars: Vars,
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    pub parents: Vec<String>,
    /// `ansible_group_priority` from the inventory file: an attribute, not a variable.
    pub priority: i64,
    /// Where each of its variables is set (a `group_vars/` file over the inventory file).
    pub var_locations: HashMap<String, Location>,
}

impl Group {
    pub(crate) fn new(name: &str) -> Self {
        Group {
            name: name.into(),
            vars: Vars::new(),
            file_vars: Vars::new(),
            playbook_vars: Vars::new(),
            hosts: Vec::new(),
            children: Vec::new(),
            parents: Vec::new(),
            priority: 1,
            var_locations: HashMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Yaml(#[from] yaml::YamlError),
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("{}: inventory not found", .0.display())]
    NotFound(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub hosts: IndexMap<String, Host>,
    pub groups: IndexMap<String, Group>,
    /// Things Ansible would warn about (unknown keys), with their place.
    pub warnings: Vec<Diagnostic>,
    pub source: Option<PathBuf>,
}

impl Inventory {
    pub(crate) fn empty() -> Self {
        let mut inv = Inventory::default();
        inv.groups.insert("all".into(), Group::new("all"));
        inv.groups.insert("ungrouped".into(), Group::new("ungrouped"));
        inv.add_child("all", "ungrouped");
        inv
    }

    /// Loads an inventory from one source (see [`Inventory::load_all`]).
    #[cfg(test)]
    pub fn load(source: &str) -> Result<Inventory, InventoryError> {
        Self::load_all(&[source.to_string()])
    }

    /// Loads an inventory from several sources, merged in order as Ansible merges them: each
    /// a YAML, INI or JSON file (recognised by content and extension, as Ansible does), an
    /// executable inventory script, a directory of such files, or a comma-separated host
    /// list (`a,b,`); then each source's `group_vars/` and `host_vars/`.
    pub fn load_all(sources: &[String]) -> Result<Inventory, InventoryError> {
        let mut inv = Self::empty();
        let mut errors = Vec::new();
        let mut vars_dirs: Vec<PathBuf> = Vec::new();
        for source in sources {
            let path = Path::new(source);
            if !path.exists() && source.contains(',') {
                inv.add_host_list(source);
                continue;
            }
            if !path.exists() {
                return Err(InventoryError::NotFound(path.to_path_buf()));
            }
            sources::add(&mut inv, path, true, &mut errors);
            let dir = if path.is_dir() { path.to_path_buf() } else { path.parent().unwrap_or(Path::new(".")).to_path_buf() };
            let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
            if !vars_dirs.contains(&dir) {
                vars_dirs.push(dir);
            }
            if inv.source.is_none() {
                inv.source = Some(path.to_path_buf());
            }
        }
        if !errors.is_empty() {
            return Err(InventoryError::Invalid(Diagnostics(errors)));
        }
        inv.reconcile();
        for dir in &vars_dirs {
            vars_files::load_adjacent(&mut inv, dir, vars_files::Beside::Inventory)?;
        }
        Ok(inv)
    }

    fn add_host_list(&mut self, list: &str) {
        let location = Location::synthetic("<host list>");
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, port) = range::split_port(name).unwrap_or((name, None));
            self.add_host(name, "ungrouped", port, &location);
        }
    }

    #[cfg(test)]
    pub fn from_host_list(list: &str) -> Inventory {
        let mut inv = Self::empty();
        inv.add_host_list(list);
        inv.reconcile();
        inv
    }

    /// Builds an inventory from a parsed YAML document, as Ansible's `yaml` inventory plugin does.
    #[cfg(test)]
    pub fn from_yaml(root: Option<&Node>, path: &Path) -> Result<Inventory, InventoryError> {
        let mut inv = Self::empty();
        let mut errors = Vec::new();
        inv.add_yaml(root, &mut errors);
        if !errors.is_empty() {
            return Err(InventoryError::Invalid(Diagnostics(errors)));
        }
        let _ = path;
        inv.reconcile();
        Ok(inv)
    }

    /// Adds a YAML inventory document's groups and hosts.
    fn add_yaml(&mut self, root: Option<&Node>, errors: &mut Vec<Diagnostic>) {
        let inv = self;
        match root {
            None => {}
            Some(Node { value: Value::Map(entries), .. }) => {
                for (key, data) in entries {
                    inv.parse_group(key, data, errors);
                }
            }
            Some(node) => errors.push(Diagnostic::new(
                &node.location,
                format!("an inventory must be a mapping of groups (usually starting with 'all:'), found {}", node.type_name()),
            )),
        }
    }

    fn parse_group(&mut self, key: &Node, data: &Node, errors: &mut Vec<Diagnostic>) -> Option<String> {
        let name = key.key_string();
        if !matches!(data.value, Value::Map(_) | Value::Null) {
            self.warnings.push(Diagnostic::new(
                &key.location,
                format!("skipping '{name}': a group definition must be a mapping, found {}", data.type_name()),
            ));
            return None;
        }
        if name.is_empty() {
            errors.push(Diagnostic::new(&key.location, "a group needs a name"));
            return None;
        }
        if let Some(message) = group_name_warning(&name) {
            self.warnings.push(Diagnostic::new(&key.location, message));
        }
        if !self.groups.contains_key(&name) {
            self.groups.insert(name.clone(), Group::new(&name));
        }
        let Some(entries) = data.as_map() else {
            return Some(name);
        };
        for (section_key, section) in entries {
            let section_name = section_key.key_string();
            if !matches!(section_name.as_str(), "vars" | "children" | "hosts") {
                self.warnings.push(Diagnostic::new(
                    &section_key.location,
                    format!("skipping unexpected key '{section_name}' in group '{name}': only 'vars', 'children' and 'hosts' are valid"),
                ));
                continue;
            }
            // Ansible accepts a bare string as a one-entry mapping.
            let owned;
            let section = match &section.value {
                Value::String(s) => {
                    owned = Node {
                        value: Value::Map(vec![(
                            Node { value: Value::String(s.clone()), location: section.location.clone() },
                            Node { value: Value::Null, location: section.location.clone() },
                        )]),
                        location: section.location.clone(),
                    };
                    &owned
                }
                _ => section,
            };
            let Some(items) = section.as_map() else {
                if !section.is_null() {
                    errors.push(Diagnostic::new(
                        &section.location,
                        format!("'{section_name}' of group '{name}' must be a mapping, found {}", section.type_name()),
                    ));
                }
                continue;
            };
            match section_name.as_str() {
                "vars" => {
                    let group = self.groups.get_mut(&name).expect("group exists");
                    for (k, v) in items {
                        if k.as_str() == Some("ansible_group_priority") {
                            match v.to_json().as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
                                Some(p) => group.priority = p,
                                None => errors.push(Diagnostic::new(&v.location, "ansible_group_priority must be an integer")),
                            }
                            continue;
                        }
                        group.vars.insert(k.key_string(), v.to_json());
                        group.var_locations.insert(k.key_string(), k.location.clone());
                    }
                }
                "children" => {
                    for (child_key, child_data) in items {
                        if let Some(child) = self.parse_group(child_key, child_data, errors) {
                            if child == "all" {
                                errors.push(Diagnostic::new(&child_key.location, "'all' cannot be a child of another group"));
                            } else if self.is_ancestor(&child, &name) || child == name {
                                errors.push(Diagnostic::new(
                                    &child_key.location,
                                    format!("adding '{child}' as a child of '{name}' would make a loop"),
                                ));
                            } else {
                                self.add_child(&name, &child);
                            }
                        }
                    }
                }
                "hosts" => {
                    for (host_key, host_vars) in items {
                        self.parse_host(&name, host_key, host_vars, errors);
                    }
                }
                _ => unreachable!(),
            }
        }
        Some(name)
    }

    fn parse_host(&mut self, group: &str, key: &Node, vars: &Node, errors: &mut Vec<Diagnostic>) {
        let pattern = key.key_string();
        let expanded = range::split_port(&pattern).and_then(|(base, port)| Ok((range::expand(base)?, port)));
        let (names, port) = match expanded {
            Ok(v) => v,
            Err(e) => {
                errors.push(Diagnostic::new(&key.location, format!("host '{pattern}': {e}")));
                return;
            }
        };
        let host_vars = match &vars.value {
            Value::Map(_) => vars.to_json(),
            Value::Null => Json::Object(Vars::new()),
            _ => {
                errors.push(Diagnostic::new(
                    &vars.location,
                    format!("variables of host '{pattern}' must be a mapping, found {}", vars.type_name()),
                ));
                return;
            }
        };
        for name in names {
            self.add_host(&name, group, port, &key.location);
            if let Json::Object(map) = &host_vars {
                let host = self.hosts.get_mut(&name).expect("just added");
                for (k, v) in map {
                    host.vars.insert(k.clone(), v.clone());
                }
                for (k, _) in vars.as_map().unwrap_or_default() {
                    host.var_locations.insert(k.key_string(), k.location.clone());
                }
            }
        }
    }

    fn add_host(&mut self, name: &str, group: &str, port: Option<u16>, location: &Location) {
        let host = self.hosts.entry(name.to_string()).or_insert_with(|| Host {
            vars: Vars::new(),
            file_vars: Vars::new(),
            playbook_vars: Vars::new(),
            groups: Vec::new(),
            location: location.clone(),
            var_locations: HashMap::new(),
        });
        if let Some(port) = port {
            host.vars.insert("ansible_port".into(), Json::from(port));
        }
        // A host is in few groups, so its own list is scanned; a group may hold 100,000
        // hosts, but a host joins it only when it was not already in it (the host's list
        // says so), which keeps loading linear.
        if !host.groups.iter().any(|g| g == group) {
            host.groups.push(group.into());
            self.groups.get_mut(group).expect("group exists").hosts.push(name.into());
        }
    }

    fn add_child(&mut self, parent: &str, child: &str) {
        let p = self.groups.get_mut(parent).expect("parent exists");
        if !p.children.iter().any(|c| c == child) {
            p.children.push(child.into());
        }
        let c = self.groups.get_mut(child).expect("child exists");
        if !c.parents.iter().any(|x| x == parent) {
            c.parents.push(parent.into());
        }
    }

    fn is_ancestor(&self, candidate: &str, of: &str) -> bool {
        self.ancestors(of).iter().any(|a| a == candidate)
    }

    /// Every group above `group`, nearest first.
    pub fn ancestors(&self, group: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut queue: VecDeque<String> = self.groups.get(group).map(|g| g.parents.iter().cloned().collect()).unwrap_or_default();
        while let Some(g) = queue.pop_front() {
            if seen.contains(&g) {
                continue;
            }
            if let Some(group) = self.groups.get(&g) {
                queue.extend(group.parents.iter().cloned());
            }
            seen.push(g);
        }
        seen
    }

    /// Ansible's `reconcile_inventory`: top groups hang under `all`, group-less hosts go to `ungrouped`.
    pub(crate) fn reconcile(&mut self) {
        let orphans: Vec<String> =
            self.groups.values().filter(|g| g.name != "all" && g.parents.is_empty()).map(|g| g.name.clone()).collect();
        for g in orphans {
            self.add_child("all", &g);
        }
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        let mut leave_ungrouped = HashSet::new();
        for name in names {
            let groups = &self.hosts[&name].groups;
            let real = groups.iter().any(|g| g != "all" && g != "ungrouped");
            if !real {
                self.add_host(&name, "ungrouped", None, &self.hosts[&name].location.clone());
            } else if groups.iter().any(|g| g == "ungrouped") {
                self.hosts.get_mut(&name).unwrap().groups.retain(|g| g != "ungrouped");
                leave_ungrouped.insert(name);
            }
        }
        if !leave_ungrouped.is_empty() {
            self.groups.get_mut("ungrouped").unwrap().hosts.retain(|h| !leave_ungrouped.contains(h));
        }
    }

    /// Every group a host belongs to, directly or through a parent (includes `all`).
    pub fn groups_of(&self, host: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for g in self.hosts.get(host).map(|h| h.groups.as_slice()).unwrap_or_default() {
            if !out.contains(g) {
                out.push(g.clone());
            }
            for a in self.ancestors(g) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        if !out.iter().any(|g| g == "all") {
            out.push("all".into());
        }
        out
    }

    /// A group's depth: the longest path from `all`.
    pub fn depths(&self) -> HashMap<String, usize> {
        let mut depth: HashMap<String, usize> = HashMap::new();
        let mut queue = VecDeque::from([("all".to_string(), 0usize)]);
        while let Some((g, d)) = queue.pop_front() {
            if depth.get(&g).is_some_and(|old| *old >= d) {
                continue;
            }
            depth.insert(g.clone(), d);
            for c in &self.groups[&g].children {
                queue.push_back((c.clone(), d + 1));
            }
        }
        depth
    }

    /// Groups ordered as Ansible merges their variables: by depth, `ansible_group_priority`, name.
    pub fn sort_groups(&self, groups: &[String]) -> Vec<String> {
        let depth = self.depths();
        let priority = |g: &str| -> i64 { self.groups[g].priority };
        let mut sorted = groups.to_vec();
        sorted.sort_by(|a, b| {
            (depth.get(a).copied().unwrap_or(0), priority(a), a).cmp(&(depth.get(b).copied().unwrap_or(0), priority(b), b))
        });
        sorted
    }

    /// Reads `group_vars/` and `host_vars/` beside the playbook: Ansible's "playbook"
    /// stage, above the inventory's own files.
    pub fn load_playbook_vars(&mut self, playbook_dir: &Path) -> Result<(), InventoryError> {
        vars_files::load_adjacent(self, playbook_dir, vars_files::Beside::Playbook)
    }

    /// A host's variables with Ansible's inventory precedence:
    /// inventory group vars (all, then groups by depth/priority/name) < inventory
    /// group_vars/all < playbook group_vars/all < inventory group_vars/<group> < playbook
    /// group_vars/<group> < inventory host vars < inventory host_vars/<host> < playbook
    /// host_vars/<host>.
    pub fn host_vars(&self, host: &str) -> Vars {
        let mut vars = Vars::new();
        let Some(h) = self.hosts.get(host) else {
            return vars;
        };
        let groups: Vec<String> = self.groups_of(host).into_iter().filter(|g| g != "all").collect();
        let groups = self.sort_groups(&groups);
        let all = &self.groups["all"];
        extend(&mut vars, &all.vars);
        for g in &groups {
            extend(&mut vars, &self.groups[g].vars);
        }
        extend(&mut vars, &all.file_vars);
        extend(&mut vars, &all.playbook_vars);
        for g in &groups {
            extend(&mut vars, &self.groups[g].file_vars);
        }
        for g in &groups {
            extend(&mut vars, &self.groups[g].playbook_vars);
        }
        extend(&mut vars, &h.vars);
        extend(&mut vars, &h.file_vars);
        extend(&mut vars, &h.playbook_vars);
        vars
    }

    /// Where the value a host sees for `var` is set: the place with the highest precedence,
    /// as in [`Inventory::host_vars`].
    pub fn var_location(&self, host: &str, var: &str) -> Option<Location> {
        let h = self.hosts.get(host)?;
        if let Some(l) = h.var_locations.get(var) {
            return Some(l.clone());
        }
        let groups: Vec<String> = self.groups_of(host).into_iter().filter(|g| g != "all").collect();
        let mut ordered = vec!["all".to_string()];
        ordered.extend(self.sort_groups(&groups));
        ordered.iter().rev().find_map(|g| self.groups[g].var_locations.get(var).cloned())
    }

    /// The hosts of a group and its descendants, in Ansible's order, without duplicates.
    pub fn hosts_of_group(&self, group: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen_hosts = HashSet::new();
        for g in self.descendants(group) {
            for h in &self.groups[&g].hosts {
                if seen_hosts.insert(h.clone()) {
                    out.push(h.clone());
                }
            }
        }
        out
    }

    /// The group and the groups below it, breadth first, each once.
    pub fn descendants(&self, group: &str) -> Vec<String> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([group.to_string()]);
        while let Some(g) = queue.pop_front() {
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some(grp) = self.groups.get(&g) {
                queue.extend(grp.children.iter().cloned());
            }
            order.push(g);
        }
        order
    }

    /// Every host, in inventory order.
    pub fn all_hosts(&self) -> Vec<String> {
        self.hosts_of_group("all")
    }
}

fn extend(into: &mut Vars, from: &Vars) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

/// Ansible accepts any group name but warns when it is not a Python identifier, since such
/// names cannot be used in host patterns or templates reliably.
fn group_name_warning(name: &str) -> Option<String> {
    let identifier = !name.starts_with(|c: char| c.is_ascii_digit()) && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    (!identifier).then(|| format!("group name '{name}' has characters other than letters, digits and '_'; host patterns may not match it"))
}

/// Replaces secret values with a mask, recursively by key.
pub fn mask_secrets(vars: &mut Vars) {
    for (k, v) in vars.iter_mut() {
        if SECRET_VARS.contains(&k.as_str()) {
            *v = Json::String(MASK.into());
        } else if let Json::Object(inner) = v {
            mask_secrets(inner);
        }
    }
}

#[cfg(test)]
mod tests;
