//! The patch_reboot stage on real VMs: rolling batches, reboot timeouts, check mode.

mod support;
use std::time::Duration;
use support::{Fleet, Host, Kind};

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn serial_1_reboots_one_vm_at_a_time() {
    let hosts = Host::start_all(&[("patch-a", Kind::Vm), ("patch-b", Kind::Vm)]);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&hosts[0], &hosts[1]]);
    let book = fleet.write(
        "rolling.yml",
        "- name: qemu_ga_fix\n  hosts: all\n  roles: [qemu_ga_fix]\n- name: patch_reboot\n  hosts: all\n  serial: 1\n  gafix_gate: qemu_ga_fix\n  roles: [patch_reboot]\n",
    );
    let run = fleet.gafix(&["-i", inv.to_str().unwrap(), book.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let play = run.report["plays"].as_array().unwrap().iter().find(|p| p["name"] == "patch_reboot").unwrap();
    assert_eq!(play["batches"].as_array().unwrap().len(), 2, "{play}");
    let window = |h: &Host| {
        let t = run.task(&h.name, "Reboot when required");
        assert_eq!(t["status"], "changed", "{t}");
        let start = t["started_s"].as_f64().unwrap();
        (start, start + t["duration_s"].as_f64().unwrap())
    };
    let (a, b) = (window(&hosts[0]), window(&hosts[1]));
    assert!(a.1 <= b.0 || b.1 <= a.0, "reboot windows overlap: {a:?} {b:?}");
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn a_vm_that_does_not_come_back_fails_with_the_timeout_and_the_other_is_unaffected() {
    let hosts = Host::start_all(&[("patch-lost", Kind::Vm), ("patch-fine", Kind::Vm)]);
    let (lost, fine) = (&hosts[0], &hosts[1]);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[lost, fine]);
    let book = fleet.write(
        "reboot.yml",
        "- hosts: all\n  become: true\n  tasks:\n    - name: reboot\n      reboot: {reboot_timeout: 120, msg: gafix test}\n",
    );
    let fine_boot = fine.boot_id();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gafix"))
        // A generous connect timeout: three tests boot VMs under software emulation at once.
        .args(["converge", "-i", inv.to_str().unwrap(), book.to_str().unwrap(), "-T", "60", "--json"])
        .arg(fleet.path("report.json"))
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // As soon as the lost VM goes down for its reboot, pull the plug instead of letting it boot.
    // Down means several failed connections in a row: under load a single one can time out
    // while the VM is still up, and unplugging it then would test something else.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut failures = 0;
    while failures < 4 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("gafix ended before the VM went down ({}):\n{}", out.status, String::from_utf8_lossy(&out.stdout));
        }
        assert!(std::time::Instant::now() < deadline, "the VM never went down");
        failures = if lost.answers() { 0 } else { failures + 1 };
        std::thread::sleep(Duration::from_millis(500));
    }
    lost.power_off();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&support::read(&fleet.path("report.json"))).unwrap();
    let task = |h: &str| report["tasks"].as_array().unwrap().iter().find(|t| t["host"] == h && t["task"] == "reboot").cloned().unwrap();
    let failed = task(&lost.name);
    assert_eq!(failed["status"], "failed");
    assert!(failed["msg"].as_str().unwrap().contains("did not come back within reboot_timeout (120 s)"), "{failed}");
    assert_eq!(task(&fine.name)["status"], "changed");
    assert_ne!(fine.boot_id(), fine_boot);
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn check_mode_says_it_would_upgrade_and_reboot_and_does_neither() {
    let vm = Host::start("patch-check", Kind::Vm);
    vm.sh("sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-guest-agent >/dev/null && sudo systemctl start qemu-guest-agent && sudo touch /var/run/reboot-required");
    let boot = vm.boot_id();
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&vm]);
    let run = fleet.gafix(&["-i", inv.to_str().unwrap(), "--check"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.task(&vm.name, "Upgrade packages")["msg"], "would upgrade 1 package");
    assert_eq!(run.task(&vm.name, "Reboot when required")["msg"], "would reboot");
    assert_eq!(vm.package_installed("gafix-testpkg").as_deref(), Some("1"));
    assert_eq!(vm.boot_id(), boot);
}
