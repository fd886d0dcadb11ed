//! Who owns an original: Pingora's Ketama consistent hashing (`LoadBalancer<KetamaHashing>`)
//! over the peers' cluster listeners, with the peers found by [`PeerDiscovery`] and checked by
//! Pingora's HTTP health check against each peer's [`HEALTH_PATH`]. The ring runs as a Pingora
//! background service (discovery and health checks on their own timers); requests only read it.

use super::protocol::{HEALTH_PATH, HOP_HEADER, TOKEN_HEADER};
use crate::config::ClusterConfig;
use crate::metrics;
use crate::origin::resolve;
use async_trait::async_trait;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora_error::Result;
use pingora_http::RequestHeader;
use pingora_load_balancing::discovery::ServiceDiscovery;
use pingora_load_balancing::health_check::{HealthObserve, HttpHealthCheck};
use pingora_load_balancing::selection::consistent::KetamaHashing;
use pingora_load_balancing::{Backend, LoadBalancer};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long one name lookup of the peers list may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a health check waits to connect and for its answer: a peer slower than this is
/// taken off the ring until it answers in time again.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a request's original lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This node: it does the work itself.
    Me,
    /// Another node's cluster listener.
    Peer(SocketAddr),
}

/// The consistent-hash ring of live peers.
pub struct Ring {
    balancer: Arc<LoadBalancer<KetamaHashing>>,
    me: SocketAddr,
}

/// The ring key of an original: every variant of one source on one site hashes alike.
pub fn ring_key(site: usize, source: &str) -> Vec<u8> {
    format!("{site}|{source}").into_bytes()
}

impl Ring {
    /// The ring for `cluster`, and the balancer to run as a background service (it discovers
    /// peers and checks their health; until its first pass, every key is this node's).
    pub fn new(cluster: &ClusterConfig) -> Result<(Ring, Arc<LoadBalancer<KetamaHashing>>)> {
        let discovery = PeerDiscovery {
            peers: cluster.peers.clone(),
        };
        let backends = pingora_load_balancing::Backends::new(Box::new(discovery));
        let mut balancer = LoadBalancer::<KetamaHashing>::from_backends(backends);
        balancer.set_health_check(health_check(cluster)?);
        balancer.health_check_frequency = Some(cluster.health_check_interval);
        balancer.update_frequency = Some(cluster.discovery_interval);
        balancer.parallel_health_check = true;
        let balancer = Arc::new(balancer);
        Ok((
            Ring {
                balancer: balancer.clone(),
                me: cluster.me,
            },
            balancer,
        ))
    }

    /// The owner of `key`: the first live node on the ring, skipping `skip` (owners that
    /// already failed this request). No live node at all: this one.
    pub fn owner(&self, key: &[u8], skip: &[SocketAddr]) -> Owner {
        let chosen = self.balancer.select_with(key, 256, |backend, healthy| {
            healthy && inet(backend).is_some_and(|a| !skip.contains(&a))
        });
        match chosen.as_ref().and_then(inet) {
            Some(addr) if addr != self.me => Owner::Peer(addr),
            _ => Owner::Me,
        }
    }

    /// Peers known and live now (this node included when it is).
    pub fn live(&self) -> usize {
        let backends = self.balancer.backends();
        backends
            .get_backend()
            .iter()
            .filter(|b| backends.ready(b))
            .count()
    }
}

fn inet(backend: &Backend) -> Option<SocketAddr> {
    match &backend.addr {
        PeerAddr::Inet(a) => Some(*a),
        _ => None,
    }
}

/// A `GET` of each peer's [`HEALTH_PATH`] with the cluster token: 200 is live; anything else,
/// no connection or no answer within [`HEALTH_TIMEOUT`] takes it off the ring.
fn health_check(cluster: &ClusterConfig) -> Result<Box<HttpHealthCheck>> {
    let mut check = HttpHealthCheck::new("imgate-peer", false);
    let mut req = RequestHeader::build("GET", HEALTH_PATH.as_bytes(), None)?;
    req.insert_header("host", "imgate-peer")?;
    req.insert_header(TOKEN_HEADER, &cluster.token)?;
    req.insert_header(HOP_HEADER, cluster.me.to_string())?;
    check.req = req;
    check.peer_template.options.connection_timeout = Some(HEALTH_TIMEOUT);
    check.peer_template.options.read_timeout = Some(HEALTH_TIMEOUT);
    check.health_changed_callback = Some(Box::new(PeerHealthLog));
    Ok(Box::new(check))
}

/// Logs a peer joining or leaving the ring, and keeps `imgate_cluster_peer_up`.
struct PeerHealthLog;

#[async_trait]
impl HealthObserve for PeerHealthLog {
    async fn observe(&self, target: &Backend, healthy: bool) {
        let peer = target.addr.to_string();
        if healthy {
            log::info!("cluster peer {peer} is live: back on the ring");
        } else {
            log::warn!("cluster peer {peer} failed its health check: off the ring");
        }
        metrics::cluster_peer_up(&peer, healthy);
    }
}

/// The peers list, resolved: an address stands for itself, a name for every address it has
/// now (a Kubernetes headless Service names every ready pod). A name that fails to resolve is
/// left out this round, logged; if nothing resolves, the last list stays.
struct PeerDiscovery {
    peers: Vec<String>,
}

#[async_trait]
impl ServiceDiscovery for PeerDiscovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut found = BTreeSet::new();
        let mut failures = Vec::new();
        for entry in &self.peers {
            let Some((host, port)) = entry.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            match resolve::shared().lookup(host, LOOKUP_TIMEOUT).await {
                Ok(ips) => {
                    for ip in ips {
                        found.insert(Backend {
                            addr: PeerAddr::Inet(SocketAddr::new(ip, port)),
                            weight: 1,
                            ext: Default::default(),
                        });
                    }
                }
                Err(e) => failures.push(format!("{entry}: {e}")),
            }
        }
        if !failures.is_empty() {
            log::warn!("cluster peers not resolved: {}", failures.join("; "));
        }
        if found.is_empty() {
            return pingora_error::Error::e_explain(
                pingora_error::ErrorType::ConnectNoRoute,
                "no cluster peer resolved",
            );
        }
        Ok((found, HashMap::new()))
    }
}
