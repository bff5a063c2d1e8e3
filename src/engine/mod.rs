//! The engine: runs a plan. Plays in order; within a play, `serial` batches in order;
//! within a batch, up to `forks` hosts at once, each host running its tasks in order
//! (a slow or stuck host never holds up the others). A host that fails leaves the run,
//! as in Ansible; a play with `gafix_gate` runs only on hosts that passed the named play.
//!
//! [`run`] reads as its four steps: [`prepare`] every host, then for each play the [`gate`]
//! and the [`batches`], then [`finish`].

pub mod events;
mod hypervisor;
pub mod interrupt;
mod loops;
mod play;
pub(crate) mod prepare;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use indexmap::IndexMap;

use crate::inventory::Inventory;
use crate::plan::{self, Plan, PlannedPlay};
use crate::role::Strategy;
use crate::session::{HostSession, Timeouts};
use crate::template::Templar;
use crate::transport::{HostKeyPolicy, Secret};
use crate::vars::Vars;
use events::{Event, PlayOutcome, PlayReport, Reporter, RunReport, Stats, TaskRecord};
pub use interrupt::Interrupt;
use play::{HostPlay, Step};
pub use prepare::connection_for;

/// How to run: the command line's settings.
pub struct Options {
    pub forks: usize,
    pub check: bool,
    pub diff: bool,
    pub timeouts: Timeouts,
    pub host_key_policy: HostKeyPolicy,
    pub become_password: Option<Secret>,
    pub extra_vars: Vars,
    /// `-v` count: `debug`'s `verbosity` is compared with it.
    pub verbosity: u8,
    /// ansible.cfg's connection settings, for hosts whose variables do not set them.
    pub connection_defaults: crate::transport::ConnectionDefaults,
    /// A transport for each host by name, instead of SSH or local (tests).
    pub connect_with: Option<ConnectWith>,
    /// `--fix-hypervisor`: a VM whose hypervisor lacks the agent channel gets it, before its
    /// agent role runs.
    pub fix_hypervisor: bool,
    /// `--allow-restart`: the fresh start that applies the channel may happen.
    pub allow_restart: bool,
    /// `--tags` / `--skip-tags`, for the tasks of files included at run time.
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    /// `--force-handlers`: a host that failed still runs the handlers it notified.
    pub force_handlers: bool,
}

/// Makes a host's transport from its name.
pub type ConnectWith = std::sync::Arc<dyn Fn(&str) -> Box<dyn crate::transport::Transport> + Send + Sync>;

/// Every host of the plan: ready to run, or why not (bad connection settings).
struct Fleet {
    hosts: IndexMap<String, HostSession>,
    invalid: BTreeMap<String, String>,
}

/// Runs the plan; `interrupt` stops new work from starting, or aborts work in flight.
pub async fn run(plan: &Plan, inv: &Inventory, opts: &Options, reporter: &dyn Reporter, interrupt: &Interrupt) -> RunReport {
    let started = Instant::now();
    let templar = Templar::new();
    let mut report = RunReport::new(plan.source.clone(), opts.check);
    let mut fleet = prepare(plan, inv, opts, &templar, &mut report);
    let mut outcomes_by_play: BTreeMap<String, BTreeMap<String, PlayOutcome>> = BTreeMap::new();
    for planned in &plan.plays {
        let (mut outcomes, eligible) = gate(planned, &mut fleet, &outcomes_by_play, started, reporter, &mut report);
        let batches = plan::batches(&eligible, &planned.serial);
        reporter.event(&Event::PlayStart {
            name: &planned.play.name,
            hosts: eligible.len(),
            batches: batches.len(),
            check_mode: opts.check,
        });
        for (h, outcome) in &outcomes {
            if let PlayOutcome::Gated { reason } = outcome {
                reporter.event(&Event::Gated { host: h, reason });
            }
        }
        let ctx = PlayCtx {
            run_started: started,
            planned,
            inv,
            opts,
            templar: &templar,
            reporter,
            interrupt,
            records: Mutex::new(Vec::new()),
            fatal: Mutex::new(None),
            over_max_fail: std::sync::atomic::AtomicBool::new(false),
            play_ended: std::sync::atomic::AtomicBool::new(false),
            once: Mutex::new(HashMap::new()),
            plan_dir: &plan.dir,
            no_vars: Vars::new(),
        };
        let stopped = run_batches(&ctx, &batches, &mut fleet, &mut outcomes, &mut report).await;
        if interrupt.is_stopping() {
            report.interrupted = true;
        }
        let ends_playbook = ctx.fatal.lock().unwrap().is_some() || ctx.over_max_fail.load(std::sync::atomic::Ordering::SeqCst);
        outcomes_by_play.insert(planned.play.name.clone(), outcomes.clone());
        report.plays.push(PlayReport {
            name: planned.play.name.clone(),
            gate: planned.play.gate.clone(),
            hosts: planned.hosts.clone(),
            batches,
            outcomes,
            stopped,
        });
        if report.interrupted || ends_playbook {
            break;
        }
    }
    finish(fleet, started, report).await
}

/// Every host the plan touches, with its connection settings checked and what its probe
/// should read; a host whose settings are unusable fails at its first play.
fn prepare(plan: &Plan, inv: &Inventory, opts: &Options, templar: &Templar, report: &mut RunReport) -> Fleet {
    let mut fleet = Fleet { hosts: IndexMap::new(), invalid: BTreeMap::new() };
    for name in plan.plays.iter().flat_map(|p| p.hosts.iter()) {
        if fleet.hosts.contains_key(name) || fleet.invalid.contains_key(name) {
            continue;
        }
        report.stats.insert(name.clone(), Stats::default());
        match prepare::prepare_host(name, plan, inv, opts, templar) {
            Ok(h) => {
                fleet.hosts.insert(name.clone(), h);
            }
            Err(msg) => {
                fleet.invalid.insert(name.clone(), msg);
            }
        }
    }
    fleet
}

/// Which of the play's hosts run it: not those gated by an earlier play (each gets its
/// reason), not those already out of the run. Hosts with unusable settings fail here.
fn gate(
    planned: &PlannedPlay,
    fleet: &mut Fleet,
    earlier: &BTreeMap<String, BTreeMap<String, PlayOutcome>>,
    run_started: Instant,
    reporter: &dyn Reporter,
    report: &mut RunReport,
) -> (BTreeMap<String, PlayOutcome>, Vec<String>) {
    let play = &planned.play;
    let mut outcomes = BTreeMap::new();
    let mut eligible = Vec::new();
    for h in &planned.hosts {
        if let Some(msg) = fleet.invalid.remove(h) {
            let record = play::setup_failure(h, &play.name, &msg, run_started);
            reporter.event(&Event::Task(&record));
            report.add(record);
            outcomes.insert(h.clone(), PlayOutcome::Failed { task: "connection settings".into(), msg });
            continue;
        }
        let Some(host) = fleet.hosts.get(h) else { continue };
        // The gate is checked first, so that the reports give every gated host its reason.
        if let Some(gate) = &play.gate {
            let verdict = earlier.get(gate).and_then(|o| o.get(h));
            if verdict != Some(&PlayOutcome::Passed) {
                let reason = match verdict {
                    Some(v) => format!("{gate} {}", v.brief()),
                    None => format!("{gate} did not run on this host"),
                };
                outcomes.insert(h.clone(), PlayOutcome::Gated { reason });
                continue;
            }
        }
        if !host.is_out() {
            eligible.push(h.clone());
        }
    }
    (outcomes, eligible)
}

/// Runs the play batch after batch; returns why later batches did not start, if they did not.
async fn run_batches(
    ctx: &PlayCtx<'_>,
    batches: &[Vec<String>],
    fleet: &mut Fleet,
    outcomes: &mut BTreeMap<String, PlayOutcome>,
    report: &mut RunReport,
) -> Option<String> {
    let play = &ctx.planned.play;
    let mut stopped: Option<String> = None;
    for (index, batch) in batches.iter().enumerate() {
        if ctx.play_ended.load(std::sync::atomic::Ordering::SeqCst) {
            for h in batch {
                outcomes.insert(h.clone(), PlayOutcome::NotRun { reason: "meta: end_play".into() });
            }
            continue;
        }
        if ctx.interrupt.is_stopping() || stopped.is_some() {
            let reason = stopped.clone().unwrap_or_else(|| "interrupted".to_string());
            for h in batch {
                outcomes.insert(h.clone(), PlayOutcome::NotRun { reason: reason.clone() });
            }
            continue;
        }
        if batches.len() > 1 {
            ctx.reporter.event(&Event::BatchStart { index: index + 1, count: batches.len(), hosts: batch });
        }
        let failed = run_batch(ctx, batch, fleet, outcomes, report).await;
        if let Some((_, reason)) = ctx.fatal.lock().unwrap().clone() {
            stopped = Some(reason);
            continue;
        }
        if index + 1 < batches.len() && plan::batch_stops_play(batch.len(), failed, ctx.planned.max_fail_percentage) {
            let reason = match ctx.planned.max_fail_percentage {
                Some(max) if failed < batch.len() => {
                    ctx.over_max_fail.store(true, std::sync::atomic::Ordering::SeqCst);
                    format!("{failed} of {} hosts in batch {} failed, more than max_fail_percentage {max}%", batch.len(), index + 1)
                }
                _ => format!("every host in batch {} failed", index + 1),
            };
            ctx.reporter.event(&Event::BatchStopped { play: &play.name, reason: &reason });
            stopped = Some(reason);
        }
    }
    stopped
}

/// One batch, `forks` hosts at a time, by the play's strategy; returns how many hosts
/// failed or were unreachable.
async fn run_batch(
    ctx: &PlayCtx<'_>,
    batch: &[String],
    fleet: &mut Fleet,
    outcomes: &mut BTreeMap<String, PlayOutcome>,
    report: &mut RunReport,
) -> usize {
    let plays: Vec<HostPlay> = batch.iter().filter_map(|h| fleet.hosts.shift_remove(h)).map(HostPlay::new).collect();
    let steps = play::steps(ctx);
    let work = async {
        match ctx.planned.play.strategy {
            Strategy::Free => run_free(ctx, plays, &steps).await,
            Strategy::Linear => run_linear(ctx, plays, &steps, batch.len()).await,
        }
    };
    let results: Vec<HostPlay> = tokio::select! {
        results = work => results,
        () = ctx.interrupt.aborted() => {
            // The hosts' futures are dropped here: their connections close (a package
            // transaction goes on on its host); what they recorded is kept.
            let records = std::mem::take(&mut *ctx.records.lock().unwrap());
            for h in batch {
                let mine: Vec<TaskRecord> = records.iter().filter(|r| &r.host == h).cloned().collect();
                let outcome = mine.iter().find_map(play::leaves_play).unwrap_or(PlayOutcome::NotRun { reason: "aborted".into() });
                mine.into_iter().for_each(|r| report.add(r));
                outcomes.insert(h.clone(), outcome);
            }
            interrupt::kill_connecting_ssh();
            return 0;
        }
    };
    let mut failed = 0;
    for hp in results {
        ctx.reporter.event(&Event::HostDone);
        let (host, outcome, records) = hp.finish();
        records.into_iter().for_each(|r| report.add(r));
        if matches!(outcome, PlayOutcome::Failed { .. } | PlayOutcome::Unreachable { .. }) {
            failed += 1;
        }
        outcomes.insert(host.name().to_string(), outcome);
        fleet.hosts.insert(host.name().to_string(), host);
    }
    failed
}

/// `strategy: free`: each host takes all its steps at its own pace.
async fn run_free(ctx: &PlayCtx<'_>, plays: Vec<HostPlay>, steps: &[Step]) -> Vec<HostPlay> {
    stream::iter(plays)
        .map(|mut hp| async move {
            for (index, step) in steps.iter().enumerate() {
                stop_if_fatal(ctx, &mut hp, index);
                play::run_step(&mut hp, *step, ctx).await;
                note_fatal(ctx, &hp, index);
            }
            hp
        })
        .buffer_unordered(ctx.opts.forks.max(1))
        .collect()
        .await
}

/// `strategy: linear` (Ansible's default): every host finishes a step before any host
/// starts the next; `any_errors_fatal` and `max_fail_percentage` are checked between steps.
async fn run_linear(ctx: &PlayCtx<'_>, mut plays: Vec<HostPlay>, steps: &[Step], batch_len: usize) -> Vec<HostPlay> {
    for (index, step) in steps.iter().enumerate() {
        for hp in plays.iter_mut() {
            stop_if_fatal(ctx, hp, index);
        }
        if let (Step::Task(i), true) = (step, plays.iter().any(|hp| hp.left.is_none()) && !ctx.interrupt.is_stopping()) {
            let task = &ctx.planned.tasks[*i];
            if !task.flush_handlers {
                let name = task.display_name();
                ctx.reporter.event(&Event::TaskStart { role: ctx.planned.role_of(task).map(|r| r.role.name.as_str()), task: &name });
            }
        }
        stream::iter(plays.iter_mut())
            .for_each_concurrent(ctx.opts.forks.max(1), |hp| async move {
                play::run_step(hp, *step, ctx).await;
                note_fatal(ctx, hp, index);
            })
            .await;
        let failed =
            plays.iter().filter(|hp| matches!(hp.left, Some(PlayOutcome::Failed { .. } | PlayOutcome::Unreachable { .. }))).count();
        if let Some(max) = ctx.planned.max_fail_percentage {
            if failed < batch_len && plan::batch_stops_play(batch_len, failed, Some(max)) {
                ctx.over_max_fail.store(true, std::sync::atomic::Ordering::SeqCst);
                let reason = format!("{failed} of {batch_len} hosts failed, more than max_fail_percentage {max}%");
                // As Ansible: the rest of the batch is done with the play, and out of the run.
                for hp in plays.iter_mut().filter(|hp| hp.left.is_none()) {
                    hp.host.leave();
                    hp.left = Some(PlayOutcome::NotRun { reason: reason.clone() });
                }
            }
        }
        if plays.iter().all(|hp| hp.left.is_some()) {
            break;
        }
    }
    plays
}

/// With `any_errors_fatal`, a host's failure ends the play for every host of the batch
/// (in `linear`, once the failed step has run on all of them).
fn note_fatal(ctx: &PlayCtx<'_>, hp: &HostPlay, index: usize) {
    if !ctx.planned.play.any_errors_fatal {
        return;
    }
    if let Some(PlayOutcome::Failed { .. } | PlayOutcome::Unreachable { .. }) = &hp.left {
        let mut fatal = ctx.fatal.lock().unwrap();
        if fatal.is_none() {
            *fatal = Some((index, format!("any_errors_fatal: {} failed", hp.host.name())));
        }
    }
}

fn stop_if_fatal(ctx: &PlayCtx<'_>, hp: &mut HostPlay, index: usize) {
    let fatal = ctx.fatal.lock().unwrap().clone();
    if let Some((at, reason)) = fatal {
        let applies = ctx.planned.play.strategy == Strategy::Free || at < index;
        if applies && hp.left.is_none() {
            hp.host.leave();
            hp.left = Some(PlayOutcome::NotRun { reason });
        }
    }
}

/// Releases every connection (a master kept by --persist stays) and completes the report.
async fn finish(fleet: Fleet, started: Instant, mut report: RunReport) -> RunReport {
    for (name, h) in &fleet.hosts {
        report.round_trips.insert(name.clone(), h.round_trips());
    }
    let closing: Vec<_> = fleet.hosts.into_values().map(|mut h| async move { h.release().await }).collect();
    futures::future::join_all(closing).await;
    report.duration_s = started.elapsed().as_secs_f64();
    report.exit_code = report.compute_exit_code();
    report
}

/// A `run_once` task's registered result, set by the host that ran it, awaited by the others.
type OnceResult = std::sync::Arc<tokio::sync::OnceCell<Option<serde_json::Value>>>;

/// What every host of a play shares while it runs.
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
    /// The step and reason at which `any_errors_fatal` ended the play.
    fatal: Mutex<Option<(usize, String)>>,
    /// `max_fail_percentage` was exceeded: as `any_errors_fatal`, this ends the playbook
    /// (Ansible's "break play": no later batch and no later play runs).
    over_max_fail: std::sync::atomic::AtomicBool,
    /// `meta: end_play` ran: no host takes another step of the play, in any batch.
    play_ended: std::sync::atomic::AtomicBool,
    /// `run_once` tasks (by location and pass): the registered result of the host that ran it.
    once: Mutex<HashMap<(String, usize), OnceResult>>,
    /// The playbook's directory (`vars_files` are found from it).
    plan_dir: &'a std::path::Path,
    /// No variables: the facts of a host whose facts were not gathered.
    no_vars: Vars,
}
