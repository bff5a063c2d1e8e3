//! The QEMU guest agent's wire protocol on the host side of its virtio-serial channel (the
//! UNIX socket QEMU serves for `org.qemu.guest_agent.0`), spoken directly.
//!
//! The socket is QEMU's, not the agent's: it accepts a connection whether or not anything
//! runs in the guest, and a command nobody reads is never answered. So every exchange starts
//! as libvirt's does: a 0xFF byte (resets the agent's JSON parser after a stale partial
//! command), then `guest-sync-delimited` with a fresh id, whose answer is preceded by a 0xFF
//! byte (everything before it is a stale answer and skipped); only then the real command.
//! Every read is under the caller's deadline.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Why an exchange on the socket got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QgaError {
    /// No socket at the path: the VM has no such channel, or QEMU does not run.
    #[error("no socket at {0}")]
    NoSocket(String),
    /// A socket file nobody listens on: QEMU has exited.
    #[error("nothing listens on {0} (connection refused)")]
    Refused(String),
    /// Cannot open the socket for another reason (permissions, not a socket...).
    #[error("cannot connect to {path}: {message}")]
    Connect { path: String, message: String },
    /// Connected, but no answer in time: no agent runs in the guest, or it is hung.
    #[error("no answer within {} ms", .0.as_millis())]
    Silent(Duration),
    /// The agent answered with an error.
    #[error("the agent answered {class}: {desc}")]
    Agent { class: String, desc: String },
    /// Bytes that are not the protocol's JSON.
    #[error("unreadable answer: {0}")]
    Garbled(String),
}

static NEXT_SYNC_ID: AtomicU32 = AtomicU32::new(1);

/// Sends one command (`{"execute": ...}`) and returns its `return` value.
pub async fn execute(path: &Path, command: &Json, timeout: Duration) -> Result<Json, QgaError> {
    let shown = path.display().to_string();
    let stream = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Err(_) => return Err(QgaError::Silent(timeout)),
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => QgaError::NoSocket(shown),
                std::io::ErrorKind::ConnectionRefused => QgaError::Refused(shown),
                _ => QgaError::Connect { path: shown, message: e.to_string() },
            })
        }
    };
    match tokio::time::timeout(timeout, exchange(stream, command)).await {
        Ok(result) => result,
        Err(_) => Err(QgaError::Silent(timeout)),
    }
}

async fn exchange(stream: UnixStream, command: &Json) -> Result<Json, QgaError> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    // A random-enough id: a stale answer to an earlier sync (ours or another client's) must
    // not be taken for this one's.
    let id = (std::process::id() << 12) ^ NEXT_SYNC_ID.fetch_add(1, Ordering::Relaxed);
    let sync = json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
    let mut hello = vec![0xFF];
    hello.extend(serde_json::to_vec(&sync).expect("JSON"));
    hello.push(b'\n');
    write.write_all(&hello).await.map_err(io_garbled)?;
    // Skip to the delimiter, then read answers until ours.
    loop {
        let mut skipped = Vec::new();
        read.read_until(0xFF, &mut skipped).await.map_err(io_garbled)?;
        if skipped.last() != Some(&0xFF) {
            return Err(QgaError::Garbled("the channel closed before the agent answered".into()));
        }
        let answer = read_answer(&mut read).await?;
        if answer.get("return").and_then(Json::as_u64) == Some(u64::from(id)) {
            break;
        }
    }
    let mut line = serde_json::to_vec(command).expect("JSON");
    line.push(b'\n');
    write.write_all(&line).await.map_err(io_garbled)?;
    let answer = read_answer(&mut read).await?;
    if let Some(value) = answer.get("return") {
        return Ok(value.clone());
    }
    match answer.get("error") {
        Some(e) => Err(QgaError::Agent {
            class: e.get("class").and_then(Json::as_str).unwrap_or("GenericError").to_string(),
            desc: e.get("desc").and_then(Json::as_str).unwrap_or("").to_string(),
        }),
        None => Err(QgaError::Garbled(answer.to_string())),
    }
}

/// One JSON answer: the agent ends each with a newline.
async fn read_answer(read: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> Result<Json, QgaError> {
    loop {
        let mut line = Vec::new();
        let n = read.read_until(b'\n', &mut line).await.map_err(io_garbled)?;
        if n == 0 {
            return Err(QgaError::Garbled("the channel closed before the agent answered".into()));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{FFFD}');
        if text.is_empty() {
            continue;
        }
        return serde_json::from_str(text).map_err(|e| QgaError::Garbled(format!("{e}: {}", truncate(text))));
    }
}

fn io_garbled(e: std::io::Error) -> QgaError {
    QgaError::Garbled(e.to_string())
}

fn truncate(text: &str) -> String {
    let mut t: String = text.chars().take(200).collect();
    if t.len() < text.len() {
        t.push('…');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixListener;

    /// A socket served like QEMU serves a channel, answered by `agent` (or never).
    async fn serve(agent: Option<fn(Json) -> Vec<u8>>) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qga.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 512];
            loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).filter(|b| *b != 0xFF).collect();
                    let Some(agent) = agent else { continue };
                    let command: Json = serde_json::from_slice(&line).unwrap();
                    s.write_all(&agent(command)).await.unwrap();
                }
            }
        });
        (dir, path)
    }

    fn agent(command: Json) -> Vec<u8> {
        match command["execute"].as_str().unwrap() {
            // A stale answer first, as after an earlier client gave up.
            "guest-sync-delimited" => {
                // Stale answers first, as after an earlier client gave up: one undelimited,
                // one delimited with another id.
                let mut out = b"{\"return\": {}}\n".to_vec();
                out.push(0xFF);
                out.extend(b"{\"return\": 7}\n");
                out.push(0xFF);
                out.extend(format!("{{\"return\": {}}}\n", command["arguments"]["id"]).into_bytes());
                out
            }
            "guest-ping" => b"{\"return\": {}}\n".to_vec(),
            "guest-info" => b"{\"return\": {\"version\": \"7.2.0\", \"supported_commands\": []}}\n".to_vec(),
            _ => b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nosuch has not been found\"}}\n".to_vec(),
        }
    }

    #[tokio::test]
    async fn syncs_then_runs_the_command() {
        let (_dir, path) = serve(Some(agent)).await;
        let info = execute(&path, &json!({"execute": "guest-info"}), Duration::from_secs(2)).await.unwrap();
        assert_eq!(info["version"], "7.2.0");
    }

    #[tokio::test]
    async fn an_agent_error_is_its_class_and_text() {
        let (_dir, path) = serve(Some(agent)).await;
        let e = execute(&path, &json!({"execute": "nosuch"}), Duration::from_secs(2)).await.unwrap_err();
        assert_eq!(e, QgaError::Agent { class: "CommandNotFound".into(), desc: "The command nosuch has not been found".into() });
    }

    #[tokio::test]
    async fn a_socket_nobody_answers_is_silent_within_the_timeout() {
        let (_dir, path) = serve(None).await;
        let started = std::time::Instant::now();
        let e = execute(&path, &json!({"execute": "guest-ping"}), Duration::from_millis(300)).await.unwrap_err();
        assert_eq!(e, QgaError::Silent(Duration::from_millis(300)));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn no_socket_and_a_dead_socket_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.sock");
        assert!(matches!(execute(&missing, &json!({}), Duration::from_secs(1)).await, Err(QgaError::NoSocket(_))));
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(matches!(execute(&stale, &json!({}), Duration::from_secs(1)).await, Err(QgaError::Refused(_))));
    }
}
