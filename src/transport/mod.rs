//! Transports: SSH through the system's OpenSSH (one multiplexed master per host), or the
//! controller itself for `ansible_connection: local`. Every command has a timeout.

mod connection;
pub mod exchange;
pub mod local;
pub mod persist;
pub mod ssh;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use connection::{validate_user as connection_validate_user, Become, ConnectionDefaults, ConnectionSpec, HostKeyPolicy, Wrapped};

use futures::future::BoxFuture;

/// A secret (the become password): never printed, never serialized.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(********)")
    }
}

#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl CommandOutput {
    /// An exit code and the raw output; sudo's prompt (never part of a command's output) is
    /// taken out of stderr.
    pub fn new(rc: i32, stdout: &[u8], stderr: &[u8], started: std::time::Instant) -> Self {
        CommandOutput {
            rc,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(stderr).replace(exchange::SUDO_PROMPT, ""),
            duration: started.elapsed(),
        }
    }

    /// The last lines of stderr (or stdout when stderr is empty), for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = if self.stderr.trim().is_empty() { &self.stdout } else { &self.stderr };
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The host could not be reached or the connection broke: the host is unreachable.
    #[error("{0}")]
    Unreachable(String),
    /// The host's SSH key differs from the known one.
    #[error("{0}")]
    HostKeyChanged(String),
    #[error("command timed out after {0:?}")]
    Timeout(Duration),
    /// sudo wants a password and none was given.
    #[error("{0}")]
    BecomePassword(String),
    /// A master kept by an earlier run could not open a session (the command never
    /// started): connect anew and send it again.
    #[error("{0}")]
    StaleMaster(String),
    #[error("{0}")]
    Other(String),
}

/// Where a timed-out command's process group is written as soon as the command reports it.
pub type Pgid = Arc<Mutex<Option<i32>>>;

/// A way to run commands on a host: SSH ([`ssh::SshTransport`]), the controller itself
/// ([`local::LocalTransport`]), or a test's own. It only carries a wrapped command and its
/// pipes; [`Connection`] adds what every transport shares (sudo, timeouts, kills).
pub trait Transport: Send + Sync {
    /// Runs one wrapped command (see `connection::wrap_command`) to its end.
    fn run<'a>(
        &'a self,
        wrapped: &'a Wrapped,
        input: Option<&'a str>,
        pgid: &'a Pgid,
    ) -> BoxFuture<'a, Result<CommandOutput, TransportError>>;

    /// Ends the connection (an SSH master); nothing to do by default.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// The run is done with the connection: a master kept for later runs (`--persist`)
    /// stays, anything else is closed.
    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        self.close()
    }

    /// Whether commands run on the controller (whose own process group must never be killed).
    fn is_local(&self) -> bool {
        false
    }
}

/// A connected host: a transport and the rules every command follows on it.
pub struct Connection {
    transport: Box<dyn Transport>,
}

impl Connection {
    /// Connects as the spec says: locally, or over SSH.
    pub async fn connect(spec: &ConnectionSpec, timeout: Duration) -> Result<Connection, TransportError> {
        if spec.local {
            return Ok(Connection::over(Box::new(local::LocalTransport)));
        }
        Ok(Connection::over(Box::new(ssh::SshTransport::connect(spec, timeout).await?)))
    }

    /// A connection over any transport (tests bring their own).
    pub fn over(transport: Box<dyn Transport>) -> Connection {
        Connection { transport }
    }

    /// Runs a POSIX `sh` script, as root through sudo when `become` says so. Past `timeout`
    /// the script's whole process group is killed on the host (a package transaction runs in
    /// a session of its own and is never part of it) and the result is a timeout.
    pub async fn run(
        &self,
        script: &str,
        become_: Option<&Become>,
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandOutput, TransportError> {
        let wrapped = connection::wrap_command(script, become_);
        let pgid = Arc::new(Mutex::new(None));
        let running = self.transport.run(&wrapped, stdin, &pgid);
        let out = match tokio::time::timeout(timeout, running).await {
            Ok(out) => out?,
            Err(_) => {
                let group = *pgid.lock().unwrap();
                if let Some(group) = group {
                    self.kill_group(group, become_).await;
                }
                return Err(TransportError::Timeout(timeout));
            }
        };
        connection::check_become(&out, become_)?;
        Ok(out)
    }

    /// Ends a timed-out command: TERM to its process group, then KILL to what is left.
    async fn kill_group(&self, group: i32, become_: Option<&Become>) {
        if self.transport.is_local() && group == own_process_group() {
            return;
        }
        let script = format!("kill -TERM -{group} 2>/dev/null && sleep 2 && kill -KILL -{group} 2>/dev/null; exit 0");
        let wrapped = connection::wrap_command(&script, become_);
        let pgid = Arc::new(Mutex::new(None));
        let killing = self.transport.run(&wrapped, None, &pgid);
        if let Ok(Err(e)) | Err(e) =
            tokio::time::timeout(Duration::from_secs(15), killing).await.map_err(|_| TransportError::Timeout(Duration::from_secs(15)))
        {
            tracing::warn!("could not kill the timed-out command's process group {group}: {e}");
        }
    }

    pub async fn close(self) {
        self.transport.close().await;
    }

    /// See [`Transport::release`].
    pub async fn release(self) {
        self.transport.release().await;
    }
}

/// gafix's own process group (a local command must never take it down).
fn own_process_group() -> i32 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(2).and_then(|g| g.parse().ok())))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Connection {
        Connection::over(Box::new(local::LocalTransport))
    }

    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }

    /// A timeout ends the command's whole process group, not just the channel: a child the
    /// script started in the background is gone too.
    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}\nwait", crate::shell::quote(&pidfile.display().to_string()));
        let err = local().run(&script, None, None, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, TransportError::Timeout(_)), "{err}");
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(&pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!alive(&pid), "the background child {pid} outlived the timeout");
    }

    #[tokio::test]
    async fn output_is_exact_and_stdin_is_the_commands() {
        let out = local().run("cat; printf 'err\\n' >&2; exit 3", None, Some("in\n"), Duration::from_secs(10)).await.unwrap();
        assert_eq!((out.rc, out.stdout.as_str(), out.stderr.as_str()), (3, "in\n", "err\n"));
    }
}
