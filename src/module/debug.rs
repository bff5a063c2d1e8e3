//! `debug`: a message or a variable's value, shown on the controller; nothing runs on the host.

use futures::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;

/// The `debug` module (`msg`, `var`, `verbosity`).
pub struct Debug;

impl Module for Debug {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        if args.get("msg").is_some() && args.get("var").is_some() {
            return Err(ArgError::Module("debug: 'msg' and 'var' are mutually exclusive".into()));
        }
        Ok(())
    }

    fn run<'a>(&'a self, _host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let verbosity = args.get("verbosity").and_then(Json::as_u64).unwrap_or(0);
            if verbosity > u64::from(ctx.verbosity) {
                return Outcome::skipped(format!("verbosity threshold not met (needs -{})", "v".repeat(verbosity as usize)));
            }
            if let Some(var) = args.str("var") {
                // `var` names a variable or an expression, evaluated as Ansible does.
                let value = match ctx.templar.render(&Json::String(format!("{{{{ {var} }}}}")), ctx.vars) {
                    Ok(v) => v,
                    Err(e) => return Outcome::failed(e.to_string()),
                };
                let mut o = Outcome::ok(format!("{var}: {}", shown(&value)));
                o.result = json!({ var: value });
                return o;
            }
            let msg = args.get("msg").cloned().unwrap_or_else(|| json!("Hello world!"));
            let mut o = Outcome::ok(shown(&msg));
            o.result = json!({ "msg": msg });
            o
        })
    }
}

/// A value as a log line: strings as they are, anything else as JSON.
fn shown(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub static SPEC: Spec = Spec {
    name: "debug",
    aliases: &[],
    args: &[arg("msg", Kind::Any), arg("var", Kind::Str), arg("verbosity", Kind::Seconds)],
    free_form: None,
    required: &[],
    unsupported: &[],
    any_keys: false,
};
