//! thumbor's URL form, under a site's `thumbor.prefix`:
//! `/<hmac>|unsafe/[fit-in/][-]WxH[/halign][/valign][/smart][/filters:f(a):g(b)]/<image>`,
//! signed with thumbor's scheme (HMAC-SHA1 of the security key over the path after the
//! signature, base64url with padding). `unsafe` only where the site allows it.

use super::policy::{ThumborConfig, UrlPolicy};
use super::source::source_from_url;
use super::types::{
    snippet, under_prefix, Dialect, Refusal, RefusalReason, Resolved, Signatures, ALL_MODERN,
};
use crate::spec::{
    self, BorderColour, BorderTrim, Crop, Fit, Flip, FormatRequest, Gravity, Metadata,
    OutputFormat, TransformSpec, Watermark, WatermarkPosition,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The thumbor request `path_and_query` under `policy`; `None` when the site serves no
/// thumbor URLs or the path is not under its prefix.
pub(super) fn resolve(
    policy: &UrlPolicy,
    path_and_query: &str,
    signatures: Signatures,
) -> Option<Result<Resolved, Refusal>> {
    let config = policy.thumbor.as_ref()?;
    let path = path_and_query.split('?').next().unwrap_or("");
    let rest = under_prefix(path, &config.prefix)?;
    Some(resolve_path(policy, config, rest, signatures))
}

fn resolve_path(
    policy: &UrlPolicy,
    config: &ThumborConfig,
    rest: &str,
    signatures: Signatures,
) -> Result<Resolved, Refusal> {
    let (signature, signed) = rest
        .split_once('/')
        .ok_or_else(|| Refusal::bad_url("thumbor URL without an image"))?;
    if signatures == Signatures::Check {
        check_signature(policy, config, signature, signed)?;
    }
    if policy.presets_only {
        return Err(Refusal::new(
            RefusalReason::NotAllowed,
            "only presets are allowed on this site",
        ));
    }
    let mut segments = signed.split('/').peekable();
    let mut req = Request::default();
    let mut next = segments.next().unwrap_or("");
    if next == "meta" {
        return Err(Refusal::bad_url("thumbor's meta endpoint is not supported"));
    }
    if next == "trim" || next.starts_with("trim:") {
        req.spec.trim_border = Some(trim(next)?);
        next = segments.next().unwrap_or("");
    }
    if is_manual_crop(next) {
        req.spec.crop = manual_crop(next)?;
        next = segments.next().unwrap_or("");
    }
    match next {
        "fit-in" => {
            req.fit_in = true;
            next = segments.next().unwrap_or("");
        }
        "adaptive-fit-in" | "full-fit-in" | "adaptive-full-fit-in" => {
            return Err(Refusal::bad_url(format!(
                "thumbor's {next} is not supported"
            )))
        }
        _ => {}
    }
    if req.size(next)? {
        next = segments.next().unwrap_or("");
    }
    let mut halign = "center";
    if matches!(next, "left" | "right" | "center") {
        halign = next;
        next = segments.next().unwrap_or("");
    }
    let mut valign = "middle";
    if matches!(next, "top" | "bottom" | "middle") {
        valign = next;
        next = segments.next().unwrap_or("");
    }
    req.spec.gravity = alignment(halign, valign);
    if next == "smart" {
        req.spec.gravity = Gravity::Auto;
        next = segments.next().unwrap_or("");
    }
    if next.starts_with("filters:") {
        // A filter's arguments may hold slashes (`watermark(/brand/logo.png,...)`): the
        // segment runs on to the `/` after its parentheses close, as thumbor reads it.
        let start = next.as_ptr() as usize - signed.as_ptr() as usize;
        let end = filters_end(&signed[start..]).map_or(signed.len(), |n| start + n);
        next = &signed[start..end];
        segments = signed.get(end + 1..).unwrap_or("").split('/').peekable();
        if end == signed.len() {
            // Nothing after the filters: no image (an empty split still yields one "").
            segments.next();
        }
        let filters = next.strip_prefix("filters:").unwrap_or(next);
        for filter in split_filters(filters)? {
            req.filter(filter, policy)?;
        }
        next = segments.next().unwrap_or("");
    }
    let image: Vec<&str> = std::iter::once(next).chain(segments).collect();
    let image = image.join("/");
    let decoded = percent_encoding::percent_decode_str(&image)
        .decode_utf8()
        .map_err(|_| Refusal::bad_url("image URL is not UTF-8"))?;
    let spec = req.finish();
    policy.check_values(&spec)?;
    Ok(Resolved {
        dialect: Dialect::Thumbor,
        spec,
        source: source_from_url(&decoded)?,
        modern: ALL_MODERN,
    })
}

/// `unsafe` where allowed, else thumbor's HMAC-SHA1 signature of `signed` with the site's
/// security key, compared in constant time.
fn check_signature(
    policy: &UrlPolicy,
    config: &ThumborConfig,
    signature: &str,
    signed: &str,
) -> Result<(), Refusal> {
    if signature == "unsafe" {
        if config.allow_unsafe && !policy.signing_required() {
            return Ok(());
        }
        return Err(Refusal::new(
            RefusalReason::MissingSignature,
            "signature required (unsafe URLs are not allowed)",
        ));
    }
    let wrong = || Refusal::new(RefusalReason::BadSignature, "bad signature");
    let key = config.security_key.as_deref().ok_or_else(wrong)?;
    let raw = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| wrong())?;
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(signed.as_bytes());
    mac.verify_slice(&raw).map_err(|_| wrong())
}

/// thumbor's signature of `path` (the part after the signature, no leading `/`) with
/// `security_key`: base64url of HMAC-SHA1, with padding, as libthumbor writes it.
pub fn thumbor_signature(security_key: &[u8], path: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(security_key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(path.as_bytes());
    base64::engine::general_purpose::URL_SAFE.encode(mac.finalize().into_bytes())
}

/// `AxB:CxD`, thumbor's manual crop.
fn is_manual_crop(segment: &str) -> bool {
    let Some((a, b)) = segment.split_once(':') else {
        return false;
    };
    let pair = |s: &str| {
        s.split_once('x').is_some_and(|(x, y)| {
            !x.is_empty()
                && !y.is_empty()
                && x.bytes().all(|c| c.is_ascii_digit())
                && y.bytes().all(|c| c.is_ascii_digit())
        })
    };
    pair(a) && pair(b)
}

/// `trim[:top-left|:bottom-right][:tolerance]`: cut away the border of the colour of that
/// corner pixel (top-left unless named), within a Euclidean RGB distance (0 unless given).
fn trim(segment: &str) -> Result<BorderTrim, Refusal> {
    let bad = || {
        Refusal::bad_url(format!(
            "trim: {} must be trim[:top-left|:bottom-right][:tolerance 0-442]",
            snippet(segment)
        ))
    };
    let mut parts = segment.split(':').skip(1);
    let mut colour = BorderColour::TopLeft;
    let mut tolerance = 0;
    let mut next = parts.next();
    match next {
        Some("top-left" | "") => next = parts.next(),
        Some("bottom-right") => {
            colour = BorderColour::BottomRight;
            next = parts.next();
        }
        _ => {}
    }
    if let Some(t) = next {
        tolerance = t
            .parse::<u16>()
            .ok()
            .filter(|&t| t <= 442)
            .ok_or_else(bad)?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(BorderTrim {
        colour,
        tolerance,
        keep: 0,
    })
}

/// The region of `AxB:CxD` (left, top, right, bottom in the original's pixels, after EXIF
/// orientation); `0x0:0x0` is none, as in thumbor.
fn manual_crop(segment: &str) -> Result<Option<Crop>, Refusal> {
    let bad = || {
        Refusal::bad_url(format!(
            "manual crop: {} must be left x top : right x bottom, right of left and below top, \
             at most {} pixels",
            snippet(segment),
            spec::MAX_CROP_PIXELS
        ))
    };
    let mut numbers = segment.split([':', 'x']).map(|n| {
        n.parse::<u32>()
            .ok()
            .filter(|&v| v <= spec::MAX_CROP_PIXELS)
    });
    let mut next = || numbers.next().flatten().ok_or_else(bad);
    let (left, top, right, bottom) = (next()?, next()?, next()?, next()?);
    if (left, top, right, bottom) == (0, 0, 0, 0) {
        return Ok(None);
    }
    if right <= left || bottom <= top {
        return Err(bad());
    }
    Ok(Some(Crop::Rect {
        left,
        top,
        width: Some(right - left),
        height: Some(bottom - top),
    }))
}

/// Where the filters segment at the start of `text` ends: the first `/` outside parentheses.
fn filters_end(text: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'/' if depth <= 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// `name(args):name(args)`: colons inside parentheses belong to the arguments.
fn split_filters(text: &str) -> Result<Vec<&str>, Refusal> {
    let out = spec::split_top_level(text, b':');
    if out.iter().any(|f| f.is_empty()) {
        return Err(Refusal::bad_url("filters: empty filter"));
    }
    Ok(out)
}

fn alignment(halign: &str, valign: &str) -> Gravity {
    match (halign, valign) {
        ("left", "top") => Gravity::TopLeft,
        ("center", "top") => Gravity::Top,
        ("right", "top") => Gravity::TopRight,
        ("left", "bottom") => Gravity::BottomLeft,
        ("center", "bottom") => Gravity::Bottom,
        ("right", "bottom") => Gravity::BottomRight,
        ("left", _) => Gravity::Left,
        ("right", _) => Gravity::Right,
        _ => Gravity::Center,
    }
}

/// What the URL said so far; the fit is settled at the end.
#[derive(Default)]
struct Request {
    spec: TransformSpec,
    fit_in: bool,
    /// `upscale()` / `no_upscale()`; unset: thumbor's default for the mode.
    upscale: Option<bool>,
    /// `fill(colour)`: with `fit-in`, the box is filled.
    fill: bool,
}

impl Request {
    /// Reads `[-]WxH` (either side may be empty, `0` or `orig`; a `-` flips that axis);
    /// `false` when `segment` is not a size.
    fn size(&mut self, segment: &str) -> Result<bool, Refusal> {
        let Some((w, h)) = segment.split_once('x') else {
            return Ok(false);
        };
        let side = |s: &str| -> Option<(bool, Option<u32>)> {
            let (flip, s) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            if s.is_empty() || s == "orig" {
                return Some((flip, None));
            }
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((flip, s.parse::<u32>().ok().filter(|v| *v > 0)))
        };
        let (Some((flip_h, width)), Some((flip_v, height))) = (side(w), side(h)) else {
            return Ok(false);
        };
        for v in [width, height].into_iter().flatten() {
            if v > 12_000 {
                return Err(Refusal::bad_url("size: width and height are at most 12000"));
            }
        }
        self.spec.width = width;
        self.spec.height = height;
        self.spec.flip = match (flip_h, flip_v) {
            (false, false) => Flip::None,
            (true, false) => Flip::Horizontal,
            (false, true) => Flip::Vertical,
            (true, true) => Flip::Both,
        };
        Ok(true)
    }

    fn filter(&mut self, filter: &str, policy: &UrlPolicy) -> Result<(), Refusal> {
        let (name, args) = match filter.split_once('(') {
            Some((name, rest)) => (
                name,
                rest.strip_suffix(')').ok_or_else(|| {
                    Refusal::bad_url(format!("filters: {} is not closed", snippet(name)))
                })?,
            ),
            None => (filter, ""),
        };
        let args: Vec<&str> = if args.is_empty() {
            Vec::new()
        } else {
            args.split(',').map(str::trim).collect()
        };
        let arg = |i: usize| args.get(i).copied().unwrap_or("");
        let int = |i: usize, lo: i64, hi: i64| -> Result<i64, Refusal> {
            arg(i)
                .parse::<i64>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| {
                    Refusal::bad_url(format!("{name}: must be an integer from {lo} to {hi}"))
                })
        };
        match name {
            "format" => {
                self.spec.format = FormatRequest::Fixed(match arg(0) {
                    "jpeg" | "jpg" => OutputFormat::Jpeg,
                    "png" => OutputFormat::Png,
                    "webp" => OutputFormat::Webp,
                    "avif" => OutputFormat::Avif,
                    other => {
                        return Err(Refusal::bad_url(format!(
                            "format: {} is not supported (jpeg, png, webp, avif)",
                            snippet(other)
                        )))
                    }
                })
            }
            "quality" => self.spec.quality = Some(int(0, 1, 100)? as u8),
            "blur" => {
                // thumbor's radius (0-150); imgate's blur is a radius too.
                let radius = int(0, 0, 150)?;
                self.spec.blur_deci = (radius > 0).then_some(radius as u16 * 10);
            }
            "grayscale" => self.spec.grayscale = true,
            "brightness" | "contrast" => {
                // thumbor's amount is a percentage change, -100 to 100: a factor of
                // 1 + amount/100 (at least 0.01: imgate reads a factor of 0 as unset).
                let amount: i32 = arg(0)
                    .parse()
                    .ok()
                    .filter(|v| (-100..=100).contains(v))
                    .ok_or_else(|| {
                        Refusal::bad_url(format!("{name}: amount must be from -100 to 100"))
                    })?;
                let centi = (100 + amount).max(1) as u16;
                let v = (centi != 100).then_some(centi);
                if name == "brightness" {
                    self.spec.brightness_centi = v;
                } else {
                    self.spec.contrast_centi = v;
                }
            }
            "fill" | "background_color" => {
                self.spec.background = Some(colour(name, arg(0))?);
                self.fill |= name == "fill";
            }
            "upscale" => self.upscale = Some(true),
            "no_upscale" => self.upscale = Some(false),
            "rotate" => {
                // thumbor turns counter-clockwise; imgate's rotate is clockwise.
                let angle = int(0, 0, 100_000)? % 360;
                self.spec.rotate = match angle {
                    0 => None,
                    90 => Some(270),
                    180 => Some(180),
                    270 => Some(90),
                    _ => {
                        return Err(Refusal::bad_url(
                            "rotate: only multiples of 90 are supported",
                        ))
                    }
                };
            }
            "sharpen" => {
                let amount: f64 = arg(0)
                    .parse()
                    .ok()
                    .filter(|v: &f64| (0.0..=10.0).contains(v))
                    .ok_or_else(|| Refusal::bad_url("sharpen: amount must be between 0 and 10"))?;
                let deci = (amount * 10.0).round() as u16;
                self.spec.sharpen_deci = (deci > 0).then_some(deci);
            }
            "watermark" => self.spec.watermark = Some(watermark(&args, policy)?),
            "strip_exif" => self.spec.metadata = Metadata::None,
            // Colour profiles are always converted to sRGB and left out.
            "strip_icc" => {}
            other => {
                return Err(Refusal::bad_url(format!(
                    "thumbor filter not supported: {}",
                    snippet(other)
                )))
            }
        }
        Ok(())
    }

    /// `fit-in` fits inside the box (enlarging with `upscale()`, filled with `fill()`); the
    /// default mode fills the box and crops (never enlarging with `no_upscale()`).
    fn finish(mut self) -> TransformSpec {
        self.spec.fit = match (self.fit_in, self.upscale) {
            (true, _) if self.fill => Fit::Pad,
            (true, Some(true)) => Fit::Contain,
            (true, _) => Fit::ScaleDown,
            (false, Some(false)) => Fit::Crop,
            (false, _) => Fit::Cover,
        };
        // thumbor crops, resizes and flips first and runs `rotate()` last; imgate turns and
        // mirrors first and fits after. The same result: the box, the mirror axis and the
        // crop anchor carried through the turn.
        let turns = self.spec.rotate.map_or(0, |r| r / 90);
        self.spec.gravity = self.spec.gravity.mirrored(self.spec.flip).turned(turns);
        if turns % 2 == 1 {
            std::mem::swap(&mut self.spec.width, &mut self.spec.height);
            self.spec.flip = match self.spec.flip {
                Flip::Horizontal => Flip::Vertical,
                Flip::Vertical => Flip::Horizontal,
                other => other,
            };
        }
        if self.spec.width.is_none() && self.spec.height.is_none() {
            // Nothing to fit or crop: the same transform (and cache entry) as saying none.
            self.spec.fit = Fit::default();
            self.spec.gravity = Gravity::default();
        }
        self.spec
    }
}

/// A thumbor colour: a name, `transparent`, or hex digits without `#`.
fn colour(name: &str, value: &str) -> Result<spec::Rgba, Refusal> {
    let css = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("#{value}")
    } else if value == "transparent" {
        "rgba(0,0,0,0)".to_string()
    } else {
        value.to_string()
    };
    let mut probe = TransformSpec::default();
    spec::apply_options(&mut probe, &format!("background={css}"))
        .ok()
        .and(probe.background)
        .ok_or_else(|| Refusal::bad_url(format!("{name}: {} is not a colour", snippet(value))))
}

/// `watermark(image, x, y, alpha[, w_ratio[, h_ratio]])`, for an image that is one of the
/// site's configured watermarks (named by its origin path or its name; thumbor would fetch
/// any URL, imgate lays only configured overlays). `x`, `y`: pixels from the left/top, or
/// from the right/bottom when negative, `center`, or `repeat` on both (tiles); `alpha`: its
/// transparency in percent (0 opaque); `w_ratio`: its width as a percentage of the picture's
/// (`none`: its own size). `h_ratio` other than `none`, and percentages (`20p`), are refused.
fn watermark(args: &[&str], policy: &UrlPolicy) -> Result<Watermark, Refusal> {
    let err = |m: &str| Refusal::bad_url(format!("watermark: {m}"));
    let arg = |i: usize| args.get(i).copied().unwrap_or("");
    let name = policy.watermark_named_by(arg(0)).ok_or_else(|| {
        err("the image must be one of the site's watermarks (its source path or name)")
    })?;
    // One axis: where along it (0, 0.5, 1) and the offset from that edge.
    let axis = |v: &str| -> Result<Option<(u16, u16)>, Refusal> {
        match v {
            "center" => Ok(Some((500, 0))),
            "repeat" => Ok(None),
            n => {
                let px: i64 = n
                    .parse()
                    .map_err(|_| err("x and y are pixels, center or repeat"))?;
                let offset = u16::try_from(px.unsigned_abs())
                    .ok()
                    .filter(|o| *o <= Watermark::MAX_OFFSET)
                    .ok_or_else(|| err("x and y are at most 10000 pixels from an edge"))?;
                Ok(Some((if px < 0 { 1000 } else { 0 }, offset)))
            }
        }
    };
    let (position, offset) = match (axis(arg(1))?, axis(arg(2))?) {
        (None, None) => (WatermarkPosition::Tile, (0, 0)),
        (Some((x, ox)), Some((y, oy))) => (
            WatermarkPosition::At(Gravity::Point {
                x_milli: x,
                y_milli: y,
            }),
            (ox, oy),
        ),
        _ => return Err(err("repeat is supported on both axes only")),
    };
    let alpha: u8 = arg(3)
        .parse()
        .ok()
        .filter(|a| *a <= 100)
        .ok_or_else(|| err("alpha is a transparency from 0 to 100"))?;
    let scale_centi = match arg(4) {
        "" | "none" => None,
        r => Some(
            r.parse::<u8>()
                .ok()
                .filter(|r| (1..=100).contains(r))
                .ok_or_else(|| err("w_ratio is a percentage from 1 to 100, or none"))?,
        ),
    };
    if !matches!(arg(5), "" | "none") {
        return Err(err("h_ratio is not supported (none only)"));
    }
    Ok(Watermark {
        name: name.to_string(),
        opacity_centi: Some(100 - alpha),
        position: Some(position),
        offset: Some(offset),
        scale_centi,
    })
}
