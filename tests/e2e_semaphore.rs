//! gafix where Semaphore UI runs it, reproduced exactly (from Semaphore's task runner):
//! - as its Ansible app: `ansible-playbook` (gafix linked under that name) in the repository
//!   checkout, with Semaphore's argv (`-i <tmp>/inventory_<task>` written as INI without an
//!   extension, `--user`, `--become-user`, `--ask-become-pass`, `--extra-vars <JSON>`, the
//!   playbook), its environment (a fresh one: `PYTHONUNBUFFERED=1`, `ANSIBLE_FORCE_COLOR=True`,
//!   `PATH`, a temporary `HOME`, `PWD`, `SSH_AUTH_SOCK` of an agent holding the inventory's
//!   key), stdin a pseudo-terminal that is the controlling terminal and stdout/stderr pipes;
//!   Semaphore answers a chunk that starts with `BECOME password` with the password and "\n";
//! - as a custom app: `path args <playbook> NAME=VAL...`, empty stdin, no terminal, no PATH.

mod support;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Fleet, Host, Kind};

const BECOME_PASSWORD: &str = "Semaphore-Become-Marker-7c1";

/// A pseudo-terminal pair: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors we then own.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are open descriptors returned by openpty.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// An ssh-agent holding the test key, as Semaphore's in-process agent holds the inventory's.
struct Agent {
    dir: tempfile::TempDir,
    process: std::process::Child,
}

impl Agent {
    fn start(key: &Path) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        // In the foreground (-D): this handle owns it, and no daemon keeps our pipes open.
        let process = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let agent = Agent { dir, process };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        let add = Command::new("ssh-add").arg(key).env("SSH_AUTH_SOCK", &sock).output().expect("ssh-add");
        assert!(add.status.success(), "ssh-add: {}", String::from_utf8_lossy(&add.stderr));
        agent
    }

    fn sock(&self) -> std::path::PathBuf {
        self.dir.path().join("agent.sock")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
#[ignore = "needs QEMU and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn semaphore_ansible_app_and_custom_app() {
    let vm = Host::start("semaphore", Kind::Vm);
    // The inventory's login: a user whose sudo asks for a password (Semaphore's "become" key).
    vm.sh(&format!(
        "sudo useradd -m -s /bin/sh deploy && echo 'deploy:{BECOME_PASSWORD}' | sudo chpasswd && \
         echo 'deploy ALL=(ALL) ALL' | sudo tee /etc/sudoers.d/deploy >/dev/null && \
         sudo install -d -o deploy -m 700 /home/deploy/.ssh && \
         sudo install -o deploy -m 600 /home/tester/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys"
    ));

    let fleet = Fleet::new();
    let checkout = fleet.path("repository_1_1");
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::write(
        checkout.join("site.yml"),
        "- hosts: all\n  become: true\n  gather_facts: false\n  tasks:\n    - name: who\n      command: id -un\n      register: who\n      changed_when: false\n\
         \x20   - name: as root\n      assert:\n        that: who.stdout == 'root'\n    - name: from semaphore\n      command: echo {{ semaphore_vars.task_details.username }}\n",
    )
    .unwrap();
    // Semaphore writes a static INI inventory to <tmp_path>/inventory_<task id>, no extension.
    let tmp = fleet.path("semaphore-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let inventory = tmp.join("inventory_7");
    std::fs::write(
        &inventory,
        format!(
            "[vms]\n{} ansible_host={} ansible_port={} ansible_ssh_common_args='-o UserKnownHostsFile={}'\n",
            vm.name,
            vm.info["host"].as_str().unwrap(),
            vm.info["port"],
            vm.info["known_hosts"].as_str().unwrap()
        ),
    )
    .unwrap();
    // ansible-playbook on PATH is gafix.
    let bin = fleet.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gafix"), bin.join("ansible-playbook")).unwrap();
    let key = fleet.path("key");
    std::fs::copy(vm.info["key"].as_str().unwrap(), &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let agent = Agent::start(&key);
    let home = tempfile::tempdir().unwrap();

    let (master, slave) = openpty();
    let slave_fd = std::os::fd::AsRawFd::as_raw_fd(&slave);
    // Semaphore runs exec.Command("ansible-playbook"): found on PATH, argv[0] that name.
    let mut cmd = Command::new(bin.join("ansible-playbook"));
    cmd.arg0("ansible-playbook");
    cmd.args(["-i", inventory.to_str().unwrap(), "--user", "deploy", "--become-user", "root", "--ask-become-pass"])
        .args(["--extra-vars", r#"{"semaphore_vars":{"task_details":{"id":7,"message":"","username":"admin","url":"http://semaphore.example.com/project/1/history?t=7"}}}"#])
        .arg("site.yml")
        .current_dir(&checkout)
        .env_clear()
        .env("PYTHONUNBUFFERED", "1")
        .env("ANSIBLE_FORCE_COLOR", "True")
        .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()))
        .env("HOME", home.path())
        .env("PWD", &checkout)
        .env("SSH_AUTH_SOCK", agent.sock())
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls: a new session whose
    // controlling terminal is the pty, as creack/pty's Setsid + Setctty do.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run ansible-playbook");
    // Only the child may hold the terminal's slave side: the watcher's reads end when it exits.
    drop(cmd);
    drop(slave);
    // Semaphore's prompt loop: 100-byte chunks of the terminal, trimmed, checked by prefix.
    let mut terminal = std::fs::File::from(master);
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = answered.clone();
    let watcher = std::thread::spawn(move || {
        let mut buf = [0u8; 100];
        let mut transcript = String::new();
        while let Ok(n) = terminal.read(&mut buf) {
            if n == 0 {
                break;
            }
            let chunk = String::from_utf8_lossy(&buf[..n]).to_string();
            transcript.push_str(&chunk);
            if chunk.trim().starts_with("BECOME password") {
                terminal.write_all(format!("{BECOME_PASSWORD}\n").as_bytes()).unwrap();
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        transcript
    });
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out_reader = reader(Box::new(child.stdout.take().unwrap()));
    let err_reader = reader(Box::new(child.stderr.take().unwrap()));
    // A run that waits for an answer nobody gives must fail the test, not hang it.
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ansible-playbook (gafix) did not finish within 300 s (a prompt Semaphore did not see?)");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (out_reader.join().unwrap(), err_reader.join().unwrap());
    let _ = watcher.join();
    let explain = format!("exit {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(answered.load(std::sync::atomic::Ordering::SeqCst), "Semaphore saw no BECOME password prompt on the terminal\n{explain}");
    assert_eq!(status.code(), Some(0), "{explain}");
    assert!(stdout.contains("PLAY RECAP"), "{explain}");
    assert!(stdout.contains("\x1b["), "ANSIBLE_FORCE_COLOR=True: Semaphore renders the colours\n{explain}");
    assert!(stdout.contains("from semaphore => admin"), "the JSON --extra-vars reached the play\n{explain}");
    assert!(!stdout.contains(BECOME_PASSWORD) && !stderr.contains(BECOME_PASSWORD), "the password is in the log");

    // The custom app: `path args <playbook> NAME=VAL...`, empty stdin, no terminal, no PATH;
    // the inventory comes from args (Semaphore passes none). tester's sudo needs no password.
    let tester_inventory = fleet.path("inventory.ini");
    std::fs::write(
        &tester_inventory,
        format!(
            "[vms]\n{} ansible_host={} ansible_port={} ansible_user=tester ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={}'\n",
            vm.name,
            vm.info["host"].as_str().unwrap(),
            vm.info["port"],
            key.display(),
            vm.info["known_hosts"].as_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(
        checkout.join("app.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: greeting\n      command: echo {{ greeting }}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["converge", "-i", tester_inventory.to_str().unwrap(), "app.yml", "greeting=hello-from-semaphore"])
        .current_dir(&checkout)
        .env_clear()
        .env("HOME", home.path())
        .env("PWD", &checkout)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("greeting => hello-from-semaphore"), "{text}");
    assert!(!text.contains('\x1b'), "no terminal and no ANSIBLE_FORCE_COLOR: a plain log");
}
