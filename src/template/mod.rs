//! Ansible's templating on minijinja: `{{ }}` in values and `when:`-style conditions, with
//! the filters and tests Ansible users write (`bool`, `default`, `is succeeded`, ...).
//!
//! Undefined is strict, as in Ansible: using an undefined variable (comparing it, testing
//! its truth, printing it) is an error naming it. `is defined`, `default()`/`d()` and
//! guarded `and`/`or` keep working, and so does `a.b.c | default(x)` with `a` undefined
//! (Ansible's undefined chains): an expression that guards with `default` or `defined` is
//! evaluated again with chaining undefined values when the strict pass stops on one.

mod filters;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

use crate::vars::Vars;
use crate::yaml::{strip_unsafe_marks, UNSAFE_MARK};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} '{source_text}': {message}")]
pub struct TemplateError {
    pub what: &'static str,
    pub source_text: String,
    pub message: String,
}

/// Marks an argument to drop, like Ansible's `omit`.
pub const OMIT: &str = "__gafix_omit_place_holder__";

pub struct Templar {
    env: Environment<'static>,
    /// The same environment with chaining undefined values, for guarded expressions.
    chaining: Environment<'static>,
    /// For template files (`template:`), as Ansible's template module renders them: blocks
    /// trimmed, a trailing newline kept.
    files: Environment<'static>,
    /// The same with chaining undefined values, for guarded expressions in template files.
    files_chaining: Environment<'static>,
}

impl Default for Templar {
    fn default() -> Self {
        Self::new()
    }
}

fn is_result_flag(v: &Value, key: &str) -> bool {
    v.get_attr(key).map(|f| f.is_true()).unwrap_or(false)
}

fn ansible_bool(v: Value) -> bool {
    if let Some(s) = v.as_str() {
        return matches!(s.trim().to_ascii_lowercase().as_str(), "yes" | "on" | "true" | "1" | "y" | "t");
    }
    if let Some(i) = v.as_i64() {
        return i == 1;
    }
    v.is_true()
}

impl Templar {
    pub fn new() -> Self {
        let for_files = |undefined| {
            let mut env = environment(undefined);
            env.set_trim_blocks(true);
            env
        };
        Templar {
            env: environment(UndefinedBehavior::Strict),
            chaining: environment(UndefinedBehavior::Chainable),
            files: for_files(UndefinedBehavior::Strict),
            files_chaining: for_files(UndefinedBehavior::Chainable),
        }
    }
}

/// JSON as Python's `json.dumps` writes it (`to_json`): `", "` and `": "` between items.
fn python_json(v: &Json) -> String {
    match v {
        Json::Array(items) => format!("[{}]", items.iter().map(python_json).collect::<Vec<_>>().join(", ")),
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter().map(|(k, v)| format!("{}: {}", Json::String(k.clone()), python_json(v))).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// The filters and tests Ansible users write, with the given undefined behaviour.
fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    // Ansible keeps a template's trailing newline (`content: "x {{ y }}\n"`).
    env.set_keep_trailing_newline(true);
    // Ansible templates every value with trim_blocks, not only template files.
    env.set_trim_blocks(true);
    env.set_undefined_behavior(undefined);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(|out, state, value| {
        if value.is_undefined() {
            return Err(Error::new(ErrorKind::UndefinedError, "a variable in this template is undefined"));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter("bool", ansible_bool);
    env.add_filter("d", minijinja::filters::default);
    env.add_filter("ternary", |v: Value, yes: Value, no: Value| if v.is_true() { yes } else { no });
    env.add_filter("mandatory", |v: Value| {
        if v.is_undefined() {
            Err(Error::new(ErrorKind::UndefinedError, "mandatory variable not defined"))
        } else {
            Ok(v)
        }
    });
    filters::register(&mut env);
    // Ansible's path and serialisation filters roles use in templates.
    env.add_filter("basename", |v: String| v.rsplit('/').next().unwrap_or("").to_string());
    env.add_filter("dirname", |v: String| match v.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => v[..i].to_string(),
        None => String::new(),
    });
    let as_json = |v: &Value| serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()));
    env.add_filter("to_json", move |v: Value| as_json(&v).map(|j| python_json(&j)));
    env.add_filter("to_nice_json", move |v: Value| as_json(&v).map(|j| crate::inventory::output::ansible_json(&j)));
    // Python's shlex.quote, character for character (the text lands in files).
    env.add_filter("quote", |v: String| {
        if v.is_empty() {
            "''".to_string()
        } else if v.chars().all(|c| c.is_alphanumeric() || "_@%+=:,./-".contains(c)) {
            v
        } else {
            format!("'{}'", v.replace('\'', "'\"'\"'"))
        }
    });
    env.add_filter("regex_escape", |v: String| regex::escape(&v));
    env.add_filter("regex_search", |v: String, re: String| -> Result<Value, Error> {
        let re = regex::Regex::new(&re).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
        Ok(re.find(&v).map(|m| Value::from(m.as_str())).unwrap_or(Value::from(())))
    });
    env.add_filter("regex_replace", |v: String, re: String, with: String| -> Result<String, Error> {
        let invalid = |e: String| Error::new(ErrorKind::InvalidOperation, e);
        let re = crate::pyre::compile(&re, "regex_replace's pattern").map_err(invalid)?;
        crate::pyre::replace_all(&re, &v, &with).map_err(invalid)
    });
    for (name, key, negate) in [
        ("succeeded", "failed", true),
        ("success", "failed", true),
        ("failed", "failed", false),
        ("failure", "failed", false),
        ("changed", "changed", false),
        ("change", "changed", false),
        ("skipped", "skipped", false),
        ("skip", "skipped", false),
    ] {
        env.add_test(name, move |v: Value| is_result_flag(&v, key) != negate);
    }
    let regex_test = |anchored: bool| {
        move |v: String, re: String| -> Result<bool, Error> {
            let source = if anchored { format!("^(?:{re})") } else { re };
            let re = regex::Regex::new(&source).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            Ok(re.is_match(&v))
        }
    };
    env.add_test("match", regex_test(true));
    env.add_test("search", regex_test(false));
    env.add_test("regex", regex_test(false));
    env.add_test("version", |v: String, other: String, op: Option<String>| -> Result<bool, Error> {
        let ord = compare_versions(&v, &other);
        use std::cmp::Ordering::*;
        Ok(match op.as_deref().unwrap_or("eq") {
            "<" | "lt" => ord == Less,
            "<=" | "le" => ord != Greater,
            ">" | "gt" => ord == Greater,
            ">=" | "ge" => ord != Less,
            "==" | "=" | "eq" => ord == Equal,
            "!=" | "<>" | "ne" => ord != Equal,
            other => return Err(Error::new(ErrorKind::InvalidOperation, format!("unknown version comparison '{other}'"))),
        })
    });
    env
}

impl Templar {
    /// Evaluates a condition (`when`, `changed_when`, `failed_when`, `assert.that`).
    pub fn condition(&self, expr: &str, vars: &Vars) -> Result<bool, TemplateError> {
        let trimmed = expr.trim();
        // `when: "{{ x }}"` is deprecated in Ansible but still seen.
        let inner = trimmed.strip_prefix("{{").and_then(|s| s.strip_suffix("}}")).map(str::trim).unwrap_or(trimmed);
        let value =
            self.eval(inner, vars).map_err(|message| TemplateError { what: "condition", source_text: expr.to_string(), message })?;
        Ok(ansible_truthy(&value))
    }

    /// One expression's value; an undefined result is an error naming what is undefined.
    fn eval(&self, expr: &str, vars: &Vars) -> Result<Value, String> {
        let ctx = context(vars);
        let compiled = self.env.compile_expression(expr).map_err(|e| describe(&e))?;
        let result = match compiled.eval(&ctx) {
            Err(e) if e.kind() == ErrorKind::UndefinedError && guarded(expr, compiled.undeclared_variables(true), vars) => {
                self.chaining.compile_expression(expr).and_then(|c| c.eval(&ctx))
            }
            other => other,
        };
        match result {
            Ok(v) if v.is_undefined() => Err(undefined_message(compiled.undeclared_variables(true), vars)),
            Ok(v) => Ok(v),
            Err(e) if e.kind() == ErrorKind::UndefinedError => Err(undefined_message(compiled.undeclared_variables(true), vars)),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Renders, in place, the values of the variables that `sources` (conditions and
    /// templates) use, where those values are templates themselves (`app_dir: "{{ base
    /// }}/app"`), and of the variables those use in turn: Ansible templates a variable when
    /// it is used. Variables nothing uses are left as they are (and cannot fail the task).
    pub fn resolve_used(&self, vars: &mut Vars, sources: &[String]) -> Result<(), TemplateError> {
        let mut done = std::collections::HashSet::new();
        for source in sources {
            for name in self.names_in(source) {
                self.resolve_var(vars, &name, &mut Vec::new(), &mut done)?;
            }
        }
        Ok(())
    }

    /// The top-level variable names a condition or template uses.
    fn names_in(&self, source: &str) -> Vec<String> {
        let trimmed = source.trim();
        let names = if trimmed.contains("{{") || trimmed.contains("{%") {
            self.chaining.template_from_str(source).map(|t| t.undeclared_variables(false)).unwrap_or_default()
        } else {
            self.chaining.compile_expression(trimmed).map(|e| e.undeclared_variables(false)).unwrap_or_default()
        };
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        names
    }

    fn resolve_var(
        &self,
        vars: &mut Vars,
        name: &str,
        in_progress: &mut Vec<String>,
        done: &mut std::collections::HashSet<String>,
    ) -> Result<(), TemplateError> {
        if done.contains(name) || crate::inventory::SECRET_VARS.contains(&name) {
            return Ok(());
        }
        let Some(value) = vars.get(name).cloned() else { return Ok(()) };
        let mut templates = Vec::new();
        collect_templates(&value, &mut templates);
        if templates.is_empty() {
            done.insert(name.to_string());
            return Ok(());
        }
        if in_progress.iter().any(|n| n == name) || in_progress.len() >= 32 {
            return Err(TemplateError {
                what: "variable",
                source_text: name.to_string(),
                message: format!("it refers to itself ({} -> {name})", in_progress.join(" -> ")),
            });
        }
        in_progress.push(name.to_string());
        for t in &templates {
            for inner in self.names_in(t) {
                self.resolve_var(vars, &inner, in_progress, done)?;
            }
        }
        in_progress.pop();
        let rendered = self.render(&value, vars).map_err(|e| TemplateError {
            what: "variable",
            source_text: name.to_string(),
            message: e.to_string(),
        })?;
        vars.insert(name.to_string(), rendered);
        done.insert(name.to_string());
        Ok(())
    }

    /// Renders every string in a value that contains `{{` or `{%`. A string that is exactly
    /// one `{{ expression }}` keeps the expression's type, as Ansible's native rendering does.
    pub fn render(&self, value: &Json, vars: &Vars) -> Result<Json, TemplateError> {
        self.render_inner(value, vars, false)
    }

    /// Renders variables' values: `!unsafe` strings keep their mark, so that wherever the
    /// variable is used later it is still used as written.
    pub fn render_vars(&self, value: &Json, vars: &Vars) -> Result<Json, TemplateError> {
        self.render_inner(value, vars, true)
    }

    /// A template file's text rendered with the task's variables (`template:`); `name` is
    /// the file, for errors.
    pub fn render_file(&self, name: &str, text: &str, vars: &Vars) -> Result<String, TemplateError> {
        let err = |message: String| TemplateError { what: "template file", source_text: name.to_string(), message };
        let template = self.files.template_from_str(text).map_err(|e| err(describe(&e)))?;
        let ctx = context(vars);
        let result = match template.render(&ctx) {
            // `{{ x.y | default('') }}` with `x` undefined: guarded, as in expressions.
            // Only when a variable itself is missing and guarded everywhere it is used: a
            // missing attribute (`server.prot`) stays an error, however guarded others are.
            Err(e)
                if e.kind() == ErrorKind::UndefinedError && {
                    let used = template.undeclared_variables(true);
                    used.iter().any(|p| !vars.contains_key(p.split('.').next().unwrap_or(p))) && guarded(text, used, vars)
                } =>
            {
                self.files_chaining.template_from_str(text).and_then(|t| t.render(&ctx))
            }
            other => other,
        };
        result.map_err(|e| match e.kind() {
            ErrorKind::UndefinedError => err(undefined_message(template.undeclared_variables(true), vars)),
            _ => err(describe(&e)),
        })
    }

    fn render_inner(&self, value: &Json, vars: &Vars, keep_unsafe: bool) -> Result<Json, TemplateError> {
        match value {
            Json::String(s) if s.starts_with(UNSAFE_MARK) && keep_unsafe => Ok(value.clone()),
            Json::String(s) if s.starts_with(UNSAFE_MARK) => Ok(Json::String(s[UNSAFE_MARK.len()..].to_string())),
            Json::String(s) if s.contains("{{") || s.contains("{%") => self.render_str(s, vars),
            Json::Array(items) => {
                items.iter().map(|i| self.render_inner(i, vars, keep_unsafe)).collect::<Result<Vec<_>, _>>().map(Json::Array)
            }
            Json::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let v = self.render_inner(v, vars, keep_unsafe)?;
                    if v.as_str() != Some(OMIT) {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Json::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn render_str(&self, s: &str, vars: &Vars) -> Result<Json, TemplateError> {
        let err = |message: String| TemplateError { what: "template", source_text: s.to_string(), message };
        let trimmed = s.trim();
        if let Some(inner) = trimmed.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
            if !inner.contains("{{") && !inner.contains("}}") {
                let value = self.eval(inner.trim(), vars).map_err(err)?;
                return serde_json::to_value(&value).map_err(|e| err(e.to_string()));
            }
        }
        let ctx = context(vars);
        let template = self.env.template_from_str(s).map_err(|e| err(describe(&e)))?;
        let result = match template.render(&ctx) {
            Err(e) if e.kind() == ErrorKind::UndefinedError && guarded(s, template.undeclared_variables(true), vars) => {
                self.chaining.template_from_str(s).and_then(|t| t.render(&ctx))
            }
            other => other,
        };
        match result {
            Ok(text) => Ok(Json::String(text)),
            Err(e) if e.kind() == ErrorKind::UndefinedError => Err(err(undefined_message(template.undeclared_variables(true), vars))),
            Err(e) => Err(err(describe(&e))),
        }
    }
}

/// Whether every variable the expression uses that is undefined is guarded where it is
/// used (`x | default(..)`, `x.y | d(..)`, `x is defined`, `x is undefined`, `mandatory`):
/// then Ansible's chaining undefined applies. One unguarded use keeps the strict error
/// (`foo is defined and bar == 'x'` with `bar` undefined is an error, as in Ansible).
fn guarded(source: &str, referenced: std::collections::HashSet<String>, vars: &Vars) -> bool {
    let undefined: Vec<String> = referenced
        .iter()
        .filter_map(|path| {
            let first = path.split('.').next()?;
            (!vars.contains_key(first)).then(|| first.to_string())
        })
        .collect();
    if undefined.is_empty() {
        // Only attributes are missing (`d.nokey`): guarded if the expression guards at all.
        return guard_after(source, r"[A-Za-z_][\w.]*");
    }
    undefined.iter().all(|name| {
        let every_use = regex::Regex::new(&format!(r"\b{}\b", regex::escape(name))).expect("valid regex");
        let uses = every_use.find_iter(source).count();
        let guarded_uses =
            regex::Regex::new(&format!(r"\b{}\b{}", regex::escape(name), GUARD_TAIL)).expect("valid regex").find_iter(source).count();
        uses > 0 && uses == guarded_uses
    })
}

/// What may follow a variable (attributes, subscripts) before a guard, then the guard.
const GUARD_TAIL: &str = r"(?:\.\w+|\[[^\]]*\])*\s*(?:\|\s*(?:default|d|mandatory)\b|is\s+(?:not\s+)?(?:defined|undefined)\b)";

fn guard_after(source: &str, name: &str) -> bool {
    regex::Regex::new(&format!("{name}{GUARD_TAIL}")).expect("valid regex").is_match(source)
}

/// "'x' is undefined", naming the first variable (or attribute path) of the expression
/// that the variables do not define.
fn undefined_message(referenced: std::collections::HashSet<String>, vars: &Vars) -> String {
    let mut names: Vec<String> = referenced.into_iter().collect();
    names.sort();
    for name in &names {
        let mut parts = name.split('.');
        let Some(first) = parts.next() else { continue };
        let Some(mut value) = vars.get(first) else { return format!("'{first}' is undefined") };
        let mut path = first.to_string();
        for part in parts {
            match value.get(part) {
                Some(v) => value = v,
                None => return format!("'{path}' has no attribute '{part}' ('{path}.{part}' is undefined)"),
            }
            path = format!("{path}.{part}");
        }
    }
    "a variable in this expression is undefined".to_string()
}

/// The template strings in a value (not `!unsafe` ones).
pub fn collect_templates(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) if !s.starts_with(UNSAFE_MARK) && (s.contains("{{") || s.contains("{%")) => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|i| collect_templates(i, out)),
        Json::Object(map) => map.values().for_each(|i| collect_templates(i, out)),
        _ => {}
    }
}

/// The variables as templates see them: `!unsafe` values are plain strings there (a
/// template that uses one inserts its text; it is never rendered again).
fn context(vars: &Vars) -> Value {
    if vars.values().any(has_unsafe_mark) {
        Value::from_serialize(strip_unsafe_marks(&Json::Object(vars.clone())))
    } else {
        Value::from_serialize(vars)
    }
}

fn has_unsafe_mark(v: &Json) -> bool {
    match v {
        Json::String(s) => s.starts_with(UNSAFE_MARK),
        Json::Array(items) => items.iter().any(has_unsafe_mark),
        Json::Object(map) => map.values().any(has_unsafe_mark),
        _ => false,
    }
}

/// Python truthiness, plus Ansible's reading of strings in conditions ("False" is false).
fn ansible_truthy(v: &Value) -> bool {
    if let Some(s) = v.as_str() {
        return !matches!(s.trim().to_ascii_lowercase().as_str(), "" | "false" | "no" | "off" | "0" | "none");
    }
    v.is_true()
}

fn describe(e: &Error) -> String {
    let mut msg = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
    if e.kind() == ErrorKind::UndefinedError && !msg.contains("undefined") {
        msg = format!("undefined variable ({msg})");
    }
    msg
}

/// Compares dotted versions numerically where both parts are numbers.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| s.split(['.', '-', '+', '~', ':']).map(str::to_string).collect::<Vec<_>>();
    let (pa, pb) = (split(a), split(b));
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = (pa.get(i).map(String::as_str).unwrap_or("0"), pb.get(i).map(String::as_str).unwrap_or("0"));
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Json) -> Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn values_render_with_trim_blocks_as_ansible_renders_them() {
        let t = Templar::new();
        let v = json!("{% if true %}\n* hard core 0\n{% endif %}\n* soft nofile 4096\n");
        assert_eq!(t.render(&v, &Vars::new()).unwrap(), json!("* hard core 0\n* soft nofile 4096\n"), "as ansible-core renders it");
    }

    #[test]
    fn the_comment_filter_as_ansible_writes_it() {
        let t = Templar::new();
        let r = |src: &str| t.render(&json!(src), &Vars::new()).unwrap();
        // Expected values printed by ansible-core's own filter.
        assert_eq!(r("{{ 'Managed\\nby Ansible' | comment }}"), json!("#\n# Managed\n# by Ansible\n#"));
        assert_eq!(r("{{ 'x' | comment('cblock') }}"), json!("/*\n *\n * x\n *\n */"));
        assert_eq!(r("{{ 'a\\n\\nb' | comment('c', prefix_count=2) }}"), json!("//\n//\n// a\n//\n// b\n//"));
        assert_eq!(r("{{ 'x' | comment('xml', decoration='-- ') }}"), json!("<!--\n--\n-- x\n--\n-->"));
    }

    #[test]
    fn conditions_like_ansible() {
        let t = Templar::new();
        let v = vars(
            json!({"ansible_os_family": "Debian", "r": {"stat": {"exists": true}}, "skipped": {"skipped": true, "changed": false}, "s": "no", "n": 1}),
        );
        assert!(t.condition("ansible_os_family == \"Debian\"", &v).unwrap());
        assert!(t.condition("r.stat.exists", &v).unwrap());
        assert!(!t.condition("skipped.stat.exists | default(false)", &v).unwrap());
        assert!(t.condition("(skipped.rc | default(0)) == 0", &v).unwrap());
        assert!(t.condition("skipped is skipped and r is succeeded and r is not changed", &v).unwrap());
        assert!(!t.condition("s | bool", &v).unwrap());
        assert!(t.condition("nosuch is not defined", &v).unwrap());
        assert!(t.condition("n in [0, 1] and True", &v).unwrap());
        assert!(t.condition("{{ n == 1 }}", &v).unwrap());
        assert!(t.condition("'12.1' is version('12', '>=')", &v).unwrap());
        assert!(t.condition("ansible_os_family is match('Deb')", &v).unwrap());
        assert!(
            t.condition("ansible_os_family.startswith('Deb') and ansible_os_family.lower() == 'debian'", &v).unwrap(),
            "Python's string methods"
        );
        let e = t.condition("nosuch", &v).unwrap_err();
        assert!(e.to_string().contains("undefined"), "{e}");
        assert!(t.condition("a ==", &v).is_err());
    }

    #[test]
    fn undefined_is_strict_and_named_as_in_ansible() {
        let t = Templar::new();
        let v = vars(json!({"d": {"a": 1, "n": {"x": 2}}, "s": "QEMU"}));
        let e = t.condition("ansible_system_vendor == 'QEMU'", &v).unwrap_err();
        assert_eq!(e.message, "'ansible_system_vendor' is undefined");
        assert_eq!(t.condition("nosuch", &v).unwrap_err().message, "'nosuch' is undefined");
        assert_eq!(t.condition("not nosuch", &v).unwrap_err().message, "'nosuch' is undefined");
        assert_eq!(t.condition("d.nokey == 1", &v).unwrap_err().message, "'d' has no attribute 'nokey' ('d.nokey' is undefined)");
        assert!(t.condition("'x' in nosuch", &v).is_err());
        assert!(t.render(&json!("{{ nosuch }}"), &v).unwrap_err().message.contains("'nosuch' is undefined"));
        assert!(t.render(&json!("a {{ d.n.y }} b"), &v).unwrap_err().message.contains("'d.n.y' is undefined"));
        // What Ansible allows with undefined values.
        assert!(!t.condition("nosuch is defined", &v).unwrap());
        assert!(t.condition("nosuch is undefined", &v).unwrap());
        assert!(!t.condition("nosuch is defined and nosuch.x", &v).unwrap());
        assert!(t.condition("nosuch is not defined or nosuch.x", &v).unwrap());
        assert!(t.condition("nosuch.a.b | default(true)", &v).unwrap());
        assert!(t.condition("(d.nokey | d(5)) == 5", &v).unwrap());
        assert!(t.condition("d.n.nokey is not defined", &v).unwrap());
        assert_eq!(t.render(&json!("{{ nosuch.x | default('z') }}-{{ s }}"), &v).unwrap(), json!("z-QEMU"));
        assert_eq!(t.render(&json!({"a": "{{ nosuch | default(omit) }}"}), &vars(json!({"omit": OMIT}))).unwrap(), json!({}));
        // A guard on one variable does not cover another.
        assert_eq!(t.condition("nosuch is not defined and bar == 'x'", &v).unwrap_err().message, "'bar' is undefined");
        assert!(t.condition("not (skip | default(false)) and not maintenance_windw", &v).is_err(), "a typo is not false");
        assert!(t.render(&json!("{{ (a | default('')) ~ b }}"), &v).is_err());
    }

    #[test]
    fn variables_are_templated_when_used() {
        let t = Templar::new();
        let mut v = vars(
            json!({"base": "/srv", "app_dir": "{{ base }}/app", "logs": ["{{ app_dir }}/log"], "unused": "{{ nosuch }}", "me": "{{ me }}"}),
        );
        t.resolve_used(&mut v, &["{{ logs[0] }}".to_string(), "app_dir == '/srv/app'".to_string()]).unwrap();
        assert_eq!(v["app_dir"], json!("/srv/app"));
        assert_eq!(v["logs"], json!(["/srv/app/log"]));
        assert_eq!(t.render(&json!("{{ logs[0] }}"), &v).unwrap(), json!("/srv/app/log"));
        assert_eq!(v["unused"], json!("{{ nosuch }}"), "what nothing uses is not rendered (and cannot fail)");
        let e = t.resolve_used(&mut v, &["{{ me }}".to_string()]).unwrap_err();
        assert!(e.message.contains("refers to itself"), "{e}");
        let mut v = vars(json!({"app_dir": "{{ base }}/app"}));
        let e = t.resolve_used(&mut v, &["{{ app_dir }}".to_string()]).unwrap_err();
        assert!(e.to_string().contains("'base' is undefined"), "{e}");
    }

    #[test]
    fn rendering_keeps_native_types_and_omits() {
        let t = Templar::new();
        let v = vars(json!({"port": 2222, "pkgs": ["a", "b"], "name": "web", "omit": OMIT}));
        assert_eq!(t.render(&json!("{{ port }}"), &v).unwrap(), json!(2222));
        assert_eq!(t.render(&json!("{{ pkgs }}"), &v).unwrap(), json!(["a", "b"]));
        assert_eq!(t.render(&json!("host-{{ name }}:{{ port }}"), &v).unwrap(), json!("host-web:2222"));
        assert_eq!(t.render(&json!({"a": "{{ omit }}", "b": 1}), &v).unwrap(), json!({"b": 1}));
        assert_eq!(t.render(&json!("{{ nosuch | default('x') }}"), &v).unwrap(), json!("x"));
        assert!(t.render(&json!("{{ nosuch }}"), &v).unwrap_err().message.contains("undefined"));
        assert!(t.render(&json!("a {{ nosuch }} b"), &v).unwrap_err().message.contains("undefined"));
        assert_eq!(t.render(&json!("no template"), &v).unwrap(), json!("no template"));
    }

    #[test]
    fn unsafe_values_are_never_rendered() {
        let t = Templar::new();
        let pw = format!("{UNSAFE_MARK}ab{{{{ 7*7 }}}}cd");
        let v = vars(json!({"pw": pw, "nested": {"x": [pw]}}));
        assert_eq!(t.render(&json!(pw), &v).unwrap(), json!("ab{{ 7*7 }}cd"));
        assert_eq!(t.render(&json!("{{ pw }}"), &v).unwrap(), json!("ab{{ 7*7 }}cd"));
        assert_eq!(t.render(&json!("x-{{ nested.x[0] }}"), &v).unwrap(), json!("x-ab{{ 7*7 }}cd"));
        assert!(t.condition("pw == 'ab{{ 7*7 }}cd'", &v).unwrap());
        assert_eq!(t.render(&json!("{{ 7*7 }}"), &v).unwrap(), json!(49), "ordinary strings still render");
    }

    #[test]
    fn deeply_nested_expressions_are_errors_not_stack_overflows() {
        let t = Templar::new();
        let v = vars(json!({"x": 1}));
        let deep = "(".repeat(20_000) + "x" + &")".repeat(20_000);
        assert!(t.condition(&deep, &v).is_err());
        assert!(t.render(&json!(format!("{{{{ {deep} }}}}")), &v).is_err());
        let list = "[".repeat(20_000) + &"]".repeat(20_000);
        assert!(t.condition(&list, &v).is_err());
    }

    #[test]
    fn version_ordering() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("1.10", "1.9"), Greater);
        assert_eq!(compare_versions("12", "12.0"), Equal);
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn path_and_json_filters_as_ansible_writes_them() {
        let t = Templar::new();
        let vars: Vars = serde_json::from_str(r#"{"p": "/etc/app/app.conf", "d": {"b": [1, 2], "a": "x"}}"#).unwrap();
        let r = |s: &str| t.render(&Json::String(s.into()), &vars).unwrap();
        assert_eq!(r("{{ p | basename }} {{ p | dirname }}"), "app.conf /etc/app");
        assert_eq!(r("{{ d | to_json }}"), r#"{"b": [1, 2], "a": "x"}"#, "in the order written, as Python dicts");
        assert_eq!(r("{{ d | to_nice_json }}"), "{\n    \"a\": \"x\",\n    \"b\": [\n        1,\n        2\n    ]\n}");
        assert_eq!(r("{{ \"it's\" | quote }}"), r#"'it'"'"'s'"#);
    }

    #[test]
    fn template_files_trim_blocks_keep_the_last_newline_and_guard_as_expressions_do() {
        let t = Templar::new();
        let vars: Vars = serde_json::from_str(r#"{"users": ["a", "b"]}"#).unwrap();
        let text = "{% for u in users %}\nuser={{ u }}\n{% endfor %}\nx={{ nope.y | default('none') }}\n";
        assert_eq!(t.render_file("f.j2", text, &vars).unwrap(), "user=a\nuser=b\nx=none\n");
        let typo = t.render_file("f.j2", "a={{ x | default(1) }}\nport={{ users.prot }}\n", &vars).unwrap_err().to_string();
        assert!(typo.contains("prot"), "a missing attribute stays an error: {typo}");
        let e = t.render_file("f.j2", "port={{ prot }}\n", &vars).unwrap_err().to_string();
        assert!(e.contains("'prot' is undefined") && e.contains("f.j2"), "{e}");
    }
}
