//! `pause`: wait some seconds (or minutes), once for all hosts, as Ansible's pause does.
//! A `prompt` (or a pause with no duration, which waits for Enter) needs a terminal: gafix
//! runs unattended in CI, so without one it is an error, never a hang.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::spec::{arg, ArgError, Args, Kind, Spec, MAX_SECONDS};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;

pub struct Pause;

pub static SPEC: Spec = Spec {
    name: "pause",
    aliases: &[],
    args: &[arg("seconds", Kind::Any), arg("minutes", Kind::Any), arg("prompt", Kind::Str), arg("echo", Kind::Bool)],
    free_form: None,
    required: &[],
    unsupported: &[],
    any_keys: false,
};

/// How long to pause; `None` waits for Enter.
fn duration(args: &Args) -> Result<Option<Duration>, ArgError> {
    let number = |what: &'static str, v: &Json| -> Result<f64, ArgError> {
        let n = match v {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        n.filter(|n| *n >= 0.0 && *n <= MAX_SECONDS as f64).ok_or_else(|| ArgError::Invalid {
            arg: what,
            expected: "a number",
            found: crate::vars::text(v),
        })
    };
    match (args.get("seconds"), args.get("minutes")) {
        (Some(_), Some(_)) => Err(ArgError::Module("pause: seconds and minutes are mutually exclusive".into())),
        (Some(s), None) => Ok(Some(Duration::from_secs_f64(number("seconds", s)?))),
        (None, Some(m)) => Ok(Some(Duration::from_secs_f64(number("minutes", m)? * 60.0))),
        (None, None) => Ok(None),
    }
}

impl Module for Pause {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        duration(args).map(drop)
    }

    fn bypasses_host_loop(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, _host: &'a mut HostSession, args: &'a Args, _ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let wait = match duration(args) {
                Ok(d) => d,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            let started = Instant::now();
            let prompt = args.str("prompt");
            let mut input = String::new();
            if prompt.is_some() || wait.is_none() {
                if !std::io::stdin().is_terminal() {
                    return Outcome::failed(
                        "pause: a prompt needs a terminal, and gafix's stdin is not one (give `seconds` or `minutes` to run unattended)",
                    );
                }
                let text = prompt.unwrap_or_else(|| "Press enter to continue, Ctrl+C to interrupt".into());
                eprint!("[pause] {text}: ");
                let read = tokio::task::spawn_blocking(|| {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).map(|_| line)
                });
                let line = match wait {
                    Some(d) => tokio::time::timeout(d, read).await.ok(),
                    None => Some(read.await),
                };
                input = line.and_then(|r| r.ok()).and_then(|r| r.ok()).unwrap_or_default().trim_end_matches('\n').to_string();
            } else if let Some(d) = wait {
                tokio::time::sleep(d).await;
            }
            let delta = started.elapsed().as_secs_f64();
            let mut o = Outcome::ok(format!("Paused for {:.2} seconds", delta));
            o.result = json!({"delta": delta.round() as u64, "user_input": input, "echo": args.bool("echo").unwrap_or(true)});
            o
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |v: serde_json::Value| duration(&Args(v.as_object().unwrap().clone()));
        assert_eq!(d(json!({"seconds": 2})).unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(d(json!({"minutes": "0.5"})).unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(d(json!({"prompt": "go?"})).unwrap(), None);
        assert!(d(json!({"seconds": 1, "minutes": 1})).is_err());
        assert!(d(json!({"seconds": "soon"})).is_err());
    }
}
