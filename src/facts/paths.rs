//! Paths (`stat`, `creates`, `removes`): a fragment of the probe and its parser.

use serde::Serialize;

use super::{first, Change, Facts, ProbeRequest};
use crate::shell::quote;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PathStat {
    pub exists: bool,
    pub kind: String,
    pub size: u64,
    pub mode: String,
    pub owner: String,
    pub group: String,
    pub mtime: i64,
    /// The content's SHA-1, when asked for (`ProbeRequest::checksums`) and a regular file.
    pub checksum: Option<String>,
}

/// Any change may have touched any path.
pub fn stale_after(_change: Change) -> bool {
    true
}

/// The stat command whose one line [`stat_line`] reads.
const STAT: &str = "stat -L -c '%F|%s|%a|%U|%G|%Y'";

/// A line of [`STAT`]; a path that does not exist (no such line) is the default.
fn stat_line(line: &str) -> PathStat {
    let f: Vec<&str> = line.split('|').collect();
    if f.len() != 6 {
        return PathStat::default();
    }
    PathStat {
        exists: true,
        kind: f[0].to_string(),
        size: f[1].parse().unwrap_or(0),
        mode: format!("{:0>4}", f[2]),
        owner: f[3].to_string(),
        group: f[4].to_string(),
        mtime: f[5].parse().unwrap_or(0),
        checksum: None,
    }
}

/// The SHA-1 of a `sha1sum` line.
fn sha1_line(line: &str) -> Option<String> {
    line.split_whitespace().next().filter(|h| h.len() == 40).map(str::to_string)
}

/// A section names its path by index: the path itself (any text a task, inventory or `-e`
/// may hold) is only ever written quoted, as an argument.
pub(super) fn probe(request: &ProbeRequest, s: &mut String) {
    for (i, p) in request.paths.iter().enumerate() {
        s.push_str(&format!("echo '@@stat|{i}'; {STAT} -- {} 2>/dev/null\n", quote(p)));
    }
}

/// A regular file's SHA-1, by index too; read after the `stat` sections.
pub(super) fn probe_checksums(request: &ProbeRequest, s: &mut String) {
    for (i, p) in request.checksums.iter().enumerate() {
        s.push_str(&format!("echo '@@sum|{i}'; [ -f {q} ] && sha1sum -- {q} 2>/dev/null\n", q = quote(p)));
    }
}

/// Reads a `sum|N` section into the path's stat.
pub(super) fn parse_checksum(section: &str, lines: &[&str], request: &ProbeRequest, facts: &mut Facts) -> bool {
    let Some(index) = section.strip_prefix("sum|") else { return false };
    let Some(path) = index.parse::<usize>().ok().and_then(|i| request.checksums.get(i)) else { return true };
    if let Some(stat) = facts.paths.get_mut(path) {
        stat.checksum = sha1_line(&first(lines));
    }
    true
}

/// One path's stat and (for a regular file) SHA-1 read directly, for a task that runs as
/// another user (the probe reads as the login user, who may not see inside the directory).
pub fn stat_script(path: &str) -> String {
    let q = quote(path);
    format!("{STAT} -- {q} 2>/dev/null && {{ [ -f {q} ] && sha1sum -- {q} 2>/dev/null || true; }}")
}

/// The output of [`stat_script`].
pub fn parse_stat(output: &str) -> PathStat {
    let mut lines = output.lines();
    let mut stat = stat_line(lines.next().unwrap_or(""));
    if stat.exists {
        stat.checksum = lines.next().and_then(sha1_line);
    }
    stat
}

/// Reads a `stat|N` section.
pub(super) fn parse(section: &str, lines: &[&str], request: &ProbeRequest, facts: &mut Facts) -> bool {
    let Some(index) = section.strip_prefix("stat|") else { return false };
    let Some(path) = index.parse::<usize>().ok().and_then(|i| request.paths.get(i)) else { return true };
    let stat = stat_line(&first(lines));
    facts.paths.insert(path.clone(), stat);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_stat_reads_as_the_probe_does() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("it's here");
        std::fs::write(&f, "hello\n").unwrap();
        let out = std::process::Command::new("sh").arg("-c").arg(stat_script(&f.display().to_string())).output().unwrap();
        let s = parse_stat(&String::from_utf8_lossy(&out.stdout));
        assert!(s.exists && s.kind.starts_with("regular"), "{s:?}");
        assert_eq!(s.checksum.as_deref(), Some("f572d396fae9206628714fb2ce00f72e94f2258f"));
        let out = std::process::Command::new("sh").arg("-c").arg(stat_script("/nonexistent/x")).output().unwrap();
        assert!(!parse_stat(&String::from_utf8_lossy(&out.stdout)).exists);
    }
}
