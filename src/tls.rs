//! The edge's TLS: which certificate a handshake gets, chosen by the client's SNI among the
//! configured ones (exact names first, then `*.parent` wildcards covering one label, then the
//! default certificate), and the rustls settings of the TLS listener (HTTP/2 preferred by
//! ALPN, HTTP/1.1 allowed). A name nothing covers, without a default, fails the handshake.
//! Knows nothing of HTTP or of Pingora's phases.

use crate::config::{CertificateFiles, TlsConfig};
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use std::collections::HashMap;
use std::sync::Arc;

/// The certificates the TLS listener serves, by host name.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the parent domain: `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Read every certificate and key of `tls`; the first file that cannot be read or does not
    /// hold a usable chain and key is the error.
    pub fn load(tls: &TlsConfig) -> Result<CertStore, String> {
        pingora::tls::install_default_crypto_provider();
        let mut store = CertStore::default();
        for files in &tls.certificates {
            let key = Arc::new(certified_key(files)?);
            for host in &files.hosts {
                match host.strip_prefix("*.") {
                    Some(parent) => store.wildcard.insert(parent.to_string(), key.clone()),
                    None => store.exact.insert(host.clone(), key.clone()),
                };
            }
        }
        if let Some(files) = &tls.default_certificate {
            store.default = Some(Arc::new(certified_key(files)?));
        }
        Ok(store)
    }

    /// The certificate for `sni` (a host name, any case); `None` when nothing covers it.
    pub fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        let wildcard = name
            .split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent));
        wildcard.cloned().or_else(|| self.default.clone())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

fn certified_key(files: &CertificateFiles) -> Result<CertifiedKey, String> {
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
            hsts: None,
        };
        let store = CertStore::load(&tls).unwrap();
        let a = store.choose(Some("a.test")).expect("exact name");
        assert!(
            Arc::ptr_eq(&a, &store.choose(Some("A.TEST.")).unwrap()),
            "any case, root dot"
        );
        let b = store.choose(Some("img.b.test")).expect("wildcard");
        assert!(!Arc::ptr_eq(&a, &b));
        for uncovered in [Some("b.test"), Some("x.img.b.test"), Some("c.test"), None] {
            assert!(store.choose(uncovered).is_none(), "{uncovered:?}");
        }
        let with_default = CertStore::load(&TlsConfig {
            default_certificate: Some(files(&[])),
            ..tls
        })
        .unwrap();
        assert!(with_default.choose(Some("c.test")).is_some());
        assert!(with_default.choose(None).is_some());
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
            hsts: None,
        })
        .unwrap_err();
        assert!(e.contains("origin.pem"), "{e}");
    }
}
