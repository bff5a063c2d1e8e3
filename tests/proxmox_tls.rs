//! Proxmox over HTTPS, as a PVE node serves its API: a certificate from a CA the system does
//! not trust. `proxmox_validate_certs` (true by default) refuses it, `proxmox_ca_file` trusts
//! that CA, `proxmox_validate_certs: false` accepts any certificate. The server is a small
//! rustls listener answering `agent/ping`; the fixtures are a throwaway CA and a certificate
//! for 127.0.0.1 (tests/fixtures/tls).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

/// Serves `POST .../agent/ping` over TLS on a free port; returns the port.
fn serve_tls() -> u16 {
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(fixture("cert.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(fixture("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut reader = BufReader::new(&mut tls);
                let mut line = String::new();
                // The request line and headers (a refused handshake ends here).
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let body = r#"{"data":{"result":{}}}"#;
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
            });
        }
    });
    port
}

fn ping(dir: &std::path::Path, port: u16, extra: &str) -> (i32, String) {
    let inventory = format!(
        "all:\n  hosts:\n    vm1:\n      gafix_hypervisor: proxmox\n      proxmox_url: https://127.0.0.1:{port}\n      proxmox_node: pve1\n      \
         proxmox_vmid: 101\n{extra}"
    );
    std::fs::write(dir.join("hosts.yml"), inventory).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gafix"))
        .args(["agent", "ping", "-i", "hosts.yml"])
        .env("PROXMOX_USER", "gafix@pve")
        .env("PROXMOX_TOKEN_ID", "ci")
        .env("PROXMOX_TOKEN_SECRET", "tls-test-secret")
        .current_dir(dir)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn certificates_are_checked_unless_told_otherwise() {
    let port = serve_tls();
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = ping(dir.path(), port, "");
    assert_eq!(code, 4, "an untrusted certificate: the hypervisor cannot be asked\n{out}");
    assert!(out.contains("unreachable: [vm1] guest-ping via proxmox") && out.contains("UnknownIssuer"), "{out}");
    let (code, out) = ping(dir.path(), port, &format!("      proxmox_ca_file: {}\n", fixture("ca.pem").display()));
    assert_eq!(code, 0, "the node's CA, trusted by proxmox_ca_file\n{out}");
    assert!(out.contains("ok: [vm1] guest-ping via proxmox"), "{out}");
    let (code, out) = ping(dir.path(), port, "      proxmox_validate_certs: false\n");
    assert_eq!(code, 0, "{out}");
    let (code, out) = ping(dir.path(), port, &format!("      proxmox_ca_file: {}\n", fixture("key.pem").display()));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("proxmox_ca_file") && out.contains("no certificate in it"), "{out}");
}
