//! Facts: what a host is, read in one round trip before the first task. The probe is a
//! read-only `sh` script built from validated names; its output is parsed here, purely.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::shell::quote;

pub const GA_CHANNEL: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PackageState {
    /// Installed version, if installed.
    pub installed: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UnitState {
    pub load_state: String,
    pub unit_file_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// Devices the unit `BindsTo=`, with whether each is present (its device unit is active).
    pub bound_devices: Vec<(String, bool)>,
}

impl UnitState {
    pub fn is_active(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading" | "activating")
    }
    pub fn exists(&self) -> bool {
        !self.load_state.is_empty() && self.load_state != "not-found"
    }
    pub fn is_masked(&self) -> bool {
        self.load_state == "masked" || self.unit_file_state.starts_with("masked")
    }
    /// Enabled as `systemctl is-enabled` counts it: `static` units are started by others
    /// (udev for Debian's qemu-guest-agent) and count as enabled.
    pub fn is_enabled(&self) -> bool {
        matches!(self.unit_file_state.as_str(), "enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated" | "transient")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PathStat {
    pub exists: bool,
    pub kind: String,
    pub size: u64,
    pub mode: String,
    pub owner: String,
    pub group: String,
    pub mtime: i64,
}

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

/// All units in one `systemctl show`; then, only when some unit `BindsTo=` devices, one more
/// call for those devices' state. The values come quoted with doubled backslashes
/// (`"dev-virtio\\x2dports-..."`), which `printf %b` undoes.
const UNIT_PROBE: &str = r#"out=$(systemctl show -p Id,LoadState,UnitFileState,ActiveState,SubState,BindsTo -- "$@" 2>/dev/null)
printf '%s\n' "$out"
devs=''
set -f
while IFS= read -r line; do
  case $line in BindsTo=?*)
    for d in ${line#BindsTo=}; do
      d=${d#\"}; d=${d%\"}
      case $d in *.device) devs="$devs $(printf '%b' "$d")";; esac
    done;;
  esac
done <<EOF
$out
EOF
set +f
if [ -n "$devs" ]; then echo '@@devices'; systemctl show -p Id,ActiveState -- $devs 2>/dev/null; fi"#;

/// The probe script. It spawns as few processes as it can (shell builtins read /proc and
/// /etc): with many hosts on few controller-side cores, every process on the host shows
/// in the wall time. Every name in it was validated by the module that asked for it, and
/// is quoted here as well.
pub fn probe_script(request: &ProbeRequest, basics: bool) -> String {
    probe_body(request, basics) + "exit 0\n"
}

/// The probe without its final `exit`, for appending to another script (a change and the
/// re-read of what it changed, in one round trip).
pub fn probe_body(request: &ProbeRequest, basics: bool) -> String {
    let mut s = String::from("LC_ALL=C; export LC_ALL\nr() { IFS= read -r v < \"$1\" && printf '%s\\n' \"$v\"; } 2>/dev/null\n");
    if basics {
        s.push_str(
            "echo '@@os'; [ -r /etc/os-release ] && while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < /etc/os-release\n\
             echo '@@kernel'; r /proc/sys/kernel/osrelease\n\
             echo '@@arch'; r /proc/sys/kernel/arch || uname -m\n\
             echo '@@pid1'; r /proc/1/comm\n\
             echo '@@virt_container'; r /run/systemd/container || { [ -e /.dockerenv ] && echo docker; }\n\
             echo '@@virt_vm'; [ -e /run/systemd/container ] || [ -e /.dockerenv ] || systemd-detect-virt --vm 2>/dev/null\n\
             echo '@@boot_id'; r /proc/sys/kernel/random/boot_id\n\
             echo '@@user'; printf '%s\\n' \"${USER:-$(id -un)}\"\n\
             echo '@@hostname'; r /proc/sys/kernel/hostname\n\
             echo '@@pkg_mgr'; for m in apt-get dnf yum; do command -v $m >/dev/null 2>&1 && echo $m; done\n",
        );
        s.push_str(&format!("echo '@@ga_channel'; [ -e {GA_CHANNEL} ] && echo yes\n"));
        s.push_str("echo '@@reboot_required'; { [ -e /var/run/reboot-required ] && echo yes; } || { command -v needs-restarting >/dev/null 2>&1 && ! needs-restarting -r >/dev/null 2>&1 && echo yes; }\n");
    }
    if request.apt_cache_age {
        s.push_str("echo '@@apt_cache_age'; t=$(stat -c %Y /var/lib/apt/periodic/update-success-stamp 2>/dev/null || stat -c %Y /var/lib/apt/lists 2>/dev/null) && echo $(( $(date +%s) - t ))\n");
    }
    if !request.packages.is_empty() {
        let names: Vec<String> = request.packages.iter().map(|p| quote(p)).collect();
        s.push_str(&format!(
            "echo '@@dpkg'; command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${{Package}}|${{db:Status-Abbrev}}|${{Version}}\\n' -- {} 2>/dev/null\n",
            names.join(" ")
        ));
        s.push_str(&format!(
            "command -v dpkg-query >/dev/null 2>&1 || {{ echo '@@rpm'; command -v rpm >/dev/null 2>&1 && rpm -q --qf '%{{NAME}}|ii |%{{VERSION}}-%{{RELEASE}}\\n' -- {} 2>/dev/null | grep '|'; }}\n",
            names.join(" ")
        ));
    }
    if !request.units.is_empty() {
        let names: Vec<String> = request.units.iter().map(|u| quote(u)).collect();
        s.push_str(&format!("echo '@@units'; set -- {}\n{UNIT_PROBE}\n", names.join(" ")));
    }
    // A section names its path by index: the path itself (any text a task, inventory or
    // `-e` may hold) is only ever written quoted, as an argument.
    for (i, p) in request.paths.iter().enumerate() {
        s.push_str(&format!("echo '@@stat|{i}'; stat -L -c '%F|%s|%a|%U|%G|%Y' -- {} 2>/dev/null\n", quote(p)));
    }
    s
}

/// `"a\\x2db.device" "c.device"` -> the unit names.
fn bound_device_names(value: &str) -> Vec<String> {
    value.split_whitespace().map(|w| w.trim_matches('"').replace("\\\\", "\\")).filter(|w| w.ends_with(".device")).collect()
}

/// Splits `systemctl show` output into its blocks of `key=value` lines.
fn show_blocks<'a>(lines: &[&'a str]) -> Vec<Vec<(&'a str, &'a str)>> {
    let mut blocks = vec![Vec::new()];
    for line in lines {
        if line.trim().is_empty() {
            if !blocks.last().is_some_and(Vec::is_empty) {
                blocks.push(Vec::new());
            }
        } else if let Some(kv) = line.split_once('=') {
            blocks.last_mut().unwrap().push(kv);
        }
    }
    blocks.retain(|b| !b.is_empty());
    blocks
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
    let first = |lines: &[&str]| lines.iter().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string()).unwrap_or_default();
    let mut saw_packages = false;
    for (name, lines) in &sections {
        match *name {
            "os" => {
                facts.os = lines
                    .iter()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.trim_matches('"').trim_matches('\'').to_string()))
                    .collect();
            }
            "kernel" => facts.kernel = first(lines),
            "arch" => facts.arch = first(lines),
            "pid1" => facts.pid1 = first(lines),
            "virt_vm" => facts.virt_vm = first(lines),
            "virt_container" => facts.virt_container = first(lines),
            "boot_id" => facts.boot_id = first(lines),
            "user" => facts.user = first(lines),
            "hostname" => facts.hostname = first(lines),
            "pkg_mgr" => {
                facts.pkg_mgr = match lines.iter().map(|l| l.trim()).find(|l| !l.is_empty()) {
                    Some("apt-get") => PkgMgr::Apt,
                    Some("dnf") => PkgMgr::Dnf,
                    Some("yum") => PkgMgr::Yum,
                    _ => PkgMgr::Unknown,
                }
            }
            "ga_channel" => facts.ga_channel = first(lines) == "yes",
            "reboot_required" => facts.reboot_required = first(lines) == "yes",
            "apt_cache_age" => facts.apt_cache_age = first(lines).parse().ok(),
            "dpkg" | "rpm" => {
                if !saw_packages {
                    for p in &request.packages {
                        facts.packages.insert(crate::names::deb_base_name(p).to_string(), PackageState::default());
                    }
                    saw_packages = true;
                }
                for line in lines {
                    let f: Vec<&str> = line.split('|').collect();
                    if f.len() == 3 && !f[0].is_empty() {
                        let installed = f[1].starts_with("ii") || f[1].starts_with("hi");
                        let state = PackageState { installed: installed.then(|| f[2].to_string()) };
                        facts.packages.insert(f[0].to_string(), state);
                    }
                }
            }
            "units" => {
                // One block per requested unit, in the order they were asked for.
                let blocks = show_blocks(lines);
                for (i, u) in request.units.iter().enumerate() {
                    let mut state = UnitState { load_state: "not-found".into(), ..Default::default() };
                    for (k, v) in blocks.get(i).map(Vec::as_slice).unwrap_or_default() {
                        match *k {
                            "LoadState" => state.load_state = v.to_string(),
                            "UnitFileState" => state.unit_file_state = v.to_string(),
                            "ActiveState" => state.active_state = v.to_string(),
                            "SubState" => state.sub_state = v.to_string(),
                            "BindsTo" => state.bound_devices = bound_device_names(v).into_iter().map(|d| (d, false)).collect(),
                            _ => {}
                        }
                    }
                    facts.units.insert(u.clone(), state);
                }
            }
            "devices" => {
                let active: Vec<(String, bool)> = show_blocks(lines)
                    .iter()
                    .filter_map(|b| {
                        let id = b.iter().find(|(k, _)| *k == "Id")?.1;
                        let state = b.iter().find(|(k, _)| *k == "ActiveState").map(|(_, v)| *v == "active").unwrap_or(false);
                        Some((id.to_string(), state))
                    })
                    .collect();
                for unit in facts.units.values_mut() {
                    for (device, present) in unit.bound_devices.iter_mut() {
                        if let Some((_, a)) = active.iter().find(|(id, _)| id == device) {
                            *present = *a;
                        }
                    }
                }
            }
            other => {
                let path = other.strip_prefix("stat|").and_then(|i| i.parse::<usize>().ok()).and_then(|i| request.paths.get(i));
                if let Some(path) = path {
                    let line = first(lines);
                    let f: Vec<&str> = line.split('|').collect();
                    let stat = if f.len() == 6 {
                        PathStat {
                            exists: true,
                            kind: f[0].to_string(),
                            size: f[1].parse().unwrap_or(0),
                            mode: format!("{:0>4}", f[2]),
                            owner: f[3].to_string(),
                            group: f[4].to_string(),
                            mtime: f[5].parse().unwrap_or(0),
                        }
                    } else {
                        PathStat::default()
                    };
                    facts.paths.insert(path.clone(), stat);
                }
            }
        }
    }
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
