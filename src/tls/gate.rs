//! The handshake gate: runs on every connection to the TLS listener before Pingora's rustls
//! handshake. It reads the ClientHello ([`super::hello`]) within the client head deadline,
//! puts the bytes back for the real handshake, and
//! - refuses, with a `protocol_version` alert, a client that offers nothing at or above
//!   `tls.min_version` (Pingora's listener builds its rustls config with TLS 1.2 and 1.3 fixed);
//! - answers an ACME TLS-ALPN-01 validation (`acme-tls/1` as the only ALPN protocol, RFC 8737)
//!   itself, with the challenge certificate of the name asked, then closes the connection: the
//!   edge's own rustls config offers `h2` and `http/1.1` only, and would refuse it.

use super::acme::Challenges;
use crate::config::TlsVersion;
use crate::metrics;
use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert, ServerConfig, TlsAcceptor};
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::hello::{self, Hello, Scan};

/// How long a TLS-ALPN-01 validation handshake may take.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);

/// A fatal `protocol_version` alert (RFC 8446 §6), in a TLS 1.2-framed record.
const PROTOCOL_VERSION_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 70];

/// The last TLS version number this build knows (anything above is GREASE or future).
const TLS13: u16 = 0x0304;

pub struct HandshakeGate {
    pub min_version: TlsVersion,
    pub challenges: Arc<Challenges>,
    /// The whole ClientHello must arrive within this (the client head deadline).
    pub hello_timeout: Duration,
}

#[async_trait]
impl PreTlsProcess for HandshakeGate {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let read = tokio::time::timeout(self.hello_timeout, read_hello(stream)).await;
        let (raw, hello) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                return Error::e_explain(ErrorType::TLSHandshakeFailure, format!("reading: {e}"))
            }
            Err(_) => {
                return Error::e_explain(
                    ErrorType::TLSHandshakeTimedout,
                    "no whole ClientHello within the client head deadline",
                )
            }
        };
        stream.rewind(&raw);
        // Not a ClientHello: rustls refuses it as it would anyway.
        let Some(hello) = hello else {
            return Ok(());
        };
        if hello.is_acme_validation() {
            self.answer_validation(stream, &hello).await;
            return Error::e_explain(ErrorType::TLSHandshakeFailure, "acme-tls/1 validation");
        }
        if !acceptable(&hello, self.min_version) {
            metrics::TLS_REFUSED
                .with_label_values(&["min_version"])
                .inc();
            let _ = stream.write_all(&PROTOCOL_VERSION_ALERT).await;
            let _ = stream.flush().await;
            return Error::e_explain(
                ErrorType::TLSHandshakeFailure,
                format!(
                    "client offers no TLS version from {:?} up",
                    self.min_version
                ),
            );
        }
        Ok(())
    }
}

/// Whether `hello` offers a version at or above `min` (and one this build knows).
fn acceptable(hello: &Hello, min: TlsVersion) -> bool {
    hello
        .versions
        .iter()
        .any(|v| (min.wire()..=TLS13).contains(v))
}

impl HandshakeGate {
    /// Complete the validation handshake with the challenge certificate for the hello's name;
    /// without one (no order in progress for it), the connection is just closed.
    async fn answer_validation(&self, stream: &mut L4Stream, hello: &Hello) {
        let name = hello.server_name.as_deref().unwrap_or("");
        let Some(cert) = self.challenges.alpn_certificate(name) else {
            log::info!("tls: acme-tls/1 handshake for {name:?}, which has no challenge pending");
            return;
        };
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(cert)));
        config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        match tokio::time::timeout(VALIDATION_TIMEOUT, acceptor.accept(&mut *stream)).await {
            Ok(Ok(mut tls)) => {
                log::info!("tls: answered the TLS-ALPN-01 validation for {name}");
                let _ = tls.shutdown().await;
            }
            Ok(Err(e)) => log::warn!("tls: TLS-ALPN-01 validation handshake for {name}: {e}"),
            Err(_) => log::warn!("tls: TLS-ALPN-01 validation handshake for {name} timed out"),
        }
    }
}

/// Always the one certificate.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Read the connection's first bytes until they hold a whole ClientHello (or prove not to be
/// one, or the peer stops sending). Returns every byte read, to be put back.
async fn read_hello(stream: &mut L4Stream) -> std::io::Result<(Vec<u8>, Option<Hello>)> {
    let mut raw = Vec::with_capacity(2048);
    let mut want = 5;
    let mut chunk = vec![0u8; 4096];
    loop {
        while raw.len() < want {
            let room = (want - raw.len()).min(chunk.len());
            let n = stream.read(&mut chunk[..room]).await?;
            if n == 0 {
                return Ok((raw, None));
            }
            raw.extend_from_slice(&chunk[..n]);
        }
        match hello::scan(&raw) {
            Scan::Hello(hello, _) => return Ok((raw, Some(hello))),
            Scan::NeedMore(n) => want = n,
            Scan::NotHello => return Ok((raw, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(versions: &[u16]) -> Hello {
        Hello {
            versions: versions.to_vec(),
            ..Hello::default()
        }
    }

    #[test]
    fn the_minimum_version_counts_known_versions_only() {
        assert!(acceptable(&hello(&[0x0304, 0x0303]), TlsVersion::V1_3));
        assert!(acceptable(&hello(&[0x0303]), TlsVersion::V1_2));
        assert!(!acceptable(&hello(&[0x0303, 0x0302]), TlsVersion::V1_3));
        assert!(!acceptable(&hello(&[0x0302, 0x0301]), TlsVersion::V1_2));
        // GREASE (RFC 8701) is numerically above 1.3 and is no version.
        assert!(!acceptable(&hello(&[0x7a7a, 0x0303]), TlsVersion::V1_3));
    }
}
