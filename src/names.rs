//! Strict grammars for the names that reach a remote shell. Anything else is rejected before
//! a command is built; what passes is still quoted by `crate::shell::quote`.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("'{0}' is not a valid Debian package name (lowercase letters, digits, '+', '-', '.', optional :arch and =version)")]
    Deb(String),
    #[error("'{0}' is not a valid RPM package name")]
    Rpm(String),
    #[error("'{0}' is not a valid systemd unit name")]
    Unit(String),
    #[error("'{0}' is not a valid absolute path")]
    Path(String),
    #[error("'{0}' is not a valid user or group name (a letter or '_', then letters, digits, '_', '.', '-'; at most 32)")]
    Account(String),
}

fn deb_name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c))
}

fn version_ok(v: &str) -> bool {
    !v.is_empty() && v.starts_with(|c: char| c.is_ascii_digit()) && v.chars().all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c))
}

/// A Debian package spec: `name`, `name:arch`, `name=version`.
pub fn deb_package(spec: &str) -> Result<(), NameError> {
    let (name_arch, version) = match spec.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let name = match name_arch.split_once(':') {
        Some((n, arch)) if !arch.is_empty() && arch.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') => n,
        Some(_) => return Err(NameError::Deb(spec.into())),
        None => name_arch,
    };
    if deb_name_ok(name) && version.is_none_or(version_ok) {
        Ok(())
    } else {
        Err(NameError::Deb(spec.into()))
    }
}

/// The package name of a spec without `:arch` or `=version`.
pub fn deb_base_name(spec: &str) -> &str {
    let s = spec.split('=').next().unwrap_or(spec);
    s.split(':').next().unwrap_or(s)
}

/// An RPM package spec: a name, optionally with `-version` parts or `.arch`; `@group`s too.
pub fn rpm_package(spec: &str) -> Result<(), NameError> {
    let body = spec.strip_prefix('@').unwrap_or(spec);
    let ok = !body.is_empty()
        && body.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && body.chars().all(|c| c.is_ascii_alphanumeric() || "._+-:~^".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NameError::Rpm(spec.into()))
    }
}

/// A systemd unit name; without a type suffix systemd assumes `.service`.
pub fn unit(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '.', '@'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c))
        && name.matches('@').count() <= 1;
    if ok {
        Ok(())
    } else {
        Err(NameError::Unit(name.into()))
    }
}

/// An absolute path with no control characters (it is quoted, but never trusted blindly).
pub fn path(p: &str) -> Result<(), NameError> {
    if p.starts_with('/') && !p.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(NameError::Path(p.into()))
    }
}

/// A user or group name as shadow's useradd and groupadd take it (uppercase too, as
/// Debian allows with a warning; a trailing `$` for Samba machine accounts).
pub fn account(name: &str) -> Result<(), NameError> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= 32
        && body.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && body.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NameError::Account(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for ok in ["ops", "_apt", "node-exporter", "Debian-exim", "host$", "a.b"] {
            assert_eq!(account(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-rf", "1abc", "a b", "a;b", "$", "a/b", &"x".repeat(33)] {
            assert!(account(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debian_names() {
        for ok in ["qemu-guest-agent", "libc6", "g++", "libstdc++6:amd64", "nginx=1.22.1-9", "python3.11"] {
            assert!(deb_package(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "Qemu", "x;reboot", "$(id)", "a b", "-rf", "pkg=", "pkg:AMD", "pkg=1;ls"] {
            assert!(deb_package(bad).is_err(), "{bad}");
        }
        assert_eq!(deb_base_name("libc6:amd64=2.36"), "libc6");
    }

    #[test]
    fn rpm_names() {
        assert!(rpm_package("qemu-guest-agent").is_ok());
        assert!(rpm_package("@core").is_ok());
        assert!(rpm_package("kernel-5.14.0-1.el9.x86_64").is_ok());
        assert!(rpm_package("a|b").is_err());
        assert!(rpm_package("").is_err());
    }

    #[test]
    fn unit_names() {
        for ok in ["qemu-guest-agent", "ssh.service", "getty@tty1.service", "dev-virtio\\x2dports-x.device"] {
            assert!(unit(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "x;y", "a@b@c", "$(x)", "x\n"] {
            assert!(unit(bad).is_err(), "{bad:?}");
        }
    }
}
