//! The hypervisor's view of the guest agent: what Proxmox or libvirt get when they talk to it
//! over the VM's virtio-serial channel, asked without SSH to the guest.
//!
//! Each host may name one way in, from its variables ([`Access::from_vars`]): the channel's
//! host-side socket (`qga_socket`), libvirt through `virsh` (`libvirt`) or Proxmox's HTTP API
//! (`proxmox`). A question that gets no answer becomes one [`Diagnosis`]: the cause, in the
//! hypervisor's own words, and the remedy.

pub mod fleet;
pub mod libvirt;
pub mod proxmox;
pub mod qga;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::vars::Vars;

/// The name of the agent's channel, which hypervisors look for.
pub const CHANNEL: &str = "org.qemu.guest_agent.0";

/// How gafix reaches a host's hypervisor.
#[derive(Clone, Debug)]
pub enum Access {
    /// The channel's host-side UNIX socket, spoken directly.
    QgaSocket { path: PathBuf },
    /// libvirt, through `virsh -c URI`.
    Libvirt(libvirt::Domain),
    /// Proxmox VE's API.
    Proxmox(proxmox::Target),
}

/// Which way a question went, as reports name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    QgaSocket,
    Libvirt,
    Proxmox,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::QgaSocket => "qga_socket",
            Via::Libvirt => "libvirt",
            Via::Proxmox => "proxmox",
        })
    }
}

/// Why the hypervisor gets no answer from the agent: one cause per host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The VM has no agent channel (Proxmox: the agent option is absent or 0).
    NotConfigured,
    /// The channel is configured but takes effect only at the VM's next fresh start.
    Pending,
    /// The channel is there and nothing in the guest has opened it: the agent does not run.
    Disconnected,
    /// The channel is open and the agent does not answer: it is hung.
    Silent,
    /// No agent answers on the channel, and this way in cannot tell whether none runs or it
    /// is hung (the raw socket).
    NoAnswer,
    /// The VM does not run.
    NotRunning,
    /// The hypervisor refused the question to this user or token.
    PermissionDenied,
    /// The hypervisor refused the credentials.
    AuthFailed,
    /// The hypervisor itself cannot be reached.
    Unreachable,
    /// Anything else; the detail says what.
    Failed,
}

impl Cause {
    /// A cause that means the hypervisor could not be asked at all (exit code 4, as an
    /// unreachable host), not that the agent failed to answer.
    pub fn unreachable(self) -> bool {
        matches!(self, Cause::Unreachable | Cause::AuthFailed)
    }
}

/// What the hypervisor said, why, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub via: Via,
    pub cause: Cause,
    /// The hypervisor's own words (an error message, a state).
    pub detail: String,
    pub remedy: String,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}; remedy: {}", self.detail, self.via, self.remedy)
    }
}

/// A question the agent answered.
#[derive(Clone, Debug)]
pub struct Answer {
    pub via: Via,
    pub elapsed: Duration,
    /// The command's `return` value.
    pub value: Json,
}

/// How long the gate waits for the agent's answer, as Proxmox's own ping.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);

impl Access {
    /// The host's way in, from its (rendered) variables; `None` when `gafix_hypervisor` is
    /// not set. `env` supplies what Ansible's Proxmox plugin reads from the environment.
    pub fn from_vars(host: &str, vars: &Vars, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Access>, String> {
        // Values are used as written: `!unsafe` marks off.
        let vars = match crate::yaml::strip_unsafe_marks(&Json::Object(vars.clone())) {
            Json::Object(m) => m,
            _ => vars.clone(),
        };
        let vars = &vars;
        let text = |name: &str| -> Result<Option<String>, String> {
            match vars.get(name) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) if s.is_empty() => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(Json::Number(n)) => Ok(Some(n.to_string())),
                Some(other) => Err(format!("{name} must be a string, found {other}")),
            }
        };
        let Some(kind) = text("gafix_hypervisor")? else { return Ok(None) };
        match kind.as_str() {
            "qga_socket" => {
                let path = text("gafix_qga_socket")?
                    .ok_or("gafix_hypervisor: qga_socket needs gafix_qga_socket: PATH (the channel's host-side socket)")?;
                Ok(Some(Access::QgaSocket { path: PathBuf::from(path) }))
            }
            "libvirt" => {
                let uri = text("libvirt_uri")?.unwrap_or_else(|| "qemu:///system".into());
                let domain = text("libvirt_domain")?.unwrap_or_else(|| host.to_string());
                Ok(Some(Access::Libvirt(libvirt::Domain::new(uri, domain)?)))
            }
            "proxmox" => {
                let from = |var: &str, env_name: &str| -> Result<Option<String>, String> { Ok(text(var)?.or_else(|| env(env_name))) };
                let url = from("proxmox_url", "PROXMOX_URL")?.ok_or("gafix_hypervisor: proxmox needs proxmox_url (https://pve1:8006)")?;
                let node = text("proxmox_node")?.ok_or("gafix_hypervisor: proxmox needs proxmox_node (the node the VM runs on)")?;
                let vmid = text("proxmox_vmid")?.ok_or("gafix_hypervisor: proxmox needs proxmox_vmid")?;
                let vmid: u32 = vmid.parse().map_err(|_| format!("proxmox_vmid must be a number, found '{vmid}'"))?;
                let user =
                    from("proxmox_user", "PROXMOX_USER")?.ok_or("proxmox: no API user: set PROXMOX_USER (user@realm) or proxmox_user")?;
                let token_id = from("proxmox_token_id", "PROXMOX_TOKEN_ID")?
                    .ok_or("proxmox: no API token: set PROXMOX_TOKEN_ID or proxmox_token_id")?;
                let secret = from("proxmox_token_secret", "PROXMOX_TOKEN_SECRET")?
                    .ok_or("proxmox: no API token secret: set PROXMOX_TOKEN_SECRET or proxmox_token_secret")?;
                crate::secrets::register(&secret);
                let validate_certs = match vars.get("proxmox_validate_certs") {
                    None | Some(Json::Null) => true,
                    Some(v) => crate::vars::json_bool(v).ok_or_else(|| format!("proxmox_validate_certs must be a boolean, found {v}"))?,
                };
                let ca_file = text("proxmox_ca_file")?.map(PathBuf::from);
                let token = proxmox::Token::new(user, token_id, crate::transport::Secret::new(secret))?;
                Ok(Some(Access::Proxmox(proxmox::Target::new(&url, node, vmid, token, validate_certs, ca_file)?)))
            }
            other => Err(format!("gafix_hypervisor: '{other}' is not one of qga_socket, libvirt, proxmox")),
        }
    }

    pub fn via(&self) -> Via {
        match self {
            Access::QgaSocket { .. } => Via::QgaSocket,
            Access::Libvirt(_) => Via::Libvirt,
            Access::Proxmox(_) => Via::Proxmox,
        }
    }

    /// `guest-ping` through the hypervisor.
    pub async fn ping(&self, timeout: Duration) -> Result<Answer, Diagnosis> {
        self.ask("guest-ping", timeout).await
    }

    /// Turns the agent channel on in the VM's configuration (Proxmox's agent option, libvirt's
    /// `<channel>`); `true` when something changed. It takes effect at the next fresh start.
    pub async fn enable(&self) -> Result<bool, Diagnosis> {
        match self {
            Access::QgaSocket { path } => Err(Diagnosis {
                via: Via::QgaSocket,
                cause: Cause::NotConfigured,
                detail: format!("no channel socket at {}", path.display()),
                remedy: "gafix reaches this VM only through its socket and cannot change its definition: add the channel where the VM \
                         is defined"
                    .into(),
            }),
            Access::Libvirt(domain) => domain.enable_channel().await,
            Access::Proxmox(target) => target.enable_agent().await,
        }
    }

    /// A fresh start of the VM: the guest shuts down (never forced off), then QEMU starts
    /// anew with the current configuration.
    pub async fn restart(&self, shutdown_limit: Duration) -> Result<(), Diagnosis> {
        match self {
            Access::QgaSocket { .. } => self.enable().await.map(drop),
            Access::Libvirt(domain) => domain.restart(shutdown_limit).await,
            Access::Proxmox(target) => target.restart(shutdown_limit).await,
        }
    }

    async fn ask(&self, command: &str, timeout: Duration) -> Result<Answer, Diagnosis> {
        let started = Instant::now();
        let value = match self {
            Access::QgaSocket { path } => {
                qga::execute(path, &json!({"execute": command}), timeout).await.map_err(|e| socket_diagnosis(path, e))?
            }
            Access::Libvirt(domain) => domain.agent_command(command, timeout).await?,
            Access::Proxmox(target) => target.agent_command(command, timeout).await?,
        };
        Ok(Answer { via: self.via(), elapsed: started.elapsed(), value })
    }
}

fn socket_diagnosis(path: &std::path::Path, e: qga::QgaError) -> Diagnosis {
    use qga::QgaError as E;
    let shown = path.display();
    let (cause, remedy) = match &e {
        E::NoSocket(_) => (
            Cause::NotConfigured,
            format!(
                "start the VM with the agent channel served at {shown} (QEMU: -chardev socket,path={shown},server=on,wait=off,id=qga0 \
                 -device virtio-serial -device virtserialport,chardev=qga0,name={CHANNEL}), or correct gafix_qga_socket"
            ),
        ),
        E::Refused(_) => (Cause::NotRunning, "start the VM (its QEMU has exited and left the socket behind)".to_string()),
        E::Connect { .. } => (Cause::PermissionDenied, format!("let gafix's user read and write {shown}")),
        E::Silent(_) => (
            Cause::NoAnswer,
            "the agent does not run in the guest or is hung: `gafix converge` installs and starts it; if it runs, restart it \
             (systemctl restart qemu-guest-agent)"
                .to_string(),
        ),
        E::Agent { .. } | E::Garbled(_) => {
            (Cause::Failed, "check the agent's version and log in the guest (journalctl -u qemu-guest-agent)".to_string())
        }
    };
    Diagnosis { via: Via::QgaSocket, cause, detail: e.to_string(), remedy }
}

/// The remedy for a cause, worded for the way in; `subject` names the VM as the tool the
/// operator would use does (a VMID, a domain).
pub fn remedy(via: Via, cause: Cause, subject: &str) -> String {
    match (via, cause) {
        (Via::Proxmox, Cause::NotConfigured) => format!(
            "enable the agent option: `qm set {subject} --agent enabled=1` (or gafix --fix-hypervisor), then a fresh start of the VM \
             (stop, then start: a reboot from inside the guest does not apply it)"
        ),
        (_, Cause::NotConfigured) => format!(
            "add the channel to the domain (`virsh edit {subject}`, or `virsh attach-device {subject} FILE --config`, or gafix \
             --fix-hypervisor): <channel type='unix'><target type='virtio' name='{CHANNEL}'/></channel>; then a fresh start"
        ),
        (Via::Proxmox, Cause::Pending) => format!(
            "a fresh start applies the pending agent option: `qm shutdown {subject} && qm start {subject}` (or the API's status/reboot, or gafix \
             --fix-hypervisor --allow-restart); a reboot from inside the guest does not"
        ),
        (_, Cause::Pending) => format!(
            "a fresh start applies the channel: `virsh shutdown {subject}`, then `virsh start {subject}` (or gafix --fix-hypervisor \
             --allow-restart); a reboot from inside the guest does not"
        ),
        (_, Cause::Disconnected) => {
            "the agent does not run in the guest: `gafix converge` (stage 1) installs, enables and starts qemu-guest-agent".to_string()
        }
        (_, Cause::Silent) => "the agent is hung: restart it in the guest (systemctl restart qemu-guest-agent)".to_string(),
        (_, Cause::NoAnswer) => "the agent does not run in the guest or is hung: `gafix converge` installs and starts it; if it runs, \
                                 restart it (systemctl restart qemu-guest-agent)"
            .to_string(),
        (Via::Proxmox, Cause::NotRunning) => format!("start the VM (`qm start {subject}`)"),
        (_, Cause::NotRunning) => format!("start the VM (`virsh start {subject}`)"),
        (Via::Proxmox, Cause::PermissionDenied) => format!(
            "grant the API token's user VM.GuestAgent.Audit on /vms/{subject} (Proxmox VE 9; VM.Monitor before 9), with \
             privilege separation the token itself too"
        ),
        (_, Cause::PermissionDenied) => {
            "connect as a user libvirt lets manage the domain (qemu:///system: root or the libvirt group)".to_string()
        }
        (Via::Proxmox, Cause::AuthFailed) => {
            "check PROXMOX_USER (user@realm), PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET: the token must exist, be unexpired and belong to that user"
                .to_string()
        }
        (_, Cause::AuthFailed) => "check the credentials libvirt asks for at this URI".to_string(),
        (Via::Proxmox, Cause::Unreachable) => "check proxmox_url and that the node's API (port 8006) answers from here".to_string(),
        (_, Cause::Unreachable) => "check libvirt_uri and that libvirtd runs there".to_string(),
        (_, Cause::Failed) => "see the hypervisor's message".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, Json)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn no_hypervisor_variable_is_no_access() {
        assert!(Access::from_vars("vm1", &vars(&[]), &no_env).unwrap().is_none());
    }

    #[test]
    fn each_way_in_reads_its_variables() {
        let a = Access::from_vars(
            "vm1",
            &vars(&[("gafix_hypervisor", json!("qga_socket")), ("gafix_qga_socket", json!("/run/q.sock"))]),
            &no_env,
        )
        .unwrap();
        assert!(matches!(a, Some(Access::QgaSocket { path }) if path == std::path::Path::new("/run/q.sock")));
        let a = Access::from_vars("vm1", &vars(&[("gafix_hypervisor", json!("libvirt"))]), &no_env).unwrap().unwrap();
        let Access::Libvirt(d) = a else { panic!() };
        assert_eq!((d.uri.as_str(), d.name.as_str()), ("qemu:///system", "vm1"), "defaults: the system URI, the inventory name");
        let env = |name: &str| match name {
            "PROXMOX_USER" => Some("gafix@pve".to_string()),
            "PROXMOX_TOKEN_ID" => Some("ci".to_string()),
            "PROXMOX_TOKEN_SECRET" => Some("0f6b2f5c-secret".to_string()),
            _ => None,
        };
        let pve = vars(&[
            ("gafix_hypervisor", json!("proxmox")),
            ("proxmox_url", json!("https://pve1:8006")),
            ("proxmox_node", json!("pve1")),
            ("proxmox_vmid", json!(101)),
        ]);
        let Some(Access::Proxmox(t)) = Access::from_vars("vm1", &pve, &env).unwrap() else { panic!() };
        assert_eq!(t.vmid, 101);
        assert_eq!(t.api.token.header(), "PVEAPIToken=gafix@pve!ci=0f6b2f5c-secret");
        assert!(!format!("{t:?}").contains("0f6b2f5c-secret"), "Debug never shows the secret");
    }

    #[test]
    fn a_way_in_without_what_it_needs_is_an_error_that_says_what() {
        let e = Access::from_vars("vm1", &vars(&[("gafix_hypervisor", json!("qga_socket"))]), &no_env).unwrap_err();
        assert!(e.contains("gafix_qga_socket"), "{e}");
        let e = Access::from_vars("vm1", &vars(&[("gafix_hypervisor", json!("vmware"))]), &no_env).unwrap_err();
        assert!(e.contains("'vmware' is not one of qga_socket, libvirt, proxmox"), "{e}");
        let e = Access::from_vars(
            "vm1",
            &vars(&[("gafix_hypervisor", json!("proxmox")), ("proxmox_url", json!("https://p:8006")), ("proxmox_node", json!("p"))]),
            &no_env,
        )
        .unwrap_err();
        assert!(e.contains("proxmox_vmid"), "{e}");
    }

    #[test]
    fn remedies_name_the_tool_and_the_subject() {
        assert!(remedy(Via::Proxmox, Cause::NotConfigured, "101").contains("qm set 101 --agent enabled=1"));
        assert!(remedy(Via::Libvirt, Cause::NotConfigured, "vm1").contains("<target type='virtio' name='org.qemu.guest_agent.0'/>"));
        assert!(remedy(Via::Proxmox, Cause::PermissionDenied, "101").contains("VM.GuestAgent.Audit"));
        assert!(remedy(Via::Proxmox, Cause::Pending, "101").contains("a reboot from inside the guest does not"));
        assert!(Cause::AuthFailed.unreachable() && Cause::Unreachable.unreachable() && !Cause::Silent.unreachable());
    }
}
