//! Command-line definitions. Flags mirror ansible-playbook's where they exist.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `gafix --version`: the package version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("GAFIX_COMMIT"), ")");

#[derive(Parser, Debug)]
#[command(
    name = "gafix",
    version = VERSION,
    about = "Converge fleets of VMs over SSH: the QEMU guest agent first, then patch and reboot",
    long_about = "gafix runs Ansible-syntax roles over plain SSH on hosts from an Ansible YAML inventory.\n\
                  Targets need only sh, sudo and their package manager: no agent, no Python.\n\n\
                  The default plan (no playbook given) runs stage 1, qemu_ga_fix (guest agent installed,\n\
                  enabled and running), then stage 2, patch_reboot (upgrade, reboot only when required,\n\
                  verify the agent), 25% of the hosts at a time, on hosts that passed stage 1 only.\n\n\
                  Exit codes as ansible-playbook: 0 ok, 1 error, 2 a host failed, 4 a host unreachable,\n\
                  5 bad options, 99 interrupted.",
    after_help = "Examples:\n  gafix converge -i hosts.yaml\n  gafix converge -i hosts.yaml --check --diff -l 'web:!web03'\n  \
                  gafix converge -i hosts.yaml site.yml --junit report.xml\n  gafix inventory -i hosts.yaml --graph\n  gafix validate -i hosts.yaml site.yml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a playbook (or the built-in plan) on the inventory's hosts.
    Converge(Box<ConvergeArgs>),
    /// ansible-playbook's command line (also: gafix linked as `ansible-playbook`).
    Playbook(Box<PlaybookArgs>),
    /// Show the inventory like ansible-inventory: --list, --host NAME or --graph.
    Inventory(InventoryArgs),
    /// Parse the inventory, the playbook and every role it names; report every error.
    Validate(ValidateArgs),
    /// Ask each host's hypervisor (libvirt, Proxmox or the agent channel's socket) whether
    /// the guest agent answers; no SSH to the guests.
    Agent(AgentArgs),
    /// List the SSH masters kept by --persist (or ansible.cfg's ControlPersist), or end them.
    Ssh(SshArgs),
    /// Show the ansible.cfg settings gafix uses, their values and where they come from.
    Config(ConfigArgs),
    /// Work with JSON reports: `gafix report merge` joins the reports of slices.
    Report(ReportArgs),
    /// Print the manual page (roff), generated from these definitions: `gafix man > gafix.1`.
    Man,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Inventory source (repeatable): a YAML, INI or JSON file, an executable inventory
    /// script, a directory of them, or a host list ("a,b,"). Default: ansible.cfg's inventory.
    #[arg(short = 'i', long = "inventory", alias = "inventory-file", value_name = "INVENTORY")]
    pub inventory: Vec<String>,

    /// Further limit the hosts with an Ansible host pattern ("web:&prod:!web03", "@file.retry").
    #[arg(short = 'l', long = "limit", value_name = "PATTERN")]
    pub limit: Option<String>,

    /// Extra variables, KEY=VALUE (repeatable) or @file.yaml; they beat every other variable.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,

    /// Where to look for roles (colon-separated), after the playbook's roles/ directory and
    /// before the playbook's own directory and the embedded roles.
    #[arg(long = "roles-path", value_name = "DIRS")]
    pub roles_path: Option<String>,

    /// More output: -v task timings, -vv the commands run on each host, -vvv debugging.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Colour in text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct ConvergeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Playbook to run; without one, the built-in plan (qemu_ga_fix, then patch_reboot).
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: Option<PathBuf>,

    /// Extra variables as trailing NAME=VALUE words (as Semaphore's custom apps pass them).
    #[arg(value_name = "NAME=VALUE")]
    pub trailing_vars: Vec<String>,

    /// Run only this worker's share of the hosts, as AWX job slicing cuts them: after
    /// --limit, hosts sorted by name, slice K gets every Nth from the Kth. Also from
    /// GAFIX_SLICE=K/N, or JOB_COMPLETION_INDEX (0-based) with GAFIX_SLICE_COUNT=N.
    #[arg(long = "slice", value_name = "K/N")]
    pub slice: Option<String>,

    /// How many hosts to work on at once [default: ansible.cfg's forks, else 50].
    #[arg(short = 'f', long = "forks", value_parser = clap::value_parser!(u32).range(1..))]
    pub forks: Option<u32>,

    /// Check mode: read facts and report what would change, changing nothing.
    #[arg(short = 'C', long = "check")]
    pub check: bool,

    /// Show before/after state of what changes (or would change).
    #[arg(short = 'D', long = "diff")]
    pub diff: bool,

    /// Before a VM's agent role runs, give it the agent channel at its hypervisor
    /// (gafix_hypervisor: Proxmox's agent option, libvirt's <channel>) when it has none. It
    /// takes effect at a fresh start: without --allow-restart the host fails "restart required".
    #[arg(long = "fix-hypervisor")]
    pub fix_hypervisor: bool,

    /// Let --fix-hypervisor restart a VM (orderly shutdown, never forced; start; wait for SSH),
    /// within the play's serial batches.
    #[arg(long = "allow-restart", requires = "fix_hypervisor")]
    pub allow_restart: bool,

    /// Seconds to wait for an SSH connection [default: ansible.cfg's timeout, else 10].
    #[arg(short = 'T', long = "timeout", value_parser = clap::value_parser!(u64).range(1..=crate::module::spec::MAX_SECONDS))]
    pub timeout: Option<u64>,

    /// Seconds a single remote command may run (package transactions are never interrupted).
    #[arg(long = "command-timeout", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=crate::module::spec::MAX_SECONDS))]
    pub command_timeout: u64,

    /// SSH host key checking: yes (default, like Ansible), accept-new (first contact), off.
    #[arg(long = "host-key-checking", value_enum, env = "GAFIX_HOST_KEY_CHECKING")]
    pub host_key_checking: Option<HostKeyChecking>,

    /// Ask for the sudo password once, at the start (it is sent on stdin, never logged).
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,

    /// Override the plays' serial (batch sizes): "1", "25%", or a list "1,5,25%".
    #[arg(long = "serial", value_name = "SIZES")]
    pub serial: Option<String>,

    /// Stop starting batches once a batch's failures exceed this percentage.
    #[arg(long = "max-fail-percentage", value_name = "PCT")]
    pub max_fail_percentage: Option<f64>,

    /// Write a JUnit XML report (one testcase per host and role).
    #[arg(long = "junit", value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write a JSON report to this file (also printed on stdout with --format json).
    #[arg(long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the failed and unreachable hosts here, for a later --limit @FILE.
    #[arg(long = "retry-file", value_name = "FILE")]
    pub retry_file: Option<PathBuf>,

    /// Run only tasks with these tags (comma-separated; repeatable), as Ansible: `always`
    /// runs unless skipped, `never` only when asked for, `tagged`/`untagged`/`all` work.
    #[arg(short = 't', long = "tags", value_name = "TAGS")]
    pub tags: Vec<String>,

    /// Skip tasks with these tags (comma-separated; repeatable).
    #[arg(long = "skip-tags", value_name = "TAGS")]
    pub skip_tags: Vec<String>,

    /// Run the handlers a host notified even after it failed (ansible.cfg's force_handlers too).
    #[arg(long = "force-handlers")]
    pub force_handlers: bool,

    /// Log in as this user where a host's variables and its play do not say (ansible-playbook's -u).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Become (sudo) on hosts whose variables and plays do not say otherwise.
    #[arg(short = 'b', long = "become")]
    pub become_: bool,

    /// Become this user where hosts and plays do not say (default root).
    #[arg(long = "become-user", value_name = "USER")]
    pub become_user: Option<String>,

    /// Only sudo is supported (given for ansible-playbook's command line).
    #[arg(long = "become-method", value_name = "METHOD")]
    pub become_method: Option<String>,

    /// SSH key file for hosts without ansible_ssh_private_key_file.
    #[arg(long = "private-key", alias = "key-file", value_name = "FILE")]
    pub private_key: Option<String>,

    /// ssh options for hosts without ansible_ssh_common_args.
    #[arg(long = "ssh-common-args", value_name = "ARGS", allow_hyphen_values = true)]
    pub ssh_common_args: Option<String>,

    /// More ssh options for hosts without ansible_ssh_extra_args.
    #[arg(long = "ssh-extra-args", value_name = "ARGS", allow_hyphen_values = true)]
    pub ssh_extra_args: Option<String>,

    /// Keep each host's SSH master after the run, until idle this long (60, 60s, 10m; `no`
    /// turns off ansible.cfg's ControlPersist), so that the next run within it pays no
    /// handshake. `gafix ssh --stop` ends them all.
    #[arg(long = "persist", value_name = "SECONDS", value_parser = parse_persist)]
    pub persist: Option<PersistArg>,

    /// Connection for hosts without ansible_connection: ssh or local.
    #[arg(short = 'c', long = "connection", value_name = "TYPE")]
    pub connection: Option<String>,

    /// Start at the first task of this name (`role : name` or a glob), as ansible-playbook.
    #[arg(long = "start-at-task", value_name = "NAME")]
    pub start_at_task: Option<String>,

    /// Print the tags of each play's tasks, then exit.
    #[arg(long = "list-tags")]
    pub list_tags: bool,

    /// Print the hosts each play would run on, then exit.
    #[arg(long = "list-hosts")]
    pub list_hosts: bool,

    /// Print the tasks each play would run, then exit.
    #[arg(long = "list-tasks")]
    pub list_tasks: bool,
}

#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["list", "host", "graph"])))]
pub struct InventoryArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// All groups and hosts as JSON (ansible-inventory's shape).
    #[arg(long)]
    pub list: bool,

    /// One host's variables as JSON.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// The group tree, optionally from GROUP down.
    #[arg(long, value_name = "GROUP", num_args = 0..=1, default_missing_value = "all")]
    pub graph: Option<String>,
}

#[derive(Args, Debug, Clone)]
#[command(after_help = "A host's hypervisor comes from its inventory variables:\n  \
    gafix_hypervisor: qga_socket   gafix_qga_socket: /run/qemu/vm1-qga.sock\n  \
    gafix_hypervisor: libvirt      libvirt_uri: qemu:///system (default)   libvirt_domain: NAME (default: the host's name)\n  \
    gafix_hypervisor: proxmox      proxmox_url: https://pve1:8006   proxmox_node: pve1   proxmox_vmid: 101\n                                 \
    the API token from PROXMOX_USER, PROXMOX_TOKEN_ID, PROXMOX_TOKEN_SECRET (or proxmox_user, ...),\n                                 \
    proxmox_validate_certs (default true), proxmox_ca_file\n\n\
    Exit codes: 0 every agent answered, 2 one did not, 4 a hypervisor could not be asked.")]
pub struct AgentArgs {
    #[command(subcommand)]
    pub question: AgentQuestion,
}

#[derive(Subcommand, Debug, Clone)]
pub enum AgentQuestion {
    /// guest-ping: does the agent answer the hypervisor?
    Ping(AgentQueryArgs),
    /// guest-info: the agent's version and the commands it allows.
    Info(AgentQueryArgs),
}

#[derive(Args, Debug, Clone)]
pub struct AgentQueryArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Seconds to wait for each agent's answer (Proxmox's own ping waits 3).
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0, value_parser = parse_seconds)]
    pub timeout: f64,

    /// How many hosts to ask at once.
    #[arg(short = 'f', long = "forks", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub forks: u32,
}

/// `--persist`: a ControlPersist time, or `no`.
#[derive(Clone, Copy, Debug)]
pub struct PersistArg(pub Option<crate::transport::persist::Persist>);

fn parse_persist(text: &str) -> Result<PersistArg, String> {
    crate::transport::persist::parse_control_persist(text).map(PersistArg).map_err(|e| e.replace("ControlPersist", "--persist"))
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err(format!("'{text}' is not a number of seconds between 0 and 3600")),
    }
}

#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Playbook to check; without one, the built-in plan.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: Option<PathBuf>,
}

/// ansible-playbook's command line: `gafix playbook ...`, or gafix installed (linked) under
/// the name `ansible-playbook`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ansible-playbook",
    version = VERSION,
    about = "gafix, run as ansible-playbook: the same command line, recap and exit codes",
    after_help = "Refused with a clear message: --step, -k/--ask-pass, --vault-id, --vault-password-file, -J/--ask-vault-pass, \
                  -M/--module-path. Accepted with no effect: --flush-cache (gafix keeps no fact cache)."
)]
pub struct PlaybookArgs {
    #[command(flatten)]
    pub run: ConvergeArgs,

    /// Refused: gafix has no step-by-step mode.
    #[arg(long = "step", hide = true)]
    pub step: bool,
    #[arg(short = 'k', long = "ask-pass", hide = true)]
    pub ask_pass: bool,
    #[arg(long = "vault-id", hide = true)]
    pub vault_id: Vec<String>,
    #[arg(long = "vault-password-file", alias = "vault-pass-file", hide = true)]
    pub vault_password_file: Vec<String>,
    #[arg(short = 'J', long = "ask-vault-pass", alias = "ask-vault-password", hide = true)]
    pub ask_vault_pass: bool,
    #[arg(short = 'M', long = "module-path", hide = true)]
    pub module_path: Option<String>,
    /// Accepted: gafix keeps no fact cache to flush.
    #[arg(long = "flush-cache", hide = true)]
    pub flush_cache: bool,
    /// Parse the playbook and its roles, then exit.
    #[arg(long = "syntax-check")]
    pub syntax_check: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SshArgs {
    /// End every kept master now (each stops taking sessions and exits once idle).
    #[arg(long = "stop")]
    pub stop: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ReportCommand {
    /// Merge the JSON reports of a run's slices (--slice) into one recap, one JUnit report
    /// and the fleet's exit code.
    Merge(MergeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// The slices' JSON reports (`gafix converge --json FILE`).
    #[arg(value_name = "REPORT", required = true)]
    pub reports: Vec<PathBuf>,

    /// Write the merged JSON report here.
    #[arg(long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the merged JUnit XML report here.
    #[arg(long = "junit", value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Colour in the recap.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Every setting gafix reads with its effective value and origin, then the settings of
    /// the file that gafix ignores (the default).
    #[arg(long)]
    pub list: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyChecking {
    /// Known hosts only (StrictHostKeyChecking=yes).
    Yes,
    /// Accept and remember unknown hosts; refuse changed keys.
    AcceptNew,
    /// No checking at all.
    Off,
}
