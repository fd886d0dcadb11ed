//! Certificates from an ACME CA (RFC 8555, through `instant-acme`): one order per host in
//! `tls.acme.hosts`, proved by HTTP-01 (a token the proxy answers on the plain listener) or
//! TLS-ALPN-01 (a certificate the handshake gate presents). Certificates and the account key
//! are kept in `tls.acme.storage`, loaded at start, and renewed when a third of their lifetime
//! is left; a failed order is logged with the CA's error, counted, and retried with a doubling
//! wait. Until a host has a certificate, its handshakes fail (unless a default certificate is
//! configured). Nothing here blocks the event loop: files are read and written on the blocking
//! pool.

use super::Certificates;
use crate::config::{AcmeChallenge, AcmeConfig, CertificateFiles};
use crate::metrics;
use async_trait::async_trait;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{CryptoProvider, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long an order may take from challenges ready to certificate issued.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);

/// The answers to challenges in progress, looked up by the proxy (HTTP-01) and the handshake
/// gate (TLS-ALPN-01).
#[derive(Debug, Default)]
pub struct Challenges {
    /// HTTP-01: token -> key authorization.
    http: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: host -> self-signed certificate carrying the key authorization's digest.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// The body to answer `/.well-known/acme-challenge/{token}` with.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        lock(&self.http).get(token).cloned()
    }

    /// The certificate to present to an `acme-tls/1` handshake for `host`.
    pub fn alpn_certificate(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        lock(&self.alpn).get(&host.to_ascii_lowercase()).cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The account as kept in `storage/account.json`: valid for the directory it was made at.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// Gets and renews the certificates of `config.hosts`; run as a Pingora background service.
pub struct AcmeService {
    config: AcmeConfig,
    certs: Arc<Certificates>,
    challenges: Arc<Challenges>,
}

/// One host's schedule.
struct Due {
    host: String,
    at: SystemTime,
    failures: u32,
}

impl AcmeService {
    pub fn new(
        config: AcmeConfig,
        certs: Arc<Certificates>,
        challenges: Arc<Challenges>,
    ) -> AcmeService {
        AcmeService {
            config,
            certs,
            challenges,
        }
    }

    /// A stored certificate for `host` is served at once; the time it is due for renewal
    /// (now, without one).
    async fn load_stored(&self, host: &str) -> SystemTime {
        match self.serve_stored(host).await {
            Ok(due) => {
                log::info!("tls: acme: loaded the stored certificate for {host}");
                due
            }
            Err(e) => {
                if self.files(host).cert.exists() {
                    log::warn!("tls: acme: the stored certificate for {host} is unusable: {e}");
                }
                SystemTime::now()
            }
        }
    }

    /// Read `host`'s files from storage (on the blocking pool) and serve them from now on;
    /// when the certificate is due for renewal.
    async fn serve_stored(&self, host: &str) -> Result<SystemTime, String> {
        let files = self.files(host);
        let key = tokio::task::spawn_blocking(move || super::certified_key(&files))
            .await
            .map_err(|e| e.to_string())??;
        let due = renew_at(&key);
        self.certs.set_acme(host, Arc::new(key));
        Ok(due)
    }

    fn files(&self, host: &str) -> CertificateFiles {
        CertificateFiles {
            hosts: vec![host.to_string()],
            cert: self.config.storage.join(format!("{host}.crt")),
            key: self.config.storage.join(format!("{host}.key")),
        }
    }

    /// The ACME account: the stored one when it was made at this directory, else a new one
    /// (then stored).
    async fn account(&self) -> Result<Account, String> {
        let path = self.config.storage.join("account.json");
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|e| e.to_string())?
        };
        let stored: Option<StoredAccount> = read
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .filter(|s: &StoredAccount| s.directory == self.config.directory);
        if let Some(stored) = stored {
            return self
                .builder()?
                .from_credentials(stored.credentials)
                .await
                .map_err(|e| format!("restoring the account: {e}"));
        }
        let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("creating an account at {}: {e}", self.config.directory))?;
        let stored = StoredAccount {
            directory: self.config.directory.clone(),
            credentials,
        };
        let json = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
        write_private(path, json)
            .await
            .map_err(|e| format!("storing the account: {e}"))?;
        log::info!("tls: acme: account created at {}", self.config.directory);
        Ok(account)
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, String> {
        match &self.config.ca_file {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        }
        .map_err(|e| format!("HTTPS client for the CA: {e}"))
    }

    /// One order for `host`: challenges answered, certificate issued, stored and served.
    /// Returns when it is due for renewal.
    async fn obtain(&self, account: &Account, host: &str) -> Result<SystemTime, String> {
        let ids = [Identifier::Dns(host.to_string())];
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let kind = match self.config.challenge {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut tokens = Vec::new();
        let result = async {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => return Err(format!("authorization is {other:?}")),
                }
                let mut challenge = authz
                    .challenge(kind.clone())
                    .ok_or_else(|| format!("the CA offers no {kind:?} challenge"))?;
                let answer = challenge.key_authorization();
                match kind {
                    ChallengeType::TlsAlpn01 => {
                        let cert = validation_certificate(host, answer.digest().as_ref())?;
                        lock(&self.challenges.alpn).insert(host.to_string(), Arc::new(cert));
                    }
                    _ => {
                        let token = challenge.token.clone();
                        lock(&self.challenges.http).insert(token.clone(), answer.as_str().into());
                        tokens.push(token);
                    }
                }
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("challenge ready: {e}"))?;
            }
            let retries = RetryPolicy::new().timeout(ORDER_TIMEOUT);
            let status = order
                .poll_ready(&retries)
                .await
                .map_err(|e| format!("waiting for validation: {e}"))?;
            if status != OrderStatus::Ready {
                return Err(format!(
                    "order is {status:?}: {}",
                    failure_detail(&mut order).await
                ));
            }
            let key_pem = order
                .finalize()
                .await
                .map_err(|e| format!("finalize: {e}"))?;
            let chain_pem = order
                .poll_certificate(&retries)
                .await
                .map_err(|e| format!("certificate: {e}"))?;
            Ok((key_pem, chain_pem))
        }
        .await;
        {
            let mut http = lock(&self.challenges.http);
            for t in &tokens {
                http.remove(t);
            }
            lock(&self.challenges.alpn).remove(host);
        }
        let (key_pem, chain_pem) = result?;
        let files = self.files(host);
        write_private(files.key, key_pem.into_bytes())
            .await
            .map_err(|e| format!("storing the key: {e}"))?;
        write_private(files.cert, chain_pem.into_bytes())
            .await
            .map_err(|e| format!("storing the certificate: {e}"))?;
        self.serve_stored(host).await
    }

    /// An order for `host` with the account made (or restored) once and kept in `account`.
    async fn attempt(
        &self,
        account: &mut Option<Account>,
        host: &str,
    ) -> Result<SystemTime, String> {
        let account = match account {
            Some(a) => a.clone(),
            None => account.insert(self.account().await?).clone(),
        };
        self.obtain(&account, host).await
    }

    /// The wait after `failures` failed orders in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let doubled = self
            .config
            .retry_initial
            .saturating_mul(1 << failures.saturating_sub(1).min(16));
        doubled.min(self.config.retry_max)
    }
}

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Err(e) = create_dir(self.config.storage.clone()).await {
            log::error!(
                "tls: acme: storage {}: {e}; no certificates will be obtained",
                self.config.storage.display()
            );
            return;
        }
        let mut schedule = Vec::new();
        for host in &self.config.hosts {
            schedule.push(Due {
                host: host.clone(),
                at: self.load_stored(host).await,
                failures: 0,
            });
        }
        let mut account: Option<Account> = None;
        loop {
            for due in schedule.iter_mut() {
                if due.at > SystemTime::now() {
                    continue;
                }
                match self.attempt(&mut account, &due.host).await {
                    Ok(renew) => {
                        log::info!("tls: acme: certificate issued for {}", due.host);
                        metrics::TLS_ACME_ORDERS.with_label_values(&["ok"]).inc();
                        due.at = renew;
                        due.failures = 0;
                    }
                    Err(e) => {
                        due.failures += 1;
                        let wait = self.backoff(due.failures);
                        log::error!(
                            "tls: acme: no certificate for {} ({}): {e}; retrying in {} s",
                            due.host,
                            self.config.directory,
                            wait.as_secs()
                        );
                        metrics::TLS_ACME_ORDERS.with_label_values(&["error"]).inc();
                        due.at = SystemTime::now() + wait;
                    }
                }
            }
            let next = schedule.iter().map(|d| d.at).min();
            let wait = next
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or_default()
                // Wake now and then even with nothing due: the clock may jump.
                .min(Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Renew when a third of the certificate's lifetime is left (now, if its dates are unreadable).
fn renew_at(key: &CertifiedKey) -> SystemTime {
    match super::validity(key) {
        Some((start, end)) => {
            let life = end.duration_since(start).unwrap_or_default();
            end - life / 3
        }
        None => SystemTime::now(),
    }
}

/// What the CA said about a failed order's challenges.
async fn failure_detail(order: &mut instant_acme::Order) -> String {
    let mut details = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for c in &authz.challenges {
            if let Some(problem) = &c.error {
                details.push(problem.to_string());
            }
        }
    }
    if details.is_empty() {
        "no detail from the CA".into()
    } else {
        details.join("; ")
    }
}

/// The TLS-ALPN-01 certificate (RFC 8737 §3): self-signed for `host`, with the critical
/// `acmeIdentifier` extension holding the SHA-256 digest of the key authorization.
fn validation_certificate(host: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])
        .map_err(|e| format!("validation certificate: {e}"))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| format!("validation key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("validation certificate: {e}"))?;
    let provider =
        CryptoProvider::get_default().ok_or_else(|| "no TLS crypto provider".to_string())?;
    let key_der =
        PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| format!("validation key: {e}"))?;
    // Not `from_der`: its check that key and certificate match parses the certificate, and
    // refuses the critical extension only ACME validators know.
    let signer = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("validation key: {e}"))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

async fn create_dir(dir: PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || std::fs::create_dir_all(dir))
        .await
        .map_err(std::io::Error::other)?
}

/// Write `bytes` to `path` readable by its owner only, atomically (a temporary file renamed):
/// a crash never leaves half a key.
async fn write_private(path: PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || write_private_now(&path, &bytes))
        .await
        .map_err(std::io::Error::other)?
}

fn write_private_now(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AcmeChallenge;

    fn service(initial: u64, max: u64) -> AcmeService {
        pingora::tls::install_default_crypto_provider();
        let tls = crate::config::TlsConfig {
            listen: "127.0.0.1:0".into(),
            certificates: vec![],
            default_certificate: None,
            redirect_http: false,
            hsts: None,
            min_version: crate::config::TlsVersion::V1_2,
            acme: None,
        };
        AcmeService::new(
            AcmeConfig {
                directory: "https://ca.test/dir".into(),
                email: None,
                hosts: vec!["a.test".into()],
                storage: PathBuf::from("/nonexistent"),
                ca_file: None,
                challenge: AcmeChallenge::Http01,
                retry_initial: Duration::from_secs(initial),
                retry_max: Duration::from_secs(max),
            },
            Arc::new(Certificates::load(&tls).unwrap()),
            Arc::default(),
        )
    }

    #[test]
    fn failed_orders_wait_twice_as_long_each_time_up_to_the_maximum() {
        let s = service(60, 3600);
        let waits: Vec<u64> = (1..=9).map(|f| s.backoff(f).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(s.backoff(u32::MAX).as_secs(), 3600);
    }

    #[test]
    fn renewal_comes_when_a_third_of_the_lifetime_is_left() {
        let s = service(60, 3600);
        // A validation certificate: rcgen's default validity (1975 to 4096).
        let cert = validation_certificate("a.test", &[0; 32]).unwrap();
        let (start, end) = crate::tls::validity(&cert).unwrap();
        let due = renew_at(&cert);
        let left = end.duration_since(due).unwrap().as_secs_f64();
        let life = end.duration_since(start).unwrap().as_secs_f64();
        assert!((left / life - 1.0 / 3.0).abs() < 1e-6, "{left} of {life}");
        // Challenges are found by token and by host, case-insensitively for hosts.
        lock(&s.challenges.http).insert("tok".into(), "tok.thumb".into());
        lock(&s.challenges.alpn).insert("a.test".into(), Arc::new(cert));
        assert_eq!(
            s.challenges.http_answer("tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(s.challenges.http_answer("other"), None);
        assert!(s.challenges.alpn_certificate("A.Test").is_some());
        assert!(s.challenges.alpn_certificate("b.test").is_none());
    }

    #[test]
    fn keys_are_written_whole_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.test.key");
        write_private_now(&path, b"one").unwrap();
        write_private_now(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join("a.test.tmp").exists());
    }
}
