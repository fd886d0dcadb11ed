//! The entry points: a request path read in whichever dialect the site serves, and the one
//! canonical path the transform service is asked for.

use super::policy::UrlPolicy;
use super::types::{Refusal, Resolved, Signatures};
use super::{cloudflare, imgproxy, nextjs, thumbor};

/// The transform a request path (with its query, as sent) asks for under `policy`: `None`
/// when the path is not a transform URL in any dialect the site serves (it is passed through).
pub fn resolve(policy: &UrlPolicy, path_and_query: &str) -> Option<Result<Resolved, Refusal>> {
    read(policy, path_and_query, Signatures::Check)
}

/// Each dialect in turn: imgate's own `/cdn-cgi/image/` first, then `/_next/image`, then those
/// under a prefix, the longer prefix first (so `/thumbor` is thumbor's even when imgproxy
/// has the whole host, `/`).
fn read(
    policy: &UrlPolicy,
    path_and_query: &str,
    signatures: Signatures,
) -> Option<Result<Resolved, Refusal>> {
    let imgproxy_len = policy.imgproxy_prefix.as_ref().map_or(0, String::len);
    let thumbor_len = policy.thumbor.as_ref().map_or(0, |t| t.prefix.len());
    let prefixed = |first_thumbor: bool| {
        let t = || thumbor::resolve(policy, path_and_query, signatures);
        let i = || imgproxy::resolve(policy, path_and_query, signatures);
        if first_thumbor {
            t().or_else(i)
        } else {
            i().or_else(t)
        }
    };
    cloudflare::resolve(policy, path_and_query, signatures)
        .or_else(|| nextjs::resolve(policy, path_and_query, signatures))
        .or_else(|| prefixed(thumbor_len > imgproxy_len))
}

/// [`resolve`] without checking signatures (a signature present is taken out, a missing one
/// is no error): for the purge API, whose caller is already authenticated and names URLs as
/// clients requested them.
pub fn read_unverified(
    policy: &UrlPolicy,
    path_and_query: &str,
) -> Option<Result<Resolved, Refusal>> {
    read(policy, path_and_query, Signatures::Ignore)
}

/// A path made by [`canonical_path`] read back, by the transform service behind the edge
/// (which checked the site's rules and signature): no rules, no signature.
pub fn read_canonical(path_and_query: &str) -> Option<Result<Resolved, Refusal>> {
    cloudflare::resolve(&UrlPolicy::default(), path_and_query, Signatures::Ignore)
}

/// The path the edge asks the transform service for: the one canonical form of a transform,
/// whatever dialect the client used, from the two parts of its cache key (`canonical`, from
/// `TransformSpec::canonical`, and the source's `Source::key`).
pub fn canonical_path(canonical: &str, source_key: &str) -> String {
    // The default spec canonicalises to nothing; the service wants an options segment.
    // `#` (in colours) would end the path; the options parser reads `%23` as `#`.
    let options = if canonical.is_empty() {
        "fit=scale-down".to_string()
    } else {
        canonical.replace('#', "%23")
    };
    cloudflare::image_path(&options, source_key)
}
