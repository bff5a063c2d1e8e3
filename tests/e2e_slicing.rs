//! Slicing a fleet across workers (`--slice K/N`, AWX's job slicing) and merging the slices'
//! reports (`gafix report merge`): on real containers, N slices cover every host exactly once,
//! and the merged report says what one run over the whole fleet says.

mod support;

use std::collections::BTreeSet;

use serde_json::Value as Json;
use support::{read, Fleet, Host, Kind};

fn hosts_of(report: &Json) -> BTreeSet<String> {
    report["stats"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

#[test]
#[ignore = "needs systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn slices_cover_the_fleet_once_and_merge_into_the_single_run() {
    let hosts = Host::start_all(&[("slice-a", Kind::Container), ("slice-b", Kind::Container), ("slice-c", Kind::Container)]);
    hosts[1].sh("touch /tmp/fail-here");
    let refs: Vec<&Host> = hosts.iter().collect();
    let fleet = Fleet::new();
    let inv = fleet.inventory(&refs);
    let book = fleet.write(
        "site.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: hello\n      command: 'true'\n    - name: not on the marked host\n      shell: test ! -e /tmp/fail-here\n",
    );
    let (inv, book) = (inv.to_str().unwrap(), book.to_str().unwrap());
    let whole = fleet.gafix(&["-i", inv, book]);
    assert_eq!(whole.code, 2, "{}", whole.explain());

    let mut seen = BTreeSet::new();
    let mut reports = Vec::new();
    for k in 1..=2 {
        let path = fleet.path(&format!("slice{k}.json"));
        let slice = fleet.gafix(&["-i", inv, book, "--slice", &format!("{k}/2")]);
        // The slice's own JSON report (the helper asks for one), as a worker would keep it.
        std::fs::write(&path, serde_json::to_string(&slice.report).unwrap()).unwrap();
        let mine = hosts_of(&slice.report);
        assert!(!mine.is_empty(), "slice {k}/2 ran no host: {}", slice.explain());
        assert!(mine.is_disjoint(&seen), "slice {k}/2 ran a host another slice ran");
        seen.extend(mine);
        reports.push(path);
    }
    assert_eq!(seen, hosts_of(&whole.report), "the slices cover the fleet");

    let merged_json = fleet.path("merged.json");
    let merged_junit = fleet.path("merged.xml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["report", "merge"])
        .args(&reports)
        .arg("--json")
        .arg(&merged_json)
        .arg("--junit")
        .arg(&merged_junit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "the fleet's exit code: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PLAY RECAP"), "{stdout}");
    let merged: Json = serde_json::from_str(&read(&merged_json)).unwrap();
    assert_eq!(merged["stats"].as_object().unwrap().len(), 3);
    for h in &hosts {
        assert_eq!(merged["stats"][&h.name], whole.report["stats"][&h.name], "{}: the merged stats are the single run's", h.name);
        let outcome = |r: &Json| r["plays"][0]["outcomes"][&h.name]["result"].clone();
        assert_eq!(outcome(&merged), outcome(&whole.report), "{}", h.name);
    }
    assert_eq!(merged["exit_code"], whole.report["exit_code"]);
    let junit = read(&merged_junit);
    assert!(junit.contains("tests=\"3\"") && junit.contains("failures=\"1\""), "{junit}");
}
