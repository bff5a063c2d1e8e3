//! Transports: SSH through the system's OpenSSH (one multiplexed master per host), or the
//! controller itself for `ansible_connection: local`. Every command has a timeout.

mod connection;
pub mod ssh;

use std::time::Duration;

pub use connection::{validate_user as connection_validate_user, Become, ConnectionSpec, ConnectionSpecError, HostKeyPolicy};

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
    pub fn from_process(output: &std::process::Output, started: std::time::Instant) -> Self {
        CommandOutput {
            rc: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
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
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, TransportError::Unreachable(_))
    }
}

/// A connected host.
pub enum Transport {
    Ssh(ssh::SshTransport),
    Local(ssh::LocalTransport),
}

impl Transport {
    pub async fn connect(spec: &ConnectionSpec, timeout: Duration) -> Result<Transport, TransportError> {
        if spec.local {
            return Ok(Transport::Local(ssh::LocalTransport::new(spec.clone())));
        }
        Ok(Transport::Ssh(ssh::SshTransport::connect(spec, timeout).await?))
    }

    /// Runs a POSIX `sh` script, as root through sudo when `become` says so.
    pub async fn run(
        &self,
        script: &str,
        become_: Option<&Become>,
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandOutput, TransportError> {
        let (command, input) = connection::wrap_command(script, become_, stdin);
        let out = match self {
            Transport::Ssh(t) => t.run(&command, input.as_deref(), timeout).await?,
            Transport::Local(t) => t.run(&command, input.as_deref(), timeout).await?,
        };
        connection::check_become(&out, become_)?;
        Ok(out)
    }

    pub async fn close(self) {
        if let Transport::Ssh(t) = self {
            t.close().await;
        }
    }
}
