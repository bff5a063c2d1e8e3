//! The secrets of a run (become passwords, connection passwords, the vars of `no_log`
//! tasks), kept so that no output can show them: every writer of text, JSON, JUnit, logs
//! and error messages passes its text through [`redact`].
//!
//! Values are also kept out of the places that would echo them (they are never templated,
//! `Debug` prints a mask): redaction is the last line of defence, not the only one.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "********";

/// Shorter values are not masked: masking a two-letter word everywhere would garble every
/// line, and such a value protects nothing.
const MIN_LEN: usize = 3;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds a value to the run's secrets.
pub fn register(value: &str) {
    if value.chars().count() < MIN_LEN {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if all.iter().any(|s| s == value) {
        return;
    }
    all.push(value.to_string());
    // Longest first, so that a secret containing another is masked whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Adds every string inside a JSON value (a no_log task's vars).
pub fn register_json(value: &serde_json::Value) {
    match value {
        serde_json::Value::String(s) => register(s),
        serde_json::Value::Array(items) => items.iter().for_each(register_json),
        serde_json::Value::Object(map) => map.values().for_each(register_json),
        _ => {}
    }
}

/// `text` with every secret, as written and as JSON or XML would escape it, replaced by the mask.
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in all.iter() {
        for form in forms(secret) {
            if out.contains(form.as_ref()) {
                out = Cow::Owned(out.replace(form.as_ref(), MASK));
            }
        }
    }
    out
}

/// A secret as it may appear in output: raw, JSON-escaped, XML-escaped.
fn forms(secret: &str) -> Vec<Cow<'_, str>> {
    let mut forms = vec![Cow::Borrowed(secret)];
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"');
    if json != secret {
        forms.push(Cow::Owned(json.to_string()));
    }
    let xml = secret.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;");
    if xml != secret {
        forms.push(Cow::Owned(xml));
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_every_form() {
        register("pw-{{ 7*7 }}-\"q\"&<x>");
        register("ab");
        let raw = redact("sudo said pw-{{ 7*7 }}-\"q\"&<x> twice: pw-{{ 7*7 }}-\"q\"&<x>");
        assert_eq!(raw, format!("sudo said {MASK} twice: {MASK}"));
        let json = serde_json::to_string("x pw-{{ 7*7 }}-\"q\"&<x>").unwrap();
        assert!(!redact(&json).contains("7*7"), "{}", redact(&json));
        assert!(!redact("pw-{{ 7*7 }}-&quot;q&quot;&amp;&lt;x&gt;").contains("7*7"));
        assert_eq!(redact("ab stays: too short to mask"), "ab stays: too short to mask");
    }
}
