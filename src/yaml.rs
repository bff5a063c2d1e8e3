//! YAML as Ansible reads it: YAML 1.1 scalars (PyYAML's `yes`/`no`/`on`/`off`, `0755` octal,
//! `1:30` sexagesimal), merge keys, anchors, and a source position on every node so that
//! every later error can say `file:line:column`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where something was written: file, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: &Arc<Path>, line: usize, column: usize) -> Self {
        Location { file: Arc::clone(file), line, column }
    }

    /// A location for values that did not come from a file (command line, built-ins).
    pub fn synthetic(what: &str) -> Self {
        Location { file: Arc::from(Path::new(what)), line: 0, column: 0 }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    /// A string tagged `!unsafe`: used as written, never templated.
    Unsafe(String),
    Seq(Vec<Node>),
    /// Entries in file order; a duplicated key keeps its first place and its last value.
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(_) | Value::Unsafe(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) | Value::Unsafe(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The key as Ansible (Python) would print it.
    pub fn key_string(&self) -> String {
        match &self.value {
            Value::String(s) | Value::Unsafe(s) => s.clone(),
            Value::Null => "None".into(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            _ => format!("<{}>", self.type_name()),
        }
    }

    /// Looks up a key in a mapping node.
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// Ansible's truthiness for a boolean option: YAML booleans and the strings
    /// Ansible's `boolean()` accepts.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Bool(b) => Some(*b),
            Value::Int(1) => Some(true),
            Value::Int(0) => Some(false),
            Value::String(s) => parse_bool_str(s),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            Value::String(s) => J::String(s.clone()),
            Value::Unsafe(s) => J::String(format!("{UNSAFE_MARK}{s}")),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.key_string(), v.to_json());
                }
                J::Object(map)
            }
        }
    }
}

/// Marks a JSON string that came from a `!unsafe` value: the templar uses it as written
/// (and strips the mark); so does every display of variables. Control characters make it
/// impossible to write by accident.
pub const UNSAFE_MARK: &str = "\u{1}gafix:unsafe\u{2}";

/// A value with the `!unsafe` marks taken out, for display and for template contexts.
pub fn strip_unsafe_marks(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => serde_json::Value::String(s.strip_prefix(UNSAFE_MARK).unwrap_or(s).to_string()),
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(strip_unsafe_marks).collect()),
        serde_json::Value::Object(map) => serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), strip_unsafe_marks(v))).collect()),
        other => other.clone(),
    }
}

/// The strings Ansible's `boolean()` filter accepts.
pub fn parse_bool_str(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" | "y" | "t" => Some(true),
        "no" | "off" | "false" | "0" | "n" | "f" => Some(false),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{location}: invalid YAML: {message}")]
    Syntax { location: Location, message: String },
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// How deep mappings and lists may nest: far beyond any real file, well within the stack.
pub const MAX_DEPTH: usize = 256;

/// How many nodes aliases may add in one file (a "billion laughs" document adds billions).
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// A warning from the loader (a duplicate key), with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlWarning {
    pub location: Location,
    pub message: String,
}

thread_local! {
    static WARNINGS: std::cell::RefCell<Vec<YamlWarning>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The warnings of every file loaded on this thread since the last call.
pub fn take_warnings() -> Vec<YamlWarning> {
    WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

#[cfg(test)]
impl YamlError {
    fn location(&self) -> Option<&Location> {
        match self {
            YamlError::Syntax { location, .. } => Some(location),
            YamlError::Io { .. } => None,
        }
    }
}

pub fn load_file(path: &Path) -> Result<Option<Node>, YamlError> {
    let bytes = std::fs::read(path).map_err(|source| YamlError::Io { path: path.to_path_buf(), source })?;
    parse_bytes(&bytes, path)
}

/// Parses a file's bytes (read elsewhere): UTF-8 is checked, with the place of a bad byte.
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Option<Node>, YamlError> {
    let bytes = bytes.to_vec();
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        YamlError::Syntax {
            location: Location::new(&Arc::from(path), line, column),
            message: format!("invalid UTF-8 at byte offset {} (files must be UTF-8)", valid.len()),
        }
    })?;
    parse_str(&text, path)
}

/// Parses the first document of `text`; `None` for an empty file.
pub fn parse_str(text: &str, path: &Path) -> Result<Option<Node>, YamlError> {
    let file: Arc<Path> = Arc::from(path);
    let mut builder = Builder {
        file: Arc::clone(&file),
        stack: Vec::new(),
        anchors: Vec::new(),
        documents: Vec::new(),
        error: None,
        alias_nodes: 0,
        warnings: Vec::new(),
    };
    // Events one by one (the parser's own `load` recurses once per nesting level, which a
    // deep document turns into a stack overflow), the first document only.
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError::Syntax {
            location: Location::new(&file, e.marker().line(), e.marker().col() + 1),
            message: e.info().to_string(),
        })?;
        let last = matches!(event, Event::StreamEnd | Event::DocumentEnd);
        builder.on_event(event, mark);
        if last || builder.error.is_some() {
            break;
        }
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    let warnings = std::mem::take(&mut builder.warnings);
    WARNINGS.with(|w| w.borrow_mut().extend(warnings));
    Ok(builder.documents.into_iter().next())
}

enum Frame {
    Seq { items: Vec<Node>, location: Location, anchor: usize },
    Map { entries: MapEntries, key: Option<(Node, bool)>, merges: Vec<Node>, location: Location, anchor: usize },
}

/// A mapping's entries in file order, with an index by key so that building a mapping of
/// n keys costs O(n), not O(n^2) (a 100,000-host group is one mapping).
#[derive(Default)]
struct MapEntries {
    entries: Vec<(Node, Node)>,
    index: std::collections::HashMap<String, usize>,
}

impl MapEntries {
    /// Adds an entry; a duplicated key keeps its first place and takes the new value.
    /// Returns whether the key was already there.
    fn insert(&mut self, key: Node, value: Node) -> bool {
        let name = key.key_string();
        match self.index.get(&name) {
            Some(&i) => {
                self.entries[i].1 = value;
                true
            }
            None => {
                self.index.insert(name, self.entries.len());
                self.entries.push((key, value));
                false
            }
        }
    }

    fn contains(&self, key: &Node) -> bool {
        self.index.contains_key(&key.key_string())
    }
}

struct Builder {
    file: Arc<Path>,
    stack: Vec<Frame>,
    /// Anchored nodes with their size in nodes.
    anchors: Vec<(usize, Node, usize)>,
    documents: Vec<Node>,
    error: Option<YamlError>,
    /// Nodes added by aliases so far.
    alias_nodes: usize,
    warnings: Vec<YamlWarning>,
}

/// A node's size in nodes (itself and everything below it), without recursion.
fn node_count(node: &Node) -> usize {
    let mut count = 0;
    let mut pending = vec![node];
    while let Some(n) = pending.pop() {
        count += 1;
        match &n.value {
            Value::Seq(items) => pending.extend(items.iter()),
            Value::Map(entries) => pending.extend(entries.iter().flat_map(|(k, v)| [k, v])),
            _ => {}
        }
    }
    count
}

impl Builder {
    fn location(&self, mark: Marker) -> Location {
        Location::new(&self.file, mark.line(), mark.col() + 1)
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone(), node_count(node)));
        }
    }

    /// Hands a finished node to its parent; `merge_key` marks a plain `<<` key.
    fn push(&mut self, node: Node, merge_key: bool) {
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, merges, .. }) => match key.take() {
                None => *key = Some((node, merge_key)),
                Some((_, true)) => merges.push(node),
                Some((k, false)) => {
                    let (name, location) = (k.key_string(), k.location.clone());
                    if entries.insert(k, node) {
                        self.warnings.push(YamlWarning {
                            location,
                            message: format!("duplicate key '{name}' in this mapping: the last value is used"),
                        });
                    }
                }
            },
        }
    }

    fn fail(&mut self, location: Location, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError::Syntax { location, message });
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            // The document is rejected: build nothing more (a bomb stops growing here).
            return;
        }
        let location = self.location(mark);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let merge_key = style == TScalarStyle::Plain && tag.is_none() && text == "<<";
                let value = match resolve_scalar(text, style, tag.as_ref()) {
                    Ok(v) => v,
                    Err(message) => {
                        self.fail(location.clone(), message);
                        Value::Null
                    }
                };
                let node = Node { value, location };
                self.remember(anchor, &node);
                self.push(node, merge_key);
            }
            Event::Alias(id) => match self.anchors.iter().rev().find(|(a, _, _)| *a == id) {
                Some((_, _, size)) if self.alias_nodes + size > MAX_ALIAS_NODES => self.fail(
                    location,
                    format!("aliases here expand to more than {MAX_ALIAS_NODES} nodes; refusing the document (an alias bomb?)"),
                ),
                Some((_, node, size)) => {
                    self.alias_nodes += size;
                    let mut node = node.clone();
                    node.location = location;
                    self.push(node, false)
                }
                None => self.fail(location, "alias to an unknown anchor".into()),
            },
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.fail(location, format!("lists and mappings nest deeper than {MAX_DEPTH} levels here"));
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq { items: Vec::new(), location, anchor }),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map { entries: MapEntries::default(), key: None, merges: Vec::new(), location, anchor })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, location, anchor }) => (Node { value: Value::Seq(items), location }, anchor),
                    Some(Frame::Map { entries: mut map, merges, location, anchor, .. }) => {
                        // YAML merge keys: explicit keys win over merged ones.
                        for merged in merges {
                            let sources: Vec<Node> = match merged.value {
                                Value::Map(_) => vec![merged],
                                Value::Seq(items) => items,
                                _ => {
                                    self.fail(merged.location, "a merge key (<<) needs a mapping or a list of mappings".into());
                                    continue;
                                }
                            };
                            for source in sources {
                                if let Value::Map(src) = source.value {
                                    for (k, v) in src {
                                        if !map.contains(&k) {
                                            map.insert(k, v);
                                        }
                                    }
                                }
                            }
                        }
                        // The parser marks a block mapping where its first value starts; its
                        // first key is where a reader looks for it.
                        let location = map.entries.first().map(|(k, _)| k.location.clone()).unwrap_or(location);
                        (Node { value: Value::Map(map.entries), location }, anchor)
                    }
                    None => return,
                };
                self.remember(anchor, &node);
                self.push(node, false);
            }
            Event::DocumentEnd => {}
            _ => {}
        }
    }
}

fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        let standard = tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!";
        return match (standard, tag.suffix.as_str()) {
            (true, "str") => Ok(Value::String(text)),
            (true, "null") => Ok(Value::Null),
            (true, "bool") => resolve_bool(&text).map(Value::Bool).ok_or_else(|| format!("'{text}' is not a boolean")),
            (true, "int") => resolve_int(&text).map(Value::Int).ok_or_else(|| format!("'{text}' is not an integer")),
            (true, "float") => resolve_float(&text)
                .or_else(|| resolve_int(&text).map(|i| i as f64))
                .map(Value::Float)
                .ok_or_else(|| format!("'{text}' is not a float")),
            (false, "unsafe") if tag.handle == "!" => Ok(Value::Unsafe(text)),
            (false, "vault") if tag.handle == "!" => {
                Err("'!vault' values are not supported by gafix yet: decrypt them, or pass them with -e @file".into())
            }
            // Anything else keeps the text as written.
            _ => Ok(Value::String(text)),
        };
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text));
    }
    Ok(resolve_plain(text))
}

/// PyYAML's implicit resolvers (YAML 1.1), which is what Ansible uses.
pub fn resolve_plain(text: String) -> Value {
    if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if let Some(b) = resolve_bool(&text) {
        return Value::Bool(b);
    }
    if let Some(i) = resolve_int(&text) {
        return Value::Int(i);
    }
    if let Some(f) = resolve_float(&text) {
        return Value::Float(f);
    }
    Value::String(text)
}

fn resolve_bool(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn split_sign(text: &str) -> (i64, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    }
}

fn resolve_int(text: &str) -> Option<i64> {
    let (sign, body) = split_sign(text);
    if body.is_empty() {
        return None;
    }
    let digits = |s: &str, radix: u32| -> Option<i64> {
        let clean: String = s.chars().filter(|c| *c != '_').collect();
        if clean.is_empty() || s.starts_with('_') && clean.is_empty() {
            return None;
        }
        i64::from_str_radix(&clean, radix).ok()
    };
    let magnitude = if let Some(bin) = body.strip_prefix("0b") {
        bin.chars().all(|c| matches!(c, '0' | '1' | '_')).then(|| digits(bin, 2)).flatten()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        hex.chars().all(|c| c.is_ascii_hexdigit() || c == '_').then(|| digits(hex, 16)).flatten()?
    } else if body == "0" {
        0
    } else if let Some(oct) = body.strip_prefix('0') {
        oct.chars().all(|c| matches!(c, '0'..='7' | '_')).then(|| digits(oct, 8)).flatten()?
    } else if body.contains(':') {
        sexagesimal(body)?.try_into().ok()?
    } else if body.as_bytes()[0].is_ascii_digit() && body.chars().all(|c| c.is_ascii_digit() || c == '_') {
        digits(body, 10)?
    } else {
        return None;
    };
    Some(sign * magnitude)
}

/// `190:20:30` -> 685230, as YAML 1.1 base-60 integers.
fn sexagesimal(body: &str) -> Option<i128> {
    let mut parts = body.split(':');
    let first = parts.next()?;
    if !first.starts_with(|c: char| ('1'..='9').contains(&c)) || !first.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    let mut value: i128 = first.replace('_', "").parse().ok()?;
    for part in parts {
        if part.is_empty() || part.len() > 2 || !part.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: i128 = part.parse().ok()?;
        if n > 59 {
            return None;
        }
        value = value * 60 + n;
    }
    Some(value)
}

fn resolve_float(text: &str) -> Option<f64> {
    let (sign, body) = split_sign(text);
    let sign = sign as f64;
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(sign * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if sign > 0.0 && !text.starts_with('+') => return Some(f64::NAN),
        _ => {}
    }
    // [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?  or  \.[0-9][0-9_]*([eE][-+][0-9]+)?
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(exp) = exponent {
        let digits = exp.strip_prefix(['-', '+'])?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let (int_part, frac_part) = mantissa.split_once('.')?;
    if int_part.contains(':') {
        // Base-60 float: 190:20:30.15
        let whole = sexagesimal(int_part)? as f64;
        if exponent.is_some() || !frac_part.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return None;
        }
        let frac: f64 = format!("0.{}", frac_part.replace('_', "")).parse().unwrap_or(0.0);
        return Some(sign * (whole + frac));
    }
    let int_ok = if int_part.is_empty() {
        frac_part.starts_with(|c: char| c.is_ascii_digit())
    } else {
        int_part.starts_with(|c: char| c.is_ascii_digit()) && int_part.chars().all(|c| c.is_ascii_digit() || c == '_')
    };
    if !int_ok || !frac_part.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    clean.parse::<f64>().ok().map(|f| sign * f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Node {
        parse_str(text, Path::new("t.yml")).unwrap().unwrap()
    }

    fn scalar(text: &str) -> serde_json::Value {
        parse(&format!("v: {text}\n")).get("v").unwrap().to_json()
    }

    #[test]
    fn yaml_1_1_scalars_resolve_like_pyyaml() {
        use serde_json::json;
        assert_eq!(scalar("yes"), json!(true));
        assert_eq!(scalar("Off"), json!(false));
        assert_eq!(scalar("'yes'"), json!("yes"));
        assert_eq!(scalar("y"), json!("y"));
        assert_eq!(scalar("0755"), json!(493));
        assert_eq!(scalar("0x1F"), json!(31));
        assert_eq!(scalar("0b101"), json!(5));
        assert_eq!(scalar("1_000"), json!(1000));
        assert_eq!(scalar("1:30"), json!(90));
        assert_eq!(scalar("22"), json!(22));
        assert_eq!(scalar("-7"), json!(-7));
        assert_eq!(scalar("1.5"), json!(1.5));
        assert_eq!(scalar("1e3"), json!("1e3"));
        assert_eq!(scalar("1.0e+3"), json!(1000.0));
        assert_eq!(scalar("~"), json!(null));
        assert_eq!(scalar(""), json!(null));
        assert_eq!(scalar("!!str 22"), json!("22"));
        assert_eq!(scalar("!unsafe '{{ x }}'"), json!(format!("{UNSAFE_MARK}{{{{ x }}}}")));
        assert_eq!(scalar("09"), json!("09"));
        assert_eq!(scalar("1.2.3"), json!("1.2.3"));
    }

    #[test]
    fn nodes_carry_line_and_column() {
        let doc = parse("a:\n  b: 1\n  c:\n    - x\n");
        let (key, value) = &doc.get("a").unwrap().as_map().unwrap()[1];
        assert_eq!((key.location.line, key.location.column), (3, 3));
        let item = &value.as_seq().unwrap()[0];
        assert_eq!((item.location.line, item.location.column), (4, 7));
        assert_eq!(item.location.to_string(), "t.yml:4:7");
    }

    #[test]
    fn merge_keys_and_anchors() {
        let doc = parse("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n");
        assert_eq!(doc.get("d").unwrap().to_json(), serde_json::json!({"y": 3, "x": 1}));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_with_a_located_warning() {
        take_warnings();
        assert_eq!(parse("a: 1\nb: 0\na: 2\n").to_json(), serde_json::json!({"a": 2, "b": 0}));
        let w = take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].location.line, w[0].location.column), (3, 1));
        assert!(w[0].message.contains("duplicate key 'a'"), "{w:?}");
    }

    #[test]
    fn alias_bombs_are_refused_in_bounded_time() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let err = parse_str(&text, Path::new("bomb.yml")).unwrap_err();
        assert!(err.to_string().contains("expand to more than"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // Ordinary aliases still work.
        assert_eq!(parse("a: &x [1, 2]\nb: *x\n").to_json(), serde_json::json!({"a": [1, 2], "b": [1, 2]}));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let block: String = (0..20_000).map(|i| format!("{}- \n", "  ".repeat(i))).collect();
        let err = parse_str(&block, Path::new("deep.yml")).unwrap_err();
        assert!(err.to_string().contains("nest deeper than"), "{err}");
        let flow = "[".repeat(20_000) + &"]".repeat(20_000);
        assert!(parse_str(&flow, Path::new("deep.yml")).is_err());
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_str(&ok, Path::new("ok.yml")).is_ok());
    }

    #[test]
    fn invalid_utf8_names_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yml");
        std::fs::write(&path, b"a: 1\nb: caf\xe9\n").unwrap();
        let err = load_file(&path).unwrap_err();
        assert!(err.to_string().contains("bad.yml:2:7") && err.to_string().contains("byte offset 11"), "{err}");
    }

    #[test]
    fn vault_values_are_refused_not_used_as_text() {
        let err = parse_str("pw: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n", Path::new("v.yml")).unwrap_err();
        assert!(err.to_string().contains("!vault"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let err = parse_str("a: [1, 2\nb: 3\n", Path::new("bad.yml")).unwrap_err();
        let location = err.location().unwrap();
        assert_eq!(&*location.file, Path::new("bad.yml"));
        assert!(location.line >= 1, "{err}");
        assert!(err.to_string().starts_with("bad.yml:"), "{err}");
    }

    #[test]
    fn empty_document_is_none() {
        assert!(parse_str("# nothing\n", Path::new("e.yml")).unwrap().is_none());
    }
}
