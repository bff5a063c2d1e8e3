//! Python literals, as Ansible's INI inventory reads values with `ast.literal_eval`:
//! numbers (`22`, `0x1F`, `1_000`, `1.5e3`), strings in any quotes (adjacent ones join),
//! `True`/`False`/`None`, lists, tuples and sets (as lists), dicts, and a sign on a number.
//! Anything else is not a literal, and Ansible keeps the text as a string.

use serde_json::{Map, Number, Value as Json};

/// The value of `text` as Python would read it, or `None` when it is not a literal.
pub fn literal_eval(text: &str) -> Option<Json> {
    let mut p = Parser { s: text.as_bytes(), text, i: 0, depth: 0 };
    p.skip_space();
    let v = p.value()?;
    p.skip_space();
    (p.i == p.s.len()).then_some(v)
}

/// Nested containers deeper than this are not read (Python's own parser has a limit too).
const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Spaces, and a `#` comment to the end (Python's tokenizer drops comments).
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        if self.peek() == Some(b'#') {
            self.i = self.s.len();
        }
    }

    fn value(&mut self) -> Option<Json> {
        match self.peek()? {
            b'[' => self.sequence(b']'),
            b'(' => self.sequence(b')'),
            b'{' => self.braces(),
            b'\'' | b'"' => self.strings(),
            b'-' | b'+' => {
                // One sign, on a number (literal_eval's rule; `--3` is not a literal).
                let negative = self.peek() == Some(b'-');
                self.i += 1;
                self.skip_space();
                if !self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'.') {
                    return None;
                }
                match self.number()? {
                    Json::Number(n) if negative => negate(&n),
                    other => Some(other),
                }
            }
            c if c.is_ascii_digit() || c == b'.' => self.number(),
            c if c.is_ascii_alphabetic() || c == b'_' => self.name_or_prefixed_string(),
            _ => None,
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// `[a, b]` or `(a, b)`: a list (`(a)` is just `a`, `(a,)` a one-item list).
    fn sequence(&mut self, close: u8) -> Option<Json> {
        self.enter()?;
        self.i += 1;
        let mut items = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_space();
            if self.peek()? == close {
                self.i += 1;
                break;
            }
            items.push(self.value()?);
            self.skip_space();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    trailing_comma = true;
                }
                c if c == close => {
                    self.i += 1;
                    trailing_comma = false;
                    break;
                }
                _ => return None,
            }
        }
        self.depth -= 1;
        if close == b')' && items.len() == 1 && !trailing_comma {
            return items.pop();
        }
        Some(Json::Array(items))
    }

    /// After an item: whether another follows (`, x`), or the container closes (`close`, or
    /// `, close`); `None` for anything else.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.skip_space();
        match self.peek()? {
            b',' => {
                self.i += 1;
                self.skip_space();
                if self.peek()? == close {
                    self.i += 1;
                    return Some(false);
                }
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// `{k: v}` (a dict; keys become strings as in JSON) or `{a, b}` (a set: a list).
    fn braces(&mut self) -> Option<Json> {
        self.enter()?;
        self.i += 1;
        self.skip_space();
        if self.peek()? == b'}' {
            self.i += 1;
            self.depth -= 1;
            return Some(Json::Object(Map::new()));
        }
        let first = self.value()?;
        self.skip_space();
        let out = if self.peek()? == b':' {
            let mut map = Map::new();
            let mut key = first;
            loop {
                self.i += 1; // ':'
                self.skip_space();
                let value = self.value()?;
                map.insert(key_string(&key)?, value);
                if !self.more(b'}')? {
                    break;
                }
                key = self.value()?;
                self.skip_space();
                if self.peek()? != b':' {
                    return None;
                }
            }
            Json::Object(map)
        } else {
            let mut items = vec![first];
            while self.more(b'}')? {
                let v = self.value()?;
                if !items.contains(&v) {
                    items.push(v);
                }
            }
            Json::Array(items)
        };
        self.depth -= 1;
        Some(out)
    }

    /// `True`, `False`, `None`, or a prefixed string (`u'x'`, `r'x'`, `b'x'`).
    fn name_or_prefixed_string(&mut self) -> Option<Json> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
            self.i += 1;
        }
        let word = &self.text[start..self.i];
        if matches!(self.peek(), Some(b'\'' | b'"')) {
            let lower = word.to_ascii_lowercase();
            if matches!(lower.as_str(), "u" | "r" | "b" | "br" | "rb") {
                self.i = start;
                return self.strings();
            }
            return None;
        }
        match word {
            "True" => Some(Json::Bool(true)),
            "False" => Some(Json::Bool(false)),
            "None" => Some(Json::Null),
            _ => None,
        }
    }

    /// One or more adjacent string literals, joined.
    fn strings(&mut self) -> Option<Json> {
        let mut out = String::new();
        loop {
            self.skip_space();
            let start = self.i;
            let mut raw = false;
            while let Some(c) = self.peek() {
                match c.to_ascii_lowercase() {
                    b'r' => raw = true,
                    b'u' | b'b' => {}
                    _ => break,
                }
                self.i += 1;
            }
            let Some(quote @ (b'\'' | b'"')) = self.peek() else {
                self.i = start;
                break;
            };
            let triple = self.s[self.i..].starts_with(&[quote; 3]);
            self.i += if triple { 3 } else { 1 };
            out.push_str(&self.string_body(quote, triple, raw)?);
        }
        Some(Json::String(out))
    }

    fn string_body(&mut self, quote: u8, triple: bool, raw: bool) -> Option<String> {
        let mut out = String::new();
        loop {
            let rest = &self.text[self.i..];
            let c = rest.chars().next()?;
            if c as u32 == quote as u32 && (!triple || rest.as_bytes().starts_with(&[quote; 3])) {
                self.i += if triple { 3 } else { 1 };
                return Some(out);
            }
            if c == '\n' && !triple {
                return None;
            }
            if c == '\\' {
                let next = rest[1..].chars().next()?;
                self.i += 1 + next.len_utf8();
                if raw {
                    out.push('\\');
                    out.push(next);
                    continue;
                }
                match next {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '\\' | '\'' | '"' => out.push(next),
                    '\n' => {}
                    'x' | 'u' | 'U' => {
                        let len = match next {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex = self.text.get(self.i..self.i + len)?;
                        out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                        self.i += len;
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                continue;
            }
            out.push(c);
            self.i += c.len_utf8();
        }
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.')) {
            // An exponent's sign belongs to the number.
            if matches!(self.peek(), Some(b'e' | b'E'))
                && !self.text[start..self.i].starts_with("0x")
                && matches!(self.s.get(self.i + 1), Some(b'+' | b'-'))
            {
                self.i += 1;
            }
            self.i += 1;
        }
        let word = &self.text[start..self.i];
        if word.starts_with('_') || word.ends_with('_') || word.contains("__") {
            return None;
        }
        let clean = word.replace('_', "");
        let lower = clean.to_ascii_lowercase();
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(digits) = lower.strip_prefix(prefix) {
                return int(i128::from_str_radix(digits, radix).ok()?);
            }
        }
        if lower.chars().all(|c| c.is_ascii_digit()) {
            // Python refuses leading zeros in a non-zero decimal ("0777").
            if lower.len() > 1 && lower.starts_with('0') && lower.chars().any(|c| c != '0') {
                return None;
            }
            return int(lower.parse().ok()?);
        }
        if lower.ends_with('j') {
            return None;
        }
        let f: f64 = lower.parse().ok()?;
        Number::from_f64(f).map(Json::Number)
    }
}

fn int(n: i128) -> Option<Json> {
    if let Ok(v) = i64::try_from(n) {
        return Some(Json::from(v));
    }
    u64::try_from(n).ok().map(Json::from)
}

fn negate(n: &Number) -> Option<Json> {
    if let Some(i) = n.as_i64() {
        return Some(Json::from(i.checked_neg()?));
    }
    Number::from_f64(-n.as_f64()?).map(Json::Number)
}

/// A dict key as JSON has it: strings as they are, numbers and the rest as Python prints them.
fn key_string(key: &Json) -> Option<String> {
    Some(match key {
        Json::String(s) => s.clone(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Null => "None".into(),
        Json::Number(n) => n.to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_literals() {
        for (text, want) in [
            ("22", json!(22)),
            ("-3", json!(-3)),
            ("0x1F", json!(31)),
            ("0o17", json!(15)),
            ("1_000", json!(1000)),
            ("0", json!(0)),
            ("00", json!(0)),
            ("1.5", json!(1.5)),
            ("1e3", json!(1000.0)),
            ("2.5E-1", json!(0.25)),
            (".5", json!(0.5)),
            ("True", json!(true)),
            ("None", json!(null)),
            ("'a b'", json!("a b")),
            ("\"x\\ty\"", json!("x\ty")),
            ("r'a\\n'", json!("a\\n")),
            ("'a' 'b'", json!("ab")),
            ("u'ü'", json!("ü")),
            ("[1, 'two', [3]]", json!([1, "two", [3]])),
            ("(1, 2)", json!([1, 2])),
            ("(1,)", json!([1])),
            ("(1)", json!(1)),
            ("{'a': 1, 2: [True]}", json!({"a": 1, "2": [true]})),
            ("{1, 2, 1}", json!([1, 2])),
            ("{}", json!({})),
            ("[]", json!([])),
            ("8080 # a comment", json!(8080)),
            ("'a#b' # c", json!("a#b")),
        ] {
            assert_eq!(literal_eval(text), Some(want), "{text}");
        }
    }

    #[test]
    fn not_literals_stay_text() {
        for text in [
            "--3", "-True", "yes", "10.0.0.1", "0777", "07", "abc", "1+2", "[1, 2", "'open", "x=1", "1_", "{'a' 1}", "f'x'", "1j", "",
            "--", "inf",
        ] {
            assert_eq!(literal_eval(text), None, "{text}");
        }
        assert_eq!(literal_eval(&"[".repeat(1000)), None, "deep nesting is refused, not a stack overflow");
    }
}
