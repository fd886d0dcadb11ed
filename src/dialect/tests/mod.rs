//! Dialect tests, one file per dialect; the helpers they share.

mod cloudflare;
mod imgproxy;
mod nextjs;
mod thumbor;

use super::*;

pub(super) fn key(k: &str, s: &str) -> SigningKey {
    SigningKey {
        key: k.as_bytes().to_vec(),
        salt: s.as_bytes().to_vec(),
    }
}

pub(super) fn signed_policy(keys: Vec<SigningKey>, required: bool) -> UrlPolicy {
    UrlPolicy {
        signing: Some(Signing { keys, required }),
        ..UrlPolicy::default()
    }
}

pub(super) fn refused(policy: &UrlPolicy, path: &str) -> Refusal {
    match resolve(policy, path) {
        Some(Err(r)) => r,
        other => panic!("{path}: expected a refusal, got {other:?}"),
    }
}

pub(super) fn resolved(policy: &UrlPolicy, path: &str) -> Resolved {
    match resolve(policy, path) {
        Some(Ok(r)) => r,
        other => panic!("{path}: expected a transform, got {other:?}"),
    }
}
