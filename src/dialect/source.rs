//! Source URLs as other products' URLs carry them, read into imgate's [`Source`]: an absolute
//! `http(s)://` URL, imgproxy's `local:///path`, or anything else as a path on the site's
//! origin (imgproxy's base URL, thumbor's loader and Next.js' relative `url` all work so).

use super::types::{Refusal, RefusalReason};
use crate::route::{self, Source};

/// `url` as a source. Characters a URI cannot hold are percent-encoded, so the source key is
/// the one the same image's `/cdn-cgi/image/` URL gives.
pub(crate) fn source_from_url(url: &str) -> Result<Source, Refusal> {
    let bad = |m: &str| Refusal::new(RefusalReason::BadUrl, m.to_string());
    let url = url.trim();
    if url.is_empty() {
        return Err(bad("missing source image"));
    }
    let url = match url.strip_prefix("local://") {
        Some(path) => path,
        None => url,
    };
    if let Some((scheme, _)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("source scheme not supported (http, https or a path)"));
        }
    }
    route::parse_source(&uri_safe(url)).map_err(|e| bad(&e))
}

/// `text` with what a URI path or query cannot hold percent-encoded (as UTF-8): controls,
/// space, `"`, `#`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, anything not ASCII, and a `%`
/// that does not start an escape. Escapes already there stay as they are, and a browser
/// requesting the result sends it unchanged (what a signed URL needs).
pub fn uri_safe(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let escape_start = c == '%'
            && bytes.len() > i + 2
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit();
        let keep = c.is_ascii_graphic()
            && !matches!(
                c,
                '"' | '#' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}'
            )
            && (c != '%' || escape_start);
        if keep {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}
