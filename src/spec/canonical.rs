//! The canonical form: the one options string a spec is written as (long keys, a fixed order,
//! defaults left out), so two URLs that mean the same thing share one cache key.

use super::types::{
    BorderColour, BorderTrim, Crop, Extent, Fit, Flip, FormatRequest, Gravity, Metadata, Rgba,
    TransformSpec, Watermark, WatermarkPosition,
};
use std::fmt;

impl fmt::Display for TransformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// `value / 10^digits` with trailing zeros dropped: 250 (2 digits) -> "2.5", 100 -> "1".
fn format_fixed(value: u64, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let (int, frac) = (value / scale, value % scale);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

fn gravity_name(g: Gravity) -> String {
    match g {
        Gravity::Auto => "auto".into(),
        Gravity::Center => "center".into(),
        Gravity::Top => "top".into(),
        Gravity::Bottom => "bottom".into(),
        Gravity::Left => "left".into(),
        Gravity::Right => "right".into(),
        Gravity::TopLeft => "top-left".into(),
        Gravity::TopRight => "top-right".into(),
        Gravity::BottomLeft => "bottom-left".into(),
        Gravity::BottomRight => "bottom-right".into(),
        Gravity::Point { x_milli, y_milli } => format!(
            "{}x{}",
            format_fixed(u64::from(x_milli), 3),
            format_fixed(u64::from(y_milli), 3)
        ),
    }
}

fn fit_name(fit: Fit) -> &'static str {
    match fit {
        Fit::ScaleDown => "scale-down",
        Fit::Contain => "contain",
        Fit::Cover => "cover",
        Fit::Crop => "crop",
        Fit::Pad => "pad",
        Fit::Squeeze => "squeeze",
    }
}

fn extent_text(e: Extent) -> String {
    match e {
        Extent::Full => "0".into(),
        Extent::Pixels(p) => p.to_string(),
        Extent::Milli(m) => format_fixed(u64::from(m), 3),
    }
}

/// The region options, written as they parse back: `trim=` for edges, the `trim.*` keys that
/// differ from their defaults for a rectangle, `crop=` (and `crop.gravity=`) for a sized one.
fn push_crop(parts: &mut Vec<String>, crop: Crop) {
    match crop {
        Crop::Edges {
            top,
            right,
            bottom,
            left,
        } => parts.push(format!("trim={top};{right};{bottom};{left}")),
        Crop::Rect {
            left,
            top,
            width,
            height,
        } => {
            if left != 0 {
                parts.push(format!("trim.left={left}"));
            }
            if top != 0 {
                parts.push(format!("trim.top={top}"));
            }
            if let Some(w) = width {
                parts.push(format!("trim.width={w}"));
            }
            if let Some(h) = height {
                parts.push(format!("trim.height={h}"));
            }
        }
        Crop::Sized {
            width,
            height,
            gravity,
        } => {
            parts.push(format!(
                "crop={}x{}",
                extent_text(width),
                extent_text(height)
            ));
            if let Some(g) = gravity {
                parts.push(format!("crop.gravity={}", gravity_name(g)));
            }
        }
    }
}

/// `#rrggbb`, or `#rrggbbaa` when not opaque.
fn colour_text(Rgba([r, g, b, a]): Rgba) -> String {
    if a == 0xff {
        format!("#{r:02x}{g:02x}{b:02x}")
    } else {
        format!("#{r:02x}{g:02x}{b:02x}{a:02x}")
    }
}

/// `watermark=` and the adjustments the URL made.
fn push_watermark(parts: &mut Vec<String>, w: &Watermark) {
    parts.push(format!("watermark={}", w.name));
    if let Some(o) = w.opacity_centi {
        parts.push(format!(
            "watermark.opacity={}",
            format_fixed(u64::from(o), 2)
        ));
    }
    match w.position {
        None => {}
        Some(WatermarkPosition::Tile) => parts.push("watermark.position=tile".into()),
        Some(WatermarkPosition::At(g)) => {
            parts.push(format!("watermark.position={}", gravity_name(g)))
        }
    }
    if let Some((x, y)) = w.offset {
        parts.push(format!("watermark.offset={x};{y}"));
    }
    if let Some(s) = w.scale_centi {
        parts.push(format!("watermark.scale={}", format_fixed(u64::from(s), 2)));
    }
}

/// `trim=border` and the `trim.border.*` keys that differ from their defaults.
fn push_border(parts: &mut Vec<String>, border: BorderTrim) {
    parts.push("trim=border".into());
    match border.colour {
        BorderColour::TopLeft => {}
        BorderColour::BottomRight => parts.push("trim.border.color=bottom-right".into()),
        BorderColour::Rgba(c) => parts.push(format!("trim.border.color={}", colour_text(c))),
    }
    if border.tolerance != BorderTrim::DEFAULT_TOLERANCE {
        parts.push(format!("trim.border.tolerance={}", border.tolerance));
    }
    if border.keep != 0 {
        parts.push(format!("trim.border.keep={}", border.keep));
    }
}

impl TransformSpec {
    /// The options string that parses back to exactly this spec: long key names in a fixed
    /// order, defaults left out, so equal specs give equal cache keys.
    ///
    /// The default spec canonicalises to the empty string, which `parse_options` rejects (a
    /// URL must say something); callers building keys should treat "" as "no transform".
    pub fn canonical(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(w) = self.width {
            parts.push(format!("width={w}"));
        }
        if let Some(h) = self.height {
            parts.push(format!("height={h}"));
        }
        if self.dpr_centi != 0 && self.dpr_centi != 100 {
            parts.push(format!(
                "dpr={}",
                format_fixed(u64::from(self.dpr_centi), 2)
            ));
        }
        if self.fit != Fit::ScaleDown {
            parts.push(format!("fit={}", fit_name(self.fit)));
        }
        if let Some(across) = self.fit_across {
            parts.push(format!("fit.across={}", fit_name(across)));
        }
        if self.gravity != Gravity::Center {
            parts.push(format!("gravity={}", gravity_name(self.gravity)));
        }
        if let Some(border) = self.trim_border {
            push_border(&mut parts, border);
        }
        if let Some(crop) = self.crop {
            push_crop(&mut parts, crop);
        }
        if let Some(q) = self.quality {
            parts.push(format!("quality={q}"));
        }
        if let Some(q) = self.slow_quality {
            parts.push(format!("scq={q}"));
        }
        match self.format {
            FormatRequest::Original => {}
            FormatRequest::Auto => parts.push("format=auto".into()),
            FormatRequest::Json => parts.push("format=json".into()),
            FormatRequest::Fixed(f) => parts.push(format!("format={}", f.name())),
        }
        if let Some(colour) = self.background {
            parts.push(format!("background={}", colour_text(colour)));
        }
        if let Some(blur) = self.blur_deci {
            parts.push(format!("blur={}", format_fixed(u64::from(blur), 1)));
        }
        if let Some(sharpen) = self.sharpen_deci.filter(|&s| s != 0) {
            parts.push(format!("sharpen={}", format_fixed(u64::from(sharpen), 1)));
        }
        if let Some(rotate) = self.rotate.filter(|&r| r != 0) {
            parts.push(format!("rotate={rotate}"));
        }
        let flip = match self.flip {
            Flip::None => None,
            Flip::Horizontal => Some("h"),
            Flip::Vertical => Some("v"),
            Flip::Both => Some("hv"),
        };
        if let Some(flip) = flip {
            parts.push(format!("flip={flip}"));
        }
        for (name, value) in [
            ("brightness", self.brightness_centi),
            ("contrast", self.contrast_centi),
            ("gamma", self.gamma_centi),
            ("saturation", self.saturation_centi),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={}", format_fixed(u64::from(v), 2)));
            }
        }
        if self.grayscale {
            parts.push("grayscale=true".into());
        }
        if let Some(border) = self.border {
            let mut items = Vec::new();
            if let Some(c) = border.colour {
                items.push(format!("color:{}", colour_text(c)));
            }
            let [t, r, b, l] = border.sides();
            if t == r && r == b && b == l {
                items.push(format!("width:{t}"));
            } else {
                items.push(format!("top:{t};right:{r};bottom:{b};left:{l}"));
            }
            parts.push(format!("border={}", items.join(";")));
        }
        match self.metadata {
            Metadata::None => {}
            Metadata::Copyright => parts.push("metadata=copyright".into()),
            Metadata::Keep => parts.push("metadata=keep".into()),
        }
        if !self.anim {
            parts.push("anim=false".into());
        }
        if self.compression_fast {
            parts.push("compression=fast".into());
        }
        if let Some(w) = &self.watermark {
            push_watermark(&mut parts, w);
        }
        if self.onerror_redirect {
            parts.push("onerror=redirect".into());
        }
        if let Some(cb) = &self.cachebuster {
            parts.push(format!("cachebuster={cb}"));
        }
        parts.join(",")
    }
}
