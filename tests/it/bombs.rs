//! Decompression bombs through the real gateway: the real `imgate` binary with HTML rewriting
//! on, in front of a real origin (a small HTTP server in this file) that serves a brotli bomb
//! as `text/html`. The bomb must cost a bounded amount of memory (the process's own peak
//! resident size, `VmHWM` in /proc), end in an error or a cut response, leave the process
//! serving, and never be cached.

use crate::support::*;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the bomb expands to. Before the fix the edge held it decoded in one buffer (and a
/// copy while growing it): gigabytes of resident memory.
const EXPANDS_TO: usize = 1 << 30;

/// `EXPANDS_TO` bytes of `<p>` paragraphs through brotli, 1 MiB at a time.
fn brotli_bomb() -> Vec<u8> {
    let block = b"<p>".repeat((1 << 20) / 3 + 1)[..1 << 20].to_vec();
    let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 24);
    for _ in 0..EXPANDS_TO >> 20 {
        w.write_all(&block).unwrap();
    }
    w.into_inner()
}

/// A one-purpose origin: `/bomb.html` is the brotli bomb, `/page.html` a small page; each
/// request counted by path.
struct BombOrigin {
    url: String,
    bomb_hits: Arc<AtomicUsize>,
}

fn start_origin(bomb: Vec<u8>) -> BombOrigin {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bomb = Arc::new(bomb);
    let bomb_hits = Arc::new(AtomicUsize::new(0));
    let hits = bomb_hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (bomb, hits) = (bomb.clone(), hits.clone());
            std::thread::spawn(move || serve(conn, &bomb, &hits));
        }
    });
    BombOrigin { url, bomb_hits }
}

fn serve(conn: TcpStream, bomb: &[u8], hits: &AtomicUsize) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    while let Some((path, _)) = read_request_head(&mut reader) {
        let page: &[u8] = b"<html><body><img src=\"/a.jpg?w=1&#038;h=2\"></body></html>";
        let (body, coding) = if path == "/bomb.html" {
            hits.fetch_add(1, Ordering::Relaxed);
            (bomb, "Content-Encoding: br\r\n")
        } else {
            (page, "")
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
             Cache-Control: public, max-age=3600\r\n{coding}Content-Length: {}\r\n\r\n",
            body.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(body).is_err() {
            return;
        }
    }
}

/// The raw bytes of one GET (read until the server closes or 60 s pass).
fn raw_get(addr: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return raw,
            // Keep the head and the tail only: the point is how the response ends.
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > 1 << 20 {
                    raw.drain(4096..raw.len() - 4096);
                }
            }
        }
    }
}

/// A complete response: a status line, and either a chunked body with its last chunk or
/// a body as long as its `Content-Length`.
fn complete_ok(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    head.starts_with("http/1.1 200")
        && (head.contains("transfer-encoding: chunked") && raw.ends_with(b"0\r\n\r\n"))
}

#[test]
fn brotli_bomb_page_costs_bounded_memory_is_cut_off_and_never_cached() {
    let made = Instant::now();
    let bomb = brotli_bomb();
    eprintln!(
        "bomb: {} bytes expanding to {EXPANDS_TO}, made in {:?}",
        bomb.len(),
        made.elapsed()
    );
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let origin = start_origin(bomb);
    let mut gw = Imgate::start_full(
        &origin.url,
        PINGORA,
        "limits:\n  max_source_bytes: 16MB\n",
        &[],
        &[("IMGATE_HTML_REWRITE", "on")],
    );
    // Warm up the paths the bomb takes (rewriter, cache) with an ordinary page.
    let page = gw.get("/page.html");
    assert_eq!(page.status, 200);
    let page = decode_content(&page);
    assert!(
        String::from_utf8_lossy(&page).contains("a.jpg?w=1&amp;h=2"),
        "{}",
        String::from_utf8_lossy(&page)
    );
    let pid = gw.pid();
    let before = proc_status_kib(pid, "VmHWM") * 1024;

    let started = Instant::now();
    let raw = raw_get(&gw.addr, "/bomb.html");
    let took = started.elapsed();
    let after = proc_status_kib(pid, "VmHWM") * 1024;
    let rss = proc_status_kib(pid, "VmRSS") * 1024;
    eprintln!(
        "bomb answered in {took:?}: VmHWM {} -> {} MiB (+{} MiB), VmRSS now {} MiB",
        before >> 20,
        after >> 20,
        (after - before) >> 20,
        rss >> 20
    );
    assert!(
        !complete_ok(&raw),
        "the bomb came back as a whole page: {}",
        String::from_utf8_lossy(&raw[..raw.len().min(300)])
    );
    assert!(
        after - before < 200 << 20,
        "peak resident memory grew by {} MiB",
        (after - before) >> 20
    );
    assert!(gw.alive(), "the gateway died");
    // Still serving, and the bomb was not stored: asking again goes to the origin again.
    assert_eq!(gw.get("/page.html").status, 200);
    let _ = raw_get(&gw.addr, "/bomb.html");
    assert_eq!(
        origin.bomb_hits.load(Ordering::Relaxed),
        2,
        "the cut-off page was served from the cache"
    );
}
