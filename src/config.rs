//! `ansible.cfg`, found as Ansible finds it (`ANSIBLE_CONFIG`, `./ansible.cfg`,
//! `~/.ansible.cfg`, `/etc/ansible/ansible.cfg`: the first that exists), with the settings
//! gafix honours, each overridden by its `ANSIBLE_*` environment variable and then by the
//! command line. Every other setting in the file is listed by `gafix config --list` as
//! ignored: nothing is read and then silently dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::yaml::Location;

/// How a setting's text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Bool,
    /// A path; relative ones are relative to the file that sets it.
    Path,
    /// Paths separated by this character.
    Paths(char),
}

/// A setting gafix knows.
pub struct Def {
    pub name: &'static str,
    pub section: &'static str,
    pub env: &'static str,
    pub kind: Kind,
    /// gafix's default, if it has one.
    pub default: Option<&'static str>,
    /// What gafix does with it.
    pub effect: &'static str,
}

/// The settings gafix reads. Anything else in the file is listed as ignored.
pub const SETTINGS: &[Def] = &[
    def("inventory", "defaults", "ANSIBLE_INVENTORY", Kind::Paths(','), None, "inventory sources when no -i is given"),
    def("roles_path", "defaults", "ANSIBLE_ROLES_PATH", Kind::Paths(':'), None, "roles path when no --roles-path is given"),
    def("forks", "defaults", "ANSIBLE_FORKS", Kind::Int, Some("50"), "hosts worked on at once when no -f is given"),
    def(
        "remote_user",
        "defaults",
        "ANSIBLE_REMOTE_USER",
        Kind::Text,
        None,
        "login user of hosts without ansible_user or a play's remote_user",
    ),
    def(
        "private_key_file",
        "defaults",
        "ANSIBLE_PRIVATE_KEY_FILE",
        Kind::Path,
        None,
        "SSH key of hosts without ansible_ssh_private_key_file",
    ),
    def("host_key_checking", "defaults", "ANSIBLE_HOST_KEY_CHECKING", Kind::Bool, Some("True"), "False = --host-key-checking off"),
    def("timeout", "defaults", "ANSIBLE_TIMEOUT", Kind::Int, Some("10"), "SSH connection timeout (seconds) when no -T is given"),
    def(
        "retry_files_enabled",
        "defaults",
        "ANSIBLE_RETRY_FILES_ENABLED",
        Kind::Bool,
        Some("False"),
        "write PLAYBOOK.retry when no --retry-file is given",
    ),
    def(
        "retry_files_save_path",
        "defaults",
        "ANSIBLE_RETRY_FILES_SAVE_PATH",
        Kind::Path,
        None,
        "where retry files go (else beside the playbook)",
    ),
    def("become", "privilege_escalation", "ANSIBLE_BECOME", Kind::Bool, Some("False"), "become for hosts without ansible_become"),
    def(
        "become_user",
        "privilege_escalation",
        "ANSIBLE_BECOME_USER",
        Kind::Text,
        Some("root"),
        "become user for hosts without ansible_become_user",
    ),
    def("become_method", "privilege_escalation", "ANSIBLE_BECOME_METHOD", Kind::Text, Some("sudo"), "only sudo is supported"),
    def("become_ask_pass", "privilege_escalation", "ANSIBLE_BECOME_ASK_PASS", Kind::Bool, Some("False"), "True = -K"),
    def(
        "ssh_args",
        "ssh_connection",
        "ANSIBLE_SSH_ARGS",
        Kind::Text,
        None,
        "its ControlPersist keeps each host's SSH master that long after the run (as --persist); the other options are not used: gafix keeps one multiplexed master per host itself",
    ),
    def(
        "control_path_dir",
        "ssh_connection",
        "ANSIBLE_SSH_CONTROL_PATH_DIR",
        Kind::Text,
        None,
        "accepted, not used: gafix's control sockets live in a private directory",
    ),
    def(
        "pipelining",
        "ssh_connection",
        "ANSIBLE_PIPELINING",
        Kind::Bool,
        None,
        "accepted, not used: gafix always sends its scripts on the open session",
    ),
];

const fn def(
    name: &'static str,
    section: &'static str,
    env: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    effect: &'static str,
) -> Def {
    Def { name, section, env, kind, default, effect }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(Location),
    Env(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(at) => write!(f, "{at}"),
            Origin::Env(name) => write!(f, "env {name}"),
        }
    }
}

/// One `key = value` of the file.
#[derive(Clone, Debug)]
pub struct Entry {
    pub section: String,
    pub key: String,
    pub value: String,
    pub at: Location,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(Diagnostic),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The effective settings.
#[derive(Debug, Default)]
pub struct Config {
    /// The file read, if one was found.
    pub file: Option<PathBuf>,
    /// Each known setting that has a value: its text (paths resolved) and origin.
    values: BTreeMap<&'static str, (String, Origin)>,
    /// Settings in the file that gafix does not use.
    pub ignored: Vec<Entry>,
    /// Things to tell the user (a world-writable directory's ansible.cfg skipped...).
    pub warnings: Vec<String>,
}

impl Config {
    /// Finds and reads the configuration as Ansible does, with the process's environment.
    pub fn load() -> Result<Config, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::load_with(&env, &cwd, home.as_deref())
    }

    pub fn load_with(env: &dyn Fn(&str) -> Option<String>, cwd: &Path, home: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.file = find(env, cwd, home, &mut config.warnings);
        let entries = match &config.file {
            Some(path) => parse(&std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.clone(), source })?, path)?,
            None => Vec::new(),
        };
        let base = config.file.as_ref().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_else(|| cwd.to_path_buf());
        for entry in entries {
            match SETTINGS.iter().find(|d| d.name == entry.key && section_matches(d, &entry.section)) {
                Some(d) => {
                    let value = resolve(d.kind, &entry.value, &base, home);
                    check(d, &value).map_err(|m| ConfigError::Invalid(Diagnostic::new(&entry.at, m)))?;
                    config.values.insert(d.name, (value, Origin::File(entry.at.clone())));
                }
                None => config.ignored.push(entry),
            }
        }
        for d in SETTINGS {
            if let Some(v) = env(d.env).filter(|v| !v.is_empty()) {
                let value = resolve(d.kind, &v, cwd, home);
                check(d, &value).map_err(|m| ConfigError::Invalid(Diagnostic::new(&Location::synthetic(d.env), m)))?;
                config.values.insert(d.name, (value, Origin::Env(d.env)));
            }
        }
        Ok(config)
    }

    /// A setting's text and where it came from (gafix's default when nothing set it).
    pub fn get(&self, name: &str) -> Option<(String, Origin)> {
        if let Some(v) = self.values.get(name) {
            return Some(v.clone());
        }
        let d = SETTINGS.iter().find(|d| d.name == name)?;
        d.default.map(|v| (v.to_string(), Origin::Default))
    }

    /// A setting set by the file or the environment (not a default).
    pub fn set(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|(v, _)| v.as_str())
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(|(v, _)| parse_bool(&v))
    }

    pub fn int(&self, name: &str) -> Option<u64> {
        self.set(name).and_then(|v| v.trim().parse().ok())
    }

    /// A list setting's items.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        let d = SETTINGS.iter().find(|d| d.name == name)?;
        let Kind::Paths(sep) = d.kind else { return None };
        self.set(name).map(|v| v.split(sep).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
    }

    /// `gafix config --list`: each setting's effective value and origin, then what is ignored.
    pub fn listing(&self) -> String {
        let mut out = format!(
            "config file: {}\n",
            self.file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none found (ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg)".into())
        );
        for d in SETTINGS {
            let (value, origin) = match self.get(d.name) {
                Some((v, o)) => (v, o.to_string()),
                None => ("(unset)".to_string(), "default".to_string()),
            };
            out += &format!("[{}] {} = {}  ({}; {})\n", d.section, d.name, value, origin, d.effect);
        }
        if !self.ignored.is_empty() {
            out += "ignored (gafix does not use these settings):\n";
            for e in &self.ignored {
                out += &format!("[{}] {} = {}  ({})\n", e.section, e.key, e.value, e.at);
            }
        }
        out
    }

    /// The same as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let settings: Vec<serde_json::Value> = SETTINGS
            .iter()
            .map(|d| {
                let (value, origin) = self.get(d.name).map(|(v, o)| (Some(v), o.to_string())).unwrap_or((None, "default".into()));
                serde_json::json!({"section": d.section, "name": d.name, "env": d.env, "value": value, "origin": origin, "effect": d.effect})
            })
            .collect();
        let ignored: Vec<serde_json::Value> = self
            .ignored
            .iter()
            .map(|e| serde_json::json!({"section": e.section, "name": e.key, "value": e.value, "origin": e.at.to_string()}))
            .collect();
        serde_json::json!({"file": self.file, "settings": settings, "ignored": ignored})
    }
}

fn section_matches(d: &Def, section: &str) -> bool {
    // Ansible reads pipelining from [connection] too.
    section == d.section || (d.name == "pipelining" && section == "connection")
}

fn check(d: &Def, value: &str) -> Result<(), String> {
    match d.kind {
        Kind::Int if value.trim().parse::<u64>().is_err() => Err(format!("{}: '{value}' is not a whole number", d.name)),
        Kind::Bool if parse_bool(value).is_none() => {
            Err(format!("{}: '{value}' is not a boolean (true/false, yes/no, on/off, 1/0)", d.name))
        }
        _ if d.name == "become_method" && value.trim() != "sudo" => {
            Err(format!("become_method: '{value}' is not supported by gafix (only sudo)"))
        }
        _ if d.name == "ssh_args" => {
            crate::transport::persist::control_persist_in_args(value).map(|_| ()).map_err(|m| format!("ssh_args: {m}"))
        }
        _ => Ok(()),
    }
}

/// Ansible's `boolean()`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "1" | "true" | "y" | "t" => Some(true),
        "no" | "off" | "0" | "false" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

/// Paths resolved as Ansible resolves them: `~` expanded, relative ones from `base`.
fn resolve(kind: Kind, value: &str, base: &Path, home: Option<&Path>) -> String {
    let one = |p: &str| -> String {
        let p = p.trim();
        let expanded = match (p.strip_prefix("~/"), home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ if p == "~" && home.is_some() => home.unwrap().to_path_buf(),
            _ => PathBuf::from(p),
        };
        // A comma in an inventory entry is a host list, not a path.
        if expanded.is_absolute() || p.contains(',') {
            expanded.display().to_string()
        } else {
            base.join(expanded).display().to_string()
        }
    };
    match kind {
        Kind::Path => one(value),
        Kind::Paths(sep) => value.split(sep).filter(|s| !s.trim().is_empty()).map(one).collect::<Vec<_>>().join(&sep.to_string()),
        _ => value.trim().to_string(),
    }
}

/// The file Ansible would read.
fn find(env: &dyn Fn(&str) -> Option<String>, cwd: &Path, home: Option<&Path>, warnings: &mut Vec<String>) -> Option<PathBuf> {
    if let Some(p) = env("ANSIBLE_CONFIG").filter(|p| !p.is_empty()) {
        let mut path = match (p.strip_prefix("~/"), home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => PathBuf::from(&p),
        };
        if path.is_dir() {
            path = path.join("ansible.cfg");
        }
        if path.is_file() {
            return Some(path);
        }
        warnings.push(format!("ANSIBLE_CONFIG={p} does not name a file; looking further"));
    }
    let local = cwd.join("ansible.cfg");
    if local.is_file() {
        use std::os::unix::fs::PermissionsExt;
        let world_writable = std::fs::metadata(cwd).is_ok_and(|m| m.permissions().mode() & 0o002 != 0);
        if world_writable {
            warnings.push(format!("{} is not used: its directory is world-writable (as in Ansible)", local.display()));
        } else {
            return Some(local);
        }
    }
    if let Some(h) = home {
        let user = h.join(".ansible.cfg");
        if user.is_file() {
            return Some(user);
        }
    }
    let system = PathBuf::from("/etc/ansible/ansible.cfg");
    system.is_file().then_some(system)
}

/// Python's configparser, as Ansible configures it: `[section]`, `key = value` or
/// `key: value`, `#`/`;` comment lines, `;` inline comments, indented continuation lines.
fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let file: std::sync::Arc<Path> = std::sync::Arc::from(path);
    let mut entries: Vec<Entry> = Vec::new();
    let mut section: Option<String> = None;
    // The indentation of the last option line: a line indented deeper continues its value.
    let mut option_indent: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let at = Location::new(&file, i + 1, 1);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        let value_part = strip_inline_comment(trimmed);
        let indent = raw.len() - raw.trim_start().len();
        if option_indent.is_some_and(|o| indent > o) {
            if let Some(last) = entries.last_mut() {
                last.value.push('\n');
                last.value.push_str(value_part);
                continue;
            }
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.split_once(']')).map(|(n, _)| n.trim()) {
            section = Some(name.to_string());
            option_indent = None;
            continue;
        }
        let Some(sec) = &section else {
            return Err(ConfigError::Invalid(Diagnostic::new(&at, "a setting before any [section]")));
        };
        let split = value_part.find(['=', ':']).map(|i| (&value_part[..i], &value_part[i + 1..]));
        match split {
            Some((k, v)) if !k.trim().is_empty() => {
                option_indent = Some(indent);
                entries.push(Entry { section: sec.clone(), key: k.trim().to_ascii_lowercase(), value: v.trim().to_string(), at })
            }
            _ => return Err(ConfigError::Invalid(Diagnostic::new(&at, format!("expected 'key = value', found: {trimmed}")))),
        }
    }
    // A later key in the same section replaces an earlier one.
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<Entry> = entries.into_iter().rev().filter(|e| seen.insert((e.section.clone(), e.key.clone()))).collect();
    kept.reverse();
    Ok(kept)
}

fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] == b';' && bytes[i - 1].is_ascii_whitespace() {
            return line[..i].trim_end();
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)], env: &[(&str, &str)]) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.replace("{dir}", &dir.path().display().to_string()))).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let cwd = dir.path().join("project");
        std::fs::create_dir_all(&cwd).unwrap();
        let home = dir.path().join("home");
        let config = Config::load_with(&lookup, &cwd, Some(&home));
        (dir, config)
    }

    #[test]
    fn found_read_and_overridden_as_ansible_does() {
        let cfg = "[defaults]\ninventory = hosts.ini, more/\nforks=20 ; inline comment\nremote_user: deploy\ngathering = smart\nhost_key_checking = False\n\
                   roles_path = roles:~/shared\n[privilege_escalation]\nbecome = yes\n[ssh_connection]\npipelining = True\nssh_args = -C\n  -o ControlPersist=60s\n";
        let (dir, config) = load(&[("project/ansible.cfg", cfg)], &[("ANSIBLE_FORKS", "7")]);
        let config = config.unwrap();
        let project = dir.path().join("project");
        assert_eq!(config.file.as_deref(), Some(project.join("ansible.cfg").as_path()));
        assert_eq!(
            config.list("inventory").unwrap(),
            [project.join("hosts.ini").display().to_string(), project.join("more/").display().to_string()]
        );
        assert_eq!(config.get("forks").unwrap(), ("7".to_string(), Origin::Env("ANSIBLE_FORKS")), "the environment wins");
        assert_eq!(config.set("remote_user"), Some("deploy"));
        assert_eq!(config.bool("host_key_checking"), Some(false));
        assert_eq!(config.bool("become"), Some(true));
        assert_eq!(config.list("roles_path").unwrap()[1], dir.path().join("home/shared").display().to_string());
        assert_eq!(config.set("ssh_args"), Some("-C\n-o ControlPersist=60s"));
        assert_eq!(config.ignored.len(), 1);
        assert_eq!(config.ignored[0].key, "gathering");
        let listing = config.listing();
        assert!(listing.contains("[defaults] forks = 7  (env ANSIBLE_FORKS;"), "{listing}");
        assert!(listing.contains("[defaults] remote_user = deploy  ("), "{listing}");
        assert!(listing.contains("ansible.cfg:4:1;"), "{listing}");
        assert!(listing.contains("[defaults] gathering = smart  ("), "{listing}");
        assert!(listing.contains("[defaults] timeout = 10  (default;"), "{listing}");
    }

    #[test]
    fn the_search_order() {
        let (_d, c) = load(&[("home/.ansible.cfg", "[defaults]\nforks=3\n")], &[]);
        assert_eq!(c.unwrap().int("forks"), Some(3));
        let (_d, c) = load(&[("home/.ansible.cfg", "[defaults]\nforks=3\n"), ("project/ansible.cfg", "[defaults]\nforks=4\n")], &[]);
        assert_eq!(c.unwrap().int("forks"), Some(4), "./ansible.cfg before ~/.ansible.cfg");
        let (_d, c) = load(
            &[("project/ansible.cfg", "[defaults]\nforks=4\n"), ("elsewhere/x.cfg", "[defaults]\nforks=5\n")],
            &[("ANSIBLE_CONFIG", "{dir}/elsewhere/x.cfg")],
        );
        assert_eq!(c.unwrap().int("forks"), Some(5), "ANSIBLE_CONFIG first");
    }

    #[test]
    fn bad_values_are_located_errors() {
        let (_d, c) = load(&[("project/ansible.cfg", "[defaults]\nforks = many\n")], &[]);
        assert!(c.unwrap_err().to_string().ends_with("ansible.cfg:2:1: forks: 'many' is not a whole number"));
        let (_d, c) = load(&[("project/ansible.cfg", "[privilege_escalation]\nbecome_method = su\n")], &[]);
        assert!(c.unwrap_err().to_string().contains("become_method: 'su' is not supported by gafix (only sudo)"));
        let (_d, c) = load(&[("project/ansible.cfg", "[ssh_connection]\nssh_args = -C -o ControlPersist=later\n")], &[]);
        assert!(c
            .unwrap_err()
            .to_string()
            .ends_with("ansible.cfg:2:1: ssh_args: ControlPersist 'later' is not yes, no or a time (60, 60s, 10m, 1h30m)"));
        let (_d, c) = load(&[("project/ansible.cfg", "forks = 1\n")], &[]);
        assert!(c.unwrap_err().to_string().contains("ansible.cfg:1:1: a setting before any [section]"));
        let (_d, c) = load(&[("project/ansible.cfg", "[defaults]\n  inventory = hosts\n  remote_user = deploy\n      and more\n")], &[]);
        let c = c.unwrap();
        assert_eq!(c.set("remote_user"), Some("deploy\nand more"), "indented options are options; deeper lines continue");
    }
}
