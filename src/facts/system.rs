//! What the host is: OS, kernel, init system, virtualization, boot id, package manager,
//! the agent channel, whether a reboot is required. Read on first contact and after a
//! reboot (the "basics"); no task changes them.

use super::{first, Facts, PkgMgr, GA_CHANNEL};

pub(super) fn probe(s: &mut String) {
    s.push_str(
        "echo '@@os'; [ -r /etc/os-release ] && while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < /etc/os-release\n\
         echo '@@debian_version'; r /etc/debian_version\n\
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

/// Reads one of the system's sections; false for a section that is not one of them.
pub(super) fn parse(section: &str, lines: &[&str], facts: &mut Facts) -> bool {
    match section {
        "os" => {
            facts.os = lines
                .iter()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').trim_matches('\'').to_string()))
                .collect();
        }
        "debian_version" => facts.debian_version = first(lines),
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
        _ => return false,
    }
    true
}
