//! One command's conversation over its three pipes, the same for SSH and local commands.
//!
//! Every script starts by printing a start marker with its process group to stderr. Until
//! that marker arrives nothing but the become password is written to stdin, and the
//! password only once sudo has printed its prompt: when sudo does not ask (NOPASSWD, cached
//! credentials) the password is never written, so the command cannot read it. After the
//! marker the command's own stdin (or nothing) is written and stdin is closed.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Secret;

/// sudo's prompt, set with `sudo -p`: recognisable, and never a password.
pub const SUDO_PROMPT: &str = "[gafix-sudo-prompt]";

/// The start marker, unique to this gafix process so that no command prints it by chance.
pub fn start_marker() -> &'static str {
    static MARKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARKER.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        format!("@@gafix-start-{:08x}{:08x}", std::process::id(), nanos)
    })
}

/// The first lines of every script: the start marker and the script's process group (read
/// with shell builtins, no process spawned), which a timeout kills.
pub fn preamble() -> String {
    format!("read -r _ _ _ _ gafix_pg _ 2>/dev/null </proc/$$/stat || gafix_pg=\nprintf '%s %s\\n' {} \"$gafix_pg\" >&2\n", start_marker())
}

/// What the exchange learned: the output (marker line removed) and the process group.
pub struct Exchanged {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

enum ToStdin {
    Password,
    Start,
}

/// Drives the pipes until both outputs end. `pgid` is filled in as soon as the marker shows,
/// so that a caller who gives up (timeout) can still kill the command's process group.
pub async fn exchange<W, O, E>(
    stdin: Option<W>,
    stdout: Option<O>,
    stderr: Option<E>,
    password: Option<&Secret>,
    input: Option<&str>,
    pgid: &Arc<Mutex<Option<i32>>>,
) -> std::io::Result<Exchanged>
where
    W: AsyncWrite + Unpin,
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<ToStdin>();
    let writer = async move {
        let Some(mut stdin) = stdin else { return };
        while let Some(message) = rx.recv().await {
            match message {
                ToStdin::Password => {
                    let Some(p) = password else { break };
                    let line = format!("{}\n", p.expose());
                    if stdin.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = stdin.flush().await;
                }
                ToStdin::Start => {
                    if let Some(text) = input {
                        let _ = stdin.write_all(text.as_bytes()).await;
                    }
                    break;
                }
            }
        }
        let _ = stdin.shutdown().await;
    };
    let read_stdout = async move {
        let mut buf = Vec::new();
        if let Some(mut out) = stdout {
            out.read_to_end(&mut buf).await?;
        }
        Ok::<_, std::io::Error>(buf)
    };
    let read_stderr = async move {
        let mut buf = Vec::new();
        let Some(mut err) = stderr else {
            drop(tx);
            return Ok::<_, std::io::Error>(buf);
        };
        let marker = start_marker().as_bytes();
        let mut tx = Some(tx);
        let mut prompts_answered = 0;
        let mut chunk = [0u8; 8192];
        loop {
            let n = err.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(sender) = &tx else { continue };
            if let Some((start, end)) = find_line(&buf, marker) {
                let line = String::from_utf8_lossy(&buf[start..end]).into_owned();
                *pgid.lock().unwrap() = line.split_whitespace().nth(1).and_then(|g| g.parse().ok()).filter(|g: &i32| *g > 1);
                buf.drain(start..(end + 1).min(buf.len()));
                let _ = sender.send(ToStdin::Start);
                tx = None;
                continue;
            }
            let prompts = count(&buf, SUDO_PROMPT.as_bytes());
            if prompts > prompts_answered {
                if prompts_answered == 0 && password.is_some() {
                    let _ = sender.send(ToStdin::Password);
                    prompts_answered = prompts;
                } else {
                    // Asked again: the password was wrong. Closing stdin lets sudo fail now.
                    tx = None;
                }
            }
        }
        drop(tx);
        Ok(buf)
    };
    let ((), stdout, stderr) = tokio::join!(writer, read_stdout, read_stderr);
    Ok(Exchanged { stdout: stdout?, stderr: stderr? })
}

/// The span of the first complete line that starts with `marker` (end is the newline).
fn find_line(buf: &[u8], marker: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = find(&buf[from..], marker).map(|i| i + from) {
        if i == 0 || buf[i - 1] == b'\n' || buf[..i].ends_with(SUDO_PROMPT.as_bytes()) {
            let end = buf[i..].iter().position(|b| *b == b'\n')? + i;
            return Some((i, end));
        }
        from = i + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_line_is_found_only_at_a_line_start() {
        let m = start_marker().as_bytes();
        let mut buf = b"noise\n".to_vec();
        buf.extend_from_slice(m);
        buf.extend_from_slice(b" 4242\nafter");
        let (s, e) = find_line(&buf, m).unwrap();
        assert_eq!(&buf[s..e], [m, b" 4242"].concat().as_slice());
        let mut partial = m.to_vec();
        partial.extend_from_slice(b" 42");
        assert!(find_line(&partial, m).is_none(), "an incomplete line waits for more output");
        let mut inside = b"x".to_vec();
        inside.extend_from_slice(m);
        inside.push(b'\n');
        assert!(find_line(&inside, m).is_none());
    }

    /// The exchange against real processes: `sh` standing in for sudo, prompting (or not)
    /// before it runs a command that reads its stdin.
    async fn run(script: &str, password: Option<&str>, input: Option<&str>) -> (String, String, Option<i32>) {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pgid = Arc::new(Mutex::new(None));
        let secret = password.map(|p| Secret::new(p.into()));
        let out = exchange(child.stdin.take(), child.stdout.take(), child.stderr.take(), secret.as_ref(), input, &pgid).await.unwrap();
        child.wait().await.unwrap();
        let g = *pgid.lock().unwrap();
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap(), g)
    }

    #[tokio::test]
    async fn a_password_goes_only_to_a_prompt() {
        // "sudo" prompts, reads one line, then the command reads the rest of stdin.
        let prompting = format!("printf '%s' '{SUDO_PROMPT}' >&2; IFS= read -r pw; echo \"auth:$pw\" >&2\n{}cat", preamble());
        let (stdout, stderr, pgid) = run(&prompting, Some("s3cret-marker"), Some("data\n")).await;
        assert_eq!(stdout, "data\n", "the command reads its own stdin, not the password");
        assert!(stderr.contains("auth:s3cret-marker"), "{stderr}");
        assert!(!stderr.contains(start_marker()), "the marker line is removed: {stderr}");
        assert!(pgid.is_some());
        // "sudo" does not prompt (NOPASSWD): the command's stdin is empty, never the password.
        let silent = format!("{}cat; echo end", preamble());
        let (stdout, _, _) = run(&silent, Some("s3cret-marker"), None).await;
        assert_eq!(stdout, "end\n");
    }

    #[tokio::test]
    async fn a_second_prompt_closes_stdin() {
        let twice = format!("for i in 1 2; do printf '%s' '{SUDO_PROMPT}' >&2; IFS= read -r pw || {{ echo eof >&2; exit 1; }}; done");
        let (_, stderr, pgid) = run(&twice, Some("wrong"), None).await;
        assert!(stderr.ends_with("eof\n"), "{stderr}");
        assert_eq!(pgid, None);
    }
}
