//! Ansible host patterns (`--limit`, a play's `hosts:`): unions, `&` intersections, `!`
//! exclusions, fnmatch globs, `~regex`, subscripts and `@file` host lists.

use std::collections::HashSet;
use std::path::PathBuf;

use regex::Regex;

use super::Inventory;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("host pattern '{0}' matches no host or group in the inventory")]
    NoMatch(String),
    #[error("invalid host pattern '{pattern}': {reason}")]
    Invalid { pattern: String, reason: String },
    #[error("cannot read host list {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

/// Splits a pattern string on commas, or else on colons that are not inside `[...]`.
pub fn split(pattern: &str) -> Vec<String> {
    let pattern = pattern.trim();
    let parts: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_string).collect()
    } else if looks_like_ipv6(pattern) {
        vec![pattern.to_string()]
    } else {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut depth = 0;
        for c in pattern.chars() {
            match c {
                '[' => {
                    depth += 1;
                    current.push(c)
                }
                ']' => {
                    depth -= 1;
                    current.push(c)
                }
                ':' if depth == 0 => parts.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        parts.push(current);
        parts
    };
    parts.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

fn looks_like_ipv6(p: &str) -> bool {
    p.matches(':').count() >= 2 && p.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

/// Plain patterns first, then intersections, then exclusions; only `&`/`!` imply `all`.
fn order(patterns: Vec<String>) -> Vec<String> {
    let (mut plain, mut and, mut not) = (Vec::new(), Vec::new(), Vec::new());
    for p in patterns {
        if p.starts_with('!') {
            not.push(p)
        } else if p.starts_with('&') {
            and.push(p)
        } else {
            plain.push(p)
        }
    }
    if plain.is_empty() {
        plain.push("all".into());
    }
    plain.into_iter().chain(and).chain(not).collect()
}

/// Expands `@file` entries into the host names the file lists (a retry file).
fn expand_files(patterns: Vec<String>) -> Result<Vec<String>, PatternError> {
    let mut out = Vec::new();
    for p in patterns {
        if let Some(file) = p.strip_prefix('@') {
            let path = PathBuf::from(file);
            let text = std::fs::read_to_string(&path).map_err(|e| PatternError::File { path: path.clone(), reason: e.to_string() })?;
            out.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string));
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// The hosts a pattern selects, in inventory order. A term that matches nothing (and is not
/// the name of an empty group) is an error naming it.
pub fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>, PatternError> {
    let patterns = order(expand_files(split(pattern))?);
    // Ordered and hashed: `all` of a 100,000-host inventory is selected in linear time.
    let mut hosts: indexmap::IndexSet<String> = indexmap::IndexSet::new();
    for p in &patterns {
        if inv.hosts.contains_key(p.as_str()) {
            hosts.insert(p.clone());
            continue;
        }
        let (kind, body) = match p.as_bytes()[0] {
            b'!' => ('!', &p[1..]),
            b'&' => ('&', &p[1..]),
            _ => ('+', &p[..]),
        };
        let matched = match_one(inv, body)?;
        if matched.is_empty() && !inv.groups.contains_key(body) && !is_localhost(body) {
            return Err(PatternError::NoMatch(body.to_string()));
        }
        match kind {
            '!' => {
                let that: HashSet<&String> = matched.iter().collect();
                hosts.retain(|h| !that.contains(h));
            }
            '&' => {
                let that: HashSet<&String> = matched.iter().collect();
                hosts.retain(|h| that.contains(h));
            }
            _ => hosts.extend(matched),
        }
    }
    Ok(hosts.into_iter().collect())
}

fn is_localhost(p: &str) -> bool {
    matches!(p, "localhost" | "127.0.0.1" | "::1")
}

/// `name[0]`, `name[1:3]`, `name[-1]`, `name[2:]` (not for `~regex`).
fn split_subscript(pattern: &str) -> (&str, Option<(i64, Option<i64>)>) {
    if pattern.starts_with('~') || !pattern.ends_with(']') {
        return (pattern, None);
    }
    let Some(open) = pattern.rfind('[') else {
        return (pattern, None);
    };
    if open == 0 {
        return (pattern, None);
    }
    let inner = &pattern[open + 1..pattern.len() - 1];
    let base = &pattern[..open];
    if let Ok(idx) = inner.parse::<i64>() {
        return (base, Some((idx, None)));
    }
    if let Some((start, end)) = inner.split_once([':', '-']) {
        if let Ok(start) = start.parse::<u64>() {
            if end.is_empty() {
                return (base, Some((start as i64, Some(-1))));
            }
            if let Ok(end) = end.parse::<u64>() {
                return (base, Some((start as i64, Some(end as i64))));
            }
        }
    }
    (pattern, None)
}

fn apply_subscript(hosts: Vec<String>, subscript: Option<(i64, Option<i64>)>) -> Vec<String> {
    let Some((start, end)) = subscript else {
        return hosts;
    };
    let len = hosts.len() as i64;
    match end {
        // Like Ansible, an end of 0 reads as "no end": a single element.
        Some(end) if end != 0 => {
            let end = if end == -1 { len - 1 } else { end };
            let (s, e) = (start.max(0) as usize, (end + 1).clamp(0, len) as usize);
            if s >= e {
                Vec::new()
            } else {
                hosts[s..e].to_vec()
            }
        }
        _ => {
            let idx = if start < 0 { len + start } else { start };
            if (0..len).contains(&idx) {
                vec![hosts[idx as usize].clone()]
            } else {
                Vec::new()
            }
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, PatternError> {
    let source = match pattern.strip_prefix('~') {
        // Python's re.match anchors at the start only.
        Some(re) => format!("^(?:{re})"),
        None => format!("^(?:{})$", fnmatch_to_regex(pattern)),
    };
    Regex::new(&source).map_err(|e| PatternError::Invalid { pattern: pattern.to_string(), reason: e.to_string() })
}

/// Python's `fnmatch.translate`: `*`, `?`, `[seq]`, `[!seq]`.
pub fn fnmatch_to_regex(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                } else {
                    let mut class: String = chars[i..j].iter().collect();
                    class = class.replace('\\', "\\\\");
                    i = j + 1;
                    if let Some(rest) = class.strip_prefix('!') {
                        class = format!("^{rest}");
                    } else if class.starts_with('^') {
                        class = format!("\\{class}");
                    }
                    out.push('[');
                    out.push_str(&class.replace('[', "\\["));
                    out.push(']');
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

/// One term: groups it names or matches, plus hosts when it is a glob/regex or no group matched.
fn match_one(inv: &Inventory, pattern: &str) -> Result<Vec<String>, PatternError> {
    let (base, subscript) = split_subscript(pattern);
    let regex = compile(base)?;
    let mut results: indexmap::IndexSet<String> = indexmap::IndexSet::new();
    let matching_groups: Vec<&String> = inv.groups.keys().filter(|g| regex.is_match(g)).collect();
    for g in &matching_groups {
        results.extend(inv.hosts_of_group(g));
    }
    let special = base.starts_with('~') || base.contains(['.', '?', '*', '[']);
    if matching_groups.is_empty() || special {
        for h in inv.hosts.keys().filter(|h| regex.is_match(h)) {
            if !results.contains(h) {
                results.insert(h.clone());
            }
        }
    }
    Ok(apply_subscript(results.into_iter().collect(), subscript))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn inv() -> Inventory {
        let text = "
all:
  hosts:
    lone:
  children:
    web:
      hosts:
        web[1:4]:
    db:
      hosts:
        db1:
        db2:
        web1:
    prod:
      children:
        web:
        db:
    empty:
";
        let node = crate::yaml::parse_str(text, Path::new("inv.yml")).unwrap();
        Inventory::from_yaml(node.as_ref(), Path::new("inv.yml")).unwrap()
    }

    fn sel(p: &str) -> Vec<String> {
        select(&inv(), p).unwrap()
    }

    #[test]
    fn splitting() {
        assert_eq!(split("a:b:!c"), ["a", "b", "!c"]);
        assert_eq!(split("a, b ,&c"), ["a", "b", "&c"]);
        assert_eq!(split("web[0:1]:db"), ["web[0:1]", "db"]);
        assert_eq!(split("fe80::1"), ["fe80::1"]);
    }

    #[test]
    fn union_intersection_exclusion() {
        assert_eq!(sel("web:db"), ["web1", "web2", "web3", "web4", "db1", "db2"]);
        assert_eq!(sel("web:&db"), ["web1"]);
        assert_eq!(sel("prod:!web"), ["db1", "db2"]);
        assert_eq!(sel("!web"), ["lone", "db1", "db2"]);
        assert_eq!(sel("&db"), ["web1", "db1", "db2"]);
        assert_eq!(sel("!db:web"), ["web2", "web3", "web4"]);
    }

    #[test]
    fn all_globs_and_regexes() {
        assert_eq!(sel("all").len(), 7);
        assert_eq!(sel("*").len(), 7);
        assert_eq!(sel("web[!12]"), ["web3", "web4"]);
        assert_eq!(sel("web?"), ["web1", "web2", "web3", "web4"]);
        assert_eq!(sel("d*"), ["db1", "db2", "web1"]);
        assert_eq!(sel("~web[13]"), ["web1", "web3"]);
        assert_eq!(sel("~^d"), ["db1", "db2", "web1"]);
    }

    #[test]
    fn subscripts() {
        assert_eq!(sel("web[0]"), ["web1"]);
        assert_eq!(sel("web[-1]"), ["web4"]);
        assert_eq!(sel("web[1:2]"), ["web2", "web3"]);
        assert_eq!(sel("web[2:]"), ["web3", "web4"]);
        assert_eq!(select(&inv(), "web[9]"), Err(PatternError::NoMatch("web[9]".into())));
    }

    #[test]
    fn no_match_is_an_error_but_an_empty_group_is_not() {
        assert_eq!(select(&inv(), "nosuch"), Err(PatternError::NoMatch("nosuch".into())));
        assert_eq!(select(&inv(), "web:!nosuch"), Err(PatternError::NoMatch("nosuch".into())));
        assert!(sel("empty").is_empty());
    }

    #[test]
    fn retry_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.retry");
        std::fs::write(&file, "web2\ndb1\n").unwrap();
        assert_eq!(sel(&format!("@{}", file.display())), ["web2", "db1"]);
        assert!(matches!(select(&inv(), "@/nonexistent/x.retry"), Err(PatternError::File { .. })));
    }

    #[test]
    fn fnmatch_translation() {
        assert_eq!(fnmatch_to_regex("a*b?"), "a.*b.");
        assert_eq!(fnmatch_to_regex("x[!0-3]"), "x[^0-3]");
        assert_eq!(fnmatch_to_regex("a.b"), "a\\.b");
    }
}
