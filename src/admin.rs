//! The admin listener: `/metrics` (Prometheus text format), `/livez` (the process answers) and
//! `/readyz` (ready to take traffic: 503 once shutdown has begun). Kept off the edge listener
//! so it can be firewalled apart.
//!
//! It is a background service with its own small HTTP/1.1 loop rather than a Pingora listening
//! service on purpose: Pingora closes its listeners the moment SIGTERM arrives, and a readiness
//! probe that only ever sees "connection refused" cannot tell draining from dead. This one keeps
//! answering (`/readyz` 503) through the grace period until the process exits.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head the admin listener reads; anything bigger is refused.
const MAX_HEAD: usize = 8 * 1024;

pub struct AdminServer {
    addr: String,
    ready: AtomicBool,
}

impl AdminServer {
    pub fn new(addr: &str) -> AdminServer {
        AdminServer {
            addr: addr.to_string(),
            ready: AtomicBool::new(false),
        }
    }

    /// Status, content type and body for a path.
    fn answer(&self, path: &str) -> (u16, &'static str, Vec<u8>) {
        match path {
            "/metrics" => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render().into_bytes(),
            ),
            "/livez" => (200, "text/plain", b"ok\n".to_vec()),
            "/readyz" if self.ready.load(Ordering::Acquire) => {
                (200, "text/plain", b"ready\n".to_vec())
            }
            "/readyz" => (503, "text/plain", b"not ready\n".to_vec()),
            _ => (404, "text/plain", b"not found\n".to_vec()),
        }
    }

    async fn serve(&self, mut conn: TcpStream) {
        let mut head = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        // A slow or silent client costs one task for a few seconds, never the listener.
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            true
        })
        .await;
        if !matches!(read, Ok(true)) {
            return;
        }
        let line = String::from_utf8_lossy(&head);
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let path = target.split('?').next().unwrap_or("/");
        let (status, ctype, body) = if method == "GET" || method == "HEAD" {
            self.answer(path)
        } else {
            (405, "text/plain", b"method not allowed\n".to_vec())
        };
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Service Unavailable",
        };
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(&body);
        }
        let _ = conn.write_all(&out).await;
        let _ = conn.shutdown().await;
    }
}

#[async_trait]
impl BackgroundService for AdminServer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match TcpListener::bind(&self.addr).await {
            Ok(l) => l,
            Err(e) => {
                log::error!("admin listener cannot bind {}: {e}", self.addr);
                return;
            }
        };
        self.ready.store(true, Ordering::Release);
        let mut draining = false;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((conn, _)) = accepted {
                        // One connection at a time: admin traffic is a scrape and a probe.
                        self.serve(conn).await;
                    }
                }
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        draining = true;
                        self.ready.store(false, Ordering::Release);
                        log::info!("shutting down: /readyz now answers 503");
                    }
                }
            }
        }
    }
}
