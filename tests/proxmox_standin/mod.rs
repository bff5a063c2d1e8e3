//! A stand-in for Proxmox VE's API, for the tests: no Proxmox runs here. The HTTP layer is a
//! stand-in; the agent exchange behind `agent/ping` and `agent/info` is real, forwarded to a
//! test VM's QGA socket (`testvm qga`).
//!
//! Routes, shapes and errors follow qemu-server (`PVE/API2/Qemu.pm`: `config` with
//! `current`, `pending`, `status/current`, `status/shutdown|start`; `PVE/API2/Qemu/Agent.pm`:
//! the agent endpoints check, in this order, that the running configuration has an `agent`
//! key ("No QEMU guest agent configured"), that the VM runs ("VM N is not running"), and that
//! a 3-second guest-ping answers ("QEMU guest agent is not running"), each an HTTP 500), and
//! pve-http-server (the message is the reason phrase; since 5.2 also the body's `message`;
//! a bad token is `401 Authentication failed!`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value as Json};

/// One VM as the stand-in keeps it.
#[derive(Clone, Debug)]
pub struct Vm {
    /// The running configuration's `agent` property (`None`: no such key).
    pub agent: Option<String>,
    /// An `agent` value waiting for the next fresh start.
    pub pending_agent: Option<String>,
    pub running: bool,
    /// The test VM (`testvm` name) whose QGA socket answers for this one.
    pub qga_of: Option<String>,
    /// Errors in the old style: the message only in the reason phrase.
    pub old_style_errors: bool,
    /// The token lacks the agent privileges on this VM.
    pub audit_denied: bool,
}

pub struct StandIn {
    pub url: String,
    pub vms: Arc<Mutex<BTreeMap<u32, Vm>>>,
    /// Every request, as `METHOD path`.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    /// Serves `vms` of node `node` on a free loopback port; `token` is the one accepted
    /// `Authorization` header value.
    pub fn start(node: &str, token: &str, testvm: std::path::PathBuf, vms: BTreeMap<u32, Vm>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let vms = Arc::new(Mutex::new(vms));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (state, log, node, token) = (vms.clone(), requests.clone(), node.to_string(), token.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, log, node, token, testvm) = (state.clone(), log.clone(), node.clone(), token.clone(), testvm.clone());
                std::thread::spawn(move || serve(stream, &state, &log, &node, &token, &testvm));
            }
        });
        StandIn { url, vms, requests }
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    form: BTreeMap<String, String>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let (path, query) = target.split_once('?').map(|(p, q)| (p.to_string(), q.to_string())).unwrap_or((target, String::new()));
    let (mut length, mut authorization) = (0usize, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorization = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let form = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    Some(Request { method, path, query, authorization, form })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("20");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b' '));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(mut stream: TcpStream, code: u16, reason: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn respond_json(stream: &TcpStream, body: &Json) {
    respond(stream.try_clone().unwrap(), 200, "OK", &body.to_string());
}

fn error(stream: TcpStream, code: u16, message: &str, old_style: bool) {
    let body = if old_style { json!({"data": null}) } else { json!({"data": null, "message": format!("{message}\n")}) };
    respond(stream, code, message, &body.to_string());
}

fn serve(stream: TcpStream, state: &Mutex<BTreeMap<u32, Vm>>, log: &Mutex<Vec<String>>, node: &str, token: &str, testvm: &std::path::Path) {
    let Some(req) = read_request(&stream) else { return };
    log.lock().unwrap().push(format!("{} {}", req.method, req.path));
    if req.authorization.as_deref() != Some(token) {
        return respond(stream, 401, "Authentication failed!", "");
    }
    // The fleet, as the inventory plugin lists it: one node, its VMs (and a template), one
    // container, one pool.
    let listing = |d: Json| respond_json(&stream, &json!({ "data": d }));
    if req.method == "GET" {
        match req.path.as_str() {
            "/api2/json/nodes" => return listing(json!([{"node": node, "type": "node", "status": "online"}])),
            p if p == format!("/api2/json/nodes/{node}/qemu") => {
                let mut vms: Vec<Json> = state
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(id, vm)| json!({"vmid": id, "name": format!("vm{id}"), "status": if vm.running { "running" } else { "stopped" }, "tags": "gafix;ci"}))
                    .collect();
                vms.push(json!({"vmid": 9000, "name": "debian-template", "status": "stopped", "template": 1}));
                return listing(json!(vms));
            }
            p if p == format!("/api2/json/nodes/{node}/lxc") => {
                return listing(json!([{"vmid": 200, "name": "ct200", "status": "running"}]))
            }
            p if p == format!("/api2/json/nodes/{node}/qemu/9000/status/current") => {
                return listing(json!({"status": "stopped", "vmid": 9000, "template": 1}))
            }
            p if p == format!("/api2/json/nodes/{node}/qemu/9000/config") => {
                return listing(json!({"name": "debian-template", "template": 1, "cores": 1}))
            }
            p if p == format!("/api2/json/nodes/{node}/qemu/9000/snapshot") => return listing(json!([{"name": "current"}])),
            p if p == format!("/api2/json/nodes/{node}/lxc/200/status/current") => {
                return listing(json!({"status": "running", "vmid": 200}))
            }
            p if p == format!("/api2/json/nodes/{node}/lxc/200/config") => {
                return listing(json!({"hostname": "ct200", "ostype": "debian"}))
            }
            p if p == format!("/api2/json/nodes/{node}/lxc/200/snapshot") => return listing(json!([{"name": "current"}])),
            "/api2/json/pools" => return listing(json!([{"poolid": "prod"}])),
            "/api2/json/pools/prod" => {
                return listing(
                    json!({"members": [{"vmid": 101, "name": "vm101", "type": "qemu"}, {"vmid": 200, "name": "ct200", "type": "lxc"}]}),
                )
            }
            _ => {}
        }
    }
    let prefix = format!("/api2/json/nodes/{node}/qemu/");
    let Some(rest) = req.path.strip_prefix(&prefix) else {
        return error(stream, 501, &format!("Method '{} {}' not implemented", req.method, req.path), false);
    };
    let (vmid, route) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(vmid) = vmid.parse::<u32>() else { return error(stream, 400, "Parameter verification failed.", false) };
    let Some(vm) = state.lock().unwrap().get(&vmid).cloned() else {
        return error(stream, 500, &format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"), false);
    };
    let old = vm.old_style_errors;
    let data = |d: Json| json!({ "data": d }).to_string();
    match (req.method.as_str(), route) {
        ("GET", "config") => {
            let current = req.query.contains("current=1");
            let agent = if current { vm.agent.clone() } else { vm.pending_agent.clone().or(vm.agent.clone()) };
            let mut config = json!({"name": format!("vm{vmid}"), "memory": "512", "digest": "0", "cores": 1,
                "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "scsi0": "local-lvm:vm-disk-0,size=8G", "tags": "gafix;ci"});
            if let Some(a) = agent {
                config["agent"] = json!(a);
            }
            respond(stream, 200, "OK", &data(config))
        }
        ("GET", "pending") => {
            let mut entries = vec![json!({"key": "memory", "value": "512"})];
            match (&vm.agent, &vm.pending_agent) {
                (Some(v), Some(p)) => entries.push(json!({"key": "agent", "value": v, "pending": p})),
                (None, Some(p)) => entries.push(json!({"key": "agent", "pending": p})),
                (Some(v), None) => entries.push(json!({"key": "agent", "value": v})),
                (None, None) => {}
            }
            respond(stream, 200, "OK", &data(json!(entries)))
        }
        ("GET", "status/current") => {
            let status = if vm.running { "running" } else { "stopped" };
            let mut current = json!({"vmid": vmid, "name": format!("vm{vmid}"), "status": status, "qmpstatus": status});
            if vm.running && vm.agent.as_deref().is_some_and(|a| a.starts_with('1') || a.contains("enabled=1")) {
                current["agent"] = json!(1);
            }
            respond(stream, 200, "OK", &data(current))
        }
        ("PUT", "config") => {
            if let Some(agent) = req.form.get("agent") {
                // Not hot-pluggable: a running VM gets it at its next fresh start.
                let mut all = state.lock().unwrap();
                let vm = all.get_mut(&vmid).unwrap();
                if vm.running {
                    vm.pending_agent = Some(agent.clone());
                } else {
                    vm.agent = Some(agent.clone());
                }
            }
            respond(stream, 200, "OK", &data(Json::Null))
        }
        ("GET", "snapshot") => respond(stream, 200, "OK", &data(json!([{"name": "current", "description": "You are here!"}]))),
        // A fresh start applies what is pending; the VM behind the agent is not restarted.
        ("POST", "status/shutdown") | ("POST", "status/start") => {
            let mut all = state.lock().unwrap();
            let vm = all.get_mut(&vmid).unwrap();
            if route == "status/shutdown" {
                vm.running = false;
                if let Some(p) = vm.pending_agent.take() {
                    vm.agent = Some(p);
                }
            } else {
                vm.running = true;
            }
            let task = route.trim_start_matches("status/");
            respond(stream, 200, "OK", &data(json!(format!("UPID:{node}:0000A1B2:0001C3D4:6745A1B2:qm{task}:{vmid}:gafix@pve!ci:"))))
        }
        ("POST", "agent/ping") | ("GET", "agent/info") if vm.audit_denied => {
            error(stream, 403, &format!("Permission check failed (/vms/{vmid}, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)"), old)
        }
        ("POST", "agent/ping") | ("GET", "agent/info") => {
            if vm.agent.is_none() {
                return error(stream, 500, "No QEMU guest agent configured", old);
            }
            if !vm.running {
                return error(stream, 500, &format!("VM {vmid} is not running"), old);
            }
            let command = if route == "agent/ping" { "guest-ping" } else { "guest-info" };
            let answer = vm.qga_of.as_deref().and_then(|name| {
                let out = Command::new(testvm)
                    .args(["qga", name, &json!({"execute": command}).to_string()])
                    .env("GAFIX_QGA_TIMEOUT", "3")
                    .output()
                    .ok()?;
                let reply: Json = serde_json::from_slice(&out.stdout).ok()?;
                reply.get("return").cloned()
            });
            match answer {
                Some(result) => respond(stream, 200, "OK", &data(json!({"result": result}))),
                None => error(stream, 500, "QEMU guest agent is not running", old),
            }
        }
        _ => error(stream, 501, &format!("Method '{} {}' not implemented", req.method, req.path), false),
    }
}
