//! What the edge does differently for HTTPS: plain-HTTP requests redirected to the TLS listener
//! (`tls.redirect_http`, ACME HTTP-01 challenges excepted, so a CA can still reach them), and
//! `Strict-Transport-Security` on what goes out over TLS (`tls.hsts_max_age_seconds`), and the
//! answers to ACME HTTP-01 challenges.

use crate::config::TlsConfig;
use crate::tls::acme::Challenges;
use pingora_proxy::Session;

/// The path ACME HTTP-01 challenges are fetched at (RFC 8555 §8.3): never redirected.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// The key authorization to answer a CA's HTTP-01 request for `path` with, when an order in
/// progress issued its token (other tokens go to the origin like any path).
pub fn challenge_answer(challenges: Option<&Challenges>, path: &str) -> Option<String> {
    let token = path.strip_prefix(ACME_CHALLENGE)?;
    challenges?.http_answer(token)
}

/// Whether the client's connection is TLS.
pub fn over_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// Where a plain-HTTP request for `host` + `path` is sent instead, when redirects are on.
pub fn redirect(tls: &TlsConfig, host: &str, path: &str) -> Option<String> {
    if !tls.redirect_http || path.starts_with(ACME_CHALLENGE) {
        return None;
    }
    let name = crate::config::strip_port(host);
    if name.is_empty() {
        return None;
    }
    Some(match tls.port() {
        443 => format!("https://{name}{path}"),
        port => format!("https://{name}:{port}{path}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(redirect_http: bool, listen: &str) -> TlsConfig {
        TlsConfig {
            listen: listen.into(),
            certificates: vec![],
            default_certificate: None,
            redirect_http,
            hsts: None,
            min_version: crate::config::TlsVersion::V1_2,
            acme: None,
        }
    }

    #[test]
    fn redirects_keep_the_host_and_path_and_spare_acme_challenges() {
        let on = tls(true, "0.0.0.0:443");
        assert_eq!(
            redirect(&on, "img.example.com:80", "/a/b.jpg?x=1").as_deref(),
            Some("https://img.example.com/a/b.jpg?x=1")
        );
        assert_eq!(
            redirect(&tls(true, "127.0.0.1:8443"), "img.example.com", "/").as_deref(),
            Some("https://img.example.com:8443/")
        );
        assert_eq!(redirect(&on, "a", "/.well-known/acme-challenge/tok"), None);
        assert_eq!(redirect(&tls(false, "0.0.0.0:443"), "a", "/x"), None);
        assert_eq!(redirect(&on, "", "/x"), None);
    }
}
