//! `dnf` (and its `yum` alias): RHEL-family packages.

use futures::future::BoxFuture;

use super::spec::{arg, arg_aliases, arg_choices, ArgError, Args, Kind, Spec};
use super::{packages, Decision, Module, Outcome, PackageState, RunCtx};
use crate::facts::{Change, Facts, ProbeRequest};
use crate::names;
use crate::session::HostSession;
use crate::shell::quote;

pub static SPEC: Spec = Spec {
    name: "dnf",
    aliases: &["yum", "dnf5"],
    args: &[
        arg_aliases("name", Kind::List, &["pkg"]),
        arg_choices("state", &["present", "installed", "latest", "absent", "removed"]),
        arg_aliases("update_cache", Kind::Bool, &["expire-cache"]),
        arg("autoremove", Kind::Bool),
        arg("lock_timeout", Kind::Seconds),
        arg("security", Kind::Bool),
        arg("bugfix", Kind::Bool),
    ],
    free_form: None,
    required: &[],
    unsupported: &[
        "enablerepo",
        "disablerepo",
        "conf_file",
        "disable_gpg_check",
        "installroot",
        "releasever",
        "exclude",
        "list",
        "download_only",
    ],
    any_keys: false,
};

/// The `dnf` module (`yum`, `dnf5`).
pub struct Dnf;

impl Module for Dnf {
    fn list_argument(&self) -> Option<&'static str> {
        Some("name")
    }

    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(d) = desired(args) {
            request.packages.extend(d.names.into_iter().filter(|n| n != "*"));
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

/// Runs a decided dnf task (also for the `package` module on RHEL-family hosts).
pub async fn run(host: &mut HostSession, d: Desired, ctx: &RunCtx<'_>) -> Outcome {
    let names: Vec<String> = d.names.iter().filter(|n| *n != "*").cloned().collect();
    if let Err(e) = host.ensure_facts(&ProbeRequest { packages: names, ..Default::default() }).await {
        return Outcome::from_transport(e);
    }
    let actions = match decide(&d, host.facts()) {
        Decision::Ok(m) => return Outcome::ok(m),
        Decision::Fail(m) => return Outcome::failed(m),
        Decision::Predicted(m) => return Outcome::changed(m),
        Decision::Change(a) => a,
    };
    let mut changed = false;
    for action in &actions {
        if ctx.check_mode && *action == Action::MakeCache {
            continue;
        }
        let out = match host.run(&command(action, &d, ctx.check_mode), ctx.become_, None).await {
            Ok(out) => out,
            Err(e) => return Outcome::from_transport(e),
        };
        // --assumeno exits 1 after printing the plan.
        if out.rc != 0 && !(ctx.check_mode && out.rc == 1) {
            return Outcome::command_failed("dnf", &out, None);
        }
        changed |= *action != Action::MakeCache && self::changed(&out.stdout);
    }
    if changed && !ctx.check_mode {
        host.mark_changed(Change::Packages);
    }
    match (changed, ctx.check_mode) {
        (false, _) => Outcome::ok("nothing to do"),
        (true, true) => Outcome::changed("would change packages"),
        (true, false) => Outcome::changed("packages changed"),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub names: Vec<String>,
    pub state: PackageState,
    pub update_cache: bool,
    pub autoremove: bool,
    pub lock_timeout: u64,
    pub security: bool,
    pub bugfix: bool,
}

/// `name: "*"` with `state: latest` is Ansible's "upgrade everything".
pub fn upgrades_all(d: &Desired) -> bool {
    d.state == PackageState::Latest && d.names.iter().any(|n| n == "*")
}

pub fn desired(args: &Args) -> Result<Desired, ArgError> {
    let names = args.list("name");
    let state = PackageState::from_arg(args)?;
    for n in &names {
        if !(n == "*" && state == PackageState::Latest) {
            names::rpm_package(n)?;
        }
    }
    Ok(Desired {
        names,
        state,
        update_cache: args.bool("update_cache").unwrap_or(false),
        autoremove: args.bool("autoremove").unwrap_or(false),
        lock_timeout: args.int("lock_timeout").unwrap_or(30).max(0) as u64,
        security: args.bool("security").unwrap_or(false),
        bugfix: args.bool("bugfix").unwrap_or(false),
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    MakeCache,
    Install(Vec<String>),
    Upgrade(Vec<String>),
    UpgradeAll,
    Remove(Vec<String>),
    Autoremove,
}

pub fn decide(d: &Desired, facts: &Facts) -> Decision<Action> {
    let mut actions = Vec::new();
    if d.update_cache {
        actions.push(Action::MakeCache);
    }
    let split = packages::split(&d.names, |n| facts.packages.get(n).and_then(|p| p.installed.as_ref()).is_some());
    match d.state {
        PackageState::Present if !split.missing.is_empty() => actions.push(Action::Install(split.missing)),
        PackageState::Present => {}
        PackageState::Latest if upgrades_all(d) => actions.push(Action::UpgradeAll),
        PackageState::Latest => {
            if !split.missing.is_empty() {
                actions.push(Action::Install(split.missing));
            }
            if !split.satisfied.is_empty() {
                actions.push(Action::Upgrade(split.satisfied));
            }
        }
        PackageState::Absent if !split.satisfied.is_empty() => actions.push(Action::Remove(split.satisfied)),
        PackageState::Absent => {}
    }
    if d.autoremove {
        actions.push(Action::Autoremove);
    }
    if actions.is_empty() {
        Decision::Ok("nothing to do".into())
    } else {
        Decision::Change(actions)
    }
}

pub fn command(action: &Action, d: &Desired, simulate: bool) -> String {
    let quoted = |names: &[String]| names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ");
    // dnf has no dry run that prints a plan without a transaction; --assumeno prints the plan
    // and answers no.
    let yes = if simulate { "--assumeno" } else { "-y" };
    let mut filters = String::new();
    if d.security {
        filters.push_str(" --security");
    }
    if d.bugfix {
        filters.push_str(" --bugfix");
    }
    let pm = "$(command -v dnf || command -v yum)";
    match action {
        Action::MakeCache => format!("{pm} -q makecache"),
        Action::Install(n) => format!("{pm} {yes} install -- {}", quoted(n)),
        Action::Upgrade(n) => format!("{pm} {yes}{filters} upgrade -- {}", quoted(n)),
        Action::UpgradeAll => format!("{pm} {yes}{filters} upgrade"),
        Action::Remove(n) => format!("{pm} {yes} remove -- {}", quoted(n)),
        Action::Autoremove => format!("{pm} {yes} autoremove"),
    }
}

/// Whether dnf's output shows a transaction (or, with --assumeno, a planned one).
pub fn changed(output: &str) -> bool {
    !output.contains("Nothing to do")
        && output.lines().any(|l| {
            let l = l.trim_start();
            ["Install ", "Upgrade ", "Remove ", "Downgrade ", "Reinstall ", "Installing:", "Upgrading:", "Removing:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PackageState as Installed;
    use serde_json::json;

    fn d(v: serde_json::Value) -> Desired {
        desired(&Args(v.as_object().unwrap().clone())).unwrap()
    }

    #[test]
    fn decisions() {
        let mut f = Facts::default();
        f.packages.insert("bash".into(), Installed { installed: Some("5.1".into()) });
        assert_eq!(
            decide(&d(json!({"name": ["bash", "qemu-guest-agent"]})), &f),
            Decision::Change(vec![Action::Install(vec!["qemu-guest-agent".into()])])
        );
        assert_eq!(decide(&d(json!({"name": "bash"})), &f), Decision::Ok("nothing to do".into()));
        assert_eq!(decide(&d(json!({"name": "*", "state": "latest"})), &f), Decision::Change(vec![Action::UpgradeAll]));
        assert_eq!(decide(&d(json!({"name": "bash", "state": "absent"})), &f), Decision::Change(vec![Action::Remove(vec!["bash".into()])]));
        assert!(desired(&Args(json!({"name": "*"}).as_object().unwrap().clone())).is_err(), "'*' only with latest");
    }

    #[test]
    fn change_detection() {
        assert!(!changed("Last metadata expiration check: 0:01:00 ago.\nDependencies resolved.\nNothing to do.\nComplete!\n"));
        assert!(changed("Transaction Summary\n====\nUpgrade  3 Packages\n"));
    }
}
