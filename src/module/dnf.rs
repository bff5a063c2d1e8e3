//! `dnf` (and its `yum` alias): RHEL-family packages.

use super::spec::{arg, arg_aliases, arg_choices, Args, Kind, Spec};
use super::{Decision, PackageState};
use crate::facts::Facts;
use crate::names;
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
};

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

pub fn desired(args: &Args) -> Result<Desired, String> {
    let names = args.list("name");
    let state = match args.str("state").as_deref() {
        None | Some("present") | Some("installed") => PackageState::Present,
        Some("latest") => PackageState::Latest,
        Some("absent") | Some("removed") => PackageState::Absent,
        Some(other) => return Err(format!("unsupported state '{other}'")),
    };
    for n in &names {
        if !(n == "*" && state == PackageState::Latest) {
            names::rpm_package(n).map_err(|e| e.to_string())?;
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
    let installed = |n: &str| facts.packages.get(n).and_then(|p| p.installed.as_ref()).is_some();
    match d.state {
        PackageState::Present => {
            let missing: Vec<String> = d.names.iter().filter(|n| !installed(n)).cloned().collect();
            if !missing.is_empty() {
                actions.push(Action::Install(missing));
            }
        }
        PackageState::Latest if upgrades_all(d) => actions.push(Action::UpgradeAll),
        PackageState::Latest if !d.names.is_empty() => {
            let missing: Vec<String> = d.names.iter().filter(|n| !installed(n)).cloned().collect();
            let present: Vec<String> = d.names.iter().filter(|n| installed(n)).cloned().collect();
            if !missing.is_empty() {
                actions.push(Action::Install(missing));
            }
            if !present.is_empty() {
                actions.push(Action::Upgrade(present));
            }
        }
        PackageState::Latest => {}
        PackageState::Absent => {
            let present: Vec<String> = d.names.iter().filter(|n| installed(n)).cloned().collect();
            if !present.is_empty() {
                actions.push(Action::Remove(present));
            }
        }
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
