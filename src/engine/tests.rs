//! The engine's semantics without hosts: the gate, batches, max_fail_percentage, failed
//! hosts leaving the run, register/when, check mode, idempotence. Each host is a temporary
//! directory: the scripts gafix sends run in a real `sh`, with the host's files (os-release,
//! /proc, the agent channel) under that directory and small `systemctl`, `dpkg-query`,
//! `apt-get` and `sudo` stand-ins that keep package and unit state in files there. The
//! end-to-end suite runs the same engine against real systemd, apt and sshd.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::*;
use crate::engine::events::{Event, Reporter, Status};
use crate::role::{Playbook, RoleSource};
use crate::transport::{CommandOutput, Pgid, Transport, TransportError, Wrapped};

/// Paths a script reads that belong to the host, not to the machine running the test
/// (`/host/` is the fake host's own root, for tests to plant files).
const HOST_PATHS: &[&str] = &[
    "/host/",
    "/etc/os-release",
    "/proc/sys/kernel/",
    "/proc/1/comm",
    "/run/systemd/container",
    "/.dockerenv",
    "/dev/virtio-ports/",
    "/var/run/reboot-required",
    "/var/lib/apt/",
];

const SUDO: &str = r#"#!/bin/sh
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
exec "$@"
"#;

const DETECT_VIRT: &str = r#"#!/bin/sh
v=$(cat "$FAKE_ROOT/virt"); echo "$v"; [ "$v" != none ]
"#;

const DPKG_QUERY: &str = r#"#!/bin/sh
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
for p in "$@"; do
  [ -f "$FAKE_ROOT/pkgs/$p" ] && printf '%s|ii |%s\n' "$p" "$(cat "$FAKE_ROOT/pkgs/$p")"
done
exit 0
"#;

const APT_GET: &str = r#"#!/bin/sh
sim=; verb=; names=
while [ $# -gt 0 ]; do
  case $1 in
    -s) sim=1 ;;
    -o|-t) shift ;;
    --) shift; names="$*"; break ;;
    install|remove|upgrade|dist-upgrade|update|autoremove) verb=$1 ;;
  esac
  shift
done
case $verb in
  update) exit 0 ;;
  upgrade|dist-upgrade|autoremove) echo "0 upgraded, 0 newly installed"; exit 0 ;;
esac
for n in $names; do
  if [ "$verb" = install ]; then
    [ -f "$FAKE_ROOT/repo/$n" ] || { echo "E: Unable to locate package $n" >&2; exit 100; }
    [ -f "$FAKE_ROOT/pkgs/$n" ] && continue
    v=$(cat "$FAKE_ROOT/repo/$n")
    if [ -n "$sim" ]; then echo "Inst $n ($v stable)"; continue; fi
    cp "$FAKE_ROOT/repo/$n" "$FAKE_ROOT/pkgs/$n"
    echo "Unpacking $n ($v) ..."
    if [ -f "$FAKE_ROOT/repo/$n.unit" ]; then
      u=$(cat "$FAKE_ROOT/repo/$n.unit"); mkdir -p "$FAKE_ROOT/units/$u"
      echo static > "$FAKE_ROOT/units/$u/enabled"; echo inactive > "$FAKE_ROOT/units/$u/active"
    fi
  elif [ "$verb" = remove ] && [ -f "$FAKE_ROOT/pkgs/$n" ]; then
    [ -n "$sim" ] && { echo "Remv $n"; continue; }
    rm -f "$FAKE_ROOT/pkgs/$n"; echo "Removing $n ..."
  fi
done
"#;

const SYSTEMCTL: &str = r#"#!/bin/sh
[ "$1" = --no-block ] && shift
verb=$1; shift
if [ "$verb" = show ]; then
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
  shift
  first=1
  for u in "$@"; do
    u=${u%.service}
    [ -n "$first" ] || echo; first=
    d="$FAKE_ROOT/units/$u"
    if [ -d "$d" ]; then
      a=$(cat "$d/active")
      printf 'Id=%s.service\nLoadState=loaded\nUnitFileState=%s\nActiveState=%s\nSubState=%s\n' "$u" "$(cat "$d/enabled")" "$a" "$([ "$a" = active ] && echo running || echo dead)"
    else
      printf 'Id=%s.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n' "$u"
    fi
  done
  exit 0
fi
[ "$verb" = daemon-reload ] && exit 0
if [ "$verb" = is-active ]; then
  a=$(cat "$FAKE_ROOT/units/${1%.service}/active" 2>/dev/null || echo inactive); echo "$a"; [ "$a" = active ]; exit
fi
[ "$1" = -- ] && shift
u=${1%.service}; d="$FAKE_ROOT/units/$u"
[ -d "$d" ] || { echo "Failed to $verb $u.service: Unit $u.service not found." >&2; exit 5; }
case $verb in
  start|restart|reload-or-restart) echo active > "$d/active" ;;
  stop) echo inactive > "$d/active" ;;
  enable) [ "$(cat "$d/enabled")" = static ] || echo enabled > "$d/enabled" ;;
  disable) echo disabled > "$d/enabled" ;;
esac
"#;

/// One fake host: a directory standing for its root file system.
struct FakeHost {
    root: tempfile::TempDir,
}

impl FakeHost {
    /// A Debian 12 VM with systemd and the agent channel; `repo` packages can be installed.
    fn vm() -> FakeHost {
        let host = FakeHost { root: tempfile::tempdir().unwrap() };
        for (path, text) in [
            ("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"),
            ("proc/1/comm", "systemd\n"),
            ("proc/sys/kernel/osrelease", "6.1.0-fake\n"),
            ("proc/sys/kernel/arch", "x86_64\n"),
            ("proc/sys/kernel/hostname", "fake\n"),
            ("proc/sys/kernel/random/boot_id", "boot-1\n"),
            ("dev/virtio-ports/org.qemu.guest_agent.0", ""),
            ("virt", "kvm\n"),
            ("repo/qemu-guest-agent", "1:7.2\n"),
            ("repo/qemu-guest-agent.unit", "qemu-guest-agent\n"),
            ("bin/sudo", SUDO),
            ("bin/systemd-detect-virt", DETECT_VIRT),
            ("bin/dpkg-query", DPKG_QUERY),
            ("bin/apt-get", APT_GET),
            ("bin/systemctl", SYSTEMCTL),
        ] {
            host.write(path, text);
        }
        std::fs::create_dir_all(host.path("pkgs")).unwrap();
        std::fs::create_dir_all(host.path("units")).unwrap();
        for bin in std::fs::read_dir(host.path("bin")).unwrap().flatten() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        host
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.root.path().join(p)
    }

    fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn has(&self, p: &str) -> bool {
        self.path(p).exists()
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_default().trim().to_string()
    }
}

/// Runs wrapped commands in a real `sh` against a fake host's directory.
struct FakeTransport {
    root: std::path::PathBuf,
}

impl Transport for FakeTransport {
    fn run<'a>(
        &'a self,
        wrapped: &'a Wrapped,
        input: Option<&'a str>,
        pgid: &'a Pgid,
    ) -> BoxFuture<'a, Result<CommandOutput, TransportError>> {
        Box::pin(async move {
            let root = self.root.display().to_string();
            let mut command = wrapped.command.clone();
            for p in HOST_PATHS {
                let target = if *p == "/host/" { format!("{root}/") } else { format!("{root}{p}") };
                command = command.replace(p, &target);
            }
            let path = format!("{root}/bin:{}", std::env::var("PATH").unwrap_or_default());
            crate::transport::local::run_sh(&command, &[("FAKE_ROOT", root), ("PATH", path)], None, input, pgid).await
        })
    }
}

/// Collects the events, for the assertions that are about what was reported live.
#[derive(Default)]
struct Events(std::sync::Mutex<Vec<String>>);

impl Reporter for Events {
    fn event(&self, event: &Event) {
        let line = match event {
            Event::Task(r) => format!("{} {} {}", r.status.label(), r.host, r.task),
            Event::Gated { host, reason, .. } => format!("gated {host} {reason}"),
            _ => return,
        };
        self.0.lock().unwrap().push(line);
    }
}

/// Runs `book` (the built-in plan when `None`) on fake hosts named h1, h2, ...
async fn converge(hosts: &[&FakeHost], book: Option<&str>, check: bool) -> RunReport {
    let names: Vec<String> = (1..=hosts.len()).map(|i| format!("h{i}")).collect();
    let inventory: String = "all:\n  hosts:\n".to_string() + &names.iter().map(|n| format!("    {n}:\n")).collect::<String>();
    let node = crate::yaml::parse_str(&inventory, Path::new("hosts.yml")).unwrap();
    let inv = Inventory::from_yaml(node.as_ref(), Path::new("hosts.yml")).unwrap();
    let book = match book {
        Some(text) => Playbook::parse(text, "site.yml").unwrap(),
        None => Playbook::default_plan(),
    };
    let plan = plan::build(&inv, &book, &RoleSource::new(Vec::new()), &Default::default()).unwrap();
    let roots: Vec<std::path::PathBuf> = hosts.iter().map(|h| h.root.path().to_path_buf()).collect();
    let opts = Options {
        forks: 10,
        check,
        diff: false,
        timeouts: Timeouts { connect: Duration::from_secs(5), command: Duration::from_secs(30) },
        host_key_policy: HostKeyPolicy::Strict,
        become_password: None,
        extra_vars: Vars::new(),
        connection_defaults: Default::default(),
        verbosity: 0,
        fix_hypervisor: false,
        allow_restart: false,
        tags: Vec::new(),
        skip_tags: Vec::new(),
        force_handlers: false,
        connect_with: Some(Arc::new(move |name: &str| {
            let i: usize = name.trim_start_matches('h').parse().unwrap();
            Box::new(FakeTransport { root: roots[i - 1].clone() }) as Box<dyn Transport>
        })),
    };
    run(&plan, &inv, &opts, &Events::default(), &Interrupt::default()).await
}

fn task<'a>(report: &'a RunReport, host: &str, name: &str) -> &'a TaskRecord {
    report
        .tasks
        .iter()
        .find(|t| t.host == host && t.task == name)
        .unwrap_or_else(|| panic!("no task {name} on {host}: {:#?}", report.tasks))
}

fn outcome<'a>(report: &'a RunReport, play: &str, host: &str) -> &'a PlayOutcome {
    &report.plays.iter().find(|p| p.name == play).unwrap().outcomes[host]
}

#[tokio::test]
async fn the_gate_keeps_stage_two_away_from_a_host_that_failed_stage_one() {
    let (good, bad) = (FakeHost::vm(), FakeHost::vm());
    std::fs::remove_file(bad.path("repo/qemu-guest-agent")).unwrap();
    let report = converge(&[&good, &bad], None, false).await;
    assert_eq!(report.exit_code, 2);
    assert_eq!(task(&report, "h1", "Install QEMU Guest Agent").status, Status::Changed);
    assert_eq!(task(&report, "h1", "verify qemu-guest-agent is active").status, Status::Ok);
    assert_eq!(good.read("units/qemu-guest-agent/active"), "active");
    assert_eq!(*outcome(&report, "patch_reboot", "h1"), PlayOutcome::Passed);
    let failed = task(&report, "h2", "Install QEMU Guest Agent");
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.msg.contains("Unable to locate package") || failed.msg.contains("update_cache"), "{}", failed.msg);
    match outcome(&report, "patch_reboot", "h2") {
        PlayOutcome::Gated { reason } => assert!(reason.starts_with("qemu_ga_fix failed at \"Install QEMU Guest Agent\""), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(report.tasks.iter().all(|t| t.host != "h2" || t.play == "qemu_ga_fix"), "stage 2 never touched h2");
}

#[tokio::test]
async fn a_second_run_changes_nothing() {
    let host = FakeHost::vm();
    let first = converge(&[&host], None, false).await;
    assert_eq!(first.exit_code, 0, "{:#?}", first.tasks);
    assert!(first.stats["h1"].changed > 0);
    let again = converge(&[&host], None, false).await;
    assert_eq!(again.exit_code, 0);
    assert_eq!(again.stats["h1"].changed, 0, "{:#?}", again.tasks);
}

#[tokio::test]
async fn check_mode_predicts_and_changes_nothing() {
    let host = FakeHost::vm();
    let report = converge(&[&host], None, true).await;
    assert_eq!(report.exit_code, 0, "{:#?}", report.tasks);
    let install = task(&report, "h1", "Install QEMU Guest Agent");
    assert_eq!((install.status, install.msg.as_str()), (Status::Changed, "would install qemu-guest-agent"));
    let start = task(&report, "h1", "Enable and start QEMU Guest Agent");
    assert_eq!(start.status, Status::Changed, "{}", start.msg);
    assert!(!host.has("pkgs/qemu-guest-agent") && !host.has("units/qemu-guest-agent"), "check mode changed the host");
    let verify = task(&report, "h1", "verify qemu-guest-agent is active");
    assert_eq!(verify.status, Status::Skipped, "a prediction gafix cannot make is never 'ok'");
    assert!(verify.msg.starts_with("unknown until applied"), "{}", verify.msg);
}

#[tokio::test]
async fn check_mode_predicts_a_vm_without_the_agent_channel_fails_as_the_run_would() {
    let host = FakeHost::vm();
    std::fs::remove_file(host.path("dev/virtio-ports/org.qemu.guest_agent.0")).unwrap();
    let checked = converge(&[&host], None, true).await;
    assert_eq!(checked.exit_code, 2, "{:#?}", checked.tasks);
    let start = task(&checked, "h1", "Enable and start QEMU Guest Agent");
    assert_eq!(start.status, Status::Failed);
    assert!(start.msg.contains("no virtio-serial channel org.qemu.guest_agent.0"), "{}", start.msg);
    assert!(matches!(outcome(&checked, "patch_reboot", "h1"), PlayOutcome::Gated { .. }));
    assert!(!host.has("pkgs/qemu-guest-agent"), "check mode changed the host");
}

fn hosts(n: usize) -> Vec<FakeHost> {
    (0..n).map(|_| FakeHost::vm()).collect()
}

#[tokio::test]
async fn any_errors_fatal_ends_the_play_for_the_batch_once_the_failed_task_ran_everywhere() {
    let hosts = hosts(3);
    hosts[1].write("fail-here", "");
    let book = r#"- hosts: all
  any_errors_fatal: true
  tasks:
    - name: check
      shell: '! test -e /host/fail-here'
    - name: after
      command: 'true'
- hosts: all
  tasks:
    - name: later play
      command: 'true'
"#;
    let refs: Vec<&FakeHost> = hosts.iter().collect();
    let report = converge(&refs, Some(book), false).await;
    assert_eq!(report.exit_code, 2);
    for h in ["h1", "h3"] {
        assert_eq!(task(&report, h, "check").status, Status::Changed, "the failed task still ran on {h}");
        assert!(!report.tasks.iter().any(|t| t.host == h && t.task != "check"), "{h} ran nothing after it");
        assert!(matches!(outcome(&report, "all", h), PlayOutcome::NotRun { reason } if reason.contains("any_errors_fatal: h2 failed")));
        assert_eq!(report.stats[h].failed, 0, "as in Ansible's recap, only h2 failed");
    }
}

#[tokio::test]
async fn free_strategy_lets_each_host_go_on_and_linear_waits_for_every_host() {
    let hosts = hosts(2);
    hosts[0].write("fail-here", "");
    let book = r#"- hosts: all
  strategy: free
  tasks:
    - name: check
      shell: '! test -e /host/fail-here'
    - name: after
      command: 'true'
"#;
    let report = converge(&[&hosts[0], &hosts[1]], Some(book), false).await;
    assert_eq!(task(&report, "h2", "after").status, Status::Changed);
    // Linear: every host ends "check" before any host starts "after".
    let book = r#"- hosts: all
  tasks:
    - name: one
      command: 'true'
    - name: two
      command: 'true'
"#;
    let report = converge(&[&hosts[0], &hosts[1]], Some(book), false).await;
    let last_one = report.tasks.iter().filter(|t| t.task == "one").map(|t| t.started_s + t.duration_s).fold(0.0, f64::max);
    let first_two = report.tasks.iter().filter(|t| t.task == "two").map(|t| t.started_s).fold(f64::MAX, f64::min);
    assert!(last_one <= first_two, "one ended at {last_one}, two started at {first_two}");
}

#[tokio::test]
async fn environment_timeout_and_gather_facts() {
    let host = FakeHost::vm();
    let book = r#"- hosts: all
  gather_facts: false
  environment: {GREETING: "it's a b"}
  tasks:
    - name: env
      shell: 'printf %s "$GREETING/$OTHER"'
      environment: {OTHER: "{{ inventory_hostname }}"}
    - name: install with diff on
      apt: {name: qemu-guest-agent}
      diff: true
    - name: slow
      command: sleep 5
      timeout: 1
      ignore_errors: true
    - name: no facts
      command: 'true'
      when: ansible_os_family == 'Debian'
      ignore_errors: true
- hosts: all
  tasks:
    - name: facts
      command: 'true'
      when: ansible_os_family == 'Debian'
"#;
    let report = converge(&[&host], Some(book), false).await;
    assert_eq!(task(&report, "h1", "env").msg, "it's a b/h1");
    assert!(task(&report, "h1", "install with diff on").diff.is_some(), "the task's diff: true without --diff");
    let slow = task(&report, "h1", "slow");
    assert_eq!(slow.status, Status::Failed);
    assert_eq!(slow.msg, "the task exceeded its timeout of 1 s and was stopped");
    assert!(slow.duration_s < 4.0, "stopped, not waited for");
    let no_facts = task(&report, "h1", "no facts");
    assert!(no_facts.msg.contains("'ansible_os_family' is undefined"), "gather_facts: false leaves facts undefined: {}", no_facts.msg);
    assert_eq!(task(&report, "h1", "facts").status, Status::Changed);
}

#[tokio::test]
async fn a_failed_host_leaves_the_run_and_a_batch_over_max_fail_percentage_stops_the_play() {
    let hosts: Vec<FakeHost> = (0..4).map(|_| FakeHost::vm()).collect();
    hosts[0].write("fail-here", "");
    let book = "- hosts: all\n  serial: 2\n  max_fail_percentage: 25\n  tasks:\n\
                \x20   - name: check\n      shell: '! test -e /host/fail-here'\n\
                \x20   - name: after\n      command: 'true'\n";
    let refs: Vec<&FakeHost> = hosts.iter().collect();
    let report = converge(&refs, Some(book), false).await;
    assert_eq!(report.exit_code, 2);
    assert_eq!(task(&report, "h1", "check").status, Status::Failed);
    assert!(!report.tasks.iter().any(|t| t.host == "h1" && t.task == "after"), "a failed host runs nothing more");
    // Linear (Ansible's default): the failure is counted after the step, 1 of 2 is over 25%,
    // so the play ends for the whole batch before "after".
    assert!(!report.tasks.iter().any(|t| t.host == "h2" && t.task == "after"), "the play stopped after 'check'");
    assert!(matches!(outcome(&report, "all", "h2"), PlayOutcome::NotRun { .. }));
    for h in ["h3", "h4"] {
        assert!(matches!(outcome(&report, "all", h), PlayOutcome::NotRun { .. }), "{h}: 1 of 2 failed is over 25%");
    }
}

#[tokio::test]
async fn register_and_when_see_earlier_results() {
    let host = FakeHost::vm();
    let book = "- hosts: all\n  tasks:\n\
                \x20   - name: read\n      command: cat /etc/os-release\n      register: os\n      changed_when: false\n\
                \x20   - name: debian only\n      command: echo yes\n      when: \"'ID=debian' in os.stdout and ansible_os_family == 'Debian'\"\n\
                \x20   - name: never\n      command: echo no\n      when: os.rc != 0\n\
                \x20   - name: exit 3 is fine\n      shell: exit 3\n      register: r\n      failed_when: r.rc not in [0, 3]\n";
    let report = converge(&[&host], Some(book), false).await;
    assert_eq!(report.exit_code, 0, "{:#?}", report.tasks);
    assert_eq!(task(&report, "h1", "read").status, Status::Ok);
    assert_eq!(task(&report, "h1", "debian only").msg, "yes");
    assert_eq!(task(&report, "h1", "never").status, Status::Skipped);
    assert_eq!(task(&report, "h1", "exit 3 is fine").status, Status::Changed);
}

#[tokio::test]
async fn a_host_that_is_not_a_vm_is_not_applicable_and_nothing_runs() {
    let ct = FakeHost::vm();
    ct.write("virt", "none\n");
    ct.write("run/systemd/container", "systemd-nspawn\n");
    let report = converge(&[&ct], None, false).await;
    assert_eq!(report.exit_code, 0);
    assert!(matches!(outcome(&report, "qemu_ga_fix", "h1"), PlayOutcome::NotApplicable { .. }));
    assert!(!ct.has("pkgs/qemu-guest-agent"));
}

#[tokio::test]
async fn handlers_run_once_where_notified_at_the_end_of_each_section_and_at_flush() {
    let (h1, h2) = (FakeHost::vm(), FakeHost::vm());
    let book = "- hosts: all\n  gather_facts: false\n  tasks:\n\
                \x20   - name: change\n      command: echo changed\n      notify: [restart, restart]\n\
                \x20   - name: change on h1 only\n      command: echo changed\n      changed_when: inventory_hostname == 'h1'\n      notify: topic\n\
                \x20   - meta: flush_handlers\n\
                \x20   - name: after flush\n      command: echo again\n      notify: restart\n\
                \x20   - name: h2 fails\n      command: 'false'\n      when: inventory_hostname == 'h2'\n\
                \x20 handlers:\n\
                \x20   - name: restart\n      command: echo restarted\n\
                \x20   - name: listener\n      command: echo heard\n      listen: topic\n";
    let report = converge(&[&h1, &h2], Some(book), false).await;
    let ran = |host: &str, name: &str| report.tasks.iter().filter(|t| t.host == host && t.task == name).count();
    assert_eq!((ran("h1", "restart"), ran("h1", "listener")), (2, 1), "once at the flush, once at the end: {:#?}", report.tasks);
    assert_eq!((ran("h2", "restart"), ran("h2", "listener")), (1, 0), "h2 failed before the end; it never changed for the topic");
    let order: Vec<&str> = report.tasks.iter().filter(|t| t.host == "h1").map(|t| t.task.as_str()).collect();
    assert_eq!(order, ["change", "change on h1 only", "restart", "listener", "after flush", "h2 fails", "restart"]);
    assert_eq!(report.stats["h2"].failed, 1);
}

#[tokio::test]
async fn retries_delay_and_ignore_errors_may_be_templates() {
    let host = FakeHost::vm();
    let book = r#"- hosts: all
  gather_facts: false
  vars: {tries: 2, pause: "0", lenient: true}
  tasks:
    - name: retried
      shell: 'exit 1'
      retries: "{{ tries }}"
      delay: "{{ pause }}"
      register: r
      ignore_errors: "{{ lenient }}"
    - name: after
      shell: 'echo {{ r.attempts }}'
    - name: not ignored
      shell: 'exit 1'
      ignore_errors: "{{ not lenient }}"
"#;
    let report = converge(&[&host], Some(book), false).await;
    let retried = task(&report, "h1", "retried");
    assert_eq!((retried.status, retried.ignored), (Status::Failed, true));
    assert_eq!(task(&report, "h1", "after").msg, "2", "1 + 2 attempts, as Ansible counts them");
    let strict = task(&report, "h1", "not ignored");
    assert_eq!((strict.status, strict.ignored), (Status::Failed, false));
}

#[tokio::test]
async fn meta_end_host_end_play_run_once_and_forced_handlers() {
    let hosts = hosts(3);
    let refs: Vec<&FakeHost> = hosts.iter().collect();
    let book = r#"- hosts: all
  gather_facts: false
  force_handlers: true
  tasks:
    - name: notify
      command: 'true'
      notify: h
    - name: once
      shell: echo {{ inventory_hostname }}
      run_once: true
      register: first
    - name: seen
      shell: echo {{ first.stdout }}
    - name: pause
      pause: {seconds: 0}
    - name: h1 fails
      fail: {msg: boom}
      when: inventory_hostname == 'h1'
    - meta: end_host
      when: inventory_hostname == 'h2'
    - name: after end_host
      command: 'true'
  handlers:
    - name: h
      shell: echo handled
- hosts: all
  gather_facts: false
  tasks:
    - meta: end_play
      when: inventory_hostname == 'h2'
    - name: never
      command: 'true'
"#;
    let report = converge(&refs, Some(book), false).await;
    let ran = |name: &str| report.tasks.iter().filter(|r| r.task == name).map(|r| r.host.clone()).collect::<Vec<_>>();
    assert_eq!(ran("once"), ["h1"], "run_once: one host runs it");
    for h in ["h1", "h2", "h3"] {
        assert_eq!(task(&report, h, "seen").msg, "h1", "every host gets its registered result");
    }
    assert_eq!(ran("pause"), ["h1"], "pause runs once for all hosts");
    assert_eq!(ran("after end_host"), ["h3"], "h1 failed, h2 ended");
    let mut handled = ran("h");
    handled.sort();
    assert_eq!(handled, ["h1", "h3"], "force_handlers: the failed host runs its handler too; as in Ansible, not an ended one");
    assert!(ran("never").is_empty(), "end_play, decided by the first host (h2; h1 failed), ends the play for every host");
    assert_eq!(report.stats["h2"].failed, 0);
}
