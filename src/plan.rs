//! Inventory + playbook + roles -> the plan: which hosts each play runs on, in which batches.

use serde_json::{json, Value as Json};

use crate::inventory::{self, Inventory, PatternError, Vars};
use crate::role::playbook::ResolvedPlay;
use crate::role::Playbook;
use crate::role::{Play, Role, RoleError, RoleSource, Serial, Task};

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
}

#[derive(Clone, Debug)]
pub struct PlannedPlay {
    pub play: Play,
    pub roles: Vec<Role>,
    /// Hosts the play targets (play pattern, narrowed by --limit), in inventory order.
    pub hosts: Vec<String>,
    pub serial: Vec<Serial>,
    pub max_fail_percentage: Option<f64>,
}

impl PlannedPlay {
    /// Every task of the play in run order: pre_tasks, roles, tasks, post_tasks.
    pub fn tasks(&self) -> Vec<&Task> {
        let mut out: Vec<&Task> = self.play.pre_tasks.iter().collect();
        for r in &self.roles {
            out.extend(r.tasks.iter());
        }
        out.extend(self.play.tasks.iter());
        out.extend(self.play.post_tasks.iter());
        out
    }

    pub fn role_of(&self, task: &Task) -> Option<&Role> {
        task.role.as_ref().and_then(|name| self.roles.iter().find(|r| &r.name == name))
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub plays: Vec<PlannedPlay>,
    pub source: String,
}

/// Command-line overrides of play settings.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub limit: Option<String>,
    pub serial: Option<Vec<Serial>>,
    pub max_fail_percentage: Option<f64>,
}

pub fn build(inv: &Inventory, book: &Playbook, roles: &RoleSource, overrides: &Overrides) -> Result<Plan, PlanError> {
    let resolved = book.resolve(roles).map_err(PlanError::Roles)?;
    let subset = match &overrides.limit {
        Some(limit) => {
            Some(inventory::select(inv, limit).map_err(PlanError::Limit)?.into_iter().collect::<std::collections::HashSet<String>>())
        }
        None => None,
    };
    let mut plays = Vec::new();
    for ResolvedPlay { play, roles } in resolved {
        let mut hosts =
            inventory::select(inv, &play.hosts).map_err(|error| PlanError::PlayHosts { location: play.location.clone(), error })?;
        if let Some(subset) = &subset {
            hosts.retain(|h| subset.contains(h));
        }
        plays.push(PlannedPlay {
            serial: overrides.serial.clone().unwrap_or_else(|| play.serial.clone()),
            max_fail_percentage: overrides.max_fail_percentage.or(play.max_fail_percentage),
            play,
            roles,
            hosts,
        });
    }
    if plays.iter().all(|p| p.hosts.is_empty()) {
        return Err(PlanError::NoHosts);
    }
    Ok(Plan { plays, source: book.source.clone() })
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

/// The variables a task sees, lowest precedence first: role defaults, inventory, facts,
/// play vars, role params, task vars, registered results, extra vars (`-e`); plus the magic
/// variables Ansible provides.
pub struct VarLayers<'a> {
    pub role_defaults: Option<&'a Vars>,
    pub inventory: &'a Vars,
    pub facts: &'a Vars,
    pub play: &'a Vars,
    pub role_params: Option<&'a Vars>,
    pub task: &'a Vars,
    pub registered: &'a Vars,
    pub extra: &'a Vars,
}

pub fn task_vars(layers: &VarLayers, host: &str, inv: &Inventory, play_hosts: &[String], check_mode: bool) -> Vars {
    let mut v = Vars::new();
    for layer in [
        layers.role_defaults,
        Some(layers.inventory),
        Some(layers.facts),
        Some(layers.play),
        layers.role_params,
        Some(layers.task),
        Some(layers.registered),
        Some(layers.extra),
    ]
    .into_iter()
    .flatten()
    {
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
    fn extra_vars_win() {
        let (inv_vars, mut extra, empty) = (Vars::new(), Vars::new(), Vars::new());
        let mut play = Vars::new();
        play.insert("x".into(), json!("play"));
        extra.insert("x".into(), json!("extra"));
        let inv = Inventory::from_host_list("h1,");
        let layers = VarLayers {
            role_defaults: None,
            inventory: &inv_vars,
            facts: &empty,
            play: &play,
            role_params: None,
            task: &empty,
            registered: &empty,
            extra: &extra,
        };
        let v = task_vars(&layers, "h1", &inv, &["h1".into()], false);
        assert_eq!(v["x"], json!("extra"));
        assert_eq!(v["inventory_hostname"], json!("h1"));
    }
}
