//! A real origin that answers with what it received, for tests of what the edge forwards:
//! every request header line as sent (repeats and order kept), cacheable for an hour.
//! `/vary-ae/<anything>` also picks a content coding the way origins do from every
//! `Accept-Encoding` line (`br` if any line offers it, else `gzip`, else `identity`), says so
//! in `X-Chosen-Encoding` and the body, and sends `Vary: Accept-Encoding`.
//! `/reflect/<anything>` puts the `X-Forwarded-Host` it got into the body, as a page building
//! absolute links from it would.

use super::read_request_head;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The header lines of one request, in order.
type Lines = Vec<(String, String)>;

pub struct EchoOrigin {
    pub addr: SocketAddr,
    /// The header lines of every request received, in order.
    seen: Arc<Mutex<Vec<Lines>>>,
}

impl EchoOrigin {
    pub fn start() -> EchoOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || echo_conn(conn, &s));
            }
        });
        EchoOrigin { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Header lines of every request so far.
    pub fn requests(&self) -> Vec<Lines> {
        self.seen.lock().unwrap().clone()
    }

    /// Values of `name` in the last request received, one per line.
    pub fn last(&self, name: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .last()
            .map(|h| {
                h.iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn echo_conn(conn: TcpStream, seen: &Mutex<Vec<Lines>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    while let Some((path, headers)) = read_request_head(&mut reader) {
        let values = |name: &str| -> Vec<String> {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect()
        };
        // A body announced by one or more identical Content-Length values.
        let length: usize = values("content-length")
            .first()
            .and_then(|v| v.split(',').next()?.trim().parse().ok())
            .unwrap_or(0);
        let mut body_in = vec![0u8; length];
        if reader.read_exact(&mut body_in).is_err() {
            return;
        }
        seen.lock().unwrap().push(headers.clone());
        let mut extra = String::new();
        let mut body = String::new();
        if path.starts_with("/vary-ae/") {
            let offered = values("accept-encoding").join(", ");
            let chosen = if offered.contains("br") {
                "br"
            } else if offered.contains("gzip") {
                "gzip"
            } else {
                "identity"
            };
            extra.push_str(&format!(
                "Vary: Accept-Encoding\r\nX-Chosen-Encoding: {chosen}\r\n"
            ));
            body.push_str(&format!("encoding={chosen}\n"));
        } else if path.starts_with("/reflect/") {
            let host = values("x-forwarded-host").join(", ");
            body.push_str(&format!("<a href=\"http://{host}/next\">next</a>\n"));
        } else {
            for (k, v) in &headers {
                body.push_str(&format!("{k}: {v}\n"));
            }
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: public, max-age=3600\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(body.as_bytes()).is_err() {
            return;
        }
    }
}
