//! `wait_for`: until a port is open or closed, or a file is there (with a line matching
//! `search_regex`) or gone, on the target, within `timeout`; or a plain wait. One script on
//! the host does the polling, so the wait costs one round trip. A port on the host itself
//! (`127.0.0.1`, `localhost`, `0.0.0.0`, `::1`) is looked up among its listening sockets in
//! /proc (those a connection to the loopback address would reach: on loopback or on any
//! address); another host is tried with bash's /dev/tcp.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;

use super::spec::{arg, arg_choices, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;
use crate::shell::quote;

pub struct WaitFor;

pub static SPEC: Spec = Spec {
    name: "wait_for",
    aliases: &[],
    args: &[
        arg("host", Kind::Str),
        arg("port", Kind::Str),
        arg("path", Kind::Str),
        arg_choices("state", &["started", "present", "stopped", "absent"]),
        arg("timeout", Kind::Seconds),
        arg("delay", Kind::Seconds),
        arg("sleep", Kind::Seconds),
        arg("connect_timeout", Kind::Seconds),
        arg("search_regex", Kind::Str),
        arg("msg", Kind::Str),
    ],
    free_form: None,
    required: &[],
    unsupported: &["exclude_hosts", "active_connection_states"],
    any_keys: false,
};

#[derive(Debug, PartialEq)]
enum Target {
    Port {
        host: String,
        port: u16,
    },
    Path {
        path: String,
        regex: Option<String>,
    },
    /// Neither: wait `timeout` seconds.
    Nothing,
}

#[derive(Debug)]
struct Wait {
    target: Target,
    /// Wait until the port opens / the file appears (else until it closes / goes).
    appear: bool,
    timeout: u64,
    delay: u64,
    sleep: u64,
    connect_timeout: u64,
}

fn wait(args: &Args) -> Result<Wait, ArgError> {
    let target = match (args.str("port"), args.str("path")) {
        (Some(_), Some(_)) => return Err(ArgError::Module("wait_for: port and path are mutually exclusive".into())),
        (Some(p), None) => {
            let port = p.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or(ArgError::Invalid {
                arg: "port",
                expected: "a port number",
                found: p,
            })?;
            let host = args.str("host").unwrap_or_else(|| "127.0.0.1".into());
            if host.is_empty() || host.starts_with('-') || !host.chars().all(|c| c.is_ascii_alphanumeric() || ".:-_".contains(c)) {
                return Err(ArgError::Invalid { arg: "host", expected: "a host name or address", found: host });
            }
            Target::Port { host, port }
        }
        (None, Some(path)) => {
            crate::names::path(&path)?;
            Target::Path { path, regex: args.str("search_regex") }
        }
        (None, None) => Target::Nothing,
    };
    let appear = !matches!(args.str("state").as_deref(), Some("stopped" | "absent"));
    if !appear && matches!(target, Target::Path { regex: Some(_), .. }) {
        return Err(ArgError::Module("wait_for: search_regex goes with state present or started".into()));
    }
    let n = |what: &str, default: u64| args.int(what).map(|n| n.max(0) as u64).unwrap_or(default);
    Ok(Wait {
        target,
        appear,
        timeout: n("timeout", 300),
        delay: n("delay", 0),
        sleep: n("sleep", 1).max(1),
        connect_timeout: n("connect_timeout", 5).max(1),
    })
}

/// The check, as a shell condition; every value in it is quoted.
fn condition(t: &Target, connect_timeout: u64) -> String {
    match t {
        Target::Port { host, port } if matches!(host.as_str(), "127.0.0.1" | "localhost" | "0.0.0.0" | "::1" | "::") => {
            format!("listening {:04X}", port)
        }
        Target::Port { host, port } => {
            format!("timeout {connect_timeout} bash -c {} 2>/dev/null", quote(&format!("exec 3<>/dev/tcp/{host}/{port}")))
        }
        Target::Path { path, regex: None } => format!("[ -e {} ]", quote(path)),
        Target::Path { path, regex: Some(re) } => format!("[ -f {p} ] && grep -Eq -- {} {p}", quote(re), p = quote(path)),
        Target::Nothing => "false".into(),
    }
}

/// The polling script: exit 0 once the condition is as wanted, 3 at the deadline.
fn script(w: &Wait) -> String {
    let check = condition(&w.target, w.connect_timeout);
    let wanted = if w.appear { check } else { format!("! {{ {check}; }}") };
    format!(
        "listening() {{ for f in /proc/net/tcp /proc/net/tcp6; do [ -r \"$f\" ] || continue; \
         while read -r _ local _ st _; do [ \"$st\" = 0A ] || continue; case $local in \
         0100007F:\"$1\"|00000000:\"$1\"|00000000000000000000000001000000:\"$1\"|00000000000000000000000000000000:\"$1\") return 0;; esac; \
         done < \"$f\"; done; return 1; }}\n\
         sleep {delay}\nend=$(( $(date +%s) + {timeout} ))\n\
         while :; do\n  if {wanted}; then exit 0; fi\n  [ \"$(date +%s)\" -ge \"$end\" ] && exit 3\n  sleep {sleep}\ndone\n",
        delay = w.delay,
        timeout = w.timeout,
        sleep = w.sleep,
    )
}

fn timeout_message(w: &Wait) -> String {
    match (&w.target, w.appear) {
        (Target::Port { host, port }, true) => format!("Timeout when waiting for {host}:{port}"),
        (Target::Port { host, port }, false) => format!("Timeout when waiting for {host}:{port} to stop."),
        (Target::Path { path, regex: Some(re) }, _) => format!("Timeout when waiting for search string {re} in {path}"),
        (Target::Path { path, .. }, true) => format!("Timeout when waiting for file {path}"),
        (Target::Path { path, .. }, false) => format!("Timeout when waiting for {path} to be absent."),
        (Target::Nothing, _) => String::new(),
    }
}

impl Module for WaitFor {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        wait(args).map(drop)
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let w = match wait(args) {
                Ok(w) => w,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            let started = std::time::Instant::now();
            if w.target == Target::Nothing {
                tokio::time::sleep(Duration::from_secs(w.delay + w.timeout)).await;
            } else {
                let limit = Duration::from_secs(w.delay + w.timeout + w.connect_timeout + 30);
                match host.run_within(&script(&w), ctx.become_, None, limit).await {
                    Ok(out) if out.rc == 0 => {}
                    Ok(out) if out.rc == 3 => {
                        let mut o = Outcome::failed(args.str("msg").unwrap_or_else(|| timeout_message(&w)));
                        o.result = json!({"elapsed": started.elapsed().as_secs()});
                        return o;
                    }
                    Ok(out) => return Outcome::command_failed("wait_for", &out, None),
                    Err(e) => return Outcome::from_transport(e),
                }
            }
            let elapsed = started.elapsed().as_secs();
            let mut o = Outcome::ok(format!("waited {elapsed} s"));
            o.result = json!({"elapsed": elapsed, "state": if w.appear { "started" } else { "stopped" }});
            match &w.target {
                Target::Port { port, .. } => o.result["port"] = json!(port),
                Target::Path { path, .. } => o.result["path"] = json!(path),
                Target::Nothing => {}
            }
            o
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_script(w: &Wait) -> i32 {
        std::process::Command::new("sh").arg("-c").arg(script(w)).status().unwrap().code().unwrap()
    }

    #[test]
    fn the_script_waits_for_files_and_ports_on_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ready file");
        let w = |target, appear| Wait { target, appear, timeout: 1, delay: 0, sleep: 1, connect_timeout: 1 };
        let path = f.display().to_string();
        assert_eq!(run_script(&w(Target::Path { path: path.clone(), regex: None }, true)), 3, "not there: times out");
        assert_eq!(run_script(&w(Target::Path { path: path.clone(), regex: None }, false)), 0);
        std::fs::write(&f, "state: up\n").unwrap();
        assert_eq!(run_script(&w(Target::Path { path: path.clone(), regex: None }, true)), 0);
        assert_eq!(run_script(&w(Target::Path { path: path.clone(), regex: Some("^state: (up|ok)$".into()) }, true)), 0);
        assert_eq!(run_script(&w(Target::Path { path, regex: Some("down".into()) }, true)), 3);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(run_script(&w(Target::Port { host: "127.0.0.1".into(), port }, true)), 0, "a listening socket in /proc");
        assert_eq!(run_script(&w(Target::Port { host: "127.0.0.1".into(), port }, false)), 3);
        drop(listener);
        assert_eq!(run_script(&w(Target::Port { host: "127.0.0.1".into(), port }, false)), 0, "closed");
    }

    #[test]
    fn arguments() {
        let a = |v: serde_json::Value| wait(&Args(v.as_object().unwrap().clone()));
        assert!(a(json!({"port": 22, "path": "/x"})).is_err());
        assert!(a(json!({"port": "ssh"})).is_err());
        assert!(a(json!({"port": 22, "host": "a;b"})).is_err());
        let w = a(json!({"port": 22, "host": "10.0.0.5", "state": "stopped"})).unwrap();
        assert!(!w.appear);
        assert!(condition(&w.target, 5).contains("/dev/tcp/10.0.0.5/22"));
        assert_eq!(timeout_message(&w), "Timeout when waiting for 10.0.0.5:22 to stop.");
    }
}
