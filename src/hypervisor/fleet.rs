//! `gafix agent ping|info`: every selected host's hypervisor asked at once, one line (or one
//! JSON object) per host, and an exit code like ansible-playbook's.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value as Json;

use super::{Access, Cause, Via};

/// What to ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Question {
    Ping,
    Info,
}

impl Question {
    fn command(self) -> &'static str {
        match self {
            Question::Ping => "guest-ping",
            Question::Info => "guest-info",
        }
    }
}

/// One host's answer, as the JSON report has it.
#[derive(Clone, Debug, Serialize)]
pub struct HostAnswer {
    pub host: String,
    /// The way in; `null` for a host without one (skipped).
    pub via: Option<Via>,
    pub ok: bool,
    /// How long the answer took, in milliseconds.
    pub ms: Option<u64>,
    pub cause: Option<Cause>,
    pub error: Option<String>,
    pub remedy: Option<String>,
    /// `guest-info`'s answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<Json>,
    #[serde(skip)]
    skipped: bool,
}

/// A host's way in as the inventory configures it: none, one, or a configuration error.
pub type Configured = Result<Option<Access>, String>;

/// Asks every host, `forks` at a time; answers in the hosts' order.
pub async fn ask_all(hosts: Vec<(String, Configured)>, question: Question, timeout: Duration, forks: usize) -> Vec<HostAnswer> {
    stream::iter(hosts)
        .map(|(host, access)| async move { ask_one(host, access, question, timeout).await })
        .buffered(forks.max(1))
        .collect()
        .await
}

async fn ask_one(host: String, access: Configured, question: Question, timeout: Duration) -> HostAnswer {
    let blank = HostAnswer { host, via: None, ok: false, ms: None, cause: None, error: None, remedy: None, info: None, skipped: false };
    let access = match access {
        Ok(Some(a)) => a,
        Ok(None) => return HostAnswer { skipped: true, ..blank },
        Err(e) => {
            return HostAnswer {
                cause: Some(Cause::Failed),
                error: Some(e),
                remedy: Some("set the host's gafix_hypervisor variables (see `gafix agent --help`)".into()),
                ..blank
            }
        }
    };
    let via = Some(access.via());
    match access.ask(question.command(), timeout).await {
        Ok(answer) => HostAnswer {
            via,
            ok: true,
            ms: Some(answer.elapsed.as_millis() as u64),
            info: (question == Question::Info).then_some(answer.value),
            ..blank
        },
        Err(d) => HostAnswer { via, cause: Some(d.cause), error: Some(d.detail), remedy: Some(d.remedy), ..blank },
    }
}

/// 0 when every asked host answered, 4 when a hypervisor could not be asked at all, else 2.
pub fn exit_code(answers: &[HostAnswer]) -> i32 {
    if answers.iter().any(|a| a.cause.is_some_and(Cause::unreachable)) {
        4
    } else if answers.iter().any(|a| !a.ok && !a.skipped) {
        2
    } else {
        0
    }
}

/// Whether any host has a way in configured (or a broken one): if none has, the command
/// asked nothing and says so.
pub fn any_asked(answers: &[HostAnswer]) -> bool {
    answers.iter().any(|a| !a.skipped)
}

/// One line per host: `ok: [vm1] guest-ping via proxmox 14 ms`, or the cause and remedy.
pub fn text_line(a: &HostAnswer, question: Question) -> String {
    let command = question.command();
    if a.skipped {
        return format!("skipped: [{}] no hypervisor configured (set gafix_hypervisor: qga_socket, libvirt or proxmox)", a.host);
    }
    let via = a.via.map(|v| format!(" via {v}")).unwrap_or_default();
    if a.ok {
        let details = a.info.as_ref().map(info_summary).map(|s| format!(": {s}")).unwrap_or_default();
        return format!("ok: [{}] {command}{via} {} ms{details}", a.host, a.ms.unwrap_or(0));
    }
    let status = if a.cause.is_some_and(Cause::unreachable) { "unreachable" } else { "failed" };
    format!(
        "{status}: [{}] {command}{via}: {}\n  remedy: {}",
        a.host,
        a.error.as_deref().unwrap_or("no answer"),
        a.remedy.as_deref().unwrap_or("-")
    )
}

/// `guest-info` in a few words: the version and how many commands are enabled.
fn info_summary(info: &Json) -> String {
    let version = info.get("version").and_then(Json::as_str).unwrap_or("unknown version");
    let commands = info.get("supported_commands").and_then(Json::as_array);
    let enabled = commands.map(|c| c.iter().filter(|c| c.get("enabled").and_then(Json::as_bool).unwrap_or(true)).count());
    match enabled {
        Some(n) => format!("qemu-ga {version}, {n} commands enabled"),
        None => format!("qemu-ga {version}"),
    }
}

/// The JSON report: `{"hosts": [...], "exit_code": N}`.
pub fn json_report(answers: &[HostAnswer]) -> Json {
    serde_json::json!({ "hosts": answers, "exit_code": exit_code(answers) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(path: &str) -> Configured {
        Ok(Some(Access::QgaSocket { path: path.into() }))
    }

    #[tokio::test]
    async fn each_host_gets_one_line_and_the_worst_sets_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.sock").display().to_string();
        let hosts = vec![
            ("vm1".to_string(), configured(&missing)),
            ("vm2".to_string(), Ok(None)),
            ("vm3".to_string(), Err("gafix_hypervisor: 'x' is not one of qga_socket, libvirt, proxmox".to_string())),
        ];
        let answers = ask_all(hosts, Question::Ping, Duration::from_millis(200), 4).await;
        assert_eq!(answers.iter().map(|a| a.host.as_str()).collect::<Vec<_>>(), ["vm1", "vm2", "vm3"]);
        let line = text_line(&answers[0], Question::Ping);
        assert!(line.starts_with("failed: [vm1] guest-ping via qga_socket: no socket at "), "{line}");
        assert!(line.contains("remedy: start the VM with the agent channel"), "{line}");
        assert!(text_line(&answers[1], Question::Ping).starts_with("skipped: [vm2] no hypervisor configured"));
        assert!(text_line(&answers[2], Question::Ping).contains("'x' is not one of"));
        assert_eq!(exit_code(&answers), 2);
        assert_eq!(exit_code(&answers[1..2]), 0, "a host without a hypervisor is not a failure");
        assert!(!any_asked(&answers[1..2]));
        let report = json_report(&answers);
        assert_eq!(report["hosts"][0]["cause"], "not_configured");
        assert_eq!(report["hosts"][0]["via"], "qga_socket");
        assert_eq!(report["hosts"][1]["via"], Json::Null);
        assert_eq!(report["exit_code"], 2);
    }

    #[test]
    fn an_unreachable_hypervisor_is_exit_code_four() {
        let a = HostAnswer {
            host: "vm1".into(),
            via: Some(Via::Proxmox),
            ok: false,
            ms: None,
            cause: Some(Cause::AuthFailed),
            error: Some("HTTP 401 authentication failure".into()),
            remedy: Some("check PROXMOX_USER".into()),
            info: None,
            skipped: false,
        };
        assert_eq!(exit_code(std::slice::from_ref(&a)), 4);
        assert!(text_line(&a, Question::Ping).starts_with("unreachable: [vm1] guest-ping via proxmox: HTTP 401"));
    }

    #[test]
    fn info_is_summarised() {
        let info = serde_json::json!({"version": "7.2.0", "supported_commands": [{"name": "guest-ping", "enabled": true}, {"name": "guest-exec", "enabled": false}]});
        assert_eq!(info_summary(&info), "qemu-ga 7.2.0, 1 commands enabled");
    }
}
