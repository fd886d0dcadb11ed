//! The edge's side of cluster mode. Asking: a transform miss whose original another node owns
//! goes to that owner's cluster listener, with the token and the hop marker; an owner that
//! cannot be reached, or fails before answering, is skipped, and after [`MAX_OWNERS_TRIED`]
//! the node does the work itself. Answering: the cluster listener runs the same edge, facing
//! peers: it checks the token and hop marker, reads the canonical transform path the asker
//! sent, and serves it from its cache or its own transform service, never from a third node.

use super::ctx::{EdgeCtx, Route};
use super::reply::{header_str, respond};
use crate::cluster::{self, Bus, Owner, PeerCheck, Ring};
use crate::config::{ClusterConfig, Config};
use crate::dialect;
use crate::metrics;
use crate::readiness::Readiness;
use crate::service::{NEGOTIATED_FORMAT_HEADER, SLOW_CONNECTION_HEADER};
use pingora::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Owners a miss tries before the node does the work itself.
pub const MAX_OWNERS_TRIED: usize = 2;
/// How long connecting to an owner may take: peers are on the local network.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Which side of the cluster an edge faces.
pub enum Facing {
    /// Clients, on `listen`: misses may go to their owner.
    Clients,
    /// Peers, on `cluster.listen`: answers only requests with the token and a hop marker.
    Peers(Readiness),
}

/// What the edge keeps of cluster mode.
pub struct Cluster {
    pub config: ClusterConfig,
    pub ring: Arc<Ring>,
    /// The purge bus, when `cluster.redis_url` is set: invalidations reach every node.
    pub bus: Option<Arc<Bus>>,
}

impl Cluster {
    /// The owner to ask for this routed miss, if it is not this node (nor one that already
    /// failed it, nor after [`MAX_OWNERS_TRIED`]).
    pub fn owner_of(&self, ctx: &EdgeCtx) -> Option<SocketAddr> {
        let Route::Image { source, .. } = &ctx.route else {
            return None;
        };
        if ctx.owners_failed.len() >= MAX_OWNERS_TRIED {
            return None;
        }
        if self.bus.as_ref().is_some_and(|b| b.holds_unsent()) {
            // Peers have not seen this node's latest purges: their copies may be purged ones.
            return None;
        }
        match self
            .ring
            .owner(&cluster::ring_key(ctx.site, source), &ctx.owners_failed)
        {
            Owner::Peer(addr) => Some(addr),
            Owner::Me => None,
        }
    }

    /// A connection to `owner`'s cluster listener.
    pub fn peer(&self, owner: SocketAddr) -> Box<HttpPeer> {
        let mut peer = HttpPeer::new(owner, false, String::new());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        peer.options.read_timeout = Some(self.config.peer_timeout);
        peer.options.write_timeout = Some(self.config.peer_timeout);
        Box::new(peer)
    }

    /// The request to an owner carries the token and this node as its hop marker.
    pub fn sign(&self, req: &mut RequestHeader) -> Result<()> {
        req.insert_header(cluster::TOKEN_HEADER, &self.config.token)?;
        if let Some(bus) = &self.bus {
            req.insert_header(cluster::PURGE_POSITION_HEADER, bus.position().to_string())?;
        }
        req.insert_header(cluster::HOP_HEADER, self.config.me.to_string())
    }
}

/// The owner failed this miss: count it, remember it, and let Pingora ask again (upstream_peer
/// then picks the next owner, or this node).
pub fn owner_failed(ctx: &mut EdgeCtx, reason: &str, e: &mut pingora_error::Error) {
    if let Some(owner) = ctx.owner.take() {
        log::warn!("cluster owner {owner} failed ({reason}: {e}); asking elsewhere");
        metrics::CLUSTER_FALLBACKS
            .with_label_values(&[&owner.to_string(), reason])
            .inc();
        ctx.owners_failed.push(owner);
        e.set_retry(true);
    }
}

/// The cluster listener's `request_filter`: only peers get past it, and what they ask is read
/// as the canonical transform path. `Ok(true)`: answered here.
pub async fn route_peer_request(
    config: &Config,
    cluster: &Cluster,
    ready: &Readiness,
    session: &mut Session,
    ctx: &mut EdgeCtx,
) -> Result<bool> {
    let req = session.req_header();
    let from = match cluster::check(
        &cluster.config.token,
        header_str(&req.headers, cluster::TOKEN_HEADER),
        header_str(&req.headers, cluster::HOP_HEADER),
    ) {
        PeerCheck::NotAPeer => {
            return respond(session, 403, "the cluster listener answers peers only").await
        }
        PeerCheck::NoHop => return respond(session, 400, "no cluster hop marker").await,
        PeerCheck::Peer(from) => from.to_string(),
    };
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    if path == cluster::HEALTH_PATH {
        // Not before it has caught up with the purges it missed (cluster::Bus::settled).
        let caught_up = cluster.bus.as_ref().is_none_or(|b| b.settled());
        return match ready.get() && caught_up {
            true => respond(session, 200, "ready").await,
            false => respond(session, 503, "draining").await,
        };
    }
    let host = header_str(&req.headers, "host").unwrap_or("");
    let Some((site, _)) = config.site_for(host) else {
        return respond(session, 404, "unknown site").await;
    };
    let resolved = match dialect::read_canonical(path) {
        None => return respond(session, 404, "peers ask for transforms only").await,
        Some(Err(refusal)) => return respond(session, refusal.status, &refusal.message).await,
        Some(Ok(resolved)) => resolved,
    };
    // The asker negotiated the format and judged the connection; its values key the variant.
    let vary_token = match header_str(&req.headers, NEGOTIATED_FORMAT_HEADER) {
        Some("avif") => "avif",
        Some("webp") => "webp",
        Some("fallback") => "fallback",
        _ => "",
    };
    let slow = header_str(&req.headers, SLOW_CONNECTION_HEADER) == Some("slow");
    // An asker that has applied purges this node has not must not get this node's copies.
    let asker_position = header_str(&req.headers, cluster::PURGE_POSITION_HEADER)
        .and_then(cluster::EntryId::parse)
        .unwrap_or_default();
    ctx.bypass_cache = cluster
        .bus
        .as_ref()
        .is_some_and(|b| b.position() < asker_position);
    metrics::CLUSTER_ANSWERED.with_label_values(&[&from]).inc();
    ctx.site = site;
    ctx.route = Route::Image {
        canonical: resolved.spec.canonical(),
        source: resolved.source.key(),
        vary_token,
        slow,
    };
    Ok(false)
}
