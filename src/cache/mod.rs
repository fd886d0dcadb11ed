//! The edge cache behind `pingora_cache::Storage`: keys in, serialized metas and bodies out.
//! Today one tier (memory); the disk tier slots in under it in [`TieredStorage`] without the
//! proxy noticing. Never sees transform options or HTTP requests.

pub mod memory;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use memory::{MemoryTier, StoredEntry};
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::{
    HandleHit, HandleMiss, MissFinishType, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta, HitHandler, MissHandler, Storage};
use pingora_error::{Error, ErrorType, Result};
use std::any::Any;
use std::sync::Arc;
use std::time::SystemTime;

/// The storage the edge enables on every cacheable request.
pub struct TieredStorage {
    memory: MemoryTier,
}

impl TieredStorage {
    pub fn new(memory_bytes: u64) -> TieredStorage {
        TieredStorage {
            memory: MemoryTier::new(memory_bytes),
        }
    }

    /// Leak one for Pingora, which wants `&'static dyn Storage`. Created once per process.
    pub fn leak(self) -> &'static TieredStorage {
        Box::leak(Box::new(self))
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key.combined();
        let Some(entry) = self.memory.get(&hash) else {
            return Ok(None);
        };
        let meta = match CacheMeta::deserialize(&entry.meta.0, &entry.meta.1) {
            Ok(m) => m,
            Err(e) => {
                // A meta we cannot read is a miss, and removed so it cannot fail again.
                log::warn!("dropping unreadable cache entry {hash}: {e}");
                self.memory.remove(&hash);
                return Ok(None);
            }
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
        Ok(Box::new(Miss {
            storage: self,
            key: key.combined(),
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
        let hash = target.key().combined();
        Ok(if self.memory.remove(&hash) {
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
        let Some(entry) = self.memory.get(&hash) else {
            return Ok(PurgeOutcome::NotFound);
        };
        let mut meta = CacheMeta::deserialize(&entry.meta.0, &entry.meta.1)?;
        meta.expire_at(SystemTime::now());
        self.memory.replace_meta(&hash, meta.serialize()?);
        Ok(PurgeOutcome::Expired)
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        // The entry may have been evicted between lookup and revalidation: not an error.
        Ok(self.memory.replace_meta(&key.combined(), meta.serialize()?))
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
    key: String,
    meta: (Vec<u8>, Vec<u8>),
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
        self.storage.memory.insert(
            self.key,
            StoredEntry {
                meta: self.meta,
                body: self.body.freeze(),
            },
        );
        Ok(MissFinishType::Created(size))
    }
}
