//! The admin listener: `/metrics` (Prometheus text format), `/livez` (the process answers) and
//! `/readyz` (ready to take traffic: false once shutdown has begun). Kept off the edge listener
//! so it can be firewalled apart.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Readiness shared between the admin app and the shutdown watcher.
#[derive(Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

pub struct AdminApp {
    pub readiness: Arc<Readiness>,
}

fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len().to_string())
        .header("cache-control", "no-store")
        .body(body)
        .expect("static response parts are valid")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => text(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render(),
            ),
            "/livez" => text(200, "text/plain", "ok\n"),
            "/readyz" if self.readiness.is_ready() => text(200, "text/plain", "ready\n"),
            "/readyz" => text(503, "text/plain", "shutting down\n"),
            _ => text(404, "text/plain", "not found\n"),
        }
    }
}

/// Marks the process ready when services start and not ready as soon as shutdown begins, so a
/// load balancer drains it during the grace period.
pub struct ReadinessWatcher {
    pub readiness: Arc<Readiness>,
}

#[async_trait]
impl BackgroundService for ReadinessWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.readiness.set(true);
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        self.readiness.set(false);
    }
}
