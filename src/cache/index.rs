//! The purge index: which stored entries (combined hashes, one per Vary variant) belong to a
//! primary key, and which primary keys carry a tag. Filled at store time and rebuilt from disk
//! entry headers at startup; an entry leaves it when no tier holds it any more. Sees key strings
//! and tags only; what a key means is for the caller's predicate to decide.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What to select. Everything listed is unioned.
#[derive(Default)]
pub struct PurgeQuery<'a> {
    /// Exact primary keys.
    pub primaries: Vec<String>,
    pub tags: Vec<String>,
    /// Any primary key for which this returns true (a scan over all keys).
    pub matching: Option<&'a (dyn Fn(&str) -> bool + Sync)>,
    pub everything: bool,
}

#[derive(Default)]
struct Primary {
    hashes: HashSet<String>,
    tags: Vec<String>,
}

#[derive(Default)]
struct Maps {
    primary_of: HashMap<String, String>,
    primaries: HashMap<String, Primary>,
    tags: HashMap<String, HashSet<String>>,
}

#[derive(Default)]
pub struct PurgeIndex {
    maps: Mutex<Maps>,
}

impl PurgeIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a stored entry. The tags of the latest store win for the whole primary key.
    pub fn record(&self, hash: &str, primary: &str, tags: &[String]) {
        let mut m = self.lock();
        if let Some(old) = m.primary_of.insert(hash.to_string(), primary.to_string()) {
            if old != primary {
                drop_hash(&mut m, hash, &old);
            }
        }
        let old_tags = {
            let p = m.primaries.entry(primary.to_string()).or_default();
            p.hashes.insert(hash.to_string());
            std::mem::replace(&mut p.tags, tags.to_vec())
        };
        for t in old_tags {
            untag(&mut m, &t, primary);
        }
        for t in tags {
            m.tags
                .entry(t.clone())
                .or_default()
                .insert(primary.to_string());
        }
    }

    /// Forget an entry no tier holds any more.
    pub fn forget(&self, hash: &str) {
        let mut m = self.lock();
        if let Some(primary) = m.primary_of.remove(hash) {
            drop_hash(&mut m, hash, &primary);
        }
    }

    /// The hashes the query selects.
    pub fn select(&self, q: &PurgeQuery<'_>) -> Vec<String> {
        let m = self.lock();
        if q.everything {
            return m.primary_of.keys().cloned().collect();
        }
        let mut keys: HashSet<&str> = q
            .primaries
            .iter()
            .map(String::as_str)
            .filter(|p| m.primaries.contains_key(*p))
            .collect();
        for t in &q.tags {
            if let Some(ps) = m.tags.get(t) {
                keys.extend(ps.iter().map(String::as_str));
            }
        }
        if let Some(matching) = q.matching {
            keys.extend(
                m.primaries
                    .keys()
                    .map(String::as_str)
                    .filter(|p| matching(p)),
            );
        }
        keys.iter()
            .filter_map(|p| m.primaries.get(*p))
            .flat_map(|p| p.hashes.iter().cloned())
            .collect()
    }

    /// Number of entries indexed.
    pub fn len(&self) -> usize {
        self.lock().primary_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn drop_hash(m: &mut Maps, hash: &str, primary: &str) {
    let Some(p) = m.primaries.get_mut(primary) else {
        return;
    };
    p.hashes.remove(hash);
    if p.hashes.is_empty() {
        let tags = m
            .primaries
            .remove(primary)
            .map(|p| p.tags)
            .unwrap_or_default();
        for t in tags {
            untag(m, &t, primary);
        }
    }
}

fn untag(m: &mut Maps, tag: &str, primary: &str) {
    if let Some(set) = m.tags.get_mut(tag) {
        set.remove(primary);
        if set.is_empty() {
            m.tags.remove(tag);
        }
    }
}

/// Tags from response headers: `Surrogate-Key` is space separated, `Cache-Tag` comma separated.
pub fn tags_from_headers<'a>(
    surrogate_key: impl Iterator<Item = &'a str>,
    cache_tag: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let mut tags: Vec<String> = surrogate_key
        .flat_map(|v| v.split_ascii_whitespace())
        .chain(cache_tag.flat_map(|v| v.split(',')))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_primary_tag_and_predicate_and_forgets() {
        let idx = PurgeIndex::default();
        idx.record("h1", "0|raw|/a.jpg", &["t1".into()]);
        idx.record("h2", "0|raw|/a.jpg", &["t1".into()]);
        idx.record("h3", "0|raw|/b.jpg", &["t2".into()]);
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let q = PurgeQuery {
            primaries: vec!["0|raw|/a.jpg".into()],
            ..Default::default()
        };
        assert_eq!(sorted(idx.select(&q)), ["h1", "h2"]);
        let q = PurgeQuery {
            tags: vec!["t2".into()],
            ..Default::default()
        };
        assert_eq!(idx.select(&q), ["h3"]);
        let pred = |p: &str| p.ends_with("b.jpg");
        let q = PurgeQuery {
            matching: Some(&pred),
            ..Default::default()
        };
        assert_eq!(idx.select(&q), ["h3"]);
        idx.forget("h3");
        assert!(idx.select(&q).is_empty());
        let q = PurgeQuery {
            tags: vec!["t2".into()],
            ..Default::default()
        };
        assert!(idx.select(&q).is_empty());
        let all = PurgeQuery {
            everything: true,
            ..Default::default()
        };
        assert_eq!(idx.len(), 2);
        assert_eq!(sorted(idx.select(&all)), ["h1", "h2"]);
    }

    #[test]
    fn tags_parse_from_both_headers() {
        assert_eq!(
            tags_from_headers(["a  b"].into_iter(), ["c, d,a"].into_iter()),
            ["a", "b", "c", "d"]
        );
    }
}
