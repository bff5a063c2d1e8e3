//! Self-test of the test hosts (tests/vm/testvm): what the other e2e tests rely on.

mod support;
use std::time::Duration;
use support::{vm_tests_enabled, Host, Kind};

#[test]
fn vms_with_and_without_the_agent_channel_and_a_container() {
    if !vm_tests_enabled() {
        return;
    }
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
