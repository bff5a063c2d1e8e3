//! Ansible's own filters that minijinja does not have (`combine`, `dict2items`, `flatten`,
//! the set filters, `regex_findall`, `b64encode`, `comment`...), with Ansible's semantics.
//! Values cross to serde_json and back: the filters work on data, not on templates.

use base64::Engine;
use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{Map, Value as Json};

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("comment", comment);
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("flatten", flatten);
    env.add_filter("union", |a: Value, b: Value| -> Result<Value, Error> { set_op(a, b, SetOp::Union) });
    env.add_filter("difference", |a: Value, b: Value| -> Result<Value, Error> { set_op(a, b, SetOp::Difference) });
    env.add_filter("intersect", |a: Value, b: Value| -> Result<Value, Error> { set_op(a, b, SetOp::Intersect) });
    env.add_filter("symmetric_difference", |a: Value, b: Value| -> Result<Value, Error> { set_op(a, b, SetOp::Symmetric) });
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("b64encode", |v: String| base64::engine::general_purpose::STANDARD.encode(v.as_bytes()));
    env.add_filter("b64decode", |v: String| -> Result<String, Error> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(v.trim()).map_err(|e| invalid(format!("b64decode: {e}")))?;
        String::from_utf8(bytes).map_err(|_| invalid("b64decode: the decoded data is not UTF-8 text"))
    });
    env.add_filter("from_json", |v: String| -> Result<Value, Error> {
        let parsed: Json = serde_json::from_str(&v).map_err(|e| invalid(format!("from_json: {e}")))?;
        Ok(Value::from_serialize(&parsed))
    });
    env.add_filter("splitext", |v: String| -> Value {
        let name_at = v.rfind('/').map_or(0, |i| i + 1);
        let name = &v[name_at..];
        match name.trim_start_matches('.').rfind('.') {
            Some(dot) => {
                let at = name_at + (name.len() - name.trim_start_matches('.').len()) + dot;
                Value::from(vec![v[..at].to_string(), v[at..].to_string()])
            }
            None => Value::from(vec![v.clone(), String::new()]),
        }
    });
    env.add_filter("type_debug", |v: Value| -> String {
        match to_json(&v) {
            Json::Null => "NoneType",
            Json::Bool(_) => "bool",
            Json::Number(n) if n.is_f64() => "float",
            Json::Number(_) => "int",
            Json::String(_) => "str",
            Json::Array(_) => "list",
            Json::Object(_) => "dict",
        }
        .to_string()
    });
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn to_json(v: &Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// `combine(*dicts, recursive=False, list_merge='replace')`: later dicts win, as Ansible's
/// merge_hash merges them.
fn combine(base: Value, rest: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let recursive = kw.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge = kw.get::<Option<String>>("list_merge")?.unwrap_or_else(|| "replace".into());
    if !matches!(list_merge.as_str(), "replace" | "keep" | "append" | "prepend" | "append_rp" | "prepend_rp") {
        return Err(invalid(format!("combine: list_merge '{list_merge}' is not replace, keep, append, prepend, append_rp or prepend_rp")));
    }
    kw.assert_all_used()?;
    let mut dicts = Vec::new();
    for term in std::iter::once(base).chain(rest.0) {
        match to_json(&term) {
            Json::Object(m) => dicts.push(m),
            Json::Array(items) => {
                for i in items {
                    match i {
                        Json::Object(m) => dicts.push(m),
                        other => return Err(invalid(format!("combine: expects dictionaries, got {other}"))),
                    }
                }
            }
            other => return Err(invalid(format!("combine: expects dictionaries, got {other}"))),
        }
    }
    let merged = dicts.into_iter().fold(Map::new(), |acc, next| merge_hash(acc, next, recursive, &list_merge));
    Ok(Value::from_serialize(Json::Object(merged)))
}

fn merge_hash(mut x: Map<String, Json>, y: Map<String, Json>, recursive: bool, list_merge: &str) -> Map<String, Json> {
    for (key, y_value) in y {
        let merged = match (x.remove(&key), y_value) {
            (Some(Json::Object(a)), Json::Object(b)) if recursive => Json::Object(merge_hash(a, b, recursive, list_merge)),
            (Some(Json::Array(a)), Json::Array(b)) => Json::Array(match list_merge {
                "keep" => a,
                "append" => a.into_iter().chain(b).collect(),
                "prepend" => b.into_iter().chain(a).collect(),
                "append_rp" => {
                    let mut kept: Vec<Json> = a.into_iter().filter(|z| !b.contains(z)).collect();
                    kept.extend(b);
                    kept
                }
                "prepend_rp" => {
                    let kept: Vec<Json> = a.into_iter().filter(|z| !b.contains(z)).collect();
                    b.into_iter().chain(kept).collect()
                }
                _ => b,
            }),
            (_, y_value) => y_value,
        };
        x.insert(key, merged);
    }
    x
}

/// `dict2items(key_name='key', value_name='value')`.
fn dict2items(v: Value, kw: Kwargs) -> Result<Value, Error> {
    let key = kw.get::<Option<String>>("key_name")?.unwrap_or_else(|| "key".into());
    let value = kw.get::<Option<String>>("value_name")?.unwrap_or_else(|| "value".into());
    let Json::Object(m) = to_json(&v) else { return Err(invalid("dict2items requires a dictionary")) };
    let items: Vec<Json> =
        m.into_iter().map(|(k, v)| Json::Object(Map::from_iter([(key.clone(), Json::String(k)), (value.clone(), v)]))).collect();
    Ok(Value::from_serialize(&items))
}

/// `items2dict(key_name='key', value_name='value')`.
fn items2dict(v: Value, kw: Kwargs) -> Result<Value, Error> {
    let key = kw.get::<Option<String>>("key_name")?.unwrap_or_else(|| "key".into());
    let value = kw.get::<Option<String>>("value_name")?.unwrap_or_else(|| "value".into());
    let Json::Array(items) = to_json(&v) else { return Err(invalid("items2dict requires a list")) };
    let mut out = Map::new();
    for item in items {
        let (Some(k), Some(v)) = (item.get(&key), item.get(&value)) else {
            return Err(invalid(format!("items2dict: each item needs '{key}' and '{value}'")));
        };
        out.insert(crate::vars::text(k), v.clone());
    }
    Ok(Value::from_serialize(Json::Object(out)))
}

/// `flatten(levels=None, skip_nulls=True)`.
fn flatten(v: Value, levels: Option<usize>, kw: Kwargs) -> Result<Value, Error> {
    let levels = match kw.get::<Option<usize>>("levels")? {
        Some(l) => Some(l),
        None => levels,
    };
    let skip_nulls = kw.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
    fn walk(items: Vec<Json>, levels: Option<usize>, skip_nulls: bool, out: &mut Vec<Json>) {
        for item in items {
            match item {
                Json::Null if skip_nulls => {}
                Json::String(s) if skip_nulls && (s == "None" || s == "null") => {}
                Json::Array(inner) if levels != Some(0) => walk(inner, levels.map(|l| l - 1), skip_nulls, out),
                other => out.push(other),
            }
        }
    }
    let Json::Array(items) = to_json(&v) else { return Err(invalid("flatten requires a list")) };
    let mut out = Vec::new();
    walk(items, levels, skip_nulls, &mut out);
    Ok(Value::from_serialize(&out))
}

enum SetOp {
    Union,
    Difference,
    Intersect,
    Symmetric,
}

/// Ansible's set filters: unique items, in the order of the first list (then the second).
fn set_op(a: Value, b: Value, op: SetOp) -> Result<Value, Error> {
    let list = |v: &Value| match to_json(v) {
        Json::Array(items) => Ok(items),
        other => Err(invalid(format!("a list is required, got {other}"))),
    };
    let (a, b) = (list(&a)?, list(&b)?);
    let mut out: Vec<Json> = Vec::new();
    let mut push = |x: &Json| {
        if !out.contains(x) {
            out.push(x.clone());
        }
    };
    match op {
        SetOp::Union => a.iter().chain(&b).for_each(&mut push),
        SetOp::Difference => a.iter().filter(|x| !b.contains(x)).for_each(&mut push),
        SetOp::Intersect => a.iter().filter(|x| b.contains(x)).for_each(&mut push),
        SetOp::Symmetric => {
            a.iter().filter(|x| !b.contains(x)).for_each(&mut push);
            b.iter().filter(|x| !a.contains(x)).for_each(&mut push);
        }
    }
    Ok(Value::from_serialize(&out))
}

/// `regex_findall(pattern, ignorecase=False, multiline=False)`: Python's `re.findall`.
fn regex_findall(v: String, pattern: String, kw: Kwargs) -> Result<Value, Error> {
    let mut flags = String::new();
    if kw.get::<Option<bool>>("ignorecase")?.unwrap_or(false) {
        flags.push('i');
    }
    if kw.get::<Option<bool>>("multiline")?.unwrap_or(false) {
        flags.push('m');
    }
    let source = if flags.is_empty() { pattern } else { format!("(?{flags}){pattern}") };
    let re = crate::pyre::compile(&source, "regex_findall's pattern").map_err(invalid)?;
    let groups = re.captures_len() - 1;
    let found: Vec<Json> = re
        .captures_iter(&v)
        .map(|c| {
            let group = |i: usize| Json::String(c.get(i).map(|m| m.as_str().to_string()).unwrap_or_default());
            match groups {
                0 => group(0),
                1 => group(1),
                n => Json::Array((1..=n).map(group).collect()),
            }
        })
        .collect();
    Ok(Value::from_serialize(&found))
}

/// Ansible's `comment` filter: `text` as a comment in a style (`plain` `# `, `erlang`,
/// `c`, `cblock`, `xml`), each part overridable (`decoration`, `prefix`, `postfix`,
/// `beginning`, `end`, their counts, `newline`), assembled as Ansible assembles it.
fn comment(text: String, style: Option<String>, kw: Kwargs) -> Result<String, Error> {
    let style = style.unwrap_or_else(|| "plain".into());
    let (beginning, decoration, end) = match style.as_str() {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        other => {
            return Err(Error::new(ErrorKind::InvalidOperation, format!("Invalid style '{other}' (styles: plain, erlang, c, cblock, xml)")))
        }
    };
    let text_kw =
        |name: &str, default: &str| -> Result<String, Error> { Ok(kw.get::<Option<String>>(name)?.unwrap_or_else(|| default.to_string())) };
    let count = |name: &str| -> Result<usize, Error> { Ok(kw.get::<Option<usize>>(name)?.unwrap_or(1)) };
    let prepostfix = text_kw("decoration", decoration)?;
    let newline = text_kw("newline", "\n")?;
    let beginning = text_kw("beginning", beginning)?;
    let end = text_kw("end", end)?;
    let decoration = text_kw("decoration", decoration)?;
    let prefix = text_kw("prefix", prepostfix.trim_end())?;
    let postfix = text_kw("postfix", prepostfix.trim_end())?;
    let (prefix_count, postfix_count) = (count("prefix_count")?, count("postfix_count")?);
    let mut out = String::new();
    if !beginning.is_empty() {
        out.push_str(&format!("{beginning}{newline}"));
    }
    if !prefix.is_empty() {
        let one = if prefix != newline { format!("{prefix}{newline}") } else { newline.clone() };
        out.push_str(&one.repeat(prefix_count));
    }
    let body = format!("{decoration}{}", text.replace(&newline, &format!("{newline}{decoration}")));
    out.push_str(&body.replace(&format!("{decoration}{newline}"), &format!("{}{newline}", decoration.trim_end())));
    for _ in 0..postfix_count {
        out.push_str(&format!("{newline}{postfix}"));
    }
    if !end.is_empty() {
        out.push_str(&format!("{newline}{end}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::template::Templar;
    use serde_json::json;

    /// Each expected value was printed by ansible-core 2.19's own filters.
    #[test]
    fn ansible_filters_give_ansibles_values() {
        let t = Templar::new();
        let r = |src: &str| t.render(&json!(format!("{{{{ {src} | to_json }}}}")), &Default::default()).unwrap();
        let cases = [
            (
                "{'a':1,'b':{'x':1,'l':[1,2]}} | combine({'b':{'y':2,'l':[2,3]}}, recursive=True, list_merge='append_rp')",
                r#"{"a":1,"b":{"x":1,"l":[1,2,3],"y":2}}"#,
            ),
            ("{'a':1,'b':{'x':1}} | combine({'b':{'y':2}})", r#"{"a":1,"b":{"y":2}}"#),
            ("{'a':1,'b':2} | dict2items(key_name='k', value_name='v')", r#"[{"k":"a","v":1},{"k":"b","v":2}]"#),
            ("[{'key':'a','value':1}] | items2dict", r#"{"a":1}"#),
            ("[1,[2,[3,None,'None']],[[4]]] | flatten(levels=1)", r#"[1,2,[3,null,"None"],[4]]"#),
            ("[1,[2,[3,None,'None']],[[4]]] | flatten", "[1,2,3,4]"),
            ("'a1 b22 c333' | regex_findall('([a-z])(\\\\d+)')", r#"[["a","1"],["b","22"],["c","333"]]"#),
            ("'a1 b22' | regex_findall('\\\\d+')", r#"["1","22"]"#),
            ("[1,2,2] | union([3,1])", "[1,2,3]"),
            ("[1,2,2,3] | difference([3])", "[1,2]"),
            ("[1,2,3] | intersect([3,2])", "[2,3]"),
            ("[1,2] | symmetric_difference([2,3])", "[1,3]"),
            ("'héllo' | b64encode", r#""aMOpbGxv""#),
            ("'aMOpbGxv' | b64decode", r#""héllo""#),
            ("'/a/b.tar.gz' | splitext", r#"["/a/b.tar",".gz"]"#),
            ("'.bashrc' | splitext", r#"[".bashrc",""]"#),
            ("'{\"x\": [1]}' | from_json", r#"{"x":[1]}"#),
        ];
        for (src, want) in cases {
            let got: serde_json::Value = serde_json::from_str(r(src).as_str().unwrap()).unwrap();
            assert_eq!(got, serde_json::from_str::<serde_json::Value>(want).unwrap(), "{src}");
        }
    }
}
