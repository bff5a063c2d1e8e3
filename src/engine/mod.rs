//! The engine: runs a plan. Plays in order; within a play, `serial` batches in order;
//! within a batch, up to `forks` hosts at once, each host running its tasks in order
//! (a slow or stuck host never holds up the others). A host that fails leaves the run,
//! as in Ansible; a play with `gafix_gate` runs only on hosts that passed the named play.

pub mod events;
pub mod exec;
pub mod host;
pub mod interrupt;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use indexmap::IndexMap;
use serde_json::{json, Value as Json};

use crate::facts::ProbeRequest;
use crate::inventory::{self, Inventory, Vars};
use crate::module::spec::{self, Args};
use crate::module::{apt, command, dnf, stat, systemd, ModuleKind};
use crate::plan::{self, Plan, PlannedPlay, VarLayers};
use crate::role::{Role, Task, Virtualization};
use crate::template::Templar;
use crate::transport::{ConnectionSpec, HostKeyPolicy, Secret};
use events::{Event, PlayOutcome, PlayReport, Reporter, RunReport, Stats, Status, TaskRecord};
use exec::{Ctx, Outcome};
use host::{HostRun, Timeouts};
pub use interrupt::Interrupt;

pub struct Options {
    pub forks: usize,
    pub check: bool,
    pub diff: bool,
    pub timeouts: Timeouts,
    pub host_key_policy: HostKeyPolicy,
    pub become_password: Option<Secret>,
    pub extra_vars: Vars,
}

/// Runs the plan; `interrupt` stops new work from starting, or aborts work in flight.
pub async fn run(plan: &Plan, inv: &Inventory, opts: &Options, reporter: &dyn Reporter, interrupt: &Interrupt) -> RunReport {
    let started = Instant::now();
    let templar = Templar::new();
    let mut report = RunReport {
        gafix_version: env!("CARGO_PKG_VERSION"),
        playbook: plan.source.clone(),
        check_mode: opts.check,
        started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        duration_s: 0.0,
        interrupted: false,
        plays: Vec::new(),
        stats: IndexMap::new(),
        round_trips: IndexMap::new(),
        tasks: Vec::new(),
        exit_code: 0,
    };

    // Every host the plan touches, with its connection and what its probe should read.
    let mut hosts: IndexMap<String, HostRun> = IndexMap::new();
    let mut invalid: BTreeMap<String, String> = BTreeMap::new();
    for name in plan.plays.iter().flat_map(|p| p.hosts.iter()) {
        if hosts.contains_key(name) || invalid.contains_key(name) {
            continue;
        }
        report.stats.insert(name.clone(), Stats::default());
        match prepare_host(name, plan, inv, opts, &templar) {
            Ok(h) => {
                hosts.insert(name.clone(), h);
            }
            Err(msg) => {
                invalid.insert(name.clone(), msg);
            }
        }
    }

    let mut outcomes_by_play: BTreeMap<String, BTreeMap<String, PlayOutcome>> = BTreeMap::new();
    for planned in &plan.plays {
        let play = &planned.play;
        let mut outcomes: BTreeMap<String, PlayOutcome> = BTreeMap::new();
        let mut eligible = Vec::new();
        for h in &planned.hosts {
            if let Some(msg) = invalid.get(h) {
                let record = setup_failure(h, &play.name, msg, started);
                reporter.event(&Event::Task(&record));
                report.stats.get_mut(h).unwrap().add(&record);
                report.tasks.push(record);
                outcomes.insert(h.clone(), PlayOutcome::Failed { task: "connection settings".into(), msg: msg.clone() });
                invalid.remove(h);
                hosts.shift_remove(h);
                continue;
            }
            let Some(host) = hosts.get(h) else { continue };
            // The gate is checked first, so that the reports give every gated host its reason.
            if let Some(gate) = &play.gate {
                let verdict = outcomes_by_play.get(gate).and_then(|o| o.get(h));
                if verdict != Some(&PlayOutcome::Passed) {
                    let reason = match verdict {
                        Some(v) => format!("{gate} {}", v.summary()),
                        None => format!("{gate} did not run on this host"),
                    };
                    outcomes.insert(h.clone(), PlayOutcome::Gated { reason });
                    continue;
                }
            }
            if host.out {
                continue;
            }
            eligible.push(h.clone());
        }
        let batches = plan::batches(&eligible, &planned.serial);
        reporter.event(&Event::PlayStart { name: &play.name, hosts: eligible.len(), batches: batches.len(), check_mode: opts.check });
        for (h, outcome) in &outcomes {
            if let PlayOutcome::Gated { reason } = outcome {
                reporter.event(&Event::Gated { play: &play.name, host: h, reason });
            }
        }
        let mut stopped = None;
        for (index, batch) in batches.iter().enumerate() {
            if interrupt.is_stopping() || stopped.is_some() {
                let reason = stopped.clone().unwrap_or_else(|| "interrupted".to_string());
                for h in batch {
                    outcomes.insert(h.clone(), PlayOutcome::NotRun { reason: reason.clone() });
                }
                continue;
            }
            if batches.len() > 1 {
                reporter.event(&Event::BatchStart { play: &play.name, index: index + 1, count: batches.len(), hosts: batch });
            }
            let runs: Vec<HostRun> = batch.iter().filter_map(|h| hosts.shift_remove(h)).collect();
            let ctx = PlayCtx {
                run_started: started,
                planned,
                inv,
                opts,
                templar: &templar,
                reporter,
                interrupt,
                records: Mutex::new(Vec::new()),
            };
            let running = stream::iter(runs).map(|h| run_play_on_host(h, &ctx)).buffer_unordered(opts.forks.max(1)).collect();
            let results: Vec<(HostRun, PlayOutcome, Vec<TaskRecord>)> = tokio::select! {
                results = running => results,
                () = interrupt.aborted() => {
                    // The hosts' futures are dropped here: their connections close (a package
                    // transaction goes on on its host); what they recorded is kept.
                    let records = std::mem::take(&mut *ctx.records.lock().unwrap());
                    for h in batch {
                        let mine: Vec<TaskRecord> = records.iter().filter(|r| &r.host == h).cloned().collect();
                        let outcome = mine.iter().find_map(leaves_play).unwrap_or(PlayOutcome::NotRun { reason: "aborted".into() });
                        for r in &mine {
                            report.stats.get_mut(h).unwrap().add(r);
                        }
                        report.tasks.extend(mine);
                        outcomes.insert(h.clone(), outcome);
                    }
                    interrupt::kill_connecting_ssh();
                    Vec::new()
                }
            };
            let mut failed = 0;
            for (host, outcome, records) in results {
                reporter.event(&Event::HostDone { play: &play.name, host: &host.name });
                for r in &records {
                    report.stats.get_mut(&host.name).unwrap().add(r);
                }
                report.tasks.extend(records);
                if matches!(outcome, PlayOutcome::Failed { .. } | PlayOutcome::Unreachable { .. }) {
                    failed += 1;
                }
                outcomes.insert(host.name.clone(), outcome);
                hosts.insert(host.name.clone(), host);
            }
            if index + 1 < batches.len() && plan::batch_stops_play(batch.len(), failed, planned.max_fail_percentage) {
                let reason = match planned.max_fail_percentage {
                    Some(max) if failed < batch.len() => {
                        format!("{failed} of {} hosts in batch {} failed, more than max_fail_percentage {max}%", batch.len(), index + 1)
                    }
                    _ => format!("every host in batch {} failed", index + 1),
                };
                reporter.event(&Event::BatchStopped { play: &play.name, reason: &reason });
                stopped = Some(reason);
            }
        }
        if interrupt.is_stopping() {
            report.interrupted = true;
        }
        outcomes_by_play.insert(play.name.clone(), outcomes.clone());
        report.plays.push(PlayReport {
            name: play.name.clone(),
            gate: play.gate.clone(),
            hosts: planned.hosts.clone(),
            batches,
            outcomes,
            stopped,
        });
        if report.interrupted {
            break;
        }
    }
    for (name, h) in &hosts {
        report.round_trips.insert(name.clone(), h.round_trips);
    }
    let closing: Vec<_> = hosts.into_values().map(|mut h| async move { h.disconnect().await }).collect();
    futures::future::join_all(closing).await;
    report.duration_s = started.elapsed().as_secs_f64();
    report.exit_code = report.compute_exit_code();
    report
}

struct PlayCtx<'a> {
    run_started: Instant,
    planned: &'a PlannedPlay,
    inv: &'a Inventory,
    opts: &'a Options,
    templar: &'a Templar,
    reporter: &'a dyn Reporter,
    interrupt: &'a Interrupt,
    /// Every record as it is made, for the report of an aborted batch.
    records: Mutex<Vec<TaskRecord>>,
}

fn prepare_host(name: &str, plan: &Plan, inv: &Inventory, opts: &Options, templar: &Templar) -> Result<HostRun, String> {
    let (spec, rendered) = connection_for(name, inv, &opts.extra_vars, opts.host_key_policy, opts.become_password.as_ref(), templar)
        .map_err(|e| match e.place {
            Some(place) => format!("{place}: {}", e.message),
            None => e.message,
        })?;
    let probe = probe_request(name, plan, &rendered, templar);
    Ok(HostRun::new(name.into(), spec, rendered, probe))
}

/// A host's connection settings that cannot be used, and where the variable at fault is set.
#[derive(Debug)]
pub struct ConnectionError {
    pub place: Option<String>,
    pub message: String,
}

/// How to reach a host, from its inventory variables and `-e` (rendered; secrets used as
/// written), and those variables. An error names the file and line of the variable at
/// fault. `validate` calls this too, so it checks exactly what `converge` would use.
pub fn connection_for(
    name: &str,
    inv: &Inventory,
    extra_vars: &Vars,
    host_key_policy: HostKeyPolicy,
    become_password: Option<&Secret>,
    templar: &Templar,
) -> Result<(ConnectionSpec, Vars), ConnectionError> {
    let mut vars = inv.host_vars(name);
    for (k, v) in extra_vars {
        vars.insert(k.clone(), v.clone());
    }
    vars.insert("inventory_hostname".into(), json!(name));
    vars.insert("inventory_hostname_short".into(), json!(name.split('.').next().unwrap_or(name)));
    // Secret values are used as written, never templated: a password may hold `{{`.
    let (secret, ordinary): (Vars, Vars) = vars.clone().into_iter().partition(|(k, _)| inventory::SECRET_VARS.contains(&k.as_str()));
    for value in secret.values() {
        crate::secrets::register_json(value);
    }
    let mut rendered = match templar.render(&Json::Object(ordinary), &vars) {
        Ok(Json::Object(m)) => m,
        Ok(_) => vars.clone(),
        Err(e) => return Err(ConnectionError { place: None, message: format!("cannot render the host's variables: {e}") }),
    };
    rendered.extend(secret);
    match ConnectionSpec::from_vars(name, &rendered, host_key_policy, become_password) {
        Ok(spec) => Ok((spec, rendered)),
        Err(e) => {
            let place = match e.var {
                Some(var) if extra_vars.contains_key(var) => Some("-e (extra vars)".to_string()),
                Some("inventory_hostname") => inv.hosts.get(name).map(|h| h.location.to_string()),
                Some(var) => inv.var_location(name, var).map(|l| l.to_string()),
                None => None,
            };
            Err(ConnectionError { place, message: e.message })
        }
    }
}

/// The packages, units and paths the plan names for this host, so that one probe reads
/// them all. Arguments that depend on facts are read later, when their task runs.
fn probe_request(name: &str, plan: &Plan, vars: &Vars, templar: &Templar) -> ProbeRequest {
    let mut req = ProbeRequest::default();
    for planned in plan.plays.iter().filter(|p| p.hosts.iter().any(|h| h == name)) {
        for role in &planned.roles {
            if let Some(u) = &role.meta.verify_unit_active {
                req.units.push(u.clone());
            }
        }
        for task in planned.tasks() {
            let Ok(Json::Object(args)) = templar.render(&Json::Object(task.args.0.clone()), vars) else { continue };
            let args = Args(args);
            match task.module {
                ModuleKind::Apt | ModuleKind::Package => {
                    if let Ok(d) = apt::desired(&args) {
                        req.apt_cache_age |= d.cache_valid_time.is_some();
                        req.packages.extend(d.names);
                    }
                }
                ModuleKind::Dnf => {
                    if let Ok(d) = dnf::desired(&args) {
                        req.packages.extend(d.names.into_iter().filter(|n| n != "*"));
                    }
                }
                ModuleKind::Systemd | ModuleKind::Service => {
                    if let Ok(systemd::Desired { name: Some(n), .. }) = systemd::desired(&args) {
                        req.units.push(n);
                    }
                }
                ModuleKind::Stat => {
                    if let Ok(p) = stat::desired(&args) {
                        req.paths.push(p);
                    }
                }
                ModuleKind::Command | ModuleKind::Shell => {
                    if let Ok(d) = command::desired(&args, task.module == ModuleKind::Shell) {
                        req.paths.extend(d.creates.into_iter().chain(d.removes));
                    }
                }
                _ => {}
            }
        }
    }
    req.normalize();
    req
}

fn setup_failure(host: &str, play: &str, msg: &str, run_started: Instant) -> TaskRecord {
    record(host, play, None, "connection settings", "", None, &Outcome::failed(msg), Instant::now(), run_started)
}

/// How the play ends for a host whose task ended so, if it takes the host out of the run.
fn leaves_play(r: &TaskRecord) -> Option<PlayOutcome> {
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

async fn run_play_on_host(mut host: HostRun, ctx: &PlayCtx<'_>) -> (HostRun, PlayOutcome, Vec<TaskRecord>) {
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
    if let Err(e) = host.ensure_facts(&ProbeRequest::default(), &ctx.opts.timeouts).await {
        if ctx.interrupt.is_stopping() {
            // The connection was cut by the interruption: the host was not tried.
            return (host, PlayOutcome::NotRun { reason: "interrupted".into() }, records);
        }
        let r = record(&host.name, &play.name, None, "Gathering Facts", "", None, &Outcome::from_transport(e), t0, ctx.run_started);
        let outcome = leaves_play(&r).expect("a failed probe fails the host");
        host.out = true;
        emit(&mut records, r);
        return (host, outcome, records);
    }
    // Each role's applicability, decided once from the facts.
    let applicability: Vec<(&Role, Option<String>)> = ctx.planned.roles.iter().map(|r| (r, not_applicable(r, host.facts()))).collect();
    let why_not = |role: &Role| applicability.iter().find(|(r, _)| r.name == role.name).and_then(|(_, why)| why.clone());
    for task in ctx.planned.tasks() {
        let role = ctx.planned.role_of(task);
        let (role_name, task_name, location) = (role.map(|r| r.name.as_str()), task.display_name(), task.location.to_string());
        if let Some(why) = role.and_then(why_not) {
            let o = Outcome::skipped(format!("not applicable: {why}"));
            emit(
                &mut records,
                record(&host.name, &play.name, role_name, &task_name, &location, Some(task.module), &o, Instant::now(), ctx.run_started),
            );
            continue;
        }
        if ctx.interrupt.is_stopping() {
            return (host, PlayOutcome::NotRun { reason: "interrupted".into() }, records);
        }
        let started = Instant::now();
        if task.no_log {
            crate::secrets::register_json(&Json::Object(task.vars.clone()));
        }
        host.log_commands = !task.no_log;
        let outcome = run_task(&mut host, task, role, ctx).await;
        host.log_commands = true;
        let mut r = record(&host.name, &play.name, role_name, &task_name, &location, Some(task.module), &outcome, started, ctx.run_started);
        r.ignored = outcome.status == Status::Failed && task.ignore_errors;
        if task.no_log {
            r.msg = "the output has been hidden due to 'no_log: true'".into();
            r.stderr_tail = None;
            r.diff = None;
        }
        let leaving = leaves_play(&r);
        emit(&mut records, r);
        if let Some(outcome) = leaving {
            host.out = true;
            return (host, outcome, records);
        }
    }
    // A role's own guarantee, checked on the host: the gate verdict for later plays.
    for (role, _) in applicability.iter().filter(|(_, why)| why.is_none()) {
        let Some(unit) = &role.meta.verify_unit_active else { continue };
        let started = Instant::now();
        let outcome = verify_unit_active(&mut host, unit, ctx).await;
        let origin = format!("{}/meta/gafix.yml", role.origin);
        let r = record(
            &host.name,
            &play.name,
            Some(&role.name),
            &format!("verify {unit} is active"),
            &origin,
            None,
            &outcome,
            started,
            ctx.run_started,
        );
        let leaving = leaves_play(&r);
        emit(&mut records, r);
        if let Some(outcome) = leaving {
            host.out = true;
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
async fn verify_unit_active(host: &mut HostRun, unit: &str, ctx: &PlayCtx<'_>) -> Outcome {
    if ctx.opts.check {
        return Outcome::ok(format!("{unit} would be active (check mode)"));
    }
    let request = ProbeRequest { units: vec![unit.to_string()], ..Default::default() };
    if let Err(e) = host.ensure_facts(&request, &ctx.opts.timeouts).await {
        return Outcome::from_transport(e);
    }
    match host.facts().units.get(unit).map(|u| u.active_state.as_str()) {
        Some("active") => Outcome::ok(format!("{unit} is active")),
        Some("") | None => Outcome::failed(format!("{unit} is unknown after the role ran")),
        Some(state) => Outcome::failed(format!("{unit} is {state} after the role ran")),
    }
}

async fn run_task(host: &mut HostRun, task: &Task, role: Option<&Role>, ctx: &PlayCtx<'_>) -> Outcome {
    let play = &ctx.planned.play;
    let role_params = role.and_then(|r| play.roles.iter().find(|rr| rr.name == r.name)).map(|rr| &rr.vars);
    let layers = VarLayers {
        role_defaults: role.map(|r| &r.defaults),
        inventory: &host.inventory_vars,
        facts: &host.facts_vars,
        play: &play.vars,
        role_params,
        task: &task.vars,
        registered: &host.registered,
        extra: &ctx.opts.extra_vars,
    };
    let check_mode = task.check_mode.unwrap_or(ctx.opts.check);
    let mut vars = plan::task_vars(&layers, &host.name, ctx.inv, &ctx.planned.hosts, check_mode);
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
        return register(host, task, Outcome::failed(e));
    }
    let becoming = task.become_.or(play.become_).unwrap_or(host.spec.become_default);
    let become_user = task.become_user.as_deref().or(play.become_user.as_deref());
    if let Some(u) = become_user {
        if let Err(e) = crate::transport::connection_validate_user(u) {
            return register(host, task, Outcome::failed(e));
        }
    }
    let become_ = becoming.then(|| host.spec.become_for(become_user));
    let exec_ctx = Ctx { templar: ctx.templar, timeouts: &ctx.opts.timeouts, check_mode, diff: ctx.opts.diff };
    let mut outcome = exec::execute(host, task.module, &args, become_.as_ref(), &exec_ctx, &vars).await;
    if outcome.status == Status::Unreachable || outcome.status == Status::Skipped {
        return register(host, task, outcome);
    }
    // changed_when / failed_when see the result under the register name, as in Ansible.
    if !task.changed_when.is_empty() || !task.failed_when.is_empty() {
        let result = events::registered_result(&provisional_record(&outcome), outcome.result.clone());
        if let Some(name) = &task.register {
            vars.insert(name.clone(), result);
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

fn provisional_record(o: &Outcome) -> TaskRecord {
    let now = Instant::now();
    record("", "", None, "", "", None, o, now, now)
}

fn register(host: &mut HostRun, task: &Task, outcome: Outcome) -> Outcome {
    if let Some(name) = &task.register {
        let r = provisional_record(&outcome);
        host.registered.insert(name.clone(), events::registered_result(&r, outcome.result.clone()));
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
fn record(
    host: &str,
    play: &str,
    role: Option<&str>,
    task: &str,
    location: &str,
    module: Option<ModuleKind>,
    o: &Outcome,
    started: Instant,
    origin: Instant,
) -> TaskRecord {
    TaskRecord {
        host: host.into(),
        play: play.into(),
        role: role.map(str::to_string),
        task: task.into(),
        module,
        location: location.into(),
        status: o.status,
        changed: o.changed,
        ignored: false,
        msg: o.msg.clone(),
        rc: o.rc,
        stderr_tail: o.stderr_tail.clone(),
        diff: o.diff.clone(),
        started_s: started.saturating_duration_since(origin).as_secs_f64(),
        duration_s: started.elapsed().as_secs_f64(),
    }
}
