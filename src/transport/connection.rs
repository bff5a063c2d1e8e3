//! How to reach a host, from its inventory variables; how to wrap a command for sudo.

use std::path::PathBuf;

use super::exchange::{preamble, SUDO_PROMPT};
use super::{CommandOutput, Secret, TransportError};
use crate::shell::quote;
use crate::vars::{json_bool, text, Vars};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    Strict,
    AcceptNew,
    Off,
}

#[derive(Clone, Debug)]
pub struct Become {
    pub user: String,
    pub password: Option<Secret>,
}

#[derive(Clone, Debug)]
pub struct ConnectionSpec {
    pub address: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub key_file: Option<PathBuf>,
    /// `ansible_ssh_common_args` and `ansible_ssh_extra_args`, split into words.
    pub ssh_args: Vec<String>,
    pub local: bool,
    pub host_key_policy: HostKeyPolicy,
    /// `ansible_become` from the inventory (a task or play may still ask for it).
    pub become_default: bool,
    pub become_user: String,
    pub become_password: Option<Secret>,
    /// Keep the SSH master after the run (`--persist`, ansible.cfg's ControlPersist).
    pub persist: Option<super::persist::Persist>,
}

/// Connection settings from ansible.cfg (or its environment variables): used for a host
/// whose own variables do not set them, as in Ansible.
#[derive(Clone, Debug, Default)]
pub struct ConnectionDefaults {
    pub user: Option<String>,
    pub key_file: Option<String>,
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    /// From the command line (`--ssh-common-args`, `--ssh-extra-args`, `-c`).
    pub ssh_common_args: Option<String>,
    pub ssh_extra_args: Option<String>,
    pub connection: Option<String>,
    /// How long SSH masters outlive the run (`--persist`, ansible.cfg's ControlPersist):
    /// a run-wide setting, not a host variable.
    pub persist: Option<super::persist::Persist>,
}

impl ConnectionDefaults {
    /// The host's variables with these filled in where the host sets neither spelling.
    pub fn fill(&self, vars: &Vars) -> Vars {
        let mut out = vars.clone();
        let mut put = |names: &[&str], value: Option<serde_json::Value>| {
            if let Some(v) = value {
                if !names.iter().any(|n| vars.get(*n).is_some_and(|x| !x.is_null())) {
                    out.insert(names[0].to_string(), v);
                }
            }
        };
        put(&["ansible_user", "ansible_ssh_user"], self.user.clone().map(Into::into));
        put(&["ansible_ssh_private_key_file", "ansible_private_key_file"], self.key_file.clone().map(Into::into));
        put(&["ansible_become"], self.become_.map(Into::into));
        put(&["ansible_become_user"], self.become_user.clone().map(Into::into));
        put(&["ansible_ssh_common_args"], self.ssh_common_args.clone().map(Into::into));
        put(&["ansible_ssh_extra_args"], self.ssh_extra_args.clone().map(Into::into));
        put(&["ansible_connection"], self.connection.clone().map(Into::into));
        out
    }
}

#[derive(Debug, thiserror::Error)]
#[error("host {host}: {message}")]
pub struct ConnectionSpecError {
    pub host: String,
    pub message: String,
    /// The variable at fault, so that the caller can say where it is set.
    pub var: Option<&'static str>,
}

impl ConnectionSpec {
    /// Reads Ansible's connection variables from a host's (rendered) variables.
    pub fn from_vars(
        name: &str,
        vars: &Vars,
        host_key_policy: HostKeyPolicy,
        cli_password: Option<&Secret>,
    ) -> Result<Self, ConnectionSpecError> {
        let err_in = |var: &'static str, message: String| ConnectionSpecError { host: name.into(), message, var: Some(var) };
        let get = |k: &str| vars.get(k).filter(|v| !v.is_null());
        // Which of two spellings is set (for the error's location).
        let which = |a: &'static str, b: &'static str| if get(a).is_some() { a } else { b };
        let connection = get("ansible_connection").map(text).unwrap_or_else(|| "ssh".into());
        let local = match connection.as_str() {
            "ssh" | "smart" | "paramiko" => false,
            "local" => true,
            other => return Err(err_in("ansible_connection", format!("ansible_connection '{other}' is not supported (use ssh or local)"))),
        };
        let port = match get("ansible_port").or_else(|| get("ansible_ssh_port")) {
            None => None,
            Some(v) => Some(text(v).parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                err_in(which("ansible_port", "ansible_ssh_port"), format!("ansible_port '{}' is not a port number (1-65535)", text(v)))
            })?),
        };
        let mut ssh_args = Vec::new();
        for key in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            if let Some(v) = get(key) {
                let key: &'static str = if key == "ansible_ssh_common_args" { "ansible_ssh_common_args" } else { "ansible_ssh_extra_args" };
                let words = shlex::split(&text(v)).ok_or_else(|| err_in(key, format!("{key}: unbalanced quotes")))?;
                super::ssh::config_lines(&words).map_err(|m| err_in(key, format!("{key}: {m}")))?;
                ssh_args.extend(words);
            }
        }
        if let Some(m) = get("ansible_become_method").map(text) {
            if m != "sudo" {
                return Err(err_in("ansible_become_method", format!("ansible_become_method '{m}' is not supported (only sudo)")));
            }
        }
        let address = get("ansible_host").or_else(|| get("ansible_ssh_host")).map(text).unwrap_or_else(|| name.to_string());
        if let Err(why) = check_address(&address) {
            let var = if get("ansible_host").is_some() || get("ansible_ssh_host").is_some() {
                which("ansible_host", "ansible_ssh_host")
            } else {
                "inventory_hostname"
            };
            return Err(err_in(var, format!("ansible_host '{address}' {why}")));
        }
        let user = get("ansible_user").or_else(|| get("ansible_ssh_user")).map(text);
        if let Some(u) = &user {
            if u.starts_with('-') || u.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
                return Err(err_in(which("ansible_user", "ansible_ssh_user"), format!("ansible_user '{u}' is not a valid user name")));
            }
        }
        let become_user = get("ansible_become_user").map(text).unwrap_or_else(|| "root".into());
        validate_user(&become_user).map_err(|m| err_in("ansible_become_user", format!("ansible_become_user: {m}")))?;
        let inventory_password = get("ansible_become_password").or_else(|| get("ansible_become_pass")).map(|v| Secret::new(text(v)));
        Ok(ConnectionSpec {
            address,
            port,
            user,
            key_file: get("ansible_ssh_private_key_file").or_else(|| get("ansible_private_key_file")).map(|v| PathBuf::from(text(v))),
            ssh_args,
            local,
            host_key_policy,
            become_default: get("ansible_become").and_then(json_bool).unwrap_or(false),
            become_user,
            become_password: cli_password.cloned().or(inventory_password),
            persist: None,
        })
    }

    pub fn become_for(&self, user: Option<&str>) -> Become {
        Become { user: user.unwrap_or(&self.become_user).to_string(), password: self.become_password.clone() }
    }
}

/// A host name, IPv4 or IPv6 address, as ssh takes it: not a URL, not `user@host`, not
/// `host:port` (each of which ssh would read differently from what was meant).
fn check_address(address: &str) -> Result<(), &'static str> {
    let without_zone = address.split_once('%').map_or(address, |(a, _)| a);
    let ipv6 = without_zone.matches(':').count() >= 2 && without_zone.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    if address.is_empty() || address.starts_with('-') || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("is not a valid host name or address")
    } else if address.contains("://") {
        Err("is a URL: give the host name in ansible_host, and ansible_user/ansible_port separately")
    } else if address.contains('@') {
        Err("holds a user: give the host name in ansible_host and the user in ansible_user")
    } else if address.contains(':') && !ipv6 {
        Err("holds a port: give the host name in ansible_host and the port in ansible_port")
    } else if address
        .contains(['/', '\\', '\'', '"', '`', '$', ';', '|', '&', '<', '>', '(', ')', '*', '?', '[', ']', '{', '}', '!', '#', ','])
    {
        Err("is not a valid host name or address")
    } else {
        Ok(())
    }
}

pub fn validate_user(u: &str) -> Result<(), String> {
    if !u.is_empty() && u.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) && !u.starts_with('-') {
        Ok(())
    } else {
        Err(format!("'{u}' is not a valid user name"))
    }
}

/// A script ready to send: the command line, and the password to give sudo if it asks.
pub struct Wrapped {
    pub command: String,
    pub password: Option<Secret>,
}

/// The command line for a script: `sh -c SCRIPT`, under `sudo` when becoming. The script
/// starts with the exchange's preamble (start marker, process group). A password never
/// goes on a command line: it is written to sudo's prompt only (see `exchange`).
pub fn wrap_command(script: &str, become_: Option<&Become>) -> Wrapped {
    let sh = format!("sh -c {}", quote(&format!("{}{script}", preamble())));
    match become_ {
        None => Wrapped { command: sh, password: None },
        Some(b) => match &b.password {
            None => Wrapped { command: format!("sudo -n -H -u {} -- {sh}", quote(&b.user)), password: None },
            Some(p) => Wrapped {
                command: format!("sudo -S -p {} -H -u {} -- {sh}", quote(SUDO_PROMPT), quote(&b.user)),
                password: Some(p.clone()),
            },
        },
    }
}

/// Turns sudo's own failures into clear errors (they are not the command's failure).
pub fn check_become(out: &CommandOutput, become_: Option<&Become>) -> Result<(), TransportError> {
    let Some(b) = become_ else { return Ok(()) };
    if out.rc == 0 {
        return Ok(());
    }
    let stderr = out.stderr.as_str();
    if stderr.contains("a password is required") || stderr.contains("a terminal is required") {
        return Err(TransportError::BecomePassword(
            "sudo needs a password on this host and none was given: use --ask-become-pass (-K), set GAFIX_BECOME_PASSWORD or \
             ansible_become_password, or allow NOPASSWD for this user"
                .into(),
        ));
    }
    if b.password.is_some() && (stderr.contains("incorrect password") || stderr.contains("Sorry, try again")) {
        return Err(TransportError::BecomePassword("sudo rejected the become password".into()));
    }
    if stderr.contains("is not in the sudoers file") || stderr.contains("is not allowed to execute") {
        return Err(TransportError::BecomePassword(format!("sudo refused: {}", out.tail(1).replace(SUDO_PROMPT, ""))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    fn vars(v: Json) -> Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn reads_ansible_connection_variables() {
        let v = vars(json!({
            "ansible_host": "10.0.0.5", "ansible_port": "2222", "ansible_user": "ops",
            "ansible_ssh_private_key_file": "/k", "ansible_ssh_common_args": "-o UserKnownHostsFile=/tmp/kh -J 'jump host'",
            "ansible_become": "yes", "ansible_become_user": "admin", "ansible_become_password": "s3cret", "ansible_python_interpreter": "/usr/bin/python3"
        }));
        let s = ConnectionSpec::from_vars("web1", &v, HostKeyPolicy::Strict, None).unwrap();
        assert_eq!((s.address.as_str(), s.port, s.user.as_deref()), ("10.0.0.5", Some(2222), Some("ops")));
        assert_eq!(s.ssh_args, ["-o", "UserKnownHostsFile=/tmp/kh", "-J", "jump host"]);
        assert!(s.become_default);
        assert_eq!(s.become_user, "admin");
        assert_eq!(s.become_password.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"), "secrets never reach Debug output");
    }

    #[test]
    fn local_and_defaults() {
        let s = ConnectionSpec::from_vars("localhost", &vars(json!({"ansible_connection": "local"})), HostKeyPolicy::Strict, None).unwrap();
        assert!(s.local);
        assert_eq!(s.address, "localhost");
        assert!(ConnectionSpec::from_vars("h", &vars(json!({"ansible_connection": "winrm"})), HostKeyPolicy::Strict, None).is_err());
        assert!(ConnectionSpec::from_vars("h", &vars(json!({"ansible_host": "-oProxyCommand=x"})), HostKeyPolicy::Strict, None).is_err());
        assert!(ConnectionSpec::from_vars("h", &vars(json!({"ansible_port": "ssh"})), HostKeyPolicy::Strict, None).is_err());
        for bad in ["ssh://ops@10.0.0.5:2222", "ops@10.0.0.5", "10.0.0.5:2222", "host;reboot", "", "a/b"] {
            let e = ConnectionSpec::from_vars("h", &vars(json!({"ansible_host": bad})), HostKeyPolicy::Strict, None).unwrap_err();
            assert_eq!(e.var, Some("ansible_host"), "{bad}: {e}");
        }
        for good in ["10.0.0.5", "fe80::1", "::1", "web-1.example.com", "fe80::1%eth0"] {
            let s = ConnectionSpec::from_vars("h", &vars(json!({"ansible_host": good})), HostKeyPolicy::Strict, None).unwrap();
            assert_eq!(s.address, good);
        }
        let e = ConnectionSpec::from_vars("h", &vars(json!({"ansible_ssh_common_args": "-X"})), HostKeyPolicy::Strict, None).unwrap_err();
        assert_eq!(e.var, Some("ansible_ssh_common_args"), "{e}");
    }

    #[test]
    fn sudo_wrapping_keeps_the_password_off_the_command_line() {
        let w = wrap_command("echo hi", Some(&Become { user: "root".into(), password: None }));
        assert!(w.command.starts_with("sudo -n -H -u root -- sh -c '"), "{}", w.command);
        assert!(w.command.ends_with("echo hi'") && w.password.is_none());
        let w = wrap_command("id", Some(&Become { user: "root".into(), password: Some(Secret::new("pw-marker".into())) }));
        assert!(!w.command.contains("pw-marker") && w.command.starts_with("sudo -S -p "), "{}", w.command);
        assert_eq!(w.password.unwrap().expose(), "pw-marker");
        let plain = wrap_command("id", None).command;
        assert!(plain.starts_with("sh -c ") && plain.contains(crate::transport::exchange::start_marker()), "{plain}");
    }

    #[test]
    fn sudo_password_errors_are_clear() {
        let out =
            CommandOutput { rc: 1, stdout: String::new(), stderr: "sudo: a password is required\n".into(), duration: Default::default() };
        let e = check_become(&out, Some(&Become { user: "root".into(), password: None })).unwrap_err();
        assert!(e.to_string().contains("--ask-become-pass"), "{e}");
        assert!(check_become(&out, None).is_ok());
    }

    #[test]
    fn ansible_cfg_defaults_fill_only_what_the_host_does_not_set() {
        let d = ConnectionDefaults {
            user: Some("deploy".into()),
            key_file: Some("/k".into()),
            become_: Some(true),
            become_user: Some("admin".into()),
            connection: Some("local".into()),
            ..Default::default()
        };
        let s = ConnectionSpec::from_vars("h", &d.fill(&vars(json!({}))), HostKeyPolicy::Strict, None).unwrap();
        assert!(s.local, "-c local");
        assert_eq!((s.user.as_deref(), s.become_default, s.become_user.as_str()), (Some("deploy"), true, "admin"));
        assert_eq!(s.key_file.as_deref(), Some(std::path::Path::new("/k")));
        let own = vars(json!({"ansible_ssh_user": "ops", "ansible_become": false, "ansible_connection": "ssh"}));
        let s = ConnectionSpec::from_vars("h", &d.fill(&own), HostKeyPolicy::Strict, None).unwrap();
        assert_eq!((s.user.as_deref(), s.become_default), (Some("ops"), false), "the host's own settings win");
    }
}
