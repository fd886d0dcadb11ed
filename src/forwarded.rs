//! Who the client is, and what the edge tells an origin about it: trusted proxy ranges (CIDR),
//! the client address behind them, and the `X-Forwarded-*` fields the edge sends. Pure functions
//! over `http` headers and addresses: no Pingora, no I/O.
//!
//! By default nothing a client says about forwarding is believed or passed on: the fields in
//! [`CLIENT_FORWARDING_FIELDS`] are unkeyed (not in the cache key), so an origin that reflects
//! one of them into a cacheable page would let one client poison the page for everybody.

use http::header::{HeaderMap, HOST};
use std::net::IpAddr;

/// Request fields an origin may act on that describe the client, the URL or the scheme, and
/// that the edge never keys. Stripped from every request going upstream; the edge then sets
/// `X-Forwarded-For`, `-Proto` and `-Host` itself ([`Forwarding`]).
pub const CLIENT_FORWARDING_FIELDS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-original-url",
    "x-original-uri",
    "x-original-host",
    "x-rewrite-url",
    "x-host",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-url-scheme",
    "front-end-https",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// One address range, `10.0.0.0/8` or `::1/128` (a bare address is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `addr/prefix` or `addr`. Host bits set below the prefix (`10.0.0.1/8`) are refused:
    /// they are nearly always a typo for a narrower range.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an address range like 10.0.0.0/8"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': prefix length must be 0 to {max}"))?,
        };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != bits(network) {
            return Err(format!("'{s}' has host bits set below /{prefix}"));
        }
        Ok(cidr)
    }

    /// Is `ip` in the range? IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as a dual-stack
    /// listener reports IPv4 peers) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.masked(self.network)
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let host_bits = width - u32::from(self.prefix);
        if host_bits >= 128 {
            return 0;
        }
        bits(ip) >> host_bits << host_bits
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The proxies (load balancers, another CDN) whose forwarding fields the edge believes.
/// Default: none, so every peer is the client and its forwarding fields are dropped.
/// The trap: a range that also holds untrusted machines lets them claim any client address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn parse<S: AsRef<str>>(ranges: &[S]) -> Result<TrustedProxies, String> {
        ranges
            .iter()
            .map(|r| Cidr::parse(r.as_ref()))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// All lines of a field joined as RFC 9110 §5.3 combines them (", " in order); `None` when the
/// field is absent. Lines that are not visible ASCII are kept byte for byte.
pub fn combined_field(
    headers: &HeaderMap,
    name: impl http::header::AsHeaderName,
) -> Option<Vec<u8>> {
    let mut lines = headers.get_all(name).iter();
    let mut value = lines.next()?.as_bytes().to_vec();
    for line in lines {
        value.extend_from_slice(b", ");
        value.extend_from_slice(line.as_bytes());
    }
    Some(value)
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` hop that is not itself trusted (each proxy appends the address
/// it saw, so hops left of the first untrusted one could be anything the client wrote). A hop
/// that is not an address ends the walk at the last good one.
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let mut client = peer?.to_canonical();
    if !trusted.contains(client) {
        return Some(client);
    }
    let Some(xff) = combined_field(headers, "x-forwarded-for") else {
        return Some(client);
    };
    for hop in String::from_utf8_lossy(&xff).rsplit(',') {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    Some(client)
}

/// `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` or `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The forwarding fields the edge sends upstream in place of the client's.
#[derive(Debug, PartialEq, Eq)]
pub struct Forwarding {
    /// The client's `X-Forwarded-For` plus the peer when the peer is trusted; else the peer.
    /// `None` without a peer address (a Unix socket listener).
    pub x_forwarded_for: Option<String>,
    /// The trusted peer's `X-Forwarded-Proto`, else `http` (the edge listens in clear).
    pub x_forwarded_proto: String,
    /// The trusted peer's `X-Forwarded-Host`, else the request's `Host`.
    pub x_forwarded_host: Option<String>,
}

impl Forwarding {
    /// What to send for a request from `peer` carrying `headers` (as the client sent them).
    pub fn for_request(
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        trusted: &TrustedProxies,
    ) -> Forwarding {
        let peer = peer.map(|p| p.to_canonical());
        let from_trusted = peer.is_some_and(|p| trusted.contains(p));
        let client_value = |name: &str| {
            combined_field(headers, name)
                .filter(|_| from_trusted)
                .and_then(|v| String::from_utf8(v).ok())
                .filter(|v| !v.trim().is_empty())
        };
        let x_forwarded_for = peer.map(|p| match client_value("x-forwarded-for") {
            Some(chain) => format!("{chain}, {p}"),
            None => p.to_string(),
        });
        let x_forwarded_proto = client_value("x-forwarded-proto").unwrap_or_else(|| "http".into());
        let x_forwarded_host = client_value("x-forwarded-host").or_else(|| {
            headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        });
        Forwarding {
            x_forwarded_for,
            x_forwarded_proto,
            x_forwarded_host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(*n, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_matches() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(!c.contains(ip("::1")));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0.0/x",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        let none = TrustedProxies::default();
        assert_eq!(
            client_address(Some(ip("9.9.9.9")), &h, &none),
            Some(ip("9.9.9.9"))
        );
    }

    #[test]
    fn trusted_peer_hands_over_to_the_rightmost_untrusted_hop() {
        let trusted = TrustedProxies::parse(&["127.0.0.1/32", "10.0.0.0/8"]).unwrap();
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.7"),
        ]);
        let peer = Some(ip("127.0.0.1"));
        assert_eq!(client_address(peer, &h, &trusted), Some(ip("1.2.3.4")));
        // Only trusted hops: the left-most is as far as the chain goes.
        let h = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(client_address(peer, &h, &trusted), Some(ip("10.0.0.1")));
        // Garbage stops the walk at the last good hop.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, nonsense, 10.0.0.2")]);
        assert_eq!(client_address(peer, &h, &trusted), Some(ip("10.0.0.2")));
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(client_address(peer, &h, &trusted), Some(ip("2001:db8::1")));
        assert_eq!(client_address(None, &h, &trusted), None);
    }

    #[test]
    fn forwarding_fields_believe_only_trusted_peers() {
        let h = headers(&[
            ("host", "img.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ]);
        let none = TrustedProxies::default();
        assert_eq!(
            Forwarding::for_request(Some(ip("9.9.9.9")), &h, &none),
            Forwarding {
                x_forwarded_for: Some("9.9.9.9".into()),
                x_forwarded_proto: "http".into(),
                x_forwarded_host: Some("img.example".into()),
            }
        );
        let trusted = TrustedProxies::parse(&["9.9.9.9"]).unwrap();
        assert_eq!(
            Forwarding::for_request(Some(ip("9.9.9.9")), &h, &trusted),
            Forwarding {
                x_forwarded_for: Some("1.2.3.4, 9.9.9.9".into()),
                x_forwarded_proto: "https".into(),
                x_forwarded_host: Some("evil.example".into()),
            }
        );
    }

    #[test]
    fn combined_field_joins_every_line_in_order() {
        let h = headers(&[("accept", "image/webp"), ("accept", "image/avif;q=0.9")]);
        assert_eq!(
            combined_field(&h, "accept").unwrap(),
            b"image/webp, image/avif;q=0.9".to_vec()
        );
        assert_eq!(combined_field(&h, "vary"), None);
    }
}
