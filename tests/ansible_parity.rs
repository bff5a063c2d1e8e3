//! Differential test against the real Ansible: for every inventory fixture, the hosts,
//! groups and merged variables of `gafix inventory --list` equal `ansible-inventory --list`;
//! for every host pattern, `--limit P` selects the same hosts.
//!
//! ansible-inventory comes from ansible-core in a venv that `.ci/run` creates; set
//! GAFIX_ANSIBLE_INVENTORY to point elsewhere. Without it the test is skipped, except under
//! CI, where it must run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

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

fn run_json(mut cmd: Command) -> Json {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{cmd:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn ansible(bin: &Path, inventory: &Path, limit: Option<&str>) -> Json {
    let mut cmd = Command::new(bin);
    cmd.arg("-i").arg(inventory).arg("--list");
    if let Some(l) = limit {
        cmd.arg("--limit").arg(l);
    }
    // A clean, quiet Ansible: no user config, no deprecation chatter in stdout.
    cmd.env_remove("ANSIBLE_CONFIG")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "False")
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .current_dir(root());
    run_json(cmd)
}

fn gafix(inventory: &Path, limit: Option<&str>) -> Json {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gafix"));
    cmd.args(["inventory", "--list", "-i"]).arg(inventory);
    if let Some(l) = limit {
        cmd.arg("--limit").arg(l);
    }
    run_json(cmd)
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

fn fixtures() -> Vec<PathBuf> {
    let dir = root().join("tests/fixtures/inventory");
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "yml")).collect();
    out.push(dir.join("vars_dirs/hosts.yml"));
    out.sort();
    out
}

fn patterns() -> Vec<String> {
    std::fs::read_to_string(root().join("tests/fixtures/limit-patterns.txt"))
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
    let mut mismatches = Vec::new();
    let inventories = fixtures();
    assert!(inventories.len() >= 8, "at least 8 inventory fixtures");
    for inv in &inventories {
        let (a, g) = (normalize(&ansible(&bin, inv, None)), normalize(&gafix(inv, None)));
        if a != g {
            mismatches.push(format!("{}:\n  ansible: {a:?}\n  gafix:   {g:?}", inv.display()));
        }
    }
    let pats = patterns();
    assert!(pats.len() >= 15, "at least 15 limit patterns");
    let mut pattern_checks = 0;
    for inv in ["nested.yml", "ranges.yml"].map(|f| root().join("tests/fixtures/inventory").join(f)) {
        for p in &pats {
            let a = normalize(&ansible(&bin, &inv, Some(p))).0;
            // Patterns that select nothing are an error in gafix (exit 1, naming the pattern),
            // a warning in Ansible; anything else from gafix (hosts, a crash) is a mismatch.
            if a.is_empty() {
                let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
                    .args(["inventory", "--list", "-i"])
                    .arg(&inv)
                    .args(["--limit", p])
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                let empty_success = out.status.success() && normalize(&serde_json::from_slice(&out.stdout).unwrap()).0.is_empty();
                let named_error = out.status.code() == Some(1) && (stderr.contains("matches no host") || stderr.contains("leave no hosts"));
                if !empty_success && !named_error {
                    mismatches.push(format!(
                        "{} --limit '{p}': ansible selects nothing, gafix: exit {:?} {stderr}",
                        inv.display(),
                        out.status.code()
                    ));
                }
            } else {
                let g = normalize(&gafix(&inv, Some(p))).0;
                if a != g {
                    mismatches.push(format!("{} --limit '{p}':\n  ansible: {a:?}\n  gafix:   {g:?}", inv.display()));
                }
            }
            pattern_checks += 1;
        }
    }
    let total = inventories.len() + pattern_checks;
    println!(
        "parity with {}: {}/{total} ({} inventories, {pattern_checks} limit checks)",
        bin.display(),
        total - mismatches.len(),
        inventories.len()
    );
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}
