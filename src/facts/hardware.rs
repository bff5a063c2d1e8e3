//! What Ansible's `setup` says about the machine, read the way Ansible reads it, from the
//! same files: DMI (`system_vendor`, `product_name`, `product_version`), virtualization
//! (Ansible's `virtualization_type`/`_role` rules, in their order), the CPU topology
//! (`processor_vcpus`), `memtotal_mb`, `machine_id`, `fqdn`, the IPv4 addresses and the
//! date. Read with the basics. Shell builtins read /proc, /sys and /etc; two processes
//! remain, `ip` (once, in batch mode, for the route and the addresses) and `date`.

use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use super::Facts;

/// What the probe read; each is turned into Ansible's facts by [`Facts::ansible_vars`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Hardware {
    /// `/sys/devices/virtual/dmi/id/*`, trimmed; absent or empty files are left out.
    pub dmi: Vec<(String, String)>,
    /// The signs of virtualization Ansible looks for, one per line (`cgroup docker`,
    /// `env container`, `exists /proc/xen`, `module kvm`...), in Ansible's order.
    pub virt: Vec<String>,
    /// The `/proc/cpuinfo` lines Ansible counts processors with, as (key, value).
    pub cpuinfo: Vec<(String, String)>,
    pub memtotal_kb: Option<u64>,
    pub machine_id: String,
    /// `/etc/hosts` lines (or `getent hosts` lines) for the hostname: `name ADDR NAMES` for the
    /// lookup of the hostname, `addr ADDR NAMES` for the lookup of that address.
    pub hosts: Vec<String>,
    /// `ip -4 -o addr show` and `ip -4 route get 8.8.8.8`, as printed.
    pub ip: Vec<String>,
    /// `date` fields: epoch, nanoseconds, year, month, day, hour, minute, second, zone,
    /// offset, weekday, weekday number, week number.
    pub date: Vec<String>,
}

/// The address Ansible asks the route to (it only asks: nothing is sent).
const ROUTE_PROBE: &str = "8.8.8.8";

pub(super) fn probe(s: &mut String) {
    s.push_str(
        "echo '@@dmi'; for f in sys_vendor product_name product_version product_family bios_vendor; do v=; IFS= read -r v 2>/dev/null < /sys/devices/virtual/dmi/id/$f; printf '%s=%s\\n' $f \"$v\"; done\n\
         echo '@@virt'\n\
         [ -r /proc/1/cgroup ] && while IFS= read -r l; do case $l in */docker/*|*/docker-*.scope*) echo cgroup docker;; esac; case $l in */lxc/*|*/machine.slice/machine-lxc*) echo cgroup lxc;; esac; case $l in */system.slice/containerd.service*) echo cgroup containerd;; esac; done < /proc/1/cgroup\n\
         if [ -r /proc/1/environ ]; then e=; IFS= read -r e < /proc/1/environ; echo env readable; case $e in *container=lxc*) echo env lxc;; esac; case $e in *container=podman*) echo env podman;; esac; case $e in *container=?*) echo env container;; esac; fi 2>/dev/null\n\
         for p in /proc/vz /proc/lve /proc/bc /.dockerenv /.dockerinit /proc/xen /dev/kvm; do [ -e $p ] && echo exists $p; done\n\
         v=; IFS= read -r v 2>/dev/null < /run/systemd/container; echo systemd_container $v\n\
         [ -r /proc/xen/capabilities ] && while IFS= read -r l; do case $l in *control_d*) echo xen control_d;; esac; done < /proc/xen/capabilities\n\
         [ -r /proc/modules ] && while read -r m l; do case $m in kvm|vboxdrv|virtio) echo module $m;; esac; done < /proc/modules\n\
         echo '@@cpuinfo'; [ -r /proc/cpuinfo ] && while IFS= read -r l; do case $l in processor*|Processor*|vendor_id*|Vendor*|'model name'*|cpu*|'physical id'*|'core id'*|siblings*|machine*) printf '%s\\n' \"$l\";; esac; done < /proc/cpuinfo\n\
         echo '@@meminfo'; while IFS=: read -r k v; do [ \"$k\" = MemTotal ] && { echo $v; break; }; done < /proc/meminfo\n\
         echo '@@machine_id'; r /var/lib/dbus/machine-id; r /etc/machine-id\n\
         echo '@@hosts'; h=; IFS= read -r h < /proc/sys/kernel/hostname; a=\n\
         [ -n \"$h\" ] && [ -r /etc/hosts ] && while read -r i n; do case $i in ''|\\#*) continue;; esac; case \" $n \" in *[[:space:]]\"$h\"[[:space:]]*) a=$i; echo name $i $n; break;; esac; done < /etc/hosts\n\
         if [ -n \"$a\" ]; then while read -r i n; do [ \"$i\" = \"$a\" ] && { echo addr $i $n; break; }; done < /etc/hosts; elif [ -n \"$h\" ]; then getent hosts -- \"$h\" 2>/dev/null | while read -r i n; do echo name $i $n; echo addr $i $n; break; done; fi\n",
    );
    s.push_str(&format!(
        "echo '@@ip'; printf 'addr show\\nroute get %s\\n' {} | ip -4 -o -force -batch - 2>/dev/null\n",
        crate::shell::quote(ROUTE_PROBE)
    ));
    s.push_str("echo '@@date'; date '+%s %N %Y %m %d %H %M %S %Z %z %A %w %W'\n");
}

const SECTIONS: &[&str] = &["dmi", "virt", "cpuinfo", "meminfo", "machine_id", "hosts", "ip", "date"];

/// Reads one of these sections; false for a section that is not one of them.
pub(super) fn parse(section: &str, lines: &[&str], facts: &mut Facts) -> bool {
    if !SECTIONS.contains(&section) {
        return false;
    }
    let hw = facts.hardware.get_or_insert_with(Hardware::default);
    let kept = || lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).map(str::to_string);
    match section {
        "dmi" => {
            hw.dmi = lines
                .iter()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .filter(|(_, v)| !v.is_empty())
                .collect()
        }
        "virt" => hw.virt = kept().collect(),
        "cpuinfo" => {
            hw.cpuinfo = lines.iter().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
        }
        "meminfo" => hw.memtotal_kb = lines.iter().find_map(|l| l.split_whitespace().next()?.parse().ok()),
        "machine_id" => hw.machine_id = kept().next().unwrap_or_default(),
        "hosts" => hw.hosts = kept().collect(),
        "ip" => hw.ip = kept().collect(),
        "date" => {
            hw.date =
                lines.iter().find(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
        }
        _ => return false,
    }
    true
}

impl Hardware {
    /// A DMI value as Ansible gives it: "NA" when the file is missing, unreadable or empty.
    pub fn dmi(&self, key: &str) -> String {
        self.dmi.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_else(|| "NA".into())
    }

    fn has(&self, sign: &str) -> bool {
        self.virt.iter().any(|l| l == sign)
    }

    /// Ansible's `virtualization_type` and `virtualization_role` (module_utils/facts/virtual/
    /// linux.py, the same checks in the same order), as gathered by root (`become`). When the
    /// probe cannot read PID 1's environment (it is not root), what root would find there is
    /// what systemd wrote to /run/systemd/container, which it takes from that environment.
    pub fn virtualization(&self) -> (String, String) {
        let guest = |t: &str| (t.to_string(), "guest".to_string());
        // Containers: PID 1's cgroups, then its environment.
        for line in &self.virt {
            if let Some(t) = line.strip_prefix("cgroup ") {
                return guest(t);
            }
        }
        let systemd_container = self.virt.iter().find_map(|l| l.strip_prefix("systemd_container ")).map(str::trim).unwrap_or("");
        let env: Vec<&str> = if self.has("env readable") {
            self.virt.iter().filter_map(|l| l.strip_prefix("env ")).filter(|t| *t != "readable").collect()
        } else if !systemd_container.is_empty() {
            [(systemd_container == "lxc").then_some("lxc"), (systemd_container == "podman").then_some("podman"), Some("container")]
                .into_iter()
                .flatten()
                .collect()
        } else {
            Vec::new()
        };
        if let Some(t) = env.first() {
            return guest(t);
        }
        if self.has("exists /proc/vz") && !self.has("exists /proc/lve") {
            return ("openvz".into(), if self.has("exists /proc/bc") { "host" } else { "guest" }.into());
        }
        if !systemd_container.is_empty() {
            return guest(systemd_container);
        }
        if self.has("exists /.dockerenv") || self.has("exists /.dockerinit") {
            return guest("docker");
        }
        if self.has("exists /proc/xen") {
            return ("xen".into(), if self.has("xen control_d") { "host" } else { "guest" }.into());
        }
        // Hypervisors by their DMI strings.
        let (product, vendor, family, bios) =
            (self.dmi("product_name"), self.dmi("sys_vendor"), self.dmi("product_family"), self.dmi("bios_vendor"));
        let by_dmi = if ["KVM", "KVM Server", "Bochs", "AHV", "CloudStack KVM Hypervisor"].contains(&product.as_str()) {
            Some("kvm")
        } else if vendor == "oVirt" {
            Some("oVirt")
        } else if vendor == "Red Hat" && family == "RHV" {
            Some("RHV")
        } else if vendor == "Red Hat" && product == "RHEV Hypervisor" {
            Some("RHEV")
        } else if product.starts_with("VMware") {
            Some("VMware")
        } else if ["OpenStack Compute", "OpenStack Nova"].contains(&product.as_str()) {
            Some("openstack")
        } else if bios == "Xen" {
            Some("xen")
        } else if bios == "innotek GmbH" {
            Some("virtualbox")
        } else if ["Amazon EC2", "DigitalOcean", "Hetzner", "Linode"].contains(&bios.as_str())
            || ["QEMU", "Amazon EC2", "DigitalOcean", "Google", "Scaleway", "Nutanix"].contains(&vendor.as_str())
        {
            Some("kvm")
        } else {
            match vendor.as_str() {
                "KubeVirt" => Some("KubeVirt"),
                "Microsoft Corporation" => Some("VirtualPC"),
                "Parallels Software International Inc." => Some("parallels"),
                "OpenStack Foundation" => Some("openstack"),
                _ => None,
            }
        };
        if let Some(t) = by_dmi {
            return guest(t);
        }
        // The CPU's own name.
        for (key, value) in &self.cpuinfo {
            let t = match key.as_str() {
                "model name" if value.contains("QEMU Virtual CPU") => "kvm",
                "vendor_id" if value.contains("User Mode Linux") => "uml",
                "model name" if value.contains("UML") => "uml",
                "machine" if value.contains("CHRP IBM pSeries (emulated by qemu)") => "kvm",
                "vendor_id" if value.contains("PowerVM Lx86") => "powervm_lx86",
                "vendor_id" if value.contains("IBM/S390") => return ("PR/SM".into(), "LPAR".into()),
                _ => continue,
            };
            return guest(t);
        }
        if self.has("module kvm") {
            return ("kvm".into(), "host".into());
        }
        if self.has("module vboxdrv") {
            return ("virtualbox".into(), "host".into());
        }
        if self.has("module virtio") {
            return guest("kvm");
        }
        if self.has("exists /dev/kvm") {
            return ("kvm".into(), "host".into());
        }
        ("NA".into(), "NA".into())
    }

    /// Ansible's `processor_vcpus` (hardware/linux.py): threads per core x sockets x cores,
    /// from the topology in /proc/cpuinfo, with Ansible's own ways of counting.
    pub fn processor_vcpus(&self, architecture: &str) -> u64 {
        let (mut i, mut vendor_ids, mut model_names, mut processors) = (0u64, 0u64, 0u64, 0u64);
        let (mut physid, mut coreid) = ("0".to_string(), "0".to_string());
        let mut sockets: Vec<(String, u64)> = Vec::new();
        let mut cores: Vec<(String, u64)> = Vec::new();
        let set = |map: &mut Vec<(String, u64)>, key: &str, value: u64| match map.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => map.push((key.to_string(), value)),
        };
        for (key, value) in &self.cpuinfo {
            match key.as_str() {
                "model name" | "Processor" | "vendor_id" | "cpu" | "Vendor" | "processor" => {
                    vendor_ids += u64::from(key == "vendor_id");
                    model_names += u64::from(key == "model name");
                    processors += u64::from(key == "processor");
                    i += 1;
                }
                "physical id" => {
                    physid = value.clone();
                    if !sockets.iter().any(|(k, _)| *k == physid) {
                        sockets.push((physid.clone(), 1));
                    }
                }
                "core id" => {
                    coreid = value.clone();
                    // Ansible looks the core up among the sockets here, and so does this.
                    if !sockets.iter().any(|(k, _)| *k == coreid) {
                        set(&mut cores, &coreid, 1);
                    }
                }
                "cpu cores" => set(&mut sockets, &physid, value.parse().unwrap_or(0)),
                "siblings" => set(&mut cores, &coreid, value.parse().unwrap_or(0)),
                _ => {}
            }
        }
        if vendor_ids > 0 && vendor_ids == model_names {
            i = vendor_ids;
        }
        if ["armv", "aarch", "ppc"].iter().any(|p| architecture.starts_with(p)) {
            i = processors;
        }
        let count = if sockets.is_empty() { i } else { sockets.len() as u64 };
        let per_socket = sockets.first().map(|s| s.1).filter(|&c| c > 0).unwrap_or(1);
        // Python's round(): halves to even.
        let round = |x: f64| {
            let r = x.round();
            if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
                r - x.signum()
            } else {
                r
            }
        };
        let threads = round(cores.first().map(|c| c.1).unwrap_or(1) as f64 / per_socket as f64) as u64;
        threads * count * per_socket
    }

    /// Python's `socket.getfqdn()`: the first name with a dot among the names of the address
    /// the hostname resolves to, else that address's first name; the hostname when it does
    /// not resolve.
    pub fn fqdn(&self, hostname: &str) -> String {
        let addr = self.hosts.iter().find_map(|l| l.strip_prefix("addr "));
        match addr.map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>()) {
            Some(names) if !names.is_empty() => names.iter().find(|n| n.contains('.')).unwrap_or(&names[0]).to_string(),
            _ => hostname.to_string(),
        }
    }

    /// `default_ipv4` (as much of it as `ip` tells: address, interface, gateway and the
    /// address's own details) and `all_ipv4_addresses` (every address but 127.*).
    pub fn ipv4(&self) -> (Json, Json) {
        let mut default = Map::new();
        let mut all = Vec::new();
        for line in &self.ip {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&ROUTE_PROBE) {
                for pair in words.windows(2) {
                    match pair[0] {
                        "dev" => default.insert("interface".into(), json!(pair[1])),
                        "src" => default.insert("address".into(), json!(pair[1])),
                        "via" if pair[1] != ROUTE_PROBE => default.insert("gateway".into(), json!(pair[1])),
                        _ => None,
                    };
                }
            }
        }
        for line in &self.ip {
            // "2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft..."
            let words: Vec<&str> = line.split('\\').next().unwrap_or("").split_whitespace().collect();
            let Some(at) = words.iter().position(|w| *w == "inet") else { continue };
            let Some(cidr) = words.get(at + 1) else { continue };
            let (address, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
            let Ok(ip) = address.parse::<std::net::Ipv4Addr>() else { continue };
            if default.get("address") == Some(&json!(address)) {
                let bits: u32 = prefix.parse().unwrap_or(32).min(32);
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                let broadcast = if words.get(at + 2) == Some(&"brd") { words.get(at + 3).copied().unwrap_or("") } else { "" };
                default.insert("broadcast".into(), json!(broadcast));
                default.insert("netmask".into(), json!(std::net::Ipv4Addr::from(mask).to_string()));
                default.insert("network".into(), json!(std::net::Ipv4Addr::from(u32::from(ip) & mask).to_string()));
                default.insert("prefix".into(), json!(prefix));
                default.insert("alias".into(), json!(words.last().copied().unwrap_or("")));
            }
            if !address.starts_with("127.") {
                all.push(json!(address));
            }
        }
        // Without a source address Ansible keeps only what the route said, and without a
        // route, nothing.
        (Json::Object(default), Json::Array(all))
    }

    /// Ansible's `date_time`, from one `date` call on the host (`tz_dst`, Python's
    /// `time.tzname[1]`, has no `date` format and is left out).
    pub fn date_time(&self) -> Json {
        let d = &self.date;
        if d.len() < 13 {
            return json!({});
        }
        let Ok(epoch) = d[0].parse::<i64>() else { return json!({}) };
        let micro = format!("{:06}", d[1].parse::<u64>().unwrap_or(0) / 1000);
        let (y, m, day) = civil_from_days(epoch.div_euclid(86400));
        let secs = epoch.rem_euclid(86400);
        let utc = format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        json!({
            "year": d[2], "month": d[3], "weekday": d[10], "weekday_number": d[11], "weeknumber": d[12],
            "day": d[4], "hour": d[5], "minute": d[6], "second": d[7],
            "epoch": d[0], "epoch_int": d[0],
            "date": format!("{}-{}-{}", d[2], d[3], d[4]),
            "time": format!("{}:{}:{}", d[5], d[6], d[7]),
            "iso8601_micro": format!("{utc}.{micro}Z"),
            "iso8601": format!("{utc}Z"),
            "iso8601_basic": format!("{}{}{}T{}{}{}{micro}", d[2], d[3], d[4], d[5], d[6], d[7]),
            "iso8601_basic_short": format!("{}{}{}T{}{}{}", d[2], d[3], d[4], d[5], d[6], d[7]),
            "tz": d[8], "tz_offset": d[9],
        })
    }
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
