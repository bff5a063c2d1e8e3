//! Inventory scripts, and JSON in the shape they print (which is `ansible-inventory --list`'s
//! too, so any inventory plugin's result can be saved and used), read by the rules of
//! Ansible's `script` plugin: a group is a list of hosts, or `{hosts, vars, children}`, or
//! (neither) a host of that name with those variables; `_meta.hostvars` holds each host's
//! variables, and without it the script is asked `--host NAME` for each host.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{Group, Inventory};
use crate::diag::Diagnostic;
use crate::yaml::Location;

/// How long a script may run (Ansible waits forever; a hung script must not hang a run):
/// 60 s, or `GAFIX_INVENTORY_TIMEOUT` seconds.
fn script_timeout() -> Duration {
    let secs = std::env::var("GAFIX_INVENTORY_TIMEOUT").ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|s| *s > 0);
    Duration::from_secs(secs.unwrap_or(60))
}

/// Whether a JSON/YAML mapping is in the script shape rather than a YAML inventory's:
/// `_meta`, or hosts and children given as lists.
pub(super) fn is_list_shape(v: &Json) -> bool {
    let Some(map) = v.as_object() else { return false };
    map.contains_key("_meta")
        || map.values().any(|g| g.is_array() || ["hosts", "children"].iter().any(|k| g.get(k).is_some_and(Json::is_array)))
}

/// Runs the script with `--list` (and `--host NAME` when its output has no `_meta`).
pub(super) fn run(inv: &mut Inventory, path: &Path, errors: &mut Vec<Diagnostic>) {
    let at = Location::synthetic(&path.display().to_string());
    let listed = match call(path, &["--list"]) {
        Ok(v) => v,
        Err(e) => return errors.push(Diagnostic::new(&at, e)),
    };
    let asks_per_host = listed.get("_meta").and_then(|m| m.get("hostvars")).is_none();
    let mut hosts = Vec::new();
    if let Err(e) = add_groups(inv, &listed, &at, &mut hosts) {
        return errors.push(Diagnostic::new(&at, e));
    }
    for host in hosts {
        let vars = if asks_per_host {
            match call(path, &["--host", &host]) {
                Ok(v) => v,
                Err(e) => return errors.push(Diagnostic::new(&at, e)),
            }
        } else {
            listed["_meta"]["hostvars"].get(&host).cloned().unwrap_or(Json::Null)
        };
        if let Err(e) = set_host_vars(inv, &host, &vars, &at) {
            return errors.push(Diagnostic::new(&at, e));
        }
    }
}

/// JSON (or YAML) in the script shape, from a file.
pub(super) fn add_list_json(inv: &mut Inventory, data: &Json, path: &Path, errors: &mut Vec<Diagnostic>) {
    let at = Location::synthetic(&path.display().to_string());
    let mut hosts = Vec::new();
    let result = add_groups(inv, data, &at, &mut hosts).and_then(|()| {
        for host in &hosts {
            let vars = data.get("_meta").and_then(|m| m.get("hostvars")).and_then(|h| h.get(host)).cloned().unwrap_or(Json::Null);
            set_host_vars(inv, host, &vars, &at)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        errors.push(Diagnostic::new(&at, e));
    }
}

fn add_groups(inv: &mut Inventory, data: &Json, at: &Location, hosts: &mut Vec<String>) -> Result<(), String> {
    let Some(groups) = data.as_object() else {
        return Err(format!("the inventory must be a JSON object of groups, found {}", kind(data)));
    };
    if let Some(meta) = groups.get("_meta") {
        if !meta.get("hostvars").is_none_or(Json::is_object) {
            return Err("'_meta.hostvars' must be an object of host names to their variables".into());
        }
    }
    for (name, group) in groups.iter().filter(|(n, _)| *n != "_meta") {
        ensure_group(inv, name);
        let owned;
        let group = match group {
            Json::Object(m) if !["hosts", "vars", "children"].iter().any(|k| m.contains_key(*k)) => {
                // Ansible's shorthand: a host of the group's name, with these variables.
                owned = serde_json::json!({"hosts": [name], "vars": group});
                &owned
            }
            Json::Object(_) => group,
            other => {
                owned = serde_json::json!({ "hosts": other });
                &owned
            }
        };
        if let Some(list) = group.get("hosts") {
            let Some(list) = list.as_array() else { return Err(format!("group '{name}': 'hosts' must be a list, found {}", kind(list))) };
            for host in list {
                let host = host.as_str().map(str::to_string).unwrap_or_else(|| host.to_string());
                if !hosts.contains(&host) {
                    hosts.push(host.clone());
                }
                inv.add_host(&host, name, None, at);
            }
        }
        if let Some(vars) = group.get("vars") {
            let Some(vars) = vars.as_object() else {
                return Err(format!("group '{name}': 'vars' must be an object, found {}", kind(vars)));
            };
            let g = inv.groups.get_mut(name).expect("group exists");
            for (k, v) in vars {
                g.vars.insert(k.clone(), v.clone());
                g.var_locations.insert(k.clone(), at.clone());
            }
        }
        if let Some(children) = group.get("children") {
            let Some(children) = children.as_array() else {
                return Err(format!("group '{name}': 'children' must be a list, found {}", kind(children)));
            };
            for child in children {
                let child = child.as_str().map(str::to_string).unwrap_or_else(|| child.to_string());
                ensure_group(inv, &child);
                if child == "all" || child == *name || inv.is_ancestor(&child, name) {
                    return Err(format!("group '{name}': adding '{child}' as a child would make a loop"));
                }
                inv.add_child(name, &child);
            }
        }
    }
    Ok(())
}

fn ensure_group(inv: &mut Inventory, name: &str) {
    if !inv.groups.contains_key(name) {
        inv.groups.insert(name.to_string(), Group::new(name));
    }
}

fn set_host_vars(inv: &mut Inventory, host: &str, vars: &Json, at: &Location) -> Result<(), String> {
    let vars = match vars {
        Json::Null => return Ok(()),
        Json::Object(m) => m,
        other => return Err(format!("the variables of host '{host}' must be an object, found {}", kind(other))),
    };
    if let Some(h) = inv.hosts.get_mut(host) {
        for (k, v) in vars {
            h.vars.insert(k.clone(), v.clone());
            h.var_locations.insert(k.clone(), at.clone());
        }
    }
    Ok(())
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// Runs the script with `args` under [`script_timeout`]; its stdout must be JSON.
fn call(path: &Path, args: &[&str]) -> Result<Json, String> {
    let program = std::path::absolute(path).map_err(|e| format!("cannot run the inventory script: {e}"))?;
    let shown = format!("{} {}", path.display(), args.join(" "));
    use std::os::unix::process::CommandExt;
    // Its own process group, so that a script stopped at the time limit takes its children along.
    let mut child = Command::new(&program)
        .args(args)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the inventory script `{shown}`: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let timeout = script_timeout();
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: kill(2) on the group this child leads; no memory is involved.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the inventory script `{shown}` did not finish within {} s and was stopped (GAFIX_INVENTORY_TIMEOUT sets the limit)",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("the inventory script `{shown}`: {e}")),
        }
    };
    // Whatever the script left behind (a daemon holding its pipes) goes with it.
    // SAFETY: kill(2) on the group the script led; no memory is involved.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let out = out_reader.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).trim().to_string();
    let tail = |s: &str| s.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    if !status.success() {
        return Err(format!("the inventory script `{shown}` failed ({status}): {}", tail(&err)));
    }
    serde_json::from_slice(&out).map_err(|e| {
        let text = String::from_utf8_lossy(&out);
        let first = text.lines().next().unwrap_or("").chars().take(80).collect::<String>();
        format!(
            "the inventory script `{shown}` printed no valid JSON ({e}); it began: {first:?}{}",
            if err.is_empty() { String::new() } else { format!("; stderr: {}", tail(&err)) }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("inv.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn load(path: &Path) -> Result<Inventory, String> {
        Inventory::load(path.to_str().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn scripts_with_and_without_meta() {
        let dir = tempfile::tempdir().unwrap();
        let with_meta = script(
            dir.path(),
            r#"echo '{"web": {"hosts": ["w1", "w2"], "vars": {"port": 80}, "children": ["edge"]}, "edge": ["e1"], "solo": {"x": 1},
                "_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1"}}}}'"#,
        );
        let inv = load(&with_meta).unwrap();
        assert_eq!(inv.groups["web"].hosts, ["w1", "w2"]);
        assert_eq!(inv.groups["web"].children, ["edge"]);
        assert_eq!(inv.groups["edge"].hosts, ["e1"]);
        assert_eq!(inv.hosts["w1"].vars["ansible_host"], json!("10.0.0.1"));
        assert_eq!(inv.hosts["solo"].vars, serde_json::Map::new(), "the shorthand's vars are the group's");
        assert_eq!(inv.groups["solo"].vars["x"], json!(1));
        let per_host = script(dir.path(), r#"case $1 in --list) echo '{"g": ["a", "b"]}';; --host) printf '{"who": "%s"}' "$2";; esac"#);
        let inv = load(&per_host).unwrap();
        assert_eq!(inv.hosts["b"].vars["who"], json!("b"), "asked --host when there is no _meta");
    }

    #[test]
    fn a_failing_hanging_or_garbled_script_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let failing = script(dir.path(), "echo 'cannot reach the CMDB' >&2; exit 3\n");
        let e = load(&failing).unwrap_err();
        assert!(e.contains("failed (exit status: 3): cannot reach the CMDB"), "{e}");
        let garbled = script(dir.path(), "echo 'not json'\n");
        let e = load(&garbled).unwrap_err();
        assert!(e.contains("printed no valid JSON") && e.contains("\"not json\""), "{e}");
    }

    #[test]
    fn list_shaped_json_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.json");
        std::fs::write(
            &path,
            r#"{"_meta": {"hostvars": {"h1": {"v": 1}}}, "all": {"children": ["ungrouped", "web"]}, "web": {"hosts": ["h1"]}, "ungrouped": {"hosts": ["h2"]}}"#,
        )
        .unwrap();
        let inv = load(&path).unwrap();
        assert_eq!(inv.groups["web"].hosts, ["h1"]);
        assert_eq!(inv.hosts["h1"].vars["v"], json!(1));
        assert_eq!(inv.groups["ungrouped"].hosts, ["h2"]);
    }
}
