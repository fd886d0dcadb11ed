//! The short way for the commonest request of all: a plain `GET`/`HEAD` of an image variant the
//! memory tier holds, still fresh. It is answered from `request_filter`, before Pingora's cache
//! state machine runs: no cache lock, no meta decode (the stored header is decoded once per
//! entry and kept ready in the entry's memo), no hit handler. Everything else (conditional and
//! range requests, stale or disk entries, misses) goes the full way, which stays the reference:
//! this path must send what the full way would send for the same request.

use super::ctx::{EdgeCtx, Route};
use crate::cache::{StoredEntry, TieredStorage};
use pingora_cache::key::HashBinary;
use pingora_cache::CacheMeta;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::time::SystemTime;

/// The response header the full hit path would send for this entry, minus `Age`, and what
/// decides whether the entry may be sent as it is.
pub(super) struct Ready {
    header: ResponseHeader,
    variance: Option<HashBinary>,
    fresh_until: SystemTime,
    /// Where `Age` counts from (Pingora's `CacheMeta::epoch`).
    epoch: SystemTime,
}

impl Ready {
    /// `None` when the entry is not for this path: unreadable meta, or a status whose hit needs
    /// more than a header and the body (only `200` is served here).
    fn from_entry(entry: &StoredEntry) -> Option<Ready> {
        let meta = CacheMeta::deserialize(&entry.meta.0, &entry.meta.1).ok()?;
        let mut header = meta.response_header_copy();
        if header.status.as_u16() != 200 {
            return None;
        }
        header.set_version(http::Version::HTTP_11);
        super::for_client(&mut header, "imgate; hit", true).ok()?;
        // The full way serves ranges of stored entries and says so (its range filter).
        header
            .insert_header(http::header::ACCEPT_RANGES, "bytes")
            .ok()?;
        // The body is whole and its length known: say so, whatever the fill was framed with.
        header.remove_header(&http::header::TRANSFER_ENCODING);
        header
            .insert_header(http::header::CONTENT_LENGTH, entry.body.len())
            .ok()?;
        Some(Ready {
            header,
            variance: meta.variance(),
            fresh_until: meta.fresh_until(),
            epoch: meta.epoch(),
        })
    }

    /// The header to send at `now`: the ready one with `Age` (RFC 9111 §4), or `None` once the
    /// entry is stale (the full path then decides: revalidate, serve stale or refetch).
    fn header_at(&self, now: SystemTime) -> Option<Box<ResponseHeader>> {
        if self.fresh_until < now {
            return None;
        }
        let mut header = Box::new(self.header.clone());
        let age = now.duration_since(self.epoch).unwrap_or_default().as_secs();
        header.insert_header(http::header::AGE, age).ok()?;
        Some(header)
    }
}

/// Can the request take this path at all? Conditional and range requests need the full hit
/// path's 304 and 206 handling; other methods are not cached.
fn plain_get(req: &RequestHeader) -> bool {
    const NEEDS_FULL_PATH: [&str; 6] = [
        "range",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
    ];
    matches!(req.method, http::Method::GET | http::Method::HEAD)
        && !NEEDS_FULL_PATH.iter().any(|h| req.headers.contains_key(*h))
}

/// Answer the request from the memory tier if it can be answered here. `Ok(true)` means the
/// response was sent; `Ok(false)` means take the full path (nothing was written).
pub(super) async fn serve(
    storage: &TieredStorage,
    session: &mut Session,
    ctx: &EdgeCtx,
    hsts: Option<&str>,
) -> Result<bool> {
    let Route::Image {
        vary_token, slow, ..
    } = &ctx.route
    else {
        return Ok(false);
    };
    if !plain_get(session.req_header()) {
        return Ok(false);
    }
    let variance = super::image_variance(vary_token, *slow);
    // Where Pingora keeps a variant: the first one stored takes the primary slot (the key
    // without variance), later ones a slot of their own (the key with it).
    let primary = super::cache_key(session, ctx);
    let secondary = variance.map(|v| {
        let mut key = primary.clone();
        key.set_variance_key(v);
        key
    });
    // The first slot holding this variant decides, fresh or not, as on the full way.
    let found = std::iter::once(&primary).chain(&secondary).find_map(|key| {
        let entry = storage.memory_entry(key)?;
        let ready = entry
            .memo
            .get_or_init(|| Box::new(Ready::from_entry(&entry)))
            .downcast_ref::<Option<Ready>>()?;
        match ready {
            Some(r) if r.variance != variance => None,
            Some(r) => Some(
                r.header_at(SystemTime::now())
                    .map(|h| (h, entry.body.clone())),
            ),
            // Held but not for this path: the full way serves it.
            None => Some(None),
        }
    });
    let Some(Some((mut header, body))) = found else {
        return Ok(false);
    };
    if let Some(hsts) = hsts {
        // Per connection, not per entry: the same entry goes to plain-HTTP clients too.
        header.insert_header("strict-transport-security", hsts)?;
    }
    storage.count_memory_hit();
    let head_only = session.req_header().method == http::Method::HEAD;
    super::kept_date::keep(session, &header);
    session.write_response_header(header, head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn entry(status: u16, headers: &[(&str, &str)], fresh_for: Duration) -> StoredEntry {
        let now = SystemTime::now();
        let mut resp = ResponseHeader::build(status, None).unwrap();
        for (name, value) in headers {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        let meta = CacheMeta::new(now + fresh_for, now, 0, 0, resp);
        StoredEntry::new(meta.serialize().unwrap(), Bytes::from_static(b"0123456789"))
    }

    #[test]
    fn ready_header_is_what_the_full_hit_path_sends() {
        let e = entry(
            200,
            &[
                ("content-type", "image/jpeg"),
                ("transfer-encoding", "chunked"),
                ("server-timing", "decode;dur=3"),
                ("surrogate-control", "max-age=60"),
                ("cache-control", "max-age=60"),
            ],
            Duration::from_secs(60),
        );
        let ready = Ready::from_entry(&e).expect("a 200 is ready");
        let h = ready
            .header_at(SystemTime::now() + Duration::from_secs(5))
            .expect("fresh");
        let get = |n: &str| h.headers.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(get("content-length").as_deref(), Some("10"));
        assert_eq!(get("transfer-encoding"), None);
        assert_eq!(get("server-timing"), None);
        assert_eq!(get("surrogate-control"), None);
        assert_eq!(get("cache-status").as_deref(), Some("imgate; hit"));
        assert_eq!(get("accept-ranges").as_deref(), Some("bytes"));
        assert_eq!(get("cache-control").as_deref(), Some("max-age=60"));
        let age: u64 = get("age").unwrap().parse().unwrap();
        assert!((4..=6).contains(&age), "age {age}");
    }

    #[test]
    fn stale_entries_and_other_statuses_take_the_full_path() {
        let stale = entry(200, &[], Duration::ZERO);
        let ready = Ready::from_entry(&stale).unwrap();
        assert!(ready
            .header_at(SystemTime::now() + Duration::from_secs(2))
            .is_none());
        assert!(Ready::from_entry(&entry(404, &[], Duration::from_secs(60))).is_none());
        let garbage = StoredEntry::new((vec![1, 2, 3], vec![4]), Bytes::new());
        assert!(Ready::from_entry(&garbage).is_none());
    }

    #[test]
    fn conditional_and_range_requests_take_the_full_path() {
        let req = |method: &str, header: Option<(&str, &str)>| {
            let mut r = RequestHeader::build(method, b"/x", None).unwrap();
            if let Some((n, v)) = header {
                r.insert_header(n.to_string(), v).unwrap();
            }
            r
        };
        assert!(plain_get(&req("GET", None)));
        assert!(plain_get(&req("HEAD", Some(("accept", "image/avif")))));
        assert!(!plain_get(&req("POST", None)));
        for h in ["range", "if-none-match", "if-modified-since", "if-range"] {
            assert!(!plain_get(&req("GET", Some((h, "x")))), "{h}");
        }
    }
}
