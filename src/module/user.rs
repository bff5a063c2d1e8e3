//! `user`: a local account present (uid, primary group, supplementary groups, shell, home,
//! comment, password hash) or absent, with shadow's `useradd`/`usermod`/`userdel` as
//! ansible-core's module uses them on Linux. The account and every group come with the facts
//! probe, so a user already right costs no round trip of its own. A password hash goes to
//! the host on stdin, never on a command line or in a log.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use serde_json::json;

use super::group::id_arg;
use super::spec::{arg, arg_aliases, arg_choices, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::{Account, Change, Group, ProbeRequest};
use crate::session::HostSession;
use crate::shell::quote;

pub struct User;

pub static SPEC: Spec = Spec {
    name: "user",
    aliases: &[],
    args: &[
        arg_aliases("name", Kind::Str, &["user"]),
        arg_choices("state", &["present", "absent"]),
        arg("uid", Kind::Str),
        arg("group", Kind::Str),
        arg("groups", Kind::List),
        arg("append", Kind::Bool),
        arg("shell", Kind::Str),
        arg("home", Kind::Str),
        arg_aliases("create_home", Kind::Bool, &["createhome"]),
        arg("move_home", Kind::Bool),
        arg("system", Kind::Bool),
        arg("comment", Kind::Str),
        arg("password", Kind::Str),
        arg_choices("update_password", &["always", "on_create"]),
        arg("password_lock", Kind::Bool),
        arg("remove", Kind::Bool),
        arg("force", Kind::Bool),
        arg("non_unique", Kind::Bool),
    ],
    free_form: None,
    required: &["name"],
    unsupported: &[
        "expires",
        "generate_ssh_key",
        "ssh_key_bits",
        "ssh_key_comment",
        "ssh_key_file",
        "ssh_key_passphrase",
        "ssh_key_type",
        "authorization",
        "hidden",
        "inactive",
        "local",
        "login_class",
        "profile",
        "role",
        "seuser",
        "skeleton",
        "uid_max",
        "uid_min",
        "umask",
        "password_expire_max",
        "password_expire_min",
        "password_expire_warn",
        "password_expire_account_disable",
    ],
    any_keys: false,
};

#[derive(Debug)]
struct Desired {
    name: String,
    present: bool,
    uid: Option<u32>,
    group: Option<String>,
    /// `None`: not managed; `Some([])`: no supplementary groups (`groups: ''`).
    groups: Option<Vec<String>>,
    append: bool,
    shell: Option<String>,
    home: Option<String>,
    create_home: bool,
    move_home: bool,
    system: bool,
    comment: Option<String>,
    password: Option<String>,
    update_always: bool,
    password_lock: Option<bool>,
    remove: bool,
    force: bool,
    non_unique: bool,
}

fn desired(args: &Args) -> Result<Desired, ArgError> {
    let name = args.str("name").ok_or(ArgError::Missing { module: "user", what: "'name'" })?;
    crate::names::account(&name)?;
    let group = args.str("group");
    if let Some(g) = &group {
        if g.parse::<u32>().is_err() {
            crate::names::account(g)?;
        }
    }
    let groups = args.get("groups").map(|_| args.list("groups"));
    for g in groups.iter().flatten() {
        if g.parse::<u32>().is_err() {
            crate::names::account(g)?;
        }
    }
    let text = |what: &'static str| -> Result<Option<String>, ArgError> {
        match args.str(what) {
            Some(v) if v.chars().any(char::is_control) || (what != "comment" && v.contains(':')) => {
                Err(ArgError::Invalid { arg: what, expected: "text without control characters or ':'", found: v })
            }
            other => Ok(other),
        }
    };
    let home = text("home")?;
    if let Some(h) = &home {
        crate::names::path(h)?;
    }
    let comment = text("comment")?;
    if comment.as_ref().is_some_and(|c| c.contains(':')) {
        return Err(ArgError::Invalid { arg: "comment", expected: "text without ':'", found: comment.unwrap_or_default() });
    }
    Ok(Desired {
        name,
        present: args.str("state").as_deref() != Some("absent"),
        uid: id_arg(args, "uid")?,
        group,
        groups,
        append: args.bool("append").unwrap_or(false),
        shell: text("shell")?,
        home,
        create_home: args.bool("create_home").unwrap_or(true),
        move_home: args.bool("move_home").unwrap_or(false),
        system: args.bool("system").unwrap_or(false),
        comment,
        password: text("password")?,
        update_always: args.str("update_password").as_deref() != Some("on_create"),
        password_lock: args.bool("password_lock"),
        remove: args.bool("remove").unwrap_or(false),
        force: args.bool("force").unwrap_or(false),
        non_unique: args.bool("non_unique").unwrap_or(false),
    })
}

/// A group named or numbered as a task gives it, among the host's groups.
fn find_group<'a>(groups: &'a [Group], g: &str) -> Option<&'a Group> {
    match g.parse::<u32>() {
        Ok(gid) => groups.iter().find(|x| x.gid == gid),
        Err(_) => groups.iter().find(|x| x.name == g),
    }
}

/// The command for the desired state (`"$pw"` stands for the password read from stdin) and
/// what it does; `Ok(None)` when the account is already right.
fn plan(d: &Desired, current: Option<&Account>, groups: &[Group]) -> Result<Option<(String, &'static str)>, String> {
    let name = quote(&d.name);
    let exists = |g: &str| find_group(groups, g).ok_or_else(|| format!("Group {g} does not exist"));
    if !d.present {
        return Ok(current.map(|_| {
            let mut cmd = String::from("userdel");
            if d.force {
                cmd.push_str(" -f");
            }
            if d.remove {
                cmd.push_str(" -r");
            }
            (format!("{cmd} -- {name}"), "removed")
        }));
    }
    let wanted_groups: Option<Vec<String>> = match &d.groups {
        None => None,
        Some(gs) => Some(gs.iter().map(|g| exists(g).map(|x| x.name.clone())).collect::<Result<BTreeSet<_>, _>>()?.into_iter().collect()),
    };
    let mut flags: Vec<String> = Vec::new();
    let unique = if d.non_unique { " -o" } else { "" };
    let Some(account) = current else {
        let mut pre = String::new();
        if let Some(uid) = d.uid {
            flags.push(format!("-u {uid}{unique}"));
        }
        match &d.group {
            Some(g) => flags.push(format!("-g {}", quote(&exists(g)?.name))),
            // useradd would refuse to create the user's own group when it exists already.
            None if find_group(groups, &d.name).is_some() => flags.push("-N".into()),
            None => {}
        }
        if let Some(gs) = wanted_groups.as_ref().filter(|g| !g.is_empty()) {
            flags.push(format!("-G {}", quote(&gs.join(","))));
        }
        if let Some(c) = &d.comment {
            flags.push(format!("-c {}", quote(c)));
        }
        if let Some(h) = &d.home {
            if d.create_home {
                pre = format!("mkdir -p -- \"$(dirname -- {})\" && ", quote(h));
            }
            flags.push(format!("-d {}", quote(h)));
        }
        if let Some(s) = &d.shell {
            flags.push(format!("-s {}", quote(s)));
        }
        if d.password.is_some() {
            flags.push(if d.password_lock == Some(true) { "-p \"!$pw\"".into() } else { "-p \"$pw\"".into() });
        }
        flags.push(if d.create_home { "-m".into() } else { "-M".into() });
        if d.system {
            flags.push("-r".into());
        }
        return Ok(Some((format!("{pre}useradd {} -- {name}", flags.join(" ")), "added")));
    };
    if let Some(uid) = d.uid.filter(|u| *u != account.uid) {
        flags.push(format!("-u {uid}{unique}"));
    }
    if let Some(g) = &d.group {
        let group = exists(g)?;
        if group.gid != account.gid {
            flags.push(format!("-g {}", group.gid));
        }
    }
    if let Some(wanted) = &wanted_groups {
        let current: BTreeSet<&str> = groups.iter().filter(|g| g.members.contains(&d.name)).map(|g| g.name.as_str()).collect();
        let wanted_set: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
        let differ: BTreeSet<&str> = current.symmetric_difference(&wanted_set).copied().collect();
        if wanted.is_empty() {
            if !current.is_empty() && !d.append {
                flags.push("-G ''".into());
            }
        } else if d.append {
            if wanted.iter().any(|g| differ.contains(g.as_str())) {
                flags.push(format!("-a -G {}", quote(&wanted.join(","))));
            }
        } else if !differ.is_empty() {
            flags.push(format!("-G {}", quote(&wanted.join(","))));
        }
    }
    if let Some(c) = d.comment.as_ref().filter(|c| **c != account.comment) {
        flags.push(format!("-c {}", quote(c)));
    }
    if let Some(h) = d.home.as_ref().filter(|h| **h != account.home) {
        flags.push(format!("-d {}{}", quote(h), if d.move_home { " -m" } else { "" }));
    }
    if let Some(s) = d.shell.as_ref().filter(|s| **s != account.shell) {
        flags.push(format!("-s {}", quote(s)));
    }
    let hash = account.password.as_deref().unwrap_or("");
    let mut lock = match d.password_lock {
        Some(true) if !hash.starts_with('!') => Some("-L"),
        Some(false) if hash.starts_with('!') => Some("-U"),
        _ => None,
    };
    if d.password.as_ref().is_some_and(|p| d.update_always && hash.trim_start_matches('!') != p.trim_start_matches('!')) {
        lock = None;
        flags.push(if d.password_lock == Some(true) { "-p \"!$pw\"".into() } else { "-p \"$pw\"".into() });
    }
    if let Some(l) = lock {
        flags.push(l.into());
    }
    if flags.is_empty() {
        return Ok(None);
    }
    Ok(Some((format!("usermod {} -- {name}", flags.join(" ")), "modified")))
}

/// What the probe reads for the task: the account, every group, and the password hash when
/// the task may set or lock it.
fn wants(d: &Desired, request: &mut ProbeRequest) {
    request.users.push(d.name.clone());
    request.groups = true;
    if d.password.is_some() || d.password_lock.is_some() {
        request.shadow.push(d.name.clone());
    }
}

impl Module for User {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(d) = desired(args) {
            wants(&d, request);
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let d = match desired(args) {
                Ok(d) => d,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            let mut request = ProbeRequest::default();
            wants(&d, &mut request);
            if let Err(e) = host.ensure_facts(&request).await {
                return Outcome::from_transport(e);
            }
            let mut current = host.facts().users.get(&d.name).cloned().flatten();
            // The login user may not read shadow: read the hash as the task's user.
            if let Some(account) = current.as_mut().filter(|a| a.password.is_none() && !request.shadow.is_empty()) {
                match host.run(&format!("getent shadow -- {}", quote(&d.name)), ctx.become_, None).await {
                    Ok(out) => account.password = out.stdout.split(':').nth(1).map(str::to_string),
                    Err(e) => return Outcome::from_transport(e),
                }
            }
            let groups = host.facts().groups.clone().unwrap_or_default();
            let step = match plan(&d, current.as_ref(), &groups) {
                Ok(s) => s,
                Err(msg) => return Outcome::failed(msg),
            };
            let result = |account: Option<&Account>| {
                let mut r = json!({"name": d.name, "state": if d.present { "present" } else { "absent" }, "system": d.system});
                if let Some(a) = account {
                    r["uid"] = json!(a.uid);
                    r["group"] = json!(a.gid);
                    r["home"] = json!(a.home);
                    r["shell"] = json!(a.shell);
                    r["comment"] = json!(a.comment);
                }
                r
            };
            let Some((command, what)) = step else {
                let mut o = Outcome::ok(format!("user {} is as wanted", d.name));
                o.result = result(current.as_ref());
                return o;
            };
            if ctx.check_mode {
                let mut o = Outcome::changed(format!("user {} would be {what}", d.name));
                o.result = result(current.as_ref());
                return o;
            }
            let uses_password = command.contains("\"$pw\"") || command.contains("\"!$pw\"");
            let script = if uses_password { format!("IFS= read -r pw\n{command}") } else { command.clone() };
            let stdin = d.password.as_ref().filter(|_| uses_password).map(|p| format!("{p}\n"));
            let out = match host.run(&script, ctx.become_, stdin.as_deref()).await {
                Ok(out) => out,
                Err(e) => return Outcome::from_transport(e),
            };
            host.mark_changed(Change::Other);
            if out.rc != 0 {
                return Outcome::command_failed(&command, &out, None);
            }
            let mut o = Outcome::changed(format!("user {} {what}", d.name));
            o.result = result(None);
            if let Err(e) = host.ensure_facts(&request).await {
                return Outcome::from_transport(e);
            }
            if let Some(Some(a)) = host.facts().users.get(&d.name) {
                let mut r = result(Some(a));
                r["changed"] = json!(true);
                o.result = r;
            }
            o
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: serde_json::Value) -> Desired {
        desired(&Args(v.as_object().unwrap().clone())).unwrap()
    }

    fn groups() -> Vec<Group> {
        vec![
            Group { name: "sudo".into(), gid: 27, members: vec!["ops".into()] },
            Group { name: "adm".into(), gid: 4, members: vec![] },
            Group { name: "ops".into(), gid: 1001, members: vec![] },
        ]
    }

    fn ops() -> Account {
        Account { uid: 1001, gid: 1001, comment: "Ops".into(), home: "/home/ops".into(), shell: "/bin/bash".into(), password: None }
    }

    #[test]
    fn a_new_user_is_one_useradd() {
        let (cmd, _) =
            plan(&d(json!({"name": "svc", "system": true, "create_home": false, "shell": "/usr/sbin/nologin"})), None, &groups())
                .unwrap()
                .unwrap();
        assert_eq!(cmd, "useradd -s /usr/sbin/nologin -M -r -- svc");
        let (cmd, _) =
            plan(&d(json!({"name": "ops", "groups": ["sudo", "adm"], "comment": "Ops team"})), None, &groups()).unwrap().unwrap();
        assert_eq!(cmd, "useradd -N -G adm,sudo -c 'Ops team' -m -- ops", "its own group exists already: -N");
        let (cmd, _) = plan(&d(json!({"name": "x", "password": "$6$h", "home": "/srv/x"})), None, &groups()).unwrap().unwrap();
        assert_eq!(cmd, "mkdir -p -- \"$(dirname -- /srv/x)\" && useradd -d /srv/x -p \"$pw\" -m -- x", "the hash is not in the command");
        assert_eq!(plan(&d(json!({"name": "x", "groups": "nosuch"})), None, &groups()).unwrap_err(), "Group nosuch does not exist");
    }

    #[test]
    fn an_existing_user_gets_only_what_differs() {
        let g = groups();
        assert_eq!(
            plan(&d(json!({"name": "ops", "shell": "/bin/bash", "groups": ["sudo"], "home": "/home/ops"})), Some(&ops()), &g).unwrap(),
            None
        );
        let (cmd, _) = plan(&d(json!({"name": "ops", "groups": ["adm"], "append": true})), Some(&ops()), &g).unwrap().unwrap();
        assert_eq!(cmd, "usermod -a -G adm -- ops");
        let (cmd, _) = plan(&d(json!({"name": "ops", "groups": ["adm"]})), Some(&ops()), &g).unwrap().unwrap();
        assert_eq!(cmd, "usermod -G adm -- ops", "without append the list is the whole membership");
        assert_eq!(plan(&d(json!({"name": "ops", "groups": ["sudo"], "append": true})), Some(&ops()), &g).unwrap(), None);
        let (cmd, _) = plan(&d(json!({"name": "ops", "groups": ""})), Some(&ops()), &g).unwrap().unwrap();
        assert_eq!(cmd, "usermod -G '' -- ops");
        let (cmd, _) =
            plan(&d(json!({"name": "ops", "group": "adm", "uid": 2000, "shell": "/bin/sh"})), Some(&ops()), &g).unwrap().unwrap();
        assert_eq!(cmd, "usermod -u 2000 -g 4 -s /bin/sh -- ops");
        let hashed = Account { password: Some("$6$old".into()), ..ops() };
        let (cmd, _) = plan(&d(json!({"name": "ops", "password": "$6$new"})), Some(&hashed), &g).unwrap().unwrap();
        assert_eq!(cmd, "usermod -p \"$pw\" -- ops");
        assert_eq!(
            plan(&d(json!({"name": "ops", "password": "$6$new", "update_password": "on_create"})), Some(&hashed), &g).unwrap(),
            None
        );
        assert_eq!(plan(&d(json!({"name": "ops", "password": "$6$old"})), Some(&hashed), &g).unwrap(), None);
        let (cmd, _) = plan(&d(json!({"name": "ops", "state": "absent", "remove": true})), Some(&ops()), &g).unwrap().unwrap();
        assert_eq!(cmd, "userdel -r -- ops");
        assert!(desired(&Args(json!({"name": "ops", "shell": "/bin/sh\nrm"}).as_object().unwrap().clone())).is_err());
    }
}
