//! HTTP caching rules (RFC 9111, RFC 9213 and Edge Architecture's `Surrogate-Control`) that the
//! edge applies on top of pingora-cache, which on its own ignores `Age` and `Date` when working
//! out freshness, never merges a `304` fully and stores hop-by-hop headers. Pure functions over
//! response headers: the proxy phases decide *when* to call them, this module decides *what*
//! the standard says.

use http::header::{HeaderName, AGE, CONNECTION, DATE, EXPIRES};
use pingora_cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora_cache::{CacheMeta, NoCacheReason, RespCacheable};
use pingora_http::ResponseHeader;
use std::time::{Duration, SystemTime};

/// The device token imgate answers to in `Surrogate-Control` (`max-age=60;imgate`) and
/// announces in `Surrogate-Capability`.
pub const SURROGATE_TOKEN: &str = "imgate";
/// Value of the `Surrogate-Capability` request header sent upstream.
pub const SURROGATE_CAPABILITY: &str = "imgate=\"Surrogate/1.0\"";

/// Delta-seconds above this are clamped (RFC 9111 §1.2.2).
const DELTA_MAX: u64 = 2_147_483_648;

/// Statuses whose semantics imgate understands, for `must-understand` (RFC 9111 §5.2.2.3).
const UNDERSTOOD: &[u16] = &[
    200, 203, 204, 206, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// Hop-by-hop fields (RFC 9110 §7.6.1) never stored nor forwarded, besides any that
/// `Connection` names. `Transfer-Encoding` is left to Pingora's framing.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authentication-info",
];

/// Fields a `304` must not change in the stored response (RFC 9111 §3.2 and the framing
/// fields, which describe the stored body, not the empty 304).
const NOT_UPDATED_BY_304: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-md5",
    "content-range",
    "transfer-encoding",
    "etag",
];

/// The caching directives that apply to imgate, whichever field they came from.
#[derive(Debug, Default, PartialEq)]
struct Directives {
    no_store: bool,
    private: bool,
    no_cache: bool,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never serve stale.
    no_stale: bool,
    must_understand: bool,
    /// `public`, `s-maxage` or `must-revalidate`: may store answers to authorized requests.
    allows_authorized: bool,
    lifetime: Option<u64>,
    stale_while_revalidate: Option<u64>,
    stale_if_error: Option<u64>,
}

impl Directives {
    fn from_cache_control(cc: &CacheControl) -> Directives {
        let secs = |v: pingora_error::Result<Option<u32>>| v.ok().flatten().map(u64::from);
        let s_maxage = secs(cc.s_maxage());
        Directives {
            no_store: cc.no_store(),
            private: cc.private(),
            no_cache: cc.no_cache(),
            no_stale: cc.must_revalidate() || cc.proxy_revalidate() || s_maxage.is_some(),
            must_understand: cc.has_key("must-understand"),
            allows_authorized: cc.allow_caching_authorized_req(),
            lifetime: s_maxage.or_else(|| secs(cc.max_age())),
            stale_while_revalidate: secs(cc.stale_while_revalidate()),
            stale_if_error: secs(cc.stale_if_error()),
        }
    }

    /// The directives of a parsed `CDN-Cache-Control`; `None` when one that imgate uses has a
    /// value of the wrong type (see [`cdn_cache_control`]). Unknown directives are skipped.
    /// A qualified `private="..."` or `no-cache="..."` counts as the unqualified one.
    fn from_dictionary(dictionary: &sfv::Dictionary) -> Option<Directives> {
        use sfv::{BareItem, ListEntry};
        let mut d = Directives::default();
        let mut max_age = None;
        let mut s_maxage = None;
        for (name, entry) in dictionary {
            let value = match entry {
                ListEntry::Item(item) => Some(&item.bare_item),
                ListEntry::InnerList(_) => None,
            };
            let flag = || match value {
                Some(BareItem::Boolean(b)) => Some(*b),
                _ => None,
            };
            let qualified_flag = || match value {
                Some(BareItem::String(_)) => Some(true),
                _ => flag(),
            };
            let seconds = || match value {
                Some(BareItem::Integer(n)) if *n >= 0 => Some((*n as u64).min(DELTA_MAX)),
                _ => None,
            };
            match name.as_str() {
                "no-store" => d.no_store = flag()?,
                "private" => d.private = qualified_flag()?,
                "no-cache" => d.no_cache = qualified_flag()?,
                "must-revalidate" | "proxy-revalidate" => {
                    let on = flag()?;
                    d.no_stale |= on;
                    d.allows_authorized |= on && name == "must-revalidate";
                }
                "must-understand" => d.must_understand = flag()?,
                "public" => d.allows_authorized |= flag()?,
                "max-age" => max_age = Some(seconds()?),
                "s-maxage" => s_maxage = Some(seconds()?),
                "stale-while-revalidate" => d.stale_while_revalidate = Some(seconds()?),
                "stale-if-error" => d.stale_if_error = Some(seconds()?),
                _ => {}
            }
        }
        if s_maxage.is_some() {
            d.no_stale = true;
            d.allows_authorized = true;
        }
        d.lifetime = s_maxage.or(max_age);
        Some(d)
    }

    /// `Surrogate-Control`: `directive[=value][;target]`, comma separated. Untargeted
    /// directives apply to every surrogate; targeted ones only to [`SURROGATE_TOKEN`].
    fn from_surrogate_control(values: &[&str]) -> Directives {
        let mut d = Directives::default();
        for item in values.iter().flat_map(|v| v.split(',')) {
            let (directive, target) = match item.split_once(';') {
                Some((d, t)) => (d, Some(t.trim())),
                None => (item, None),
            };
            if target.is_some_and(|t| !t.eq_ignore_ascii_case(SURROGATE_TOKEN)) {
                continue;
            }
            let directive = directive.trim();
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (directive, None),
            };
            let seconds = value.and_then(parse_delta_seconds);
            match name.to_ascii_lowercase().as_str() {
                "no-store" => d.no_store = true,
                "max-age" => d.lifetime = seconds.or(d.lifetime),
                "stale-while-revalidate" => d.stale_while_revalidate = seconds,
                "stale-if-error" => d.stale_if_error = seconds,
                "must-revalidate" => d.no_stale = true,
                _ => {}
            }
        }
        d
    }
}

/// `1*DIGIT`, clamped; anything else (spaces, signs, fractions) is invalid.
fn parse_delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(DELTA_MAX).min(DELTA_MAX))
}

fn header_values<'a>(resp: &'a ResponseHeader, name: &str) -> Vec<&'a str> {
    resp.headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The directives in force: a targeted field (`CDN-Cache-Control`, then `Surrogate-Control`)
/// replaces `Cache-Control` entirely (RFC 9213 §2.1), which then only serves the next cache.
fn directives(resp: &ResponseHeader) -> Option<Directives> {
    if let Some(d) = cdn_cache_control(resp) {
        return Some(d);
    }
    let surrogate = header_values(resp, "surrogate-control");
    if !surrogate.is_empty() {
        return Some(Directives::from_surrogate_control(&surrogate));
    }
    CacheControl::from_resp_headers(resp).map(|cc| Directives::from_cache_control(&cc))
}

fn http_date(resp: &ResponseHeader, name: HeaderName) -> Option<Result<SystemTime, ()>> {
    let values = header_values(resp, name.as_str());
    match values.as_slice() {
        [] => None,
        [one] => Some(httpdate::parse_http_date(one).map_err(|_| ())),
        _ => Some(Err(())),
    }
}

/// The `Age` the response arrived with (RFC 9111 §5.1): the first member of the field value,
/// however the members are spread over lines (`Age: 0, 7200` and `Age: 0` + `Age: 7200` are
/// both 0). `None` when absent or invalid (anything but a plain non-negative integer: `-1`,
/// `1.5`, `abc`, `10;a=b`): an invalid `Age` is ignored, so the response is as fresh as its
/// other fields say. The trap: treating it as "stale on arrival" (or taking the largest
/// member) sends every such response back to the origin.
fn received_age(resp: &ResponseHeader) -> Option<u64> {
    let mut members = resp
        .headers
        .get_all(AGE)
        .iter()
        // A value that is not even text makes the first member unreadable: the field is ignored.
        .map(|v| v.to_str().unwrap_or("invalid"))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // Empty list members do not count (RFC 9110 §5.6.1).
        .filter(|m| !m.is_empty());
    parse_delta_seconds(members.next()?)
}

/// `CDN-Cache-Control` (RFC 9213) is a Dictionary structured field (RFC 8941). Its lines are
/// combined and parsed as one; a field that does not parse, is empty, or gives a directive imgate
/// uses a value of the wrong type (`max-age="60"`, `max-age=1.5`, `max-age=-1`, `no-store=1`)
/// is ignored as a whole, as if absent, so `Cache-Control` applies (RFC 9213 §2.1). Keys are
/// lowercase by definition: `MaX-aGe=60` makes the field invalid. The trap: `Cache-Control`'s
/// lenient parser accepts all of these, and would let a malformed field stretch freshness.
fn cdn_cache_control(resp: &ResponseHeader) -> Option<Directives> {
    let mut field = Vec::new();
    for (i, line) in resp.headers.get_all("cdn-cache-control").iter().enumerate() {
        if i > 0 {
            field.extend_from_slice(b", ");
        }
        field.extend_from_slice(line.as_bytes());
    }
    let dictionary = sfv::Parser::parse_dictionary(&field).ok()?;
    if dictionary.is_empty() {
        return None;
    }
    Directives::from_dictionary(&dictionary)
}

/// What the edge does with a response it just received from upstream.
pub struct Policy {
    /// Used for `404` answers that carry no explicit freshness (negative caching); zero turns
    /// it off.
    pub negative_ttl: Duration,
}

impl Policy {
    /// Is `resp` storable, and with which freshness? `response_time` is when it arrived.
    pub fn cacheability(
        &self,
        resp: &ResponseHeader,
        authorized: bool,
        response_time: SystemTime,
    ) -> RespCacheable {
        let status = resp.status.as_u16();
        let d = directives(resp).unwrap_or_default();
        if d.must_understand {
            // The origin lets `must-understand` override `no-store` only for statuses we know.
            if !UNDERSTOOD.contains(&status) {
                return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
            }
        } else if d.no_store {
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        }
        if d.private || (authorized && !d.allows_authorized) {
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        }

        // RFC 9111 §4.2.3: how old the response already was when it reached us.
        let date = http_date(resp, DATE).and_then(Result::ok);
        let apparent_age = date
            .and_then(|d| response_time.duration_since(d).ok())
            .unwrap_or_default();
        let age = received_age(resp).unwrap_or(0);
        let initial_age = apparent_age.max(Duration::from_secs(age));
        let created = response_time
            .checked_sub(initial_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);

        // RFC 9111 §4.2.1: explicit lifetime, else Expires relative to Date.
        let lifetime = match (d.lifetime, http_date(resp, EXPIRES)) {
            (Some(secs), _) => Some(Duration::from_secs(secs)),
            (None, Some(Ok(expires))) => Some(
                expires
                    .duration_since(date.unwrap_or(response_time))
                    .unwrap_or_default(),
            ),
            // An invalid Expires means "already expired".
            (None, Some(Err(()))) => Some(Duration::ZERO),
            (None, None) if status == 404 && !self.negative_ttl.is_zero() => {
                Some(self.negative_ttl)
            }
            (None, None) => None,
        };
        let Some(lifetime) = lifetime else {
            // No explicit freshness: not stored (no heuristic freshness by design).
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        };
        let fresh_until = if d.no_cache {
            // Stored, but has to be revalidated before every use.
            created
        } else {
            created + lifetime
        };
        let (swr, sie) = if d.no_stale || d.no_cache {
            (0, 0)
        } else {
            let clamp = |v: Option<u64>| v.unwrap_or(0).min(u32::MAX as u64) as u32;
            (clamp(d.stale_while_revalidate), clamp(d.stale_if_error))
        };
        let mut stored = resp.clone();
        if let Some(cc) = CacheControl::from_resp_headers(resp) {
            cc.strip_private_headers(&mut stored);
        }
        // `Age` is recomputed from `created` on every hit.
        stored.remove_header(&AGE);
        RespCacheable::Cacheable(CacheMeta::new(fresh_until, created, swr, sie, stored))
    }
}

/// Remove hop-by-hop fields and every field `Connection` names: they describe one connection,
/// never the stored or forwarded message.
pub fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    let listed: Vec<String> = header_values(resp, CONNECTION.as_str())
        .iter()
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let upgrade = resp.status.as_u16() == 101;
    for name in HOP_BY_HOP.iter().copied() {
        if !(upgrade && (name == "upgrade" || name == "connection")) {
            resp.remove_header(name);
        }
    }
    for name in listed {
        if !(upgrade && name == "upgrade") {
            resp.remove_header(name.as_str());
        }
    }
}

/// The stored response updated by a `304` (RFC 9111 §4.3.4): every field the 304 carries
/// replaces the stored one, except the fields that describe the stored body.
pub fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> ResponseHeader {
    let mut merged = stored.clone();
    let names: Vec<HeaderName> = not_modified.headers.keys().cloned().collect();
    for name in names {
        if NOT_UPDATED_BY_304.contains(&name.as_str()) || HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        merged.remove_header(&name);
        for value in not_modified.headers.get_all(&name) {
            // Cannot fail: the name and value were valid in the 304.
            let _ = merged.append_header(name.clone(), value.clone());
        }
    }
    merged
}

/// Is this request method one that invalidates stored responses when it succeeds
/// (RFC 9111 §4.4)? Everything but the safe methods.
pub fn invalidates(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    )
}

#[cfg(test)]
mod tests;
