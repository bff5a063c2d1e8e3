use super::*;
use serde_json::json;

fn load(text: &str) -> Inventory {
    let node = yaml::parse_str(text, Path::new("inv.yml")).unwrap();
    Inventory::from_yaml(node.as_ref(), Path::new("inv.yml")).unwrap()
}

#[test]
fn nested_children_and_ungrouped() {
    let inv = load(
        "all:
  hosts:
    solo:
  children:
    site:
      children:
        web:
          hosts:
            w1:
        db:
          hosts:
            d1:
",
    );
    assert_eq!(inv.groups["ungrouped"].hosts, ["solo"]);
    assert_eq!(inv.groups_of("w1"), ["web", "site", "all"]);
    assert_eq!(inv.all_hosts(), ["solo", "w1", "d1"]);
    assert_eq!(inv.depths()["web"], 2);
}

#[test]
fn top_level_groups_hang_under_all() {
    let inv = load("web:\n  hosts:\n    w1:\n");
    assert!(inv.groups["all"].children.contains(&"web".to_string()));
    assert!(inv.groups["ungrouped"].hosts.is_empty());
}

#[test]
fn precedence_all_parent_child_host() {
    let inv = load(
        "all:
  vars: {v: all, a: 1}
  children:
    parent:
      vars: {v: parent, p: 1}
      children:
        child:
          vars: {v: child}
          hosts:
            h1: {v: host}
            h2:
",
    );
    let h1 = inv.host_vars("h1");
    assert_eq!(Json::Object(h1), json!({"v": "host", "a": 1, "p": 1}));
    assert_eq!(inv.host_vars("h2")["v"], json!("child"));
}

#[test]
fn same_depth_groups_merge_alphabetically_and_priority_wins() {
    let inv = load(
        "all:
  children:
    zeta: {hosts: {h: }, vars: {v: zeta}}
    alpha: {hosts: {h: }, vars: {v: alpha}}
",
    );
    assert_eq!(inv.host_vars("h")["v"], json!("zeta"));
    let inv = load(
        "all:
  children:
    zeta: {hosts: {h: }, vars: {v: zeta, ansible_group_priority: 0}}
    alpha: {hosts: {h: }, vars: {v: alpha}}
",
    );
    assert_eq!(inv.host_vars("h")["v"], json!("alpha"));
}

#[test]
fn ranges_ports_and_yaml_1_1_booleans() {
    let inv = load("all:\n  hosts:\n    web[01:03]:2222:\n      ansible_become: yes\n");
    assert_eq!(inv.all_hosts(), ["web01", "web02", "web03"]);
    assert_eq!(inv.host_vars("web02")["ansible_port"], json!(2222));
    assert_eq!(inv.host_vars("web02")["ansible_become"], json!(true));
}

#[test]
fn unknown_keys_warn_with_their_place() {
    let inv = load("all:\n  hosts:\n    h:\n  host:\n    x:\n");
    assert_eq!(inv.warnings.len(), 1);
    assert_eq!(inv.warnings[0].location.line, 4);
    assert!(inv.warnings[0].message.contains("unexpected key 'host'"), "{}", inv.warnings[0]);
}

#[test]
fn bad_shapes_are_errors_with_locations() {
    let node = yaml::parse_str("all:\n  hosts:\n    web[1:x]:\n  vars: [1]\n", Path::new("bad.yml")).unwrap();
    let err = Inventory::from_yaml(node.as_ref(), Path::new("bad.yml")).unwrap_err().to_string();
    assert!(err.contains("bad.yml:3:5: host 'web[1:x]'"), "{err}");
    assert!(err.contains("bad.yml:4:9: 'vars' of group 'all' must be a mapping"), "{err}");
    let node = yaml::parse_str("- a\n", Path::new("list.yml")).unwrap();
    assert!(Inventory::from_yaml(node.as_ref(), Path::new("list.yml")).unwrap_err().to_string().contains("list.yml:1:1"));
}

#[test]
fn child_loops_are_rejected() {
    let node = yaml::parse_str("a:\n  children:\n    b:\n      children:\n        a:\n", Path::new("loop.yml")).unwrap();
    let err = Inventory::from_yaml(node.as_ref(), Path::new("loop.yml")).unwrap_err().to_string();
    assert!(err.contains("would make a loop"), "{err}");
}

#[test]
fn group_and_host_vars_files_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hosts.yml"),
        "all:\n  vars: {x: inv_all}\n  children:\n    web:\n      vars: {y: inv_web}\n      hosts:\n        w1: {z: inv_host}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("group_vars/web")).unwrap();
    std::fs::create_dir_all(dir.path().join("host_vars")).unwrap();
    std::fs::write(dir.path().join("group_vars/all.yml"), "x: file_all\ny: file_all\n").unwrap();
    std::fs::write(dir.path().join("group_vars/web/10.yml"), "y: file_web_10\n").unwrap();
    std::fs::write(dir.path().join("group_vars/web/20.json"), "{\"y\": \"file_web_20\"}").unwrap();
    std::fs::write(dir.path().join("host_vars/w1.yaml"), "z: file_host\n").unwrap();
    let inv = Inventory::load(dir.path().join("hosts.yml").to_str().unwrap()).unwrap();
    let vars = inv.host_vars("w1");
    assert_eq!(vars["x"], json!("file_all"));
    assert_eq!(vars["y"], json!("file_web_20"));
    assert_eq!(vars["z"], json!("file_host"));
}

#[test]
fn host_list_inventories() {
    let inv = Inventory::load("a.example,b.example:2200,").unwrap();
    assert_eq!(inv.all_hosts(), ["a.example", "b.example"]);
    assert_eq!(inv.host_vars("b.example")["ansible_port"], json!(2200));
}

#[test]
fn secrets_are_masked() {
    let mut vars = Vars::new();
    vars.insert("ansible_become_password".into(), json!("hunter2"));
    vars.insert("nested".into(), json!({"ansible_password": "x", "ok": 1}));
    mask_secrets(&mut vars);
    assert_eq!(Json::Object(vars), json!({"ansible_become_password": MASK, "nested": {"ansible_password": MASK, "ok": 1}}));
}

#[test]
fn symlink_loops_in_vars_directories_are_walked_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts.yml"), "all:\n  hosts:\n    h1:\n").unwrap();
    let all = dir.path().join("group_vars/all");
    std::fs::create_dir_all(&all).unwrap();
    std::fs::write(all.join("main.yml"), "x: 1\n").unwrap();
    std::os::unix::fs::symlink(&all, all.join("again")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("group_vars"), all.join("up")).unwrap();
    let inv = Inventory::load(dir.path().join("hosts.yml").to_str().unwrap()).unwrap();
    assert_eq!(inv.host_vars("h1")["x"], json!(1));
    assert!(inv.warnings.iter().any(|w| w.message.contains("symlink loop")), "{:?}", inv.warnings);
}

#[test]
fn a_large_flat_group_loads_every_host_once() {
    let text: String = "all:\n  hosts:\n".to_string() + &(0..20_000).map(|i| format!("    h{i}:\n")).collect::<String>();
    let inv = load(&text);
    assert_eq!(inv.all_hosts().len(), 20_000);
    assert_eq!(inv.groups["ungrouped"].hosts.len(), 20_000);
    assert_eq!(crate::inventory::select(&inv, "all:!h1*").unwrap().len(), 20_000 - 11_111);
}
