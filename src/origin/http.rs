//! HTTP(S) origins through Pingora's connector: pooled keep-alive connections, connect and read
//! timeouts, HTTP/2 to TLS origins negotiated by ALPN. Peers are built from an address this
//! module resolved and checked itself, never from a name (Pingora would resolve it blocking,
//! and panic when it does not resolve). Redirects are not followed: a 3xx is an origin error.

use super::address::Reach;
use super::error::OriginError;
use super::fetched::{forbids_storing, freshness, Fetched};
use super::resolve;
use crate::config::{HttpOrigin, PerformanceConfig};
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora_error::ErrorType;
use pingora_http::RequestHeader;
use std::net::SocketAddr;

/// The peer for an origin, with the configured timeouts: its host resolved (IP literals as
/// they are), the address to connect to (IPv4 first) checked against `reach`; the host
/// stays the SNI name and the `Host` header. TLS origins offer h2 and h1 by ALPN.
///
/// A refusal is counted (`imgate_origin_errors_total{kind="address"}`)
/// and says nothing of the address's ports, since nothing was connected to.
pub async fn peer_for(
    origin: &HttpOrigin,
    reach: &Reach,
    perf: &PerformanceConfig,
) -> Result<HttpPeer, OriginError> {
    let ips = resolve::shared()
        .lookup(&origin.host, perf.origin_connect_timeout)
        .await?;
    // IPv4 first (as the resolver's own strategy does): `localhost` answers `::1` too, and
    // a server listening on 127.0.0.1 only must still be reached.
    let ip = ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(ips.first())
        .copied()
        .ok_or_else(|| OriginError::Unresolvable(format!("{}: no addresses", origin.host)))?;
    // The address connected to is the one checked: the peer is built from it below.
    if let Err(range) = reach.check(ip) {
        crate::metrics::origin_error("address");
        return Err(OriginError::AddressRefused(format!(
            "{} resolves to {ip}: {range}",
            origin.host
        )));
    }
    let mut peer = HttpPeer::new(
        SocketAddr::new(ip, origin.port),
        origin.tls,
        origin.host.clone(),
    );
    peer.options.connection_timeout = Some(perf.origin_connect_timeout);
    peer.options.read_timeout = Some(perf.origin_timeout);
    peer.options.write_timeout = Some(perf.origin_timeout);
    peer.options.idle_timeout = Some(perf.keepalive);
    if origin.tls {
        peer.options.alpn = ALPN::H2H1;
    }
    Ok(peer)
}

/// A response whose header has been read and accepted (2xx, not announced over the limit),
/// its body not read yet: the size it announces decides how much memory to set aside first.
pub struct Started {
    session: HttpSession,
    peer: HttpPeer,
    declared_len: Option<u64>,
    /// The whole answer but its body.
    fetched: Fetched,
}

impl Started {
    /// The body's length, if the origin announced it.
    pub fn declared_len(&self) -> Option<u64> {
        self.declared_len
    }

    /// Read the body (at most `max_bytes`) and give the connection back to the pool.
    pub async fn read_body(
        mut self,
        connector: &Connector,
        perf: &PerformanceConfig,
        max_bytes: u64,
    ) -> Result<Fetched, OriginError> {
        let mut body =
            BytesMut::with_capacity(self.declared_len.unwrap_or(64 * 1024).min(max_bytes) as usize);
        while let Some(chunk) = self
            .session
            .read_response_body()
            .await
            .map_err(|e| classify(&e))?
        {
            if body.len() as u64 + chunk.len() as u64 > max_bytes {
                // The connection is mid-body: drop it instead of returning it to the pool.
                return Err(OriginError::TooLarge { limit: max_bytes });
            }
            body.extend_from_slice(&chunk);
        }
        connector
            .release_http_session(self.session, &self.peer, Some(perf.keepalive))
            .await;
        self.fetched.body = Bytes::from(body);
        Ok(self.fetched)
    }
}

/// Send a GET of `path` to `origin` over `peer` (from [`peer_for`]) and read the response
/// header. A 404/410, another non-2xx status or an announced size over `max_bytes` is an
/// error before any of the body is read.
pub async fn start(
    connector: &Connector,
    peer: HttpPeer,
    origin: &HttpOrigin,
    path: &str,
    max_bytes: u64,
) -> Result<Started, OriginError> {
    let (mut session, _reused) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| classify(&e))?;
    let uri = format!("{}{}", origin.base_path, path);
    let mut req = RequestHeader::build("GET", uri.as_bytes(), None)
        .map_err(|e| OriginError::BadPath(e.to_string()))?;
    let set =
        |req: &mut RequestHeader, k: &'static str, v: String| req.insert_header(k, v).map(|_| ());
    set(&mut req, "host", origin.host_header()).map_err(|e| OriginError::BadPath(e.to_string()))?;
    set(
        &mut req,
        "user-agent",
        concat!("imgate/", env!("CARGO_PKG_VERSION")).into(),
    )
    .ok();
    set(&mut req, "accept", "image/*,*/*;q=0.8".into()).ok();
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| classify(&e))?;
    session
        .finish_request_body()
        .await
        .map_err(|e| classify(&e))?;
    session
        .read_response_header()
        .await
        .map_err(|e| classify(&e))?;
    let resp = session
        .response_header()
        .ok_or_else(|| OriginError::Unreachable("no response header".into()))?;
    let status = resp.status.as_u16();
    let header = |name: &str| {
        resp.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if status == 404 || status == 410 {
        return Err(OriginError::NotFound);
    }
    if !(200..300).contains(&status) {
        return Err(OriginError::Status(status));
    }
    let declared_len = header("content-length").and_then(|l| l.parse::<u64>().ok());
    // Refused before reading the body when the origin announces the size.
    if declared_len.is_some_and(|l| l > max_bytes) {
        return Err(OriginError::TooLarge { limit: max_bytes });
    }
    let cache_control = header("cache-control");
    let fetched = Fetched {
        body: Bytes::new(),
        content_type: header("content-type"),
        ttl: freshness(
            cache_control.as_deref(),
            header("expires").as_deref(),
            header("date").as_deref(),
            header("age").as_deref(),
        ),
        no_store: forbids_storing(cache_control.as_deref()),
        last_modified: header("last-modified").and_then(|l| httpdate::parse_http_date(&l).ok()),
        etag: header("etag"),
        tags: ["surrogate-key", "cache-tag"]
            .into_iter()
            .filter_map(|name| Some((name, header(name)?)))
            .collect(),
        askers: Default::default(),
    };
    Ok(Started {
        session,
        peer,
        declared_len,
        fetched,
    })
}

/// Timeouts become 504, everything else that stops us reaching the origin 502.
fn classify(e: &pingora_error::Error) -> OriginError {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            OriginError::Timeout(std::time::Duration::ZERO)
        }
        _ => OriginError::Unreachable(e.to_string()),
    }
}
