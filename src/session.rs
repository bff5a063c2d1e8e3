//! One host through a run: its connection (made once, reused by every task), its facts and
//! what earlier changes made stale, its variables. Modules see a host only through this:
//! run a script, read facts, say what a change made stale, reconnect after a reboot.

use std::time::Duration;

use crate::facts::{self, Change, Facts, ProbeRequest, Stale};
use crate::transport::{Become, CommandOutput, Connection, ConnectionSpec, TransportError};
use crate::vars::Vars;

/// Time limits for one host.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Making the SSH connection.
    pub connect: Duration,
    /// One command.
    pub command: Duration,
}

/// A host's session: private state, changed only through its methods.
pub struct HostSession {
    name: String,
    spec: ConnectionSpec,
    /// Who commands become by default: resolved once, borrowed by every task.
    become_default: std::sync::Arc<Become>,
    timeouts: Timeouts,
    vars: Vars,
    connection: Option<Connection>,
    facts: Option<Facts>,
    facts_vars: Vars,
    /// Facts modules returned (`package_facts`...).
    module_facts: Vars,
    /// `facts_vars` with the modules' facts: what tasks see.
    exposed_facts: Vars,
    stale: Stale,
    /// Everything is to be re-read (after a reboot).
    all_stale: bool,
    registered: Vars,
    out: bool,
    predicted_packages: Vec<String>,
    probe: ProbeRequest,
    round_trips: u32,
    log_commands: bool,
    /// `export` lines of the running task's `environment:`, put before each of its scripts.
    environment: String,
    /// When the running task's `timeout:` runs out.
    task_deadline: Option<std::time::Instant>,
    /// The login user from the host's settings (a play's `remote_user` may replace it).
    own_user: Option<String>,
    /// Whether a play that gathers facts has run on the host: then its facts are variables.
    facts_gathered: bool,
    /// How the host's hypervisor is asked about its agent, when the inventory says.
    hypervisor: Option<crate::hypervisor::Access>,
    /// Variables from `include_vars` (for the rest of the run, as in Ansible).
    included_vars: Vars,
    /// Paths read again since the last change made paths stale (the others still are).
    fresh_paths: std::collections::HashSet<String>,
}

impl HostSession {
    /// A host not yet connected: `vars` are its rendered inventory variables, `probe` what
    /// its first facts probe reads (every name the plan mentions for it).
    pub fn new(name: String, spec: ConnectionSpec, vars: Vars, probe: ProbeRequest, timeouts: Timeouts) -> Self {
        HostSession {
            name,
            become_default: std::sync::Arc::new(spec.become_for(None)),
            spec,
            timeouts,
            vars,
            connection: None,
            facts: None,
            facts_vars: Vars::new(),
            module_facts: Vars::new(),
            exposed_facts: Vars::new(),
            stale: Stale::default(),
            all_stale: false,
            registered: Vars::new(),
            out: false,
            predicted_packages: Vec::new(),
            probe,
            round_trips: 0,
            log_commands: true,
            environment: String::new(),
            task_deadline: None,
            own_user: None,
            facts_gathered: false,
            hypervisor: None,
            included_vars: Vars::new(),
            fresh_paths: Default::default(),
        }
    }

    /// The host's hypervisor, asked by the gate too.
    pub fn with_hypervisor(mut self, access: Option<crate::hypervisor::Access>) -> Self {
        self.hypervisor = access;
        self
    }

    pub fn hypervisor(&self) -> Option<&crate::hypervisor::Access> {
        self.hypervisor.as_ref()
    }

    /// A host on a connection made elsewhere (tests bring their own transport).
    pub fn with_connection(mut self, connection: Connection) -> Self {
        self.connection = Some(connection);
        self
    }

    /// The host's time limits.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The inventory name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the host is reached (address, user, become settings).
    pub fn spec(&self) -> &ConnectionSpec {
        &self.spec
    }

    /// Becoming `user` (the host's `ansible_become_user` when `None`): the host's own,
    /// shared, unless a task names another user.
    pub fn become_as(&self, user: Option<&str>) -> std::sync::Arc<Become> {
        match user {
            Some(u) if u != self.become_default.user => std::sync::Arc::new(self.spec.become_for(Some(u))),
            _ => std::sync::Arc::clone(&self.become_default),
        }
    }

    /// The host's inventory and `-e` variables, rendered.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Its facts under Ansible's names, once a play that gathers facts has run on it
    /// (as in Ansible, `gather_facts: false` leaves them undefined until then).
    pub fn facts_vars(&self) -> Option<&Vars> {
        (self.facts_gathered || !self.module_facts.is_empty()).then_some(&self.exposed_facts)
    }

    /// Facts a module returned (`package_facts`, `service_facts`): variables of their own
    /// name and keys of `ansible_facts`, as Ansible adds them, until `meta: clear_facts`.
    pub fn add_facts(&mut self, facts: serde_json::Map<String, serde_json::Value>) {
        self.module_facts.extend(facts);
        self.refresh_exposed_facts();
    }

    /// What tasks see of the facts: the gathered ones (once gathered) and the modules'.
    fn refresh_exposed_facts(&mut self) {
        let mut exposed = if self.facts_gathered { self.facts_vars.clone() } else { Vars::new() };
        if !self.module_facts.is_empty() {
            let namespace = exposed.entry("ansible_facts".to_string()).or_insert_with(|| serde_json::json!({}));
            if let Some(m) = namespace.as_object_mut() {
                m.extend(self.module_facts.clone());
            }
            exposed.extend(self.module_facts.clone());
        }
        self.exposed_facts = exposed;
    }

    /// A play that gathers facts starts on this host.
    pub fn expose_facts(&mut self) {
        self.facts_gathered = true;
        self.refresh_exposed_facts();
    }

    /// `meta: clear_facts`: the facts are undefined for tasks again until gathered (gafix
    /// still reads what its own modules need).
    pub fn clear_facts(&mut self) {
        self.facts_gathered = false;
        self.module_facts.clear();
        self.refresh_exposed_facts();
    }

    /// Logs in as `user` from now on (a play's `remote_user`), or as the host's own user
    /// when `None`: a different user is a new connection, and its facts are read again.
    pub async fn login_as(&mut self, user: Option<&str>) {
        if self.own_user.is_none() {
            self.own_user = Some(self.spec.user.clone().unwrap_or_default());
        }
        let wanted = user.map(str::to_string).or_else(|| self.own_user.clone().filter(|u| !u.is_empty()));
        if wanted != self.spec.user {
            self.release().await;
            self.spec.user = wanted;
            self.all_stale = true;
        }
    }

    /// Sets the running task's environment (`export` lines) and time limit; `None`, `None`
    /// when it is done.
    pub fn set_task_limits(&mut self, environment: String, deadline: Option<std::time::Instant>) {
        self.environment = environment;
        self.task_deadline = deadline;
    }

    /// Its registered results.
    pub fn registered(&self) -> &Vars {
        &self.registered
    }

    /// Registers a task's result under `name`.
    /// `include_vars`: variables for this host from now on.
    pub fn include_vars(&mut self, vars: Vars) {
        self.included_vars.extend(vars);
    }

    pub fn included_vars(&self) -> &Vars {
        &self.included_vars
    }

    pub fn register(&mut self, name: &str, value: serde_json::Value) {
        self.registered.insert(name.to_string(), value);
    }

    /// Whether the host left the run (a failed task, or unreachable), as in Ansible.
    pub fn is_out(&self) -> bool {
        self.out
    }

    /// Takes the host out of the run.
    pub fn leave(&mut self) {
        self.out = true;
    }

    /// Back in the run (a block's `always:` runs on a host that failed in it).
    pub fn rejoin(&mut self) {
        self.out = false;
    }

    /// Commands sent so far (the probe included): SSH round trips.
    pub fn round_trips(&self) -> u32 {
        self.round_trips
    }

    /// Whether `-vv` shows this host's commands (off while a `no_log` task runs).
    pub fn set_log_commands(&mut self, on: bool) {
        self.log_commands = on;
    }

    async fn connect(&mut self) -> Result<(), TransportError> {
        if self.connection.is_none() {
            self.connection = Some(Connection::connect(&self.spec, self.timeouts.connect).await?);
        }
        Ok(())
    }

    /// Closes the connection; the next command reconnects.
    pub async fn disconnect(&mut self) {
        if let Some(c) = self.connection.take() {
            c.close().await;
        }
    }

    /// The run is done with the host: a kept master (`--persist`) stays for the next run.
    pub async fn release(&mut self) {
        if let Some(c) = self.connection.take() {
            c.release().await;
        }
    }

    /// A new connection, replacing any old one (after a reboot): `timeout` bounds the connect.
    pub async fn reconnect(&mut self, timeout: Duration) -> Result<(), TransportError> {
        self.disconnect().await;
        self.connection = Some(Connection::connect(&self.spec, timeout).await?);
        Ok(())
    }

    /// Runs a script on the host within the command timeout.
    pub async fn run(&mut self, script: &str, become_: Option<&Become>, stdin: Option<&str>) -> Result<CommandOutput, TransportError> {
        self.run_within(script, become_, stdin, self.timeouts.command).await
    }

    /// Runs a script on the host within `timeout`.
    pub async fn run_within(
        &mut self,
        script: &str,
        become_: Option<&Become>,
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandOutput, TransportError> {
        let timeout = match self.task_deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(TransportError::Timeout(Duration::ZERO));
                }
                timeout.min(left)
            }
            None => timeout,
        };
        self.connect().await?;
        self.round_trips += 1;
        // -vv: what runs where (the script's first lines, never its stdin; nothing of a
        // no_log task; secrets masked).
        if self.log_commands {
            let head = script.lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join(" | ");
            tracing::info!(host = %self.name, become_ = become_.is_some(), "run: {}", crate::secrets::redact(&head));
        } else {
            tracing::info!(host = %self.name, become_ = become_.is_some(), "run: (hidden: no_log)");
        }
        let connection = self.connection.as_ref().expect("connected");
        let with_environment;
        let script = if self.environment.is_empty() {
            script
        } else {
            with_environment = format!("{}{script}", self.environment);
            &with_environment
        };
        let mut result = connection.run(script, become_, stdin, timeout).await;
        if let Err(TransportError::StaleMaster(why)) = &result {
            // A master kept by an earlier run whose connection died (a reboot since): the
            // command never started, so it is sent again on a new master.
            tracing::info!(host = %self.name, "{why}; connecting anew");
            self.disconnect().await;
            self.connect().await?;
            let connection = self.connection.as_ref().expect("connected");
            result = connection.run(script, become_, stdin, timeout).await;
        }
        if matches!(result, Err(TransportError::Unreachable(_))) {
            // The master is gone; a later attempt (after a reboot) reconnects.
            self.disconnect().await;
        }
        result
    }

    /// Reads facts: everything on first use, then only what is stale or not yet known.
    pub async fn ensure_facts(&mut self, extra: &ProbeRequest) -> Result<(), TransportError> {
        let basics = self.facts.is_none() || self.all_stale;
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
        let path_stale = |p: &String| stale.paths && !self.fresh_paths.contains(p);
        for p in &extra.paths {
            if basics || path_stale(p) || !known.is_some_and(|f| f.paths.contains_key(p)) {
                request.paths.push(p.clone());
            }
        }
        for p in &extra.checksums {
            let known_sum = known.and_then(|f| f.paths.get(p)).is_some_and(|s| s.checksum.is_some() || !s.kind.starts_with("regular"));
            if basics || path_stale(p) || !known_sum {
                request.paths.push(p.clone());
                request.checksums.push(p.clone());
            }
        }
        for p in &extra.contents {
            let known_content = known.and_then(|f| f.paths.get(p)).is_some_and(|s| s.content.is_some() || !s.kind.starts_with("regular"));
            if basics || path_stale(p) || !known_content {
                request.paths.push(p.clone());
                request.contents.push(p.clone());
            }
        }
        for p in &extra.links {
            let known_link = known.and_then(|f| f.paths.get(p)).is_some_and(|s| s.link_target.is_some());
            if basics || path_stale(p) || !known_link {
                request.paths.push(p.clone());
                request.links.push(p.clone());
            }
        }
        let accounts_stale = basics || stale.accounts;
        let asks_accounts = !extra.users.is_empty() || !extra.shadow.is_empty() || extra.groups;
        if stale.accounts && !basics && asks_accounts {
            // Re-read every account known, so that none stays stale once the flag is cleared.
            if let Some(f) = known {
                request.users.extend(f.users.keys().cloned());
                request
                    .shadow
                    .extend(f.users.iter().filter(|(_, a)| a.as_ref().is_some_and(|a| a.password.is_some())).map(|(u, _)| u.clone()));
                request.groups |= f.groups.is_some();
            }
        }
        for u in &extra.users {
            if accounts_stale || !known.is_some_and(|f| f.users.contains_key(u)) {
                request.users.push(u.clone());
            }
        }
        for u in &extra.shadow {
            let known_hash = known.and_then(|f| f.users.get(u)).is_some_and(|a| a.as_ref().is_none_or(|a| a.password.is_some()));
            if accounts_stale || !known_hash {
                request.users.push(u.clone());
                request.shadow.push(u.clone());
            }
        }
        if extra.groups && (accounts_stale || known.is_none_or(|f| f.groups.is_none())) {
            request.groups = true;
        }
        if extra.apt_cache_age && (basics || stale.packages || known.is_none_or(|f| f.apt_cache_age.is_none())) {
            request.apt_cache_age = true;
        }
        if !basics && request.is_empty() {
            return Ok(());
        }
        request.normalize();
        let out = self.run(&facts::probe_script(&request, basics), None, None).await?;
        if out.rc != 0 {
            return Err(TransportError::Other(format!("the facts probe failed (exit {}): {}", out.rc, out.tail(3))));
        }
        self.absorb_probe(&out.stdout, &request, basics);
        if basics {
            self.stale = Stale::default();
            self.all_stale = false;
            self.fresh_paths.clear();
        } else {
            self.stale.packages &= extra.packages.is_empty();
            self.stale.units &= extra.units.is_empty();
            self.stale.accounts &= !asks_accounts;
            // Only the paths read now are current again; others a change touched stay stale.
            self.fresh_paths.extend(request.paths.iter().cloned());
        }
        Ok(())
    }

    /// Folds the output of a probe that ran with a change (`facts::probe_body` appended to
    /// the change's script) into the facts: what it re-read is current again.
    pub fn absorb_reread(&mut self, output: &str, request: &ProbeRequest) {
        self.absorb_probe(output, request, false);
        if !request.units.is_empty() {
            self.stale.units = false;
        }
        if !request.packages.is_empty() {
            self.stale.packages = false;
        }
    }

    fn absorb_probe(&mut self, output: &str, request: &ProbeRequest, basics: bool) {
        let mut f = if basics { Facts::default() } else { self.facts.take().unwrap_or_default() };
        facts::parse_probe(output, request, &mut f);
        self.facts_vars = f.ansible_vars();
        self.refresh_exposed_facts();
        self.facts = Some(f);
    }

    /// The facts; read before the first task runs.
    pub fn facts(&self) -> &Facts {
        self.facts.as_ref().expect("facts gathered before tasks run")
    }

    /// After a change on the host, the facts that may have moved (each kind of fact says
    /// which changes concern it).
    pub fn mark_changed(&mut self, change: Change) {
        let after = Stale::after(change);
        if after.paths {
            self.fresh_paths.clear();
        }
        self.stale = self.stale.union(after);
    }

    /// What to read again, in the same round trip as a change, so that no later task needs
    /// a round trip of its own to re-read it: every package and unit the plan names or the
    /// host's facts hold, when the change makes that kind stale.
    pub fn reread_request(&self, change: Change) -> ProbeRequest {
        let after = Stale::after(change);
        let known = self.facts.as_ref();
        let mut request = ProbeRequest::default();
        if after.packages {
            request.packages = self.probe.packages.iter().map(|p| crate::names::deb_base_name(p).to_string()).collect();
            request.packages.extend(known.into_iter().flat_map(|f| f.packages.keys().cloned()));
            request.apt_cache_age = known.is_some_and(|f| f.apt_cache_age.is_some());
        }
        if after.units {
            request.units = self.probe.units.clone();
            request.units.extend(known.into_iter().flat_map(|f| f.units.keys().cloned()));
        }
        request.normalize();
        request
    }

    /// After a reboot: everything is re-read.
    pub fn mark_all_stale(&mut self) {
        self.all_stale = true;
    }

    /// Check mode: packages an earlier task would have installed.
    pub fn predict_installed(&mut self, packages: &[String]) {
        self.predicted_packages.extend(packages.iter().cloned());
    }

    /// Check mode: whether an earlier task would have installed packages (a unit may arrive
    /// with them).
    pub fn packages_arriving(&self) -> bool {
        !self.predicted_packages.is_empty()
    }
}
