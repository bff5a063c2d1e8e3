//! `plugin: community.proxmox.proxmox` (or the older `community.general.proxmox`): the fleet
//! read from Proxmox VE's API as Ansible's plugin reads it (its classic algorithm: nodes, each
//! node's LXC then QEMU guests, pools), into the shape `ansible-inventory --list` prints, so
//! the same loader reads it. Host names, groups and variables are the plugin's; QEMU guests
//! also get `gafix_hypervisor: proxmox`, so `gafix agent` and the gate ask Proxmox about them.
//! Options that would change the result and are not implemented are refused, never ignored.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value as Json};

use crate::diag::Diagnostic;
use crate::hypervisor::proxmox::{agent_enabled, Api, Token};
use crate::transport::Secret;
use crate::yaml::Node;

use super::Inventory;

/// The plugin names this reader answers to.
pub const PLUGINS: &[&str] = &["community.proxmox.proxmox", "community.general.proxmox"];

const LIMIT: Duration = Duration::from_secs(30);

pub(super) fn add(inv: &mut Inventory, node: &Node, path: &Path, errors: &mut Vec<Diagnostic>) {
    let at = &node.location;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !(name.ends_with("proxmox.yml") || name.ends_with("proxmox.yaml")) {
        return errors.push(Diagnostic::new(
            at,
            "the proxmox inventory plugin reads files whose names end in proxmox.yml or proxmox.yaml (as Ansible's)",
        ));
    }
    let options = match node.to_json() {
        Json::Object(m) => crate::yaml::strip_unsafe_marks(&Json::Object(m)),
        _ => return,
    };
    let env = |name: &str| std::env::var(name).ok();
    match read(&options, &env) {
        Ok(list) => super::script::add_list_json(inv, &list, path, errors),
        Err(message) => errors.push(Diagnostic::new(at, message)),
    }
}

struct Options {
    url: String,
    token: Token,
    /// The token's parts as the file gives them, for the hosts' own checks (`None`: from the
    /// environment, which the checks read too).
    token_vars: Option<(String, String, String)>,
    validate_certs: bool,
    group_prefix: String,
    facts_prefix: String,
    want_facts: bool,
    exclude_nodes: bool,
}

fn options(o: &Json, env: &dyn Fn(&str) -> Option<String>) -> Result<Options, String> {
    let known = [
        "plugin",
        "url",
        "user",
        "password",
        "token_id",
        "token_secret",
        "validate_certs",
        "group_prefix",
        "facts_prefix",
        "want_facts",
        "exclude_nodes",
        "strict",
        "compose",
        "groups",
        "keyed_groups",
        "filters",
        "want_proxmox_nodes_ansible_host",
        "qemu_extended_statuses",
        "cache",
    ];
    let map = o.as_object().ok_or("the plugin's options must be a mapping")?;
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            return Err(format!("proxmox inventory: option '{key}' is not supported by gafix yet"));
        }
    }
    let empty = |k: &str| match map.get(k) {
        None | Some(Json::Null) => true,
        Some(Json::Bool(b)) => !b,
        Some(Json::Array(a)) => a.is_empty(),
        Some(Json::Object(m)) => m.is_empty(),
        Some(Json::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    for k in ["compose", "groups", "keyed_groups", "filters", "want_proxmox_nodes_ansible_host", "qemu_extended_statuses", "cache"] {
        if !empty(k) {
            return Err(format!(
                "proxmox inventory: option '{k}' is not supported by gafix yet (remove it, or use `ansible-inventory --list` output)"
            ));
        }
    }
    let text = |k: &str, env_name: Option<&str>| -> Result<Option<String>, String> {
        match map.get(k) {
            Some(Json::String(s)) if s.contains("{{") => {
                Err(format!("proxmox inventory: option '{k}' is a template; gafix reads plain values (or the environment)"))
            }
            Some(Json::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Json::Null) | None => Ok(env_name.and_then(env)),
            Some(other) => Ok(Some(crate::vars::text(other))),
        }
    };
    let flag = |k: &str, default: bool| {
        map.get(k).map(|v| crate::vars::json_bool(v).ok_or(format!("proxmox inventory: '{k}' must be a boolean"))).unwrap_or(Ok(default))
    };
    if !empty("password") {
        return Err("proxmox inventory: password login is not supported by gafix; use an API token (token_id, token_secret)".into());
    }
    let url = text("url", Some("PROXMOX_URL"))?.unwrap_or_else(|| "http://localhost:8006".into());
    let user = text("user", Some("PROXMOX_USER"))?.ok_or("proxmox inventory: no user (option user, or PROXMOX_USER)")?;
    let (id, secret) = match (text("token_id", Some("PROXMOX_TOKEN_ID"))?, text("token_secret", Some("PROXMOX_TOKEN_SECRET"))?) {
        (Some(i), Some(s)) => (i, s),
        _ => return Err("You must specify either a password or both token_id and token_secret.".into()),
    };
    crate::secrets::register(&secret);
    let from_file = map.contains_key("token_secret") || map.contains_key("token_id") || map.contains_key("user");
    let token_vars = from_file.then(|| (user.clone(), id.clone(), secret.clone()));
    Ok(Options {
        url,
        token: Token::new(user, id, Secret::new(secret))?,
        token_vars,
        validate_certs: flag("validate_certs", true)?,
        group_prefix: text("group_prefix", None)?.unwrap_or_else(|| "proxmox_".into()),
        facts_prefix: text("facts_prefix", None)?.unwrap_or_else(|| "proxmox_".into()),
        want_facts: flag("want_facts", false)?,
        exclude_nodes: flag("exclude_nodes", false)?,
    })
}

/// Ansible's `to_safe`: spaces removed, anything but letters, digits and `_` made `_`.
pub fn to_safe(word: &str) -> String {
    word.chars().filter(|c| *c != ' ').map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// The fleet as `ansible-inventory --list` would print it.
fn read(o: &Json, env: &dyn Fn(&str) -> Option<String>) -> Result<Json, String> {
    let opts = options(o, env)?;
    let api = Api::new(&opts.url, opts.token, opts.validate_certs, None)?;
    let get =
        |path: &str| api.request("GET", path, &[], LIMIT).map_err(|e| format!("proxmox inventory: GET {}/api2/json/{path}: {e}", opts.url));
    let mut groups: Map<String, Json> = Map::new();
    let mut hostvars: Map<String, Json> = Map::new();
    let group = |name: &str| to_safe(&format!("{}{}", opts.group_prefix, name.to_lowercase()));
    let fact = |name: &str| to_safe(&format!("{}{}", opts.facts_prefix, name.to_lowercase()));
    let ensure = |groups: &mut Map<String, Json>, g: &str| {
        groups.entry(g.to_string()).or_insert_with(|| json!({"hosts": []}));
    };
    for g in ["all_lxc", "all_qemu", "all_running", "all_stopped", "all_templates"] {
        ensure(&mut groups, &group(g));
    }
    if !opts.exclude_nodes {
        ensure(&mut groups, &group("nodes"));
    }
    let member = |groups: &mut Map<String, Json>, g: &str, host: &str| {
        let hosts = groups.entry(g.to_string()).or_insert_with(|| json!({"hosts": []}));
        let list = hosts["hosts"].as_array_mut().expect("hosts");
        if !list.iter().any(|h| h == host) {
            list.push(json!(host));
        }
    };
    let nodes = get("nodes")?;
    for n in nodes.as_array().into_iter().flatten() {
        let Some(node) = n.get("node").and_then(Json::as_str).filter(|s| !s.is_empty()) else { continue };
        if !opts.exclude_nodes {
            hostvars.entry(node.to_string()).or_insert_with(|| json!({}));
            if n.get("type").and_then(Json::as_str) == Some("node") {
                member(&mut groups, &group("nodes"), node);
            }
        }
        if n.get("status").and_then(Json::as_str) == Some("offline") {
            continue;
        }
        for kind in ["lxc", "qemu"] {
            ensure(&mut groups, &group(&format!("{node}_{kind}")));
        }
        for kind in ["lxc", "qemu"] {
            let guests = get(&format!("nodes/{node}/{kind}"))?;
            for item in guests.as_array().into_iter().flatten() {
                let Some(name) = item.get("name").and_then(Json::as_str) else { continue };
                let vmid = item.get("vmid").map(crate::vars::text).unwrap_or_default();
                let status = item.get("status").and_then(Json::as_str).unwrap_or("unknown").to_string();
                let template = item.get("template").and_then(crate::vars::json_bool).unwrap_or(false);
                let vars = hostvars.entry(name.to_string()).or_insert_with(|| json!({}));
                let vars = vars.as_object_mut().expect("object");
                vars.insert(fact("node"), json!(node));
                vars.insert(fact("vmid"), item.get("vmid").cloned().unwrap_or(Json::Null));
                vars.insert(fact("vmtype"), json!(kind));
                vars.insert(fact("name"), json!(name));
                vars.insert(fact("status"), json!(status));
                if let Some(tags) = item.get("tags").and_then(Json::as_str).filter(|t| !t.is_empty()) {
                    vars.insert(fact("tags"), json!(tags));
                }
                vars.insert(fact("template"), json!(template));
                if kind == "qemu" {
                    // gafix's own: how the gate and `gafix agent` ask Proxmox about this VM.
                    vars.insert("gafix_hypervisor".into(), json!("proxmox"));
                    vars.insert("proxmox_url".into(), json!(opts.url));
                    vars.insert("proxmox_node".into(), json!(node));
                    vars.insert("proxmox_vmid".into(), item.get("vmid").cloned().unwrap_or(Json::Null));
                    if !opts.validate_certs {
                        vars.insert("proxmox_validate_certs".into(), json!(false));
                    }
                    if let Some((user, id, secret)) = &opts.token_vars {
                        vars.insert("proxmox_user".into(), json!(user));
                        vars.insert("proxmox_token_id".into(), json!(id));
                        vars.insert("proxmox_token_secret".into(), json!(secret));
                    }
                }
                if opts.want_facts {
                    let base = format!("nodes/{node}/{kind}/{vmid}");
                    let current = get(&format!("{base}/status/current"))?;
                    if let Some(s) = current.get("status") {
                        vars.insert(fact("status"), s.clone());
                    }
                    if kind == "qemu" {
                        vars.insert(fact("qmpstatus"), current.get("qmpstatus").cloned().unwrap_or(Json::Null));
                    }
                    let config = get(&format!("{base}/config"))?;
                    for (key, value) in config.as_object().into_iter().flatten() {
                        config_fact(vars, &fact, key, value);
                        if key == "agent" && kind == "qemu" && agent_enabled(&crate::vars::text(value)) {
                            // As the plugin: an agent that does not answer adds nothing.
                            if let Ok(ifaces) = get(&format!("{base}/agent/network-get-interfaces")) {
                                let list = agent_interfaces(&ifaces);
                                if !list.is_empty() {
                                    vars.insert(fact("agent_interfaces"), json!(list));
                                }
                            }
                        }
                    }
                    let snapshots = get(&format!("{base}/snapshot"))?;
                    let names: Vec<Json> = snapshots
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.get("name").and_then(Json::as_str))
                        .filter(|n| *n != "current")
                        .map(|n| json!(n))
                        .collect();
                    vars.insert(fact("snapshots"), json!(names));
                }
                if template {
                    member(&mut groups, &group("all_templates"), name);
                } else {
                    member(&mut groups, &group(&format!("all_{kind}")), name);
                    member(&mut groups, &group(&format!("{node}_{kind}")), name);
                    member(&mut groups, &group(&format!("all_{status}")), name);
                }
            }
        }
    }
    let pools = get("pools")?;
    for p in pools.as_array().into_iter().flatten() {
        let Some(id) = p.get("poolid").and_then(Json::as_str) else { continue };
        let g = group(&format!("pool_{id}"));
        ensure(&mut groups, &g);
        let pool = get(&format!("pools/{id}"))?;
        for m in pool.get("members").and_then(Json::as_array).into_iter().flatten() {
            if let Some(name) = m.get("name").and_then(Json::as_str).filter(|n| hostvars.contains_key(*n)) {
                member(&mut groups, &g, name);
            }
        }
    }
    let mut list = Map::new();
    let children: Vec<Json> = groups.keys().map(|g| json!(g)).collect();
    let grouped: std::collections::BTreeSet<String> = groups
        .values()
        .flat_map(|g| g["hosts"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    let ungrouped: Vec<Json> = hostvars.keys().filter(|h| !grouped.contains(*h)).map(|h| json!(h)).collect();
    list.insert("_meta".into(), json!({ "hostvars": hostvars }));
    list.insert("all".into(), json!({ "children": children }));
    list.extend(groups);
    if !ungrouped.is_empty() {
        list.insert("ungrouped".into(), json!({ "hosts": ungrouped }));
    }
    Ok(Json::Object(list))
}

/// One configuration key as the plugin turns it into a variable.
fn config_fact(vars: &mut Map<String, Json>, fact: &dyn Fn(&str) -> String, key: &str, value: &Json) {
    let key = key.to_lowercase();
    let mut value = value.clone();
    if let Json::String(s) = &value {
        let disk = key == "rootfs" || ["virtio", "sata", "ide", "scsi"].iter().any(|p| key.starts_with(p));
        let s = if disk { format!("disk_image={s}") } else { s.clone() };
        if key == "tags" {
            let parsed: Vec<Json> = s.trim().replace(',', ";").split(';').map(|t| json!(t.trim())).collect();
            vars.insert(fact("tags_parsed"), json!(parsed));
            value = json!(s);
        } else if key != "description" && s.split(',').all(|part| part.contains('=')) {
            let dict: Map<String, Json> = s.split(',').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), json!(v))).collect();
            value = Json::Object(dict);
        } else {
            value = json!(s);
        }
    }
    vars.insert(fact(&key), value);
}

/// `agent/network-get-interfaces`' result as the plugin keeps it.
fn agent_interfaces(data: &Json) -> Vec<Json> {
    let result = data.get("result").unwrap_or(data);
    if result.get("error").is_some() {
        return Vec::new();
    }
    result
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let ips: Vec<Json> = i
                .get("ip-addresses")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(|a| json!(format!("{}/{}", crate::vars::text(&a["ip-address"]), crate::vars::text(&a["prefix"]))))
                .collect();
            json!({"name": i.get("name").cloned().unwrap_or(Json::Null), "mac-address": i.get("hardware-address").and_then(Json::as_str).unwrap_or(""), "ip-addresses": ips})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe_as_ansible_does() {
        assert_eq!(to_safe("proxmox_foo-bar baz"), "proxmox_foo_barbaz");
        assert_eq!(to_safe("proxmox_pool_prod.eu"), "proxmox_pool_prod_eu");
    }

    #[test]
    fn config_keys_become_variables_as_the_plugin_makes_them() {
        let mut vars = Map::new();
        let fact = |k: &str| to_safe(&format!("proxmox_{k}"));
        config_fact(&mut vars, &fact, "net0", &json!("virtio=AA:BB,bridge=vmbr0"));
        config_fact(&mut vars, &fact, "agent", &json!("1"));
        config_fact(&mut vars, &fact, "scsi0", &json!("local-lvm:vm-100-disk-0,size=32G"));
        config_fact(&mut vars, &fact, "tags", &json!("web;prod"));
        config_fact(&mut vars, &fact, "description", &json!("a=b"));
        config_fact(&mut vars, &fact, "cores", &json!(2));
        assert_eq!(vars["proxmox_net0"], json!({"virtio": "AA:BB", "bridge": "vmbr0"}));
        assert_eq!(vars["proxmox_agent"], json!("1"), "a bare value stays a string");
        assert_eq!(vars["proxmox_scsi0"], json!({"disk_image": "local-lvm:vm-100-disk-0", "size": "32G"}));
        assert_eq!(vars["proxmox_tags_parsed"], json!(["web", "prod"]));
        assert_eq!(vars["proxmox_description"], json!("a=b"));
        assert_eq!(vars["proxmox_cores"], json!(2));
    }

    #[test]
    fn options_that_would_change_the_result_are_refused() {
        let env = |_: &str| None;
        let base = json!({"plugin": "community.proxmox.proxmox", "url": "https://pve:8006", "user": "u@pve", "token_id": "t", "token_secret": "s3cret"});
        assert!(options(&base, &env).is_ok());
        for (k, v) in [("keyed_groups", json!([{"key": "proxmox_tags_parsed"}])), ("filters", json!(["x"])), ("password", json!("p"))] {
            let mut o = base.clone();
            o[k] = v;
            let e = options(&o, &env).err().unwrap();
            assert!(e.contains(k) || e.contains("password"), "{e}");
        }
        let mut o = base.clone();
        o["nosuch"] = json!(1);
        assert!(options(&o, &env).err().unwrap().contains("'nosuch' is not supported"));
        let no_token = json!({"plugin": "community.proxmox.proxmox", "user": "u@pve"});
        assert!(options(&no_token, &env).err().unwrap().contains("both token_id and token_secret"));
    }
}
