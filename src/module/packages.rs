//! The package decision apt and dnf share: which of the named packages a task must install
//! (state present) or remove (state absent), from what the host has installed.

/// The named packages, split by whether the host already has them as wanted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Not installed (or, for a pinned `name=version`, not at that version).
    pub missing: Vec<String>,
    /// Installed as wanted.
    pub satisfied: Vec<String>,
}

/// Splits `names` with `is_satisfied` (each package manager knows its own version pins).
pub fn split(names: &[String], is_satisfied: impl Fn(&str) -> bool) -> Split {
    let mut out = Split::default();
    for n in names {
        if is_satisfied(n) {
            out.satisfied.push(n.clone());
        } else {
            out.missing.push(n.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_in_order() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let s = split(&names, |n| n == "b");
        assert_eq!(s.missing, ["a", "c"]);
        assert_eq!(s.satisfied, ["b"]);
    }
}
