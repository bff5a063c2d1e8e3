//! Which reader takes an inventory source, decided as Ansible's plugins decide (in their
//! order: script, yaml, ini): an executable file with a `#!` line is a script; a `.yml`,
//! `.yaml`, `.json` or extension-less file holding a YAML mapping is a YAML inventory (or,
//! in `ansible-inventory --list`'s JSON shape, read as a script's output); an `.ini` or
//! extension-less file is INI; a directory is each of its files in name order, skipping
//! what Ansible skips.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{ini, script, Inventory};
use crate::diag::Diagnostic;
use crate::yaml::{self, Location, Value};

/// File names a directory source skips (Ansible's `INVENTORY_IGNORE_EXTS` and its
/// always-ignored names).
const IGNORED_SUFFIXES: &[&str] = &[".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry"];
const IGNORED_NAMES: &[&str] = &["host_vars", "group_vars", "vars_plugins"];

/// Adds one source; `given` is false for a file found in a directory, where a file that
/// no reader takes is a warning (as in Ansible), not an error.
pub(super) fn add(inv: &mut Inventory, path: &Path, given: bool, errors: &mut Vec<Diagnostic>) {
    if path.is_dir() {
        let mut entries: Vec<_> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                errors.push(Diagnostic::new(&Location::synthetic(&path.display().to_string()), format!("cannot read the directory: {e}")));
                return;
            }
        };
        entries.sort();
        for entry in entries {
            let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') || IGNORED_NAMES.contains(&name.as_str()) || IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                continue;
            }
            add(inv, &entry, false, errors);
        }
        return;
    }
    let at = Location::synthetic(&path.display().to_string());
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return errors.push(Diagnostic::new(&at, format!("cannot read the inventory: {e}"))),
    };
    if is_script(path, &text) {
        return script::run(inv, path, errors);
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let yaml_like = matches!(ext, "yml" | "yaml" | "json" | "");
    let ini_like = matches!(ext, "ini" | "");
    let mut why_not = Vec::new();
    if yaml_like {
        match yaml::parse_bytes(&text, path) {
            Ok(None) if !ini_like => return,
            Ok(None) => {}
            Ok(Some(node)) => match &node.value {
                Value::Map(entries) if entries.iter().any(|(k, _)| k.as_str() == Some("plugin")) => {
                    let plugin =
                        entries.iter().find(|(k, _)| k.as_str() == Some("plugin")).map(|(_, v)| v.key_string()).unwrap_or_default();
                    if super::proxmox::PLUGINS.contains(&plugin.as_str()) {
                        return super::proxmox::add(inv, &node, path, errors);
                    }
                    errors.push(Diagnostic::new(
                        &node.location,
                        format!(
                            "inventory plugin '{plugin}' is not supported by gafix yet; use its output: \
                             `ansible-inventory -i {} --list > inventory.json`, then `-i inventory.json`",
                            path.display()
                        ),
                    ));
                    return;
                }
                Value::Map(_) if script::is_list_shape(&node.to_json()) => {
                    return script::add_list_json(inv, &node.to_json(), path, errors);
                }
                Value::Map(_) => return inv.add_yaml(Some(&node), errors),
                other => why_not.push(format!("as YAML: a mapping of groups was expected, found {}", node_kind(other))),
            },
            Err(e) => why_not.push(format!("as YAML: {e}")),
        }
    }
    if ini_like {
        match std::str::from_utf8(&text) {
            Ok(t) => return ini::add(inv, t, path, errors),
            Err(e) => why_not.push(format!("as INI: not UTF-8 text (byte {})", e.valid_up_to())),
        }
    }
    if why_not.is_empty() {
        why_not.push(format!(
            "'.{ext}' is not an inventory extension: YAML is .yml, .yaml, .json or none; INI is .ini or none; a script is executable with #!"
        ));
    }
    let message = format!("not an inventory gafix can read: {}", why_not.join("; "));
    if given {
        errors.push(Diagnostic::new(&at, message));
    } else {
        inv.warnings.push(Diagnostic::new(&at, format!("skipped: {message}")));
    }
}

/// An executable file that starts with `#!`, as Ansible's script plugin wants.
fn is_script(path: &Path, text: &[u8]) -> bool {
    let executable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    executable && text.starts_with(b"#!")
}

fn node_kind(v: &Value) -> &'static str {
    match v {
        Value::Seq(_) => "a list",
        Value::String(_) => "a string",
        _ => "a scalar",
    }
}
