//! Roles (a whole Ansible role directory: `tasks/`, `handlers/`, `defaults/`, `vars/`,
//! `meta/main.yml`, plus gafix's `meta/gafix.yml`) and playbooks, loaded with a source
//! location on every task.

pub mod keywords;
pub mod playbook;
pub mod task;

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};
use crate::vars::Vars;
use crate::yaml::{self, Location, Node};

pub use playbook::{HostOrder, Play, Playbook, RoleInstance, RoleRef, Serial, Strategy};
pub use task::Task;

/// Roles built into the binary, so `gafix converge` works from any directory.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("roles/qemu_ga_fix/tasks/main.yml", include_str!("../../roles/qemu_ga_fix/tasks/main.yml")),
    ("roles/qemu_ga_fix/meta/gafix.yml", include_str!("../../roles/qemu_ga_fix/meta/gafix.yml")),
    ("roles/patch_reboot/tasks/main.yml", include_str!("../../roles/patch_reboot/tasks/main.yml")),
];

pub const DEFAULT_PLAN: (&str, &str) = ("plans/default.yml", include_str!("../../plans/default.yml"));

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("{location}: role '{name}' not found in {searched}")]
    NotFound { name: String, location: Location, searched: String },
}

/// Which hosts a role is for; others are skipped as not applicable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppliesTo {
    pub service_mgr: Option<String>,
    pub virtualization: Option<Virtualization>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Virtualization {
    Vm,
    Container,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleMeta {
    pub applies_to: AppliesTo,
    /// A unit that must be active when the role is done: the role's gate verdict.
    pub verify_unit_active: Option<String>,
    /// Devices the role's units bind to (unit -> device path): read by the probe whenever
    /// the plan runs the role, so that check mode predicts a unit that cannot start.
    pub binds_to: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct Role {
    pub name: String,
    pub tasks: Vec<Task>,
    /// `handlers/main.yml`: run when notified.
    pub handlers: Vec<Task>,
    /// `defaults/main`: the lowest precedence.
    pub defaults: Vars,
    /// `vars/main`: above the play's vars, below task vars.
    pub vars: Vars,
    /// `meta/main.yml` dependencies, run before the role.
    pub dependencies: Vec<RoleRef>,
    /// `meta/main.yml` `allow_duplicates`: run again with the same parameters.
    pub allow_duplicates: bool,
    /// Problems in `tasks/` files other than main: they run only where a task includes
    /// them (`include_tasks`), so they are reported by `validate` as warnings.
    pub other_task_problems: Vec<Diagnostic>,
    pub meta: RoleMeta,
    /// Where it was loaded from (a directory, or `<embedded>`).
    pub origin: String,
}

impl Role {
    fn files(&self) -> Files {
        if self.origin == "<embedded>" {
            Files::Embedded(self.name.clone())
        } else {
            Files::Disk(PathBuf::from(&self.origin))
        }
    }

    /// The role as an `include_role`/`import_role` calls it: `tasks_from`, `vars_from`,
    /// `defaults_from`, `handlers_from` in place of the main files (a name with or without
    /// its extension, as Ansible finds them).
    pub fn called(&self, call: &task::RoleCall, at: &Location) -> Result<Role, RoleError> {
        let files = self.files();
        let mut errors = Vec::new();
        let find = |sub: &str, name: &str, errors: &mut Vec<Diagnostic>| -> Option<Node> {
            let found = ["", ".yml", ".yaml", ".json"].iter().find_map(|ext| files.file(&format!("{sub}/{name}{ext}"), errors));
            if found.is_none() {
                errors.push(Diagnostic::new(at, format!("role {}: no {sub} file '{name}'", self.name)));
            }
            found
        };
        let mut role = self.clone();
        if let Some(name) = &call.tasks_from {
            role.tasks = find("tasks", name, &mut errors)
                .map(|n| task::parse_tasks(Some(&n), Some(&self.name), &files.task_files(), &mut errors))
                .unwrap_or_default();
        }
        if let Some(name) = &call.handlers_from {
            role.handlers = find("handlers", name, &mut errors)
                .map(|n| task::parse_tasks(Some(&n), Some(&self.name), &files.task_files(), &mut errors))
                .unwrap_or_default();
        }
        if let Some(name) = &call.vars_from {
            role.vars = find("vars", name, &mut errors).map(|n| merged_vars(&[n], "vars", &mut errors)).unwrap_or_default();
        }
        if let Some(name) = &call.defaults_from {
            role.defaults = find("defaults", name, &mut errors).map(|n| merged_vars(&[n], "defaults", &mut errors)).unwrap_or_default();
        }
        if errors.is_empty() {
            Ok(role)
        } else {
            Err(RoleError::Invalid(Diagnostics(errors)))
        }
    }
}

/// Where roles are looked up, as Ansible does: each directory in order (the playbook's
/// `roles/`, the roles path, the playbook's own directory), then the embedded roles.
#[derive(Clone, Debug)]
pub struct RoleSource {
    pub paths: Vec<PathBuf>,
    pub embedded: bool,
}

impl RoleSource {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        RoleSource { paths, embedded: true }
    }

    /// A role's `meta/main.yml` dependencies alone, for a role that does not load (so that
    /// their problems are reported with its own); none when it cannot be read.
    pub fn dependencies(&self, name: &str) -> Vec<playbook::RoleRef> {
        let found = self.paths.iter().map(|dir| dir.join(name)).find(|d| d.join("meta").is_dir());
        let Some(dir) = found else { return Vec::new() };
        let files = Files::Disk(dir);
        let mut errors = Vec::new();
        match files.file("meta/main.yml", &mut errors).or_else(|| files.file("meta/main.yaml", &mut errors)) {
            Some(node) => parse_ansible_meta(&node, &mut errors).0,
            None => Vec::new(),
        }
    }

    pub fn load(&self, name: &str, referenced_at: &Location) -> Result<Role, RoleError> {
        let invalid = name.is_empty() || name.split('/').any(|part| part == "..") || name.starts_with('.');
        if invalid || name.contains(|c: char| c.is_control()) {
            return Err(RoleError::Invalid(Diagnostics(vec![Diagnostic::new(
                referenced_at,
                format!("'{name}' is not a valid role name"),
            )])));
        }
        // A name with a slash is a path (relative to the playbook's directory, the last search path).
        let candidates: Vec<PathBuf> =
            if Path::new(name).is_absolute() { vec![PathBuf::from(name)] } else { self.paths.iter().map(|dir| dir.join(name)).collect() };
        for role_dir in candidates {
            if find_main(&role_dir.join("tasks")).is_some() || role_dir.join("meta").join("main.yml").is_file() {
                let short = Path::new(name).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| name.into());
                return load_role(&short, &Files::Disk(role_dir));
            }
        }
        if self.embedded && embedded_role_names().contains(&name) {
            return load_role(name, &Files::Embedded(name.to_string()));
        }
        let mut searched: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        if self.embedded {
            searched.push(format!("the embedded roles ({})", embedded_role_names().join(", ")));
        }
        Err(RoleError::NotFound { name: name.into(), location: referenced_at.clone(), searched: searched.join(", ") })
    }
}

pub fn embedded_role_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = EMBEDDED.iter().filter_map(|(p, _)| p.strip_prefix("roles/")?.split('/').next()).collect();
    names.dedup();
    names
}

fn find_main(dir: &Path) -> Option<PathBuf> {
    ["main.yml", "main.yaml", "main.json", "main"].iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

/// Where `import_tasks` finds its files: a directory (a role's `tasks/`, a playbook's own
/// directory), an embedded role's tasks, or nowhere (a lone task list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskFiles {
    Dir(PathBuf),
    Embedded(String),
    /// A lone task list (tests): an import is an error.
    #[cfg(test)]
    None,
}

impl TaskFiles {
    /// The file `name` (relative to the directory), parsed; an error at `at` when missing.
    pub fn load(&self, name: &str, at: &Location, errors: &mut Vec<Diagnostic>) -> Option<Node> {
        match self {
            TaskFiles::Dir(dir) => {
                let path = dir.join(name);
                if !path.is_file() {
                    errors.push(Diagnostic::new(at, format!("no task file '{name}' (looked for {})", path.display())));
                    return None;
                }
                load_yaml(&path, errors)
            }
            TaskFiles::Embedded(role) => {
                let key = format!("roles/{role}/tasks/{name}");
                let Some((_, text)) = EMBEDDED.iter().find(|(p, _)| *p == key) else {
                    errors.push(Diagnostic::new(at, format!("no task file '{name}' in the embedded role {role}")));
                    return None;
                };
                match yaml::parse_str(text, Path::new(&format!("<embedded>/{key}"))) {
                    Ok(n) => n,
                    Err(e) => {
                        errors.push(Diagnostic::from(&e));
                        None
                    }
                }
            }
            #[cfg(test)]
            TaskFiles::None => {
                errors.push(Diagnostic::new(at, format!("import_tasks: no directory to find '{name}' in")));
                None
            }
        }
    }
}

/// A role's files: a directory, or the embedded copies.
enum Files {
    Disk(PathBuf),
    Embedded(String),
}

impl Files {
    /// `SUB/main` (as a file, or as a directory of files merged in name order, as Ansible
    /// reads `defaults/main/` and `vars/main/`), parsed; none when the role has no such file.
    fn main_of(&self, sub: &str, errors: &mut Vec<Diagnostic>) -> Vec<Node> {
        match self {
            Files::Disk(dir) => {
                if let Some(path) = find_main(&dir.join(sub)) {
                    return load_yaml(&path, errors).into_iter().collect();
                }
                let main_dir = dir.join(sub).join("main");
                let Ok(entries) = std::fs::read_dir(&main_dir) else { return Vec::new() };
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml" | "json")))
                    .collect();
                files.sort();
                files.iter().filter_map(|p| load_yaml(p, errors)).collect()
            }
            Files::Embedded(_) => self.file(&format!("{sub}/main.yml"), errors).into_iter().collect(),
        }
    }

    /// One file of the role, parsed, if it exists.
    fn file(&self, rel: &str, errors: &mut Vec<Diagnostic>) -> Option<Node> {
        match self {
            Files::Disk(dir) => {
                let path = dir.join(rel);
                path.is_file().then(|| load_yaml(&path, errors)).flatten()
            }
            Files::Embedded(name) => {
                let key = format!("roles/{name}/{rel}");
                let (_, text) = EMBEDDED.iter().find(|(p, _)| *p == key)?;
                match yaml::parse_str(text, Path::new(&format!("<embedded>/{key}"))) {
                    Ok(n) => n,
                    Err(e) => {
                        errors.push(Diagnostic::from(&e));
                        None
                    }
                }
            }
        }
    }

    /// `tasks/*.yml` files besides main (per-OS files, files for `include_tasks`).
    fn other_task_files(&self) -> Vec<PathBuf> {
        let Files::Disk(dir) = self else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(dir.join("tasks")) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
            .filter(|p| p.file_stem().and_then(|s| s.to_str()) != Some("main"))
            .collect();
        files.sort();
        files
    }

    /// Where the role's `import_tasks` files are.
    fn task_files(&self) -> TaskFiles {
        match self {
            Files::Disk(dir) => TaskFiles::Dir(dir.join("tasks")),
            Files::Embedded(name) => TaskFiles::Embedded(name.clone()),
        }
    }

    fn origin(&self) -> String {
        match self {
            Files::Disk(dir) => dir.display().to_string(),
            Files::Embedded(_) => "<embedded>".into(),
        }
    }
}

fn merged_vars(nodes: &[Node], what: &str, errors: &mut Vec<Diagnostic>) -> Vars {
    let mut vars = Vars::new();
    for n in nodes {
        vars.extend(task::vars_value(n, what, errors));
    }
    vars
}

fn load_role(name: &str, files: &Files) -> Result<Role, RoleError> {
    let mut errors = Vec::new();
    let tasks = match files.main_of("tasks", &mut errors).first() {
        Some(node) => task::parse_tasks(Some(node), Some(name), &files.task_files(), &mut errors),
        None => Vec::new(),
    };
    let handlers = match files.main_of("handlers", &mut errors).first() {
        Some(node) => task::parse_tasks(Some(node), Some(name), &files.task_files(), &mut errors),
        None => Vec::new(),
    };
    let defaults = merged_vars(&files.main_of("defaults", &mut errors), "defaults", &mut errors);
    let vars = merged_vars(&files.main_of("vars", &mut errors), "vars", &mut errors);
    let (dependencies, allow_duplicates) =
        match files.file("meta/main.yml", &mut errors).or_else(|| files.file("meta/main.yaml", &mut errors)) {
            Some(node) => parse_ansible_meta(&node, &mut errors),
            None => (Vec::new(), false),
        };
    let meta = files.file("meta/gafix.yml", &mut errors).map(|n| parse_meta(&n, &mut errors)).unwrap_or_default();
    let mut other_task_problems = Vec::new();
    for path in files.other_task_files() {
        if let Some(node) = load_yaml(&path, &mut other_task_problems) {
            task::parse_tasks(Some(&node), Some(name), &files.task_files(), &mut other_task_problems);
        }
    }
    if !errors.is_empty() {
        return Err(RoleError::Invalid(Diagnostics(errors)));
    }
    Ok(Role {
        name: name.into(),
        tasks,
        handlers,
        defaults,
        vars,
        dependencies,
        allow_duplicates,
        other_task_problems,
        meta,
        origin: files.origin(),
    })
}

/// Ansible's `meta/main.yml`: `dependencies` and `allow_duplicates` have meaning here;
/// `galaxy_info` is Galaxy's description of the role (nothing to run).
fn parse_ansible_meta(node: &Node, errors: &mut Vec<Diagnostic>) -> (Vec<RoleRef>, bool) {
    let (mut deps, mut allow) = (Vec::new(), false);
    let Some(entries) = node.as_map() else {
        if !node.is_null() {
            errors.push(Diagnostic::new(&node.location, format!("meta/main.yml must be a mapping, found {}", node.type_name())));
        }
        return (deps, allow);
    };
    for (k, v) in entries {
        match k.key_string().as_str() {
            "dependencies" => deps = playbook::parse_roles(v, errors),
            "allow_duplicates" => allow = task::bool_value(v, "allow_duplicates", errors).unwrap_or(false),
            "galaxy_info" => {}
            "argument_specs" | "collections" => {
                errors.push(Diagnostic::new(&k.location, keywords::not_supported(&format!("meta/main.yml {}", k.key_string()))))
            }
            other => errors.push(Diagnostic::new(
                &k.location,
                keywords::unknown("key in meta/main.yml", other, &["dependencies", "allow_duplicates", "galaxy_info"]),
            )),
        }
    }
    (deps, allow)
}

pub(crate) fn load_yaml(path: &Path, errors: &mut Vec<Diagnostic>) -> Option<Node> {
    match yaml::load_file(path) {
        Ok(n) => n,
        Err(e) => {
            errors.push(Diagnostic::from(&e));
            None
        }
    }
}

fn parse_meta(node: &Node, errors: &mut Vec<Diagnostic>) -> RoleMeta {
    let mut meta = RoleMeta::default();
    let Some(entries) = node.as_map() else {
        errors.push(Diagnostic::new(&node.location, "meta/gafix.yml must be a mapping"));
        return meta;
    };
    for (k, v) in entries {
        match k.key_string().as_str() {
            "applies_to" => {
                for (ak, av) in v.as_map().unwrap_or_default() {
                    match ak.key_string().as_str() {
                        "service_mgr" => meta.applies_to.service_mgr = task::string_value(av, "service_mgr", errors),
                        "virtualization" => match av.as_str() {
                            Some("vm") => meta.applies_to.virtualization = Some(Virtualization::Vm),
                            Some("container") => meta.applies_to.virtualization = Some(Virtualization::Container),
                            Some("any") => {}
                            _ => errors.push(Diagnostic::new(&av.location, "'virtualization' must be vm, container or any")),
                        },
                        other => errors.push(Diagnostic::new(
                            &ak.location,
                            format!("unknown key '{other}' in applies_to; expected service_mgr, virtualization"),
                        )),
                    }
                }
            }
            "verify" => {
                for (vk, vv) in v.as_map().unwrap_or_default() {
                    match vk.key_string().as_str() {
                        "unit_active" => {
                            meta.verify_unit_active = task::string_value(vv, "unit_active", errors);
                            if let Some(u) = &meta.verify_unit_active {
                                if let Err(e) = crate::names::unit(u) {
                                    errors.push(Diagnostic::new(&vv.location, e.to_string()));
                                }
                            }
                        }
                        other => {
                            errors.push(Diagnostic::new(&vk.location, format!("unknown key '{other}' in verify; expected unit_active")))
                        }
                    }
                }
            }
            "binds_to" => {
                for (unit_node, device_node) in v.as_map().unwrap_or_default() {
                    let unit = unit_node.key_string();
                    if let Err(e) = crate::names::unit(&unit) {
                        errors.push(Diagnostic::new(&unit_node.location, e.to_string()));
                    }
                    match device_node.as_str() {
                        Some(d) if d.starts_with("/dev/") && crate::names::path(d).is_ok() => meta.binds_to.push((unit, d.to_string())),
                        _ => errors.push(Diagnostic::new(&device_node.location, "binds_to: each unit maps to a device path under /dev/")),
                    }
                }
            }
            other => errors.push(Diagnostic::new(
                &k.location,
                keywords::unknown("key in meta/gafix.yml", other, &["applies_to", "verify", "binds_to"]),
            )),
        }
    }
    meta
}

#[cfg(test)]
mod tests;
