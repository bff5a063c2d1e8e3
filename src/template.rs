//! Ansible's templating on minijinja: `{{ }}` in values and `when:`-style conditions, with
//! the filters and tests Ansible users write (`bool`, `default`, `is succeeded`, ...).
//!
//! Undefined is strict, as in Ansible: using an undefined variable (comparing it, testing
//! its truth, printing it) is an error naming it. `is defined`, `default()`/`d()` and
//! guarded `and`/`or` keep working, and so does `a.b.c | default(x)` with `a` undefined
//! (Ansible's undefined chains): an expression that guards with `default` or `defined` is
//! evaluated again with chaining undefined values when the strict pass stops on one.

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
        Templar { env: environment(UndefinedBehavior::Strict), chaining: environment(UndefinedBehavior::Chainable) }
    }
}

/// The filters and tests Ansible users write, with the given undefined behaviour.
fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
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
    env.add_filter("regex_search", |v: String, re: String| -> Result<Value, Error> {
        let re = regex::Regex::new(&re).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
        Ok(re.find(&v).map(|m| Value::from(m.as_str())).unwrap_or(Value::from(())))
    });
    env.add_filter("regex_replace", |v: String, re: String, with: String| -> Result<String, Error> {
        let re = regex::Regex::new(&re).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
        Ok(re.replace_all(&v, with.replace("\\1", "${1}").replace("\\2", "${2}").as_str()).into_owned())
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
            Err(e) if e.kind() == ErrorKind::UndefinedError && guards_undefined(expr) => {
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

    /// Renders every string in a value that contains `{{` or `{%`. A string that is exactly
    /// one `{{ expression }}` keeps the expression's type, as Ansible's native rendering does.
    pub fn render(&self, value: &Json, vars: &Vars) -> Result<Json, TemplateError> {
        match value {
            Json::String(s) if s.starts_with(UNSAFE_MARK) => Ok(Json::String(s[UNSAFE_MARK.len()..].to_string())),
            Json::String(s) if s.contains("{{") || s.contains("{%") => self.render_str(s, vars),
            Json::Array(items) => items.iter().map(|i| self.render(i, vars)).collect::<Result<Vec<_>, _>>().map(Json::Array),
            Json::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let v = self.render(v, vars)?;
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
            Err(e) if e.kind() == ErrorKind::UndefinedError && guards_undefined(s) => {
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

/// Whether an expression guards against undefined values itself (`default`, `d`,
/// `is defined`, `is undefined`, `mandatory`): then Ansible's chaining undefined applies.
fn guards_undefined(source: &str) -> bool {
    static GUARD: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    GUARD
        .get_or_init(|| regex::Regex::new(r"\|\s*(default|d|mandatory)\b|\bis\s+(not\s+)?(defined|undefined)\b").expect("valid regex"))
        .is_match(source)
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
