//! Hostile input against a real systemd container (sshd, sudo, dpkg): paths that try to
//! run commands, become passwords that must reach sudo's prompt and nothing else, secrets
//! that must appear in no output. Needs systemd-nspawn (tests/vm/install-deps).

mod support;
use support::{Fleet, Host, Kind, Run};

/// Every output of a run, to grep for what must not be there.
fn everything(run: &Run, fleet: &Fleet) -> String {
    let mut all = format!("{}\n{}\n{}", run.stdout, run.stderr, run.report);
    for extra in ["j.xml", "r.retry"] {
        if let Ok(text) = std::fs::read_to_string(fleet.path(extra)) {
            all.push_str(&text);
        }
    }
    all
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn paths_are_data_and_passwords_reach_only_sudo() {
    let ct = Host::start("sec", Kind::Container);
    // A user whose sudo asks for a password; `tester` (the image's user) has NOPASSWD.
    let password = "M4rk3r-pw{{ 7*7 }}'\"$(x)";
    ct.sh(&format!(
        "sudo useradd -m -s /bin/sh pwuser && printf '%s\\n' {} | sudo chpasswd && \
         echo 'pwuser ALL=(ALL) ALL' | sudo tee /etc/sudoers.d/pwuser >/dev/null && \
         sudo install -d -o pwuser -m 700 /home/pwuser/.ssh && sudo install -o pwuser -m 600 /home/tester/.ssh/authorized_keys /home/pwuser/.ssh/",
        gafix::shell::quote(&format!("pwuser:{password}"))
    ));
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);
    let hostile = "/tmp/x'; touch /tmp/pwned-quote; echo '";
    let inventory_text = support::read(&inv);
    // The hostile path also comes from an inventory variable; the secret var is !unsafe-free
    // on purpose: secrets are never templated anyway.
    std::fs::write(&inv, inventory_text.replace("all:\n", &format!("all:\n  vars:\n    evil_path: {}\n", serde_json::json!(hostile))))
        .unwrap();

    // 1. Injection through paths: from a task, an inventory variable and -e, in check mode
    //    and behind `when: false` (the probe reads every task's paths before any task runs).
    let book = fleet.write(
        "paths.yml",
        &format!(
            "- hosts: all\n  tasks:\n\
             \x20   - name: literal\n      stat: {{path: {}}}\n      when: false\n\
             \x20   - name: from inventory\n      stat: {{path: '{{{{ evil_path }}}}'}}\n\
             \x20   - name: from -e\n      command: 'true'\n      args: {{creates: '{{{{ evil_e }}}}'}}\n\
             \x20   - name: dollar\n      stat: {{path: '/tmp/$(touch /tmp/pwned-dollar)'}}\n",
            serde_json::json!(hostile)
        ),
    );
    for check in [true, false] {
        let mut args = vec!["-i", inv.to_str().unwrap(), book.to_str().unwrap(), "-e", r#"{"evil_e": "/tmp/`touch /tmp/pwned-e`"}"#];
        if check {
            args.push("--check");
        }
        let run = fleet.gafix(&args);
        assert_eq!(run.code, 0, "{}", run.explain());
        assert_eq!(run.task(&ct.name, "from inventory")["msg"], format!("{hostile} does not exist"), "{}", run.explain());
    }
    assert_eq!(ct.sh("ls /tmp | grep -c pwned || true"), "0", "a path ran a command on the host");

    // 2. The become password reaches sudo's prompt only: a command that reads stdin reads
    //    nothing (or its own stdin), whether sudo asks (pwuser) or not (tester, NOPASSWD).
    let tasks = "- name: reads stdin\n  command: cat\n  register: r\n\
                 - name: own stdin\n  command: cat\n  args: {stdin: hello}\n\
                 - name: whoami\n  command: id -un\n\
                 - name: secret task\n  command: echo {{ token }}\n  no_log: true\n  vars: {token: T0ken-M4rk3r}\n";
    let book = fleet.write("become.yml", &format!("- hosts: all\n  become: true\n  tasks:\n{}", indent(tasks)));
    for user in ["tester", "pwuser"] {
        std::fs::write(&inv, support::read(&inv).replace("ansible_user: tester", &format!("ansible_user: {user}"))).unwrap();
        let args = ["-i", inv.to_str().unwrap(), book.to_str().unwrap(), "-vv", "--junit", "j.xml"];
        let run = fleet.gafix_env(&args, &[("GAFIX_BECOME_PASSWORD", password)]);
        assert_eq!(run.code, 0, "{user}: {}", run.explain());
        assert_eq!(run.task(&ct.name, "reads stdin")["msg"], "", "{user}: the command read something: {}", run.explain());
        assert_eq!(run.task(&ct.name, "own stdin")["msg"], "hello", "{user}");
        assert_eq!(run.task(&ct.name, "whoami")["msg"], "root", "{user}");
        let all = everything(&run, &fleet);
        assert!(!all.contains("M4rk3r-pw"), "{user}: the password reached an output:\n{all}");
        assert!(!all.contains("T0ken-M4rk3r"), "{user}: a no_log value reached an output:\n{all}");
        std::fs::write(&inv, support::read(&inv).replace(&format!("ansible_user: {user}"), "ansible_user: tester")).unwrap();
    }

    // 3. The password as an inventory variable holding `{{`: used as written, never
    //    templated (sudo accepts it), never shown, not even by `inventory --host`.
    std::fs::write(
        &inv,
        support::read(&inv).replace(
            "ansible_user: tester",
            &format!("ansible_user: pwuser\n      ansible_become_password: {}", serde_json::json!(password)),
        ),
    )
    .unwrap();
    let run = fleet.gafix(&["-i", inv.to_str().unwrap(), book.to_str().unwrap(), "-vvv"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.task(&ct.name, "whoami")["msg"], "root");
    assert!(!everything(&run, &fleet).contains("M4rk3r-pw"), "{}", run.explain());
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn timeouts_and_aborts_leave_nothing_running() {
    let ct = Host::start("sec-timeout", Kind::Container);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);

    // --command-timeout ends the command's whole process group on the host, a background
    // child included (as root: the kill goes through sudo like the command).
    let book = fleet.write(
        "slow.yml",
        "- hosts: all\n  become: true\n  tasks:\n    - name: slow\n      shell: sleep 301 & echo $! > /tmp/bgpid; wait\n",
    );
    let run = fleet.gafix(&["-i", inv.to_str().unwrap(), book.to_str().unwrap(), "--command-timeout", "3"]);
    assert_eq!(run.code, 2, "{}", run.explain());
    assert!(run.task(&ct.name, "slow")["msg"].as_str().unwrap().contains("did not finish within 3 s"), "{}", run.explain());
    let pid = ct.sh("cat /tmp/bgpid");
    assert_eq!(ct.sh(&format!("test -e /proc/{pid} && echo alive || echo gone")), "gone", "the background child outlived the timeout");
    assert_eq!(ct.sh("pgrep -f 'sleep 30[1]' || true"), "");

    // SIGTERM mid-task: the recap and reports are written, and no ssh master nor control
    // socket directory of this run is left on the controller.
    let runtime = tempfile::tempdir().unwrap();
    let book = fleet.write("hang.yml", "- hosts: all\n  tasks:\n    - name: hang\n      command: sleep 302\n");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["converge", "-i", inv.to_str().unwrap(), book.to_str().unwrap(), "--json"])
        .arg(fleet.path("term.json"))
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ct.sh("pgrep -f 'sleep 30[2]' || true").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the task never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PLAY RECAP"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&support::read(&fleet.path("term.json"))).unwrap();
    assert_eq!(report["interrupted"], true);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let control = runtime.path().join("gafix-ssh");
    assert_eq!(support::processes_with(&control.display().to_string()), Vec::<String>::new(), "an ssh master of the run is left");
    let left: Vec<_> = std::fs::read_dir(&control).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "control directories left: {left:?}");
}

/// `--persist`: the run leaves its master in the private control directory, the next run
/// within the window uses it (no new master, no new login on the host), `gafix ssh --stop`
/// ends it, an idle one ends by itself, and a kept master whose connection was cut is
/// replaced without the run noticing.
#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn kept_masters_serve_the_next_run_and_end_on_request_or_when_idle() {
    let ct = Host::start("sec-persist", Kind::Container);
    let fleet = Fleet::new();
    let inv = fleet.inventory(&[&ct]);
    let book = fleet.write("noop.yml", "- hosts: all\n  tasks:\n    - command: 'true'\n      changed_when: false\n");
    let runtime = tempfile::tempdir().unwrap();
    let control = runtime.path().join("gafix-ssh").display().to_string();
    let env = [("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())];
    let converge = |extra: &[&str]| {
        let run = fleet.gafix_env(&[&["-i", inv.to_str().unwrap(), book.to_str().unwrap()][..], extra].concat(), &env);
        assert_eq!(run.code, 0, "{}", run.explain());
        run
    };
    let gafix_ssh = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gafix"))
            .arg("ssh")
            .args(args)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Masters of this test's control directory, once the processes they left have settled.
    let masters = || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        support::processes_with(&control)
    };
    let logins = || ct.sh("sudo journalctl -q --no-pager | grep -c 'Accepted publickey'").parse::<u32>().unwrap();

    // Ansible's own spelling turns it on too: ssh_args' ControlPersist (here from the environment).
    let ansible_way = [env[0], ("ANSIBLE_SSH_ARGS", "-C -o ControlMaster=auto -o ControlPersist=60s")];
    let run = fleet.gafix_env(&["-i", inv.to_str().unwrap(), book.to_str().unwrap()], &ansible_way);
    assert_eq!(run.code, 0, "{}", run.explain());
    let first = masters();
    assert_eq!(first.len(), 1, "one master kept: {first:?}");
    let before = logins();
    converge(&["--persist", "60"]);
    assert_eq!(masters(), first, "the second run used the kept master");
    assert_eq!(logins(), before + 1, "no login but the count's own: the second run made no handshake");

    // A run without --persist neither uses nor ends it.
    converge(&[]);
    assert_eq!(masters(), first);
    let listed = gafix_ssh(&[]);
    assert!(listed.starts_with(&format!("kept: tester@{}", ct.info["host"].as_str().unwrap())), "{listed}");
    let stopped = gafix_ssh(&["--stop"]);
    assert!(stopped.starts_with("stopped: tester@"), "{stopped}");
    assert_eq!(masters(), Vec::<String>::new(), "--stop ended the master");
    assert!(gafix_ssh(&[]).starts_with("no SSH masters kept"));

    // The host side of a kept master's connection is killed: the next run connects anew.
    converge(&["--persist", "60"]);
    let old = masters();
    assert_eq!(old.len(), 1, "{old:?}");
    // The oldest of tester's sshd processes serves the master (the newest, this command).
    ct.sh("sudo pkill -KILL -o -f '^sshd: tester'");
    converge(&["--persist", "60"]);
    let new = masters();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_ne!(new, old, "a new master replaced the dead one");
    gafix_ssh(&["--stop"]);

    // An idle master ends by itself after its time.
    converge(&["--persist", "2"]);
    assert_eq!(masters().len(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !masters().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the master outlived --persist 2 by 18 s: {:?}", masters());
    }
}
