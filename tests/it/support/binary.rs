//! The real `imgate` binary, started on ephemeral loopback ports with a config written for the
//! test, and stopped (gracefully, or killed) by the test.

use super::{get, Response};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `pingora:` section tests run with: two threads, no shutdown grace (a test's server stops
/// at once).
pub const PINGORA: &str =
    "pingora:\n  threads: 2\n  grace_period_seconds: 0\n  graceful_shutdown_timeout_seconds: 0\n";

/// The real `imgate` binary running a config written for the test.
pub struct Imgate {
    pub addr: String,
    pub admin: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Imgate {
    /// Start imgate with `origin` for every host and `extra` YAML appended to the config.
    pub fn start(origin: &str, extra: &str) -> Imgate {
        Imgate::start_with_args(origin, extra, &[])
    }

    /// Like [`Imgate::start`], with extra command-line arguments (e.g. `--role transform`).
    pub fn start_with_args(origin: &str, extra: &str, args: &[&str]) -> Imgate {
        Imgate::start_custom(origin, PINGORA, extra, args)
    }

    /// Full control: the `pingora:` section too (e.g. a grace period for shutdown tests).
    pub fn start_custom(origin: &str, pingora: &str, extra: &str, args: &[&str]) -> Imgate {
        Imgate::start_full(origin, pingora, extra, args, &[])
    }

    /// Like [`Imgate::start_custom`], with environment variables for the process (e.g.
    /// `IMGATE_HTML_REWRITE=on`).
    pub fn start_full(
        origin: &str,
        pingora: &str,
        extra: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Imgate {
        let sites = format!(
            "sites:\n  - hosts: ['*']\n    origin: {origin}\n    allowed_source_hosts: ['127.0.0.1']\n"
        );
        Imgate::start_sites(pingora, &format!("{extra}\n{sites}"), args, env)
    }

    /// Start imgate on `body`, the config's own part (it must list the `sites:`), after the
    /// `pingora:` section and the test's listeners and socket.
    pub fn start_sites(pingora: &str, body: &str, args: &[&str], env: &[(&str, &str)]) -> Imgate {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let config = format!(
            "{pingora}listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin_port}\n\
             transform_socket: {}/transform.sock\n{body}",
            dir.path().display()
        );
        let config_path = dir.path().join("imgate.yaml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_imgate"))
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn,pingora_cache::meta=error")
            .stdout(Stdio::null())
            .spawn()
            .expect("imgate binary starts");
        let imgate = Imgate {
            addr: format!("127.0.0.1:{port}"),
            admin: format!("127.0.0.1:{admin_port}"),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if get(&imgate.admin, "/readyz", &[])
                .map(|r| r.status == 200)
                .unwrap_or(false)
                && TcpStream::connect(&imgate.addr).is_ok()
            {
                return imgate;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("imgate did not become ready");
    }

    pub fn get(&self, path: &str) -> Response {
        get(&self.addr, path, &[]).expect("request completes")
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(&self.addr, path, headers).expect("request completes")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the process to exit, up to `limit`; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: no shutdown, no flush; what a crash or an OOM kill does.
    pub fn kill9(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Still running (not crashed)?
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Imgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
