//! Pure URL work for the HTML rewriter: an image URL as written in a page becomes the source
//! part of a `/cdn-cgi/image/<options>/<source>` URL (or `None`: leave it alone), and `srcset`
//! text is split into candidates and joined again. No I/O, no HTML parsing.

use super::options::RewriteOptions;
use crate::dialect::{image_path, sign_cloudflare_path, uri_safe, SigningKey};
use crate::route::{self, Source, IMAGE_PREFIX};

/// The directory of a page's path, against which relative image URLs resolve:
/// `/blog/post.html?x=1` -> `/blog/`.
pub fn page_dir(page_path: &str) -> String {
    let path = page_path.split(['?', '#']).next().unwrap_or("/");
    match path.rfind('/') {
        Some(i) => path[..=i].to_string(),
        None => "/".to_string(),
    }
}

/// The edge source for an image URL found in a page under `dir`, or `None` when the image must
/// be left alone: `data:` and other non-HTTP schemes, SVG, hosts the site may not fetch from,
/// URLs already on `/cdn-cgi/image/`, empty or fragment-only URLs.
pub fn image_source(raw: &str, dir: &str, options: &RewriteOptions) -> Option<String> {
    // HTML strips surrounding ASCII whitespace from URL attributes; the fragment never reaches
    // the server.
    let raw = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    let raw = raw.split('#').next().unwrap_or("");
    if raw.is_empty() || raw.starts_with('?') {
        return None;
    }
    let source = if let Some(rest) = raw.strip_prefix("//") {
        // Protocol-relative: the edge cannot know the page's scheme behind a TLS terminator;
        // HTTPS is what such URLs mean on today's web.
        absolute_source(&format!("https://{rest}"), options)?
    } else if let Some(scheme_end) = scheme_len(raw) {
        let scheme = raw[..scheme_end].to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        absolute_source(raw, options)?
    } else if raw.starts_with('/') {
        Source::Path(normalize_path(raw))
    } else {
        Source::Path(normalize_path(&format!("{dir}{raw}")))
    };
    let path = match &source {
        Source::Path(p) => p,
        Source::Url { path, .. } => path,
    };
    let bare = path.split('?').next().unwrap_or("");
    if bare.starts_with(IMAGE_PREFIX) || bare.to_ascii_lowercase().ends_with(".svg") {
        return None;
    }
    // Whatever we emit must be a source the edge itself accepts.
    let text = source.key().replace(' ', "%20");
    route::parse_source(&text).ok()?;
    Some(text)
}

/// A `/cdn-cgi/image/<options>/<source>` URL, signed when the site signs its URLs. A signed
/// URL is written as the browser will request it, since the signature covers the exact bytes
/// (an unsigned one keeps the page's own characters).
pub fn image_url(options: &str, source: &str, signer: Option<&SigningKey>) -> String {
    let url = image_path(options, source);
    match signer {
        Some(key) => {
            // Written as the browser will request it: nothing left for it to encode.
            let url = uri_safe(&url);
            sign_cloudflare_path(key, &url).unwrap_or(url)
        }
        None => url,
    }
}

/// Length of the URL scheme (`https` in `https://...`), if the URL has one.
fn scheme_len(raw: &str) -> Option<usize> {
    let end = raw.find(':')?;
    let scheme = &raw[..end];
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then_some(end)
}

/// An absolute `http(s)` URL as a source: a path when it is on the site's own host, the
/// absolute form when the edge would fetch it (host, scheme and port allowed), `None` otherwise.
fn absolute_source(url: &str, options: &RewriteOptions) -> Option<Source> {
    let source = route::parse_source(url).ok()?;
    let Source::Url {
        https,
        ref host,
        port,
        ref path,
    } = source
    else {
        return None;
    };
    if options.own_hosts.iter().any(|h| h == host) {
        return Some(Source::Path(normalize_path(path)));
    }
    let allowed = options.allowed_source_hosts.iter().any(|h| h == host)
        && route::check_source_scheme_and_port(
            https,
            port,
            options.allow_http_sources,
            &options.allowed_source_ports,
        )
        .is_ok();
    allowed.then_some(source)
}

/// Remove `.` and `..` segments from an absolute path (query kept as is); `..` never climbs
/// above the root, as browsers resolve it.
fn normalize_path(path: &str) -> String {
    let (path, query) = match path.find('?') {
        Some(i) => path.split_at(i),
        None => (path, ""),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        // A trailing `.` or `..` names a directory.
        if i == last && matches!(*seg, "." | "..") {
            out.push("");
        }
    }
    format!("/{}{query}", out.join("/"))
}

/// One `srcset` candidate: the URL and its descriptor (`640w`, `2x` or empty), as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub url: &'a str,
    pub descriptor: &'a str,
}

/// Split `srcset` text into candidates, following the HTML parsing rules closely enough for
/// rewriting: URLs may contain commas (`/cdn-cgi/image/w=1,h=2/a.jpg 1x`), a URL ending in
/// commas has no descriptor, and descriptors end at a comma outside parentheses.
pub fn parse_srcset(text: &str) -> Vec<Candidate<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i == bytes.len() {
            return out;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let url = &text[start..i];
        if url.ends_with(',') {
            out.push(Candidate {
                url: url.trim_end_matches(','),
                descriptor: "",
            });
            continue;
        }
        let desc_start = i;
        let mut depth = 0usize;
        while i < bytes.len() && !(bytes[i] == b',' && depth == 0) {
            match bytes[i] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            i += 1;
        }
        out.push(Candidate {
            url,
            descriptor: text[desc_start..i].trim(),
        });
    }
}

/// Join candidates back into `srcset` text. The trap: a URL ending in `,` is read by a
/// browser as a URL without descriptor (the descriptor becomes the next URL), so trailing
/// commas are written percent-encoded, which names the same resource.
pub fn format_srcset<D: AsRef<str>>(candidates: impl IntoIterator<Item = (String, D)>) -> String {
    let mut out = String::new();
    for (url, descriptor) in candidates {
        let descriptor = descriptor.as_ref();
        if !out.is_empty() {
            out.push_str(", ");
        }
        let kept = url.trim_end_matches(',');
        out.push_str(kept);
        for _ in kept.len()..url.len() {
            out.push_str("%2C");
        }
        if !descriptor.is_empty() {
            out.push(' ');
            out.push_str(descriptor);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> RewriteOptions {
        RewriteOptions {
            own_hosts: vec!["www.example.com".into()],
            allowed_source_hosts: vec!["img.example.net".into()],
            ..RewriteOptions::default()
        }
    }

    #[test]
    fn resolves_page_urls_to_edge_sources() {
        let o = options();
        let dir = page_dir("/blog/2024/post.html?draft=1");
        assert_eq!(dir, "/blog/2024/");
        let cases: &[(&str, Option<&str>)] = &[
            ("cat.jpg", Some("/blog/2024/cat.jpg")),
            ("./img/cat.jpg?v=2#top", Some("/blog/2024/img/cat.jpg?v=2")),
            ("../../../../cat.jpg", Some("/cat.jpg")),
            ("/photos/a b.jpg", Some("/photos/a%20b.jpg")),
            (" /a.png ", Some("/a.png")),
            ("https://WWW.example.com/x/../a.jpg", Some("/a.jpg")),
            // Only what the edge fetches: HTTPS on 443 or 80 unless the site allows more.
            ("https://img.example.net:8443/a.jpg", None),
            ("http://img.example.net/a.jpg", None),
            (
                "https://img.example.net:443/a.jpg",
                Some("https://img.example.net:443/a.jpg"),
            ),
            (
                "//img.example.net/a.jpg",
                Some("https://img.example.net/a.jpg"),
            ),
            ("https://evil.example/a.jpg", None),
            ("data:image/png;base64,AAAA", None),
            ("blob:https://www.example.com/1", None),
            ("/icons/logo.SVG?x=1", None),
            ("/cdn-cgi/image/width=100/a.jpg", None),
            ("https://www.example.com/cdn-cgi/image/w=1/a.jpg", None),
            ("#frag", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(image_source(raw, &dir, &o).as_deref(), *want, "{raw}");
        }
        assert_eq!(
            image_url("format=auto", "/photos/a.jpg", None),
            "/cdn-cgi/image/format=auto/photos/a.jpg"
        );
        assert_eq!(
            image_url("width=10", "https://h/a.jpg", None),
            "/cdn-cgi/image/width=10/https://h/a.jpg"
        );
    }

    #[test]
    fn absolute_urls_follow_the_sites_scheme_and_port_keys() {
        let o = RewriteOptions {
            allow_http_sources: true,
            allowed_source_ports: vec![8443],
            ..options()
        };
        for raw in [
            "https://img.example.net:8443/a.jpg",
            "http://img.example.net/a.jpg",
        ] {
            assert_eq!(image_source(raw, "/", &o).as_deref(), Some(raw));
        }
        assert_eq!(
            image_source("https://img.example.net:9000/a.jpg", "/", &o),
            None
        );
    }

    #[test]
    fn srcset_round_trips_with_commas_in_urls() {
        let text = " a.jpg 1x,/cdn-cgi/image/w=1,h=2/b.jpg 2x , c.jpg,, d.jpg 640w";
        let c = parse_srcset(text);
        let got: Vec<(&str, &str)> = c.iter().map(|c| (c.url, c.descriptor)).collect();
        assert_eq!(
            got,
            [
                ("a.jpg", "1x"),
                ("/cdn-cgi/image/w=1,h=2/b.jpg", "2x"),
                ("c.jpg", ""),
                ("d.jpg", "640w")
            ]
        );
        let again = format_srcset(c.iter().map(|c| (c.url.to_string(), c.descriptor)));
        assert_eq!(
            again,
            "a.jpg 1x, /cdn-cgi/image/w=1,h=2/b.jpg 2x, c.jpg, d.jpg 640w"
        );
        assert_eq!(parse_srcset(&again), c);
        assert!(parse_srcset(" , ").is_empty());
    }

    /// Found by the `srcset` fuzz target: a source ending in `,` (its fragment cut off) was
    /// written as is, and a browser reads a URL ending in commas as one without descriptor,
    /// so `2x` became a second URL.
    #[test]
    fn r_fuzz_srcset_url_ending_in_comma_keeps_its_descriptor() {
        let source = image_source("/a/b.jpg,#frag", "/", &options()).unwrap();
        let written = format_srcset([(image_url("format=auto", &source, None), "2x")]);
        let read = parse_srcset(&written);
        assert_eq!(read.len(), 1, "{written}");
        assert_eq!(read[0].descriptor, "2x", "{written}");
        assert!(read[0]
            .url
            .starts_with("/cdn-cgi/image/format=auto/a/b.jpg"));
    }

    #[test]
    fn signed_urls_are_written_as_requested_and_verify() {
        use crate::dialect::{resolve, Signing, SigningKey, UrlPolicy};
        let key = SigningKey {
            key: b"k".to_vec(),
            salt: b"s".to_vec(),
        };
        let policy = UrlPolicy {
            signing: Some(Signing {
                keys: vec![key.clone()],
                required: true,
            }),
            ..UrlPolicy::default()
        };
        let source = image_source("/caf\u{e9} cr\u{e8}me.jpg?a=\"b\"", "/", &options()).unwrap();
        let url = image_url("width=10", &source, Some(&key));
        assert_eq!(
            url.split(",sig=").next().unwrap(),
            "/cdn-cgi/image/width=10"
        );
        assert!(
            url.ends_with("/caf%C3%A9%20cr%C3%A8me.jpg?a=%22b%22"),
            "{url}"
        );
        let resolved = resolve(&policy, &url).unwrap().unwrap();
        assert_eq!(resolved.spec.width, Some(10));
        // Unsigned, the page's own characters stay.
        assert!(image_url("width=10", &source, None).contains("caf\u{e9}"));
    }
}
