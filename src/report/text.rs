//! Text output: one newline-terminated line per task and host, as events arrive (it reads
//! well in a CI log with no TTY), then ansible-playbook's recap and the gate's verdicts.

use std::io::Write;
use std::sync::Mutex;

use crate::engine::events::{Event, PlayOutcome, Reporter, RunReport, Status};

pub struct TextReporter {
    out: Mutex<Box<dyn Write + Send>>,
    color: bool,
    verbose: u8,
    /// On a terminal, a status line under the output; in a log, nothing but lines.
    progress: Option<indicatif::ProgressBar>,
}

const RESET: &str = "\x1b[0m";

/// Text from hosts and files as the terminal should show it: control characters (an ESC
/// that would recolour or retitle the terminal, a NUL, a carriage return that would hide
/// the line) escaped; newlines and tabs kept.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn color_of(status: Status) -> &'static str {
    match status {
        Status::Ok => "\x1b[32m",
        Status::Changed => "\x1b[33m",
        Status::Failed | Status::Unreachable => "\x1b[31m",
        Status::Skipped => "\x1b[36m",
    }
}

impl TextReporter {
    pub fn new(out: Box<dyn Write + Send>, color: bool, verbose: u8) -> Self {
        TextReporter { out: Mutex::new(out), color, verbose, progress: None }
    }

    /// Adds a progress line on stderr; call only when stderr is a terminal.
    pub fn with_progress(mut self) -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{pos}/{len} hosts] {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        self.progress = Some(bar);
        self
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// The one way text reaches the output: secrets masked.
    fn line(&self, text: &str) {
        let text = crate::secrets::redact(text);
        let mut out = self.out.lock().unwrap();
        let mut write = || {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        };
        match &self.progress {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    pub fn recap(&self, report: &RunReport) {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        let mut lines = vec![String::new(), "PLAY RECAP ".to_string() + &"*".repeat(68)];
        // Hosts by name, as ansible-playbook's recap lists them.
        let mut hosts: Vec<(&String, &crate::engine::events::Stats)> = report.stats.iter().collect();
        hosts.sort_by(|a, b| a.0.cmp(b.0));
        for (host, s) in hosts {
            let status = if s.unreachable > 0 || s.failed > 0 {
                Status::Failed
            } else if s.changed > 0 {
                Status::Changed
            } else {
                Status::Ok
            };
            lines.push(format!(
                "{} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={:<4}",
                self.paint(color_of(status), &format!("{:<26}", escape_controls(host))),
                s.ok,
                s.changed,
                s.unreachable,
                s.failed,
                s.skipped,
                s.rescued,
                s.ignored
            ));
        }
        for play in report.plays.iter().filter(|p| p.gate.is_some()) {
            let gate = play.gate.as_deref().unwrap_or("");
            let Some(source) = report.plays.iter().find(|p| p.name == gate) else { continue };
            lines.push(String::new());
            lines.push(format!("GATE {gate} -> {} ", play.name) + &"*".repeat(50usize.saturating_sub(gate.len() + play.name.len())));
            for (host, outcome) in &source.outcomes {
                let (label, status) = match outcome {
                    PlayOutcome::Passed => ("open  ", Status::Ok),
                    _ => ("closed", Status::Failed),
                };
                let after = play.outcomes.get(host).map(|o| o.summary()).unwrap_or_else(|| "not run".into());
                // Both views of the agent, when the gate asked the hypervisor too.
                let views = report.tasks.iter().rev().find(|t| {
                    t.host == *host
                        && t.play == source.name
                        && t.module.is_none()
                        && t.task.starts_with("verify ")
                        && t.msg.contains("; hypervisor: ")
                });
                let detail = match (outcome, views) {
                    (PlayOutcome::Passed, Some(v)) => format!("{} {after} ({})", play.name, v.msg),
                    (PlayOutcome::Passed, None) => format!("{} {after}", play.name),
                    (other, _) => other.brief(),
                };
                let host = escape_controls(host);
                lines.push(format!(
                    "{} : {} {}",
                    format_args!("{host:<26}"),
                    self.paint(color_of(status), label),
                    escape_controls(&detail)
                ));
            }
        }
        for play in &report.plays {
            if let Some(reason) = &play.stopped {
                lines.push(format!("play '{}' stopped early: {}", escape_controls(&play.name), escape_controls(reason)));
            }
        }
        if report.interrupted {
            lines.push(
                "interrupted: no new work was started after the interruption; hosts not finished are reported 'not run' (package transactions go on on their hosts)"
                    .into(),
            );
        }
        lines.push(format!("finished in {:.1} s, exit code {}", report.duration_s, report.exit_code));
        self.line(&lines.join("\n"));
    }
}

impl Reporter for TextReporter {
    fn event(&self, event: &Event) {
        match event {
            Event::PlayStart { name, hosts, batches, check_mode } => {
                let mode = if *check_mode { ", check mode" } else { "" };
                let b = if *batches > 1 { format!(", {batches} batches") } else { String::new() };
                let name = escape_controls(name);
                self.line(&format!("\nPLAY [{name}] ({hosts} host{}{b}{mode})", if *hosts == 1 { "" } else { "s" }));
                if let Some(bar) = &self.progress {
                    bar.set_length(*hosts as u64);
                    bar.set_position(0);
                    bar.set_message(format!("play {name}"));
                }
            }
            Event::BatchStart { index, count, hosts, .. } => self.line(&format!("batch {index}/{count}: {}", hosts.join(", "))),
            Event::TaskStart { role, task } => {
                let role = role.map(|r| format!("{} : ", escape_controls(r))).unwrap_or_default();
                let title = format!("TASK [{role}{}] ", escape_controls(task));
                let stars = "*".repeat(79usize.saturating_sub(title.chars().count()).max(3));
                self.line(&format!("\n{title}{stars}"));
            }
            Event::Task(r) => {
                let c = escape_controls;
                let label = if r.ignored { "failed (ignored)".to_string() } else { r.status.label().to_string() };
                let role = r.role.as_deref().map(|r| format!("{} : ", c(r))).unwrap_or_default();
                let mut text = format!("{}: [{}] {role}{}", self.paint(color_of(r.status), &label), c(&r.host), c(&r.task));
                if !r.msg.is_empty() {
                    text.push_str(" => ");
                    text.push_str(&c(&r.msg));
                }
                if self.verbose > 0 {
                    text.push_str(&format!(" ({:.2} s)", r.duration_s));
                }
                if r.status == Status::Failed {
                    if !r.location.is_empty() {
                        text.push_str(&format!("\n    task: {}", c(&r.location)));
                    }
                    if let Some(rc) = r.rc {
                        text.push_str(&format!("\n    exit code: {rc}"));
                    }
                    if let Some(tail) = &r.stderr_tail {
                        // Each line once: the message may already end with the last one.
                        for l in tail.lines().filter(|l| !l.trim().is_empty() && !r.msg.contains(l.trim())) {
                            text.push_str(&format!("\n    | {}", c(l)));
                        }
                    }
                }
                if let Some(d) = &r.diff {
                    for l in d.before.lines() {
                        text.push_str(&format!("\n    {}", self.paint("\x1b[31m", &format!("- {}", c(l)))));
                    }
                    for l in d.after.lines() {
                        text.push_str(&format!("\n    {}", self.paint("\x1b[32m", &format!("+ {}", c(l)))));
                    }
                }
                self.line(&text);
            }
            Event::BatchStopped { play, reason } => {
                self.line(&format!("stopping play '{}': {}", escape_controls(play), escape_controls(reason)))
            }
            Event::Gated { host, reason, .. } => {
                let (host, reason) = (escape_controls(host), escape_controls(reason));
                self.line(&format!("{}: [{host}] {reason}", self.paint(color_of(Status::Skipped), "gated")));
            }
            Event::HostDone => {
                if let Some(bar) = &self.progress {
                    bar.inc(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::TaskRecord;

    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn host_output_cannot_drive_the_terminal() {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        let reporter = TextReporter::new(Box::new(Captured(buf.clone())), true, 0);
        let record = TaskRecord {
            host: "h1".into(),
            play: "p".into(),
            role: None,
            task: "t\x1b]0;owned\x07".into(),
            module: None,
            location: "x.yml:1:1".into(),
            status: Status::Failed,
            changed: false,
            ignored: false,
            rescued: false,
            msg: "boom\x1b[2J\r\0".into(),
            rc: Some(1),
            stderr_tail: Some("\x1b[31mred".into()),
            diff: None,
            started_s: 0.0,
            duration_s: 0.0,
        };
        reporter.event(&Event::Task(&record));
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(out.contains("t\\x1b]0;owned\\x07") && out.contains("boom\\x1b[2J\\x0d\\x00"), "{out:?}");
        // The only ESC bytes left are our own colours.
        assert_eq!(out.matches('\x1b').count(), 2, "{out:?}");
    }
}
