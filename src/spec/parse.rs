//! The options syntax: `key=value` items split at top-level commas, every key and alias, value
//! ranges, and errors that name the option and echo little of the input.

use super::colour::parse_colour;
use super::types::{
    Border, BorderColour, BorderTrim, Crop, Extent, Fit, Flip, FormatRequest, Gravity, Metadata,
    OutputFormat, TransformSpec, Watermark, WatermarkPosition,
};
use super::values::{decimal_in, int_in, Decimal};

/// A bad option: the message names the option and is safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// Largest `width`/`height` a client may ask for (before dpr).
const MAX_DIMENSION: u64 = 12_000;

/// Largest pixel count a `trim` or `crop` value may name (regions are clipped to the image).
pub const MAX_CROP_PIXELS: u32 = 100_000;

/// One option, whatever alias named it, so duplicates are caught across aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Width,
    Height,
    Dpr,
    Fit,
    Gravity,
    Quality,
    Format,
    Background,
    Blur,
    Sharpen,
    Rotate,
    Flip,
    Grayscale,
    Metadata,
    Anim,
    Cachebuster,
    FitAcross,
    Trim,
    TrimLeft,
    TrimTop,
    TrimWidth,
    TrimHeight,
    Crop,
    CropGravity,
    TrimBorderColour,
    TrimBorderTolerance,
    TrimBorderKeep,
    Brightness,
    Contrast,
    Gamma,
    Saturation,
    Compression,
    Onerror,
    SlowQuality,
    Border,
    Watermark,
    WatermarkOpacity,
    WatermarkPosition,
    WatermarkOffset,
    WatermarkScale,
}

// `seen` keeps a bit per option in a u64, the top one for `trim=border`.
const _: () = assert!((Opt::WatermarkScale as u32) < 63);

/// Options that name a region in different ways: one segment may use only one of the groups
/// (a later segment, or a URL's own options over a preset's, replaces the region).
const REGION_GROUPS: [&[Opt]; 3] = [
    &[Opt::Trim],
    &[Opt::TrimLeft, Opt::TrimTop, Opt::TrimWidth, Opt::TrimHeight],
    &[Opt::Crop, Opt::CropGravity],
];

/// Every key the parser accepts, aliases included, and the option it names. `Opt::from_key`
/// reads it; a unit test checks that the fuzz dictionaries hold every key.
const KEYS: &[(&str, Opt)] = &[
    ("width", Opt::Width),
    ("w", Opt::Width),
    ("height", Opt::Height),
    ("h", Opt::Height),
    ("dpr", Opt::Dpr),
    ("fit", Opt::Fit),
    ("gravity", Opt::Gravity),
    ("quality", Opt::Quality),
    ("q", Opt::Quality),
    ("format", Opt::Format),
    ("f", Opt::Format),
    ("background", Opt::Background),
    ("blur", Opt::Blur),
    ("sharpen", Opt::Sharpen),
    ("rotate", Opt::Rotate),
    ("flip", Opt::Flip),
    ("grayscale", Opt::Grayscale),
    ("metadata", Opt::Metadata),
    ("anim", Opt::Anim),
    ("cachebuster", Opt::Cachebuster),
    ("fit.across", Opt::FitAcross),
    ("trim", Opt::Trim),
    ("trim.left", Opt::TrimLeft),
    ("trim.top", Opt::TrimTop),
    ("trim.width", Opt::TrimWidth),
    ("trim.height", Opt::TrimHeight),
    ("crop", Opt::Crop),
    ("crop.gravity", Opt::CropGravity),
    ("trim.border.color", Opt::TrimBorderColour),
    ("trim.border.colour", Opt::TrimBorderColour),
    ("trim.border.tolerance", Opt::TrimBorderTolerance),
    ("trim.border.keep", Opt::TrimBorderKeep),
    ("brightness", Opt::Brightness),
    ("contrast", Opt::Contrast),
    ("gamma", Opt::Gamma),
    ("saturation", Opt::Saturation),
    ("compression", Opt::Compression),
    ("onerror", Opt::Onerror),
    ("slow-connection-quality", Opt::SlowQuality),
    ("scq", Opt::SlowQuality),
    ("border", Opt::Border),
    ("watermark", Opt::Watermark),
    ("watermark.opacity", Opt::WatermarkOpacity),
    ("watermark.position", Opt::WatermarkPosition),
    ("watermark.offset", Opt::WatermarkOffset),
    ("watermark.scale", Opt::WatermarkScale),
];

/// The keys of [`KEYS`], for tests outside this module.
#[cfg(test)]
pub(super) fn keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|(key, _)| *key)
}

impl Opt {
    fn from_key(key: &str) -> Option<Opt> {
        KEYS.iter().find(|(k, _)| *k == key).map(|(_, opt)| *opt)
    }

    fn name(self) -> &'static str {
        match self {
            Opt::Width => "width",
            Opt::Height => "height",
            Opt::Dpr => "dpr",
            Opt::Fit => "fit",
            Opt::Gravity => "gravity",
            Opt::Quality => "quality",
            Opt::Format => "format",
            Opt::Background => "background",
            Opt::Blur => "blur",
            Opt::Sharpen => "sharpen",
            Opt::Rotate => "rotate",
            Opt::Flip => "flip",
            Opt::Grayscale => "grayscale",
            Opt::Metadata => "metadata",
            Opt::Anim => "anim",
            Opt::Cachebuster => "cachebuster",
            Opt::FitAcross => "fit.across",
            Opt::Trim => "trim",
            Opt::TrimLeft => "trim.left",
            Opt::TrimTop => "trim.top",
            Opt::TrimWidth => "trim.width",
            Opt::TrimHeight => "trim.height",
            Opt::Crop => "crop",
            Opt::CropGravity => "crop.gravity",
            Opt::TrimBorderColour => "trim.border.color",
            Opt::TrimBorderTolerance => "trim.border.tolerance",
            Opt::TrimBorderKeep => "trim.border.keep",
            Opt::Brightness => "brightness",
            Opt::Contrast => "contrast",
            Opt::Gamma => "gamma",
            Opt::Saturation => "saturation",
            Opt::Compression => "compression",
            Opt::Onerror => "onerror",
            Opt::SlowQuality => "slow-connection-quality",
            Opt::Border => "border",
            Opt::Watermark => "watermark",
            Opt::WatermarkOpacity => "watermark.opacity",
            Opt::WatermarkPosition => "watermark.position",
            Opt::WatermarkOffset => "watermark.offset",
            Opt::WatermarkScale => "watermark.scale",
        }
    }

    /// The public "must be ..." half of a bad-value message.
    fn expects(self) -> &'static str {
        match self {
            Opt::Width | Opt::Height => "an integer between 1 and 12000",
            Opt::Dpr => "a number between 1 and 4",
            Opt::Fit | Opt::FitAcross => "one of scale-down, contain, cover, crop, pad, squeeze",
            Opt::Gravity | Opt::CropGravity => {
                "auto, center, top, bottom, left, right, top-left, top-right, bottom-left, \
                 bottom-right or <x>x<y> with x and y between 0 and 1"
            }
            Opt::Quality | Opt::SlowQuality => "an integer between 1 and 100",
            Opt::Format => "one of auto, jpeg, baseline-jpeg, png, webp, avif, json",
            Opt::Compression => "fast",
            Opt::Onerror => "redirect",
            Opt::Background => {
                "a CSS colour: #rgb, #rgba, #rrggbb, #rrggbbaa, rgb(), rgba() or a name"
            }
            Opt::Blur => "a number between 1 and 250",
            Opt::Sharpen => "a number between 0 and 10",
            Opt::Rotate => "0, 90, 180 or 270",
            Opt::Flip => "h, v or hv",
            Opt::Grayscale | Opt::Anim => "true or false",
            Opt::Metadata => "one of none, copyright, keep",
            Opt::Cachebuster => "1 to 64 letters, digits, '-', '_' or '.'",
            Opt::Trim => "border, or four pixel counts top;right;bottom;left (0 to 100000)",
            Opt::TrimBorderColour => "top-left, bottom-right or a CSS colour",
            Opt::TrimBorderTolerance => "an integer between 0 and 510",
            Opt::TrimBorderKeep => "an integer between 0 and 100000",
            Opt::Brightness | Opt::Contrast | Opt::Gamma | Opt::Saturation => {
                "a factor between 0 and 10 (1 = unchanged)"
            }
            Opt::Border => {
                "color:<CSS colour>;width:<px>, or top:/right:/bottom:/left:<px> for each side \
                 (0 to 1000 each)"
            }
            Opt::Watermark => {
                "the name of one of the site's watermarks (1-64 letters, digits, '-', '_', '.')"
            }
            Opt::WatermarkOpacity => "a number between 0 and 1",
            Opt::WatermarkPosition => {
                "tile, center, top, bottom, left, right, top-left, top-right, bottom-left, \
                 bottom-right or <x>x<y> with x and y between 0 and 1"
            }
            Opt::WatermarkOffset => "<px> or <x>;<y>, each 0 to 10000",
            Opt::WatermarkScale => "a fraction of the output's width, above 0 and up to 1",
            Opt::TrimLeft | Opt::TrimTop => "an integer between 0 and 100000",
            Opt::TrimWidth | Opt::TrimHeight => "an integer between 1 and 100000",
            Opt::Crop => {
                "<width>x<height>, each 0 (the whole side), a pixel count up to 100000 or a \
                 fraction below 1"
            }
        }
    }
}

/// Parses the `<options>` segment of `/cdn-cgi/image/<options>/<source>` (already
/// percent-decoded) into a validated spec.
///
/// Every error names the option it is about and echoes at most a short, printable snippet of
/// the input, so the message can go straight into a 400 response.
pub fn parse_options(options: &str) -> Result<TransformSpec, SpecError> {
    parse_options_with(options, &|_| None).map(|parsed| parsed.spec)
}

/// What an options segment that may name presets said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub spec: TransformSpec,
    /// The options the segment set itself (long names, in order), presets left out: what a
    /// site that allows presets only refuses.
    pub own: Vec<&'static str>,
}

/// [`parse_options`] where `preset=<name>` items name option strings that `preset` looks up
/// (a site's presets, validated when the config was loaded). Presets apply first, in order,
/// later ones over earlier ones; the segment's own options then override them. An own option
/// given twice is still an error.
pub fn parse_options_with<'p>(
    options: &str,
    preset: &dyn Fn(&str) -> Option<&'p str>,
) -> Result<Parsed, SpecError> {
    let options = options.trim();
    if options.is_empty() {
        return Err(SpecError("no options given".into()));
    }
    let mut spec = TransformSpec::default();
    let mut own = Vec::new();
    for item in split_options(options) {
        let (key, value) = split_item(item)?;
        if key == "preset" {
            let name = value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SpecError("preset: missing value".into()))?;
            let text = preset(name)
                .ok_or_else(|| SpecError(format!("preset: no preset named {}", snippet(name))))?;
            apply_items(&mut spec, text, &mut 0)?;
        } else {
            own.push((key, value));
        }
    }
    let mut seen = 0u64;
    let mut names = Vec::with_capacity(own.len());
    for (key, value) in own {
        names.push(apply_item(&mut spec, key, value, &mut seen)?);
    }
    check_watermark(&spec)?;
    normalise(&mut spec);
    Ok(Parsed { spec, own: names })
}

/// Applies `options` (imgate's syntax, no presets) over what `spec` already says: for dialects
/// whose presets or options apply in order, later ones winning.
pub fn apply_options(spec: &mut TransformSpec, options: &str) -> Result<(), SpecError> {
    apply_items(spec, options, &mut 0)?;
    check_watermark(spec)?;
    normalise(spec);
    Ok(())
}

/// `watermark.*` adjusts a named watermark: alone, there is nothing to adjust.
fn check_watermark(spec: &TransformSpec) -> Result<(), SpecError> {
    match &spec.watermark {
        Some(w) if w.name.is_empty() => Err(SpecError(
            "watermark.*: adjusts a watermark; name one with watermark=<name>".into(),
        )),
        _ => Ok(()),
    }
}

/// The watermark an adjustment applies to (named later in the segment, or already).
fn watermark(spec: &mut TransformSpec) -> &mut Watermark {
    spec.watermark.get_or_insert_with(Watermark::default)
}

/// 1-64 letters, digits, `-`, `_`, `.`: a cachebuster or a watermark's name.
fn token(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    ok.then(|| value.to_string())
}

/// One spelling for what changes nothing: a region that is the whole image is no region, and
/// `fit.across` equal to `fit` is no alternative. Run once a segment is read (a lone
/// `crop.gravity` is a whole-image crop until a `crop` later in the segment sizes it).
pub fn normalise(spec: &mut TransformSpec) {
    let whole = match spec.crop {
        Some(Crop::Edges {
            top,
            right,
            bottom,
            left,
        }) => top == 0 && right == 0 && bottom == 0 && left == 0,
        Some(Crop::Rect {
            left,
            top,
            width,
            height,
        }) => left == 0 && top == 0 && width.is_none() && height.is_none(),
        Some(Crop::Sized { width, height, .. }) => width == Extent::Full && height == Extent::Full,
        None => false,
    };
    if whole {
        spec.crop = None;
    }
    if spec.fit_across == Some(spec.fit) {
        spec.fit_across = None;
    }
}

/// Applies every item of `options` to `spec`; an option in `seen` (a bit per option) is a
/// duplicate.
fn apply_items(spec: &mut TransformSpec, options: &str, seen: &mut u64) -> Result<(), SpecError> {
    for item in split_options(options) {
        let (key, value) = split_item(item)?;
        apply_item(spec, key, value, seen)?;
    }
    Ok(())
}

/// `key=value` (or a bare `key`), trimmed.
fn split_item(item: &str) -> Result<(&str, Option<&str>), SpecError> {
    let item = item.trim();
    if item.is_empty() {
        return Err(SpecError("empty option (stray comma)".into()));
    }
    let (key, value) = match item.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None => (item, None),
    };
    if key.is_empty() {
        return Err(SpecError("option without a name".into()));
    }
    Ok((key, value))
}

/// Sets one option named by `key`; returns its long name.
fn apply_item(
    spec: &mut TransformSpec,
    key: &str,
    value: Option<&str>,
    seen: &mut u64,
) -> Result<&'static str, SpecError> {
    let opt =
        Opt::from_key(key).ok_or_else(|| SpecError(format!("unknown option: {}", snippet(key))))?;
    // `trim` is two options in one: `trim=border` has a bit of its own.
    const BORDER: u64 = 1 << 63;
    let border = opt == Opt::Trim && value.map(str::trim) == Some("border");
    let bit = if border { BORDER } else { 1u64 << (opt as u32) };
    let mask = |group: &[Opt]| group.iter().fold(0u64, |m, &o| m | 1 << (o as u32));
    if *seen & bit != 0 {
        return Err(SpecError(format!("{}: given more than once", opt.name())));
    }
    let border_bits = BORDER
        | mask(&[
            Opt::TrimBorderColour,
            Opt::TrimBorderTolerance,
            Opt::TrimBorderKeep,
        ]);
    let edges = mask(&[Opt::Trim]);
    if (bit & border_bits != 0 && *seen & edges != 0) || (bit == edges && *seen & border_bits != 0)
    {
        return Err(SpecError(format!(
            "{}: trim=border (and trim.border.*) and trim=top;right;bottom;left are different \
             trims; use one",
            opt.name()
        )));
    }
    if let Some(group) = REGION_GROUPS
        .iter()
        .find(|g| g.contains(&opt))
        .filter(|_| !border)
    {
        let others = REGION_GROUPS
            .iter()
            .filter(|g| *g != group)
            .fold(0u64, |m, g| m | mask(g));
        if *seen & others != 0 {
            return Err(SpecError(format!(
                "{}: trim, trim.left/top/width/height and crop name a region in different \
                 ways; use one",
                opt.name()
            )));
        }
    }
    *seen |= bit;
    // `grayscale` alone is a flag; every other option needs a value.
    let value = match (opt, value) {
        (Opt::Grayscale, None) => "true",
        (_, Some(v)) if !v.is_empty() => v,
        _ => return Err(SpecError(format!("{}: missing value", opt.name()))),
    };
    apply(spec, opt, value)
        .ok_or_else(|| SpecError(format!("{}: must be {}", opt.name(), opt.expects())))?;
    Ok(opt.name())
}

/// Sets one option on `spec`; `None` when the value is invalid or out of range.
fn apply(spec: &mut TransformSpec, opt: Opt, value: &str) -> Option<()> {
    match opt {
        Opt::Width => spec.width = Some(int_in(value, 1, MAX_DIMENSION)? as u32),
        Opt::Height => spec.height = Some(int_in(value, 1, MAX_DIMENSION)? as u32),
        Opt::Dpr => spec.dpr_centi = decimal_in(value, 1, 4, 2)? as u16,
        Opt::Fit => spec.fit = parse_fit(value)?,
        Opt::Gravity => spec.gravity = parse_gravity(value)?,
        Opt::Quality => spec.quality = Some(int_in(value, 1, 100)? as u8),
        Opt::SlowQuality => spec.slow_quality = Some(int_in(value, 1, 100)? as u8),
        Opt::Format => {
            spec.format = match value {
                "auto" => FormatRequest::Auto,
                // imgate's JPEG is baseline: `baseline-jpeg` is the same output.
                "jpeg" | "jpg" | "baseline-jpeg" => FormatRequest::Fixed(OutputFormat::Jpeg),
                "png" => FormatRequest::Fixed(OutputFormat::Png),
                "webp" => FormatRequest::Fixed(OutputFormat::Webp),
                "avif" => FormatRequest::Fixed(OutputFormat::Avif),
                "json" => FormatRequest::Json,
                _ => return None,
            }
        }
        Opt::Background => spec.background = Some(parse_colour(value)?),
        Opt::Blur => spec.blur_deci = Some(decimal_in(value, 1, 250, 1)? as u16),
        Opt::Sharpen => {
            let deci = decimal_in(value, 0, 10, 1)? as u16;
            spec.sharpen_deci = (deci != 0).then_some(deci);
        }
        Opt::Rotate => {
            spec.rotate = match value {
                "0" => None,
                "90" => Some(90),
                "180" => Some(180),
                "270" => Some(270),
                _ => return None,
            }
        }
        Opt::Flip => {
            spec.flip = match value {
                "h" => Flip::Horizontal,
                "v" => Flip::Vertical,
                "hv" | "vh" => Flip::Both,
                _ => return None,
            }
        }
        Opt::Grayscale => spec.grayscale = parse_bool(value)?,
        Opt::Metadata => {
            spec.metadata = match value {
                "none" => Metadata::None,
                "copyright" => Metadata::Copyright,
                "keep" => Metadata::Keep,
                _ => return None,
            }
        }
        Opt::Anim => spec.anim = parse_bool(value)?,
        Opt::Compression => spec.compression_fast = (value == "fast").then_some(true)?,
        Opt::Onerror => spec.onerror_redirect = (value == "redirect").then_some(true)?,
        Opt::Cachebuster => spec.cachebuster = Some(token(value)?),
        Opt::Watermark => watermark(spec).name = token(value)?,
        Opt::WatermarkOpacity => {
            watermark(spec).opacity_centi = Some(decimal_in(value, 0, 1, 2)? as u8);
        }
        Opt::WatermarkPosition => {
            watermark(spec).position = Some(match value {
                "tile" => WatermarkPosition::Tile,
                other => {
                    WatermarkPosition::At(parse_gravity(other).filter(|g| *g != Gravity::Auto)?)
                }
            });
        }
        Opt::WatermarkOffset => {
            let max = u64::from(Watermark::MAX_OFFSET);
            let (x, y) = match value.split_once(';') {
                Some((x, y)) => (int_in(x.trim(), 0, max)?, int_in(y.trim(), 0, max)?),
                None => (int_in(value, 0, max)?, int_in(value, 0, max)?),
            };
            watermark(spec).offset = Some((x as u16, y as u16));
        }
        Opt::WatermarkScale => {
            let centi = decimal_in(value, 0, 1, 2)? as u8;
            watermark(spec).scale_centi = Some((centi > 0).then_some(centi)?);
        }
        Opt::FitAcross => spec.fit_across = Some(parse_fit(value)?),
        Opt::Border => spec.border = parse_border(value)?,
        Opt::Brightness | Opt::Contrast | Opt::Gamma | Opt::Saturation => {
            let centi = decimal_in(value, 0, 10, 2)? as u16;
            // 1 changes nothing; 0 is ignored (Cloudflare's rule) except for saturation,
            // where it is grey.
            let keep = centi != 100 && (centi != 0 || opt == Opt::Saturation);
            let v = keep.then_some(centi);
            match opt {
                Opt::Brightness => spec.brightness_centi = v,
                Opt::Contrast => spec.contrast_centi = v,
                Opt::Gamma => spec.gamma_centi = v,
                _ => spec.saturation_centi = v,
            }
        }
        Opt::Trim if value == "border" => {
            // One `trim` option, two meanings: the last one given wins (a URL's own over a
            // preset's), so a spec never holds both.
            if matches!(spec.crop, Some(Crop::Edges { .. })) {
                spec.crop = None;
            }
            spec.trim_border = Some(border_trim(spec));
        }
        Opt::TrimBorderColour | Opt::TrimBorderTolerance | Opt::TrimBorderKeep
            if matches!(spec.crop, Some(Crop::Edges { .. })) =>
        {
            // A preset's `trim=t;r;b;l` gives way to a URL's border trim, as to its `trim`.
            spec.crop = None;
            return apply(spec, opt, value);
        }
        Opt::TrimBorderColour => {
            let colour = match value {
                "top-left" => BorderColour::TopLeft,
                "bottom-right" => BorderColour::BottomRight,
                css => BorderColour::Rgba(parse_colour(css)?),
            };
            spec.trim_border = Some(BorderTrim {
                colour,
                ..border_trim(spec)
            });
        }
        Opt::TrimBorderTolerance => {
            let tolerance = int_in(value, 0, 510)? as u16;
            spec.trim_border = Some(BorderTrim {
                tolerance,
                ..border_trim(spec)
            });
        }
        Opt::TrimBorderKeep => {
            let keep = int_in(value, 0, MAX_CROP)? as u32;
            spec.trim_border = Some(BorderTrim {
                keep,
                ..border_trim(spec)
            });
        }
        Opt::Trim => {
            spec.trim_border = None;
            let mut sides = value.split(';').map(|v| int_in(v.trim(), 0, MAX_CROP));
            let mut next = || -> Option<u32> { Some(sides.next()?? as u32) };
            let (top, right, bottom, left) = (next()?, next()?, next()?, next()?);
            if sides.next().is_some() {
                return None;
            }
            spec.crop = Some(Crop::Edges {
                top,
                right,
                bottom,
                left,
            });
        }
        Opt::TrimLeft | Opt::TrimTop | Opt::TrimWidth | Opt::TrimHeight => {
            let lo = u64::from(matches!(opt, Opt::TrimWidth | Opt::TrimHeight));
            let v = int_in(value, lo, MAX_CROP)? as u32;
            let (mut l, mut t, mut w, mut h) = match spec.crop {
                Some(Crop::Rect {
                    left,
                    top,
                    width,
                    height,
                }) => (left, top, width, height),
                _ => (0, 0, None, None),
            };
            match opt {
                Opt::TrimLeft => l = v,
                Opt::TrimTop => t = v,
                Opt::TrimWidth => w = Some(v),
                _ => h = Some(v),
            }
            spec.crop = Some(Crop::Rect {
                left: l,
                top: t,
                width: w,
                height: h,
            });
        }
        Opt::Crop => {
            let (w, h) = value.split_once('x')?;
            let gravity = match spec.crop {
                Some(Crop::Sized { gravity, .. }) => gravity,
                _ => None,
            };
            spec.crop = Some(Crop::Sized {
                width: parse_extent(w)?,
                height: parse_extent(h)?,
                gravity,
            });
        }
        Opt::CropGravity => {
            let g = parse_gravity(value)?;
            let (width, height) = match spec.crop {
                Some(Crop::Sized { width, height, .. }) => (width, height),
                _ => (Extent::Full, Extent::Full),
            };
            spec.crop = Some(Crop::Sized {
                width,
                height,
                gravity: Some(g),
            });
        }
    }
    Some(())
}

/// `color:<css>;width:<px>;top:<px>;...`: a side given by name overrides `width`, wherever
/// it stands. `None` inside for all widths 0 (no border).
fn parse_border(value: &str) -> Option<Option<Border>> {
    let mut colour = None;
    let mut all = None;
    let mut sides: [Option<u16>; 4] = [None; 4];
    for part in value.split(';') {
        let (key, v) = part.split_once(':')?;
        let (key, v) = (key.trim(), v.trim());
        let width = || int_in(v, 0, u64::from(Border::MAX_WIDTH)).map(|w| w as u16);
        let slot = match key {
            "color" | "colour" => {
                (colour.is_none()).then_some(())?;
                colour = Some(parse_colour(v)?);
                continue;
            }
            "width" => &mut all,
            "top" => &mut sides[0],
            "right" => &mut sides[1],
            "bottom" => &mut sides[2],
            "left" => &mut sides[3],
            _ => return None,
        };
        if slot.is_some() {
            return None; // given twice
        }
        *slot = Some(width()?);
    }
    let [top, right, bottom, left] = sides.map(|s| s.or(all).unwrap_or(0));
    Some((top | right | bottom | left != 0).then_some(Border {
        colour,
        top,
        right,
        bottom,
        left,
    }))
}

/// The spec's border trim so far, or the default one (`trim=border` alone).
fn border_trim(spec: &TransformSpec) -> BorderTrim {
    spec.trim_border.unwrap_or(BorderTrim {
        colour: BorderColour::TopLeft,
        tolerance: BorderTrim::DEFAULT_TOLERANCE,
        keep: 0,
    })
}

/// [`MAX_CROP_PIXELS`] as the bound `int_in` takes.
const MAX_CROP: u64 = MAX_CROP_PIXELS as u64;

fn parse_fit(value: &str) -> Option<Fit> {
    Some(match value {
        "scale-down" => Fit::ScaleDown,
        "contain" => Fit::Contain,
        "cover" => Fit::Cover,
        "crop" => Fit::Crop,
        "pad" => Fit::Pad,
        "squeeze" => Fit::Squeeze,
        _ => return None,
    })
}

/// One side of `crop`: `0` the whole side, a whole number of pixels (at most
/// [`MAX_CROP_PIXELS`]), or a fraction below 1 kept to thousandths (at least 0.001).
fn parse_extent(value: &str) -> Option<Extent> {
    let d = Decimal::parse(value.trim())?;
    if d.int == 0 && d.frac_is_zero() {
        return Some(Extent::Full);
    }
    if d.int == 0 {
        let milli = decimal_in(value.trim(), 0, 1, 3)?.clamp(1, 999);
        return Some(Extent::Milli(milli as u16));
    }
    if !d.frac_is_zero() {
        return None;
    }
    (1..=MAX_CROP)
        .contains(&d.int)
        .then_some(Extent::Pixels(d.int as u32))
}

/// Splits an options segment into its items at commas outside parentheses, so
/// `background=rgb(1,2,3)` stays one item; joining the items with `,` gives the segment back.
/// Unbalanced parentheses are not an error here; the value parser rejects them.
pub fn split_options(s: &str) -> Vec<&str> {
    split_top_level(s, b',')
}

/// Splits `s` at each `sep` outside parentheses (also thumbor's `name(args):name(args)`).
pub fn split_top_level(s: &str, sep: u8) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b if b == sep && depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items
}

/// At most 32 printable ASCII characters of client input, for error messages that end up in
/// responses and logs.
fn snippet(s: &str) -> String {
    const MAX_CHARS: usize = 32;
    let mut out: String = s
        .chars()
        .take(MAX_CHARS)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().nth(MAX_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_gravity(value: &str) -> Option<Gravity> {
    Some(match value {
        "auto" => Gravity::Auto,
        "center" | "centre" => Gravity::Center,
        "top" | "north" => Gravity::Top,
        "bottom" | "south" => Gravity::Bottom,
        "left" | "west" => Gravity::Left,
        "right" | "east" => Gravity::Right,
        "top-left" | "north-west" => Gravity::TopLeft,
        "top-right" | "north-east" => Gravity::TopRight,
        "bottom-left" | "south-west" => Gravity::BottomLeft,
        "bottom-right" | "south-east" => Gravity::BottomRight,
        _ => {
            let (x, y) = value.split_once('x')?;
            Gravity::Point {
                x_milli: decimal_in(x, 0, 1, 3)? as u16,
                y_milli: decimal_in(y, 0, 1, 3)? as u16,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{Opt, KEYS};

    /// `Opt::name` is its own `match`, so the compiler asks for a name for every new option.
    /// The name must be the option's first key in `KEYS`, which the parser reads back as it.
    #[test]
    fn every_option_is_named_by_its_first_key() {
        for (key, opt) in KEYS {
            let first = KEYS.iter().find(|(_, o)| o == opt).map(|(k, _)| *k);
            assert_eq!(Some(opt.name()), first, "{key}");
            assert_eq!(Opt::from_key(opt.name()), Some(*opt), "{key}");
        }
    }
}
