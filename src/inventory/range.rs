//! Host ranges as Ansible expands them: `web[01:20].example.com`, `db-[a:f]`, `[1:10:2]`,
//! and the `host:port` shorthand.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("host range must be begin:end or begin:end:step, found '[{0}]'")]
    Shape(String),
    #[error("host range must specify an end value in '[{0}]'")]
    NoEnd(String),
    #[error("host range must specify equal-length begin and end formats in '[{0}]'")]
    Width(String),
    #[error("host range must have begin <= end in '[{0}]'")]
    Order(String),
    #[error("host range bound '{bound}' is neither a number nor a letter in '[{range}]'")]
    Bound { bound: String, range: String },
    #[error("host range step must be a positive number in '[{0}]'")]
    Step(String),
    #[error("invalid port '{0}'")]
    Port(String),
    #[error("host range '{pattern}' expands to {count} hosts, more than the {MAX_HOSTS} a pattern may name")]
    TooMany { pattern: String, count: u128 },
}

/// How many hosts one range pattern may expand to: far more than any fleet, far less than
/// what would exhaust memory.
pub const MAX_HOSTS: u128 = 1_000_000;

/// Splits `name:port` (and `[v6]:port`); a bare IPv6 address has no port.
pub fn split_port(pattern: &str) -> Result<(&str, Option<u16>), RangeError> {
    if let Some(rest) = pattern.strip_prefix('[') {
        if let Some((addr, tail)) = rest.split_once(']') {
            // `[::1]:22` is an address with a port; `[01:10].x` is a range.
            if addr.contains("::") || addr.matches(':').count() > 1 {
                return match tail.strip_prefix(':') {
                    Some(port) => Ok((addr, Some(port.parse().map_err(|_| RangeError::Port(port.into()))?))),
                    None if tail.is_empty() => Ok((addr, None)),
                    None => Ok((pattern, None)),
                };
            }
        }
    }
    // Colons inside [..] belong to ranges.
    let mut depth = 0;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    match colons.as_slice() {
        [i] => {
            let port = &pattern[i + 1..];
            let port = port.parse::<u16>().map_err(|_| RangeError::Port(port.into()))?;
            Ok((&pattern[..*i], Some(port)))
        }
        _ => Ok((pattern, None)),
    }
}

/// Expands every `[begin:end(:step)]` in a host pattern, left to right.
pub fn expand(pattern: &str) -> Result<Vec<String>, RangeError> {
    let (Some(open), Some(close)) = (pattern.find('['), pattern.find(']')) else {
        return Ok(vec![pattern.to_string()]);
    };
    if close < open {
        return Ok(vec![pattern.to_string()]);
    }
    let (head, range, tail) = (&pattern[..open], &pattern[open + 1..close], &pattern[close + 1..]);
    let bounds: Vec<&str> = range.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(RangeError::Shape(range.into()));
    }
    let begin = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(RangeError::NoEnd(range.into()));
    }
    let step: usize = match bounds.get(2) {
        Some(s) => s.parse().ok().filter(|n| *n > 0).ok_or_else(|| RangeError::Step(range.into()))?,
        None => 1,
    };
    let width = if begin.len() > 1 && begin.starts_with('0') {
        if begin.len() != end.len() {
            return Err(RangeError::Width(range.into()));
        }
        begin.len()
    } else {
        0
    };
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let items: Vec<String> = match (LETTERS.find(begin).filter(|_| begin.len() == 1), LETTERS.find(end).filter(|_| end.len() == 1)) {
        (Some(b), Some(e)) => {
            if b > e {
                return Err(RangeError::Order(range.into()));
            }
            LETTERS[b..=e].chars().step_by(step).map(String::from).collect()
        }
        _ => {
            let parse = |s: &str| s.parse::<u64>().map_err(|_| RangeError::Bound { bound: s.into(), range: range.into() });
            let (b, e) = (parse(begin)?, parse(end)?);
            // Counted before anything is built: `h[0:9999999999]` is an error, not an
            // out-of-memory abort.
            let count = if e < b { 0 } else { u128::from((e - b) / step as u64) + 1 };
            if count > MAX_HOSTS {
                return Err(RangeError::TooMany { pattern: pattern.into(), count });
            }
            (b..=e).step_by(step).map(|n| format!("{n:0width$}")).collect()
        }
    };
    let mut hosts = Vec::new();
    for item in &items {
        let expanded = expand(&format!("{head}{item}{tail}"))?;
        // Every item has the same tail, so the first one tells the whole count.
        let count = items.len() as u128 * expanded.len() as u128;
        if count > MAX_HOSTS {
            return Err(RangeError::TooMany { pattern: pattern.into(), count });
        }
        hosts.extend(expanded);
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ranges_keep_zero_padding() {
        assert_eq!(expand("web[01:03].example.com").unwrap(), ["web01.example.com", "web02.example.com", "web03.example.com"]);
        assert_eq!(expand("n[8:10]").unwrap(), ["n8", "n9", "n10"]);
    }

    #[test]
    fn letter_ranges_steps_and_nesting() {
        assert_eq!(expand("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(expand("h[1:10:4]").unwrap(), ["h1", "h5", "h9"]);
        assert_eq!(expand("r[1:2]c[a:b]").unwrap(), ["r1ca", "r1cb", "r2ca", "r2cb"]);
        assert_eq!(expand("x[:2]").unwrap(), ["x0", "x1", "x2"]);
    }

    #[test]
    fn bad_ranges_are_errors() {
        assert_eq!(expand("w[01:5]"), Err(RangeError::Width("01:5".into())));
        assert_eq!(expand("w[c:a]"), Err(RangeError::Order("c:a".into())));
        assert_eq!(expand("w[1:]"), Err(RangeError::NoEnd("1:".into())));
        assert!(matches!(expand("w[1]"), Err(RangeError::Shape(_))));
        assert!(matches!(expand("w[1:x1]"), Err(RangeError::Bound { .. })));
    }

    #[test]
    fn absurd_ranges_are_refused_with_their_count() {
        let started = std::time::Instant::now();
        let err = expand("h[0:9999999999]").unwrap_err();
        assert_eq!(err, RangeError::TooMany { pattern: "h[0:9999999999]".into(), count: 10_000_000_000 });
        assert!(err.to_string().contains("10000000000 hosts"), "{err}");
        assert_eq!(
            expand("a[0:1999]b[0:999]"),
            Err(RangeError::TooMany { pattern: "a[0:1999]b[0:999]".into(), count: 2_000_000 }),
            "the product counts too"
        );
        assert!(matches!(expand("h[0:18446744073709551615]"), Err(RangeError::TooMany { .. })));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(expand("h[0:99999]").unwrap().len(), 100_000);
    }

    #[test]
    fn ports() {
        assert_eq!(split_port("host:2222").unwrap(), ("host", Some(2222)));
        assert_eq!(split_port("web[01:02]:22").unwrap(), ("web[01:02]", Some(22)));
        assert_eq!(split_port("web[01:02]").unwrap(), ("web[01:02]", None));
        assert_eq!(split_port("[::1]:2200").unwrap(), ("::1", Some(2200)));
        assert_eq!(split_port("fe80::1").unwrap(), ("fe80::1", None));
        assert!(split_port("host:http").is_err());
    }
}
