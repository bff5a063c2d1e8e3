//! The one way a value reaches a remote (or local) `sh` script: POSIX single quoting.
//!
//! Everything interpolated into a script that gafix sends goes through [`quote`], whatever
//! its grammar: package and unit names (also checked against strict grammars), paths,
//! command words, messages. Single quotes are the only POSIX quoting in which no character
//! is special, so the only character to handle is the quote itself.

/// Characters that need no quoting anywhere in a word. `=` and `~` are left out (assignment
/// and tilde expansion depend on position), and so is everything a shell treats specially.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | ',' | '+' | '@' | '%')
}

/// Quotes `word` so that a POSIX shell reads it back as exactly one word, byte for byte.
///
/// A NUL byte cannot be passed to a program at all (arguments are C strings): callers check
/// their input with [`check_no_nul`] first; a NUL that slips through is dropped here rather
/// than cutting the script short.
pub fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(is_plain) {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Quotes each word and joins them with spaces.
pub fn quote_all<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

/// Text that will be passed to a program must not hold NUL bytes.
pub fn check_no_nul(what: &str, text: &str) -> Result<(), String> {
    match text.find('\0') {
        Some(at) => Err(format!("{what} contains a NUL byte (at byte {at}), which no command can receive")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so that the property test needs no crate
    /// and fails the same way every time it fails.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A string drawn mostly from the characters shells care about, plus arbitrary
        /// non-NUL Unicode.
        fn string(&mut self) -> String {
            const NASTY: &[&str] = &[
                "'",
                "\"",
                "\\",
                "$",
                "$(",
                ")",
                "`",
                ";",
                "&",
                "|",
                "\n",
                "\r",
                "\t",
                " ",
                "*",
                "?",
                "[",
                "]",
                "{",
                "}",
                "~",
                "#",
                "!",
                "<",
                ">",
                "=",
                "%",
                "-",
                "--",
                "'\\''",
                "\u{1b}[31m",
                "é",
                "\u{7f}",
                "\u{1}",
            ];
            let len = (self.next() % 12) as usize;
            let mut s = String::new();
            for _ in 0..len {
                match self.next() % 3 {
                    0 => s.push_str(NASTY[(self.next() % NASTY.len() as u64) as usize]),
                    1 => s.push(char::from(b'a' + (self.next() % 26) as u8)),
                    _ => {
                        let c = char::from_u32((self.next() % 0x2_0000) as u32).filter(|c| *c != '\0').unwrap_or('x');
                        s.push(c);
                    }
                }
            }
            s
        }
    }

    /// Runs `script` through `sh -c` (as the transports do) and returns its stdout bytes.
    fn sh(script: &str) -> Vec<u8> {
        let out = std::process::Command::new("sh").arg("-c").arg(script).output().expect("sh runs");
        assert!(out.status.success(), "sh failed: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    #[test]
    fn plain_words_stay_plain_and_the_rest_is_quoted() {
        assert_eq!(quote("qemu-guest-agent"), "qemu-guest-agent");
        assert_eq!(quote("/var/run/reboot-required"), "/var/run/reboot-required");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\\''s'");
        for nasty in ["$(reboot)", "a b", "`id`", "x;y", "*", "~root", "a=b", "x\ny"] {
            assert!(quote(nasty).starts_with('\''), "{nasty:?} must be quoted");
        }
    }

    #[test]
    fn nul_is_refused_before_quoting() {
        assert!(check_no_nul("path", "/a\0b").unwrap_err().contains("byte 2"));
        assert!(check_no_nul("path", "/ab").is_ok());
    }

    /// The property: any NUL-free string, quoted into a script, comes back byte-identical
    /// from `printf %s`, also when that script is itself quoted into `sh -c` (the become
    /// and facts paths quote twice). All cases run in one `sh`, separated by NUL bytes.
    #[test]
    fn any_string_survives_quoting_into_sh_byte_for_byte() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut cases: Vec<String> = (0..400).map(|_| rng.string()).collect();
        cases.extend(
            ["", "'", "''", "\\'", "$(touch /tmp/gafix-pwned)", "`touch /tmp/gafix-pwned`", "a\nb", "-n", "%s%s", "\u{ff}\u{fe}"]
                .map(String::from),
        );
        let inner: String = cases.iter().map(|c| format!("printf '%s\\0' {}\n", quote(c))).collect();
        for script in [inner.clone(), format!("sh -c {}", quote(&inner))] {
            let out = sh(&script);
            let got: Vec<&[u8]> = out.split(|b| *b == 0).collect();
            assert_eq!(got.len(), cases.len() + 1, "one NUL-terminated answer per case");
            for (case, answer) in cases.iter().zip(got) {
                assert_eq!(answer, case.as_bytes(), "{case:?} came back changed");
            }
        }
    }
}
