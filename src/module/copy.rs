//! `copy`: `content`, or a file from the controller (the role's `files/`, then the
//! playbook's), put on the host with its attributes; compared by checksum first.

use futures::future::BoxFuture;

use super::files::Placement;
use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::ProbeRequest;
use crate::session::HostSession;

pub struct Copy;

pub static SPEC: Spec = Spec {
    name: "copy",
    aliases: &[],
    args: &[
        arg("src", Kind::Str),
        arg("content", Kind::Any),
        arg("dest", Kind::Str),
        arg("owner", Kind::Str),
        arg("group", Kind::Str),
        arg("mode", Kind::Any),
        arg("backup", Kind::Bool),
        arg("validate", Kind::Str),
        arg("force", Kind::Bool),
    ],
    free_form: None,
    required: &["dest"],
    unsupported: &[
        "remote_src",
        "directory_mode",
        "local_follow",
        "follow",
        "decrypt",
        "checksum",
        "seuser",
        "serole",
        "setype",
        "selevel",
        "attributes",
        "unsafe_writes",
    ],
    any_keys: false,
};

impl Module for Copy {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        match (args.get("src").is_some(), args.get("content").is_some()) {
            (true, true) => return Err(ArgError::Module("copy: src and content are mutually exclusive".into())),
            (false, false) => return Err(ArgError::Module("copy: one of src or content is required".into())),
            _ => {}
        }
        if args.str("src").is_some_and(|s| s.ends_with('/')) {
            return Err(ArgError::Module("copy: a directory as src is not supported by gafix yet".into()));
        }
        Placement::from_args("copy", args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(p) = Placement::from_args("copy", args) {
            p.probe(request);
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Err(e) = self.check(args) {
                return Outcome::failed(e.to_string());
            }
            let placement = match Placement::from_args("copy", args) {
                Ok(p) => p,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            let (content, name) = match (args.get("content"), args.str("src")) {
                (Some(c), _) => (crate::vars::text(c), None),
                (None, Some(src)) => {
                    let path = match super::template::find_source(&src, "files", ctx.controller_dirs) {
                        Ok(p) => p,
                        Err(e) => return Outcome::failed(e),
                    };
                    if path.is_dir() {
                        return Outcome::failed("copy: a directory as src is not supported by gafix yet");
                    }
                    match std::fs::read(&path).map(String::from_utf8) {
                        Ok(Ok(text)) => (text, path.file_name().map(|n| n.to_string_lossy().into_owned())),
                        Ok(Err(_)) => {
                            return Outcome::failed(format!(
                                "copy: {} is not UTF-8 text; binary files are not supported by gafix yet",
                                path.display()
                            ))
                        }
                        Err(e) => return Outcome::failed(format!("cannot read {}: {e}", path.display())),
                    }
                }
                (None, None) => return Outcome::failed("copy: one of src or content is required"),
            };
            super::files::put(host, &placement, &content, name.as_deref(), ctx).await
        })
    }
}
