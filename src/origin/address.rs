//! Which addresses an absolute source URL may make us connect to. Owns the list of special
//! ranges (loopback, private, link-local, documentation, IPv6 forms carrying an IPv4 address)
//! and the [`Reach`] a fetch is allowed. It must not resolve names or connect: the fetcher
//! checks the very address it is about to connect to, after resolving it itself, so a name
//! that resolves differently between check and connect (DNS rebinding) gains nothing.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// What one fetch may reach, beyond what its origin says. The default is a site's own
/// configured origin: any address, no dotfiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The addresses it may connect to: [`Reach::Any`] for the site's origin, public ones
    /// (plus `allowed_source_ranges`) for an absolute source URL.
    pub reach: Reach,
    /// Serve `file://` paths with a component starting with `.` (`/.env`, `/.git/config`).
    /// Default `false`: they answer 404 as if absent.
    pub dotfiles: bool,
}

impl Access {
    /// Tells accesses apart in the keys of shared downloads: a fetch must never join one made
    /// with more reach than its own.
    pub(super) fn tag(&self) -> String {
        format!(
            "{}{}",
            self.reach.tag(),
            if self.dotfiles { "+dot" } else { "" }
        )
    }
}

/// The addresses a fetch may connect to.
///
/// Default: [`Reach::Any`], for a site's own configured origin, which the operator chose and
/// which is often private. The trap: an absolute source URL fetched with `Any` lets any
/// client reach the edge's internal network through an allowed host name that resolves there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reach {
    #[default]
    Any,
    /// Globally routable addresses, plus the listed ranges (`allowed_source_ranges`).
    Public { also: Arc<[IpNet]> },
}

impl Reach {
    /// `Err(range name)` when `ip` may not be connected to under this reach.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        let Reach::Public { also } = self else {
            return Ok(());
        };
        let embedded = embedded_v4(ip).map(IpAddr::V4);
        if also
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
        {
            return Ok(());
        }
        match special_range(ip) {
            Some(name) => Err(name),
            None => Ok(()),
        }
    }

    /// A short stable text telling reaches apart (for keys of shared downloads).
    pub fn tag(&self) -> String {
        match self {
            Reach::Any => String::new(),
            Reach::Public { also } => {
                let ranges: Vec<String> = also.iter().map(IpNet::to_string).collect();
                format!("public[{}]", ranges.join(","))
            }
        }
    }
}

/// The name of the special-purpose range `ip` lies in, or `None` for a globally routable
/// unicast address. IPv6 addresses carrying an IPv4 address are judged by that address too.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

/// IPv4 special-purpose ranges (RFC 6890 and its updates) that are not globally reachable.
fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "this network (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared address space (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        // Includes the limited broadcast address 255.255.255.255.
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

/// IPv6: only global unicast (2000::/3) outside its special blocks; forms that carry an IPv4
/// address are judged by it.
fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        // `::`, `::1` and the deprecated IPv4-compatible form: none is a real peer.
        return Some(match ip {
            Ipv6Addr::UNSPECIFIED => "unspecified (::)",
            Ipv6Addr::LOCALHOST => "loopback (::1)",
            _ => "IPv4-compatible (::/96)",
        });
    }
    if let Some(v4) = embedded_v4(IpAddr::V6(ip)) {
        if let Some(name) = special_v4(v4) {
            return Some(name);
        }
        if let Some(client) = teredo_client(ip) {
            return special_v4(client);
        }
        return None;
    }
    if s[0] & 0xe000 != 0x2000 {
        // Unique local fc00::/7, link-local fe80::/10, multicast ff00::/8, discard 100::/64,
        // local-use NAT64 64:ff9b:1::/48 and everything unassigned.
        return Some(match s[0] {
            0xfc00..=0xfdff => "unique local (fc00::/7)",
            0xfe80..=0xfebf => "link-local (fe80::/10)",
            0xff00..=0xffff => "multicast (ff00::/8)",
            _ => "not global unicast (outside 2000::/3)",
        });
    }
    match (s[0], s[1], s[2]) {
        (0x2001, 0x0db8, _) => Some("documentation (2001:db8::/32)"),
        (0x2001, 0x0002, 0) => Some("benchmarking (2001:2::/48)"),
        (0x2001, 0x0010..=0x002f, _) => Some("ORCHID (2001:10::/28, 2001:20::/28)"),
        (0x3fff, 0x0000..=0x0fff, _) => Some("documentation (3fff::/20)"),
        _ => None,
    }
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible
/// `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16` and the Teredo server of `2001::/32`.
pub fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, _, _] if !matches!(v6, Ipv6Addr::UNSPECIFIED | Ipv6Addr::LOCALHOST) => {
            Some(tail)
        }
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        [0x2001, 0, ..] => Some(Ipv4Addr::new(o[4], o[5], o[6], o[7])),
        _ => None,
    }
}

/// The client address of a Teredo address (`2001::/32`): its last 32 bits, inverted.
fn teredo_client(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[0] == 0x2001 && s[1] == 0).then(|| {
        let o = ip.octets();
        Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn public() -> Reach {
        Reach::Public {
            also: Arc::from(Vec::new()),
        }
    }

    #[test]
    fn refuses_every_special_ipv4_range() {
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(public().check(ip(refused)).is_err(), "{refused} allowed");
        }
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            assert_eq!(public().check(ip(allowed)), Ok(()), "{allowed} refused");
        }
    }

    #[test]
    fn refuses_special_ipv6_ranges() {
        for refused in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "64:ff9b:1::1",
            "2001:db8::1",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "3fff::1",
            "1::1",
            "4000::1",
            "fec0::1",
        ] {
            assert!(public().check(ip(refused)).is_err(), "{refused} allowed");
        }
        for allowed in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "2001:4860::8888",
        ] {
            assert_eq!(public().check(ip(allowed)), Ok(()), "{allowed} refused");
        }
    }

    #[test]
    fn judges_ipv6_forms_by_the_ipv4_address_they_carry() {
        for refused in [
            // IPv4-mapped
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            // IPv4-compatible (deprecated): refused whatever it carries
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            // NAT64 well-known prefix
            "64:ff9b::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::c0a8:101",
            // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD
            "2002:7f00:1::1",
            "2002:a00:1::1",
            "2002:c0a8:101::1",
            // Teredo: private server, or private client (last 32 bits inverted)
            "2001:0:a00:1::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // client 127.0.0.1
            "2001:0:4136:e378:8000:63bf:f5ff:fffe", // client 10.0.0.1
        ] {
            assert!(public().check(ip(refused)).is_err(), "{refused} allowed");
        }
        for allowed in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert_eq!(public().check(ip(allowed)), Ok(()), "{allowed} refused");
        }
        // RFC 4380's example: server 65.54.227.120, client 192.0.2.45 (documentation).
        let example = ip("2001:0:4136:e378:8000:63bf:3fff:fdd2");
        assert_eq!(embedded_v4(example), Some(Ipv4Addr::new(65, 54, 227, 120)));
        assert!(public().check(example).is_err());
        // Teredo with a public server and a public client.
        let client = Ipv4Addr::new(8, 8, 4, 4).octets().map(|b| !b);
        let teredo = Ipv6Addr::new(
            0x2001,
            0,
            0x4136,
            0xe378,
            0x8000,
            0x63bf,
            u16::from_be_bytes([client[0], client[1]]),
            u16::from_be_bytes([client[2], client[3]]),
        );
        assert_eq!(public().check(IpAddr::V6(teredo)), Ok(()));
        assert_eq!(teredo_client(teredo), Some(Ipv4Addr::new(8, 8, 4, 4)));
    }

    #[test]
    fn listed_ranges_are_allowed_in_every_spelling() {
        let reach = Reach::Public {
            also: Arc::from(vec![
                "127.0.0.0/8".parse::<IpNet>().unwrap(),
                "fd00::/16".parse().unwrap(),
            ]),
        };
        for allowed in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "fd00::5",
        ] {
            assert_eq!(reach.check(ip(allowed)), Ok(()), "{allowed} refused");
        }
        for refused in ["10.0.0.1", "::1", "fd01::1", "::ffff:10.0.0.1"] {
            assert!(reach.check(ip(refused)).is_err(), "{refused} allowed");
        }
        // The site's own origin may be anywhere.
        assert_eq!(Reach::Any.check(ip("10.0.0.1")), Ok(()));
        assert_ne!(reach.tag(), public().tag());
        assert_eq!(Reach::Any.tag(), "");
    }
}
