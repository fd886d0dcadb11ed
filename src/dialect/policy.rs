//! A site's rules for transform URLs, whatever their dialect: signing, presets, and the widths
//! and qualities it allows. Built and validated by `config`; checked by the dialects.

use super::signing::Signing;
use super::types::{snippet, Refusal, RefusalReason};
use crate::spec::{self, TransformSpec};
use std::collections::BTreeMap;

/// Named option strings (`thumb` -> `width=200,height=200,fit=cover`), in imgate's own
/// options syntax, each checked to parse when the config was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presets(pub BTreeMap<String, String>);

impl Presets {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Which transform URLs a site serves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    /// `None`: no keys; a URL that carries a signature is refused, as it cannot be checked.
    pub signing: Option<Signing>,
    pub presets: Presets,
    /// Only `preset=` options (and a signature); anything else is refused (400).
    pub presets_only: bool,
    /// Widths a URL may ask for; empty: any.
    pub allowed_widths: Vec<u32>,
    /// Qualities a URL may ask for; empty: any.
    pub allowed_qualities: Vec<u8>,
    /// Where imgproxy URLs are served (`/imgproxy`, or `/` for a host of its own); `None`: not.
    pub imgproxy_prefix: Option<String>,
    /// The Next.js optimizer on `/_next/image`; `None`: not served.
    pub nextjs: Option<NextjsConfig>,
    /// thumbor URLs; `None`: not served.
    pub thumbor: Option<ThumborConfig>,
    /// The site's watermark names (`watermarks:`), each with the origin path it is drawn
    /// from when it has one: thumbor's `watermark(url, ...)` filter names its overlay so.
    /// `None`: names are not checked (the transform service reading a canonical path, which
    /// the edge checked); a site's policy always has a list.
    pub watermarks: Option<Vec<(String, Option<String>)>>,
    /// The watermark imgproxy's `wm` lays (`imgproxy.watermark`); `None`: `wm` is refused.
    pub imgproxy_watermark: Option<String>,
}

/// A site's thumbor URLs (`thumbor:`).
#[derive(Clone, PartialEq, Eq)]
pub struct ThumborConfig {
    /// Where they are served: `/thumbor`, or `/` for a host of its own.
    pub prefix: String,
    /// thumbor's `SECURITY_KEY`, as bytes; `None`: only `unsafe` URLs (if allowed).
    pub security_key: Option<Vec<u8>>,
    /// `unsafe` URLs served (never when the site requires signatures).
    pub allow_unsafe: bool,
}

impl std::fmt::Debug for ThumborConfig {
    /// The key itself never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThumborConfig")
            .field("prefix", &self.prefix)
            .field("security_key", &self.security_key.as_ref().map(|_| "<set>"))
            .field("allow_unsafe", &self.allow_unsafe)
            .finish()
    }
}

impl UrlPolicy {
    /// Whether unsigned transform URLs are refused.
    pub fn signing_required(&self) -> bool {
        self.signing.as_ref().is_some_and(|s| s.required)
    }

    /// Checks a signature found in a URL against the site's keys.
    pub(crate) fn check_signature(&self, signed: &str, signature: &str) -> Result<(), Refusal> {
        match &self.signing {
            Some(s) if s.verify(signed, signature) => Ok(()),
            Some(_) => Err(Refusal::new(RefusalReason::BadSignature, "bad signature")),
            None => Err(Refusal::new(
                RefusalReason::BadSignature,
                "signature given but this site has no signing keys",
            )),
        }
    }

    /// The refusal for an unsigned URL, when the site requires signatures.
    pub(crate) fn check_unsigned(&self) -> Result<(), Refusal> {
        if self.signing_required() {
            return Err(Refusal::new(
                RefusalReason::MissingSignature,
                "signature required",
            ));
        }
        Ok(())
    }

    /// Options in imgate's syntax (with `preset=` names) read into a spec under this policy.
    pub(crate) fn parse_options(&self, options: &str) -> Result<TransformSpec, Refusal> {
        let parsed = spec::parse_options_with(options, &|name| self.presets.get(name))
            .map_err(|e| Refusal::new(RefusalReason::BadUrl, e.0))?;
        if self.presets_only && !parsed.own.is_empty() {
            return Err(Refusal::new(
                RefusalReason::NotAllowed,
                format!(
                    "only presets are allowed on this site, not {}",
                    parsed.own.join(", ")
                ),
            ));
        }
        self.check_values(&parsed.spec)?;
        Ok(parsed.spec)
    }

    /// The width and quality of a finished spec against the allowed lists.
    pub(crate) fn check_values(&self, spec: &TransformSpec) -> Result<(), Refusal> {
        if let Some(w) = spec.width {
            if !self.allowed_widths.is_empty() && !self.allowed_widths.contains(&w) {
                return Err(Refusal::new(
                    RefusalReason::NotAllowed,
                    format!("width: must be one of {}", list(&self.allowed_widths)),
                ));
            }
        }
        if let Some(q) = spec.quality {
            if !self.allowed_qualities.is_empty() && !self.allowed_qualities.contains(&q) {
                return Err(Refusal::new(
                    RefusalReason::NotAllowed,
                    format!("quality: must be one of {}", list(&self.allowed_qualities)),
                ));
            }
        }
        if let (Some(w), Some(names)) = (&spec.watermark, &self.watermarks) {
            if !names.iter().any(|(name, _)| *name == w.name) {
                return Err(Refusal::bad_url(format!(
                    "watermark: no watermark named {}",
                    snippet(&w.name)
                )));
            }
        }
        Ok(())
    }

    /// The configured watermark thumbor's `watermark(url, ...)` filter names by `url`: one
    /// whose origin path is `url` (with or without its leading `/`), or whose name it is.
    pub(crate) fn watermark_named_by(&self, url: &str) -> Option<&str> {
        let path = url.trim_start_matches('/');
        self.watermarks
            .iter()
            .flatten()
            .find(|(name, source)| {
                source
                    .as_deref()
                    .is_some_and(|s| s.trim_start_matches('/') == path)
                    || name == url
            })
            .map(|(name, _)| name.as_str())
    }
}

/// The width in `allowed` closest to `width` from above (the largest when none is as large),
/// or `width` itself when `allowed` is empty (any width): what the HTML rewriter asks for.
pub fn snap_width(allowed: &[u32], width: u32) -> u32 {
    let above = allowed.iter().filter(|w| **w >= width).min();
    above.or(allowed.iter().max()).copied().unwrap_or(width)
}

fn list<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A site's Next.js optimizer settings (`nextjs:`), Next.js 16's defaults unless configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextjsConfig {
    pub device_sizes: Vec<u32>,
    pub image_sizes: Vec<u32>,
    pub qualities: Vec<u8>,
    /// Whether AVIF is among `formats` (WebP always is).
    pub avif: bool,
}

impl Default for NextjsConfig {
    fn default() -> Self {
        NextjsConfig {
            device_sizes: vec![640, 750, 828, 1080, 1200, 1920, 2048, 3840],
            image_sizes: vec![32, 48, 64, 96, 128, 256, 384],
            qualities: vec![75],
            avif: false,
        }
    }
}
