//! HTTPS and HTTP/2 at the edge: a CA and certificates made by the test with the `openssl`
//! command, the real binary with a TLS listener, and `curl` (with nghttp2) as the client:
//! HTTP/2 by ALPN, HTTP/1.1 when asked, the certificate chosen by SNI (exact and wildcard
//! names), a refused handshake for a name no certificate covers, HSTS on HTTPS answers and plain
//! HTTP redirected.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A test CA, and certificates it signed for `a.test` and `*.b.test`, in `dir`.
fn make_certificates(dir: &Path) {
    make_ca(dir, "ca");
    make_cert(dir, "ca", "a", "DNS:a.test");
    make_cert(dir, "ca", "b", "DNS:*.b.test");
}

/// `curl` to `https://{host}:{port}{path}` on loopback, trusting only the test CA: the HTTP
/// version, status, response headers and body size; `Err(exit code)` when it failed.
fn curl(
    dir: &Path,
    port: u16,
    host: &str,
    path: &str,
    version: &str,
) -> Result<(String, u16, String, usize), i32> {
    curl_with(dir, "ca.pem", "body", port, host, path, version)
}

#[test]
fn https_with_http2_and_certificates_by_sni() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = free_port();
    let d = dir.path().display();
    let body = format!(
        "tls:\n  listen: 127.0.0.1:{port}\n  redirect_http: true\n  hsts_max_age_seconds: 31536000\n\
         \x20 certificates:\n\
         \x20   - {{hosts: [a.test], cert: {d}/a.pem, key: {d}/a.key}}\n\
         \x20   - {{hosts: ['*.b.test'], cert: {d}/b.pem, key: {d}/b.key}}\n\
         sites:\n  - hosts: ['*']\n    origin: file://{}\n",
        fixtures().display()
    );
    let imgate = Imgate::start_sites(PINGORA, &body, &[], &[]);
    let image = "/cdn-cgi/image/width=120,format=webp/photos/FreshFlower.jpg";
    // HTTP/2 by ALPN, with a.test's certificate (curl checks it against the name).
    let (http, status, headers, size) =
        curl(dir.path(), port, "a.test", image, "--http2").expect("handshake for a.test");
    assert_eq!((http.as_str(), status), ("2", 200));
    assert!(
        headers.contains("cache-status: imgate; fwd=miss"),
        "{headers}"
    );
    let bytes = std::fs::read(dir.path().join("body")).unwrap();
    assert_eq!(size, bytes.len());
    assert_eq!(size_of(&bytes), (120, 90));
    // HTTP/1.1 when the client asks for it: the same cache entry.
    let (http, status, headers, _) =
        curl(dir.path(), port, "a.test", image, "--http1.1").expect("handshake");
    assert_eq!((http.as_str(), status), ("1.1", 200));
    assert!(headers.contains("cache-status: imgate; hit"), "{headers}");
    assert!(
        headers.contains("strict-transport-security: max-age=31536000"),
        "{headers}"
    );
    // The wildcard certificate for a name under b.test; passthrough over HTTP/2.
    let (http, status, _, size) = curl(
        dir.path(),
        port,
        "img.b.test",
        "/photos/LadyBird.jpg",
        "--http2",
    )
    .expect("handshake for img.b.test");
    assert_eq!((http.as_str(), status), ("2", 200));
    assert_eq!(
        size,
        std::fs::metadata(fixtures().join("photos/LadyBird.jpg"))
            .unwrap()
            .len() as usize
    );
    // No certificate covers c.test (nor b.test itself: a wildcard covers one label): refused.
    for host in ["c.test", "b.test"] {
        assert_eq!(
            curl(dir.path(), port, host, "/", "--http2"),
            Err(35),
            "{host}: curl's SSL connect error"
        );
    }
    // The plain listener sends clients to HTTPS (host and path kept), without HSTS (RFC 6797
    // §7.2), except for ACME HTTP-01 challenges, which a CA fetches over plain HTTP.
    let r = imgate.get_with(image, &[("host", "a.test")]);
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://a.test:{port}{image}").as_str())
    );
    assert_eq!(r.header("strict-transport-security"), None);
    let r = imgate.get_with("/.well-known/acme-challenge/token", &[("host", "a.test")]);
    assert_eq!(r.status, 404, "passed through to the origin");
}

#[test]
fn certificates_are_reloaded_when_their_files_change_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca1");
    make_cert(d, "ca1", "a", "DNS:a.test");
    let origin = TestOrigin::start(fixtures());
    let port = free_port();
    let body = format!(
        "tls:\n  listen: 127.0.0.1:{port}\n  certificates:\n\
         \x20   - {{hosts: [a.test], cert: {0}/a.pem, key: {0}/a.key}}\n\
         sites:\n  - hosts: ['*']\n    origin: {1}\n",
        d.display(),
        origin.url()
    );
    let imgate = Imgate::start_sites(PINGORA, &body, &[], &[]);
    assert_expires_within(&imgate.admin, "a.test", 3.0 * 86400.0);
    let photo = "/photos/LadyBird.jpg";
    let whole = std::fs::metadata(fixtures().join("photos/LadyBird.jpg"))
        .unwrap()
        .len() as usize;
    std::thread::scope(|s| {
        // A download that takes 3 s, on a connection made with the old certificate.
        let long = s.spawn(|| {
            curl_with(
                d,
                "ca1.pem",
                "long",
                port,
                "a.test",
                &format!("/slow/3000{photo}"),
                "--http2",
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        // New files from another CA, swapped in by rename as a certificate manager does.
        make_ca(d, "ca2");
        make_cert(d, "ca2", "new", "DNS:a.test");
        std::fs::rename(d.join("new.key"), d.join("a.key")).unwrap();
        std::fs::rename(d.join("new.pem"), d.join("a.pem")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(8);
        while curl_with(d, "ca2.pem", "b2", port, "a.test", photo, "--http2").is_err() {
            assert!(
                Instant::now() < deadline,
                "the new certificate was never served"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // New handshakes get the new certificate, not the old one.
        assert_eq!(
            curl_with(d, "ca1.pem", "b1", port, "a.test", photo, "--http2"),
            Err(60)
        );
        let (http, status, _, size) = long.join().unwrap().expect("the old connection's download");
        assert_eq!((http.as_str(), status, size), ("2", 200, whole));
    });
    assert_eq!(
        metric(&imgate.admin, "imgate_tls_reloads_total{result=\"ok\"}"),
        1.0
    );
    // SIGHUP reloads too, and does not end the process (its default action would).
    let hup = Command::new("kill")
        .args(["-HUP", &imgate.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&imgate.admin, "imgate_tls_reloads_total{result=\"ok\"}") < 2.0 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(curl_with(d, "ca2.pem", "b3", port, "a.test", photo, "--http1.1").is_ok());
}
