//! `file`: a path's state on the host (`file`, `directory`, `link`, `touch`, `absent`) and its
//! owner, group and mode, from the path's stat in the facts probe: a path already right costs
//! no round trip of its own; a change is one command.

use futures::future::BoxFuture;
use serde_json::json;

use super::files::{mode_bits, Mode, Placement};
use super::spec::{arg, arg_aliases, arg_choices, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::{Change, PathStat, ProbeRequest};
use crate::session::HostSession;
use crate::shell::quote;

pub struct File;

pub static SPEC: Spec = Spec {
    name: "file",
    aliases: &[],
    args: &[
        arg_aliases("path", Kind::Str, &["dest", "name"]),
        arg_choices("state", &["file", "directory", "link", "touch", "absent"]),
        arg("src", Kind::Str),
        arg("owner", Kind::Str),
        arg("group", Kind::Str),
        arg("mode", Kind::Any),
        arg("recurse", Kind::Bool),
        arg("force", Kind::Bool),
    ],
    free_form: None,
    required: &["path"],
    unsupported: &[
        "follow",
        "modification_time",
        "modification_time_format",
        "access_time",
        "access_time_format",
        "attributes",
        "seuser",
        "serole",
        "setype",
        "selevel",
        "unsafe_writes",
    ],
    any_keys: false,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    File,
    Directory,
    Link,
    Touch,
    Absent,
}

struct Desired {
    /// The path and attributes (`dest` is the path).
    at: Placement,
    state: Option<State>,
    src: Option<String>,
    recurse: bool,
    force: bool,
}

fn desired(args: &Args) -> Result<Desired, ArgError> {
    let mut with_dest = args.clone();
    if let Some(path) = args.get("path").cloned() {
        with_dest.0.insert("dest".into(), path);
    }
    let at = Placement::from_args("file", &with_dest)?;
    let state = match args.str("state").as_deref() {
        None => None,
        Some("file") => Some(State::File),
        Some("directory") => Some(State::Directory),
        Some("link") => Some(State::Link),
        Some("touch") => Some(State::Touch),
        Some("absent") => Some(State::Absent),
        Some(other) => {
            return Err(ArgError::Invalid { arg: "state", expected: "file, directory, link, touch or absent", found: other.into() })
        }
    };
    let src = args.str("src");
    if state == Some(State::Link) && src.is_none() {
        return Err(ArgError::Module("file: state=link needs src".into()));
    }
    if let Some(s) = &src {
        crate::names::path(s)?;
    }
    let recurse = args.bool("recurse").unwrap_or(false);
    if recurse && state != Some(State::Directory) {
        return Err(ArgError::Module("file: recurse needs state=directory".into()));
    }
    if recurse && matches!(at.mode, Some(Mode::Symbolic(_))) {
        return Err(ArgError::Module("file: a symbolic mode with recurse is not supported by gafix yet (give the bits, e.g. 0750)".into()));
    }
    Ok(Desired { at, state, src, recurse, force: args.bool("force").unwrap_or(false) })
}

impl Module for File {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(d) = desired(args) {
            if d.state == Some(State::Link) {
                request.links.push(d.at.dest.clone());
            }
            request.paths.push(d.at.dest);
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let d = match desired(args) {
                Ok(d) => d,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            let path = d.at.dest.clone();
            let stat = match super::files::stat_of(host, &path, super::files::Read::Stat, ctx).await {
                Ok(s) => s,
                Err(o) => return o,
            };
            // A link's own target is not in the stat (it follows links): the probe reads it
            // (when the path resolves, the login user could read it); else it is read here.
            let probed = host.facts().paths.get(&path).filter(|s| s.exists).and_then(|s| s.link_target.clone());
            let link_target = if d.state != Some(State::Link) {
                None
            } else if let Some(target) = probed {
                Some(target).filter(|t| !t.is_empty())
            } else {
                match host.run(&format!("readlink -- {}", quote(&path)), ctx.become_, None).await {
                    Ok(out) if out.rc == 0 => Some(out.stdout.trim_end_matches('\n').to_string()),
                    Ok(_) => None,
                    Err(e) => return Outcome::from_transport(e),
                }
            };
            let plan = match plan(&d, &stat, link_target.as_deref()) {
                Ok(p) => p,
                Err(msg) => return Outcome::failed(msg),
            };
            let mut script = plan.script;
            let mut what = plan.what;
            if d.recurse && stat.exists {
                // Whether anything inside differs: one `find`, stopped at the first.
                let check = recurse_check(&d.at, &path);
                if !check.is_empty() {
                    match host.run(&check, ctx.become_, None).await {
                        Ok(out) if !out.stdout.trim().is_empty() => {
                            script.push_str(&recurse_fix(&d.at, &path));
                            what.push("contents".into());
                        }
                        Ok(_) => {}
                        Err(e) => return Outcome::from_transport(e),
                    }
                }
            }
            let result = json!({"path": path, "state": format!("{:?}", d.state.unwrap_or(State::File)).to_lowercase()});
            if script.is_empty() {
                let mut o = Outcome::ok(format!("{path} is as wanted"));
                o.result = result;
                return o;
            }
            if ctx.check_mode {
                let mut o = Outcome::changed(format!("would change {path} ({})", what.join(", ")));
                o.result = result;
                return o;
            }
            let out = match host.run(&format!("set -e\n{script}"), ctx.become_, None).await {
                Ok(out) => out,
                Err(e) => return Outcome::from_transport(e),
            };
            host.mark_changed(Change::Other);
            if out.rc != 0 {
                return Outcome::command_failed(&format!("changing {path}"), &out, None);
            }
            let mut o = Outcome::changed(format!("{path} ({})", what.join(", ")));
            o.result = result;
            o
        })
    }
}

#[derive(Debug)]
struct Plan {
    script: String,
    what: Vec<String>,
}

/// What to run for the desired state, from the path's stat (and a link's target).
fn plan(d: &Desired, stat: &PathStat, link_target: Option<&str>) -> Result<Plan, String> {
    let p = quote(&d.at.dest);
    let mut script = String::new();
    let mut what: Vec<String> = Vec::new();
    let is_dir = stat.kind == "directory";
    let state = d.state.unwrap_or(if is_dir { State::Directory } else { State::File });
    let mut created = false;
    match state {
        State::Absent => {
            if stat.exists || link_target.is_some() {
                script.push_str(&format!("rm -rf -- {p}\n"));
                what.push("removed".into());
            }
            return Ok(Plan { script, what });
        }
        State::File if !stat.exists => return Err(format!("file ({}) is absent, cannot continue", d.at.dest)),
        State::File if is_dir => return Err(format!("{} is a directory, not a file", d.at.dest)),
        State::File => {}
        State::Directory if !stat.exists => {
            // As Ansible: each directory created on the way gets the attributes too.
            let mut attrs = String::new();
            if let Some(m) = &d.at.mode {
                let bits = mode_bits(m, 0o755, true).ok_or("mode cannot be applied")?;
                attrs.push_str(&format!("chmod {bits:04o} \"$x\"; "));
            }
            if let Some(o) = &d.at.owner {
                attrs.push_str(&format!("chown {} \"$x\"; ", quote(o)));
            }
            if let Some(g) = &d.at.group {
                attrs.push_str(&format!("chgrp {} \"$x\"; ", quote(g)));
            }
            script.push_str(&format!(
                "set --; x={p}; while [ ! -e \"$x\" ]; do set -- \"$x\" \"$@\"; x=$(dirname -- \"$x\"); done\n\
                 for x in \"$@\"; do mkdir -- \"$x\"; {attrs}done\n"
            ));
            what.push("created".into());
            return Ok(Plan { script, what });
        }
        State::Directory if !is_dir => return Err(format!("{} exists and is a {}, not a directory", d.at.dest, stat.kind)),
        State::Directory => {}
        State::Touch => {
            script.push_str(&format!("touch -- {p}\n"));
            what.push(if stat.exists { "touched" } else { "created" }.into());
            created = !stat.exists;
        }
        State::Link => {
            let src = d.src.as_deref().unwrap_or_default();
            if link_target != Some(src) {
                if stat.exists && link_target.is_none() && !d.force {
                    return Err(format!("{} exists and is not a link; set force: true to replace it", d.at.dest));
                }
                script.push_str(&format!("ln -sfn -- {} {p}\n", quote(src)));
                what.push("linked".into());
            }
            // A link's own attributes are not managed (chmod follows the link, as in Ansible).
            return Ok(Plan { script, what });
        }
    }
    let current = u32::from_str_radix(&stat.mode, 8).unwrap_or(0);
    let base = if created {
        if state == State::Directory {
            0o755
        } else {
            0o644
        }
    } else {
        current
    };
    if let Some(m) = &d.at.mode {
        let bits = mode_bits(m, base, state == State::Directory).ok_or("mode cannot be applied")?;
        if created || bits != current {
            script.push_str(&format!("chmod {bits:04o} {p}\n"));
            what.push("mode".into());
        }
    }
    if let Some(o) = &d.at.owner {
        if created || &stat.owner != o {
            script.push_str(&format!("chown {} {p}\n", quote(o)));
            what.push("owner".into());
        }
    }
    if let Some(g) = &d.at.group {
        if created || &stat.group != g {
            script.push_str(&format!("chgrp {} {p}\n", quote(g)));
            what.push("group".into());
        }
    }
    Ok(Plan { script, what })
}

/// A `find` that prints the first entry under the directory whose owner, group or mode
/// differs (empty: nothing to do).
fn recurse_check(at: &Placement, path: &str) -> String {
    let mut tests = Vec::new();
    if let Some(o) = &at.owner {
        tests.push(format!("! -user {}", quote(o)));
    }
    if let Some(g) = &at.group {
        tests.push(format!("! -group {}", quote(g)));
    }
    if let Some(Mode::Bits(b)) = &at.mode {
        tests.push(format!("! -perm {b:04o}"));
    }
    if tests.is_empty() {
        return String::new();
    }
    format!("find {} -mindepth 1 ! -type l \\( {} \\) -print -quit", quote(path), tests.join(" -o "))
}

fn recurse_fix(at: &Placement, path: &str) -> String {
    let p = quote(path);
    let mut s = String::new();
    if let Some(o) = &at.owner {
        s.push_str(&format!("chown -R {} {p}\n", quote(o)));
    }
    if let Some(g) = &at.group {
        s.push_str(&format!("chgrp -R {} {p}\n", quote(g)));
    }
    if let Some(m) = &at.mode {
        let mode = match m {
            Mode::Bits(b) => format!("{b:04o}"),
            Mode::Symbolic(s) => s.clone(),
        };
        s.push_str(&format!("chmod -R {} {p}\n", quote(&mode)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: serde_json::Value) -> Desired {
        desired(&Args(v.as_object().unwrap().clone())).unwrap()
    }

    fn stat(kind: &str, mode: &str, owner: &str) -> PathStat {
        PathStat { exists: true, kind: kind.into(), mode: mode.into(), owner: owner.into(), group: owner.into(), ..Default::default() }
    }

    #[test]
    fn a_path_already_right_needs_nothing() {
        let want = d(json!({"path": "/srv/app", "state": "directory", "mode": "0750", "owner": "app"}));
        assert!(plan(&want, &stat("directory", "0750", "app"), None).unwrap().script.is_empty());
        let fix = plan(&want, &stat("directory", "0755", "root"), None).unwrap();
        assert_eq!(fix.what, ["mode", "owner"]);
        let new = plan(&want, &PathStat::default(), None).unwrap();
        assert!(new.script.contains("do mkdir -- \"$x\"; chmod 0750 \"$x\"; chown app \"$x\"; done"), "{}", new.script);
    }

    #[test]
    fn states_as_ansible_has_them() {
        let absent = d(json!({"path": "/tmp/x", "state": "absent"}));
        assert!(plan(&absent, &PathStat::default(), None).unwrap().script.is_empty());
        assert_eq!(plan(&absent, &stat("regular file", "0644", "root"), None).unwrap().script, "rm -rf -- /tmp/x\n");
        let file = d(json!({"path": "/tmp/x", "mode": "0600"}));
        assert!(plan(&file, &PathStat::default(), None).unwrap_err().contains("is absent, cannot continue"));
        let link = d(json!({"path": "/tmp/l", "state": "link", "src": "/etc/hosts"}));
        assert!(plan(&link, &stat("regular file", "0644", "root"), Some("/etc/hosts")).unwrap().script.is_empty());
        assert!(plan(&link, &stat("regular file", "0644", "root"), None).unwrap_err().contains("force: true"));
        assert_eq!(plan(&link, &PathStat::default(), None).unwrap().script, "ln -sfn -- /etc/hosts /tmp/l\n");
        let touch = d(json!({"path": "/tmp/t", "state": "touch"}));
        assert_eq!(
            plan(&touch, &stat("regular file", "0644", "root"), None).unwrap().what,
            ["touched"],
            "touch always changes, as in Ansible"
        );
        assert!(desired(&Args(json!({"path": "/tmp/x", "recurse": true}).as_object().unwrap().clone())).is_err());
        assert!(recurse_check(&d(json!({"path": "/srv", "state": "directory", "recurse": true, "owner": "app"})).at, "/srv")
            .contains("! -user app"));
    }
}
