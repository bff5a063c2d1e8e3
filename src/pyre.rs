//! Python's `re`, as Ansible's modules (`lineinfile`'s `regexp`, `backrefs`) and filters
//! (`regex_replace`) use it, on the `regex` crate: the same pattern syntax for what both
//! have, a clear error for what `regex` lacks (look-around, back-references), and Python's
//! replacement templates (`\1`, `\g<1>`, `\g<name>`).

use regex::{Captures, Regex};

/// Compiles a Python pattern; `what` names it in the error (`regexp`, `insertafter`...).
pub fn compile(pattern: &str, what: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| {
        let unsupported = ["(?=", "(?!", "(?<=", "(?<!", "(?P="].iter().any(|s| pattern.contains(s))
            || pattern.as_bytes().windows(2).any(|w| w[0] == b'\\' && w[1].is_ascii_digit() && w[1] != b'0');
        if unsupported {
            format!("{what} '{pattern}' uses look-around or a back-reference, which gafix's regular expressions do not support")
        } else {
            format!("{what} '{pattern}' is not a valid regular expression: {}", e.to_string().lines().last().unwrap_or(""))
        }
    })
}

/// Python's `Match.expand`: `\1`..`\99` and `\g<N>`/`\g<name>` are groups (empty when a
/// group did not take part), `\n`, `\t`, `\\` and the other escapes Python knows are
/// characters; any other text is literal.
pub fn expand(template: &str, caps: &Captures) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let group = |caps: &Captures, name: &str| -> Result<String, String> {
        let m = match name.parse::<usize>() {
            Ok(i) if i < caps.len() => caps.get(i),
            Ok(i) => return Err(format!("invalid group reference {i}")),
            Err(_) => caps.name(name),
        };
        Ok(m.map(|m| m.as_str().to_string()).unwrap_or_default())
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(d) if d.is_ascii_digit() => {
                let mut n = d.to_string();
                if let Some(&e) = chars.peek().filter(|e| e.is_ascii_digit()) {
                    n.push(e);
                    chars.next();
                }
                out.push_str(&group(caps, &n)?);
            }
            Some('g') if chars.peek() == Some(&'<') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                if name.parse::<usize>().is_err() && caps.name(&name).is_none() {
                    return Err(format!("unknown group name '{name}'"));
                }
                out.push_str(&group(caps, &name)?);
            }
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok(out)
}

/// Python's `re.sub(pattern, template, text)`: every match replaced.
pub fn replace_all(re: &Regex, text: &str, template: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let m = caps.get(0).expect("group 0 is the match");
        out.push_str(&text[last..m.start()]);
        out.push_str(&expand(template, &caps)?);
        last = m.end();
    }
    out.push_str(&text[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_templates_as_python_reads_them() {
        let re = compile(r"^(?P<key>\w+)\s*=\s*(\w+)?", "regexp").unwrap();
        let caps = re.captures("Port = 22").unwrap();
        assert_eq!(expand(r"\1 \2", &caps).unwrap(), "Port 22");
        assert_eq!(expand(r"\g<key>=\g<2>\n", &caps).unwrap(), "Port=22\n");
        assert_eq!(expand(r"a\\b \d", &caps).unwrap(), r"a\b \d");
        let caps = re.captures("Port =").unwrap();
        assert_eq!(expand(r"[\2]", &caps).unwrap(), "[]", "a group that took no part is empty");
        assert!(expand(r"\5", &caps).is_err());
        assert!(expand(r"\g<nope>", &caps).is_err());
        assert_eq!(replace_all(&compile(r"(\d+)", "x").unwrap(), "a1 b22", r"<\1>").unwrap(), "a<1> b<22>");
    }

    #[test]
    fn what_the_regex_crate_lacks_is_named() {
        let e = compile(r"^foo(?!bar)", "regexp").unwrap_err();
        assert!(e.contains("look-around"), "{e}");
        let e = compile(r"(a)\1", "regexp").unwrap_err();
        assert!(e.contains("back-reference"), "{e}");
        let e = compile(r"([a-", "insertafter").unwrap_err();
        assert!(e.starts_with("insertafter '([a-' is not a valid regular expression"), "{e}");
    }
}
