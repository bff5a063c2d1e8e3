//! `wait_for_connection`: until the host answers again (after a reboot, a network change),
//! connecting anew each `sleep` seconds, within `timeout`.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::json;

use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;

pub struct WaitForConnection;

pub static SPEC: Spec = Spec {
    name: "wait_for_connection",
    aliases: &[],
    args: &[arg("delay", Kind::Seconds), arg("sleep", Kind::Seconds), arg("timeout", Kind::Seconds), arg("connect_timeout", Kind::Seconds)],
    free_form: None,
    required: &[],
    unsupported: &[],
    any_keys: false,
};

fn secs(args: &Args, what: &str, default: u64) -> Duration {
    Duration::from_secs(args.int(what).map(|n| n.max(0) as u64).unwrap_or(default))
}

impl Module for WaitForConnection {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, _args: &Args) -> Result<(), ArgError> {
        Ok(())
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, _ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (delay, sleep, timeout) =
                (secs(args, "delay", 0), secs(args, "sleep", 1).max(Duration::from_secs(1)), secs(args, "timeout", 600));
            let connect_timeout = secs(args, "connect_timeout", 5).max(Duration::from_secs(1));
            let started = Instant::now();
            tokio::time::sleep(delay).await;
            loop {
                let last_error = match host.run_within("true", None, None, connect_timeout).await {
                    Ok(out) if out.rc == 0 => {
                        let elapsed = started.elapsed().as_secs();
                        let mut o = Outcome::ok(format!("the host answered after {elapsed} s"));
                        o.result = json!({"elapsed": elapsed});
                        return o;
                    }
                    Ok(out) => format!("`true` exited with code {}", out.rc),
                    Err(e) => e.to_string(),
                };
                if started.elapsed() + sleep >= timeout {
                    let mut o =
                        Outcome::failed(format!("timed out waiting for the connection after {} s: {last_error}", timeout.as_secs()));
                    o.result = json!({"elapsed": started.elapsed().as_secs()});
                    return o;
                }
                tokio::time::sleep(sleep).await;
                // A master that died with the old boot is replaced.
                let _ = host.reconnect(connect_timeout).await;
            }
        })
    }
}
