//! Every code block of `docs/semaphore.md` and `docs/ci.md` is checked, so that a snippet an
//! operator copies works as written:
//! - `yaml`/`yml`: parses, and has the shape its tool expects (GitLab CI, GitHub Actions,
//!   Kubernetes, or an Ansible playbook that `gafix validate` accepts);
//! - `json`: parses, and a Semaphore `apps` entry is complete;
//! - `ini`/`systemd`: a systemd unit with the sections and keys its kind needs, or an
//!   `ansible.cfg` whose every setting `gafix config --list` uses;
//! - `sh`: `sh -n` accepts it;
//! - every `gafix ...` or `ansible-playbook ...` command line, in any block or inline in the
//!   prose: each long option it uses is listed by `gafix <subcommand> --help`.
//!
//! Failures name the file, the block's line and the problem, and every problem is reported.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value as Json;
use yaml_rust2::{Yaml, YamlLoader};

const DOCS: [&str; 2] = ["docs/semaphore.md", "docs/ci.md"];

/// One fenced code block: where it starts, its language tag and its text (dedented).
struct Block {
    file: &'static str,
    line: usize,
    lang: String,
    text: String,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{} ({} block)", self.file, self.line, self.lang)
    }
}

fn read_doc(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced blocks of both documents. Fences may be indented (inside a list item); the
/// block's lines lose that indentation.
fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    for file in DOCS {
        let text = read_doc(file);
        let mut open: Option<(usize, usize, String, Vec<&str>)> = None;
        for (n, line) in text.lines().enumerate() {
            let indent = line.len() - line.trim_start().len();
            let fence = line.trim_start().starts_with("```");
            match (&mut open, fence) {
                (None, true) => {
                    let lang = line.trim_start().trim_start_matches('`').split_whitespace().next().unwrap_or("").to_string();
                    open = Some((n + 1, indent, lang, Vec::new()));
                }
                (Some(_), true) => {
                    let (line, _, lang, lines) = open.take().unwrap();
                    blocks.push(Block { file, line, lang, text: lines.join("\n") + "\n" });
                }
                (Some((_, indent, _, lines)), false) => lines.push(line.get(*indent..).unwrap_or(line.trim_start())),
                (None, false) => {}
            }
        }
        assert!(open.is_none(), "{file}: a code block is never closed");
    }
    blocks
}

/// Collects problems and fails once, listing them all.
fn report(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn gafix() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gafix"));
    cmd.env("NO_COLOR", "1").env_remove("ANSIBLE_CONFIG");
    cmd
}

#[test]
fn every_block_has_a_language_that_is_checked() {
    let blocks = blocks();
    let mut problems = Vec::new();
    for file in DOCS {
        if !blocks.iter().any(|b| b.file == file) {
            problems.push(format!("{file}: no code blocks found"));
        }
    }
    for b in &blocks {
        if !matches!(b.lang.as_str(), "sh" | "yaml" | "yml" | "json" | "ini" | "systemd") {
            problems.push(format!("{}: language {:?} has no check (use sh, yaml, json, ini or systemd)", b.at(), b.lang));
        }
    }
    report("code blocks without a check", problems);
}

// ---------------------------------------------------------------------------------------
// YAML: GitLab CI, GitHub Actions, Kubernetes, Ansible playbooks

#[test]
fn yaml_blocks_parse_and_have_their_tools_shape() {
    let mut problems = Vec::new();
    for b in blocks().iter().filter(|b| b.lang == "yaml" || b.lang == "yml") {
        let docs = match YamlLoader::load_from_str(&b.text) {
            Ok(docs) => docs,
            Err(e) => {
                problems.push(format!("{}: not YAML: {e}", b.at()));
                continue;
            }
        };
        for doc in &docs {
            let found = if is_playbook(doc) {
                check_playbook(b)
            } else if !doc["apiVersion"].is_badvalue() {
                check_kubernetes(doc)
            } else if !doc["on"].is_badvalue() && !doc["jobs"].is_badvalue() {
                check_github_actions(doc)
            } else if doc.as_hash().is_some_and(|h| h.values().any(|job| !job["script"].is_badvalue())) {
                check_gitlab_ci(doc)
            } else {
                vec!["neither a GitLab CI file, a GitHub Actions workflow, a Kubernetes manifest nor a playbook".into()]
            };
            problems.extend(found.into_iter().map(|p| format!("{}: {p}", b.at())));
        }
    }
    report("YAML blocks", problems);
}

fn is_playbook(doc: &Yaml) -> bool {
    doc.as_vec().is_some_and(|plays| !plays.is_empty() && plays.iter().all(|p| !p["hosts"].is_badvalue()))
}

/// A playbook must pass `gafix validate` (any host will do: validation connects to none).
fn check_playbook(b: &Block) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("playbook.yml"), &b.text).unwrap();
    let (code, out) = run(gafix().args(["validate", "-i", "localhost,", "playbook.yml"]).current_dir(dir.path()));
    if code == 0 {
        vec![]
    } else {
        vec![format!("`gafix validate` exits {code}: {}", out.trim())]
    }
}

fn text(y: &Yaml) -> Option<&str> {
    y.as_str()
}

/// Every string anywhere in a YAML node.
fn strings(y: &Yaml) -> Vec<&str> {
    match y {
        Yaml::String(s) => vec![s.as_str()],
        Yaml::Array(items) => items.iter().flat_map(strings).collect(),
        Yaml::Hash(h) => h.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// The gafix command lines in a YAML node's strings.
fn gafix_commands_in(y: &Yaml) -> Vec<CommandLine> {
    strings(y).into_iter().flat_map(|s| command_lines(s).unwrap_or_default()).collect()
}

/// Whether a published path or glob (`reports/`, `reports/*.xml`, `report.xml`) takes `file`.
fn covers(pattern: &str, file: &str) -> bool {
    if pattern.ends_with('/') {
        return file.starts_with(pattern);
    }
    match pattern.split_once('*') {
        Some((head, tail)) => file.starts_with(head) && file[head.len()..].ends_with(tail) && !file[head.len()..].contains('/'),
        None => pattern == file,
    }
}

const GITLAB_GLOBAL_KEYWORDS: [&str; 10] =
    ["stages", "variables", "default", "include", "workflow", "image", "services", "cache", "before_script", "after_script"];

/// GitLab CI: jobs with a `script` list; a job writing `--junit F` publishes F as a JUnit
/// report even when it fails; a sliced job has `parallel: N` and a per-slice JSON report; a
/// job merging the slices runs in a later stage, even when a slice failed.
fn check_gitlab_ci(doc: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let stages: Vec<&str> = doc["stages"].as_vec().map(|s| s.iter().filter_map(text).collect()).unwrap_or_default();
    let stage_of = |job: &Yaml| stages.iter().position(|s| Some(*s) == job["stage"].as_str());
    let mut slice_stages = Vec::new();
    let mut merge_jobs = Vec::new();
    for (name, job) in doc.as_hash().unwrap() {
        let name = name.as_str().unwrap_or("?");
        for key in ["before_script", "script", "after_script"] {
            for line in job[key].as_vec().into_iter().flatten().filter_map(Yaml::as_str) {
                if let Some(problem) = shell_problem(line) {
                    problems.push(format!("`{name}`: {key}: {problem}"));
                }
            }
        }
        if GITLAB_GLOBAL_KEYWORDS.contains(&name) || name.starts_with('.') {
            continue;
        }
        let script = job["script"].as_vec();
        if !script.is_some_and(|s| !s.is_empty() && s.iter().all(|l| l.as_str().is_some())) {
            problems.push(format!("job `{name}`: `script` must be a non-empty list of strings"));
        }
        if !stages.is_empty() && job["stage"].as_str().is_some() && stage_of(job).is_none() {
            problems.push(format!("job `{name}`: stage {:?} is not in `stages`", job["stage"].as_str().unwrap()));
        }
        for cmd in gafix_commands_in(&job["script"]) {
            if let Some(junit) = cmd.value_of("--junit") {
                let published = job["artifacts"]["reports"]["junit"].as_str().is_some_and(|p| covers(p, &junit));
                if !published {
                    problems.push(format!("job `{name}`: writes --junit {junit} but `artifacts.reports.junit` does not publish it"));
                }
                if job["artifacts"]["when"].as_str() != Some("always") {
                    problems.push(format!("job `{name}`: `artifacts.when: always` is missing (the report of a failed run is lost)"));
                }
            }
            if let Some(slice) = cmd.value_of("--slice") {
                if job["parallel"].as_i64().is_none_or(|n| n < 2) {
                    problems.push(format!("job `{name}`: uses --slice but has no `parallel: <int>` (2 or more)"));
                }
                if slice != "$CI_NODE_INDEX/$CI_NODE_TOTAL" {
                    problems.push(format!("job `{name}`: --slice {slice:?} should be \"$CI_NODE_INDEX/$CI_NODE_TOTAL\""));
                }
                match cmd.value_of("--json") {
                    Some(json) if json.contains("$CI_NODE_INDEX") => {}
                    _ => problems.push(format!("job `{name}`: each slice needs its own --json report (name it with $CI_NODE_INDEX)")),
                }
                if job["artifacts"]["when"].as_str() != Some("always") {
                    problems.push(format!("job `{name}`: `artifacts.when: always` is missing (a failed slice's report is lost)"));
                }
                slice_stages.push(stage_of(job));
            }
            if cmd.runs(&["report", "merge"]) {
                merge_jobs.push((name, stage_of(job), job["when"].as_str() == Some("always")));
            }
        }
    }
    for (name, stage, always) in merge_jobs {
        if !always {
            problems.push(format!("job `{name}`: merges slices but lacks `when: always` (it would not run when a slice failed)"));
        }
        if slice_stages.iter().any(|s| s.is_none() || stage.is_none() || s >= &stage) {
            problems.push(format!("job `{name}`: must run in a stage after the sliced jobs"));
        }
    }
    problems
}

/// GitHub Actions: `on`, jobs with `runs-on` and steps that each `run` or `use` something;
/// steps after a gafix step that writes reports run `if: always()` and publish the JUnit file.
fn check_github_actions(doc: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(jobs) = doc["jobs"].as_hash().filter(|j| !j.is_empty()) else {
        return vec!["`jobs` must be a non-empty mapping".into()];
    };
    for (id, job) in jobs {
        let id = id.as_str().unwrap_or("?");
        if job["runs-on"].is_badvalue() {
            problems.push(format!("job `{id}`: `runs-on` is missing"));
        }
        let Some(steps) = job["steps"].as_vec().filter(|s| !s.is_empty()) else {
            problems.push(format!("job `{id}`: `steps` must be a non-empty list"));
            continue;
        };
        let (mut junit_files, mut unpublished) = (Vec::new(), Vec::new());
        for (n, step) in steps.iter().enumerate() {
            let step_at = format!("job `{id}`, step {}", n + 1);
            let (run, uses) = (step["run"].as_str(), step["uses"].as_str());
            if run.is_none() == uses.is_none() {
                problems.push(format!("{step_at}: needs exactly one of `run` or `uses`"));
            }
            if let Some(problem) = run.and_then(shell_problem) {
                problems.push(format!("{step_at}: {problem}"));
            }
            let Some(uses) = uses else {
                for cmd in run.map(|r| command_lines(r).unwrap_or_default()).unwrap_or_default() {
                    junit_files.extend(cmd.value_of("--junit"));
                    unpublished.extend(cmd.value_of("--junit"));
                }
                continue;
            };
            let cond = step["if"].as_str().unwrap_or("");
            if !junit_files.is_empty() && !cond.contains("always()") && !cond.contains("!cancelled()") {
                problems.push(format!("{step_at}: add `if: always()`, or it is skipped when gafix fails"));
            }
            let published: Vec<&str> = strings(&step["with"]).into_iter().flat_map(|s| s.lines()).map(str::trim).collect();
            let covered = |f: &String| published.iter().any(|p| covers(p, f));
            if uses.contains("junit") {
                for f in junit_files.iter().filter(|f| !covered(f)) {
                    problems.push(format!("{step_at}: the JUnit action does not read {f}"));
                }
            }
            unpublished.retain(|f| !covered(f));
        }
        for f in unpublished {
            problems.push(format!("job `{id}`: the JUnit report {f} is not published by a later step"));
        }
    }
    problems
}

/// Kubernetes: every object has `apiVersion`, `kind`, `metadata.name`; Jobs are `batch/v1`;
/// a Job running `gafix converge` is an Indexed Job with as many pods at once as slices, and
/// `GAFIX_SLICE_COUNT` equal to that number.
fn check_kubernetes(doc: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = doc["kind"].as_str().unwrap_or("");
    if kind.is_empty() || doc["metadata"]["name"].as_str().is_none() {
        problems.push("`kind` and `metadata.name` are required".to_string());
    }
    if kind != "Job" {
        return problems;
    }
    let kind = format!("Job {}", doc["metadata"]["name"].as_str().unwrap_or("?"));
    if doc["apiVersion"].as_str() != Some("batch/v1") {
        problems.push(format!("{kind}: `apiVersion` must be batch/v1"));
    }
    let spec = &doc["spec"];
    let pod = &spec["template"]["spec"];
    let Some(containers) = pod["containers"].as_vec().filter(|c| !c.is_empty()) else {
        return [problems, vec![format!("{kind}: `spec.template.spec.containers` is empty")]].concat();
    };
    for c in containers {
        let command: Vec<&str> =
            c["command"].as_vec().into_iter().flatten().chain(c["args"].as_vec().into_iter().flatten()).filter_map(Yaml::as_str).collect();
        if let ["sh" | "/bin/sh" | "bash" | "/bin/bash", "-c", script, ..] = command.as_slice() {
            if let Some(problem) = shell_problem(script) {
                problems.push(format!("{kind}: the container's command: {problem}"));
            }
        }
    }
    if !matches!(pod["restartPolicy"].as_str(), Some("Never" | "OnFailure")) {
        problems.push(format!("{kind}: a Job's `restartPolicy` must be Never or OnFailure"));
    }
    if !gafix_commands_in(pod).iter().any(|c| c.runs(&["converge"])) {
        return problems;
    }
    if spec["completionMode"].as_str() != Some("Indexed") {
        problems.push(format!("{kind}: runs slices, so `spec.completionMode` must be Indexed"));
    }
    let completions = spec["completions"].as_i64();
    if completions.is_none() || completions != spec["parallelism"].as_i64() {
        problems.push(format!("{kind}: `spec.completions` and `spec.parallelism` must be the same number (every slice at once)"));
    }
    for c in containers {
        let count = c["env"].as_vec().into_iter().flatten().find(|e| e["name"].as_str() == Some("GAFIX_SLICE_COUNT"));
        let count = count.and_then(|e| e["value"].as_str()).and_then(|v| v.parse::<i64>().ok());
        if count.is_none() || count != completions {
            problems.push(format!("{kind}: container env GAFIX_SLICE_COUNT must be \"{}\" (`spec.completions`)", completions.unwrap_or(0)));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------
// JSON: Semaphore's config

#[test]
fn json_blocks_parse_and_semaphore_apps_are_complete() {
    let mut problems = Vec::new();
    for b in blocks().iter().filter(|b| b.lang == "json") {
        let json: Json = match serde_json::from_str(&b.text) {
            Ok(json) => json,
            Err(e) => {
                problems.push(format!("{}: not JSON: {e}", b.at()));
                continue;
            }
        };
        let Some(apps) = json["apps"].as_object() else {
            problems.push(format!("{}: not a Semaphore config (no `apps` object)", b.at()));
            continue;
        };
        for (id, app) in apps {
            let mut bad = |p: &str| problems.push(format!("{}: app `{id}`: {p}", b.at()));
            if !app["active"].is_boolean() {
                bad("`active` must be true or false");
            }
            if !app["path"].as_str().is_some_and(|p| p.starts_with('/')) {
                bad("`path` must be an absolute path");
            }
            match app["args"].as_array() {
                Some(args) if args.iter().all(Json::is_string) => {
                    if !args.iter().any(|a| a == "-i" || a == "--inventory") {
                        bad("Semaphore passes no inventory to a custom app: give `-i` in `args`");
                    }
                }
                _ => bad("`args` must be a list of strings"),
            }
        }
    }
    report("JSON blocks", problems);
}

/// The command line of each Semaphore app: `path` then `args`.
fn semaphore_app_commands(b: &Block) -> Vec<CommandLine> {
    let Ok(json) = serde_json::from_str::<Json>(&b.text) else { return vec![] };
    let apps = json["apps"].as_object().into_iter().flatten();
    let words = apps.map(|(_, app)| {
        let args = app["args"].as_array().into_iter().flatten().filter_map(Json::as_str);
        app["path"].as_str().into_iter().chain(args).map(String::from).collect::<Vec<_>>()
    });
    words.filter_map(|w| CommandLine::parse(&w)).collect()
}

// ---------------------------------------------------------------------------------------
// INI: systemd units and ansible.cfg

/// A `key=value` line: its line number in the block, the key, the value.
type Entry = (usize, String, String);

/// `[Section]` headers and their `key=value` lines.
struct Ini {
    sections: Vec<(String, Vec<Entry>)>,
}

impl Ini {
    fn parse(text: &str) -> Result<Ini, String> {
        let mut sections: Vec<(String, Vec<Entry>)> = Vec::new();
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                sections.push((name.to_string(), Vec::new()));
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { return Err(format!("line {n}: not `key=value`: {line}")) };
            let Some((_, entries)) = sections.last_mut() else { return Err(format!("line {n}: a setting before any [section]")) };
            entries.push((n, key.trim().to_string(), value.trim().to_string()));
        }
        Ok(Ini { sections })
    }

    fn section(&self, name: &str) -> Option<&[Entry]> {
        self.sections.iter().find(|(s, _)| s == name).map(|(_, e)| e.as_slice())
    }

    fn get<'a>(&'a self, section: &str, key: &str) -> Option<&'a str> {
        self.section(section)?.iter().find(|(_, k, _)| k == key).map(|(_, _, v)| v.as_str())
    }
}

const UNIT_SECTIONS: [&str; 4] = ["Unit", "Service", "Timer", "Install"];

#[test]
fn ini_blocks_are_systemd_units_or_ansible_cfg() {
    let mut problems = Vec::new();
    for b in blocks().iter().filter(|b| b.lang == "ini" || b.lang == "systemd") {
        let found = match Ini::parse(&b.text) {
            Err(e) => vec![e],
            Ok(ini) if b.lang == "systemd" || ini.sections.iter().any(|(s, _)| UNIT_SECTIONS.contains(&s.as_str())) => check_unit(b, &ini),
            Ok(ini) => check_ansible_cfg(b, &ini),
        };
        problems.extend(found.into_iter().map(|p| format!("{}: {p}", b.at())));
    }
    report("INI blocks", problems);
}

/// A service runs gafix unattended: `[Unit]`, `[Service]` with `ExecStart=`, a JSON report,
/// no prompt. A timer: `[Unit]`, `[Timer]` with `OnCalendar=` or `OnUnitActiveSec=`, and
/// `[Install]` so that it can be enabled. A `# /path/name.timer` first line names the unit.
fn check_unit(b: &Block, ini: &Ini) -> Vec<String> {
    let mut problems = Vec::new();
    for (s, _) in &ini.sections {
        if !UNIT_SECTIONS.contains(&s.as_str()) {
            problems.push(format!("[{s}] is not a section of a service or timer unit"));
        }
    }
    if ini.section("Unit").is_none() {
        problems.push("[Unit] is missing".into());
    }
    let kind = match (ini.section("Service").is_some(), ini.section("Timer").is_some()) {
        (true, false) => "service",
        (false, true) => "timer",
        _ => return [problems, vec!["needs exactly one of [Service] or [Timer]".into()]].concat(),
    };
    let named = b.text.lines().next().and_then(|l| l.strip_prefix("# ")).and_then(|p| p.rsplit_once('.')).map(|(_, ext)| ext);
    if named.is_some_and(|ext| ext != kind) {
        problems.push(format!("the file is named .{} but the unit is a {kind}", named.unwrap()));
    }
    if kind == "service" {
        match ini.get("Service", "ExecStart") {
            None => problems.push("[Service] has no ExecStart=".into()),
            Some(exec) => {
                if exec.contains(" -K") || exec.contains("--ask-become-pass") {
                    problems.push("ExecStart= would prompt for a password, and nobody is there to answer".into());
                }
                if !exec.contains("--json") {
                    problems.push("ExecStart= writes no --json report".into());
                }
            }
        }
    } else {
        if ini.get("Timer", "OnCalendar").is_none() && ini.get("Timer", "OnUnitActiveSec").is_none() {
            problems.push("[Timer] needs OnCalendar= or OnUnitActiveSec=".into());
        }
        if ini.get("Install", "WantedBy").is_none() {
            problems.push("[Install] WantedBy= is missing: the timer cannot be enabled".into());
        }
    }
    problems
}

/// An `ansible.cfg`: `gafix config --list` reads it, and uses each of its settings (none
/// lands in the "ignored" list).
fn check_ansible_cfg(b: &Block, ini: &Ini) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ansible.cfg"), &b.text).unwrap();
    let (code, out) = run(gafix().args(["config", "--list"]).current_dir(dir.path()).env("HOME", dir.path()));
    if code != 0 {
        return vec![format!("`gafix config --list` exits {code}: {}", out.trim())];
    }
    let used = out.split("ignored (").next().unwrap_or("");
    let mut problems = Vec::new();
    for (section, entries) in &ini.sections {
        for (n, key, _) in entries {
            let line = used.lines().find(|l| l.starts_with(&format!("[{section}] {key} = ")));
            if !line.is_some_and(|l| l.contains(&format!("ansible.cfg:{n}:"))) {
                problems.push(format!("line {n}: [{section}] {key} is not a setting gafix uses (see `gafix config --list`)"));
            }
        }
    }
    problems
}

/// Each `gafix` command in a unit's `Exec*=` lines.
fn unit_commands(b: &Block) -> Vec<CommandLine> {
    let Ok(ini) = Ini::parse(&b.text) else { return vec![] };
    let execs = ini.sections.iter().flat_map(|(_, e)| e).filter(|(_, k, _)| k.starts_with("Exec"));
    execs.flat_map(|(_, _, v)| command_lines(v.trim_start_matches(['-', '@', ':', '+', '!'])).unwrap_or_default()).collect()
}

// ---------------------------------------------------------------------------------------
// Shell

/// What `sh -n` says about a script, if it rejects it.
fn shell_problem(script: &str) -> Option<String> {
    let (code, out) = run(Command::new("sh").args(["-n", "-c", script]));
    (code != 0).then(|| format!("`sh -n` rejects it: {}", out.trim()))
}

#[test]
fn sh_blocks_are_valid_shell() {
    let mut problems = Vec::new();
    for b in blocks().iter().filter(|b| b.lang == "sh") {
        if let Some(problem) = shell_problem(&b.text) {
            problems.push(format!("{}: {problem}", b.at()));
        }
        if let Err(e) = command_lines(&b.text) {
            problems.push(format!("{}: {e}", b.at()));
        }
    }
    report("sh blocks", problems);
}

// ---------------------------------------------------------------------------------------
// gafix command lines and their options

/// Words that may come before the program of a simple command.
const PREFIXES: [&str; 11] = ["exec", "sudo", "env", "time", "nice", "if", "then", "else", "do", "until", "while"];

/// One `gafix ...` (or `ansible-playbook ...`, which is `gafix playbook`) command.
#[derive(Debug)]
struct CommandLine {
    /// `["converge"]`, `["report", "merge"]`, `[]` for `gafix --version`.
    subcommand: Vec<String>,
    /// The words after the subcommand.
    args: Vec<String>,
    words: Vec<String>,
}

impl CommandLine {
    /// A simple command's words, if it runs gafix (after `VAR=value`, `exec`, `sudo`, `env`,
    /// or a keyword such as `if` or `do`).
    fn parse(words: &[String]) -> Option<CommandLine> {
        let is_assignment =
            |w: &String| w.split_once('=').is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()));
        let start = words.iter().position(|w| !is_assignment(w) && !PREFIXES.contains(&w.as_str()))?;
        let program = words[start].rsplit('/').next().unwrap();
        let mut rest = words[start + 1..].to_vec();
        let subcommand = match program {
            "ansible-playbook" => vec!["playbook".to_string()],
            "gafix" => match rest.first() {
                Some(w) if !w.starts_with('-') => vec![rest.remove(0)],
                _ => vec![],
            },
            _ => return None,
        };
        Some(CommandLine { subcommand, args: rest, words: words[start..].to_vec() })
    }

    /// Whether this runs that (sub)command: `["report", "merge"]`.
    fn runs(&self, path: &[&str]) -> bool {
        let words = self.subcommand.iter().chain(&self.args);
        path.len() <= self.subcommand.len() + self.args.len() && words.zip(path).all(|(w, p)| w == p)
    }

    fn long_options(&self) -> impl Iterator<Item = &str> {
        let options = self.args.iter().take_while(|a| *a != "--");
        options.filter(|a| a.starts_with("--") && a.len() > 2).map(|a| a.split('=').next().unwrap())
    }

    /// `--name VALUE` or `--name=VALUE`.
    fn value_of(&self, name: &str) -> Option<String> {
        let i = self.args.iter().position(|a| a == name || a.starts_with(&format!("{name}=")))?;
        match self.args[i].split_once('=') {
            Some((_, v)) => Some(v.to_string()),
            None => self.args.get(i + 1).cloned(),
        }
    }
}

/// The gafix commands in shell text: lines joined at `\`, split with shlex, then into simple
/// commands at `&&`, `||`, `|` and `;`.
fn command_lines(text: &str) -> Result<Vec<CommandLine>, String> {
    let mut found = Vec::new();
    for line in text.replace("\\\n", " ").lines() {
        let words = shlex::split(line).ok_or_else(|| format!("unbalanced quotes in: {line}"))?;
        let mut simple: Vec<String> = Vec::new();
        for word in words.into_iter().chain([";".to_string()]) {
            let ends = word.ends_with(';') || matches!(word.as_str(), "&&" | "||" | "|");
            if !matches!(word.as_str(), "&&" | "||" | "|" | ";") {
                simple.push(word.trim_end_matches(';').to_string());
            }
            if ends {
                found.extend(CommandLine::parse(&simple));
                simple.clear();
            }
        }
    }
    Ok(found)
}

/// Inline code in the prose that is a gafix command (`` `gafix converge -l @failed.retry` ``).
fn prose_commands(file: &'static str) -> Vec<(String, CommandLine)> {
    let mut found = Vec::new();
    let mut in_block = false;
    for (n, line) in read_doc(file).lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        for span in
            line.split('`').skip(1).step_by(2).filter(|s| !in_block && (s.starts_with("gafix ") || s.starts_with("ansible-playbook ")))
        {
            for cmd in command_lines(span).unwrap_or_default() {
                found.push((format!("{file}:{} (prose)", n + 1), cmd));
            }
        }
    }
    found
}

/// The subcommand names a help text lists under "Commands:".
fn lists_subcommand(help: &str, name: &str) -> bool {
    let commands = help.lines().skip_while(|l| !l.starts_with("Commands:")).skip(1).take_while(|l| l.starts_with("  "));
    commands.map(|l| l.split_whitespace().next()).any(|w| w == Some(name))
}

/// Whether a help text lists `--name` as an option.
fn help_has_option(help: &str, option: &str) -> bool {
    help.match_indices(option).any(|(i, _)| !help[i + option.len()..].starts_with(|c: char| c == '-' || c.is_ascii_alphanumeric()))
}

#[test]
fn every_gafix_command_uses_options_its_help_lists() {
    let mut commands: Vec<(String, CommandLine)> = Vec::new();
    for b in blocks() {
        let found = match b.lang.as_str() {
            "sh" => command_lines(&b.text).unwrap_or_default(),
            "yaml" | "yml" => YamlLoader::load_from_str(&b.text).unwrap_or_default().iter().flat_map(gafix_commands_in).collect(),
            "json" => semaphore_app_commands(&b),
            "ini" | "systemd" => unit_commands(&b),
            _ => vec![],
        };
        commands.extend(found.into_iter().map(|c| (b.at(), c)));
    }
    for file in DOCS {
        commands.extend(prose_commands(file));
    }
    assert!(commands.len() >= 10, "only {} gafix command lines found: is the extraction broken?", commands.len());

    let mut helps: HashMap<Vec<String>, Result<String, String>> = HashMap::new();
    let mut help = |path: &[String]| {
        helps
            .entry(path.to_vec())
            .or_insert_with(|| {
                let (code, out) = run(gafix().args(path).arg("--help"));
                if code == 0 {
                    Ok(out)
                } else {
                    Err(format!("`gafix {} --help` exits {code}: {}", path.join(" "), out.lines().next().unwrap_or("")))
                }
            })
            .clone()
    };
    let mut problems = Vec::new();
    for (at, mut cmd) in commands {
        // Descend into nested subcommands (`report merge`) as long as the help lists them.
        while let (Ok(h), Some(next)) = (help(&cmd.subcommand), cmd.args.first()) {
            if next.starts_with('-') || !lists_subcommand(&h, next) {
                break;
            }
            let next = cmd.args.remove(0);
            cmd.subcommand.push(next);
        }
        let shown = cmd.words.join(" ");
        match help(&cmd.subcommand) {
            Err(e) => problems.push(format!("{at}: `{shown}`: {e}")),
            Ok(h) => {
                for option in cmd.long_options().filter(|o| !help_has_option(&h, o)) {
                    problems.push(format!("{at}: `{shown}`: {option} is not in `gafix {} --help`", cmd.subcommand.join(" ")));
                }
            }
        }
    }
    report("gafix command lines", problems);
}
