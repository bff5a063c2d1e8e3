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
    /// The content itself, when asked for (`ProbeRequest::contents`, for modules that edit
    /// a file in place, like `lineinfile`) and a regular file the login user can read.
    #[serde(skip)]
    pub content: Option<Vec<u8>>,
    /// Where the path points if it is a symbolic link (`Some("")`: not a link), when
    /// asked for (`ProbeRequest::links`, for `file` with `state: link`).
    pub link_target: Option<String>,
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
        content: None,
        link_target: None,
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

/// A regular file's content, base64 on one line and a `+` line once it is all read (an
/// unreadable file prints no `+`, and is not taken for an empty one); by index too.
pub(super) fn probe_contents(request: &ProbeRequest, s: &mut String) {
    for (i, p) in request.contents.iter().enumerate() {
        s.push_str(&format!("echo '@@cat|{i}'; [ -f {q} ] && base64 -w0 -- {q} 2>/dev/null && printf '\\n+\\n'\n", q = quote(p)));
    }
}

/// The lines of a content section: the file's bytes, when it was read whole.
fn content_lines(lines: &[&str]) -> Option<Vec<u8>> {
    use base64::Engine;
    match lines {
        [encoded, "+", ..] => base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok(),
        ["+", ..] => Some(Vec::new()),
        _ => None,
    }
}

/// A path's own link target (empty when it is not a link), by index.
pub(super) fn probe_links(request: &ProbeRequest, s: &mut String) {
    for (i, p) in request.links.iter().enumerate() {
        s.push_str(&format!("echo '@@link|{i}'; readlink -- {} 2>/dev/null; echo\n", quote(p)));
    }
}

/// Reads a `link|N` section into the path's stat (a missing path gets an entry too).
pub(super) fn parse_link(section: &str, lines: &[&str], request: &ProbeRequest, facts: &mut Facts) -> bool {
    let Some(index) = section.strip_prefix("link|") else { return false };
    let Some(path) = index.parse::<usize>().ok().and_then(|i| request.links.get(i)) else { return true };
    let target = lines.first().copied().unwrap_or("").to_string();
    facts.paths.entry(path.clone()).or_default().link_target = Some(target);
    true
}

/// Reads a `cat|N` section into the path's stat (with the SHA-1 it implies).
pub(super) fn parse_content(section: &str, lines: &[&str], request: &ProbeRequest, facts: &mut Facts) -> bool {
    let Some(index) = section.strip_prefix("cat|") else { return false };
    let Some(path) = index.parse::<usize>().ok().and_then(|i| request.contents.get(i)) else { return true };
    if let Some(stat) = facts.paths.get_mut(path) {
        stat.content = content_lines(lines);
        if let Some(c) = &stat.content {
            stat.checksum = Some(crate::module::files::sha1_hex(c));
        }
    }
    true
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

/// One path's stat and (for a regular file) SHA-1, or its content, read directly, for a
/// task that runs as another user (the probe reads as the login user, who may not see
/// inside the directory).
pub fn stat_script(path: &str, content: bool) -> String {
    let q = quote(path);
    let read = if content { format!("base64 -w0 -- {q} && printf '\\n+\\n'") } else { format!("sha1sum -- {q}") };
    format!("{STAT} -- {q} 2>/dev/null && {{ [ -f {q} ] && {read} 2>/dev/null || true; }}")
}

/// The output of [`stat_script`].
pub fn parse_stat(output: &str, content: bool) -> PathStat {
    let lines: Vec<&str> = output.lines().collect();
    let mut stat = stat_line(lines.first().copied().unwrap_or(""));
    if stat.exists && content {
        stat.content = content_lines(lines.get(1..).unwrap_or(&[]));
        stat.checksum = stat.content.as_deref().map(crate::module::files::sha1_hex);
    } else if stat.exists {
        stat.checksum = lines.get(1).copied().and_then(sha1_line);
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
    fn the_probe_reads_a_links_own_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (link, target, plain) = (link.display().to_string(), target.display().to_string(), dir.path().join("t").display().to_string());
        let request =
            ProbeRequest { paths: vec![link.clone(), plain.clone()], links: vec![link.clone(), plain.clone()], ..Default::default() };
        let out = std::process::Command::new("sh").arg("-c").arg(crate::facts::probe_script(&request, false)).output().unwrap();
        let mut facts = Facts::default();
        crate::facts::parse_probe(&String::from_utf8_lossy(&out.stdout), &request, &mut facts);
        assert_eq!(facts.paths[&link].link_target.as_deref(), Some(target.as_str()));
        assert!(facts.paths[&link].exists, "the stat follows the link");
        assert_eq!(facts.paths[&plain].link_target.as_deref(), Some(""), "not a link");
    }

    #[test]
    fn a_direct_stat_reads_as_the_probe_does() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("it's here");
        std::fs::write(&f, "hello\n").unwrap();
        let read = |path: &str, content: bool| {
            let out = std::process::Command::new("sh").arg("-c").arg(stat_script(path, content)).output().unwrap();
            parse_stat(&String::from_utf8_lossy(&out.stdout), content)
        };
        let path = f.display().to_string();
        let s = read(&path, false);
        assert!(s.exists && s.kind.starts_with("regular"), "{s:?}");
        assert_eq!(s.checksum.as_deref(), Some("f572d396fae9206628714fb2ce00f72e94f2258f"));
        assert_eq!(s.content, None);
        let s = read(&path, true);
        assert_eq!(s.content.as_deref(), Some(&b"hello\n"[..]));
        assert_eq!(s.checksum.as_deref(), Some("f572d396fae9206628714fb2ce00f72e94f2258f"));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(read(&empty.display().to_string(), true).content.as_deref(), Some(&b""[..]), "an empty file is read, and empty");
        assert!(!read("/nonexistent/x", false).exists);
        assert_eq!(read("/nonexistent/x", true).content, None);
    }
}
