//! `set_fact`: variables for the rest of the run on this host, at the precedence of
//! registered results (Ansible's set_fact/register level); nothing runs on the host.

use futures::future::BoxFuture;
use serde_json::Value as Json;

use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;

/// The `set_fact` module: each `name: value` (rendered) becomes a variable of the host.
pub struct SetFact;

impl Module for SetFact {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        for name in args.0.keys().filter(|k| *k != "cacheable") {
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ArgError::Module(format!("set_fact: '{name}' is not a valid variable name")));
            }
        }
        if args.0.keys().all(|k| k == "cacheable") {
            return Err(ArgError::Module("set_fact: no variables to set".into()));
        }
        Ok(())
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, _ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Err(e) = self.check(args) {
                return Outcome::failed(e.to_string());
            }
            // `cacheable` only matters to a fact cache, which gafix does not keep.
            let facts: Vec<(&String, &Json)> = args.0.iter().filter(|(k, _)| *k != "cacheable").collect();
            for (name, value) in &facts {
                host.register(name, (*value).clone());
            }
            let names: Vec<&str> = facts.iter().map(|(k, _)| k.as_str()).collect();
            let mut o = Outcome::ok(format!("set {}", names.join(", ")));
            o.result =
                serde_json::json!({ "ansible_facts": Json::Object(facts.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect()) });
            o
        })
    }
}

pub static SPEC: Spec = Spec {
    name: "set_fact",
    aliases: &[],
    args: &[arg("cacheable", Kind::Bool)],
    free_form: None,
    required: &[],
    unsupported: &[],
    any_keys: true,
};
