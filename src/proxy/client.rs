//! What the edge takes from a client's request and what of it goes on: the `Host` rule,
//! `Content-Length` framing, the forwarding fields (`crate::forwarded` decides them), the
//! variant key of the headers a response varies on, and the access log record. The phases in
//! `proxy/mod.rs` call these; nothing here decides routing or caching.

use super::ctx::{EdgeCtx, Route};
use crate::access_log::{AccessLog, Record};
use crate::forwarded::{self, Forwarding, TrustedProxies, CLIENT_FORWARDING_FIELDS};
use http::header::{CONTENT_LENGTH, HOST};
use pingora_error::Result;
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use std::net::IpAddr;
use std::time::SystemTime;

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host` gets 400 (it must not fall to a `*`
/// site). HTTP/1.0 may omit it; HTTP/2 carries `:authority` in the URI instead.
pub(super) fn lacks_host(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11 && !req.headers.contains_key(HOST)
}

/// The value a request's field has for a variant key: every line, combined as RFC 9110 §5.3
/// says (joined with ", " in order). Empty when absent.
/// The trap: keying only the first line lets a client whose second line the origin honours
/// store its variant under the key of a one-line client (cache poisoning).
pub(super) fn varied_value(req: &RequestHeader, name: &str) -> Vec<u8> {
    forwarded::combined_field(&req.headers, name).unwrap_or_default()
}

/// `Accept` for format negotiation, all lines of it.
pub(super) fn accept(req: &RequestHeader) -> String {
    String::from_utf8_lossy(&varied_value(req, "accept")).into_owned()
}

/// The TCP peer's address (`None` on a Unix socket listener).
pub(super) fn peer(session: &Session) -> Option<IpAddr> {
    session.client_addr()?.as_inet().map(|a| a.ip())
}

/// Edit the request going upstream: the client's forwarding fields removed everywhere; for
/// the origin (`to_origin`) the edge's own `X-Forwarded-For/-Proto/-Host` set from the
/// client's request `downstream` as received; and `Content-Length` sent as one value.
pub(super) fn forward(
    downstream: &RequestHeader,
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
    to_origin: bool,
    up: &mut RequestHeader,
) -> Result<()> {
    for name in CLIENT_FORWARDING_FIELDS {
        up.remove_header(*name);
    }
    single_content_length(up)?;
    if !to_origin {
        return Ok(());
    }
    let f = Forwarding::for_request(peer, &downstream.headers, trusted);
    if let Some(xff) = f.x_forwarded_for {
        up.insert_header("x-forwarded-for", xff)?;
    }
    up.insert_header("x-forwarded-proto", f.x_forwarded_proto)?;
    if let Some(host) = f.x_forwarded_host {
        up.insert_header("x-forwarded-host", host)?;
    }
    Ok(())
}

/// Pingora already answers 400 to conflicting or unparseable `Content-Length` values (RFC 9112
/// §6.3) but forwards identical repeats (`3, 3`, or two lines) as received, which an origin
/// may read differently: send the one value.
fn single_content_length(up: &mut RequestHeader) -> Result<()> {
    let mut values = up.headers.get_all(CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    if values.next().is_none() && !first.as_bytes().contains(&b',') {
        return Ok(());
    }
    let one = String::from_utf8_lossy(first.as_bytes())
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    up.insert_header(CONTENT_LENGTH, one)?;
    Ok(())
}

/// Hand one line for this request to the access log (never waits for it).
pub(super) fn log_request(
    log: &AccessLog,
    session: &Session,
    ctx: &EdgeCtx,
    trusted: &TrustedProxies,
    status: u16,
    cache: &str,
) {
    let req = session.req_header();
    let text = |name: &str| {
        req.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
    };
    let host = text("host");
    let referer = text("referer");
    let user_agent = text("user-agent");
    let elapsed = ctx.started.elapsed();
    log.record(&Record {
        time: SystemTime::now()
            .checked_sub(elapsed)
            .unwrap_or_else(SystemTime::now),
        client: forwarded::client_address(peer(session), &req.headers, trusted),
        method: req.method.as_str(),
        host: host.as_deref().or_else(|| req.uri.host()).unwrap_or("-"),
        path: req.uri.path_and_query().map_or("/", |p| p.as_str()),
        protocol: version(req.version),
        status,
        bytes: session.body_bytes_sent() as u64,
        duration: elapsed,
        cache,
        route: route_label(&ctx.route),
        transform: ctx.transform_timings,
        referer: referer.as_deref(),
        user_agent: user_agent.as_deref(),
    });
}

/// The route as metrics and the access log name it.
pub(super) fn route_label(route: &Route) -> &'static str {
    match route {
        Route::Image { .. } => "image",
        Route::Passthrough => "passthrough",
        Route::Unrouted => "error",
    }
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(lines: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/x", None).unwrap();
        for (n, v) in lines {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn repeated_content_length_goes_up_as_one_value() {
        for lines in [
            &[("content-length", "3, 3")][..],
            &[("content-length", "3"), ("content-length", "3")][..],
        ] {
            let mut r = req(lines);
            single_content_length(&mut r).unwrap();
            let all: Vec<_> = r.headers.get_all(CONTENT_LENGTH).iter().collect();
            assert_eq!(all, ["3"], "{lines:?}");
        }
        let mut r = req(&[("content-length", "42")]);
        single_content_length(&mut r).unwrap();
        assert_eq!(r.headers.get(CONTENT_LENGTH).unwrap(), "42");
    }

    #[test]
    fn http11_needs_host() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(lacks_host(&r));
        r.set_version(http::Version::HTTP_10);
        assert!(!lacks_host(&r));
        r.set_version(http::Version::HTTP_11);
        r.insert_header("host", "a").unwrap();
        assert!(!lacks_host(&r));
    }

    #[test]
    fn client_forwarding_fields_never_go_up() {
        let down = req(&[
            ("host", "img.example"),
            ("x-forwarded-host", "evil.example"),
            ("x-original-url", "/admin"),
            ("forwarded", "for=1.2.3.4;host=evil"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        let mut up = down.clone();
        let peer = Some("9.9.9.9".parse().unwrap());
        forward(&down, peer, &TrustedProxies::default(), true, &mut up).unwrap();
        let get = |n: &str| up.headers.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(get("x-forwarded-host").as_deref(), Some("img.example"));
        assert_eq!(get("x-forwarded-for").as_deref(), Some("9.9.9.9"));
        assert_eq!(get("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(get("x-original-url"), None);
        assert_eq!(get("forwarded"), None);
        let mut up = down.clone();
        forward(&down, peer, &TrustedProxies::default(), false, &mut up).unwrap();
        assert_eq!(up.headers.get("x-forwarded-host"), None);
        assert_eq!(up.headers.get("x-forwarded-for"), None);
    }
}
