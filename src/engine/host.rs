//! One host's state through a run: its connection (made once, reused by every task), its
//! facts, what earlier changes made stale, and its registered variables.

use std::time::Duration;

use crate::facts::{self, Facts, ProbeRequest};
use crate::transport::{Become, CommandOutput, Connection, ConnectionSpec, TransportError};
use crate::vars::Vars;

/// Which facts an earlier change made stale; they are re-read when next needed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stale {
    pub packages: bool,
    pub units: bool,
    pub paths: bool,
    pub all: bool,
}

pub struct HostRun {
    pub name: String,
    pub spec: ConnectionSpec,
    pub inventory_vars: Vars,
    pub transport: Option<Connection>,
    pub facts: Option<Facts>,
    pub facts_vars: Vars,
    pub stale: Stale,
    pub registered: Vars,
    /// Out of the run (failed a task, or unreachable), as in Ansible.
    pub out: bool,
    /// Check mode: packages an earlier task would have installed.
    pub predicted_packages: Vec<String>,
    /// What the probe reads for this host (names the plan mentions).
    pub probe: ProbeRequest,
    pub round_trips: u32,
    /// Off while a `no_log` task runs: `-vv` does not show its commands.
    pub log_commands: bool,
}

pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
}

impl HostRun {
    pub fn new(name: String, spec: ConnectionSpec, inventory_vars: Vars, probe: ProbeRequest) -> Self {
        HostRun {
            name,
            spec,
            inventory_vars,
            transport: None,
            facts: None,
            facts_vars: Vars::new(),
            stale: Stale::default(),
            registered: Vars::new(),
            out: false,
            predicted_packages: Vec::new(),
            probe,
            round_trips: 0,
            log_commands: true,
        }
    }

    pub async fn connect(&mut self, t: &Timeouts) -> Result<(), TransportError> {
        if self.transport.is_none() {
            self.transport = Some(Connection::connect(&self.spec, t.connect).await?);
        }
        Ok(())
    }

    pub async fn disconnect(&mut self) {
        if let Some(t) = self.transport.take() {
            t.close().await;
        }
    }

    pub async fn run(
        &mut self,
        script: &str,
        become_: Option<&Become>,
        stdin: Option<&str>,
        t: &Timeouts,
    ) -> Result<CommandOutput, TransportError> {
        self.connect(t).await?;
        self.round_trips += 1;
        // -vv: what runs where (the script's first lines, never its stdin; nothing of a
        // no_log task; secrets masked).
        if self.log_commands {
            let head = script.lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join(" | ");
            tracing::info!(host = %self.name, become_ = become_.is_some(), "run: {}", crate::secrets::redact(&head));
        } else {
            tracing::info!(host = %self.name, become_ = become_.is_some(), "run: (hidden: no_log)");
        }
        let transport = self.transport.as_ref().expect("connected");
        let result = transport.run(script, become_, stdin, t.command).await;
        if matches!(result, Err(TransportError::Unreachable(_))) {
            // The master is gone; a later attempt (after a reboot) reconnects.
            self.disconnect().await;
        }
        result
    }

    /// Reads facts: everything on first use, then only what is stale or not yet known.
    pub async fn ensure_facts(&mut self, extra: &ProbeRequest, t: &Timeouts) -> Result<(), TransportError> {
        let basics = self.facts.is_none() || self.stale.all;
        let mut request = if basics { self.probe.clone() } else { ProbeRequest::default() };
        let known = self.facts.as_ref();
        let stale = self.stale;
        for p in &extra.packages {
            let base = crate::names::deb_base_name(p);
            if basics || stale.packages || !known.is_some_and(|f| f.packages.contains_key(base)) {
                request.packages.push(p.clone());
            }
        }
        for u in &extra.units {
            if basics || stale.units || !known.is_some_and(|f| f.units.contains_key(u)) {
                request.units.push(u.clone());
            }
        }
        for p in &extra.paths {
            if basics || stale.paths || !known.is_some_and(|f| f.paths.contains_key(p)) {
                request.paths.push(p.clone());
            }
        }
        if extra.apt_cache_age && (basics || stale.packages || known.is_none_or(|f| f.apt_cache_age.is_none())) {
            request.apt_cache_age = true;
        }
        if !basics && request.is_empty() {
            return Ok(());
        }
        request.normalize();
        let out = self.run(&facts::probe_script(&request, basics), None, None, t).await?;
        if out.rc != 0 {
            return Err(TransportError::Other(format!("the facts probe failed (exit {}): {}", out.rc, out.tail(3))));
        }
        self.absorb_probe(&out.stdout, &request, basics);
        if basics {
            self.stale = Stale::default();
        } else {
            if !extra.packages.is_empty() {
                self.stale.packages = false;
            }
            if !extra.units.is_empty() {
                self.stale.units = false;
            }
            if !extra.paths.is_empty() {
                self.stale.paths = false;
            }
        }
        Ok(())
    }

    /// Folds probe output into the facts (replacing them all when `basics`).
    pub fn absorb_probe(&mut self, output: &str, request: &ProbeRequest, basics: bool) {
        let mut f = if basics { Facts::default() } else { self.facts.take().unwrap_or_default() };
        facts::parse_probe(output, request, &mut f);
        self.facts_vars = f.ansible_vars();
        self.facts = Some(f);
    }

    pub fn facts(&self) -> &Facts {
        self.facts.as_ref().expect("facts gathered before tasks run")
    }

    /// After a change on the host, facts that may have moved.
    pub fn mark_changed(&mut self, packages: bool, units: bool) {
        self.stale.packages |= packages;
        self.stale.units |= units || packages;
        self.stale.paths = true;
    }
}
