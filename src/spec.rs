//! Transform options: the `<options>` segment of `/cdn-cgi/image/<options>/<source>` parsed into
//! one canonical [`TransformSpec`]. Owns parsing, validation and the canonical string form used
//! in cache keys. Of HTTP it knows only how to read an `Accept` value into [`Accepts`]; it
//! knows nothing of how images are processed.
//!
//! Fractional values are quantised and stored as integers so a spec is `Eq + Hash` and two URLs
//! that mean the same thing produce the same canonical form (and so one cache entry).

use std::fmt;

/// An output encoding the pipeline can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    Jpeg,
    Png,
    Webp,
    Avif,
}

impl OutputFormat {
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Avif => "image/avif",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
        }
    }
}

/// What the client asked for with `format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FormatRequest {
    /// No `format` option: keep the source's format when it can be encoded, else JPEG/PNG.
    #[default]
    Original,
    /// `format=auto`: AVIF, else WebP, else JPEG (PNG with alpha), by the client's `Accept`.
    Auto,
    Fixed(OutputFormat),
}

/// Which modern formats a client accepts, read from `Accept` by the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Accepts {
    pub avif: bool,
    pub webp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fit {
    /// Shrink to fit inside width x height keeping aspect; never enlarge. Cloudflare's default.
    #[default]
    ScaleDown,
    /// Fit inside width x height keeping aspect, enlarging if needed.
    Contain,
    /// Fill width x height exactly, cropping the overflow around the gravity point.
    Cover,
    /// Like cover but never enlarges: shrink then crop to at most width x height.
    Crop,
    /// Fit inside, then pad to exactly width x height with `background`.
    Pad,
}

/// Where to keep the interesting part when cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Gravity {
    /// Centre for now; a saliency guess may come later.
    #[default]
    Auto,
    Center,
    Top,
    Bottom,
    Left,
    Right,
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    /// Focal point, each axis in thousandths of the image size (0..=1000).
    Point {
        x_milli: u16,
        y_milli: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flip {
    #[default]
    None,
    Horizontal,
    Vertical,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Metadata {
    /// Strip everything (Cloudflare's default for non-JPEG; ours for all).
    #[default]
    None,
    Copyright,
    Keep,
}

/// An sRGB colour with alpha, parsed from a CSS colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgba(pub [u8; 4]);

/// One canonical, validated set of transform options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransformSpec {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Device pixel ratio in hundredths (100 = 1x, 100..=400).
    pub dpr_centi: u16,
    pub fit: Fit,
    pub gravity: Gravity,
    /// 1..=100; `None` means the encoder's default for the format.
    pub quality: Option<u8>,
    pub format: FormatRequest,
    pub background: Option<Rgba>,
    /// Gaussian blur radius in tenths (10..=2500); `None` = no blur.
    pub blur_deci: Option<u16>,
    /// Sharpen strength in tenths (0..=100); `None` or 0 = none.
    pub sharpen_deci: Option<u16>,
    /// Clockwise rotation in degrees: 90, 180 or 270.
    pub rotate: Option<u16>,
    pub flip: Flip,
    pub grayscale: bool,
    pub metadata: Metadata,
    /// `anim=false`: first frame only.
    pub anim: bool,
}

impl TransformSpec {
    /// The device pixel ratio as a float.
    pub fn dpr(&self) -> f32 {
        if self.dpr_centi == 0 {
            1.0
        } else {
            self.dpr_centi as f32 / 100.0
        }
    }
}

/// A bad option: the message names the option and is safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl fmt::Display for TransformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl Default for TransformSpec {
    /// What an options segment that sets nothing would mean: dpr 1x and animation kept, so a
    /// spec built in code compares equal to one parsed from a URL.
    fn default() -> Self {
        TransformSpec {
            width: None,
            height: None,
            dpr_centi: 100,
            fit: Fit::default(),
            gravity: Gravity::default(),
            quality: None,
            format: FormatRequest::default(),
            background: None,
            blur_deci: None,
            sharpen_deci: None,
            rotate: None,
            flip: Flip::default(),
            grayscale: false,
            metadata: Metadata::default(),
            anim: true,
        }
    }
}

/// Largest `width`/`height` a client may ask for (before dpr).
const MAX_DIMENSION: u64 = 12_000;

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
}

impl Opt {
    fn from_key(key: &str) -> Option<Opt> {
        Some(match key {
            "width" | "w" => Opt::Width,
            "height" | "h" => Opt::Height,
            "dpr" => Opt::Dpr,
            "fit" => Opt::Fit,
            "gravity" => Opt::Gravity,
            "quality" | "q" => Opt::Quality,
            "format" | "f" => Opt::Format,
            "background" => Opt::Background,
            "blur" => Opt::Blur,
            "sharpen" => Opt::Sharpen,
            "rotate" => Opt::Rotate,
            "flip" => Opt::Flip,
            "grayscale" => Opt::Grayscale,
            "metadata" => Opt::Metadata,
            "anim" => Opt::Anim,
            _ => return None,
        })
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
        }
    }

    /// The public "must be ..." half of a bad-value message.
    fn expects(self) -> &'static str {
        match self {
            Opt::Width | Opt::Height => "an integer between 1 and 12000",
            Opt::Dpr => "a number between 1 and 4",
            Opt::Fit => "one of scale-down, contain, cover, crop, pad",
            Opt::Gravity => {
                "auto, center, top, bottom, left, right, top-left, top-right, bottom-left, \
                 bottom-right or <x>x<y> with x and y between 0 and 1"
            }
            Opt::Quality => "an integer between 1 and 100",
            Opt::Format => "one of auto, jpeg, png, webp, avif",
            Opt::Background => {
                "a CSS colour: #rgb, #rgba, #rrggbb, #rrggbbaa, rgb(), rgba() or a name"
            }
            Opt::Blur => "a number between 1 and 250",
            Opt::Sharpen => "a number between 0 and 10",
            Opt::Rotate => "0, 90, 180 or 270",
            Opt::Flip => "h, v or hv",
            Opt::Grayscale | Opt::Anim => "true or false",
            Opt::Metadata => "one of none, copyright, keep",
        }
    }
}

/// Parses the `<options>` segment of `/cdn-cgi/image/<options>/<source>` (already
/// percent-decoded) into a validated spec.
///
/// Every error names the option it is about and echoes at most a short, printable snippet of
/// the input, so the message can go straight into a 400 response.
pub fn parse_options(options: &str) -> Result<TransformSpec, SpecError> {
    let options = options.trim();
    if options.is_empty() {
        return Err(SpecError("no options given".into()));
    }
    let mut spec = TransformSpec::default();
    let mut seen = 0u32;
    for item in split_top_level(options) {
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
        let opt = Opt::from_key(key)
            .ok_or_else(|| SpecError(format!("unknown option: {}", snippet(key))))?;
        let bit = 1u32 << (opt as u32);
        if seen & bit != 0 {
            return Err(SpecError(format!("{}: given more than once", opt.name())));
        }
        seen |= bit;
        // `grayscale` alone is a flag; every other option needs a value.
        let value = match (opt, value) {
            (Opt::Grayscale, None) => "true",
            (_, Some(v)) if !v.is_empty() => v,
            _ => return Err(SpecError(format!("{}: missing value", opt.name()))),
        };
        apply(&mut spec, opt, value)
            .ok_or_else(|| SpecError(format!("{}: must be {}", opt.name(), opt.expects())))?;
    }
    Ok(spec)
}

/// Sets one option on `spec`; `None` when the value is invalid or out of range.
fn apply(spec: &mut TransformSpec, opt: Opt, value: &str) -> Option<()> {
    match opt {
        Opt::Width => spec.width = Some(int_in(value, 1, MAX_DIMENSION)? as u32),
        Opt::Height => spec.height = Some(int_in(value, 1, MAX_DIMENSION)? as u32),
        Opt::Dpr => spec.dpr_centi = decimal_in(value, 1, 4, 2)? as u16,
        Opt::Fit => {
            spec.fit = match value {
                "scale-down" => Fit::ScaleDown,
                "contain" => Fit::Contain,
                "cover" => Fit::Cover,
                "crop" => Fit::Crop,
                "pad" => Fit::Pad,
                _ => return None,
            }
        }
        Opt::Gravity => spec.gravity = parse_gravity(value)?,
        Opt::Quality => spec.quality = Some(int_in(value, 1, 100)? as u8),
        Opt::Format => {
            spec.format = match value {
                "auto" => FormatRequest::Auto,
                "jpeg" | "jpg" => FormatRequest::Fixed(OutputFormat::Jpeg),
                "png" => FormatRequest::Fixed(OutputFormat::Png),
                "webp" => FormatRequest::Fixed(OutputFormat::Webp),
                "avif" => FormatRequest::Fixed(OutputFormat::Avif),
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
    }
    Some(())
}

/// Splits on commas outside parentheses, so `background=rgb(1,2,3)` stays one item.
/// Unbalanced parentheses are not an error here; the value parser rejects them.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
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

/// Plain ASCII digits (no sign, no exponent), saturating so huge inputs are just out of range.
fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

fn int_in(s: &str, lo: u64, hi: u64) -> Option<u64> {
    parse_uint(s).filter(|v| (lo..=hi).contains(v))
}

/// A non-negative decimal exactly as written. Kept as text rather than `f64` so range checks
/// are exact (`4.0000001` is out of `1..=4`) and quantising never meets float rounding.
struct Decimal<'a> {
    int: u64,
    frac: &'a str,
}

impl Decimal<'_> {
    fn parse(s: &str) -> Option<Decimal<'_>> {
        let (int_s, frac) = s.split_once('.').unwrap_or((s, ""));
        if int_s.is_empty() && frac.is_empty() {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int = if int_s.is_empty() {
            0
        } else {
            parse_uint(int_s)?
        };
        Some(Decimal { int, frac })
    }

    fn frac_is_zero(&self) -> bool {
        self.frac.bytes().all(|b| b == b'0')
    }

    /// `lo <= self <= hi` for integer bounds.
    fn within(&self, lo: u64, hi: u64) -> bool {
        self.int >= lo && (self.int < hi || (self.int == hi && self.frac_is_zero()))
    }

    /// The value times `10^digits`, rounded half up.
    fn scaled(&self, digits: u32) -> u64 {
        let mut v = self.int;
        let mut frac = self.frac.bytes();
        for _ in 0..digits {
            let d = frac.next().map_or(0, |b| u64::from(b - b'0'));
            v = v.saturating_mul(10).saturating_add(d);
        }
        if frac.next().is_some_and(|b| b >= b'5') {
            v = v.saturating_add(1);
        }
        v
    }
}

/// A decimal in `lo..=hi`, quantised to `digits` decimal places.
fn decimal_in(s: &str, lo: u64, hi: u64, digits: u32) -> Option<u64> {
    let d = Decimal::parse(s)?;
    d.within(lo, hi).then(|| d.scaled(digits))
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

/// The CSS named colours people actually put in URLs.
const NAMED_COLOURS: &[(&str, [u8; 4])] = &[
    ("black", [0x00, 0x00, 0x00, 0xff]),
    ("white", [0xff, 0xff, 0xff, 0xff]),
    ("red", [0xff, 0x00, 0x00, 0xff]),
    ("green", [0x00, 0x80, 0x00, 0xff]),
    ("blue", [0x00, 0x00, 0xff, 0xff]),
    ("yellow", [0xff, 0xff, 0x00, 0xff]),
    ("cyan", [0x00, 0xff, 0xff, 0xff]),
    ("aqua", [0x00, 0xff, 0xff, 0xff]),
    ("magenta", [0xff, 0x00, 0xff, 0xff]),
    ("fuchsia", [0xff, 0x00, 0xff, 0xff]),
    ("gray", [0x80, 0x80, 0x80, 0xff]),
    ("grey", [0x80, 0x80, 0x80, 0xff]),
    ("silver", [0xc0, 0xc0, 0xc0, 0xff]),
    ("maroon", [0x80, 0x00, 0x00, 0xff]),
    ("olive", [0x80, 0x80, 0x00, 0xff]),
    ("lime", [0x00, 0xff, 0x00, 0xff]),
    ("teal", [0x00, 0x80, 0x80, 0xff]),
    ("navy", [0x00, 0x00, 0x80, 0xff]),
    ("purple", [0x80, 0x00, 0x80, 0xff]),
    ("orange", [0xff, 0xa5, 0x00, 0xff]),
    ("transparent", [0x00, 0x00, 0x00, 0x00]),
];

/// CSS colours are case-insensitive. `%23` is taken as `#` because `#` cannot appear raw in
/// a URL path and callers may hand us the segment still encoded.
fn parse_colour(value: &str) -> Option<Rgba> {
    if let Some(hex) = value
        .strip_prefix('#')
        .or_else(|| value.strip_prefix("%23"))
    {
        return parse_hex_colour(hex);
    }
    if let Some((func, rest)) = value.split_once('(') {
        let args = rest.strip_suffix(')')?;
        if !(func.trim().eq_ignore_ascii_case("rgb") || func.trim().eq_ignore_ascii_case("rgba")) {
            return None;
        }
        return parse_rgb_args(args);
    }
    NAMED_COLOURS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|&(_, rgba)| Rgba(rgba))
}

fn parse_hex_colour(hex: &str) -> Option<Rgba> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let nibbles: Vec<u8> = hex
        .bytes()
        .map(|b| (b as char).to_digit(16).map_or(0, |d| d as u8))
        .collect();
    let mut out = [0u8, 0, 0, 0xff];
    match nibbles.len() {
        3 | 4 => {
            for (o, n) in out.iter_mut().zip(&nibbles) {
                *o = n * 0x11;
            }
        }
        6 | 8 => {
            for (o, pair) in out.iter_mut().zip(nibbles.chunks(2)) {
                *o = pair[0] * 16 + pair[1];
            }
        }
        _ => return None,
    }
    Some(Rgba(out))
}

/// The inside of `rgb(...)`/`rgba(...)`: three 0..=255 integers and an optional 0..=1 alpha.
/// As in CSS Colors 4, both names take either form.
fn parse_rgb_args(args: &str) -> Option<Rgba> {
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    if parts.len() != 3 && parts.len() != 4 {
        return None;
    }
    let mut out = [0u8, 0, 0, 0xff];
    for (o, p) in out.iter_mut().zip(&parts[..3]) {
        *o = int_in(p, 0, 255)? as u8;
    }
    if let Some(a) = parts.get(3) {
        let millionths = decimal_in(a, 0, 1, 6)?;
        out[3] = ((millionths * 255 + 500_000) / 1_000_000) as u8;
    }
    Some(Rgba(out))
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
        let fit = match self.fit {
            Fit::ScaleDown => None,
            Fit::Contain => Some("contain"),
            Fit::Cover => Some("cover"),
            Fit::Crop => Some("crop"),
            Fit::Pad => Some("pad"),
        };
        if let Some(fit) = fit {
            parts.push(format!("fit={fit}"));
        }
        if self.gravity != Gravity::Auto {
            parts.push(format!("gravity={}", gravity_name(self.gravity)));
        }
        if let Some(q) = self.quality {
            parts.push(format!("quality={q}"));
        }
        match self.format {
            FormatRequest::Original => {}
            FormatRequest::Auto => parts.push("format=auto".into()),
            FormatRequest::Fixed(f) => parts.push(format!("format={}", f.name())),
        }
        if let Some(Rgba([r, g, b, a])) = self.background {
            if a == 0xff {
                parts.push(format!("background=#{r:02x}{g:02x}{b:02x}"));
            } else {
                parts.push(format!("background=#{r:02x}{g:02x}{b:02x}{a:02x}"));
            }
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
        if self.grayscale {
            parts.push("grayscale=true".into());
        }
        match self.metadata {
            Metadata::None => {}
            Metadata::Copyright => parts.push("metadata=copyright".into()),
            Metadata::Keep => parts.push("metadata=keep".into()),
        }
        if !self.anim {
            parts.push("anim=false".into());
        }
        parts.join(",")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> TransformSpec {
        match parse_options(s) {
            Ok(spec) => spec,
            Err(e) => panic!("{s:?} should parse, got {e}"),
        }
    }

    fn err(s: &str) -> String {
        match parse_options(s) {
            Ok(spec) => panic!("{s:?} should fail, parsed as {spec:?}"),
            Err(SpecError(msg)) => msg,
        }
    }

    fn with(f: impl FnOnce(&mut TransformSpec)) -> TransformSpec {
        let mut spec = TransformSpec::default();
        f(&mut spec);
        spec
    }

    fn rgba(r: u8, g: u8, b: u8, a: u8) -> Option<Rgba> {
        Some(Rgba([r, g, b, a]))
    }

    #[test]
    fn default_means_nothing_set() {
        let d = TransformSpec::default();
        assert_eq!(d.dpr_centi, 100);
        assert!(d.anim);
        assert_eq!(d.canonical(), "");
        assert_eq!(d.to_string(), "");
        assert_eq!(ok("dpr=1"), d);
        assert_eq!(ok("anim=true"), d);
        assert_eq!(ok("fit=scale-down,gravity=auto,metadata=none"), d);
    }

    #[test]
    fn every_key_and_alias() {
        assert_eq!(ok("width=300"), with(|s| s.width = Some(300)));
        assert_eq!(ok("w=300"), with(|s| s.width = Some(300)));
        assert_eq!(ok("height=200"), with(|s| s.height = Some(200)));
        assert_eq!(ok("h=200"), with(|s| s.height = Some(200)));
        assert_eq!(ok("dpr=2"), with(|s| s.dpr_centi = 200));
        assert_eq!(ok("dpr=1.5"), with(|s| s.dpr_centi = 150));
        assert_eq!(ok("dpr=1.255"), with(|s| s.dpr_centi = 126));
        assert_eq!(ok("dpr=1.254"), with(|s| s.dpr_centi = 125));
        for (v, fit) in [
            ("scale-down", Fit::ScaleDown),
            ("contain", Fit::Contain),
            ("cover", Fit::Cover),
            ("crop", Fit::Crop),
            ("pad", Fit::Pad),
        ] {
            assert_eq!(ok(&format!("fit={v}")), with(|s| s.fit = fit));
        }
        for (v, g) in [
            ("auto", Gravity::Auto),
            ("center", Gravity::Center),
            ("centre", Gravity::Center),
            ("top", Gravity::Top),
            ("north", Gravity::Top),
            ("bottom", Gravity::Bottom),
            ("south", Gravity::Bottom),
            ("left", Gravity::Left),
            ("west", Gravity::Left),
            ("right", Gravity::Right),
            ("east", Gravity::Right),
            ("top-left", Gravity::TopLeft),
            ("top-right", Gravity::TopRight),
            ("bottom-left", Gravity::BottomLeft),
            ("bottom-right", Gravity::BottomRight),
            (
                "0.25x0.75",
                Gravity::Point {
                    x_milli: 250,
                    y_milli: 750,
                },
            ),
            (
                "0.1234x.5",
                Gravity::Point {
                    x_milli: 123,
                    y_milli: 500,
                },
            ),
            (
                "0x1",
                Gravity::Point {
                    x_milli: 0,
                    y_milli: 1000,
                },
            ),
        ] {
            assert_eq!(ok(&format!("gravity={v}")), with(|s| s.gravity = g), "{v}");
        }
        assert_eq!(ok("quality=80"), with(|s| s.quality = Some(80)));
        assert_eq!(ok("q=80"), with(|s| s.quality = Some(80)));
        for (v, f) in [
            ("auto", FormatRequest::Auto),
            ("jpeg", FormatRequest::Fixed(OutputFormat::Jpeg)),
            ("jpg", FormatRequest::Fixed(OutputFormat::Jpeg)),
            ("png", FormatRequest::Fixed(OutputFormat::Png)),
            ("webp", FormatRequest::Fixed(OutputFormat::Webp)),
            ("avif", FormatRequest::Fixed(OutputFormat::Avif)),
        ] {
            assert_eq!(ok(&format!("format={v}")), with(|s| s.format = f));
            assert_eq!(ok(&format!("f={v}")), with(|s| s.format = f));
        }
        assert_eq!(
            ok("background=red"),
            with(|s| s.background = rgba(255, 0, 0, 255))
        );
        assert_eq!(ok("blur=5"), with(|s| s.blur_deci = Some(50)));
        assert_eq!(ok("blur=2.55"), with(|s| s.blur_deci = Some(26)));
        assert_eq!(ok("sharpen=1.5"), with(|s| s.sharpen_deci = Some(15)));
        assert_eq!(ok("sharpen=0"), TransformSpec::default());
        assert_eq!(ok("sharpen=0.04"), TransformSpec::default());
        assert_eq!(ok("rotate=0"), TransformSpec::default());
        for r in [90u16, 180, 270] {
            assert_eq!(ok(&format!("rotate={r}")), with(|s| s.rotate = Some(r)));
        }
        for (v, f) in [
            ("h", Flip::Horizontal),
            ("v", Flip::Vertical),
            ("hv", Flip::Both),
            ("vh", Flip::Both),
        ] {
            assert_eq!(ok(&format!("flip={v}")), with(|s| s.flip = f));
        }
        for v in ["grayscale", "grayscale=true", "grayscale=1"] {
            assert_eq!(ok(v), with(|s| s.grayscale = true));
        }
        for v in ["grayscale=false", "grayscale=0"] {
            assert_eq!(ok(v), TransformSpec::default());
        }
        assert_eq!(ok("metadata=none"), TransformSpec::default());
        assert_eq!(
            ok("metadata=copyright"),
            with(|s| s.metadata = Metadata::Copyright)
        );
        assert_eq!(ok("metadata=keep"), with(|s| s.metadata = Metadata::Keep));
        assert_eq!(ok("anim=false"), with(|s| s.anim = false));
        assert_eq!(ok("anim=true"), TransformSpec::default());
    }

    #[test]
    fn whitespace_around_items_is_tolerated() {
        let expected = with(|s| {
            s.width = Some(300);
            s.quality = Some(80);
            s.grayscale = true;
        });
        assert_eq!(ok("  w=300 , q = 80,\tgrayscale "), expected);
    }

    #[test]
    fn bounds_are_inclusive_and_neighbours_rejected() {
        // (option, lowest valid, highest valid, just below, just above)
        let cases = [
            ("width", "1", "12000", "0", "12001"),
            ("height", "1", "12000", "0", "12001"),
            ("dpr", "1", "4", "0.99", "4.01"),
            ("quality", "1", "100", "0", "101"),
            ("blur", "1", "250", "0.9", "250.1"),
            ("sharpen", "0", "10", "-0.1", "10.1"),
        ];
        for (key, lo, hi, below, above) in cases {
            ok(&format!("{key}={lo}"));
            ok(&format!("{key}={hi}"));
            for bad in [below, above] {
                let msg = err(&format!("{key}={bad}"));
                assert!(
                    msg.starts_with(&format!("{key}: must be")),
                    "{key}={bad}: {msg}"
                );
            }
        }
        assert_eq!(ok("dpr=4.000").dpr_centi, 400);
        err("dpr=4.0000001");
        err("dpr=0.9999");
        assert_eq!(
            ok("w=12000,h=1"),
            with(|s| {
                s.width = Some(12000);
                s.height = Some(1);
            })
        );
        ok("gravity=0x0");
        ok("gravity=1x1");
        ok("gravity=1.000x0.000");
        assert!(err("gravity=1.001x0").starts_with("gravity:"));
        assert!(err("gravity=0x1.001").starts_with("gravity:"));
        assert_eq!(ok("background=rgba(0,0,0,0)").background, rgba(0, 0, 0, 0));
        assert_eq!(
            ok("background=rgba(0,0,0,1)").background,
            rgba(0, 0, 0, 255)
        );
        assert!(err("background=rgba(0,0,0,1.1)").starts_with("background:"));
        assert_eq!(
            ok("background=rgb(255,255,255)").background,
            rgba(255, 255, 255, 255)
        );
        assert!(err("background=rgb(256,0,0)").starts_with("background:"));
        assert!(err("background=rgb(-1,0,0)").starts_with("background:"));
        assert!(err("width=99999999999999999999999999999").starts_with("width:"));
    }

    #[test]
    fn every_error_names_its_option() {
        let cases = [
            ("width=abc", "width: must be an integer between 1 and 12000"),
            ("w=1.5", "width: must be an integer between 1 and 12000"),
            ("w=+5", "width: must be an integer between 1 and 12000"),
            ("h=-1", "height: must be an integer between 1 and 12000"),
            ("dpr=x", "dpr: must be a number between 1 and 4"),
            ("dpr=1e0", "dpr: must be a number between 1 and 4"),
            ("dpr=.", "dpr: must be a number between 1 and 4"),
            ("dpr=NaN", "dpr: must be a number between 1 and 4"),
            (
                "fit=fill",
                "fit: must be one of scale-down, contain, cover, crop, pad",
            ),
            (
                "fit=Cover",
                "fit: must be one of scale-down, contain, cover, crop, pad",
            ),
            ("q=0", "quality: must be an integer between 1 and 100"),
            (
                "f=gif",
                "format: must be one of auto, jpeg, png, webp, avif",
            ),
            ("blur=0", "blur: must be a number between 1 and 250"),
            ("sharpen=11", "sharpen: must be a number between 0 and 10"),
            ("rotate=45", "rotate: must be 0, 90, 180 or 270"),
            ("rotate=360", "rotate: must be 0, 90, 180 or 270"),
            ("flip=x", "flip: must be h, v or hv"),
            ("grayscale=yes", "grayscale: must be true or false"),
            (
                "metadata=all",
                "metadata: must be one of none, copyright, keep",
            ),
            ("anim=no", "anim: must be true or false"),
            ("width=", "width: missing value"),
            ("width", "width: missing value"),
            ("q= ", "quality: missing value"),
            ("grayscale=", "grayscale: missing value"),
            ("w=1,width=2", "width: given more than once"),
            ("f=auto,format=png", "format: given more than once"),
            (
                "grayscale,grayscale=false",
                "grayscale: given more than once",
            ),
            ("foo=1", "unknown option: foo"),
            ("Width=1", "unknown option: Width"),
            ("=5", "option without a name"),
            ("", "no options given"),
            ("   ", "no options given"),
            ("w=1,,h=2", "empty option (stray comma)"),
            ("w=1,", "empty option (stray comma)"),
            (",w=1", "empty option (stray comma)"),
        ];
        for (input, expected) in cases {
            assert_eq!(err(input), expected, "input {input:?}");
        }
        for bad in [
            "gravity=middle",
            "gravity=0.5",
            "gravity=x",
            "gravity=0.5x",
            "gravity=axb",
        ] {
            assert!(err(bad).starts_with("gravity: must be"), "{bad}");
        }
        for bad in [
            "background=#ff",
            "background=#ggg",
            "background=rgb(1,2)",
            "background=pink",
        ] {
            assert!(err(bad).starts_with("background: must be"), "{bad}");
        }
    }

    #[test]
    fn errors_echo_little_input() {
        let long_key = "k".repeat(10_000);
        let msg = err(&format!("{long_key}=1"));
        assert!(msg.starts_with("unknown option: kkk"));
        assert!(msg.len() <= 64, "{} chars", msg.len());
        let msg = err("\u{e9}\u{e9}\u{e9}\r\n\u{1F600}x=1");
        assert_eq!(msg, "unknown option: ??????x");
        let msg = err(&format!("w={}", "9".repeat(5000)));
        assert!(msg.len() <= 64);
        let msg = err(&"\u{1F600}".repeat(100));
        assert!(msg.len() <= 64 && msg.ends_with("..."), "{msg}");
    }

    #[test]
    fn css_colours() {
        let cases = [
            ("#fff", rgba(255, 255, 255, 255)),
            ("#FFF", rgba(255, 255, 255, 255)),
            ("#f00a", rgba(255, 0, 0, 0xaa)),
            ("#102030", rgba(0x10, 0x20, 0x30, 255)),
            ("#10203040", rgba(0x10, 0x20, 0x30, 0x40)),
            ("%23abcdef", rgba(0xab, 0xcd, 0xef, 255)),
            ("rgb(1,2,3)", rgba(1, 2, 3, 255)),
            ("rgb( 1 , 2 , 3 )", rgba(1, 2, 3, 255)),
            ("RGB(1,2,3)", rgba(1, 2, 3, 255)),
            ("rgba(1,2,3,0.5)", rgba(1, 2, 3, 128)),
            ("rgba(1,2,3,.2)", rgba(1, 2, 3, 51)),
            ("rgba(1,2,3)", rgba(1, 2, 3, 255)),
            ("rgb(1,2,3,0)", rgba(1, 2, 3, 0)),
            ("black", rgba(0, 0, 0, 255)),
            ("white", rgba(255, 255, 255, 255)),
            ("White", rgba(255, 255, 255, 255)),
            ("red", rgba(255, 0, 0, 255)),
            ("green", rgba(0, 128, 0, 255)),
            ("blue", rgba(0, 0, 255, 255)),
            ("yellow", rgba(255, 255, 0, 255)),
            ("cyan", rgba(0, 255, 255, 255)),
            ("aqua", rgba(0, 255, 255, 255)),
            ("magenta", rgba(255, 0, 255, 255)),
            ("fuchsia", rgba(255, 0, 255, 255)),
            ("gray", rgba(128, 128, 128, 255)),
            ("grey", rgba(128, 128, 128, 255)),
            ("silver", rgba(192, 192, 192, 255)),
            ("maroon", rgba(128, 0, 0, 255)),
            ("olive", rgba(128, 128, 0, 255)),
            ("lime", rgba(0, 255, 0, 255)),
            ("teal", rgba(0, 128, 128, 255)),
            ("navy", rgba(0, 0, 128, 255)),
            ("purple", rgba(128, 0, 128, 255)),
            ("orange", rgba(255, 165, 0, 255)),
            ("transparent", rgba(0, 0, 0, 0)),
        ];
        for (v, expected) in cases {
            assert_eq!(ok(&format!("background={v}")).background, expected, "{v}");
        }
        for bad in [
            "#",
            "#12",
            "#12345",
            "#1234567",
            "#123456789",
            "#12g",
            "rgb(1,2,3",
            "rgb 1,2,3)",
            "hsl(1,2,3)",
            "rgb(1,2,3,4,5)",
            "rgb(1.5,2,3)",
            "rgba(1,2,3,50%)",
            "rgb()",
        ] {
            assert!(
                err(&format!("background={bad}")).starts_with("background:"),
                "{bad}"
            );
        }
    }

    #[test]
    fn commas_inside_parentheses_stay_in_the_value() {
        let spec = ok("w=10,background=rgb(1,2,3),h=20");
        assert_eq!(spec.width, Some(10));
        assert_eq!(spec.height, Some(20));
        assert_eq!(spec.background, rgba(1, 2, 3, 255));
        let spec = ok("background=rgba(10, 20, 30, 1),fit=pad");
        assert_eq!(spec.background, rgba(10, 20, 30, 255));
        assert_eq!(spec.fit, Fit::Pad);
        // An unclosed parenthesis swallows the rest, which is then a bad colour.
        assert!(err("background=rgb(1,2,3,w=5").starts_with("background:"));
        // A stray closing parenthesis does not confuse the splitter.
        assert!(err("w=1),h=2").starts_with("width:"));
    }

    #[test]
    fn equivalent_options_give_identical_specs() {
        let groups: &[&[&str]] = &[
            &["w=300,q=80", "quality=80,width=300", " q=80 , w=300 "],
            &[
                "w=300,dpr=1",
                "w=300",
                "width=300,dpr=1.00,anim=true,sharpen=0,rotate=0",
            ],
            &["flip=vh", "flip=hv"],
            &[
                "background=#fff",
                "background=white",
                "background=#ffffff",
                "background=#FFFFFFFF",
            ],
            &[
                "background=rgb(255,255,255)",
                "background=rgba(255,255,255,1)",
                "background=%23fff",
            ],
            &["f=jpg", "format=jpeg"],
            &["gravity=centre", "gravity=center"],
            &[
                "gravity=0.5x0.25",
                "gravity=.500x0.250",
                "gravity=0.4996x0.2504",
            ],
            &["grayscale", "grayscale=true", "grayscale=1"],
            &["dpr=2", "dpr=2.0", "dpr=1.999"],
            &["blur=2.5", "blur=2.50", "blur=2.549"],
        ];
        for group in groups {
            let first = ok(group[0]);
            for other in &group[1..] {
                let spec = ok(other);
                assert_eq!(spec, first, "{other} vs {}", group[0]);
                assert_eq!(spec.canonical(), first.canonical());
            }
        }
        assert_eq!(ok("background=white").canonical(), "background=#ffffff");
        assert_eq!(ok("flip=vh").canonical(), "flip=hv");
        assert_eq!(ok("q=80,w=300").canonical(), "width=300,quality=80");
    }

    #[test]
    fn canonical_form_is_fixed() {
        let spec = ok(
            "anim=false,metadata=keep,grayscale,flip=v,rotate=90,sharpen=1.5,blur=2.5,\
             background=rgba(0,0,0,0.5),f=auto,q=75,gravity=0.3x0.7,fit=cover,dpr=2.25,h=200,w=300",
        );
        assert_eq!(
            spec.canonical(),
            "width=300,height=200,dpr=2.25,fit=cover,gravity=0.3x0.7,quality=75,format=auto,\
             background=#00000080,blur=2.5,sharpen=1.5,rotate=90,flip=v,grayscale=true,\
             metadata=keep,anim=false"
        );
        assert_eq!(spec.to_string(), spec.canonical());
        assert_eq!(ok(&spec.canonical()), spec);
    }

    /// xorshift64: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn range(&mut self, lo: u64, hi: u64) -> u64 {
            lo + self.below(hi - lo + 1)
        }
        fn coin(&mut self) -> bool {
            self.next() & 1 == 1
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }
    }

    fn random_spec(rng: &mut Rng) -> TransformSpec {
        TransformSpec {
            width: rng.coin().then(|| rng.range(1, 12000) as u32),
            height: rng.coin().then(|| rng.range(1, 12000) as u32),
            dpr_centi: if rng.coin() {
                100
            } else {
                rng.range(100, 400) as u16
            },
            fit: rng.pick(&[
                Fit::ScaleDown,
                Fit::Contain,
                Fit::Cover,
                Fit::Crop,
                Fit::Pad,
            ]),
            gravity: if rng.below(3) == 0 {
                Gravity::Point {
                    x_milli: rng.range(0, 1000) as u16,
                    y_milli: rng.range(0, 1000) as u16,
                }
            } else {
                rng.pick(&[
                    Gravity::Auto,
                    Gravity::Center,
                    Gravity::Top,
                    Gravity::Bottom,
                    Gravity::Left,
                    Gravity::Right,
                    Gravity::TopLeft,
                    Gravity::TopRight,
                    Gravity::BottomLeft,
                    Gravity::BottomRight,
                ])
            },
            quality: rng.coin().then(|| rng.range(1, 100) as u8),
            format: rng.pick(&[
                FormatRequest::Original,
                FormatRequest::Auto,
                FormatRequest::Fixed(OutputFormat::Jpeg),
                FormatRequest::Fixed(OutputFormat::Png),
                FormatRequest::Fixed(OutputFormat::Webp),
                FormatRequest::Fixed(OutputFormat::Avif),
            ]),
            background: rng.coin().then(|| {
                let v = rng.next().to_le_bytes();
                Rgba([v[0], v[1], v[2], if rng.coin() { 255 } else { v[3] }])
            }),
            blur_deci: rng.coin().then(|| rng.range(10, 2500) as u16),
            sharpen_deci: rng.coin().then(|| rng.range(1, 100) as u16),
            rotate: rng.pick(&[None, Some(90), Some(180), Some(270)]),
            flip: rng.pick(&[Flip::None, Flip::Horizontal, Flip::Vertical, Flip::Both]),
            grayscale: rng.coin(),
            metadata: rng.pick(&[Metadata::None, Metadata::Copyright, Metadata::Keep]),
            anim: rng.coin(),
        }
    }

    #[test]
    fn canonical_round_trips_random_specs() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5000 {
            let spec = random_spec(&mut rng);
            let canonical = spec.canonical();
            if spec == TransformSpec::default() {
                assert_eq!(canonical, "");
                continue;
            }
            assert_eq!(parse_options(&canonical), Ok(spec.clone()), "{canonical}");
        }
    }

    /// Writes a spec the way a person might: random aliases, order, spacing and spellings.
    fn scrambled_options(spec: &TransformSpec, rng: &mut Rng) -> String {
        let canonical = spec.canonical();
        let mut items: Vec<String> = canonical
            .split_terminator(',')
            .map(|item| {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                let key = match key {
                    "width" if rng.coin() => "w",
                    "height" if rng.coin() => "h",
                    "quality" if rng.coin() => "q",
                    "format" if rng.coin() => "f",
                    k => k,
                };
                let value = match (key, value) {
                    ("flip", "hv") if rng.coin() => "vh".to_string(),
                    ("format" | "f", "jpeg") if rng.coin() => "jpg".to_string(),
                    ("grayscale", "true") if rng.coin() => return "grayscale".to_string(),
                    ("dpr" | "blur" | "sharpen", v) if rng.coin() => {
                        if v.contains('.') {
                            format!("{v}0")
                        } else {
                            format!("{v}.0")
                        }
                    }
                    (_, v) => v.to_string(),
                };
                let pad = |rng: &mut Rng| if rng.coin() { " " } else { "" };
                format!(
                    "{}{key}{}={}{value}{}",
                    pad(rng),
                    pad(rng),
                    pad(rng),
                    pad(rng)
                )
            })
            .collect();
        if spec.dpr_centi == 100 && rng.coin() {
            items.push("dpr=1".into());
        }
        for i in (1..items.len()).rev() {
            items.swap(i, rng.below(i as u64 + 1) as usize);
        }
        items.join(",")
    }

    #[test]
    fn scrambled_spellings_parse_to_the_same_spec() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for _ in 0..3000 {
            let spec = random_spec(&mut rng);
            if spec == TransformSpec::default() {
                continue;
            }
            let options = scrambled_options(&spec, &mut rng);
            assert_eq!(parse_options(&options), Ok(spec.clone()), "{options}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        const ALPHABET: &[u8] = b"=,,==()#.x0123456789 abcdefghijklmnopqrstuvwxyz-%\t";
        const WORDS: &[&str] = &[
            "width",
            "w",
            "height",
            "dpr",
            "fit",
            "gravity",
            "quality",
            "format",
            "background",
            "blur",
            "sharpen",
            "rotate",
            "flip",
            "grayscale",
            "metadata",
            "anim",
            "rgb(",
            "rgba(",
            "#",
            "%23",
            "0.5x0.5",
            "1.",
            ".",
            "\u{e9}",
            "\u{1F600}",
            "\0",
        ];
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        for round in 0..20_000 {
            let len = rng.below(48) as usize;
            let mut s = String::new();
            for _ in 0..len {
                match round % 3 {
                    0 => s.push(char::from(rng.below(128) as u8)),
                    1 => s.push(char::from(rng.pick(ALPHABET))),
                    _ if rng.below(3) == 0 => s.push_str(rng.pick(WORDS)),
                    _ => s.push(char::from(rng.pick(ALPHABET))),
                }
            }
            match parse_options(&s) {
                // Whatever parsed must canonicalise to something that parses back the same.
                Ok(spec) if spec != TransformSpec::default() => {
                    assert_eq!(parse_options(&spec.canonical()), Ok(spec), "{s:?}");
                }
                Ok(_) => {}
                // Fixed text plus at most a 35-character snippet of input.
                Err(SpecError(msg)) => assert!(msg.len() <= 200, "{msg}"),
            }
        }
    }

    #[test]
    fn accept_header() {
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(
            Accepts::from_accept_header(chrome),
            Accepts {
                avif: true,
                webp: true
            }
        );
        let safari_old = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
        assert_eq!(
            Accepts::from_accept_header(safari_old),
            Accepts {
                avif: false,
                webp: true
            }
        );
        assert_eq!(
            Accepts::from_accept_header("image/*,*/*"),
            Accepts::default()
        );
        assert_eq!(Accepts::from_accept_header(""), Accepts::default());
        assert_eq!(
            Accepts::from_accept_header("Image/AVIF ; Q=0.5 , image/webp;q=0"),
            Accepts {
                avif: true,
                webp: false
            }
        );
        assert_eq!(
            Accepts::from_accept_header("image/avif;q=0.000,image/webp;q=0.001"),
            Accepts {
                avif: false,
                webp: true
            }
        );
        // An explicit refusal wins over a repeat; an unreadable q is a refusal.
        assert_eq!(
            Accepts::from_accept_header("image/webp,image/webp;q=0,image/avif;q=abc"),
            Accepts::default()
        );
        assert_eq!(
            Accepts::from_accept_header("image/avif;level=1;q=1"),
            Accepts {
                avif: true,
                webp: false
            }
        );
    }

    #[test]
    fn vary_tokens() {
        let both = Accepts {
            avif: true,
            webp: true,
        };
        let webp = Accepts {
            avif: false,
            webp: true,
        };
        let avif = Accepts {
            avif: true,
            webp: false,
        };
        assert_eq!(both.vary_token(FormatRequest::Auto), "avif");
        assert_eq!(avif.vary_token(FormatRequest::Auto), "avif");
        assert_eq!(webp.vary_token(FormatRequest::Auto), "webp");
        assert_eq!(
            Accepts::default().vary_token(FormatRequest::Auto),
            "fallback"
        );
        assert_eq!(both.vary_token(FormatRequest::Original), "");
        assert_eq!(both.vary_token(FormatRequest::Fixed(OutputFormat::Png)), "");
    }
}
