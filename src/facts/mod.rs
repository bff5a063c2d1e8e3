//! Facts: what a host is, read in one round trip before the first task. The probe is a
//! read-only `sh` script built from validated names. Each kind of fact (the system,
//! packages, units, paths) owns its probe fragment, its parser and what makes it stale,
//! pyinfra-style; this file assembles them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value as Json};

mod packages;
mod paths;
mod system;
mod units;

pub use packages::PackageState;
pub use paths::PathStat;
pub use units::UnitState;

pub const GA_CHANNEL: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PkgMgr {
    Apt,
    Dnf,
    Yum,
    #[default]
    Unknown,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Facts {
    pub os: BTreeMap<String, String>,
    pub kernel: String,
    pub arch: String,
    pub pid1: String,
    pub virt_vm: String,
    pub virt_container: String,
    pub boot_id: String,
    pub user: String,
    pub hostname: String,
    pub pkg_mgr: PkgMgr,
    pub packages: BTreeMap<String, PackageState>,
    pub units: BTreeMap<String, UnitState>,
    pub paths: BTreeMap<String, PathStat>,
    pub ga_channel: bool,
    pub reboot_required: bool,
    /// Seconds since the apt lists were last updated (for `cache_valid_time`).
    pub apt_cache_age: Option<i64>,
}

/// What a probe should read besides the basics.
#[derive(Clone, Debug, Default)]
pub struct ProbeRequest {
    pub packages: Vec<String>,
    pub units: Vec<String>,
    pub paths: Vec<String>,
    /// Read the age of apt's package lists (only `cache_valid_time` needs it).
    pub apt_cache_age: bool,
}

impl ProbeRequest {
    /// Sorted, without duplicates: one read per name.
    pub fn normalize(&mut self) {
        for list in [&mut self.packages, &mut self.units, &mut self.paths] {
            list.sort();
            list.dedup();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.units.is_empty() && self.paths.is_empty() && !self.apt_cache_age
    }
}

/// The probe script. It spawns as few processes as it can (shell builtins read /proc and
/// /etc): with many hosts on few controller-side cores, every process on the host shows
/// in the wall time. Every name in it was validated by the module that asked for it, and
/// is quoted as well.
pub fn probe_script(request: &ProbeRequest, basics: bool) -> String {
    probe_body(request, basics) + "exit 0\n"
}

/// The probe without its final `exit`, for appending to another script (a change and the
/// re-read of what it changed, in one round trip). Each kind of fact writes its own
/// sections (`@@name` lines), which its own parser reads back.
pub fn probe_body(request: &ProbeRequest, basics: bool) -> String {
    let mut s = String::from("LC_ALL=C; export LC_ALL\nr() { IFS= read -r v < \"$1\" && printf '%s\\n' \"$v\"; } 2>/dev/null\n");
    if basics {
        system::probe(&mut s);
    }
    packages::probe(request, &mut s);
    units::probe(request, &mut s);
    paths::probe(request, &mut s);
    s
}

/// Parses probe output into `facts` (only the sections present are replaced).
pub fn parse_probe(output: &str, request: &ProbeRequest, facts: &mut Facts) {
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in output.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            sections.push((name, Vec::new()));
        } else if let Some((_, lines)) = sections.last_mut() {
            lines.push(line);
        }
    }
    let mut packages_seen = false;
    for (name, lines) in &sections {
        let _ = system::parse(name, lines, facts)
            || packages::parse(name, lines, request, facts, &mut packages_seen)
            || units::parse(name, lines, request, facts)
            || paths::parse(name, lines, request, facts);
    }
}

/// The first non-empty line of a section, trimmed.
fn first(lines: &[&str]) -> String {
    lines.iter().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string()).unwrap_or_default()
}

/// Which kinds of facts are stale (to be re-read when next needed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stale {
    pub packages: bool,
    pub units: bool,
    pub paths: bool,
}

impl Stale {
    /// What a change makes stale, as each kind of fact says.
    pub fn after(change: Change) -> Stale {
        Stale { packages: packages::stale_after(change), units: units::stale_after(change), paths: paths::stale_after(change) }
    }

    /// Both sets together.
    pub fn union(self, other: Stale) -> Stale {
        Stale { packages: self.packages || other.packages, units: self.units || other.units, paths: self.paths || other.paths }
    }
}

/// What a task changed on a host, which decides the facts that are stale after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Packages installed, upgraded or removed (they bring and take units too).
    Packages,
    /// Units started, stopped, enabled...
    Units,
    /// Anything else a command may have done.
    Other,
}

impl Facts {
    pub fn is_systemd(&self) -> bool {
        self.pid1 == "systemd"
    }

    pub fn is_container(&self) -> bool {
        !self.virt_container.is_empty() && self.virt_container != "none"
    }

    pub fn is_vm(&self) -> bool {
        !self.virt_vm.is_empty() && self.virt_vm != "none" && !self.is_container()
    }

    pub fn os_family(&self) -> String {
        let id = self.os.get("ID").map(String::as_str).unwrap_or("");
        let like = self.os.get("ID_LIKE").map(String::as_str).unwrap_or("");
        let has = |w: &str| id == w || like.split_whitespace().any(|l| l == w);
        if has("debian") || has("ubuntu") {
            "Debian".into()
        } else if has("rhel") || has("fedora") || has("centos") {
            "RedHat".into()
        } else if has("suse") {
            "Suse".into()
        } else if has("arch") {
            "Archlinux".into()
        } else {
            capitalize(id)
        }
    }

    /// Ansible-named variables for `when:` and templates.
    pub fn ansible_vars(&self) -> serde_json::Map<String, Json> {
        let id = self.os.get("ID").cloned().unwrap_or_default();
        let distribution = match id.as_str() {
            "rhel" => "RedHat".to_string(),
            "centos" => "CentOS".to_string(),
            "opensuse-leap" => "openSUSE Leap".to_string(),
            other => capitalize(other),
        };
        let version = self.os.get("VERSION_ID").cloned().unwrap_or_default();
        let (virt_type, virt_role) = if self.is_container() {
            (self.virt_container.clone(), "guest")
        } else if self.is_vm() {
            (self.virt_vm.clone(), "guest")
        } else {
            ("NA".into(), "NA")
        };
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Json| {
            m.insert(k.to_string(), v);
        };
        put("ansible_os_family", json!(self.os_family()));
        put("ansible_distribution", json!(distribution));
        put("ansible_distribution_version", json!(version));
        put("ansible_distribution_major_version", json!(version.split('.').next().unwrap_or("")));
        put("ansible_distribution_release", json!(self.os.get("VERSION_CODENAME").cloned().unwrap_or_default()));
        put("ansible_kernel", json!(self.kernel));
        put("ansible_architecture", json!(self.arch));
        put("ansible_hostname", json!(self.hostname.split('.').next().unwrap_or("")));
        put("ansible_user_id", json!(self.user));
        put("ansible_service_mgr", json!(if self.pid1.is_empty() { "unknown" } else { &self.pid1 }));
        put(
            "ansible_pkg_mgr",
            json!(match self.pkg_mgr {
                PkgMgr::Apt => "apt",
                PkgMgr::Dnf => "dnf",
                PkgMgr::Yum => "yum",
                PkgMgr::Unknown => "unknown",
            }),
        );
        put("ansible_virtualization_type", json!(virt_type));
        put("ansible_virtualization_role", json!(virt_role));
        put("gafix_boot_id", json!(self.boot_id));
        put("gafix_ga_channel", json!(self.ga_channel));
        put("gafix_reboot_required", json!(self.reboot_required));
        let facts = Json::Object(m.clone().into_iter().map(|(k, v)| (k.trim_start_matches("ansible_").to_string(), v)).collect());
        m.insert("ansible_facts".into(), facts);
        m
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "@@os\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n\
@@kernel\n6.1.0-28-amd64\n@@arch\nx86_64\n@@pid1\nsystemd\n@@virt_container\n@@virt_vm\nqemu\n@@boot_id\nabc-123\n@@user\nroot\n@@hostname\nvm1\n\
@@pkg_mgr\napt-get\n@@ga_channel\nyes\n@@reboot_required\n@@apt_cache_age\n42\n\
@@dpkg\nsudo|ii |1.9.13p3-1+deb12u1\nqemu-guest-agent|rc |1:7.2\n\
@@units\nId=qemu-guest-agent.service\nLoadState=loaded\nUnitFileState=static\nActiveState=inactive\nSubState=dead\n\
BindsTo=\"dev-virtio\\\\x2dports-org.qemu.guest_agent.0.device\"\n\nId=nosuch.service\nLoadState=not-found\nActiveState=inactive\n\
@@devices\nId=dev-virtio\\x2dports-org.qemu.guest_agent.0.device\nActiveState=active\n\
@@stat|0\n";

    fn parsed() -> Facts {
        let request = ProbeRequest {
            packages: vec!["sudo".into(), "qemu-guest-agent".into(), "absent-pkg".into()],
            units: vec!["qemu-guest-agent".into(), "nosuch".into()],
            paths: vec!["/var/run/reboot-required".into()],
            apt_cache_age: true,
        };
        let mut facts = Facts::default();
        parse_probe(SAMPLE, &request, &mut facts);
        facts
    }

    #[test]
    fn parses_every_section() {
        let f = parsed();
        assert_eq!(f.os_family(), "Debian");
        assert!(f.is_systemd() && f.is_vm() && !f.is_container());
        assert_eq!(f.pkg_mgr, PkgMgr::Apt);
        assert!(f.ga_channel && !f.reboot_required);
        assert_eq!(f.apt_cache_age, Some(42));
        assert_eq!(f.packages["sudo"].installed.as_deref(), Some("1.9.13p3-1+deb12u1"));
        assert_eq!(f.packages["qemu-guest-agent"].installed, None, "rc = config files only");
        assert_eq!(f.packages["absent-pkg"].installed, None);
        let ga = &f.units["qemu-guest-agent"];
        assert!(ga.exists() && ga.is_enabled() && !ga.is_active());
        assert_eq!(ga.bound_devices, [("dev-virtio\\x2dports-org.qemu.guest_agent.0.device".to_string(), true)]);
        assert!(!f.units["nosuch"].exists());
        assert!(!f.paths["/var/run/reboot-required"].exists);
    }

    #[test]
    fn each_kind_says_which_changes_make_it_stale() {
        let s = |packages, units, paths| Stale { packages, units, paths };
        assert_eq!(Stale::after(Change::Packages), s(true, true, true), "a package brings and takes units");
        assert_eq!(Stale::after(Change::Units), s(false, true, true));
        assert_eq!(Stale::after(Change::Other), s(false, false, true));
    }

    #[test]
    fn ansible_names() {
        let v = parsed().ansible_vars();
        assert_eq!(v["ansible_distribution"], json!("Debian"));
        assert_eq!(v["ansible_distribution_major_version"], json!("12"));
        assert_eq!(v["ansible_virtualization_type"], json!("qemu"));
        assert_eq!(v["ansible_virtualization_role"], json!("guest"));
        assert_eq!(v["ansible_service_mgr"], json!("systemd"));
        assert_eq!(v["ansible_facts"]["os_family"], json!("Debian"));
    }

    #[test]
    fn containers_are_not_vms() {
        let mut f = parsed();
        f.virt_container = "systemd-nspawn".into();
        f.virt_vm = "none".into();
        assert!(f.is_container() && !f.is_vm());
        assert_eq!(f.ansible_vars()["ansible_virtualization_type"], json!("systemd-nspawn"));
    }

    #[test]
    fn probe_quotes_names() {
        let script = probe_script(
            &ProbeRequest {
                packages: vec!["g++".into()],
                units: vec!["a@b.service".into()],
                paths: vec!["/tmp/x y".into()],
                apt_cache_age: false,
            },
            true,
        );
        assert!(script.contains("-W -f='${Package}|${db:Status-Abbrev}|${Version}\\n' -- g++ 2>/dev/null"), "{script}");
        assert!(script.contains("set -- a@b.service\n"), "{script}");
        assert!(script.contains("'/tmp/x y'"));
    }

    /// A path is data, never code: the probe for a hostile path, run by a real `sh`, runs
    /// nothing and still reports the path under its own name.
    #[test]
    fn hostile_paths_run_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let witness = dir.path().join("pwned");
        let w = witness.display();
        let hostile = [
            format!("/tmp/x'; touch {w}; echo '"),
            format!("/tmp/$(touch {w})"),
            format!("/tmp/`touch {w}`"),
            "/tmp/a\nb'\n@@stat|0\n".to_string(),
        ];
        let request = ProbeRequest { paths: hostile.to_vec(), ..Default::default() };
        let out = std::process::Command::new("sh").arg("-c").arg(probe_script(&request, false)).output().unwrap();
        assert!(out.status.success());
        assert!(!witness.exists(), "a path in the probe ran a command");
        let mut facts = Facts::default();
        parse_probe(&String::from_utf8_lossy(&out.stdout), &request, &mut facts);
        for p in &hostile {
            assert_eq!(facts.paths.get(p), Some(&PathStat::default()), "{p}");
        }
    }
}
