//! Task loops as Ansible runs them: `loop:` and the `with_<lookup>` forms turned into items,
//! each item bound to `loop_var` (and `index_var`, `ansible_loop`), and the items' results
//! joined into one outcome whose registered value has `results`.

use serde_json::{json, Value as Json};

use crate::module::outcome::Status;
use crate::module::Outcome;
use crate::role::task::Loop;
use crate::template::Templar;
use crate::vars::Vars;

/// The loop's items for this host.
pub fn items(l: &Loop, vars: &Vars, templar: &Templar) -> Result<Vec<Json>, String> {
    let value = templar.render(&l.items, vars).map_err(|e| e.to_string())?;
    let lookup = l.lookup.as_deref();
    match (lookup, value) {
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

    #[test]
    fn each_lookup_gives_ansibles_items() {
        let t = Templar::new();
        let vars: Vars = serde_json::from_value(json!({"pkgs": ["a", "b"], "users": {"alice": 1, "bob": 2}})).unwrap();
        assert_eq!(items(&with(None, json!("{{ pkgs }}")), &vars, &t).unwrap(), [json!("a"), json!("b")]);
        assert!(items(&with(None, json!("{{ users }}")), &vars, &t).unwrap_err().contains("requires a list"));
        assert_eq!(
            items(&with(Some("items"), json!([["a", "b"], "c", [["d"]]])), &vars, &t).unwrap(),
            [json!("a"), json!("b"), json!("c"), json!(["d"])]
        );
        assert_eq!(items(&with(Some("items"), json!("one")), &vars, &t).unwrap(), [json!("one")]);
        assert_eq!(items(&with(Some("list"), json!([["a", "b"], "c"])), &vars, &t).unwrap(), [json!(["a", "b"]), json!("c")]);
        assert_eq!(
            items(&with(Some("dict"), json!("{{ users }}")), &vars, &t).unwrap(),
            [json!({"key": "alice", "value": 1}), json!({"key": "bob", "value": 2})]
        );
        assert_eq!(
            items(&with(Some("together"), json!([[1, 2, 3], ["a", "b"]])), &vars, &t).unwrap(),
            [json!([1, "a"]), json!([2, "b"]), json!([3, null])]
        );
        assert_eq!(items(&with(Some("indexed_items"), json!(["x", "y"])), &vars, &t).unwrap(), [json!([0, "x"]), json!([1, "y"])]);
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
