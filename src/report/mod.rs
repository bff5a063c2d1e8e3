//! Reporters: live text lines and the recap, a JSON document, JUnit XML, a retry file.

pub mod junit;
pub mod merge;
pub mod text;

use std::path::Path;

use crate::engine::events::RunReport;

/// Checks, before the run, that a report can be written at `path`: a regular file or
/// nothing there (never a symlink or a directory), in a directory where we can create files.
pub fn check_path(path: &Path) -> Result<(), String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() {
            return Err(format!("{}: is a symlink; reports are written only to regular files", path.display()));
        }
        if !meta.is_file() {
            return Err(format!("{}: exists and is not a regular file", path.display()));
        }
    }
    let dir = directory_of(path);
    tempfile::Builder::new()
        .prefix(".gafix-check-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("{}: cannot write in {}: {e}", path.display(), dir.display()))
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes a whole file or nothing: a temporary file in the same directory, renamed over
/// `path` (a rename replaces a symlink itself, never its target; nothing is truncated in
/// place, so a reader never sees half a report).
pub fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = tempfile::Builder::new().prefix(".gafix-report-").tempfile_in(directory_of(path))?;
    file.write_all(content.as_bytes())?;
    file.as_file().sync_all()?;
    // Reports are for the people and jobs that can read the directory, as any other file.
    use std::os::unix::fs::PermissionsExt;
    file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

pub fn write_json(report: &RunReport, path: &Path) -> std::io::Result<()> {
    write_atomic(path, &(to_json(report) + "\n"))
}

/// The JSON report, secrets masked.
pub fn to_json(report: &RunReport) -> String {
    let text = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    crate::secrets::redact(&text).into_owned()
}

/// Hosts that failed or were unreachable, one per line: `--limit @FILE` reads it back.
/// When none did, a retry file left by an earlier run is removed, but only a file that
/// reads as one (every line a host of `is_host`): a run never deletes a file it did not write.
pub fn write_retry(report: &RunReport, path: &Path, is_host: impl Fn(&str) -> bool) -> std::io::Result<()> {
    let hosts = report.failed_hosts();
    if !hosts.is_empty() {
        return write_atomic(path, &(hosts.join("\n") + "\n"));
    }
    match std::fs::read_to_string(path) {
        Ok(text) if text.lines().all(|l| l.trim().is_empty() || is_host(l.trim())) => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::other("not removed: it does not read as a retry file (a line is not a host of the inventory)")),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_paths_are_checked_and_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious.txt");
        std::fs::write(&target, "keep me").unwrap();
        let link = dir.path().join("report.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(check_path(&link).unwrap_err().contains("symlink"));
        assert!(check_path(dir.path()).unwrap_err().contains("not a regular file"));
        assert!(check_path(&dir.path().join("no/such/dir/r.json")).is_err());
        let fine = dir.path().join("r.json");
        check_path(&fine).unwrap();
        write_atomic(&fine, "{}").unwrap();
        assert_eq!(std::fs::read_to_string(&fine).unwrap(), "{}");
        // Written over a symlink anyway (a race after the check): the link is replaced, its
        // target never touched.
        write_atomic(&link, "{}").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".gafix")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
