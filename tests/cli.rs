//! The command line without hosts: validation, inventory output, exit codes, safety checks
//! that happen before anything connects.

use std::path::Path;
use std::process::Command;

mod support;
use support::{root, Fleet};

fn gafix(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gafix")).args(args).current_dir(dir).env("NO_COLOR", "1").output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn bad_options_exit_5_and_help_exits_0() {
    let dir = root();
    assert_eq!(gafix(&["converge", "--forks", "0", "-i", "x"], &dir).0, 5);
    assert_eq!(gafix(&["frobnicate"], &dir).0, 5);
    let (code, _, err) = gafix(&["converge", "--persist", "soon", "-i", "x"], &dir);
    assert_eq!(code, 5);
    assert!(err.contains("--persist 'soon' is not yes, no or a time"), "{err}");
    let (code, out, _) = gafix(&["converge", "--help"], &dir);
    assert_eq!(code, 0);
    assert!(out.contains("--limit") && out.contains("--check"), "{out}");
    let (code, out, _) = gafix(&["completions", "bash"], &dir);
    assert_eq!(code, 0);
    assert!(out.contains("_gafix"), "a bash completion script");
}

#[test]
fn validate_reports_every_error_with_its_location() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1:\n");
    std::fs::create_dir_all(fleet.path("roles/broken/tasks")).unwrap();
    fleet.write(
        "roles/broken/tasks/main.yml",
        "- name: typo\n  ansible.builtin.aptt:\n    name: x\n- systemd: {name: ssh, enabled: maybe}\n",
    );
    fleet.write("site.yml", "- hosts: all\n  roles: [broken, missing]\n  tasks:\n    - apt: {name: 'vim;reboot'}\n");
    let (code, _, err) = gafix(&["validate", "-i", "hosts.yml", "site.yml", "--roles-path", "roles"], fleet.dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("site.yml:4:7: apt: 'vim;reboot' is not a valid Debian package name"), "{err}");
    assert!(err.contains("roles/broken/tasks/main.yml:2:3: unknown module or task keyword 'ansible.builtin.aptt'"), "{err}");
    assert!(err.contains("roles/broken/tasks/main.yml:4:24: 'enabled' must be a boolean"), "{err}");
    assert!(err.contains("site.yml:2:19: role 'missing' not found"), "{err}");
    let (code, out, _) = gafix(&["validate", "-i", "hosts.yml"], fleet.dir.path());
    assert_eq!(code, 0, "the built-in plan is valid");
    assert!(out.contains("ok"));
}

#[test]
fn validate_reads_whole_role_directories_and_every_keyword() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1:\n");
    for dir in ["roles/web/tasks", "roles/web/meta", "roles/web/handlers", "roles/web/vars", "roles/db/tasks"] {
        std::fs::create_dir_all(fleet.path(dir)).unwrap();
    }
    fleet.write("roles/web/tasks/main.yml", "- command: ls\n  throttle: 1\n");
    fleet.write("roles/web/meta/main.yml", "galaxy_info: {author: x}\ndependencies:\n  - role: nosuch\n  - db\n");
    fleet.write("roles/db/tasks/main.yml", "- servce: {name: db}\n");
    fleet.write("roles/web/handlers/main.yml", "- name: restart\n  sevice: {name: nginx, state: restarted}\n");
    fleet.write("roles/web/vars/main.yml", "- not a mapping\n");
    fleet.write("site.yml", "- hosts: all\n  vars_prompt: []\n  roles: [web]\n  tasks:\n    - ap: {name: vim}\n");
    let (code, _, err) = gafix(&["validate", "-i", "hosts.yml", "site.yml"], fleet.dir.path());
    assert_eq!(code, 1, "{err}");
    for expected in [
        "site.yml:2:3: `vars_prompt` is not supported by gafix yet",
        "site.yml:5:7: unknown module or task keyword 'ap'; did you mean 'apt'?",
        "roles/web/tasks/main.yml:2:3: `throttle` is not supported by gafix yet",
        "roles/web/handlers/main.yml:2:3: unknown module or task keyword 'sevice'; did you mean 'service'?",
        "roles/web/vars/main.yml:1:1: 'vars' must be a mapping",
        // A role's dependencies are checked even when the role itself has problems.
        "roles/web/meta/main.yml:3:5: role 'nosuch' not found in",
        "roles/db/tasks/main.yml:1:3: unknown module or task keyword 'servce'; did you mean 'service'?",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    fleet.write("roles/db/tasks/main.yml", "- service: {name: db}\n");
    // The role's own problems first; once fixed, the missing dependency is reported.
    fleet.write("roles/web/tasks/main.yml", "- command: ls\n");
    fleet.write("roles/web/handlers/main.yml", "- name: restart\n  service: {name: nginx, state: restarted}\n");
    fleet.write("roles/web/vars/main.yml", "port: 80\n");
    fleet.write("site.yml", "- hosts: all\n  roles: [web]\n");
    let (code, _, err) = gafix(&["validate", "-i", "hosts.yml", "site.yml"], fleet.dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("roles/web/meta/main.yml:3:5: role 'nosuch' not found in"), "{err}");
    // Other task files run only where a task includes them: their problems are warnings.
    fleet.write("roles/web/meta/main.yml", "dependencies: []\n");
    fleet.write("roles/web/tasks/Suse.yml", "- cron: {name: a, job: b}\n");
    let (code, _, err) = gafix(&["validate", "-i", "hosts.yml", "site.yml"], fleet.dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("[WARNING]: "), "{err}");
    assert!(
        err.contains("roles/web/tasks/Suse.yml:1:3: `cron` is not supported by gafix yet (this file runs only where a task includes it)"),
        "{err}"
    );
}

#[test]
fn yaml_errors_name_file_line_and_column() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1: [unclosed\n");
    let (code, _, err) = gafix(&["inventory", "-i", "hosts.yml", "--list"], fleet.dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("hosts.yml:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn shell_metacharacters_are_rejected_before_any_ssh() {
    let fleet = Fleet::new();
    // 127.0.0.1:9 is closed: had gafix tried to connect, the host would be unreachable (4).
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1, ansible_port: 9}\n");
    fleet.write("site.yml", "- hosts: all\n  tasks:\n    - apt:\n        name: \"vim; touch /tmp/pwned\"\n");
    let (code, out, err) = gafix(&["converge", "-i", "hosts.yml", "site.yml"], fleet.dir.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("site.yml:3:7: apt: 'vim; touch /tmp/pwned' is not a valid Debian package name"), "{err}");
    assert!(!out.contains("unreachable"), "nothing connected: {out}");
    // Templated names are checked after rendering, still before their command is built: on
    // a host that is reached (the controller itself), the task fails on the name.
    fleet.write("local.yml", "all:\n  hosts:\n    localhost: {ansible_connection: local}\n");
    fleet.write("site2.yml", "- hosts: all\n  tasks:\n    - systemd: {name: '{{ unit }}', state: started}\n");
    let (code, out, _) = gafix(&["converge", "-i", "local.yml", "site2.yml", "-e", r#"{"unit": "x;touch pwned"}"#], fleet.dir.path());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("'x;touch pwned' is not a valid systemd unit name"), "the rendered name was refused: {out}");
    assert!(!fleet.path("pwned").exists());
}

#[test]
fn unknown_limit_patterns_are_errors() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1:\n");
    let (code, _, err) = gafix(&["converge", "-i", "hosts.yml", "-l", "nosuch"], fleet.dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("'nosuch' matches no host or group"), "{err}");
}

#[test]
fn inventory_list_graph_and_host_mask_secrets() {
    let dir = root().join("tests/fixtures/inventory/vars_dirs");
    let (code, out, _) = gafix(&["inventory", "-i", "hosts.yml", "--list"], &dir);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["_meta"]["hostvars"]["w1"]["ansible_become_password"], "********");
    assert!(!out.contains("not-really-secret"));
    assert_eq!(v["web"]["hosts"], serde_json::json!(["w1", "w2"]));
    let (code, out, _) = gafix(&["inventory", "-i", "hosts.yml", "--graph"], &dir);
    assert_eq!(code, 0);
    // In the order the groups were added, as ansible-inventory prints it (the parity test
    // compares the two byte for byte).
    assert_eq!(out, "@all:\n  |--@ungrouped:\n  |--@web:\n  |  |--w1\n  |  |--w2\n  |--@db:\n  |  |--d1\n");
    let (code, out, _) = gafix(&["inventory", "-i", "hosts.yml", "--host", "w2", "-e", "extra=1"], &dir);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["shadowed"], "host_vars_w2");
    assert_eq!(v["extra"], "1", "-e beats everything");
}

#[test]
fn list_tasks_and_hosts_print_the_plan() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  children:\n    vms:\n      hosts:\n        vm[1:8]:\n");
    let (code, out, _) = gafix(&["converge", "-i", "hosts.yml", "--list-hosts", "--list-tasks"], fleet.dir.path());
    assert_eq!(code, 0);
    assert!(out.contains("play #2 (all): patch_reboot, gated on 'qemu_ga_fix', serial 25%"), "{out}");
    assert!(out.contains("qemu_ga_fix : Install QEMU Guest Agent  (apt, <embedded>/roles/qemu_ga_fix/tasks/main.yml:4:3)"), "{out}");
    assert!(out.contains("      vm8"), "{out}");
}

#[test]
fn unreachable_hosts_exit_4_with_a_recap_junit_and_retry_file() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    down1: {ansible_host: 127.0.0.1, ansible_port: 9}\n");
    let (code, out, _) =
        gafix(&["converge", "-i", "hosts.yml", "--junit", "j.xml", "--retry-file", "r.retry", "-T", "3"], fleet.dir.path());
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("down1                      : ok=0    changed=0    unreachable=1    failed=0"), "{out}");
    assert!(out.contains("Connection refused"), "{out}");
    assert_eq!(support::read(&fleet.path("r.retry")), "down1\n");
    let junit = support::read(&fleet.path("j.xml"));
    assert!(junit.contains("<testcase name=\"down1: qemu_ga_fix\"") && junit.contains("<error"), "{junit}");
}

#[test]
fn local_connection_runs_on_the_controller_with_register_and_conditions() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n");
    fleet.write(
        "site.yml",
        "- hosts: all\n  tasks:\n    - name: say\n      command: echo hello\n      register: said\n      changed_when: false\n\
         \x20   - name: check\n      assert:\n        that:\n          - said.stdout == 'hello'\n          - said is succeeded\n\
         \x20   - name: only when\n      shell: exit 3\n      register: r\n      failed_when: r.rc not in [0, 3]\n      when: said.rc == 0\n",
    );
    let (code, out, err) = gafix(&["converge", "-i", "hosts.yml", "site.yml"], fleet.dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok: [localhost] say => hello"), "{out}");
    assert!(out.contains("ok: [localhost] check => All assertions passed"), "{out}");
    assert!(out.contains("changed: [localhost] only when"), "{out}");
}

#[test]
fn ctrl_c_stops_new_work_and_prints_the_recap() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n");
    fleet.write(
        "site.yml",
        "- hosts: all\n  tasks:\n    - name: slow\n      command: sleep 3\n    - name: never\n      command: echo should-not-run\n",
    );
    let child = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["converge", "-i", "hosts.yml", "site.yml"])
        .current_dir(fleet.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}");
    assert!(stdout.contains("changed: [localhost] slow"), "the task in flight finished: {stdout}");
    assert!(!stdout.contains("never"), "no new task started: {stdout}");
    assert!(stdout.contains("PLAY RECAP") && stdout.contains("interrupted"), "{stdout}");
}

#[test]
fn a_batch_over_max_fail_percentage_stops_the_play() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  vars:\n    ansible_connection: local\n  hosts:\n    h1:\n    h2:\n    h3:\n    h4:\n");
    // Batches of two; h1 fails in the first batch: 50% > 25%, so the second batch never starts.
    fleet.write(
        "site.yml",
        "- hosts: all\n  serial: 2\n  max_fail_percentage: 25\n  tasks:\n    - name: check\n      command: test {{ inventory_hostname }} != h1\n",
    );
    let (code, out, err) = gafix(&["converge", "-i", "hosts.yml", "site.yml", "--json", "r.json"], fleet.dir.path());
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("stopping play 'all': 1 of 2 hosts in batch 1 failed, more than max_fail_percentage 25%"), "{out}");
    assert!(!out.contains("[h3]") && !out.contains("[h4]"), "{out}");
    let report: serde_json::Value = serde_json::from_str(&support::read(&fleet.path("r.json"))).unwrap();
    assert_eq!(report["plays"][0]["outcomes"]["h3"]["result"], "not_run");
    // Without the limit, every batch runs: only h1 fails.
    let (code, out, _) = gafix(&["converge", "-i", "hosts.yml", "site.yml", "--max-fail-percentage", "50"], fleet.dir.path());
    assert_eq!(code, 2);
    assert!(out.contains("changed: [h4] check"), "{out}");
}

fn spawn_gafix(args: &[&str], dir: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, sig: &str) {
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
}

#[test]
fn ctrl_c_stops_connecting_at_once() {
    let fleet = Fleet::new();
    // Fifty hosts whose connection hangs (a proxy that never answers), ten at a time: without
    // the interruption this run would take five rounds of the 10 s connect timeout.
    let marker = format!("sleep 41.{}", std::process::id());
    let hosts: String = (0..50).map(|i| format!("    h{i}:\n")).collect();
    fleet.write("hosts.yml", &format!("all:\n  vars:\n    ansible_ssh_common_args: '-o ProxyCommand=\"{marker}\"'\n  hosts:\n{hosts}"));
    let started = std::time::Instant::now();
    let child =
        spawn_gafix(&["converge", "-i", "hosts.yml", "-f", "10", "--json", "r.json", "--host-key-checking", "off"], fleet.dir.path());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "took {:?}: {stdout}", started.elapsed());
    assert_eq!(out.status.code(), Some(99), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PLAY RECAP") && !stdout.contains("unreachable=1"), "interrupted hosts are not unreachable: {stdout}");
    let report: serde_json::Value = serde_json::from_str(&support::read(&fleet.path("r.json"))).unwrap();
    assert_eq!(report["interrupted"], true);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(support::processes_with(&marker), Vec::<String>::new(), "nothing of the run is left");
}

#[test]
fn a_second_ctrl_c_or_sigterm_aborts_and_still_writes_the_reports() {
    for signals in [&["-INT", "-INT"][..], &["-TERM"][..]] {
        let fleet = Fleet::new();
        let marker = format!("sleep 42.{}", std::process::id());
        fleet.write("hosts.yml", "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n");
        fleet.write("site.yml", &format!("- hosts: all\n  tasks:\n    - name: hangs\n      command: {marker}\n"));
        let started = std::time::Instant::now();
        let child = spawn_gafix(&["converge", "-i", "hosts.yml", "site.yml", "--json", "r.json", "--junit", "j.xml"], fleet.dir.path());
        std::thread::sleep(std::time::Duration::from_millis(1500));
        for s in signals {
            signal(&child, s);
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{signals:?} took {:?}", started.elapsed());
        assert_eq!(out.status.code(), Some(99), "{signals:?}: {stdout}");
        assert!(stdout.contains("PLAY RECAP"), "{stdout}");
        let report: serde_json::Value = serde_json::from_str(&support::read(&fleet.path("r.json"))).unwrap();
        assert_eq!(report["interrupted"], true);
        assert_eq!(report["plays"][0]["outcomes"]["localhost"]["result"], "not_run", "{report}");
        assert!(support::read(&fleet.path("j.xml")).contains("run interrupted"));
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(support::processes_with(&marker), Vec::<String>::new(), "{signals:?}: the aborted command's group is gone");
    }
}

#[test]
fn hostile_yaml_is_a_located_error_in_bounded_time() {
    let fleet = Fleet::new();
    let mut bomb = String::from("all:\n  vars:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!("    a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    fleet.write("bomb.yml", &bomb);
    let deep: String = (0..20_000).map(|i| format!("{}- \n", "  ".repeat(i))).collect();
    fleet.write("deep.yml", &format!("all:\n  vars:\n    x:\n{}", deep.lines().map(|l| format!("      {l}\n")).collect::<String>()));
    fleet.write("range.yml", "all:\n  hosts:\n    h[0:9999999999]:\n");
    let mut bad_utf8 = b"all:\n  hosts:\n    caf".to_vec();
    bad_utf8.extend_from_slice(b"\xe9:\n");
    std::fs::write(fleet.path("utf8.yml"), bad_utf8).unwrap();
    for (file, expected) in [
        ("bomb.yml", "bomb.yml:8:49: invalid YAML: aliases here expand to more than 1000000 nodes"),
        ("deep.yml", "nest deeper than 256 levels"),
        ("range.yml", "expands to 10000000000 hosts"),
        ("utf8.yml", "utf8.yml:3:8: invalid YAML: invalid UTF-8 at byte offset 21"),
    ] {
        let started = std::time::Instant::now();
        let (code, _, err) = gafix(&["inventory", "-i", file, "--list"], fleet.dir.path());
        assert_eq!(code, 1, "{file}: {err}");
        assert!(err.contains(expected), "{file}: {err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{file} took {:?}", started.elapsed());
    }
}

#[test]
fn duplicate_keys_are_located_warnings() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1:\n      ansible_port: 22\n      ansible_port: 2222\n");
    let (code, out, err) = gafix(&["inventory", "-i", "hosts.yml", "--host", "h1"], fleet.dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("[WARNING]: hosts.yml:5:7: duplicate key 'ansible_port'"), "{err}");
    assert!(out.contains("2222"), "the last value wins, as in Ansible: {out}");
}

#[test]
fn out_of_range_durations_are_refused_before_anything_runs() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1: {ansible_connection: local}\n");
    assert_eq!(gafix(&["converge", "-i", "hosts.yml", "-T", "18446744073709551615"], fleet.dir.path()).0, 5);
    assert_eq!(gafix(&["converge", "-i", "hosts.yml", "--command-timeout", "99999999999999"], fleet.dir.path()).0, 5);
    fleet.write(
        "site.yml",
        "- hosts: all\n  tasks:\n    - reboot: {reboot_timeout: 18446744073709551615}\n    - apt: {name: sudo, lock_timeout: -1}\n",
    );
    let (code, _, err) = gafix(&["validate", "-i", "hosts.yml", "site.yml"], fleet.dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("site.yml:3:16: 'reboot_timeout' must be a number of seconds"), "{err}");
    assert!(err.contains("site.yml:4:25: 'lock_timeout' must be a number of seconds"), "{err}");
}

#[test]
fn validate_checks_connection_variables_where_they_are_set() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1:\n      ansible_host: ssh://ops@10.0.0.5:2222\n    h2:\n    h3:\n");
    std::fs::create_dir_all(fleet.path("host_vars")).unwrap();
    fleet.write("host_vars/h2.yml", "ansible_port: 70000\n");
    fleet.write("host_vars/h3.yml", "ansible_ssh_common_args: -X\n");
    let (code, _, err) = gafix(&["validate", "-i", "hosts.yml"], fleet.dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("hosts.yml:4:7: host h1: ansible_host 'ssh://ops@10.0.0.5:2222' is a URL"), "{err}");
    assert!(err.contains("host_vars/h2.yml:1:1: host h2: ansible_port '70000' is not a port number"), "{err}");
    assert!(err.contains("host_vars/h3.yml:1:1: host h3: ansible_ssh_common_args: ssh argument '-X'"), "{err}");
}

#[test]
fn reports_are_checked_first_and_never_written_through_a_symlink() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    localhost: {ansible_connection: local}\n");
    fleet.write("site.yml", "- hosts: all\n  tasks:\n    - command: 'true'\n");
    let precious = fleet.write("precious.txt", "keep me\n");
    std::os::unix::fs::symlink(&precious, fleet.path("r.json")).unwrap();
    let (code, out, err) = gafix(&["converge", "-i", "hosts.yml", "site.yml", "--json", "r.json"], fleet.dir.path());
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("r.json: is a symlink"), "{err}");
    assert!(!out.contains("PLAY"), "nothing ran: {out}");
    assert_eq!(support::read(&precious), "keep me\n");
    // A successful run removes a retry file it wrote, never a file that is not one.
    fleet.write("failed.retry", "localhost\n");
    fleet.write("notes.txt", "my notes\n");
    for (file, kept) in [("failed.retry", false), ("notes.txt", true)] {
        let (code, _, err) = gafix(&["converge", "-i", "hosts.yml", "site.yml", "--retry-file", file], fleet.dir.path());
        assert_eq!(fleet.path(file).exists(), kept, "{file}: {err}");
        assert_eq!(code, if kept { 1 } else { 0 }, "{file}: a report left as it was is an error, not silence: {err}");
    }
}

#[test]
fn unsafe_and_secret_values_are_never_templated_nor_shown() {
    let fleet = Fleet::new();
    fleet.write(
        "hosts.yml",
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      literal: !unsafe 'ab{{ 7*7 }}cd'\n      ansible_become_password: 'S3cr3t{{ nope'\n",
    );
    fleet.write("site.yml", "- hosts: all\n  tasks:\n    - name: show\n      command: echo {{ literal }}\n");
    let (code, out, err) = gafix(&["converge", "-i", "hosts.yml", "site.yml", "--json", "r.json"], fleet.dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("show => ab{{ 7*7 }}cd"), "used as written: {out}");
    let (code, out, _) = gafix(&["inventory", "-i", "hosts.yml", "--host", "localhost"], fleet.dir.path());
    assert_eq!(code, 0);
    assert!(out.contains("\"literal\": \"ab{{ 7*7 }}cd\"") && out.contains("********"), "{out}");
    let all = format!("{out}{err}{}", support::read(&fleet.path("r.json")));
    assert!(!all.contains("S3cr3t"), "{all}");
}

#[test]
fn disabled_host_key_checking_and_shadowed_roles_are_warned_about() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1:\n");
    std::fs::create_dir_all(fleet.path("roles/qemu_ga_fix/tasks")).unwrap();
    fleet.write("roles/qemu_ga_fix/tasks/main.yml", "- command: 'false'\n");
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["converge", "-i", "hosts.yml", "--list-tasks"])
        .current_dir(fleet.dir.path())
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stderr.contains("./roles/qemu_ga_fix is not used"), "{stderr}");
    assert!(stdout.contains("<embedded>/roles/qemu_ga_fix/tasks/main.yml"), "the built-in role runs: {stdout}");
    let (_, stdout, _) = gafix(&["converge", "-i", "hosts.yml", "--list-tasks", "--roles-path", "roles"], fleet.dir.path());
    assert!(stdout.contains("roles/qemu_ga_fix/tasks/main.yml:1:3"), "asked for: {stdout}");
    fleet.write("hosts2.yml", "all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1, ansible_port: 9}\n");
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["converge", "-i", "hosts2.yml", "-T", "2"])
        .current_dir(fleet.dir.path())
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SSH host keys are not checked (host_key_checking = False, env ANSIBLE_HOST_KEY_CHECKING)"), "{stderr}");
}

#[test]
fn validate_builds_the_plan_converge_would() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    h1:\n");
    let (code, _, err) = gafix(&["converge", "-i", "hosts.yml", "--list-hosts", "-l", "!all"], fleet.dir.path());
    assert_eq!(code, 1, "{err}");
    let (code, _, verr) = gafix(&["validate", "-i", "hosts.yml", "-l", "!all"], fleet.dir.path());
    assert_eq!(code, 1, "validate says what converge says: {verr}");
    assert!(verr.contains("leave no hosts to run on") && err.contains("leave no hosts to run on"), "{verr}");
}

#[test]
fn ansible_cfg_is_read_and_listed_with_origins() {
    let fleet = Fleet::new();
    fleet.write(
        "ansible.cfg",
        "[defaults]\ninventory = hosts.ini\nforks = 7\nstdout_callback = yaml\n[privilege_escalation]\nbecome = true\n",
    );
    fleet.write("hosts.ini", "[web]\nw1 ansible_connection=local\n");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gafix"));
        cmd.args(args).current_dir(fleet.dir.path()).env_remove("ANSIBLE_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&["config", "--list"], &[("ANSIBLE_TIMEOUT", "33")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ansible.cfg:3:1; hosts worked on at once"), "{out}");
    assert!(out.contains("[defaults] forks = 7  ("), "{out}");
    assert!(out.contains("[defaults] timeout = 33  (env ANSIBLE_TIMEOUT;"), "{out}");
    assert!(out.contains("[privilege_escalation] become = true  ("), "{out}");
    assert!(out.contains("ignored (gafix does not use these settings):\n[defaults] stdout_callback = yaml  ("), "{out}");
    // No -i: ansible.cfg's inventory, relative to the file.
    let (code, out, err) = run(&["inventory", "--graph"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("|--@web:\n  |  |--w1"), "{out}");
    // A file no reader takes is a clear error naming why.
    fleet.write("hosts.txt", "w1\n");
    let (code, _, err) = run(&["inventory", "--list", "-i", "hosts.txt"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("hosts.txt: not an inventory gafix can read: '.txt' is not an inventory extension"), "{err}");
    fleet.write("aws_ec2.yml", "plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n");
    let (code, _, err) = run(&["inventory", "--list", "-i", "aws_ec2.yml"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("inventory plugin 'amazon.aws.aws_ec2' is not supported by gafix yet; use its output: `ansible-inventory -i"),
        "{err}"
    );
    let (code, _, err) = run(&["config", "--list"], &[("ANSIBLE_FORKS", "lots")]);
    assert_eq!(code, 1);
    assert!(err.contains("forks: 'lots' is not a whole number"), "{err}");
}

#[test]
fn the_example_fleet_reads_the_same_from_yaml_and_ini() {
    let list = |file: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gafix")).args(["inventory", "--list", "-i", file]).current_dir(root()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(list("inventory.example.yaml"), list("inventory.example.ini"));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains(&std::fs::read_to_string(root().join("inventory.example.ini")).unwrap()), "README shows inventory.example.ini");
}

#[test]
fn ansible_cfg_settings_reach_the_run() {
    let fleet = Fleet::new();
    fleet.write("ansible.cfg", "[defaults]\ninventory = hosts.ini\nretry_files_enabled = True\nretry_files_save_path = retries\n");
    fleet.write("hosts.ini", "[local]\nlocalhost ansible_connection=local\n");
    fleet.write("site.yml", "- hosts: all\n  tasks:\n    - name: fails\n      command: 'false'\n");
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["converge", "site.yml"])
        .current_dir(fleet.dir.path())
        .env_remove("ANSIBLE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(fleet.path("retries/site.retry")).unwrap(), "localhost\n", "the retry file ansible.cfg asks for");
}

#[test]
fn a_hanging_inventory_script_is_stopped_with_a_clear_error() {
    let fleet = Fleet::new();
    let script = fleet.write("inventory.sh", "#!/bin/sh\nsleep 30\n");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["inventory", "--list", "-i", "inventory.sh"])
        .current_dir(fleet.dir.path())
        .env("GAFIX_INVENTORY_TIMEOUT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the inventory script `inventory.sh --list` did not finish within 1 s and was stopped"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(25), "it was stopped, not waited for");
}

#[test]
fn ansible_playbook_command_line_and_name() {
    let fleet = Fleet::new();
    fleet.write("hosts", "[local]\nlocalhost ansible_connection=local\n");
    fleet.write(
        "site.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: first\n      command: echo first\n      tags: one\n\
         \x20   - name: second\n      command: echo {{ who }}\n      tags: two\n",
    );
    let link = fleet.path("ansible-playbook");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gafix"), &link).unwrap();
    let run = |program: &Path, args: &[&str]| {
        let out = Command::new(program).args(args).current_dir(fleet.dir.path()).env("NO_COLOR", "1").output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Semaphore's shape: -i FILE, --extra-vars JSON, --limit=..., the playbook last.
    let (code, out, err) = run(&link, &["-i", "hosts", "--extra-vars", "{\"who\": \"semaphore\"}", "--limit=localhost", "site.yml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("second => semaphore"), "{out}");
    let gafix = Path::new(env!("CARGO_BIN_EXE_gafix"));
    let (code, out, _) = run(gafix, &["playbook", "-i", "hosts", "-e", "who=x", "--start-at-task", "sec*", "site.yml"]);
    assert_eq!(code, 0);
    assert!(!out.contains("first") && out.contains("second => x"), "{out}");
    let (code, out, _) = run(&link, &["-i", "hosts", "--list-tags", "site.yml"]);
    assert_eq!(code, 0);
    assert!(out.contains("TASK TAGS: [one, two]"), "{out}");
    let (code, out, err) = run(&link, &["-i", "hosts", "--syntax-check", "site.yml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("playbook: site.yml"), "{out}");
    for (args, says) in [
        (
            &["-i", "hosts", "--vault-id", "dev@prompt", "site.yml"][..],
            "Ansible Vault (--vault-id, --vault-password-file, --ask-vault-pass) is not supported by gafix yet",
        ),
        (&["-i", "hosts", "--step", "site.yml"][..], "--step is not supported by gafix yet"),
        (&["-i", "hosts", "--become-method", "su", "site.yml"][..], "--become-method su is not supported by gafix yet (only sudo)"),
        (&["-i", "hosts", "site.yml", "other.yml"][..], "gafix runs one playbook at a time"),
        (&["-i", "hosts"][..], "ansible-playbook needs a playbook"),
    ] {
        let (code, _, err) = run(&link, args);
        assert_eq!(code, 5, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, out, _) = run(&link, &["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ansible-playbook ") && out.contains("(commit "), "{out}");
}

#[test]
fn logs_people_read_a_cause_once_hosts_by_name_skipped_counted() {
    let fleet = Fleet::new();
    // Inventory order: z first; the recap lists hosts by name, as Ansible's does.
    fleet.write(
        "hosts",
        "z-unreachable ansible_host=127.0.0.1 ansible_port=9\na-local ansible_connection=local\nm-failing ansible_connection=local\n",
    );
    fleet.write(
        "site.yml",
        "- name: stage1\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: check\n      shell: test {{ inventory_hostname }} != m-failing || { printf 'REMEDY-%s do this\\n' MARKER >&2; exit 3; }\n\
         - name: stage2\n  hosts: all\n  gafix_gate: stage1\n  gather_facts: false\n  tasks:\n    - command: 'true'\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["converge", "-i", "hosts", "site.yml", "-T", "3", "--junit", "r.xml"])
        .current_dir(fleet.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    let recap = &stdout[stdout.find("PLAY RECAP").unwrap()..];
    let (a, m, z) = (recap.find("a-local").unwrap(), recap.find("m-failing").unwrap(), recap.find("z-unreachable").unwrap());
    assert!(a < m && m < z, "hosts by name: {recap}");
    assert_eq!(stdout.matches("REMEDY-MARKER").count(), 1, "the cause is told once: {stdout}");
    assert!(stdout.contains("gated: [m-failing] stage1 failed at \"check\" (cause above)"), "{stdout}");
    let unreachable = stdout.lines().find(|l| l.starts_with("unreachable: [z-unreachable]")).expect("the unreachable line");
    assert_eq!(unreachable.matches("127.0.0.1").count(), 1, "host once: {unreachable}");
    assert_eq!(unreachable.matches('9').count(), 1, "port once: {unreachable}");
    let junit = std::fs::read_to_string(fleet.path("r.xml")).unwrap();
    assert!(junit.contains("skipped=\"2\""), "the two gated hosts are skipped cases: {junit}");
    assert_eq!(junit.matches("REMEDY-MARKER").count(), 1, "once in JUnit: {junit}");
}

#[test]
fn debug_set_fact_and_fail() {
    let fleet = Fleet::new();
    fleet.write("hosts.yml", "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n");
    fleet.write(
        "site.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - set_fact:\n        greeting: hello\n        items: [1, 2]\n        cacheable: true\n\
         \x20   - name: say\n      debug:\n        msg: \"{{ greeting }} {{ items | length }}\"\n\
         \x20   - name: show\n      debug:\n        var: items\n\
         \x20   - name: quiet\n      debug:\n        msg: only with -v\n        verbosity: 1\n\
         \x20   - name: stop\n      fail:\n        msg: stopped on purpose\n      when: greeting == 'hello'\n\
         \x20   - name: never\n      debug:\n        msg: not reached\n",
    );
    let (code, out, err) = gafix(&["converge", "-i", "hosts.yml", "site.yml"], fleet.dir.path());
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("ok: [localhost] set_fact => set greeting, items"), "{out}");
    assert!(out.contains("ok: [localhost] say => hello 2"), "{out}");
    assert!(out.contains("ok: [localhost] show => items: [1,2]"), "{out}");
    assert!(out.contains("skipped: [localhost] quiet => verbosity threshold not met"), "{out}");
    assert!(out.contains("failed: [localhost] stop => stopped on purpose"), "{out}");
    assert!(!out.contains("not reached"), "{out}");
    let (code, out, _) = gafix(&["converge", "-i", "hosts.yml", "site.yml", "-v"], fleet.dir.path());
    assert_eq!(code, 2);
    assert!(out.contains("ok: [localhost] quiet => only with -v"), "{out}");
    fleet.write(
        "bad.yml",
        "- hosts: all\n  tasks:\n    - set_fact:\n        \"not a name\": 1\n    - debug:\n        msg: a\n        var: b\n",
    );
    let (code, _, err) = gafix(&["validate", "-i", "hosts.yml", "bad.yml"], fleet.dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("set_fact: 'not a name' is not a valid variable name"), "{err}");
    assert!(err.contains("debug: 'msg' and 'var' are mutually exclusive"), "{err}");
}

#[test]
fn gafix_ssh_lists_no_kept_masters_in_a_fresh_control_directory() {
    let runtime = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gafix")).args(["ssh", "--stop"]).env("XDG_RUNTIME_DIR", runtime.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let control = runtime.path().join("gafix-ssh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("no SSH masters kept in {}\n", control.display()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&control).unwrap().permissions().mode() & 0o777, 0o700, "made private");
}
