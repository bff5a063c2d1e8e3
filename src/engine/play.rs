//! One play on one host, as steps: start (facts, the play's login user and `vars_files`),
//! each task in order (skipped where its role does not apply), then each role's own
//! verification, the verdict the gate reads. The strategy decides how hosts take the steps:
//! all hosts step by step (`linear`), or each at its own pace (`free`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::events::{Event, PlayOutcome, Status, TaskRecord, TaskRef};
use super::PlayCtx;
use crate::facts::ProbeRequest;
use crate::module::spec::{self, Args};
use crate::module::{Outcome, RunCtx};
use crate::plan::{self, VarLayers};
use crate::role::task::{Deferred, Meta};
use crate::role::{Role, RoleInstance, Task, Virtualization};
use crate::session::HostSession;
use crate::template::Templar;
use crate::vars::Vars;

/// How the play ends for a host whose task ended so, if it takes the host out of the run.
pub(super) fn leaves_play(r: &TaskRecord) -> Option<PlayOutcome> {
    match r.status {
        Status::Unreachable if !r.ignored => Some(PlayOutcome::Unreachable { msg: r.msg.clone() }),
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

/// One step of a play on a host.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    Start,
    /// The play's task at this index.
    Task(usize),
    /// The role instance's own verification.
    Verify(usize),
}

/// Every step of the play, in order.
pub(super) fn steps(ctx: &PlayCtx<'_>) -> Vec<Step> {
    let mut steps = vec![Step::Start];
    steps.extend((0..ctx.planned.tasks.len()).map(Step::Task));
    // A role whose tasks --tags or --start-at-task left out is not verified either.
    let ran = |i: usize| ctx.planned.tasks.iter().any(|t| t.role_instance == Some(i));
    steps.extend(
        ctx.planned
            .roles
            .iter()
            .enumerate()
            .filter(|(i, r)| r.role.meta.verify_unit_active.is_some() && ran(*i))
            .map(|(i, _)| Step::Verify(i)),
    );
    steps
}

/// A host's way through a play.
pub(super) struct HostPlay {
    pub host: HostSession,
    pub records: Vec<TaskRecord>,
    /// Set when the host is done with the play before its last step.
    pub left: Option<PlayOutcome>,
    /// Why each role instance does not apply, decided once from the facts.
    not_applicable: Vec<Option<String>>,
    vars_files: Vars,
    /// Handlers (by index in the play's list) this host notified and has not run yet.
    notified: Vec<bool>,
    /// How many enclosing blocks have `rescue:`: a failure inside is rescued, not fatal.
    rescuable: usize,
    /// The failed task's name and result, for the enclosing block's `rescue:`.
    block_failure: Option<(String, Json)>,
    /// How many `include_tasks` are running inside each other.
    include_depth: usize,
    /// The controller, for this host's tasks with `delegate_to: localhost` (made on first use).
    delegate: Option<HostSession>,
    /// How many times this host passed each `run_once` task (by location).
    once_passes: HashMap<String, usize>,
}

/// How deep `include_tasks` may nest (a file that includes itself stops here).
const MAX_INCLUDE_DEPTH: usize = 16;

impl HostPlay {
    pub fn new(host: HostSession) -> Self {
        HostPlay {
            host,
            records: Vec::new(),
            left: None,
            not_applicable: Vec::new(),
            vars_files: Vars::new(),
            notified: Vec::new(),
            rescuable: 0,
            block_failure: None,
            include_depth: 0,
            delegate: None,
            once_passes: HashMap::new(),
        }
    }

    /// The host's verdict on the play.
    pub fn finish(self) -> (HostSession, PlayOutcome, Vec<TaskRecord>) {
        let outcome = self.left.unwrap_or_else(|| match self.not_applicable.into_iter().flatten().next() {
            Some(why) => PlayOutcome::NotApplicable { why },
            None => PlayOutcome::Passed,
        });
        (self.host, outcome, self.records)
    }

    fn emit(&mut self, ctx: &PlayCtx<'_>, r: TaskRecord) {
        ctx.reporter.event(&Event::Task(&r));
        ctx.records.lock().unwrap().push(r.clone());
        self.records.push(r);
    }

    /// Records a task's end; a failure takes the host out of the run.
    fn finish_step(&mut self, ctx: &PlayCtx<'_>, mut r: TaskRecord) {
        let leaving = leaves_play(&r);
        if self.rescuable > 0 && matches!(leaving, Some(PlayOutcome::Failed { .. })) {
            r.rescued = true;
            self.block_failure =
                Some((r.task.clone(), serde_json::json!({"failed": true, "msg": r.msg, "rc": r.rc, "changed": r.changed})));
            return self.emit(ctx, r);
        }
        self.emit(ctx, r);
        if let Some(outcome) = leaving {
            self.host.leave();
            self.left = Some(outcome);
        }
    }
}

/// Runs one step; a host that has left the play takes no more steps.
pub(super) async fn run_step(hp: &mut HostPlay, step: Step, ctx: &PlayCtx<'_>) {
    if hp.left.is_some() {
        // With force_handlers, a host that failed runs what it notified at each flush.
        let flush = matches!(step, Step::Task(i) if ctx.planned.tasks[i].flush_handlers);
        let forced = ctx.opts.force_handlers || ctx.planned.play.force_handlers;
        if flush && forced && matches!(hp.left, Some(PlayOutcome::Failed { .. })) && hp.notified.iter().any(|n| *n) {
            let left = hp.left.take();
            run_handlers(hp, ctx).await;
            hp.left = left;
        }
        return;
    }
    if ctx.play_ended.load(std::sync::atomic::Ordering::SeqCst) {
        // `meta: end_play` on some host: every host is done with the play.
        hp.left = Some(PlayOutcome::Passed);
        return;
    }
    if ctx.interrupt.is_stopping() {
        hp.left = Some(PlayOutcome::NotRun { reason: "interrupted".into() });
        return;
    }
    match step {
        Step::Start => start(hp, ctx).await,
        Step::Task(i) => run_one_task(hp, &ctx.planned.tasks[i], ctx).await,
        Step::Verify(i) => verify(hp, &ctx.planned.roles[i], i, ctx).await,
    }
}

/// Facts first (one round trip reads everything the plan needs), as the play's login user;
/// then the play's `vars_files`.
async fn start(hp: &mut HostPlay, ctx: &PlayCtx<'_>) {
    let play = &ctx.planned.play;
    let t0 = Instant::now();
    let host_name = hp.host.name().to_string();
    let of = |task: &'static str| TaskRef { host: &host_name, play: &play.name, role: None, task, location: "", module: None };
    let remote_user = match &play.remote_user {
        // Ansible: a host's own `ansible_user` wins over the play's `remote_user`.
        Some(u) if !hp.host.vars().contains_key("ansible_user") && !hp.host.vars().contains_key("ansible_ssh_user") => {
            match crate::transport::connection_validate_user(u) {
                Ok(()) => Some(u.as_str()),
                Err(e) => {
                    let r = TaskRecord::new(of("remote_user"), &Outcome::failed(format!("remote_user: {e}")), t0, ctx.run_started);
                    return hp.finish_step(ctx, r);
                }
            }
        }
        _ => None,
    };
    hp.host.login_as(remote_user).await;
    if let Err(e) = hp.host.ensure_facts(&ProbeRequest::default()).await {
        if ctx.interrupt.is_stopping() {
            // The connection was cut by the interruption: the host was not tried.
            hp.left = Some(PlayOutcome::NotRun { reason: "interrupted".into() });
            return;
        }
        let r = TaskRecord::new(of("Gathering Facts"), &Outcome::from_transport(e), t0, ctx.run_started);
        return hp.finish_step(ctx, r);
    }
    if play.gather_facts {
        hp.host.expose_facts();
    }
    hp.not_applicable = ctx.planned.roles.iter().map(|r| not_applicable(&r.role, hp.host.facts())).collect();
    let verifies_agent =
        ctx.planned.roles.iter().enumerate().any(|(i, r)| r.role.meta.verify_unit_active.is_some() && hp.not_applicable[i].is_none());
    if ctx.opts.fix_hypervisor && verifies_agent {
        if let Some(outcome) = super::hypervisor::fix_channel(&mut hp.host, ctx.opts).await {
            let r = TaskRecord::new(of("agent channel at the hypervisor"), &outcome, t0, ctx.run_started);
            hp.finish_step(ctx, r);
            if hp.left.is_some() {
                return;
            }
        }
    }
    match load_vars_files(hp, ctx) {
        Ok(vars) => hp.vars_files = vars,
        Err(msg) => {
            let r = TaskRecord::new(of("vars_files"), &Outcome::failed(msg), t0, ctx.run_started);
            hp.finish_step(ctx, r)
        }
    }
}

/// The play's `vars_files` for this host: names are templated with the host's variables,
/// found from the playbook's directory; of a list of candidates, the first that exists.
fn load_vars_files(hp: &HostPlay, ctx: &PlayCtx<'_>) -> Result<Vars, String> {
    let play = &ctx.planned.play;
    let mut out = Vars::new();
    if play.vars_files.is_empty() {
        return Ok(out);
    }
    let empty = Vars::new();
    let layers = VarLayers {
        role_defaults: Vec::new(),
        inventory: hp.host.vars(),
        facts: hp.host.facts_vars().unwrap_or(&empty),
        play: &play.vars,
        vars_files: &empty,
        role_vars: Vec::new(),
        task: &empty,
        included: hp.host.included_vars(),
        registered: &empty,
        role_params: None,
        extra: &ctx.opts.extra_vars,
    };
    let vars = plan::task_vars(&layers, hp.host.name(), ctx.inv, &ctx.planned.hosts, ctx.opts.check);
    for entry in &play.vars_files {
        let mut tried = Vec::new();
        let mut found = None;
        for candidate in &entry.candidates {
            let name = match ctx.templar.render(&Json::String(candidate.clone()), &vars) {
                Ok(Json::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) => return Err(format!("{}: vars_files: {e}", entry.location)),
            };
            let path = ctx.plan_dir.join(&name);
            if path.is_file() {
                found = Some(path);
                break;
            }
            tried.push(path.display().to_string());
        }
        let Some(path) = found else {
            return Err(format!("{}: vars_files: none of these files exists: {}", entry.location, tried.join(", ")));
        };
        let mut errors = Vec::new();
        let node = crate::role::load_yaml(&path, &mut errors);
        let loaded = node.map(|n| crate::role::task::vars_value(&n, "vars_files", &mut errors)).unwrap_or_default();
        if let Some(e) = errors.first() {
            return Err(format!("vars_files: {e}"));
        }
        out.extend(loaded);
    }
    Ok(out)
}

async fn run_one_task(hp: &mut HostPlay, task: &Task, ctx: &PlayCtx<'_>) {
    if task.flush_handlers {
        return run_handlers(hp, ctx).await;
    }
    if let Some(include) = &task.include {
        return run_include(hp, task, include, ctx).await;
    }
    if let Some(meta) = task.meta {
        return run_meta(hp, task, meta, ctx);
    }
    if let Some(block) = &task.block {
        return run_block(hp, block, ctx).await;
    }
    if task.kw.run_once.unwrap_or(false) || task.module.bypasses_host_loop() {
        return run_once(hp, task, ctx).await;
    }
    run_module_task(hp, task, ctx).await
}

/// `run_once` (and modules that run once for all hosts, like `pause`): the first host to
/// reach the task runs it; every other host gets its registered result and counts nothing,
/// as in Ansible. Each time a host passes the task (in a loop of includes) is one run.
async fn run_once(hp: &mut HostPlay, task: &Task, ctx: &PlayCtx<'_>) {
    let at = task.location.to_string();
    let seen = hp.once_passes.entry(at.clone()).or_default();
    let key = (at, *seen);
    *seen += 1;
    let cell = ctx.once.lock().unwrap().entry(key).or_default().clone();
    let mut ran_here = false;
    let result = cell
        .get_or_init(|| {
            ran_here = true;
            async {
                run_module_task(hp, task, ctx).await;
                task.register.as_ref().and_then(|name| hp.host.registered().get(name).cloned())
            }
        })
        .await
        .clone();
    if let (false, Some(name), Some(value)) = (ran_here, &task.register, result) {
        hp.host.register(name, value);
    }
}

/// A task that runs a module (not an include, a block or a meta action).
async fn run_module_task(hp: &mut HostPlay, task: &Task, ctx: &PlayCtx<'_>) {
    let play = &ctx.planned.play;
    let instance = task.role_instance;
    let role = ctx.planned.role_of(task);
    let (task_name, location) = (task.display_name(), task.location.to_string());
    let host_name = hp.host.name().to_string();
    let of = TaskRef {
        host: &host_name,
        play: &play.name,
        role: role.map(|r| r.role.name.as_str()),
        task: &task_name,
        location: &location,
        module: Some(task.module),
    };
    if let Some(why) = instance.and_then(|i| hp.not_applicable.get(i).cloned().flatten()) {
        // Registered as skipped, as Ansible registers a skipped task: later tasks may test it.
        let o = register(&mut hp.host, task, Outcome::skipped(format!("not applicable: {why}")));
        return hp.emit(ctx, TaskRecord::new(of, &o, Instant::now(), ctx.run_started));
    }
    let started = Instant::now();
    let no_log = task.kw.no_log.unwrap_or(false);
    if no_log {
        crate::secrets::register_json(&Json::Object(task.vars.clone()));
    }
    hp.host.set_log_commands(!no_log);
    let outcome = run_task(hp, task, role, ctx).await;
    hp.host.set_log_commands(true);
    hp.host.set_task_limits(String::new(), None);
    let mut r = TaskRecord::new(of, &outcome, started, ctx.run_started);
    r.ignored = match outcome.status {
        Status::Failed => ignores_errors(hp, task, role, ctx),
        Status::Unreachable => task.kw.ignore_unreachable.unwrap_or(false),
        _ => false,
    };
    if no_log {
        r.msg = "the output has been hidden due to 'no_log: true'".into();
        r.stderr_tail = None;
        r.diff = None;
    }
    if r.status == Status::Changed {
        notify(hp, task, ctx);
    }
    hp.finish_step(ctx, r);
}

/// `meta: end_host`, `end_play`, `clear_facts`, on a host whose `when` holds; as in Ansible,
/// nothing is counted in the recap.
fn run_meta(hp: &mut HostPlay, task: &Task, meta: Meta, ctx: &PlayCtx<'_>) {
    // As Ansible, `end_play` is decided once, by the first host that reaches it.
    if meta == Meta::EndPlay {
        let at = format!("meta@{}", task.location);
        let seen = hp.once_passes.entry(at.clone()).or_default();
        let key = (at, *seen);
        *seen += 1;
        let mut claims = ctx.once.lock().unwrap();
        if claims.contains_key(&key) {
            return;
        }
        claims.insert(key, Default::default());
    }
    if !task.kw.when.is_empty() {
        let role = ctx.planned.role_of(task);
        let vars = task_vars(hp, task, role, ctx, ctx.opts.check);
        match all_true(&task.kw.when, &vars, ctx.templar) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let of = TaskRef {
                    host: hp.host.name(),
                    play: &ctx.planned.play.name,
                    role: role.map(|r| r.role.name.as_str()),
                    task: task.name.as_deref().unwrap_or("meta"),
                    location: &task.location.to_string(),
                    module: None,
                };
                let r = TaskRecord::new(of, &Outcome::failed(e), Instant::now(), ctx.run_started);
                return hp.finish_step(ctx, r);
            }
        }
    }
    match meta {
        Meta::EndHost => hp.left = Some(PlayOutcome::Passed),
        Meta::EndPlay => {
            ctx.play_ended.store(true, std::sync::atomic::Ordering::SeqCst);
            hp.left = Some(PlayOutcome::Passed);
        }
        Meta::ClearFacts => hp.host.clear_facts(),
    }
}

/// Where a task's `with_first_found`/`with_fileglob` look (`action` decides the subdirectory).
fn lookup_search(action: &str, task: &Task, role: Option<&RoleInstance>, ctx: &PlayCtx<'_>) -> super::loops::Search {
    let role_dir = role.map(|r| std::path::PathBuf::from(&r.role.origin)).filter(|d| d.is_dir());
    super::loops::Search::new(action, role_dir.as_deref(), &task.location.file, ctx.plan_dir)
}

/// `ignore_errors`, rendered with the host's variables when it is a template.
fn ignores_errors(hp: &HostPlay, task: &Task, role: Option<&RoleInstance>, ctx: &PlayCtx<'_>) -> bool {
    match &task.kw.ignore_errors {
        None => false,
        Some(Deferred::Known(b)) => *b,
        Some(d) => {
            let vars = task_vars(hp, task, role, ctx, ctx.opts.check);
            d.decide("ignore_errors", "a boolean", ctx.templar, &vars, crate::vars::json_bool).unwrap_or_else(|e| {
                tracing::warn!("{}: {e}", task.location);
                false
            })
        }
    }
}

/// `block:` then, if one of its tasks failed and there is a `rescue:`, the rescue tasks (with
/// `ansible_failed_task` and `ansible_failed_result`), then `always:`, which runs even on a
/// host that failed: as Ansible runs them for one host.
async fn run_block(hp: &mut HostPlay, block: &crate::role::task::Block, ctx: &PlayCtx<'_>) {
    let selected = |list: &'_ [Task]| -> Vec<Task> {
        list.iter().filter(|t| crate::plan::task_selected(t, &ctx.opts.tags, &ctx.opts.skip_tags)).cloned().collect()
    };
    async fn run_list(hp: &mut HostPlay, tasks: Vec<Task>, ctx: &PlayCtx<'_>) {
        for t in tasks {
            if hp.left.is_some() || hp.block_failure.is_some() || ctx.interrupt.is_stopping() {
                return;
            }
            let run: futures::future::LocalBoxFuture<'_, ()> = Box::pin(run_one_task(hp, &t, ctx));
            run.await;
        }
    }
    let rescue = selected(&block.rescue);
    let rescuable = !rescue.is_empty();
    let outer_failure = hp.block_failure.take();
    hp.rescuable += usize::from(rescuable);
    run_list(hp, selected(&block.block), ctx).await;
    hp.rescuable -= usize::from(rescuable);
    if let Some((name, result)) = hp.block_failure.take() {
        hp.host.register("ansible_failed_task", serde_json::json!({"name": name}));
        hp.host.register("ansible_failed_result", result);
        run_list(hp, rescue, ctx).await;
    }
    let always = selected(&block.always);
    if !always.is_empty() && !ctx.interrupt.is_stopping() {
        let left = hp.left.take();
        if matches!(left, None | Some(PlayOutcome::Failed { .. })) {
            hp.host.rejoin();
            let pending = hp.block_failure.take();
            run_list(hp, always, ctx).await;
            hp.block_failure = hp.block_failure.take().or(pending);
            if hp.left.is_none() && left.is_some() {
                hp.host.leave();
                hp.left = left;
            }
        } else {
            hp.left = left;
        }
    }
    // A failure here that an outer block rescues stays pending for it.
    hp.block_failure = hp.block_failure.take().or(outer_failure);
}

/// `include_tasks`: its `when` (and loop) decided for this host, the file named with this
/// host's variables, read then, and its tasks run here one after another, inheriting the
/// keywords around the include (and `apply:`), not the include's own. Each file included
/// counts `ok` once, as in Ansible's recap.
async fn run_include(hp: &mut HostPlay, task: &Task, include: &crate::role::task::Include, ctx: &PlayCtx<'_>) {
    let role = ctx.planned.role_of(task);
    let check_mode = task.kw.check_mode.unwrap_or(ctx.opts.check);
    let (task_name, location) = (task.display_name(), task.location.to_string());
    let host_name = hp.host.name().to_string();
    let of = || TaskRef {
        host: &host_name,
        play: &ctx.planned.play.name,
        role: role.map(|r| r.role.name.as_str()),
        task: &task_name,
        location: &location,
        module: None,
    };
    let started = Instant::now();
    if let Some(why) = task.role_instance.and_then(|i| hp.not_applicable.get(i).cloned().flatten()) {
        let o = Outcome::skipped(format!("not applicable: {why}"));
        return hp.emit(ctx, TaskRecord::new(of(), &o, started, ctx.run_started));
    }
    let mut vars = task_vars(hp, task, role, ctx, check_mode);
    let mut sources: Vec<String> = task.kw.when.clone();
    sources.push(include.file.clone());
    if let Some(l) = &task.loop_ {
        crate::template::collect_templates(&l.items, &mut sources);
    }
    if let Err(e) = ctx.templar.resolve_used(&mut vars, &sources) {
        return hp.finish_step(ctx, TaskRecord::new(of(), &Outcome::failed(e.to_string()), started, ctx.run_started));
    }
    // One pass per loop item (or one pass): the item's variables go to the included tasks.
    let passes: Vec<Vars> = match &task.loop_ {
        None => vec![Vars::new()],
        Some(l) => match super::loops::items(l, &vars, ctx.templar, &lookup_search("include_tasks", task, role, ctx)) {
            Ok(items) => (0..items.len())
                .map(|i| {
                    let mut bound = Vars::new();
                    super::loops::bind(l, &items, i, &mut bound);
                    bound
                })
                .collect(),
            Err(e) => return hp.finish_step(ctx, TaskRecord::new(of(), &Outcome::failed(e), started, ctx.run_started)),
        },
    };
    for bound in passes {
        let mut pass_vars = vars.clone();
        pass_vars.extend(bound.clone());
        let mut skip = None;
        for cond in &task.kw.when {
            match ctx.templar.condition(cond, &pass_vars) {
                Ok(true) => {}
                Ok(false) => skip = Some(Outcome::skipped(format!("conditional result was false: {cond}"))),
                Err(e) => skip = Some(Outcome::failed(e.to_string())),
            }
            if skip.is_some() {
                break;
            }
        }
        if let Some(o) = skip {
            hp.finish_step(ctx, TaskRecord::new(of(), &o, started, ctx.run_started));
            if hp.left.is_some() || hp.block_failure.is_some() {
                return;
            }
            continue;
        }
        let (file, tasks) = match &include.role {
            // A role's tasks were loaded with the playbook; they keep their role's instance.
            Some(call) => (format!("role {}", call.name), call.tasks.clone()),
            None => {
                let file = match ctx.templar.render(&Json::String(include.file.clone()), &pass_vars) {
                    Ok(v) => crate::vars::text(&v),
                    Err(e) => return hp.finish_step(ctx, TaskRecord::new(of(), &Outcome::failed(e.to_string()), started, ctx.run_started)),
                };
                let mut errors = Vec::new();
                let tasks = include
                    .files
                    .load(&file, &task.location, &mut errors)
                    .map(|node| crate::role::task::parse_tasks(Some(&node), task.role.as_deref(), &include.files, &mut errors))
                    .unwrap_or_default();
                if !errors.is_empty() {
                    let msg = errors.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; ");
                    return hp.finish_step(ctx, TaskRecord::new(of(), &Outcome::failed(msg), started, ctx.run_started));
                }
                (file, tasks)
            }
        };
        hp.emit(ctx, TaskRecord::new(of(), &Outcome::ok(format!("included: {file}")), started, ctx.run_started));
        let mut params = task.vars.clone();
        params.extend(bound);
        if hp.include_depth >= MAX_INCLUDE_DEPTH {
            let o = Outcome::failed(format!(
                "include_tasks: {file} nests more than {MAX_INCLUDE_DEPTH} includes deep (does it include itself?)"
            ));
            return hp.finish_step(ctx, TaskRecord::new(of(), &o, started, ctx.run_started));
        }
        hp.include_depth += 1;
        for t in tasks {
            let instance = if include.role.is_some() { None } else { task.role_instance };
            let t = t.inherit(&include.apply, None).inherit(&task.outer_kw, instance).with_outer_vars(&params);
            if !crate::plan::task_selected(&t, &ctx.opts.tags, &ctx.opts.skip_tags) {
                continue;
            }
            let run: futures::future::LocalBoxFuture<'_, ()> = Box::pin(run_one_task(hp, &t, ctx));
            run.await;
            if hp.left.is_some() || hp.block_failure.is_some() {
                break;
            }
        }
        hp.include_depth -= 1;
        if hp.left.is_some() || hp.block_failure.is_some() {
            return;
        }
    }
}

/// Marks the handlers a changed task notifies (by name, `listen` topic or `role : name`).
fn notify(hp: &mut HostPlay, task: &Task, ctx: &PlayCtx<'_>) {
    let handlers = &ctx.planned.handlers;
    hp.notified.resize(handlers.len(), false);
    for name in &task.notify {
        let name = match ctx.templar.render(&Json::String(name.clone()), hp.host.vars()) {
            Ok(Json::String(s)) => s,
            _ => name.clone(),
        };
        // As Ansible: of handlers sharing the name, the last defined; every listener.
        let role_of = |h: &Task| ctx.planned.role_of(h).map(|r| r.role.name.as_str());
        let by_name = handlers.iter().rposition(|h| crate::role::playbook::handler_named(h, role_of(h), &name));
        if let Some(i) = by_name {
            hp.notified[i] = true;
        }
        for (i, h) in handlers.iter().enumerate() {
            if h.listen.contains(&name) {
                hp.notified[i] = true;
            }
        }
    }
}

/// `meta: flush_handlers` (also at the end of each play section): the handlers this host
/// notified, once each, in the order they are defined; a handler may notify later ones.
async fn run_handlers(hp: &mut HostPlay, ctx: &PlayCtx<'_>) {
    let handlers = &ctx.planned.handlers;
    hp.notified.resize(handlers.len(), false);
    // One pass in definition order, as Ansible flushes: a handler may notify a later one in
    // this pass; one notified again behind the pass waits for the next flush.
    for (i, handler) in handlers.iter().enumerate() {
        if !hp.notified[i] {
            continue;
        }
        if hp.left.is_some() || hp.block_failure.is_some() {
            return;
        }
        hp.notified[i] = false;
        let run: futures::future::LocalBoxFuture<'_, ()> = Box::pin(run_one_task(hp, handler, ctx));
        run.await;
    }
}

/// A role's own guarantee, checked on the host: the gate verdict for later plays.
async fn verify(hp: &mut HostPlay, instance: &RoleInstance, index: usize, ctx: &PlayCtx<'_>) {
    if hp.not_applicable.get(index).cloned().flatten().is_some() {
        return;
    }
    let Some(unit) = &instance.role.meta.verify_unit_active else { return };
    let started = Instant::now();
    let inside = verify_unit_active(&mut hp.host, unit, &instance.role, ctx).await;
    let outcome = match hp.host.hypervisor() {
        Some(access) => with_hypervisor_view(inside, access, ctx.opts.check).await,
        None => inside,
    };
    let origin = format!("{}/meta/gafix.yml", instance.role.origin);
    let task_name = format!("verify {unit} is active");
    let host_name = hp.host.name().to_string();
    let of = TaskRef {
        host: &host_name,
        play: &ctx.planned.play.name,
        role: Some(&instance.role.name),
        task: &task_name,
        location: &origin,
        module: None,
    };
    let r = TaskRecord::new(of, &outcome, started, ctx.run_started);
    hp.finish_step(ctx, r);
}

/// Reads the unit's state through the facts: the systemd step that started it has just
/// re-read it (and any later change marks it stale), so this costs a round trip only when
/// the state is not known to be current. In check mode nothing was started: a unit that
/// is active already passes, one whose device is absent fails as the run would, and any
/// other is unknown until applied.
async fn verify_unit_active(host: &mut HostSession, unit: &str, role: &Role, ctx: &PlayCtx<'_>) -> Outcome {
    let request = ProbeRequest { units: vec![unit.to_string()], ..Default::default() };
    if let Err(e) = host.ensure_facts(&request).await {
        return Outcome::from_transport(e);
    }
    let state = host.facts().units.get(unit).map(|u| u.active_state.clone()).unwrap_or_default();
    if ctx.opts.check {
        if state == "active" {
            return Outcome::ok(format!("{unit} is active"));
        }
        let missing = role.meta.binds_to.iter().find(|(u, d)| u == unit && !host.facts().paths.get(d).is_some_and(|p| p.exists));
        return match missing {
            Some((_, device)) => Outcome::failed(crate::module::systemd::missing_device_message(unit, device)),
            None => Outcome::skipped(format!(
                "unknown until applied: {unit} is {} now (check mode)",
                if state.is_empty() { "not installed" } else { &state }
            )),
        };
    }
    match state.as_str() {
        "active" => Outcome::ok(format!("{unit} is active")),
        "" => Outcome::failed(format!("{unit} is unknown after the role ran")),
        state => Outcome::failed(format!("{unit} is {state} after the role ran")),
    }
}

/// The gate with both views: the unit active inside AND the hypervisor's ping answered.
/// In check mode an agent not yet running inside is unknown until applied, as the unit is;
/// a VM whose hypervisor has no channel fails in check mode as it will in the run.
async fn with_hypervisor_view(inside: Outcome, access: &crate::hypervisor::Access, check: bool) -> Outcome {
    use crate::hypervisor::Cause;
    if inside.status == Status::Failed {
        return inside;
    }
    let guest = if inside.status == Status::Skipped { inside.msg.clone() } else { format!("in guest: {}", inside.msg) };
    match access.ping(crate::hypervisor::PING_TIMEOUT).await {
        Ok(answer) if inside.status == Status::Skipped => {
            Outcome::skipped(format!("{guest}; hypervisor: guest-ping {} ms via {}", answer.elapsed.as_millis(), answer.via))
        }
        Ok(answer) => Outcome::ok(format!("{guest}; hypervisor: guest-ping {} ms via {}", answer.elapsed.as_millis(), answer.via)),
        Err(d) if check && inside.status == Status::Skipped && matches!(d.cause, Cause::Disconnected | Cause::NoAnswer | Cause::Silent) => {
            Outcome::skipped(format!("{guest}; hypervisor: {} via {} (the run starts the agent)", d.detail, d.via))
        }
        Err(d) => {
            let status = if d.cause.unreachable() { Status::Unreachable } else { Status::Failed };
            let mut o = Outcome::failed(format!("{guest}; hypervisor: {} via {}. Remedy: {}", d.detail, d.via, d.remedy));
            o.status = status;
            o
        }
    }
}

/// The task's `environment:` as `export` lines (names checked, values quoted).
fn environment_exports(task: &Task, vars: &Vars, templar: &Templar) -> Result<String, String> {
    let mut merged = serde_json::Map::new();
    for layer in &task.kw.environment {
        match templar.render(layer, vars).map_err(|e| format!("environment: {e}"))? {
            Json::Object(m) => merged.extend(m),
            Json::Null => {}
            other => return Err(format!("environment must be a mapping of variable names to values, found {other}")),
        }
    }
    let mut out = String::new();
    for (name, value) in merged {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("environment: '{name}' is not a valid variable name"));
        }
        let text = match value {
            Json::String(s) => s,
            Json::Null => String::new(),
            Json::Bool(b) => if b { "True" } else { "False" }.to_string(),
            other => other.to_string(),
        };
        crate::shell::check_no_nul(&name, &text).map_err(|e| format!("environment: {e}"))?;
        out.push_str(&format!("{name}={}; export {name}\n", crate::shell::quote(&text)));
    }
    Ok(out)
}

/// A task's variables on this host, with Ansible's precedence.
fn task_vars(hp: &HostPlay, task: &Task, role: Option<&RoleInstance>, ctx: &PlayCtx<'_>, check_mode: bool) -> Vars {
    let play = &ctx.planned.play;
    let all_roles = &ctx.planned.roles;
    let layers = VarLayers {
        role_defaults: all_roles.iter().filter(|r| r.public).map(|r| &r.role.defaults).chain(role.map(|r| &r.role.defaults)).collect(),
        inventory: hp.host.vars(),
        facts: hp.host.facts_vars().unwrap_or(&ctx.no_vars),
        play: &play.vars,
        vars_files: &hp.vars_files,
        role_vars: all_roles.iter().filter(|r| r.public).map(|r| &r.role.vars).chain(role.map(|r| &r.role.vars)).collect(),
        task: &task.vars,
        included: hp.host.included_vars(),
        registered: hp.host.registered(),
        role_params: role.map(|r| &r.params),
        extra: &ctx.opts.extra_vars,
    };
    let mut vars = plan::task_vars(&layers, hp.host.name(), ctx.inv, &ctx.planned.hosts, check_mode);
    // Ansible's magic variables of where the task comes from.
    let dir = std::path::absolute(ctx.plan_dir).unwrap_or_else(|_| ctx.plan_dir.to_path_buf());
    vars.insert("playbook_dir".into(), Json::String(dir.display().to_string()));
    vars.insert("ansible_play_name".into(), Json::String(play.name.clone()));
    if let Some(r) = role {
        vars.insert("role_name".into(), Json::String(r.role.name.clone()));
        vars.insert("role_path".into(), Json::String(r.role.origin.clone()));
    }
    vars
}

async fn run_task(hp: &mut HostPlay, task: &Task, role: Option<&RoleInstance>, ctx: &PlayCtx<'_>) -> Outcome {
    let check_mode = task.kw.check_mode.unwrap_or(ctx.opts.check);
    let mut vars = task_vars(hp, task, role, ctx, check_mode);
    let outcome = run_task_on(hp, task, role, ctx, &mut vars, check_mode).await;
    register(&mut hp.host, task, outcome)
}

/// The task's outcome (all its loop items), on the host or, with `delegate_to: localhost`,
/// on the controller with this host's variables.
async fn run_task_on(
    hp: &mut HostPlay,
    task: &Task,
    role: Option<&RoleInstance>,
    ctx: &PlayCtx<'_>,
    vars: &mut Vars,
    check_mode: bool,
) -> Outcome {
    // Variables whose values are templates are rendered when the task uses them, as in Ansible.
    let mut sources: Vec<String> = task.kw.when.iter().chain(&task.changed_when).chain(&task.failed_when).cloned().collect();
    crate::template::collect_templates(&Json::Object(task.args.0.clone()), &mut sources);
    task.kw.environment.iter().for_each(|e| crate::template::collect_templates(e, &mut sources));
    if let Some(l) = &task.loop_ {
        crate::template::collect_templates(&l.items, &mut sources);
        sources.extend(l.label.iter().cloned());
    }
    sources.extend(task.kw.delegate_to.iter().cloned());
    if let Err(e) = ctx.templar.resolve_used(vars, &sources) {
        return Outcome::failed(e.to_string());
    }
    let host: &mut HostSession = match delegated(task, vars, ctx.templar) {
        Ok(false) => &mut hp.host,
        Ok(true) => {
            let timeouts = hp.host.timeouts();
            hp.delegate.get_or_insert_with(|| controller_session(timeouts))
        }
        Err(e) => return Outcome::failed(e),
    };
    let Some(l) = &task.loop_ else {
        return run_attempts(host, task, role, ctx, vars, check_mode).await;
    };
    let items = match super::loops::items(l, vars, ctx.templar, &lookup_search(task.module.name(), task, role, ctx)) {
        Ok(items) => items,
        Err(e) => return Outcome::failed(e),
    };
    if collapses(task, l, &items) {
        // As one transaction, as Ansible's package modules take a list: the whole list is
        // the loop variable for the one run; each item's result is that run's.
        let mut all = vars.clone();
        all.insert(l.loop_var.clone(), Json::Array(items.clone()));
        let outcome = run_attempts(host, task, role, ctx, &mut all, check_mode).await;
        let done = (0..items.len())
            .map(|index| {
                let mut item_vars = vars.clone();
                super::loops::bind(l, &items, index, &mut item_vars);
                (items[index].clone(), super::loops::label(l, &items[index], &item_vars, ctx.templar), item_share(&outcome, &items[index]))
            })
            .collect();
        return super::loops::outcome(l, done);
    }
    let mut done = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if index > 0 && l.pause > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(l.pause)).await;
        }
        let mut item_vars = vars.clone();
        super::loops::bind(l, &items, index, &mut item_vars);
        let outcome = run_attempts(host, task, role, ctx, &mut item_vars, check_mode).await;
        if outcome.status == Status::Unreachable {
            return outcome;
        }
        let label = super::loops::label(l, item, &item_vars, ctx.templar);
        done.push((item.clone(), label, outcome));
    }
    super::loops::outcome(l, done)
}

/// An item's part of a collapsed transaction: changed only if its package was installed,
/// upgraded or removed (as its own transaction would have been).
fn item_share(outcome: &Outcome, item: &Json) -> Outcome {
    let mut o = outcome.clone();
    let name = item.as_str().map(crate::names::deb_base_name).unwrap_or_default();
    let lists = ["installed", "upgraded", "removed"].map(|k| outcome.result.get(k).and_then(Json::as_array));
    if o.status == Status::Changed && lists.iter().any(Option::is_some) {
        let touched = lists.iter().flatten().flat_map(|l| l.iter()).any(|p| p.as_str() == Some(name));
        if !touched {
            o.status = Status::Ok;
            o.changed = false;
        }
    }
    o
}

/// Whether a loop only feeds a package module's list argument its items (`name: "{{ item }}"`,
/// names as items, nothing else about the item): then it runs as one transaction.
fn collapses(task: &Task, l: &crate::role::task::Loop, items: &[Json]) -> bool {
    let Some(arg) = task.module.list_argument() else { return false };
    let var = &l.loop_var;
    let only_the_item = task.args.get(arg).and_then(Json::as_str).is_some_and(|s| s.replace(' ', "") == format!("{{{{{var}}}}}"));
    let mentions = |text: &str| text.contains(var.as_str());
    let rest_free = task.args.0.iter().filter(|(k, _)| k.as_str() != arg).all(|(_, v)| !mentions(&v.to_string()));
    only_the_item
        && rest_free
        && !task.kw.when.iter().chain(&task.changed_when).chain(&task.failed_when).any(|w| mentions(w))
        && task.until.is_empty()
        && task.retries.is_none()
        && l.pause == 0.0
        && items.iter().all(Json::is_string)
}

/// Whether the task runs on the controller: `delegate_to: localhost` (or 127.0.0.1),
/// rendered with the host's variables; any other target is not supported.
fn delegated(task: &Task, vars: &Vars, templar: &Templar) -> Result<bool, String> {
    let Some(target) = &task.kw.delegate_to else { return Ok(false) };
    let target = templar.render(&Json::String(target.clone()), vars).map_err(|e| format!("delegate_to: {e}"))?;
    match crate::vars::text(&target).as_str() {
        "localhost" | "127.0.0.1" => Ok(true),
        other => Err(format!("`delegate_to: {other}` is not supported by gafix yet (only `delegate_to: localhost`, the controller)")),
    }
}

/// The controller as a host of its own (`ansible_connection: local`), for delegated tasks.
fn controller_session(timeouts: crate::session::Timeouts) -> HostSession {
    let mut vars = Vars::new();
    vars.insert("ansible_connection".into(), Json::String("local".into()));
    let spec = crate::transport::ConnectionSpec::from_vars("localhost", &vars, crate::transport::HostKeyPolicy::Strict, None)
        .expect("a local connection's settings are valid");
    HostSession::new("localhost".into(), spec, vars, ProbeRequest::default(), timeouts)
}

/// `until` / `retries` / `delay` as Ansible runs them: up to 1 + retries attempts (retries
/// is 3 when only `until` is given), until the conditions hold (or, without `until`, until
/// the task does not fail), `delay` seconds apart; the result has `attempts`.
async fn run_attempts(
    host: &mut HostSession,
    task: &Task,
    role: Option<&RoleInstance>,
    ctx: &PlayCtx<'_>,
    vars: &mut Vars,
    check_mode: bool,
) -> Outcome {
    let decide = |d: &Option<Deferred<u64>>, what: &str, default: u64| match d {
        None => Ok(default),
        Some(d) => d.decide(what, "a whole number (0 to 86400)", ctx.templar, vars, crate::role::task::count),
    };
    let (retries, delay) =
        match (decide(&task.retries, "retries", if task.until.is_empty() { 0 } else { 3 }), decide(&task.delay, "delay", 5)) {
            (Ok(r), Ok(d)) => (r, d),
            (Err(e), _) | (_, Err(e)) => return Outcome::failed(e),
        };
    let total = 1 + retries;
    if total == 1 {
        return run_item(host, task, role, ctx, vars, check_mode).await;
    }
    let delay = Duration::from_secs(delay);
    for attempt in 1..=total {
        let mut o = run_item(host, task, role, ctx, vars, check_mode).await;
        if matches!(o.status, Status::Skipped | Status::Unreachable) {
            return o;
        }
        let mut seen = vars.clone();
        if let Some(name) = &task.register {
            seen.insert(name.clone(), o.registered());
        }
        let done = if task.until.is_empty() { Ok(o.status != Status::Failed) } else { all_true(&task.until, &seen, ctx.templar) };
        let set_attempts = |o: &mut Outcome, n: u64| {
            if !o.result.is_object() {
                o.result = serde_json::json!({});
            }
            o.result["attempts"] = serde_json::json!(n);
        };
        match done {
            Err(e) => return Outcome::failed(e),
            Ok(true) => {
                set_attempts(&mut o, attempt);
                return o;
            }
            Ok(false) if attempt == total => {
                set_attempts(&mut o, total - 1);
                if o.status != Status::Failed {
                    o.msg = format!("still not true after {} attempts: {}", total, task.until.join(" and "));
                }
                o.status = Status::Failed;
                return o;
            }
            Ok(false) => tokio::time::sleep(delay).await,
        }
    }
    unreachable!("the last attempt returns")
}

/// One run of the task's module: its `when`, arguments, module, `changed_when` and
/// `failed_when` (once, or once per loop item with the item in `vars`).
async fn run_item(
    host: &mut HostSession,
    task: &Task,
    role: Option<&RoleInstance>,
    ctx: &PlayCtx<'_>,
    vars: &mut Vars,
    check_mode: bool,
) -> Outcome {
    let vars = &mut *vars;
    for cond in &task.kw.when {
        match ctx.templar.condition(cond, vars) {
            Ok(true) => {}
            Ok(false) => return Outcome::skipped(format!("conditional result was false: {cond}")),
            Err(e) => return Outcome::failed(e.to_string()),
        }
    }
    let args = match ctx.templar.render(&Json::Object(task.args.0.clone()), vars) {
        Ok(Json::Object(m)) => Args(m),
        Ok(_) => Args::default(),
        Err(e) => return Outcome::failed(e.to_string()),
    };
    if let Err(e) = spec::validate_rendered(task.module.spec(), &args) {
        return Outcome::failed(e.to_string());
    }
    let becoming = task.kw.become_.unwrap_or(host.spec().become_default);
    let become_user = task.kw.become_user.as_deref();
    if let Some(u) = become_user {
        if let Err(e) = crate::transport::connection_validate_user(u) {
            return Outcome::failed(e);
        }
    }
    let environment = match environment_exports(task, vars, ctx.templar) {
        Ok(e) => e,
        Err(e) => return Outcome::failed(e),
    };
    let timeout = task.kw.timeout.filter(|t| *t > 0).map(Duration::from_secs);
    host.set_task_limits(environment, timeout.map(|t| Instant::now() + t));
    let become_ = becoming.then(|| host.become_as(become_user));
    let binds_to: &[(String, String)] = role.map(|r| r.role.meta.binds_to.as_slice()).unwrap_or_default();
    let controller_dirs: Vec<std::path::PathBuf> = role
        .map(|r| std::path::PathBuf::from(&r.role.origin))
        .filter(|d| d.is_dir())
        .into_iter()
        .chain([ctx.plan_dir.to_path_buf()])
        .collect();
    let run_ctx = RunCtx {
        controller_dirs: &controller_dirs,
        templar: ctx.templar,
        check_mode,
        diff: task.kw.diff.unwrap_or(ctx.opts.diff),
        become_: become_.as_deref(),
        vars,
        verbosity: ctx.opts.verbosity,
        binds_to,
    };
    let started = Instant::now();
    let mut outcome = task.module.run(host, &args, &run_ctx).await;
    if let Some(limit) = timeout {
        if outcome.status != Status::Ok && outcome.status != Status::Changed && started.elapsed() >= limit {
            outcome = Outcome::failed(format!("the task exceeded its timeout of {} s and was stopped", limit.as_secs()));
        }
    }
    if outcome.status == Status::Unreachable || outcome.status == Status::Skipped {
        return outcome;
    }
    // changed_when / failed_when see the result under the register name, as in Ansible.
    if !task.changed_when.is_empty() || !task.failed_when.is_empty() {
        if let Some(name) = &task.register {
            vars.insert(name.clone(), outcome.registered());
        }
        if !task.changed_when.is_empty() {
            match all_true(&task.changed_when, vars, ctx.templar) {
                Ok(changed) => {
                    outcome.changed = changed;
                    if outcome.status != Status::Failed {
                        outcome.status = if changed { Status::Changed } else { Status::Ok };
                    }
                }
                Err(e) => return Outcome::failed(e),
            }
        }
        if !task.failed_when.is_empty() {
            match any_true(&task.failed_when, vars, ctx.templar) {
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
                Err(e) => return Outcome::failed(e),
            }
        }
    }
    outcome
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
