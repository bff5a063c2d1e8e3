//! Task modules, one file each. Each turns desired state (its arguments) and observed facts
//! into actions through pure functions unit-tested without a host, then runs them on a
//! [`HostSession`]. The registry lists them once.

pub mod apt;
pub mod assert;
pub mod blockinfile;
pub mod command;
pub mod copy;
pub mod debug;
pub mod dnf;
pub mod fail;
pub mod file;
pub mod files;
pub mod group;
pub mod include_vars;
pub mod lineinfile;
pub mod outcome;
pub mod package;
pub mod package_facts;
pub mod packages;
pub mod pause;
pub mod reboot;
pub mod service_facts;
pub mod set_fact;
pub mod spec;
pub mod stat;
pub mod systemd;
pub mod template;
pub mod user;
pub mod wait_for;
pub mod wait_for_connection;

use futures::future::BoxFuture;

use crate::facts::ProbeRequest;
use crate::session::HostSession;
use crate::template::Templar;
use crate::transport::Become;
use crate::vars::Vars;
pub use outcome::{Diff, Outcome};
use spec::{ArgError, Args, Spec};

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

impl PackageState {
    /// `state:` of a package module (Ansible's spellings).
    pub fn from_arg(args: &Args) -> Result<PackageState, ArgError> {
        match args.str("state").as_deref() {
            None | Some("present") | Some("installed") => Ok(PackageState::Present),
            Some("latest") => Ok(PackageState::Latest),
            Some("absent") | Some("removed") => Ok(PackageState::Absent),
            Some(other) => Err(ArgError::Invalid { arg: "state", expected: "present, latest or absent", found: other.into() }),
        }
    }
}

/// Everything gafix knows about one module, in the module's own file: its arguments, the
/// facts it needs, its check-mode prediction and its run. The engine names no module; it
/// finds them in [`REGISTRY`].
pub trait Module: Send + Sync {
    /// The argument schema (names, aliases, kinds), checked at load and after templating.
    fn spec(&self) -> &'static Spec;

    /// Checks literal arguments when the role loads (name grammars, values), so that a bad
    /// package name is an error at `file:line:column` before anything connects.
    fn check(&self, args: &Args) -> Result<(), ArgError>;

    /// Adds what this task needs to the host's one facts probe (rendered arguments).
    fn probe(&self, _args: &Args, _request: &mut ProbeRequest) {}

    /// Whether the task runs once for all hosts (as Ansible's `pause`), as with `run_once`.
    fn bypasses_host_loop(&self) -> bool {
        false
    }

    /// The argument that takes a list, for package modules: a loop that only feeds it its
    /// items (`name: "{{ item }}"`) runs as one transaction with the whole list.
    fn list_argument(&self) -> Option<&'static str> {
        None
    }

    /// Runs the task on a host, check mode included: decide from facts, run commands, read
    /// their output, return the outcome (and say what the change made stale).
    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome>;
}

/// What a module's run may use besides the host.
pub struct RunCtx<'a> {
    pub templar: &'a Templar,
    pub check_mode: bool,
    pub diff: bool,
    /// Set when the task runs as another user (sudo).
    pub become_: Option<&'a Become>,
    /// The task's variables (for modules that evaluate expressions, like `assert`).
    pub vars: &'a Vars,
    /// How verbose the run is (`-v` count), for `debug`'s `verbosity`.
    pub verbosity: u8,
    /// Devices the task's role says its units bind to (unit, device path): check mode
    /// predicts a unit that cannot start even before its package is installed.
    pub binds_to: &'a [(String, String)],
    /// Controller directories a task's `src` is looked up in, nearest first (the role's,
    /// then the playbook's); a module adds its own subdirectory (`templates/`, `files/`).
    pub controller_dirs: &'a [std::path::PathBuf],
}

/// Every module, once: adding a module is its file and a line here.
pub static REGISTRY: &[&dyn Module] = &[
    &apt::Apt,
    &dnf::Dnf,
    &package::Package,
    &systemd::Systemd,
    &systemd::Service,
    &reboot::Reboot,
    &command::Command,
    &command::Shell,
    &assert::Assert,
    &stat::Stat,
    &debug::Debug,
    &fail::Fail,
    &set_fact::SetFact,
    &template::Template,
    &copy::Copy,
    &include_vars::IncludeVars,
    &file::File,
    &lineinfile::LineInFile,
    &blockinfile::BlockInFile,
    &user::User,
    &group::GroupModule,
    &pause::Pause,
    &wait_for::WaitFor,
    &wait_for_connection::WaitForConnection,
    &package_facts::PackageFacts,
    &service_facts::ServiceFacts,
];

/// A module from the registry: cheap to copy, compared and printed by name.
#[derive(Clone, Copy)]
pub struct ModuleRef(&'static dyn Module);

impl ModuleRef {
    /// Resolves a task key: short name, alias, or `ansible.builtin.` / `ansible.legacy.` FQCN.
    pub fn lookup(key: &str) -> Option<ModuleRef> {
        let short = key.strip_prefix("ansible.builtin.").or_else(|| key.strip_prefix("ansible.legacy.")).unwrap_or(key);
        REGISTRY.iter().copied().find(|m| m.spec().name == short || m.spec().aliases.contains(&short)).map(ModuleRef)
    }

    /// The module's short name.
    pub fn name(self) -> &'static str {
        self.0.spec().name
    }

    /// The argument schema.
    pub fn spec(self) -> &'static Spec {
        self.0.spec()
    }

    /// Checks literal arguments; templated ones are checked after rendering, at run time.
    pub fn check_static(self, args: &Args) -> Result<(), ArgError> {
        let templated = args.0.values().any(|v| serde_json::to_string(v).is_ok_and(|s| s.contains("{{") || s.contains("{%")));
        if templated {
            return Ok(());
        }
        self.0.check(args)
    }

    /// Whether the module runs once for all hosts.
    pub fn bypasses_host_loop(self) -> bool {
        self.0.bypasses_host_loop()
    }

    /// The argument a loop over names collapses into (package modules).
    pub fn list_argument(self) -> Option<&'static str> {
        self.0.list_argument()
    }

    /// Adds what the task needs to a facts probe.
    pub fn probe(self, args: &Args, request: &mut ProbeRequest) {
        self.0.probe(args, request)
    }

    /// Runs the task.
    pub fn run<'a>(self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        self.0.run(host, args, ctx)
    }

    /// Every module's name and alias, for suggestions.
    pub fn names() -> Vec<&'static str> {
        REGISTRY.iter().flat_map(|m| std::iter::once(m.spec().name).chain(m.spec().aliases.iter().copied())).collect()
    }

    /// Every module's name, for error messages.
    pub fn supported_list() -> String {
        REGISTRY.iter().map(|m| m.spec().name).collect::<Vec<_>>().join(", ")
    }
}

impl PartialEq for ModuleRef {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ModuleRef {}

impl std::fmt::Debug for ModuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for ModuleRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A report read back (`gafix report merge`) names modules by name.
impl<'de> serde::Deserialize<'de> for ModuleRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ModuleRef::lookup(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown module '{name}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_short_name_fqcn_and_alias() {
        let name = |k: &str| ModuleRef::lookup(k).map(ModuleRef::name);
        assert_eq!(name("apt"), Some("apt"));
        assert_eq!(name("ansible.builtin.systemd"), Some("systemd"));
        assert_eq!(name("ansible.builtin.systemd_service"), Some("systemd"));
        assert_eq!(name("yum"), Some("dnf"));
        assert_eq!(name("ansible.legacy.command"), Some("command"));
        assert_eq!(name("community.general.apk"), None);
    }

    #[test]
    fn the_registry_names_each_module_once() {
        let mut names: Vec<&str> =
            REGISTRY.iter().flat_map(|m| std::iter::once(m.spec().name).chain(m.spec().aliases.iter().copied())).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a name or alias is claimed twice");
    }
}
