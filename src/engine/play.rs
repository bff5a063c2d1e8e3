//! One play on one host: facts, then each task in order (skipped where its role does not
//! apply), then each role's own verification, the verdict the gate reads.

use std::time::Instant;

use serde_json::Value as Json;

use super::events::{Event, PlayOutcome, Status, TaskRecord, TaskRef};
use super::PlayCtx;
use crate::facts::ProbeRequest;
use crate::module::spec::{self, Args};
use crate::module::{Outcome, RunCtx};
use crate::plan::{self, VarLayers};
use crate::role::{Role, Task, Virtualization};
use crate::session::HostSession;
use crate::template::Templar;
use crate::vars::Vars;

/// How the play ends for a host whose task ended so, if it takes the host out of the run.
pub(super) fn leaves_play(r: &TaskRecord) -> Option<PlayOutcome> {
    match r.status {
        Status::Unreachable => Some(PlayOutcome::Unreachable { msg: r.msg.clone() }),
        Status::Failed if !r.ignored => Some(PlayOutcome::Failed { task: r.task.clone(), msg: r.msg.clone() }),
        _ => None,
    }
}

/// Why a role does not apply to this host, if it does not.
pub fn not_applicable(role: &Role, facts: &crate::facts::Facts) -> Option<String> {
    let want = &role.meta.applies_to;
    if let Some(mgr) = &want.service_mgr {
        if &facts.pid1 != mgr {
            return Some(format!("init system is {}, not {mgr}", if facts.pid1.is_empty() { "unknown" } else { &facts.pid1 }));
        }
    }
    match want.virtualization {
        Some(Virtualization::Vm) if !facts.is_vm() => Some(if facts.is_container() {
            format!("a container ({}), not a VM", facts.virt_container)
        } else {
            "bare metal (no hypervisor detected), not a VM".to_string()
        }),
        Some(Virtualization::Container) if !facts.is_container() => Some("not a container".to_string()),
        _ => None,
    }
}

pub(super) async fn run_play_on_host(mut host: HostSession, ctx: &PlayCtx<'_>) -> (HostSession, PlayOutcome, Vec<TaskRecord>) {
    let play = &ctx.planned.play;
    let mut records = Vec::new();
    let t0 = Instant::now();
    let emit = |records: &mut Vec<TaskRecord>, r: TaskRecord| {
        ctx.reporter.event(&Event::Task(&r));
        ctx.records.lock().unwrap().push(r.clone());
        records.push(r);
    };
    if ctx.interrupt.is_stopping() {
        return (host, PlayOutcome::NotRun { reason: "interrupted".into() }, records);
    }
    // Facts first: one round trip reads everything the plan needs.
    if let Err(e) = host.ensure_facts(&ProbeRequest::default()).await {
        if ctx.interrupt.is_stopping() {
            // The connection was cut by the interruption: the host was not tried.
            return (host, PlayOutcome::NotRun { reason: "interrupted".into() }, records);
        }
        let of = TaskRef { host: host.name(), play: &play.name, role: None, task: "Gathering Facts", location: "", module: None };
        let r = TaskRecord::new(of, &Outcome::from_transport(e), t0, ctx.run_started);
        let outcome = leaves_play(&r).expect("a failed probe fails the host");
        host.leave();
        emit(&mut records, r);
        return (host, outcome, records);
    }
    // Each role's applicability, decided once from the facts.
    let applicability: Vec<(&Role, Option<String>)> = ctx.planned.roles.iter().map(|r| (r, not_applicable(r, host.facts()))).collect();
    let why_not = |role: &Role| applicability.iter().find(|(r, _)| r.name == role.name).and_then(|(_, why)| why.clone());
    for task in ctx.planned.tasks() {
        let role = ctx.planned.role_of(task);
        let (task_name, location) = (task.display_name(), task.location.to_string());
        let host_name = host.name().to_string();
        let of = TaskRef {
            host: &host_name,
            play: &play.name,
            role: role.map(|r| r.name.as_str()),
            task: &task_name,
            location: &location,
            module: Some(task.module),
        };
        if let Some(why) = role.and_then(why_not) {
            let o = Outcome::skipped(format!("not applicable: {why}"));
            emit(&mut records, TaskRecord::new(of, &o, Instant::now(), ctx.run_started));
            continue;
        }
        if ctx.interrupt.is_stopping() {
            return (host, PlayOutcome::NotRun { reason: "interrupted".into() }, records);
        }
        let started = Instant::now();
        if task.no_log {
            crate::secrets::register_json(&Json::Object(task.vars.clone()));
        }
        host.set_log_commands(!task.no_log);
        let outcome = run_task(&mut host, task, role, ctx).await;
        host.set_log_commands(true);
        let mut r = TaskRecord::new(of, &outcome, started, ctx.run_started);
        r.ignored = outcome.status == Status::Failed && task.ignore_errors;
        if task.no_log {
            r.msg = "the output has been hidden due to 'no_log: true'".into();
            r.stderr_tail = None;
            r.diff = None;
        }
        let leaving = leaves_play(&r);
        emit(&mut records, r);
        if let Some(outcome) = leaving {
            host.leave();
            return (host, outcome, records);
        }
    }
    // A role's own guarantee, checked on the host: the gate verdict for later plays.
    for (role, _) in applicability.iter().filter(|(_, why)| why.is_none()) {
        let Some(unit) = &role.meta.verify_unit_active else { continue };
        let started = Instant::now();
        let outcome = verify_unit_active(&mut host, unit, ctx).await;
        let origin = format!("{}/meta/gafix.yml", role.origin);
        let task_name = format!("verify {unit} is active");
        let of = TaskRef { host: host.name(), play: &play.name, role: Some(&role.name), task: &task_name, location: &origin, module: None };
        let r = TaskRecord::new(of, &outcome, started, ctx.run_started);
        let leaving = leaves_play(&r);
        emit(&mut records, r);
        if let Some(outcome) = leaving {
            host.leave();
            return (host, outcome, records);
        }
    }
    let outcome = match applicability.into_iter().find_map(|(_, why)| why) {
        Some(why) => PlayOutcome::NotApplicable { why },
        None => PlayOutcome::Passed,
    };
    (host, outcome, records)
}

/// Reads the unit's state through the facts: the systemd step that started it has just
/// re-read it (and any later change marks it stale), so this costs a round trip only when
/// the state is not known to be current.
async fn verify_unit_active(host: &mut HostSession, unit: &str, ctx: &PlayCtx<'_>) -> Outcome {
    if ctx.opts.check {
        return Outcome::ok(format!("{unit} would be active (check mode)"));
    }
    let request = ProbeRequest { units: vec![unit.to_string()], ..Default::default() };
    if let Err(e) = host.ensure_facts(&request).await {
        return Outcome::from_transport(e);
    }
    match host.facts().units.get(unit).map(|u| u.active_state.as_str()) {
        Some("active") => Outcome::ok(format!("{unit} is active")),
        Some("") | None => Outcome::failed(format!("{unit} is unknown after the role ran")),
        Some(state) => Outcome::failed(format!("{unit} is {state} after the role ran")),
    }
}

async fn run_task(host: &mut HostSession, task: &Task, role: Option<&Role>, ctx: &PlayCtx<'_>) -> Outcome {
    let play = &ctx.planned.play;
    let role_params = role.and_then(|r| play.roles.iter().find(|rr| rr.name == r.name)).map(|rr| &rr.vars);
    let layers = VarLayers {
        role_defaults: role.map(|r| &r.defaults),
        inventory: host.vars(),
        facts: host.facts_vars(),
        play: &play.vars,
        role_params,
        task: &task.vars,
        registered: host.registered(),
        extra: &ctx.opts.extra_vars,
    };
    let check_mode = task.check_mode.unwrap_or(ctx.opts.check);
    let mut vars = plan::task_vars(&layers, host.name(), ctx.inv, &ctx.planned.hosts, check_mode);
    for cond in &task.when {
        match ctx.templar.condition(cond, &vars) {
            Ok(true) => {}
            Ok(false) => return register(host, task, Outcome::skipped(format!("conditional result was false: {cond}"))),
            Err(e) => return register(host, task, Outcome::failed(e.to_string())),
        }
    }
    let args = match ctx.templar.render(&Json::Object(task.args.0.clone()), &vars) {
        Ok(Json::Object(m)) => Args(m),
        Ok(_) => Args::default(),
        Err(e) => return register(host, task, Outcome::failed(e.to_string())),
    };
    if let Err(e) = spec::validate_rendered(task.module.spec(), &args) {
        return register(host, task, Outcome::failed(e.to_string()));
    }
    let becoming = task.become_.or(play.become_).unwrap_or(host.spec().become_default);
    let become_user = task.become_user.as_deref().or(play.become_user.as_deref());
    if let Some(u) = become_user {
        if let Err(e) = crate::transport::connection_validate_user(u) {
            return register(host, task, Outcome::failed(e));
        }
    }
    let become_ = becoming.then(|| host.become_as(become_user));
    let run_ctx = RunCtx { templar: ctx.templar, check_mode, diff: ctx.opts.diff, become_: become_.as_deref(), vars: &vars };
    let mut outcome = task.module.run(host, &args, &run_ctx).await;
    if outcome.status == Status::Unreachable || outcome.status == Status::Skipped {
        return register(host, task, outcome);
    }
    // changed_when / failed_when see the result under the register name, as in Ansible.
    if !task.changed_when.is_empty() || !task.failed_when.is_empty() {
        if let Some(name) = &task.register {
            vars.insert(name.clone(), outcome.registered());
        }
        if !task.changed_when.is_empty() {
            match all_true(&task.changed_when, &vars, ctx.templar) {
                Ok(changed) => {
                    outcome.changed = changed;
                    if outcome.status != Status::Failed {
                        outcome.status = if changed { Status::Changed } else { Status::Ok };
                    }
                }
                Err(e) => return register(host, task, Outcome::failed(e)),
            }
        }
        if !task.failed_when.is_empty() {
            match any_true(&task.failed_when, &vars, ctx.templar) {
                Ok(true) => {
                    if outcome.status != Status::Failed {
                        outcome.msg = format!("failed_when matched: {}", task.failed_when.join(" or "));
                    }
                    outcome.status = Status::Failed;
                }
                Ok(false) => {
                    if outcome.status == Status::Failed {
                        outcome.status = if outcome.changed { Status::Changed } else { Status::Ok };
                        outcome.stderr_tail = None;
                    }
                }
                Err(e) => return register(host, task, Outcome::failed(e)),
            }
        }
    }
    register(host, task, outcome)
}

fn all_true(conds: &[String], vars: &Vars, templar: &Templar) -> Result<bool, String> {
    for c in conds {
        if !templar.condition(c, vars).map_err(|e| e.to_string())? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn any_true(conds: &[String], vars: &Vars, templar: &Templar) -> Result<bool, String> {
    for c in conds {
        if templar.condition(c, vars).map_err(|e| e.to_string())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stores the outcome under the task's `register:` name.
fn register(host: &mut HostSession, task: &Task, outcome: Outcome) -> Outcome {
    if let Some(name) = &task.register {
        host.register(name, outcome.registered());
    }
    outcome
}

/// The record of a host whose connection settings cannot be used.
pub(super) fn setup_failure(host: &str, play: &str, msg: &str, run_started: Instant) -> TaskRecord {
    let of = TaskRef { host, play, role: None, task: "connection settings", location: "", module: None };
    TaskRecord::new(of, &Outcome::failed(msg), Instant::now(), run_started)
}
