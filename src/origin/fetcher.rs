//! `OriginFetcher`: downloads originals with bounded concurrency over pooled connections, one
//! download shared by every concurrent asker (and, for a few seconds, by later ones while a job
//! still holds it), within the byte limit, the timeouts and the source budget (`held.rs`).

use super::address::Access;
use super::error::OriginError;
use super::fetched::Fetched;
use super::{dir, held, http, resolve};
use crate::config::{HttpOrigin, Origin, PerformanceConfig};
use crate::metrics;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// Downloads originals with bounded concurrency over pooled connections.
pub struct OriginFetcher {
    /// One connector, and so one keep-alive pool of `pool_size` idle connections, per origin
    /// host: Pingora bounds a connector's pool as a whole, so with one shared connector a busy
    /// origin would evict every other origin's idle connections. The hosts are bounded by the
    /// config (site origins and their allow-lists), so the map is too.
    connectors: Mutex<HashMap<String, Arc<Connector>>>,
    connector_options: ConnectorOptions,
    downloads: Semaphore,
    /// Bytes of originals held at once, from download to the end of their last job.
    held: held::SourceBudget,
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
            held: held::SourceBudget::new(
                perf.source_budget_bytes.max(max_bytes),
                perf.max_concurrent_downloads,
                perf.origin_timeout,
            ),
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
            reused.askers.add();
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
        drop(in_flight);
        if let Ok(fetched) = &result {
            fetched.askers.add();
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

    /// One download. Waiting for a download slot counts against the origin timeout, and so
    /// does reading the body; waiting for room in the source budget between the two does not
    /// (it has its own limit, and answers 503 rather than 504: the origin is not to blame).
    async fn download(
        &self,
        origin: &Origin,
        access: &Access,
        path: &str,
    ) -> Result<Fetched, OriginError> {
        let timeout = self.perf.origin_timeout;
        let started = Instant::now();
        let result = async {
            let deadline = tokio::time::Instant::now() + timeout;
            let _permit = within(deadline, timeout, async {
                self.downloads
                    .acquire()
                    .await
                    .map_err(|_| OriginError::Unreachable("shutting down".into()))
            })
            .await?;
            let _active = metrics::ActiveGuard::new(&metrics::ACTIVE_DOWNLOADS);
            match origin {
                Origin::Http(o) => {
                    let connector = self.connector_for(o);
                    let started = within(deadline, timeout, async {
                        let peer = http::peer_for(o, &access.reach, &self.perf).await?;
                        http::start(&connector, peer, o, path, self.max_bytes).await
                    })
                    .await?;
                    let size = started.declared_len().unwrap_or(self.max_bytes);
                    let body = started.read_body(&connector, &self.perf, self.max_bytes);
                    self.hold_then_read(size, deadline, body).await
                }
                Origin::Dir(d) => {
                    let opened = within(
                        deadline,
                        timeout,
                        dir::open(d, path, self.max_bytes, access.dotfiles),
                    )
                    .await?;
                    let size = opened.len();
                    self.hold_then_read(size, deadline, opened.read(self.max_bytes))
                        .await
                }
            }
        }
        .await;
        metrics::observe_origin_fetch(
            started.elapsed(),
            result.as_ref().map(|f| f.body.len()).map_err(|_| ()),
        );
        result
    }

    /// Set `size` bytes of the source budget aside (waiting for room if need be), then run
    /// `read`, the body's download, by `deadline` moved on by the wait, and tie the hold to
    /// the body it brings.
    async fn hold_then_read(
        &self,
        size: u64,
        deadline: tokio::time::Instant,
        read: impl std::future::Future<Output = Result<Fetched, OriginError>>,
    ) -> Result<Fetched, OriginError> {
        let waited = tokio::time::Instant::now();
        let held = self.held.hold(size).await?;
        let deadline = deadline + waited.elapsed();
        let mut fetched = within(deadline, self.perf.origin_timeout, read).await?;
        fetched.body = held.attach(fetched.body);
        Ok(fetched)
    }
}

/// `f`, or a timeout error naming `timeout` if it has not finished by `deadline`.
async fn within<T>(
    deadline: tokio::time::Instant,
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, OriginError>>,
) -> Result<T, OriginError> {
    tokio::time::timeout_at(deadline, f)
        .await
        .unwrap_or(Err(OriginError::Timeout(timeout)))
}

/// Whether a download that began at `started` is recent enough for someone who must not see
/// anything from before `not_before`.
fn began_after(started: SystemTime, not_before: Option<SystemTime>) -> bool {
    not_before.is_none_or(|p| started >= p)
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
            askers: Default::default(),
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

    /// A real HTTP/1.1 server on loopback answering every GET with `body`, with a
    /// `Content-Length` or (`announce` false) without one, ending the body by closing.
    async fn serve(body: Vec<u8>, announce: bool) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(body);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        let Ok(n) = conn.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        head.extend_from_slice(&buf[..n]);
                        if !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            continue;
                        }
                        head.clear();
                        let header = if announce {
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                        } else {
                            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string()
                        };
                        if conn.write_all(header.as_bytes()).await.is_err()
                            || conn.write_all(&body).await.is_err()
                            || !announce
                        {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    /// Start fetching `paths` at once, each task keeping what it fetched until `release`
    /// counts past its rank (the n-th to get its original is let go when `release` > n);
    /// returns the tasks and how many have their original.
    fn hold_all(
        fetcher: &Arc<OriginFetcher>,
        origin: &Origin,
        paths: impl IntoIterator<Item = String>,
        release: &tokio::sync::watch::Receiver<usize>,
        done: &Arc<std::sync::atomic::AtomicUsize>,
    ) -> Vec<tokio::task::JoinHandle<Result<usize, OriginError>>> {
        use std::sync::atomic::Ordering;
        paths
            .into_iter()
            .map(|path| {
                let (fetcher, origin) = (fetcher.clone(), origin.clone());
                let (mut release, done) = (release.clone(), done.clone());
                tokio::spawn(async move {
                    let got = fetcher.fetch(&origin, &path, None).await?;
                    // Held like a job holds its input, until this one is let go: the first to
                    // finish is the first let go, whatever order the tasks ran in.
                    let rank = done.fetch_add(1, Ordering::SeqCst);
                    let _ = release.wait_for(|&n| n > rank).await;
                    Ok(got.body.len())
                })
            })
            .collect()
    }

    async fn settle_until(what: impl Fn() -> bool) {
        for _ in 0..1000 {
            if what() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // And a little longer, for anything that should not happen.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Distinct originals (no download shared) are held within the source budget, whatever
    /// kind of origin: the rest wait before reading their bodies and go on as bytes are given
    /// back. Before the budget, every download went ahead and all were held at once.
    #[tokio::test]
    async fn distinct_originals_are_held_within_the_source_budget() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const SIZE: usize = 256 << 10;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("{i}.jpg")), vec![i as u8; SIZE]).unwrap();
        }
        let http = Origin::Http(HttpOrigin {
            tls: false,
            host: "127.0.0.1".into(),
            port: serve(vec![9u8; SIZE], true).await,
            base_path: String::new(),
        });
        let perf = PerformanceConfig {
            source_budget_bytes: 3 * SIZE as u64,
            origin_timeout: Duration::from_secs(10),
            ..PerformanceConfig::default_for(2)
        };
        for (origin, paths) in [
            (
                Origin::Dir(dir.path().to_path_buf()),
                (0..5).map(|i| format!("/{i}.jpg")).collect::<Vec<_>>(),
            ),
            (http, (0..5).map(|i| format!("/a.jpg?{i}")).collect()),
        ] {
            let fetcher = Arc::new(OriginFetcher::new(&perf, SIZE as u64, None));
            let (release, released) = tokio::sync::watch::channel(0usize);
            let done = Arc::new(AtomicUsize::new(0));
            let tasks = hold_all(&fetcher, &origin, paths, &released, &done);
            settle_until(|| done.load(Ordering::SeqCst) >= 3).await;
            assert_eq!(done.load(Ordering::SeqCst), 3, "{origin:?}: held at once");
            assert_eq!(fetcher.held.in_use(), 3 * SIZE as u64);
            // One original let go: one more download goes ahead.
            release.send(1).unwrap();
            settle_until(|| done.load(Ordering::SeqCst) >= 4).await;
            assert_eq!(done.load(Ordering::SeqCst), 4, "{origin:?}");
            release.send(5).unwrap();
            for t in tasks {
                assert_eq!(t.await.unwrap().unwrap(), SIZE);
            }
            assert_eq!(fetcher.held.in_use(), 0, "{origin:?}: bytes not given back");
        }
    }

    /// A body of unannounced length sets aside the most it may be while it downloads, then
    /// only what it was.
    #[tokio::test]
    async fn an_unannounced_body_holds_the_limit_until_its_size_is_known() {
        const LIMIT: u64 = 1 << 20;
        let unannounced = Origin::Http(HttpOrigin {
            tls: false,
            host: "127.0.0.1".into(),
            port: serve(vec![1u8; 100 << 10], false).await,
            base_path: String::new(),
        });
        let perf = PerformanceConfig {
            source_budget_bytes: LIMIT,
            origin_timeout: Duration::from_millis(300),
            ..PerformanceConfig::default_for(2)
        };
        let fetcher = OriginFetcher::new(&perf, LIMIT, None);
        let first = fetcher.fetch(&unannounced, "/a?1", None).await.unwrap();
        assert_eq!(first.body.len(), 100 << 10);
        assert_eq!(fetcher.held.in_use(), 100 << 10);
        // A second one could be up to the limit: no room while the first is held...
        let busy = fetcher.fetch(&unannounced, "/a?2", None).await.unwrap_err();
        assert!(matches!(busy, OriginError::Busy), "{busy:?}");
        // ...and room once it is let go.
        drop(first);
        let second = fetcher.fetch(&unannounced, "/a?2", None).await.unwrap();
        assert_eq!(second.body.len(), 100 << 10);
    }

    #[tokio::test]
    async fn askers_count_every_fetch_one_download_answered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jpg"), b"bytes").unwrap();
        std::fs::write(dir.path().join("b.jpg"), b"bytes").unwrap();
        let origin = Origin::Dir(dir.path().to_path_buf());
        let fetcher = OriginFetcher::new(&PerformanceConfig::default_for(2), 1 << 20, None);
        let lone = fetcher.fetch(&origin, "/a.jpg", None).await.unwrap();
        assert!(!lone.askers.is_shared());
        // A later fetch while it is held reuses it: both now see it shared.
        let again = fetcher.fetch(&origin, "/a.jpg", None).await.unwrap();
        assert!(again.askers.is_shared() && lone.askers.is_shared());
        // Two at once share one download.
        let (x, y) = tokio::join!(
            fetcher.fetch(&origin, "/b.jpg", None),
            fetcher.fetch(&origin, "/b.jpg", None)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.body.as_ptr(), y.body.as_ptr());
        assert!(x.askers.is_shared() && y.askers.is_shared());
    }
}
