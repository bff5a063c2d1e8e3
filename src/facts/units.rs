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
    /// Devices the unit `BindsTo=`, with whether each is present (its device unit is
    /// active); `None` when not read, because the unit is running (see `UNIT_PROBE`).
    pub bound_devices: Vec<(String, Option<bool>)>,
}

/// The `ActiveState`s of a running unit: the probe's shell and [`UnitState::is_active`]
/// both read them from here.
const RUNNING_STATES: [&str; 3] = ["active", "reloading", "activating"];

impl UnitState {
    pub fn is_active(&self) -> bool {
        RUNNING_STATES.contains(&self.active_state.as_str())
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

/// All units in one `systemctl show`; then, only when a unit that is not running `BindsTo=`
/// devices, one more call for those devices' state. A running unit's devices are not asked
/// about: systemd stops a unit whose bound device goes away, and only a start needs them (a
/// converged VM's agent binds to its channel: one call, not two). The values come quoted
/// with doubled backslashes (`"dev-virtio\\x2dports-..."`), which `printf %b` undoes. A
/// block ends at a blank line; the here-document adds one after the last. `@running@` becomes
/// the [`RUNNING_STATES`] as a `case` pattern.
const UNIT_PROBE: &str = r#"out=$(systemctl show -p Id,LoadState,UnitFileState,ActiveState,SubState,BindsTo -- "$@" 2>/dev/null)
printf '%s\n' "$out"
devs='' bound='' running=''
set -f
while IFS= read -r line; do
  case $line in
    BindsTo=?*) bound=${line#BindsTo=};;
    @running@) running=1;;
    '')
      if [ -z "$running" ]; then
        for d in $bound; do
          d=${d#\"}; d=${d%\"}
          case $d in *.device) devs="$devs $(printf '%b' "$d")";; esac
        done
      fi
      bound='' running='';;
  esac
done <<EOF
$out

EOF
set +f
if [ -n "$devs" ]; then echo '@@devices'; systemctl show -p Id,ActiveState -- $devs 2>/dev/null; fi"#;

pub(super) fn probe(request: &ProbeRequest, s: &mut String) {
    if !request.units.is_empty() {
        let running = RUNNING_STATES.map(|state| format!("ActiveState={state}")).join("|");
        let unit_probe = UNIT_PROBE.replace("@running@", &running);
        s.push_str(&format!("echo '@@units'; set -- {}\n{unit_probe}\n", quote_all(&request.units)));
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
                        "BindsTo" => state.bound_devices = bound_device_names(v).into_iter().map(|d| (d, None)).collect(),
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
            // The probe asked about the devices of the units that are not running only.
            for unit in facts.units.values_mut().filter(|u| !u.is_active()) {
                for (device, present) in unit.bound_devices.iter_mut() {
                    *present = Some(active.iter().any(|(id, a)| id == device && *a));
                }
            }
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Runs the unit probe with a stand-in `systemctl` first on PATH: it answers `show` for
    /// a few made-up units and devices, and logs each call.
    fn probe_with_fake_systemctl(units: &[&str]) -> (Facts, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("systemctl");
        std::fs::write(
            &fake,
            format!(
                r#"#!/bin/sh
printf '%s\n' "$*" >> '{}'
first=1
for u in "$@"; do
  case $u in show|-p|Id,*|--) continue;; esac
  [ -n "$first" ] || echo; first=
  case $u in
    running) printf 'Id=running.service\nBindsTo="dev-a.device"\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=static\n';;
    stopped) printf 'Id=stopped.service\nBindsTo="dev-b\\x2dc.device" "other.service"\nLoadState=loaded\nActiveState=inactive\nSubState=dead\nUnitFileState=static\n';;
    dev-b\\x2dc.device) printf 'Id=dev-b\\x2dc.device\nActiveState=active\n';;
    *.device) printf 'Id=%s\nActiveState=inactive\n' "$u";;
    *) printf 'Id=%s.service\nLoadState=not-found\nActiveState=inactive\n' "$u";;
  esac
done
"#,
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let request = ProbeRequest { units: units.iter().map(|u| u.to_string()).collect(), ..Default::default() };
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
        let out =
            std::process::Command::new("sh").arg("-c").arg(crate::facts::probe_script(&request, false)).env("PATH", path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut facts = Facts::default();
        crate::facts::parse_probe(&String::from_utf8_lossy(&out.stdout), &request, &mut facts);
        let calls = std::fs::read_to_string(&log).unwrap_or_default().lines().map(str::to_string).collect();
        (facts, calls)
    }

    /// A running unit's bound devices are not asked about: systemd stops a unit whose bound
    /// device goes, and only a start needs them. A converged VM's probe makes one call.
    #[test]
    fn bound_devices_are_read_only_for_units_that_are_not_running() {
        let (facts, calls) = probe_with_fake_systemctl(&["running"]);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(facts.units["running"].bound_devices, [("dev-a.device".to_string(), None)]);
        assert!(facts.units["running"].is_active());

        let (facts, calls) = probe_with_fake_systemctl(&["running", "stopped", "nosuch"]);
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(calls[1].ends_with("-- dev-b\\x2dc.device"), "only the stopped unit's device: {calls:?}");
        assert_eq!(facts.units["stopped"].bound_devices, [("dev-b\\x2dc.device".to_string(), Some(true))]);
        assert_eq!(facts.units["running"].bound_devices, [("dev-a.device".to_string(), None)]);
        assert!(!facts.units["nosuch"].exists());
    }
}
