//! Turning origin and source host names into addresses, asynchronously, with hickory's
//! resolver: `/etc/resolv.conf` and `/etc/hosts` read once at start-up, answers cached with
//! their record TTL (negative answers for at most [`NEGATIVE_TTL_CAP`]). It must not connect
//! anywhere nor judge addresses (that is `address`), and never blocks an async worker: the
//! system `getaddrinfo` behind `ToSocketAddrs` does, which is why Pingora's
//! `HttpPeer::new((host, port), ..)` is never given a name.

use super::error::OriginError;
use crate::metrics;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;
use std::time::Duration;

/// How long "no such name" is remembered at most, whatever the zone's SOA says: a name an
/// operator has just created should work within this long.
pub const NEGATIVE_TTL_CAP: Duration = Duration::from_secs(30);

/// The process's resolver, shared by the edge (passthrough) and the transform service so both
/// see one cache. Made on first use: call [`init`] at start-up, where reading the system's
/// files does not block a request.
pub struct OriginResolver {
    /// `None` if hickory could not be set up (only a TLS transport's set-up can fail, and none
    /// is configured): names then fail to resolve, IP literals still work.
    inner: Option<TokioResolver>,
}

static SHARED: OnceLock<OriginResolver> = OnceLock::new();

/// The shared resolver, made (reading `/etc/resolv.conf` and `/etc/hosts`) on first call.
pub fn shared() -> &'static OriginResolver {
    SHARED.get_or_init(OriginResolver::system)
}

/// Make the shared resolver now, outside any request.
pub fn init() {
    shared();
}

impl OriginResolver {
    /// The system's configuration; without a usable `/etc/resolv.conf`, a name server on the
    /// local host, as the C library assumes then (never a public resolver: names of a private
    /// network must not leak).
    fn system() -> OriginResolver {
        let mut builder = TokioResolver::builder_tokio().unwrap_or_else(|e| {
            log::warn!(
                "/etc/resolv.conf unusable ({e}): resolving through a name server on localhost"
            );
            let servers = [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]
            .into_iter()
            .map(NameServerConfig::udp_and_tcp)
            .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        });
        builder.options_mut().negative_max_ttl = Some(NEGATIVE_TTL_CAP);
        let inner = builder
            .build()
            .map_err(|e| log::error!("DNS resolver: {e}; only IP literals will work as hosts"))
            .ok();
        OriginResolver { inner }
    }

    /// The addresses of `host` (a name, or an IP literal, bracketed or not, which skips DNS),
    /// within `timeout`. A name that does not resolve, or not in time, is
    /// [`OriginError::Unresolvable`] and counts in `imgate_origin_errors_total{kind="dns"}`.
    pub async fn lookup(&self, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, OriginError> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let Some(resolver) = &self.inner else {
            metrics::origin_error("dns");
            return Err(OriginError::Unresolvable(format!(
                "{host}: no DNS resolver"
            )));
        };
        let result = match tokio::time::timeout(timeout, resolver.lookup_ip(host)).await {
            Ok(Ok(found)) => {
                let ips: Vec<IpAddr> = found.iter().collect();
                if ips.is_empty() {
                    Err(format!("{host}: no addresses"))
                } else {
                    Ok(ips)
                }
            }
            Ok(Err(e)) => Err(format!("{host}: {e}")),
            Err(_) => Err(format!("{host}: no answer within {timeout:?}")),
        };
        result.map_err(|cause| {
            metrics::origin_error("dns");
            OriginError::Unresolvable(cause)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_skip_dns_and_bad_names_are_errors_not_panics() {
        let r = shared();
        let t = Duration::from_secs(5);
        assert_eq!(
            r.lookup("127.0.0.1", t).await.unwrap(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        );
        assert_eq!(
            r.lookup("[::1]", t).await.unwrap(),
            vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]
        );
        // RFC 6761: `.invalid` never resolves, and `localhost` always does, without a query.
        assert!(matches!(
            r.lookup("does-not-exist.invalid", t).await,
            Err(OriginError::Unresolvable(_))
        ));
        let local = r.lookup("localhost", t).await.unwrap();
        assert!(local.iter().all(|ip| ip.is_loopback()), "{local:?}");
        for bad in ["a..b", &"x".repeat(300)] {
            assert!(r.lookup(bad, t).await.is_err(), "{bad:?} resolved");
        }
    }
}
