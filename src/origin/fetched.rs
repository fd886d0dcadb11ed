//! What a download yields (`Fetched`: the body, its freshness, how many asked for it) and the
//! origin's caching headers read for it (`freshness`, `forbids_storing`).

use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// How many fetches this download has answered so far: every asker that joined it while
    /// it ran, or reused it after, counts. Shared by all their copies.
    pub askers: Askers,
}

/// The count of fetches one download answered.
#[derive(Debug, Clone, Default)]
pub struct Askers(Arc<AtomicUsize>);

impl Askers {
    /// Whether another fetch got these same bytes (so a job may share a decode with theirs).
    pub fn is_shared(&self) -> bool {
        self.0.load(Ordering::Acquire) > 1
    }

    pub(super) fn add(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
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
