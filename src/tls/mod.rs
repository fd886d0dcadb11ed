//! The edge's TLS: which certificate a handshake gets, chosen by the client's SNI among the
//! configured ones (exact names first, then `*.parent` wildcards covering one label, then the
//! default certificate). A name nothing covers, without a default, fails the handshake.
//! [`Certificates`] serves the current [`CertStore`] and swaps in a new one when the files
//! change or on SIGHUP ([`CertReloader`]): handshakes from then on get the new certificates,
//! connections already open keep theirs. Certificates obtained from an ACME CA ([`acme`]) are
//! served beside the files, for their exact host names. [`gate`] looks at each ClientHello
//! before the handshake (minimum version, TLS-ALPN-01 challenges), reading it with [`hello`].
//! Knows nothing of HTTP or of Pingora's phases.

pub mod acme;
pub mod gate;
pub mod hello;

use crate::config::{CertificateFiles, TlsConfig};
use crate::metrics;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How often the certificate files are checked for changes.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The certificates the TLS listener serves, by host name.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the parent domain: `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    /// Each certificate's name (its first host, or `default`) and when its leaf expires.
    expiries: Vec<(String, Option<SystemTime>)>,
}

impl CertStore {
    /// Read every certificate and key of `tls`; the first file that cannot be read or does not
    /// hold a usable chain and key is the error.
    pub fn load(tls: &TlsConfig) -> Result<CertStore, String> {
        pingora::tls::install_default_crypto_provider();
        let mut store = CertStore::default();
        for files in &tls.certificates {
            let key = Arc::new(certified_key(files)?);
            store
                .expiries
                .push((files.hosts[0].clone(), not_after(&key)));
            for host in &files.hosts {
                match host.strip_prefix("*.") {
                    Some(parent) => store.wildcard.insert(parent.to_string(), key.clone()),
                    None => store.exact.insert(host.clone(), key.clone()),
                };
            }
        }
        if let Some(files) = &tls.default_certificate {
            let key = Arc::new(certified_key(files)?);
            store.expiries.push(("default".into(), not_after(&key)));
            store.default = Some(key);
        }
        Ok(store)
    }

    /// Log what is served and export each certificate's expiry.
    fn announce(&self) {
        for (name, expiry) in &self.expiries {
            announce(name, *expiry);
        }
    }

    /// The certificate for `sni` (a host name, any case): an exact name, else one of `acme`
    /// (certificates from the ACME CA, by exact name), else a wildcard, else the default;
    /// `None` when nothing covers it.
    pub fn choose(
        &self,
        sni: Option<&str>,
        acme: &HashMap<String, Arc<CertifiedKey>>,
    ) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name).or_else(|| acme.get(&name)) {
            return Some(k.clone());
        }
        let wildcard = name
            .split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent));
        wildcard.cloned().or_else(|| self.default.clone())
    }
}

/// The certificates the TLS listener serves now, reloaded when their files change.
#[derive(Debug)]
pub struct Certificates {
    current: ArcSwap<CertStore>,
    /// Obtained from the ACME CA, by exact host name.
    acme: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    tls: TlsConfig,
    /// Every file's modification time at the last load.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl Certificates {
    pub fn load(tls: &TlsConfig) -> Result<Certificates, String> {
        let store = CertStore::load(tls)?;
        store.announce();
        Ok(Certificates {
            current: ArcSwap::from_pointee(store),
            acme: ArcSwap::default(),
            stamps: Mutex::new(stamps(tls)),
            tls: tls.clone(),
        })
    }

    /// Load the files again if any changed (or `force`); a failed load keeps what is served.
    /// `Ok(true)`: new certificates are served.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let now = stamps(&self.tls);
        let mut last = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        if !force && *last == now {
            return Ok(false);
        }
        *last = now;
        let store = CertStore::load(&self.tls)?;
        store.announce();
        self.current.store(Arc::new(store));
        Ok(true)
    }

    /// Serve `key` for `host` from now on (a certificate the ACME CA issued), replacing the
    /// previous one; logs and exports its expiry.
    pub fn set_acme(&self, host: &str, key: Arc<CertifiedKey>) {
        let expiry = not_after(&key);
        let mut map = HashMap::clone(&self.acme.load());
        map.insert(host.to_string(), key);
        self.acme.store(Arc::new(map));
        announce(host, expiry);
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current
            .load()
            .choose(hello.server_name(), &self.acme.load())
    }
}

/// Log the certificate served for `name` and export when it expires.
fn announce(name: &str, expiry: Option<SystemTime>) {
    let at = expiry
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    log::info!("tls: serving the certificate for {name}, expiring at {at} (Unix time)");
    metrics::TLS_CERT_EXPIRY
        .with_label_values(&[name])
        .set(at as i64);
}

fn stamps(tls: &TlsConfig) -> Vec<Option<SystemTime>> {
    let files: Vec<&PathBuf> = tls
        .certificates
        .iter()
        .chain(&tls.default_certificate)
        .flat_map(|f| [&f.cert, &f.key])
        .collect();
    files
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// When the leaf certificate of `key` expires.
fn not_after(key: &CertifiedKey) -> Option<SystemTime> {
    validity(key).map(|(_, end)| end)
}

/// When the leaf certificate of `key` starts and stops being valid.
pub fn validity(key: &CertifiedKey) -> Option<(SystemTime, SystemTime)> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let at = |t: i64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).ok()?));
    Some((
        at(cert.validity().not_before.timestamp())?,
        at(cert.validity().not_after.timestamp())?,
    ))
}

/// Checks the certificate files every [`CHECK_EVERY`] and reloads them when they changed or
/// SIGHUP came (which would otherwise end the process).
pub struct CertReloader(pub Arc<Certificates>);

impl CertReloader {
    pub fn new(certs: Arc<Certificates>) -> std::io::Result<CertReloader> {
        crate::signals::watch(libc::SIGHUP)?;
        Ok(CertReloader(certs))
    }
}

#[async_trait]
impl BackgroundService for CertReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            let forced = crate::signals::take(libc::SIGHUP);
            let certs = self.0.clone();
            // Reading and parsing files: off the event loop.
            let result = tokio::task::spawn_blocking(move || certs.reload(forced)).await;
            match result {
                Ok(Ok(true)) => {
                    log::info!("tls: certificates reloaded");
                    metrics::TLS_RELOADS.with_label_values(&["ok"]).inc();
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    log::error!("tls: reload failed, still serving the previous certificates: {e}");
                    metrics::TLS_RELOADS.with_label_values(&["error"]).inc();
                }
                Err(e) => log::error!("tls: reload task: {e}"),
            }
        }
    }
}

pub fn certified_key(files: &CertificateFiles) -> Result<CertifiedKey, String> {
    let (cert, key) = (files.cert.to_string_lossy(), files.key.to_string_lossy());
    let loaded = pingora::tls::load_certs_and_key_files(&cert, &key)
        .map_err(|e| format!("{cert} / {key}: {e}"))?;
    let Some((chain, key_der)) = loaded else {
        return Err(format!(
            "{cert} / {key}: no certificate or no private key in them"
        ));
    };
    let chain = chain.into_iter().map(|c| c.into_owned()).collect();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider installed".to_string())?;
    CertifiedKey::from_der(chain, key_der.clone_key(), provider)
        .map_err(|e| format!("{cert} / {key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files(hosts: &[&str]) -> CertificateFiles {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
        CertificateFiles {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            cert: dir.join("origin.pem"),
            key: dir.join("origin.key"),
        }
    }

    #[test]
    fn the_certificate_follows_the_name() {
        let tls = TlsConfig {
            listen: "127.0.0.1:0".into(),
            certificates: vec![files(&["a.test"]), files(&["*.b.test"])],
            default_certificate: None,
            redirect_http: false,
            min_version: crate::config::TlsVersion::V1_2,
            acme: None,
            hsts: None,
        };
        let store = CertStore::load(&tls).unwrap();
        assert_eq!(store.expiries.len(), 2);
        assert!(store.expiries[0]
            .1
            .is_some_and(|t| t > SystemTime::UNIX_EPOCH));
        let a = store
            .choose(Some("a.test"), &HashMap::new())
            .expect("exact name");
        assert!(
            Arc::ptr_eq(&a, &store.choose(Some("A.TEST."), &HashMap::new()).unwrap()),
            "any case, root dot"
        );
        let b = store
            .choose(Some("img.b.test"), &HashMap::new())
            .expect("wildcard");
        assert!(!Arc::ptr_eq(&a, &b));
        // ACME certificates come after a file's exact name and before a wildcard.
        let acme = HashMap::from([
            ("img.b.test".to_string(), a.clone()),
            ("a.test".to_string(), b.clone()),
        ]);
        assert!(Arc::ptr_eq(
            &store.choose(Some("img.b.test"), &acme).unwrap(),
            &a
        ));
        assert!(Arc::ptr_eq(
            &store.choose(Some("a.test"), &acme).unwrap(),
            &a
        ));
        for uncovered in [Some("b.test"), Some("x.img.b.test"), Some("c.test"), None] {
            assert!(
                store.choose(uncovered, &HashMap::new()).is_none(),
                "{uncovered:?}"
            );
        }
        let with_default = CertStore::load(&TlsConfig {
            default_certificate: Some(files(&[])),
            ..tls
        })
        .unwrap();
        assert!(with_default
            .choose(Some("c.test"), &HashMap::new())
            .is_some());
        assert!(with_default.choose(None, &HashMap::new()).is_some());
    }

    #[test]
    fn unreadable_files_are_named() {
        let mut bad = files(&["a.test"]);
        bad.key = bad.cert.clone();
        let e = CertStore::load(&TlsConfig {
            listen: "127.0.0.1:0".into(),
            certificates: vec![bad],
            default_certificate: None,
            redirect_http: false,
            min_version: crate::config::TlsVersion::V1_2,
            acme: None,
            hsts: None,
        })
        .unwrap_err();
        assert!(e.contains("origin.pem"), "{e}");
    }
}
