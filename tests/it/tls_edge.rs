//! HTTPS and HTTP/2 at the edge: a CA and certificates made by the test with the `openssl`
//! command, the real binary with a TLS listener, and `curl` (with nghttp2) as the client:
//! HTTP/2 by ALPN, HTTP/1.1 when asked, the certificate chosen by SNI (exact and wildcard
//! names), a refused handshake for a name no certificate covers, HSTS on HTTPS answers and plain
//! HTTP redirected.

use crate::support::*;
use std::path::Path;
use std::process::Command;

/// A test CA, and certificates it signed for `a.test` and `*.b.test`, in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (./dev test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=imgate test CA",
    ]);
    for (name, sans) in [("a", "DNS:a.test"), ("b", "DNS:*.b.test")] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}.test"),
        ]);
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName={sans}\n"),
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
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
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "body", version, "--cacert", "ca.pem"])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(format!("https://{host}:{port}{path}"))
        .current_dir(dir)
        .output()
        .expect("curl runs");
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (headers, last) = text.trim_end().rsplit_once('\n').unwrap();
    let (http, code) = last.split_once(' ').unwrap();
    let size = std::fs::metadata(dir.join("body")).map_or(0, |m| m.len() as usize);
    Ok((
        http.to_string(),
        code.parse().unwrap(),
        headers.to_ascii_lowercase(),
        size,
    ))
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
