//! SSH masters kept between runs, as Ansible's ControlPersist keeps them: opt-in
//! (`--persist SECONDS`, or a ControlPersist in ansible.cfg's `ssh_args`), so that a check
//! followed by an apply, or a run on a timer, pays no handshake.
//!
//! A kept master lives in the private control directory, under a key made of everything that
//! decides what the connection is (address, port, user, key file, ssh options, host key
//! policy): two runs share a master only when they would have made the same one. The
//! directory is the user's own (checked 0700 and owned by us), so masters are never shared
//! across users. OpenSSH itself ends a master once it has been idle for its ControlPersist
//! time; `gafix ssh --stop` ends them all at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssh::Session;

use super::ConnectionSpec;

/// How long a master outlives the run that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// Until it has been idle this long (OpenSSH's ControlPersist=N).
    IdleFor(u64),
    /// Until `gafix ssh --stop` (ControlPersist=yes or 0).
    Forever,
}

impl Persist {
    pub fn as_openssh(self) -> openssh::ControlPersist {
        match self {
            Persist::IdleFor(s) => match std::num::NonZeroUsize::new(s as usize) {
                Some(n) => openssh::ControlPersist::IdleFor(n),
                None => openssh::ControlPersist::Forever,
            },
            Persist::Forever => openssh::ControlPersist::Forever,
        }
    }
}

/// A ControlPersist value as ssh_config(5) reads it: `yes`, `no`, `0` (forever) or a time
/// (`60`, `60s`, `10m`, `1h30m`). `Ok(None)` is `no`.
pub fn parse_control_persist(text: &str) -> Result<Option<Persist>, String> {
    let t = text.trim().to_ascii_lowercase();
    match t.as_str() {
        "yes" | "true" => return Ok(Some(Persist::Forever)),
        "no" | "false" => return Ok(None),
        _ => {}
    }
    let bad = || format!("ControlPersist '{text}' is not yes, no or a time (60, 60s, 10m, 1h30m)");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.checked_add(n.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        total = total.checked_add(number.parse::<u64>().map_err(|_| bad())?).ok_or_else(bad)?;
    } else if t.is_empty() || !t.ends_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    Ok(Some(if total == 0 { Persist::Forever } else { Persist::IdleFor(total) }))
}

/// The ControlPersist an ssh command line sets (`-o ControlPersist=60s`, `-oControlPersist 60`),
/// as ansible.cfg's `ssh_args` carries it; `Ok(None)` when it sets none or says `no`.
pub fn control_persist_in_args(args: &str) -> Result<Option<Persist>, String> {
    let words = shlex::split(args).ok_or_else(|| "unbalanced quotes".to_string())?;
    let mut found = None;
    let mut words = words.iter();
    while let Some(w) = words.next() {
        let option = match w.as_str() {
            "-o" => words.next().map(String::as_str),
            s => s.strip_prefix("-o"),
        };
        let Some(option) = option else { continue };
        let (key, value) = option.split_once('=').or_else(|| option.split_once(char::is_whitespace)).unwrap_or((option, ""));
        // ssh takes the first value given for an option.
        if key.trim().eq_ignore_ascii_case("ControlPersist") && found.is_none() {
            found = Some(parse_control_persist(value)?);
        }
    }
    Ok(found.flatten())
}

/// The key of the master a connection would make: equal keys, interchangeable masters.
pub fn master_key(spec: &ConnectionSpec) -> String {
    use sha1::{Digest, Sha1};
    let identity = serde_json::json!([
        spec.address,
        spec.port,
        spec.user,
        spec.key_file.as_ref().map(|p| p.display().to_string()),
        spec.ssh_args,
        format!("{:?}", spec.host_key_policy),
    ]);
    let digest = Sha1::digest(identity.to_string().as_bytes());
    digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

/// Where the masters of one key live (created private).
pub fn key_directory(control: &Path, spec: &ConnectionSpec) -> Result<PathBuf, String> {
    let kept = super::ssh::private_directory(&control.join("kept"))?;
    super::ssh::private_directory(&kept.join(master_key(spec)))
}

/// Writes what `gafix ssh` lists for a key directory: who its masters connect to, never a
/// secret. Once per new master, not on every reuse.
pub fn name_target(dir: &Path, spec: &ConnectionSpec) {
    let target = format!(
        "{}{}{}\n",
        spec.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default(),
        spec.address,
        spec.port.map(|p| format!(":{p}")).unwrap_or_default()
    );
    let _ = std::fs::write(dir.join("target"), target);
}

/// A master left without its socket for this long has ended (or never started): its folder
/// goes. Longer than any connect timeout, so that a master another run is starting is spared.
const LEFTOVER_AGE: Duration = Duration::from_secs(15 * 60);

/// Every master folder (`.ssh-connection*`, made by the openssh crate) under a key directory.
fn master_folders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".ssh-connection")).map(|e| e.path()).collect()
}

/// A master an earlier run kept for this key that still answers its socket; the folders of
/// masters that are gone are removed on the way.
pub async fn resume(dir: &Path) -> Option<Session> {
    for folder in master_folders(dir) {
        let socket = folder.join("master");
        if socket.exists() {
            if let Some(session) = answering(&socket, Some(folder.join("log"))).await {
                return Some(session);
            }
            // A socket nobody answers: the master died without removing it.
            let _ = std::fs::remove_dir_all(&folder);
        } else if std::fs::metadata(&folder).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() > LEFTOVER_AGE) {
            let _ = std::fs::remove_dir_all(&folder);
        }
    }
    None
}

/// A kept master: who it connects to and its socket.
#[derive(Debug)]
pub struct Kept {
    pub target: String,
    pub socket: PathBuf,
}

/// The masters kept under `control` whose sockets exist (live or not yet cleaned up).
pub fn kept(control: &Path) -> Vec<Kept> {
    let Ok(keys) = std::fs::read_dir(control.join("kept")) else { return Vec::new() };
    let mut found = Vec::new();
    for key in keys.flatten() {
        let target = std::fs::read_to_string(key.path().join("target")).unwrap_or_default().trim().to_string();
        for folder in master_folders(&key.path()) {
            let socket = folder.join("master");
            if socket.exists() {
                found.push(Kept { target: target.clone(), socket });
            }
        }
    }
    found.sort_by(|a, b| a.target.cmp(&b.target));
    found
}

/// The master on `socket`, if it answers within 2 s.
async fn answering(socket: &Path, log: Option<PathBuf>) -> Option<Session> {
    let session = Session::resume_mux(socket.into(), log.map(PathBuf::into_boxed_path));
    matches!(tokio::time::timeout(Duration::from_secs(2), session.check()).await, Ok(Ok(()))).then_some(session)
}

/// Whether a kept master answers on its socket.
pub async fn answers(kept: &Kept) -> bool {
    answering(&kept.socket, None).await.is_some()
}

/// Ends a kept master: it stops taking new sessions and exits once its last one is done.
/// Its folder goes with it.
pub async fn stop(kept: &Kept) -> bool {
    let session = Session::resume_mux(kept.socket.clone().into_boxed_path(), None);
    let stopped = matches!(tokio::time::timeout(Duration::from_secs(5), session.close()).await, Ok(Ok(())));
    if let Some(folder) = kept.socket.parent() {
        let _ = std::fs::remove_dir_all(folder);
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::HostKeyPolicy;

    #[test]
    fn control_persist_values_read_as_ssh_reads_them() {
        assert_eq!(parse_control_persist("60s"), Ok(Some(Persist::IdleFor(60))));
        assert_eq!(parse_control_persist("60"), Ok(Some(Persist::IdleFor(60))));
        assert_eq!(parse_control_persist("10m"), Ok(Some(Persist::IdleFor(600))));
        assert_eq!(parse_control_persist("1h30m"), Ok(Some(Persist::IdleFor(5400))));
        assert_eq!(parse_control_persist("1h5"), Ok(Some(Persist::IdleFor(3605))));
        assert_eq!(parse_control_persist("yes"), Ok(Some(Persist::Forever)));
        assert_eq!(parse_control_persist("0"), Ok(Some(Persist::Forever)));
        assert_eq!(parse_control_persist("no"), Ok(None));
        for bad in ["", "s", "60x", "soon", "-5", "99999999999999999999"] {
            assert!(parse_control_persist(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn control_persist_is_found_in_ssh_args() {
        let default_ansible = "-C -o ControlMaster=auto -o ControlPersist=60s";
        assert_eq!(control_persist_in_args(default_ansible), Ok(Some(Persist::IdleFor(60))));
        assert_eq!(control_persist_in_args("-oControlPersist=2m"), Ok(Some(Persist::IdleFor(120))));
        assert_eq!(control_persist_in_args("-o 'controlpersist 30'"), Ok(Some(Persist::IdleFor(30))));
        // The first value wins, as in ssh.
        assert_eq!(control_persist_in_args("-o ControlPersist=no -o ControlPersist=60s"), Ok(None));
        assert_eq!(control_persist_in_args("-C -o ServerAliveInterval=5"), Ok(None));
        assert!(control_persist_in_args("-o ControlPersist=later").is_err());
    }

    #[test]
    fn masters_are_keyed_by_everything_that_makes_the_connection() {
        let spec = |user: &str, port: Option<u16>, args: &[&str], policy| {
            let mut s = ConnectionSpec::from_vars("web1", &Default::default(), policy, None).unwrap();
            s.user = Some(user.to_string());
            s.port = port;
            s.ssh_args = args.iter().map(|a| a.to_string()).collect();
            s
        };
        let base = master_key(&spec("deploy", None, &[], HostKeyPolicy::Strict));
        assert_eq!(base, master_key(&spec("deploy", None, &[], HostKeyPolicy::Strict)), "stable");
        for other in [
            spec("root", None, &[], HostKeyPolicy::Strict),
            spec("deploy", Some(2222), &[], HostKeyPolicy::Strict),
            spec("deploy", None, &["-o", "ProxyJump=bastion"], HostKeyPolicy::Strict),
            spec("deploy", None, &[], HostKeyPolicy::Off),
        ] {
            assert_ne!(master_key(&other), base, "{other:?} shares a master with deploy@web1");
        }
    }

    #[test]
    fn a_key_directory_is_private_and_names_its_target() {
        use std::os::unix::fs::PermissionsExt;
        let control = tempfile::tempdir().unwrap();
        let mut spec = ConnectionSpec::from_vars("web1", &Default::default(), HostKeyPolicy::Strict, None).unwrap();
        spec.user = Some("deploy".into());
        spec.port = Some(2222);
        let dir = key_directory(control.path(), &spec).unwrap();
        name_target(&dir, &spec);
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_to_string(dir.join("target")).unwrap(), "deploy@web1:2222\n");
        // A folder whose socket is gone is left alone while young (a master may be starting in it).
        let young = dir.join(".ssh-connectionYOUNG");
        std::fs::create_dir(&young).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert!(runtime.block_on(resume(&dir)).is_none());
        assert!(young.exists());
        // A socket file nobody listens on is a dead master: its folder goes.
        let dead = dir.join(".ssh-connectionDEAD");
        std::fs::create_dir(&dead).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(dead.join("master")).unwrap();
        drop(_listener);
        assert!(runtime.block_on(resume(&dir)).is_none());
        assert!(!dead.exists(), "the dead master's folder is removed");
        assert!(kept(control.path()).is_empty());
    }
}
