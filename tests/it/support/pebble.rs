//! Let's Encrypt's test ACME CA, `pebble` (Debian's package), on loopback, with
//! `pebble-challtestsrv` answering its DNS: every name resolves to 127.0.0.1, so pebble's
//! validations of `a.test` reach the imgate under test. Pebble's own HTTPS certificate comes
//! from a CA the test makes (`ca.pem` in the directory); the root it issues under is fetched
//! from its management port.

use super::{free_port, make_ca, make_cert};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestPebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The CA that signed pebble's HTTPS certificate (for `tls.acme.ca_file`).
    pub ca_file: PathBuf,
    management: u16,
    dir: PathBuf,
    children: Vec<Child>,
}

impl TestPebble {
    /// Start pebble in `dir` (made by the test; `ca.pem` is written there), on `port` for its
    /// directory (0: any free port), validating HTTP-01 on `http_port` and TLS-ALPN-01 on
    /// `tls_port` of 127.0.0.1, issuing certificates valid for `validity` seconds.
    pub fn start(dir: &Path, port: u16, http_port: u16, tls_port: u16, validity: u64) -> Self {
        if !dir.join("pebble.pem").exists() {
            make_ca(dir, "ca");
            make_cert(dir, "ca", "pebble", "DNS:localhost,IP:127.0.0.1");
        }
        let port = if port == 0 { free_port() } else { port };
        let (management, dns, dns_management) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble.pem"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity,
        }});
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs (./dev test installs pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No random validation delays; no nonces refused at random (a client retry the
            // test has no need to wait for); every order validated afresh.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble runs (./dev test installs it)");
        let pebble = TestPebble {
            directory: format!("https://127.0.0.1:{port}/dir"),
            ca_file: dir.join("ca.pem"),
            management,
            dir: dir.to_path_buf(),
            children: vec![dns_server, pebble],
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        for p in [port, management, dns_management] {
            while TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(Instant::now() < deadline, "pebble did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        pebble
    }

    /// The root certificate pebble issues under (new at each start), saved as `name` in the
    /// directory; its path.
    pub fn root(&self, name: &str) -> PathBuf {
        let out = Command::new("curl")
            .args(["-sf", "--cacert"])
            .arg(&self.ca_file)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "pebble's root: {out:?}");
        let path = self.dir.join(name);
        std::fs::write(&path, out.stdout).unwrap();
        path
    }
}

impl Drop for TestPebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
