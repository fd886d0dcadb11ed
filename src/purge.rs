//! The purge API's meaning: a `POST /purge` body (URLs, sources, prefixes, tags, everything;
//! hard or soft) resolved into primary cache keys and predicates exactly as the edge keys
//! requests, then applied to both cache tiers. Knows routes and sites; knows nothing of HTTP
//! (the admin listener parses and answers) or of how the tiers store entries.

use crate::cache::{PurgeCounts, PurgeQuery, TieredStorage};
use crate::config::Config;
use crate::dialect;
use crate::metrics;
use crate::route::{self, KeyedRoute};
use serde::{Deserialize, Serialize};

/// Most targets one call may name; more is a 400, so one request cannot pin the admin loop.
pub const MAX_TARGETS: usize = 100;

/// The public request shape. Every field is optional; at least one target is required.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub everything: bool,
    #[serde(default)]
    pub soft: bool,
}

/// A request we refuse, with the public message for the 400.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PurgeError(pub String);

/// A site path or a full URL, resolved to the sites it names and the path (with query).
struct Target {
    sites: Vec<usize>,
    path: String,
}

fn resolve(config: &Config, raw: &str) -> Result<Target, PurgeError> {
    let raw = raw.split('#').next().unwrap_or("");
    for scheme in ["http://", "https://"] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let Some((site, _)) = config.site_for(host) else {
                return Err(PurgeError(format!("no site answers for host '{host}'")));
            };
            let path = if path.is_empty() { "/" } else { path };
            return Ok(Target {
                sites: vec![site],
                path: path.to_string(),
            });
        }
    }
    if !raw.starts_with('/') {
        return Err(PurgeError(format!(
            "'{raw}' is neither a path starting with '/' nor an http(s):// URL"
        )));
    }
    Ok(Target {
        sites: (0..config.sites.len()).collect(),
        path: raw.to_string(),
    })
}

/// The primary keys of one URL on each site it names: transform URLs are canonicalised as the
/// edge does, so `w=300` and `width=300,dpr=1` purge the same entry.
fn url_keys(config: &Config, raw: &str) -> Result<Vec<String>, PurgeError> {
    let t = resolve(config, raw)?;
    let mut keys = Vec::with_capacity(t.sites.len());
    for &site in &t.sites {
        // Read in the site's own dialects and presets; a signature is not needed to purge.
        let key = match dialect::read_unverified(&config.sites[site].urls, &t.path) {
            Some(Ok(r)) => route::primary_key(
                site,
                KeyedRoute::Image {
                    canonical: &r.spec.canonical(),
                    source: &r.source.key(),
                },
            ),
            Some(Err(e)) => return Err(PurgeError(format!("'{raw}': {}", e.message))),
            None => route::primary_key(
                site,
                KeyedRoute::Raw {
                    path_and_query: &t.path,
                },
            ),
        };
        keys.push(key);
    }
    Ok(keys)
}

/// Matches keys by original (source) or by path prefix.
pub(crate) enum Matcher {
    /// Every transform of this original and its passthrough entry. `absolute` is the source
    /// key of the same text read as an absolute source URL, which any site may transform.
    Source {
        sites: Vec<usize>,
        path: String,
        absolute: Option<String>,
    },
    Prefix {
        sites: Vec<usize>,
        prefix: String,
    },
}

impl Matcher {
    fn source(config: &Config, raw: &str) -> Result<Matcher, PurgeError> {
        let t = resolve(config, raw)?;
        let path = route::parse_source(&t.path)
            .map_err(|e| PurgeError(format!("'{raw}': {e}")))?
            .key();
        let absolute = raw
            .contains("://")
            .then(|| route::parse_source(raw).ok().map(|s| s.key()))
            .flatten();
        Ok(Matcher::Source {
            sites: t.sites,
            path,
            absolute,
        })
    }

    fn prefix(config: &Config, raw: &str) -> Result<Matcher, PurgeError> {
        let t = resolve(config, raw)?;
        Ok(Matcher::Prefix {
            sites: t.sites,
            prefix: t.path,
        })
    }

    pub(crate) fn matches(&self, primary: &str) -> bool {
        let Some((site, keyed)) = route::parse_primary_key(primary) else {
            return false;
        };
        let text = match keyed {
            KeyedRoute::Image { source, .. } => source,
            KeyedRoute::Raw { path_and_query } => path_and_query,
        };
        match self {
            Matcher::Source {
                sites,
                path,
                absolute,
            } => {
                let image_absolute =
                    matches!(keyed, KeyedRoute::Image { .. }) && absolute.as_deref() == Some(text);
                image_absolute || (sites.contains(&site) && text == path)
            }
            Matcher::Prefix { sites, prefix } => {
                sites.contains(&site) && text.starts_with(prefix.as_str())
            }
        }
    }
}

impl PurgeRequest {
    fn target_count(&self) -> usize {
        self.urls.len()
            + self.sources.len()
            + self.prefixes.len()
            + self.tags.len()
            + usize::from(self.everything)
    }

    /// The primary keys the `urls` name and the matchers of `sources` and `prefixes`,
    /// canonicalised as the edge keys requests. Pure: touches no storage.
    pub(crate) fn plan(&self, config: &Config) -> Result<(Vec<String>, Vec<Matcher>), PurgeError> {
        let mut primaries = Vec::new();
        for u in &self.urls {
            primaries.extend(url_keys(config, u)?);
        }
        let mut matchers = Vec::new();
        for s in &self.sources {
            matchers.push(Matcher::source(config, s)?);
        }
        for p in &self.prefixes {
            matchers.push(Matcher::prefix(config, p)?);
        }
        Ok((primaries, matchers))
    }

    /// Resolve and apply. Errors are public messages (400).
    pub async fn run(
        &self,
        config: &Config,
        storage: &'static TieredStorage,
    ) -> Result<PurgeCounts, PurgeError> {
        let n = self.target_count();
        if n == 0 {
            return Err(PurgeError(
                "nothing to purge: name urls, sources, prefixes, tags or everything".into(),
            ));
        }
        if n > MAX_TARGETS {
            return Err(PurgeError(format!(
                "{n} targets: at most {MAX_TARGETS} per call"
            )));
        }
        let (primaries, matchers) = self.plan(config)?;
        let matching = |primary: &str| matchers.iter().any(|m| m.matches(primary));
        let matching: &(dyn Fn(&str) -> bool + Sync) = &matching;
        let query = PurgeQuery {
            primaries,
            tags: self.tags.clone(),
            matching: (!matchers.is_empty()).then_some(matching),
            everything: self.everything,
        };
        let counts = storage.purge_selected(&query, self.soft).await;

        let mode = if self.soft { "soft" } else { "hard" };
        for (kind, n) in [
            ("url", self.urls.len()),
            ("source", self.sources.len()),
            ("prefix", self.prefixes.len()),
            ("tag", self.tags.len()),
            ("everything", usize::from(self.everything)),
        ] {
            metrics::CACHE_PURGES
                .with_label_values(&[kind, mode])
                .inc_by(n as u64);
        }
        metrics::CACHE_PURGED_ENTRIES
            .with_label_values(&["memory", mode])
            .inc_by(counts.memory);
        metrics::CACHE_PURGED_ENTRIES
            .with_label_values(&["disk", mode])
            .inc_by(counts.disk);
        log::info!(
            "{mode} purge: urls {:?} sources {:?} prefixes {:?} tags {:?} everything {} -> memory {}, disk {}",
            self.urls,
            self.sources,
            self.prefixes,
            self.tags,
            self.everything,
            counts.memory,
            counts.disk
        );
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvOverrides;
    use std::path::Path;

    fn config() -> Config {
        Config::from_yaml(
            "sites: [{hosts: [img.example.com], origin: 'http://a'}, {hosts: ['*'], origin: 'http://b'}]",
            "t",
            Path::new("/"),
            &EnvOverrides::default(),
        )
        .unwrap()
    }

    #[test]
    fn urls_are_canonicalised_like_the_edge() {
        let c = config();
        let a = url_keys(
            &c,
            "http://img.example.com/cdn-cgi/image/w=300/photos/cat.jpg",
        )
        .unwrap();
        let b = url_keys(
            &c,
            "http://img.example.com/cdn-cgi/image/width=300,dpr=1/photos/cat.jpg",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, ["0|img|width=300|/photos/cat.jpg"]);
        assert_eq!(
            url_keys(&c, "/photos/cat.jpg?v=2").unwrap(),
            ["0|raw|/photos/cat.jpg?v=2", "1|raw|/photos/cat.jpg?v=2"]
        );
        assert!(url_keys(&c, "photos/cat.jpg").is_err());
        assert!(url_keys(&c, "/cdn-cgi/image/bogus=1/cat.jpg").is_err());
    }

    #[test]
    fn sources_and_prefixes_match_keys() {
        let c = config();
        let src = Matcher::source(&c, "/photos/cat.jpg").unwrap();
        assert!(src.matches("0|img|width=300|/photos/cat.jpg"));
        assert!(src.matches("1|raw|/photos/cat.jpg"));
        assert!(!src.matches("1|raw|/photos/cat.jpg.bak"));
        let site0 = Matcher::source(&c, "http://img.example.com/photos/cat.jpg").unwrap();
        assert!(site0.matches("0|img|width=1|/photos/cat.jpg"));
        assert!(!site0.matches("1|img|width=1|/photos/cat.jpg"));
        assert!(site0.matches("1|img|width=1|http://img.example.com/photos/cat.jpg"));
        let pre = Matcher::prefix(&c, "/photos/").unwrap();
        assert!(pre.matches("0|img|width=1|/photos/dog.jpg"));
        assert!(pre.matches("1|raw|/photos/x"));
        assert!(!pre.matches("1|raw|/other/photos/x"));
    }
}
