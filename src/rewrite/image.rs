//! The rules for one image tag: given the attributes of an `<img>` or a `<picture><source>` as
//! written, which attributes to set. Pure: no HTML parsing here, so every rule is testable on
//! its own and [`super::page`] only reads and writes attributes.

use super::options::RewriteOptions;
use super::url::{format_srcset, image_source, image_url, parse_srcset};

/// The attributes the rules read, as a browser reads them (character references decoded:
/// `?w=1&#038;h=2` is `?w=1&h=2`); the values the rules return are plain text too, escaped
/// only when written into the page.
#[derive(Debug, Default, Clone)]
pub struct ImageTag {
    pub src: Option<String>,
    pub srcset: Option<String>,
    pub sizes: Option<String>,
    pub width: Option<String>,
    pub loading: Option<String>,
    pub decoding: Option<String>,
    /// `type` of a `<source>`.
    pub mime: Option<String>,
}

/// Attributes to set, in order.
pub type Changes = Vec<(&'static str, String)>;

/// Options with nothing but `format=auto` for an image of unknown display size.
const AUTO: &str = "format=auto";
/// The largest `width` the edge accepts (`spec`'s limit).
const MAX_WIDTH: u32 = 12_000;

/// `<img>` number `index` (0-based, in document order) in a page under `dir`.
pub fn rewrite_img(tag: &ImageTag, index: usize, dir: &str, o: &RewriteOptions) -> Changes {
    let width = tag.width.as_deref().and_then(display_width);
    let source = tag.src.as_deref().and_then(|s| image_source(s, dir, o));
    let mut changes = Changes::new();
    if let Some(src) = &source {
        changes.push((
            "src",
            image_url(&options(width, None, o), src, o.signer.as_ref()),
        ));
    }
    match (&tag.srcset, &source) {
        (Some(set), _) => {
            if let Some(set) = rewrite_srcset(set, width, dir, o) {
                changes.push(("srcset", set));
            }
        }
        (None, Some(src)) => match width {
            // A known display width: the same width at each density.
            Some(w) => {
                let set = o.densities.iter().map(|d| {
                    let url = image_url(
                        &options(Some(w), Some(&d.to_string()), o),
                        src,
                        o.signer.as_ref(),
                    );
                    (url, format!("{d}x"))
                });
                changes.push(("srcset", format_srcset(set)));
            }
            // Unknown: the configured widths, chosen by the browser with `sizes`. The original's
            // width is unknown here; `fit=scale-down` (the default) never enlarges anyway.
            None => {
                // Each width as the site allows it: the nearest allowed one from above.
                let mut widths: Vec<u32> = o.widths.iter().map(|w| o.snap_width(*w)).collect();
                widths.dedup();
                let set = widths.into_iter().map(|w| {
                    let url = image_url(&options(Some(w), None, o), src, o.signer.as_ref());
                    (url, format!("{w}w"))
                });
                changes.push(("srcset", format_srcset(set)));
                if tag.sizes.is_none() {
                    changes.push(("sizes", o.sizes.clone()));
                }
            }
        },
        (None, None) => {}
    }
    if !changes.is_empty() && o.lazy_loading && index >= o.eager_images {
        if tag.loading.is_none() {
            changes.push(("loading", "lazy".into()));
        }
        if tag.decoding.is_none() {
            changes.push(("decoding", "async".into()));
        }
    }
    changes
}

/// A `<source>` inside `<picture>`: its `srcset` entry by entry, descriptors kept.
pub fn rewrite_source(tag: &ImageTag, dir: &str, o: &RewriteOptions) -> Changes {
    let svg = tag
        .mime
        .as_deref()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("image/svg+xml"));
    let width = tag.width.as_deref().and_then(display_width);
    match (&tag.srcset, svg) {
        (Some(set), false) => rewrite_srcset(set, width, dir, o)
            .map(|s| vec![("srcset", s)])
            .unwrap_or_default(),
        _ => Changes::new(),
    }
}

/// Each candidate of a `srcset` that points at an image the edge may transform, rewritten;
/// `None` when nothing changed.
fn rewrite_srcset(set: &str, width: Option<u32>, dir: &str, o: &RewriteOptions) -> Option<String> {
    let mut changed = false;
    let out: Vec<(String, &str)> = parse_srcset(set)
        .into_iter()
        .map(|c| match image_source(c.url, dir, o) {
            Some(src) => {
                changed = true;
                (
                    image_url(
                        &descriptor_options(c.descriptor, width, o),
                        &src,
                        o.signer.as_ref(),
                    ),
                    c.descriptor,
                )
            }
            None => (c.url.to_string(), c.descriptor),
        })
        .collect();
    changed.then(|| format_srcset(out))
}

/// Transform options for a candidate: `640w` asks for 640 pixels; `2x` for twice the tag's
/// width when it is known.
fn descriptor_options(descriptor: &str, width: Option<u32>, o: &RewriteOptions) -> String {
    if let Some(w) = descriptor.strip_suffix('w') {
        return options(w.parse().ok(), None, o);
    }
    let density = match descriptor {
        "" => Some("1"),
        d => d.strip_suffix('x'),
    };
    match (width, density) {
        (Some(w), Some(d)) => options(Some(w), Some(d), o),
        _ => AUTO.into(),
    }
}

/// `width=W[,dpr=D],format=auto`, or plain `format=auto` when the edge would refuse the
/// combination (width over the limit, a density outside 1-4): the image still loads. The width
/// is one the site allows (`RewriteOptions::snap_width`). Checked here rather than with
/// `spec::parse_options`, which costs more than the rest of a tag.
fn options(width: Option<u32>, dpr: Option<&str>, o: &RewriteOptions) -> String {
    let Some(w) = width.filter(|w| (1..=MAX_WIDTH).contains(w)) else {
        return AUTO.into();
    };
    let w = o.snap_width(w);
    match dpr {
        None | Some("1") => format!("width={w},{AUTO}"),
        Some(d) if d.parse::<f32>().is_ok_and(|v| (1.0..=4.0).contains(&v)) => {
            format!("width={w},dpr={d},{AUTO}")
        }
        Some(_) => AUTO.into(),
    }
}

/// The display width from an `width` attribute, by HTML's rules for non-negative integers
/// (`300`, `300px` -> 300); percentages and zero are not a pixel width.
fn display_width(value: &str) -> Option<u32> {
    let v = value.trim_start();
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || v[digits..].starts_with('%') {
        return None;
    }
    v[..digits].parse().ok().filter(|w| *w > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    #[test]
    fn generated_options_are_accepted_by_the_edge() {
        for (w, d) in [
            (Some(1), None),
            (Some(12_000), Some("4")),
            (Some(300), Some("1.5")),
        ] {
            let o = options(w, d, &RewriteOptions::default());
            assert!(o.starts_with("width="), "{o}");
            assert!(spec::parse_options(&o).is_ok(), "{o}");
        }
        for (w, d) in [
            (Some(12_001), None),
            (Some(0), None),
            (Some(300), Some("5")),
            (None, Some("2")),
        ] {
            assert_eq!(options(w, d, &RewriteOptions::default()), AUTO);
        }
        assert_eq!(
            descriptor_options("480w", None, &RewriteOptions::default()),
            "width=480,format=auto"
        );
        assert_eq!(
            descriptor_options("2x", Some(100), &RewriteOptions::default()),
            "width=100,dpr=2,format=auto"
        );
        assert_eq!(
            descriptor_options("1.5x", None, &RewriteOptions::default()),
            AUTO
        );
        assert_eq!(
            descriptor_options("100h", Some(100), &RewriteOptions::default()),
            AUTO
        );
    }
}
