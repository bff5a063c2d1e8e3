//! What `gafix inventory` prints, in `ansible-inventory`'s shapes: `--list` JSON, `--graph`
//! text, `--host` variables (secrets masked, `!unsafe` marks removed).

use serde_json::{json, Value as Json};

use super::{mask_secrets, Inventory};
use crate::vars::Vars;

/// The JSON `ansible-inventory --list` prints (groups with hosts/children, `_meta.hostvars`).
pub fn list(inv: &Inventory, hosts: &[String], extra: &Vars) -> Json {
    let selected: std::collections::HashSet<&String> = hosts.iter().collect();
    let mut out = serde_json::Map::new();
    let mut seen = std::collections::HashSet::new();
    fn format_group(
        inv: &Inventory,
        name: &str,
        hosts: &std::collections::HashSet<&String>,
        out: &mut serde_json::Map<String, Json>,
        seen: &mut std::collections::HashSet<String>,
    ) {
        let group = &inv.groups[name];
        let mut entry = serde_json::Map::new();
        if name != "all" {
            let hs: Vec<&String> = group.hosts.iter().filter(|h| hosts.contains(h)).collect();
            if !hs.is_empty() {
                entry.insert("hosts".into(), json!(hs));
            }
        }
        if !group.children.is_empty() {
            entry.insert("children".into(), json!(group.children));
        }
        for c in &group.children {
            if seen.insert(c.clone()) {
                format_group(inv, c, hosts, out, seen);
            }
        }
        if !entry.is_empty() {
            out.insert(name.into(), Json::Object(entry));
        }
    }
    format_group(inv, "all", &selected, &mut out, &mut seen);
    let mut hostvars = serde_json::Map::new();
    for h in hosts {
        let v = host(inv, h, extra);
        if !v.is_empty() {
            hostvars.insert(h.clone(), Json::Object(v));
        }
    }
    // ansible-core 2.19 names the shape of its output (serialization profile) here.
    out.insert("_meta".into(), json!({"hostvars": hostvars, "profile": "inventory_legacy"}));
    Json::Object(out)
}

pub fn host(inv: &Inventory, host: &str, extra: &Vars) -> Vars {
    let mut v = inv.host_vars(host);
    v.extend(extra.clone());
    mask_secrets(&mut v);
    match crate::yaml::strip_unsafe_marks(&Json::Object(v)) {
        Json::Object(m) => m,
        _ => unreachable!("a mapping stays a mapping"),
    }
}

/// `ansible-inventory --graph`: groups and hosts sorted by name.
pub fn graph(inv: &Inventory, group: &str, hosts: &[String]) -> Vec<String> {
    let selected: std::collections::HashSet<&String> = hosts.iter().collect();
    fn walk(inv: &Inventory, group: &str, depth: usize, hosts: &std::collections::HashSet<&String>, out: &mut Vec<String>) {
        let name = |n: &str, d: usize| if d == 0 { n.to_string() } else { format!("{}--{n}", "  |".repeat(d)) };
        out.push(name(&format!("@{group}:"), depth));
        let g = &inv.groups[group];
        // Children and hosts in the order they were added, as ansible-inventory prints them.
        for c in &g.children {
            walk(inv, c, depth + 1, hosts, out);
        }
        if group != "all" {
            for h in g.hosts.iter().filter(|h| hosts.contains(h)) {
                out.push(name(h, depth + 1));
            }
        }
    }
    let mut out = Vec::new();
    walk(inv, group, 0, &selected, &mut out);
    out
}

/// JSON as ansible-inventory prints it (Python's `json.dumps(sort_keys=True, indent=4)`), so
/// that the two outputs compare with `diff`.
pub fn ansible_json(v: &Json) -> String {
    use serde::Serialize;
    let sorted = sort_keys(v);
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    sorted.serialize(&mut ser).expect("JSON values serialize");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn sort_keys(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(keys.into_iter().map(|k| (k.clone(), sort_keys(&m[k]))).collect())
        }
        Json::Array(a) => Json::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}
