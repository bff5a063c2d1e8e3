//! `group`: a group present (with its gid) or absent, from the groups the facts probe read
//! (`getent group`): a group already right costs no round trip of its own.

use futures::future::BoxFuture;
use serde_json::json;

use super::spec::{arg, arg_choices, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::{Change, Group, ProbeRequest};
use crate::session::HostSession;
use crate::shell::quote;

pub struct GroupModule;

pub static SPEC: Spec = Spec {
    name: "group",
    aliases: &[],
    args: &[
        arg("name", Kind::Str),
        arg_choices("state", &["present", "absent"]),
        arg("gid", Kind::Str),
        arg("system", Kind::Bool),
        arg("non_unique", Kind::Bool),
        arg("force", Kind::Bool),
    ],
    free_form: None,
    required: &["name"],
    unsupported: &["local", "gid_min", "gid_max"],
    any_keys: false,
};

struct Desired {
    name: String,
    present: bool,
    gid: Option<u32>,
    system: bool,
    non_unique: bool,
    force: bool,
}

/// A uid or gid argument: a number (YAML's or a string's).
pub fn id_arg(args: &Args, what: &'static str) -> Result<Option<u32>, ArgError> {
    match args.str(what) {
        None => Ok(None),
        Some(s) => s.trim().parse::<u32>().map(Some).map_err(|_| ArgError::Invalid { arg: what, expected: "a number", found: s }),
    }
}

fn desired(args: &Args) -> Result<Desired, ArgError> {
    let name = args.str("name").ok_or(ArgError::Missing { module: "group", what: "'name'" })?;
    crate::names::account(&name)?;
    Ok(Desired {
        name,
        present: args.str("state").as_deref() != Some("absent"),
        gid: id_arg(args, "gid")?,
        system: args.bool("system").unwrap_or(false),
        non_unique: args.bool("non_unique").unwrap_or(false),
        force: args.bool("force").unwrap_or(false),
    })
}

/// The command that brings the group to the desired state, and what it does; `None` when
/// the group is already right.
fn plan(d: &Desired, current: Option<&Group>) -> Option<(String, &'static str)> {
    let name = quote(&d.name);
    let unique = if d.non_unique { " -o" } else { "" };
    match (current, d.present) {
        (None, true) => {
            let mut cmd = String::from("groupadd");
            if let Some(gid) = d.gid {
                cmd.push_str(&format!(" -g {gid}{unique}"));
            }
            if d.system {
                cmd.push_str(" -r");
            }
            Some((format!("{cmd} -- {name}"), "added"))
        }
        (Some(g), true) => match d.gid {
            Some(gid) if gid != g.gid => Some((format!("groupmod -g {gid}{unique} -- {name}"), "gid changed")),
            _ => None,
        },
        (Some(_), false) => Some((format!("groupdel{} -- {name}", if d.force { " -f" } else { "" }), "removed")),
        (None, false) => None,
    }
}

impl Module for GroupModule {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args).map(drop)
    }

    fn probe(&self, _args: &Args, request: &mut ProbeRequest) {
        request.groups = true;
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let d = match desired(args) {
                Ok(d) => d,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            if let Err(e) = host.ensure_facts(&ProbeRequest { groups: true, ..Default::default() }).await {
                return Outcome::from_transport(e);
            }
            let current = host.facts().groups.as_ref().and_then(|gs| gs.iter().find(|g| g.name == d.name)).cloned();
            let result = |gid: Option<u32>| json!({"name": d.name, "state": if d.present { "present" } else { "absent" }, "system": d.system, "gid": gid});
            let Some((command, what)) = plan(&d, current.as_ref()) else {
                let mut o = Outcome::ok(format!("group {} is as wanted", d.name));
                o.result = result(current.map(|g| g.gid));
                return o;
            };
            if ctx.check_mode {
                let mut o = Outcome::changed(format!("group {} would be {what}", d.name));
                o.result = result(d.gid.or(current.map(|g| g.gid)));
                return o;
            }
            let out = match host.run(&command, ctx.become_, None).await {
                Ok(out) => out,
                Err(e) => return Outcome::from_transport(e),
            };
            host.mark_changed(Change::Other);
            if out.rc != 0 {
                return Outcome::command_failed(&command, &out, None);
            }
            let mut o = Outcome::changed(format!("group {} {what}", d.name));
            o.result = result(d.gid.or(current.map(|g| g.gid)));
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

    #[test]
    fn commands_only_for_what_differs() {
        let ops = Group { name: "ops".into(), gid: 1001, members: vec![] };
        assert_eq!(plan(&d(json!({"name": "ops"})), Some(&ops)), None);
        assert_eq!(plan(&d(json!({"name": "ops", "gid": 1001})), Some(&ops)), None);
        assert_eq!(plan(&d(json!({"name": "ops", "gid": "2000"})), Some(&ops)).unwrap().0, "groupmod -g 2000 -- ops");
        assert_eq!(plan(&d(json!({"name": "ops", "gid": 900, "system": true})), None).unwrap().0, "groupadd -g 900 -r -- ops");
        assert_eq!(plan(&d(json!({"name": "ops", "state": "absent"})), Some(&ops)).unwrap().0, "groupdel -- ops");
        assert_eq!(plan(&d(json!({"name": "ops", "state": "absent"})), None), None);
        assert!(desired(&Args(json!({"name": "a;b"}).as_object().unwrap().clone())).is_err());
        assert!(desired(&Args(json!({"name": "a", "gid": "x"}).as_object().unwrap().clone())).is_err());
    }
}
