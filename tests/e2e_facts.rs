//! Facts under Ansible's names, differentially: on the same systemd-nspawn container and the
//! same QEMU VM, every fact a role may test has the value `ansible -m setup` gives it.
//!
//! Ansible needs python3 on its targets (gafix does not): the container comes from the image's
//! python root (`testvm ct-up --python`), and python3 is installed into the VM from .debs that
//! `testvm up --python` downloads once per image. Ansible gathers as root (`-b`), as it does
//! for a play with `become: true` (which is how roles that test these facts run).
//!
//! ansible-core comes from the venv that `tests/run` creates: `ansible` sits next to
//! `$GAFIX_ANSIBLE_INVENTORY`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value as Json};
use support::{Fleet, Host, Kind};

/// The facts compared, by their name in `ansible_facts` (gafix also has each as `ansible_X`).
const FACTS: &[&str] = &[
    "system_vendor",
    "product_name",
    "product_version",
    "virtualization_type",
    "virtualization_role",
    "distribution",
    "distribution_version",
    "distribution_major_version",
    "distribution_release",
    "os_family",
    "pkg_mgr",
    "service_mgr",
    "architecture",
    "machine",
    "kernel",
    "hostname",
    "nodename",
    "fqdn",
    "domain",
    "machine_id",
    "processor_vcpus",
    "memtotal_mb",
    "default_ipv4",
    "all_ipv4_addresses",
    "date_time",
];

/// Keys of `default_ipv4` that gafix must give exactly as Ansible does (when Ansible has one).
const DEFAULT_IPV4_KEYS: &[&str] = &["address", "interface", "gateway", "alias", "broadcast", "netmask", "network", "prefix"];

/// `date_time` keys that do not move between two reads a few seconds apart.
const DATE_TIME_STABLE: &[&str] = &["tz", "tz_offset"];

/// `date_time` keys that hold seconds since the epoch.
const DATE_TIME_EPOCH: &[&str] = &["epoch", "epoch_int"];

fn ansible_bin() -> PathBuf {
    let inventory = std::env::var_os("GAFIX_ANSIBLE_INVENTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::root().join(".venv/bin/ansible-inventory"));
    let bin = Path::new(&inventory).parent().expect("a path to ansible-inventory").join("ansible");
    assert!(bin.is_file(), "ansible is needed next to {} (tests/run installs ansible-core in .venv)", inventory.display());
    bin
}

/// `ansible HOST -m setup -b`: the facts, without their `ansible_` prefix.
fn ansible_setup(inventory: &Path, host: &str) -> serde_json::Map<String, Json> {
    let out = Command::new(ansible_bin())
        .args(["-i", inventory.to_str().unwrap(), host, "-m", "setup", "-b"])
        .env("ANSIBLE_PYTHON_INTERPRETER", "auto_silent")
        .output()
        .expect("run ansible");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ansible -m setup on {host}: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let json: Json = serde_json::from_str(&stdout[stdout.find('{').expect("JSON after '=>'")..]).expect("ansible prints JSON");
    json["ansible_facts"]
        .as_object()
        .expect("ansible_facts")
        .iter()
        .map(|(k, v)| (k.strip_prefix("ansible_").unwrap_or(k).to_string(), v.clone()))
        .collect()
}

/// gafix's facts, read back from a playbook: `ansible_facts` and every `ansible_X` variable,
/// as JSON in an assert's message.
fn gafix_facts(fleet: &Fleet, inventory: &Path, host: &str) -> (Json, Json) {
    let vars: Vec<String> = FACTS.iter().map(|f| format!("'{f}': ansible_{f}")).collect();
    let expr = format!("{{{{ {{'facts': ansible_facts, 'vars': {{{}}}}} | tojson }}}}", vars.join(", "));
    let book = fleet.write(
        "facts.yml",
        &format!(
            "- hosts: all\n  become: true\n  tasks:\n    - name: facts\n      assert:\n        that: ['true']\n        success_msg: {}\n",
            json!(expr)
        ),
    );
    let run = fleet.gafix(&["-i", inventory.to_str().unwrap(), book.to_str().unwrap(), "-l", host]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let msg = run.task(host, "facts")["msg"].as_str().expect("a message").to_string();
    let both: Json = serde_json::from_str(&msg).unwrap_or_else(|e| panic!("{e}: {msg}"));
    (both["facts"].clone(), both["vars"].clone())
}

fn epoch(v: &Json) -> i64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("an epoch: {v}"))
}

/// Every difference between gafix's facts and Ansible's on one host.
fn differences(host: &str, ansible: &serde_json::Map<String, Json>, facts: &Json, vars: &Json) -> Vec<String> {
    let mut out = Vec::new();
    for &name in FACTS {
        let want = ansible.get(name).unwrap_or_else(|| panic!("{host}: Ansible has no {name}"));
        let got = &facts[name];
        if &vars[name] != got {
            out.push(format!("{host}: ansible_{name} = {} but ansible_facts['{name}'] = {got}", vars[name]));
        }
        match name {
            "default_ipv4" => {
                let want = want.as_object().unwrap();
                if want.contains_key("address") {
                    for key in DEFAULT_IPV4_KEYS {
                        if got[key] != want[*key] {
                            out.push(format!("{host}: default_ipv4.{key}: gafix {} ansible {}", got[key], want[*key]));
                        }
                    }
                } else if got != &json!({}) {
                    out.push(format!("{host}: default_ipv4: gafix {got}, ansible has no default route ({})", Json::Object(want.clone())));
                }
            }
            "date_time" => {
                for key in DATE_TIME_STABLE {
                    if got[key] != want[*key] {
                        out.push(format!("{host}: date_time.{key}: gafix {} ansible {}", got[key], want[*key]));
                    }
                }
                // The two reads are a playbook run apart: well within a minute.
                for key in DATE_TIME_EPOCH {
                    if got[key].is_null() || (epoch(&got[key]) - epoch(&want[*key])).abs() > 60 {
                        out.push(format!("{host}: date_time.{key}: gafix {} ansible {}", got[key], want[*key]));
                    }
                }
            }
            _ if got != want => out.push(format!("{host}: {name}: gafix {got} ansible {want}")),
            _ => {}
        }
    }
    out
}

fn compare(host: &Host) -> Vec<String> {
    let fleet = Fleet::new();
    let inventory = fleet.inventory(&[host]);
    let ansible = ansible_setup(&inventory, &host.name);
    let (facts, vars) = gafix_facts(&fleet, &inventory, &host.name);
    println!(
        "{}: Ansible says {}",
        host.name,
        json!(FACTS.iter().map(|f| (f.to_string(), ansible[*f].clone())).collect::<serde_json::Map<_, _>>())
    );
    differences(&host.name, &ansible, &facts, &vars)
}

#[test]
#[ignore = "needs test hosts: run tests/run"]
fn facts_match_ansible_setup_on_a_container_and_a_vm() {
    let _ = ansible_bin();
    let hosts = start_python_hosts(&[("facts-ct", Kind::Container), ("facts-vm", Kind::Vm)]);
    let mut diffs = Vec::new();
    for host in &hosts {
        diffs.extend(compare(host));
    }
    // The container and the VM differ where it matters (virtualization, DMI), so that both
    // branches of each fact are compared.
    assert!(diffs.is_empty(), "gafix's facts differ from Ansible's:\n{}", diffs.join("\n"));
}

/// Hosts with python3 (for Ansible), started at once.
fn start_python_hosts(specs: &[(&str, Kind)]) -> Vec<Host> {
    std::thread::scope(|s| {
        let handles: Vec<_> = specs.iter().map(|(p, k)| s.spawn(move || Host::start_with(p, *k, &["--python"]))).collect();
        handles.into_iter().map(|h| h.join().expect("host start")).collect()
    })
}
