//! imgproxy's URL form, under a site's `imgproxy.prefix`:
//! `<prefix>/<signature>/<options>/plain/<source>[@<ext>]` or
//! `<prefix>/<signature>/<options>/<base64url source>[.<ext>]`. Options are `/`-separated
//! `name:arg:arg...` items with imgproxy's long and short names, applied in order (a later one
//! wins); the signature is `insecure` or `_` where signing is not required, else imgproxy's own
//! (HMAC-SHA256 of the salt and the path after the signature, base64url).

use super::policy::UrlPolicy;
use super::source::source_from_url;
use super::types::{
    snippet, under_prefix, Dialect, Refusal, RefusalReason, Resolved, Signatures, ALL_MODERN,
};
use crate::spec::{
    self, Crop, Extent, Fit, FormatRequest, Gravity, Metadata, OutputFormat, Rgba, TransformSpec,
    Watermark, WatermarkPosition,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The imgproxy request `path_and_query` under `policy`; `None` when the site serves no
/// imgproxy URLs or the path is not under its prefix.
pub(super) fn resolve(
    policy: &UrlPolicy,
    path_and_query: &str,
    signatures: Signatures,
) -> Option<Result<Resolved, Refusal>> {
    let prefix = policy.imgproxy_prefix.as_deref()?;
    let path = path_and_query.split('?').next().unwrap_or("");
    let rest = under_prefix(path, prefix)?;
    Some(resolve_path(policy, rest, signatures))
}

fn resolve_path(
    policy: &UrlPolicy,
    rest: &str,
    signatures: Signatures,
) -> Result<Resolved, Refusal> {
    let (signature, signed) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return Err(Refusal::bad_url("imgproxy URL without options or source")),
    };
    if signatures == Signatures::Check {
        if signature == "insecure" || signature == "_" {
            policy.check_unsigned()?;
        } else {
            policy.check_signature(signed, signature)?;
        }
    }
    let segments: Vec<&str> = signed[1..].split('/').collect();
    // Options are the leading segments holding a `:`; the source starts after them.
    let first_source = segments
        .iter()
        .position(|s| !s.contains(':'))
        .ok_or_else(|| Refusal::bad_url("imgproxy URL without a source"))?;
    let (options, source) = segments.split_at(first_source);
    let (source, extension) = read_source(source)?;
    let mut req = Request::default();
    for item in options {
        req.apply(item, policy)?;
    }
    if let Some(ext) = extension {
        req.spec.format = format_named("extension", &ext)?;
    }
    let spec = req.finish()?;
    policy.check_values(&spec)?;
    Ok(Resolved {
        dialect: Dialect::Imgproxy,
        spec,
        source: source_from_url(&source)?,
        modern: ALL_MODERN,
    })
}

/// The source URL and the extension asked for after it (`@png` or `.png`).
fn read_source(segments: &[&str]) -> Result<(String, Option<String>), Refusal> {
    if segments.first() == Some(&"plain") {
        let raw = segments[1..].join("/");
        let decoded = percent_encoding::percent_decode_str(&raw)
            .decode_utf8()
            .map_err(|_| Refusal::bad_url("plain source is not UTF-8"))?;
        return Ok(match decoded.rsplit_once('@') {
            Some((url, ext)) if !ext.contains('/') => (url.to_string(), Some(ext.to_string())),
            _ => (decoded.into_owned(), None),
        });
    }
    // Base64 sources may be split by slashes; an extension follows the last `.`.
    let joined: String = segments.concat();
    let (encoded, ext) = match joined.split_once('.') {
        Some((e, ext)) => (e, Some(ext.to_string())),
        None => (joined.as_str(), None),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| Refusal::bad_url("source is not base64url"))?;
    let url = String::from_utf8(bytes).map_err(|_| Refusal::bad_url("source is not UTF-8"))?;
    Ok((url, ext))
}

/// What the options said so far; the fit is settled at the end, from the resizing type and
/// the enlarge and extend flags together.
#[derive(Default)]
struct Request {
    spec: TransformSpec,
    resizing: Option<String>,
    enlarge: bool,
    extend: bool,
    /// `crop`'s width, height and gravity, in the frame after `rotate` as imgproxy reads them.
    crop: Option<(Extent, Extent, Option<Gravity>)>,
}

impl Request {
    fn apply(&mut self, item: &str, policy: &UrlPolicy) -> Result<(), Refusal> {
        let mut parts = item.split(':');
        let name = parts.next().unwrap_or("");
        let args: Vec<&str> = parts.collect();
        let arg = |i: usize| args.get(i).copied().filter(|a| !a.is_empty());
        if policy.presets_only && !matches!(name, "preset" | "pr") {
            return Err(Refusal::new(
                RefusalReason::NotAllowed,
                format!(
                    "only presets are allowed on this site, not {}",
                    snippet(name)
                ),
            ));
        }
        match name {
            "resize" | "rs" => {
                self.resizing_type(arg(0))?;
                self.size(name, arg(1), arg(2), arg(3), arg(4))?;
            }
            "size" | "s" => self.size(name, arg(0), arg(1), arg(2), arg(3))?,
            "resizing_type" | "rt" => self.resizing_type(arg(0))?,
            "width" | "w" => self.spec.width = dimension(name, arg(0))?,
            "height" | "h" => self.spec.height = dimension(name, arg(0))?,
            "enlarge" | "el" => self.enlarge = flag(name, arg(0))?,
            "extend" | "ex" => {
                self.extend = flag(name, arg(0))?;
                if args.len() > 1 && gravity(name, &args[1..])? != Gravity::Center {
                    return Err(Refusal::bad_url("extend: only centre gravity is supported"));
                }
            }
            "dpr" => {
                let v = number(name, arg(0))?;
                if !(1.0..=4.0).contains(&v) {
                    return Err(Refusal::bad_url("dpr: must be between 1 and 4"));
                }
                self.spec.dpr_centi = (v * 100.0).round() as u16;
            }
            "gravity" | "g" => self.spec.gravity = gravity(name, &args)?,
            "padding" | "pd" => {
                // CSS-style: top sets every side not given, right sets left when not given.
                let side = |i: usize| -> Result<Option<u16>, Refusal> {
                    arg(i)
                        .map(|v| {
                            v.parse::<u16>()
                                .ok()
                                .filter(|&w| w <= spec::Border::MAX_WIDTH)
                                .ok_or_else(|| {
                                    Refusal::bad_url(format!(
                                        "{name}: sides are 0 to {} pixels",
                                        spec::Border::MAX_WIDTH
                                    ))
                                })
                        })
                        .transpose()
                };
                let (t, r, b, l) = (side(0)?, side(1)?, side(2)?, side(3)?);
                let border = spec::Border {
                    colour: None,
                    top: t.unwrap_or(0),
                    right: r.or(t).unwrap_or(0),
                    bottom: b.or(t).unwrap_or(0),
                    left: l.or(r).or(t).unwrap_or(0),
                };
                self.spec.border = (border.sides() != [0; 4]).then_some(border);
            }
            "crop" | "c" => {
                let g = if args.len() > 2 {
                    Some(gravity(name, &args[2..])?)
                } else {
                    None
                };
                self.crop = Some((extent(name, arg(0))?, extent(name, arg(1))?, g));
            }
            "quality" | "q" => {
                let q = number(name, arg(0))?;
                self.spec.quality = match q as u32 {
                    _ if q.fract() != 0.0 || !(0.0..=100.0).contains(&q) => {
                        return Err(Refusal::bad_url(
                            "quality: must be an integer from 0 to 100",
                        ))
                    }
                    0 => None,
                    q => Some(q as u8),
                };
            }
            "format" | "f" | "ext" => {
                let v = arg(0).ok_or_else(|| Refusal::bad_url(format!("{name}: missing value")))?;
                self.spec.format = format_named(name, v)?;
            }
            "background" | "bg" => self.spec.background = Some(background(&args)?),
            "blur" | "bl" => {
                // imgproxy's blur is a Gaussian sigma; imgate's a radius of twice that.
                let sigma = number(name, arg(0))?;
                self.spec.blur_deci = match (sigma * 20.0).round() {
                    0.0 => None,
                    r if (10.0..=2500.0).contains(&r) => Some(r as u16),
                    _ => {
                        return Err(Refusal::bad_url(
                            "blur: sigma must be 0 or between 0.5 and 125",
                        ))
                    }
                };
            }
            "sharpen" | "sh" => {
                // A sigma; imgate's sharpen strength of 0-10 is twice it, capped.
                let sigma = number(name, arg(0))?;
                if !(0.0..=50.0).contains(&sigma) {
                    return Err(Refusal::bad_url("sharpen: sigma must be between 0 and 50"));
                }
                let deci = ((sigma * 20.0).round() as u16).min(100);
                self.spec.sharpen_deci = (deci > 0).then_some(deci);
            }
            "rotate" | "rot" => {
                self.spec.rotate = match arg(0) {
                    Some("0") | None => None,
                    Some("90") => Some(90),
                    Some("180") => Some(180),
                    Some("270") => Some(270),
                    Some(_) => return Err(Refusal::bad_url("rotate: must be 0, 90, 180 or 270")),
                }
            }
            "auto_rotate" | "ar" => {
                if !flag(name, arg(0))? {
                    return Err(Refusal::bad_url(
                        "auto_rotate: imgate always applies EXIF orientation; false is not supported",
                    ));
                }
            }
            "strip_metadata" | "sm" => {
                self.spec.metadata = if flag(name, arg(0))? {
                    Metadata::None
                } else {
                    Metadata::Keep
                };
            }
            "cachebuster" | "cb" => {
                let mut probe = TransformSpec::default();
                let value = arg(0).unwrap_or("");
                spec::apply_options(&mut probe, &format!("cachebuster={value}"))
                    .map_err(|e| Refusal::bad_url(e.0))?;
                self.spec.cachebuster = probe.cachebuster;
            }
            "preset" | "pr" => {
                for name in &args {
                    let text = policy.presets.get(name).ok_or_else(|| {
                        Refusal::bad_url(format!("preset: no preset named {}", snippet(name)))
                    })?;
                    spec::apply_options(&mut self.spec, text).map_err(|e| Refusal::bad_url(e.0))?;
                }
            }
            "watermark" | "wm" => self.spec.watermark = watermark(&args, policy)?,
            other => {
                let long = match other {
                    "t" | "trim" => " (trim)",
                    "kcr" | "keep_copyright" => " (keep_copyright)",
                    "mb" | "max_bytes" => " (max_bytes)",
                    "fn" | "filename" => " (filename)",
                    "exp" | "expires" => " (expires)",
                    _ => "",
                };
                return Err(Refusal::bad_url(format!(
                    "imgproxy option not supported: {}{long}",
                    snippet(other)
                )));
            }
        }
        Ok(())
    }

    fn resizing_type(&mut self, value: Option<&str>) -> Result<(), Refusal> {
        if let Some(v) = value {
            match v {
                "fit" | "fill" | "fill-down" | "force" | "auto" => {
                    self.resizing = Some(v.to_string())
                }
                _ => {
                    return Err(Refusal::bad_url(
                        "resizing_type: must be fit, fill, fill-down, force or auto",
                    ))
                }
            }
        }
        Ok(())
    }

    fn size(
        &mut self,
        name: &str,
        width: Option<&str>,
        height: Option<&str>,
        enlarge: Option<&str>,
        extend: Option<&str>,
    ) -> Result<(), Refusal> {
        if width.is_some() {
            self.spec.width = dimension(name, width)?;
        }
        if height.is_some() {
            self.spec.height = dimension(name, height)?;
        }
        if enlarge.is_some() {
            self.enlarge = flag(name, enlarge)?;
        }
        if extend.is_some() {
            self.extend = flag(name, extend)?;
        }
        Ok(())
    }

    /// The spec with its fit: `fit` (enlarging with `enlarge`, padded with `extend`), `fill`
    /// and `fill-down` (cropped; enlarging with `enlarge`), `force` (stretched), `auto` (fill
    /// when the source and the box are both landscape or both portrait, else fit); and the
    /// crop carried from the turned frame imgproxy reads it in to the upright one imgate does.
    fn finish(mut self) -> Result<TransformSpec, Refusal> {
        let fit = if self.extend {
            Fit::Pad
        } else if self.enlarge {
            Fit::Contain
        } else {
            Fit::ScaleDown
        };
        let fill = if self.enlarge { Fit::Cover } else { Fit::Crop };
        self.spec.fit = match self.resizing.as_deref().unwrap_or("fit") {
            "fit" => fit,
            "fill" | "fill-down" => fill,
            "auto" => {
                self.spec.fit_across = Some(fit);
                fill
            }
            _ => Fit::Squeeze,
        };
        if let Some((mut width, mut height, mut gravity)) = self.crop {
            let turns = self.spec.rotate.map_or(0, |r| r / 90);
            if turns != 0 {
                // The region turns back with the picture; without a gravity of its own it
                // follows the main one, which is read in the turned frame too.
                if turns % 2 == 1 {
                    std::mem::swap(&mut width, &mut height);
                }
                gravity = Some(gravity.unwrap_or(self.spec.gravity).turned(4 - turns));
            }
            self.spec.crop = Some(Crop::Sized {
                width,
                height,
                gravity,
            });
        }
        spec::normalise(&mut self.spec);
        Ok(self.spec)
    }
}

/// A width or height: 0 means "from the other side" (none).
fn dimension(name: &str, value: Option<&str>) -> Result<Option<u32>, Refusal> {
    match value.unwrap_or("0").parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(v) if v <= 12_000 => Ok(Some(v)),
        _ => Err(Refusal::bad_url(format!(
            "{name}: must be an integer from 0 to 12000"
        ))),
    }
}

/// A side of `crop`: 0 the whole side, below 1 a fraction of it, else whole pixels.
fn extent(name: &str, value: Option<&str>) -> Result<Extent, Refusal> {
    let v = number(name, Some(value.unwrap_or("0")))?;
    Ok(match v {
        0.0 => Extent::Full,
        v if v > 0.0 && v < 1.0 => Extent::Milli(((v * 1000.0).round() as u16).clamp(1, 999)),
        v if v >= 1.0 && v <= f64::from(spec::MAX_CROP_PIXELS) => Extent::Pixels(v as u32),
        _ => {
            return Err(Refusal::bad_url(format!(
                "{name}: width and height must be 0, a fraction below 1 or pixels up to {}",
                spec::MAX_CROP_PIXELS
            )))
        }
    })
}

fn number(name: &str, value: Option<&str>) -> Result<f64, Refusal> {
    value
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| Refusal::bad_url(format!("{name}: must be a number")))
}

/// imgproxy's booleans: `1`, `t`, `true` and `0`, `f`, `false`.
fn flag(name: &str, value: Option<&str>) -> Result<bool, Refusal> {
    match value {
        Some("1" | "t" | "true") => Ok(true),
        Some("0" | "f" | "false") | None => Ok(false),
        Some(_) => Err(Refusal::bad_url(format!("{name}: must be true or false"))),
    }
}

fn format_named(name: &str, value: &str) -> Result<FormatRequest, Refusal> {
    Ok(FormatRequest::Fixed(
        match value.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => OutputFormat::Jpeg,
            "png" => OutputFormat::Png,
            "webp" => OutputFormat::Webp,
            "avif" => OutputFormat::Avif,
            _ => {
                return Err(Refusal::bad_url(format!(
                    "{name}: {} is not supported (jpg, png, webp, avif)",
                    snippet(value)
                )))
            }
        },
    ))
}

/// `type[:x_offset:y_offset]` or `fp:x:y`; offsets other than 0 are not supported.
fn gravity(name: &str, args: &[&str]) -> Result<Gravity, Refusal> {
    let kind = args.first().copied().unwrap_or("ce");
    if kind == "fp" {
        let coord = |i: usize| -> Result<u16, Refusal> {
            let v = number(name, args.get(i).copied())?;
            if !(0.0..=1.0).contains(&v) {
                return Err(Refusal::bad_url(format!(
                    "{name}: focus point coordinates are 0 to 1"
                )));
            }
            Ok((v * 1000.0).round() as u16)
        };
        return Ok(Gravity::Point {
            x_milli: coord(1)?,
            y_milli: coord(2)?,
        });
    }
    if args[1.min(args.len())..]
        .iter()
        .any(|o| o.parse::<f64>() != Ok(0.0))
    {
        return Err(Refusal::bad_url(format!(
            "{name}: offsets are not supported"
        )));
    }
    Ok(match kind {
        "ce" => Gravity::Center,
        "no" => Gravity::Top,
        "so" => Gravity::Bottom,
        "ea" => Gravity::Right,
        "we" => Gravity::Left,
        "noea" => Gravity::TopRight,
        "nowe" => Gravity::TopLeft,
        "soea" => Gravity::BottomRight,
        "sowe" => Gravity::BottomLeft,
        "sm" => Gravity::Auto,
        _ => {
            return Err(Refusal::bad_url(format!(
                "{name}: {} is not a gravity imgate supports",
                snippet(kind)
            )))
        }
    })
}

/// `r:g:b` (0-255 each) or a hex colour (`ff0000`).
fn background(args: &[&str]) -> Result<Rgba, Refusal> {
    let err = || Refusal::bad_url("background: must be r:g:b or a hex colour");
    match args {
        [r, g, b] => {
            let c = |v: &str| v.parse::<u8>().map_err(|_| err());
            Ok(Rgba([c(r)?, c(g)?, c(b)?, 255]))
        }
        [hex] if hex.len() == 6 => {
            let v = u32::from_str_radix(hex, 16).map_err(|_| err())?;
            let [_, r, g, b] = v.to_be_bytes();
            Ok(Rgba([r, g, b, 255]))
        }
        _ => Err(err()),
    }
}

/// `wm:%opacity:%position:%x_offset:%y_offset:%scale`: the site's imgproxy watermark
/// (`imgproxy.watermark`). Opacity 0 to 1 multiplies the configured one (0: none); position
/// `ce`, `no`, `so`, `ea`, `we`, `noea`, `nowe`, `soea`, `sowe` or `re` (tiles); offsets in
/// pixels from the edges it is placed against (between tiles for `re`); scale its width as a
/// fraction of the picture's (0: its own size).
fn watermark(args: &[&str], policy: &UrlPolicy) -> Result<Option<Watermark>, Refusal> {
    let arg = |i: usize| args.get(i).copied().filter(|a| !a.is_empty());
    let name = policy.imgproxy_watermark.as_ref().ok_or_else(|| {
        Refusal::bad_url("watermark: this site has no imgproxy watermark (imgproxy.watermark)")
    })?;
    let opacity = number("watermark", arg(0))?;
    if !(0.0..=1.0).contains(&opacity) {
        return Err(Refusal::bad_url(
            "watermark: opacity must be between 0 and 1",
        ));
    }
    if opacity == 0.0 {
        return Ok(None);
    }
    let position = match arg(1) {
        None => None,
        Some("re") => Some(WatermarkPosition::Tile),
        Some(p) => match gravity("watermark", &[p])? {
            Gravity::Auto => {
                return Err(Refusal::bad_url(
                    "watermark: sm is not a watermark position",
                ))
            }
            g => Some(WatermarkPosition::At(g)),
        },
    };
    let offset = |i: usize| -> Result<u16, Refusal> {
        match arg(i) {
            None => Ok(0),
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|o| *o <= Watermark::MAX_OFFSET)
                .ok_or_else(|| Refusal::bad_url("watermark: offsets are 0 to 10000 pixels")),
        }
    };
    let offset = if arg(2).is_some() || arg(3).is_some() {
        Some((offset(2)?, offset(3)?))
    } else {
        None
    };
    let scale = match arg(4) {
        None => 0.0,
        Some(v) => number("watermark", Some(v))?,
    };
    if !(0.0..=1.0).contains(&scale) {
        return Err(Refusal::bad_url("watermark: scale must be between 0 and 1"));
    }
    let scale_centi = ((scale * 100.0).round() as u8).max(u8::from(scale > 0.0));
    Ok(Some(Watermark {
        name: name.clone(),
        opacity_centi: Some((opacity * 100.0).round() as u8),
        position,
        offset,
        scale_centi: (scale_centi > 0).then_some(scale_centi),
    }))
}
