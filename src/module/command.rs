//! `command` and `shell`: run a program, with `creates`/`removes`, `chdir`, `stdin`.

use super::spec::{arg, arg_aliases, Args, Kind, Spec};
use crate::names;
use crate::shell::quote;

pub static COMMAND_SPEC: Spec = Spec {
    name: "command",
    aliases: &[],
    args: &[
        arg("cmd", Kind::Str),
        arg("_raw_params", Kind::Str),
        arg("argv", Kind::List),
        arg("creates", Kind::Str),
        arg("removes", Kind::Str),
        arg("chdir", Kind::Str),
        arg("stdin", Kind::Str),
        arg_aliases("stdin_add_newline", Kind::Bool, &[]),
        arg("strip_empty_ends", Kind::Bool),
    ],
    free_form: Some("_raw_params"),
    required: &[],
    unsupported: &["expand_argument_vars"],
};

pub static SHELL_SPEC: Spec = Spec {
    name: "shell",
    aliases: &[],
    args: &[
        arg("cmd", Kind::Str),
        arg("_raw_params", Kind::Str),
        arg("creates", Kind::Str),
        arg("removes", Kind::Str),
        arg("chdir", Kind::Str),
        arg("executable", Kind::Str),
        arg("stdin", Kind::Str),
        arg("stdin_add_newline", Kind::Bool),
        arg("strip_empty_ends", Kind::Bool),
    ],
    free_form: Some("_raw_params"),
    required: &[],
    unsupported: &[],
};

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The remote shell command line, already quoted as needed.
    pub script: String,
    /// What to show as `cmd` in results.
    pub display: String,
    pub creates: Option<String>,
    pub removes: Option<String>,
    pub stdin: Option<String>,
    pub strip_empty_ends: bool,
}

pub fn desired(args: &Args, shell: bool) -> Result<Desired, String> {
    let text = args.str("cmd").or_else(|| args.str("_raw_params"));
    let argv = args.list("argv");
    let (script, display) = if shell {
        let text = text.ok_or("shell needs a command")?;
        let exe = args.str("executable").unwrap_or_else(|| "/bin/sh".into());
        names::path(&exe).map_err(|e| e.to_string())?;
        (format!("{} -c {}", quote(&exe), quote(&text)), text)
    } else {
        // `command` never goes through a shell on the target: split like Ansible (shlex),
        // then quote every word for the SSH login shell.
        let words = if !argv.is_empty() {
            argv
        } else {
            let text = text.ok_or("command needs a command (free-form text, cmd or argv)")?;
            shlex::split(&text).ok_or_else(|| format!("cannot split '{text}': unbalanced quotes"))?
        };
        if words.is_empty() {
            return Err("command is empty".into());
        }
        let display = words.join(" ");
        (format!("exec {}", words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")), display)
    };
    let chdir = match args.str("chdir") {
        Some(dir) => {
            names::path(&dir).map_err(|e| e.to_string())?;
            format!("cd {} || exit 1\n", quote(&dir))
        }
        None => String::new(),
    };
    for p in [args.str("creates"), args.str("removes")].into_iter().flatten() {
        names::path(&p).map_err(|e| format!("creates/removes: {e}"))?;
    }
    let stdin = args.str("stdin").map(|s| if args.bool("stdin_add_newline").unwrap_or(true) { s + "\n" } else { s });
    Ok(Desired {
        script: format!("{chdir}{script}"),
        display,
        creates: args.str("creates"),
        removes: args.str("removes"),
        stdin,
        strip_empty_ends: args.bool("strip_empty_ends").unwrap_or(true),
    })
}

/// Why the command is skipped, if `creates`/`removes` say so (given which paths exist).
pub fn skip_reason(d: &Desired, exists: impl Fn(&str) -> bool) -> Option<String> {
    if let Some(p) = &d.creates {
        if exists(p) {
            return Some(format!("{p} exists, matching creates option"));
        }
    }
    if let Some(p) = &d.removes {
        if !exists(p) {
            return Some(format!("{p} does not exist, matching removes option"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: serde_json::Value) -> Args {
        Args(v.as_object().unwrap().clone())
    }

    #[test]
    fn command_is_split_and_quoted_never_shell_interpreted() {
        let d = desired(&args(json!({"_raw_params": "echo 'a b' $HOME;reboot"})), false).unwrap();
        assert_eq!(d.script, "exec echo 'a b' '$HOME;reboot'");
    }

    #[test]
    fn shell_runs_through_sh_c() {
        let d = desired(&args(json!({"cmd": "echo $HOME | wc -c", "chdir": "/tmp"})), true).unwrap();
        assert_eq!(d.script, "cd /tmp || exit 1\n/bin/sh -c 'echo $HOME | wc -c'");
    }

    #[test]
    fn creates_and_removes() {
        let d = desired(&args(json!({"cmd": "true", "creates": "/etc/done"})), false).unwrap();
        assert!(skip_reason(&d, |_| true).unwrap().contains("matching creates"));
        assert!(skip_reason(&d, |_| false).is_none());
        let d = desired(&args(json!({"cmd": "true", "removes": "/etc/x"})), false).unwrap();
        assert!(skip_reason(&d, |_| false).unwrap().contains("matching removes"));
        assert!(desired(&args(json!({"cmd": "true", "creates": "relative"})), false).is_err());
    }
}
