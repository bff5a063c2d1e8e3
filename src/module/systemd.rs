//! `systemd` / `systemd_service` and `service`: units started, stopped, enabled, masked.

use futures::future::BoxFuture;

use super::spec::{arg, arg_aliases, arg_choices, ArgError, Args, Kind, Spec};
use super::{Decision, Diff, Module, Outcome, RunCtx};
use crate::facts::{Change, ProbeRequest, UnitState};
use crate::names;
use crate::session::HostSession;
use crate::shell::quote;

pub static SPEC: Spec = Spec {
    name: "systemd",
    aliases: &["systemd_service"],
    args: &[
        arg_aliases("name", Kind::Str, &["service", "unit"]),
        arg_choices("state", &["started", "stopped", "restarted", "reloaded"]),
        arg("enabled", Kind::Bool),
        arg("masked", Kind::Bool),
        arg_aliases("daemon_reload", Kind::Bool, &["daemon-reload"]),
        arg_aliases("daemon_reexec", Kind::Bool, &["daemon-reexec"]),
        arg("no_block", Kind::Bool),
        arg_choices("scope", &["system"]),
    ],
    free_form: None,
    required: &[],
    unsupported: &["force"],
    any_keys: false,
};

pub static SERVICE_SPEC: Spec = Spec {
    name: "service",
    aliases: &[],
    args: &[arg("name", Kind::Str), arg_choices("state", &["started", "stopped", "restarted", "reloaded"]), arg("enabled", Kind::Bool)],
    free_form: None,
    required: &["name"],
    unsupported: &["sleep", "pattern", "runlevel", "arguments", "args", "use"],
    any_keys: false,
};

/// The `systemd` module (`systemd_service`).
pub struct Systemd;

/// The `service` module: on the systemd hosts gafix supports, the same as `systemd`.
pub struct Service;

impl Module for Systemd {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(Desired { name: Some(n), .. }) = desired(args) {
            request.units.push(n);
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match desired(args) {
                Ok(d) => run(host, d, ctx).await,
                Err(e) => Outcome::failed(e.to_string()),
            }
        })
    }
}

impl Module for Service {
    fn spec(&self) -> &'static Spec {
        &SERVICE_SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        Systemd.check(args)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        Systemd.probe(args, request)
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Systemd.run(host, args, ctx)
    }
}

async fn run(host: &mut HostSession, d: Desired, ctx: &RunCtx<'_>) -> Outcome {
    let units: Vec<String> = d.name.iter().cloned().collect();
    if let Err(e) = host.ensure_facts(&ProbeRequest { units, ..Default::default() }).await {
        return Outcome::from_transport(e);
    }
    if !host.facts().is_systemd() {
        return Outcome::failed(format!("systemd is not the init system on this host (PID 1 is {})", host.facts().pid1));
    }
    let name = d.name.clone();
    let unit = name.as_ref().and_then(|n| host.facts().units.get(n)).cloned();
    let arriving = ctx.check_mode && host.packages_arriving();
    // Check mode, before the package that brings the unit is installed: the role says which
    // device the unit binds to, and the probe read it.
    if let (true, Some(n), Some(State::Started | State::Restarted | State::Reloaded)) = (ctx.check_mode, &name, d.state) {
        let loaded = unit.as_ref().is_some_and(|u| u.load_state == "loaded");
        let bound = ctx.binds_to.iter().find(|(u, _)| u.trim_end_matches(".service") == n.trim_end_matches(".service"));
        if let (false, Some((_, device))) = (loaded, bound) {
            if !host.facts().paths.get(device).is_some_and(|p| p.exists) {
                return Outcome::failed(missing_device_message(n, device));
            }
        }
    }
    let actions = match decide(&d, unit.as_ref(), arriving) {
        Decision::Ok(m) => return Outcome::ok(m),
        Decision::Fail(m) => return Outcome::failed(m),
        Decision::Predicted(m) => return Outcome::changed(m),
        Decision::Change(a) => a,
    };
    let label = name.clone().unwrap_or_else(|| "systemd".into());
    let described: Vec<String> = actions.iter().map(|a| describe(a, &label)).collect();
    let changed = actions.iter().any(Action::is_change);
    let diff = ctx.diff.then(|| unit_diff(unit.as_ref(), &actions));
    if ctx.check_mode {
        let mut o =
            if changed { Outcome::changed(format!("would be {}", described.join(", "))) } else { Outcome::ok(described.join(", ")) };
        o.diff = diff;
        return o;
    }
    // The actions and a fresh read of the unit, in one round trip.
    let mut script = actions.iter().map(|a| command(a, name.as_deref(), d.no_block)).collect::<Vec<_>>().join(" && ");
    let reread = name.as_ref().map(|n| ProbeRequest { units: vec![n.clone()], ..Default::default() });
    if let Some(request) = &reread {
        script = format!("{{ {script}; }}; rc=$?\n{}exit $rc", crate::facts::probe_body(request, false));
    }
    let out = match host.run(&script, ctx.become_, None).await {
        Ok(out) => out,
        Err(e) => return Outcome::from_transport(e),
    };
    host.mark_changed(Change::Units);
    if let Some(request) = &reread {
        host.absorb_reread(&out.stdout, request);
    }
    if out.rc != 0 {
        let explanation =
            name.as_ref().map(|n| format!("systemctl failed for {n} (exit {}): {}; see `journalctl -u {n}`", out.rc, out.tail(1)));
        return Outcome::command_failed("systemctl", &out, explanation);
    }
    if let (Some(n), Some(State::Started | State::Restarted | State::Reloaded)) = (&name, d.state) {
        let now = host.facts().units.get(n).cloned().unwrap_or_default();
        if !now.is_active() && !d.no_block {
            return Outcome::failed(format!("{n} was started but is {} ({}); see `journalctl -u {n}`", now.active_state, now.sub_state));
        }
    }
    let mut o = if changed { Outcome::changed(described.join(", ")) } else { Outcome::ok(described.join(", ")) };
    o.diff = diff;
    o
}

fn unit_diff(unit: Option<&UnitState>, actions: &[Action]) -> Diff {
    let before =
        unit.map(|u| format!("active: {}\nenabled: {}", u.active_state, u.unit_file_state)).unwrap_or_else(|| "not installed".into());
    let mut active = unit.map(|u| u.active_state.clone()).unwrap_or_default();
    let mut enabled = unit.map(|u| u.unit_file_state.clone()).unwrap_or_default();
    for a in actions {
        match a {
            Action::Start | Action::Restart | Action::Reload => active = "active".into(),
            Action::Stop => active = "inactive".into(),
            Action::Enable => enabled = "enabled".into(),
            Action::Disable => enabled = "disabled".into(),
            Action::Mask => enabled = "masked".into(),
            Action::Unmask => enabled = "disabled".into(),
            _ => {}
        }
    }
    Diff { before, after: format!("active: {active}\nenabled: {enabled}") }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub name: Option<String>,
    pub state: Option<State>,
    pub enabled: Option<bool>,
    pub masked: Option<bool>,
    pub daemon_reload: bool,
    pub daemon_reexec: bool,
    pub no_block: bool,
}

pub fn desired(args: &Args) -> Result<Desired, ArgError> {
    let name = args.str("name");
    if let Some(n) = &name {
        names::unit(n)?;
    }
    let state = match args.str("state").as_deref() {
        None => None,
        Some("started") => Some(State::Started),
        Some("stopped") => Some(State::Stopped),
        Some("restarted") => Some(State::Restarted),
        Some("reloaded") => Some(State::Reloaded),
        Some(other) => {
            return Err(ArgError::Invalid { arg: "state", expected: "started, stopped, restarted or reloaded", found: other.into() })
        }
    };
    let d = Desired {
        name,
        state,
        enabled: args.bool("enabled"),
        masked: args.bool("masked"),
        daemon_reload: args.bool("daemon_reload").unwrap_or(false),
        daemon_reexec: args.bool("daemon_reexec").unwrap_or(false),
        no_block: args.bool("no_block").unwrap_or(false),
    };
    if d.name.is_none() && (d.state.is_some() || d.enabled.is_some() || d.masked.is_some()) {
        return Err(ArgError::Missing { module: "systemd", what: "'name' with state, enabled or masked" });
    }
    if d.name.is_none() && !d.daemon_reload && !d.daemon_reexec {
        return Err(ArgError::Missing { module: "systemd", what: "'name', or 'daemon_reload'/'daemon_reexec'" });
    }
    Ok(d)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    DaemonReload,
    DaemonReexec,
    Unmask,
    Mask,
    Enable,
    Disable,
    Start,
    Stop,
    Restart,
    Reload,
}

impl Action {
    /// Whether the action alone counts as a change (Ansible does not count reloads of
    /// systemd itself).
    pub fn is_change(&self) -> bool {
        !matches!(self, Action::DaemonReload | Action::DaemonReexec)
    }
}

/// `dev-virtio\x2dports-x.device` -> `/dev/virtio-ports/x` (systemd's path unescaping).
pub fn device_unit_to_path(unit: &str) -> String {
    let body = unit.strip_suffix(".device").unwrap_or(unit);
    let mut out = String::from("/");
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' => out.push('/'),
            '\\' if chars.peek() == Some(&'x') => {
                chars.next();
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) => out.push(b as char),
                    Err(_) => out.push_str(&format!("\\x{hex}")),
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Why a unit cannot be started, with what to do about it.
pub fn missing_device_message(unit: &str, device: &str) -> String {
    if unit.trim_end_matches(".service") == "qemu-guest-agent" {
        format!(
            "{unit} cannot start: the VM has no virtio-serial channel org.qemu.guest_agent.0 ({device} is absent). \
             Enable the agent option on the VM (Proxmox: `qm set VMID --agent enabled=1`; libvirt: add a \
             <channel type='unix'> with <target type='virtio' name='org.qemu.guest_agent.0'/>), then power \
             the VM off and on again: a reboot from inside the guest does not add the device"
        )
    } else {
        format!("{unit} cannot start: it binds to {device}, which is absent on this host (systemd would wait 90 s and fail)")
    }
}

/// Facts x desired -> actions. `arriving` is set in check mode when an earlier task would
/// install a package that brings this unit.
pub fn decide(d: &Desired, unit: Option<&UnitState>, arriving: bool) -> Decision<Action> {
    let mut actions = Vec::new();
    if d.daemon_reexec {
        actions.push(Action::DaemonReexec);
    }
    if d.daemon_reload {
        actions.push(Action::DaemonReload);
    }
    let Some(name) = &d.name else {
        return finish(actions, "daemon reloaded");
    };
    let unit = match unit {
        Some(u) if u.exists() || u.is_masked() => u,
        _ if arriving => return Decision::Predicted(format!("{name} would be configured after the package that provides it is installed")),
        _ => return Decision::Fail(format!("could not find the requested service {name}: the unit is not installed on this host")),
    };
    let wants_running = matches!(d.state, Some(State::Started | State::Restarted | State::Reloaded)) || d.enabled == Some(true);
    match d.masked {
        Some(true) => {
            if !unit.is_masked() {
                actions.push(Action::Mask);
            }
        }
        Some(false) => {
            if unit.is_masked() {
                actions.push(Action::Unmask);
            }
        }
        None => {
            if unit.is_masked() && wants_running {
                return Decision::Fail(format!(
                    "{name} is masked, so it cannot be started or enabled; unmask it first (`masked: false` in this task, or `systemctl unmask {name}`)"
                ));
            }
        }
    }
    let masked_after = d.masked.unwrap_or(unit.is_masked());
    match d.enabled {
        Some(true) if (!unit.is_enabled() || (d.masked == Some(false) && unit.is_masked())) && unit.unit_file_state != "static" => {
            actions.push(Action::Enable)
        }
        Some(false) if matches!(unit.unit_file_state.as_str(), "enabled" | "enabled-runtime" | "alias") => actions.push(Action::Disable),
        _ => {}
    }
    let starting = match d.state {
        Some(State::Started) if !unit.is_active() => Some(Action::Start),
        Some(State::Stopped) if unit.is_active() => Some(Action::Stop),
        Some(State::Restarted) => Some(if unit.is_active() { Action::Restart } else { Action::Start }),
        Some(State::Reloaded) => Some(if unit.is_active() { Action::Reload } else { Action::Start }),
        _ => None,
    };
    if let Some(action) = starting {
        if action == Action::Start || action == Action::Restart {
            if masked_after {
                return Decision::Fail(format!("{name} is masked and cannot be started"));
            }
            // Fail now rather than wait out systemd's 90 s device timeout.
            if let Some((device, _)) = unit.bound_devices.iter().find(|(_, present)| *present == Some(false)) {
                return Decision::Fail(missing_device_message(name, &device_unit_to_path(device)));
            }
        }
        actions.push(action);
    }
    finish(actions, if unit.is_active() { "active" } else { "inactive" })
}

fn finish(actions: Vec<Action>, ok_message: &str) -> Decision<Action> {
    if actions.iter().any(Action::is_change) {
        Decision::Change(actions)
    } else if actions.is_empty() {
        Decision::Ok(ok_message.into())
    } else {
        Decision::Change(actions)
    }
}

pub fn command(action: &Action, name: Option<&str>, no_block: bool) -> String {
    let unit = name.map(quote).unwrap_or_default();
    let nb = if no_block { " --no-block" } else { "" };
    match action {
        Action::DaemonReload => "systemctl daemon-reload".into(),
        Action::DaemonReexec => "systemctl daemon-reexec".into(),
        Action::Unmask => format!("systemctl unmask -- {unit}"),
        Action::Mask => format!("systemctl mask -- {unit}"),
        Action::Enable => format!("systemctl enable -- {unit}"),
        Action::Disable => format!("systemctl disable -- {unit}"),
        Action::Start => format!("systemctl{nb} start -- {unit}"),
        Action::Stop => format!("systemctl{nb} stop -- {unit}"),
        Action::Restart => format!("systemctl{nb} restart -- {unit}"),
        Action::Reload => format!("systemctl{nb} reload-or-restart -- {unit}"),
    }
}

pub fn describe(action: &Action, name: &str) -> String {
    match action {
        Action::DaemonReload => "daemon reloaded".into(),
        Action::DaemonReexec => "daemon re-executed".into(),
        Action::Unmask => format!("{name} unmasked"),
        Action::Mask => format!("{name} masked"),
        Action::Enable => format!("{name} enabled"),
        Action::Disable => format!("{name} disabled"),
        Action::Start => format!("{name} started"),
        Action::Stop => format!("{name} stopped"),
        Action::Restart => format!("{name} restarted"),
        Action::Reload => format!("{name} reloaded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(v: serde_json::Value) -> Desired {
        desired(&Args(v.as_object().unwrap().clone())).unwrap()
    }

    fn unit(file_state: &str, active: &str) -> UnitState {
        UnitState {
            load_state: "loaded".into(),
            unit_file_state: file_state.into(),
            active_state: active.into(),
            sub_state: String::new(),
            bound_devices: vec![],
        }
    }

    const GA: &str = "qemu-guest-agent";

    #[test]
    fn static_inactive_unit_is_started_not_enabled() {
        let want = d(json!({"name": GA, "state": "started", "enabled": true}));
        assert_eq!(decide(&want, Some(&unit("static", "inactive")), false), Decision::Change(vec![Action::Start]));
        assert_eq!(decide(&want, Some(&unit("static", "active")), false), Decision::Ok("active".into()));
    }

    #[test]
    fn disabled_units_are_enabled_and_started() {
        let want = d(json!({"name": "ssh", "state": "started", "enabled": true}));
        assert_eq!(decide(&want, Some(&unit("disabled", "inactive")), false), Decision::Change(vec![Action::Enable, Action::Start]));
        assert_eq!(decide(&want, Some(&unit("enabled", "activating")), false), Decision::Ok("active".into()));
    }

    #[test]
    fn stop_restart_reload_disable() {
        assert_eq!(
            decide(&d(json!({"name": "x", "state": "stopped"})), Some(&unit("enabled", "active")), false),
            Decision::Change(vec![Action::Stop])
        );
        assert_eq!(
            decide(&d(json!({"name": "x", "state": "stopped"})), Some(&unit("enabled", "inactive")), false),
            Decision::Ok("inactive".into())
        );
        assert_eq!(
            decide(&d(json!({"name": "x", "state": "restarted"})), Some(&unit("enabled", "active")), false),
            Decision::Change(vec![Action::Restart])
        );
        assert_eq!(
            decide(&d(json!({"name": "x", "state": "reloaded"})), Some(&unit("enabled", "failed")), false),
            Decision::Change(vec![Action::Start])
        );
        assert_eq!(
            decide(&d(json!({"name": "x", "enabled": false})), Some(&unit("enabled", "active")), false),
            Decision::Change(vec![Action::Disable])
        );
        assert_eq!(
            decide(&d(json!({"name": "x", "enabled": false})), Some(&unit("static", "active")), false),
            Decision::Ok("active".into())
        );
    }

    #[test]
    fn masked_units_are_a_clear_error_unless_unmasked() {
        let masked = UnitState {
            load_state: "masked".into(),
            unit_file_state: "masked".into(),
            active_state: "inactive".into(),
            ..Default::default()
        };
        let Decision::Fail(msg) = decide(&d(json!({"name": GA, "state": "started"})), Some(&masked), false) else { panic!() };
        assert!(msg.contains("is masked") && msg.contains("systemctl unmask"), "{msg}");
        assert_eq!(
            decide(&d(json!({"name": GA, "state": "started", "masked": false})), Some(&masked), false),
            Decision::Change(vec![Action::Unmask, Action::Start])
        );
        assert_eq!(
            decide(&d(json!({"name": GA, "masked": true})), Some(&unit("static", "inactive")), false),
            Decision::Change(vec![Action::Mask])
        );
    }

    #[test]
    fn missing_bound_device_fails_at_once_with_the_remedy() {
        let mut u = unit("static", "inactive");
        u.bound_devices.push(("dev-virtio\\x2dports-org.qemu.guest_agent.0.device".into(), Some(false)));
        let Decision::Fail(msg) = decide(&d(json!({"name": GA, "state": "started"})), Some(&u), false) else { panic!() };
        assert!(msg.contains("org.qemu.guest_agent.0") && msg.contains("qm set VMID --agent enabled=1"), "{msg}");
        assert!(msg.contains("reboot from inside the guest"), "{msg}");
        // Stopping is still fine.
        assert!(matches!(decide(&d(json!({"name": GA, "state": "stopped"})), Some(&u), false), Decision::Ok(_)));
    }

    #[test]
    fn device_units_read_as_paths() {
        assert_eq!(device_unit_to_path("dev-virtio\\x2dports-org.qemu.guest_agent.0.device"), "/dev/virtio-ports/org.qemu.guest_agent.0");
        assert_eq!(device_unit_to_path("dev-sda1.device"), "/dev/sda1");
    }

    #[test]
    fn unknown_units_fail_unless_a_package_brings_them() {
        let nf = UnitState { load_state: "not-found".into(), ..Default::default() };
        let want = d(json!({"name": GA, "state": "started"}));
        assert!(matches!(decide(&want, Some(&nf), false), Decision::Fail(m) if m.contains("could not find")));
        assert!(matches!(decide(&want, Some(&nf), true), Decision::Predicted(m) if m.contains("after the package")));
    }

    #[test]
    fn daemon_reload_alone_is_not_a_change() {
        let want = d(json!({"daemon_reload": true}));
        assert_eq!(decide(&want, None, false), Decision::Change(vec![Action::DaemonReload]));
        assert!(!Action::DaemonReload.is_change());
    }

    #[test]
    fn validation_and_commands() {
        assert!(desired(&Args(json!({"name": "x; rm -rf /"}).as_object().unwrap().clone())).is_err());
        assert!(desired(&Args(json!({"state": "started"}).as_object().unwrap().clone())).is_err());
        assert_eq!(command(&Action::Start, Some("getty@tty1.service"), false), "systemctl start -- getty@tty1.service");
        assert_eq!(command(&Action::Stop, Some("x"), true), "systemctl --no-block stop -- x");
    }
}
