//! Splitting a request path into a route: `/cdn-cgi/image/<options>/<source>` or anything else
//! (passthrough). Pure string work shared by the edge and the transform service.

/// The prefix of transform URLs, as Cloudflare spells it.
pub const IMAGE_PREFIX: &str = "/cdn-cgi/image/";

/// Where the original of a transform lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path on the site's own origin, starting with `/` (query kept).
    Path(String),
    /// An absolute URL; allowed only when its host is on the site's allow-list.
    Url {
        https: bool,
        host: String,
        port: Option<u16>,
        path: String,
    },
}

impl Source {
    /// A stable text form for cache keys and logs.
    pub fn key(&self) -> String {
        match self {
            Source::Path(p) => p.clone(),
            Source::Url {
                https,
                host,
                port,
                path,
            } => {
                let scheme = if *https { "https" } else { "http" };
                match port {
                    Some(p) => format!("{scheme}://{host}:{p}{path}"),
                    None => format!("{scheme}://{host}{path}"),
                }
            }
        }
    }
}

/// What a cache entry holds, as its primary key names it. The edge builds keys with
/// [`primary_key`] and the purge API takes them apart with [`parse_primary_key`]; one format in
/// one place, so a purge can never miss an entry because of a spelling drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedRoute<'a> {
    /// A transform: canonical options and the source key ([`Source::key`]).
    Image { canonical: &'a str, source: &'a str },
    /// Anything else, by path and query as requested.
    Raw { path_and_query: &'a str },
}

/// The primary cache key: `"{site}|img|{canonical}|{source}"` or `"{site}|raw|{path_and_query}"`.
/// Getting this wrong leads to cache poisoning: whatever changes a response must be in it (or
/// in the variance).
pub fn primary_key(site: usize, route: KeyedRoute<'_>) -> String {
    match route {
        KeyedRoute::Image { canonical, source } => format!("{site}|img|{canonical}|{source}"),
        KeyedRoute::Raw { path_and_query } => format!("{site}|raw|{path_and_query}"),
    }
}

/// The site and route of a key made by [`primary_key`]; `None` for anything else. Canonical
/// options never contain `|`, so the first `|` after them starts the source.
pub fn parse_primary_key(key: &str) -> Option<(usize, KeyedRoute<'_>)> {
    let (site, rest) = key.split_once('|')?;
    let site = site.parse().ok()?;
    if let Some(path_and_query) = rest.strip_prefix("raw|") {
        return Some((site, KeyedRoute::Raw { path_and_query }));
    }
    let (canonical, source) = rest.strip_prefix("img|")?.split_once('|')?;
    Some((site, KeyedRoute::Image { canonical, source }))
}

/// `Some((options, source))` for a transform path; `None` for any other path. The source is
/// returned raw; [`parse_source`] validates it.
pub fn split_image_path(path_and_query: &str) -> Option<(&str, &str)> {
    let rest = path_and_query.strip_prefix(IMAGE_PREFIX)?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// The scheme and port rule for an absolute source that is not the site's own origin: HTTPS
/// on port 443 or 80, plain HTTP only with `allow_http`, other ports only when listed in
/// `ports`. Shared by the edge (`Site::source_access`) and the HTML rewriter, so a page is
/// never rewritten to a URL the edge then refuses. Errors are public messages.
pub fn check_source_scheme_and_port(
    https: bool,
    port: Option<u16>,
    allow_http: bool,
    ports: &[u16],
) -> Result<(), &'static str> {
    if !https && !allow_http {
        return Err("http source URLs not allowed");
    }
    let port = port.unwrap_or(if https { 443 } else { 80 });
    if port != 80 && port != 443 && !ports.contains(&port) {
        return Err("source port not allowed");
    }
    Ok(())
}

/// Validate the source part: a site path (`photos/cat.jpg` -> `/photos/cat.jpg`) or an absolute
/// `http(s)://` URL. Errors are public messages.
pub fn parse_source(raw: &str) -> Result<Source, String> {
    if raw.is_empty() {
        return Err("missing source image path".into());
    }
    for (scheme, https) in [
        ("https://", true),
        ("http://", false),
        ("https:/", true),
        ("http:/", false),
    ] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            // `https:/host/...` happens when a client or proxy merges slashes.
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| "bad port in source URL".to_string())?,
                    ),
                ),
                None => (authority, None),
            };
            if host.is_empty() || host.contains('@') {
                return Err("bad host in source URL".into());
            }
            return Ok(Source::Url {
                https,
                host: host.to_ascii_lowercase(),
                port,
                path: path.to_string(),
            });
        }
    }
    let path = format!("/{}", raw.trim_start_matches('/'));
    if path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split('/')
        .any(|seg| seg == "..")
    {
        return Err("source path may not contain '..'".into());
    }
    Ok(Source::Path(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_transform_paths() {
        assert_eq!(
            split_image_path("/cdn-cgi/image/w=300/photos/cat.jpg"),
            Some(("w=300", "photos/cat.jpg"))
        );
        assert_eq!(
            split_image_path("/cdn-cgi/image/w=300"),
            Some(("w=300", ""))
        );
        assert_eq!(split_image_path("/photos/cat.jpg"), None);
    }

    #[test]
    fn parses_sources() {
        assert_eq!(
            parse_source("photos/cat.jpg"),
            Ok(Source::Path("/photos/cat.jpg".into()))
        );
        assert_eq!(
            parse_source("https://Img.Example.com/a/b.jpg"),
            Ok(Source::Url {
                https: true,
                host: "img.example.com".into(),
                port: None,
                path: "/a/b.jpg".into()
            })
        );
        assert_eq!(
            parse_source("https:/img.example.com:8443/a.jpg")
                .unwrap()
                .key(),
            "https://img.example.com:8443/a.jpg"
        );
        assert!(parse_source("").is_err());
        assert!(parse_source("../etc/passwd").is_err());
        assert!(parse_source("https://user@evil/a.jpg").is_err());
    }

    #[test]
    fn primary_keys_roundtrip() {
        for route in [
            KeyedRoute::Image {
                canonical: "width=300",
                source: "/a|b.jpg?x=1",
            },
            KeyedRoute::Raw {
                path_and_query: "/a|b?c",
            },
        ] {
            let key = primary_key(3, route);
            assert_eq!(parse_primary_key(&key), Some((3, route)), "{key}");
        }
        assert_eq!(
            primary_key(
                0,
                KeyedRoute::Image {
                    canonical: "width=300",
                    source: "/cat.jpg"
                }
            ),
            "0|img|width=300|/cat.jpg"
        );
        assert_eq!(parse_primary_key("x|raw|/a"), None);
        assert_eq!(parse_primary_key("0|other|/a"), None);
    }
}
