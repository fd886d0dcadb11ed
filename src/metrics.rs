//! Prometheus series, registered once in the default registry and rendered by the admin
//! listener. Names follow Prometheus conventions: base units (seconds, bytes), `_total` on
//! counters, and never a URL or other unbounded value in a label.

use once_cell::sync::Lazy;
use pingora_prometheus::prometheus;
use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};
use std::time::Duration;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_requests_total",
        "Requests answered by the edge, by route (image|passthrough|error), status and cache status",
        &["route", "status", "cache"]
    )
    .expect("metric registers once")
});

pub static DIALECT_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_dialect_requests_total",
        "Transform requests accepted, by the URL dialect they were written in",
        &["dialect"]
    )
    .expect("metric registers once")
});

pub static URL_REFUSALS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_url_refusals_total",
        "Transform URLs refused before anything was fetched, by reason (bad_url, not_allowed, missing_signature, bad_signature)",
        &["reason"]
    )
    .expect("metric registers once")
});

pub static REQUEST_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "imgate_request_duration_seconds",
        "Time from request header to the end of the response, by route and cache status",
        &["route", "cache"],
        LATENCY_BUCKETS.to_vec()
    )
    .expect("metric registers once")
});

pub static ORIGIN_FETCH_DURATION: Lazy<Histogram> = Lazy::new(|| {
    register_histogram!(
        "imgate_origin_fetch_duration_seconds",
        "Time to download one original from the origin",
        LATENCY_BUCKETS.to_vec()
    )
    .expect("metric registers once")
});

pub static ORIGIN_FETCH_BYTES: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_origin_fetch_bytes_total",
        "Bytes of originals downloaded"
    )
    .expect("metric registers once")
});

pub static CACHE_FILLS_DROPPED: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_cache_fills_dropped_total",
        "Responses served but not stored because an admin purge began while they were fetched"
    )
    .expect("metric registers once")
});

pub static ORIGIN_REUSES: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_origin_reuses_total",
        "Originals served from a download that had just finished and was still in use, instead of downloading again"
    )
    .expect("metric registers once")
});

pub static ORIGIN_FETCH_ERRORS: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_origin_fetch_errors_total",
        "Original downloads that failed"
    )
    .expect("metric registers once")
});

pub static STEP_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "imgate_transform_step_duration_seconds",
        "Time spent in each transform step (decode, resize, encode)",
        &["step"],
        LATENCY_BUCKETS.to_vec()
    )
    .expect("metric registers once")
});

pub static SOURCE_BYTES_HELD: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "imgate_source_bytes_held",
        "Bytes of originals held in memory now, downloading or used by jobs (against performance.source_budget)"
    )
    .expect("metric registers once")
});

pub static SOURCE_BUDGET_REFUSED: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_source_budget_refused_total",
        "Downloads refused with 503 because they waited too long, or too many waited, for room in the source budget"
    )
    .expect("metric registers once")
});

pub static ACTIVE_DOWNLOADS: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!("imgate_active_downloads", "Originals being downloaded now")
        .expect("metric registers once")
});

pub static ACTIVE_PROCESSING: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "imgate_active_processing_jobs",
        "Images being decoded, resized or encoded now"
    )
    .expect("metric registers once")
});

pub static QUEUE_LENGTH: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "imgate_processing_queue_length",
        "Jobs waiting for room in the processing budget"
    )
    .expect("metric registers once")
});

pub static REJECTED_OVERLOAD: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_processing_rejected_total",
        "Jobs refused with 503 because the queue was full"
    )
    .expect("metric registers once")
});

pub static REJECTED_OVER_BUDGET: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_processing_over_budget_total",
        "Jobs refused with 413 because their estimated cost is over the whole processing budget"
    )
    .expect("metric registers once")
});

pub static PROCESSING_BUDGET_IN_USE: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "imgate_processing_budget_bytes_in_use",
        "Estimated bytes held by the jobs running now (against performance.processing_budget)"
    )
    .expect("metric registers once")
});

pub static MEMORY_RELEASES: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_memory_releases_total",
        "Times freed memory was handed back to the OS after a burst of processing"
    )
    .expect("metric registers once")
});

pub static SHARED_DECODES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_shared_decode_lookups_total",
        "Decodes asked of the burst's shared decodes: hit (another variant's decode reused) or miss (decoded)",
        &["result"]
    )
    .expect("metric registers once")
});

pub static CACHE_LOOKUPS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cache_lookups_total",
        "Cache lookups by tier and result (hit|miss)",
        &["tier", "result"]
    )
    .expect("metric registers once")
});

pub static CACHE_ENTRIES: Lazy<prometheus::IntGaugeVec> = Lazy::new(|| {
    prometheus::register_int_gauge_vec!(
        "imgate_cache_entries",
        "Entries stored, by tier",
        &["tier"]
    )
    .expect("metric registers once")
});

pub static CACHE_BYTES: Lazy<prometheus::IntGaugeVec> = Lazy::new(|| {
    prometheus::register_int_gauge_vec!("imgate_cache_bytes", "Bytes stored, by tier", &["tier"])
        .expect("metric registers once")
});

pub static CACHE_EVICTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cache_evictions_total",
        "Entries evicted to stay within budget, by tier",
        &["tier"]
    )
    .expect("metric registers once")
});

pub static CACHE_DISK_ERRORS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cache_disk_errors_total",
        "Disk tier failures by kind: corrupt (entry failed its checks and was deleted), read, write",
        &["kind"]
    )
    .expect("metric registers once")
});

pub static CACHE_PURGES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cache_purges_total",
        "Purge targets handled by the admin API, by kind (url|source|prefix|tag|everything) and mode (hard|soft)",
        &["kind", "mode"]
    )
    .expect("metric registers once")
});

pub static CACHE_PURGED_ENTRIES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cache_purged_entries_total",
        "Entries removed (hard) or expired (soft) by purges, by tier and mode",
        &["tier", "mode"]
    )
    .expect("metric registers once")
});

pub static SHORT_HITS: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_short_hits_total",
        "Hits answered before the full cache machinery runs (plain GET/HEAD of a fresh image variant held in memory); also counted in imgate_requests_total"
    )
    .expect("metric registers once")
});

pub static ACCESS_LOG_DROPPED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_access_log_dropped_total",
        "Access log lines lost, by reason: full (the writer fell behind; requests never wait for it), write_error, writer_gone",
        &["reason"]
    )
    .expect("metric registers once")
});

pub static CLIENT_CONNECTIONS_CLOSED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_client_connections_closed_total",
        "Edge client connections closed before a request reached the proxy, by reason (header_timeout: head not whole in time, 408; header_too_large: head over its budget, 431; keepalive_timeout: idle too long between requests)",
        &["reason"]
    )
    .expect("metric registers once")
});

pub static CLUSTER_FORWARDED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cluster_forwarded_total",
        "Misses this node asked their owner for, by owner (its cluster address)",
        &["peer"]
    )
    .expect("metric registers once")
});

pub static CLUSTER_ANSWERED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cluster_answered_total",
        "Requests this node answered for a peer on its cluster listener, by asking peer",
        &["peer"]
    )
    .expect("metric registers once")
});

pub static CLUSTER_FALLBACKS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cluster_fallbacks_total",
        "Misses this node did itself because their owner failed, by owner and reason (connect: no connection; error: the connection failed or timed out before an answer)",
        &["peer", "reason"]
    )
    .expect("metric registers once")
});

pub static CLUSTER_PEER_UP: Lazy<prometheus::IntGaugeVec> = Lazy::new(|| {
    prometheus::register_int_gauge_vec!(
        "imgate_cluster_peer_up",
        "1 while a peer passes its health checks (on the ring), 0 after it failed one",
        &["peer"]
    )
    .expect("metric registers once")
});

pub static CLUSTER_RING_SIZE: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "imgate_cluster_ring_size",
        "Live nodes on the ring as this node sees it (itself included), at the last scrape"
    )
    .expect("metric registers once")
});

pub static CLUSTER_PURGE_BUS_UP: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "imgate_cluster_purge_bus_up",
        "1 while this node follows the purge stream in Redis, 0 while Redis cannot be reached"
    )
    .expect("metric registers once")
});

pub static CLUSTER_PURGES_PUBLISHED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_cluster_purges_published_total",
        "Purges and invalidations this node sent to the others, by result (sent: on the stream; queued: Redis unreachable, sent when it is back)",
        &["result"]
    )
    .expect("metric registers once")
});

pub static CLUSTER_PURGES_APPLIED: Lazy<IntCounter> = Lazy::new(|| {
    register_int_counter!(
        "imgate_cluster_purges_applied_total",
        "Purges and invalidations from other nodes this node applied"
    )
    .expect("metric registers once")
});

pub static CLUSTER_PURGE_OUTBOX: Lazy<IntGauge> = Lazy::new(|| {
    register_int_gauge!(
        "imgate_cluster_purge_outbox",
        "Purges applied here and waiting for Redis to reach the other nodes"
    )
    .expect("metric registers once")
});

pub static CLUSTER_PURGE_LAG: Lazy<prometheus::Gauge> = Lazy::new(|| {
    prometheus::register_gauge!(
        "imgate_cluster_purge_stream_lag_seconds",
        "Purge stream lag: how long after it was sent this node applied the last entry it read"
    )
    .expect("metric registers once")
});

pub static TLS_CERT_EXPIRY: Lazy<prometheus::IntGaugeVec> = Lazy::new(|| {
    prometheus::register_int_gauge_vec!(
        "imgate_tls_certificate_expiry_timestamp_seconds",
        "When each certificate the TLS listener serves expires (Unix time), by its first host name (or default)",
        &["certificate"]
    )
    .expect("metric registers once")
});

pub static TLS_ACME_ORDERS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_tls_acme_orders_total",
        "ACME certificate orders, by result (ok: issued and served; error: logged with the CA's error, retried later)",
        &["result"]
    )
    .expect("metric registers once")
});

pub static TLS_REFUSED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_tls_handshakes_refused_total",
        "TLS handshakes refused before they began, by reason (min_version: nothing offered at or above tls.min_version)",
        &["reason"]
    )
    .expect("metric registers once")
});

pub static TLS_RELOADS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_tls_reloads_total",
        "Certificate reloads (files changed or SIGHUP), by result (ok; error: the previous certificates stay)",
        &["result"]
    )
    .expect("metric registers once")
});

/// A peer's health, as the ring's health checks last saw it.
pub fn cluster_peer_up(peer: &str, up: bool) {
    CLUSTER_PEER_UP.with_label_values(&[peer]).set(up as i64);
}

/// The series of the commonest request, an image served `200` from the memory tier, resolved
/// once: looking labels up costs a hash and a lock per request, a visible share of a hit.
pub struct MemoryImageHit {
    pub requests: IntCounter,
    pub duration: Histogram,
}

pub static MEMORY_IMAGE_HIT: Lazy<MemoryImageHit> = Lazy::new(|| MemoryImageHit {
    requests: REQUESTS.with_label_values(&["image", "200", "hit"]),
    duration: REQUEST_DURATION.with_label_values(&["image", "hit"]),
});

/// `imgate_cache_lookups_total{tier="memory",result="hit"}`, resolved once (see above).
pub static MEMORY_LOOKUP_HITS: Lazy<IntCounter> =
    Lazy::new(|| CACHE_LOOKUPS.with_label_values(&["memory", "hit"]));

/// Counts a transform URL read by the edge (or the transform service facing clients): the
/// dialect it was accepted in, or why it was refused.
pub fn observe_url(read: &Result<crate::dialect::Resolved, crate::dialect::Refusal>) {
    match read {
        Ok(r) => DIALECT_REQUESTS
            .with_label_values(&[r.dialect.name()])
            .inc(),
        Err(refusal) => URL_REFUSALS
            .with_label_values(&[refusal.reason.name()])
            .inc(),
    }
}

/// Touch every series so `/metrics` lists them all from the first scrape.
pub fn init() {
    Lazy::force(&REQUESTS);
    Lazy::force(&REQUEST_DURATION);
    for dialect in crate::dialect::Dialect::ALL {
        DIALECT_REQUESTS.with_label_values(&[dialect.name()]);
    }
    for reason in crate::dialect::RefusalReason::ALL {
        URL_REFUSALS.with_label_values(&[reason.name()]);
    }
    Lazy::force(&ORIGIN_FETCH_DURATION);
    Lazy::force(&ORIGIN_FETCH_BYTES);
    Lazy::force(&ORIGIN_FETCH_ERRORS);
    Lazy::force(&ORIGIN_REUSES);
    Lazy::force(&SOURCE_BYTES_HELD);
    Lazy::force(&SOURCE_BUDGET_REFUSED);
    Lazy::force(&CACHE_FILLS_DROPPED);
    for step in ["decode", "resize", "encode"] {
        STEP_DURATION.with_label_values(&[step]);
    }
    Lazy::force(&ACTIVE_DOWNLOADS);
    Lazy::force(&ACTIVE_PROCESSING);
    Lazy::force(&QUEUE_LENGTH);
    Lazy::force(&REJECTED_OVERLOAD);
    Lazy::force(&REJECTED_OVER_BUDGET);
    Lazy::force(&PROCESSING_BUDGET_IN_USE);
    Lazy::force(&MEMORY_RELEASES);
    Lazy::force(&SHORT_HITS);
    for reason in ["header_timeout", "header_too_large", "keepalive_timeout"] {
        CLIENT_CONNECTIONS_CLOSED.with_label_values(&[reason]);
    }
    for result in ["hit", "miss"] {
        SHARED_DECODES.with_label_values(&[result]);
    }
    for tier in ["memory", "disk"] {
        for result in ["hit", "miss"] {
            CACHE_LOOKUPS.with_label_values(&[tier, result]);
        }
        CACHE_ENTRIES.with_label_values(&[tier]);
        CACHE_BYTES.with_label_values(&[tier]);
        CACHE_EVICTIONS.with_label_values(&[tier]);
        for mode in ["hard", "soft"] {
            CACHE_PURGED_ENTRIES.with_label_values(&[tier, mode]);
        }
    }
    for kind in ["corrupt", "read", "write"] {
        CACHE_DISK_ERRORS.with_label_values(&[kind]);
    }
    for reason in ["full", "write_error", "writer_gone"] {
        ACCESS_LOG_DROPPED.with_label_values(&[reason]);
    }
    for kind in ["url", "source", "prefix", "tag", "everything"] {
        for mode in ["hard", "soft"] {
            CACHE_PURGES.with_label_values(&[kind, mode]);
        }
    }
}

/// Touch the cluster's series (cluster mode only), so the first scrape lists them.
pub fn init_cluster() {
    Lazy::force(&CLUSTER_FORWARDED);
    Lazy::force(&CLUSTER_ANSWERED);
    Lazy::force(&CLUSTER_FALLBACKS);
    Lazy::force(&CLUSTER_PEER_UP);
    Lazy::force(&CLUSTER_RING_SIZE);
    Lazy::force(&CLUSTER_PURGE_BUS_UP);
    for result in ["sent", "queued"] {
        CLUSTER_PURGES_PUBLISHED.with_label_values(&[result]);
    }
    Lazy::force(&CLUSTER_PURGES_APPLIED);
    Lazy::force(&CLUSTER_PURGE_OUTBOX);
    Lazy::force(&CLUSTER_PURGE_LAG);
}

/// Render every registered series in the Prometheus text format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut out = Vec::with_capacity(16 * 1024);
    let encoder = prometheus::TextEncoder::new();
    // Encoding into a Vec cannot fail on I/O; a failure would be a bug in a metric definition.
    if let Err(e) = encoder.encode(&prometheus::gather(), &mut out) {
        log::error!("metrics encoding failed: {e}");
    }
    String::from_utf8(out).unwrap_or_default()
}

pub fn observe_origin_fetch(elapsed: Duration, result: Result<usize, ()>) {
    ORIGIN_FETCH_DURATION.observe(elapsed.as_secs_f64());
    match result {
        Ok(bytes) => ORIGIN_FETCH_BYTES.inc_by(bytes as u64),
        Err(()) => ORIGIN_FETCH_ERRORS.inc(),
    }
}

/// Increments a gauge for as long as it lives: an in-flight count that cannot leak on early
/// returns or panics.
pub struct ActiveGuard<'a>(&'a IntGauge);

impl<'a> ActiveGuard<'a> {
    pub fn new(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        ActiveGuard(gauge)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub static PANICS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_panics_total",
        "Panics caught in an edge phase (each cost one request, answered 500), by phase",
        &["phase"]
    )
    .expect("metric registers once")
});

pub static HTML_REWRITE_ABORTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_html_rewrite_aborts_total",
        "Rewritten HTML pages cut off mid-way, by reason (too_large: the decoded page passed \
         limits.max_source_bytes, e.g. a decompression bomb; decode: a corrupt or truncated \
         content coding; rewrite: the HTML rewriter failed)",
        &["reason"]
    )
    .expect("metric registers once")
});
/// The kinds of `imgate_origin_errors_total`: `dns` (an origin or source name that did not
/// resolve, or not in time), `address` (a source URL's address refused before connecting).
pub const ORIGIN_ERROR_KINDS: [&str; 2] = ["dns", "address"];

pub static ORIGIN_ERRORS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "imgate_origin_errors_total",
        "Origin fetches and passthrough requests stopped before connecting, by kind: dns (name did not resolve), address (source address refused)",
        &["kind"]
    )
    .expect("metric registers once")
});

/// Count one origin failure of `kind` (one of [`ORIGIN_ERROR_KINDS`]).
pub fn origin_error(kind: &str) {
    ORIGIN_ERRORS.with_label_values(&[kind]).inc();
}
