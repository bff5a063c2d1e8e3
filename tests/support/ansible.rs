//! Running ansible-playbook and gafix side by side on identical containers: the tools, the
//! inventory both read, and their recaps in one shape.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use super::{root, Host, Kind};

/// ansible-playbook from the venv tests/run creates (next to GAFIX_ANSIBLE_INVENTORY).
pub fn ansible_playbook() -> PathBuf {
    let inventory =
        std::env::var_os("GAFIX_ANSIBLE_INVENTORY").map(PathBuf::from).unwrap_or_else(|| root().join(".venv/bin/ansible-inventory"));
    let bin = inventory.with_file_name("ansible-playbook");
    assert!(bin.is_file(), "ansible-playbook is needed next to {} (tests/run installs ansible-core in .venv)", inventory.display());
    bin
}

/// A container with python3 (Ansible's modules need it; gafix does not, but both tools
/// get the same kind of host).
pub fn python_container(prefix: &str) -> Host {
    Host::start_with(prefix, Kind::Container, &["--python"])
}

/// An inventory (`DIR/hosts.yml`) addressing the container under each of `names`, logging
/// in as the test user when `with_user` (else as whoever the play says).
pub fn inventory(host: &Host, dir: &Path, names: &[&str], with_user: bool) -> PathBuf {
    let mut text = String::from("all:\n  vars:\n    ansible_python_interpreter: /usr/bin/python3\n  hosts:\n");
    let key = Path::new(host.info["key"].as_str().unwrap());
    let known_hosts = host.info["known_hosts"].as_str().unwrap();
    for name in names {
        text += &format!(
            "    {name}:\n      ansible_host: {}\n      ansible_port: {}\n{}      ansible_ssh_private_key_file: {}\n      ansible_ssh_common_args: -o UserKnownHostsFile={known_hosts} -o IdentitiesOnly=yes\n",
            host.info["host"].as_str().unwrap(),
            host.info["port"],
            if with_user { "      ansible_user: tester\n" } else { "" },
            key.display(),
        );
    }
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("hosts.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Per host: ok, changed, unreachable, failed, skipped, rescued, ignored.
pub type Recap = BTreeMap<String, BTreeMap<String, i64>>;

/// What one tool's run gave: its recap, exit code and output.
pub struct ToolRun {
    pub recap: Recap,
    pub code: Option<i32>,
    pub stdout: String,
}

/// ansible-playbook on `book` in `dir`, with no ansible.cfg and no retry files.
/// `gathering_plays`: how many "Gathering Facts" tasks to take off the ok counts (`None`:
/// as many as the output shows).
pub fn run_ansible(inventory: &Path, book: &Path, args: &[&str], dir: &Path, gathering_plays: Option<u32>) -> ToolRun {
    let out = Command::new(ansible_playbook())
        .arg("-i")
        .arg(inventory)
        .arg(book)
        .args(args)
        .current_dir(dir)
        .env_remove("ANSIBLE_CONFIG")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "False")
        .output()
        .expect("run ansible-playbook");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let gathering = gathering_plays.unwrap_or_else(|| stdout.matches("TASK [Gathering Facts]").count() as u32);
    ToolRun { recap: ansible_recap(&stdout, gathering), code: out.status.code(), stdout }
}

/// `gafix converge` on `book` in `dir`; the recap comes from its JSON report.
pub fn run_gafix(inventory: &Path, book: &Path, args: &[&str], dir: &Path) -> ToolRun {
    let report_path = inventory.with_file_name("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["converge", "--color", "never", "-i"])
        .arg(inventory)
        .arg(book)
        .args(args)
        .arg("--json")
        .arg(&report_path)
        .current_dir(dir)
        .output()
        .expect("run gafix");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let report: Json = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap_or_else(|e| {
        panic!("{}: gafix wrote no report ({e}):\n{stdout}\n{}", book.display(), String::from_utf8_lossy(&out.stderr))
    }))
    .unwrap();
    ToolRun { recap: gafix_recap(&report), code: out.status.code(), stdout }
}

/// `h1 : ok=2 changed=1 ...` lines of ansible-playbook's PLAY RECAP; Ansible counts its
/// "Gathering Facts" task as ok, gafix reads facts without a task, so those are taken off.
pub fn ansible_recap(stdout: &str, gathering_plays: u32) -> Recap {
    let recap = stdout.split("PLAY RECAP").nth(1).unwrap_or_else(|| panic!("no PLAY RECAP in:\n{stdout}"));
    let mut out = Recap::new();
    for line in recap.lines().filter(|l| l.contains(" : ")) {
        let (host, counts) = line.split_once(" : ").unwrap();
        let mut stats: BTreeMap<String, i64> =
            counts.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.parse().unwrap())).collect();
        *stats.get_mut("ok").unwrap() -= i64::from(gathering_plays);
        out.insert(host.trim().to_string(), stats);
    }
    out
}

pub fn gafix_recap(report: &Json) -> Recap {
    let mut out = Recap::new();
    for (host, s) in report["stats"].as_object().expect("stats in the JSON report") {
        let stats = ["ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"]
            .iter()
            .map(|k| (k.to_string(), s[*k].as_i64().unwrap_or_else(|| panic!("{k} in {s}"))))
            .collect();
        out.insert(host.clone(), stats);
    }
    out
}
