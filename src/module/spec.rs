//! Argument schemas, as Ansible documents each module's options, checked when a role loads
//! (so a typo is an error at `file:line:column`) and again after templating at run time.

use serde_json::Value as Json;

use crate::diag::Diagnostic;
use crate::vars::json_bool;
use crate::yaml::{self, Node, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A list of strings; a comma-separated string is accepted, as Ansible does.
    List,
    Bool,
    /// A duration in whole seconds, from 0 to [`MAX_SECONDS`].
    Seconds,
    /// Any value (a message, a structure).
    Any,
}

/// What is wrong with a module's arguments.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgError {
    /// A package, unit or path that fails its grammar.
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    /// A value outside what the argument takes.
    #[error("'{arg}' must be {expected}, found '{found}'")]
    Invalid { arg: &'static str, expected: &'static str, found: String },
    /// A value of the wrong kind (`found` says what it is).
    #[error("'{arg}' must be {expected}, found {found}")]
    WrongType { arg: &'static str, expected: &'static str, found: String },
    /// A value outside an argument's choices.
    #[error("'{arg}' must be one of {choices}, found '{found}'")]
    NotAChoice { arg: &'static str, choices: String, found: String },
    /// A required argument is absent.
    #[error("{module} needs {what}")]
    Missing { module: &'static str, what: &'static str },
    /// Command text whose quotes do not close.
    #[error("cannot split '{0}': unbalanced quotes")]
    Unbalanced(String),
    /// Free-form text given to a module that takes only `name=value` arguments.
    #[error("'{module}' takes name=value arguments, found '{found}'")]
    NotKeyValue { module: &'static str, found: String },
    /// A command with no words.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// Arguments that do not go together, or another problem the module explains.
    #[error("{0}")]
    Module(String),
}

/// The longest duration any option takes (ten years): beyond it a value is a mistake, and
/// near the integer limits it would overflow the clock arithmetic.
pub const MAX_SECONDS: u64 = 315_360_000;

pub struct Arg {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub choices: &'static [&'static str],
}

pub const fn arg(name: &'static str, kind: Kind) -> Arg {
    Arg { name, aliases: &[], kind, choices: &[] }
}

pub const fn arg_aliases(name: &'static str, kind: Kind, aliases: &'static [&'static str]) -> Arg {
    Arg { name, aliases, kind, choices: &[] }
}

pub const fn arg_choices(name: &'static str, choices: &'static [&'static str]) -> Arg {
    Arg { name, aliases: &[], kind: Kind::Str, choices }
}

pub struct Spec {
    /// The short name; `ansible.builtin.NAME` and `ansible.legacy.NAME` are accepted too.
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub args: &'static [Arg],
    /// Free-form modules (`command: ls -l`) put the text in this argument.
    pub free_form: Option<&'static str>,
    pub required: &'static [&'static str],
    /// Options Ansible documents that gafix recognises but does not implement (an error
    /// that says so, rather than "unknown argument" or a silent no-op).
    pub unsupported: &'static [&'static str],
    /// Any key is an argument (`set_fact: {name: value}`), as well as those listed.
    pub any_keys: bool,
}

impl Spec {
    fn find(&self, key: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.name == key || a.aliases.contains(&key))
    }

    pub fn arg_names(&self) -> String {
        self.args.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
    }
}

/// Module arguments after alias resolution: canonical name -> value (possibly still templated).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args(pub serde_json::Map<String, Json>);

impl Args {
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(json_bool)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| match v {
            Json::Number(n) => n.as_i64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Json::Array(items)) => items.iter().map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string())).collect(),
            Some(Json::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
            Some(other) => vec![other.to_string()],
            None => Vec::new(),
        }
    }
}

fn is_template(v: &Json) -> bool {
    matches!(v, Json::String(s) if s.contains("{{") || s.contains("{%"))
}

/// Checks one value against its kind; templated strings are checked after rendering.
pub fn check_value(arg: &Arg, v: &Json) -> Result<(), ArgError> {
    if v.is_null() || is_template(v) {
        return Ok(());
    }
    let ok = match arg.kind {
        Kind::Str => !v.is_object() && !v.is_array(),
        Kind::List => v.is_string() || v.as_array().is_some_and(|a| a.iter().all(|i| !i.is_object() && !i.is_array())),
        Kind::Bool => json_bool(v).is_some(),
        Kind::Seconds => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse::<i64>().ok()))
            .is_some_and(|n| (0..=MAX_SECONDS as i64).contains(&n)),
        Kind::Any => true,
    };
    if !ok {
        let expected = match arg.kind {
            Kind::Str => "a string",
            Kind::List => "a string or a list of strings",
            Kind::Bool => "a boolean (true/false, yes/no)",
            Kind::Seconds => "a number of seconds from 0 to 315360000 (ten years)",
            Kind::Any => "a value",
        };
        return Err(ArgError::WrongType { arg: arg.name, expected, found: describe(v) });
    }
    if !arg.choices.is_empty() {
        let s = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        if !arg.choices.contains(&s.as_str()) {
            return Err(ArgError::NotAChoice { arg: arg.name, choices: arg.choices.join(", "), found: s });
        }
    }
    Ok(())
}

fn describe(v: &Json) -> String {
    match v {
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "a mapping".into(),
        other => format!("'{}'", other.as_str().map(str::to_string).unwrap_or_else(|| other.to_string())),
    }
}

/// Parses a task's module value (mapping, free-form text or `k=v` text) into canonical args,
/// reporting every problem with its location.
pub fn parse_args(spec: &Spec, value: &Node, extra: Option<&Node>, errors: &mut Vec<Diagnostic>) -> Args {
    let mut args = Args::default();
    let mut entries: Vec<(String, Json, &Node)> = Vec::new();
    match &value.value {
        Value::Map(map) => {
            for (k, v) in map {
                entries.push((k.key_string(), v.to_json(), k));
            }
        }
        Value::String(text) => match split_free_form(spec, text) {
            Ok(pairs) => {
                for (k, v) in pairs {
                    entries.push((k, v, value));
                }
            }
            Err(problem) => errors.push(Diagnostic::new(&value.location, problem.to_string())),
        },
        Value::Null => {}
        _ => errors
            .push(Diagnostic::new(&value.location, format!("arguments of '{}' must be a mapping, found {}", spec.name, value.type_name()))),
    }
    // `args:` beside the module (Ansible's older style) adds to the same set.
    if let Some(extra) = extra {
        match extra.as_map() {
            Some(map) => entries.extend(map.iter().map(|(k, v)| (k.key_string(), v.to_json(), k))),
            None => errors.push(Diagnostic::new(&extra.location, "'args' must be a mapping")),
        }
    }
    for (key, v, node) in entries {
        match spec.find(&key) {
            None if spec.unsupported.contains(&key.as_str()) => errors.push(Diagnostic::new(
                &node.location,
                format!("argument '{key}' of module '{}' is not supported by gafix yet; supported: {}", spec.name, spec.arg_names()),
            )),
            None if spec.any_keys => {
                args.0.insert(key, v);
            }
            None => errors.push(Diagnostic::new(
                &node.location,
                format!("unsupported argument '{key}' for module '{}'; supported: {}", spec.name, spec.arg_names()),
            )),
            Some(arg) => {
                if let Err(problem) = check_value(arg, &v) {
                    errors.push(Diagnostic::new(&node.location, problem.to_string()));
                }
                args.0.insert(arg.name.to_string(), v);
            }
        }
    }
    for required in spec.required {
        if args.get(required).is_none() {
            errors.push(Diagnostic::new(&value.location, format!("module '{}' needs '{required}'", spec.name)));
        }
    }
    args
}

/// `name=foo state=present` and, for free-form modules, `creates=/x some command`. The
/// command text is kept exactly as written, minus the `k=v` options taken out of it: its
/// quoting and spacing are the command's business (`printf '[%s]' "a   b"`).
fn split_free_form(spec: &Spec, text: &str) -> Result<Vec<(String, Json)>, ArgError> {
    let unbalanced = || ArgError::Unbalanced(text.to_string());
    let mut pairs = Vec::new();
    let mut kept = String::new();
    let mut rest: Vec<&str> = Vec::new();
    let mut last = 0;
    for (start, end) in word_spans(text).ok_or_else(unbalanced)? {
        let word = &text[start..end];
        let option = word.split_once('=').filter(|(k, _)| spec.find(k).is_some() && Some(*k) != spec.free_form);
        match option {
            Some((key, _)) => {
                // The value as the shell would read it: `chdir="/dir with space"`.
                let value = shlex::split(word).and_then(|w| w.into_iter().next()).ok_or_else(unbalanced)?;
                let value = value.split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default();
                pairs.push((key.to_string(), plain_json(&value)));
                kept.push_str(&text[last..start]);
                last = end;
            }
            None => rest.push(word),
        }
    }
    kept.push_str(&text[last..]);
    match spec.free_form {
        Some(free) if !rest.is_empty() => pairs.push((free.to_string(), Json::String(kept.trim().to_string()))),
        None if !rest.is_empty() => return Err(ArgError::NotKeyValue { module: spec.name, found: rest.join(" ") }),
        _ => {}
    }
    Ok(pairs)
}

/// The byte spans of the shell words of `text` (quotes and backslashes respected, nothing
/// removed); `None` when a quote is left open.
fn word_spans(text: &str) -> Option<Vec<(usize, usize)>> {
    let mut spans = Vec::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => {
                escaped = true;
                start.get_or_insert(i);
            }
            (Some('"'), '"') => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => {
                quote = Some(c);
                start.get_or_insert(i);
            }
            (None, c) if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    spans.push((s, i));
                }
            }
            (None, _) => {
                start.get_or_insert(i);
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    Some(spans)
}

/// A `k=v` value resolves like a plain YAML scalar (`enabled=yes` is a boolean).
fn plain_json(text: &str) -> Json {
    Node { value: yaml::resolve_plain(text.to_string()), location: yaml::Location::synthetic("") }.to_json()
}

/// Re-checks arguments after templating; returns the first problem.
pub fn validate_rendered(spec: &Spec, args: &Args) -> Result<(), ArgError> {
    for (k, v) in &args.0 {
        if let Some(arg) = spec.find(k) {
            check_value(arg, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::command::{desired, COMMAND_SPEC, SHELL_SPEC};

    fn free_form(spec: &Spec, text: &str) -> Args {
        let mut errors = Vec::new();
        let node = Node { value: Value::String(text.into()), location: yaml::Location::synthetic("t") };
        let args = parse_args(spec, &node, None, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        args
    }

    fn sh(script: &str) -> String {
        let out = std::process::Command::new("sh").arg("-c").arg(script).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn free_form_text_is_kept_exactly() {
        let args = free_form(&COMMAND_SPEC, r#"printf '[%s]' "a   b""#);
        assert_eq!(args.str("_raw_params").unwrap(), r#"printf '[%s]' "a   b""#);
        assert_eq!(sh(&desired(&args, false).unwrap().script), "[a   b]");
        let args = free_form(&SHELL_SPEC, r#"printf '[%s]' "a   b"  | cat"#);
        assert_eq!(sh(&desired(&args, true).unwrap().script), "[a   b]");
    }

    #[test]
    fn options_are_taken_out_with_their_quoted_values() {
        let dir = tempfile::tempdir().unwrap();
        let spaced = dir.path().join("dir with space");
        std::fs::create_dir(&spaced).unwrap();
        let text = format!(r#"chdir="{}" creates=/nonexistent/x pwd"#, spaced.display());
        let args = free_form(&COMMAND_SPEC, &text);
        assert_eq!(args.str("chdir").unwrap(), spaced.display().to_string());
        assert_eq!(args.str("creates").unwrap(), "/nonexistent/x");
        assert_eq!(args.str("_raw_params").unwrap(), "pwd");
        assert_eq!(sh(&desired(&args, false).unwrap().script).trim(), spaced.display().to_string());
        // A quoted `k=v` is part of the command, not an option.
        let args = free_form(&COMMAND_SPEC, "echo 'creates=/x' \"chdir=/y\"");
        assert_eq!(args.get("creates"), None);
        assert_eq!(sh(&desired(&args, false).unwrap().script), "creates=/x chdir=/y\n");
    }

    #[test]
    fn word_spans_respect_quotes_and_escapes() {
        let t = r#"a 'b c' d\ e "f\"g" "#;
        let words: Vec<&str> = word_spans(t).unwrap().into_iter().map(|(s, e)| &t[s..e]).collect();
        assert_eq!(words, ["a", "'b c'", r"d\ e", r#""f\"g""#]);
        assert!(word_spans("echo 'open").is_none());
    }
}
