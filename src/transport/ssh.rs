//! SSH through the system's OpenSSH via the `openssh` crate: one master connection per host
//! (so `~/.ssh/config`, agents, ProxyJump and known_hosts work as for `ssh`), every command
//! a new channel on it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use openssh::{KnownHosts, Session, SessionBuilder};

use super::connection::Wrapped;
use super::exchange::exchange;
use super::persist;
use futures::future::BoxFuture;

use super::{CommandOutput, ConnectionSpec, HostKeyPolicy, Pgid, Transport, TransportError};

pub struct SshTransport {
    session: Session,
    /// Kept alive while the session is: a generated ssh_config for this host's ssh args.
    _config: Option<tempfile::NamedTempFile>,
    /// The master outlives the run (`--persist`): released, not closed, at the end.
    kept: bool,
    /// A master an earlier run kept, not yet proven by a command: its connection to the host
    /// may have died since (a reboot), which only the first channel shows.
    unproven: std::sync::atomic::AtomicBool,
}

fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(t.trim())) {
            parts.push(t);
        }
        source = s.source();
    }
    parts.join(": ").lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("@@@")).collect::<Vec<_>>().join(" ")
}

/// Classifies a failed connection: a changed host key is not "unreachable".
pub fn classify_connect_error(spec: &ConnectionSpec, text: &str) -> TransportError {
    if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || text.contains("POSSIBLE DNS SPOOFING") {
        return TransportError::HostKeyChanged(format!(
            "the SSH host key of {} has changed since it was recorded in known_hosts; if the host was reinstalled, remove the old key \
             (ssh-keygen -R {}) and connect again; otherwise this may be an attack",
            spec.address, spec.address
        ));
    }
    if text.contains("Host key verification failed") {
        return TransportError::Unreachable(format!(
            "the SSH host key of {} is not in known_hosts (host key checking is on): add it, or run once with --host-key-checking accept-new",
            spec.address
        ));
    }
    // ssh names the host and port itself ("ssh: connect to host A port P: why"): say them once.
    let why = match text.find("connect to host ") {
        Some(at) => {
            let rest = &text[at..];
            let cut = rest.find(": ").map(|i| &rest[i + 2..]).unwrap_or(rest);
            format!("{}{}", &text[..at].trim_end_matches("ssh: "), cut)
        }
        None => text.to_string(),
    };
    TransportError::Unreachable(format!(
        "cannot connect to {}{}: {why}",
        spec.address,
        spec.port.map(|p| format!(":{p}")).unwrap_or_default()
    ))
}

/// `ansible_ssh_common_args` as ssh_config lines (the crate cannot pass raw options).
pub fn config_lines(args: &[String]) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    let mut i = 0;
    let next = |i: &mut usize, flag: &str| -> Result<String, String> {
        *i += 1;
        args.get(*i).cloned().ok_or_else(|| format!("ssh option {flag} needs a value"))
    };
    while i < args.len() {
        let a = &args[i];
        let option = |kv: &str| -> Result<String, String> {
            let (k, v) =
                kv.split_once('=').or_else(|| kv.split_once(' ')).ok_or_else(|| format!("ssh option '-o {kv}' needs KEY=VALUE"))?;
            Ok(format!("{} {}", k.trim(), v.trim()))
        };
        match a.as_str() {
            "-o" => lines.push(option(&next(&mut i, "-o")?)?),
            s if s.starts_with("-o") => lines.push(option(&s[2..])?),
            "-J" => lines.push(format!("ProxyJump {}", next(&mut i, "-J")?)),
            "-i" => lines.push(format!("IdentityFile {}", next(&mut i, "-i")?)),
            "-p" => lines.push(format!("Port {}", next(&mut i, "-p")?)),
            "-l" => lines.push(format!("User {}", next(&mut i, "-l")?)),
            "-F" => lines.push(format!("Include {}", next(&mut i, "-F")?)),
            "-4" => lines.push("AddressFamily inet".into()),
            "-6" => lines.push("AddressFamily inet6".into()),
            "-C" => lines.push("Compression yes".into()),
            "-A" => lines.push("ForwardAgent yes".into()),
            "-q" | "-v" | "-vv" | "-vvv" | "-T" | "-tt" | "-t" => {}
            other => return Err(format!("ssh argument '{other}' in ansible_ssh_common_args/extra_args is not supported by gafix")),
        }
        i += 1;
    }
    Ok(lines)
}

/// The directory that holds the master sockets: whoever can write to it can swap a socket
/// and read or inject commands, so it must be ours alone. Created 0700; an existing one
/// that is not a directory owned by us with no access for others is refused, never fixed
/// up (someone else may already be holding it).
/// `$XDG_RUNTIME_DIR/gafix-ssh` (the user's own), else `$TMPDIR/gafix-ssh-UID`: another
/// user's directory is never ours to use, and never in our way.
pub fn control_directory() -> Result<PathBuf, String> {
    static CHECKED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
                Some(runtime) => PathBuf::from(runtime).join("gafix-ssh"),
                // SAFETY: geteuid(2) has no preconditions.
                None => std::env::temp_dir().join(format!("gafix-ssh-{}", unsafe { libc::geteuid() })),
            };
            private_directory(&dir)
        })
        .clone()
}

pub fn private_directory(dir: &std::path::Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create the SSH control directory {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid(2) has no preconditions.
    let me = unsafe { libc::geteuid() };
    let why = if !meta.file_type().is_dir() {
        Some("is not a directory (a symlink?)".to_string())
    } else if meta.uid() != me {
        Some(format!("is owned by uid {}, not by us (uid {me})", meta.uid()))
    } else if meta.permissions().mode() & 0o077 != 0 {
        Some(format!("has mode {:o}: others can reach the sockets in it", meta.permissions().mode() & 0o7777))
    } else {
        None
    };
    match why {
        Some(why) => Err(format!(
            "the SSH control directory {} {why}; refusing to use it. Remove it (or set XDG_RUNTIME_DIR/TMPDIR to a private directory)",
            dir.display()
        )),
        None => Ok(dir.to_path_buf()),
    }
}

impl SshTransport {
    pub async fn connect(spec: &ConnectionSpec, timeout: Duration) -> Result<SshTransport, TransportError> {
        let control = control_directory().map_err(TransportError::Other)?;
        let kept_in = match spec.persist {
            Some(_) => Some(persist::key_directory(&control, spec).map_err(TransportError::Other)?),
            None => None,
        };
        if let Some(dir) = &kept_in {
            if let Some(session) = persist::resume(dir).await {
                tracing::debug!(host = %spec.address, "reusing the SSH master kept in {}", dir.display());
                return Ok(SshTransport { session, _config: None, kept: true, unproven: true.into() });
            }
            persist::name_target(dir, spec);
        }
        let mut b = SessionBuilder::default();
        b.known_hosts_check(match spec.host_key_policy {
            HostKeyPolicy::Strict => KnownHosts::Strict,
            HostKeyPolicy::AcceptNew => KnownHosts::Add,
            HostKeyPolicy::Off => KnownHosts::Accept,
        });
        b.connect_timeout(timeout.max(Duration::from_secs(1)));
        b.server_alive_interval(Duration::from_secs(15));
        b.control_directory(kept_in.as_deref().unwrap_or(&control));
        if let Some(p) = spec.persist {
            b.control_persist(p.as_openssh());
        }
        if let Some(p) = spec.port {
            b.port(p);
        }
        if let Some(u) = &spec.user {
            b.user(u.clone());
        }
        if let Some(k) = &spec.key_file {
            b.keyfile(k);
        }
        let config = if spec.ssh_args.is_empty() {
            None
        } else {
            let mut lines = config_lines(&spec.ssh_args).map_err(TransportError::Other)?;
            if spec.host_key_policy == HostKeyPolicy::Off {
                // `off` means off, even when the inventory names a known_hosts file.
                lines.retain(|l| !l.starts_with("StrictHostKeyChecking"));
            }
            // ssh -F replaces the usual files: include them after ours (first value wins).
            if let Some(home) = std::env::var_os("HOME") {
                let user_config = PathBuf::from(home).join(".ssh/config");
                if user_config.is_file() {
                    lines.push(format!("Include {}", user_config.display()));
                }
            }
            if std::path::Path::new("/etc/ssh/ssh_config").is_file() {
                lines.push("Include /etc/ssh/ssh_config".into());
            }
            let mut file =
                tempfile::Builder::new().prefix("gafix-ssh-config-").tempfile().map_err(|e| TransportError::Other(e.to_string()))?;
            use std::io::Write;
            writeln!(file, "{}", lines.join("\n")).map_err(|e| TransportError::Other(e.to_string()))?;
            b.config_file(file.path());
            Some(file)
        };
        // The master's own ConnectTimeout covers TCP; this covers a stuck handshake too.
        let connecting = b.connect_mux(&spec.address);
        let session = match tokio::time::timeout(timeout + Duration::from_secs(5), connecting).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(classify_connect_error(spec, &error_text(&e))),
            Err(_) => return Err(TransportError::Unreachable(format!("timed out connecting to {} after {:?}", spec.address, timeout))),
        };
        Ok(SshTransport { session, _config: config, kept: kept_in.is_some(), unproven: false.into() })
    }

    /// Runs a wrapped command; on a kept master not yet proven, a failure before the command
    /// started on the host (its start marker never came: the master's connection died since
    /// the last run) is [`TransportError::StaleMaster`], for the caller to send it again on a
    /// new master.
    async fn exec(&self, wrapped: &Wrapped, input: Option<&str>, pgid: &Pgid) -> Result<CommandOutput, TransportError> {
        use std::sync::atomic::Ordering::Relaxed;
        let result = self.exec_on_channel(wrapped, input, pgid).await;
        if !self.unproven.load(Relaxed) {
            return result;
        }
        match result {
            Err(e) if pgid.lock().unwrap().is_none() => {
                Err(TransportError::StaleMaster(format!("the kept SSH master could not run a command: {e}")))
            }
            other => {
                self.unproven.store(false, Relaxed);
                other
            }
        }
    }

    /// Runs a wrapped command on a new channel of the master; the caller bounds its time.
    async fn exec_on_channel(&self, wrapped: &Wrapped, input: Option<&str>, pgid: &Pgid) -> Result<CommandOutput, TransportError> {
        let started = Instant::now();
        let mut cmd = self.session.raw_command(&wrapped.command);
        cmd.stdin(openssh::Stdio::piped());
        cmd.stdout(openssh::Stdio::piped());
        cmd.stderr(openssh::Stdio::piped());
        let mut child = cmd.spawn().await.map_err(map_run_error)?;
        let (stdin, stdout, stderr) = (child.stdin().take(), child.stdout().take(), child.stderr().take());
        let out = exchange(stdin, stdout, stderr, wrapped.password.as_ref(), input, pgid)
            .await
            .map_err(|e| TransportError::Unreachable(format!("the SSH connection broke: {e}")))?;
        let status = child.wait().await.map_err(map_run_error)?;
        Ok(CommandOutput::new(status.code().unwrap_or(-1), &out.stdout, &out.stderr, started))
    }
}

impl Transport for SshTransport {
    fn run<'a>(
        &'a self,
        wrapped: &'a Wrapped,
        input: Option<&'a str>,
        pgid: &'a Pgid,
    ) -> BoxFuture<'a, Result<CommandOutput, TransportError>> {
        Box::pin(self.exec(wrapped, input, pgid))
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.session.close()).await;
        })
    }

    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        if !self.kept {
            return self.close();
        }
        // Left running for the next run; OpenSSH ends it once idle for its ControlPersist.
        let _ = self.session.detach();
        Box::pin(async {})
    }
}

fn map_run_error(e: openssh::Error) -> TransportError {
    match e {
        openssh::Error::Disconnected | openssh::Error::RemoteProcessTerminated | openssh::Error::SshMux(_) | openssh::Error::Master(_) => {
            TransportError::Unreachable(format!("the SSH connection broke: {}", error_text(&e)))
        }
        other => TransportError::Other(error_text(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_args_become_config_lines() {
        let args: Vec<String> =
            ["-o", "UserKnownHostsFile=/tmp/kh", "-oIdentitiesOnly=yes", "-J", "bastion", "-o", "ProxyCommand ssh -W %h:%p gw"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(
            config_lines(&args).unwrap(),
            ["UserKnownHostsFile /tmp/kh", "IdentitiesOnly yes", "ProxyJump bastion", "ProxyCommand ssh -W %h:%p gw"]
        );
        assert!(config_lines(&["-X".to_string()]).is_err());
        assert!(config_lines(&["-o".to_string()]).is_err());
    }

    #[test]
    fn the_control_directory_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let fresh = base.path().join("fresh");
        assert_eq!(private_directory(&fresh).unwrap(), fresh);
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_directory(&open).unwrap_err().contains("others can reach"));
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        assert!(private_directory(&link).unwrap_err().contains("not a directory"));
        let theirs = base.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        assert!(private_directory(&theirs).unwrap_err().contains("owned by uid 65534"));
    }

    #[test]
    fn connect_errors_are_classified() {
        let spec = ConnectionSpec::from_vars("h", &Default::default(), HostKeyPolicy::Strict, None).unwrap();
        assert!(matches!(
            classify_connect_error(&spec, "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!"),
            TransportError::HostKeyChanged(_)
        ));
        let e = classify_connect_error(&spec, "Host key verification failed.");
        assert!(matches!(e, TransportError::Unreachable(_)) && e.to_string().contains("accept-new"));
        assert!(classify_connect_error(&spec, "Connection refused").to_string().contains("cannot connect to h"));
    }
}
