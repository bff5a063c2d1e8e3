//! `command` and `shell`: run a program, with `creates`/`removes`, `chdir`, `stdin`.

use futures::future::BoxFuture;
use serde_json::json;

use super::spec::{arg, arg_aliases, ArgError, Args, Kind, Spec};
use super::{Module, Outcome, RunCtx};
use crate::facts::{Change, ProbeRequest};
use crate::names;
use crate::session::HostSession;
use crate::shell::{quote, quote_all};

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
    any_keys: false,
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
    any_keys: false,
};

/// The `command` module: a program and its arguments, never through a shell.
pub struct Command;

/// The `shell` module: a command line through `sh -c` (or `executable`).
pub struct Shell;

impl Module for Command {
    fn spec(&self) -> &'static Spec {
        &COMMAND_SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args, false).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        probe(args, false, request)
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(run(host, args, false, ctx))
    }
}

impl Module for Shell {
    fn spec(&self) -> &'static Spec {
        &SHELL_SPEC
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        desired(args, true).map(drop)
    }

    fn probe(&self, args: &Args, request: &mut ProbeRequest) {
        probe(args, true, request)
    }

    fn run<'a>(&'a self, host: &'a mut HostSession, args: &'a Args, ctx: &'a RunCtx<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(run(host, args, true, ctx))
    }
}

/// `creates`/`removes` paths are read with the facts probe.
fn probe(args: &Args, shell: bool, request: &mut ProbeRequest) {
    if let Ok(d) = desired(args, shell) {
        request.paths.extend(d.creates.into_iter().chain(d.removes));
    }
}

const SKIP_CREATES: &str = "@@gafix-skip-creates@@";
const SKIP_REMOVES: &str = "@@gafix-skip-removes@@";

async fn run(host: &mut HostSession, args: &Args, shell: bool, ctx: &RunCtx<'_>) -> Outcome {
    let d = match desired(args, shell) {
        Ok(d) => d,
        Err(e) => return Outcome::failed(e.to_string()),
    };
    if ctx.check_mode {
        return Outcome::skipped("command would have run if not in check mode");
    }
    let mut script = String::new();
    if let Some(p) = &d.creates {
        script.push_str(&format!("if [ -e {} ]; then echo '{SKIP_CREATES}'; exit 0; fi\n", quote(p)));
    }
    if let Some(p) = &d.removes {
        script.push_str(&format!("if [ ! -e {} ]; then echo '{SKIP_REMOVES}'; exit 0; fi\n", quote(p)));
    }
    script.push_str(&d.script);
    let out = match host.run(&script, ctx.become_, d.stdin.as_deref()).await {
        Ok(out) => out,
        Err(e) => return Outcome::from_transport(e),
    };
    let marker = out.stdout.trim();
    if marker == SKIP_CREATES || marker == SKIP_REMOVES {
        let creates_matched = marker == SKIP_CREATES;
        let reason = skip_reason(&d, |p| if creates_matched { d.creates.as_deref() == Some(p) } else { d.removes.as_deref() != Some(p) })
            .unwrap_or_else(|| "creates/removes matched".into());
        let mut o = Outcome::ok(format!("did not run: {reason}"));
        o.rc = Some(0);
        o.result = json!({"rc": 0, "stdout": "", "stderr": "", "stdout_lines": [], "stderr_lines": [], "cmd": d.display});
        return o;
    }
    host.mark_changed(Change::Other);
    let strip = |s: &str| if d.strip_empty_ends { s.trim_end_matches('\n').to_string() } else { s.to_string() };
    let (stdout, stderr) = (strip(&out.stdout), strip(&out.stderr));
    let result = json!({
        "rc": out.rc, "stdout": stdout, "stderr": stderr,
        "stdout_lines": stdout.lines().collect::<Vec<_>>(), "stderr_lines": stderr.lines().collect::<Vec<_>>(),
        "cmd": d.display, "delta": format!("{:.3}", out.duration.as_secs_f64()),
    });
    let mut o = if out.rc == 0 {
        Outcome::changed(first_line(&stdout))
    } else {
        Outcome::command_failed(&format!("'{}'", short(&d.display)), &out, None)
    };
    // A command that ran changed something as far as anyone can tell, whatever its exit
    // code: `failed_when` may clear the failure, and `changed_when` decide otherwise.
    o.changed = true;
    o.rc = Some(out.rc);
    o.result = result;
    o
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(120).collect()
}

fn short(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s.to_string()
    }
}

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

pub fn desired(args: &Args, shell: bool) -> Result<Desired, ArgError> {
    let text = args.str("cmd").or_else(|| args.str("_raw_params"));
    if let Some(t) = &text {
        if t.contains('\0') {
            return Err(ArgError::Invalid { arg: "cmd", expected: "text without NUL bytes", found: t.replace('\0', "\\0") });
        }
    }
    let argv = args.list("argv");
    let (script, display) = if shell {
        let text = text.ok_or(ArgError::Missing { module: "shell", what: "a command" })?;
        let exe = args.str("executable").unwrap_or_else(|| "/bin/sh".into());
        names::path(&exe)?;
        (format!("{} -c {}", quote(&exe), quote(&text)), text)
    } else {
        // `command` never goes through a shell on the target: split like Ansible (shlex),
        // then quote every word for the SSH login shell.
        let words = if !argv.is_empty() {
            argv
        } else {
            let text = text.ok_or(ArgError::Missing { module: "command", what: "a command (free-form text, cmd or argv)" })?;
            shlex::split(&text).ok_or_else(|| ArgError::Unbalanced(text.clone()))?
        };
        if words.is_empty() {
            return Err(ArgError::Empty("command"));
        }
        let display = words.join(" ");
        (format!("exec {}", quote_all(&words)), display)
    };
    let chdir = match args.str("chdir") {
        Some(dir) => {
            names::path(&dir)?;
            format!("cd {} || exit 1\n", quote(&dir))
        }
        None => String::new(),
    };
    for p in [args.str("creates"), args.str("removes")].into_iter().flatten() {
        names::path(&p)?;
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
