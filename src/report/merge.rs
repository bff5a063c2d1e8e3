//! `gafix report merge`: the JSON reports of a run's slices (`--slice K/N`, one per worker)
//! joined into the report one controller would have written for the whole fleet.

use std::path::Path;

use crate::engine::events::RunReport;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{0}")]
    Mismatch(String),
}

/// Reads each report file.
pub fn read(paths: &[impl AsRef<Path>]) -> Result<Vec<RunReport>, MergeError> {
    paths
        .iter()
        .map(|p| {
            let p = p.as_ref();
            let fail = |message: String| MergeError::Read { path: p.display().to_string(), message };
            let text = std::fs::read_to_string(p).map_err(|e| fail(e.to_string()))?;
            serde_json::from_str(&text).map_err(|e| fail(format!("not a gafix JSON report ({e})")))
        })
        .collect()
}

/// One report for the fleet: plays joined by position (the slices ran the same playbook),
/// each host's records and stats from the one slice that ran it; the exit code is the
/// fleet's, computed again.
pub fn merge(reports: Vec<RunReport>) -> Result<RunReport, MergeError> {
    let mut iter = reports.into_iter();
    let Some(mut out) = iter.next() else { return Err(MergeError::Mismatch("no reports to merge".into())) };
    let mut end = out.started_unix as f64 + out.duration_s;
    for r in iter {
        if r.playbook != out.playbook || r.check_mode != out.check_mode {
            return Err(MergeError::Mismatch(format!(
                "the reports are of different runs: playbook {} (check mode {}) and {} (check mode {})",
                out.playbook, out.check_mode, r.playbook, r.check_mode
            )));
        }
        let names = |rep: &RunReport| rep.plays.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        if names(&r) != names(&out) {
            return Err(MergeError::Mismatch(format!("the reports have different plays: {:?} and {:?}", names(&out), names(&r))));
        }
        if let Some(h) = r.stats.keys().find(|h| out.stats.contains_key(*h)) {
            return Err(MergeError::Mismatch(format!("host {h} is in two reports: the slices overlap")));
        }
        end = end.max(r.started_unix as f64 + r.duration_s);
        out.started_unix = out.started_unix.min(r.started_unix);
        out.interrupted |= r.interrupted;
        for (mine, theirs) in out.plays.iter_mut().zip(r.plays) {
            mine.hosts.extend(theirs.hosts);
            mine.batches.extend(theirs.batches);
            mine.outcomes.extend(theirs.outcomes);
            if mine.stopped.is_none() {
                mine.stopped = theirs.stopped;
            }
        }
        out.stats.extend(r.stats);
        out.round_trips.extend(r.round_trips);
        out.tasks.extend(r.tasks);
    }
    out.duration_s = end - out.started_unix as f64;
    out.exit_code = out.compute_exit_code();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{PlayOutcome, PlayReport, Stats};

    fn report(hosts: &[(&str, Stats, PlayOutcome)]) -> RunReport {
        let mut r = RunReport::new("site.yml".into(), false);
        let mut play =
            PlayReport { name: "p".into(), gate: None, hosts: vec![], batches: vec![], outcomes: Default::default(), stopped: None };
        for (h, stats, outcome) in hosts {
            r.stats.insert(h.to_string(), *stats);
            play.hosts.push(h.to_string());
            play.outcomes.insert(h.to_string(), outcome.clone());
        }
        r.plays.push(play);
        r.exit_code = r.compute_exit_code();
        r
    }

    #[test]
    fn slices_merge_into_the_fleet_and_its_exit_code() {
        let ok = Stats { ok: 2, ..Default::default() };
        let failed = Stats { ok: 1, failed: 1, ..Default::default() };
        let a = report(&[("a", ok, PlayOutcome::Passed)]);
        let b = report(&[("b", failed, PlayOutcome::Failed { task: "t".into(), msg: "m".into() })]);
        assert_eq!((a.exit_code, b.exit_code), (0, 2));
        // Through JSON and back, as the files are read.
        let back: Vec<RunReport> = [a, b].iter().map(|r| serde_json::from_str(&crate::report::to_json(r)).unwrap()).collect();
        let merged = merge(back).unwrap();
        assert_eq!(merged.exit_code, 2);
        assert_eq!(merged.stats.len(), 2);
        assert_eq!(merged.plays[0].outcomes.len(), 2);
        let overlap = merge(vec![report(&[("a", ok, PlayOutcome::Passed)]), report(&[("a", ok, PlayOutcome::Passed)])]).unwrap_err();
        assert!(overlap.to_string().contains("host a is in two reports"), "{overlap}");
    }
}
