//! Self-test of the test hosts (tests/vm/testvm): what the other e2e tests rely on.

mod support;
use std::time::Duration;
use support::{Host, Kind};

#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn vms_with_and_without_the_agent_channel_and_a_container() {
    let hosts = Host::start_all(&[("self-ga", Kind::Vm), ("self-noga", Kind::VmWithoutChannel), ("self-ct", Kind::Container)]);
    let (ga, noga, ct) = (&hosts[0], &hosts[1], &hosts[2]);

    // The local repository makes the install work offline; the unit is static, and starts.
    assert!(ga.package_installed("qemu-guest-agent").is_none(), "the image ships without the agent");
    ga.sh("sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-guest-agent >/dev/null");
    assert_eq!(ga.sh("systemctl is-enabled qemu-guest-agent"), "static");
    ga.sh("sudo systemctl start qemu-guest-agent");
    assert_eq!(ga.sh("systemctl is-active qemu-guest-agent"), "active");
    assert_eq!(ga.qga(r#"{"execute":"guest-ping"}"#), serde_json::json!({"return": {}}));
    assert_eq!(ga.sh("test -e /dev/virtio-ports/org.qemu.guest_agent.0 && echo present"), "present");
    assert_eq!(ga.package_installed("gafix-testpkg").as_deref(), Some("1"), "version 1 installed, 2 pending");

    // Without the channel there is no device, as on a Proxmox VM whose agent option is off.
    assert!(!noga.ssh("test -e /dev/virtio-ports/org.qemu.guest_agent.0").status.success());
    assert!(noga.info["qga_socket"].is_null());

    // A reboot brings SSH back with a new boot id.
    let before = noga.boot_id();
    let _ = noga.ssh("sudo systemctl reboot");
    let after = noga.wait_for_new_boot(&before, Duration::from_secs(240));
    assert_ne!(before, after);

    // A container: systemd as PID 1, sshd on its own loopback address, and not a VM.
    assert_eq!(ct.sh("systemd-detect-virt --container"), "systemd-nspawn");
    assert_eq!(ct.sh("cat /proc/1/comm"), "systemd");
    assert!(ct.info["host"].as_str().unwrap().starts_with("127.0.0."));

    // A hard power-off through the monitor: the host stops answering.
    noga.power_off();
    std::thread::sleep(Duration::from_secs(1));
    assert!(!noga.ssh("true").status.success());
}

/// Several `ct-up --python` at once (as `bench/run` does): each takes the python rootfs
/// lock (building the rootfs if the cache is cold), and none of the containers keeps it.
/// Before the fix, a waiter returned with the lock's descriptor open and its container
/// held the lock for its whole life, so every later `ct-up --python` hung.
#[test]
#[ignore = "needs QEMU or systemd-nspawn and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn python_containers_start_together_and_release_the_lock() {
    support::require(Kind::Container);
    // A cold cache: the python rootfs is rebuilt while the others wait for it.
    let cache = std::env::var("GAFIX_TESTVM_CACHE").unwrap_or_else(|_| "/var/cache/gafix-testvm".into());
    let image = std::fs::canonicalize(format!("{cache}/current")).expect("testvm build ran");
    let _ = std::fs::remove_file(image.join("rootfs-py.ready"));
    let started = std::time::Instant::now();
    let names: Vec<String> = (0..3).map(|i| format!("self-py{i}-{}", std::process::id())).collect();
    let _down = Teardown(names.clone());
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            std::process::Command::new(support::testvm())
                .args(["ct-up", n, "--python"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("testvm runs")
        })
        .collect();
    for (name, child) in names.iter().zip(children) {
        let status = wait_at_most(child, Duration::from_secs(300));
        assert!(status.success(), "{name} failed");
    }
    // A fourth one, started after them, does not wait on a lock held by a running container.
    let late = format!("self-py-late-{}", std::process::id());
    let _late_down = Teardown(vec![late.clone()]);
    let child = std::process::Command::new(support::testvm())
        .args(["ct-up", &late, "--python"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_at_most(child, Duration::from_secs(120)).success(), "the late container failed");
    eprintln!("python containers started in {:?} (cold cache)", started.elapsed());
}

/// Waits for a child, failing the test (not hanging it) past `limit`.
fn wait_at_most(mut child: std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("ct-up --python hangs after {limit:?}: a running container holds the python rootfs lock");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops these hosts when dropped (also when the test fails).
struct Teardown(Vec<String>);

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = std::process::Command::new(support::testvm()).arg("down").args(&self.0).output();
    }
}
