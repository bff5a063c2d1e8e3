//! Test hosts for the end-to-end tests: wraps `tests/vm/testvm`. Every host is torn down
//! when its handle drops, also when a test panics.
#![allow(dead_code)]

pub mod ansible;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn testvm() -> PathBuf {
    root().join("tests/vm/testvm")
}

/// The tool a kind of test host needs: QEMU for VMs, systemd-nspawn for containers. These
/// tests are `#[ignore]`d (so a plain `cargo test` lists them as ignored, never as passed);
/// `tests/run` runs them with `--include-ignored`, and then a missing tool is a failure
/// that says what to install, never a silent pass.
pub fn require(kind: Kind) {
    let tool = match kind {
        Kind::Vm | Kind::VmWithoutChannel => "qemu-system-x86_64",
        Kind::Libvirt | Kind::LibvirtWithoutChannel => "virsh",
        Kind::Container => "systemd-nspawn",
    };
    let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(found, "{tool} is required for this test: run tests/vm/install-deps (as root), or leave out --include-ignored");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Vm,
    VmWithoutChannel,
    Container,
    /// A VM defined in and run by libvirtd (`testvm up --libvirt`).
    Libvirt,
    LibvirtWithoutChannel,
}

pub struct Host {
    pub name: String,
    pub info: Json,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

impl Host {
    pub fn start(prefix: &str, kind: Kind) -> Host {
        Host::start_with(prefix, kind, &[])
    }

    /// Starts a host with more `testvm up`/`ct-up` options (`--python`: with python3, for Ansible).
    pub fn start_with(prefix: &str, kind: Kind, options: &[&str]) -> Host {
        require(kind);
        let name = unique(prefix);
        let mut cmd = Command::new(testvm());
        match kind {
            Kind::Vm => cmd.args(["up", &name]),
            Kind::VmWithoutChannel => cmd.args(["up", &name, "--no-ga-channel"]),
            Kind::Container => cmd.args(["ct-up", &name]),
            Kind::Libvirt => cmd.args(["up", &name, "--libvirt"]),
            Kind::LibvirtWithoutChannel => cmd.args(["up", &name, "--libvirt", "--no-ga-channel"]),
        };
        cmd.args(options);
        let out = cmd.output().expect("run testvm");
        // Whatever happened, this handle now owns the name and will tear it down.
        let mut host = Host { name: name.clone(), info: Json::Null };
        assert!(out.status.success(), "testvm could not start {name}: {}", String::from_utf8_lossy(&out.stderr));
        host.info = serde_json::from_slice(&out.stdout).expect("testvm prints JSON");
        host
    }

    /// Starts several hosts at once.
    pub fn start_all(specs: &[(&str, Kind)]) -> Vec<Host> {
        std::thread::scope(|s| {
            let handles: Vec<_> = specs.iter().map(|(p, k)| s.spawn(move || Host::start(p, *k))).collect();
            handles.into_iter().map(|h| h.join().expect("host start")).collect()
        })
    }

    fn ssh_command(&self, user: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-i", self.info["key"].as_str().unwrap()])
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.info["known_hosts"].as_str().unwrap()))
            .args(["-p", &self.info["port"].to_string()])
            .arg(format!("{user}@{}", self.info["host"].as_str().unwrap()));
        cmd
    }

    /// Runs a command on the host as the test user (sudo is passwordless for it).
    pub fn ssh(&self, command: &str) -> Output {
        self.ssh_command("tester").arg(command).output().expect("run ssh")
    }

    /// Runs a command as the test user, killed past `limit`: a host that goes down in the
    /// middle of a connection can leave ssh waiting forever (seen while a VM rebooted).
    pub fn ssh_within(&self, command: &str, limit: Duration) -> Output {
        let ssh = self.ssh_command("tester");
        Command::new("timeout")
            .args(["-s", "KILL", &limit.as_secs().max(1).to_string()])
            .arg(ssh.get_program())
            .args(ssh.get_args())
            .arg(command)
            .output()
            .expect("run timeout ssh")
    }

    /// Whether the host answers SSH as the test user within 10 s.
    pub fn answers(&self) -> bool {
        self.ssh_within("true", Duration::from_secs(10)).status.success()
    }

    /// Runs a command and returns its trimmed stdout; panics if it fails.
    pub fn sh(&self, command: &str) -> String {
        let out = self.ssh(command);
        assert!(out.status.success(), "on {}: `{command}` failed ({}): {}", self.name, out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn boot_id(&self) -> String {
        self.sh("cat /proc/sys/kernel/random/boot_id")
    }

    pub fn package_installed(&self, package: &str) -> Option<String> {
        let out = self.ssh(&format!("dpkg-query -W -f='${{db:Status-Abbrev}} ${{Version}}' {package}"));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success() && text.starts_with("ii")).then(|| text[3..].trim().to_string())
    }

    pub fn qga(&self, request: &str) -> Json {
        let out = Command::new(testvm()).args(["qga", &self.name, request]).output().expect("run testvm qga");
        assert!(out.status.success(), "qga on {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("qga prints JSON")
    }

    pub fn power_off(&self) {
        let out = Command::new(testvm()).args(["power-off", &self.name]).output().expect("run testvm");
        assert!(out.status.success(), "power-off {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
    }

    /// Waits until SSH answers with a boot id other than `old`.
    pub fn wait_for_new_boot(&self, old: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let out = self.ssh_within("cat /proc/sys/kernel/random/boot_id", Duration::from_secs(15));
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !id.is_empty() && id != old {
                return id;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        panic!("{} did not come back with a new boot id within {timeout:?}", self.name);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new(testvm()).args(["down", &self.name]).output();
    }
}

/// A working directory with an inventory for some hosts.
pub struct Fleet {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub report: Json,
}

impl Run {
    /// The task records for a host, in order.
    pub fn tasks(&self, host: &str) -> Vec<&Json> {
        self.report["tasks"].as_array().map(|a| a.iter().filter(|t| t["host"] == host).collect()).unwrap_or_default()
    }

    pub fn task(&self, host: &str, name: &str) -> &Json {
        self.tasks(host).into_iter().find(|t| t["task"] == name).unwrap_or_else(|| panic!("no task '{name}' for {host}:\n{}", self.stdout))
    }

    pub fn stats(&self, host: &str) -> &Json {
        &self.report["stats"][host]
    }

    pub fn outcome(&self, play: &str, host: &str) -> &Json {
        let play = self.report["plays"].as_array().unwrap().iter().find(|p| p["name"] == play).unwrap_or_else(|| panic!("no play {play}"));
        &play["outcomes"][host]
    }

    pub fn explain(&self) -> String {
        format!("exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write");
        p
    }

    /// An inventory for these hosts (from `testvm inventory`), plus extra YAML lines appended
    /// under `all:` if given.
    pub fn inventory(&self, hosts: &[&Host]) -> PathBuf {
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        let out = Command::new(testvm()).arg("inventory").args(&names).output().expect("testvm inventory");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let p = self.path("hosts.yml");
        std::fs::write(&p, &out.stdout).unwrap();
        p
    }

    /// Runs gafix with a JSON report; `args` come after the subcommand.
    pub fn gafix(&self, args: &[&str]) -> Run {
        self.gafix_env(args, &[])
    }

    /// Writes a one-play playbook (`become: true`, these tasks) and runs it on `inventory`.
    pub fn run_tasks(&self, inventory: &Path, name: &str, tasks: &str) -> Run {
        let indented: String = tasks.lines().map(|l| format!("    {l}\n")).collect();
        let book = self.write(name, &format!("- hosts: all\n  become: true\n  tasks:\n{indented}"));
        self.gafix(&["-i", inventory.to_str().unwrap(), book.to_str().unwrap()])
    }

    pub fn gafix_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let report = self.path(&format!("report-{}.json", COUNTER.fetch_add(1, Ordering::SeqCst)));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gafix"));
        cmd.arg("converge").args(args).arg("--json").arg(&report).args(["--roles-path", root().join("roles").to_str().unwrap()]);
        cmd.env("NO_COLOR", "1").env_remove("GAFIX_BECOME_PASSWORD").current_dir(self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run gafix");
        let report = std::fs::read_to_string(&report).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Json::Null);
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            report,
        }
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Processes whose command line holds `marker` (what a run left behind).
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}
