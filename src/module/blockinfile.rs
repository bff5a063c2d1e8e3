//! `blockinfile`: a block of lines between two marker lines, inserted, replaced or removed as
//! ansible-core's module decides it. The file's content comes with the facts probe (no round
//! trip when the block is right); a change is written as `copy` writes.

use futures::future::BoxFuture;
use regex::Regex;

use super::files::{edit_placement, run_edit, Missing};
use super::spec::{arg, arg_aliases, arg_choices, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::ProbeRequest;
use crate::session::HostSession;

pub struct BlockInFile;

pub static SPEC: Spec = Spec {
    name: "blockinfile",
    aliases: &[],
    args: &[
        arg_aliases("path", Kind::Str, &["dest", "destfile", "name"]),
        arg_choices("state", &["present", "absent"]),
        arg("marker", Kind::Str),
        arg_aliases("block", Kind::Str, &["content"]),
        arg("insertafter", Kind::Str),
        arg("insertbefore", Kind::Str),
        arg("create", Kind::Bool),
        arg("backup", Kind::Bool),
        arg("validate", Kind::Str),
        arg("marker_begin", Kind::Str),
        arg("marker_end", Kind::Str),
        arg("append_newline", Kind::Bool),
        arg("prepend_newline", Kind::Bool),
        arg("owner", Kind::Str),
        arg("group", Kind::Str),
        arg("mode", Kind::Any),
    ],
    free_form: None,
    required: &["path"],
    unsupported: &["attributes", "seuser", "serole", "setype", "selevel", "unsafe_writes"],
    any_keys: false,
};

/// Where a block without its markers goes.
#[derive(Clone, Debug)]
enum Anchor {
    Bof,
    Eof,
    After(Regex),
    Before(Regex),
}

#[derive(Clone, Debug)]
struct Edit {
    present: bool,
    block: String,
    begin: String,
    end: String,
    anchor: Anchor,
    create: bool,
    append_newline: bool,
    prepend_newline: bool,
}

fn edit(args: &Args) -> Result<Edit, ArgError> {
    let (after, before) = (args.str("insertafter"), args.str("insertbefore"));
    if after.is_some() && before.is_some() {
        return Err(ArgError::Module("blockinfile: parameters are mutually exclusive: insertbefore|insertafter".into()));
    }
    let compile = |p: &str, what: &str| crate::pyre::compile(p, what).map_err(ArgError::Module);
    let anchor = match (after.as_deref(), before.as_deref()) {
        (Some("EOF"), _) | (None, None) => Anchor::Eof,
        (None, Some("BOF")) => Anchor::Bof,
        (Some(a), _) => Anchor::After(compile(a, "insertafter")?),
        (None, Some(b)) => Anchor::Before(compile(b, "insertbefore")?),
    };
    let marker = args.str("marker").unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into());
    let mark = |which: &str, default: &str| marker.replace("{mark}", &args.str(which).unwrap_or_else(|| default.into())) + "\n";
    Ok(Edit {
        present: args.str("state").as_deref() != Some("absent"),
        block: args.str("block").unwrap_or_default(),
        begin: mark("marker_begin", "BEGIN"),
        end: mark("marker_end", "END"),
        anchor,
        create: args.bool("create").unwrap_or(false),
        append_newline: args.bool("append_newline").unwrap_or(false),
        prepend_newline: args.bool("prepend_newline").unwrap_or(false),
    })
}

/// The new text and Ansible's message ("" when nothing changes). `text` is `None` for a
/// file that does not exist.
fn apply(e: &Edit, text: Option<&str>) -> (String, &'static str) {
    let mut lines: Vec<String> = text.unwrap_or("").split_inclusive('\n').map(str::to_string).collect();
    let block_lines: Vec<String> = if e.present && !e.block.is_empty() {
        let mut block = e.block.clone();
        if !block.ends_with('\n') {
            block.push('\n');
        }
        std::iter::once(e.begin.clone())
            .chain(block.split_inclusive('\n').map(str::to_string))
            .chain(std::iter::once(e.end.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let begin = lines.iter().rposition(|l| *l == e.begin);
    let end = lines.iter().rposition(|l| *l == e.end);
    let mut at = match (begin, end) {
        (Some(b), Some(n)) => {
            let (first, last) = (b.min(n), b.max(n));
            lines.drain(first..=last);
            first
        }
        _ => match &e.anchor {
            Anchor::Bof => 0,
            Anchor::Eof => lines.len(),
            Anchor::After(re) | Anchor::Before(re) => {
                match (lines.iter().rposition(|l| re.is_match(l.strip_suffix('\n').unwrap_or(l))), &e.anchor) {
                    (None, _) => lines.len(),
                    (Some(i), Anchor::After(_)) => i + 1,
                    (Some(i), _) => i,
                }
            }
        },
    };
    if at > 0 && !lines[at - 1].ends_with('\n') {
        lines[at - 1].push('\n');
    }
    if e.prepend_newline && e.present && at != 0 && lines[at - 1] != "\n" {
        lines.insert(at, "\n".into());
        at += 1;
    }
    let inserted = block_lines.len();
    lines.splice(at..at, block_lines);
    let next = at + inserted;
    if e.append_newline && e.present && next < lines.len() && lines[next] != "\n" {
        lines.insert(next, "\n".into());
    }
    let result = lines.concat();
    let msg = match text {
        Some(t) if t == result => "",
        None => "File created",
        _ if inserted == 0 => "Block removed",
        _ => "Block inserted",
    };
    (result, msg)
}

impl Module for BlockInFile {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        edit_placement("blockinfile", args)?;
        edit(args).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        if let Ok(p) = edit_placement("blockinfile", args) {
            request.paths.push(p.dest.clone());
            request.contents.push(p.dest);
        }
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (p, e) = match (edit_placement("blockinfile", args), edit(args)) {
                (Ok(p), Ok(e)) => (p, e),
                (Err(err), _) | (_, Err(err)) => return Outcome::failed(err.to_string()),
            };
            let missing = Missing {
                present: e.present,
                create: e.create,
                missing_msg: format!("Path {} does not exist !", p.dest),
                absent_msg: format!("File {} not present", p.dest),
            };
            run_edit(host, &p, missing, ctx, |text| {
                let (after, msg) = apply(&e, text);
                Ok((after, msg.to_string()))
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(args: serde_json::Value, text: Option<&str>) -> (String, &'static str) {
        apply(&edit(&Args(args.as_object().unwrap().clone())).unwrap(), text)
    }

    #[test]
    fn a_block_is_added_once_then_replaced_in_place() {
        let args = json!({"path": "/x", "block": "a\nb"});
        let (t, m) = run(args.clone(), Some("keep\n"));
        assert_eq!((t.as_str(), m), ("keep\n# BEGIN ANSIBLE MANAGED BLOCK\na\nb\n# END ANSIBLE MANAGED BLOCK\n", "Block inserted"));
        assert_eq!(run(args, Some(&t)), (t.clone(), ""), "the second run changes nothing");
        let (t2, m) = run(json!({"path": "/x", "block": "c"}), Some(&format!("{t}tail\n")));
        assert_eq!((t2.as_str(), m), ("keep\n# BEGIN ANSIBLE MANAGED BLOCK\nc\n# END ANSIBLE MANAGED BLOCK\ntail\n", "Block inserted"));
        let (t3, m) = run(json!({"path": "/x", "state": "absent"}), Some(&t2));
        assert_eq!((t3.as_str(), m), ("keep\ntail\n", "Block removed"));
    }

    #[test]
    fn markers_anchors_and_blank_lines() {
        let args = json!({"path": "/x", "block": "x", "marker": "// {mark} gafix", "marker_begin": "start", "insertbefore": "^b"});
        let (t, _) = run(args, Some("a\nb\nc"));
        assert_eq!(t, "a\n// start gafix\nx\n// END gafix\nb\nc");
        let (t, _) = run(json!({"path": "/x", "block": "x", "insertafter": "^a"}), Some("a\nb\n"));
        assert_eq!(t, "a\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\nb\n");
        let (t, _) = run(json!({"path": "/x", "block": "x", "insertbefore": "BOF"}), Some("a\n"));
        assert!(t.starts_with("# BEGIN"), "{t}");
        let (t, _) =
            run(json!({"path": "/x", "block": "x", "prepend_newline": true, "append_newline": true, "insertafter": "^a"}), Some("a\nb\n"));
        assert_eq!(t, "a\n\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n\nb\n");
        let (t, _) = run(json!({"path": "/x", "block": "x"}), Some("no end"));
        assert!(t.starts_with("no end\n# BEGIN"), "the line before the block gets its end: {t}");
        assert_eq!(run(json!({"path": "/x", "block": "x"}), None).1, "File created");
        assert_eq!(run(json!({"path": "/x", "block": ""}), Some("a\n")), ("a\n".to_string(), ""), "an empty block with no markers");
    }
}
