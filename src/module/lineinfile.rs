//! `lineinfile`: one line of a text file present (replaced where `regexp`/`search_string`
//! matches, else inserted after/before a match or at an end) or absent, as ansible-core's
//! module decides it, line for line. The file's content comes with the facts probe, so a
//! file already right costs no round trip of its own; a change is written as `copy` writes.

use futures::future::BoxFuture;
use regex::Regex;

use super::files::{edit_placement, run_edit, Missing};
use super::spec::{arg, arg_aliases, arg_choices, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::ProbeRequest;
use crate::session::HostSession;

pub struct LineInFile;

pub static SPEC: Spec = Spec {
    name: "lineinfile",
    aliases: &[],
    args: &[
        arg_aliases("path", Kind::Str, &["dest", "destfile", "name"]),
        arg_choices("state", &["present", "absent"]),
        arg_aliases("regexp", Kind::Str, &["regex"]),
        arg("search_string", Kind::Str),
        arg_aliases("line", Kind::Str, &["value"]),
        arg("insertafter", Kind::Str),
        arg("insertbefore", Kind::Str),
        arg("create", Kind::Bool),
        arg("backrefs", Kind::Bool),
        arg("firstmatch", Kind::Bool),
        arg("backup", Kind::Bool),
        arg("validate", Kind::Str),
        arg("owner", Kind::Str),
        arg("group", Kind::Str),
        arg("mode", Kind::Any),
    ],
    free_form: None,
    required: &["path"],
    unsupported: &["others", "attributes", "seuser", "serole", "setype", "selevel", "unsafe_writes"],
    any_keys: false,
};

/// Which lines the task is about.
#[derive(Clone, Debug)]
enum Matcher {
    Regexp(Regex),
    Search(String),
    /// Neither given: the line itself, compared whole.
    Exact,
}

/// Where a missing line goes.
#[derive(Clone, Debug)]
enum Anchor {
    Bof,
    Eof,
    After(Regex),
    Before(Regex),
}

#[derive(Clone, Debug)]
struct Edit {
    matcher: Matcher,
    line: Option<String>,
    anchor: Anchor,
    backrefs: bool,
    firstmatch: bool,
    present: bool,
    create: bool,
}

fn edit(args: &Args) -> Result<Edit, ArgError> {
    let present = args.str("state").as_deref() != Some("absent");
    let regexp = args.str("regexp");
    let search = args.str("search_string");
    let line = args.str("line");
    let backrefs = args.bool("backrefs").unwrap_or(false);
    let exclusive = |a: &str, b: &str| ArgError::Module(format!("lineinfile: parameters are mutually exclusive: {a}|{b}"));
    if regexp.is_some() && search.is_some() {
        return Err(exclusive("regexp", "search_string"));
    }
    if backrefs && search.is_some() {
        return Err(exclusive("backrefs", "search_string"));
    }
    let (after, before) = (args.str("insertafter"), args.str("insertbefore"));
    if after.is_some() && before.is_some() {
        return Err(exclusive("insertbefore", "insertafter"));
    }
    if present {
        if backrefs && regexp.is_none() {
            return Err(ArgError::Module("lineinfile: regexp is required with backrefs=true".into()));
        }
        if line.is_none() {
            return Err(ArgError::Module("lineinfile: line is required with state=present".into()));
        }
    } else if regexp.is_none() && search.is_none() && line.is_none() {
        return Err(ArgError::Module("lineinfile: one of line, search_string, or regexp is required with state=absent".into()));
    }
    let compile = |p: &str, what: &str| crate::pyre::compile(p, what).map_err(ArgError::Module);
    let matcher = match (regexp, search) {
        (Some(r), _) => Matcher::Regexp(compile(&r, "regexp")?),
        (None, Some(s)) => Matcher::Search(s),
        (None, None) => Matcher::Exact,
    };
    let anchor = match (after.as_deref(), before.as_deref()) {
        (Some("BOF"), _) | (None, Some("BOF")) => Anchor::Bof,
        (Some("EOF"), _) | (None, None) => Anchor::Eof,
        (Some(a), _) => Anchor::After(compile(a, "insertafter")?),
        (None, Some(b)) => Anchor::Before(compile(b, "insertbefore")?),
    };
    Ok(Edit {
        matcher,
        line,
        anchor,
        backrefs,
        firstmatch: args.bool("firstmatch").unwrap_or(false),
        present,
        create: args.bool("create").unwrap_or(false),
    })
}

/// A line without its end (Python's `rstrip('\r\n')`).
fn bare(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// What the edit makes of the file's text: the new text and Ansible's message.
fn apply(e: &Edit, text: &str) -> Result<(String, String), String> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if !e.present {
        let before = lines.len();
        lines.retain(|l| !matches(&e.matcher, e.line.as_deref().unwrap_or(""), l));
        let removed = before - lines.len();
        let msg = if removed > 0 { format!("{removed} line(s) removed") } else { String::new() };
        return Ok((lines.concat(), msg));
    }
    let line = e.line.as_deref().unwrap_or("");
    let mut found: Option<usize> = None;
    let mut matched = false;
    if !matches!(e.matcher, Matcher::Exact) {
        for (i, l) in lines.iter().enumerate() {
            if matches(&e.matcher, line, l) {
                found = Some(i);
                matched = true;
                if e.firstmatch {
                    break;
                }
            }
        }
    }
    // Where the line would go: the last line the anchor matches (the first with firstmatch).
    let mut insert_at: Option<usize> = None;
    if !matched {
        for (i, l) in lines.iter().enumerate() {
            if line == bare(l) {
                found = Some(i);
            } else {
                let hit = match &e.anchor {
                    Anchor::After(re) if re.is_match(bare_nl(l)) => Some(i + 1),
                    Anchor::Before(re) if re.is_match(bare_nl(l)) => Some(i),
                    _ => None,
                };
                if let Some(at) = hit {
                    insert_at = Some(at);
                    if e.firstmatch {
                        break;
                    }
                }
            }
        }
    }
    let with_end = |s: &str| if s.ends_with('\n') { s.to_string() } else { format!("{s}\n") };
    let mut msg = "";
    if let Some(i) = found {
        let new = match (&e.matcher, e.backrefs && matched) {
            (Matcher::Regexp(re), true) => {
                let caps = re.captures(bare_nl(&lines[i])).expect("the line matched");
                crate::pyre::expand(line, &caps)?
            }
            _ => line.to_string(),
        };
        let new = with_end(&new);
        if lines[i] != new {
            lines[i] = new;
            msg = "line replaced";
        }
    } else if e.backrefs {
        // No match: backrefs never adds a line.
    } else {
        match (&e.anchor, insert_at) {
            (Anchor::Bof, _) => {
                lines.insert(0, with_end(line));
                msg = "line added";
            }
            (Anchor::Eof, _) | (_, None) => {
                if lines.last().is_some_and(|l| !l.ends_with(['\n', '\r'])) {
                    lines.push("\n".into());
                }
                lines.push(with_end(line));
                msg = "line added";
            }
            (Anchor::After(_), Some(at)) => {
                if at == lines.len() {
                    // As ansible-core: the last line is not given an end first.
                    if bare(&lines[at - 1]) != line {
                        lines.push(with_end(line));
                        msg = "line added";
                    }
                } else if bare(&lines[at]) != line {
                    lines.insert(at, with_end(line));
                    msg = "line added";
                }
            }
            (Anchor::Before(_), Some(at)) => {
                lines.insert(at, with_end(line));
                msg = "line added";
            }
        }
    }
    Ok((lines.concat(), msg.to_string()))
}

/// A line without its final newline, for patterns: Python's `$` matches before it.
fn bare_nl(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

fn matches(m: &Matcher, line: &str, current: &str) -> bool {
    match m {
        Matcher::Regexp(re) => re.is_match(bare_nl(current)),
        Matcher::Search(s) => current.contains(s.as_str()),
        Matcher::Exact => bare(current) == line,
    }
}

impl Module for LineInFile {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        edit_placement("lineinfile", args)?;
        edit(args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(p) = edit_placement("lineinfile", args) {
            request.paths.push(p.dest.clone());
            request.contents.push(p.dest);
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (p, e) = match (edit_placement("lineinfile", args), edit(args)) {
                (Ok(p), Ok(e)) => (p, e),
                (Err(err), _) | (_, Err(err)) => return Outcome::failed(err.to_string()),
            };
            let missing = Missing {
                present: e.present,
                create: e.create,
                missing_msg: format!("Destination {} does not exist !", p.dest),
                absent_msg: "file not present".into(),
            };
            run_edit(host, &p, missing, ctx, |text| apply(&e, text.unwrap_or(""))).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(args: serde_json::Value, text: &str) -> (String, String) {
        let e = edit(&Args(args.as_object().unwrap().clone())).unwrap();
        apply(&e, text).unwrap()
    }

    #[test]
    fn a_matching_line_is_replaced_else_the_line_goes_at_the_end() {
        let conf = "# sshd\nPermitRootLogin yes\nPort 22\n";
        let (t, m) = run(json!({"path": "/x", "regexp": "^#?PermitRootLogin", "line": "PermitRootLogin no"}), conf);
        assert_eq!((t.as_str(), m.as_str()), ("# sshd\nPermitRootLogin no\nPort 22\n", "line replaced"));
        let (t2, m2) = run(json!({"path": "/x", "regexp": "^#?PermitRootLogin", "line": "PermitRootLogin no"}), &t);
        assert_eq!((t2.as_str(), m2.as_str()), (t.as_str(), ""), "the second run changes nothing");
        let (t, m) = run(json!({"path": "/x", "line": "UseDNS no"}), "a\nb");
        assert_eq!((t.as_str(), m.as_str()), ("a\nb\nUseDNS no\n", "line added"), "a last line without its end gets one");
        let (t, _) = run(json!({"path": "/x", "line": "a"}), "a\nb\n");
        assert_eq!(t, "a\nb\n", "the exact line anywhere is enough");
        let (t, _) = run(json!({"path": "/x", "regexp": "^x=", "line": "x=1"}), "x=0\ny\nx=2\n");
        assert_eq!(t, "x=0\ny\nx=1\n", "the last match is replaced");
        let (t, _) = run(json!({"path": "/x", "regexp": "^x=", "line": "x=1", "firstmatch": true}), "x=0\ny\nx=2\n");
        assert_eq!(t, "x=1\ny\nx=2\n");
    }

    #[test]
    fn insertafter_and_insertbefore_anchor_a_new_line() {
        let text = "[main]\na=1\n[other]\nb=2\n";
        let (t, _) = run(json!({"path": "/x", "line": "c=3", "insertafter": "^\\[main\\]"}), text);
        assert_eq!(t, "[main]\nc=3\na=1\n[other]\nb=2\n");
        let (t, _) = run(json!({"path": "/x", "line": "c=3", "insertbefore": "^\\[other\\]"}), text);
        assert_eq!(t, "[main]\na=1\nc=3\n[other]\nb=2\n");
        let (t, _) = run(json!({"path": "/x", "line": "c=3", "insertbefore": "BOF"}), text);
        assert_eq!(t, "c=3\n[main]\na=1\n[other]\nb=2\n");
        let (t, _) = run(json!({"path": "/x", "line": "c=3", "insertafter": "^nomatch"}), text);
        assert_eq!(t, "[main]\na=1\n[other]\nb=2\nc=3\n", "an anchor that matches nothing means the end");
        let (t, m) = run(json!({"path": "/x", "line": "a=1", "insertafter": "^\\[other\\]"}), text);
        assert_eq!((t.as_str(), m.as_str()), (text, ""), "present elsewhere: nothing added");
        let (t, _) = run(json!({"path": "/x", "regexp": "^c=", "line": "c=3", "insertafter": "^\\[main\\]"}), text);
        assert_eq!(t, "[main]\nc=3\na=1\n[other]\nb=2\n", "a regexp without a match falls back on the anchor");
    }

    #[test]
    fn backrefs_rewrite_a_match_and_never_add() {
        let args = json!({"path": "/x", "regexp": "^(GRUB_CMDLINE=\")(.*)\"$", "line": "\\1\\2 quiet\"", "backrefs": true});
        let (t, m) = run(args.clone(), "GRUB_CMDLINE=\"ro\"\n");
        assert_eq!((t.as_str(), m.as_str()), ("GRUB_CMDLINE=\"ro quiet\"\n", "line replaced"));
        let (t, m) = run(args, "nothing here\n");
        assert_eq!((t.as_str(), m.as_str()), ("nothing here\n", ""));
    }

    #[test]
    fn absent_removes_every_match() {
        let (t, m) = run(json!({"path": "/x", "state": "absent", "regexp": "^#"}), "#a\nb\n#c\n");
        assert_eq!((t.as_str(), m.as_str()), ("b\n", "2 line(s) removed"));
        let (t, m) = run(json!({"path": "/x", "state": "absent", "search_string": "tmp"}), "x\n");
        assert_eq!((t.as_str(), m.as_str()), ("x\n", ""));
    }

    #[test]
    fn arguments_are_checked_at_load() {
        let check = |v: serde_json::Value| LineInFile.check(&Args(v.as_object().unwrap().clone())).map_err(|e| e.to_string());
        assert!(check(json!({"path": "/x"})).unwrap_err().contains("line is required"));
        assert!(check(json!({"path": "/x", "line": "a", "backrefs": true})).unwrap_err().contains("regexp is required"));
        assert!(check(json!({"path": "/x", "line": "a", "regexp": "a", "search_string": "a"})).unwrap_err().contains("mutually exclusive"));
        assert!(check(json!({"path": "/x", "line": "a", "regexp": "(?<=x)a"})).unwrap_err().contains("look-around"));
        assert!(check(json!({"path": "/x", "state": "absent"})).unwrap_err().contains("one of line"));
        assert!(check(json!({"path": "x", "line": "a"})).is_err(), "relative path");
        assert!(check(json!({"path": "/x", "line": "a", "insertafter": "EOF"})).is_ok());
    }
}
