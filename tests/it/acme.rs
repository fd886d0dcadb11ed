//! Certificates from an ACME CA, for real: Let's Encrypt's test CA `pebble` on loopback (its
//! DNS answered by `pebble-challtestsrv` with 127.0.0.1), the real binary obtaining a
//! certificate through HTTP-01 on its plain listener or TLS-ALPN-01 on its TLS listener,
//! serving it by SNI to `curl`, renewing it when a third of its (shortened) lifetime is left,
//! keeping it across restarts, and retrying after the CA failed. Also `tls.min_version`.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The serial number of the certificate the TLS listener on `port` presents for `host`.
fn served_serial(port: u16, host: &str) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {host} </dev/null 2>/dev/null \
             | openssl x509 -noout -serial"
        ))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    text.strip_prefix("serial=").map(str::to_string)
}

/// curl's exit code for a request to `host` on the TLS listener, trusting any certificate
/// (`-k`): 0 when a handshake happened and an answer came, 35 when the handshake failed.
fn handshake(port: u16, host: &str, flags: &[&str]) -> Option<i32> {
    Command::new("curl")
        .args(["-sk", "-o", "/dev/null"])
        .args(flags)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg(format!("https://{host}:{port}{PHOTO}"))
        .status()
        .ok()?
        .code()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn config(d: &Path, tls_port: u16, directory: &str, acme_extra: &str, tls_extra: &str) -> String {
    format!(
        "tls:\n  listen: 127.0.0.1:{tls_port}\n{tls_extra}  acme:\n    directory: {directory}\n\
         \x20   email: ops@a.test\n    hosts: [a.test]\n    storage: {0}/acme\n\
         \x20   ca_file: {0}/ca.pem\n    retry_initial_seconds: 1\n    retry_max_seconds: 2\n\
         {acme_extra}\
         sites:\n  - hosts: ['*']\n    origin: file://{1}\n",
        d.display(),
        fixtures().display()
    )
}

const PHOTO: &str = "/photos/LadyBird.jpg";

fn photo_size() -> usize {
    std::fs::metadata(fixtures().join("photos/LadyBird.jpg"))
        .unwrap()
        .len() as usize
}

#[test]
fn a_certificate_is_obtained_by_http01_renewed_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (acme_port, tls_port) = (free_port(), free_port());
    let directory = format!("https://127.0.0.1:{acme_port}/dir");
    let body = config(d, tls_port, &directory, "", "");
    // The CA is not up yet: the order fails, is logged and counted, and the edge serves on.
    let imgate = Imgate::start_sites(PINGORA, &body, &[], &[]);
    let errors = "imgate_tls_acme_orders_total{result=\"error\"}";
    wait_for("a failed order", Duration::from_secs(10), || {
        metric(&imgate.admin, errors) >= 1.0
    });
    assert_eq!(imgate.get_with(PHOTO, &[("host", "a.test")]).status, 200);
    assert_eq!(
        handshake(tls_port, "a.test", &[]),
        Some(35),
        "no certificate yet: the handshake fails"
    );
    // Pebble up: validation over plain HTTP on the edge's listener; certificates live 20 s.
    let http_port: u16 = imgate.addr.rsplit(':').next().unwrap().parse().unwrap();
    let pebble = TestPebble::start(d, acme_port, http_port, tls_port, 20);
    pebble.root("root.pem");
    wait_for("the issued certificate", Duration::from_secs(20), || {
        curl_with(d, "root.pem", "b1", tls_port, "a.test", PHOTO, "--http2").is_ok()
    });
    let (http, status, _, size) =
        curl_with(d, "root.pem", "b1", tls_port, "a.test", PHOTO, "--http2").unwrap();
    assert_eq!((http.as_str(), status, size), ("2", 200, photo_size()));
    let ok = "imgate_tls_acme_orders_total{result=\"ok\"}";
    assert_eq!(metric(&imgate.admin, ok), 1.0);
    assert_expires_within(&imgate.admin, "a.test", 25.0);
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(d.join("acme/a.test.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        assert!(d.join("acme/a.test.crt").exists() && d.join("acme/account.json").exists());
    }
    // No certificate for another name.
    assert_eq!(
        curl_with(d, "root.pem", "b2", tls_port, "b.test", PHOTO, "--http2").map(|r| r.1),
        Err(35)
    );
    // Renewed when a third of the lifetime is left (about 13 s after issue), without a restart.
    let first = served_serial(tls_port, "a.test").expect("a serial");
    wait_for("the renewed certificate", Duration::from_secs(30), || {
        served_serial(tls_port, "a.test").is_some_and(|s| s != first)
    });
    let renewed = served_serial(tls_port, "a.test").unwrap();
    assert_eq!(metric(&imgate.admin, ok), 2.0);
    assert!(curl_with(d, "root.pem", "b3", tls_port, "a.test", PHOTO, "--http1.1").is_ok());
    // A restart serves the stored certificate at once, without asking the CA.
    drop(imgate);
    let imgate = Imgate::start_sites(PINGORA, &body, &[], &[]);
    wait_for("the stored certificate", Duration::from_secs(5), || {
        served_serial(tls_port, "a.test").as_deref() == Some(renewed.as_str())
    });
    assert_eq!(metric(&imgate.admin, ok), 0.0);
    assert_eq!(metric(&imgate.admin, errors), 0.0);
}

#[test]
fn tls_alpn01_on_the_tls_port_alone_and_a_minimum_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls_port = free_port();
    // Pebble's HTTP-01 port is one nothing listens on: only TLS-ALPN-01 can succeed.
    let pebble = TestPebble::start(d, 0, free_port(), tls_port, 3600);
    pebble.root("root.pem");
    let body = config(
        d,
        tls_port,
        &pebble.directory,
        "    challenge: tls-alpn-01\n",
        "  min_version: '1.3'\n",
    );
    let imgate = Imgate::start_sites(PINGORA, &body, &[], &[]);
    wait_for("the issued certificate", Duration::from_secs(20), || {
        curl_with(d, "root.pem", "b1", tls_port, "a.test", PHOTO, "--http2").is_ok()
    });
    assert_eq!(
        metric(&imgate.admin, "imgate_tls_acme_orders_total{result=\"ok\"}"),
        1.0
    );
    // Requests over TLS 1.3 are served; a client that stops at TLS 1.2 is refused at the
    // handshake (curl's SSL connect error), and counted.
    let (http, status, _, size) =
        curl_with(d, "root.pem", "b2", tls_port, "a.test", PHOTO, "--tlsv1.3").unwrap();
    assert_eq!((http.as_str(), status, size), ("2", 200, photo_size()));
    assert_eq!(handshake(tls_port, "a.test", &[]), Some(0));
    assert_eq!(
        handshake(tls_port, "a.test", &["--tls-max", "1.2"]),
        Some(35),
        "TLS 1.2 at most: refused"
    );
    assert!(
        metric(
            &imgate.admin,
            "imgate_tls_handshakes_refused_total{reason=\"min_version\"}"
        ) >= 1.0
    );
    // An acme-tls/1 handshake with no order in progress gets no certificate.
    let probe = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{tls_port} -servername a.test -alpn acme-tls/1 \
             </dev/null 2>&1"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        !text.contains("ALPN protocol: acme-tls/1"),
        "no validation in progress: {text}"
    );
}
