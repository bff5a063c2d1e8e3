//! Proxmox VE's view, through its HTTP API with an API token. The routes, shapes and errors
//! are qemu-server's (`PVE/API2/Qemu.pm`, `PVE/API2/Qemu/Agent.pm`): the VM's `config` (its
//! `agent` property string), `pending` (an `agent` change waiting for a fresh start),
//! `status/current`, `agent/ping` and `agent/info`. Errors come back as HTTP 500 with the
//! message as the reason phrase (older releases) or in the JSON body's `message` (newer):
//! both are read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

use super::{remedy, Cause, Diagnosis, Via};
use crate::transport::Secret;

/// An API token: `PVEAPIToken=USER@REALM!TOKENID=SECRET`.
pub struct Token {
    user: String,
    id: String,
    secret: Secret,
}

impl Token {
    pub fn new(user: String, id: String, secret: Secret) -> Result<Token, String> {
        if !user.contains('@') || user.contains(['!', '=', '\n']) {
            return Err(format!("PROXMOX_USER '{user}' is not USER@REALM (e.g. gafix@pve)"));
        }
        if id.is_empty() || id.contains(['!', '=', '@', '\n']) {
            return Err(format!("PROXMOX_TOKEN_ID '{id}' is not a token name"));
        }
        if secret.expose().contains(['\n', '\r']) {
            return Err("PROXMOX_TOKEN_SECRET has a line break".into());
        }
        Ok(Token { user, id, secret })
    }

    /// The `Authorization` header's value.
    pub fn header(&self) -> String {
        format!("PVEAPIToken={}!{}={}", self.user, self.id, self.secret.expose())
    }
}

/// A Proxmox VE API endpoint with its token: `https://pve1:8006`.
pub struct Api {
    /// Without a trailing slash.
    pub url: String,
    pub token: Token,
    agent: ureq::Agent,
}

impl Clone for Api {
    fn clone(&self) -> Self {
        let token =
            Token { user: self.token.user.clone(), id: self.token.id.clone(), secret: Secret::new(self.token.secret.expose().to_string()) };
        Api { url: self.url.clone(), token, agent: self.agent.clone() }
    }
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Api({} as {}!{})", self.url, self.token.user, self.token.id)
    }
}

/// What an API call got instead of data.
#[derive(Debug)]
pub enum ApiError {
    /// No HTTP answer at all (DNS, refused, TLS, timeout).
    Transport(String),
    /// An HTTP error status, with the message from the body or the reason phrase.
    Status(u16, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Transport(m) => f.write_str(m),
            ApiError::Status(code, m) => write!(f, "HTTP {code} {m}"),
        }
    }
}

impl Api {
    pub fn new(url: &str, token: Token, validate_certs: bool, ca_file: Option<PathBuf>) -> Result<Api, String> {
        let url = url.trim_end_matches('/').to_string();
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.contains(['/', '?', '#'])) {
            return Err(format!("proxmox_url '{url}' is not https://HOST[:PORT] (http:// is accepted too)"));
        }
        let mut builder = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5));
        if let Some(config) = tls_config(validate_certs, ca_file)? {
            builder = builder.tls_config(config);
        }
        Ok(Api { url, token, agent: builder.build() })
    }

    /// One call, blocking: the envelope's `data`. `path` follows `/api2/json/`.
    pub fn request(&self, method: &str, path: &str, form: &[(String, String)], limit: Duration) -> Result<Json, ApiError> {
        let request =
            self.agent.request(method, &format!("{}/api2/json/{path}", self.url)).set("Authorization", &self.token.header()).timeout(limit);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let response = if method == "GET" { request.call() } else { request.send_form(&form) };
        let answer: Json = match response {
            Ok(r) => r
                .into_string()
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str::<Json>(&text).map_err(|e| e.to_string()))
                .map_err(|e| ApiError::Transport(format!("unreadable answer: {e}")))?,
            Err(ureq::Error::Status(code, r)) => {
                let reason = r.status_text().trim().to_string();
                let body: Option<Json> = r.into_string().ok().and_then(|text| serde_json::from_str(&text).ok());
                let message = body
                    .as_ref()
                    .and_then(|b| b.get("message"))
                    .and_then(Json::as_str)
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .unwrap_or(reason);
                return Err(ApiError::Status(code, message));
            }
            Err(ureq::Error::Transport(t)) => return Err(ApiError::Transport(t.to_string())),
        };
        Ok(answer.get("data").cloned().unwrap_or(Json::Null))
    }
}

/// A VM on a Proxmox node, and the node's API.
#[derive(Clone, Debug)]
pub struct Target {
    pub api: Api,
    pub node: String,
    pub vmid: u32,
}

/// How long an API call may take beyond the agent's own timeout.
const HTTP_GRACE: Duration = Duration::from_secs(10);

impl Target {
    pub fn new(url: &str, node: String, vmid: u32, token: Token, validate_certs: bool, ca_file: Option<PathBuf>) -> Result<Target, String> {
        if node.is_empty() || !node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(format!("proxmox_node '{node}' is not a node name"));
        }
        Ok(Target { api: Api::new(url, token, validate_certs, ca_file)?, node, vmid })
    }

    /// One call on the VM (on tokio's blocking pool): the envelope's `data`.
    async fn call(&self, method: &'static str, rest: &str, form: Vec<(String, String)>, limit: Duration) -> Result<Json, ApiError> {
        let api = self.api.clone();
        let path = format!("nodes/{}/qemu/{}/{rest}", self.node, self.vmid);
        tokio::task::spawn_blocking(move || api.request(method, &path, &form, limit))
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?
    }

    /// Runs one agent command through the API: `guest-ping` is `POST agent/ping`, others
    /// `GET agent/<name without guest->`; the command's `result`.
    pub async fn agent_command(&self, command: &str, timeout: Duration) -> Result<Json, Diagnosis> {
        let route = command.strip_prefix("guest-").unwrap_or(command);
        let method = if route == "ping" { "POST" } else { "GET" };
        match self.call(method, &format!("agent/{route}"), Vec::new(), timeout + HTTP_GRACE).await {
            Ok(data) => Ok(data.get("result").cloned().unwrap_or(data)),
            Err(e) => Err(self.explain(e).await),
        }
    }

    /// The cause behind a failed agent call. Proxmox checks only that the running
    /// configuration has an `agent` key (`agent: 0` passes), then that the VM runs, then
    /// pings: so a "not running" agent is looked up in the configuration, where the option
    /// may be off, or on only in `pending` (waiting for a fresh start).
    async fn explain(&self, e: ApiError) -> Diagnosis {
        let (cause, detail) = classify(&e);
        if !matches!(cause, Cause::NotConfigured | Cause::NoAnswer) {
            return self.diagnosis(cause, detail);
        }
        let current = self.call("GET", "config?current=1", Vec::new(), HTTP_GRACE).await.ok();
        let enabled_now = current.as_ref().and_then(|c| c.get("agent")).map(crate::vars::text).is_some_and(|a| agent_enabled(&a));
        if enabled_now {
            return self.diagnosis(cause, detail);
        }
        if self.agent_pending().await == Some(true) {
            return self.diagnosis(Cause::Pending, format!("{detail}: the agent option is enabled, pending a fresh start of the VM"));
        }
        if current.is_some() {
            return self.diagnosis(Cause::NotConfigured, format!("{detail}: the VM's agent option is off"));
        }
        self.diagnosis(cause, detail)
    }

    fn diagnosis(&self, cause: Cause, detail: String) -> Diagnosis {
        Diagnosis { via: Via::Proxmox, cause, detail, remedy: remedy(Via::Proxmox, cause, &self.vmid.to_string()) }
    }

    /// Whether `pending` holds an agent change that enables it.
    async fn agent_pending(&self) -> Option<bool> {
        let data = self.call("GET", "pending", Vec::new(), HTTP_GRACE).await.ok()?;
        let entry = data.as_array()?.iter().find(|e| e.get("key").and_then(Json::as_str) == Some("agent"))?;
        let pending = entry.get("pending")?;
        Some(agent_enabled(&crate::vars::text(pending)))
    }

    /// Turns the agent option on, keeping its other keys; `false` when it was on already
    /// (maybe pending). Effective at the VM's next fresh start.
    pub async fn enable_agent(&self) -> Result<bool, Diagnosis> {
        let config = self.call("GET", "config", Vec::new(), HTTP_GRACE).await.map_err(|e| self.diagnosis_of(e))?;
        let current = config.get("agent").map(crate::vars::text).unwrap_or_default();
        if agent_enabled(&current) {
            return Ok(false);
        }
        let form = vec![("agent".to_string(), with_agent_enabled(&current))];
        self.call("PUT", "config", form, HTTP_GRACE).await.map_err(|e| self.diagnosis_of(e))?;
        Ok(true)
    }

    /// A fresh start: shutdown (the guest's own, through ACPI or the agent), waiting until
    /// stopped, then start and wait until running. Never forced off.
    pub async fn restart(&self, limit: Duration) -> Result<(), Diagnosis> {
        if self.status().await? != "stopped" {
            let form = vec![("timeout".to_string(), limit.as_secs().to_string())];
            self.call("POST", "status/shutdown", form, HTTP_GRACE).await.map_err(|e| self.diagnosis_of(e))?;
            self.wait_for("stopped", limit).await?;
        }
        self.call("POST", "status/start", Vec::new(), HTTP_GRACE).await.map_err(|e| self.diagnosis_of(e))?;
        self.wait_for("running", Duration::from_secs(60)).await
    }

    async fn status(&self) -> Result<String, Diagnosis> {
        let data = self.call("GET", "status/current", Vec::new(), HTTP_GRACE).await.map_err(|e| self.diagnosis_of(e))?;
        Ok(data.get("status").and_then(Json::as_str).unwrap_or("unknown").to_string())
    }

    async fn wait_for(&self, wanted: &str, limit: Duration) -> Result<(), Diagnosis> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let status = self.status().await?;
            if status == wanted {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.diagnosis(Cause::Failed, format!("the VM is {status}, not {wanted}, after {} s", limit.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn diagnosis_of(&self, e: ApiError) -> Diagnosis {
        let (cause, detail) = classify(&e);
        self.diagnosis(cause, detail)
    }
}

/// The cause of an API error, and its message.
fn classify(e: &ApiError) -> (Cause, String) {
    match e {
        ApiError::Transport(m) => (Cause::Unreachable, m.clone()),
        ApiError::Status(401, m) => (Cause::AuthFailed, format!("HTTP 401 {m}")),
        ApiError::Status(403, m) => (Cause::PermissionDenied, format!("HTTP 403 {m}")),
        ApiError::Status(code, m) => {
            let lower = m.to_ascii_lowercase();
            let cause = if lower.contains("no qemu guest agent configured") || lower.contains("agent not configured") {
                Cause::NotConfigured
            } else if lower.contains("guest agent is not running") {
                // Proxmox pings before each command and says this whether none runs or it hangs.
                Cause::NoAnswer
            } else if lower.contains("got timeout") {
                Cause::Silent
            } else if lower.contains("not running") {
                Cause::NotRunning
            } else if lower.contains("permission check failed") {
                Cause::PermissionDenied
            } else {
                Cause::Failed
            };
            (cause, format!("HTTP {code} {m}"))
        }
    }
}

/// Whether an `agent` property string enables the agent: `1`, `enabled=1,...`, `1,fstrim...`.
pub fn agent_enabled(value: &str) -> bool {
    value.split(',').enumerate().any(|(i, part)| match part.split_once('=') {
        Some(("enabled", v)) => crate::yaml::parse_bool_str(v.trim()).unwrap_or(v.trim() == "1"),
        None => i == 0 && matches!(part.trim(), "1" | "yes" | "true" | "on"),
        _ => false,
    })
}

/// The property string with the agent enabled and every other key kept.
pub fn with_agent_enabled(value: &str) -> String {
    let others: Vec<&str> = value
        .split(',')
        .enumerate()
        .filter(|(i, part)| !part.trim().is_empty() && !part.starts_with("enabled=") && (*i != 0 || part.contains('=')))
        .map(|(_, part)| part)
        .collect();
    std::iter::once("enabled=1").chain(others).collect::<Vec<_>>().join(",")
}

/// The TLS configuration for `proxmox_validate_certs` and `proxmox_ca_file`; `None` for
/// ureq's default (validated against the bundled public roots).
fn tls_config(validate: bool, ca_file: Option<PathBuf>) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match (validate, ca_file) {
        (true, None) => return Ok(None),
        (true, Some(path)) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&path).map_err(|e| format!("proxmox_ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("proxmox_ca_file {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("proxmox_ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("proxmox_ca_file {}: no certificate in it", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (false, _) => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))).with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

/// `proxmox_validate_certs: false`, as Ansible's plugin: any certificate is accepted (the
/// handshake's signatures are still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_property_string_as_proxmox_writes_it() {
        for on in ["1", "enabled=1", "1,fstrim_cloned_disks=1", "enabled=1,fstrim_cloned_disks=1,type=virtio", "type=isa,enabled=1"] {
            assert!(agent_enabled(on), "{on}");
        }
        for off in ["", "0", "enabled=0", "0,fstrim_cloned_disks=1", "type=virtio"] {
            assert!(!agent_enabled(off), "{off}");
        }
        assert_eq!(with_agent_enabled(""), "enabled=1");
        assert_eq!(with_agent_enabled("0"), "enabled=1");
        assert_eq!(with_agent_enabled("0,fstrim_cloned_disks=1,type=virtio"), "enabled=1,fstrim_cloned_disks=1,type=virtio");
        assert_eq!(with_agent_enabled("enabled=0,type=isa"), "enabled=1,type=isa");
    }

    #[test]
    fn api_errors_name_their_cause() {
        let c = |code, m: &str| classify(&ApiError::Status(code, m.into())).0;
        assert_eq!(c(500, "No QEMU guest agent configured"), Cause::NotConfigured);
        assert_eq!(c(500, "QEMU guest agent is not running"), Cause::NoAnswer);
        assert_eq!(c(500, "VM 101 qmp command 'guest-ping' failed - got timeout"), Cause::Silent);
        assert_eq!(c(500, "VM 101 not running"), Cause::NotRunning);
        assert_eq!(c(401, "authentication failure"), Cause::AuthFailed);
        assert_eq!(c(403, "Permission check failed (/vms/101, VM.GuestAgent.Audit)"), Cause::PermissionDenied);
        assert_eq!(classify(&ApiError::Transport("Connection refused".into())).0, Cause::Unreachable);
    }

    #[test]
    fn urls_tokens_and_nodes_are_checked() {
        let token = || Token::new("gafix@pve".into(), "ci".into(), Secret::new("s3cr3t-value".into())).unwrap();
        assert!(Target::new("https://pve1:8006/", "pve1".into(), 100, token(), true, None).is_ok());
        assert!(Target::new("http://127.0.0.1:9", "pve1".into(), 100, token(), true, None).is_ok());
        assert!(Target::new("pve1:8006", "pve1".into(), 100, token(), true, None).is_err());
        assert!(Target::new("https://pve1:8006/api2", "pve1".into(), 100, token(), true, None).is_err());
        assert!(Target::new("https://pve1:8006", "../x".into(), 100, token(), true, None).is_err());
        assert!(Target::new("https://pve1:8006", "pve1".into(), 100, token(), false, None).is_ok());
        assert!(Token::new("gafix".into(), "ci".into(), Secret::new("x".into())).is_err(), "no realm");
    }
}
