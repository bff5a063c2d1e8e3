//! `assert`: conditions checked on the controller, nothing runs on the host.

use futures::future::BoxFuture;
use serde_json::json;

use super::spec::{arg, arg_aliases, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;

/// The `assert` module: conditions evaluated on the controller with the task's variables.
pub struct Assert;

impl Module for Assert {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args).map(drop)
    }

    fn run<'a>(&'a self, _host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let d = match desired(args) {
                Ok(d) => d,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            for cond in &d.that {
                match ctx.templar.condition(cond, ctx.vars) {
                    Ok(true) => {}
                    Ok(false) => {
                        let mut o = Outcome::failed(d.fail_msg.clone().unwrap_or_else(|| format!("Assertion failed: {cond}")));
                        o.result = json!({"assertion": cond, "evaluated_to": false});
                        return o;
                    }
                    Err(e) => return Outcome::failed(e.to_string()),
                }
            }
            Outcome::ok(d.success_msg.unwrap_or_else(|| "All assertions passed".into()))
        })
    }
}

pub static SPEC: Spec = Spec {
    name: "assert",
    aliases: &[],
    args: &[arg("that", Kind::List), arg_aliases("fail_msg", Kind::Str, &["msg"]), arg("success_msg", Kind::Str), arg("quiet", Kind::Bool)],
    free_form: None,
    required: &["that"],
    unsupported: &[],
    any_keys: false,
};

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub that: Vec<String>,
    pub fail_msg: Option<String>,
    pub success_msg: Option<String>,
}

pub fn desired(args: &Args) -> Result<Desired, ArgError> {
    // `that` items are expressions: a comma inside one must not split it.
    let that = match args.get("that") {
        Some(serde_json::Value::Array(items)) => {
            items.iter().map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string())).collect()
        }
        Some(v) => vec![v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())],
        None => return Err(ArgError::Missing { module: "assert", what: "'that'" }),
    };
    Ok(Desired { that, fail_msg: args.str("fail_msg"), success_msg: args.str("success_msg") })
}
