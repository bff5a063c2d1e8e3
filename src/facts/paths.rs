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

/// A section names its path by index: the path itself (any text a task, inventory or `-e`
/// may hold) is only ever written quoted, as an argument.
pub(super) fn probe(request: &ProbeRequest, s: &mut String) {
    for (i, p) in request.paths.iter().enumerate() {
        s.push_str(&format!("echo '@@stat|{i}'; stat -L -c '%F|%s|%a|%U|%G|%Y' -- {} 2>/dev/null\n", quote(p)));
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
    let sum = first(lines).split_whitespace().next().filter(|h| h.len() == 40).map(str::to_string);
    if let Some(stat) = facts.paths.get_mut(path) {
        stat.checksum = sum;
    }
    true
}

/// Reads a `stat|N` section.
pub(super) fn parse(section: &str, lines: &[&str], request: &ProbeRequest, facts: &mut Facts) -> bool {
    let Some(index) = section.strip_prefix("stat|") else { return false };
    let Some(path) = index.parse::<usize>().ok().and_then(|i| request.paths.get(i)) else { return true };
    let line = first(lines);
    let f: Vec<&str> = line.split('|').collect();
    let stat = if f.len() == 6 {
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
    } else {
        PathStat::default()
    };
    facts.paths.insert(path.clone(), stat);
    true
}
