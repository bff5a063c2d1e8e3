//! The commands: load files, build the plan, run it, report. One place turns errors into
//! messages and exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use serde_json::Value as Json;

use crate::cli::{
    AgentArgs, AgentQuestion, Cli, ColorChoice, Command, CommonArgs, ConfigArgs, ConvergeArgs, Format, HostKeyChecking, InventoryArgs,
    MergeArgs, PlaybookArgs, ReportCommand, SshArgs, ValidateArgs,
};
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::engine;
use crate::inventory::{self, Inventory, Vars};
use crate::plan::{self, Overrides};
use crate::report::{self, text::TextReporter};
use crate::role::{Playbook, RoleSource, Serial};
use crate::session::Timeouts;
use crate::transport::{HostKeyPolicy, Secret};
use crate::yaml;

/// Every host ok.
pub const EXIT_OK: i32 = 0;
/// An error before or around the run (bad YAML, unknown role, a report not written).
pub const EXIT_ERROR: i32 = 1;
/// Bad command-line options.
pub const EXIT_BAD_OPTIONS: i32 = 5;

/// An error for the top-level report: a message and an exit code.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, for a person.
    pub message: String,
    /// The exit code it ends the program with.
    pub code: i32,
}

impl Failure {
    fn error(message: impl Into<String>) -> Self {
        Failure { message: message.into(), code: EXIT_ERROR }
    }
    fn options(message: impl Into<String>) -> Self {
        Failure { message: message.into(), code: EXIT_BAD_OPTIONS }
    }
}

/// The whole program: parses the command line, runs the command, returns the exit code.
pub fn main() -> i32 {
    // Installed (linked) as ansible-playbook, gafix takes ansible-playbook's command line.
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    if argv0.as_deref().and_then(Path::file_name).is_some_and(|n| n == "ansible-playbook") {
        return match PlaybookArgs::try_parse() {
            Ok(args) => {
                init_tracing(args.run.common.verbose);
                finish(playbook(args))
            }
            Err(e) => {
                let _ = e.print();
                if e.use_stderr() {
                    EXIT_BAD_OPTIONS
                } else {
                    EXIT_OK
                }
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BAD_OPTIONS } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    let verbose = match &cli.command {
        Command::Converge(a) => a.common.verbose,
        Command::Playbook(a) => a.run.common.verbose,
        Command::Inventory(a) => a.common.verbose,
        Command::Validate(a) => a.common.verbose,
        Command::Agent(a) => match &a.question {
            AgentQuestion::Ping(q) | AgentQuestion::Info(q) => q.common.verbose,
        },
        Command::Config(_) | Command::Ssh(_) | Command::Report(_) | Command::Man | Command::Completions { .. } => 0,
    };
    init_tracing(verbose);
    let result = match cli.command {
        Command::Converge(args) => converge(*args),
        Command::Playbook(args) => playbook(*args),
        Command::Inventory(args) => inventory_command(args),
        Command::Validate(args) => validate(args),
        Command::Agent(args) => agent_command(args),
        Command::Ssh(args) => ssh_command(args),
        Command::Config(args) => config_command(args),
        Command::Report(args) => match args.command {
            ReportCommand::Merge(m) => merge_reports(m),
        },
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| EXIT_OK)
            .map_err(|e| Failure::error(format!("cannot write the manual page: {e}"))),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "gafix", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
    };
    finish(result)
}

/// The exit code; an error is printed once, secrets masked.
fn finish(result: Result<i32, Failure>) -> i32 {
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("ERROR: {}", crate::secrets::redact(&f.message));
            f.code
        }
    }
}

/// `gafix playbook` / `ansible-playbook`: ansible-playbook's command line on `converge`.
fn playbook(args: PlaybookArgs) -> Result<i32, Failure> {
    let refused = [
        (args.step, "--step"),
        (args.ask_pass, "-k/--ask-pass (SSH passwords; use keys or SSH_AUTH_SOCK)"),
        (
            !args.vault_id.is_empty() || !args.vault_password_file.is_empty() || args.ask_vault_pass,
            "Ansible Vault (--vault-id, --vault-password-file, --ask-vault-pass)",
        ),
        (args.module_path.is_some(), "-M/--module-path"),
    ];
    if let Some((_, what)) = refused.iter().find(|(given, _)| *given) {
        return Err(Failure::options(format!("{what} is not supported by gafix yet")));
    }
    let run = args.run;
    let Some(book) = run.playbook.clone() else {
        return Err(Failure::options("ansible-playbook needs a playbook: ansible-playbook [options] PLAYBOOK"));
    };
    if let Some(more) = run.trailing_vars.iter().find(|w| !w.contains('=')) {
        return Err(Failure::options(format!("gafix runs one playbook at a time; run '{more}' on its own")));
    }
    if args.syntax_check {
        let config = load_config()?;
        let loaded = Playbook::load(&book).map_err(|d| Failure::error(d.to_string()))?;
        loaded
            .resolve(&role_source(&run.common, &config, Some(&book)))
            .map_err(|errors| Failure::error(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))?;
        print_yaml_warnings();
        println!("\nplaybook: {}", book.display());
        return Ok(EXIT_OK);
    }
    converge(run)
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 | 1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAFIX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("gafix={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn print_warnings(warnings: &[Diagnostic]) {
    for w in warnings {
        eprintln!("[WARNING]: {}", crate::secrets::redact(&w.to_string()));
    }
}

/// The loader's warnings (duplicate keys) for every file read so far.
fn print_yaml_warnings() {
    for w in yaml::take_warnings() {
        eprintln!("[WARNING]: {}: {}", w.location, w.message);
    }
}

/// ansible.cfg (and its environment variables), with its warnings printed.
fn load_config() -> Result<Config, Failure> {
    let config = Config::load().map_err(|e| Failure::error(e.to_string()))?;
    for w in &config.warnings {
        eprintln!("[WARNING]: {w}");
    }
    Ok(config)
}

/// The inventory sources: `-i`, else ansible.cfg's `inventory`, else Ansible's default.
fn inventory_sources(common: &CommonArgs, config: &Config) -> Result<Vec<String>, Failure> {
    if !common.inventory.is_empty() {
        return Ok(common.inventory.clone());
    }
    if let Some(list) = config.list("inventory") {
        return Ok(list);
    }
    let default = "/etc/ansible/hosts";
    if Path::new(default).exists() {
        return Ok(vec![default.to_string()]);
    }
    Err(Failure::options("no inventory: give -i SOURCE, or set [defaults] inventory in ansible.cfg (see `gafix config --list`)"))
}

fn load_inventory(common: &CommonArgs, config: &Config) -> Result<Inventory, Failure> {
    let inv = Inventory::load_all(&inventory_sources(common, config)?).map_err(|e| Failure::error(e.to_string()))?;
    print_warnings(&inv.warnings);
    Ok(inv)
}

fn merge_reports(args: MergeArgs) -> Result<i32, Failure> {
    for path in [&args.json, &args.junit].into_iter().flatten() {
        report::check_path(path).map_err(Failure::options)?;
    }
    let reports = report::merge::read(&args.reports).map_err(|e| Failure::error(e.to_string()))?;
    let merged = report::merge::merge(reports).map_err(|e| Failure::error(e.to_string()))?;
    let reporter = TextReporter::new(Box::new(std::io::stdout()), use_color(args.color), 0);
    reporter.recap(&merged);
    Ok(write_reports(&merged, args.json.as_deref(), args.junit.as_deref(), None))
}

/// This worker's slice: `--slice K/N`, else `GAFIX_SLICE=K/N`, else Kubernetes' 0-based
/// `JOB_COMPLETION_INDEX` with `GAFIX_SLICE_COUNT=N`.
fn slice_of(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<plan::Slice>, Failure> {
    if let Some(text) = flag.map(str::to_string).or_else(|| env("GAFIX_SLICE")) {
        return plan::Slice::parse(&text).map(Some).map_err(Failure::options);
    }
    match (env("JOB_COMPLETION_INDEX"), env("GAFIX_SLICE_COUNT")) {
        (Some(i), Some(n)) => {
            let index: usize = i.trim().parse().map_err(|_| Failure::options(format!("JOB_COMPLETION_INDEX '{i}' is not a number")))?;
            plan::Slice::parse(&format!("{}/{}", index + 1, n.trim())).map(Some).map_err(Failure::options)
        }
        _ => Ok(None),
    }
}

/// `gafix ssh [--stop]`: the masters kept for later runs, one line each.
fn ssh_command(args: SshArgs) -> Result<i32, Failure> {
    use crate::transport::{persist, ssh};
    let control = ssh::control_directory().map_err(Failure::error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::error(format!("cannot start the runtime: {e}")))?;
    let kept = persist::kept(&control);
    if kept.is_empty() {
        println!("no SSH masters kept in {}", control.display());
        return Ok(EXIT_OK);
    }
    runtime.block_on(async {
        for k in &kept {
            let state = if !persist::answers(k).await {
                // A socket left by a master that died: its folder goes.
                persist::stop(k).await;
                "gone"
            } else if args.stop {
                if persist::stop(k).await {
                    "stopped"
                } else {
                    "did not stop"
                }
            } else {
                "kept"
            };
            println!("{state}: {} ({})", k.target, k.socket.display());
        }
    });
    Ok(EXIT_OK)
}

fn config_command(args: ConfigArgs) -> Result<i32, Failure> {
    let config = load_config()?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&config.to_json()).unwrap_or_default()),
        Format::Text => print!("{}", config.listing()),
    }
    Ok(EXIT_OK)
}

/// ansible.cfg's connection settings, for hosts that do not set them.
fn connection_defaults(config: &Config) -> crate::transport::ConnectionDefaults {
    crate::transport::ConnectionDefaults {
        user: config.set("remote_user").map(str::to_string),
        key_file: config.set("private_key_file").map(str::to_string),
        become_: config.set("become").and_then(crate::config::parse_bool),
        become_user: config.set("become_user").map(str::to_string),
        ..Default::default()
    }
}

/// The command line's connection settings over ansible.cfg's (a host's own variables still win).
fn cli_connection_defaults(args: &ConvergeArgs, config: &Config) -> Result<crate::transport::ConnectionDefaults, Failure> {
    if let Some(m) = args.become_method.as_deref().filter(|m| *m != "sudo") {
        return Err(Failure::options(format!("--become-method {m} is not supported by gafix yet (only sudo)")));
    }
    let mut d = connection_defaults(config);
    d.user = args.user.clone().or(d.user);
    d.key_file = args.private_key.clone().or(d.key_file);
    d.become_ = if args.become_ { Some(true) } else { d.become_ };
    d.become_user = args.become_user.clone().or(d.become_user);
    d.ssh_common_args = args.ssh_common_args.clone();
    d.ssh_extra_args = args.ssh_extra_args.clone();
    d.connection = args.connection.clone();
    d.persist = match args.persist {
        Some(choice) => choice.0,
        // Checked when ansible.cfg was read.
        None => config.set("ssh_args").and_then(|a| crate::transport::persist::control_persist_in_args(a).ok().flatten()),
    };
    Ok(d)
}

/// `-e key=value`, `-e @file.yaml`, `-e '{"json": true}'`, as ansible-playbook reads them.
pub fn parse_extra_vars(items: &[String]) -> Result<Vars, Failure> {
    let mut vars = Vars::new();
    for item in items {
        let item = item.trim();
        let parsed: Json = if let Some(file) = item.strip_prefix('@') {
            let node = yaml::load_file(Path::new(file)).map_err(|e| Failure::options(format!("-e {item}: {e}")))?;
            node.map(|n| n.to_json()).unwrap_or(Json::Null)
        } else if item.starts_with('{') || item.starts_with('[') {
            let node = yaml::parse_str(item, Path::new("<extra vars>")).map_err(|e| Failure::options(format!("-e {item}: {e}")))?;
            node.map(|n| n.to_json()).unwrap_or(Json::Null)
        } else {
            let words = shlex::split(item).ok_or_else(|| Failure::options(format!("-e {item}: unbalanced quotes")))?;
            let mut map = serde_json::Map::new();
            for w in words {
                let (k, v) = w
                    .split_once('=')
                    .ok_or_else(|| Failure::options(format!("-e '{w}': expected KEY=VALUE, @FILE or a YAML/JSON mapping")))?;
                map.insert(k.to_string(), Json::String(v.to_string()));
            }
            Json::Object(map)
        };
        match parsed {
            Json::Object(m) => vars.extend(m),
            Json::Null => {}
            _ => return Err(Failure::options(format!("-e {item}: extra variables must be a mapping"))),
        }
    }
    Ok(vars)
}

/// Where roles come from. The built-in plan uses the built-in roles unless a roles path is
/// given: a `./roles/qemu_ga_fix` that happens to be in the current directory must not
/// replace the role that the gate relies on without anyone asking (a warning names it).
/// Where roles are found, as Ansible looks: the playbook's `roles/`, the roles path
/// (`--roles-path`, `ANSIBLE_ROLES_PATH`, else Ansible's default directories), the
/// playbook's own directory, then the embedded roles. The built-in plan uses the embedded
/// roles unless a roles path is given.
fn role_source(common: &CommonArgs, config: &Config, playbook: Option<&Path>) -> RoleSource {
    let configured: Option<Vec<PathBuf>> = match &common.roles_path {
        Some(paths) => Some(paths.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect()),
        None => config.list("roles_path").map(|l| l.into_iter().map(PathBuf::from).collect()),
    };
    let Some(book) = playbook else {
        if configured.is_none() {
            warn_shadowed_builtin_roles();
        }
        return RoleSource::new(configured.unwrap_or_default());
    };
    let dir = book.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    let mut paths = vec![dir.join("roles")];
    paths.extend(configured.unwrap_or_else(|| {
        let mut defaults: Vec<PathBuf> = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ansible/roles")).into_iter().collect();
        defaults.extend(["/usr/share/ansible/roles", "/etc/ansible/roles"].map(PathBuf::from));
        defaults
    }));
    paths.push(dir);
    RoleSource::new(paths)
}

fn warn_shadowed_builtin_roles() {
    for name in crate::role::embedded_role_names() {
        let shadow = Path::new("roles").join(name);
        // A copy identical to the built-in role (this project's own tree) changes nothing.
        let differs = crate::role::EMBEDDED
            .iter()
            .filter(|(p, _)| p.starts_with(&format!("roles/{name}/")))
            .any(|(p, text)| std::fs::read_to_string(p).ok().as_deref() != Some(*text));
        if shadow.join("tasks").is_dir() && differs {
            eprintln!(
                "[WARNING]: ./{} is not used: the built-in plan runs the built-in '{name}' role; pass --roles-path roles to run yours",
                shadow.display()
            );
        }
    }
}

/// `--tags a,b --tags c` -> a, b, c.
fn split_tags(args: &[String]) -> Vec<String> {
    args.iter().flat_map(|a| a.split(',')).map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
}

fn load_playbook(path: Option<&Path>) -> Result<Playbook, Failure> {
    match path {
        None => Ok(Playbook::default_plan()),
        Some(p) => Playbook::load(p).map_err(|d| Failure::error(d.to_string())),
    }
}

fn parse_serial(text: &str) -> Result<Vec<Serial>, Failure> {
    text.split(',').map(|s| Serial::parse(&Json::String(s.trim().to_string())).map_err(Failure::options)).collect()
}

fn use_color(choice: ColorChoice) -> bool {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    color_wanted(choice, &env, std::io::stdout().is_terminal())
}

/// Colour as CI tools and Semaphore ask for it: `--color` first; then `NO_COLOR` or
/// `ANSIBLE_NOCOLOR` turn it off, `ANSIBLE_FORCE_COLOR` or `CLICOLOR_FORCE` turn it on
/// without a terminal (a log viewer that renders ANSI); else only on a terminal.
fn color_wanted(choice: ColorChoice, env: &dyn Fn(&str) -> Option<String>, terminal: bool) -> bool {
    let truthy = |name: &str| env(name).is_some_and(|v| yaml::parse_bool_str(&v).unwrap_or(true) && v != "0");
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if env("NO_COLOR").is_some() || truthy("ANSIBLE_NOCOLOR") => false,
        ColorChoice::Auto if truthy("ANSIBLE_FORCE_COLOR") || truthy("CLICOLOR_FORCE") => true,
        ColorChoice::Auto => terminal,
    }
}

fn host_key_policy(choice: Option<HostKeyChecking>, config: &Config) -> HostKeyPolicy {
    let policy = match choice {
        Some(HostKeyChecking::Yes) => HostKeyPolicy::Strict,
        Some(HostKeyChecking::AcceptNew) => HostKeyPolicy::AcceptNew,
        Some(HostKeyChecking::Off) => HostKeyPolicy::Off,
        None if config.bool("host_key_checking") == Some(false) => HostKeyPolicy::Off,
        None => HostKeyPolicy::Strict,
    };
    if policy == HostKeyPolicy::Off {
        let why = match (choice, config.get("host_key_checking")) {
            (Some(_), _) => "--host-key-checking off".to_string(),
            (None, Some((_, origin))) => format!("host_key_checking = False, {origin}"),
            (None, None) => "host_key_checking".to_string(),
        };
        eprintln!("[WARNING]: SSH host keys are not checked ({why}): a host that is not the one you meant would not be noticed");
    }
    policy
}

fn become_password(ask: bool) -> Result<Option<Secret>, Failure> {
    if let Ok(p) = std::env::var("GAFIX_BECOME_PASSWORD") {
        crate::secrets::register(&p);
        return Ok(Some(Secret::new(p)));
    }
    if !ask {
        return Ok(None);
    }
    let password = read_password("BECOME password: ")
        .map_err(|e| Failure::options(format!("--ask-become-pass needs a terminal ({e}); in CI set GAFIX_BECOME_PASSWORD instead")))?;
    crate::secrets::register(&password);
    Ok(Some(Secret::new(password)))
}

/// Asks on the controlling terminal, as ansible-playbook's getpass does (so that a tool
/// that drives a pseudo-terminal, like Semaphore, sees the prompt and answers it), echo off.
fn read_password(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for this open terminal.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_termios = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_termios {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: sets the attributes of the terminal just read.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let result = std::io::BufReader::new(&tty).read_line(&mut line);
    if have_termios {
        // SAFETY: restores what tcgetattr returned.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    let _ = (&tty).write_all(b"\n");
    result?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `group_vars/` and `host_vars/` beside the playbook (Ansible's playbook stage).
fn add_playbook_vars(inv: &mut Inventory, playbook: Option<&Path>) -> Result<(), Failure> {
    let Some(book) = playbook else { return Ok(()) };
    let dir = book.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    inv.load_playbook_vars(dir).map_err(|e| Failure::error(e.to_string()))
}

fn converge(mut args: ConvergeArgs) -> Result<i32, Failure> {
    // Trailing NAME=VALUE words are extra variables (a first one may have landed in PLAYBOOK).
    if let Some(p) = args.playbook.clone().filter(|p| !p.exists() && p.to_string_lossy().contains('=')) {
        args.trailing_vars.insert(0, p.to_string_lossy().into_owned());
        args.playbook = None;
    }
    let config = load_config()?;
    let mut inv = load_inventory(&args.common, &config)?;
    add_playbook_vars(&mut inv, args.playbook.as_deref())?;
    let mut extra_items = args.trailing_vars.clone();
    extra_items.extend(args.common.extra_vars.iter().cloned());
    let extra_vars = parse_extra_vars(&extra_items)?;
    let book = load_playbook(args.playbook.as_deref())?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let overrides = Overrides {
        slice: slice_of(args.slice.as_deref(), &env)?,
        limit: args.common.limit.clone(),
        serial: args.serial.as_deref().map(parse_serial).transpose()?,
        max_fail_percentage: args.max_fail_percentage,
        tags: split_tags(&args.tags),
        skip_tags: split_tags(&args.skip_tags),
        start_at_task: args.start_at_task.clone(),
    };
    if let Some(p) = overrides.max_fail_percentage {
        if !(0.0..=100.0).contains(&p) {
            return Err(Failure::options("--max-fail-percentage must be from 0 to 100"));
        }
    }
    let plan = plan::build(&inv, &book, &role_source(&args.common, &config, args.playbook.as_deref()), &overrides);
    print_yaml_warnings();
    let plan = plan.map_err(|e| Failure::error(e.to_string()))?;
    if args.list_hosts || args.list_tasks || args.list_tags {
        print_plan(&plan, args.list_hosts, args.list_tasks, args.list_tags);
        return Ok(EXIT_OK);
    }
    // ansible.cfg's retry files, unless --retry-file says where.
    let retry_file = args.retry_file.clone().or_else(|| {
        (config.bool("retry_files_enabled") == Some(true)).then(|| {
            let stem = args
                .playbook
                .as_deref()
                .and_then(Path::file_stem)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "gafix".into());
            let dir = match config.set("retry_files_save_path") {
                Some(d) => PathBuf::from(d),
                None => args.playbook.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default(),
            };
            dir.join(format!("{stem}.retry"))
        })
    });
    if let (None, Some(dir)) = (&args.retry_file, retry_file.as_deref().and_then(Path::parent)) {
        // As Ansible does, the retry directory is made when needed.
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| Failure::options(format!("retry_files_save_path {}: {e}", dir.display())))?;
        }
    }
    // Reports go where they were asked to, or the run does not start.
    for path in [&args.json, &args.junit, &retry_file].into_iter().flatten() {
        report::check_path(path).map_err(Failure::options)?;
    }
    let opts = engine::Options {
        forks: args.forks.map(u64::from).or_else(|| config.int("forks")).unwrap_or(50).max(1) as usize,
        check: args.check,
        diff: args.diff,
        timeouts: Timeouts {
            connect: Duration::from_secs(args.timeout.or_else(|| config.int("timeout")).unwrap_or(10).max(1)),
            command: Duration::from_secs(args.command_timeout.max(1)),
        },
        host_key_policy: host_key_policy(args.host_key_checking, &config),
        become_password: become_password(args.ask_become_pass || config.bool("become_ask_pass") == Some(true))?,
        extra_vars,
        connection_defaults: cli_connection_defaults(&args, &config)?,
        verbosity: args.common.verbose,
        connect_with: None,
        fix_hypervisor: args.fix_hypervisor,
        allow_restart: args.allow_restart,
        tags: overrides.tags.clone(),
        skip_tags: overrides.skip_tags.clone(),
        force_handlers: args.force_handlers || config.bool("force_handlers") == Some(true),
    };
    let json_stdout = args.common.format == Format::Json;
    let mut reporter = TextReporter::new(
        if json_stdout { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) },
        use_color(args.common.color),
        args.common.verbose,
    );
    if !json_stdout && std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
        reporter = reporter.with_progress();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Failure::error(e.to_string()))?;
    let interrupt = engine::Interrupt::default();
    let report = runtime.block_on(async {
        interrupt.listen();
        engine::run(&plan, &inv, &opts, &reporter, &interrupt).await
    });
    reporter.recap(&report);
    if json_stdout {
        println!("{}", report::to_json(&report));
    }
    let retry = retry_file.as_deref().map(|path| (path, &inv));
    Ok(write_reports(&report, args.json.as_deref(), args.junit.as_deref(), retry))
}

/// Writes the reports asked for and returns the exit code. Every report is attempted; one
/// that cannot be written is an error on its own line, and a run that was otherwise fine
/// exits 1 instead of 0 (never silently).
fn write_reports(report: &engine::events::RunReport, json: Option<&Path>, junit: Option<&Path>, retry: Option<(&Path, &Inventory)>) -> i32 {
    let mut unwritten = 0;
    let mut note = |path: &Path, result: std::io::Result<()>| {
        if let Err(e) = result {
            eprintln!("ERROR: report {}: {e}", path.display());
            unwritten += 1;
        }
    };
    if let Some(path) = json {
        note(path, report::write_json(report, path));
    }
    if let Some(path) = junit {
        note(path, report::junit::write(report, path));
    }
    if let Some((path, inv)) = retry {
        note(path, report::write_retry(report, path, |h| inv.hosts.contains_key(h)));
    }
    if unwritten > 0 && report.exit_code == EXIT_OK {
        EXIT_ERROR
    } else {
        report.exit_code
    }
}

fn print_plan(plan: &plan::Plan, hosts: bool, tasks: bool, tags: bool) {
    println!("playbook: {}", plan.source);
    for p in &plan.plays {
        let gate = p.play.gate.as_deref().map(|g| format!(", gated on '{g}'")).unwrap_or_default();
        let serial = if p.serial.is_empty() {
            String::new()
        } else {
            format!(", serial {}", p.serial.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "))
        };
        println!(
            "\n  play #{} ({}): {}{gate}{serial}",
            plan.plays.iter().position(|x| std::ptr::eq(x, p)).unwrap_or(0) + 1,
            p.play.hosts,
            p.play.name
        );
        if hosts {
            println!("    hosts ({}):", p.hosts.len());
            for h in &p.hosts {
                println!("      {h}");
            }
        }
        if tasks {
            println!("    tasks:");
            for t in p.tasks.iter().flat_map(|t| t.flattened()).filter(|t| !t.flush_handlers && t.block.is_none()) {
                let role = t.role.as_deref().map(|r| format!("{r} : ")).unwrap_or_default();
                let task_tags = if t.kw.tags.is_empty() { String::new() } else { format!(" TAGS: [{}]", t.kw.tags.join(", ")) };
                println!("      {role}{}  ({}, {}){task_tags}", t.display_name(), t.module.name(), t.location);
            }
        }
        if tags {
            let mut all: Vec<&String> = p
                .tasks
                .iter()
                .flat_map(|t| t.flattened())
                .filter(|t| !t.flush_handlers && t.block.is_none())
                .flat_map(|t| t.kw.tags.iter())
                .collect();
            all.sort();
            all.dedup();
            println!("    TASK TAGS: [{}]", all.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "));
        }
    }
}

fn validate(args: ValidateArgs) -> Result<i32, Failure> {
    let mut problems: Vec<String> = Vec::new();
    let config = match load_config() {
        Ok(c) => c,
        Err(f) => {
            problems.push(f.message);
            Config::default()
        }
    };
    let loaded_inventory = inventory_sources(&args.common, &config)
        .and_then(|sources| Inventory::load_all(&sources).map_err(|e| Failure::error(e.to_string())));
    let inv = match loaded_inventory.and_then(|mut inv| add_playbook_vars(&mut inv, args.playbook.as_deref()).map(|()| inv)) {
        Ok(inv) => {
            print_warnings(&inv.warnings);
            Some(inv)
        }
        Err(e) => {
            problems.push(e.message);
            None
        }
    };
    let extra_vars = match parse_extra_vars(&args.common.extra_vars) {
        Ok(v) => v,
        Err(f) => {
            problems.push(f.message);
            Vars::new()
        }
    };
    // Every host's connection settings, checked as `converge` reads them.
    if let Some(inv) = &inv {
        let templar = crate::template::Templar::new();
        let hosts = match &args.common.limit {
            Some(l) => inventory::select(inv, l).unwrap_or_default(),
            None => inv.all_hosts(),
        };
        for h in hosts {
            if let Err(e) =
                engine::connection_for(&h, inv, &extra_vars, &connection_defaults(&config), HostKeyPolicy::Strict, None, &templar)
            {
                problems.push(match e.place {
                    Some(place) => format!("{place}: host {h}: {}", e.message),
                    None => format!("host {h}: {}", e.message),
                });
            }
        }
    }
    let loaded = match args.playbook.as_deref() {
        None => Ok(Playbook::default_plan()),
        Some(p) => {
            let (book, errors) = Playbook::load_collecting(p);
            problems.extend(errors.iter().map(|d| d.to_string()));
            Ok::<_, Failure>(book)
        }
    };
    match loaded {
        Ok(book) => {
            // The plan `converge` would run, built the same way (roles, host patterns, --limit,
            // and a plan left without hosts).
            let roles = role_source(&args.common, &config, args.playbook.as_deref());
            let built = match &inv {
                Some(inv) => {
                    let overrides = Overrides { limit: args.common.limit.clone(), ..Default::default() };
                    plan::build(inv, &book, &roles, &overrides).map(|plan| plan.plays.into_iter().flat_map(|p| p.roles).collect::<Vec<_>>())
                }
                None => book
                    .resolve(&roles)
                    .map(|plays| plays.into_iter().flat_map(|p| p.roles).collect::<Vec<_>>())
                    .map_err(plan::PlanError::Roles),
            };
            if let Ok(instances) = &built {
                let mut warned = std::collections::HashSet::new();
                for instance in instances.iter().filter(|i| warned.insert(i.role.origin.clone())) {
                    for d in &instance.role.other_task_problems {
                        eprintln!("[WARNING]: {d} (this file runs only where a task includes it)");
                    }
                }
            }
            if let Err(e) = built {
                problems.push(e.to_string());
            }
        }
        Err(f) => problems.push(f.message),
    }
    print_yaml_warnings();
    if problems.is_empty() {
        println!("ok: inventory, playbook and roles are valid");
        Ok(EXIT_OK)
    } else {
        for p in &problems {
            eprintln!("{}", crate::secrets::redact(p));
        }
        let count: usize = problems.iter().map(|p| p.lines().count()).sum();
        Err(Failure::error(format!("{count} problem{} found", if count == 1 { "" } else { "s" })))
    }
}

fn inventory_command(args: InventoryArgs) -> Result<i32, Failure> {
    let config = load_config()?;
    let inv = load_inventory(&args.common, &config)?;
    let extra = parse_extra_vars(&args.common.extra_vars)?;
    print_yaml_warnings();
    let hosts = match &args.common.limit {
        Some(l) => inventory::select(&inv, l).map_err(|e| Failure::error(e.to_string()))?,
        None => inv.all_hosts(),
    };
    let as_text = inventory::output::ansible_json;
    if args.list {
        println!("{}", as_text(&inventory::output::list(&inv, &hosts, &extra)));
    } else if let Some(h) = &args.host {
        if !inv.hosts.contains_key(h) {
            return Err(Failure::error(format!("host '{h}' is not in the inventory")));
        }
        println!("{}", as_text(&Json::Object(inventory::output::host(&inv, h, &extra))));
    } else if let Some(group) = &args.graph {
        if !inv.groups.contains_key(group) {
            return Err(Failure::error(format!("group '{group}' is not in the inventory")));
        }
        for line in inventory::output::graph(&inv, group, &hosts) {
            println!("{line}");
        }
    }
    Ok(EXIT_OK)
}

/// `gafix agent ping|info`: each selected host's hypervisor, asked concurrently.
fn agent_command(args: AgentArgs) -> Result<i32, Failure> {
    use crate::hypervisor::{fleet, Access};
    let (question, q) = match args.question {
        AgentQuestion::Ping(q) => (fleet::Question::Ping, q),
        AgentQuestion::Info(q) => (fleet::Question::Info, q),
    };
    let config = load_config()?;
    let inv = load_inventory(&q.common, &config)?;
    let extra = parse_extra_vars(&q.common.extra_vars)?;
    print_yaml_warnings();
    let hosts = match &q.common.limit {
        Some(l) => inventory::select(&inv, l).map_err(|e| Failure::error(e.to_string()))?,
        None => inv.all_hosts(),
    };
    if hosts.is_empty() {
        return Err(Failure::error("no hosts matched"));
    }
    let templar = crate::template::Templar::new();
    let env = |name: &str| std::env::var(name).ok();
    let configured: Vec<(String, fleet::Configured)> = hosts
        .into_iter()
        .map(|h| {
            let access =
                engine::prepare::rendered_host_vars(&h, &inv, &extra, &templar).and_then(|vars| Access::from_vars(&h, &vars, &env));
            (h, access)
        })
        .collect();
    let timeout = std::time::Duration::from_secs_f64(q.timeout);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::error(format!("cannot start the runtime: {e}")))?;
    let answers = runtime.block_on(fleet::ask_all(configured, question, timeout, q.forks as usize));
    if !fleet::any_asked(&answers) {
        return Err(Failure::error(
            "none of the selected hosts has a hypervisor configured: set gafix_hypervisor (qga_socket, libvirt or proxmox) in the inventory",
        ));
    }
    match q.common.format {
        Format::Json => println!("{}", crate::secrets::redact(&serde_json::to_string_pretty(&fleet::json_report(&answers)).expect("JSON"))),
        Format::Text => {
            for a in &answers {
                println!("{}", crate::secrets::redact(&fleet::text_line(a, question)));
            }
        }
    }
    Ok(fleet::exit_code(&answers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn colour_as_ci_tools_and_semaphore_ask() {
        assert!(color_wanted(ColorChoice::Auto, &env_of(&[("ANSIBLE_FORCE_COLOR", "True")]), false), "Semaphore's log renders ANSI");
        assert!(color_wanted(ColorChoice::Auto, &env_of(&[("CLICOLOR_FORCE", "1")]), false));
        assert!(!color_wanted(ColorChoice::Auto, &env_of(&[("CLICOLOR_FORCE", "0")]), false));
        assert!(!color_wanted(ColorChoice::Auto, &env_of(&[("NO_COLOR", "1"), ("ANSIBLE_FORCE_COLOR", "1")]), true));
        assert!(!color_wanted(ColorChoice::Auto, &env_of(&[("ANSIBLE_NOCOLOR", "yes")]), true));
        assert!(color_wanted(ColorChoice::Auto, &env_of(&[]), true));
        assert!(!color_wanted(ColorChoice::Auto, &env_of(&[]), false), "a log without a terminal gets no escapes");
        assert!(color_wanted(ColorChoice::Always, &env_of(&[("NO_COLOR", "1")]), false), "--color wins");
    }

    #[test]
    fn the_slice_comes_from_the_flag_or_the_environment() {
        let s = |flag: Option<&str>, env: &'static [(&'static str, &'static str)]| slice_of(flag, &env_of(env)).map_err(|f| f.message);
        assert_eq!(s(Some("2/3"), &[("GAFIX_SLICE", "1/3")]), Ok(Some(plan::Slice { index: 2, count: 3 })));
        assert_eq!(s(None, &[("GAFIX_SLICE", "1/3")]), Ok(Some(plan::Slice { index: 1, count: 3 })));
        assert_eq!(s(None, &[("JOB_COMPLETION_INDEX", "0"), ("GAFIX_SLICE_COUNT", "4")]), Ok(Some(plan::Slice { index: 1, count: 4 })));
        assert_eq!(s(None, &[("JOB_COMPLETION_INDEX", "0")]), Ok(None), "an index without a count is not a slice");
        assert_eq!(s(None, &[]), Ok(None));
        assert!(s(Some("4/3"), &[]).unwrap_err().contains("expected K/N"));
    }
}
