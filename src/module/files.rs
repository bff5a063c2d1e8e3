//! Putting a file's content on a host with its attributes, as Ansible's `copy` and `template`
//! do: compared by SHA-1 with what the probe read (a file that is right costs no round trip
//! of its own), written to a temporary file beside the destination, validated, then moved
//! over it in one step; a file whose content is right only gets its owner, group and mode.

use serde_json::{json, Value as Json};
use sha1::{Digest, Sha1};

use super::spec::{ArgError, Args};
use super::{Diff, Outcome, RunCtx};
use crate::facts::{Change, PathStat, ProbeRequest};
use crate::session::HostSession;
use crate::shell::quote;

/// Where and how the file goes (the arguments `copy` and `template` share).
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    pub dest: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<Mode>,
    pub backup: bool,
    /// A command run on the new content before it replaces the file; `%s` is its path.
    pub validate: Option<String>,
    /// `force: false`: an existing file is left as it is.
    pub force: bool,
    /// Missing parent directories are created (`lineinfile`/`blockinfile` with `create`).
    pub parents: bool,
}

/// `mode:` as written: bits (`0644`, `"0644"`, `"644"`) or symbolic (`u=rw,g=r,o=r`).
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Bits(u32),
    Symbolic(String),
}

impl Placement {
    pub fn from_args(module: &'static str, args: &Args) -> Result<Placement, ArgError> {
        let dest = args.str("dest").ok_or(ArgError::Missing { module, what: "'dest'" })?;
        crate::names::path(&dest)?;
        if !dest.starts_with('/') {
            return Err(ArgError::Module(format!("{module}: dest '{dest}' must be an absolute path on the host")));
        }
        let name = |what: &'static str| -> Result<Option<String>, ArgError> {
            match args.str(what) {
                Some(n) if account_name(&n) => Ok(Some(n)),
                Some(n) => Err(ArgError::Invalid { arg: what, expected: "a user or group name, or a number", found: n }),
                None => Ok(None),
            }
        };
        let mode = match args.get("mode") {
            None | Some(Json::Null) => None,
            Some(Json::Number(n)) => Some(Mode::Bits(n.as_u64().filter(|n| *n <= 0o7777).ok_or_else(|| bad_mode(&n.to_string()))? as u32)),
            Some(Json::String(s)) if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() => {
                Some(Mode::Bits(u32::from_str_radix(s, 8).ok().filter(|n| *n <= 0o7777).ok_or_else(|| bad_mode(s))?))
            }
            Some(Json::String(s)) if s == "preserve" => {
                return Err(ArgError::Module(format!("{module}: mode: preserve is not supported by gafix yet")))
            }
            Some(Json::String(s)) => {
                symbolic(s, 0, false).ok_or_else(|| bad_mode(s))?;
                Some(Mode::Symbolic(s.clone()))
            }
            Some(other) => return Err(bad_mode(&other.to_string())),
        };
        Ok(Placement {
            dest,
            owner: name("owner")?,
            group: name("group")?,
            mode,
            backup: args.bool("backup").unwrap_or(false),
            validate: args.str("validate").filter(|v| !v.trim().is_empty()),
            force: args.bool("force").unwrap_or(true),
            parents: false,
        })
    }

    /// The probe reads the destination's stat and checksum with the facts.
    pub fn probe(&self, request: &mut ProbeRequest) {
        request.paths.push(self.dest.clone());
        request.checksums.push(self.dest.clone());
    }
}

fn bad_mode(found: &str) -> ArgError {
    ArgError::Invalid { arg: "mode", expected: "octal bits (0644) or a symbolic mode (u=rw,g=r,o=r)", found: found.to_string() }
}

/// A user or group as `chown` takes it: a name (letters, digits, `_.-`, not leading `-`) or a number.
fn account_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('-')
        && n.len() <= 64
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '$'))
}

/// The mode bits `spec` gives a file whose bits are now `current`, as chmod computes them.
pub fn mode_bits(spec: &Mode, current: u32, is_dir: bool) -> Option<u32> {
    match spec {
        Mode::Bits(b) => Some(*b),
        Mode::Symbolic(s) => symbolic(s, current, is_dir),
    }
}

/// chmod's symbolic modes: `[ugoa]*[+-=][rwxXst]*`, comma-separated.
fn symbolic(spec: &str, current: u32, is_dir: bool) -> Option<u32> {
    let mut mode = current;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '='])?;
        let (who, rest) = clause.split_at(op_at);
        let mut mask = 0u32;
        for c in who.chars() {
            mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => return None,
            };
        }
        if who.is_empty() {
            mask = 0o7777;
        }
        let mut chars = rest.chars().peekable();
        while let Some(op) = chars.next() {
            let mut bits = 0u32;
            while let Some(&c) = chars.peek().filter(|c| !matches!(c, '+' | '-' | '=')) {
                chars.next();
                bits |= match c {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    'X' => 0,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => return None,
                };
            }
            let bits = bits & mask;
            mode = match op {
                '+' => mode | bits,
                '-' => mode & !bits,
                '=' => (mode & !(mask & 0o777 | if who.is_empty() { 0 } else { mask & 0o7000 })) | bits,
                _ => return None,
            };
        }
    }
    Some(mode)
}

/// SHA-1 in hex, as `sha1sum` prints it.
pub fn sha1_hex(content: &[u8]) -> String {
    Sha1::digest(content).iter().map(|b| format!("{b:02x}")).collect()
}

/// Puts `content` at the placement's destination (`src_name`: the source's file name, used
/// when `dest` is a directory). Idempotent; check mode reports what would change.
pub async fn put(host: &mut HostSession, p: &Placement, content: &str, src_name: Option<&str>, ctx: &RunCtx<'_>) -> Outcome {
    let mut p = p.clone();
    let mut stat = match stat_of(host, &p.dest, Read::Checksum, ctx).await {
        Ok(s) => s,
        Err(o) => return o,
    };
    if stat.kind == "directory" {
        let Some(name) = src_name else { return Outcome::failed(format!("{} is a directory", p.dest)) };
        p.dest = format!("{}/{name}", p.dest.trim_end_matches('/'));
        stat = match stat_of(host, &p.dest, Read::Checksum, ctx).await {
            Ok(s) => s,
            Err(o) => return o,
        };
    }
    let checksum = sha1_hex(content.as_bytes());
    if stat.exists && !p.force {
        return with_result(Outcome::ok(format!("{} exists (force: false)", p.dest)), &p, &stat, &checksum);
    }
    if stat.exists && !stat.kind.starts_with("regular") {
        return Outcome::failed(format!("{} is a {}, not a regular file", p.dest, stat.kind));
    }
    let current_bits = u32::from_str_radix(&stat.mode, 8).unwrap_or(0);
    let wanted_bits = p.mode.as_ref().and_then(|m| mode_bits(m, if stat.exists { current_bits } else { 0o644 }, false));
    let content_ok = stat.exists && stat.checksum.as_deref() == Some(checksum.as_str());
    let mode_ok = wanted_bits.is_none_or(|b| stat.exists && b == current_bits);
    let owner_ok = p.owner.as_ref().is_none_or(|o| stat.exists && (&stat.owner == o));
    let group_ok = p.group.as_ref().is_none_or(|g| stat.exists && (&stat.group == g));
    if content_ok && mode_ok && owner_ok && group_ok {
        return with_result(Outcome::ok(format!("{} is up to date", p.dest)), &p, &stat, &checksum);
    }
    let mut what = Vec::new();
    if !content_ok {
        what.push(if stat.exists { "content" } else { "created" });
    }
    if !mode_ok {
        what.push("mode");
    }
    if !owner_ok || !group_ok {
        what.push("owner");
    }
    let diff = if ctx.diff && !content_ok {
        let before = if stat.exists { read_remote(host, &p.dest, ctx).await.unwrap_or_default() } else { String::new() };
        Some(Diff { before, after: content.to_string() })
    } else {
        None
    };
    if ctx.check_mode {
        let mut o = Outcome::changed(format!("would write {} ({})", p.dest, what.join(", ")));
        o.diff = diff;
        return with_result(o, &p, &stat, &checksum);
    }
    let script = write_script(&p, !content_ok, wanted_bits);
    let out = match host.run(&script, ctx.become_, (!content_ok).then_some(content)).await {
        Ok(out) => out,
        Err(e) => return Outcome::from_transport(e),
    };
    host.mark_changed(Change::Other);
    if out.rc != 0 {
        let explanation = match out.rc {
            3 => Some(format!("Destination directory {} does not exist", parent(&p.dest))),
            4 => Some(format!("failed to validate: {}", out.tail(3).lines().last().unwrap_or(""))),
            _ => None,
        };
        return Outcome::command_failed(&format!("writing {}", p.dest), &out, explanation);
    }
    let mut o = Outcome::changed(format!("{} ({})", p.dest, what.join(", ")));
    o.diff = diff;
    let mut o = with_result(o, &p, &stat, &checksum);
    if let Some(backup) = out.stdout.lines().find_map(|l| l.strip_prefix("@@backup ")) {
        o.result["backup_file"] = json!(backup);
    }
    o
}

/// How much of a path a module needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    Stat,
    Checksum,
    Content,
}

/// The destination as the task's user sees it: from the probe (read as the login user), and
/// read again as the task's user when the probe could not see it (absent, or a regular
/// file whose checksum or content it could not read).
pub async fn stat_of(host: &mut HostSession, path: &str, read: Read, ctx: &RunCtx<'_>) -> Result<PathStat, Outcome> {
    let mut request = ProbeRequest { paths: vec![path.to_string()], ..Default::default() };
    match read {
        Read::Stat => {}
        Read::Checksum => request.checksums.push(path.to_string()),
        Read::Content => request.contents.push(path.to_string()),
    }
    host.ensure_facts(&request).await.map_err(Outcome::from_transport)?;
    let seen = host.facts().paths.get(path).cloned().unwrap_or_default();
    let unread = match read {
        Read::Stat => false,
        Read::Checksum => seen.checksum.is_none(),
        Read::Content => seen.content.is_none(),
    };
    let hidden = !seen.exists || (seen.kind.starts_with("regular") && unread);
    if !hidden {
        return Ok(seen);
    }
    if ctx.become_.is_none() {
        return match read {
            Read::Content if seen.exists => Err(Outcome::failed(format!("cannot read {path}"))),
            _ => Ok(seen),
        };
    }
    let content = read == Read::Content;
    let out = host.run(&crate::facts::stat_script(path, content), ctx.become_, None).await.map_err(Outcome::from_transport)?;
    let stat = crate::facts::parse_stat(&out.stdout, content);
    if content && stat.exists && stat.kind.starts_with("regular") && stat.content.is_none() {
        return Err(Outcome::failed(format!("cannot read {path} as {}", ctx.become_.map(|b| b.user.as_str()).unwrap_or("root"))));
    }
    Ok(stat)
}

/// The text of a file a module edits in place (`lineinfile`, `blockinfile`), from the probe
/// (or read as the task's user): `None` when the file does not exist.
async fn current_text(host: &mut HostSession, path: &str, ctx: &RunCtx<'_>) -> Result<Option<String>, Outcome> {
    let stat = stat_of(host, path, Read::Content, ctx).await?;
    if stat.kind == "directory" {
        let mut o = Outcome::failed(format!("Path {path} is a directory !"));
        o.rc = Some(256);
        return Err(o);
    }
    if !stat.exists {
        return Ok(None);
    }
    match stat.content.map(String::from_utf8) {
        Some(Ok(text)) => Ok(Some(text)),
        Some(Err(_)) => Err(Outcome::failed(format!("{path} is not UTF-8 text; gafix edits text files only"))),
        None => Err(Outcome::failed(format!("{path} is a {}, not a regular file", stat.kind))),
    }
}

/// The placement of a file edited in place: its `path` (aliases resolved) is the
/// destination, and missing parent directories are created with it, as Ansible does.
pub fn edit_placement(module: &'static str, args: &Args) -> Result<Placement, ArgError> {
    let mut with_dest = args.clone();
    if let Some(path) = args.get("path").cloned() {
        with_dest.0.insert("dest".into(), path);
    }
    let mut p = Placement::from_args(module, &with_dest)?;
    p.parents = true;
    Ok(p)
}

/// How an in-place edit treats a file that does not exist.
pub struct Missing {
    /// `state: present` (else absent: nothing to do, `absent_msg` says so).
    pub present: bool,
    pub create: bool,
    /// The failure's message when the file is missing and `create` is off.
    pub missing_msg: String,
    pub absent_msg: String,
}

/// An in-place edit from start to end: the current text (from the probe), the edit, the
/// write with attributes. `apply` gets the text (`None`: no such file) and returns the new
/// text and what it did.
pub async fn run_edit(
    host: &mut HostSession,
    p: &Placement,
    missing: Missing,
    ctx: &RunCtx<'_>,
    apply: impl FnOnce(Option<&str>) -> Result<(String, String), String>,
) -> Outcome {
    let before = match current_text(host, &p.dest, ctx).await {
        Ok(t) => t,
        Err(o) => return o,
    };
    match (&before, missing.present) {
        (None, false) => return Outcome::ok(missing.absent_msg),
        (None, true) if !missing.create => {
            let mut o = Outcome::failed(missing.missing_msg);
            o.rc = Some(257);
            return o;
        }
        _ => {}
    }
    match apply(before.as_deref()) {
        Ok((after, msg)) => put_edit(host, p, before.as_deref(), &after, &msg, ctx).await,
        Err(msg) => Outcome::failed(msg),
    }
}

/// Puts an in-place edit's result with the placement's attributes; `msg` says what the
/// edit did when it changed the text (Ansible's wording: "line added", "Block inserted").
async fn put_edit(host: &mut HostSession, p: &Placement, before: Option<&str>, after: &str, msg: &str, ctx: &RunCtx<'_>) -> Outcome {
    let mut o = put(host, p, after, None, ctx).await;
    if before != Some(after) && o.status == super::outcome::Status::Changed {
        o.msg = if ctx.check_mode { format!("would change {}: {msg}", p.dest) } else { format!("{}: {msg}", p.dest) };
    }
    if ctx.diff && before != Some(after) {
        o.diff = Some(Diff { before: before.unwrap_or_default().to_string(), after: after.to_string() });
    }
    o.result["msg"] = json!(if before != Some(after) { msg } else { "" });
    o
}

async fn read_remote(host: &mut HostSession, path: &str, ctx: &RunCtx<'_>) -> Option<String> {
    let out = host.run(&format!("cat -- {}", quote(path)), ctx.become_, None).await.ok()?;
    (out.rc == 0).then_some(out.stdout)
}

fn parent(dest: &str) -> &str {
    match dest.rfind('/') {
        Some(0) => "/",
        Some(i) => &dest[..i],
        None => ".",
    }
}

/// One script: the new content (from stdin) into a temporary file beside the destination,
/// attributes, validation, a backup, then `mv` over the destination; or only the attributes.
fn write_script(p: &Placement, new_content: bool, bits: Option<u32>) -> String {
    let dest = quote(&p.dest);
    let mut s = String::from("set -e\n");
    let target = if new_content {
        let missing_dir = if p.parents { "mkdir -p \"$dir\"" } else { "exit 3" };
        s.push_str(&format!("dir={}\n[ -d \"$dir\" ] || {missing_dir}\n", quote(parent(&p.dest))));
        s.push_str("tmp=$(mktemp \"$dir/.gafix-tmp.XXXXXX\")\ntrap 'rm -f \"$tmp\"' EXIT\ncat > \"$tmp\"\n");
        // A new file gets the permissions the umask allows, an existing one keeps its own.
        s.push_str(&format!(
            "if [ -e {dest} ]; then chmod --reference={dest} \"$tmp\"; chown --reference={dest} \"$tmp\" 2>/dev/null || true; \
             else chmod \"$(printf '%o' $((0666 & ~$(umask))))\" \"$tmp\"; fi\n"
        ));
        "\"$tmp\"".to_string()
    } else {
        dest.clone()
    };
    if let Some(b) = bits {
        s.push_str(&format!("chmod {b:04o} {target}\n"));
    }
    if let Some(o) = &p.owner {
        s.push_str(&format!("chown {} {target}\n", quote(o)));
    }
    if let Some(g) = &p.group {
        s.push_str(&format!("chgrp {} {target}\n", quote(g)));
    }
    if new_content {
        if let Some(v) = &p.validate {
            // The role's own command, with the new file's path for %s.
            let command = v.replace("%s", "\"$tmp\"");
            s.push_str(&format!("( {command} ) >&2 || exit 4\n"));
        }
        if p.backup {
            s.push_str(&format!(
                "if [ -e {dest} ]; then b={dest}.$$.$(date +%Y-%m-%d@%H:%M:%S)~; cp -p {dest} \"$b\"; echo \"@@backup $b\"; fi\n"
            ));
        }
        s.push_str(&format!("mv -f \"$tmp\" {dest}\ntrap - EXIT\n"));
    }
    s
}

fn with_result(mut o: Outcome, p: &Placement, stat: &PathStat, checksum: &str) -> Outcome {
    let mut r = json!({"dest": p.dest, "checksum": checksum, "path": p.dest});
    if stat.exists {
        r["owner"] = json!(p.owner.clone().unwrap_or_else(|| stat.owner.clone()));
        r["group"] = json!(p.group.clone().unwrap_or_else(|| stat.group.clone()));
    }
    o.result = r;
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_chmod_computes_them() {
        assert_eq!(symbolic("u=rw,g=r,o=r", 0o777, false), Some(0o644));
        assert_eq!(symbolic("u+x", 0o644, false), Some(0o744));
        assert_eq!(symbolic("a-w", 0o664, false), Some(0o444));
        assert_eq!(symbolic("go=", 0o755, false), Some(0o700));
        assert_eq!(symbolic("a+X", 0o644, false), Some(0o644), "X only for directories or files executable by someone");
        assert_eq!(symbolic("a+X", 0o744, false), Some(0o755));
        assert_eq!(symbolic("u=rwx,g+s", 0o644, false), Some(0o2744));
        assert_eq!(symbolic("u=rw,bogus", 0, false), None);
        assert_eq!(mode_bits(&Mode::Bits(0o600), 0o644, false), Some(0o600));
    }

    #[test]
    fn arguments_are_checked_before_anything_runs() {
        let args = |v: serde_json::Value| Args(v.as_object().unwrap().clone());
        let p =
            Placement::from_args("copy", &args(json!({"dest": "/etc/x.conf", "mode": "0640", "owner": "root", "backup": true}))).unwrap();
        assert_eq!((p.mode, p.backup, p.force), (Some(Mode::Bits(0o640)), true, true));
        let p = Placement::from_args("copy", &args(json!({"dest": "/etc/x.conf", "mode": 420}))).unwrap();
        assert_eq!(p.mode, Some(Mode::Bits(0o644)), "YAML's 0644 is the integer 420");
        assert!(Placement::from_args("copy", &args(json!({"dest": "etc/x"}))).is_err(), "relative");
        assert!(Placement::from_args("copy", &args(json!({"dest": "/x", "owner": "-rf"}))).is_err());
        assert!(Placement::from_args("copy", &args(json!({"dest": "/x", "mode": "0999"}))).is_err());
        assert!(Placement::from_args("copy", &args(json!({"dest": "/x", "mode": "u=rwz"}))).is_err());
    }

    #[test]
    fn the_write_is_one_script_that_replaces_the_file_in_one_step() {
        let p = Placement {
            dest: "/etc/app's.conf".into(),
            owner: Some("app".into()),
            group: None,
            mode: Some(Mode::Bits(0o640)),
            backup: true,
            validate: Some("visudo -cf %s".into()),
            force: true,
            parents: false,
        };
        let s = write_script(&p, true, Some(0o640));
        assert!(s.contains("cat > \"$tmp\"") && s.contains("chmod 0640 \"$tmp\"") && s.contains("chown app \"$tmp\""), "{s}");
        assert!(s.contains("( visudo -cf \"$tmp\" ) >&2 || exit 4"), "{s}");
        assert!(s.contains(&format!("mv -f \"$tmp\" {}", quote("/etc/app's.conf"))), "{s}");
        assert!(s.find("exit 4").unwrap() < s.find("mv -f").unwrap(), "validated before it replaces the file");
        assert!(
            s.contains("|| exit 3") && write_script(&Placement { parents: true, ..p.clone() }, true, None).contains("|| mkdir -p \"$dir\"")
        );
        let attrs_only = write_script(&p, false, Some(0o640));
        assert!(!attrs_only.contains("cat >") && attrs_only.contains(&format!("chmod 0640 {}", quote("/etc/app's.conf"))));
        assert_eq!(sha1_hex(b"hello\n"), "f572d396fae9206628714fb2ce00f72e94f2258f");
    }
}
