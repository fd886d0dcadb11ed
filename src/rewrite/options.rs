//! What a site's HTML rewrite does (`RewriteOptions`, built and validated by `config`) and the
//! fingerprint of those options that keys rewritten pages in the cache (`HtmlRewrite`).

use crate::dialect::SigningKey;
use blake2::{Blake2b512, Digest};
use std::sync::Arc;

/// Bump when the rewriter's output changes for the same options: it is part of the
/// fingerprint, so cached pages rewritten by an older build are not served again.
/// 2: attribute values are read with their character references decoded and written escaped.
/// 3: signed URLs (written as requested); allowed widths.
const REWRITER_VERSION: u32 = 3;

/// What a site's HTML rewrite does. Built and validated by `config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteOptions {
    /// Widths (pixels, ascending) of the generated `srcset` for images without a `width`.
    pub widths: Vec<u32>,
    /// Densities (1-4) of the generated `srcset` for images with a `width` attribute.
    pub densities: Vec<u8>,
    /// `sizes` given to a generated width `srcset` when the tag has none.
    pub sizes: String,
    /// Add `loading="lazy"` and `decoding="async"` (never overriding the page's own).
    pub lazy_loading: bool,
    /// The first N `<img>` of a page are taken to be above the fold: never lazy.
    pub eager_images: usize,
    /// The site's own host names: absolute URLs on them become path sources.
    pub own_hosts: Vec<String>,
    /// Other hosts the edge may fetch from (`Site::allows_source_host`): absolute URLs on them
    /// become absolute sources. URLs on any other host are left alone.
    pub allowed_source_hosts: Vec<String>,
    /// The site's `allow_http_sources` and `allowed_source_ports`: absolute URLs the edge
    /// would refuse (`http://`, odd ports) are left alone, as for hosts it may not fetch from.
    pub allow_http_sources: bool,
    pub allowed_source_ports: Vec<u16>,
    /// The site's `allowed_widths`: every width written is one of them (the nearest from
    /// above); empty: any.
    pub allowed_widths: Vec<u32>,
    /// Signs every URL written, when the site has signing keys (its first key).
    pub signer: Option<SigningKey>,
}

impl RewriteOptions {
    /// The width to ask for instead of `width`: an allowed one, the nearest from above.
    pub fn snap_width(&self, width: u32) -> u32 {
        crate::dialect::snap_width(&self.allowed_widths, width)
    }
}

impl Default for RewriteOptions {
    fn default() -> Self {
        RewriteOptions {
            widths: vec![320, 640, 960, 1280, 1920],
            densities: vec![1, 2],
            sizes: "100vw".into(),
            lazy_loading: true,
            eager_images: 1,
            own_hosts: Vec::new(),
            allowed_source_hosts: Vec::new(),
            allow_http_sources: false,
            allowed_source_ports: Vec::new(),
            allowed_widths: Vec::new(),
            signer: None,
        }
    }
}

/// A site's rewrite switched on: the options and their fingerprint, computed once.
#[derive(Debug, Clone)]
pub struct HtmlRewrite {
    pub options: Arc<RewriteOptions>,
    /// Short hash of the options and the rewriter version. It goes into the passthrough cache
    /// key: getting this wrong serves pages rewritten under an older config.
    pub fingerprint: String,
}

impl HtmlRewrite {
    pub fn new(options: RewriteOptions) -> HtmlRewrite {
        let mut hash = Blake2b512::new();
        hash.update(format!("v{REWRITER_VERSION}:{options:?}").as_bytes());
        let fingerprint = hex::encode(&hash.finalize()[..8]);
        HtmlRewrite {
            options: Arc::new(options),
            fingerprint,
        }
    }
}
