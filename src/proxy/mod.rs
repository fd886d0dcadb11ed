//! The edge: the only module that knows Pingora's proxy phases. Each phase is short and hands
//! real work to a module that knows nothing of Pingora: `route`/`spec` decide what a request is,
//! `cache` stores keys and bytes, the transform service (over a Unix socket) makes variants,
//! `http_cache` says what RFC 9111 allows.

mod client;
pub mod client_conn;
mod cluster;
mod ctx;
mod http_cache;
mod kept_date;
mod reply;
mod short_hit;
mod svg;

pub use cluster::{Cluster, Facing};
pub use kept_date::KeepDate;

use ctx::{EdgeCtx, Route};
use reply::{header_str, respond};

use crate::access_log::{AccessLog, TransformTimings};
use crate::cache::TieredStorage;
use crate::config::{Config, Origin};
use crate::dialect;
use crate::metrics;
use crate::origin;
use crate::readiness::Readiness;
use crate::route;
use crate::service::{NEGOTIATED_FORMAT_HEADER, PURGED_AT_HEADER, SLOW_CONNECTION_HEADER};
use crate::spec::{Accepts, ConnectionHints, FormatRequest};
use crate::tls::acme::Challenges;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::VARY;
use pingora::upstreams::peer::HttpPeer;
use pingora_cache::key::HashBinary;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_cache::storage::{PurgeTarget, PurgeType};
use pingora_cache::{
    CacheKey, CacheMeta, CachePhase, NoCacheReason, RespCacheable, Storage, VarianceBuilder,
};
use pingora_error::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod html;
mod https;
mod panics;

pub struct Edge {
    config: Arc<Config>,
    storage: &'static TieredStorage,
    lock: &'static CacheKeyLockImpl,
    access_log: Option<AccessLog>,
    cluster: Option<Arc<Cluster>>,
    facing: Facing,
    /// ACME HTTP-01 answers, when certificates come from an ACME CA.
    challenges: Option<Arc<Challenges>>,
}

impl Edge {
    pub fn new(config: Arc<Config>, storage: &'static TieredStorage) -> Edge {
        let lock: &'static CacheKeyLockImpl =
            Box::leak(CacheLock::new_boxed(config.cache.lock_timeout));
        Edge {
            config,
            storage,
            lock,
            access_log: None,
            cluster: None,
            facing: Facing::Clients,
            challenges: None,
        }
    }

    /// Answer ACME HTTP-01 challenges from `challenges` (on every client listener).
    pub fn with_challenges(self, challenges: Arc<Challenges>) -> Edge {
        Edge {
            challenges: Some(challenges),
            ..self
        }
    }

    /// In cluster mode: misses of originals other nodes own are asked of them.
    pub fn with_cluster(self, cluster: Arc<Cluster>) -> Edge {
        Edge {
            cluster: Some(cluster),
            ..self
        }
    }

    /// The same cache (storage and lock, so a variant asked by a client and by a peer at once
    /// is made once) facing peers on the cluster listener; answers its health check by
    /// `ready`.
    pub fn facing_peers(&self, ready: Readiness) -> Edge {
        Edge {
            config: self.config.clone(),
            storage: self.storage,
            lock: self.lock,
            access_log: None,
            cluster: self.cluster.clone(),
            facing: Facing::Peers(ready),
            challenges: None,
        }
    }

    /// Log every request the edge answers to `log`.
    pub fn with_access_log(self, log: Option<AccessLog>) -> Edge {
        Edge {
            access_log: log,
            ..self
        }
    }

    /// RFC 9111 §4.4: a successful unsafe request invalidates what is stored for its URL and
    /// for the same-site URLs in `Location` and `Content-Location`, in every variant (dropping
    /// the primary entry makes every variant unreachable).
    async fn invalidate(&self, session: &Session, resp: &ResponseHeader, ctx: &EdgeCtx) {
        let req = session.req_header();
        let host = header_str(&req.headers, "host").unwrap_or("");
        let mut paths = vec![req
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into())];
        for name in ["location", "content-location"] {
            let Some(value) = header_str(&resp.headers, name) else {
                continue;
            };
            if let Some(path) = same_site_path(value, host) {
                paths.push(path);
            }
        }
        if let Some(bus) = self.cluster.as_ref().and_then(|c| c.bus.as_ref()) {
            // Every other node drops its copies too (each answers for the same sites).
            bus.publish_soon(crate::purge::PurgeRequest {
                urls: paths.iter().map(|p| format!("http://{host}{p}")).collect(),
                ..Default::default()
            });
        }
        let span = pingora_cache::trace::Span::inactive();
        for path in paths {
            let raw = route::KeyedRoute::Raw {
                path_and_query: &path,
            };
            let key = CacheKey::new(route::primary_key(ctx.site, raw), "").to_compact();
            if let Err(e) = self
                .storage
                .purge(
                    PurgeTarget::Active(&key),
                    PurgeType::Invalidation,
                    &span.handle(),
                )
                .await
            {
                log::warn!("invalidating {path} after {}: {e}", req.method);
            }
        }
    }

    /// The `Strict-Transport-Security` value HTTPS responses carry, if any.
    fn hsts(&self) -> Option<&str> {
        self.config.tls.as_ref().and_then(|t| t.hsts.as_deref())
    }

    fn transform_peer(&self) -> Result<Box<HttpPeer>> {
        let socket = self.config.transform_socket.to_string_lossy();
        Ok(Box::new(HttpPeer::new_uds(&socket, false, String::new())?))
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = EdgeCtx;

    fn new_ctx(&self) -> EdgeCtx {
        EdgeCtx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut EdgeCtx) -> Result<bool> {
        panics::guard("request_filter", async {
            crate::cpu::register_current_thread();
            if let (Facing::Peers(ready), Some(c)) = (&self.facing, &self.cluster) {
                if cluster::route_peer_request(&self.config, c, ready, session, ctx).await? {
                    return Ok(true);
                }
                if !ctx.bypass_cache {
                    ctx.short_hit = short_hit::serve(self.storage, session, ctx, None).await?;
                }
                return Ok(ctx.short_hit);
            }
            let req = session.req_header();
            if client::lacks_host(req) {
                return respond(session, 400, "missing Host header").await;
            }
            let host = header_str(&req.headers, "host")
                .or_else(|| req.uri.host())
                .unwrap_or("");
            if let Some(tls) = &self.config.tls {
                let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
                if let Some(answer) = https::challenge_answer(self.challenges.as_deref(), path) {
                    return reply::text(session, 200, answer).await;
                }
                if let (false, Some(to)) =
                    (https::over_tls(session), https::redirect(tls, host, path))
                {
                    return reply::redirect(session, 308, &to).await;
                }
            }
            let Some((site_index, site)) = self.config.site_for(host) else {
                return respond(session, 404, "unknown site").await;
            };
            ctx.site = site_index;
            let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            // Any dialect's URL, signature and site rules checked before anything is fetched.
            let resolved = match dialect::resolve(&site.urls, path) {
                None => {
                    ctx.route = Route::Passthrough;
                    return Ok(false);
                }
                Some(read) => {
                    metrics::observe_url(&read);
                    match read {
                        Ok(resolved) => resolved,
                        Err(refusal) => {
                            return respond(session, refusal.status, &refusal.message).await
                        }
                    }
                }
            };
            let dialect::Resolved {
                spec,
                source,
                modern,
                ..
            } = resolved;
            if let Err(refused) = site.source_access(&source) {
                return respond(session, 403, refused).await;
            }
            let vary_token = if spec.format == FormatRequest::Auto {
                Accepts::from_accept_header(&client::accept(req))
                    .within(modern)
                    .vary_token(spec.format)
            } else {
                ""
            };
            let slow = spec.slow_quality.is_some()
                && ConnectionHints::read(|name| header_str(&req.headers, name)).slow();
            ctx.route = Route::Image {
                canonical: spec.canonical(),
                source: source.key(),
                vary_token,
                slow,
            };
            let hsts = self.hsts().filter(|_| https::over_tls(session));
            ctx.short_hit = short_hit::serve(self.storage, session, ctx, hsts).await?;
            Ok(ctx.short_hit)
        })
        .await
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut EdgeCtx) -> Result<()> {
        if ctx.bypass_cache || !pingora_cache::filters::request_cacheable(session.req_header()) {
            return Ok(());
        }
        session
            .cache
            .enable(self.storage, None, None, Some(self.lock), None);
        session
            .cache
            .set_max_file_size_bytes(self.config.cache.max_entry_bytes as usize);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut EdgeCtx) -> Result<CacheKey> {
        panics::guard_sync("cache_key_callback", || Ok(cache_key(session, ctx)))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut EdgeCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        if let Route::Image {
            vary_token, slow, ..
        } = &ctx.route
        {
            return image_variance(vary_token, *slow);
        }
        let mut variance = VarianceBuilder::new();
        let names: Vec<String> = meta
            .headers()
            .get_all(VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        for name in names {
            let value = client::varied_value(req, &name);
            variance.add_owned_name_value(name, value);
        }
        // Pages of a rewriting site are stored rewritten: a change to the rewrite config must
        // not serve rewrites made under the old one. In the variance, not the key, so purging a
        // URL still reaches every version.
        if let Some(rewrite) = &self.config.sites[ctx.site].html_rewrite {
            variance.add_value("imgate-html-rewrite", rewrite.fingerprint.as_bytes());
        }
        variance.finalize()
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut EdgeCtx,
    ) -> Result<RespCacheable> {
        panics::guard_sync("response_cache_filter", || {
            let vary_star = resp.headers.get_all(VARY).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|s| s.split(',').any(|n| n.trim() == "*"))
            });
            if vary_star {
                return Ok(RespCacheable::Uncacheable(NoCacheReason::OriginNotCache));
            }
            // Revalidated by a 304: Pingora merged only a few fields; RFC 9111 wants them all.
            let merged = match (ctx.not_modified.take(), session.cache.maybe_cache_meta()) {
                (Some(not_modified), Some(stored)) => Some(http_cache::merge_not_modified(
                    stored.response_header(),
                    &not_modified,
                )),
                _ => None,
            };
            let policy = http_cache::Policy {
                negative_ttl: self.config.sites[ctx.site].ttl.negative,
            };
            let authorized = session.req_header().headers.contains_key("authorization");
            let mut cacheable = policy.cacheability(
                merged.as_ref().unwrap_or(resp),
                authorized,
                ctx.response_time.unwrap_or_else(SystemTime::now),
            );
            let keep = self.cluster.as_ref().is_none_or(|c| c.config.keep_copies);
            if ctx.owner.is_some() && !keep {
                return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
                    "the owner keeps it",
                )));
            }
            if let (RespCacheable::Cacheable(meta), Some(started)) =
                (&mut cacheable, ctx.fill_started)
            {
                meta.extensions_mut().insert(started);
            }
            Ok(cacheable)
        })
    }

    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &EdgeCtx) -> bool {
        // Background revalidation (stale-while-revalidate) runs as a subrequest.
        true
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut EdgeCtx,
        error: Option<&pingora_error::Error>,
    ) -> bool {
        // Pingora has already checked the entry's stale-while-revalidate / stale-if-error
        // window (RFC 5861); inside it, serving stale is what the origin asked for. Errors
        // count only when they come from upstream (down, timing out or answering 5xx).
        match error {
            None => true,
            Some(e) => e.esource() == &pingora_error::ErrorSource::Upstream,
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut EdgeCtx,
    ) -> Result<Box<HttpPeer>> {
        panics::guard("upstream_peer", async {
            let site = &self.config.sites[ctx.site];
            match (&ctx.route, &site.origin) {
                (Route::Passthrough, Origin::Http(o)) => {
                    // The site's own origin: any address. Resolved without blocking; a name that
                    // does not resolve is an upstream failure (502, or stale if allowed).
                    let peer = origin::http_peer(o, &origin::Reach::Any, &self.config.performance)
                        .await
                        .map_err(|e| {
                            Error::create(
                                pingora_error::ErrorType::ConnectNoRoute,
                                pingora_error::ErrorSource::Upstream,
                                Some(e.to_string().into()),
                                None,
                            )
                        })?;
                    Ok(Box::new(peer))
                }
                (Route::Unrouted, _) => Error::e_explain(
                    pingora_error::ErrorType::InternalError,
                    "request was never routed",
                ),
                _ => {
                    // Cluster mode: the original's owner makes the variant, unless that is us
                    // (or this request comes from a peer, which the owner answers itself).
                    ctx.owner = match (&self.facing, &self.cluster) {
                        (Facing::Clients, Some(c)) => c.owner_of(ctx),
                        _ => None,
                    };
                    match (ctx.owner, &self.cluster) {
                        (Some(owner), Some(c)) => {
                            metrics::CLUSTER_FORWARDED
                                .with_label_values(&[&owner.to_string()])
                                .inc();
                            Ok(c.peer(owner))
                        }
                        _ => self.transform_peer(),
                    }
                }
            }
        })
        .await
    }

    /// An owner that cannot be reached is skipped: the miss is asked again, of the next owner
    /// or of this node's transform service.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut EdgeCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        cluster::owner_failed(ctx, "connect", &mut e);
        e
    }

    /// An owner that fails before its answer began (it died, or did not answer within
    /// `cluster.peer_timeout_seconds`) is skipped like one that cannot be reached. Anything
    /// else keeps Pingora's rule (retry an idempotent request on a reused connection).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut EdgeCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if ctx.owner.is_some() && session.response_written().is_none() {
            cluster::owner_failed(ctx, "error", &mut e);
        } else if !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    /// Pingora's own status mapping, plus a public message when the origin could not be
    /// reached at all (its name did not resolve, or no connection), as the transform route
    /// gives; Pingora's default answer has an empty body.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora_error::Error,
        _ctx: &mut EdgeCtx,
    ) -> FailToProxy {
        use pingora_error::{ErrorSource, ErrorType};
        let code = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(code), _) => *code,
            (_, ErrorSource::Upstream) => 502,
            (
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
            ) => 0,
            (_, ErrorSource::Downstream) => 400,
            _ => 500,
        };
        let unreachable = e.esource() == &ErrorSource::Upstream
            && matches!(
                e.etype(),
                ErrorType::ConnectNoRoute
                    | ErrorType::ConnectRefused
                    | ErrorType::ConnectTimedout
                    | ErrorType::ConnectError
            );
        let body = if unreachable {
            Bytes::from_static(b"origin unreachable\n")
        } else {
            Bytes::new()
        };
        if code > 0 {
            if let Err(e) = session.respond_error_with_body(code, body).await {
                log::error!("failed to send error response to downstream: {e}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        panics::guard("upstream_request_filter", async {
            req.remove_header(NEGOTIATED_FORMAT_HEADER);
            req.remove_header(SLOW_CONNECTION_HEADER);
            req.remove_header(PURGED_AT_HEADER);
            // Only this node speaks for itself to a peer.
            req.remove_header(crate::cluster::TOKEN_HEADER);
            req.remove_header(crate::cluster::HOP_HEADER);
            req.remove_header(crate::cluster::PURGE_POSITION_HEADER);
            if let (Some(_), Some(c)) = (ctx.owner, &self.cluster) {
                c.sign(req)?;
            }
            ctx.fill_started = Some(self.storage.fill_started());
            let to_transform = matches!(ctx.route, Route::Image { .. })
                || matches!(self.config.sites[ctx.site].origin, Origin::Dir(_));
            client::forward(
                session.req_header(),
                client::peer(session),
                &self.config.trusted_proxies,
                !to_transform,
                req,
            )?;
            if let (true, Some(at)) = (to_transform, self.storage.last_purge()) {
                // What the transform service fetched before the last purge must not answer this.
                let ms = at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                req.insert_header(PURGED_AT_HEADER, ms.to_string())?;
            }
            match &ctx.route {
                Route::Image {
                    canonical,
                    source,
                    vary_token,
                    slow,
                } => {
                    // The transform service reads the canonical form, whatever the dialect.
                    let service_path = dialect::canonical_path(canonical, source);
                    let uri: http::Uri = service_path.parse().map_err(|_| {
                        Error::explain(
                            pingora_error::ErrorType::InternalError,
                            "canonical transform path is not a URI",
                        )
                    })?;
                    req.set_uri(uri);
                    if !vary_token.is_empty() {
                        req.insert_header(NEGOTIATED_FORMAT_HEADER, *vary_token)?;
                    }
                    if *slow {
                        req.insert_header(SLOW_CONNECTION_HEADER, "slow")?;
                    }
                }
                Route::Passthrough => {
                    req.append_header("surrogate-capability", http_cache::SURROGATE_CAPABILITY)?;
                    if let Origin::Http(o) = &self.config.sites[ctx.site].origin {
                        req.insert_header("host", o.host_header())?;
                        if !o.base_path.is_empty() {
                            let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                            let uri: http::Uri =
                                format!("{}{}", o.base_path, pq).parse().map_err(|_| {
                                    Error::explain(
                                        pingora_error::ErrorType::InvalidHTTPHeader,
                                        "bad upstream path",
                                    )
                                })?;
                            req.set_uri(uri);
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        })
        .await
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        panics::guard("upstream_response_filter", async {
            ctx.response_time = Some(SystemTime::now());
            http_cache::strip_hop_by_hop(resp);
            if ctx.owner.is_some() {
                // The owner's own cache outcome; ours is added for the client.
                resp.remove_header("cache-status");
            }
            if resp.status.as_u16() == 304 {
                ctx.not_modified = Some(Box::new(resp.clone()));
            }
            if self.access_log.is_some() && matches!(ctx.route, Route::Image { .. }) {
                ctx.transform_timings = header_str(&resp.headers, "server-timing")
                    .and_then(TransformTimings::from_server_timing);
            }
            if matches!(ctx.route, Route::Passthrough) {
                svg::confine(resp);
                html::announce_client_hints(resp);
                let site = &self.config.sites[ctx.site];
                ctx.html = html::start(site, session, resp, self.config.max_source_bytes);
            }
            Ok(())
        })
        .await
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        panics::guard("response_filter", async {
            if http_cache::invalidates(&session.req_header().method)
                && (200..400).contains(&resp.status.as_u16())
            {
                self.invalidate(session, resp, ctx).await;
            }
            let stored = matches!(
                session.cache.phase(),
                CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating
            );
            for_client(resp, cache_status(session), stored)?;
            if let (Some(hsts), true) = (self.hsts(), https::over_tls(session)) {
                resp.insert_header("strict-transport-security", hsts)?;
            }
            // The response's own Date, not the time Pingora writes it (RFC 9111 §4).
            kept_date::keep(session, resp);
            if matches!(ctx.route, Route::Passthrough) {
                html::compress_for_client(&self.config.sites[ctx.site], session, resp);
            }
            Ok(())
        })
        .await
    }

    // HTML rewriting runs in the upstream filters, so the cache stores the rewritten page.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut EdgeCtx,
    ) -> Result<Option<Duration>> {
        panics::guard_sync("upstream_response_body_filter", || {
            if let Some(page) = ctx.html.as_mut() {
                html::feed(page, body, end_of_stream)?;
                if end_of_stream {
                    ctx.html = None;
                }
            }
            Ok(None)
        })
    }

    async fn logging(
        &self,
        session: &mut Session,
        _e: Option<&pingora_error::Error>,
        ctx: &mut EdgeCtx,
    ) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if session.cache.enabled() && session.cache.is_cache_lock_writer() {
            // Pingora can end a request while it still holds the cache write lock (seen when
            // the client closes right after the last body byte of a miss). Dropped that way the
            // lock counts as dangling and readers waiting on it stall until the lock timeout;
            // released here they retry at once.
            log::debug!(
                "releasing a cache write lock left at the end of a request ({:?}, {:?}, status {status}, error {:?})",
                ctx.route,
                session.cache.phase(),
                _e.map(|e| e.etype())
            );
            session
                .cache
                .release_write_lock(NoCacheReason::InternalError);
        }
        let cache = if ctx.short_hit {
            "hit"
        } else {
            cache_label(session)
        };
        if let Some(log) = &self.access_log {
            client::log_request(
                log,
                session,
                ctx,
                &self.config.trusted_proxies,
                status,
                cache,
            );
        }
        if ctx.short_hit && status == 200 {
            let hit = &*metrics::MEMORY_IMAGE_HIT;
            metrics::SHORT_HITS.inc();
            hit.requests.inc();
            hit.duration.observe(ctx.started.elapsed().as_secs_f64());
            return;
        }
        let route = client::route_label(&ctx.route);
        metrics::REQUESTS
            .with_label_values(&[route, &status.to_string(), cache])
            .inc();
        metrics::REQUEST_DURATION
            .with_label_values(&[route, cache])
            .observe(ctx.started.elapsed().as_secs_f64());
    }
}

/// What the edge changes in every response header it sends (`short_hit` included): no
/// `Surrogate-Control`, which is addressed to surrogates like us; no `Server-Timing` on a
/// response served from the cache (the original miss's timings would mislead); `Cache-Status`.
fn for_client(resp: &mut ResponseHeader, cache_status: &'static str, stored: bool) -> Result<()> {
    resp.remove_header("surrogate-control");
    if stored {
        resp.remove_header("server-timing");
    }
    resp.insert_header("cache-status", cache_status)
}

/// The primary cache key of a routed request (the variance is added by `cache_vary_filter`).
fn cache_key(session: &Session, ctx: &EdgeCtx) -> CacheKey {
    // Getting this wrong leads to cache poisoning: everything that changes the response
    // must be in the key or in the variance.
    let keyed = match &ctx.route {
        Route::Image {
            canonical, source, ..
        } => route::KeyedRoute::Image { canonical, source },
        _ => route::KeyedRoute::Raw {
            path_and_query: session
                .req_header()
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str()),
        },
    };
    CacheKey::new(route::primary_key(ctx.site, keyed), "")
}

/// The variance of an image variant: the negotiated format and whether the slow-connection
/// quality applied, never the raw `Accept` or client hint values
/// (browsers send dozens of Accept spellings that all mean the same three answers).
fn image_variance(vary_token: &str, slow: bool) -> Option<HashBinary> {
    if vary_token.is_empty() && !slow {
        return None;
    }
    let mut variance = VarianceBuilder::new();
    if !vary_token.is_empty() {
        variance.add_value("imgate-format", vary_token.as_bytes());
    }
    if slow {
        variance.add_value("imgate-connection", b"slow");
    }
    variance.finalize()
}

/// The path of `url` when it is relative or on `host`; `None` for other hosts.
fn same_site_path(url: &str, host: &str) -> Option<String> {
    if url.starts_with('/') && !url.starts_with("//") {
        return Some(url.to_string());
    }
    let uri: http::Uri = url.parse().ok()?;
    let authority = uri.authority()?;
    if !authority.as_str().eq_ignore_ascii_case(host) {
        return None;
    }
    Some(uri.path_and_query().map_or("/", |p| p.as_str()).to_string())
}

/// RFC 9211 `Cache-Status` value for this response.
fn cache_status(session: &Session) -> &'static str {
    if !session.cache.enabled() && !matches!(session.cache.phase(), CachePhase::Hit) {
        return "imgate; fwd=bypass";
    }
    match session.cache.phase() {
        CachePhase::Hit if crate::cache::served_from_disk(session.cache.cache_meta()) => {
            "imgate; hit; detail=disk"
        }
        CachePhase::Hit => "imgate; hit",
        CachePhase::Stale | CachePhase::StaleUpdating => "imgate; hit; fwd=stale",
        CachePhase::Revalidated => "imgate; hit; fwd=stale; fwd-status=304",
        CachePhase::Expired | CachePhase::RevalidatedNoCache(_) => "imgate; fwd=stale",
        CachePhase::Miss => "imgate; fwd=miss",
        _ => "imgate; fwd=bypass",
    }
}

/// Cache outcome as a metrics label.
fn cache_label(session: &Session) -> &'static str {
    match session.cache.phase() {
        CachePhase::Hit => "hit",
        CachePhase::Stale | CachePhase::StaleUpdating => "stale",
        CachePhase::Revalidated => "revalidated",
        CachePhase::Miss | CachePhase::Expired | CachePhase::RevalidatedNoCache(_) => "miss",
        _ => "bypass",
    }
}
