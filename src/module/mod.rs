//! Task modules. Each turns desired state (its arguments) and observed facts into actions
//! through pure functions that are unit-tested without a host; the engine runs the actions.

pub mod apt;
pub mod assert;
pub mod command;
pub mod dnf;
pub mod reboot;
pub mod spec;
pub mod stat;
pub mod systemd;

use crate::names;
use spec::Spec;

/// What a module decided from facts and desired state.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision<A> {
    /// Already as desired.
    Ok(String),
    /// These actions bring the host to the desired state.
    Change(Vec<A>),
    /// Cannot be decided now; check mode predicts it from an earlier task's change.
    Predicted(String),
    /// Cannot be done, and why.
    Fail(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageState {
    Present,
    Latest,
    Absent,
}

/// Every module gafix runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    Apt,
    Dnf,
    Package,
    Systemd,
    Service,
    Reboot,
    Command,
    Shell,
    Assert,
    Stat,
}

/// `package`: picks apt or dnf from the host's facts.
pub static PACKAGE_SPEC: Spec = Spec {
    name: "package",
    aliases: &[],
    args: &[spec::arg("name", spec::Kind::List), spec::arg_choices("state", &["present", "installed", "latest", "absent", "removed"])],
    free_form: None,
    required: &["name"],
    unsupported: &["use"],
};

pub const ALL: &[ModuleKind] = &[
    ModuleKind::Apt,
    ModuleKind::Dnf,
    ModuleKind::Package,
    ModuleKind::Systemd,
    ModuleKind::Service,
    ModuleKind::Reboot,
    ModuleKind::Command,
    ModuleKind::Shell,
    ModuleKind::Assert,
    ModuleKind::Stat,
];

impl ModuleKind {
    pub fn spec(self) -> &'static Spec {
        match self {
            ModuleKind::Apt => &apt::SPEC,
            ModuleKind::Dnf => &dnf::SPEC,
            ModuleKind::Package => &PACKAGE_SPEC,
            ModuleKind::Systemd => &systemd::SPEC,
            ModuleKind::Service => &systemd::SERVICE_SPEC,
            ModuleKind::Reboot => &reboot::SPEC,
            ModuleKind::Command => &command::COMMAND_SPEC,
            ModuleKind::Shell => &command::SHELL_SPEC,
            ModuleKind::Assert => &assert::SPEC,
            ModuleKind::Stat => &stat::SPEC,
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Resolves a task key: short name, alias, or `ansible.builtin.` / `ansible.legacy.` FQCN.
    pub fn lookup(key: &str) -> Option<ModuleKind> {
        let short = key.strip_prefix("ansible.builtin.").or_else(|| key.strip_prefix("ansible.legacy.")).unwrap_or(key);
        ALL.iter().copied().find(|m| m.spec().name == short || m.spec().aliases.contains(&short))
    }

    /// Checks literal (untemplated) arguments with the module's own validation, so that a bad
    /// package or unit name is an error when the role loads, before anything connects.
    pub fn check_static(self, args: &spec::Args) -> Result<(), String> {
        let templated = args.0.values().any(|v| serde_json::to_string(v).is_ok_and(|s| s.contains("{{") || s.contains("{%")));
        if templated {
            return Ok(());
        }
        match self {
            ModuleKind::Apt => apt::desired(args).map(drop),
            ModuleKind::Dnf => dnf::desired(args).map(drop),
            ModuleKind::Package => {
                let names = args.list("name");
                match names.iter().find(|n| names::deb_package(n).is_err() && names::rpm_package(n).is_err()) {
                    Some(bad) => Err(format!("'{bad}' is not a valid package name")),
                    None => Ok(()),
                }
            }
            ModuleKind::Systemd | ModuleKind::Service => systemd::desired(args).map(drop),
            ModuleKind::Command => command::desired(args, false).map(drop),
            ModuleKind::Shell => command::desired(args, true).map(drop),
            ModuleKind::Stat => stat::desired(args).map(drop),
            ModuleKind::Reboot => reboot::desired(args).map(drop),
            ModuleKind::Assert => assert::desired(args).map(drop),
        }
    }

    pub fn supported_list() -> String {
        ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_short_name_fqcn_and_alias() {
        assert_eq!(ModuleKind::lookup("apt"), Some(ModuleKind::Apt));
        assert_eq!(ModuleKind::lookup("ansible.builtin.systemd"), Some(ModuleKind::Systemd));
        assert_eq!(ModuleKind::lookup("ansible.builtin.systemd_service"), Some(ModuleKind::Systemd));
        assert_eq!(ModuleKind::lookup("yum"), Some(ModuleKind::Dnf));
        assert_eq!(ModuleKind::lookup("ansible.legacy.command"), Some(ModuleKind::Command));
        assert_eq!(ModuleKind::lookup("community.general.apk"), None);
    }
}
