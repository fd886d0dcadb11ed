//! The edge side of HTML rewriting, kept apart from the request phases in `mod.rs`, which only
//! call in here: which responses are rewritten, what that does to their headers and cache key,
//! and per-client compression, and the client hints every page asks for. The rewriting itself
//! is `crate::rewrite`, which knows no Pingora.
//!
//! Pages are rewritten in the upstream filters, so the cache stores the rewritten page,
//! decoded (identity). Each client that accepts gzip then gets it gzipped by Pingora's
//! `ResponseCompression` module, on hits and misses alike: one cache entry per page whatever
//! the clients accept, at the price of compressing on every hit.
//!
//! Not brotli: Pingora 0.9's streaming brotli compressor only flushes at the end and never
//! writes the final (ISLAST) block, so strict decoders reject its output
//! (`pingora-core/src/protocols/http/compression/brotli.rs`, `Compressor::encode`).

use crate::config::Site;
use crate::metrics;
use crate::rewrite::{body::is_html, HtmlBody, RewriteError};
use crate::spec::CONNECTION_HINTS;
use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY,
};
use lol_html::errors::RewritingError;
use pingora::modules::http::compression::ResponseCompression;
use pingora::protocols::http::compression::Algorithm;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

/// gzip level for pages compressed per client: close to the best ratio per CPU.
const CLIENT_COMPRESSION_LEVEL: u32 = 5;

/// Ask browsers for the connection hints `slow-connection-quality` reads: browsers send `ECT`,
/// `RTT` and `Downlink` to a site only after one of its pages listed them in `Accept-CH`.
/// Added to HTML pages (200) whose origin set no `Accept-CH` of its own.
pub fn announce_client_hints(resp: &mut ResponseHeader) {
    let html = resp
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_html);
    if resp.status == 200 && html && resp.headers.get("accept-ch").is_none() {
        // A static, valid header value: inserting it cannot fail.
        let _ = resp.insert_header("accept-ch", CONNECTION_HINTS);
    }
}

/// Start rewriting this upstream response when the site asks for it and it is a 200 HTML page
/// we can decode, and make its headers describe the rewritten stream.
pub fn start(
    site: &Site,
    session: &Session,
    resp: &mut ResponseHeader,
    limit: u64,
) -> Option<HtmlBody> {
    let rewrite = site.html_rewrite.as_ref()?;
    if resp.status == 304 {
        // A revalidation: its headers are merged into the stored page's; when that is a
        // rewritten page they must describe it the same way.
        let stored = session.cache.maybe_cache_meta();
        if stored.is_some_and(|m| identity_html(m.headers())) {
            describe_rewritten(resp);
        }
        return None;
    }
    if resp.status != 200 {
        return None;
    }
    let header = |name| resp.headers.get(name).and_then(|v| v.to_str().ok());
    let page = session
        .req_header()
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str());
    let body = HtmlBody::start(
        rewrite.options.clone(),
        page,
        header(CONTENT_TYPE)?,
        header(CONTENT_ENCODING),
        limit,
    )?;
    // The rewritten stream has another length, no content coding and no byte ranges; its bytes
    // differ from the origin's, so a strong validator would lie (RFC 9110 8.8.1).
    resp.remove_header(&CONTENT_LENGTH);
    resp.remove_header(&CONTENT_ENCODING);
    resp.remove_header(&ACCEPT_RANGES);
    describe_rewritten(resp);
    Some(body)
}

/// Validators and `Vary` of a rewritten page: a weak ETag, no `Accept-Encoding` variance.
fn describe_rewritten(resp: &mut ResponseHeader) {
    if let Some(etag) = resp.headers.get(ETAG).cloned() {
        if etag.as_bytes().starts_with(b"\"") {
            let weak = [b"W/", etag.as_bytes()].concat();
            let _ = resp.insert_header(ETAG, weak);
        }
    }
    // Stored decoded, the page is the same whatever the client accepts: do not split the
    // cache entry on Accept-Encoding (per-client compression adds the Vary back).
    let vary: Vec<String> = resp
        .headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("accept-encoding"))
        .map(String::from)
        .collect();
    resp.remove_header(&VARY);
    if !vary.is_empty() {
        let _ = resp.insert_header(VARY, vary.join(", "));
    }
}

/// Rewrite one chunk of the upstream body in place. An error ends the response: a 502 when
/// the client has no header yet, a cut-off body otherwise (never a silently short page), and
/// the cache drops the unfinished entry. What the origin sent (a page past the size limit, such
/// as a decompression bomb, or a broken content coding) is the origin's fault: 502, not 500.
pub fn feed(html: &mut HtmlBody, body: &mut Option<Bytes>, end: bool) -> Result<()> {
    let chunk = body.as_deref().unwrap_or_default();
    let out = html.feed(chunk, end).map_err(|e| {
        let (reason, etype) = match e {
            RewriteError::TooLarge(_)
            | RewriteError::Rewrite(RewritingError::MemoryLimitExceeded(_)) => {
                ("too_large", ErrorType::HTTPStatus(502))
            }
            RewriteError::Decode(_) => ("decode", ErrorType::HTTPStatus(502)),
            RewriteError::Rewrite(_) => ("rewrite", ErrorType::InternalError),
        };
        metrics::HTML_REWRITE_ABORTS
            .with_label_values(&[reason])
            .inc();
        Error::because(etype, "rewriting HTML", e)
    })?;
    *body = (!out.is_empty()).then(|| Bytes::from(out));
    Ok(())
}

/// Gzip a rewritten (identity-coded HTML) page for a client that accepts gzip, hit or miss.
pub fn compress_for_client(site: &Site, session: &mut Session, resp: &mut ResponseHeader) {
    if site.html_rewrite.is_none() || resp.status != 200 || !identity_html(&resp.headers) {
        return;
    }
    let accepts_gzip = session
        .req_header()
        .headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        });
    if !accepts_gzip {
        // Still a response that depends on Accept-Encoding, for caches further down.
        let _ = resp.append_header(VARY, "Accept-Encoding");
        return;
    }
    // The module is registered disabled (level 0), so it skipped the request's Accept-Encoding;
    // hand it "gzip" now, while it is still before its response phase.
    let Ok(mut accept) = RequestHeader::build("GET", b"/", None) else {
        return;
    };
    let _ = accept.insert_header(ACCEPT_ENCODING, "gzip");
    if let Some(compression) = session
        .downstream_modules_ctx
        .get_mut::<ResponseCompression>()
    {
        compression.adjust_algorithm_level(Algorithm::Gzip, CLIENT_COMPRESSION_LEVEL);
        compression.request_filter(&accept);
    }
}

/// Identity-coded HTML: what a rewritten page looks like (stored or on its way out).
fn identity_html(headers: &http::HeaderMap) -> bool {
    headers.get(CONTENT_ENCODING).is_none()
        && headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_html)
}
