//! imgate's own URL form, as Cloudflare spells it: `/cdn-cgi/image/<options>/<source>`, with
//! an optional `sig=<signature>` option: base64url HMAC-SHA256 of the salt and the path as sent
//! (query included) with the `sig` item and its comma taken out.

use super::policy::UrlPolicy;
use super::signing::SigningKey;
use super::types::{Dialect, Refusal, RefusalReason, Resolved, Signatures, ALL_MODERN};
use crate::route::{self, IMAGE_PREFIX};
use crate::spec;

/// The `/cdn-cgi/image/` request `path_and_query` under `policy`; `None` for other paths.
pub(super) fn resolve(
    policy: &UrlPolicy,
    path_and_query: &str,
    signatures: Signatures,
) -> Option<Result<Resolved, Refusal>> {
    let (options, source) = route::split_image_path(path_and_query)?;
    Some(resolve_parts(policy, options, source, signatures))
}

fn resolve_parts(
    policy: &UrlPolicy,
    options: &str,
    source: &str,
    signatures: Signatures,
) -> Result<Resolved, Refusal> {
    let (options, signature) = take_signature(options)?;
    match (signature, signatures) {
        (_, Signatures::Ignore) => {}
        (Some(sig), Signatures::Check) => {
            let signed = format!("{IMAGE_PREFIX}{options}/{source}");
            policy.check_signature(&signed, sig)?;
        }
        (None, Signatures::Check) => policy.check_unsigned()?,
    }
    let spec = policy.parse_options(&options)?;
    let source = route::parse_source(source).map_err(|e| Refusal::new(RefusalReason::BadUrl, e))?;
    Ok(Resolved {
        dialect: Dialect::Cloudflare,
        spec,
        source,
        modern: ALL_MODERN,
    })
}

/// The options without their `sig=` item, and the signature; more than one is an error.
fn take_signature(options: &str) -> Result<(String, Option<&str>), Refusal> {
    let mut kept = Vec::new();
    let mut signature = None;
    for item in spec::split_options(options) {
        match item.trim().strip_prefix("sig=") {
            Some(sig) if signature.is_none() => signature = Some(sig.trim()),
            Some(_) => {
                return Err(Refusal::new(
                    RefusalReason::BadUrl,
                    "sig: given more than once",
                ))
            }
            None => kept.push(item),
        }
    }
    Ok((kept.join(","), signature))
}

/// The `/cdn-cgi/image/<options>/<source>` path for a source key ([`crate::route::Source::key`]).
/// A path source is written without its leading `/`, except where that would read back as
/// something else: the root itself (no source at all) and a path that starts like a URL
/// (`/https:/host/...` is a path on the origin, not that host).
pub fn image_path(options: &str, source_key: &str) -> String {
    let tail = match source_key.strip_prefix('/') {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with("http:/") && !rest.starts_with("https:/") =>
        {
            rest
        }
        _ => source_key,
    };
    format!("{IMAGE_PREFIX}{options}/{tail}")
}

/// `path` (a `/cdn-cgi/image/<options>/<source>` path, query included) with its signature
/// added as the last option; `None` when it is not such a path. What the HTML rewriter writes,
/// and a library function for Rust callers:
///
/// ```
/// use imgate::dialect::{sign_cloudflare_path, SigningKey};
/// let key = SigningKey { key: b"secret".to_vec(), salt: b"salt".to_vec() };
/// let signed = sign_cloudflare_path(&key, "/cdn-cgi/image/width=300/photos/cat.jpg").unwrap();
/// assert!(signed.starts_with("/cdn-cgi/image/width=300,sig="));
/// ```
pub fn sign_cloudflare_path(key: &SigningKey, path: &str) -> Option<String> {
    let (options, source) = route::split_image_path(path)?;
    let sig = key.sign(path);
    Some(format!("{IMAGE_PREFIX}{options},sig={sig}/{source}"))
}
