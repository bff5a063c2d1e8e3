//! `reboot`: Ansible's arguments; the boot id proves that the host really rebooted.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::json;

use super::spec::{arg, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;
use crate::transport::TransportError;

/// The `reboot` module: reboots, waits for a new boot id, runs `test_command`.
pub struct Reboot;

impl Module for Reboot {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args).map(drop)
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match desired(args) {
                Ok(d) => run(host, d, ctx).await,
                Err(e) => Outcome::failed(e.to_string()),
            }
        })
    }
}

async fn run(host: &mut HostSession, d: Desired, ctx: &RunCtx<'_>) -> Outcome {
    if ctx.check_mode {
        return Outcome::changed("would reboot");
    }
    let started = Instant::now();
    let before = match host.run(&d.boot_time_command, None, None).await {
        Ok(out) => out,
        Err(e) => return Outcome::from_transport(e),
    };
    if before.rc != 0 || before.stdout.trim().is_empty() {
        return Outcome::command_failed("boot_time_command", &before, None);
    }
    let boot_before = before.stdout.trim().to_string();
    let out = match host.run(&reboot_command(&d), ctx.become_, None).await {
        Ok(out) => out,
        Err(e) => return Outcome::from_transport(e),
    };
    if out.rc != 0 {
        return Outcome::command_failed("the reboot command", &out, None);
    }
    // The master connection dies with the host; drop it rather than wait for it to notice.
    host.disconnect().await;
    host.mark_all_stale();
    let deadline = started + Duration::from_secs(d.reboot_timeout);
    let mut delay = Duration::from_secs(1);
    let mut last_error = String::from("the host did not come back");
    tokio::time::sleep(Duration::from_secs(d.pre_reboot_delay.max(1) + 1)).await;
    loop {
        if Instant::now() >= deadline {
            return Outcome::failed(format!("the host did not come back within reboot_timeout ({} s): {last_error}", d.reboot_timeout));
        }
        match new_boot(host, &d, &boot_before).await {
            Ok(()) => break,
            Err(NotYet::HostKey(m)) => return Outcome::failed(m),
            Err(NotYet::Waiting(m)) => last_error = m,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(delay.min(left)).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    if d.post_reboot_delay > 0 {
        tokio::time::sleep(Duration::from_secs(d.post_reboot_delay)).await;
    }
    let test = match host.run(&d.test_command, None, None).await {
        Ok(out) => out,
        Err(e) => return Outcome::from_transport(e),
    };
    if test.rc != 0 {
        return Outcome::command_failed("test_command after the reboot", &test, None);
    }
    let mut o = Outcome::changed(format!("rebooted in {} s (new boot confirmed)", started.elapsed().as_secs()));
    o.result = json!({"rebooted": true, "elapsed": started.elapsed().as_secs()});
    o
}

enum NotYet {
    HostKey(String),
    Waiting(String),
}

/// One reconnection attempt: a new connection, and a boot id that differs from before.
async fn new_boot(host: &mut HostSession, d: &Desired, boot_before: &str) -> Result<(), NotYet> {
    match host.reconnect(Duration::from_secs(d.connect_timeout.max(1))).await {
        Ok(()) => {}
        Err(TransportError::HostKeyChanged(m)) => return Err(NotYet::HostKey(format!("after the reboot: {m}"))),
        Err(e) => return Err(NotYet::Waiting(e.to_string())),
    }
    match host.run_within(&d.boot_time_command, None, None, host.timeouts().command.min(Duration::from_secs(30))).await {
        Ok(out) if out.rc == 0 && !out.stdout.trim().is_empty() && out.stdout.trim() != boot_before => Ok(()),
        Ok(_) => {
            // Still the old boot (the reboot has not happened yet, or the host only dropped off).
            host.disconnect().await;
            Err(NotYet::Waiting("the host answered with the same boot id: it has not rebooted yet".into()))
        }
        Err(e) => {
            host.disconnect().await;
            Err(NotYet::Waiting(e.to_string()))
        }
    }
}

pub static SPEC: Spec = Spec {
    name: "reboot",
    aliases: &[],
    args: &[
        arg("reboot_timeout", Kind::Seconds),
        arg("connect_timeout", Kind::Seconds),
        arg("pre_reboot_delay", Kind::Seconds),
        arg("post_reboot_delay", Kind::Seconds),
        arg("test_command", Kind::Str),
        arg("msg", Kind::Str),
        arg("boot_time_command", Kind::Str),
        arg("reboot_command", Kind::Str),
        arg("search_paths", Kind::List),
    ],
    free_form: None,
    required: &[],
    unsupported: &[],
    any_keys: false,
};

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub reboot_timeout: u64,
    pub connect_timeout: u64,
    pub pre_reboot_delay: u64,
    pub post_reboot_delay: u64,
    pub test_command: String,
    pub msg: String,
    pub boot_time_command: String,
    pub reboot_command: Option<String>,
}

pub fn desired(args: &Args) -> Result<Desired, ArgError> {
    let secs = |name: &'static str, default: i64| -> Result<u64, ArgError> {
        let v = args.int(name).unwrap_or(default);
        u64::try_from(v).map_err(|_| ArgError::Invalid { arg: name, expected: "a number of seconds", found: v.to_string() })
    };
    Ok(Desired {
        reboot_timeout: secs("reboot_timeout", 600)?,
        connect_timeout: secs("connect_timeout", 10)?,
        pre_reboot_delay: secs("pre_reboot_delay", 0)?,
        post_reboot_delay: secs("post_reboot_delay", 0)?,
        test_command: args.str("test_command").unwrap_or_else(|| "whoami".into()),
        msg: args.str("msg").unwrap_or_else(|| "Reboot initiated by gafix".into()),
        boot_time_command: args.str("boot_time_command").unwrap_or_else(|| "cat /proc/sys/kernel/random/boot_id".into()),
        reboot_command: args.str("reboot_command"),
    })
}

/// The command that schedules the reboot. `shutdown -r` returns at once; the delay (Ansible
/// rounds pre_reboot_delay to minutes for shutdown, we sleep instead) happens on the host so
/// our connection can end cleanly first.
pub fn reboot_command(d: &Desired) -> String {
    use crate::shell::quote;
    let cmd = d.reboot_command.clone().unwrap_or_else(|| format!("shutdown -r now {}", quote(&d.msg)));
    format!("nohup sh -c {} >/dev/null 2>&1 &", quote(&format!("sleep {}; {cmd}", d.pre_reboot_delay.max(1))))
}
