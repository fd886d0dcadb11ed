//! What the edge keeps about one request between Pingora's phases: the route it decided
//! (`Route`) and what later phases need of earlier ones (`EdgeCtx`).

use crate::access_log::TransformTimings;
use crate::cache::FillStarted;
use pingora_http::ResponseHeader;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// What the edge decided a request is, kept for the later phases.
#[derive(Debug, Default)]
pub enum Route {
    #[default]
    Unrouted,
    /// A transform: the canonical options and the source key make the cache key.
    Image {
        canonical: String,
        source: String,
        vary_token: &'static str,
        /// `slow-connection-quality` applies: the client's hints say its connection is slow.
        slow: bool,
    },
    Passthrough,
}

pub struct EdgeCtx {
    pub(super) route: Route,
    pub(super) site: usize,
    pub(super) started: Instant,
    /// When the upstream response header arrived: the reference for its `Age` and `Date`.
    pub(super) response_time: Option<SystemTime>,
    /// A `304` received while revalidating, merged into the stored response by
    /// `response_cache_filter`.
    pub(super) not_modified: Option<Box<ResponseHeader>>,
    /// The page being rewritten, from its upstream header to its last body chunk.
    pub(super) html: Option<crate::rewrite::HtmlBody>,
    /// Answered by `short_hit` from the memory tier, without Pingora's cache machinery.
    pub(super) short_hit: bool,
    /// Where the cache's purges and invalidations stood when this request went upstream: what
    /// it brings back is stored only if none that may cover it began meanwhile
    /// (`cache::FillStarted`).
    pub(super) fill_started: Option<FillStarted>,
    /// The transform service's fetch and pipeline time for a miss, for the access log.
    pub(super) transform_timings: Option<TransformTimings>,
    /// Cluster mode: the owner this attempt asks for the miss (`None`: this node's transform
    /// service), and the owners that failed it already.
    pub(super) owner: Option<SocketAddr>,
    pub(super) owners_failed: Vec<SocketAddr>,
    /// A peer asked that has applied purges this node has not: answer without the cache.
    pub(super) bypass_cache: bool,
}

impl EdgeCtx {
    pub fn new() -> EdgeCtx {
        EdgeCtx {
            route: Route::Unrouted,
            site: 0,
            started: Instant::now(),
            response_time: None,
            not_modified: None,
            html: None,
            short_hit: false,
            fill_started: None,
            transform_timings: None,
            owner: None,
            owners_failed: Vec::new(),
            bypass_cache: false,
        }
    }
}
