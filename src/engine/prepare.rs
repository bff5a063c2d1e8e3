//! Before anything connects: each host's connection settings and variables, checked, and
//! what its one facts probe will read.

use serde_json::{json, Value as Json};
use std::collections::HashMap;

use crate::facts::ProbeRequest;
use crate::inventory::{self, Inventory};
use crate::module::spec::Args;
use crate::plan::Plan;
use crate::session::HostSession;
use crate::template::Templar;
use crate::transport::{ConnectionDefaults, ConnectionSpec, HostKeyPolicy, Secret};
use crate::vars::Vars;

use super::Options;

/// A host ready to run, or why it cannot.
pub fn prepare_host(name: &str, plan: &Plan, inv: &Inventory, opts: &Options, templar: &Templar) -> Result<HostSession, String> {
    let (spec, rendered) = connection_for(
        name,
        inv,
        &opts.extra_vars,
        &opts.connection_defaults,
        opts.host_key_policy,
        opts.become_password.as_ref(),
        templar,
    )
    .map_err(|e| match e.place {
        Some(place) => format!("{place}: {}", e.message),
        None => e.message,
    })?;
    let env = |var: &str| std::env::var(var).ok();
    let hypervisor =
        crate::hypervisor::Access::from_vars(name, &rendered, &env).map_err(|e| match inv.var_location(name, "gafix_hypervisor") {
            Some(place) => format!("{place}: {e}"),
            None => e,
        })?;
    let probe = probe_request(name, plan, &rendered, templar);
    let session = HostSession::new(name.into(), spec, rendered, probe, opts.timeouts).with_hypervisor(hypervisor);
    Ok(match &opts.connect_with {
        Some(make) => session.with_connection(crate::transport::Connection::over(make(name))),
        None => session,
    })
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
    defaults: &ConnectionDefaults,
    host_key_policy: HostKeyPolicy,
    become_password: Option<&Secret>,
    templar: &Templar,
) -> Result<(ConnectionSpec, Vars), ConnectionError> {
    let rendered = rendered_host_vars(name, inv, extra_vars, templar).map_err(|message| ConnectionError { place: None, message })?;
    // The connection reads values as they are: `!unsafe` marks off.
    let plain = match crate::yaml::strip_unsafe_marks(&Json::Object(rendered.clone())) {
        Json::Object(m) => m,
        _ => rendered.clone(),
    };
    match ConnectionSpec::from_vars(name, &defaults.fill(&plain), host_key_policy, become_password) {
        Ok(spec) => Ok((ConnectionSpec { persist: defaults.persist, ..spec }, rendered)),
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

/// A host's variables (inventory and `-e`, with `inventory_hostname`), rendered; secret
/// values are registered for masking and used as written, never templated (a password may
/// hold `{{`).
pub fn rendered_host_vars(name: &str, inv: &Inventory, extra_vars: &Vars, templar: &Templar) -> Result<Vars, String> {
    let mut vars = inv.host_vars(name);
    for (k, v) in extra_vars {
        vars.insert(k.clone(), v.clone());
    }
    vars.insert("inventory_hostname".into(), json!(name));
    vars.insert("inventory_hostname_short".into(), json!(name.split('.').next().unwrap_or(name)));
    let (secret, ordinary): (Vars, Vars) = vars.clone().into_iter().partition(|(k, _)| inventory::SECRET_VARS.contains(&k.as_str()));
    for value in secret.values() {
        crate::secrets::register_json(value);
    }
    let mut rendered = match templar.render_vars(&Json::Object(ordinary), &vars) {
        Ok(Json::Object(m)) => m,
        Ok(_) => vars.clone(),
        Err(e) => return Err(format!("cannot render the host's variables: {e}")),
    };
    rendered.extend(secret);
    Ok(rendered)
}

/// The packages, units and paths the plan names for this host, so that one probe reads
/// them all. Arguments that depend on facts are read later, when their task runs.
fn probe_request(name: &str, plan: &Plan, vars: &Vars, templar: &Templar) -> ProbeRequest {
    let mut req = ProbeRequest::default();
    for planned in plan.plays.iter().filter(|p| p.hosts.iter().any(|h| h == name)) {
        for instance in &planned.roles {
            if let Some(u) = &instance.role.meta.verify_unit_active {
                req.units.push(u.clone());
            }
            // Whether the units the role ensures can start at all (check mode says so).
            req.paths.extend(instance.role.meta.binds_to.iter().map(|(_, device)| device.clone()));
        }
        // Arguments are rendered with what is known before the run: the host's variables,
        // the play's, and the task's role defaults, vars and parameters (once per role).
        let mut scopes: HashMap<Option<usize>, Vars> = HashMap::new();
        for task in
            planned.tasks.iter().chain(&planned.handlers).flat_map(|t| t.flattened()).filter(|t| !t.flush_handlers && t.block.is_none())
        {
            let scope = scopes.entry(task.role_instance).or_insert_with(|| {
                let role = task.role_instance.and_then(|i| planned.roles.get(i));
                let mut v = role.map(|r| r.role.defaults.clone()).unwrap_or_default();
                v.extend(vars.clone());
                v.extend(planned.play.vars.clone());
                if let Some(r) = role {
                    v.extend(r.role.vars.clone());
                    v.extend(r.params.clone());
                }
                v
            });
            let mut task_scope;
            let scope: &Vars = if task.vars.is_empty() {
                scope
            } else {
                task_scope = scope.clone();
                task_scope.extend(task.vars.clone());
                &task_scope
            };
            let mut sources = Vec::new();
            crate::template::collect_templates(&Json::Object(task.args.0.clone()), &mut sources);
            if let Some(l) = &task.loop_ {
                crate::template::collect_templates(&l.items, &mut sources);
            }
            let mut resolved;
            let scope = if sources.is_empty() {
                scope
            } else {
                resolved = scope.clone();
                if templar.resolve_used(&mut resolved, &sources).is_err() {
                    continue;
                }
                &resolved
            };
            let mut task_args = task.args.0.clone();
            // A package module looping over names: the probe reads the names the loop gives.
            if let (Some(arg), Some(l)) = (task.module.list_argument(), &task.loop_) {
                if l.lookup.as_deref().is_none_or(|k| matches!(k, "items" | "list")) {
                    if let Ok(Json::Array(items)) = templar.render(&l.items, scope) {
                        task_args.insert(arg.to_string(), Json::Array(items));
                    }
                }
            }
            let Ok(Json::Object(args)) = templar.render(&Json::Object(task_args), scope) else { continue };
            task.module.probe(&Args(args), &mut req);
        }
    }
    req.machine = plan.plays.iter().filter(|p| p.hosts.iter().any(|h| h == name)).any(|p| uses_ansible_facts(p, &plan.dir));
    req.normalize();
    req
}

/// Whether a file under `dir` (a few levels down, text files up to 1 MiB) names a fact;
/// each directory is read once per run.
fn files_mention_facts(dir: &std::path::Path) -> bool {
    static SEEN: std::sync::LazyLock<std::sync::Mutex<HashMap<std::path::PathBuf, bool>>> = std::sync::LazyLock::new(Default::default);
    if let Some(known) = SEEN.lock().unwrap().get(dir) {
        return *known;
    }
    fn walk(dir: &std::path::Path, depth: usize) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else { return false };
        entries.filter_map(Result::ok).any(|e| {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() && depth > 0 => walk(&path, depth - 1),
                Ok(t) if t.is_file() && e.metadata().is_ok_and(|m| m.len() <= 1 << 20) => {
                    std::fs::read(&path).is_ok_and(|b| b.windows(8).any(|w| w == b"ansible_"))
                }
                _ => false,
            }
        })
    }
    let found = walk(dir, 4);
    SEEN.lock().unwrap().insert(dir.to_path_buf(), found);
    found
}

/// Whether a play refers to Ansible's facts anywhere a template can (`ansible_X`,
/// `ansible_facts`): then the probe reads the machine's facts too. A reference the scan
/// cannot see finds the fact undefined (an error naming it), never a wrong value.
fn uses_ansible_facts(planned: &crate::plan::PlannedPlay, plan_dir: &std::path::Path) -> bool {
    let mentions = |v: &Json| v.to_string().contains("ansible_");
    // Files read when the tasks run (templates, included task and vars files) can name
    // facts too: the role directories and the playbook's own task, template and vars files.
    let role_dirs = planned.roles.iter().map(|r| std::path::PathBuf::from(&r.role.origin)).filter(|d| d.is_dir());
    let book_dirs = ["templates", "tasks", "vars", "files"].map(|d| plan_dir.join(d));
    if role_dirs.chain(book_dirs).any(|d| files_mention_facts(&d)) {
        return true;
    }
    let play = &planned.play;
    let names_in_strings = |list: &[String]| list.iter().any(|s| s.contains("ansible_"));
    mentions(&Json::Object(play.vars.clone()))
        || play.vars_files.iter().any(|f| names_in_strings(&f.candidates))
        || planned.roles.iter().any(|r| {
            mentions(&Json::Object(r.role.defaults.clone()))
                || mentions(&Json::Object(r.role.vars.clone()))
                || mentions(&Json::Object(r.params.clone()))
        })
        || planned.tasks.iter().chain(&planned.handlers).flat_map(|t| t.flattened()).any(|t| {
            mentions(&Json::Object(t.args.0.clone()))
                || mentions(&Json::Object(t.vars.clone()))
                || t.kw.environment.iter().any(mentions)
                || names_in_strings(&t.kw.when)
                || names_in_strings(&t.changed_when)
                || names_in_strings(&t.failed_when)
        })
}
