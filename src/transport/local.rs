//! The controller itself, for `ansible_connection: local`: scripts run through `sh -c`, each
//! in its own process group.

use std::process::Stdio;
use std::time::Instant;

use futures::future::BoxFuture;

use super::connection::Wrapped;
use super::exchange::exchange;
use super::{CommandOutput, Pgid, Transport, TransportError};

/// Runs commands on the controller (`ansible_connection: local`).
pub struct LocalTransport;

/// Runs `command` through a local `sh -c` in its own process group (so that a timeout can
/// kill the command's whole group without touching gafix), with `env` added, over the
/// exchange (`password` for sudo's prompt, `input` as stdin); the caller bounds its time.
pub(crate) async fn run_sh(
    command: &str,
    env: &[(&str, String)],
    password: Option<&super::Secret>,
    input: Option<&str>,
    pgid: &Pgid,
) -> Result<CommandOutput, TransportError> {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| TransportError::Other(format!("cannot run sh: {e}")))?;
    let mut guard = GroupGuard(child.id().map(|p| p as i32));
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let out = exchange(stdin, stdout, stderr, password, input, pgid)
        .await
        .map_err(|e| TransportError::Other(format!("reading the command's output: {e}")))?;
    let status = child.wait().await.map_err(|e| TransportError::Other(e.to_string()))?;
    guard.0 = None;
    Ok(CommandOutput::new(status.code().unwrap_or(-1), &out.stdout, &out.stderr, started))
}

impl Transport for LocalTransport {
    fn run<'a>(
        &'a self,
        wrapped: &'a Wrapped,
        input: Option<&'a str>,
        pgid: &'a Pgid,
    ) -> BoxFuture<'a, Result<CommandOutput, TransportError>> {
        Box::pin(run_sh(&wrapped.command, &[], wrapped.password.as_ref(), input, pgid))
    }

    fn is_local(&self) -> bool {
        true
    }
}

/// Ends a local command's process group when its run is abandoned (aborted or timed out)
/// before it finished; a package transaction runs in a session of its own and is spared.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.filter(|p| *p > 1) {
            // SAFETY: kill(2) on the process group we created for this command.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
        }
    }
}
