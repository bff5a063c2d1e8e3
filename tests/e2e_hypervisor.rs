//! The hypervisor's view of the agent, on real VMs: the channel's QGA socket spoken directly,
//! and Proxmox's API through a stand-in whose agent answers come from a real VM's socket.

mod proxmox_standin;
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use proxmox_standin::{StandIn, Vm};
use serde_json::Value as Json;
use support::{Fleet, Host, Kind};

const GA_PLAYBOOK: &str = "- hosts: all\n  become: true\n  roles:\n    - qemu_ga_fix\n";
/// The API token's secret: it must appear in no output and no report.
const SECRET: &str = "5ecret-7f3a-4c1e-marker";

struct Agent {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Agent {
    fn json(&self) -> Json {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }

    fn host(&self, name: &str) -> Json {
        let all = self.json();
        all["hosts"].as_array().unwrap().iter().find(|h| h["host"] == name).cloned().unwrap_or_else(|| panic!("no {name} in {all}"))
    }
}

fn agent(fleet: &Fleet, args: &[&str], secret: &str) -> Agent {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .arg("agent")
        .args(args)
        .env("PROXMOX_USER", "gafix@pve")
        .env("PROXMOX_TOKEN_ID", "ci")
        .env("PROXMOX_TOKEN_SECRET", secret)
        .current_dir(fleet.dir.path())
        .output()
        .unwrap();
    let run = Agent {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        took: started.elapsed(),
    };
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET), "the token secret leaked:\n{}\n{}", run.stdout, run.stderr);
    run
}

/// The VM's inventory entry under another name, with more variables.
fn entry(inventory: &str, vm: &Host, alias: &str, vars: &str) -> String {
    let start = inventory.find(&format!("    {}:\n", vm.name)).unwrap();
    let block: String = inventory[start..].lines().skip(1).take_while(|l| l.starts_with("      ")).map(|l| format!("{l}\n")).collect();
    let extra: String = vars.lines().map(|l| format!("      {l}\n")).collect();
    format!("    {alias}:\n{block}{extra}")
}

#[test]
#[ignore = "needs QEMU and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn the_socket_and_proxmox_see_what_the_hypervisor_sees() {
    let hosts = Host::start_all(&[("hv-ga", Kind::Vm), ("hv-noga", Kind::VmWithoutChannel)]);
    let (ga, noga) = (&hosts[0], &hosts[1]);
    let fleet = Fleet::new();
    let token = format!("PVEAPIToken=gafix@pve!ci={SECRET}");
    let vm = |agent: Option<&str>, pending: Option<&str>, running: bool, old_style_errors: bool| Vm {
        agent: agent.map(str::to_string),
        pending_agent: pending.map(str::to_string),
        running,
        qga_of: Some(ga.name.clone()),
        old_style_errors,
        audit_denied: false,
    };
    let pve = StandIn::start(
        "pve1",
        &token,
        support::testvm(),
        BTreeMap::from([
            (101, vm(Some("enabled=1,fstrim_cloned_disks=1"), None, true, false)),
            (102, vm(None, None, true, true)),
            (103, vm(Some("0"), Some("1"), true, false)),
            (104, vm(Some("1"), None, false, false)),
            (105, Vm { audit_denied: true, ..vm(Some("1"), None, true, false) }),
        ]),
    );

    // One inventory: the VMs by their socket, and as Proxmox VMs 101-104.
    let base = support::read(&fleet.inventory(&[ga, noga]));
    let socket = |h: &Host| h.info["run_dir"].as_str().unwrap().to_string() + "/qga.sock";
    let pve_vars = |vmid: u32| format!("gafix_hypervisor: proxmox\nproxmox_url: {}\nproxmox_node: pve1\nproxmox_vmid: {vmid}", pve.url);
    let mut inventory = String::from("all:\n  hosts:\n");
    inventory += &entry(&base, ga, "sock-ga", &format!("gafix_hypervisor: qga_socket\ngafix_qga_socket: {}", socket(ga)));
    inventory += &entry(&base, noga, "sock-noga", &format!("gafix_hypervisor: qga_socket\ngafix_qga_socket: {}", socket(noga)));
    for vmid in 101..=105 {
        inventory += &entry(&base, ga, &format!("pve{vmid}"), &pve_vars(vmid));
    }
    let inv = fleet.write("hv.yml", &inventory);
    let inv = inv.to_str().unwrap();

    // Before the agent is installed: each host's one cause, at once or within the timeout.
    let before = agent(&fleet, &["ping", "-i", inv, "--timeout", "1", "--format", "json"], SECRET);
    assert_eq!(before.code, 2, "{}", before.stdout);
    let cause = |run: &Agent, host: &str| run.host(host)["cause"].as_str().unwrap_or("none").to_string();
    assert_eq!(cause(&before, "sock-ga"), "no_answer", "the socket is served by QEMU, and nothing answers on it");
    assert_eq!(cause(&before, "sock-noga"), "not_configured");
    assert_eq!(cause(&before, "pve101"), "no_answer");
    assert!(before.host("pve101")["error"].as_str().unwrap().contains("QEMU guest agent is not running"));
    assert_eq!(cause(&before, "pve102"), "not_configured", "the old error style: the message in the reason phrase");
    assert!(before.host("pve102")["remedy"].as_str().unwrap().contains("qm set 102 --agent enabled=1"));
    assert_eq!(cause(&before, "pve103"), "pending");
    assert!(before.host("pve103")["remedy"].as_str().unwrap().contains("a reboot from inside the guest does not"));
    assert_eq!(cause(&before, "pve104"), "not_running");
    assert_eq!(cause(&before, "pve105"), "permission_denied");
    assert!(before.host("pve105")["remedy"]
        .as_str()
        .unwrap()
        .contains("VM.GuestAgent.Audit on /vms/105 (Proxmox VE 9; VM.Monitor before 9)"));
    assert!(before.took < Duration::from_secs(12), "hosts are asked at once: {:?}", before.took);

    // A wrong token: the hypervisor cannot be asked at all (exit code 4).
    let wrong = agent(&fleet, &["ping", "-i", inv, "-l", "pve101"], "not-the-secret");
    assert_eq!(wrong.code, 4, "{}", wrong.stdout);
    assert!(wrong.stdout.contains("unreachable: [pve101] guest-ping via proxmox: HTTP 401"), "{}", wrong.stdout);

    // --fix-hypervisor enables VM 102's agent option, keeping the VM as it is without
    // --allow-restart: the change waits for a fresh start, and the host fails "restart required".
    let env = [("PROXMOX_USER", "gafix@pve"), ("PROXMOX_TOKEN_ID", "ci"), ("PROXMOX_TOKEN_SECRET", SECRET)];
    let book = fleet.write("ga.yml", GA_PLAYBOOK);
    let fixed = fleet.gafix_env(&["-i", inv, "-l", "pve102", "--fix-hypervisor", book.to_str().unwrap()], &env);
    assert_eq!(fixed.code, 2, "{}", fixed.explain());
    let step = fixed.task("pve102", "agent channel at the hypervisor");
    assert!(
        step["msg"].as_str().unwrap().starts_with("restart required: the agent channel is enabled at the hypervisor (via proxmox)"),
        "{step}"
    );
    assert_eq!(fixed.tasks("pve102").len(), 1, "no role task ran on a VM whose channel is not there yet");
    assert_eq!(pve.vms.lock().unwrap()[&102].pending_agent.as_deref(), Some("enabled=1"));
    assert!(pve.requests.lock().unwrap().contains(&"PUT /api2/json/nodes/pve1/qemu/102/config".to_string()));

    // The gate asks the hypervisor too: on the VM as Proxmox VM 101, then by its socket.
    let run = fleet.gafix_env(&["-i", inv, "-l", "pve101", book.to_str().unwrap()], &env);
    assert_eq!(run.code, 0, "{}", run.explain());
    let verify = run.task("pve101", "verify qemu-guest-agent is active");
    let msg = verify["msg"].as_str().unwrap();
    assert!(msg.starts_with("in guest: qemu-guest-agent is active; hypervisor: guest-ping ") && msg.ends_with(" ms via proxmox"), "{msg}");
    assert!(!run.stdout.contains(SECRET) && !run.report.to_string().contains(SECRET), "the token secret leaked");
    let gated = fleet.write(
        "gated.yml",
        "- name: qemu_ga_fix\n  hosts: all\n  become: true\n  roles: [qemu_ga_fix]\n\
         - name: after\n  hosts: all\n  gafix_gate: qemu_ga_fix\n  gather_facts: false\n  tasks:\n    - command: 'true'\n",
    );
    let run = fleet.gafix(&["-i", inv, "-l", "sock-ga", gated.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert!(run.task("sock-ga", "verify qemu-guest-agent is active")["msg"].as_str().unwrap().ends_with(" ms via qga_socket"));
    let gate_line =
        run.stdout.lines().find(|l| l.starts_with("sock-ga") && l.contains(" open ")).unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        gate_line.contains("(in guest: qemu-guest-agent is active; hypervisor: guest-ping ") && gate_line.ends_with(" ms via qga_socket)"),
        "{gate_line}"
    );

    // --fix-hypervisor --allow-restart through Proxmox: VM 102's pending option applied by a
    // shutdown and a start through the API (the stand-in's VM is not really restarted), then
    // the role and a passing gate.
    let restarted = fleet.gafix_env(&["-i", inv, "-l", "pve102", "--fix-hypervisor", "--allow-restart", book.to_str().unwrap()], &env);
    assert_eq!(restarted.code, 0, "{}", restarted.explain());
    assert!(restarted.task("pve102", "agent channel at the hypervisor")["msg"].as_str().unwrap().contains("restarted the VM via proxmox"));
    let requests = pve.requests.lock().unwrap().clone();
    let shutdown = requests.iter().position(|r| r == "POST /api2/json/nodes/pve1/qemu/102/status/shutdown").expect("a shutdown");
    let start = requests.iter().position(|r| r == "POST /api2/json/nodes/pve1/qemu/102/status/start").expect("a start");
    assert!(shutdown < start);
    assert_eq!(pve.vms.lock().unwrap()[&102].agent.as_deref(), Some("enabled=1"));

    // Installed and running: both ways in answer, and guest-info tells the version.
    let after = agent(&fleet, &["ping", "-i", inv, "-l", "sock-ga:pve101"], SECRET);
    assert_eq!(after.code, 0, "{}", after.stdout);
    assert!(
        after.stdout.contains("ok: [sock-ga] guest-ping via qga_socket ") && after.stdout.contains("ok: [pve101] guest-ping via proxmox ")
    );
    let info = agent(&fleet, &["info", "-i", inv, "-l", "sock-ga:pve101", "--format", "json"], SECRET);
    assert_eq!(info.code, 0, "{}", info.stdout);
    for host in ["sock-ga", "pve101"] {
        assert!(info.host(host)["info"]["version"].as_str().is_some_and(|v| !v.is_empty()), "{}", info.stdout);
    }

    // A hung agent: silent within the timeout on the socket; Proxmox's own 3-second ping fails.
    ga.sh("sudo pkill -STOP -x qemu-ga");
    let hung = agent(&fleet, &["ping", "-i", inv, "-l", "sock-ga:pve101", "--timeout", "2", "--format", "json"], SECRET);
    ga.sh("sudo pkill -CONT -x qemu-ga");
    assert_eq!(hung.code, 2, "{}", hung.stdout);
    assert_eq!(cause(&hung, "sock-ga"), "no_answer");
    assert_eq!(cause(&hung, "pve101"), "no_answer");
    assert!(hung.took < Duration::from_secs(15), "{:?}", hung.took);
    let back = agent(&fleet, &["ping", "-i", inv, "-l", "sock-ga"], SECRET);
    assert_eq!(back.code, 0, "a resumed agent answers again (stale answers skipped): {}", back.stdout);
    assert!(pve.requests.lock().unwrap().iter().any(|r| r.ends_with("/qemu/103/pending")), "pending was looked up");

    // The fleet read from Proxmox, as Ansible's proxmox inventory plugin reads it; its VMs are
    // asked through Proxmox without any more configuration.
    let plugin = fleet.write(
        "pve.proxmox.yml",
        &format!("plugin: community.proxmox.proxmox\nurl: {}\nvalidate_certs: false\nwant_facts: true\n", pve.url),
    );
    let list =
        Command::new(env!("CARGO_BIN_EXE_gafix")).args(["inventory", "-i", plugin.to_str().unwrap(), "--list"]).envs(env).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success() && !text.contains(SECRET), "{text}\n{}", String::from_utf8_lossy(&list.stderr));
    let list: Json = serde_json::from_str(&text).unwrap();
    let hosts = |g: &str| list[g]["hosts"].as_array().cloned().unwrap_or_default();
    assert_eq!(hosts("proxmox_all_qemu"), ["vm101", "vm102", "vm103", "vm104", "vm105"]);
    assert_eq!(hosts("proxmox_all_running"), ["ct200", "vm101", "vm102", "vm103", "vm105"]);
    assert_eq!(hosts("proxmox_all_stopped"), ["vm104"]);
    assert_eq!(hosts("proxmox_all_lxc"), ["ct200"]);
    assert_eq!(hosts("proxmox_all_templates"), ["debian-template"]);
    assert_eq!(hosts("proxmox_pve1_qemu").len(), 5);
    assert_eq!(hosts("proxmox_pool_prod"), ["vm101", "ct200"]);
    assert_eq!(hosts("proxmox_nodes"), ["pve1"]);
    let vm101 = &list["_meta"]["hostvars"]["vm101"];
    assert_eq!((vm101["proxmox_vmid"].as_i64(), vm101["proxmox_node"].as_str()), (Some(101), Some("pve1")));
    assert_eq!((vm101["proxmox_vmtype"].as_str(), vm101["proxmox_tags"].as_str()), (Some("qemu"), Some("gafix;ci")));
    assert_eq!(vm101["gafix_hypervisor"], "proxmox");
    assert_eq!(vm101["proxmox_net0"], serde_json::json!({"virtio": "BC:24:11:00:00:01", "bridge": "vmbr0"}), "want_facts: {vm101}");
    assert_eq!(vm101["proxmox_scsi0"]["disk_image"], "local-lvm:vm-disk-0");
    assert_eq!(vm101["proxmox_tags_parsed"], serde_json::json!(["gafix", "ci"]));
    assert_eq!(vm101["proxmox_qmpstatus"], "running");
    assert_eq!(vm101["proxmox_snapshots"], serde_json::json!([]));
    assert!(list["_meta"]["hostvars"]["ct200"].get("gafix_hypervisor").is_none(), "containers have no guest agent");
    let via_plugin = agent(&fleet, &["ping", "-i", plugin.to_str().unwrap(), "-l", "proxmox_all_qemu", "--format", "json"], SECRET);
    assert_eq!(via_plugin.code, 2, "{}", via_plugin.stdout);
    assert_eq!(via_plugin.host("vm101")["ok"], true, "{}", via_plugin.stdout);
    assert_eq!(cause(&via_plugin, "vm104"), "not_running");
}

fn virsh(args: &[&str]) -> String {
    let out = Command::new("virsh").args(["-q", "-c", "qemu:///system"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
#[ignore = "needs libvirtd, QEMU and the test image: tests/run runs it (cargo test -- --include-ignored)"]
fn libvirt_sees_the_channel_and_fix_hypervisor_adds_it() {
    let hosts = Host::start_all(&[("lv-ga", Kind::Libvirt), ("lv-noga", Kind::LibvirtWithoutChannel)]);
    let (ga, noga) = (&hosts[0], &hosts[1]);
    let fleet = Fleet::new();
    // The domain is the inventory name (libvirt_domain's default), at qemu:///system (libvirt_uri's).
    let base = support::read(&fleet.inventory(&[ga, noga]));
    let mut inventory = String::from("all:\n  vars:\n    gafix_hypervisor: libvirt\n  hosts:\n");
    inventory += &entry(&base, ga, &ga.name, "");
    inventory += &entry(&base, noga, &noga.name, "");
    let inv = fleet.write("lv.yml", &inventory);
    let inv = inv.to_str().unwrap();
    let cause = |run: &Agent, host: &str| run.host(host)["cause"].as_str().unwrap_or("none").to_string();

    // No channel: "not configured" at once; a channel nothing in the guest opened: "not connected".
    let before = agent(&fleet, &["ping", "-i", inv, "--format", "json"], SECRET);
    assert_eq!(before.code, 2, "{}", before.stdout);
    assert_eq!(cause(&before, &noga.name), "not_configured", "{}", before.stdout);
    assert!(before.host(&noga.name)["error"].as_str().unwrap().contains("QEMU guest agent is not configured"));
    assert_eq!(cause(&before, &ga.name), "disconnected", "{}", before.stdout);
    assert!(before.took < Duration::from_secs(5), "both are told at once: {:?}", before.took);

    // --fix-hypervisor without --allow-restart: the channel goes into the domain's
    // configuration, the running VM is left alone, and the host fails "restart required".
    let book = fleet.write("ga.yml", GA_PLAYBOOK);
    let book = book.to_str().unwrap();
    let fixed = fleet.gafix(&["-i", inv, "-l", &noga.name, "--fix-hypervisor", book]);
    assert_eq!(fixed.code, 2, "{}", fixed.explain());
    let step = fixed.task(&noga.name, "agent channel at the hypervisor");
    assert!(step["msg"].as_str().unwrap().starts_with("restart required"), "{step}");
    assert!(virsh(&["dumpxml", "--inactive", &noga.name]).contains("name='org.qemu.guest_agent.0'"));
    let pending = agent(&fleet, &["ping", "-i", inv, "-l", &noga.name, "--format", "json"], SECRET);
    assert_eq!(cause(&pending, &noga.name), "pending", "{}", pending.stdout);

    // With --allow-restart: a fresh start applies it, the role installs the agent, and the gate
    // passes on both views; the VM that had its channel is not restarted.
    let boot_before = ga.boot_id();
    let run = fleet.gafix(&["-i", inv, "--fix-hypervisor", "--allow-restart", book]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert!(run.task(&noga.name, "agent channel at the hypervisor")["msg"].as_str().unwrap().contains("restarted the VM via libvirt"));
    for h in [ga, noga] {
        let msg = run.task(&h.name, "verify qemu-guest-agent is active")["msg"].as_str().unwrap().to_string();
        assert!(
            msg.starts_with("in guest: qemu-guest-agent is active; hypervisor: guest-ping ") && msg.ends_with(" ms via libvirt"),
            "{msg}"
        );
    }
    assert_eq!(ga.boot_id(), boot_before, "no restart for a VM that has its channel");

    // A hung agent: libvirt's guest-sync times out ("not available for now").
    ga.sh("sudo pkill -STOP -x qemu-ga");
    let hung = agent(&fleet, &["ping", "-i", inv, "-l", &ga.name, "--timeout", "2", "--format", "json"], SECRET);
    ga.sh("sudo pkill -CONT -x qemu-ga");
    assert_eq!(cause(&hung, &ga.name), "silent", "{}", hung.stdout);
    let again = agent(&fleet, &["ping", "-i", inv], SECRET);
    assert_eq!(again.code, 0, "{}", again.stdout);
}
