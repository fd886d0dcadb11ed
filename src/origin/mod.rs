//! Fetching originals: from an HTTP(S) origin over Pingora's pooled connector, or from a local
//! directory. The fetcher sees paths and bytes only, never transform options; it enforces the
//! download semaphore, the byte limit (while streaming) and the timeouts.

mod address;
mod dir;
mod http;
pub mod resolve;

pub use self::address::Reach;
pub use self::http::peer_for as http_peer;

use crate::config::{HttpOrigin, Origin, PerformanceConfig};
use crate::metrics;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// An original as the origin served it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    pub content_type: Option<String>,
    /// Freshness the origin gave (`s-maxage`/`max-age`/`Expires`, minus `Age`), if any.
    pub ttl: Option<Duration>,
    /// The origin said `no-store`/`private`: variants must not be cached for long.
    pub no_store: bool,
    pub last_modified: Option<SystemTime>,
    pub etag: Option<String>,
    /// `Surrogate-Key` / `Cache-Tag` headers as the origin sent them (name, value), forwarded
    /// on variants so the edge cache can record them for purge by tag.
    pub tags: Vec<(&'static str, String)>,
}

/// Why an original could not be had. The service maps each to a status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    #[error("origin has no such object")]
    NotFound,
    /// Any other non-2xx answer; passed through as a 502 unless it is a client error.
    #[error("origin answered {0}")]
    Status(u16),
    #[error("original exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("origin unreachable: {0}")]
    Unreachable(String),
    #[error("origin timed out after {0:?}")]
    Timeout(Duration),
    /// The path escapes the origin (`..`) or is otherwise unusable.
    #[error("bad source path: {0}")]
    BadPath(String),
    /// The origin's or source's host name did not resolve (or not in time).
    #[error("origin name did not resolve: {0}")]
    Unresolvable(String),
    /// The source's address is outside what its [`Reach`] allows; nothing was connected to.
    #[error("source address refused: {0}")]
    AddressRefused(String),
}

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
    fn tag(&self) -> String {
        format!(
            "{}{}",
            self.reach.tag(),
            if self.dotfiles { "+dot" } else { "" }
        )
    }
}

/// Downloads originals with bounded concurrency over pooled connections.
pub struct OriginFetcher {
    /// One connector, and so one keep-alive pool of `pool_size` idle connections, per origin
    /// host: Pingora bounds a connector's pool as a whole, so with one shared connector a busy
    /// origin would evict every other origin's idle connections. The hosts are bounded by the
    /// config (site origins and their allow-lists), so the map is too.
    connectors: Mutex<HashMap<String, Arc<Connector>>>,
    connector_options: ConnectorOptions,
    downloads: Semaphore,
    perf: PerformanceConfig,
    max_bytes: u64,
    /// Downloads in progress by origin and path: concurrent misses for different variants of
    /// one original share one download and one buffer (64 thumbnails of a 16 MB photo hold
    /// 16 MB, not 1 GB).
    in_flight: Mutex<HashMap<String, Arc<Flight>>>,
    /// Finished downloads by the same key, for as long as some job still holds the buffer
    /// (and at most `reuse_window`): a variant asked for while earlier variants of the
    /// original are still queued or running uses the same bytes, and so shares their decodes,
    /// instead of downloading and decoding the original again.
    recent: Mutex<HashMap<String, Recent>>,
    reuse_window: Duration,
}

/// How long a finished download may serve later askers, at most, and never beyond the
/// freshness the origin gave it. Short, because the transform service does not see purges:
/// an original replaced at the origin and purged reaches new variants after this long.
pub const REUSE_WINDOW: Duration = Duration::from_secs(5);

/// A finished download that later askers may join while its buffer is alive.
struct Recent {
    /// The body's owner; alive while any job holds a `Bytes` of it.
    body: Weak<Bytes>,
    /// Everything else the origin said (its `body` is empty).
    fetched: Fetched,
    at: Instant,
    /// When its download began.
    started: SystemTime,
}

/// Owns a downloaded body for every `Bytes` handed out for it, so `Recent` can tell through
/// a `Weak` whether anyone still has it. Every such `Bytes` points at the same memory.
struct SharedBody(Arc<Bytes>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One download that every concurrent asker awaits. If the task driving it is cancelled, the
/// next waiter takes over.
struct Flight {
    /// When it began: what it brings back is the origin's state from then on.
    started: SystemTime,
    result: tokio::sync::OnceCell<Result<Fetched, OriginError>>,
}

impl OriginFetcher {
    /// `ca_file` (Pingora's `ca_file` server setting) replaces the system roots for TLS
    /// origins, as it does for passthrough; certificates are always verified.
    pub fn new(perf: &PerformanceConfig, max_bytes: u64, ca_file: Option<String>) -> OriginFetcher {
        // Reads the system's resolver files here, at start-up, rather than in a request.
        resolve::init();
        let mut options = ConnectorOptions::new(perf.pool_size);
        options.keepalive_pool_size = perf.pool_size;
        options.ca_file = ca_file;
        OriginFetcher {
            connectors: Mutex::new(HashMap::new()),
            connector_options: options,
            downloads: Semaphore::new(perf.max_concurrent_downloads),
            perf: perf.clone(),
            max_bytes,
            in_flight: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
            reuse_window: REUSE_WINDOW,
        }
    }

    /// Fetch `path` (starting with `/`, query included) from `origin`, whole, within the
    /// origin timeout, joining a download of the same original already in progress, or one
    /// that finished moments ago and is still being worked on (see `recent`). Neither is
    /// joined if it began before `not_before` (the edge's last purge, when it had one).
    /// `origin` is trusted as a site's own origin ([`Access::default`]).
    pub async fn fetch(
        &self,
        origin: &Origin,
        path: &str,
        not_before: Option<SystemTime>,
    ) -> Result<Fetched, OriginError> {
        self.fetch_with(origin, &Access::default(), path, not_before)
            .await
    }

    /// [`OriginFetcher::fetch`] within `access`: the addresses it may connect to and whether
    /// dotfiles of a directory are served.
    pub async fn fetch_with(
        &self,
        origin: &Origin,
        access: &Access,
        path: &str,
        not_before: Option<SystemTime>,
    ) -> Result<Fetched, OriginError> {
        let place = match origin {
            Origin::Http(o) => format!(
                "{}://{}:{}{}{}",
                if o.tls { "https" } else { "http" },
                o.host,
                o.port,
                o.base_path,
                path
            ),
            Origin::Dir(d) => format!("file://{}{}", d.display(), path),
        };
        let key = format!("{}|{place}", access.tag());
        if let Some(reused) = self.reuse(&key, not_before) {
            metrics::ORIGIN_REUSES.inc();
            return Ok(reused);
        }
        let flight = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get(&key) {
                Some(f) if began_after(f.started, not_before) => f.clone(),
                // None, or one that began before a purge: a download of its own, which later
                // askers join instead.
                _ => {
                    let f = Arc::new(Flight {
                        started: SystemTime::now(),
                        result: tokio::sync::OnceCell::new(),
                    });
                    in_flight.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        let result = flight
            .result
            .get_or_init(|| async {
                let fetched = self.download(origin, access, path).await?;
                Ok(self.remember(&key, fetched, flight.started))
            })
            .await
            .clone();
        // The first asker back retires the flight; later askers start a fresh download, so a
        // failure or an updated original is never served from here beyond this burst.
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            in_flight.remove(&key);
        }
        result
    }

    /// A recent download of `key` that a job still holds and that is still fresh enough to
    /// serve, as a new handle on the same bytes; its freshness is what remains of the origin's.
    fn reuse(&self, key: &str, not_before: Option<SystemTime>) -> Option<Fetched> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let entry = recent.get(key)?;
        if !began_after(entry.started, not_before) {
            recent.remove(key);
            return None;
        }
        let age = entry.at.elapsed();
        let window = if entry.fetched.no_store {
            Duration::ZERO
        } else {
            entry
                .fetched
                .ttl
                .map_or(self.reuse_window, |ttl| ttl.min(self.reuse_window))
        };
        match entry.body.upgrade().filter(|_| age < window) {
            Some(body) => Some(Fetched {
                body: Bytes::from_owner(SharedBody(body)),
                ttl: entry.fetched.ttl.map(|ttl| ttl.saturating_sub(age)),
                ..entry.fetched.clone()
            }),
            None => {
                recent.remove(key);
                None
            }
        }
    }

    /// Note a finished download for `reuse`, and hand back its body as a shared handle.
    /// Entries whose buffers nobody holds any more are dropped here, so the map holds about
    /// as many entries as there are originals in use.
    fn remember(&self, key: &str, mut fetched: Fetched, started: SystemTime) -> Fetched {
        let owner = Arc::new(std::mem::take(&mut fetched.body));
        let recent = Recent {
            body: Arc::downgrade(&owner),
            fetched: fetched.clone(),
            at: Instant::now(),
            started,
        };
        let mut map = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, r| r.body.strong_count() > 0);
        map.insert(key.to_string(), recent);
        drop(map);
        fetched.body = Bytes::from_owner(SharedBody(owner));
        fetched
    }

    /// The connector (and pool) for this origin's scheme, host and port, made on first use.
    /// Made outside the lock: a TLS connector loads its CA roots when it is created.
    fn connector_for(&self, origin: &HttpOrigin) -> Arc<Connector> {
        let key = format!("{}:{}:{}", origin.tls, origin.host, origin.port);
        let connectors = || self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = connectors().get(&key) {
            return c.clone();
        }
        let made = Arc::new(Connector::new(Some(self.connector_options.clone())));
        connectors().entry(key).or_insert(made).clone()
    }

    /// One download. Waiting for a download slot counts against the timeout too, so a
    /// congested origin answers 504 rather than queueing forever.
    async fn download(
        &self,
        origin: &Origin,
        access: &Access,
        path: &str,
    ) -> Result<Fetched, OriginError> {
        let timeout = self.perf.origin_timeout;
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, async {
            let _permit = self
                .downloads
                .acquire()
                .await
                .map_err(|_| OriginError::Unreachable("shutting down".into()))?;
            let _active = metrics::ActiveGuard::new(&metrics::ACTIVE_DOWNLOADS);
            match origin {
                Origin::Http(o) => {
                    let connector = self.connector_for(o);
                    let peer = http::peer_for(o, &access.reach, &self.perf).await?;
                    http::fetch(&connector, peer, o, path, &self.perf, self.max_bytes).await
                }
                Origin::Dir(d) => dir::fetch(d, path, self.max_bytes, access.dotfiles).await,
            }
        })
        .await
        .unwrap_or(Err(OriginError::Timeout(timeout)));
        metrics::observe_origin_fetch(
            started.elapsed(),
            result.as_ref().map(|f| f.body.len()).map_err(|_| ()),
        );
        result
    }
}

/// Whether a download that began at `started` is recent enough for someone who must not see
/// anything from before `not_before`.
fn began_after(started: SystemTime, not_before: Option<SystemTime>) -> bool {
    not_before.is_none_or(|p| started >= p)
}

/// Freshness lifetime from response headers (RFC 9111 4.2.1): `s-maxage`, then `max-age`,
/// then `Expires - Date`; minus `Age`. `None` when the origin says nothing.
pub fn freshness(
    cache_control: Option<&str>,
    expires: Option<&str>,
    date: Option<&str>,
    age: Option<&str>,
) -> Option<Duration> {
    let mut max_age = None;
    let mut s_maxage = None;
    if let Some(cc) = cache_control {
        for directive in cc.split(',') {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let secs = value.and_then(|v| v.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "s-maxage" => s_maxage = secs,
                "max-age" => max_age = secs,
                _ => {}
            }
        }
    }
    let lifetime = s_maxage.or(max_age).map(Duration::from_secs).or_else(|| {
        let expires = httpdate::parse_http_date(expires?).ok()?;
        let date = date
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .unwrap_or_else(SystemTime::now);
        Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
    })?;
    // RFC 9111 §5.1: the first member of a list-valued Age counts; an invalid one is ignored.
    let age = age
        .and_then(|a| a.split(',').next())
        .map(str::trim)
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
        .map_or(0, |a| a.parse::<u64>().unwrap_or(u64::MAX));
    Some(lifetime.saturating_sub(Duration::from_secs(age)))
}

/// `true` when Cache-Control forbids shared caches from storing the response.
pub fn forbids_storing(cache_control: Option<&str>) -> bool {
    cache_control.is_some_and(|cc| {
        cc.split(',').any(|d| {
            let name = d
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            name == "no-store" || name == "private"
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_download_still_in_use_serves_later_askers_within_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.jpg");
        let origin = Origin::Dir(dir.path().to_path_buf());
        let mut fetcher = OriginFetcher::new(&PerformanceConfig::default_for(2), 1 << 20, None);
        async fn fetch(fetcher: &OriginFetcher, origin: &Origin) -> Fetched {
            fetcher.fetch(origin, "/a.jpg", None).await.unwrap()
        }
        let fetched = |body: &'static [u8], no_store, ttl| Fetched {
            body: Bytes::from_static(body),
            content_type: None,
            ttl,
            no_store,
            last_modified: None,
            etag: None,
            tags: Vec::new(),
        };
        std::fs::write(&file, b"first").unwrap();
        let held = fetch(&fetcher, &origin).await;
        // The original changes at the origin while a job still holds the first download:
        // askers within the window get the very same buffer, not a second download.
        std::fs::write(&file, b"second").unwrap();
        let again = fetch(&fetcher, &origin).await;
        assert_eq!(&again.body[..], b"first");
        assert_eq!(again.body.as_ptr(), held.body.as_ptr());
        // Unless the asker must not see anything from before a purge that came after it.
        let purged = SystemTime::now();
        let after_purge = fetcher
            .fetch(&origin, "/a.jpg", Some(purged))
            .await
            .unwrap();
        assert_eq!(&after_purge.body[..], b"second");
        drop(after_purge);
        // Once nobody holds it, the next asker downloads afresh.
        drop((held, again));
        assert_eq!(&fetch(&fetcher, &origin).await.body[..], b"second");
        // A buffer still held but older than the window is not served either.
        fetcher.reuse_window = Duration::from_millis(50);
        let held = fetch(&fetcher, &origin).await;
        assert_eq!(&held.body[..], b"second");
        std::fs::write(&file, b"third").unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(&fetch(&fetcher, &origin).await.body[..], b"third");
        // Nor one the origin forbade keeping, or gave no freshness to, however fresh.
        fetcher.reuse_window = REUSE_WINDOW;
        for (no_store, ttl) in [(true, None), (false, Some(Duration::ZERO))] {
            let _kept = fetcher.remember("k", fetched(b"x", no_store, ttl), SystemTime::now());
            assert!(
                fetcher.reuse("k", None).is_none(),
                "reused {no_store} {ttl:?}"
            );
        }
        // A reused original's freshness is what is left of the origin's.
        let kept = fetcher.remember(
            "k",
            fetched(b"x", false, Some(Duration::from_secs(60))),
            SystemTime::now(),
        );
        let ttl = fetcher.reuse("k", None).unwrap().ttl.unwrap();
        assert!(ttl <= Duration::from_secs(60) && ttl > Duration::from_secs(55));
        // Entries nobody holds any more are dropped as new ones arrive.
        drop((kept, held));
        let _other = fetcher.remember("other", fetched(b"y", false, None), SystemTime::now());
        assert_eq!(fetcher.recent.lock().unwrap().len(), 1);
    }

    #[test]
    fn freshness_prefers_s_maxage_and_subtracts_age() {
        assert_eq!(
            freshness(Some("max-age=100, s-maxage=50"), None, None, Some("10")),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            freshness(Some("public, max-age=100"), None, None, None),
            Some(Duration::from_secs(100))
        );
        assert_eq!(
            freshness(Some("max-age=5"), None, None, Some("60")),
            Some(Duration::ZERO)
        );
        assert_eq!(freshness(Some("public"), None, None, None), None);
        assert_eq!(
            freshness(Some("max-age=100"), None, None, Some("10, 50")),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            freshness(Some("max-age=100"), None, None, Some("+50")),
            Some(Duration::from_secs(100))
        );
        assert_eq!(freshness(None, None, None, None), None);
    }

    #[test]
    fn freshness_from_expires_minus_date() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let expires = "Sun, 06 Nov 1994 08:59:37 GMT";
        assert_eq!(
            freshness(None, Some(expires), Some(date), None),
            Some(Duration::from_secs(600))
        );
        assert_eq!(freshness(None, Some("0"), Some(date), None), None);
    }

    #[test]
    fn no_store_and_private_forbid_storing() {
        assert!(forbids_storing(Some("no-store")));
        assert!(forbids_storing(Some("max-age=10, Private")));
        assert!(!forbids_storing(Some("public, max-age=10")));
        assert!(!forbids_storing(None));
    }
}
