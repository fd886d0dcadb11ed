//! The transform spec and the types of its options, with their defaults. Values are quantised
//! integers (dpr in hundredths, blur in tenths...) so a spec is `Eq + Hash`.

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
    /// `format=json`: no pixels, a description of the original and of the output's size.
    Json,
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
    /// Stretch to exactly width x height, aspect ratio not kept.
    Squeeze,
}

/// Where to keep the interesting part when cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Gravity {
    /// Where the picture holds the most interest (edges, colour, skin), found on its pixels
    /// by the pipeline's `attention` step.
    Auto,
    /// The default, as in Cloudflare, imgproxy and thumbor.
    #[default]
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

/// `watermark=<name>`: one of the site's configured overlays (`sites[].watermarks`), with
/// what the URL changes about it (`watermark.opacity`, `.position`, `.offset`, `.scale`);
/// `None` fields keep the configured value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Watermark {
    /// 1-64 letters, digits, `-`, `_`, `.`; empty only while a segment sets adjustments
    /// before the name (refused if it never names one).
    pub name: String,
    /// Multiplies the configured opacity, in hundredths (0..=100).
    pub opacity_centi: Option<u8>,
    pub position: Option<WatermarkPosition>,
    /// Pixels between the overlay and the edges it is placed against (for `tile`, between
    /// tiles), x then y, each 0..=`Watermark::MAX_OFFSET`.
    pub offset: Option<(u16, u16)>,
    /// The overlay's width as hundredths of the output's width (1..=100).
    pub scale_centi: Option<u8>,
}

impl Watermark {
    pub const MAX_OFFSET: u16 = 10_000;
}

/// Where an overlay goes: against an edge, a corner, the centre or a point (`Gravity`, never
/// `Auto`), or repeated over the whole picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatermarkPosition {
    At(Gravity),
    Tile,
}

/// One side of a [`Crop::Sized`] region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extent {
    /// The whole side.
    Full,
    /// This many pixels (at most the side).
    Pixels(u32),
    /// A fraction of the side in thousandths (1..=999), at least one pixel.
    Milli(u16),
}

/// A region of the upright source (after EXIF orientation, before `rotate` and `flip`, in the
/// original's pixels) that every later step sees as the whole image. Regions reaching past the
/// image are clipped to it; one left with no pixels is an error for that image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crop {
    /// Pixels cut off each side (Cloudflare's `trim=top;right;bottom;left`).
    Edges {
        top: u32,
        right: u32,
        bottom: u32,
        left: u32,
    },
    /// A rectangle from its top-left corner; a missing size runs to the far edge (Cloudflare's
    /// `trim.left`/`trim.top`/`trim.width`/`trim.height`, thumbor's `AxB:CxD`).
    Rect {
        left: u32,
        top: u32,
        width: Option<u32>,
        height: Option<u32>,
    },
    /// A `width` x `height` region placed by `gravity`, or by the spec's `gravity` when `None`
    /// (imgproxy's `crop`; imgate's `crop` and `crop.gravity`).
    Sized {
        width: Extent,
        height: Extent,
        gravity: Option<Gravity>,
    },
}

/// Where a [`BorderTrim`] takes its border colour from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BorderColour {
    /// The top-left pixel's colour.
    TopLeft,
    /// The bottom-right pixel's colour.
    BottomRight,
    /// This colour (alpha included: transparent pixels match each other whatever their RGB).
    Rgba(Rgba),
}

/// Cut away a border of one colour found in the pixels (Cloudflare's `trim=border`, thumbor's
/// `trim`): the region kept is the smallest rectangle holding every pixel further than
/// `tolerance` from the border colour, widened by `keep` on each side. A picture that is all
/// border is kept whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BorderTrim {
    pub colour: BorderColour,
    /// Euclidean distance in 8-bit RGBA (0 exact, 510 anything) still counted as border.
    pub tolerance: u16,
    /// Pixels of border left on each side, at most what there is.
    pub keep: u32,
}

impl BorderTrim {
    /// The tolerance `trim=border` means when it gives none: enough for the ringing JPEG leaves
    /// along a frame's edge (10 left up to 14 columns of it on test photos, 30 at most 2).
    pub const DEFAULT_TOLERANCE: u16 = 30;
}

/// A frame added around the finished picture (Cloudflare's `border`, imgproxy's `padding`):
/// widths in CSS pixels (times `dpr` on the output), each 0-1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Border {
    /// `None`: the `background` colour, or transparent (white under JPEG) without one.
    pub colour: Option<Rgba>,
    pub top: u16,
    pub right: u16,
    pub bottom: u16,
    pub left: u16,
}

impl Border {
    /// Widest side a URL may ask for, before `dpr`.
    pub const MAX_WIDTH: u16 = 1000;

    /// (top, right, bottom, left).
    pub fn sides(&self) -> [u16; 4] {
        [self.top, self.right, self.bottom, self.left]
    }
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
    /// The fit used instead of `fit` when the source (cropped and rotated) and the box lie
    /// across each other, one landscape and the other portrait (a square counts as landscape):
    /// imgproxy's `resizing_type:auto`, which fills when the two agree and fits when not.
    pub fit_across: Option<Fit>,
    pub gravity: Gravity,
    /// A region of the source to work on instead of the whole image (`trim`, `crop`).
    pub crop: Option<Crop>,
    /// A border found by colour and cut away (`trim=border`). With `crop` as well, what is
    /// kept is the part of the crop region inside the trimmed picture (both are in the upright
    /// original's pixels).
    pub trim_border: Option<BorderTrim>,
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
    /// Tone adjustments in hundredths of a factor, 100 = unchanged (stored as `None`), up to
    /// 1000 (0 only for saturation):
    /// `brightness` scales light (linear light), `contrast` spreads values around mid-grey,
    /// `gamma` lightens (above 1) or darkens the mid-tones, `saturation` scales colourfulness
    /// (0 = grey). Cloudflare's ranges and meaning; 0 means "not set" for the first three.
    pub brightness_centi: Option<u16>,
    pub contrast_centi: Option<u16>,
    pub gamma_centi: Option<u16>,
    pub saturation_centi: Option<u16>,
    pub grayscale: bool,
    /// A frame around the result, after every resize and effect.
    pub border: Option<Border>,
    pub metadata: Metadata,
    /// `anim=false`: first frame only.
    pub anim: bool,
    /// `compression=fast`: the cheapest encoding; under `format=auto` JPEG (WebP or PNG with
    /// alpha) rather than AVIF or WebP, and every encoder at its fast setting.
    pub compression_fast: bool,
    /// `onerror=redirect`: a transform that fails answers 302 to the original instead.
    pub onerror_redirect: bool,
    /// `slow-connection-quality`/`scq`: the quality used instead of `quality` when the client
    /// says its connection is slow (`spec::ConnectionHints`); the edge decides, per request.
    pub slow_quality: Option<u8>,
    /// Changes nothing in the image, only the cache entry (imgproxy's `cachebuster`): 1-64
    /// letters, digits, `-`, `_`, `.`.
    pub cachebuster: Option<String>,
    /// A configured overlay laid on the finished picture, inside any border.
    pub watermark: Option<Watermark>,
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

impl Default for TransformSpec {
    /// What an options segment that sets nothing would mean: dpr 1x and animation kept, so a
    /// spec built in code compares equal to one parsed from a URL.
    fn default() -> Self {
        TransformSpec {
            width: None,
            height: None,
            dpr_centi: 100,
            fit: Fit::default(),
            fit_across: None,
            gravity: Gravity::default(),
            crop: None,
            trim_border: None,
            quality: None,
            format: FormatRequest::default(),
            background: None,
            blur_deci: None,
            sharpen_deci: None,
            rotate: None,
            flip: Flip::default(),
            brightness_centi: None,
            contrast_centi: None,
            gamma_centi: None,
            saturation_centi: None,
            grayscale: false,
            border: None,
            metadata: Metadata::default(),
            anim: true,
            compression_fast: false,
            onerror_redirect: false,
            slow_quality: None,
            cachebuster: None,
            watermark: None,
        }
    }
}
