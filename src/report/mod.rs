//! Reporters: live text lines and the recap, a JSON document, JUnit XML, a retry file.

pub mod junit;
pub mod text;

use std::path::Path;

use crate::engine::events::RunReport;

pub fn write_json(report: &RunReport, path: &Path) -> std::io::Result<()> {
    std::fs::write(path, to_json(report) + "\n")
}

/// The JSON report, secrets masked.
pub fn to_json(report: &RunReport) -> String {
    let text = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    crate::secrets::redact(&text).into_owned()
}

/// Hosts that failed or were unreachable, one per line: `--limit @FILE` reads it back.
pub fn write_retry(report: &RunReport, path: &Path) -> std::io::Result<()> {
    let hosts = report.failed_hosts();
    if hosts.is_empty() {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        return Ok(());
    }
    std::fs::write(path, hosts.join("\n") + "\n")
}
