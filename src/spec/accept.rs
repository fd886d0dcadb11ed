//! Format negotiation: which of AVIF and WebP a client's `Accept` value lets us send.

use super::types::FormatRequest;
use super::values::Decimal;

/// Which modern formats a client accepts, read from `Accept` by the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Accepts {
    pub avif: bool,
    pub webp: bool,
}

impl Accepts {
    /// Reads an HTTP `Accept` value. Only explicit `image/avif` / `image/webp` count: browsers
    /// that decode them list them, while `image/*` and `*/*` are sent by clients that don't.
    /// A `q=0` (or an unreadable q) for a type refuses it even if it is listed again, since
    /// sending an undecodable image is worse than sending a larger one.
    pub fn from_accept_header(value: &str) -> Accepts {
        let (mut avif, mut webp) = ((false, false), (false, false));
        for range in value.split(',') {
            let (media, params) = range.split_once(';').unwrap_or((range, ""));
            let media = media.trim();
            let slot = if media.eq_ignore_ascii_case("image/avif") {
                &mut avif
            } else if media.eq_ignore_ascii_case("image/webp") {
                &mut webp
            } else {
                continue;
            };
            let q = params
                .split(';')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map(|(_, v)| v.trim());
            let positive =
                q.is_none_or(|q| Decimal::parse(q).is_some_and(|d| d.int > 0 || !d.frac_is_zero()));
            if positive {
                slot.0 = true;
            } else {
                slot.1 = true;
            }
        }
        Accepts {
            avif: avif.0 && !avif.1,
            webp: webp.0 && !webp.1,
        }
    }

    /// What is accepted here and allowed by `allowed` (a dialect's configured formats).
    pub fn within(self, allowed: Accepts) -> Accepts {
        Accepts {
            avif: self.avif && allowed.avif,
            webp: self.webp && allowed.webp,
        }
    }

    /// The cache-key variant for a request: `format=auto` responses differ by what the client
    /// accepts, every other request has one variant ("").
    pub fn vary_token(self, request: FormatRequest) -> &'static str {
        match request {
            FormatRequest::Auto if self.avif => "avif",
            FormatRequest::Auto if self.webp => "webp",
            FormatRequest::Auto => "fallback",
            _ => "",
        }
    }
}
