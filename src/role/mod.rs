//! Roles (`roles/NAME/tasks/main.yml`, `defaults/main.yml`, gafix's `meta/gafix.yml`) and
//! playbooks, loaded with a source location on every task.

pub mod playbook;
pub mod task;

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};
use crate::vars::Vars;
use crate::yaml::{self, Location, Node};

pub use playbook::{Play, Playbook, Serial};
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
}

#[derive(Clone, Debug)]
pub struct Role {
    pub name: String,
    pub tasks: Vec<Task>,
    pub defaults: Vars,
    pub meta: RoleMeta,
    /// Where it was loaded from (a directory, or `<embedded>`).
    pub origin: String,
}

/// Where roles are looked up: each directory in order, then the embedded roles.
#[derive(Clone, Debug)]
pub struct RoleSource {
    pub paths: Vec<PathBuf>,
    pub embedded: bool,
}

impl RoleSource {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        RoleSource { paths, embedded: true }
    }

    pub fn load(&self, name: &str, referenced_at: &Location) -> Result<Role, RoleError> {
        if !name.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c)) || name.starts_with('.') {
            return Err(RoleError::Invalid(Diagnostics(vec![Diagnostic::new(
                referenced_at,
                format!("'{name}' is not a valid role name"),
            )])));
        }
        for dir in &self.paths {
            let role_dir = dir.join(name);
            if let Some(tasks) = find_main(&role_dir.join("tasks")) {
                return load_from_disk(name, &role_dir, &tasks);
            }
        }
        if self.embedded {
            let tasks_path = format!("roles/{name}/tasks/main.yml");
            if let Some((_, text)) = EMBEDDED.iter().find(|(p, _)| *p == tasks_path) {
                let meta = EMBEDDED.iter().find(|(p, _)| *p == format!("roles/{name}/meta/gafix.yml")).map(|(_, t)| *t);
                return load_embedded(name, text, meta);
            }
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
    ["main.yml", "main.yaml", "main"].iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

fn load_from_disk(name: &str, dir: &Path, tasks_file: &Path) -> Result<Role, RoleError> {
    let mut errors = Vec::new();
    let tasks_node = load_yaml(tasks_file, &mut errors);
    let tasks = task::parse_tasks(tasks_node.as_ref(), Some(name), &mut errors);
    let defaults = match find_main(&dir.join("defaults")) {
        Some(path) => load_yaml(&path, &mut errors).map(|n| task::vars_value(&n, "defaults", &mut errors)).unwrap_or_default(),
        None => Vars::new(),
    };
    let meta_path = dir.join("meta").join("gafix.yml");
    let meta = if meta_path.is_file() {
        load_yaml(&meta_path, &mut errors).map(|n| parse_meta(&n, &mut errors)).unwrap_or_default()
    } else {
        RoleMeta::default()
    };
    if !errors.is_empty() {
        return Err(RoleError::Invalid(Diagnostics(errors)));
    }
    Ok(Role { name: name.into(), tasks, defaults, meta, origin: dir.display().to_string() })
}

fn load_embedded(name: &str, tasks_text: &str, meta_text: Option<&str>) -> Result<Role, RoleError> {
    let mut errors = Vec::new();
    let parse = |text: &str, path: String, errors: &mut Vec<Diagnostic>| match yaml::parse_str(text, Path::new(&path)) {
        Ok(n) => n,
        Err(e) => {
            errors.push(Diagnostic::from(&e));
            None
        }
    };
    let tasks_node = parse(tasks_text, format!("<embedded>/roles/{name}/tasks/main.yml"), &mut errors);
    let tasks = task::parse_tasks(tasks_node.as_ref(), Some(name), &mut errors);
    let meta = meta_text
        .and_then(|t| parse(t, format!("<embedded>/roles/{name}/meta/gafix.yml"), &mut errors))
        .map(|n| parse_meta(&n, &mut errors))
        .unwrap_or_default();
    if !errors.is_empty() {
        return Err(RoleError::Invalid(Diagnostics(errors)));
    }
    Ok(Role { name: name.into(), tasks, defaults: Vars::new(), meta, origin: "<embedded>".into() })
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
            other => {
                errors.push(Diagnostic::new(&k.location, format!("unknown key '{other}' in meta/gafix.yml; expected applies_to, verify")))
            }
        }
    }
    meta
}

#[cfg(test)]
mod tests;
