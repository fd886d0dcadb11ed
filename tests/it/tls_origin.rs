//! A real TLS origin speaking HTTP/2 (Node's `http2` server, certificate from a test CA in
//! `tests/fixtures/tls`): imgate fetches originals and proxies passthrough over h2 negotiated by
//! ALPN, trusts the CA given in Pingora's `ca_file`, and refuses the origin without it.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The Node origin and the request lines it prints ("2.0 GET /photos/...").
struct H2Origin {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl H2Origin {
    fn start() -> H2Origin {
        let tls = fixtures().join("tls");
        let mut child = Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/it/support/h2_origin.mjs"
            ))
            .arg(fixtures())
            .arg(tls.join("origin.pem"))
            .arg(tls.join("origin.key"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs (./dev test installs Node.js)");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("origin starts");
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        H2Origin { child, port, lines }
    }

    /// Request lines printed so far.
    fn requests(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        self.lines.try_iter().collect()
    }
}

impl Drop for H2Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pingora_with_ca() -> String {
    format!(
        "{PINGORA}  ca_file: {}\n",
        fixtures().join("tls/ca.pem").display()
    )
}

#[test]
fn originals_and_passthrough_come_over_http2_from_a_tls_origin() {
    let origin = H2Origin::start();
    let url = format!("https://localhost:{}", origin.port);
    let gw = Imgate::start_custom(&url, &pingora_with_ca(), "", &[]);

    let r = gw.get("/cdn-cgi/image/width=200,format=png/photos/FreshFlower.jpg");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let img = decode(&r.body);
    assert_eq!((img.width(), img.height()), (200, 150));
    let reference = reference(&fixtures().join("photos/FreshFlower.jpg"), 200, 150);
    assert!(ssim(&img, &reference) > 0.9);

    let raw = gw.get("/photos/LadyBird.jpg");
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.body,
        std::fs::read(fixtures().join("photos/LadyBird.jpg")).unwrap(),
        "passthrough over TLS returns the origin's bytes"
    );

    let seen = origin.requests();
    for path in ["/photos/FreshFlower.jpg", "/photos/LadyBird.jpg"] {
        assert!(
            seen.iter().any(|l| l == &format!("2.0 GET {path}")),
            "{path} fetched over HTTP/2: {seen:?}"
        );
    }
}

#[test]
fn an_untrusted_tls_origin_is_refused() {
    let origin = H2Origin::start();
    let url = format!("https://localhost:{}", origin.port);
    // No ca_file: the test CA is not in the system roots, so the handshake must fail.
    let gw = Imgate::start(&url, "");
    let r = gw.get("/cdn-cgi/image/width=200/photos/FreshFlower.jpg");
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        origin.requests().is_empty(),
        "no request reached the untrusted origin"
    );
}
