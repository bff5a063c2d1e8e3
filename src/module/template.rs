//! `template`: a Jinja file from the controller (the role's `templates/`, then the
//! playbook's), rendered with the task's variables as Ansible's template module renders it
//! (blocks trimmed, the trailing newline kept), put on the host like `copy`.

use futures::future::BoxFuture;
use serde_json::Value as Json;

use super::files::Placement;
use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::ProbeRequest;
use crate::session::HostSession;

pub struct Template;

pub static SPEC: Spec = Spec {
    name: "template",
    aliases: &[],
    args: &[
        arg("src", Kind::Str),
        arg("dest", Kind::Str),
        arg("owner", Kind::Str),
        arg("group", Kind::Str),
        arg("mode", Kind::Any),
        arg("backup", Kind::Bool),
        arg("validate", Kind::Str),
        arg("force", Kind::Bool),
    ],
    free_form: None,
    required: &["src", "dest"],
    unsupported: &[
        "newline_sequence",
        "trim_blocks",
        "lstrip_blocks",
        "block_start_string",
        "block_end_string",
        "variable_start_string",
        "variable_end_string",
        "comment_start_string",
        "comment_end_string",
        "output_encoding",
        "follow",
        "seuser",
        "serole",
        "setype",
        "selevel",
        "attributes",
        "unsafe_writes",
    ],
    any_keys: false,
};

impl Module for Template {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        Placement::from_args("template", args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(p) = Placement::from_args("template", args) {
            p.probe(request);
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let placement = match Placement::from_args("template", args) {
                Ok(p) => p,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            let src = args.str("src").unwrap_or_default();
            let path = match find_source(&src, "templates", ctx.controller_dirs) {
                Ok(p) => p,
                Err(e) => return Outcome::failed(e),
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => return Outcome::failed(format!("cannot read the template {}: {e}", path.display())),
            };
            // Variables whose values are templates, used by the file, rendered first.
            let mut vars = ctx.vars.clone();
            vars.insert("template_path".into(), Json::String(path.display().to_string()));
            vars.insert("template_fullpath".into(), Json::String(path.display().to_string()));
            vars.insert("template_destpath".into(), Json::String(placement.dest.clone()));
            vars.entry("ansible_managed").or_insert_with(|| Json::String("Ansible managed".into()));
            if let Err(e) = ctx.templar.resolve_used(&mut vars, std::slice::from_ref(&text)) {
                return Outcome::failed(e.to_string());
            }
            let content = match ctx.templar.render_file(&path.display().to_string(), &text, &vars) {
                Ok(c) => c,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            // A directory as dest takes the source's own name, as Ansible's (`app.conf.j2`).
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            super::files::put(host, &placement, &content, name.as_deref(), ctx).await
        })
    }
}

/// A task's `src` on the controller: absolute as given, else in each directory's `sub/`,
/// then in the directory itself (Ansible's search order for role and playbook files).
pub fn find_source(src: &str, sub: &str, dirs: &[std::path::PathBuf]) -> Result<std::path::PathBuf, String> {
    find_on_controller(src, sub, dirs, std::path::Path::is_file)
}

/// A file or directory (`kind` tells which) on the controller, found as [`find_source`] finds
/// a file.
pub fn find_on_controller(
    name: &str,
    sub: &str,
    dirs: &[std::path::PathBuf],
    kind: fn(&std::path::Path) -> bool,
) -> Result<std::path::PathBuf, String> {
    let given = std::path::Path::new(name);
    if given.is_absolute() {
        return if kind(given) { Ok(given.to_path_buf()) } else { Err(format!("could not find {name} on the controller")) };
    }
    let candidates: Vec<std::path::PathBuf> = dirs.iter().flat_map(|d| [d.join(sub).join(name), d.join(name)]).collect();
    candidates.iter().find(|c| kind(c)).cloned().ok_or_else(|| {
        format!(
            "could not find or access '{name}' on the controller (searched {})",
            candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}
