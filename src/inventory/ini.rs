//! INI inventories, read as Ansible's `ini` inventory plugin reads them: lines before any
//! section are ungrouped hosts; `[group]` lists hosts (`name[:port] key=value ...`, split
//! like Python's shlex with `#` comments, values read as Python literals), `[group:vars]`
//! one `key=value` a line, `[group:children]` group names; a child or a `:vars` section may
//! come before its group's own section. `#` and `;` start comment lines.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use super::{pyliteral, range, Inventory};
use crate::diag::Diagnostic;
use crate::yaml::Location;

/// A child named before its own section, or a `:vars` section for a group not (yet) defined.
struct Pending {
    line: usize,
    vars: bool,
    parents: Vec<String>,
}

/// Adds the INI text's groups, hosts and variables to `inv`; problems go to `errors`
/// (Ansible stops at the first; every one is reported here).
pub(super) fn add(inv: &mut Inventory, text: &str, path: &Path, errors: &mut Vec<Diagnostic>) {
    let file: Arc<Path> = Arc::from(path);
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut pending_order: Vec<String> = Vec::new();
    let mut group = "ungrouped".to_string();
    let mut state = "hosts".to_string();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let at = |column: usize| Location::new(&file, number, column);
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let column = raw.len() - raw.trim_start().len() + 1;
        if let Some((name, kind)) = section(line) {
            group = name.to_string();
            state = kind.unwrap_or("hosts").to_string();
            if !matches!(state.as_str(), "hosts" | "children" | "vars") {
                errors.push(Diagnostic::new(&at(column), format!("section [{name}:{state}] has unknown type: {state}")));
                state = "skip".into();
                continue;
            }
            if let Some(message) = super::group_name_warning(name) {
                inv.warnings.push(Diagnostic::new(&at(column + 1), message));
            }
            if !inv.groups.contains_key(name) {
                if state == "vars" && !pending.contains_key(name) {
                    pending_order.push(name.to_string());
                    pending.insert(name.to_string(), Pending { line: number, vars: true, parents: Vec::new() });
                }
                inv.groups.insert(name.to_string(), super::Group::new(name));
            }
            if state != "vars" {
                if let Some(p) = pending.remove(name) {
                    for parent in p.parents {
                        link(inv, &parent, name, &at(column), errors);
                    }
                }
            }
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            errors.push(Diagnostic::new(
                &at(column),
                format!("invalid section entry '{line}': a section is [name], [name:vars] or [name:children], with no spaces"),
            ));
            state = "skip".into();
            continue;
        }
        match state.as_str() {
            "hosts" => host_line(inv, line, &group, &at(column), errors),
            "vars" => match line.split_once('=') {
                Some((k, v)) => {
                    let (k, v) = (k.trim(), v.trim());
                    let g = inv.groups.get_mut(&group).expect("section's group exists");
                    g.vars.insert(k.to_string(), value(v));
                    g.var_locations.insert(k.to_string(), at(column));
                }
                None => errors.push(Diagnostic::new(&at(column), format!("expected key=value in [{group}:vars], found: {line}"))),
            },
            "children" => match group_name(line) {
                Some(child) if inv.groups.contains_key(child) => link(inv, &group, child, &at(column), errors),
                Some(child) => match pending.get_mut(child) {
                    Some(p) => p.parents.push(group.clone()),
                    None => {
                        pending_order.push(child.to_string());
                        pending.insert(child.to_string(), Pending { line: number, vars: false, parents: vec![group.clone()] });
                    }
                },
                None => errors.push(Diagnostic::new(&at(column), format!("expected a group name in [{group}:children], found: {line}"))),
            },
            _ => {}
        }
    }
    for name in pending_order {
        let Some(p) = pending.remove(&name) else { continue };
        let at = Location::new(&file, p.line, 1);
        if p.vars {
            errors.push(Diagnostic::new(&at, format!("section [{name}:vars] is for group '{name}', which is not defined")));
        } else {
            let parent = p.parents.last().cloned().unwrap_or_default();
            errors.push(Diagnostic::new(&at, format!("section [{parent}:children] includes group '{name}', which is not defined")));
        }
    }
}

/// `[name]` or `[name:kind]`, with an optional trailing `#` comment.
fn section(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line.strip_prefix('[')?;
    let (inside, after) = rest.split_once(']')?;
    let after = after.trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let (name, kind) = match inside.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inside, None),
    };
    let name_ok = !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == ']' || c == ':');
    let kind_ok = kind.is_none_or(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'));
    (name_ok && kind_ok).then_some((name, kind))
}

/// A group name on a `:children` line, with an optional trailing comment.
fn group_name(line: &str) -> Option<&str> {
    let name = line.split_whitespace().next()?;
    let rest = line[name.len()..].trim_start();
    let ok = !name.contains([':', ']']) && (rest.is_empty() || rest.starts_with('#'));
    ok.then_some(name)
}

fn link(inv: &mut Inventory, parent: &str, child: &str, at: &Location, errors: &mut Vec<Diagnostic>) {
    if child == "all" {
        errors.push(Diagnostic::new(at, "'all' cannot be a child of another group"));
    } else if child == parent || inv.is_ancestor(child, parent) {
        errors.push(Diagnostic::new(at, format!("adding '{child}' as a child of '{parent}' would make a loop")));
    } else {
        inv.add_child(parent, child);
    }
}

/// `name[:port] key=value ...` in a hosts section.
fn host_line(inv: &mut Inventory, line: &str, group: &str, at: &Location, errors: &mut Vec<Diagnostic>) {
    let tokens = match shlex_split(line) {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => return,
        Err(e) => {
            errors.push(Diagnostic::new(at, format!("cannot read host line '{line}': {e}")));
            return;
        }
    };
    let pattern = &tokens[0];
    if pattern.trim() == "---" {
        errors.push(Diagnostic::new(at, "invalid host pattern '---': that is a sign of a YAML file"));
        return;
    }
    let expanded = range::split_port(pattern).and_then(|(base, port)| Ok((range::expand(base)?, port)));
    let (names, port) = match expanded {
        Ok(v) => v,
        Err(e) => {
            errors.push(Diagnostic::new(at, format!("host '{pattern}': {e}")));
            return;
        }
    };
    if pattern.ends_with(':') && port.is_none() {
        errors.push(Diagnostic::new(at, format!("invalid host pattern '{pattern}': a ':' at the end must be followed by a port")));
        return;
    }
    let mut vars = Vec::new();
    for token in &tokens[1..] {
        match token.split_once('=') {
            Some((k, v)) => vars.push((k.to_string(), value(v))),
            None => {
                errors.push(Diagnostic::new(at, format!("expected key=value host variable assignment, found: {token}")));
                return;
            }
        }
    }
    for name in names {
        inv.add_host(&name, group, port, at);
        let host = inv.hosts.get_mut(&name).expect("just added");
        for (k, v) in &vars {
            host.vars.insert(k.clone(), v.clone());
            host.var_locations.insert(k.clone(), at.clone());
        }
    }
}

/// A value as Ansible reads it: a Python literal when it is one, else the text.
fn value(text: &str) -> Json {
    pyliteral::literal_eval(text).unwrap_or_else(|| Json::String(text.to_string()))
}

/// Python's `shlex.split(line, comments=True)`: words split on whitespace, quotes and
/// backslashes as a POSIX shell reads them, and `#` outside quotes ends the line.
fn shlex_split(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' => break,
            '\\' => {
                word.push(chars.next().ok_or("no character after the escape")?);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next().ok_or("no closing quotation")? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next().ok_or("no closing quotation")? {
                        '"' => break,
                        '\\' => match chars.next().ok_or("no closing quotation")? {
                            c @ ('"' | '\\') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> (Inventory, Vec<String>) {
        let mut inv = Inventory::empty();
        let mut errors = Vec::new();
        add(&mut inv, text, Path::new("hosts"), &mut errors);
        inv.reconcile();
        (inv, errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn shlex_as_python_splits() {
        assert_eq!(shlex_split("a b='c d' e=\"f\\\"g\" h=i#j k").unwrap(), ["a", "b=c d", "e=f\"g", "h=i"]);
        assert_eq!(shlex_split("x=a\\ b y").unwrap(), ["x=a b", "y"]);
        assert_eq!(shlex_split("x='#not a comment'").unwrap(), ["x=#not a comment"]);
        assert!(shlex_split("x='open").is_err());
    }

    #[test]
    fn groups_children_vars_and_literals() {
        let (inv, errors) = load(
            "# comment\nloose ansible_port=2222\n[web]\nw[1:2].example.com:8022 tier=1 on=True name=\"two words\" l=\"[1, 'a']\"\n\
             [web:vars]\nhttp_port=8080 # comment\nflag = yes\n\n[prod:children]\nweb\ndb   # later\n; semicolon comment\n[db]\ndb1\n[all:vars]\nntp=10.0.0.1\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(inv.groups["ungrouped"].hosts, ["loose"]);
        assert_eq!(inv.groups["web"].hosts, ["w1.example.com", "w2.example.com"]);
        let w1 = &inv.hosts["w1.example.com"];
        assert_eq!(w1.vars["ansible_port"], json!(8022));
        assert_eq!((w1.vars["tier"].clone(), w1.vars["on"].clone()), (json!(1), json!(true)));
        assert_eq!(w1.vars["name"], json!("two words"));
        assert_eq!(w1.vars["l"], json!([1, "a"]));
        assert_eq!(w1.location.to_string(), "hosts:4:1");
        assert_eq!(inv.groups["web"].vars["http_port"], json!(8080));
        assert_eq!(inv.groups["web"].vars["flag"], json!("yes"));
        assert_eq!(inv.groups["prod"].children, ["web", "db"]);
        assert_eq!(inv.groups["all"].vars["ntp"], json!("10.0.0.1"));
        assert_eq!(inv.hosts["loose"].vars["ansible_port"], json!(2222));
    }

    #[test]
    fn errors_are_located() {
        let (_, errors) =
            load("[web]\nh1 novalue\n[web:bogus]\n[bad section]\n[p:children]\nmissing\n[orphan:vars]\nx=1\n[web:vars]\nnoequals\n");
        assert!(errors.contains(&"hosts:2:1: expected key=value host variable assignment, found: novalue".to_string()), "{errors:?}");
        assert!(errors.contains(&"hosts:3:1: section [web:bogus] has unknown type: bogus".to_string()), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("hosts:4:1: invalid section entry '[bad section]'")), "{errors:?}");
        assert!(
            errors.contains(&"hosts:6:1: section [p:children] includes group 'missing', which is not defined".to_string()),
            "{errors:?}"
        );
        assert!(errors.contains(&"hosts:7:1: section [orphan:vars] is for group 'orphan', which is not defined".to_string()), "{errors:?}");
        assert!(errors.contains(&"hosts:10:1: expected key=value in [web:vars], found: noequals".to_string()), "{errors:?}");
    }

    #[test]
    fn children_and_vars_may_come_before_their_group() {
        let (inv, errors) = load("[all:children]\nlate\n[late:vars]\nv=1\n[late]\nh1\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(inv.groups["late"].parents, ["all"]);
        assert_eq!(inv.groups["late"].vars["v"], json!(1));
    }
}
