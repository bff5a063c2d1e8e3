//! `stat`: what a path is, as `register`ed data (`reboot_required.stat.exists`).

use serde_json::{json, Value as Json};

use futures::future::BoxFuture;

use super::spec::{arg_aliases, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::{PathStat, ProbeRequest};
use crate::names;
use crate::session::HostSession;

pub static SPEC: Spec = Spec {
    name: "stat",
    aliases: &[],
    args: &[
        arg_aliases("path", Kind::Str, &["dest", "name"]),
        arg_aliases("follow", Kind::Bool, &[]),
        arg_aliases("get_checksum", Kind::Bool, &[]),
        arg_aliases("get_mime", Kind::Bool, &[]),
        arg_aliases("get_attributes", Kind::Bool, &[]),
    ],
    free_form: None,
    required: &["path"],
    unsupported: &["checksum_algorithm"],
    any_keys: false,
};

pub fn desired(args: &Args) -> Result<String, ArgError> {
    let path = args.str("path").ok_or(ArgError::Missing { module: "stat", what: "'path'" })?;
    names::path(&path)?;
    Ok(path)
}

/// The `stat` module: the path is read with the facts probe, so a `stat` costs no round
/// trip of its own.
pub struct Stat;

impl Module for Stat {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(p) = desired(args) {
            request.paths.push(p);
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, _ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let path = match desired(args) {
                Ok(p) => p,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            if let Err(e) = host.ensure_facts(&ProbeRequest { paths: vec![path.clone()], ..Default::default() }).await {
                return Outcome::from_transport(e);
            }
            let s = host.facts().paths.get(&path).cloned().unwrap_or_default();
            let mut o = Outcome::ok(if s.exists { format!("{path} exists") } else { format!("{path} does not exist") });
            o.result = result(&path, &s);
            o
        })
    }
}

/// The `stat` result in Ansible's shape.
pub fn result(path: &str, s: &PathStat) -> Json {
    if !s.exists {
        return json!({"stat": {"exists": false}});
    }
    json!({"stat": {
        "exists": true,
        "path": path,
        "isdir": s.kind == "directory",
        "isreg": s.kind.starts_with("regular"),
        "islnk": s.kind == "symbolic link",
        "size": s.size,
        "mode": s.mode,
        "pw_name": s.owner,
        "gr_name": s.group,
        "mtime": s.mtime,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(result("/x", &PathStat::default()), json!({"stat": {"exists": false}}));
        let s = PathStat {
            exists: true,
            kind: "regular empty file".into(),
            size: 0,
            mode: "0644".into(),
            owner: "root".into(),
            group: "root".into(),
            mtime: 5,
            checksum: None,
            content: None,
            link_target: None,
        };
        let r = result("/var/run/reboot-required", &s);
        assert_eq!(r["stat"]["exists"], json!(true));
        assert_eq!(r["stat"]["isreg"], json!(true));
    }
}
