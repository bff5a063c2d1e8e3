//! `gafix converge` on real QEMU VMs and systemd containers: the guest agent, the gate,
//! check mode, the scope guard, unreachable hosts, masked units, the dpkg lock, sudo.

mod support;
use std::time::Duration;
use support::{Fleet, Host, Kind};

const GA_PLAYBOOK: &str = "- hosts: all\n  roles:\n    - qemu_ga_fix\n";

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn the_seed_role_converges_a_fresh_vm_and_a_second_run_changes_nothing() {
    let vm = Host::start("conv-fresh", Kind::Vm);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&vm]);
    let book = fleet.write("ga.yml", GA_PLAYBOOK);
    let run = fleet.gafix(&["-i", inv.to_str().unwrap(), book.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.task(&vm.name, "Install QEMU Guest Agent")["status"], "changed");
    assert_eq!(run.task(&vm.name, "Enable and start QEMU Guest Agent")["status"], "changed");
    assert_eq!(run.task(&vm.name, "verify qemu-guest-agent is active")["status"], "ok");
    // The agent answers on the host side of the channel.
    assert_eq!(vm.qga(r#"{"execute":"guest-ping"}"#), serde_json::json!({"return": {}}));
    // The probe; the install, which brings back the package and unit it changed; the start
    // and enable, which brings back the unit.
    assert_eq!(run.report["round_trips"][&vm.name], 3, "{}", run.explain());

    let again = fleet.gafix(&["-i", inv.to_str().unwrap(), book.to_str().unwrap()]);
    assert_eq!(again.code, 0, "{}", again.explain());
    assert_eq!(again.stats(&vm.name)["changed"], 0, "{}", again.explain());
    assert_eq!(again.report["round_trips"][&vm.name], 1, "a converged host costs the probe alone");
    assert!(again.stdout.contains("changed=0"), "{}", again.stdout);
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn a_vm_without_the_channel_fails_fast_and_is_gated_while_a_healthy_vm_is_patched() {
    let hosts = Host::start_all(&[("conv-noga", Kind::VmWithoutChannel), ("conv-healthy", Kind::Vm)]);
    let (noga, healthy) = (&hosts[0], &hosts[1]);
    let boot_before = healthy.boot_id();
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[noga, healthy]);
    // The pre-flight check says what the run will say: the channel-less VM fails, before
    // the package that brings the unit is even installed.
    let check = fleet.gafix(&["-i", inv.to_str().unwrap(), "--check"]);
    assert_eq!(check.code, 2, "{}", check.explain());
    let predicted = check.task(&noga.name, "Enable and start QEMU Guest Agent");
    assert_eq!(predicted["status"], "failed", "{}", check.explain());
    assert!(predicted["msg"].as_str().unwrap().contains("qm set VMID --agent enabled=1"), "{predicted}");
    assert_eq!(check.outcome("patch_reboot", &noga.name)["result"], "gated");
    assert_eq!(check.task(&healthy.name, "verify qemu-guest-agent is active")["status"], "skipped", "unknown until applied");
    assert!(noga.package_installed("qemu-guest-agent").is_none(), "check mode changed nothing");

    let run = fleet.gafix(&["-i", inv.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.explain());

    let failed = run.task(&noga.name, "Enable and start QEMU Guest Agent");
    assert_eq!(failed["status"], "failed");
    let msg = failed["msg"].as_str().unwrap();
    assert!(msg.contains("org.qemu.guest_agent.0") && msg.contains("qm set VMID --agent enabled=1"), "{msg}");
    // Not systemd's 90 s device timeout: gafix saw the missing device before starting.
    assert!(failed["duration_s"].as_f64().unwrap() < 60.0, "{failed}");
    let gated = run.outcome("patch_reboot", &noga.name);
    assert_eq!(gated["result"], "gated");
    assert!(gated["reason"].as_str().unwrap().contains("qemu_ga_fix failed"), "{gated}");
    assert!(run.stdout.contains("GATE qemu_ga_fix -> patch_reboot"), "{}", run.stdout);
    assert!(run.tasks(&noga.name).iter().all(|t| t["play"] == "qemu_ga_fix"), "patch_reboot never touched the gated VM");

    // The healthy VM went through both stages: upgraded, rebooted into a new boot, agent back.
    assert_eq!(run.outcome("patch_reboot", &healthy.name)["result"], "passed");
    assert_eq!(run.task(&healthy.name, "Upgrade packages")["status"], "changed");
    assert_eq!(run.task(&healthy.name, "Reboot when required")["status"], "changed");
    assert_ne!(healthy.boot_id(), boot_before, "the host really rebooted");
    assert_eq!(healthy.package_installed("gafix-testpkg").as_deref(), Some("2"));
    assert_eq!(healthy.sh("systemctl is-active qemu-guest-agent"), "active");

    // Again: nothing to upgrade, no reboot, nothing changed.
    let again = fleet.gafix(&["-i", inv.to_str().unwrap(), "-l", &healthy.name]);
    assert_eq!(again.code, 0, "{}", again.explain());
    assert_eq!(again.stats(&healthy.name)["changed"], 0, "{}", again.explain());
    assert_eq!(again.task(&healthy.name, "Reboot when required")["status"], "skipped");
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn check_mode_reports_what_would_change_and_changes_nothing() {
    let vm = Host::start("conv-check", Kind::Vm);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&vm]);
    let book = fleet.write("ga.yml", GA_PLAYBOOK);
    let run = fleet.gafix(&["-i", inv.to_str().unwrap(), book.to_str().unwrap(), "--check", "--diff"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let install = run.task(&vm.name, "Install QEMU Guest Agent");
    assert_eq!(install["status"], "changed");
    assert!(
        install["msg"].as_str().unwrap().contains("would install") && install["msg"].as_str().unwrap().contains("qemu-guest-agent"),
        "{install}"
    );
    // The unit arrives with the package: predicted, not an error as in Ansible.
    let start = run.task(&vm.name, "Enable and start QEMU Guest Agent");
    assert_eq!(start["status"], "changed", "{start}");
    assert!(start["msg"].as_str().unwrap().contains("would be"), "{start}");
    assert!(run.stdout.contains("+ qemu-guest-agent: installed"), "--diff shows the change: {}", run.stdout);
    assert!(vm.package_installed("qemu-guest-agent").is_none(), "check mode installed nothing");
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn containers_are_not_applicable_and_nothing_runs_on_them() {
    let ct = Host::start("conv-ct", Kind::Container);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);
    let run = fleet.gafix(&["-i", inv.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.explain());
    let outcome = run.outcome("qemu_ga_fix", &ct.name);
    assert_eq!(outcome["result"], "not_applicable");
    assert_eq!(outcome["why"], "a container (systemd-nspawn), not a VM");
    assert!(run.stdout.contains("not applicable: a container (systemd-nspawn), not a VM"), "{}", run.stdout);
    assert_eq!(run.outcome("patch_reboot", &ct.name)["result"], "gated");
    assert!(ct.package_installed("qemu-guest-agent").is_none(), "nothing was installed");
    assert_eq!(ct.package_installed("gafix-testpkg").as_deref(), Some("1"), "nothing was upgraded");
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn an_unreachable_host_exits_4_and_the_others_converge() {
    let ct = Host::start("conv-reach", Kind::Container);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);
    // A host on a closed loopback port: refused at once.
    let mut text = support::read(&inv);
    text.push_str("    gone:\n      ansible_host: 127.0.0.1\n      ansible_port: 9\n");
    std::fs::write(&inv, text).unwrap();
    let book =
        fleet.write("pkg.yml", "- hosts: all\n  become: true\n  tasks:\n    - name: agent package\n      apt: {name: qemu-guest-agent}\n");
    let run = fleet.gafix(&["-i", inv.to_str().unwrap(), book.to_str().unwrap(), "-T", "5"]);
    assert_eq!(run.code, 4, "{}", run.explain());
    assert_eq!(run.stats("gone")["unreachable"], 1);
    assert_eq!(run.task(&ct.name, "agent package")["status"], "changed");
    assert!(ct.package_installed("qemu-guest-agent").is_some());
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn a_masked_unit_is_a_clear_error_until_unmasked() {
    let ct = Host::start("conv-mask", Kind::Container);
    ct.sh("printf '[Service]\\nExecStart=/bin/sleep infinity\\n' | sudo tee /lib/systemd/system/gafix-demo.service >/dev/null && sudo systemctl daemon-reload && sudo systemctl mask gafix-demo");
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);
    let run = fleet.run_tasks(&inv, "start.yml", "- name: start it\n  systemd: {name: gafix-demo, state: started}");
    assert_eq!(run.code, 2, "{}", run.explain());
    let msg = run.task(&ct.name, "start it")["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("gafix-demo is masked") && msg.contains("systemctl unmask gafix-demo"), "{msg}");
    let run = fleet.run_tasks(&inv, "unmask.yml", "- name: unmask and start\n  systemd: {name: gafix-demo, state: started, masked: false}");
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(ct.sh("systemctl is-active gafix-demo"), "active");
}

const HOLD_LOCK: &str = r#"use Fcntl;
open(my $f, ">>", "/var/lib/dpkg/lock-frontend") or die "open: $!";
my $lock = pack("s s x4 q q i x4", F_WRLCK, 0, 0, 0, 0);
fcntl($f, F_SETLKW, $lock) or die "lock: $!";
print "locked\n";
sleep($ARGV[0]);
"#;

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn the_dpkg_lock_is_waited_for_and_a_holder_past_lock_timeout_is_named() {
    let ct = Host::start("conv-lock", Kind::Container);
    ct.sh(&format!("cat > /tmp/holdlock.pl <<'EOF'\n{HOLD_LOCK}EOF"));
    // Like unattended-upgrades after boot: something else holds the dpkg lock for 20 s.
    ct.sh("sudo sh -c 'nohup perl /tmp/holdlock.pl 20 >/tmp/lock.log 2>&1 &' ; for i in 1 2 3 4 5 6 7 8 9 10; do grep -q locked /tmp/lock.log 2>/dev/null && break; sleep 0.5; done; cat /tmp/lock.log");
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);
    let run = fleet.run_tasks(&inv, "impatient.yml", "- name: install\n  apt: {name: qemu-guest-agent, lock_timeout: 2}");
    assert_eq!(run.code, 2, "{}", run.explain());
    let msg = run.task(&ct.name, "install")["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("still held after 2 s by process") && msg.contains("(perl)"), "{msg}");

    let run = fleet.run_tasks(&inv, "patient.yml", "- name: install\n  apt: {name: qemu-guest-agent}");
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.task(&ct.name, "install")["status"], "changed");
    assert!(ct.package_installed("qemu-guest-agent").is_some());
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn sudo_that_needs_a_password_fails_fast_and_a_given_password_stays_secret() {
    let ct = Host::start("conv-sudo", Kind::Container);
    ct.sh(
        "sudo useradd -m -s /bin/sh pwuser && echo 'pwuser:s3cret-Pw' | sudo chpasswd && \
         echo 'pwuser ALL=(ALL) ALL' | sudo tee /etc/sudoers.d/pwuser >/dev/null && \
         sudo install -d -o pwuser -m 700 /home/pwuser/.ssh && sudo install -o pwuser -m 600 /home/tester/.ssh/authorized_keys /home/pwuser/.ssh/",
    );
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);
    std::fs::write(&inv, support::read(&inv).replace("ansible_user: tester", "ansible_user: pwuser")).unwrap();
    let book = fleet.write("pkg.yml", "- hosts: all\n  become: true\n  tasks:\n    - name: install\n      apt: {name: qemu-guest-agent}\n");
    let started = std::time::Instant::now();
    let run = fleet.gafix(&["-i", inv.to_str().unwrap(), book.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.explain());
    assert!(started.elapsed() < Duration::from_secs(120), "no waiting for input");
    let msg = run.task(&ct.name, "install")["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("sudo needs a password") && msg.contains("--ask-become-pass"), "{msg}");

    let run = fleet.gafix_env(&["-i", inv.to_str().unwrap(), book.to_str().unwrap(), "-vv"], &[("GAFIX_BECOME_PASSWORD", "s3cret-Pw")]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.task(&ct.name, "install")["status"], "changed");
    let everything = format!("{}{}{}", run.stdout, run.stderr, run.report);
    assert!(!everything.contains("s3cret-Pw"), "the password never reaches output or reports");
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn host_keys_are_checked_by_default_and_accept_new_records_them() {
    let ct = Host::start("conv-hostkey", Kind::Container);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);
    // Point the inventory at an empty known_hosts file: the host is unknown.
    let known = fleet.write("known_hosts", "");
    std::fs::write(&inv, support::read(&inv).replace(ct.info["known_hosts"].as_str().unwrap(), known.to_str().unwrap())).unwrap();
    let book = fleet.write("noop.yml", "- hosts: all\n  tasks:\n    - command: 'true'\n");
    let args = ["-i", inv.to_str().unwrap(), book.to_str().unwrap()];

    let run = fleet.gafix(&args);
    assert_eq!(run.code, 4, "{}", run.explain());
    assert!(run.stdout.contains("is not in known_hosts") && run.stdout.contains("--host-key-checking accept-new"), "{}", run.stdout);
    assert!(support::read(&known).is_empty(), "strict checking records nothing");

    let run = fleet.gafix_env(&args, &[("ANSIBLE_HOST_KEY_CHECKING", "False")]);
    assert_eq!(run.code, 0, "ANSIBLE_HOST_KEY_CHECKING=False is honoured: {}", run.explain());

    std::fs::write(&known, "").unwrap();
    let run = fleet.gafix(&[&args[..], &["--host-key-checking", "accept-new"]].concat());
    assert_eq!(run.code, 0, "{}", run.explain());
    assert!(support::read(&known).contains("ssh-ed25519"), "the key was recorded");
    let run = fleet.gafix(&args);
    assert_eq!(run.code, 0, "now known: {}", run.explain());
}
