//! `service_facts`: systemd's services as `ansible_facts.services` (and `services`),
//! `{unit: {name, state, status, source}}` read as Ansible's module reads them: the units
//! systemd has loaded, then the unit files (their enablement; the state of one not loaded
//! from `systemctl show`, all in one call).

use futures::future::BoxFuture;
use serde_json::{json, Value as Json};

use super::spec::{ArgError, Args, Spec};
use super::{Module, Outcome, RunCtx};
use crate::session::HostSession;
use crate::shell::quote_all;

pub struct ServiceFacts;

pub static SPEC: Spec =
    Spec { name: "service_facts", aliases: &[], args: &[], free_form: None, required: &[], unsupported: &[], any_keys: false };

const LIST: &str = "systemctl list-units --no-pager --type service --all --plain --no-legend; echo @@files; \
systemctl list-unit-files --no-pager --type service --all --no-legend";

/// The services from `LIST`'s output, and the unit files whose state is still to be read.
fn parse(output: &str) -> (serde_json::Map<String, Json>, Vec<String>) {
    let (units, files) = output.split_once("@@files\n").unwrap_or((output, ""));
    let mut services = serde_json::Map::new();
    let bad = ["not-found", "masked", "failed"];
    for line in units.lines().filter(|l| l.contains(".service")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let status = bad.iter().find(|b| f[..f.len() - 1].contains(b)).copied().unwrap_or(f[2]);
        let state = if f[3] == "running" { "running" } else { "stopped" };
        services.insert(f[0].into(), json!({"name": f[0], "state": state, "status": status, "source": "systemd"}));
    }
    let mut unread = Vec::new();
    for line in files.lines().filter(|l| l.contains(".service")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, status, ..] = f[..] else { continue };
        match services.get_mut(name) {
            Some(s) if !bad.contains(&s["status"].as_str().unwrap_or("")) => s["status"] = json!(status),
            Some(_) => {}
            None => {
                services.insert(name.into(), json!({"name": name, "state": "unknown", "status": status, "source": "systemd"}));
                unread.push(name.to_string());
            }
        }
    }
    (services, unread)
}

impl Module for ServiceFacts {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, _args: &Args) -> Result<(), ArgError> {
        Ok(())
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, _args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let out = match host.run(LIST, ctx.become_, None).await {
                Ok(out) if out.rc == 0 => out,
                Ok(out) => return Outcome::command_failed("listing systemd's services", &out, None),
                Err(e) => return Outcome::from_transport(e),
            };
            let (mut services, unread) = parse(&out.stdout);
            if !unread.is_empty() {
                let show = format!("systemctl show -p Id,ActiveState -- {}", quote_all(&unread));
                if let Ok(out) = host.run(&show, ctx.become_, None).await {
                    for block in out.stdout.split("\n\n") {
                        let field = |k: &str| block.lines().find_map(|l| l.strip_prefix(k)).map(str::to_string);
                        if let (Some(id), Some(state)) = (field("Id="), field("ActiveState=")) {
                            if let Some(s) = services.get_mut(&id) {
                                s["state"] = json!(state);
                            }
                        }
                    }
                }
            }
            let count = services.len();
            let mut facts = serde_json::Map::new();
            facts.insert("services".into(), Json::Object(services));
            host.add_facts(facts.clone());
            let mut o = Outcome::ok(format!("{count} services"));
            o.result = json!({"ansible_facts": facts});
            o
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_then_unit_files() {
        let out = "ssh.service loaded active running OpenBSD Secure Shell server\n\
cron.service loaded inactive dead Regular background program processing daemon\n\
nope.service not-found inactive dead nope.service\n@@files\n\
ssh.service enabled enabled\ncron.service disabled enabled\nnope.service masked enabled\nrsync.service disabled enabled\n";
        let (s, unread) = parse(out);
        assert_eq!(s["ssh.service"], json!({"name": "ssh.service", "state": "running", "status": "enabled", "source": "systemd"}));
        assert_eq!(s["cron.service"]["status"], "disabled");
        assert_eq!(s["cron.service"]["state"], "stopped");
        assert_eq!(s["nope.service"]["status"], "not-found", "a bad state stays");
        assert_eq!(unread, ["rsync.service"]);
    }
}
