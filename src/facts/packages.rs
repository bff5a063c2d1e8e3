//! Installed packages (dpkg, or rpm) and the age of apt's lists: a fragment of the probe and
//! its parser.

use serde::Serialize;

use super::{first, Change, Facts, ProbeRequest};
use crate::shell::quote_all;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PackageState {
    /// Installed version, if installed.
    pub installed: Option<String>,
}

/// Package facts are stale after a package change.
pub fn stale_after(change: Change) -> bool {
    change == Change::Packages
}

pub(super) fn probe(request: &ProbeRequest, s: &mut String) {
    if request.apt_cache_age {
        s.push_str("echo '@@apt_cache_age'; t=$(stat -c %Y /var/lib/apt/periodic/update-success-stamp 2>/dev/null || stat -c %Y /var/lib/apt/lists 2>/dev/null) && echo $(( $(date +%s) - t ))\n");
    }
    if request.packages.is_empty() {
        return;
    }
    let names = quote_all(&request.packages);
    s.push_str(&format!(
        "echo '@@dpkg'; command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${{Package}}|${{db:Status-Abbrev}}|${{Version}}\\n' -- {names} 2>/dev/null\n"
    ));
    s.push_str(&format!(
        "command -v dpkg-query >/dev/null 2>&1 || {{ echo '@@rpm'; command -v rpm >/dev/null 2>&1 && rpm -q --qf '%{{NAME}}|ii |%{{VERSION}}-%{{RELEASE}}\\n' -- {names} 2>/dev/null | grep '|'; }}\n"
    ));
}

/// Reads the `dpkg`/`rpm` and `apt_cache_age` sections; `seen` makes the first package
/// section reset every requested package to "not installed" before the lines say otherwise.
pub(super) fn parse(section: &str, lines: &[&str], request: &ProbeRequest, facts: &mut Facts, seen: &mut bool) -> bool {
    match section {
        "apt_cache_age" => facts.apt_cache_age = first(lines).parse().ok(),
        "dpkg" | "rpm" => {
            if !*seen {
                for p in &request.packages {
                    facts.packages.insert(crate::names::deb_base_name(p).to_string(), PackageState::default());
                }
                *seen = true;
            }
            for line in lines {
                let f: Vec<&str> = line.split('|').collect();
                if f.len() == 3 && !f[0].is_empty() {
                    let installed = f[1].starts_with("ii") || f[1].starts_with("hi");
                    let state = PackageState { installed: installed.then(|| f[2].to_string()) };
                    facts.packages.insert(f[0].to_string(), state);
                }
            }
        }
        _ => return false,
    }
    true
}
