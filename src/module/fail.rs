//! `fail`: fails the host with a message; nothing runs on the host.

use futures::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;

/// The `fail` module (`msg`).
pub struct Fail;

impl Module for Fail {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, _args: &Args) -> Result<(), ArgError> {
        Ok(())
    }

    fn run<'a>(&'a self, _host: &'a mut HostSession, args: &'a Args, _ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let msg = match args.get("msg") {
                Some(Json::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "Failed as requested from task".into(),
            };
            let mut o = Outcome::failed(msg.clone());
            o.result = json!({ "msg": msg });
            o
        })
    }
}

pub static SPEC: Spec =
    Spec { name: "fail", aliases: &[], args: &[arg("msg", Kind::Any)], free_form: None, required: &[], unsupported: &[], any_keys: false };
