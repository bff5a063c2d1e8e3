//! Task loops as Ansible runs them: `loop:` and the `with_<lookup>` forms turned into items,
//! each item bound to `loop_var` (and `index_var`, `ansible_loop`), and the items' results
//! joined into one outcome whose registered value has `results`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use crate::module::outcome::Status;
use crate::module::Outcome;
use crate::role::task::Loop;
use crate::template::Templar;
use crate::vars::Vars;

/// Where the lookups that read the controller (`with_first_found`, `with_fileglob`) look, as
/// Ansible's search path does: each of `stack` (the role's directory, then the task file's),
/// then the playbook's directory; in each, under `subdir` first (`templates` for a template
/// task, `vars` for include_vars, else `files`), then the directory itself.
pub struct Search {
    pub stack: Vec<PathBuf>,
    pub basedir: PathBuf,
    pub subdir: &'static str,
}

impl Search {
    /// The search for a task of `module` in a role at `role_dir` (if any), written in `task_file`.
    pub fn new(module: &str, role_dir: Option<&Path>, task_file: &Path, basedir: &Path) -> Search {
        let subdir = ["template", "var", "file"].into_iter().find(|s| module.contains(s)).map_or("files", |s| match s {
            "template" => "templates",
            "var" => "vars",
            _ => "files",
        });
        let mut stack: Vec<PathBuf> = role_dir.map(Path::to_path_buf).into_iter().collect();
        if let Some(dir) = task_file.parent().filter(|d| !stack.iter().any(|s| s == d)) {
            stack.push(dir.to_path_buf());
        }
        Search { stack, basedir: basedir.to_path_buf(), subdir }
    }

    /// The first place `source` exists, in Ansible's order.
    pub fn find(&self, source: &str, subdir: &str) -> Option<PathBuf> {
        let given = Path::new(source);
        if given.is_absolute() {
            return given.exists().then(|| given.to_path_buf());
        }
        let under = source.split('/').next() != Some(subdir);
        self.stack
            .iter()
            .chain(std::iter::once(&self.basedir))
            .flat_map(|d| [under.then(|| d.join(subdir).join(source)), Some(d.join(source))])
            .flatten()
            .find(|c| c.exists())
    }

    /// `with_first_found`: the first file of the terms (names, lists, or `{files, paths,
    /// skip}`) that exists; none is an error unless `skip`.
    fn first_found(&self, terms: &Json) -> Result<Vec<Json>, String> {
        let mut candidates = Vec::new();
        let mut skip = false;
        first_found_terms(terms, &mut candidates, &mut skip)?;
        for c in &candidates {
            if let Some(found) = self.find(c, self.subdir) {
                return Ok(vec![Json::String(found.display().to_string())]);
            }
        }
        if skip {
            Ok(Vec::new())
        } else {
            Err(format!("No file was found when using first_found (looked for {})", candidates.join(", ")))
        }
    }

    /// `with_fileglob`: the files matching each pattern (a pattern in the file name only),
    /// in the directory found as other files are (the role's `files/` first), in the
    /// directory's own order, as Python's glob gives them to Ansible.
    fn fileglob(&self, terms: &Json) -> Result<Vec<Json>, String> {
        let mut out = Vec::new();
        for term in flatten_once(terms.clone()) {
            let Some(pattern) = term.as_str() else { return Err(format!("with_fileglob expects file patterns, got {}", short(&term))) };
            let (dir, name) = match pattern.rsplit_once('/') {
                Some((d, n)) => (d, n),
                None => ("", pattern),
            };
            let Some(found) = self.find(dir, "files") else { continue };
            let re = regex::Regex::new(&crate::inventory::pattern::fnmatch_to_regex(name)).map_err(|e| format!("with_fileglob: {e}"))?;
            let matched: Vec<String> = std::fs::read_dir(&found)
                .map_err(|e| format!("with_fileglob: {}: {e}", found.display()))?
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file() && re.is_match(&e.file_name().to_string_lossy()))
                .map(|e| e.path().display().to_string())
                .collect();
            out.extend(matched.into_iter().map(Json::String));
        }
        Ok(out)
    }
}

/// The file names first_found's terms list, in order (`paths` joined to each of `files`).
fn first_found_terms(term: &Json, out: &mut Vec<String>, skip: &mut bool) -> Result<(), String> {
    match term {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => {
            for i in items {
                first_found_terms(i, out, skip)?;
            }
        }
        Json::Object(m) => {
            *skip |= m.get("skip").and_then(crate::vars::json_bool).unwrap_or(false);
            let strings = |v: Option<&Json>| -> Vec<String> {
                match v {
                    Some(Json::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                    Some(Json::String(s)) => vec![s.clone()],
                    _ => Vec::new(),
                }
            };
            let files = strings(m.get("files"));
            let paths = strings(m.get("paths"));
            if paths.is_empty() {
                out.extend(files);
            } else {
                for p in &paths {
                    out.extend(files.iter().map(|f| format!("{}/{f}", p.trim_end_matches('/'))));
                }
            }
        }
        Json::Null => {}
        other => return Err(format!("Invalid term supplied to first_found: {}", short(other))),
    }
    Ok(())
}

/// The loop's items for this host.
pub fn items(l: &Loop, vars: &Vars, templar: &Templar, search: &Search) -> Result<Vec<Json>, String> {
    let value = templar.render(&l.items, vars).map_err(|e| e.to_string())?;
    let lookup = l.lookup.as_deref();
    match (lookup, value) {
        (Some("first_found"), terms) => search.first_found(&terms),
        (Some("fileglob"), terms) => search.fileglob(&terms),
        (None, Json::Array(items)) => Ok(items),
        (None, other) => Err(format!(
            "Invalid data passed to 'loop', it requires a list, got this instead: {}. Hint: a dict's items are `dict2items`, a \
             single value needs brackets",
            short(&other)
        )),
        (Some("list"), Json::Array(items)) => Ok(items),
        (Some("items"), value) => Ok(flatten_once(value)),
        (Some("list"), Json::Null) => Ok(Vec::new()),
        (Some("list"), other) => Ok(vec![other]),
        (Some("indexed_items"), value) => Ok(flatten_once(value).into_iter().enumerate().map(|(i, x)| json!([i, x])).collect()),
        (Some("dict"), Json::Object(m)) => Ok(m.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect()),
        (Some("dict"), other) => Err(format!("with_dict expects a dict, got {}", short(&other))),
        (Some("together"), Json::Array(lists)) => {
            let lists: Vec<Vec<Json>> = lists.into_iter().map(|l| if let Json::Array(inner) = l { inner } else { vec![l] }).collect();
            let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
            Ok((0..longest).map(|i| Json::Array(lists.iter().map(|l| l.get(i).cloned().unwrap_or(Json::Null)).collect())).collect())
        }
        (Some("together"), other) => Err(format!("with_together expects a list of lists, got {}", short(&other))),
        (Some("sequence"), spec) => sequence(&spec).map(|v| v.into_iter().map(Json::String).collect()),
        (Some(other), _) => Err(format!("`with_{other}` is not supported by gafix yet")),
    }
}

/// `with_items`' items: a list flattened one level, nothing for null, else the one value.
fn flatten_once(value: Json) -> Vec<Json> {
    match value {
        Json::Array(items) => items.into_iter().flat_map(|i| if let Json::Array(inner) = i { inner } else { vec![i] }).collect(),
        Json::Null => Vec::new(),
        other => vec![other],
    }
}

/// Binds one item: `loop_var`, `index_var`, `ansible_loop_var` and (extended) `ansible_loop`.
pub fn bind(l: &Loop, items: &[Json], index: usize, vars: &mut Vars) {
    vars.insert(l.loop_var.clone(), items[index].clone());
    vars.insert("ansible_loop_var".into(), json!(l.loop_var));
    if let Some(name) = &l.index_var {
        vars.insert(name.clone(), json!(index));
    }
    if l.extended {
        let n = items.len();
        vars.insert(
            "ansible_loop".into(),
            json!({
                "allitems": items, "index": index + 1, "index0": index, "revindex": n - index, "revindex0": n - index - 1,
                "first": index == 0, "last": index + 1 == n, "length": n,
                "previtem": if index > 0 { items[index - 1].clone() } else { Json::Null },
                "nextitem": items.get(index + 1).cloned().unwrap_or(Json::Null),
            }),
        );
    }
}

/// What the output shows for an item: `loop_control.label` rendered, or the item.
pub fn label(l: &Loop, item: &Json, vars: &Vars, templar: &Templar) -> String {
    let shown = match &l.label {
        Some(label) => templar.render(&Json::String(label.clone()), vars).unwrap_or_else(|_| Json::String(label.clone())),
        None => item.clone(),
    };
    crate::vars::text(&shown)
}

/// The task's outcome from its items': failed if one failed (every item still ran),
/// changed if one changed, skipped if all were skipped; registered with `results`.
pub fn outcome(l: &Loop, done: Vec<(Json, String, Outcome)>) -> Outcome {
    if done.is_empty() {
        let mut o = Outcome::skipped("No items in the list");
        o.result = json!({"results": [], "msg": "All items skipped", "skipped_reason": "No items in the list"});
        return o;
    }
    let failed = done.iter().find(|(_, _, o)| o.status == Status::Failed);
    // As Ansible: changed if any item changed, a failed one included (a command that ran).
    let changed = done.iter().any(|(_, _, o)| o.changed);
    let all_skipped = done.iter().all(|(_, _, o)| o.status == Status::Skipped);
    let lines: Vec<String> = done.iter().map(|(_, label, o)| format!("(item={label}) {}: {}", o.status.label(), o.msg)).collect();
    let mut results = Vec::new();
    for (item, _, o) in &done {
        let mut r = o.registered();
        if let Json::Object(m) = &mut r {
            m.insert("item".into(), item.clone());
            m.insert("ansible_loop_var".into(), json!(l.loop_var));
        }
        results.push(r);
    }
    let mut o = match failed {
        Some((_, _, f)) => {
            let mut o = Outcome::failed(lines.join("; "));
            o.rc = f.rc;
            o.stderr_tail = f.stderr_tail.clone();
            o
        }
        None if all_skipped => Outcome::skipped(lines.join("; ")),
        None if changed => Outcome::changed(lines.join("; ")),
        None => Outcome::ok(lines.join("; ")),
    };
    o.changed = changed;
    let msg = if failed.is_some() {
        "One or more items failed"
    } else if all_skipped {
        "All items skipped"
    } else {
        "All items completed"
    };
    o.result = json!({"results": results, "msg": msg});
    o
}

/// `with_sequence`: `start=1 end=5 stride=1 format=host%02d`, `count=3`, or `1-5/2:fmt`.
pub fn sequence(spec: &Json) -> Result<Vec<String>, String> {
    let bad = |why: &str| format!("with_sequence: {why} in {}", short(spec));
    let (mut start, mut end, mut count, mut stride, mut format) = (1i64, None, None, 1i64, "%d".to_string());
    let number = |v: &str| -> Result<i64, String> {
        let v = v.trim();
        let parsed = if let Some(h) = v.strip_prefix("0x") { i64::from_str_radix(h, 16) } else { v.parse() };
        parsed.map_err(|_| bad(&format!("'{v}' is not a number")))
    };
    let pairs: Vec<(String, String)> = match spec {
        Json::Object(m) => m.iter().map(|(k, v)| (k.clone(), crate::vars::text(v))).collect(),
        Json::String(s) if s.contains('=') => {
            s.split_whitespace().filter_map(|p| p.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
        }
        Json::String(s) => {
            // The shortcut: [start-]end[/stride][:format].
            let (range, fmt) = s.split_once(':').map(|(r, f)| (r, Some(f))).unwrap_or((s, None));
            let (range, step) = range.split_once('/').map(|(r, st)| (r, Some(st))).unwrap_or((range, None));
            let mut pairs = Vec::new();
            match range.split_once('-') {
                Some((a, b)) => {
                    pairs.push(("start".to_string(), a.to_string()));
                    pairs.push(("end".to_string(), b.to_string()));
                }
                None => pairs.push(("end".to_string(), range.to_string())),
            }
            pairs.extend(step.map(|st| ("stride".to_string(), st.to_string())));
            pairs.extend(fmt.map(|f| ("format".to_string(), f.to_string())));
            pairs
        }
        _ => return Err(bad("expected key=value pairs")),
    };
    for (k, v) in pairs {
        match k.as_str() {
            "start" => start = number(&v)?,
            "end" => end = Some(number(&v)?),
            "count" => count = Some(number(&v)?),
            "stride" => stride = number(&v)?,
            "format" => format = v,
            other => return Err(bad(&format!("unknown key '{other}'"))),
        }
    }
    let end = match (end, count) {
        (Some(_), Some(_)) => return Err(bad("can't specify both count and end")),
        (Some(e), None) => e,
        (None, Some(0)) => return Ok(Vec::new()),
        (None, Some(c)) => start + (c - 1) * stride,
        (None, None) => return Err(bad("must specify count or end")),
    };
    if stride == 0 {
        return Ok(Vec::new());
    }
    if (stride > 0 && end < start) || (stride < 0 && end > start) {
        return Err(bad("to count backwards make stride negative"));
    }
    let mut out = Vec::new();
    let mut i = start;
    while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
        out.push(printf(&format, i).ok_or_else(|| bad(&format!("format '{format}' is not supported (%d, %x, %o with width and 0)")))?);
        i += stride;
    }
    Ok(out)
}

/// `%d`, `%x`, `%X`, `%o` with an optional `0` flag and width; `%%` for a percent sign.
fn printf(format: &str, n: i64) -> Option<String> {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut used = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let zero = chars.peek() == Some(&'0');
        let mut width = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(*d);
            chars.next();
        }
        let width: usize = width.parse().unwrap_or(0);
        let digits = match chars.next()? {
            'd' | 'i' => n.to_string(),
            'x' => format!("{n:x}"),
            'X' => format!("{n:X}"),
            'o' => format!("{n:o}"),
            _ => return None,
        };
        used = true;
        let pad = width.saturating_sub(digits.len());
        out.push_str(&if zero { "0" } else { " " }.repeat(pad));
        out.push_str(&digits);
    }
    used.then_some(out)
}

fn short(v: &Json) -> String {
    let text = v.to_string();
    if text.chars().count() > 120 {
        text.chars().take(120).collect::<String>() + "…"
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(lookup: Option<&str>, items: Json) -> Loop {
        Loop {
            lookup: lookup.map(str::to_string),
            items,
            loop_var: "item".into(),
            index_var: None,
            label: None,
            pause: 0.0,
            extended: false,
        }
    }

    fn nowhere() -> Search {
        Search { stack: Vec::new(), basedir: PathBuf::from("/nonexistent"), subdir: "files" }
    }

    #[test]
    fn first_found_and_fileglob_search_as_ansible_does() {
        let dir = tempfile::tempdir().unwrap();
        let role = dir.path().join("roles/ntp");
        for f in [
            "vars/Debian.yml",
            "vars/default.yml",
            "tasks/main.yml",
            "tasks/setup-Debian.yml",
            "files/a.conf",
            "files/b.conf",
            "files/c.txt",
        ] {
            std::fs::create_dir_all(role.join(f).parent().unwrap()).unwrap();
            std::fs::write(role.join(f), "").unwrap();
        }
        let (vars, t) = (Vars::new(), Templar::new());
        let task_file = role.join("tasks/main.yml");
        let vars_search = Search::new("include_vars", Some(&role), &task_file, dir.path());
        let found = |s: &Search, terms: Json| items(&with(Some("first_found"), terms), &vars, &t, s);
        let path = |rel: &str| json!(role.join(rel).display().to_string());
        assert_eq!(found(&vars_search, json!(["RedHat.yml", "Debian.yml", "default.yml"])).unwrap(), [path("vars/Debian.yml")]);
        assert_eq!(
            found(&vars_search, json!([{"files": ["Suse.yml", "default.yml"], "paths": ["vars"]}])).unwrap(),
            [path("vars/default.yml")]
        );
        let tasks_search = Search::new("include_tasks", Some(&role), &task_file, dir.path());
        assert_eq!(found(&tasks_search, json!(["setup-Debian.yml"])).unwrap(), [path("tasks/setup-Debian.yml")], "beside the task file");
        assert!(found(&tasks_search, json!(["nope.yml"])).unwrap_err().contains("No file was found"));
        assert_eq!(found(&tasks_search, json!([{"files": ["nope.yml"], "skip": true}])).unwrap(), Vec::<Json>::new());
        let mut globbed = items(&with(Some("fileglob"), json!(["*.conf"])), &vars, &t, &tasks_search).unwrap();
        globbed.sort_by_key(|v| v.to_string());
        assert_eq!(globbed, [path("files/a.conf"), path("files/b.conf")], "the role's files/, files only");
    }

    #[test]
    fn each_lookup_gives_ansibles_items() {
        let t = Templar::new();
        let vars: Vars = serde_json::from_value(json!({"pkgs": ["a", "b"], "users": {"alice": 1, "bob": 2}})).unwrap();
        assert_eq!(items(&with(None, json!("{{ pkgs }}")), &vars, &t, &nowhere()).unwrap(), [json!("a"), json!("b")]);
        assert!(items(&with(None, json!("{{ users }}")), &vars, &t, &nowhere()).unwrap_err().contains("requires a list"));
        assert_eq!(
            items(&with(Some("items"), json!([["a", "b"], "c", [["d"]]])), &vars, &t, &nowhere()).unwrap(),
            [json!("a"), json!("b"), json!("c"), json!(["d"])]
        );
        assert_eq!(items(&with(Some("items"), json!("one")), &vars, &t, &nowhere()).unwrap(), [json!("one")]);
        assert_eq!(items(&with(Some("list"), json!([["a", "b"], "c"])), &vars, &t, &nowhere()).unwrap(), [json!(["a", "b"]), json!("c")]);
        assert_eq!(
            items(&with(Some("dict"), json!("{{ users }}")), &vars, &t, &nowhere()).unwrap(),
            [json!({"key": "alice", "value": 1}), json!({"key": "bob", "value": 2})]
        );
        assert_eq!(
            items(&with(Some("together"), json!([[1, 2, 3], ["a", "b"]])), &vars, &t, &nowhere()).unwrap(),
            [json!([1, "a"]), json!([2, "b"]), json!([3, null])]
        );
        assert_eq!(
            items(&with(Some("indexed_items"), json!(["x", "y"])), &vars, &t, &nowhere()).unwrap(),
            [json!([0, "x"]), json!([1, "y"])]
        );
    }

    #[test]
    fn sequences_as_ansibles_lookup_writes_them() {
        assert_eq!(sequence(&json!("start=1 end=3")).unwrap(), ["1", "2", "3"]);
        assert_eq!(sequence(&json!("start=0 count=3 stride=2 format=web%02d")).unwrap(), ["web00", "web02", "web04"]);
        assert_eq!(sequence(&json!("4-8/2:host%d")).unwrap(), ["host4", "host6", "host8"]);
        assert_eq!(sequence(&json!("3")).unwrap(), ["1", "2", "3"]);
        assert_eq!(sequence(&json!("start=10 end=0 stride=-5")).unwrap(), ["10", "5", "0"]);
        assert_eq!(sequence(&json!("start=0x0a end=0x0c format=%x")).unwrap(), ["a", "b", "c"]);
        assert!(sequence(&json!("start=5 end=1")).unwrap_err().contains("stride negative"));
        assert!(sequence(&json!("count=2 end=3")).unwrap_err().contains("both count and end"));
        assert!(sequence(&json!("end=2 format=%s")).unwrap_err().contains("not supported"));
    }

    #[test]
    fn items_join_into_one_outcome_with_results() {
        let l = with(None, json!([]));
        let o = outcome(
            &l,
            vec![
                (json!("a"), "a".into(), Outcome::changed("installed a")),
                (json!("b"), "b".into(), Outcome::ok("b present")),
                (json!("c"), "c".into(), Outcome::skipped("conditional result was false")),
            ],
        );
        assert_eq!(o.status, Status::Changed);
        let r = o.registered();
        assert_eq!(r["results"][0]["item"], "a");
        assert_eq!(r["results"][0]["changed"], true);
        assert_eq!(r["results"][2]["skipped"], true);
        assert_eq!(r["msg"], "All items completed");
        let failed = outcome(&l, vec![(json!(1), "1".into(), Outcome::failed("boom")), (json!(2), "2".into(), Outcome::changed("ok"))]);
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.registered()["msg"], "One or more items failed");
        assert_eq!(outcome(&l, vec![]).status, Status::Skipped);
    }

    #[test]
    fn an_item_binds_its_variables() {
        let mut l = with(None, json!([]));
        l.loop_var = "pkg".into();
        l.index_var = Some("i".into());
        l.extended = true;
        let items = [json!("a"), json!("b")];
        let mut vars = Vars::new();
        bind(&l, &items, 1, &mut vars);
        assert_eq!((vars["pkg"].clone(), vars["i"].clone()), (json!("b"), json!(1)));
        assert_eq!(vars["ansible_loop"]["last"], true);
        assert_eq!(vars["ansible_loop"]["previtem"], "a");
        assert_eq!(vars["ansible_loop_var"], "pkg");
    }
}
