//! Variables as Ansible holds them, and the JSON helpers every layer reads them with.

use serde_json::Value as Json;

/// Variables: an ordered JSON-like mapping (inventory, play, task, registered, facts).
pub type Vars = serde_json::Map<String, Json>;

/// Ansible's truthiness for a boolean option: JSON booleans, numbers (0 is false) and the
/// strings Ansible's `boolean()` accepts.
pub fn json_bool(v: &Json) -> Option<bool> {
    match v {
        Json::Bool(b) => Some(*b),
        Json::Number(n) => n.as_i64().map(|i| i != 0),
        Json::String(s) => crate::yaml::parse_bool_str(s.trim()),
        _ => None,
    }
}

/// A value as text: a string as it is, anything else as JSON.
pub fn text(v: &Json) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_and_text() {
        assert_eq!(json_bool(&json!("yes")), Some(true));
        assert_eq!(json_bool(&json!(0)), Some(false));
        assert_eq!(json_bool(&json!("maybe")), None);
        assert_eq!(text(&json!("a")), "a");
        assert_eq!(text(&json!(22)), "22");
    }
}
