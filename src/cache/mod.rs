//! The edge cache behind `pingora_cache::Storage`: keys in, serialized metas and bodies out.
//! Two tiers: memory (moka) over an optional disk tier. A lookup tries memory, then disk (a disk
//! hit is promoted to memory); a finished miss goes to both. A purge index maps primary keys
//! and tags to the stored variants so the admin purge API can find them. Never sees transform
//! options or HTTP requests: purge targets arrive as primary-key strings and predicates.

pub mod disk;
pub mod index;
pub mod memory;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use disk::{DiskEntry, DiskTier};
pub use index::PurgeQuery;
use index::{tags_from_headers, PurgeIndex};
use memory::MemoryTier;
pub use memory::StoredEntry;
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::{
    HandleHit, HandleMiss, MissFinishType, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta, HitHandler, MissHandler, Storage};
use pingora_error::{Error, ErrorType, Result};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Meta = (Vec<u8>, Vec<u8>);

/// Marker put in the extensions of a [`CacheMeta`] returned for a disk hit, so the edge can say
/// which tier answered (`Cache-Status: imgate; hit; detail=disk`).
#[derive(Debug, Clone, Copy)]
struct FromDisk;

/// Did this hit come from the disk tier?
pub fn served_from_disk(meta: &CacheMeta) -> bool {
    meta.extensions().get::<FromDisk>().is_some()
}

/// Put by the edge in the extensions of the [`CacheMeta`] of a response it is about to store:
/// [`TieredStorage::fill_started`] from when it asked upstream. A fill that an admin purge, or
/// an invalidation of its own key, overtook is served but not stored, since what it carries
/// may be what was purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillStarted {
    generation: u64,
    invalidations: u64,
}

/// How many single-key invalidations are remembered, and for how long: a fill that began before
/// one that is no longer remembered is not stored (`TieredStorage::overtaken`).
const INVALIDATIONS_KEPT: u64 = 65_536;
const INVALIDATIONS_TTL: Duration = Duration::from_secs(600);

/// Entries removed or expired by one purge, per tier.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCounts {
    pub memory: u64,
    pub disk: u64,
}

/// The storage the edge enables on every cacheable request.
pub struct TieredStorage {
    memory: MemoryTier,
    disk: Option<Arc<DiskTier>>,
    index: Arc<PurgeIndex>,
    /// When the last admin purge began, in nanoseconds since the Unix epoch (0: none yet),
    /// kept strictly increasing so that it is also the purge generation ([`FillStarted`]).
    last_purge: AtomicU64,
    /// Single-key invalidations (`Storage::purge`: RFC 9111 §4.4 after an unsafe request) so
    /// far; each is numbered by this count.
    invalidations: AtomicU64,
    /// The number of the latest invalidation of each primary-key hash (recent ones only).
    invalidated: moka::sync::Cache<String, u64>,
    /// The highest number `invalidated` has let go of (expired or evicted).
    forgotten: Arc<AtomicU64>,
}

impl TieredStorage {
    /// Memory only.
    pub fn new(memory_bytes: u64) -> TieredStorage {
        TieredStorage::build(memory_bytes, None, Arc::default())
    }

    /// Memory over a disk tier in `dir`. Scans the directory (blocking: call at startup) to
    /// rebuild the recency and purge indexes.
    pub fn with_disk(memory_bytes: u64, dir: &Path, disk_bytes: u64) -> std::io::Result<Self> {
        let (disk, scanned) = DiskTier::open(dir, disk_bytes)?;
        let index = Arc::new(PurgeIndex::default());
        for e in &scanned {
            index.record(&e.hash, &e.primary, &e.tags);
        }
        log::info!(
            "disk cache {}: {} entries, {} bytes",
            dir.display(),
            disk.usage().0,
            disk.usage().1
        );
        Ok(TieredStorage::build(
            memory_bytes,
            Some(Arc::new(disk)),
            index,
        ))
    }

    fn build(memory_bytes: u64, disk: Option<Arc<DiskTier>>, index: Arc<PurgeIndex>) -> Self {
        // An entry evicted from memory stays in the purge index while disk still holds it.
        let (evict_index, evict_disk) = (index.clone(), disk.clone());
        let on_evict: memory::OnEvict = Box::new(move |hash: &str| {
            if !evict_disk.as_ref().is_some_and(|d| d.contains(hash)) {
                evict_index.forget(hash);
            }
        });
        let forgotten = Arc::new(AtomicU64::new(0));
        let on_forget = forgotten.clone();
        let invalidated = moka::sync::Cache::builder()
            .max_capacity(INVALIDATIONS_KEPT)
            .time_to_live(INVALIDATIONS_TTL)
            .eviction_listener(move |_, number: u64, cause| {
                // A replaced number is smaller than its replacement, which stays.
                if cause != moka::notification::RemovalCause::Replaced {
                    on_forget.fetch_max(number, Ordering::AcqRel);
                }
            })
            .build();
        TieredStorage {
            memory: MemoryTier::new(memory_bytes, Some(on_evict)),
            disk,
            index,
            last_purge: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            invalidated,
            forgotten,
        }
    }

    /// What a fill that asks upstream now must be compared with when it finishes.
    pub fn fill_started(&self) -> FillStarted {
        FillStarted {
            generation: self.purge_generation(),
            invalidations: self.invalidations.load(Ordering::Acquire),
        }
    }

    /// Whether a purge or an invalidation that may cover the entry of `primary_hash` began after
    /// `started`.
    fn overtaken(&self, started: FillStarted, primary_hash: &str) -> bool {
        started.generation != self.purge_generation()
            || self
                .invalidated
                .get(primary_hash)
                .is_some_and(|n| n > started.invalidations)
            || self.forgotten.load(Ordering::Acquire) > started.invalidations
    }

    /// Changes whenever an admin purge begins; a fill stored under an older one is dropped.
    pub fn purge_generation(&self) -> u64 {
        self.last_purge.load(Ordering::Acquire)
    }

    /// When the last admin purge began, if any: originals fetched before then must not be
    /// reused for new variants.
    pub fn last_purge(&self) -> Option<SystemTime> {
        match self.purge_generation() {
            0 => None,
            nanos => Some(UNIX_EPOCH + Duration::from_nanos(nanos)),
        }
    }

    /// Leak one for Pingora, which wants `&'static dyn Storage`. Created once per process.
    pub fn leak(self) -> &'static TieredStorage {
        Box::leak(Box::new(self))
    }

    /// Run blocking disk work on tokio's blocking pool. `None` without a disk tier or when the
    /// task died (a panic in file code costs the operation, not the worker).
    async fn on_disk<T: Send + 'static>(
        &self,
        work: impl FnOnce(&DiskTier) -> T + Send + 'static,
    ) -> Option<T> {
        let disk = self.disk.clone()?;
        match tokio::task::spawn_blocking(move || work(&disk)).await {
            Ok(v) => Some(v),
            Err(e) => {
                log::error!("disk cache task failed: {e}");
                None
            }
        }
    }

    /// Drop the purge-index entries of hashes the disk evicted, unless memory still holds them.
    fn forget_evicted(&self, hashes: Vec<String>) {
        for h in hashes {
            if !self.memory.contains(&h) {
                self.index.forget(&h);
            }
        }
    }

    async fn lookup_disk(&'static self, hash: &str) -> Option<(CacheMeta, Arc<StoredEntry>)> {
        let disk = self.disk.as_ref()?;
        let indexed = disk.contains(hash);
        let found = if indexed {
            let h = hash.to_string();
            self.on_disk(move |d| d.read(&h)).await.flatten()
        } else {
            None
        };
        let result = if found.is_some() { "hit" } else { "miss" };
        crate::metrics::CACHE_LOOKUPS
            .with_label_values(&["disk", result])
            .inc();
        if indexed && found.is_none() {
            // The file was gone or damaged (and is now deleted): neither tier holds it.
            self.index.forget(hash);
        }
        let entry = found?;
        let mut meta = match CacheMeta::deserialize(&entry.meta.0, &entry.meta.1) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("dropping unreadable disk cache entry {hash}: {e}");
                let h = hash.to_string();
                self.on_disk(move |d| d.remove(&h)).await;
                self.index.forget(hash);
                return None;
            }
        };
        meta.extensions_mut().insert(FromDisk);
        // Promote: the next hit is served from memory.
        let stored = self
            .memory
            .insert(hash.to_string(), StoredEntry::new(entry.meta, entry.body));
        Some((meta, stored))
    }

    /// The entry for `key` if the memory tier holds it, not counted as a lookup: a caller that
    /// serves it counts the hit ([`TieredStorage::count_memory_hit`]); one that does not falls back to
    /// [`Storage::lookup`], which counts what it finds.
    pub fn memory_entry(&self, key: &CacheKey) -> Option<Arc<StoredEntry>> {
        self.memory.peek(&key.combined())
    }

    /// Count a memory-tier hit served from [`TieredStorage::memory_entry`].
    pub fn count_memory_hit(&self) {
        crate::metrics::MEMORY_LOOKUP_HITS.inc();
    }

    /// Purge what `query` selects from both tiers: delete, or with `soft` mark expired so the
    /// next request revalidates (or serves stale where the response allowed it).
    pub async fn purge_selected(&'static self, query: &PurgeQuery<'_>, soft: bool) -> PurgeCounts {
        // Before selecting: a fill that finishes from here on is not stored (`Miss::finish`).
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let _ = self
            .last_purge
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last.saturating_add(1)))
            });
        let hashes = self.index.select(query);
        let mut counts = PurgeCounts::default();
        for h in &hashes {
            let done = if soft {
                self.memory
                    .peek(h)
                    .and_then(|e| expired(&e.meta))
                    .is_some_and(|m| self.memory.replace_meta(h, m))
            } else {
                self.memory.remove(h)
            };
            counts.memory += u64::from(done);
        }
        let on_disk = hashes.clone();
        counts.disk = self
            .on_disk(move |d| {
                let mut n = 0u64;
                for h in &on_disk {
                    let done = if soft {
                        d.replace_meta(h, expired)
                    } else {
                        d.remove(h)
                    };
                    n += u64::from(done);
                }
                n
            })
            .await
            .unwrap_or(0);
        if !soft {
            for h in &hashes {
                self.index.forget(h);
            }
        }
        counts
    }
}

/// The meta with its freshness ended now; `None` if it cannot be read.
fn expired(meta: &Meta) -> Option<Meta> {
    let mut m = CacheMeta::deserialize(&meta.0, &meta.1).ok()?;
    m.expire_at(SystemTime::now());
    m.serialize().ok()
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key.combined();
        let (meta, entry) = match self.memory.get(&hash) {
            Some(entry) => match CacheMeta::deserialize(&entry.meta.0, &entry.meta.1) {
                Ok(m) => (m, entry),
                Err(e) => {
                    // A meta we cannot read is a miss, and removed so it cannot fail again.
                    log::warn!("dropping unreadable cache entry {hash}: {e}");
                    self.memory.remove(&hash);
                    return Ok(None);
                }
            },
            None => match self.lookup_disk(&hash).await {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        let end = entry.body.len();
        Ok(Some((
            meta,
            Box::new(Hit {
                entry,
                done: false,
                start: 0,
                end,
            }),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let headers = meta.headers();
        let values = |name: &'static str| {
            headers
                .get_all(name)
                .into_iter()
                .filter_map(|v| v.to_str().ok())
        };
        let tags = tags_from_headers(values("surrogate-key"), values("cache-tag"));
        let started = meta.extensions().get::<FillStarted>().copied();
        Ok(Box::new(Miss {
            storage: self,
            started,
            primary_hash: key.primary(),
            key: key.combined(),
            primary: String::from_utf8_lossy(key.primary_key()).into_owned(),
            tags,
            meta: meta.serialize()?,
            body: BytesMut::new(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        // Before removing: a fill of this key that finishes from here on is not stored.
        let number = self.invalidations.fetch_add(1, Ordering::AcqRel) + 1;
        self.invalidated.insert(target.key().primary(), number);
        let hash = target.key().combined();
        let in_memory = self.memory.remove(&hash);
        let h = hash.clone();
        let on_disk = self.on_disk(move |d| d.remove(&h)).await.unwrap_or(false);
        self.index.forget(&hash);
        Ok(if in_memory || on_disk {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash = target.key().combined();
        let in_memory = self
            .memory
            .peek(&hash)
            .and_then(|e| expired(&e.meta))
            .is_some_and(|m| self.memory.replace_meta(&hash, m));
        let on_disk = self
            .on_disk(move |d| d.replace_meta(&hash, expired))
            .await
            .unwrap_or(false);
        Ok(if in_memory || on_disk {
            PurgeOutcome::Expired
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        // The entry may have been evicted between lookup and revalidation: not an error.
        let hash = key.combined();
        let meta = meta.serialize()?;
        let in_memory = self.memory.replace_meta(&hash, meta.clone());
        let on_disk = self
            .on_disk(move |d| d.replace_meta(&hash, |_| Some(meta)))
            .await
            .unwrap_or(false);
        Ok(in_memory || on_disk)
    }

    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// A hit: the whole body in one piece, seekable for range requests.
struct Hit {
    entry: Arc<StoredEntry>,
    done: bool,
    start: usize,
    end: usize,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        // `Bytes::slice` shares the stored buffer: no copy on the hit path.
        Ok(Some(self.entry.body.slice(self.start..self.end)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.entry.body.len();
        if start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start {start} past end {len}"),
            );
        }
        self.start = start;
        self.end = end.map_or(len, |e| e.min(len));
        self.done = false;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.entry.body.len()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// A miss being filled: the body is gathered and stored whole at `finish`, so a reader never
/// sees a partial entry and an aborted fill leaves nothing behind.
struct Miss {
    storage: &'static TieredStorage,
    /// When the fill began, when the edge said (it does for every fill).
    started: Option<FillStarted>,
    /// Its primary key's hash, which invalidations name.
    primary_hash: String,
    key: String,
    primary: String,
    tags: Vec<String>,
    meta: Meta,
    body: BytesMut,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let size = self.body.len();
        let storage = self.storage;
        let (started, primary_hash) = (self.started, &self.primary_hash);
        let overtaken = || started.is_some_and(|s| storage.overtaken(s, primary_hash));
        if overtaken() {
            log::debug!(
                "not storing {}: a purge or an invalidation began during its fill",
                self.key
            );
            crate::metrics::CACHE_FILLS_DROPPED.inc();
            return Ok(MissFinishType::Created(size));
        }
        let entry = DiskEntry {
            primary: self.primary,
            tags: self.tags,
            meta: self.meta,
            body: self.body.freeze(),
        };
        storage.index.record(&self.key, &entry.primary, &entry.tags);
        // The disk write completes (or fails cleanly, leaving no file) before the miss is done.
        let (hash, written) = (self.key.clone(), entry.clone());
        match storage.on_disk(move |d| d.write(&hash, &written)).await {
            Some(Ok(evicted)) => storage.forget_evicted(evicted),
            Some(Err(e)) => {
                log::warn!("disk cache write failed for {}: {e}", self.key);
                crate::metrics::CACHE_DISK_ERRORS
                    .with_label_values(&["write"])
                    .inc();
            }
            None => {}
        }
        storage
            .memory
            .insert(self.key.clone(), StoredEntry::new(entry.meta, entry.body));
        // A purge bumps the generation (an invalidation records its key) before it looks for
        // entries, so one that began after the check above either found this entry (it was
        // indexed first) or shows here.
        if overtaken() {
            log::debug!(
                "unstoring {}: a purge or an invalidation began during its fill",
                self.key
            );
            crate::metrics::CACHE_FILLS_DROPPED.inc();
            storage.memory.remove(&self.key);
            let hash = self.key.clone();
            storage.on_disk(move |d| d.remove(&hash)).await;
            storage.index.forget(&self.key);
        }
        Ok(MissFinishType::Created(size))
    }
}
