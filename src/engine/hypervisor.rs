//! `--fix-hypervisor`: the agent channel added where the VM is defined, before the agent role
//! runs (without the channel the agent's unit cannot start). The change needs a fresh start
//! of the VM, done only with `--allow-restart`; otherwise the host fails "restart required".

use std::time::Duration;

use crate::hypervisor::{Cause, PING_TIMEOUT};
use crate::module::Outcome;
use crate::session::HostSession;

use super::Options;

/// How long the guest may take to shut down (a TCG VM under load is slow): it is never forced.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(240);
/// How long the VM may take to answer SSH again after its start.
const BOOT_LIMIT: Duration = Duration::from_secs(300);

/// The step's outcome, or `None` when the hypervisor needs nothing (the channel is there).
pub(super) async fn fix_channel(host: &mut HostSession, opts: &Options) -> Option<Outcome> {
    let access = host.hypervisor()?.clone();
    let diagnosis = access.ping(PING_TIMEOUT).await.err()?;
    let via = diagnosis.via;
    if !matches!(diagnosis.cause, Cause::NotConfigured | Cause::Pending) {
        // Reachable, with a channel: what is left is the guest's side, which the role fixes,
        // or a cause the gate reports.
        return None;
    }
    if opts.check {
        let what = if diagnosis.cause == Cause::Pending {
            "restart the VM to apply its pending agent channel"
        } else {
            "enable the agent channel and restart the VM"
        };
        let how = if opts.allow_restart { "" } else { " (needs --allow-restart)" };
        return Some(Outcome::changed(format!("would {what} via {via}{how}")));
    }
    if diagnosis.cause == Cause::NotConfigured {
        if let Err(d) = access.enable().await {
            return Some(Outcome::failed(format!("cannot enable the agent channel: {} via {via}. Remedy: {}", d.detail, d.remedy)));
        }
    }
    if !opts.allow_restart {
        return Some(Outcome::failed(format!(
            "restart required: the agent channel is enabled at the hypervisor (via {via}) and takes effect at the VM's next fresh start; \
             run again with --allow-restart, or stop and start the VM (a reboot from inside the guest does not apply it)"
        )));
    }
    host.disconnect().await;
    host.mark_all_stale();
    if let Err(d) = access.restart(SHUTDOWN_LIMIT).await {
        return Some(Outcome::failed(format!("the fresh start failed: {} via {via}. Remedy: {}", d.detail, d.remedy)));
    }
    if let Err(e) = wait_for_ssh(host).await {
        return Some(Outcome::failed(format!(
            "the VM was restarted via {via} but did not answer SSH within {} s: {e}",
            BOOT_LIMIT.as_secs()
        )));
    }
    Some(Outcome::changed(format!("enabled the agent channel and restarted the VM via {via} (a fresh start)")))
}

async fn wait_for_ssh(host: &mut HostSession) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + BOOT_LIMIT;
    let mut last = String::from("no answer");
    while tokio::time::Instant::now() < deadline {
        match host.reconnect(host.timeouts().connect).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(last)
}
