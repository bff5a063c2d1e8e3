//! JUnit XML: one testcase per host and role (or play, for tasks outside roles).

use std::path::Path;

use indexmap::IndexMap;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::engine::events::{RunReport, Status, TaskRecord};

pub fn write(report: &RunReport, path: &Path) -> std::io::Result<()> {
    super::write_atomic(path, &render(report)?)
}

pub fn render(report: &RunReport) -> std::io::Result<String> {
    let mut junit = Report::new("gafix");
    let mut suite = TestSuite::new(report.playbook.clone());
    let mut groups: IndexMap<(String, String, String), Vec<&TaskRecord>> = IndexMap::new();
    for r in &report.tasks {
        let unit = r.role.clone().unwrap_or_else(|| r.play.clone());
        groups.entry((r.host.clone(), r.play.clone(), unit)).or_default().push(r);
    }
    for ((host, play, unit), records) in groups {
        let failed: Vec<&&TaskRecord> = records
            .iter()
            .filter(|r| (r.status == Status::Failed && !r.ignored && !r.rescued) || (r.status == Status::Unreachable && !r.ignored))
            .collect();
        let all_skipped = records.iter().all(|r| r.status == Status::Skipped);
        let status = if let Some(first) = failed.first() {
            let kind = if first.status == Status::Unreachable { NonSuccessKind::Error } else { NonSuccessKind::Failure };
            let mut s = TestCaseStatus::non_success(kind);
            if let TestCaseStatus::NonSuccess { message, description, ty, .. } = &mut s {
                // The cause and its remedy once, in the description; the message names the task.
                *message = Some(format!("\"{}\" {}", first.task, first.status.label()).into());
                *ty = Some(first.status.label().into());
                let mut d = format!("task: {}\n{}", first.location, first.msg);
                if let Some(rc) = first.rc {
                    d.push_str(&format!("\nexit code: {rc}"));
                }
                if let Some(t) = &first.stderr_tail {
                    for l in t.lines().filter(|l| !l.trim().is_empty() && !first.msg.contains(l.trim())) {
                        d.push_str(&format!("\n{l}"));
                    }
                }
                *description = Some(d.into());
            }
            s
        } else if all_skipped {
            let mut s = TestCaseStatus::skipped();
            if let TestCaseStatus::Skipped { message, .. } = &mut s {
                *message = records.first().map(|r| r.msg.clone().into());
            }
            s
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(format!("{host}: {unit}"), status);
        case.set_classname(format!("{play}.{host}"));
        case.set_time(std::time::Duration::from_secs_f64(records.iter().map(|r| r.duration_s).sum()));
        let log: Vec<String> = records
            .iter()
            .map(|r| match failed.first() {
                Some(f) if std::ptr::eq(**f, *r) => format!("{}: {} (see the failure)", r.status.label(), r.task),
                _ => format!("{}: {} => {}", r.status.label(), r.task, r.msg),
            })
            .collect();
        case.set_system_out(log.join("\n"));
        suite.add_test_case(case);
    }
    for play in &report.plays {
        for (host, outcome) in &play.outcomes {
            if let crate::engine::events::PlayOutcome::Gated { reason } = outcome {
                let mut s = TestCaseStatus::skipped();
                if let TestCaseStatus::Skipped { message, .. } = &mut s {
                    *message = Some(format!("gated: {reason}").into());
                }
                let mut case = TestCase::new(format!("{host}: {}", play.name), s);
                case.set_classname(format!("{}.{host}", play.name));
                suite.add_test_case(case);
            }
        }
    }
    // JUnit readers count skipped cases from `skipped=` (quick-junit writes `disabled=`).
    let skipped = suite.test_cases.iter().filter(|c| matches!(c.status, TestCaseStatus::Skipped { .. })).count();
    suite.extra.insert("skipped".into(), skipped.to_string().into());
    if report.interrupted {
        // The run did not finish: say so where CI tools look, as a failing case.
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        if let TestCaseStatus::NonSuccess { message, ty, .. } = &mut s {
            *message = Some("the run was interrupted before every host finished".into());
            *ty = Some("interrupted".into());
        }
        let mut case = TestCase::new("gafix: run interrupted", s);
        case.set_classname("gafix");
        suite.add_test_case(case);
    }
    junit.add_test_suite(suite);
    junit.to_string().map(|xml| crate::secrets::redact(&xml).into_owned()).map_err(std::io::Error::other)
}
