//! `group_vars/` and `host_vars/` beside the inventory file (and beside the playbook), as
//! Ansible's `host_group_vars` plugin finds them: `NAME`, `NAME.yml`, `NAME.yaml`,
//! `NAME.json`, or a directory `NAME/`.

use std::path::{Path, PathBuf};

use super::{Inventory, InventoryError, Vars};
use crate::diag::{Diagnostic, Diagnostics};
use crate::yaml::{self, Location, Value};

const EXTENSIONS: &[&str] = &["", ".yml", ".yaml", ".json"];

/// Which of Ansible's two stages a directory's files belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Beside {
    Inventory,
    Playbook,
}

pub(super) fn load_adjacent(inv: &mut Inventory, dir: &Path, beside: Beside) -> Result<(), InventoryError> {
    let mut errors = Vec::new();
    let group_dir = dir.join("group_vars");
    if group_dir.is_dir() {
        let names: Vec<String> = inv.groups.keys().cloned().collect();
        for name in names {
            let (vars, locations) = load_entity(&group_dir, &name, &mut errors, &mut inv.warnings);
            // Several sources: each one's files in turn, a later one winning.
            let group = inv.groups.get_mut(&name).unwrap();
            match beside {
                Beside::Inventory => group.file_vars.extend(vars),
                Beside::Playbook => group.playbook_vars.extend(vars),
            }
            group.var_locations.extend(locations);
        }
    }
    let host_dir = dir.join("host_vars");
    if host_dir.is_dir() {
        let names: Vec<String> = inv.hosts.keys().cloned().collect();
        for name in names {
            let (vars, locations) = load_entity(&host_dir, &name, &mut errors, &mut inv.warnings);
            let host = inv.hosts.get_mut(&name).unwrap();
            match beside {
                Beside::Inventory => host.file_vars.extend(vars),
                Beside::Playbook => host.playbook_vars.extend(vars),
            }
            host.var_locations.extend(locations);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InventoryError::Invalid(Diagnostics(errors)))
    }
}

/// The variables of one group or host from its files, with where each is set.
fn load_entity(base: &Path, name: &str, errors: &mut Vec<Diagnostic>, warnings: &mut Vec<Diagnostic>) -> (Vars, Vec<(String, Location)>) {
    let mut vars = Vars::new();
    let mut locations = Vec::new();
    for file in find_files(base, name, warnings) {
        match yaml::load_file(&file) {
            Ok(None) => {}
            Ok(Some(node)) => match &node.value {
                Value::Map(entries) => {
                    locations.extend(entries.iter().map(|(k, _)| (k.key_string(), k.location.clone())));
                    if let serde_json::Value::Object(map) = node.to_json() {
                        vars.extend(map);
                    }
                }
                Value::Null => {}
                _ => errors
                    .push(Diagnostic::new(&node.location, format!("a variables file must hold a mapping, found {}", node.type_name()))),
            },
            Err(e) => errors.push(Diagnostic::from(&e)),
        }
    }
    (vars, locations)
}

fn find_files(base: &Path, name: &str, warnings: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for ext in EXTENSIONS {
        let candidate = base.join(format!("{name}{ext}"));
        if candidate.is_dir() && ext.is_empty() {
            walk_dir(&candidate, &mut found, &mut Vec::new(), warnings);
        } else if candidate.is_file() {
            found.push(candidate);
        }
    }
    found
}

/// Files of a vars directory, sorted by name at each level, recursing into subdirectories.
/// A directory that contains itself through a symlink is walked once, with a warning.
fn walk_dir(dir: &Path, found: &mut Vec<PathBuf>, ancestors: &mut Vec<PathBuf>, warnings: &mut Vec<Diagnostic>) {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return;
    };
    if ancestors.contains(&real) {
        warnings.push(Diagnostic::new(
            &Location::synthetic(&dir.display().to_string()),
            format!("not following this directory: a symlink loop leads back to {}", real.display()),
        ));
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    ancestors.push(real);
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk_dir(&path, found, ancestors, warnings);
        } else {
            let ext = path.extension().and_then(|e| e.to_str()).map(|e| format!(".{e}")).unwrap_or_default();
            if EXTENSIONS.contains(&ext.as_str()) {
                found.push(path);
            }
        }
    }
    ancestors.pop();
}
