//! Shared test harness: a real origin (HTTP/1.1 over TCP, serving real files), the real
//! `imgate` binary started on ephemeral ports, a small HTTP client that shows exactly what went
//! over the wire, and image comparison (exact dimensions, SSIM for look).
#![allow(dead_code)]

mod echo;
mod ssim;

#[allow(unused_imports)] // not every test binary uses them
pub use echo::{raw_request, EchoOrigin};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A real origin server on 127.0.0.1 serving `root`. Special paths for fault tests:
/// `/slow/<ms>/<file>` waits first (GET and HEAD only: other methods answer at once); `/status/<code>/<anything>` answers that status;
/// `/chunked/<file>` streams without Content-Length; `/nocache/<file>` sends `no-store`;
/// `/cc/<cache-control>/<file>` sends that `Cache-Control`; a `?encoding=gzip` or `?encoding=br`
/// query sends the file with that `Content-Encoding`.
pub struct TestOrigin {
    pub addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TestOrigin {
    pub fn start(root: impl Into<PathBuf>) -> TestOrigin {
        let root: PathBuf = root.into();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (h, s, c) = (hits.clone(), stop.clone(), connections.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                c.fetch_add(1, Ordering::Relaxed);
                let (root, hits, stop) = (root.clone(), h.clone(), s.clone());
                std::thread::spawn(move || serve_conn(conn, &root, &hits, &stop));
            }
        });
        TestOrigin {
            addr,
            hits,
            connections,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Take the origin down: refuse new connections and close kept-alive ones.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }

    /// TCP connections the origin accepted so far (keep-alive reuse shows as fewer).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests the origin received for `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        *self.hits.lock().unwrap().get(path).unwrap_or(&0)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_conn(
    conn: TcpStream,
    root: &Path,
    hits: &Mutex<HashMap<String, usize>>,
    stop: &AtomicBool,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        // A stopped origin also drops kept-alive connections: it is down, not half-down.
        if reader.read_line(&mut line).unwrap_or(0) == 0 || stop.load(Ordering::Relaxed) {
            return;
        }
        let method = line.split_whitespace().next().unwrap_or("GET").to_string();
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
        }
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let mut rest = path.trim_start_matches('/').to_string();
        let mut cache_control = "public, max-age=3600".to_string();
        let mut chunked = false;
        if let Some(r) = rest.strip_prefix("slow/") {
            let (ms, file) = r.split_once('/').unwrap_or((r, ""));
            if method == "GET" || method == "HEAD" {
                std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            }
            rest = file.to_string();
        }
        if let Some(r) = rest.strip_prefix("status/") {
            let code = r.split('/').next().unwrap_or("500");
            let _ = write!(out, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        if let Some(r) = rest.strip_prefix("chunked/") {
            chunked = true;
            rest = r.to_string();
        }
        if let Some(r) = rest.strip_prefix("nocache/") {
            cache_control = "no-store".to_string();
            rest = r.to_string();
        }
        if let Some(r) = rest.strip_prefix("cc/") {
            let (cc, file) = r.split_once('/').unwrap_or((r, ""));
            cache_control = cc.to_string();
            rest = file.to_string();
        }
        let file = root.join(rest.split('?').next().unwrap_or(""));
        let Ok(body) = std::fs::read(&file) else {
            let _ = write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
            );
            continue;
        };
        let (body, coding_header) = content_encoding_for_test(&path, body);
        let ctype = match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "webp" => "image/webp",
            "gif" => "image/gif",
            "html" => "text/html; charset=utf-8",
            _ => "application/octet-stream",
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nCache-Control: {cache_control}\r\nETag: \"{}\"\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n{coding_header}",
            body.len()
        );
        let ok = if chunked {
            let mut w = head.into_bytes();
            w.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for c in body.chunks(16 * 1024) {
                w.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                w.extend_from_slice(c);
                w.extend_from_slice(b"\r\n");
            }
            w.extend_from_slice(b"0\r\n\r\n");
            out.write_all(&w)
        } else {
            out.write_all(format!("{head}Content-Length: {}\r\n\r\n", body.len()).as_bytes())
                .and_then(|_| out.write_all(&body))
        };
        if ok.is_err() {
            return;
        }
    }
}

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

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 GET with `Connection: close`; headers exactly as given (Host defaults to the
/// address).
pub fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
    request(addr, "GET", path, headers)
}

pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head: bool) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head_text = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head_text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && !head {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..nl])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Decode an output image (JPEG, PNG, WebP, GIF) into RGBA8.
pub fn decode(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory(bytes)
        .expect("output decodes")
        .to_rgba8()
}

/// Format from magic bytes.
pub fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "jpeg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "webp"
    } else if bytes.len() > 12
        && &bytes[4..8] == b"ftyp"
        && (&bytes[8..12] == b"avif" || &bytes[8..12] == b"avis")
    {
        "avif"
    } else {
        "unknown"
    }
}

/// Mean SSIM of two images' luma over 8x8 windows; `b` is resized to `a`'s size first.
pub fn ssim(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    let b = if a.dimensions() != b.dimensions() {
        image::imageops::resize(
            b,
            a.width(),
            a.height(),
            image::imageops::FilterType::Triangle,
        )
    } else {
        b.clone()
    };
    let luma = |img: &image::RgbaImage| -> Vec<f64> {
        img.pixels()
            .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
            .collect()
    };
    ssim::windowed_ssim(&luma(a), &luma(&b), a.width() as usize)
}

/// A reference downscale of a fixture with the `image` crate, for look comparisons.
pub fn reference(file: &Path, w: u32, h: u32) -> image::RgbaImage {
    let img = image::open(file).expect("fixture decodes").to_rgba8();
    image::imageops::resize(&img, w, h, image::imageops::FilterType::Lanczos3)
}

/// The body as the origin sends it for a `?encoding=gzip|br` query, and the header saying so.
fn content_encoding_for_test(path: &str, body: Vec<u8>) -> (Vec<u8>, &'static str) {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    if query.split('&').any(|p| p == "encoding=gzip") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        (
            gz.finish().unwrap(),
            "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n",
        )
    } else if query.split('&').any(|p| p == "encoding=br") {
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(&body)
            .unwrap();
        (br, "Content-Encoding: br\r\nVary: Accept-Encoding\r\n")
    } else {
        (body, "")
    }
}

/// Remove a response's `Content-Encoding` (gzip, br or none).
pub fn decode_content(r: &Response) -> Vec<u8> {
    match r.header("content-encoding") {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .expect("gzip body decodes");
            out
        }
        Some("br") => {
            let mut out = Vec::new();
            brotli::Decompressor::new(&r.body[..], 4096)
                .read_to_end(&mut out)
                .expect("brotli body decodes");
            out
        }
        None => r.body.clone(),
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
}

// ---- Helpers for the cache tests (tests/cache.rs) ----

impl Imgate {
    /// SIGKILL: no shutdown, no flush; what a crash or an OOM kill does.
    pub fn kill9(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success());
    }
}

/// One HTTP/1.1 request with a body and `Connection: close`.
pub fn send_body(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, false)
}

/// The value of one series (`name{labels}` exactly as rendered, labels sorted) on `/metrics`;
/// 0 when absent.
pub fn metric(admin: &str, series: &str) -> f64 {
    let text = String::from_utf8(get(admin, "/metrics", &[]).unwrap().body).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// A front for a [`TestOrigin`] that adds purge tags to its answers:
/// `/tag/<a+b>/<path>` answers like `<path>` plus `Surrogate-Key: a b`, and
/// `/ctag/<a,b>/<path>` plus `Cache-Tag: a,b`. Other paths pass unchanged.
pub struct TagFront {
    pub addr: SocketAddr,
}

impl TagFront {
    pub fn start(origin: SocketAddr) -> TagFront {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || tag_conn(conn, origin));
            }
        });
        TagFront { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one request head for the hand-written test origins: the request path and the header
/// lines (name, value) in the order sent; `None` once the client has closed the connection.
pub fn read_request_head(reader: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some((path, headers))
}

fn tag_conn(conn: TcpStream, origin: SocketAddr) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    while let Some((path, _)) = read_request_head(&mut reader) {
        let tagged = |prefix: &str, name: &str, sep: &str| {
            let rest = path.strip_prefix(prefix)?;
            let (tags, file) = rest.split_once('/').unwrap_or((rest, ""));
            Some((
                format!("{name}: {}\r\n", tags.replace('+', sep)),
                format!("/{file}"),
            ))
        };
        let (extra, upstream_path) = tagged("/tag/", "Surrogate-Key", " ")
            .or_else(|| tagged("/ctag/", "Cache-Tag", ","))
            .unwrap_or((String::new(), path.clone()));
        let Ok(up) = TcpStream::connect(origin) else {
            return;
        };
        let mut up_out = up.try_clone().unwrap();
        let _ = write!(
            up_out,
            "GET {upstream_path} HTTP/1.1\r\nHost: origin\r\n\r\n"
        );
        let mut up_in = BufReader::new(up);
        let mut head = Vec::new();
        let mut length = 0usize;
        let mut first = true;
        loop {
            let mut h = String::new();
            if up_in.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            head.extend_from_slice(h.as_bytes());
            if first {
                head.extend_from_slice(extra.as_bytes());
                first = false;
            }
            if h == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        if up_in.read_exact(&mut body).is_err() {
            return;
        }
        head.extend_from_slice(&body);
        if out.write_all(&head).is_err() {
            return;
        }
    }
}
