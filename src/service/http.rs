//! `TransformService`: a transform request's HTTP side. Routes the path, negotiates the format,
//! runs the job through the `Transformer` and builds the reply with its cache headers (ETag,
//! `Cache-Control`, `Vary`, conditional requests); also the passthrough of a `file://` origin's
//! other paths. Knows HTTP requests and responses, not Pingora.

use super::transformer::{Transformed, Transformer};
use crate::config::{Config, Origin, Site};
use crate::dialect;
use crate::error::{Blame, ImgateError};
use crate::metrics;
use crate::origin::Fetched;
use crate::route::Source;
use crate::spec::{Accepts, ConnectionHints, FormatRequest, TransformSpec, CONNECTION_HINTS};
use blake2::{Blake2b, Digest};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Internal request header by which the edge tells the service which format it negotiated for
/// `format=auto` (`avif`, `webp` or `fallback`). The edge varies its cache on the same token, so
/// the two can never disagree.
pub const NEGOTIATED_FORMAT_HEADER: &str = "x-imgate-format";
/// Set by the edge (`slow`) when the client's hints make `slow-connection-quality` apply.
pub const SLOW_CONNECTION_HEADER: &str = "x-imgate-connection";

/// Internal request header by which the edge tells the service when the last admin purge
/// began (milliseconds since the Unix epoch): an original fetched before then, still held for
/// other variants, must not be reused for this request (`OriginFetcher::fetch`).
pub const PURGED_AT_HEADER: &str = "x-imgate-purged-at";

/// A complete answer: status, headers and body. The HTTP layer writes it out as is.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// An error answer: the public message only, never cached.
    pub fn error(e: &ImgateError) -> Reply {
        let mut headers = vec![
            ("content-type", "text/plain; charset=utf-8".to_string()),
            ("cache-control", "no-store".to_string()),
        ];
        if let Some(secs) = e.retry_after {
            headers.push(("retry-after", secs.to_string()));
        }
        Reply {
            status: e.status,
            headers,
            body: format!("{}\n", e.public).into_bytes(),
        }
    }
}

/// What the service needs to answer one request, taken from the HTTP request by the app layer.
#[derive(Debug, Clone)]
pub struct TransformRequest<'a> {
    pub host: &'a str,
    pub path: &'a str,
    /// The edge's negotiated token, when called by the edge.
    pub negotiated: Option<&'a str>,
    /// The edge's [`SLOW_CONNECTION_HEADER`].
    pub connection: Option<&'a str>,
    /// The client's own hints, read when running alone.
    pub hints: ConnectionHints<'a>,
    /// The client's `Accept`, used when running alone.
    pub accept: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    /// When the edge's last admin purge began (`PURGED_AT_HEADER`): originals fetched before
    /// then are not reused.
    pub purged_at: Option<SystemTime>,
}

pub struct TransformService {
    config: Arc<Config>,
    transformer: Transformer,
    facing: Facing,
}

/// Who sends the service its requests, and so what it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facing {
    /// The edge, which checked signatures and the site's URL rules and asks in the canonical
    /// form (`dialect::canonical_path`).
    Edge,
    /// Clients directly (`--role transform`): every dialect, signature and rule is checked
    /// here, as the edge would.
    Clients,
}

impl TransformService {
    pub fn new(config: Arc<Config>, facing: Facing) -> TransformService {
        TransformService {
            transformer: Transformer::with_config(config.clone()),
            config,
            facing,
        }
    }

    pub async fn handle(&self, req: &TransformRequest<'_>) -> Reply {
        let Some((_, site)) = self.config.site_for(req.host) else {
            return Reply::error(&ImgateError::new(
                404,
                "unknown site",
                format!("no site for host {}", req.host),
                Blame::Downstream,
            ));
        };
        let resolved = match self.facing {
            Facing::Clients => dialect::resolve(&site.urls, req.path),
            Facing::Edge => dialect::read_canonical(req.path),
        };
        if let (Facing::Clients, Some(read)) = (self.facing, &resolved) {
            // Facing clients, the service counts what the edge would.
            metrics::observe_url(read);
        }
        let result = match resolved {
            Some(Ok(r)) => self.transform(site, r, req).await,
            Some(Err(refusal)) => Err(refusal.into()),
            None => self.serve_file(site, req).await,
        };
        result.unwrap_or_else(|e| {
            log::info!("{} {}: {}", req.host, req.path, e);
            let mut reply = Reply::error(&e);
            if e.status == 404 && !site.ttl.negative.is_zero() {
                // Negative caching: a missing original is asked for again soon, not at once.
                reply.headers.retain(|(name, _)| *name != "cache-control");
                let ttl = site.ttl.negative.as_secs();
                reply
                    .headers
                    .push(("cache-control", format!("public, max-age={ttl}")));
            }
            reply
        })
    }

    async fn transform(
        &self,
        site: &Site,
        resolved: dialect::Resolved,
        req: &TransformRequest<'_>,
    ) -> Result<Reply, ImgateError> {
        let dialect::Resolved {
            spec,
            source,
            modern,
            ..
        } = resolved;
        let accepts = negotiated_accepts(&spec, req).within(modern);
        let slow = match self.facing {
            Facing::Edge => req.connection == Some("slow"),
            Facing::Clients => req.hints.slow(),
        };
        let mut spec = spec;
        if let (true, Some(q)) = (slow, spec.slow_quality) {
            spec.quality = Some(q);
        }
        let onerror_redirect = spec.onerror_redirect;
        match self
            .transformer
            .render(site, spec, &source, accepts, req.purged_at)
            .await
        {
            Ok(made) => Ok(self.image_reply(site, made, req.if_none_match)),
            Err(e) if onerror_redirect && redirects_on(&e) => {
                log::info!("{} {}: {e}; onerror=redirect", req.host, req.path);
                Ok(redirect_to_original(site, &source))
            }
            Err(e) => Err(e),
        }
    }

    fn image_reply(&self, site: &Site, made: Transformed, if_none_match: Option<&str>) -> Reply {
        let Transformed {
            spec,
            image: out,
            original,
            fetch_time,
        } = made;
        let etag = strong_etag(&out.bytes);
        let mut headers = Vec::with_capacity(10);
        headers.push(("content-type", out.format.mime().to_string()));
        headers.push(("cache-control", cache_control(site, &original)));
        headers.push(("etag", etag.clone()));
        let last_modified = original.last_modified.unwrap_or_else(SystemTime::now);
        headers.push(("last-modified", httpdate::fmt_http_date(last_modified)));
        let mut vary = Vec::new();
        if spec.format == FormatRequest::Auto {
            vary.push("Accept");
        }
        if spec.slow_quality.is_some() {
            // The quality depends on these; browsers send the network ones when asked to.
            vary.push(CONNECTION_HINTS);
            headers.push(("accept-ch", CONNECTION_HINTS.to_string()));
        }
        if !vary.is_empty() {
            headers.push(("vary", vary.join(", ")));
        }
        for (name, value) in &original.tags {
            headers.push((name, value.clone()));
        }
        let t = out.timings;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut timing = String::new();
        let _ = write!(
            timing,
            "fetch;dur={:.1}, decode;dur={:.1}, resize;dur={:.1}, encode;dur={:.1}",
            ms(fetch_time),
            ms(t.decode),
            ms(t.resize),
            ms(t.encode)
        );
        headers.push(("server-timing", timing));
        headers.push((
            "x-imgate-dimensions",
            format!("{}x{}", out.width, out.height),
        ));
        if if_none_match.is_some_and(|inm| etag_matches(inm, &etag)) {
            return Reply {
                status: 304,
                headers,
                body: Vec::new(),
            };
        }
        Reply {
            status: 200,
            headers,
            body: out.bytes,
        }
    }

    /// Serve a file of a `file://` origin unchanged (the passthrough route for directory origins).
    async fn serve_file(
        &self,
        site: &Site,
        req: &TransformRequest<'_>,
    ) -> Result<Reply, ImgateError> {
        let Origin::Dir(_) = &site.origin else {
            return Err(ImgateError::new(
                404,
                "not found",
                "passthrough for an HTTP origin reached the transform service",
                Blame::Internal,
            ));
        };
        let path = if req.path.ends_with('/') {
            format!("{}index.html", req.path)
        } else {
            req.path.to_string()
        };
        let original = self.transformer.fetch(site, &path, req.purged_at).await?;
        let mut headers = vec![
            (
                "cache-control",
                format!("public, max-age={}", site.ttl.default.as_secs()),
            ),
            (
                "content-type",
                original
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
            ),
        ];
        if let Some(lm) = original.last_modified {
            headers.push(("last-modified", httpdate::fmt_http_date(lm)));
        }
        if let Some(etag) = &original.etag {
            headers.push(("etag", etag.clone()));
            if req.if_none_match.is_some_and(|inm| etag_matches(inm, etag)) {
                return Ok(Reply {
                    status: 304,
                    headers,
                    body: Vec::new(),
                });
            }
        }
        Ok(Reply {
            status: 200,
            headers,
            body: original.body.to_vec(),
        })
    }
}

/// The formats to consider for `format=auto`: the edge's token when present, else `Accept`.
/// Whether `onerror=redirect` turns this failure into a redirect to the original: any failure
/// to fetch or transform it, but not a refusal of the source by the site's rules (403: never
/// point a client at what the site will not serve) nor a missing original (404: the redirect
/// would only move the 404).
fn redirects_on(e: &ImgateError) -> bool {
    !matches!(e.status, 403 | 404)
}

/// `302` to the original: a path on the same site (its passthrough serves it unchanged), or the
/// allowed absolute URL. Cached as briefly as a missing original (`ttl.negative`), since the
/// failure may pass.
fn redirect_to_original(site: &Site, source: &Source) -> Reply {
    let cache = if site.ttl.negative.is_zero() {
        "no-store".to_string()
    } else {
        format!("public, max-age={}", site.ttl.negative.as_secs())
    };
    Reply {
        status: 302,
        headers: vec![
            ("location", uri_escape(&source.key())),
            ("cache-control", cache),
            ("content-type", "text/plain; charset=utf-8".to_string()),
        ],
        body: b"the image could not be transformed; see the original\n".to_vec(),
    }
}

/// `s` with every byte a URI may not hold as is percent-encoded (a source decoded from
/// base64 or a path with spaces); what a URI allows, `%` included, is kept.
fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn negotiated_accepts(spec: &TransformSpec, req: &TransformRequest<'_>) -> Accepts {
    if spec.format != FormatRequest::Auto {
        return Accepts::default();
    }
    match req.negotiated {
        Some("avif") => Accepts {
            avif: true,
            webp: true,
        },
        Some("webp") => Accepts {
            avif: false,
            webp: true,
        },
        Some(_) => Accepts::default(),
        None => Accepts::from_accept_header(req.accept.unwrap_or("")),
    }
}

/// `Cache-Control` for a variant: the origin's freshness bounded by the site's TTL policy.
/// An origin that forbids storing keeps that promise for the variants too.
fn cache_control(site: &Site, original: &Fetched) -> String {
    if original.no_store {
        return "private, no-store".into();
    }
    let ttl = site.ttl.bound(original.ttl).as_secs();
    format!("public, max-age={ttl}, stale-while-revalidate=60, stale-if-error=86400")
}

/// A strong validator from the encoded bytes: equal bytes, equal tag.
fn strong_etag(bytes: &[u8]) -> String {
    let hash = Blake2b::<blake2::digest::consts::U16>::digest(bytes);
    format!("\"{}\"", hex::encode(hash))
}

/// `If-None-Match` matching (weak comparison, RFC 9110 13.1.2).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| bare(t) == bare(etag))
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_escape_what_a_uri_cannot_hold() {
        assert_eq!(
            super::uri_escape("/a b/\u{fc}ber.jpg?x=1&y=%20"),
            "/a%20b/%C3%BCber.jpg?x=1&y=%20"
        );
        assert_eq!(
            super::uri_escape("https://h.test:8443/p\"<>.png"),
            "https://h.test:8443/p%22%3C%3E.png"
        );
    }

    use super::*;

    #[test]
    fn etag_matching_is_weak_and_handles_lists() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }
}
