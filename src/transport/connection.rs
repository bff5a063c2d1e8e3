//! How to reach a host, from its inventory variables; how to wrap a command for sudo.

use std::path::PathBuf;

use serde_json::Value as Json;

use super::exchange::{preamble, SUDO_PROMPT};
use super::{CommandOutput, Secret, TransportError};
use crate::inventory::Vars;
use crate::module::spec::json_bool;
use crate::shell::quote;

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
    pub name: String,
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
}

#[derive(Debug, thiserror::Error)]
#[error("host {host}: {message}")]
pub struct ConnectionSpecError {
    pub host: String,
    pub message: String,
}

fn text(v: &Json) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

impl ConnectionSpec {
    /// Reads Ansible's connection variables from a host's (rendered) variables.
    pub fn from_vars(
        name: &str,
        vars: &Vars,
        host_key_policy: HostKeyPolicy,
        cli_password: Option<&Secret>,
    ) -> Result<Self, ConnectionSpecError> {
        let err = |message: String| ConnectionSpecError { host: name.into(), message };
        let get = |k: &str| vars.get(k).filter(|v| !v.is_null());
        let connection = get("ansible_connection").map(text).unwrap_or_else(|| "ssh".into());
        let local = match connection.as_str() {
            "ssh" | "smart" | "paramiko" => false,
            "local" => true,
            other => return Err(err(format!("ansible_connection '{other}' is not supported (use ssh or local)"))),
        };
        let port = match get("ansible_port").or_else(|| get("ansible_ssh_port")) {
            None => None,
            Some(v) => Some(text(v).parse::<u16>().map_err(|_| err(format!("ansible_port '{}' is not a port number", text(v))))?),
        };
        let mut ssh_args = Vec::new();
        for key in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            if let Some(v) = get(key) {
                let words = shlex::split(&text(v)).ok_or_else(|| err(format!("{key}: unbalanced quotes")))?;
                ssh_args.extend(words);
            }
        }
        if let Some(m) = get("ansible_become_method").map(text) {
            if m != "sudo" {
                return Err(err(format!("ansible_become_method '{m}' is not supported (only sudo)")));
            }
        }
        let address = get("ansible_host").or_else(|| get("ansible_ssh_host")).map(text).unwrap_or_else(|| name.to_string());
        if address.starts_with('-') || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(format!("ansible_host '{address}' is not a valid host name or address")));
        }
        let user = get("ansible_user").or_else(|| get("ansible_ssh_user")).map(text);
        if let Some(u) = &user {
            if u.starts_with('-') || u.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
                return Err(err(format!("ansible_user '{u}' is not a valid user name")));
            }
        }
        let become_user = get("ansible_become_user").map(text).unwrap_or_else(|| "root".into());
        validate_user(&become_user).map_err(|m| err(format!("ansible_become_user: {m}")))?;
        let inventory_password = get("ansible_become_password").or_else(|| get("ansible_become_pass")).map(|v| Secret::new(text(v)));
        Ok(ConnectionSpec {
            name: name.into(),
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
        })
    }

    pub fn become_for(&self, user: Option<&str>) -> Become {
        Become { user: user.unwrap_or(&self.become_user).to_string(), password: self.become_password.clone() }
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
    use serde_json::json;

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
}
