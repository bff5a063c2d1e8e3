//! Inventory + playbook + roles -> the plan: which hosts each play runs on, in which batches.

use serde_json::{json, Value as Json};

use crate::inventory::{self, Inventory, PatternError, Vars};
use crate::role::playbook::ResolvedPlay;
use crate::role::Playbook;
use crate::role::{HostOrder, Play, RoleError, RoleInstance, RoleSource, Serial, Task};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--limit: {0}")]
    Limit(PatternError),
    #[error("{location}: hosts: {error}")]
    PlayHosts { location: crate::yaml::Location, error: PatternError },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Roles(Vec<RoleError>),
    #[error("the inventory, host pattern and --limit leave no hosts to run on")]
    NoHosts,
    #[error("--start-at-task {0}")]
    StartAtTask(String),
}

#[derive(Clone, Debug)]
pub struct PlannedPlay {
    pub play: Play,
    /// Each run of a role, in order (dependencies before the roles that need them).
    pub roles: Vec<RoleInstance>,
    /// Every task in run order, with its inherited keywords, after `--tags`/`--skip-tags`.
    pub tasks: Vec<Task>,
    /// The handlers, in the order they run when notified.
    pub handlers: Vec<Task>,
    /// Hosts the play targets (play pattern, narrowed by --limit), in the play's `order`.
    pub hosts: Vec<String>,
    pub serial: Vec<Serial>,
    pub max_fail_percentage: Option<f64>,
}

impl PlannedPlay {
    /// The role instance a task belongs to.
    pub fn role_of(&self, task: &Task) -> Option<&RoleInstance> {
        task.role_instance.and_then(|i| self.roles.get(i))
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub plays: Vec<PlannedPlay>,
    pub source: String,
    /// The playbook's directory (`vars_files` are relative to it).
    pub dir: std::path::PathBuf,
}

/// Command-line overrides of play settings.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub limit: Option<String>,
    pub serial: Option<Vec<Serial>>,
    pub max_fail_percentage: Option<f64>,
    /// `--tags`: empty means all.
    pub tags: Vec<String>,
    /// `--skip-tags`.
    pub skip_tags: Vec<String>,
    /// `--slice K/N`: this worker's share of the hosts.
    pub slice: Option<Slice>,
    /// `--start-at-task NAME`: tasks before the first one so named are left out.
    pub start_at_task: Option<String>,
}

/// AWX's job slicing: the hosts (after `--limit`) sorted by name; slice K of N takes every
/// Nth host starting with the Kth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl Slice {
    /// `K/N` with 1 <= K <= N.
    pub fn parse(text: &str) -> Result<Slice, String> {
        let bad = || format!("slice '{text}': expected K/N with 1 <= K <= N, such as 2/5");
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Slice { index, count })
    }

    /// This slice's hosts out of `hosts`.
    pub fn select(&self, hosts: &[String]) -> std::collections::HashSet<String> {
        let mut sorted: Vec<&String> = hosts.iter().collect();
        sorted.sort();
        sorted.into_iter().skip(self.index - 1).step_by(self.count).cloned().collect()
    }
}

pub fn build(inv: &Inventory, book: &Playbook, roles: &RoleSource, overrides: &Overrides) -> Result<Plan, PlanError> {
    let resolved = book.resolve(roles).map_err(PlanError::Roles)?;
    let mut subset = match &overrides.limit {
        Some(limit) => {
            Some(inventory::select(inv, limit).map_err(PlanError::Limit)?.into_iter().collect::<std::collections::HashSet<String>>())
        }
        None => None,
    };
    if let Some(slice) = overrides.slice {
        let candidates: Vec<String> = match &subset {
            Some(s) => s.iter().cloned().collect(),
            None => inv.all_hosts(),
        };
        subset = Some(slice.select(&candidates));
    }
    let mut plays = Vec::new();
    for ResolvedPlay { play, roles, tasks, handlers } in resolved {
        let mut hosts =
            inventory::select(inv, &play.hosts).map_err(|error| PlanError::PlayHosts { location: play.location.clone(), error })?;
        if let Some(subset) = &subset {
            hosts.retain(|h| subset.contains(h));
        }
        order_hosts(&mut hosts, play.order);
        // A block stays when any task inside it is selected (each is checked again when it runs).
        let tasks = tasks
            .into_iter()
            // The implicit handler flushes are never filtered out (Ansible does not either).
            .filter(|t| {
                (t.flush_handlers && t.name.as_deref() == Some(crate::role::task::IMPLICIT_FLUSH))
                    || task_selected(t, &overrides.tags, &overrides.skip_tags)
            })
            .collect();
        plays.push(PlannedPlay {
            serial: overrides.serial.clone().unwrap_or_else(|| play.serial.clone()),
            max_fail_percentage: overrides.max_fail_percentage.or(play.max_fail_percentage),
            play,
            roles,
            tasks,
            handlers,
            hosts,
        });
    }
    if let Some(name) = &overrides.start_at_task {
        start_at_task(&mut plays, name)?;
    }
    // A slice may be empty (more workers than hosts): that worker has nothing to do.
    if plays.iter().all(|p| p.hosts.is_empty()) && overrides.slice.is_none() {
        return Err(PlanError::NoHosts);
    }
    Ok(Plan { plays, source: book.source.clone(), dir: book.dir.clone() })
}

/// ansible-playbook's `--start-at-task`: the first task whose name (or `role : name`)
/// matches, as a glob, and every task after it, across the plays.
fn start_at_task(plays: &mut [PlannedPlay], pattern: &str) -> Result<(), PlanError> {
    let re =
        regex::Regex::new(&inventory::pattern::fnmatch_to_regex(pattern)).map_err(|e| PlanError::StartAtTask(format!("{pattern}: {e}")))?;
    let matches = |t: &Task| {
        if t.flush_handlers {
            return false;
        }
        let name = t.display_name();
        let with_role = t.role.as_deref().map(|r| format!("{r} : {name}"));
        re.is_match(&name) || with_role.is_some_and(|n| re.is_match(&n))
    };
    let mut started = false;
    for play in plays.iter_mut() {
        play.tasks.retain(|t| {
            started = started || matches(t);
            started
        });
    }
    if !started {
        return Err(PlanError::StartAtTask(format!("no task is named '{pattern}'")));
    }
    Ok(())
}

/// Ansible's `order` keyword.
pub fn order_hosts(hosts: &mut [String], order: HostOrder) {
    match order {
        HostOrder::Inventory => {}
        HostOrder::ReverseInventory => hosts.reverse(),
        HostOrder::Sorted => hosts.sort(),
        HostOrder::ReverseSorted => {
            hosts.sort();
            hosts.reverse();
        }
        HostOrder::Shuffle => {
            // A Fisher-Yates shuffle seeded from the clock: no need for a random crate.
            let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
            for i in (1..hosts.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                hosts.swap(i, (seed % (i as u64 + 1)) as usize);
            }
        }
    }
}

/// Whether a task with these tags runs under `--tags only` and `--skip-tags skip`, by
/// Ansible's rules (`always`, `never`, `all`, `tagged`, `untagged`).
/// Whether `--tags`/`--skip-tags` keep a task: a block when any task inside it is kept.
pub fn task_selected(task: &Task, only: &[String], skip: &[String]) -> bool {
    task.flattened().iter().any(|x| x.block.is_none() && tags_select(&x.kw.tags, only, skip))
}

pub fn tags_select(tags: &[String], only: &[String], skip: &[String]) -> bool {
    let has = |t: &str| tags.iter().any(|x| x == t);
    let untagged = tags.is_empty();
    let all = ["all".to_string()];
    let only = if only.is_empty() { &all[..] } else { only };
    let asked = |t: &str| only.iter().any(|x| x == t);
    let runs = has("always")
        || (asked("all") && !has("never"))
        || (asked("tagged") && !untagged && !has("never"))
        || tags.iter().any(|t| asked(t))
        || (untagged && asked("untagged"));
    if !runs {
        return false;
    }
    let skipped = |t: &str| skip.iter().any(|x| x == t);
    let skipped_now = (skipped("all") && (!has("always") || skipped("always")))
        || tags.iter().any(|t| skipped(t))
        || (skipped("tagged") && !untagged)
        || (skipped("untagged") && untagged);
    !skipped_now
}

/// Ansible's batch sizes: each `serial` entry in turn (the last repeats); a percentage of
/// the play's hosts is truncated, with at least one host per batch.
pub fn batches(hosts: &[String], serial: &[Serial]) -> Vec<Vec<String>> {
    if serial.is_empty() {
        return if hosts.is_empty() { Vec::new() } else { vec![hosts.to_vec()] };
    }
    let total = hosts.len();
    let mut rest = hosts.to_vec();
    let mut out = Vec::new();
    let mut i = 0;
    while !rest.is_empty() {
        let size = match serial[i] {
            Serial::Count(n) => n as usize,
            Serial::Percent(p) => (((p / 100.0) * total as f64) as usize).max(1),
        };
        let take = size.min(rest.len());
        out.push(rest.drain(..take).collect());
        i = (i + 1).min(serial.len() - 1);
    }
    out
}

/// Whether a finished batch stops the play: every host failed, or the failures strictly
/// exceed `max_fail_percentage` of the batch.
pub fn batch_stops_play(batch_len: usize, failed: usize, max_fail_percentage: Option<f64>) -> bool {
    if batch_len == 0 {
        return false;
    }
    if failed == batch_len {
        return true;
    }
    match max_fail_percentage {
        Some(max) => (failed as f64 / batch_len as f64) * 100.0 > max,
        None => false,
    }
}

/// The variables a task sees, lowest precedence first, as Ansible orders them: role
/// defaults (every role of the play, then the task's own), inventory, facts, play vars,
/// `vars_files`, role vars (every role's, then the task's own), task vars, registered
/// results, role parameters, extra vars (`-e`); plus the magic variables Ansible provides.
pub struct VarLayers<'a> {
    pub role_defaults: Vec<&'a Vars>,
    pub inventory: &'a Vars,
    pub facts: &'a Vars,
    pub play: &'a Vars,
    pub vars_files: &'a Vars,
    pub role_vars: Vec<&'a Vars>,
    pub task: &'a Vars,
    /// `include_vars` results on this host (above task vars, below registered ones).
    pub included: &'a Vars,
    pub registered: &'a Vars,
    pub role_params: Option<&'a Vars>,
    pub extra: &'a Vars,
}

pub fn task_vars(layers: &VarLayers, host: &str, inv: &Inventory, play_hosts: &[String], check_mode: bool) -> Vars {
    let mut v = Vars::new();
    let ordered = layers
        .role_defaults
        .iter()
        .copied()
        .chain([layers.inventory, layers.facts, layers.play, layers.vars_files])
        .chain(layers.role_vars.iter().copied())
        .chain([layers.task, layers.included, layers.registered])
        .chain(layers.role_params)
        .chain([layers.extra]);
    for layer in ordered {
        for (k, val) in layer {
            v.insert(k.clone(), val.clone());
        }
    }
    let groups: Vec<String> = inv.groups_of(host).into_iter().filter(|g| g != "all" && g != "ungrouped").collect();
    v.insert("inventory_hostname".into(), json!(host));
    v.insert("inventory_hostname_short".into(), json!(host.split('.').next().unwrap_or(host)));
    v.insert("group_names".into(), json!(groups));
    let all_groups: serde_json::Map<String, Json> = inv.groups.keys().map(|g| (g.clone(), json!(inv.hosts_of_group(g)))).collect();
    v.insert("groups".into(), Json::Object(all_groups));
    v.insert("ansible_play_hosts".into(), json!(play_hosts));
    v.insert("play_hosts".into(), json!(play_hosts));
    v.insert("ansible_check_mode".into(), json!(check_mode));
    v.insert("omit".into(), json!(crate::template::OMIT));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    fn sizes(n: usize, serial: &[Serial]) -> Vec<usize> {
        batches(&hosts(n), serial).iter().map(Vec::len).collect()
    }

    #[test]
    fn batch_sizes_as_ansible_computes_them() {
        assert_eq!(sizes(5, &[]), [5]);
        assert_eq!(sizes(5, &[Serial::Count(2)]), [2, 2, 1]);
        assert_eq!(sizes(10, &[Serial::Percent(25.0)]), [2, 2, 2, 2, 2]);
        assert_eq!(sizes(3, &[Serial::Percent(25.0)]), [1, 1, 1], "truncated, at least one");
        assert_eq!(sizes(20, &[Serial::Count(1), Serial::Count(5), Serial::Percent(50.0)]), [1, 5, 10, 4]);
        assert_eq!(sizes(4, &[Serial::Count(10)]), [4]);
        assert!(batches(&[], &[Serial::Count(1)]).is_empty());
        assert_eq!(batches(&hosts(3), &[Serial::Count(2)])[1], ["h3"]);
    }

    #[test]
    fn fail_percentage_rule() {
        assert!(!batch_stops_play(4, 1, Some(25.0)), "25% is not strictly more than 25%");
        assert!(batch_stops_play(4, 2, Some(25.0)));
        assert!(batch_stops_play(4, 1, Some(0.0)));
        assert!(!batch_stops_play(4, 3, None));
        assert!(batch_stops_play(4, 4, None), "a batch where every host failed stops the play");
        assert!(!batch_stops_play(4, 0, Some(0.0)));
    }

    #[test]
    fn plan_applies_limit_and_play_patterns() {
        let text = "all:\n  children:\n    web:\n      hosts: {w1: , w2: }\n    db:\n      hosts: {d1: }\n";
        let node = crate::yaml::parse_str(text, std::path::Path::new("i.yml")).unwrap();
        let inv = Inventory::from_yaml(node.as_ref(), std::path::Path::new("i.yml")).unwrap();
        let book = Playbook::parse("- hosts: web\n  tasks:\n    - command: 'true'\n- hosts: all\n  tasks: []\n", "p.yml").unwrap();
        let roles = RoleSource::new(vec![]);
        let plan = build(&inv, &book, &roles, &Overrides { limit: Some("w2:d1".into()), ..Default::default() }).unwrap();
        assert_eq!(plan.plays[0].hosts, ["w2"]);
        assert_eq!(plan.plays[1].hosts, ["w2", "d1"]);
        let err = build(&inv, &book, &roles, &Overrides { limit: Some("nosuch".into()), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("'nosuch' matches no host"), "{err}");
        let err = build(&inv, &book, &roles, &Overrides { limit: Some("!all".into()), ..Default::default() }).unwrap_err();
        assert!(matches!(err, PlanError::NoHosts));
    }

    #[test]
    fn tags_as_ansible_selects_them() {
        let t = |tags: &[&str]| tags.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sel = |tags: &[&str], only: &[&str], skip: &[&str]| tags_select(&t(tags), &t(only), &t(skip));
        assert!(sel(&[], &[], &[]), "no --tags: everything");
        assert!(!sel(&["never"], &[], &[]), "never runs only when asked for");
        assert!(sel(&["never", "debug"], &["debug"], &[]));
        assert!(sel(&["always"], &["web"], &[]), "always runs whatever --tags says");
        assert!(!sel(&["always"], &["web"], &["always"]));
        assert!(sel(&["always"], &[], &["all"]), "--skip-tags all keeps always");
        assert!(!sel(&["db"], &["web"], &[]));
        assert!(sel(&["db"], &["tagged"], &[]));
        assert!(!sel(&[], &["tagged"], &[]));
        assert!(sel(&[], &["untagged"], &[]));
        assert!(!sel(&["db"], &["untagged"], &[]));
        assert!(!sel(&["db", "web"], &["web"], &["db"]), "skip wins");
        assert!(!sel(&["db"], &[], &["tagged"]));
        assert!(!sel(&[], &[], &["untagged"]));
    }

    #[test]
    fn slices_as_awx_cuts_them() {
        let hosts: Vec<String> = ["e", "a", "d", "b", "c", "f", "g"].iter().map(|s| s.to_string()).collect();
        let sorted = |s: std::collections::HashSet<String>| {
            let mut v: Vec<String> = s.into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(sorted(Slice::parse("1/3").unwrap().select(&hosts)), ["a", "d", "g"]);
        assert_eq!(sorted(Slice::parse("2/3").unwrap().select(&hosts)), ["b", "e"]);
        assert_eq!(sorted(Slice::parse("3/3").unwrap().select(&hosts)), ["c", "f"]);
        let all: usize = (1..=3).map(|k| Slice { index: k, count: 3 }.select(&hosts).len()).sum();
        assert_eq!(all, hosts.len(), "every host in exactly one slice");
        assert!(Slice::parse("9/10").unwrap().select(&hosts[..2]).is_empty());
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(Slice::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_order() {
        let mut h = vec!["b".to_string(), "c".into(), "a".into()];
        order_hosts(&mut h, HostOrder::Sorted);
        assert_eq!(h, ["a", "b", "c"]);
        order_hosts(&mut h, HostOrder::ReverseSorted);
        assert_eq!(h, ["c", "b", "a"]);
        order_hosts(&mut h, HostOrder::ReverseInventory);
        assert_eq!(h, ["a", "b", "c"]);
        let mut many: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        order_hosts(&mut many, HostOrder::Shuffle);
        let mut sorted = many.clone();
        sorted.sort_by_key(|s| s.parse::<u32>().unwrap());
        assert_eq!(sorted, (0..50).map(|i| i.to_string()).collect::<Vec<_>>(), "a permutation");
        assert_ne!(many, sorted, "shuffled (1 in 50! to fail by chance)");
    }

    #[test]
    fn role_vars_and_params_precedence() {
        let v = |k: &str, x: &str| -> Vars { [(k.to_string(), json!(x))].into_iter().collect() };
        let (defaults, inv, play, role_vars, task, params, empty) =
            (v("x", "default"), v("x", "inventory"), v("x", "play"), v("x", "role vars"), v("x", "task"), v("x", "param"), Vars::new());
        let inventory = Inventory::from_host_list("h1,");
        let mut layers = VarLayers {
            role_defaults: vec![&defaults],
            inventory: &inv,
            facts: &empty,
            play: &play,
            vars_files: &empty,
            role_vars: vec![&role_vars],
            task: &task,
            included: &Vars::new(),
            registered: &empty,
            role_params: Some(&params),
            extra: &empty,
        };
        let x = |l: &VarLayers| task_vars(l, "h1", &inventory, &["h1".into()], false)["x"].clone();
        assert_eq!(x(&layers), json!("param"), "role params beat task vars");
        layers.role_params = None;
        assert_eq!(x(&layers), json!("task"));
        layers.task = &empty;
        assert_eq!(x(&layers), json!("role vars"), "role vars beat play vars");
        layers.role_vars = vec![];
        assert_eq!(x(&layers), json!("play"));
        layers.play = &empty;
        assert_eq!(x(&layers), json!("inventory"));
        layers.inventory = &empty;
        assert_eq!(x(&layers), json!("default"));
    }

    #[test]
    fn extra_vars_win() {
        let (inv_vars, mut extra, empty) = (Vars::new(), Vars::new(), Vars::new());
        let mut play = Vars::new();
        play.insert("x".into(), json!("play"));
        extra.insert("x".into(), json!("extra"));
        let inv = Inventory::from_host_list("h1,");
        let layers = VarLayers {
            role_defaults: vec![],
            inventory: &inv_vars,
            facts: &empty,
            play: &play,
            vars_files: &empty,
            role_vars: vec![],
            task: &empty,
            included: &Vars::new(),
            registered: &empty,
            role_params: None,
            extra: &extra,
        };
        let v = task_vars(&layers, "h1", &inv, &["h1".into()], false);
        assert_eq!(v["x"], json!("extra"));
        assert_eq!(v["inventory_hostname"], json!("h1"));
    }
}
