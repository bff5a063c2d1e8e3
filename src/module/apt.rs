//! `apt`: Debian/Ubuntu packages, with Ansible's options and semantics.

use futures::future::BoxFuture;
use serde_json::json;

use super::spec::{arg, arg_aliases, arg_choices, ArgError, Args, Kind, Spec};
use super::{packages, Decision, Diff, Module, Outcome, PackageState, RunCtx};
use crate::facts::{Change, Facts, PkgMgr, ProbeRequest};
use crate::names;
use crate::session::HostSession;
use crate::shell::quote;

pub static SPEC: Spec = Spec {
    name: "apt",
    aliases: &[],
    args: &[
        arg_aliases("name", Kind::List, &["package", "pkg"]),
        arg_choices("state", &["present", "installed", "latest", "absent", "removed"]),
        arg_aliases("update_cache", Kind::Bool, &["update-cache"]),
        arg_aliases("cache_valid_time", Kind::Seconds, &[]),
        arg("purge", Kind::Bool),
        arg("autoremove", Kind::Bool),
        arg_aliases("install_recommends", Kind::Bool, &["install-recommends"]),
        arg_choices("upgrade", &["dist", "full", "no", "safe", "yes", "true", "false"]),
        arg("lock_timeout", Kind::Seconds),
        arg("only_upgrade", Kind::Bool),
        arg_aliases("allow_downgrade", Kind::Bool, &["allow-downgrade", "allow_downgrades", "allow-downgrades"]),
        arg("default_release", Kind::Str),
        arg("dpkg_options", Kind::Str),
        arg("autoclean", Kind::Bool),
        arg("clean", Kind::Bool),
        arg("deb", Kind::Str),
        arg("fail_on_autoremove", Kind::Bool),
        arg("allow_unauthenticated", Kind::Bool),
        arg("allow_change_held_packages", Kind::Bool),
        // gafix always uses apt-get, as force_apt_get asks.
        arg("force_apt_get", Kind::Bool),
    ],
    free_form: None,
    required: &[],
    unsupported: &["force", "policy_rc_d"],
    any_keys: false,
};

/// The `apt` module.
pub struct Apt;

impl Module for Apt {
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
            request.apt_cache_age |= d.cache_valid_time.is_some();
            request.packages.extend(d.names);
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

/// Runs a decided apt task (also for the `package` module on Debian hosts).
pub async fn run(host: &mut HostSession, d: Desired, ctx: &RunCtx<'_>) -> Outcome {
    let request = ProbeRequest { packages: d.names.clone(), apt_cache_age: d.cache_valid_time.is_some(), ..Default::default() };
    if let Err(e) = host.ensure_facts(&request).await {
        return Outcome::from_transport(e);
    }
    if host.facts().pkg_mgr != PkgMgr::Apt {
        return Outcome::failed("apt is not available on this host (use the package or dnf module)");
    }
    let actions = match decide(&d, host.facts()) {
        Decision::Ok(m) => return Outcome::ok(m),
        Decision::Fail(m) => return Outcome::failed(m),
        Decision::Predicted(m) => return Outcome::changed(m),
        Decision::Change(a) => a,
    };
    let mut total = Transaction::default();
    let mut cache_updated = false;
    let mut cleaned: Vec<&str> = Vec::new();
    // The last transaction brings back the packages and units it may have changed, so that
    // the next task (a service of the package) has them without a round trip of its own.
    let last_transaction = actions.iter().rposition(|a| !matches!(a, Action::UpdateCache | Action::Clean | Action::Autoclean));
    let mut reread_done = false;
    for (i, action) in actions.iter().enumerate() {
        if ctx.check_mode && *action == Action::UpdateCache {
            continue;
        }
        let mut script = command(action, &d, ctx.check_mode);
        let reread = (!ctx.check_mode && Some(i) == last_transaction).then(|| host.reread_request(Change::Packages));
        if let Some(request) = reread.as_ref().filter(|r| !r.is_empty()) {
            script = crate::facts::then_reread(&script, request);
        }
        // Check mode simulates as the login user; a real transaction runs as root and is
        // never interrupted (it outlives our timeout on the host).
        let become_ = if ctx.check_mode { None } else { ctx.become_ };
        let mut out = match host.run(&script, become_, None).await {
            Ok(out) => out,
            Err(e) => return Outcome::from_transport(e),
        };
        if let Some(request) = &reread {
            let (own, probe) = crate::facts::split_reread(&out.stdout);
            host.mark_changed(Change::Packages);
            host.absorb_reread(probe, request);
            reread_done = true;
            out.stdout = own.to_string();
        }
        if out.rc != 0 {
            if !ctx.check_mode && !reread_done {
                host.mark_changed(Change::Packages);
            }
            return Outcome::command_failed("apt-get", &out, explain_failure(&format!("{}\n{}", out.stdout, out.stderr), d.lock_timeout));
        }
        if *action == Action::UpdateCache {
            cache_updated = true;
        }
        match action {
            Action::Clean => cleaned.push("cleaned the package cache"),
            Action::Autoclean if out.stdout.lines().any(|l| l.starts_with("Del ")) => cleaned.push("removed obsolete package files"),
            _ => {}
        }
        let o = parse_output(&out.stdout);
        total.installed.extend(o.installed);
        total.upgraded.extend(o.upgraded);
        total.removed.extend(o.removed);
    }
    let package_ops = actions.iter().any(|a| !matches!(a, Action::UpdateCache | Action::Clean));
    let changed = total.changed() || (cache_updated && !package_ops) || !cleaned.is_empty();
    if !ctx.check_mode && (changed || cache_updated) && !reread_done {
        // A fresh cache is a package fact too (its age, for a later cache_valid_time).
        host.mark_changed(if total.changed() || cache_updated { Change::Packages } else { Change::Other });
    }
    if ctx.check_mode {
        host.predict_installed(&total.installed);
    }
    let upgrades = total.upgraded.len();
    let mut out = if !changed {
        Outcome::ok(if cache_updated { "cache updated, nothing to upgrade".to_string() } else { "nothing to do".to_string() })
    } else if ctx.check_mode {
        let mut parts = Vec::new();
        if !total.installed.is_empty() {
            parts.push(format!("would install {}", total.installed.join(" ")));
        }
        if upgrades > 0 {
            parts.push(format!("would upgrade {upgrades} package{}", if upgrades == 1 { "" } else { "s" }));
        }
        if !total.removed.is_empty() {
            parts.push(format!("would remove {}", total.removed.join(" ")));
        }
        Outcome::changed(parts.join(", "))
    } else if total.changed() {
        Outcome::changed(total.summary())
    } else if !cleaned.is_empty() {
        Outcome::changed(cleaned.join(", "))
    } else {
        Outcome::changed("package cache updated")
    };
    if ctx.diff && total.changed() {
        let mut before = Vec::new();
        let mut after = Vec::new();
        for p in &total.installed {
            before.push(format!("{p}: absent"));
            after.push(format!("{p}: installed"));
        }
        for p in &total.upgraded {
            before.push(format!(
                "{p}: {}",
                host.facts().packages.get(p).and_then(|s| s.installed.clone()).unwrap_or_else(|| "installed".into())
            ));
            after.push(format!("{p}: upgraded"));
        }
        for p in &total.removed {
            before.push(format!("{p}: installed"));
            after.push(format!("{p}: absent"));
        }
        out.diff = Some(Diff { before: before.join("\n"), after: after.join("\n") });
    }
    out.result =
        json!({"installed": total.installed, "upgraded": total.upgraded, "removed": total.removed, "cache_updated": cache_updated});
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// `apt-get upgrade --with-new-pkgs` (`yes` / `safe`: like aptitude safe-upgrade, never removes packages).
    Safe,
    /// `apt-get dist-upgrade` (`full` / `dist`).
    Dist,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub names: Vec<String>,
    pub state: PackageState,
    pub update_cache: bool,
    pub cache_valid_time: Option<i64>,
    pub purge: bool,
    pub autoremove: bool,
    pub install_recommends: Option<bool>,
    pub upgrade: Option<Upgrade>,
    pub lock_timeout: u64,
    pub only_upgrade: bool,
    pub allow_downgrade: bool,
    pub default_release: Option<String>,
    /// `dpkg_options`: each becomes `-o Dpkg::Options::=--OPTION`.
    pub dpkg_options: Vec<String>,
    pub autoclean: bool,
    pub clean: bool,
    /// A .deb file on the host to install.
    pub deb: Option<String>,
    /// `apt-get --no-remove`, `--allow-unauthenticated`, `--allow-change-held-packages`.
    pub fail_on_autoremove: bool,
    pub allow_unauthenticated: bool,
    pub allow_change_held_packages: bool,
}

pub fn desired(args: &Args) -> Result<Desired, ArgError> {
    let names = args.list("name");
    for n in &names {
        names::deb_package(n)?;
    }
    let state = PackageState::from_arg(args)?;
    let upgrade = match args.get("upgrade").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).as_deref() {
        None | Some("no") | Some("false") => None,
        Some("yes") | Some("true") | Some("safe") => Some(Upgrade::Safe),
        Some("dist") | Some("full") => Some(Upgrade::Dist),
        Some(other) => return Err(ArgError::Invalid { arg: "upgrade", expected: "dist, full, safe, yes or no", found: other.into() }),
    };
    let default_release = args.str("default_release");
    if let Some(r) = &default_release {
        if !r.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(ArgError::Invalid { arg: "default_release", expected: "a release name", found: r.clone() });
        }
    }
    let dpkg_options: Vec<String> = args
        .str("dpkg_options")
        .unwrap_or_else(|| "force-confdef,force-confold".into())
        .split(',')
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if let Some(bad) = dpkg_options
        .iter()
        .find(|o| !o.starts_with(|c: char| c.is_ascii_lowercase()) || !o.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
    {
        return Err(ArgError::Invalid {
            arg: "dpkg_options",
            expected: "dpkg option names (force-confold,force-confdef)",
            found: bad.clone(),
        });
    }
    let deb = args.str("deb");
    if let Some(path) = &deb {
        if path.contains("://") {
            return Err(ArgError::Module("apt: a deb URL is not supported by gafix yet (copy the file to the host first)".into()));
        }
        names::path(path)?;
        if state != PackageState::Present {
            return Err(ArgError::Module("apt: deb only supports state=present".into()));
        }
    }
    Ok(Desired {
        names,
        state,
        dpkg_options,
        autoclean: args.bool("autoclean").unwrap_or(false),
        clean: args.bool("clean").unwrap_or(false),
        deb,
        fail_on_autoremove: args.bool("fail_on_autoremove").unwrap_or(false),
        allow_unauthenticated: args.bool("allow_unauthenticated").unwrap_or(false),
        allow_change_held_packages: args.bool("allow_change_held_packages").unwrap_or(false),
        // Like Ansible, cache_valid_time implies update_cache.
        update_cache: args.bool("update_cache").unwrap_or(false) || args.int("cache_valid_time").is_some(),
        cache_valid_time: args.int("cache_valid_time"),
        purge: args.bool("purge").unwrap_or(false),
        autoremove: args.bool("autoremove").unwrap_or(false),
        install_recommends: args.bool("install_recommends"),
        upgrade,
        lock_timeout: args.int("lock_timeout").unwrap_or(120).max(0) as u64,
        only_upgrade: args.bool("only_upgrade").unwrap_or(false),
        allow_downgrade: args.bool("allow_downgrade").unwrap_or(false),
        default_release,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `apt-get clean` (always a change, as Ansible reports it).
    Clean,
    UpdateCache,
    Install(Vec<String>),
    /// Install or upgrade to the newest candidate; whether anything changes is read from apt.
    InstallLatest(Vec<String>),
    Remove(Vec<String>),
    Upgrade(Upgrade),
    /// A .deb on the host, unless that version is installed already (read with it).
    Deb(String),
    Autoremove,
    /// `apt-get autoclean`: changed when it deleted a file.
    Autoclean,
}

/// Facts x desired -> actions. Pure: no host needed.
pub fn decide(d: &Desired, facts: &Facts) -> Decision<Action> {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    if d.clean {
        actions.push(Action::Clean);
    }
    let cache_fresh = match (d.cache_valid_time, facts.apt_cache_age) {
        (Some(valid), Some(age)) => age <= valid,
        _ => false,
    };
    if d.update_cache && !cache_fresh {
        actions.push(Action::UpdateCache);
    }
    let installed = |n: &str| facts.packages.get(names::deb_base_name(n)).and_then(|p| p.installed.as_ref());
    match d.state {
        PackageState::Present => {
            // `name=version` pins are installed when the installed version differs.
            let split = packages::split(&d.names, |n| match (installed(n), n.split_once('=')) {
                // only_upgrade: a package that is not installed is left alone.
                (None, _) => d.only_upgrade,
                (Some(v), Some((_, want))) => v == want,
                (Some(_), None) => true,
            });
            if !split.satisfied.is_empty() {
                notes.push(format!("{} already installed", split.satisfied.len()));
            }
            if !split.missing.is_empty() {
                actions.push(Action::Install(split.missing));
            }
        }
        PackageState::Latest if !d.names.is_empty() => actions.push(Action::InstallLatest(d.names.clone())),
        PackageState::Latest => {}
        PackageState::Absent => {
            let present = packages::split(&d.names, |n| installed(n).is_some()).satisfied;
            if present.is_empty() && !d.names.is_empty() {
                notes.push("not installed".into());
            } else if !present.is_empty() {
                actions.push(Action::Remove(present));
            }
        }
    }
    if let Some(kind) = d.upgrade {
        actions.push(Action::Upgrade(kind));
    }
    if let Some(deb) = &d.deb {
        actions.push(Action::Deb(deb.clone()));
    }
    // As Ansible: autoclean and autoremove run on their own when no package is named.
    if d.autoclean && d.names.is_empty() {
        actions.push(Action::Autoclean);
    }
    if d.autoremove {
        actions.push(Action::Autoremove);
    }
    if actions.is_empty() {
        Decision::Ok(if notes.is_empty() { "nothing to do".into() } else { notes.join(", ") })
    } else {
        Decision::Change(actions)
    }
}

/// The shell command for an action. `simulate` is check mode: apt-get -s changes nothing.
pub fn command(action: &Action, d: &Desired, simulate: bool) -> String {
    let sim = if simulate { " -s" } else { "" };
    let quoted = |names: &[String]| names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ");
    let dpkg: String = d.dpkg_options.iter().map(|o| format!(" -o Dpkg::Options::=--{o}")).collect();
    let apt_get = format!("apt-get -q -y{dpkg}");
    let apt_get = apt_get.as_str();
    let mut opts = String::new();
    for (on, flag) in [
        (d.fail_on_autoremove, " --no-remove"),
        (d.allow_unauthenticated, " --allow-unauthenticated"),
        (d.allow_change_held_packages, " --allow-change-held-packages"),
    ] {
        if on {
            opts.push_str(flag);
        }
    }
    match d.install_recommends {
        Some(true) => opts.push_str(" -o APT::Install-Recommends=true"),
        Some(false) => opts.push_str(" --no-install-recommends"),
        None => {}
    }
    if d.allow_downgrade {
        opts.push_str(" --allow-downgrades");
    }
    if let Some(r) = &d.default_release {
        opts.push_str(&format!(" -t {}", quote(r)));
    }
    let body = match action {
        Action::UpdateCache => return if simulate { "true".into() } else { wrap(d.lock_timeout, "apt-get -q update") },
        Action::Clean => return if simulate { "true".into() } else { wrap(d.lock_timeout, "apt-get clean") },
        Action::Deb(path) => {
            // Installed already at the file's version: nothing to do (and said so).
            let install = format!("{apt_get}{sim}{opts} install -- {}", quote(path));
            let script = format!(
                "f={}; n=$(dpkg-deb -f \"$f\" Package) && v=$(dpkg-deb -f \"$f\" Version) || exit 1\n\
                 if [ \"$(dpkg-query -W -f='${{db:Status-Abbrev}}${{Version}}' \"$n\" 2>/dev/null)\" = \"ii $v\" ]; then echo \"@@deb-installed $n $v\"; exit 0; fi\n",
                quote(path)
            );
            return if simulate { format!("{script}echo \"Inst $n ($v)\"") } else { format!("{script}{}", wrap(d.lock_timeout, &install)) };
        }
        Action::Autoclean => format!("{apt_get}{sim} autoclean"),
        Action::Install(names) => format!("{apt_get}{sim}{opts} install -- {}", quoted(names)),
        Action::InstallLatest(names) => {
            let only = if d.only_upgrade { " --only-upgrade" } else { "" };
            format!("{apt_get}{sim}{opts}{only} install -- {}", quoted(names))
        }
        Action::Remove(names) => format!("{apt_get}{sim}{} remove -- {}", if d.purge { " --purge" } else { "" }, quoted(names)),
        Action::Upgrade(Upgrade::Safe) => {
            format!("{apt_get}{sim}{opts} upgrade --with-new-pkgs=no")
        }
        Action::Upgrade(Upgrade::Dist) => format!("{apt_get}{sim}{opts} dist-upgrade"),
        Action::Autoremove => format!("{apt_get}{sim} autoremove{}", if d.purge { " --purge" } else { "" }),
    };
    if simulate {
        format!("LC_ALL=C {body}")
    } else {
        wrap(d.lock_timeout, &body)
    }
}

/// Runs an apt command so that (1) it waits for the dpkg/apt locks up to `lock_timeout`
/// (unattended-upgrades holds them after boot), and (2) a dropped connection or a timeout
/// on our side never interrupts dpkg mid-transaction: the transaction runs in its own
/// session, its output is kept in a file, and we read it when it ends.
pub fn wrap(lock_timeout: u64, body: &str) -> String {
    format!(
        "export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1 LC_ALL=C\n\
         log=$(mktemp) || exit 1\n\
         deadline=$(( $(date +%s) + {lock_timeout} ))\n\
         while :; do\n\
         \x20 setsid sh -c {} >\"$log\" 2>&1 </dev/null & wait $!; rc=$?\n\
         \x20 if [ $rc -ne 0 ] && grep -q 'Could not get lock' \"$log\" && [ $(date +%s) -lt $deadline ]; then sleep 1; continue; fi\n\
         \x20 break\n\
         done\n\
         cat \"$log\"; rm -f \"$log\"; exit $rc",
        quote(body)
    )
}

/// What apt's output says happened, for changed/failed and messages.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    pub installed: Vec<String>,
    pub upgraded: Vec<String>,
    pub removed: Vec<String>,
}

impl Transaction {
    pub fn changed(&self) -> bool {
        !(self.installed.is_empty() && self.upgraded.is_empty() && self.removed.is_empty())
    }

    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (what, list) in [("installed", &self.installed), ("upgraded", &self.upgraded), ("removed", &self.removed)] {
            if !list.is_empty() {
                parts.push(format!("{what} {}", summarize(list)));
            }
        }
        parts.join(", ")
    }
}

fn summarize(list: &[String]) -> String {
    if list.len() <= 5 {
        list.join(" ")
    } else {
        format!("{} packages ({} ...)", list.len(), list[..3].join(" "))
    }
}

/// Parses apt-get output (real or `-s` simulation).
pub fn parse_output(output: &str) -> Transaction {
    let mut o = Transaction::default();
    for line in output.lines() {
        let mut words = line.split_whitespace();
        let (Some(verb), Some(pkg)) = (words.next(), words.next()) else {
            continue;
        };
        let from_version = words.next().is_some_and(|w| w.starts_with('['));
        let pkg = pkg.split(':').next().unwrap_or(pkg).to_string();
        // Simulation prints `Inst pkg [old] (new ...)`; an upgrade has the old version.
        match verb {
            "Inst" if from_version => push_unique(&mut o.upgraded, pkg),
            "Inst" => push_unique(&mut o.installed, pkg),
            "Remv" | "Purg" => push_unique(&mut o.removed, pkg),
            "Unpacking" if line.contains("over (") => push_unique(&mut o.upgraded, pkg),
            "Unpacking" => push_unique(&mut o.installed, pkg),
            "Removing" | "Purging" => push_unique(&mut o.removed, pkg),
            _ => {}
        }
    }
    o
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Turns apt's error output into a message an operator can act on.
pub fn explain_failure(output: &str, lock_timeout: u64) -> Option<String> {
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("E: Unable to locate package ") {
            return Some(format!(
                "package '{}' was not found in the configured apt sources; if the package lists are stale, add 'update_cache: true'",
                rest.trim()
            ));
        }
        if line.contains("has no installation candidate") {
            return Some(format!("{}; if the package lists are stale, add 'update_cache: true'", line.trim_start_matches("E: ").trim()));
        }
        if line.contains("Could not get lock") {
            let holder = line.split("It is held by ").nth(1).map(|h| h.trim_end_matches('.').to_string());
            return Some(match holder {
                Some(h) => {
                    format!("the dpkg/apt lock was still held after {lock_timeout} s by {h}; raise lock_timeout or wait for it to finish")
                }
                None => format!("the dpkg/apt lock was still held after {lock_timeout} s ({})", line.trim()),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PackageState as Installed;
    use serde_json::json;

    fn args(v: serde_json::Value) -> Args {
        Args(v.as_object().unwrap().clone())
    }

    fn facts(installed: &[(&str, &str)]) -> Facts {
        let mut f = Facts::default();
        for (n, v) in installed {
            f.packages.insert(n.to_string(), Installed { installed: Some(v.to_string()) });
        }
        f.packages.insert("qemu-guest-agent".into(), Installed { installed: None });
        f
    }

    #[test]
    fn present_installs_only_what_is_missing() {
        let d = desired(&args(json!({"name": ["qemu-guest-agent", "sudo"], "state": "present"}))).unwrap();
        assert_eq!(decide(&d, &facts(&[("sudo", "1.9")])), Decision::Change(vec![Action::Install(vec!["qemu-guest-agent".into()])]));
        let d = desired(&args(json!({"name": "sudo"}))).unwrap();
        assert_eq!(decide(&d, &facts(&[("sudo", "1.9")])), Decision::Ok("1 already installed".into()));
    }

    #[test]
    fn version_pins_reinstall_when_different() {
        let d = desired(&args(json!({"name": "sudo=2.0"}))).unwrap();
        assert!(matches!(decide(&d, &facts(&[("sudo", "1.9")])), Decision::Change(_)));
        let d = desired(&args(json!({"name": "sudo=1.9"}))).unwrap();
        assert!(matches!(decide(&d, &facts(&[("sudo", "1.9")])), Decision::Ok(_)));
    }

    #[test]
    fn absent_latest_upgrade_autoremove() {
        let d = desired(&args(json!({"name": "sudo,qemu-guest-agent", "state": "absent"}))).unwrap();
        assert_eq!(decide(&d, &facts(&[("sudo", "1")])), Decision::Change(vec![Action::Remove(vec!["sudo".into()])]));
        let d = desired(&args(json!({"name": "qemu-guest-agent", "state": "absent"}))).unwrap();
        assert_eq!(decide(&d, &facts(&[])), Decision::Ok("not installed".into()));
        let d = desired(&args(json!({"name": "sudo", "state": "latest"}))).unwrap();
        assert_eq!(decide(&d, &facts(&[("sudo", "1")])), Decision::Change(vec![Action::InstallLatest(vec!["sudo".into()])]));
        let d = desired(&args(json!({"upgrade": "dist", "autoremove": true}))).unwrap();
        assert_eq!(decide(&d, &facts(&[])), Decision::Change(vec![Action::Upgrade(Upgrade::Dist), Action::Autoremove]));
        let d = desired(&args(json!({"upgrade": true}))).unwrap();
        assert_eq!(d.upgrade, Some(Upgrade::Safe));
    }

    #[test]
    fn cache_valid_time_skips_a_fresh_cache() {
        let d = desired(&args(json!({"name": "sudo", "cache_valid_time": 3600}))).unwrap();
        let mut f = facts(&[("sudo", "1")]);
        f.apt_cache_age = Some(60);
        assert!(matches!(decide(&d, &f), Decision::Ok(_)));
        f.apt_cache_age = Some(7200);
        assert_eq!(decide(&d, &f), Decision::Change(vec![Action::UpdateCache]));
    }

    #[test]
    fn clean_autoclean_deb_dpkg_options_and_only_upgrade() {
        let d = desired(&args(json!({"clean": true, "autoclean": true, "deb": "/tmp/x.deb"}))).unwrap();
        assert_eq!(decide(&d, &facts(&[])), Decision::Change(vec![Action::Clean, Action::Deb("/tmp/x.deb".into()), Action::Autoclean]));
        let deb = command(&Action::Deb("/tmp/x.deb".into()), &d, false);
        assert!(deb.contains("dpkg-deb -f \"$f\" Package") && deb.contains("install -- /tmp/x.deb"), "{deb}");
        let d = desired(&args(json!({"name": "sudo", "only_upgrade": true}))).unwrap();
        assert!(matches!(decide(&d, &facts(&[])), Decision::Ok(_)), "only_upgrade leaves a missing package alone");
        let d = desired(&args(json!({"name": "sudo", "dpkg_options": "force-confnew", "fail_on_autoremove": true}))).unwrap();
        let cmd = command(&Action::Install(vec!["sudo".into()]), &d, false);
        assert!(cmd.contains("-o Dpkg::Options::=--force-confnew") && !cmd.contains("confold") && cmd.contains("--no-remove"), "{cmd}");
        assert!(desired(&args(json!({"dpkg_options": "force-confnew;reboot"}))).is_err());
        assert!(desired(&args(json!({"deb": "https://example.invalid/x.deb"}))).is_err());
        assert!(desired(&args(json!({"deb": "/tmp/x.deb", "state": "absent"}))).is_err());
    }

    #[test]
    fn names_are_validated() {
        let err = desired(&args(json!({"name": "vim; reboot"}))).unwrap_err();
        assert!(err.to_string().contains("not a valid Debian package name"), "{err}");
    }

    #[test]
    fn commands_quote_and_keep_conffiles() {
        let d = desired(&args(json!({"name": "g++"}))).unwrap();
        let cmd = command(&Action::Install(vec!["g++".into()]), &d, false);
        assert!(cmd.contains("--force-confold"), "{cmd}");
        // The transaction line hands the whole apt-get command to `sh -c` as one word, and
        // that word splits into apt-get's arguments with the package names last.
        let line = cmd.lines().find(|l| l.trim_start().starts_with("setsid")).expect("a setsid line");
        let words = shlex::split(line.split(" >").next().unwrap()).unwrap();
        assert_eq!(words[..3], ["setsid", "sh", "-c"], "{line}");
        assert_eq!(words.len(), 4, "the body is one word: {line}");
        let body = shlex::split(&words[3]).unwrap();
        assert_eq!(body[0], "apt-get");
        assert_eq!(body[body.len() - 3..], ["install", "--", "g++"], "{cmd}");
        assert!(cmd.contains("DEBIAN_FRONTEND=noninteractive"));
        assert!(cmd.contains("setsid"), "transactions must survive a dropped connection");
        let sim = command(&Action::Upgrade(Upgrade::Safe), &d, true);
        assert!(sim.contains(" -s ") && !sim.contains("setsid"), "{sim}");
    }

    #[test]
    fn output_parsing() {
        let sim = "Inst qemu-guest-agent (1:7.2 Debian:12.0/stable [amd64])\nInst gafix-testpkg [1] (2 localhost [all])\nConf x\n";
        let o = parse_output(sim);
        assert_eq!(o.installed, ["qemu-guest-agent"]);
        assert_eq!(o.upgraded, ["gafix-testpkg"]);
        let real = "Unpacking liburing2:amd64 (2.3-3) ...\nUnpacking gafix-testpkg (2) over (1) ...\nSetting up x ...\n";
        let o = parse_output(real);
        assert_eq!((o.installed.len(), o.upgraded.len()), (1, 1));
        assert!(!parse_output("0 upgraded, 0 newly installed, 0 to remove\n").changed());
    }

    #[test]
    fn failures_are_explained() {
        let m = explain_failure("E: Unable to locate package nosuch\n", 120).unwrap();
        assert!(m.contains("'nosuch' was not found") && m.contains("update_cache"), "{m}");
        let m = explain_failure("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (unattended-upgr)\n", 5)
            .unwrap();
        assert!(m.contains("after 5 s by process 1234 (unattended-upgr)"), "{m}");
    }
}
