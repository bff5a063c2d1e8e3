//! The roles and playbooks under tests/roles/, written the way public roles are (per-OS
//! includes and vars for OSes the test host does not run, handlers notified from templates,
//! loops over package lists, blocks with rescue, meta dependencies, include_role...):
//! every playbook validates, and the convergeable ones converge on a test container with
//! the same recap as ansible-playbook on an identical one, leave the same files, and
//! converge again with nothing changed.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::ansible::{ansible_playbook, inventory, python_container, run_ansible, run_gafix};
use support::{root, Host};

/// Roles whose packages the test image's repository has and whose services a container
/// can run (tests/roles/README.md says which and why).
const CONVERGEABLE: &[&str] =
    &["qemu_guest_agent", "sshd_hardening", "journald", "admin_users", "motd_banner", "login_policy", "service_watchdog", "common"];

fn playbooks() -> Vec<PathBuf> {
    let mut books: Vec<PathBuf> = std::fs::read_dir(root().join("tests/roles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    books.sort();
    books
}

#[test]
fn every_test_role_validates() {
    let books = playbooks();
    assert!(books.len() >= 15, "at least 15 roles and playbooks, found {}", books.len());
    for book in &books {
        let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
            .args(["validate", "--color", "never", "-i", "localhost,"])
            .arg(book)
            .current_dir(root().join("tests/roles"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}:\n{stderr}", book.display());
    }
    for role in CONVERGEABLE {
        assert!(books.iter().any(|b| b.file_stem().unwrap() == *role), "{role}.yml");
    }
}

/// Regular files, directories and links under the places roles write, changed since the
/// marker, with mode, owner and content: what both tools must leave alike.
fn changed_since_marker(host: &Host) -> String {
    host.sh("find /etc /home /root /usr/local /srv -xdev -newer /tmp/roles-start -not -path '*/.ansible*' -not -name '*-' \
         -not -path /home/tester -not -path /root \
         -not -name ld.so.cache -printf '%p %y %m %u %g\\n' 2>/dev/null | sort; \
         find /etc /home /usr/local /srv -xdev -newer /tmp/roles-start -type f -not -path '*/.ansible*' -not -name '*-' \
         -not -name ld.so.cache -not -name shadow -not -name gshadow -exec sha1sum {} + 2>/dev/null | sort -k2")
}

#[test]
#[ignore = "needs test containers and ansible-core: run tests/run"]
fn roles_converge_as_with_ansible_playbook_then_change_nothing() {
    ansible_playbook();
    let (on_ansible, on_gafix) = std::thread::scope(|s| {
        let a = s.spawn(|| python_container("roles-ansible"));
        let g = s.spawn(|| python_container("roles-gafix"));
        (a.join().expect("start"), g.join().expect("start"))
    });
    let dir = root().join("tests/roles");
    let work = tempfile::tempdir().unwrap();
    let a_inv = inventory(&on_ansible, &work.path().join("a"), &["target"], true);
    let g_inv = inventory(&on_gafix, &work.path().join("g"), &["target"], true);
    let mut problems = Vec::new();
    for role in CONVERGEABLE {
        let book = dir.join(format!("{role}.yml"));
        for host in [&on_ansible, &on_gafix] {
            host.sh("sleep 1; touch /tmp/roles-start; sleep 1");
        }
        let ansible = run_ansible(&a_inv, &book, &[], &dir, None);
        let gafix = run_gafix(&g_inv, &book, &[], &dir);
        let again = run_gafix(&g_inv, &book, &[], &dir);
        let (a_state, g_state) = (changed_since_marker(&on_ansible), changed_since_marker(&on_gafix));
        let unchanged = again.recap.get("target").is_some_and(|s| s["changed"] == 0 && s["failed"] == 0) && again.code == Some(0);
        let same = ansible.recap == gafix.recap && ansible.code == gafix.code && a_state == g_state;
        println!(
            "role {role:<18} {} {}  (ansible {:?}, gafix {:?}, again {:?})",
            if same { "same as ansible-playbook" } else { "DIFFERENT" },
            if unchanged { "then unchanged" } else { "then CHANGED" },
            ansible.recap.get("target"),
            gafix.recap.get("target"),
            again.recap.get("target").map(|s| s["changed"]),
        );
        if !same || !unchanged {
            problems.push(format!(
                "== {role}\nexit: ansible {:?}, gafix {:?}, again {:?}\nrecap: ansible {:?}\n       gafix   {:?}\n       again   {:?}\n\
                 state: ansible\n{a_state}\n       gafix\n{g_state}\n--- ansible-playbook\n{}\n--- gafix\n{}\n--- gafix again\n{}",
                ansible.code, gafix.code, again.code, ansible.recap, gafix.recap, again.recap, ansible.stdout, gafix.stdout, again.stdout
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
