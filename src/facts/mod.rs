//! Facts: what a host is, read in one round trip before the first task. The probe is a
//! read-only `sh` script built from validated names. Each kind of fact (the system,
//! packages, units, paths) owns its probe fragment, its parser and what makes it stale,
//! pyinfra-style; this file assembles them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value as Json};

mod accounts;
mod hardware;
mod packages;
mod paths;
mod system;
mod units;

pub use accounts::{Account, Group};
pub use hardware::Hardware;
pub use packages::PackageState;
pub use paths::{parse_stat, stat_script, PathStat};
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
    /// /etc/debian_version (Ansible's Debian version has its minor number from there).
    pub debian_version: String,
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
    /// Users a task names: `None` when there is no such user.
    pub users: BTreeMap<String, Option<Account>>,
    /// Every group, when a task needs them (`None`: not read).
    pub groups: Option<Vec<Group>>,
    pub ga_channel: bool,
    pub reboot_required: bool,
    /// Seconds since the apt lists were last updated (for `cache_valid_time`).
    pub apt_cache_age: Option<i64>,
    /// What Ansible's setup reads about the machine (DMI, virtualization, CPU, network...),
    /// when the plan uses Ansible's facts.
    pub hardware: Option<Hardware>,
}

/// What a probe should read besides the basics.
#[derive(Clone, Debug, Default)]
pub struct ProbeRequest {
    pub packages: Vec<String>,
    pub units: Vec<String>,
    pub paths: Vec<String>,
    /// Paths whose content's SHA-1 is read too (files `template`/`copy` may write): a file
    /// that is right costs no round trip of its own.
    pub checksums: Vec<String>,
    /// Paths whose content is read too (files `lineinfile`/`blockinfile` edit in place).
    pub contents: Vec<String>,
    /// Paths whose own link target is read (`file` with `state: link`).
    pub links: Vec<String>,
    /// Users whose `passwd` entry is read (`user`).
    pub users: Vec<String>,
    /// Users whose password hash is read too (`user` with `password`).
    pub shadow: Vec<String>,
    /// Read every group (`user`, `group`).
    pub groups: bool,
    /// Read the age of apt's package lists (only `cache_valid_time` needs it).
    pub apt_cache_age: bool,
    /// With the basics, read the machine's facts as Ansible's setup gives them (DMI, CPU,
    /// network, date...): only when the plan uses Ansible's facts, since they cost the
    /// probe two processes and a read of /proc/cpuinfo.
    pub machine: bool,
}

impl ProbeRequest {
    /// Sorted, without duplicates: one read per name.
    pub fn normalize(&mut self) {
        for list in [
            &mut self.packages,
            &mut self.units,
            &mut self.paths,
            &mut self.checksums,
            &mut self.contents,
            &mut self.users,
            &mut self.shadow,
        ] {
            list.sort();
            list.dedup();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
            && self.units.is_empty()
            && self.paths.is_empty()
            && self.checksums.is_empty()
            && self.contents.is_empty()
            && self.links.is_empty()
            && self.users.is_empty()
            && self.shadow.is_empty()
            && !self.groups
            && !self.apt_cache_age
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
        if request.machine {
            hardware::probe(&mut s);
        }
    }
    packages::probe(request, &mut s);
    units::probe(request, &mut s);
    paths::probe(request, &mut s);
    paths::probe_checksums(request, &mut s);
    paths::probe_contents(request, &mut s);
    paths::probe_links(request, &mut s);
    accounts::probe(request, &mut s);
    s
}

/// A change's script, then a re-read of `request`, in one round trip: the script runs in a
/// subshell (it may `exit`) and its exit code is the whole's. [`split_reread`] takes the
/// output apart again.
pub fn then_reread(script: &str, request: &ProbeRequest) -> String {
    format!("(\n{script}\n); rc=$?\necho '{REREAD_MARK}'\n{}exit $rc\n", probe_body(request, false))
}

const REREAD_MARK: &str = "@@reread";

/// The output of a [`then_reread`] script: the change's own output, and the probe's.
pub fn split_reread(stdout: &str) -> (&str, &str) {
    let mark = format!("{REREAD_MARK}\n");
    match stdout.rfind(&mark).filter(|&at| at == 0 || stdout[..at].ends_with('\n')) {
        Some(at) => (&stdout[..at], &stdout[at + mark.len()..]),
        None => (stdout, ""),
    }
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
            || hardware::parse(name, lines, facts)
            || packages::parse(name, lines, request, facts, &mut packages_seen)
            || units::parse(name, lines, request, facts)
            || paths::parse(name, lines, request, facts)
            || paths::parse_checksum(name, lines, request, facts)
            || paths::parse_content(name, lines, request, facts)
            || paths::parse_link(name, lines, request, facts)
            || accounts::parse(name, lines, request, facts);
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
    pub accounts: bool,
}

impl Stale {
    /// What a change makes stale, as each kind of fact says.
    pub fn after(change: Change) -> Stale {
        Stale {
            packages: packages::stale_after(change),
            units: units::stale_after(change),
            paths: paths::stale_after(change),
            accounts: accounts::stale_after(change),
        }
    }

    /// Both sets together.
    pub fn union(self, other: Stale) -> Stale {
        Stale {
            packages: self.packages || other.packages,
            units: self.units || other.units,
            paths: self.paths || other.paths,
            accounts: self.accounts || other.accounts,
        }
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

    /// Ansible's `distribution_version`: os-release's VERSION_ID, except on Debian, where
    /// Ansible takes the most precise of it and /etc/debian_version ("12.15", not "12").
    pub fn distribution_version(&self) -> String {
        let version = self.os.get("VERSION_ID").cloned().unwrap_or_default();
        let precise = |v: &str| !v.is_empty() && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let debian = self.debian_version.trim();
        if self.os.get("ID").map(String::as_str) == Some("debian")
            && precise(debian)
            && debian.matches('.').count() > version.matches('.').count()
        {
            debian.to_string()
        } else {
            version
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
        let version = self.distribution_version();
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
        put("ansible_machine", json!(self.arch));
        put("ansible_hostname", json!(self.hostname.split('.').next().unwrap_or("")));
        put("ansible_nodename", json!(self.hostname));
        // The machine's facts, read when the plan uses Ansible's facts (absent, and so
        // undefined, otherwise: never a wrong value).
        if let Some(hw) = &self.hardware {
            let fqdn = hw.fqdn(&self.hostname);
            put("ansible_domain", json!(fqdn.split_once('.').map(|(_, d)| d).unwrap_or("")));
            put("ansible_fqdn", json!(fqdn));
            put("ansible_system_vendor", json!(hw.dmi("sys_vendor")));
            put("ansible_product_name", json!(hw.dmi("product_name")));
            put("ansible_product_version", json!(hw.dmi("product_version")));
            if !hw.machine_id.is_empty() {
                put("ansible_machine_id", json!(hw.machine_id));
            }
            put("ansible_processor_vcpus", json!(hw.processor_vcpus(&self.arch)));
            if let Some(kb) = hw.memtotal_kb {
                put("ansible_memtotal_mb", json!(kb / 1024));
            }
            let (default_ipv4, all_ipv4) = hw.ipv4();
            put("ansible_default_ipv4", default_ipv4);
            put("ansible_all_ipv4_addresses", all_ipv4);
            put("ansible_date_time", hw.date_time());
            let (virt_type, virt_role) = hw.virtualization();
            put("ansible_virtualization_type", json!(virt_type));
            put("ansible_virtualization_role", json!(virt_role));
        }
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
@@stat|0\n\
@@debian_version\n12.15\n\
@@dmi\nsys_vendor=QEMU\nproduct_name=Standard PC (Q35 + ICH9, 2009)\nproduct_version=pc-q35-7.2\nproduct_family=\nbios_vendor=SeaBIOS\n\
@@virt\nexists /dev/kvm\nsystemd_container\nmodule kvm\nmodule virtio\n\
@@cpuinfo\nprocessor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 15\nmodel name\t: QEMU Virtual CPU version 2.5+\nphysical id\t: 0\nsiblings\t: 1\ncore id\t\t: 0\ncpu cores\t: 1\n\
@@meminfo\n468412 kB\n@@machine_id\n\nfaa4bcc4f0e140ee938c76b873aa5bd9\n\
@@hosts\nname 127.0.1.1 vm1.example.net vm1\naddr 127.0.1.1 vm1.example.net vm1\n\
@@ip\n1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
4: eth0    inet 192.0.2.9/24 brd 192.0.2.255 scope global secondary eth0:1\\       valid_lft forever preferred_lft forever\n\
8.8.8.8 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 1000 \\    cache \n\
@@date\n1795589529 731903224 2026 11 25 06 52 09 UTC +0000 Wednesday 3 47\n";

    fn parsed() -> Facts {
        let request = ProbeRequest {
            packages: vec!["sudo".into(), "qemu-guest-agent".into(), "absent-pkg".into()],
            units: vec!["qemu-guest-agent".into(), "nosuch".into()],
            paths: vec!["/var/run/reboot-required".into()],
            checksums: Vec::new(),
            contents: Vec::new(),
            links: Vec::new(),
            users: Vec::new(),
            shadow: Vec::new(),
            groups: false,
            apt_cache_age: true,
            machine: true,
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
        assert_eq!(ga.bound_devices, [("dev-virtio\\x2dports-org.qemu.guest_agent.0.device".to_string(), Some(true))]);
        assert!(!f.units["nosuch"].exists());
        assert!(!f.paths["/var/run/reboot-required"].exists);
    }

    #[test]
    fn each_kind_says_which_changes_make_it_stale() {
        let s = |packages, units, paths, accounts| Stale { packages, units, paths, accounts };
        assert_eq!(Stale::after(Change::Packages), s(true, true, true, true), "a package brings and takes units and users");
        assert_eq!(Stale::after(Change::Units), s(false, true, true, false));
        assert_eq!(Stale::after(Change::Other), s(false, false, true, true));
    }

    #[test]
    fn ansible_names() {
        let v = parsed().ansible_vars();
        assert_eq!(v["ansible_distribution"], json!("Debian"));
        assert_eq!(v["ansible_distribution_major_version"], json!("12"));
        assert_eq!(v["ansible_virtualization_type"], json!("kvm"), "QEMU in DMI is kvm to Ansible, with or without KVM");
        assert_eq!(v["ansible_virtualization_role"], json!("guest"));
        assert_eq!(v["ansible_service_mgr"], json!("systemd"));
        assert_eq!(v["ansible_facts"]["os_family"], json!("Debian"));
        assert_eq!(v["ansible_distribution_version"], json!("12.15"), "Debian's minor version from /etc/debian_version");
        assert_eq!(v["ansible_system_vendor"], json!("QEMU"));
        assert_eq!(v["ansible_facts"]["product_name"], json!("Standard PC (Q35 + ICH9, 2009)"));
        assert_eq!(v["ansible_product_version"], json!("pc-q35-7.2"));
        assert_eq!(v["ansible_machine"], json!("x86_64"));
        assert_eq!(v["ansible_nodename"], json!("vm1"));
        assert_eq!(v["ansible_fqdn"], json!("vm1.example.net"));
        assert_eq!(v["ansible_domain"], json!("example.net"));
        assert_eq!(v["ansible_machine_id"], json!("faa4bcc4f0e140ee938c76b873aa5bd9"));
        assert_eq!(v["ansible_processor_vcpus"], json!(1));
        assert_eq!(v["ansible_memtotal_mb"], json!(457));
        assert_eq!(
            v["ansible_default_ipv4"],
            json!({"interface": "eth0", "address": "192.0.2.2", "gateway": "192.0.2.1", "broadcast": "192.0.2.255",
                   "netmask": "255.255.255.0", "network": "192.0.2.0", "prefix": "24", "alias": "eth0"})
        );
        assert_eq!(v["ansible_all_ipv4_addresses"], json!(["192.0.2.2", "192.0.2.9"]));
        let dt = &v["ansible_facts"]["date_time"];
        assert_eq!(dt["epoch"], json!("1795589529"));
        assert_eq!(dt["iso8601"], json!("2026-11-25T06:52:09Z"));
        assert_eq!(dt["iso8601_micro"], json!("2026-11-25T06:52:09.731903Z"));
        assert_eq!(dt["iso8601_basic"], json!("20261125T065209731903"));
        assert_eq!(
            (dt["date"].clone(), dt["weekday"].clone(), dt["tz_offset"].clone()),
            (json!("2026-11-25"), json!("Wednesday"), json!("+0000"))
        );
    }

    /// The container sample as Ansible sees it as root: PID 1's environment has container=.
    #[test]
    fn virtualization_as_ansible_decides_it() {
        let virt = |lines: &[&str], dmi: &[(&str, &str)]| {
            let hw = Hardware {
                virt: lines.iter().map(|l| l.to_string()).collect(),
                dmi: dmi.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..Default::default()
            };
            hw.virtualization()
        };
        let pair = |t: &str, r: &str| (t.to_string(), r.to_string());
        assert_eq!(virt(&["systemd_container systemd-nspawn"], &[]), pair("container", "guest"), "not root: inferred");
        assert_eq!(virt(&["env readable", "env container", "systemd_container systemd-nspawn"], &[]), pair("container", "guest"));
        assert_eq!(virt(&["env readable", "systemd_container systemd-nspawn"], &[]), pair("systemd-nspawn", "guest"));
        assert_eq!(virt(&["systemd_container lxc"], &[]), pair("lxc", "guest"));
        assert_eq!(virt(&["cgroup docker", "exists /.dockerenv", "systemd_container"], &[]), pair("docker", "guest"));
        assert_eq!(virt(&["exists /.dockerenv", "systemd_container"], &[]), pair("docker", "guest"));
        assert_eq!(virt(&["systemd_container", "module kvm"], &[("sys_vendor", "QEMU")]), pair("kvm", "guest"));
        assert_eq!(virt(&["systemd_container"], &[("product_name", "VMware Virtual Platform")]), pair("VMware", "guest"));
        assert_eq!(virt(&["systemd_container", "module kvm"], &[("sys_vendor", "Dell Inc.")]), pair("kvm", "host"));
        assert_eq!(virt(&["systemd_container"], &[("sys_vendor", "Dell Inc.")]), pair("NA", "NA"));
        assert_eq!(virt(&["systemd_container"], &[]), pair("NA", "NA"));
    }

    #[test]
    fn processor_vcpus_as_ansible_counts_them() {
        let cpuinfo = |text: &str| Hardware {
            cpuinfo: text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().into(), v.trim().into())).collect(),
            ..Default::default()
        };
        // Two sockets of 4 cores with 2 threads each: Ansible multiplies what the first says.
        let mut two_sockets = String::new();
        for cpu in 0..16 {
            two_sockets.push_str(&format!(
                "processor: {cpu}\nvendor_id: GenuineIntel\nmodel name: Xeon\nphysical id: {}\nsiblings: 8\ncore id: {}\ncpu cores: 4\n",
                cpu / 8,
                cpu % 4
            ));
        }
        assert_eq!(cpuinfo(&two_sockets).processor_vcpus("x86_64"), 16);
        // No topology lines (some VMs): one per vendor_id.
        assert_eq!(
            cpuinfo("processor: 0\nvendor_id: A\nmodel name: B\nprocessor: 1\nvendor_id: A\nmodel name: B\n").processor_vcpus("x86_64"),
            2
        );
        // ARM: the processor lines.
        assert_eq!(cpuinfo("processor: 0\nBogoMIPS: 1\nprocessor: 1\nprocessor: 2\n").processor_vcpus("aarch64"), 3);
    }

    #[test]
    fn fqdn_and_addresses_without_a_resolvable_name_or_a_route() {
        let hw = Hardware { ip: vec!["1: lo    inet 127.0.0.1/8 scope host lo\\ valid_lft forever".into()], ..Default::default() };
        assert_eq!(hw.fqdn("box"), "box", "a hostname that does not resolve is its own fqdn");
        assert_eq!(hw.ipv4(), (json!({}), json!([])), "no route: no default_ipv4; loopback addresses are not listed");
        let hw = Hardware { hosts: vec!["name 127.0.1.1 box".into(), "addr 127.0.1.1 localhost box".into()], ..Default::default() };
        assert_eq!(hw.fqdn("box"), "localhost", "the address's first name when none has a dot, as Python's getfqdn");
        assert_eq!(Hardware::default().dmi("sys_vendor"), "NA");
        assert_eq!(Hardware::default().date_time(), json!({}));
    }

    #[test]
    fn the_machine_facts_are_read_only_when_asked_for_and_undefined_otherwise() {
        let cheap = probe_script(&ProbeRequest::default(), true);
        assert!(!cheap.contains("@@cpuinfo") && !cheap.contains("ip -4"), "a plan without Ansible's facts pays nothing for them");
        let full = probe_script(&ProbeRequest { machine: true, ..Default::default() }, true);
        assert!(full.contains("@@cpuinfo") && full.contains("ip -4"));
        let mut f = parsed();
        f.hardware = None;
        let v = f.ansible_vars();
        assert!(!v.contains_key("ansible_system_vendor") && !v.contains_key("ansible_virtualization_type"));
        assert_eq!(v["ansible_os_family"], json!("Debian"), "the basics are always there");
    }

    #[test]
    fn containers_are_not_vms() {
        let mut f = parsed();
        f.virt_container = "systemd-nspawn".into();
        f.virt_vm = "none".into();
        assert!(f.is_container() && !f.is_vm());
        f.hardware.as_mut().expect("the sample has the machine's facts").virt = vec!["systemd_container systemd-nspawn".into()];
        assert_eq!(f.ansible_vars()["ansible_virtualization_type"], json!("container"), "Ansible as root, as with become");
        assert_eq!(f.ansible_vars()["ansible_virtualization_role"], json!("guest"));
    }

    #[test]
    fn probe_quotes_names() {
        let script = probe_script(
            &ProbeRequest {
                packages: vec!["g++".into()],
                units: vec!["a@b.service".into()],
                paths: vec!["/tmp/x y".into()],
                checksums: vec!["/tmp/x y".into()],
                contents: vec!["/tmp/x y".into()],
                links: Vec::new(),
                users: Vec::new(),
                shadow: Vec::new(),
                groups: false,
                apt_cache_age: false,
                machine: false,
            },
            true,
        );
        assert!(script.contains("-W -f='${Package}|${db:Status-Abbrev}|${Version}\\n' -- g++ 2>/dev/null"), "{script}");
        assert!(script.contains("set -- a@b.service\n"), "{script}");
        assert!(script.contains("'/tmp/x y'"));
    }

    /// A change and the re-read after it, in one script: the change's exit code and output
    /// stay its own (even when it exits), the probe's output is parsed as the probe's.
    #[test]
    fn a_change_brings_back_its_reread() {
        let request = ProbeRequest { packages: vec!["dpkg".into(), "gafix-no-such-package".into()], ..Default::default() };
        let script = then_reread("echo 'E: apt said this'\nexit 100", &request);
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(out.status.code(), Some(100));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (own, probe) = split_reread(&stdout);
        assert_eq!(own, "E: apt said this\n");
        let mut facts = Facts::default();
        parse_probe(probe, &request, &mut facts);
        assert!(facts.packages["dpkg"].installed.is_some(), "{probe}");
        assert_eq!(facts.packages["gafix-no-such-package"].installed, None);
        assert_eq!(split_reread("no mark\n"), ("no mark\n", ""));
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
