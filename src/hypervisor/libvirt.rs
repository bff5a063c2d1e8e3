//! libvirt's view, through `virsh` (its own client: `qemu+ssh://` URIs work through its own
//! SSH, and gafix links no C library). The agent is asked with `qemu-agent-command`, which
//! libvirt precedes with its own `guest-sync`; the domain's XML says whether the channel is
//! configured and whether the guest has opened it.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{remedy, Cause, Diagnosis, Via, CHANNEL};

/// A libvirt domain and the URI of the libvirtd that runs it.
#[derive(Clone, Debug)]
pub struct Domain {
    pub uri: String,
    pub name: String,
}

/// The channel gafix adds with `--fix-hypervisor`: libvirt picks the socket path and adds a
/// virtio-serial controller when the domain has none.
pub const CHANNEL_XML: &str = "<channel type='unix'>\n  <target type='virtio' name='org.qemu.guest_agent.0'/>\n</channel>\n";

/// How long a `virsh` call may take beyond the agent's own timeout (connecting to libvirtd,
/// possibly over SSH).
const VIRSH_GRACE: Duration = Duration::from_secs(10);

impl Domain {
    pub fn new(uri: String, name: String) -> Result<Domain, String> {
        // Both go to virsh as separate arguments (no shell); still, a name that starts with
        // '-' would read as an option.
        if name.starts_with('-') || name.is_empty() {
            return Err(format!("libvirt_domain '{name}' is not a domain name"));
        }
        if uri.starts_with('-') || !uri.contains(':') {
            return Err(format!("libvirt_uri '{uri}' is not a libvirt URI (qemu:///system, qemu+ssh://host/system)"));
        }
        Ok(Domain { uri, name })
    }

    /// Runs `virsh -c URI ARGS...`: its stdout, or its error message (the `error:` lines).
    async fn virsh(&self, args: &[&str], limit: Duration) -> Result<String, String> {
        let mut cmd = tokio::process::Command::new("virsh");
        cmd.arg("-q").arg("-c").arg(&self.uri).args(args);
        // Messages are matched in English.
        cmd.env("LC_ALL", "C").stdin(std::process::Stdio::null()).kill_on_drop(true);
        let out = match tokio::time::timeout(limit, cmd.output()).await {
            Err(_) => return Err(format!("virsh did not finish within {} s", limit.as_secs())),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("failed to connect to the hypervisor: virsh is not installed here (Debian: libvirt-clients)".into())
            }
            Ok(Err(e)) => return Err(format!("cannot run virsh: {e}")),
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message: Vec<&str> = stderr.lines().map(|l| l.trim_start_matches("error: ").trim()).filter(|l| !l.is_empty()).collect();
        Err(if message.is_empty() { format!("virsh failed ({})", out.status) } else { message.join(": ") })
    }

    /// Runs one agent command and returns its `return` value.
    pub async fn agent_command(&self, command: &str, timeout: Duration) -> Result<Json, Diagnosis> {
        let secs = timeout.as_secs().max(1).to_string();
        let request = json!({"execute": command}).to_string();
        match self.virsh(&["qemu-agent-command", &self.name, &request, "--timeout", &secs], timeout + VIRSH_GRACE).await {
            Ok(out) => {
                let answer: Json =
                    serde_json::from_str(out.trim()).map_err(|e| self.diagnosis(Cause::Failed, format!("virsh printed {e}")))?;
                Ok(answer.get("return").cloned().unwrap_or(Json::Null))
            }
            Err(message) => Err(self.explain(message).await),
        }
    }

    /// The cause behind a failed agent command, refined by the domain's XML where the
    /// message alone cannot tell (configured for the next start vs not at all).
    async fn explain(&self, message: String) -> Diagnosis {
        let cause = classify(&message);
        if cause == Cause::NotConfigured {
            if let Ok(xml) = self.virsh(&["dumpxml", "--inactive", &self.name], VIRSH_GRACE).await {
                if channel_state(&xml).is_some() {
                    return self.diagnosis(
                        Cause::Pending,
                        format!("{message}: the channel {CHANNEL} is in the domain's configuration, not in the running VM"),
                    );
                }
            }
        }
        if cause == Cause::Failed && (message.contains("failed to get domain") || message.contains("Domain not found")) {
            let remedy = format!("set libvirt_domain to the domain's name at {} (virsh -c {} list --all)", self.uri, self.uri);
            return Diagnosis { via: Via::Libvirt, cause, detail: message, remedy };
        }
        self.diagnosis(cause, message)
    }

    fn diagnosis(&self, cause: Cause, detail: String) -> Diagnosis {
        Diagnosis { via: Via::Libvirt, cause, detail, remedy: remedy(Via::Libvirt, cause, &self.name) }
    }

    /// Adds the agent channel to the domain's configuration (effective at the next fresh
    /// start); nothing when it is there already.
    pub async fn enable_channel(&self) -> Result<bool, Diagnosis> {
        let xml = self.virsh(&["dumpxml", "--inactive", &self.name], VIRSH_GRACE).await.map_err(|m| self.diagnosis(classify(&m), m))?;
        if channel_state(&xml).is_some() {
            return Ok(false);
        }
        let file = tempfile::Builder::new()
            .prefix("gafix-channel")
            .suffix(".xml")
            .tempfile()
            .map_err(|e| self.diagnosis(Cause::Failed, e.to_string()))?;
        std::fs::write(file.path(), CHANNEL_XML).map_err(|e| self.diagnosis(Cause::Failed, e.to_string()))?;
        let path = file.path().to_string_lossy().into_owned();
        self.virsh(&["attach-device", &self.name, &path, "--config"], VIRSH_GRACE).await.map_err(|m| self.diagnosis(classify(&m), m))?;
        Ok(true)
    }

    /// A fresh start: an orderly shutdown (ACPI; the agent may not be there yet), waiting
    /// until the domain is off, then a start.
    pub async fn restart(&self, limit: Duration) -> Result<(), Diagnosis> {
        let fail = |m: String| self.diagnosis(classify(&m), m);
        let state = self.state().await.map_err(fail)?;
        if state != "shut off" {
            self.virsh(&["shutdown", &self.name, "--mode", "acpi"], VIRSH_GRACE).await.map_err(fail)?;
            let deadline = tokio::time::Instant::now() + limit;
            loop {
                let state = self.state().await.map_err(fail)?;
                if state == "shut off" {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    // Never forced off: the guest may be in the middle of a package transaction.
                    return Err(self.diagnosis(
                        Cause::Failed,
                        format!("the domain did not shut down within {} s (state: {state}); it was not forced off", limit.as_secs()),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.virsh(&["start", &self.name], VIRSH_GRACE).await.map_err(fail)?;
        Ok(())
    }

    async fn state(&self) -> Result<String, String> {
        Ok(self.virsh(&["domstate", &self.name], VIRSH_GRACE).await?.trim().to_string())
    }
}

/// The cause a virsh error message names (libvirt's messages, in English).
pub fn classify(message: &str) -> Cause {
    let m = message.to_ascii_lowercase();
    if m.contains("guest agent is not configured") {
        Cause::NotConfigured
    } else if m.contains("guest agent is not connected") {
        Cause::Disconnected
    } else if m.contains("guest agent not available for now")
        || m.contains("not available due to an error")
        || m.contains("guest agent is not responding")
    {
        Cause::Silent
    } else if m.contains("domain is not running") {
        Cause::NotRunning
    } else if m.contains("authentication failed") || m.contains("authentication unavailable") {
        Cause::AuthFailed
    } else if m.contains("access denied") || m.contains("permission denied") {
        Cause::PermissionDenied
    } else if m.contains("failed to connect") || m.contains("cannot recv data") || m.contains("did not finish within") {
        Cause::Unreachable
    } else {
        Cause::Failed
    }
}

/// The agent channel's `state` in a domain's XML: `Some("")` when the channel is there
/// without a state (an inactive configuration), `None` when there is no such channel.
pub fn channel_state(xml: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(start) = rest.find("<channel") {
        let block = &rest[start..];
        let end = block.find("</channel>").map(|e| e + "</channel>".len()).unwrap_or(block.len());
        let channel = &block[..end];
        rest = &block[end..];
        let Some(target) = channel.find("<target").map(|t| &channel[t..]) else { continue };
        let target = &target[..target.find('>').unwrap_or(target.len())];
        if attribute(target, "type").as_deref() == Some("virtio") && attribute(target, "name").as_deref() == Some(CHANNEL) {
            return Some(attribute(target, "state").unwrap_or_default());
        }
    }
    None
}

/// An attribute's value in an element's start tag (either quote).
fn attribute(tag: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let key = format!(" {name}={quote}");
        if let Some(at) = tag.find(&key) {
            let value = &tag[at + key.len()..];
            return value.find(quote).map(|end| value[..end].to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = "<domain type='qemu'>\n  <devices>\n    <channel type='unix'>\n      <source mode='bind' path='/run/libvirt/qemu/channel/1-vm1/org.qemu.guest_agent.0'/>\n      \
        <target type='virtio' name='org.qemu.guest_agent.0' state='disconnected'/>\n      <alias name='channel0'/>\n      \
        <address type='virtio-serial' controller='0' bus='0' port='1'/>\n    </channel>\n  </devices>\n</domain>\n";

    #[test]
    fn the_agent_channel_and_its_state_are_read_from_the_xml() {
        assert_eq!(channel_state(RUNNING).as_deref(), Some("disconnected"));
        assert_eq!(channel_state(&RUNNING.replace("disconnected", "connected")).as_deref(), Some("connected"));
        assert_eq!(channel_state(CHANNEL_XML).as_deref(), Some(""), "configured, no state: an inactive definition");
        let other = RUNNING.replace("org.qemu.guest_agent.0'", "org.qemu.guest_agent.1'");
        assert_eq!(channel_state(&other), None, "a channel under another name is not the agent's");
        let spice = "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>";
        assert_eq!(channel_state(spice), None);
    }

    #[test]
    fn virsh_messages_name_their_cause() {
        assert_eq!(classify("argument unsupported: QEMU guest agent is not configured"), Cause::NotConfigured);
        assert_eq!(classify("Guest agent is not responding: QEMU guest agent is not connected"), Cause::Disconnected);
        assert_eq!(classify("Guest agent is not responding: Guest agent not available for now"), Cause::Silent);
        assert_eq!(classify("Requested operation is not valid: domain is not running"), Cause::NotRunning);
        assert_eq!(classify("failed to connect to the hypervisor: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"), Cause::Unreachable);
        assert_eq!(classify("failed to get domain 'nosuch'"), Cause::Failed);
    }

    #[test]
    fn names_that_would_read_as_options_are_refused() {
        assert!(Domain::new("qemu:///system".into(), "--all".into()).is_err());
        assert!(Domain::new("-c".into(), "vm1".into()).is_err());
        assert!(Domain::new("qemu+ssh://root@kvm1/system".into(), "vm1".into()).is_ok());
    }
}
