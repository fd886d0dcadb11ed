//! The real test origin: an HTTP/1.1 server on loopback serving real files, with special paths
//! for fault tests, and the request-head reader the hand-written test origins share.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
            "svg" => "image/svg+xml",
            "heic" => "image/heic",
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
