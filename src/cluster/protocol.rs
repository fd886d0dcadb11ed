//! What nodes say to each other over their cluster listeners, and how a listener knows a
//! request comes from a peer: the shared token (compared in constant time) and the hop marker
//! naming the asking node. The edge removes both from every client request, so a client can
//! neither forge them nor see them.

use crate::secret::same_secret;

/// The cluster token a peer sends.
pub const TOKEN_HEADER: &str = "imgate-cluster-token";
/// The hop marker: the asking node's cluster address. A request that carries it is answered
/// by the node itself, never forwarded again.
pub const HOP_HEADER: &str = "imgate-cluster-hop";
/// The last purge-stream entry the asking node applied: an owner that has applied less
/// answers from its transform service, not from its cache.
pub const PURGE_POSITION_HEADER: &str = "imgate-cluster-purge-position";
/// Peers' health checks: 200 while the node takes work, 503 once it drains.
pub const HEALTH_PATH: &str = "/.imgate/cluster/health";

/// What a request on the cluster listener proved.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerCheck<'a> {
    /// The token matches: a peer, named by its hop marker.
    Peer(&'a str),
    /// No token or a wrong one.
    NotAPeer,
    /// The token matches but the hop marker is missing.
    NoHop,
}

/// Whether `token` and `hop` (the request's header values) come from a peer of a cluster
/// whose token is `expected`.
pub fn check<'a>(expected: &str, token: Option<&str>, hop: Option<&'a str>) -> PeerCheck<'a> {
    let Some(token) = token else {
        return PeerCheck::NotAPeer;
    };
    if !same_secret(token, expected) {
        return PeerCheck::NotAPeer;
    }
    match hop {
        Some(h) if !h.is_empty() => PeerCheck::Peer(h),
        _ => PeerCheck::NoHop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_token_with_a_hop_is_a_peer() {
        let t = "0123456789abcdef";
        assert_eq!(
            check(t, Some(t), Some("10.0.0.1:8091")),
            PeerCheck::Peer("10.0.0.1:8091")
        );
        assert_eq!(check(t, None, Some("x")), PeerCheck::NotAPeer);
        assert_eq!(
            check(t, Some("0123456789abcdeX"), Some("x")),
            PeerCheck::NotAPeer
        );
        assert_eq!(check(t, Some(t), None), PeerCheck::NoHop);
        assert_eq!(check(t, Some(t), Some("")), PeerCheck::NoHop);
    }
}
