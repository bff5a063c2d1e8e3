//! Differential test against the real Ansible: for every inventory fixture, the hosts,
//! groups and merged variables of `gafix inventory --list` equal `ansible-inventory --list`;
//! for every host pattern, `--limit P` selects the same hosts.
//!
//! ansible-inventory comes from ansible-core in a venv that `.ci/run` creates; set
//! GAFIX_ANSIBLE_INVENTORY to point elsewhere. Without it the test is skipped, except under
//! CI, where it must run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ansible_inventory() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GAFIX_ANSIBLE_INVENTORY") {
        return Some(PathBuf::from(p));
    }
    let venv = root().join(".venv/bin/ansible-inventory");
    if venv.is_file() {
        return Some(venv);
    }
    let which = Command::new("sh").args(["-c", "command -v ansible-inventory"]).output().ok()?;
    which.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&which.stdout).trim()))
}

/// One inventory, given to both tools the same way: `-i` sources (none: ansible.cfg's) run
/// from `cwd`.
struct Case {
    label: String,
    sources: Vec<String>,
    /// What ansible-inventory is given instead, when it cannot read gafix's sources itself.
    ansible_sources: Option<Vec<String>>,
    cwd: PathBuf,
}

fn command(bin: &Path, case: &Case, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    for s in case.ansible_sources.as_ref().unwrap_or(&case.sources) {
        cmd.arg("-i").arg(s);
    }
    cmd.args(args).current_dir(&case.cwd);
    cmd
}

fn ansible(bin: &Path, case: &Case, args: &[&str]) -> Output {
    let mut cmd = command(bin, case, args);
    // A clean, quiet Ansible: no user config (unless the case brings one), no chatter.
    cmd.env_remove("ANSIBLE_CONFIG").env("ANSIBLE_DEPRECATION_WARNINGS", "False").env("ANSIBLE_LOCALHOST_WARNING", "False");
    cmd.output().expect("run ansible-inventory")
}

fn gafix(case: &Case, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gafix"));
    cmd.arg("inventory");
    for s in &case.sources {
        cmd.arg("-i").arg(s);
    }
    cmd.args(args).current_dir(&case.cwd).env_remove("ANSIBLE_CONFIG");
    cmd.output().expect("run gafix")
}

fn json_of(out: &Output, what: &str) -> Json {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Secrets as gafix prints them (masked), so that the rest compares exactly.
fn masked(mut v: Json) -> Json {
    fn walk(v: &mut Json) {
        if let Some(m) = v.as_object_mut() {
            for (k, val) in m.iter_mut() {
                if ["ansible_become_password", "ansible_become_pass", "ansible_password", "ansible_ssh_pass"].contains(&k.as_str()) {
                    *val = Json::String("********".into());
                } else {
                    walk(val);
                }
            }
        }
    }
    walk(&mut v);
    v
}

type Groups = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

/// Hosts, groups (hosts and children) and masked host variables, order-independent.
fn normalize(v: &Json) -> (BTreeSet<String>, Groups, BTreeMap<String, Json>) {
    let mut hosts = BTreeSet::new();
    let mut groups = Groups::new();
    for (name, g) in v.as_object().unwrap() {
        if name == "_meta" {
            continue;
        }
        let list = |k: &str| -> BTreeSet<String> {
            g.get(k).and_then(Json::as_array).map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect()).unwrap_or_default()
        };
        let (h, c) = (list("hosts"), list("children"));
        hosts.extend(h.iter().cloned());
        groups.insert(name.clone(), (h, c));
    }
    let mut vars = BTreeMap::new();
    if let Some(hv) = v["_meta"]["hostvars"].as_object() {
        for (h, val) in hv {
            let mut val = val.clone();
            if let Some(m) = val.as_object_mut() {
                for secret in ["ansible_become_password", "ansible_become_pass", "ansible_password", "ansible_ssh_pass"] {
                    if m.contains_key(secret) {
                        m.insert(secret.into(), Json::String("********".into()));
                    }
                }
            }
            vars.insert(h.clone(), val);
        }
    }
    (hosts, groups, vars)
}

/// Every inventory case: the YAML fixtures, INI, scripts, JSON, several sources, a
/// directory, ansible.cfg's `inventory`, a host list.
fn cases(scratch: &Path, bin: &Path) -> Vec<Case> {
    let dir = root().join("tests/fixtures/inventory");
    let one = |label: &str, sources: &[&str]| Case {
        label: label.into(),
        sources: sources.iter().map(|s| dir.join(s).display().to_string()).collect(),
        ansible_sources: None,
        cwd: root(),
    };
    let mut out: Vec<Case> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| Case {
            label: p.file_name().unwrap().to_string_lossy().into(),
            sources: vec![p.display().to_string()],
            ansible_sources: None,
            cwd: root(),
        })
        .collect();
    out.sort_by(|a, b| a.label.cmp(&b.label));
    out.push(one("yaml with group_vars/host_vars", &["vars_dirs/hosts.yml"]));
    out.push(one("INI without extension", &["ini/hosts"]));
    out.push(one("INI .ini", &["ini/hosts.ini"]));
    out.push(one("script with _meta", &["script/inventory.sh"]));
    out.push(one("script without _meta (--host)", &["script/nometa.sh"]));
    out.push(one("INI then YAML", &["multi/one/hosts.ini", "multi/two/hosts.yml"]));
    out.push(one("YAML then INI", &["multi/two/hosts.yml", "multi/one/hosts.ini"]));
    out.push(one("a directory", &["dir"]));
    out.push(one("INI, a directory and a script", &["ini/hosts", "dir", "script/inventory.sh"]));
    out.push(Case { label: "ansible.cfg inventory".into(), sources: vec![], ansible_sources: None, cwd: dir.join("cfg") });
    out.push(Case { label: "host list".into(), sources: vec!["h1,h2:2222, h3".into()], ansible_sources: None, cwd: root() });
    // Ansible reads the --list shape only from a script: gafix reads the file itself.
    let cat = scratch.join("cat-list-json");
    std::fs::write(&cat, format!("#!/bin/sh\ncat '{}'\n", dir.join("script/list.json").display())).unwrap();
    std::fs::set_permissions(&cat, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    out.push(Case {
        label: "JSON in --list shape".into(),
        sources: vec![dir.join("script/list.json").display().to_string()],
        ansible_sources: Some(vec![cat.display().to_string()]),
        cwd: root(),
    });
    // ansible-inventory --list --export (group vars kept in their groups), saved and read back.
    let ini = dir.join("ini/hosts").display().to_string();
    let export = Command::new(bin).args(["-i", &ini, "--list", "--export"]).env("ANSIBLE_DEPRECATION_WARNINGS", "False").output().unwrap();
    assert!(export.status.success(), "ansible-inventory --export: {}", String::from_utf8_lossy(&export.stderr));
    let export_path = scratch.join("export.json");
    std::fs::write(&export_path, &export.stdout).unwrap();
    out.push(Case {
        label: "JSON from ansible-inventory --list --export".into(),
        sources: vec![export_path.display().to_string()],
        ansible_sources: Some(vec![ini]),
        cwd: root(),
    });
    out
}

fn patterns(file: &str) -> Vec<String> {
    std::fs::read_to_string(root().join("tests/fixtures").join(file))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs ansible-core: tests/run installs it into .venv and runs this (cargo test -- --include-ignored)"]
fn inventory_and_limit_parity_with_ansible() {
    let bin = ansible_inventory().expect("ansible-inventory is required: run tests/run, or set GAFIX_ANSIBLE_INVENTORY");
    let scratch = tempfile::tempdir().unwrap();
    let mut mismatches = Vec::new();
    let cases = cases(scratch.path(), &bin);
    assert!(cases.len() >= 20, "at least 20 inventory cases");
    let mut checks = 0;
    for case in &cases {
        let (a, g) = (masked(json_of(&ansible(&bin, case, &["--list"]), &case.label)), json_of(&gafix(case, &["--list"]), &case.label));
        checks += 1;
        if a != g {
            mismatches.push(format!("{} --list:\n  ansible: {a}\n  gafix:   {g}", case.label));
            continue;
        }
        let (a, g) = (ansible(&bin, case, &["--graph"]), gafix(case, &["--graph"]));
        checks += 1;
        if a.stdout != g.stdout {
            mismatches.push(format!(
                "{} --graph:\n  ansible:\n{}\n  gafix:\n{}",
                case.label,
                String::from_utf8_lossy(&a.stdout),
                String::from_utf8_lossy(&g.stdout)
            ));
        }
        // --host for the first, a middle and the last host.
        let hosts: Vec<String> = a_hosts(&masked(json_of(&ansible(&bin, case, &["--list"]), &case.label)));
        for h in [hosts.first(), hosts.get(hosts.len() / 2), hosts.last()].into_iter().flatten() {
            let (a, g) = (masked(json_of(&ansible(&bin, case, &["--host", h]), h)), json_of(&gafix(case, &["--host", h]), h));
            checks += 1;
            if a != g {
                mismatches.push(format!("{} --host {h}:\n  ansible: {a}\n  gafix:   {g}", case.label));
            }
        }
    }
    let mut pattern_checks = 0;
    for case in cases.iter().filter(|c| ["nested.yml", "ranges.yml", "INI without extension"].contains(&c.label.as_str())) {
        let pats = patterns(if case.label.starts_with("INI") { "limit-patterns-ini.txt" } else { "limit-patterns.txt" });
        assert!(pats.len() >= 15, "at least 15 limit patterns");
        for p in &pats {
            let a = normalize(&json_of(&ansible(&bin, case, &["--list", "--limit", p]), p)).0;
            // Patterns that select nothing are an error in gafix (exit 1, naming the pattern),
            // a warning in Ansible; anything else from gafix (hosts, a crash) is a mismatch.
            if a.is_empty() {
                let out = gafix(case, &["--list", "--limit", p]);
                let stderr = String::from_utf8_lossy(&out.stderr);
                let empty_success = out.status.success() && normalize(&serde_json::from_slice(&out.stdout).unwrap()).0.is_empty();
                let named_error = out.status.code() == Some(1) && (stderr.contains("matches no host") || stderr.contains("leave no hosts"));
                if !empty_success && !named_error {
                    mismatches.push(format!(
                        "{} --limit '{p}': ansible selects nothing, gafix: exit {:?} {stderr}",
                        case.label,
                        out.status.code()
                    ));
                }
            } else {
                let g = normalize(&json_of(&gafix(case, &["--list", "--limit", p]), p)).0;
                if a != g {
                    mismatches.push(format!("{} --limit '{p}':\n  ansible: {a:?}\n  gafix:   {g:?}", case.label));
                }
            }
            pattern_checks += 1;
        }
    }
    let total = checks + pattern_checks;
    println!(
        "parity with {}: {}/{total} ({} inventories: --list, --graph, --host; {pattern_checks} limit checks)",
        bin.display(),
        total - mismatches.len(),
        cases.len()
    );
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

/// The hosts of an `--list` output, in `_meta` order.
fn a_hosts(list: &Json) -> Vec<String> {
    list["_meta"]["hostvars"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}
