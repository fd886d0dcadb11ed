//! The memory tier: serialized cache entries in a byte-bounded `moka` cache (TinyLFU admission,
//! LRU eviction). Sees keys and bytes only.

use crate::metrics;
use bytes::Bytes;
use moka::sync::Cache;
use std::any::Any;
use std::sync::{Arc, OnceLock};

/// One stored response: Pingora's serialized meta (internal + header) and the body.
#[derive(Debug)]
pub struct StoredEntry {
    pub meta: (Vec<u8>, Vec<u8>),
    pub body: Bytes,
    /// Whatever a reader derived from `meta` once and wants to reuse on every hit (the edge
    /// keeps its ready-to-send response header here). Opaque to the cache; it lives and dies
    /// with this entry, so replacing the meta or removing the entry also drops it.
    pub memo: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl StoredEntry {
    pub fn new(meta: (Vec<u8>, Vec<u8>), body: Bytes) -> StoredEntry {
        StoredEntry {
            meta,
            body,
            memo: OnceLock::new(),
        }
    }

    /// What the entry costs against the budget: body, meta and a fixed overhead for the key
    /// and bookkeeping.
    pub fn weight(&self) -> u32 {
        let bytes = self.body.len() + self.meta.0.len() + self.meta.1.len() + 256;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

pub struct MemoryTier {
    entries: Cache<String, Arc<StoredEntry>>,
}

/// Called with the key of each entry evicted for space (not for explicit removal).
pub type OnEvict = Box<dyn Fn(&str) + Send + Sync>;

impl MemoryTier {
    pub fn new(budget_bytes: u64, on_evict: Option<OnEvict>) -> MemoryTier {
        let entries = Cache::builder()
            .max_capacity(budget_bytes)
            .weigher(|_k: &String, v: &Arc<StoredEntry>| v.weight())
            .eviction_listener(move |k: Arc<String>, _v, cause| {
                if cause.was_evicted() {
                    metrics::CACHE_EVICTIONS
                        .with_label_values(&["memory"])
                        .inc();
                    if let Some(f) = &on_evict {
                        f(&k);
                    }
                }
            })
            .build();
        MemoryTier { entries }
    }

    pub fn get(&self, key: &str) -> Option<Arc<StoredEntry>> {
        let hit = self.entries.get(key);
        let result = if hit.is_some() { "hit" } else { "miss" };
        metrics::CACHE_LOOKUPS
            .with_label_values(&["memory", result])
            .inc();
        hit
    }

    /// The entry, without counting a lookup (promotion, purge).
    pub fn peek(&self, key: &str) -> Option<Arc<StoredEntry>> {
        self.entries.get(key)
    }

    /// Is the entry held? Not counted as a lookup.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn insert(&self, key: String, entry: StoredEntry) -> Arc<StoredEntry> {
        let entry = Arc::new(entry);
        self.entries.insert(key, entry.clone());
        // Apply admission and eviction now rather than on moka's next housekeeping pass, so the
        // budget holds between inserts. Inserts are misses (or promotions): rare next to hits.
        self.entries.run_pending_tasks();
        self.publish_size();
        entry
    }

    pub fn remove(&self, key: &str) -> bool {
        let removed = self.entries.remove(key).is_some();
        self.publish_size();
        removed
    }

    /// Replace the meta of an entry, keeping its body (after a revalidation or a soft purge).
    pub fn replace_meta(&self, key: &str, meta: (Vec<u8>, Vec<u8>)) -> bool {
        match self.entries.get(key) {
            Some(old) => {
                self.entries.insert(
                    key.to_string(),
                    Arc::new(StoredEntry::new(meta, old.body.clone())),
                );
                true
            }
            None => false,
        }
    }

    /// Entries and weighted bytes now, after pending maintenance.
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    fn publish_size(&self) {
        metrics::CACHE_ENTRIES
            .with_label_values(&["memory"])
            .set(self.entries.entry_count() as i64);
        metrics::CACHE_BYTES
            .with_label_values(&["memory"])
            .set(self.entries.weighted_size() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> StoredEntry {
        StoredEntry::new((vec![0; 10], vec![0; 10]), Bytes::from(vec![7u8; n]))
    }

    #[test]
    fn stays_within_byte_budget() {
        let tier = MemoryTier::new(100_000, None);
        for i in 0..100 {
            tier.insert(format!("k{i}"), entry(10_000));
        }
        let (_, bytes) = tier.usage();
        assert!(bytes <= 100_000, "weighted size {bytes} over budget");
    }

    #[test]
    fn replace_meta_keeps_body() {
        let tier = MemoryTier::new(1 << 20, None);
        tier.insert("k".into(), entry(5));
        assert!(tier.replace_meta("k", (vec![1], vec![2])));
        let e = tier.get("k").unwrap();
        assert_eq!(e.meta, (vec![1], vec![2]));
        assert_eq!(e.body.len(), 5);
        assert!(!tier.replace_meta("absent", (vec![], vec![])));
    }
}
