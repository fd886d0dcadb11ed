//! The admin listener: `/metrics` (Prometheus text format), `/livez` (the process answers) and
//! `/readyz` (ready to take traffic: 503 once shutdown has begun). Kept off the edge listener
//! so it can be firewalled apart.
//!
//! It is a background service with its own small HTTP/1.1 loop rather than a Pingora listening
//! service on purpose: Pingora closes its listeners the moment SIGTERM arrives, and a readiness
//! probe that only ever sees "connection refused" cannot tell draining from dead. This one keeps
//! answering (`/readyz` 503) through the grace period until the process exits.
//!
//! With an edge cache it also serves the cache API: `POST /purge` and `POST /warm`, JSON in
//! and out, behind a bearer token (no token configured = the API is refused, never open).

use crate::cache::TieredStorage;
use crate::config::Config;
use crate::purge::PurgeRequest;
use crate::warm::WarmRequest;
use async_trait::async_trait;
use blake2::{Blake2b512, Digest};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head the admin listener reads; anything bigger is refused.
const MAX_HEAD: usize = 8 * 1024;
/// Largest request body (purge/warm JSON); beyond it: 413.
pub const MAX_BODY: usize = 64 * 1024;
/// Connections served at once: a slow warm must not block a scrape or a probe, and a flood
/// must not grow without bound.
const MAX_CONNECTIONS: usize = 16;

/// What the cache API needs: the edge's config (sites, listen address, token) and its storage.
pub struct CacheApi {
    pub config: Arc<Config>,
    pub storage: &'static TieredStorage,
}

pub struct AdminServer {
    addr: String,
    state: Arc<AdminState>,
}

struct AdminState {
    ready: AtomicBool,
    api: Option<CacheApi>,
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// One answer.
struct Reply {
    status: u16,
    ctype: &'static str,
    body: Vec<u8>,
    extra: Option<(&'static str, &'static str)>,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            ctype: "text/plain",
            body: format!("{body}\n").into_bytes(),
            extra: None,
        }
    }

    fn json(status: u16, value: &serde_json::Value) -> Reply {
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        Reply {
            status,
            ctype: "application/json",
            body,
            extra: None,
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &serde_json::json!({ "error": message }))
    }
}

/// Compare secrets in time independent of where they differ: both are hashed to a fixed
/// length first, so neither content nor length leaks through timing.
fn same_secret(a: &str, b: &str) -> bool {
    let (ha, hb) = (Blake2b512::digest(a), Blake2b512::digest(b));
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl AdminServer {
    pub fn new(addr: &str, api: Option<CacheApi>) -> AdminServer {
        AdminServer {
            addr: addr.to_string(),
            state: Arc::new(AdminState {
                ready: AtomicBool::new(false),
                api,
            }),
        }
    }
}

impl AdminState {
    /// Status, content type and body for a GET path.
    fn answer(&self, path: &str) -> Reply {
        match path {
            "/metrics" => Reply {
                status: 200,
                ctype: "text/plain; version=0.0.4; charset=utf-8",
                body: crate::metrics::render().into_bytes(),
                extra: None,
            },
            "/livez" => Reply::text(200, "ok"),
            "/readyz" if self.ready.load(Ordering::Acquire) => Reply::text(200, "ready"),
            "/readyz" => Reply::text(503, "not ready"),
            _ => Reply::text(404, "not found"),
        }
    }

    /// The cache API: auth first, then the body.
    async fn cache_api(&self, req: &Request) -> Reply {
        let Some(api) = &self.api else {
            return Reply::error(404, "no edge cache in this role");
        };
        let Some(token) = &api.config.admin_token else {
            return Reply::error(403, "purge API disabled: no admin token configured");
        };
        let Some(auth) = &req.authorization else {
            let mut r = Reply::error(401, "bearer token required");
            r.extra = Some(("www-authenticate", "Bearer realm=\"imgate admin\""));
            return r;
        };
        let given = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .unwrap_or("")
            .trim();
        if !same_secret(given, token) {
            log::warn!("admin {}: wrong token", req.path);
            return Reply::error(403, "wrong token");
        }
        if req.path == "/purge" {
            let purge: PurgeRequest = match serde_json::from_slice(&req.body) {
                Ok(p) => p,
                Err(e) => return Reply::error(400, &format!("bad JSON: {e}")),
            };
            match purge.run(&api.config, api.storage).await {
                Ok(counts) => Reply::json(
                    200,
                    &serde_json::json!({
                        "purged": { "memory": counts.memory, "disk": counts.disk },
                        "soft": purge.soft,
                    }),
                ),
                Err(e) => Reply::error(400, &e.0),
            }
        } else {
            let warm: WarmRequest = match serde_json::from_slice(&req.body) {
                Ok(w) => w,
                Err(e) => return Reply::error(400, &format!("bad JSON: {e}")),
            };
            if let Err(e) = warm.check() {
                return Reply::error(400, &e);
            }
            let edge = crate::warm::loopback(&api.config.listen);
            let host = api
                .config
                .sites
                .iter()
                .flat_map(|s| s.hosts.iter())
                .find(|h| *h != "*")
                .cloned()
                .unwrap_or_else(|| edge.clone());
            let results = warm.run(edge, host).await;
            Reply::json(200, &serde_json::json!({ "results": results }))
        }
    }

    async fn route(&self, req: &Request) -> Reply {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/purge" | "/warm") => self.cache_api(req).await,
            (_, "/purge" | "/warm") => {
                let mut r = Reply::text(405, "method not allowed");
                r.extra = Some(("allow", "POST"));
                r
            }
            ("GET" | "HEAD", path) => self.answer(path),
            _ => Reply::text(405, "method not allowed"),
        }
    }
}

/// Read a request: the head (bounded), then a `Content-Length` body (bounded). `Err` carries
/// the answer for a request we refuse before routing; `Ok(None)` means just close.
async fn read_request(conn: &mut TcpStream) -> Result<Option<Request>, Reply> {
    let mut raw = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if raw.len() >= MAX_HEAD {
            return Err(Reply::text(431, "request head too large"));
        }
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut length = 0usize;
    let mut authorization = None;
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = value
                    .parse()
                    .map_err(|_| Reply::text(400, "bad content-length"))?
            }
            "transfer-encoding" => return Err(Reply::text(411, "content-length required")),
            "authorization" => authorization = Some(value.to_string()),
            _ => {}
        }
    }
    if length > MAX_BODY {
        return Err(Reply::text(413, "body too large"));
    }
    let mut body = raw.split_off(head_end + 4);
    while body.len() < length {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    body.truncate(length);
    Ok(Some(Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or("/").to_string(),
        authorization,
        body,
    }))
}

async fn serve(state: Arc<AdminState>, mut conn: TcpStream) {
    // A slow or silent client costs one task for a few seconds, never the listener.
    let read = tokio::time::timeout(Duration::from_secs(5), read_request(&mut conn)).await;
    let (method, reply) = match read {
        Err(_) | Ok(Ok(None)) => return,
        Ok(Err(reply)) => (String::new(), reply),
        Ok(Ok(Some(req))) => {
            let reply = state.route(&req).await;
            (req.method, reply)
        }
    };
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let extra = reply
        .extra
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{extra}cache-control: no-store\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.ctype,
        reply.body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(&reply.body);
    }
    let _ = conn.write_all(&out).await;
    let _ = conn.shutdown().await;
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
        self.state.ready.store(true, Ordering::Release);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut draining = false;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((conn, _)) = accepted {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            continue;
                        };
                        let state = self.state.clone();
                        tokio::spawn(async move {
                            serve(state, conn).await;
                            drop(slot);
                        });
                    }
                }
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        draining = true;
                        self.state.ready.store(false, Ordering::Release);
                        log::info!("shutting down: /readyz now answers 503");
                    }
                }
            }
        }
    }
}
