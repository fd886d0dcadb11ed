//! The dialects' shared types: which dialect, the canonical request it reads, and why a URL
//! is refused.

use crate::route::Source;
use crate::spec::{Accepts, TransformSpec};

/// Which URL form a request used; a label in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// `/cdn-cgi/image/<options>/<source>`.
    Cloudflare,
    /// imgproxy's `/<signature>/<options>/<source>` under the site's prefix.
    Imgproxy,
    /// The Next.js optimizer's `/_next/image?url=&w=&q=`.
    Nextjs,
    /// thumbor's `/<hmac>/<options>/<image>` under the site's prefix.
    Thumbor,
}

impl Dialect {
    pub const ALL: [Dialect; 4] = [
        Dialect::Cloudflare,
        Dialect::Imgproxy,
        Dialect::Nextjs,
        Dialect::Thumbor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Cloudflare => "cloudflare",
            Dialect::Imgproxy => "imgproxy",
            Dialect::Nextjs => "nextjs",
            Dialect::Thumbor => "thumbor",
        }
    }
}

/// A transform request in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub dialect: Dialect,
    pub spec: TransformSpec,
    pub source: Source,
    /// The modern formats `format=auto` may pick for this request (both, unless the dialect's
    /// config leaves one out, as Next.js' `formats` may): applied to what `Accept` says.
    pub modern: Accepts,
}

/// Both modern formats: no dialect rule holds either back.
pub(crate) const ALL_MODERN: Accepts = Accepts {
    avif: true,
    webp: true,
};

/// Why a transform URL is refused, with the status and the public message to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub status: u16,
    pub reason: RefusalReason,
    pub message: String,
}

/// What kind of refusal, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// Options or source that do not parse or are out of range: 400.
    BadUrl,
    /// A value the site does not allow (width, quality, non-preset option): 400.
    NotAllowed,
    /// No signature where the site requires one: 403.
    MissingSignature,
    /// A signature that matches none of the site's keys: 403.
    BadSignature,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 4] = [
        RefusalReason::BadUrl,
        RefusalReason::NotAllowed,
        RefusalReason::MissingSignature,
        RefusalReason::BadSignature,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RefusalReason::BadUrl => "bad_url",
            RefusalReason::NotAllowed => "not_allowed",
            RefusalReason::MissingSignature => "missing_signature",
            RefusalReason::BadSignature => "bad_signature",
        }
    }
}

impl Refusal {
    /// A URL that does not parse or is out of range (400).
    pub(crate) fn bad_url(message: impl Into<String>) -> Refusal {
        Refusal::new(RefusalReason::BadUrl, message)
    }

    pub(crate) fn new(reason: RefusalReason, message: impl Into<String>) -> Refusal {
        let status = match reason {
            RefusalReason::BadUrl | RefusalReason::NotAllowed => 400,
            RefusalReason::MissingSignature | RefusalReason::BadSignature => 403,
        };
        Refusal {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Whether a dialect checks the signature of the URL it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signatures {
    Check,
    Ignore,
}

/// At most 32 printable ASCII characters of client input, for messages that name it.
pub(crate) fn snippet(s: &str) -> String {
    s.chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// What follows `prefix` and a `/` in `path` (all of it after the `/` for the prefix `/`);
/// `None` when `path` is not under `prefix`.
pub(crate) fn under_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix == "/" {
        path.strip_prefix('/')
    } else {
        path.strip_prefix(prefix)?.strip_prefix('/')
    }
}
