//! Runs one module on one host: reads what it needs, asks the module's pure decision
//! function what to do, runs the resulting commands, and reports the outcome.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::events::{Diff, Status};
use super::host::{HostRun, Timeouts};
use crate::facts::{PkgMgr, ProbeRequest};
use crate::module::spec::Args;
use crate::module::{apt, assert, command, dnf, reboot, stat, systemd, Decision, ModuleKind};
use crate::template::Templar;
use crate::transport::{Become, CommandOutput, Connection, ConnectionSpec, TransportError};

#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub changed: bool,
    pub msg: String,
    pub rc: Option<i32>,
    pub stderr_tail: Option<String>,
    pub diff: Option<Diff>,
    /// Module-specific result data (`stat`, `rc`/`stdout` of commands) for `register`.
    pub result: Json,
}

impl Outcome {
    fn new(status: Status, msg: impl Into<String>) -> Self {
        Outcome { status, changed: status == Status::Changed, msg: msg.into(), rc: None, stderr_tail: None, diff: None, result: json!({}) }
    }
    pub fn ok(msg: impl Into<String>) -> Self {
        Self::new(Status::Ok, msg)
    }
    pub fn changed(msg: impl Into<String>) -> Self {
        Self::new(Status::Changed, msg)
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        Self::new(Status::Failed, msg)
    }
    pub fn skipped(msg: impl Into<String>) -> Self {
        Self::new(Status::Skipped, msg)
    }
    pub fn from_transport(e: TransportError) -> Self {
        match e {
            TransportError::Unreachable(m) => Self::new(Status::Unreachable, m),
            TransportError::Timeout(d) => Self::failed(format!("the command did not finish within {} s (--command-timeout)", d.as_secs())),
            other => Self::failed(other.to_string()),
        }
    }
    /// A remote command that exited non-zero: its exit code and the last lines of stderr.
    pub fn command_failed(what: &str, out: &CommandOutput, explanation: Option<String>) -> Self {
        let tail = out.tail(5);
        let msg = match explanation {
            Some(e) => e,
            None => format!(
                "{what} exited with code {}{}",
                out.rc,
                if tail.is_empty() { String::new() } else { format!(": {}", tail.lines().last().unwrap_or("")) }
            ),
        };
        let mut o = Self::failed(msg);
        o.rc = Some(out.rc);
        o.stderr_tail = (!tail.is_empty()).then_some(tail);
        o
    }
}

pub struct Ctx<'a> {
    pub templar: &'a Templar,
    pub timeouts: &'a Timeouts,
    pub check_mode: bool,
    pub diff: bool,
}

macro_rules! try_remote {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Outcome::from_transport(e),
        }
    };
}

macro_rules! try_args {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Outcome::failed(e),
        }
    };
}

pub async fn execute(
    host: &mut HostRun,
    module: ModuleKind,
    args: &Args,
    become_: Option<&Become>,
    ctx: &Ctx<'_>,
    vars: &crate::vars::Vars,
) -> Outcome {
    match module {
        ModuleKind::Apt => run_apt(host, try_args!(apt::desired(args)), become_, ctx).await,
        ModuleKind::Dnf => run_dnf(host, try_args!(dnf::desired(args)), become_, ctx).await,
        ModuleKind::Package => {
            try_remote!(host.ensure_facts(&ProbeRequest::default(), ctx.timeouts).await);
            match host.facts().pkg_mgr {
                PkgMgr::Apt => run_apt(host, try_args!(apt::desired(args)), become_, ctx).await,
                PkgMgr::Dnf | PkgMgr::Yum => run_dnf(host, try_args!(dnf::desired(args)), become_, ctx).await,
                PkgMgr::Unknown => Outcome::failed("no supported package manager (apt-get, dnf, yum) on this host"),
            }
        }
        ModuleKind::Systemd | ModuleKind::Service => run_systemd(host, try_args!(systemd::desired(args)), become_, ctx).await,
        ModuleKind::Command | ModuleKind::Shell => {
            run_command(host, try_args!(command::desired(args, module == ModuleKind::Shell)), become_, ctx).await
        }
        ModuleKind::Stat => run_stat(host, try_args!(stat::desired(args)), ctx).await,
        ModuleKind::Assert => run_assert(try_args!(assert::desired(args)), ctx, vars),
        ModuleKind::Reboot => run_reboot(host, try_args!(reboot::desired(args)), become_, ctx).await,
    }
}

async fn run_apt(host: &mut HostRun, d: apt::Desired, become_: Option<&Become>, ctx: &Ctx<'_>) -> Outcome {
    let request = ProbeRequest { packages: d.names.clone(), apt_cache_age: d.cache_valid_time.is_some(), ..Default::default() };
    try_remote!(host.ensure_facts(&request, ctx.timeouts).await);
    if host.facts().pkg_mgr != PkgMgr::Apt {
        return Outcome::failed("apt is not available on this host (use the package or dnf module)");
    }
    let actions = match apt::decide(&d, host.facts()) {
        Decision::Ok(m) => return Outcome::ok(m),
        Decision::Fail(m) => return Outcome::failed(m),
        Decision::Predicted(m) => return Outcome::changed(m),
        Decision::Change(a) => a,
    };
    let mut total = apt::Outcome::default();
    let mut cache_updated = false;
    for action in &actions {
        if ctx.check_mode && *action == apt::Action::UpdateCache {
            continue;
        }
        let script = apt::command(action, &d, ctx.check_mode);
        let out = if ctx.check_mode {
            try_remote!(host.run(&script, None, None, ctx.timeouts).await)
        } else {
            // Package transactions are never interrupted: they outlive our timeout on the host.
            try_remote!(host.run(&script, become_, None, ctx.timeouts).await)
        };
        if out.rc != 0 {
            if !ctx.check_mode {
                host.mark_changed(true, true);
            }
            return Outcome::command_failed(
                "apt-get",
                &out,
                apt::explain_failure(&format!("{}\n{}", out.stdout, out.stderr), d.lock_timeout),
            );
        }
        if *action == apt::Action::UpdateCache {
            cache_updated = true;
        }
        let o = apt::parse_output(&out.stdout);
        total.installed.extend(o.installed);
        total.upgraded.extend(o.upgraded);
        total.removed.extend(o.removed);
    }
    let package_ops = actions.iter().any(|a| *a != apt::Action::UpdateCache);
    let changed = total.changed() || (cache_updated && !package_ops);
    if !ctx.check_mode && (changed || cache_updated) {
        host.mark_changed(total.changed(), total.changed());
    }
    if ctx.check_mode {
        host.predicted_packages.extend(total.installed.iter().cloned());
    }
    let upgrades = total.upgraded.len();
    let mut out = if !changed {
        Outcome::ok(if cache_updated { "cache updated, nothing to upgrade".to_string() } else { "nothing to do".to_string() })
    } else if ctx.check_mode {
        let mut parts = Vec::new();
        if !total.installed.is_empty() {
            parts.push(format!("would install {}", total.installed.join(" ")));
        }
        if upgrades > 0 {
            parts.push(format!("would upgrade {upgrades} package{}", if upgrades == 1 { "" } else { "s" }));
        }
        if !total.removed.is_empty() {
            parts.push(format!("would remove {}", total.removed.join(" ")));
        }
        Outcome::changed(parts.join(", "))
    } else if total.changed() {
        Outcome::changed(total.summary())
    } else {
        Outcome::changed("package cache updated")
    };
    if ctx.diff && total.changed() {
        let mut before = Vec::new();
        let mut after = Vec::new();
        for p in &total.installed {
            before.push(format!("{p}: absent"));
            after.push(format!("{p}: installed"));
        }
        for p in &total.upgraded {
            before.push(format!(
                "{p}: {}",
                host.facts().packages.get(p).and_then(|s| s.installed.clone()).unwrap_or_else(|| "installed".into())
            ));
            after.push(format!("{p}: upgraded"));
        }
        for p in &total.removed {
            before.push(format!("{p}: installed"));
            after.push(format!("{p}: absent"));
        }
        out.diff = Some(Diff { before: before.join("\n"), after: after.join("\n") });
    }
    out.result =
        json!({"installed": total.installed, "upgraded": total.upgraded, "removed": total.removed, "cache_updated": cache_updated});
    out
}

async fn run_dnf(host: &mut HostRun, d: dnf::Desired, become_: Option<&Become>, ctx: &Ctx<'_>) -> Outcome {
    let names: Vec<String> = d.names.iter().filter(|n| *n != "*").cloned().collect();
    try_remote!(host.ensure_facts(&ProbeRequest { packages: names, ..Default::default() }, ctx.timeouts).await);
    let actions = match dnf::decide(&d, host.facts()) {
        Decision::Ok(m) => return Outcome::ok(m),
        Decision::Fail(m) => return Outcome::failed(m),
        Decision::Predicted(m) => return Outcome::changed(m),
        Decision::Change(a) => a,
    };
    let mut changed = false;
    for action in &actions {
        if ctx.check_mode && *action == dnf::Action::MakeCache {
            continue;
        }
        let out = try_remote!(host.run(&dnf::command(action, &d, ctx.check_mode), become_, None, ctx.timeouts).await);
        // --assumeno exits 1 after printing the plan.
        if out.rc != 0 && !(ctx.check_mode && out.rc == 1) {
            return Outcome::command_failed("dnf", &out, None);
        }
        changed |= *action != dnf::Action::MakeCache && dnf::changed(&out.stdout);
    }
    if changed && !ctx.check_mode {
        host.mark_changed(true, true);
    }
    match (changed, ctx.check_mode) {
        (false, _) => Outcome::ok("nothing to do"),
        (true, true) => Outcome::changed("would change packages"),
        (true, false) => Outcome::changed("packages changed"),
    }
}

async fn run_systemd(host: &mut HostRun, d: systemd::Desired, become_: Option<&Become>, ctx: &Ctx<'_>) -> Outcome {
    let units: Vec<String> = d.name.iter().cloned().collect();
    try_remote!(host.ensure_facts(&ProbeRequest { units, ..Default::default() }, ctx.timeouts).await);
    if !host.facts().is_systemd() {
        return Outcome::failed(format!("systemd is not the init system on this host (PID 1 is {})", host.facts().pid1));
    }
    let name = d.name.clone();
    let unit = name.as_ref().and_then(|n| host.facts().units.get(n)).cloned();
    let arriving = ctx.check_mode && !host.predicted_packages.is_empty();
    let actions = match systemd::decide(&d, unit.as_ref(), arriving) {
        Decision::Ok(m) => return Outcome::ok(m),
        Decision::Fail(m) => return Outcome::failed(m),
        Decision::Predicted(m) => return Outcome::changed(m),
        Decision::Change(a) => a,
    };
    let label = name.clone().unwrap_or_else(|| "systemd".into());
    let described: Vec<String> = actions.iter().map(|a| systemd::describe(a, &label)).collect();
    let changed = actions.iter().any(systemd::Action::is_change);
    let diff = ctx.diff.then(|| unit_diff(unit.as_ref(), &actions));
    if ctx.check_mode {
        let mut o =
            if changed { Outcome::changed(format!("would be {}", described.join(", "))) } else { Outcome::ok(described.join(", ")) };
        o.diff = diff;
        return o;
    }
    // The actions and a fresh read of the unit, in one round trip.
    let mut script = actions.iter().map(|a| systemd::command(a, name.as_deref(), d.no_block)).collect::<Vec<_>>().join(" && ");
    let reread = name.as_ref().map(|n| ProbeRequest { units: vec![n.clone()], ..Default::default() });
    if let Some(request) = &reread {
        script = format!("{{ {script}; }}; rc=$?\n{}exit $rc", crate::facts::probe_body(request, false));
    }
    let out = try_remote!(host.run(&script, become_, None, ctx.timeouts).await);
    host.mark_changed(false, true);
    if let Some(request) = &reread {
        host.absorb_probe(&out.stdout, request, false);
        host.stale.units = false;
    }
    if out.rc != 0 {
        let explanation =
            name.as_ref().map(|n| format!("systemctl failed for {n} (exit {}): {}; see `journalctl -u {n}`", out.rc, out.tail(1)));
        return Outcome::command_failed("systemctl", &out, explanation);
    }
    if let (Some(n), Some(systemd::State::Started | systemd::State::Restarted | systemd::State::Reloaded)) = (&name, d.state) {
        let now = host.facts().units.get(n).cloned().unwrap_or_default();
        if !now.is_active() && !d.no_block {
            return Outcome::failed(format!("{n} was started but is {} ({}); see `journalctl -u {n}`", now.active_state, now.sub_state));
        }
    }
    let mut o = if changed { Outcome::changed(described.join(", ")) } else { Outcome::ok(described.join(", ")) };
    o.diff = diff;
    o
}

fn unit_diff(unit: Option<&crate::facts::UnitState>, actions: &[systemd::Action]) -> Diff {
    let before =
        unit.map(|u| format!("active: {}\nenabled: {}", u.active_state, u.unit_file_state)).unwrap_or_else(|| "not installed".into());
    let mut active = unit.map(|u| u.active_state.clone()).unwrap_or_default();
    let mut enabled = unit.map(|u| u.unit_file_state.clone()).unwrap_or_default();
    for a in actions {
        match a {
            systemd::Action::Start | systemd::Action::Restart | systemd::Action::Reload => active = "active".into(),
            systemd::Action::Stop => active = "inactive".into(),
            systemd::Action::Enable => enabled = "enabled".into(),
            systemd::Action::Disable => enabled = "disabled".into(),
            systemd::Action::Mask => enabled = "masked".into(),
            systemd::Action::Unmask => enabled = "disabled".into(),
            _ => {}
        }
    }
    Diff { before, after: format!("active: {active}\nenabled: {enabled}") }
}

const SKIP_CREATES: &str = "@@gafix-skip-creates@@";
const SKIP_REMOVES: &str = "@@gafix-skip-removes@@";

async fn run_command(host: &mut HostRun, d: command::Desired, become_: Option<&Become>, ctx: &Ctx<'_>) -> Outcome {
    if ctx.check_mode {
        return Outcome::skipped("command would have run if not in check mode");
    }
    let mut script = String::new();
    if let Some(p) = &d.creates {
        script.push_str(&format!("if [ -e {} ]; then echo '{SKIP_CREATES}'; exit 0; fi\n", crate::shell::quote(p)));
    }
    if let Some(p) = &d.removes {
        script.push_str(&format!("if [ ! -e {} ]; then echo '{SKIP_REMOVES}'; exit 0; fi\n", crate::shell::quote(p)));
    }
    script.push_str(&d.script);
    let out = try_remote!(host.run(&script, become_, d.stdin.as_deref(), ctx.timeouts).await);
    let marker = out.stdout.trim();
    if marker == SKIP_CREATES || marker == SKIP_REMOVES {
        let creates_matched = marker == SKIP_CREATES;
        let reason =
            command::skip_reason(&d, |p| if creates_matched { d.creates.as_deref() == Some(p) } else { d.removes.as_deref() != Some(p) })
                .unwrap_or_else(|| "creates/removes matched".into());
        let mut o = Outcome::ok(format!("did not run: {reason}"));
        o.rc = Some(0);
        o.result = json!({"rc": 0, "stdout": "", "stderr": "", "stdout_lines": [], "stderr_lines": [], "cmd": d.display});
        return o;
    }
    host.mark_changed(false, false);
    let strip = |s: &str| if d.strip_empty_ends { s.trim_end_matches('\n').to_string() } else { s.to_string() };
    let (stdout, stderr) = (strip(&out.stdout), strip(&out.stderr));
    let result = json!({
        "rc": out.rc, "stdout": stdout, "stderr": stderr,
        "stdout_lines": stdout.lines().collect::<Vec<_>>(), "stderr_lines": stderr.lines().collect::<Vec<_>>(),
        "cmd": d.display, "delta": format!("{:.3}", out.duration.as_secs_f64()),
    });
    let mut o = if out.rc == 0 {
        Outcome::changed(first_line(&stdout))
    } else {
        Outcome::command_failed(&format!("'{}'", short(&d.display)), &out, None)
    };
    // A command that ran changed something as far as anyone can tell, whatever its exit
    // code: `failed_when` may clear the failure, and `changed_when` decide otherwise.
    o.changed = true;
    o.rc = Some(out.rc);
    o.result = result;
    o
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(120).collect()
}

fn short(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s.to_string()
    }
}

async fn run_stat(host: &mut HostRun, path: String, ctx: &Ctx<'_>) -> Outcome {
    try_remote!(host.ensure_facts(&ProbeRequest { paths: vec![path.clone()], ..Default::default() }, ctx.timeouts).await);
    let s = host.facts().paths.get(&path).cloned().unwrap_or_default();
    let mut o = Outcome::ok(if s.exists { format!("{path} exists") } else { format!("{path} does not exist") });
    o.result = stat::result(&path, &s);
    o
}

fn run_assert(d: assert::Desired, ctx: &Ctx<'_>, vars: &crate::vars::Vars) -> Outcome {
    for cond in &d.that {
        match ctx.templar.condition(cond, vars) {
            Ok(true) => {}
            Ok(false) => {
                let mut o = Outcome::failed(d.fail_msg.clone().unwrap_or_else(|| format!("Assertion failed: {cond}")));
                o.result = json!({"assertion": cond, "evaluated_to": false});
                return o;
            }
            Err(e) => return Outcome::failed(e.to_string()),
        }
    }
    Outcome::ok(d.success_msg.unwrap_or_else(|| "All assertions passed".into()))
}

async fn run_reboot(host: &mut HostRun, d: reboot::Desired, become_: Option<&Become>, ctx: &Ctx<'_>) -> Outcome {
    if ctx.check_mode {
        return Outcome::changed("would reboot");
    }
    let started = std::time::Instant::now();
    let before = try_remote!(host.run(&d.boot_time_command, None, None, ctx.timeouts).await);
    if before.rc != 0 || before.stdout.trim().is_empty() {
        return Outcome::command_failed("boot_time_command", &before, None);
    }
    let boot_before = before.stdout.trim().to_string();
    let out = try_remote!(host.run(&reboot::reboot_command(&d), become_, None, ctx.timeouts).await);
    if out.rc != 0 {
        return Outcome::command_failed("the reboot command", &out, None);
    }
    // The master connection dies with the host; drop it rather than wait for it to notice.
    host.disconnect().await;
    host.stale.all = true;
    let deadline = started + Duration::from_secs(d.reboot_timeout);
    let mut delay = Duration::from_secs(1);
    let mut last_error = String::from("the host did not come back");
    tokio::time::sleep(Duration::from_secs(d.pre_reboot_delay.max(1) + 1)).await;
    loop {
        if std::time::Instant::now() >= deadline {
            return Outcome::failed(format!("the host did not come back within reboot_timeout ({} s): {last_error}", d.reboot_timeout));
        }
        match probe_new_boot(&host.spec, &d, &boot_before, ctx).await {
            Ok(transport) => {
                host.transport = Some(transport);
                break;
            }
            Err(ProbeError::HostKey(m)) => return Outcome::failed(m),
            Err(ProbeError::NotYet(m)) => last_error = m,
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        tokio::time::sleep(delay.min(left)).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    if d.post_reboot_delay > 0 {
        tokio::time::sleep(Duration::from_secs(d.post_reboot_delay)).await;
    }
    let test = try_remote!(host.run(&d.test_command, None, None, ctx.timeouts).await);
    if test.rc != 0 {
        return Outcome::command_failed("test_command after the reboot", &test, None);
    }
    let mut o = Outcome::changed(format!("rebooted in {} s (new boot confirmed)", started.elapsed().as_secs()));
    o.result = json!({"rebooted": true, "elapsed": started.elapsed().as_secs()});
    o
}

enum ProbeError {
    HostKey(String),
    NotYet(String),
}

/// One reconnection attempt: a new connection, and a boot id that differs from before.
async fn probe_new_boot(spec: &ConnectionSpec, d: &reboot::Desired, boot_before: &str, ctx: &Ctx<'_>) -> Result<Connection, ProbeError> {
    let timeout = Duration::from_secs(d.connect_timeout.max(1));
    let transport = match Connection::connect(spec, timeout).await {
        Ok(t) => t,
        Err(TransportError::HostKeyChanged(m)) => return Err(ProbeError::HostKey(format!("after the reboot: {m}"))),
        Err(e) => return Err(ProbeError::NotYet(e.to_string())),
    };
    match transport.run(&d.boot_time_command, None, None, ctx.timeouts.command.min(Duration::from_secs(30))).await {
        Ok(out) if out.rc == 0 && !out.stdout.trim().is_empty() && out.stdout.trim() != boot_before => Ok(transport),
        Ok(_) => {
            // Still the old boot (the reboot has not happened yet, or the host only dropped off).
            transport.close().await;
            Err(ProbeError::NotYet("the host answered with the same boot id: it has not rebooted yet".into()))
        }
        Err(e) => {
            transport.close().await;
            Err(ProbeError::NotYet(e.to_string()))
        }
    }
}
