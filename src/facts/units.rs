//! systemd units and the devices they bind to: a fragment of the probe and its parser.

use serde::Serialize;

use super::{Change, Facts, ProbeRequest};
use crate::shell::quote_all;

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

/// Unit facts are stale after a unit change, and after a package change (a package brings
/// or takes units).
pub fn stale_after(change: Change) -> bool {
    matches!(change, Change::Packages | Change::Units)
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

pub(super) fn probe(request: &ProbeRequest, s: &mut String) {
    if !request.units.is_empty() {
        s.push_str(&format!("echo '@@units'; set -- {}\n{UNIT_PROBE}\n", quote_all(&request.units)));
    }
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

/// Reads the `units` section (one block per requested unit, in order) and `devices`.
pub(super) fn parse(section: &str, lines: &[&str], request: &ProbeRequest, facts: &mut Facts) -> bool {
    match section {
        "units" => {
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
        _ => return false,
    }
    true
}
