//! The Next.js image optimizer's URL form, `/_next/image?url=<source>&w=<width>&q=<quality>`,
//! with its validation rules (Next.js 16): `url` a path or an absolute `http(s)` URL, never
//! protocol-relative or pointing back at `/_next/image`; `w` one of the site's device or image
//! sizes; `q` one of its qualities; each given once. Resized to the width without enlarging;
//! the format negotiated from `Accept` among the configured formats.

use super::policy::{NextjsConfig, UrlPolicy};
use super::source::source_from_url;
use super::types::{Dialect, Refusal, RefusalReason, Resolved, Signatures};
use crate::spec::{Accepts, Fit, FormatRequest, TransformSpec};

/// The path Next.js serves its optimizer on.
pub(super) const PATH: &str = "/_next/image";
/// Longest `url` Next.js accepts.
const MAX_URL_LEN: usize = 3072;

/// The optimizer request `path_and_query` under `policy`; `None` when the site does not serve
/// Next.js URLs or the path is another.
pub(super) fn resolve(
    policy: &UrlPolicy,
    path_and_query: &str,
    signatures: Signatures,
) -> Option<Result<Resolved, Refusal>> {
    let next = policy.nextjs.as_ref()?;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    if path != PATH {
        return None;
    }
    Some(resolve_query(policy, next, query, signatures))
}

fn resolve_query(
    policy: &UrlPolicy,
    next: &NextjsConfig,
    query: &str,
    signatures: Signatures,
) -> Result<Resolved, Refusal> {
    if signatures == Signatures::Check {
        // Next.js URLs carry no signature.
        policy.check_unsigned()?;
    }
    if policy.presets_only {
        return Err(Refusal::new(
            RefusalReason::NotAllowed,
            "only presets are allowed on this site",
        ));
    }
    let (mut url, mut w, mut q) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "url" => &mut url,
            "w" => &mut w,
            "q" => &mut q,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Refusal::bad_url(format!("{key}: given more than once")));
        }
        *slot = Some(form_decode(value)?);
    }
    let url = url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Refusal::bad_url("url: required"))?;
    if url.len() > MAX_URL_LEN {
        return Err(Refusal::bad_url("url: too long"));
    }
    if url.starts_with("//") {
        return Err(Refusal::bad_url(
            "url: a protocol-relative URL is not allowed",
        ));
    }
    if url.starts_with('/') {
        let path = url.split(['?', '#']).next().unwrap_or("");
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        if decoded == PATH || decoded.starts_with("/_next/image/") {
            return Err(Refusal::bad_url("url: may not point at /_next/image"));
        }
    } else if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Refusal::bad_url("url: must be a path or an http(s) URL"));
    }
    let width = number(w, "w", "width")?;
    if width == 0 || width > 12_000 {
        return Err(Refusal::bad_url("w: must be an integer greater than 0"));
    }
    if !next.device_sizes.contains(&width) && !next.image_sizes.contains(&width) {
        return Err(Refusal::new(
            RefusalReason::NotAllowed,
            format!("w: {width} is not one of the site's image sizes"),
        ));
    }
    let quality = number(q, "q", "quality")?;
    if !(1..=100).contains(&quality) {
        return Err(Refusal::bad_url("q: must be an integer from 1 to 100"));
    }
    if !next.qualities.is_empty() && !next.qualities.contains(&(quality as u8)) {
        return Err(Refusal::new(
            RefusalReason::NotAllowed,
            format!("q: {quality} is not one of the site's qualities"),
        ));
    }
    let spec = TransformSpec {
        width: Some(width),
        quality: Some(quality as u8),
        fit: Fit::ScaleDown,
        format: FormatRequest::Auto,
        ..TransformSpec::default()
    };
    policy.check_values(&spec)?;
    Ok(Resolved {
        dialect: Dialect::Nextjs,
        spec,
        source: source_from_url(&url)?,
        modern: Accepts {
            avif: next.avif,
            webp: true,
        },
    })
}

/// A query value as browsers encode forms: `+` is a space, then percent-decoding.
fn form_decode(value: &str) -> Result<String, Refusal> {
    percent_encoding::percent_decode_str(&value.replace('+', " "))
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| Refusal::bad_url("query values must be UTF-8"))
}

/// A required parameter of decimal digits only.
fn number(value: Option<String>, key: &str, what: &str) -> Result<u32, Refusal> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refusal::bad_url(format!("{key}: required ({what})")))?;
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::bad_url(format!(
            "{key}: must be an integer ({what})"
        )));
    }
    value
        .parse()
        .map_err(|_| Refusal::bad_url(format!("{key}: out of range ({what})")))
}
