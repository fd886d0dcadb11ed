//! The admin listener: `/metrics` (Prometheus text format), `/livez` (the process answers) and
//! `/readyz` (ready to take traffic: 503 once shutdown has begun). Kept off the edge listener
//! so it can be firewalled apart.
//!
//! It is a background service with its own accept loop (hyper's HTTP/1.1, one task per
//! connection, a header read timeout) rather than a Pingora listening service on purpose: Pingora closes its listeners the moment SIGTERM arrives, and a readiness
//! probe that only ever sees "connection refused" cannot tell draining from dead. This one keeps
//! answering (`/readyz` 503) through the grace period until the process exits. The accept loop
//! never waits on a client: a silent or half-sent request holds its own task until the header
//! timeout closes it, so health probes answer whatever other clients do.
//!
//! With an edge cache it also serves the cache API: `POST /purge` and `POST /warm`, JSON in
//! and out, behind a bearer token (no token configured = the API is refused, never open).

use crate::cache::TieredStorage;
use crate::cluster::{Bus, Published, Ring};
use crate::config::Config;
use crate::purge::PurgeRequest;
use crate::readiness::Readiness;
use crate::secret::same_secret;
use crate::warm::WarmRequest;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{
    HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, TRANSFER_ENCODING,
};
use http::StatusCode;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head the admin listener reads (hyper's smallest read buffer); anything
/// bigger is answered 431.
const MAX_HEAD: usize = 8 * 1024;
/// Largest request body (purge/warm JSON); beyond it: 413.
pub const MAX_BODY: usize = 64 * 1024;
/// A whole request head must arrive within this time of the connection opening, or the
/// connection is closed. Probes and scrapers send theirs at once.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The body (purge/warm JSON) must follow its head within this time; a slower client is cut off
/// without an answer.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once; over it a new connection is closed at once. Each costs a task and
/// at most [`MAX_HEAD`] of buffer. The trap: this is the one way left to starve the probes (as
/// many silent connections as this, renewed every [`HEADER_TIMEOUT`]), so keep the admin port
/// firewalled to the network that probes and scrapes.
const MAX_CONNECTIONS: usize = 1024;
/// Purge and warm requests running at once: a burst of slow warms must not pile up work. They
/// wait for a slot in their own task; probes and scrapes never take one.
const MAX_CACHE_API: usize = 16;

/// What the cache API needs: the edge's config (sites, listen address, token) and its storage.
pub struct CacheApi {
    pub config: Arc<Config>,
    pub storage: &'static TieredStorage,
    /// Cluster mode: the ring, whose live size each scrape reports.
    pub ring: Option<Arc<Ring>>,
    /// Cluster mode with Redis: purges go to every node.
    pub bus: Option<Arc<Bus>>,
}

pub struct AdminServer {
    addr: String,
    state: Arc<AdminState>,
}

struct AdminState {
    ready: Readiness,
    api: Option<CacheApi>,
    /// [`MAX_CACHE_API`] slots for purge and warm.
    api_slots: Semaphore,
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

impl AdminServer {
    /// The admin listener on `addr`; `ready` is set once it listens and cleared when shutdown
    /// begins (the cluster listener's health answer reads the same flag).
    pub fn new(addr: &str, api: Option<CacheApi>, ready: Readiness) -> AdminServer {
        AdminServer {
            addr: addr.to_string(),
            state: Arc::new(AdminState {
                ready,
                api,
                api_slots: Semaphore::new(MAX_CACHE_API),
            }),
        }
    }
}

impl AdminState {
    /// Status, content type and body for a GET path.
    fn answer(&self, path: &str) -> Reply {
        match path {
            "/metrics" => {
                if let Some(ring) = self.api.as_ref().and_then(|a| a.ring.as_ref()) {
                    crate::metrics::CLUSTER_RING_SIZE.set(ring.live() as i64);
                }
                Reply {
                    status: 200,
                    ctype: "text/plain; version=0.0.4; charset=utf-8",
                    body: crate::metrics::render().into_bytes(),
                    extra: None,
                }
            }
            "/livez" => Reply::text(200, "ok"),
            "/readyz" if self.ready.get() && self.caught_up() => Reply::text(200, "ready"),
            "/readyz" => Reply::text(503, "not ready"),
            _ => Reply::text(404, "not found"),
        }
    }

    /// Cluster mode with Redis: the purges missed while down are applied (or Redis cannot be
    /// reached), so nothing purged is served once ready.
    fn caught_up(&self) -> bool {
        let bus = self.api.as_ref().and_then(|a| a.bus.as_ref());
        bus.is_none_or(|b| b.settled())
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
            let counts = match purge.run(&api.config, api.storage).await {
                Ok(counts) => counts,
                Err(e) => return Reply::error(400, &e.0),
            };
            let mut body = serde_json::json!({
                "purged": { "memory": counts.memory, "disk": counts.disk },
                "soft": purge.soft,
            });
            let Some(bus) = &api.bus else {
                return Reply::json(200, &body);
            };
            // Applied here; now every other node.
            let live = api.ring.as_ref().map_or(1, |r| r.live());
            let others = live.saturating_sub(1);
            match bus.publish(&purge, others).await {
                Published::Reached { peers } => {
                    body["cluster"] = serde_json::json!({
                        "nodes_reached": peers + 1,
                        "nodes_live": live.max(peers + 1),
                    });
                    Reply::json(200, &body)
                }
                Published::Queued(error) => {
                    // The local purge stands; the others get it when Redis is back.
                    body["cluster"] = serde_json::json!({
                        "nodes_reached": 1,
                        "nodes_live": live,
                        "error": format!("purge bus unreachable, purge queued for the other nodes: {error}"),
                    });
                    Reply::json(503, &body)
                }
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
            ("POST", "/purge" | "/warm") => {
                // The semaphore is never closed; were it, the request runs unthrottled.
                let _slot = self.api_slots.acquire().await.ok();
                self.cache_api(req).await
            }
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

/// Why a request gets no [`Reply`]: the client was too slow with its body or went away. Hyper
/// closes the connection without an answer when the service fails, as the old loop did.
fn abandoned(why: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, why)
}

/// Turn hyper's request into ours: the body bounded in size ([`MAX_BODY`], 413 beyond it,
/// never buffered further) and in time ([`BODY_TIMEOUT`]). `Err(Ok(reply))` is an answer for a
/// request refused before routing; `Err(Err(_))` means close without answering.
async fn read_request(
    req: hyper::Request<Incoming>,
) -> Result<Request, Result<Reply, std::io::Error>> {
    let headers = req.headers();
    // Chunked bodies are not needed by any client of this API; refusing them keeps one way to
    // bound a body (its declared length) and today's answer.
    if headers.contains_key(TRANSFER_ENCODING) {
        return Err(Ok(Reply::text(411, "content-length required")));
    }
    // Hyper has already refused a malformed Content-Length (400); a declared length over the
    // limit is refused before a byte of the body is read.
    if req.body().size_hint().lower() > MAX_BODY as u64 {
        return Err(Ok(Reply::text(413, "body too large")));
    }
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let limited = Limited::new(req.into_body(), MAX_BODY);
    let body = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => return Err(Err(abandoned("request body too slow"))),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return Err(Ok(Reply::text(413, "body too large")))
        }
        Ok(Err(_)) => return Err(Err(abandoned("request body cut short"))),
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
    };
    Ok(Request {
        method,
        path,
        authorization,
        body,
    })
}

/// One request, start to finish. Every answer closes the connection (`connection: close`, no
/// keep-alive): probes and scrapes open a connection per request anyway.
async fn handle(
    state: Arc<AdminState>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    let reply = match read_request(req).await {
        Ok(req) => state.route(&req).await,
        Err(Ok(reply)) => reply,
        Err(Err(e)) => return Err(e),
    };
    // Hyper sends no body for HEAD but keeps the content-length of the GET answer.
    let mut response = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.ctype));
    if let Some((name, value)) = reply.extra {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

/// Serve one connection in its own task. Hyper reads the head: at most [`MAX_HEAD`] bytes
/// (431 beyond) within [`HEADER_TIMEOUT`] of the connection opening (then it is closed), so a
/// silent or trickling client costs one task and one small buffer for a few seconds, and
/// nothing else waits on it.
async fn serve(state: Arc<AdminState>, conn: TcpStream) {
    let service = service_fn(move |req| handle(state.clone(), req));
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(conn), service)
        .await;
    if let Err(e) = served {
        log::debug!("admin connection: {e}");
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
        self.state.ready.set(true);
        let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut draining = false;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let conn = match accepted {
                        Ok((conn, _)) => conn,
                        Err(e) => {
                            // Out of descriptors, most likely: pause instead of spinning.
                            log::warn!("admin listener accept: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    // Never wait for a slot here: the accept loop must stay free for the next
                    // probe. Over the cap the connection is closed at once.
                    let Ok(slot) = open.clone().try_acquire_owned() else {
                        log::warn!("admin listener: {MAX_CONNECTIONS} connections open, refusing one");
                        continue;
                    };
                    let state = self.state.clone();
                    tokio::spawn(async move {
                        serve(state, conn).await;
                        drop(slot);
                    });
                }
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        draining = true;
                        self.state.ready.set(false);
                        log::info!("shutting down: /readyz now answers 503");
                    }
                }
            }
        }
    }
}
