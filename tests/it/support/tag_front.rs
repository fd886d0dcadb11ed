//! A front for the test origin that adds purge tags (`Surrogate-Key`, `Cache-Tag`) to its
//! answers, for the purge-by-tag tests.

use super::read_request_head;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

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
