//! Geometry steps: fit/crop/pad/resize to the requested box, rotate and flip.
//!
//! Owns the size arithmetic (how `width`/`height`/`dpr`/`fit`/`gravity` turn into exact output
//! dimensions, on the `crop` region when the spec names one: the region is only an offset
//! window into the source, so no step copies it out), the shrink-on-load hint for decoders, and the pixel work of resizing, cropping,
//! padding, rotating and flipping a [`Raster`]. It must not decode, encode, change colour spaces
//! or apply effects, and it must never allocate an output before checking it against [`Limits`].
//!
//! Rounding rule (the one place sizes are rounded, so outputs are predictable):
//! every derived dimension is `round_half_up(exact)` and at least 1. That covers the box
//! (`width * dpr`), the free side when only one side is given (`src_h * box_w / src_w`) and the
//! short side of a `scale-down`/`contain`/`pad` fit, which is additionally capped at the box.
//! `cover` and `crop` never round a visible size: they produce the box (or the source side)
//! exactly and only the crop window in the source is fractional.
//!
//! [`fit`] sizes whatever image it is given; whether `width`/`height` mean the axes before or
//! after `rotate` is decided by the order the runner calls [`fit`] and [`rotate_flip`] in, and
//! [`min_decode_size`] is safe for either order.

use super::attention;
use super::error::PipelineError;
use super::limits::Limits;
use crate::imaging::orientation::{self, Orientation};
use crate::imaging::Raster;
use crate::spec::{Crop, Extent, Fit, Flip, Gravity, Rgba, TransformSpec};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{
    FilterType, IntoImageView, MulDiv, PixelType, ResizeAlg, ResizeOptions, Resizer,
};
use std::borrow::Cow;
use std::cell::RefCell;

/// Every resize uses Lanczos3: a bilinear filter for small outputs would save little (the
/// resize is about 1% of the miss path's instructions) and cost sharpness (BENCHMARKS.md,
/// output size and look).
const RESIZE_FILTER: FilterType = FilterType::Lanczos3;

/// A per-thread [`Resizer`] keeps its scratch buffers between requests; above this many bytes
/// they are dropped after use so one huge image does not pin memory on every pool thread.
const KEEP_RESIZER_BUFFERS: usize = 16 << 20;

thread_local! {
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// The smallest size (width, height) the decoder must deliver for this spec, given the
/// upright source size. Used for shrink-on-load: a decoder may scale down while both
/// dimensions stay >= this. Returns the source size when no downscale is wanted.
pub fn min_decode_size(src_w: u32, src_h: u32, spec: &TransformSpec) -> (u32, u32) {
    if src_w == 0 || src_h == 0 {
        return (src_w, src_h);
    }
    let need = needed_size(src_w, src_h, spec);
    if !quarter_turn(spec) {
        return need;
    }
    // With a quarter turn the box may be meant before or after rotating (the runner's step
    // order decides); take the larger need on each axis so quality never depends on it.
    let (rh, rw) = needed_size(src_h, src_w, spec);
    (need.0.max(rw), need.1.max(rh))
}

/// Source pixels `fit` needs on each axis: the scaled size of the whole source (before any
/// crop), rounded up so a decoder honouring it never hands `fit` fewer pixels than it would
/// have sampled from the full source; never more than the source.
fn needed_size(src_w: u32, src_h: u32, spec: &TransformSpec) -> (u32, u32) {
    let plan = plan(src_w, src_h, spec);
    let need = |src: u32, scaled: u32, window: f64| -> u32 {
        let exact = src as f64 * scaled as f64 / window;
        (exact.ceil() as u64).clamp(1, src as u64) as u32
    };
    (
        need(src_w, plan.scaled.0, plan.window.width),
        need(src_h, plan.scaled.1, plan.window.height),
    )
}

/// Resize/crop/pad `img` (already upright, sRGB) to what `spec` asks for
/// (width/height x dpr, fit, gravity, background for pad).
/// `gravity=auto` crops at the centre here; [`auto_focus`] gives the point to pass to
/// [`fit_from`] instead.
pub fn fit(img: Raster, spec: &TransformSpec, limits: &Limits) -> Result<Raster, PipelineError> {
    let size = (img.width, img.height);
    fit_from(Cow::Owned(img), size, spec, None, spec.gravity, limits)
}

/// Like [`fit`], for an image that shrink-on-load delivered smaller than the original:
/// `original` is the upright size of the full source, and every output size is computed from
/// it, so the result never depends on the decoder's scale (a 1600x1203 photo at width 100 is
/// 100x75 whether it was decoded at full size or at 1/8).
///
/// `trimmed` is what a border trim kept of the upright original (before `rotate`), in its
/// pixels: the spec's `crop` applies inside it. `gravity` places the crop window: the spec's,
/// or the point [`auto_focus`] found for `gravity=auto` (which is the centre otherwise).
///
/// A borrowed `img` (a decode shared with other jobs) is resized straight from its pixels
/// when that needs no change to them; it is copied only when the output is the source as is,
/// a crop of it, or a resize that must premultiply alpha first.
pub fn fit_from(
    img: Cow<'_, Raster>,
    original: (u32, u32),
    spec: &TransformSpec,
    trimmed: Option<Rect>,
    gravity: Gravity,
    limits: &Limits,
) -> Result<Raster, PipelineError> {
    if img.width == 0 || img.height == 0 {
        return Err(PipelineError::Undecodable("image has no pixels".into()));
    }
    let (plan, _) = checked_plan(original, spec, trimmed, gravity, limits)?;
    let (cw, ch) = plan.canvas;

    // Map the crop window from original coordinates onto the pixels we actually have.
    let (fx, fy) = (
        img.width as f64 / original.0 as f64,
        img.height as f64 / original.1 as f64,
    );
    let win = if (img.width, img.height) == original {
        plan.window
    } else {
        let w = plan.window;
        let width = (w.width * fx).min(img.width as f64);
        let height = (w.height * fy).min(img.height as f64);
        Window {
            left: (w.left * fx).clamp(0.0, img.width as f64 - width),
            top: (w.top * fy).clamp(0.0, img.height as f64 - height),
            width,
            height,
        }
    };
    let (sw, sh) = plan.scaled;
    let img = if win.is_full(img.width, img.height) && (sw, sh) == (img.width, img.height) {
        img.into_owned()
    } else if let Some((x, y)) = win.integral_origin(sw, sh) {
        crop_in_place(img.into_owned(), x, y, sw, sh)
    } else {
        resize(img, win, sw, sh)?
    };

    Ok(if (cw, ch) == (sw, sh) {
        img
    } else {
        pad(&img, cw, ch, spec)
    })
}

/// The size of the finished picture (after `fit` and `border`) for an upright original of
/// `original` with what a border trim kept of it: what [`fit_from`] and the border step will
/// make, with the same errors (an empty region, a size over the limit), without any pixels.
pub fn final_size(
    original: (u32, u32),
    spec: &TransformSpec,
    trimmed: Option<Rect>,
    limits: &Limits,
) -> Result<(u32, u32), PipelineError> {
    checked_plan(original, spec, trimmed, spec.gravity, limits).map(|(_, size)| size)
}

/// The plan for `original` and the finished size it leads to (the canvas plus the border),
/// checked against the limits before any pixel is allocated.
fn checked_plan(
    original: (u32, u32),
    spec: &TransformSpec,
    trimmed: Option<Rect>,
    gravity: Gravity,
    limits: &Limits,
) -> Result<(Plan, (u32, u32)), PipelineError> {
    if original.0 == 0 || original.1 == 0 {
        return Err(PipelineError::Undecodable("image has no pixels".into()));
    }
    let plan = match crop_region(original.0, original.1, spec, trimmed) {
        Some(Err(why)) => return Err(PipelineError::BadOptions(why)),
        Some(Ok(region)) => plan_region(original.0, original.1, spec, gravity, region),
        None => plan_whole(original.0, original.1, spec, gravity),
    };
    let (cw, ch) = plan.canvas;
    // The border comes later (its own step) but counts now, before any pixel is allocated.
    let [t, r, b, l] = border_widths(spec);
    let (fw, fh) = (
        u64::from(cw) + u64::from(l) + u64::from(r),
        u64::from(ch) + u64::from(t) + u64::from(b),
    );
    let max = u64::from(limits.max_output_dimension);
    if fw > max || fh > max {
        return Err(PipelineError::TooLarge(format!(
            "output {fw}x{fh} exceeds the {max} px limit"
        )));
    }
    Ok((plan, (fw as u32, fh as u32)))
}

/// The sizes [`fit_from`] makes from an upright original of `src_w` x `src_h`: the resized
/// image and the canvas it ends on (larger only for `fit=pad`). For estimates made before
/// decoding; the limits are not checked here.
pub fn output_sizes(src_w: u32, src_h: u32, spec: &TransformSpec) -> ((u32, u32), (u32, u32)) {
    let plan = plan(src_w, src_h, spec);
    (plan.scaled, framed(plan.canvas, spec))
}

/// A canvas with the spec's `border` around it.
fn framed((w, h): (u32, u32), spec: &TransformSpec) -> (u32, u32) {
    let [t, r, b, l] = border_widths(spec);
    (w.saturating_add(l + r), h.saturating_add(t + b))
}

/// The largest sizes [`fit_from`] can make when `trim=border` keeps an unknown part of an
/// upright original of `src_w` x `src_h` (the kept part is any block of the crop region, or of
/// the whole without a crop): for estimates made before decoding, which must not be exceeded.
///
/// With both box sides every fit makes at most the box. With one side, or none, the output
/// grows with the kept block's extent along the free axis and shrinks with it along the fixed
/// one, so the largest is among the blocks of full extent along one axis and, along the
/// other, full, one pixel, or the box's side (the widest kept block a no-enlarge fit still
/// scales to the box). Sides are capped at `max_side`: the plan refuses anything longer.
pub fn output_sizes_trimmed(
    src_w: u32,
    src_h: u32,
    spec: &TransformSpec,
    max_side: u32,
) -> ((u32, u32), (u32, u32)) {
    let (ow, oh) = match crop_region(src_w, src_h, spec, None) {
        Some(Ok(r)) => (r.width, r.height),
        _ => (src_w, src_h),
    };
    let cap = |(w, h): (u32, u32)| (w.min(max_side), h.min(max_side));
    let (bw, bh) = requested_box(spec);
    if let (Some(bw), Some(bh)) = (bw, bh) {
        return (cap((bw, bh)), cap(framed((bw, bh), spec)));
    }
    let widths = [ow, 1, bw.map_or(ow, |w| w.min(ow))];
    let heights = [oh, 1, bh.map_or(oh, |h| h.min(oh))];
    let blocks = widths
        .iter()
        .map(|&w| (w, oh))
        .chain(heights.iter().map(|&h| (ow, h)));
    let mut largest = ((0, 0), (0, 0));
    for (w, h) in blocks {
        let plan = plan_whole(w.max(1), h.max(1), spec, spec.gravity);
        let sizes = (cap(plan.scaled), cap(framed(plan.canvas, spec)));
        let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
        if area(sizes.0) + area(sizes.1) > area(largest.0) + area(largest.1) {
            largest = sizes;
        }
    }
    largest
}

/// The spec's `border` in device pixels (each side times `dpr`, rounded half up; a side of 0
/// stays 0): top, right, bottom, left.
pub fn border_widths(spec: &TransformSpec) -> [u32; 4] {
    let Some(border) = spec.border else {
        return [0; 4];
    };
    let dpr = if spec.dpr_centi == 0 {
        100
    } else {
        u32::from(spec.dpr_centi)
    };
    border.sides().map(|w| {
        if w == 0 {
            0
        } else {
            mul_div_round(u32::from(w), dpr, 100)
        }
    })
}

/// `img` framed by `widths` (top, right, bottom, left) of `colour`; with alpha when either
/// has it. Checked against the output limit before anything is allocated.
pub fn add_border(
    img: Raster,
    widths: [u32; 4],
    colour: Rgba,
    limits: &Limits,
) -> Result<Raster, PipelineError> {
    let [t, r, b, l] = widths;
    let (w, h) = (
        u64::from(img.width) + u64::from(l) + u64::from(r),
        u64::from(img.height) + u64::from(t) + u64::from(b),
    );
    let max = u64::from(limits.max_output_dimension);
    if w > max || h > max {
        return Err(PipelineError::TooLarge(format!(
            "output {w}x{h} with its border exceeds the {max} px limit"
        )));
    }
    Ok(place_on(&img, (w as u32, h as u32), (l, t), colour.0))
}

/// Whether [`rotate_flip`] would change anything for `spec`.
pub fn rotates_or_flips(spec: &TransformSpec) -> bool {
    !spec_orientation(spec).is_identity()
}

/// Apply `rotate` and `flip` from the spec.
pub fn rotate_flip(img: Raster, spec: &TransformSpec) -> Raster {
    orientation::apply(img, spec_orientation(spec))
}

/// The spec's `rotate` (clockwise) and `flip` as one orientation: rotate first, then mirror.
pub fn spec_orientation(spec: &TransformSpec) -> Orientation {
    let turns = match spec.rotate {
        Some(90) => 1,
        Some(180) => 2,
        Some(270) => 3,
        _ => 0,
    };
    let (flip_h, flip_v) = match spec.flip {
        Flip::None => (false, false),
        Flip::Horizontal => (true, false),
        Flip::Vertical => (false, true),
        Flip::Both => (true, true),
    };
    Orientation {
        turns,
        flip_h,
        flip_v,
    }
}

/// True when the spec rotates by 90 or 270 degrees, which swaps width and height.
fn quarter_turn(spec: &TransformSpec) -> bool {
    spec_orientation(spec).swaps_axes()
}

/// A region of the source in source pixels; fractional so `cover` keeps sub-pixel accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Window {
    fn full(w: u32, h: u32) -> Window {
        Window {
            left: 0.0,
            top: 0.0,
            width: w as f64,
            height: h as f64,
        }
    }

    fn is_full(&self, w: u32, h: u32) -> bool {
        *self == Window::full(w, h)
    }

    /// The integer origin when this window is exactly a `w` x `h` block of whole pixels,
    /// i.e. a plain copy with no resampling.
    fn integral_origin(&self, w: u32, h: u32) -> Option<(u32, u32)> {
        let whole = |v: f64| v.fract() == 0.0 && v >= 0.0;
        (self.width == w as f64 && self.height == h as f64 && whole(self.left) && whole(self.top))
            .then_some((self.left as u32, self.top as u32))
    }
}

/// What `fit` will do: take `window` from the source, scale it to `scaled`, and centre that
/// on a `canvas` (bigger than `scaled` only for `pad`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plan {
    window: Window,
    scaled: (u32, u32),
    canvas: (u32, u32),
}

/// Where the crop window sits along one axis.
#[derive(Debug, Clone, Copy)]
enum Align {
    Start,
    Center,
    End,
    /// Focal point in thousandths of the source extent.
    Focus(u16),
}

fn gravity_align(g: Gravity) -> (Align, Align) {
    use Align::*;
    match g {
        Gravity::Auto | Gravity::Center => (Center, Center),
        Gravity::Top => (Center, Start),
        Gravity::Bottom => (Center, End),
        Gravity::Left => (Start, Center),
        Gravity::Right => (End, Center),
        Gravity::TopLeft => (Start, Start),
        Gravity::TopRight => (End, Start),
        Gravity::BottomLeft => (Start, End),
        Gravity::BottomRight => (End, End),
        Gravity::Point { x_milli, y_milli } => (Focus(x_milli), Focus(y_milli)),
    }
}

/// Start of a span of length `len` inside `0..src` placed by `align`, clamped inside.
fn place(src: f64, len: f64, align: Align) -> f64 {
    let room = (src - len).max(0.0);
    let start = match align {
        Align::Start => 0.0,
        Align::Center => room / 2.0,
        Align::End => room,
        Align::Focus(m) => src * f64::from(m.min(1000)) / 1000.0 - len / 2.0,
    };
    start.clamp(0.0, room)
}

/// `round_half_up(a * num / den)`, at least 1, saturating at `u32::MAX`; exact integer maths
/// so the same request always gives the same size on every platform.
fn mul_div_round(a: u32, num: u32, den: u32) -> u32 {
    let den = u128::from(den.max(1));
    let v = (u128::from(a) * u128::from(num) + den / 2) / den;
    v.clamp(1, u128::from(u32::MAX)) as u32
}

/// The requested box in device pixels: `width`/`height` times dpr, rounded half up.
/// A zero side counts as not given.
fn requested_box(spec: &TransformSpec) -> (Option<u32>, Option<u32>) {
    let dpr = if spec.dpr_centi == 0 {
        100
    } else {
        u32::from(spec.dpr_centi)
    };
    let side = |v: Option<u32>| v.filter(|&v| v > 0).map(|v| mul_div_round(v, dpr, 100));
    (side(spec.width), side(spec.height))
}

/// Size of the whole source fitted inside `bw` x `bh` keeping aspect ratio: the constraining
/// side is exact, the other rounded and capped at its box side.
fn fit_inside(sw: u32, sh: u32, bw: u32, bh: u32) -> (u32, u32) {
    if u64::from(bw) * u64::from(sh) <= u64::from(bh) * u64::from(sw) {
        (bw, mul_div_round(sh, bw, sw).min(bh))
    } else {
        (mul_div_round(sw, bh, sh).min(bw), bh)
    }
}

/// A block of whole pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// The pixels in both, if any.
    fn intersect(self, other: Rect) -> Option<Rect> {
        let left = self.left.max(other.left);
        let top = self.top.max(other.top);
        let right = (u64::from(self.left) + u64::from(self.width))
            .min(u64::from(other.left) + u64::from(other.width));
        let bottom = (u64::from(self.top) + u64::from(self.height))
            .min(u64::from(other.top) + u64::from(other.height));
        (right > u64::from(left) && bottom > u64::from(top)).then(|| Rect {
            left,
            top,
            width: (right - u64::from(left)) as u32,
            height: (bottom - u64::from(top)) as u32,
        })
    }
}

/// The spec's `crop` region of a source whose size `fit` sees as `sw` x `sh` (after `rotate`),
/// in that frame, inside what a border trim kept (`trimmed`). Both are given in the frame
/// before `rotate` and `flip`, the region clipped to the image and the trimmed part there,
/// then turned and mirrored as the pixels will be. `None` for the whole image; an error (for a
/// 400) when nothing is left.
fn crop_region(
    sw: u32,
    sh: u32,
    spec: &TransformSpec,
    trimmed: Option<Rect>,
) -> Option<Result<Rect, String>> {
    let o = spec_orientation(spec);
    let (pw, ph) = if o.swaps_axes() { (sh, sw) } else { (sw, sh) };
    let Some(crop) = spec.crop else {
        return trimmed.map(|t| Ok(orient_rect(t, (pw, ph), o)));
    };
    let empty = || {
        Some(Err(format!(
            "the crop region leaves nothing of the {pw}x{ph} image"
        )))
    };
    let r = match crop {
        Crop::Edges {
            top,
            right,
            bottom,
            left,
        } => {
            let (across, down) = (
                u64::from(left) + u64::from(right),
                u64::from(top) + u64::from(bottom),
            );
            if across >= u64::from(pw) || down >= u64::from(ph) {
                return empty();
            }
            Rect {
                left,
                top,
                width: pw - left - right,
                height: ph - top - bottom,
            }
        }
        Crop::Rect {
            left,
            top,
            width,
            height,
        } => {
            if left >= pw || top >= ph {
                return empty();
            }
            Rect {
                left,
                top,
                width: width.unwrap_or(u32::MAX).min(pw - left),
                height: height.unwrap_or(u32::MAX).min(ph - top),
            }
        }
        Crop::Sized {
            width,
            height,
            gravity,
        } => {
            let side = |e: Extent, src: u32| match e {
                Extent::Full => src,
                Extent::Pixels(p) => p.min(src),
                Extent::Milli(m) => mul_div_round(src, u32::from(m), 1000).min(src),
            };
            let (w, h) = (side(width, pw), side(height, ph));
            let (ax, ay) = gravity_align(gravity.unwrap_or(spec.gravity));
            Rect {
                left: place(f64::from(pw), f64::from(w), ax).round() as u32,
                top: place(f64::from(ph), f64::from(h), ay).round() as u32,
                width: w,
                height: h,
            }
        }
    };
    let r = match trimmed {
        None => r,
        Some(t) => match r.intersect(t) {
            Some(r) => r,
            None => {
                return Some(Err(format!(
                    "the crop region lies outside what trim=border kept of the {pw}x{ph} image"
                )))
            }
        },
    };
    Some(Ok(orient_rect(r, (pw, ph), o)))
}

/// Where the pixels of `r` (in a `size` image) land once the image is turned and mirrored by `o`.
fn orient_rect(mut r: Rect, size: (u32, u32), o: Orientation) -> Rect {
    let (mut w, mut h) = size;
    for _ in 0..o.turns % 4 {
        // A clockwise quarter turn: column x becomes row x, row y becomes column h - 1 - y.
        r = Rect {
            left: h - r.top - r.height,
            top: r.left,
            width: r.height,
            height: r.width,
        };
        (w, h) = (h, w);
    }
    if o.flip_h {
        r.left = w - r.left - r.width;
    }
    if o.flip_v {
        r.top = h - r.top - r.height;
    }
    r
}

/// Where `gravity=auto` puts the crop window on `img` (an upright picture, in the frame `fit`
/// sees, possibly shrunk on load from an `original`-sized one): the point at the centre of the
/// window, of the size the plan gives it, that holds the most interest (`attention`), in
/// thousandths of the region the window may move in. `None` when there is nothing to place:
/// another gravity, no crop window, or a window that is the whole region.
pub fn auto_focus(
    img: &Raster,
    original: (u32, u32),
    spec: &TransformSpec,
    trimmed: Option<Rect>,
) -> Option<Gravity> {
    if spec.gravity != Gravity::Auto || img.width == 0 || img.height == 0 {
        return None;
    }
    let (ow, oh) = original;
    let region = match crop_region(ow, oh, spec, trimmed) {
        Some(Err(_)) => return None,
        Some(Ok(r)) => r,
        None => Rect {
            left: 0,
            top: 0,
            width: ow,
            height: oh,
        },
    };
    let window = plan_whole(region.width, region.height, spec, Gravity::Center).window;
    if window.is_full(region.width, region.height) {
        return None;
    }
    let (fx, fy) = (
        f64::from(img.width) / f64::from(ow.max(1)),
        f64::from(img.height) / f64::from(oh.max(1)),
    );
    let area = [
        f64::from(region.left) * fx,
        f64::from(region.top) * fy,
        f64::from(region.width) * fx,
        f64::from(region.height) * fy,
    ];
    let (cx, cy) = attention::best_centre(img, area, (window.width * fx, window.height * fy));
    let milli = |c: f64, start: f64, len: f64| {
        ((c - start) / len * 1000.0).round().clamp(0.0, 1000.0) as u16
    };
    Some(Gravity::Point {
        x_milli: milli(cx, area[0], area[2]),
        y_milli: milli(cy, area[1], area[3]),
    })
}

/// Decide window, scaled size and canvas for a `sw` x `sh` source: the plan for the `crop`
/// region alone (the whole source without one), its window moved to where the region is.
fn plan(sw: u32, sh: u32, spec: &TransformSpec) -> Plan {
    match crop_region(sw, sh, spec, None) {
        Some(Ok(r)) => plan_region(sw, sh, spec, spec.gravity, r),
        _ => plan_whole(sw, sh, spec, spec.gravity),
    }
}

/// [`plan`] for the region `r` of a `sw` x `sh` source, its window placed by `gravity`.
fn plan_region(sw: u32, sh: u32, spec: &TransformSpec, gravity: Gravity, r: Rect) -> Plan {
    let mut plan = plan_whole(r.width, r.height, spec, gravity);
    let w = plan.window;
    let (left, width) = inside(f64::from(sw), w.left + f64::from(r.left), w.width);
    let (top, height) = inside(f64::from(sh), w.top + f64::from(r.top), w.height);
    plan.window = Window {
        left,
        top,
        width,
        height,
    };
    plan
}

/// Decide window, scaled size and canvas for the whole of a `sw` x `sh` source, a crop window
/// placed by `gravity`.
fn plan_whole(sw: u32, sh: u32, spec: &TransformSpec, gravity: Gravity) -> Plan {
    let full = Window::full(sw, sh);
    let simple = |scaled: (u32, u32)| Plan {
        window: full,
        scaled,
        canvas: scaled,
    };
    let keep = simple((sw, sh));
    let grows = |w: u32, h: u32| w > sw || h > sh;

    let (bw, bh) = match requested_box(spec) {
        (None, None) => return keep,
        (Some(w), None) => {
            let size = (w, mul_div_round(sh, w, sw));
            // With one side the box has the source's aspect, so cover = contain = pad and
            // crop = scale-down: the only question is whether enlarging is allowed.
            let no_enlarge = matches!(spec.fit, Fit::ScaleDown | Fit::Crop);
            return if no_enlarge && grows(size.0, size.1) {
                keep
            } else {
                simple(size)
            };
        }
        (None, Some(h)) => {
            let size = (mul_div_round(sw, h, sh), h);
            let no_enlarge = matches!(spec.fit, Fit::ScaleDown | Fit::Crop);
            return if no_enlarge && grows(size.0, size.1) {
                keep
            } else {
                simple(size)
            };
        }
        (Some(w), Some(h)) => (w, h),
    };

    let fit = match spec.fit_across {
        Some(across) if (sw >= sh) != (bw >= bh) => across,
        _ => spec.fit,
    };
    let (ax, ay) = gravity_align(gravity);
    match fit {
        Fit::ScaleDown => {
            if bw >= sw && bh >= sh {
                keep
            } else {
                simple(fit_inside(sw, sh, bw, bh))
            }
        }
        Fit::Contain => simple(fit_inside(sw, sh, bw, bh)),
        Fit::Squeeze => simple((bw, bh)),
        Fit::Pad => Plan {
            window: full,
            scaled: fit_inside(sw, sh, bw, bh),
            canvas: (bw, bh),
        },
        Fit::Crop if bw >= sw || bh >= sh => {
            // Not smaller than the box on some axis: no scaling at all, just cut the
            // overflowing axis (if any) down to the box around the gravity point.
            let (w, h) = (bw.min(sw), bh.min(sh));
            let left = place(sw as f64, w as f64, ax).round();
            let top = place(sh as f64, h as f64, ay).round();
            let window = Window {
                left,
                top,
                width: w as f64,
                height: h as f64,
            };
            Plan {
                window,
                scaled: (w, h),
                canvas: (w, h),
            }
        }
        Fit::Cover | Fit::Crop => cover_plan(sw, sh, bw, bh, ax, ay),
    }
}

/// Fill `bw` x `bh` exactly: the window is the largest region of the source with the box's
/// aspect ratio, placed by gravity; scaling the window to the box needs no further crop.
fn cover_plan(sw: u32, sh: u32, bw: u32, bh: u32, ax: Align, ay: Align) -> Plan {
    let (fw, fh) = (sw as f64, sh as f64);
    let (mut width, mut height) = if u64::from(bw) * u64::from(sh) >= u64::from(bh) * u64::from(sw)
    {
        (fw, (fw * bh as f64 / bw as f64).min(fh))
    } else {
        ((fh * bw as f64 / bh as f64).min(fw), fh)
    };
    // When the window is already box-sized (scale 1) snap it to whole pixels so `fit` copies
    // instead of resampling a half-pixel shift.
    let snap = |len: f64, out: u32| {
        if (len - out as f64).abs() < 1e-6 {
            out as f64
        } else {
            len
        }
    };
    width = snap(width, bw);
    height = snap(height, bh);
    let mut left = place(fw, width, ax);
    let mut top = place(fh, height, ay);
    if width == bw as f64 {
        left = left.round().min(fw - width);
    }
    if height == bh as f64 {
        top = top.round().min(fh - height);
    }
    let (left, width) = inside(fw, left, width);
    let (top, height) = inside(fh, top, height);
    let window = Window {
        left,
        top,
        width,
        height,
    };
    Plan {
        window,
        scaled: (bw, bh),
        canvas: (bw, bh),
    }
}

/// Guard against floating-point rounding pushing `start + len` one ulp past `src`, which the
/// resizer rejects.
fn inside(src: f64, start: f64, len: f64) -> (f64, f64) {
    let start = start.clamp(0.0, src);
    let mut len = len.min(src - start);
    while start + len > src {
        len = len.next_down();
    }
    (start, len)
}

/// Cut a whole-pixel block out of `img` by moving rows towards the front of its own buffer:
/// every destination row starts at or before its source row, so no second buffer is needed.
fn crop_in_place(img: Raster, x: u32, y: u32, w: u32, h: u32) -> Raster {
    let c = img.channels as usize;
    let src_stride = img.width as usize * c;
    let row_len = w as usize * c;
    let mut data = img.data;
    for r in 0..h as usize {
        let from = (y as usize + r) * src_stride + x as usize * c;
        data.copy_within(from..from + row_len, r * row_len);
    }
    data.truncate(row_len * h as usize);
    Raster::new(w, h, img.channels, data)
}

/// Resample `window` of `img` to exactly `w` x `h`. Reads a borrowed `img` in place unless
/// it has alpha to premultiply, which is done on a buffer this function owns.
fn resize(img: Cow<'_, Raster>, window: Window, w: u32, h: u32) -> Result<Raster, PipelineError> {
    let channels = img.channels;
    let pixel_type = if channels == 4 {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    // Premultiply so fully transparent pixels (whatever colour they store) contribute nothing;
    // done here on a buffer we own rather than by the resizer, which would copy the source.
    let premultiply = channels == 4 && !is_opaque(&img.data);
    let (src_w, src_h) = (img.width, img.height);
    let err = |e: &dyn std::fmt::Display| PipelineError::BadOptions(format!("resize: {e}"));
    let mut dst = if premultiply {
        let mut data = img.into_owned().data;
        let mut view =
            Image::from_slice_u8(src_w, src_h, &mut data, pixel_type).map_err(|e| err(&e))?;
        MulDiv::new()
            .multiply_alpha_inplace(&mut view)
            .map_err(|e| err(&e))?;
        let src = Image::from_vec_u8(src_w, src_h, data, pixel_type).map_err(|e| err(&e))?;
        convolve(&src, pixel_type, window, w, h).map_err(|e| err(&e))?
    } else {
        let src = ImageRef::new(src_w, src_h, &img.data, pixel_type).map_err(|e| err(&e))?;
        convolve(&src, pixel_type, window, w, h).map_err(|e| err(&e))?
    };
    if premultiply {
        MulDiv::new()
            .divide_alpha_inplace(&mut dst)
            .map_err(|e| err(&e))?;
    }
    Ok(Raster::new(w, h, channels, dst.into_vec()))
}

/// The Lanczos resample itself, on this thread's resizer (its scratch buffers are reused
/// from request to request, up to `KEEP_RESIZER_BUFFERS`).
fn convolve(
    src: &impl IntoImageView,
    pixel_type: PixelType,
    window: Window,
    w: u32,
    h: u32,
) -> Result<Image<'static>, fast_image_resize::ResizeError> {
    let mut dst = Image::new(w, h, pixel_type);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(RESIZE_FILTER))
        .crop(window.left, window.top, window.width, window.height)
        .use_alpha(false);
    RESIZER.with(|cell| {
        let mut resizer = cell.borrow_mut();
        let result = resizer.resize(src, &mut dst, &options);
        if resizer.size_of_internal_buffers() > KEEP_RESIZER_BUFFERS {
            resizer.reset_internal_buffers();
        }
        result
    })?;
    Ok(dst)
}

/// True when every pixel of an RGBA buffer is fully opaque (premultiplying would be a no-op).
fn is_opaque(rgba: &[u8]) -> bool {
    rgba.chunks_exact(4).all(|p| p[3] == 255)
}

/// Centre `img` on a `cw` x `ch` canvas of the background colour. Default background is white,
/// or transparent white when the image has alpha; a translucent colour leaves the canvas clear
/// for `flatten` to lay it under everything at once.
fn pad(img: &Raster, cw: u32, ch: u32, spec: &TransformSpec) -> Raster {
    // A translucent background is laid under the whole picture later (the `flatten` step),
    // padding included: pad with nothing here so it is not laid twice.
    let bg = match spec.background {
        Some(c) if c.0[3] == 255 => c.0,
        Some(_) => [0, 0, 0, 0],
        None if img.has_alpha() => [255, 255, 255, 0],
        None => [255, 255, 255, 255],
    };
    let x0 = cw.saturating_sub(img.width) / 2;
    let y0 = ch.saturating_sub(img.height) / 2;
    place_on(img, (cw, ch), (x0, y0), bg)
}

/// A `size` canvas of `colour` with `img` at `at` (clipped to the canvas); RGBA when either
/// has alpha, else RGB.
fn place_on(img: &Raster, (cw, ch): (u32, u32), (x0, y0): (u32, u32), colour: [u8; 4]) -> Raster {
    let out_c: usize = if img.has_alpha() || colour[3] < 255 {
        4
    } else {
        3
    };
    let in_c = img.channels as usize;
    let (cw_u, ch_u) = (cw as usize, ch as usize);
    let mut data = Vec::with_capacity(cw_u * ch_u * out_c);
    for _ in 0..cw_u * ch_u {
        data.extend_from_slice(&colour[..out_c]);
    }
    let (x0, y0) = (x0 as usize, y0 as usize);
    let iw = (img.width as usize).min(cw_u.saturating_sub(x0));
    let ih = (img.height as usize).min(ch_u.saturating_sub(y0));
    let in_stride = img.width as usize * in_c;
    for r in 0..ih {
        let src = &img.data[r * in_stride..r * in_stride + iw * in_c];
        let start = ((y0 + r) * cw_u + x0) * out_c;
        let dst = &mut data[start..start + iw * out_c];
        if in_c == out_c {
            dst.copy_from_slice(src);
        } else {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(3)) {
                d[..3].copy_from_slice(s);
                d[3] = 255;
            }
        }
    }
    Raster::new(cw, ch, out_c as u8, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Rgba;

    fn spec(w: Option<u32>, h: Option<u32>, fit: Fit) -> TransformSpec {
        TransformSpec {
            width: w,
            height: h,
            fit,
            ..Default::default()
        }
    }

    fn solid(w: u32, h: u32, px: &[u8]) -> Raster {
        let data = px
            .iter()
            .copied()
            .cycle()
            .take(w as usize * h as usize * px.len())
            .collect();
        Raster::new(w, h, px.len() as u8, data)
    }

    /// A source whose left half is red and right half blue.
    fn red_blue(w: u32, h: u32) -> Raster {
        let mut data = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                data.extend_from_slice(if x < w / 2 {
                    &[255, 0, 0]
                } else {
                    &[0, 0, 255]
                });
            }
        }
        Raster::new(w, h, 3, data)
    }

    fn px(img: &Raster, x: u32, y: u32) -> &[u8] {
        let c = img.channels as usize;
        let i = (y as usize * img.width as usize + x as usize) * c;
        &img.data[i..i + c]
    }

    fn dims(src: (u32, u32), s: &TransformSpec) -> (u32, u32) {
        let img = solid(src.0, src.1, &[10, 20, 30]);
        let out = fit(img, s, &Limits::default()).unwrap();
        assert_eq!(out.data.len(), out.width as usize * out.height as usize * 3);
        (out.width, out.height)
    }

    const LAND: (u32, u32) = (800, 600);
    const PORT: (u32, u32) = (600, 800);
    const SQUARE: (u32, u32) = (500, 500);

    #[test]
    fn no_size_keeps_source() {
        for f in [
            Fit::ScaleDown,
            Fit::Contain,
            Fit::Cover,
            Fit::Crop,
            Fit::Pad,
        ] {
            assert_eq!(dims(LAND, &spec(None, None, f)), LAND);
        }
    }

    #[test]
    fn scale_down_dimensions() {
        let f = Fit::ScaleDown;
        assert_eq!(dims(LAND, &spec(Some(400), None, f)), (400, 300));
        assert_eq!(dims(LAND, &spec(None, Some(300), f)), (400, 300));
        assert_eq!(dims(LAND, &spec(Some(400), Some(400), f)), (400, 300));
        assert_eq!(dims(PORT, &spec(Some(400), Some(400), f)), (300, 400));
        assert_eq!(dims(SQUARE, &spec(Some(200), Some(300), f)), (200, 200));
        // never enlarges
        assert_eq!(dims(LAND, &spec(Some(1600), None, f)), LAND);
        assert_eq!(dims(LAND, &spec(Some(1000), Some(1000), f)), LAND);
        // rounding: 600 * 333 / 800 = 249.75 -> 250
        assert_eq!(dims(LAND, &spec(Some(333), None, f)), (333, 250));
    }

    #[test]
    fn contain_dimensions() {
        let f = Fit::Contain;
        assert_eq!(dims(LAND, &spec(Some(1600), None, f)), (1600, 1200));
        assert_eq!(dims(PORT, &spec(None, Some(1000), f)), (750, 1000));
        assert_eq!(dims(LAND, &spec(Some(1000), Some(1000), f)), (1000, 750));
        assert_eq!(dims(PORT, &spec(Some(200), Some(200), f)), (150, 200));
        assert_eq!(dims(SQUARE, &spec(Some(700), Some(900), f)), (700, 700));
    }

    #[test]
    fn cover_dimensions_are_the_box() {
        let f = Fit::Cover;
        assert_eq!(dims(LAND, &spec(Some(300), Some(300), f)), (300, 300));
        assert_eq!(dims(PORT, &spec(Some(300), Some(100), f)), (300, 100));
        assert_eq!(dims(SQUARE, &spec(Some(1000), Some(200), f)), (1000, 200));
        assert_eq!(dims(LAND, &spec(Some(2000), Some(2000), f)), (2000, 2000));
        // one side only: follows the aspect ratio, may enlarge
        assert_eq!(dims(LAND, &spec(Some(1600), None, f)), (1600, 1200));
        assert_eq!(dims(PORT, &spec(None, Some(400), f)), (300, 400));
    }

    #[test]
    fn crop_dimensions_never_enlarge() {
        let f = Fit::Crop;
        assert_eq!(dims(LAND, &spec(Some(300), Some(300), f)), (300, 300));
        assert_eq!(dims(PORT, &spec(Some(200), Some(100), f)), (200, 100));
        // smaller than the box in both: untouched
        assert_eq!(dims(SQUARE, &spec(Some(1000), Some(1000), f)), SQUARE);
        // smaller in height only: height kept, width cut to the box
        assert_eq!(dims(LAND, &spec(Some(500), Some(1000), f)), (500, 600));
        assert_eq!(dims(PORT, &spec(Some(1000), Some(500), f)), (600, 500));
        assert_eq!(dims(LAND, &spec(Some(1600), None, f)), LAND);
        assert_eq!(dims(LAND, &spec(Some(400), None, f)), (400, 300));
    }

    #[test]
    fn pad_dimensions_are_the_box() {
        let f = Fit::Pad;
        assert_eq!(dims(LAND, &spec(Some(400), Some(400), f)), (400, 400));
        assert_eq!(dims(PORT, &spec(Some(1000), Some(1000), f)), (1000, 1000));
        assert_eq!(dims(SQUARE, &spec(Some(300), Some(100), f)), (300, 100));
        assert_eq!(dims(LAND, &spec(Some(400), None, f)), (400, 300));
    }

    #[test]
    fn dpr_multiplies_the_box() {
        let mut s = spec(Some(200), Some(150), Fit::Cover);
        s.dpr_centi = 200;
        assert_eq!(dims(LAND, &s), (400, 300));
        s.fit = Fit::ScaleDown;
        s.dpr_centi = 150;
        assert_eq!(dims(LAND, &s), (300, 225));
        // 101 * 1.5 = 151.5 rounds half up to 152
        let mut s = spec(Some(101), None, Fit::ScaleDown);
        s.dpr_centi = 150;
        assert_eq!(dims(LAND, &s), (152, 114));
        // dpr 2 on scale-down still never enlarges
        let mut s = spec(Some(500), None, Fit::ScaleDown);
        s.dpr_centi = 200;
        assert_eq!(dims(LAND, &s), LAND);
    }

    #[test]
    fn tiny_results_are_at_least_one_pixel() {
        assert_eq!(
            dims((1000, 2), &spec(Some(10), None, Fit::ScaleDown)),
            (10, 1)
        );
        assert_eq!(
            dims((2, 1000), &spec(Some(10), Some(10), Fit::Contain)),
            (1, 10)
        );
    }

    #[test]
    fn too_large_output_rejected() {
        let limits = Limits {
            max_output_dimension: 1000,
            ..Limits::default()
        };
        let img = solid(100, 100, &[0, 0, 0]);
        let r = fit(img.clone(), &spec(Some(2000), None, Fit::Contain), &limits);
        assert!(matches!(r, Err(PipelineError::TooLarge(_))));
        let r = fit(img.clone(), &spec(Some(1001), Some(10), Fit::Pad), &limits);
        assert!(matches!(r, Err(PipelineError::TooLarge(_))));
        // scale-down never enlarges, so a huge box on a small image is fine
        let r = fit(
            img.clone(),
            &spec(Some(100_000), None, Fit::ScaleDown),
            &limits,
        );
        assert_eq!(r.unwrap().width, 100);
        // absurd sizes must not overflow
        let r = fit(
            img,
            &spec(Some(u32::MAX), Some(u32::MAX), Fit::Cover),
            &limits,
        );
        assert!(matches!(r, Err(PipelineError::TooLarge(_))));
    }

    fn mostly(img: &Raster, rgb: [u8; 3]) -> f64 {
        let hits = img
            .data
            .chunks_exact(img.channels as usize)
            .filter(|p| p[..3].iter().zip(rgb).all(|(&a, b)| a.abs_diff(b) < 40))
            .count();
        hits as f64 / (img.width * img.height) as f64
    }

    #[test]
    fn gravity_picks_the_region() {
        let src = red_blue(400, 200);
        let mut s = spec(Some(100), Some(100), Fit::Cover);
        s.gravity = Gravity::Left;
        let out = fit(src.clone(), &s, &Limits::default()).unwrap();
        assert_eq!((out.width, out.height), (100, 100));
        assert!(mostly(&out, [255, 0, 0]) > 0.95);
        s.gravity = Gravity::Right;
        let out = fit(src.clone(), &s, &Limits::default()).unwrap();
        assert!(mostly(&out, [0, 0, 255]) > 0.95);
        s.gravity = Gravity::Point {
            x_milli: 900,
            y_milli: 500,
        };
        let out = fit(src.clone(), &s, &Limits::default()).unwrap();
        assert!(mostly(&out, [0, 0, 255]) > 0.95);
        // centre straddles both halves
        s.gravity = Gravity::Center;
        let out = fit(src.clone(), &s, &Limits::default()).unwrap();
        assert!(mostly(&out, [255, 0, 0]) > 0.4 && mostly(&out, [0, 0, 255]) > 0.4);
        // crop without scaling (box same height as the source) is an exact copy
        let mut s = spec(Some(150), Some(200), Fit::Crop);
        s.gravity = Gravity::Left;
        let out = fit(src.clone(), &s, &Limits::default()).unwrap();
        assert_eq!((out.width, out.height), (150, 200));
        assert_eq!(mostly(&out, [255, 0, 0]), 1.0);
        s.gravity = Gravity::BottomRight;
        let out = fit(src, &s, &Limits::default()).unwrap();
        assert_eq!(mostly(&out, [0, 0, 255]), 1.0);
    }

    #[test]
    fn focal_point_window_is_clamped_and_centred() {
        let mut s = spec(Some(100), Some(100), Fit::Cover);
        s.gravity = Gravity::Point {
            x_milli: 1000,
            y_milli: 0,
        };
        let p = plan(400, 200, &s);
        assert_eq!(
            p.window,
            Window {
                left: 200.0,
                top: 0.0,
                width: 200.0,
                height: 200.0
            }
        );
        s.gravity = Gravity::Point {
            x_milli: 500,
            y_milli: 500,
        };
        let p = plan(400, 200, &s);
        assert_eq!(p.window.left, 100.0);
        s.gravity = Gravity::Point {
            x_milli: 300,
            y_milli: 500,
        };
        assert_eq!(plan(400, 200, &s).window.left, 20.0);
    }

    #[test]
    fn top_gravity_on_portrait() {
        // top half green, bottom half black
        let mut data = Vec::new();
        for y in 0..400 {
            for _ in 0..100 {
                data.extend_from_slice(if y < 200 { &[0, 255, 0] } else { &[0, 0, 0] });
            }
        }
        let src = Raster::new(100, 400, 3, data);
        let mut s = spec(Some(50), Some(50), Fit::Cover);
        s.gravity = Gravity::Top;
        let out = fit(src.clone(), &s, &Limits::default()).unwrap();
        assert!(mostly(&out, [0, 255, 0]) > 0.95);
        s.gravity = Gravity::Bottom;
        let out = fit(src, &s, &Limits::default()).unwrap();
        assert!(mostly(&out, [0, 0, 0]) > 0.95);
    }

    #[test]
    fn pad_fills_bands_with_background() {
        let src = solid(200, 100, &[10, 200, 10]);
        let mut s = spec(Some(100), Some(100), Fit::Pad);
        s.background = Some(Rgba([255, 0, 0, 255]));
        let out = fit(src.clone(), &s, &Limits::default()).unwrap();
        assert_eq!((out.width, out.height, out.channels), (100, 100, 3));
        // 200x100 -> 100x50 centred: bands are rows 0..25 and 75..100
        assert_eq!(px(&out, 50, 10), &[255, 0, 0]);
        assert_eq!(px(&out, 0, 24), &[255, 0, 0]);
        assert_eq!(px(&out, 99, 75), &[255, 0, 0]);
        assert_eq!(px(&out, 50, 50), &[10, 200, 10]);
        assert_eq!(px(&out, 0, 25), &[10, 200, 10]);
        // default background: white for RGB
        s.background = None;
        let out = fit(src.clone(), &s, &Limits::default()).unwrap();
        assert_eq!(px(&out, 0, 0), &[255, 255, 255]);
        // translucent background promotes to RGBA, image opaque
        s.background = Some(Rgba([0, 0, 0, 0]));
        let out = fit(src, &s, &Limits::default()).unwrap();
        assert_eq!(out.channels, 4);
        assert_eq!(px(&out, 0, 0), &[0, 0, 0, 0]);
        assert_eq!(px(&out, 50, 50), &[10, 200, 10, 255]);
        // RGBA source defaults to a transparent band
        let src = solid(100, 200, &[1, 2, 3, 255]);
        let s = spec(Some(300), Some(300), Fit::Pad);
        let out = fit(src, &s, &Limits::default()).unwrap();
        assert_eq!((out.width, out.height, out.channels), (300, 300, 4));
        assert_eq!(px(&out, 0, 150)[3], 0);
        assert_eq!(px(&out, 150, 150), &[1, 2, 3, 255]);
    }

    #[test]
    fn alpha_resize_has_no_dark_fringe() {
        // left half transparent black, right half opaque white
        let (w, h) = (64u32, 16u32);
        let mut data = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                data.extend_from_slice(if x < w / 2 { &[0, 0, 0, 0] } else { &[255; 4] });
            }
        }
        let src = Raster::new(w, h, 4, data);
        for target in [16, 400] {
            let s = spec(Some(target), None, Fit::Contain);
            let out = fit(src.clone(), &s, &Limits::default()).unwrap();
            for p in out.data.chunks_exact(4) {
                if p[3] > 0 {
                    assert!(
                        p[..3].iter().all(|&v| v >= 250),
                        "fringe pixel {p:?} at {target}"
                    );
                }
            }
        }
    }

    #[test]
    fn resize_keeps_flat_colour() {
        let src = solid(300, 200, &[12, 34, 56]);
        for (w, f) in [(100, Fit::ScaleDown), (1000, Fit::Contain)] {
            let out = fit(src.clone(), &spec(Some(w), None, f), &Limits::default()).unwrap();
            assert!(out.data.chunks_exact(3).all(|p| p == [12, 34, 56]));
        }
    }

    #[test]
    fn min_decode_size_rules() {
        let s = spec(Some(400), None, Fit::ScaleDown);
        assert_eq!(min_decode_size(4000, 3000, &s), (400, 300));
        // cover: the scaled size before cropping
        let s = spec(Some(300), Some(300), Fit::Cover);
        assert_eq!(min_decode_size(4000, 2000, &s), (600, 300));
        let s = spec(Some(300), Some(300), Fit::Crop);
        assert_eq!(min_decode_size(4000, 2000, &s), (600, 300));
        // never larger than the source
        let s = spec(Some(8000), Some(8000), Fit::Contain);
        assert_eq!(min_decode_size(4000, 2000, &s), (4000, 2000));
        assert_eq!(
            min_decode_size(4000, 2000, &spec(None, None, Fit::Cover)),
            (4000, 2000)
        );
        // a quarter turn: enough for the box on either side of the rotation
        let mut s = spec(Some(100), None, Fit::ScaleDown);
        s.rotate = Some(90);
        // fit first: 100x50; rotate first: the 2000-wide side becomes 100 -> 200x100 upright
        assert_eq!(min_decode_size(4000, 2000, &s), (200, 100));
        let mut s = spec(None, Some(100), Fit::ScaleDown);
        s.rotate = Some(270);
        // fit first: 200x100; rotate first: height 100 on 2000x4000 -> 50x100, upright 100x50
        assert_eq!(min_decode_size(4000, 2000, &s), (200, 100));
        // pad decodes to the fitted image, not the canvas
        let s = spec(Some(200), Some(200), Fit::Pad);
        assert_eq!(min_decode_size(4000, 2000, &s), (200, 100));
    }

    fn numbered(w: u32, h: u32) -> Raster {
        let data = (0..w * h)
            .flat_map(|i| [i as u8, (i >> 8) as u8, 7])
            .collect();
        Raster::new(w, h, 3, data)
    }

    fn id(img: &Raster, x: u32, y: u32) -> u32 {
        let p = px(img, x, y);
        p[0] as u32 | (p[1] as u32) << 8
    }

    #[test]
    fn rotate_and_flip_positions() {
        let (w, h) = (5u32, 3u32);
        let src = numbered(w, h);
        let at = |x: u32, y: u32| y * w + x;
        let run = |rotate: Option<u16>, flip: Flip| {
            let s = TransformSpec {
                rotate,
                flip,
                ..Default::default()
            };
            rotate_flip(src.clone(), &s)
        };
        // 90 clockwise: top-left of output is the source's bottom-left
        let r = run(Some(90), Flip::None);
        assert_eq!((r.width, r.height), (3, 5));
        assert_eq!(id(&r, 0, 0), at(0, 2));
        assert_eq!(id(&r, 2, 0), at(0, 0));
        assert_eq!(id(&r, 2, 4), at(4, 0));
        let r = run(Some(270), Flip::None);
        assert_eq!((r.width, r.height), (3, 5));
        assert_eq!(id(&r, 0, 0), at(4, 0));
        assert_eq!(id(&r, 0, 4), at(0, 0));
        let r = run(Some(180), Flip::None);
        assert_eq!((r.width, r.height), (5, 3));
        assert_eq!(id(&r, 0, 0), at(4, 2));
        assert_eq!(id(&r, 1, 2), at(3, 0));
        let r = run(None, Flip::Horizontal);
        assert_eq!(id(&r, 0, 1), at(4, 1));
        let r = run(None, Flip::Vertical);
        assert_eq!(id(&r, 1, 0), at(1, 2));
        let r = run(None, Flip::Both);
        assert_eq!(r, run(Some(180), Flip::None));
        assert_eq!(run(Some(180), Flip::Both), src);
        // rotate first, then flip the rotated image
        let r = run(Some(90), Flip::Horizontal);
        assert_eq!(id(&r, 0, 0), at(0, 0));
        assert_eq!(id(&r, 2, 4), at(4, 2));
        let r = run(Some(90), Flip::Vertical);
        assert_eq!(id(&r, 0, 0), at(4, 2));
        assert_eq!(run(None, Flip::None), src);
        // rgba keeps its channel order
        let rgba = Raster::new(2, 1, 4, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let s = TransformSpec {
            flip: Flip::Horizontal,
            ..Default::default()
        };
        assert_eq!(
            rotate_flip(rgba.clone(), &s).data,
            vec![5, 6, 7, 8, 1, 2, 3, 4]
        );
        let s = TransformSpec {
            rotate: Some(90),
            ..Default::default()
        };
        let r = rotate_flip(rgba, &s);
        assert_eq!(
            (r.width, r.height, r.data),
            (1, 2, vec![1, 2, 3, 4, 5, 6, 7, 8])
        );
    }

    #[test]
    fn large_rotation_covers_every_tile() {
        let src = numbered(70, 45);
        let s = TransformSpec {
            rotate: Some(270),
            ..Default::default()
        };
        let r = rotate_flip(src.clone(), &s);
        for oy in 0..r.height {
            for ox in 0..r.width {
                assert_eq!(id(&r, ox, oy), id(&src, 69 - oy, ox));
            }
        }
    }

    #[test]
    fn squeeze_stretches_to_the_box_either_way() {
        assert_eq!(
            dims((1600, 1200), &spec(Some(120), Some(40), Fit::Squeeze)),
            (120, 40)
        );
        assert_eq!(
            dims((100, 50), &spec(Some(300), Some(400), Fit::Squeeze)),
            (300, 400)
        );
        // One side: the aspect ratio is kept, as for contain (enlarging too).
        assert_eq!(
            dims((100, 50), &spec(Some(300), None, Fit::Squeeze)),
            (300, 150)
        );
    }

    /// The pixels of `r` in `img`, as ids.
    fn ids_in(img: &Raster, r: Rect) -> Vec<u32> {
        let mut out = Vec::new();
        for y in r.top..r.top + r.height {
            for x in r.left..r.left + r.width {
                out.push(id(img, x, y));
            }
        }
        out
    }

    #[test]
    fn a_region_follows_its_pixels_through_every_turn_and_mirror() {
        // Every rotate x flip: the region orient_rect names in the turned picture holds
        // exactly the pixels the region held before, turned the same way.
        let (w, h) = (7u32, 4u32);
        let src = numbered(w, h);
        let r = Rect {
            left: 1,
            top: 1,
            width: 4,
            height: 2,
        };
        for rotate in [None, Some(90), Some(180), Some(270)] {
            for flip in [Flip::None, Flip::Horizontal, Flip::Vertical, Flip::Both] {
                let s = TransformSpec {
                    rotate,
                    flip,
                    ..Default::default()
                };
                let o = spec_orientation(&s);
                let mut piece = Vec::new();
                for y in r.top..r.top + r.height {
                    for x in r.left..r.left + r.width {
                        piece.extend_from_slice(px(&src, x, y));
                    }
                }
                let piece = orientation::apply(Raster::new(r.width, r.height, 3, piece), o);
                let turned = orientation::apply(src.clone(), o);
                let moved = orient_rect(r, (w, h), o);
                assert_eq!(
                    ids_in(&turned, moved),
                    ids_in(
                        &piece,
                        Rect {
                            left: 0,
                            top: 0,
                            width: piece.width,
                            height: piece.height
                        }
                    ),
                    "rotate {rotate:?} flip {flip:?}"
                );
            }
        }
    }

    #[test]
    fn crop_regions_are_clipped_and_placed() {
        let region = |crop: Crop, src: (u32, u32)| {
            let s = TransformSpec {
                crop: Some(crop),
                ..Default::default()
            };
            crop_region(src.0, src.1, &s, None)
                .expect("a crop")
                .map(|r| (r.left, r.top, r.width, r.height))
        };
        let edges = |top, right, bottom, left| Crop::Edges {
            top,
            right,
            bottom,
            left,
        };
        assert_eq!(
            region(edges(10, 20, 30, 40), (400, 200)),
            Ok((40, 10, 340, 160))
        );
        assert!(region(edges(0, 200, 0, 200), (400, 200)).is_err());
        assert!(region(edges(100, 0, 100, 0), (400, 200)).is_err());
        assert!(region(edges(u32::MAX, 0, u32::MAX, 0), (400, 200)).is_err());
        let rect = |left, top, width, height| Crop::Rect {
            left,
            top,
            width,
            height,
        };
        assert_eq!(
            region(rect(50, 20, Some(100), None), (400, 200)),
            Ok((50, 20, 100, 180))
        );
        assert_eq!(
            region(rect(350, 0, Some(100), Some(900)), (400, 200)),
            Ok((350, 0, 50, 200))
        );
        assert!(region(rect(400, 0, None, None), (400, 200)).is_err());
        let sized = |width, height, gravity| Crop::Sized {
            width,
            height,
            gravity,
        };
        let (px, milli) = (Extent::Pixels, Extent::Milli);
        assert_eq!(
            region(sized(px(100), px(100), None), (400, 200)),
            Ok((150, 50, 100, 100))
        );
        assert_eq!(
            region(
                sized(milli(500), Extent::Full, Some(Gravity::Right)),
                (400, 200)
            ),
            Ok((200, 0, 200, 200))
        );
        assert_eq!(
            region(
                sized(px(900), px(50), Some(Gravity::BottomLeft)),
                (400, 200)
            ),
            Ok((0, 150, 400, 50))
        );
        assert_eq!(
            region(
                sized(milli(1), milli(1), Some(Gravity::TopLeft)),
                (400, 200)
            ),
            Ok((0, 0, 1, 1)),
            "a fraction is at least one pixel"
        );
    }

    #[test]
    fn a_crop_is_read_before_the_turn_and_fit_works_on_it_alone() {
        // 400x200 source turned a quarter: fit sees 200x400. The region is the top-left
        // 100x50 of the upright picture, which turns to the top-right 50x100.
        let s = TransformSpec {
            rotate: Some(90),
            crop: Some(Crop::Rect {
                left: 0,
                top: 0,
                width: Some(100),
                height: Some(50),
            }),
            ..Default::default()
        };
        assert_eq!(
            crop_region(200, 400, &s, None),
            Some(Ok(Rect {
                left: 150,
                top: 0,
                width: 50,
                height: 100
            }))
        );
        let p = plan(200, 400, &s);
        assert_eq!(p.scaled, (50, 100));
        assert_eq!(
            (p.window.left, p.window.top, p.window.width, p.window.height),
            (150.0, 0.0, 50.0, 100.0)
        );
        // A box on top of the crop: cover the region, not the source.
        let s = TransformSpec {
            width: Some(20),
            height: Some(20),
            fit: Fit::Cover,
            gravity: Gravity::Top,
            ..s
        };
        let p = plan(200, 400, &s);
        assert_eq!(p.scaled, (20, 20));
        assert_eq!(
            (p.window.left, p.window.top, p.window.width, p.window.height),
            (150.0, 0.0, 50.0, 50.0)
        );
        // Pixels: the crop of a red|blue source's right half is all blue.
        let img = red_blue(400, 200);
        let s = TransformSpec {
            crop: Some(Crop::Edges {
                top: 0,
                right: 0,
                bottom: 0,
                left: 250,
            }),
            width: Some(30),
            ..Default::default()
        };
        let out = fit(img, &s, &Limits::default()).unwrap();
        assert_eq!((out.width, out.height), (30, 40));
        assert!(mostly(&out, [0, 0, 255]) > 0.99);
    }

    #[test]
    fn a_crop_that_leaves_nothing_is_bad_options_and_shrink_on_load_keeps_the_region_sharp() {
        let s = TransformSpec {
            crop: Some(Crop::Rect {
                left: 500,
                top: 0,
                width: None,
                height: None,
            }),
            ..Default::default()
        };
        let r = fit(solid(400, 200, &[1, 2, 3]), &s, &Limits::default());
        assert!(matches!(r, Err(PipelineError::BadOptions(_))), "{r:?}");
        // A 100 px wide crop of a 4000 px source scaled to 100: the decoder must keep every
        // source pixel of the region, so no shrink at all.
        let s = TransformSpec {
            width: Some(100),
            crop: Some(Crop::Sized {
                width: Extent::Pixels(100),
                height: Extent::Full,
                gravity: None,
            }),
            ..Default::default()
        };
        assert_eq!(min_decode_size(4000, 2000, &s), (4000, 2000));
        // Half the source at 100 px: a 20x shrink is still enough.
        let s = TransformSpec {
            crop: Some(Crop::Sized {
                width: Extent::Milli(500),
                height: Extent::Full,
                gravity: None,
            }),
            ..s
        };
        assert_eq!(min_decode_size(4000, 2000, &s), (200, 100));
    }

    #[test]
    fn fit_across_applies_when_source_and_box_disagree() {
        // imgproxy's rt:auto: fill when both are landscape (or both portrait), fit when not.
        let auto = |w, h| TransformSpec {
            width: Some(w),
            height: Some(h),
            fit: Fit::Crop,
            fit_across: Some(Fit::ScaleDown),
            ..Default::default()
        };
        assert_eq!(
            dims((400, 200), &auto(100, 80)),
            (100, 80),
            "both landscape: fill"
        );
        assert_eq!(
            dims((200, 400), &auto(80, 100)),
            (80, 100),
            "both portrait: fill"
        );
        assert_eq!(
            dims((400, 200), &auto(80, 100)),
            (80, 40),
            "across: fit inside"
        );
        assert_eq!(
            dims((200, 400), &auto(100, 80)),
            (40, 80),
            "across: fit inside"
        );
        assert_eq!(
            dims((200, 200), &auto(100, 80)),
            (100, 80),
            "a square is landscape"
        );
        // The region decides, not the whole source.
        let s = TransformSpec {
            crop: Some(Crop::Rect {
                left: 0,
                top: 0,
                width: Some(100),
                height: Some(200),
            }),
            ..auto(100, 80)
        };
        assert_eq!(dims((400, 200), &s), (40, 80));
    }

    #[test]
    fn random_regions_turns_and_fits_never_panic_and_match_the_estimate() {
        // A small xorshift: the same cases on every run.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % u64::from(n)) as u32
        };
        let fits = [
            Fit::ScaleDown,
            Fit::Contain,
            Fit::Cover,
            Fit::Crop,
            Fit::Pad,
            Fit::Squeeze,
        ];
        let gravities = [
            Gravity::Center,
            Gravity::BottomRight,
            Gravity::Point {
                x_milli: 900,
                y_milli: 30,
            },
        ];
        for _ in 0..3000 {
            let (w, h) = (1 + next(40), 1 + next(40));
            let extent = |v: u32| match v % 3 {
                0 => Extent::Full,
                1 => Extent::Pixels(1 + v % 50),
                _ => Extent::Milli((1 + v % 999) as u16),
            };
            let crop = match next(4) {
                0 => None,
                1 => Some(Crop::Edges {
                    top: next(30),
                    right: next(30),
                    bottom: next(30),
                    left: next(30),
                }),
                2 => Some(Crop::Rect {
                    left: next(45),
                    top: next(45),
                    width: (next(2) == 0).then(|| 1 + next(50)),
                    height: (next(2) == 0).then(|| 1 + next(50)),
                }),
                _ => Some(Crop::Sized {
                    width: extent(next(1000)),
                    height: extent(next(1000)),
                    gravity: Some(gravities[next(3) as usize]),
                }),
            };
            let trimmed = (next(3) == 0).then(|| {
                let (l, t) = (next(w), next(h));
                Rect {
                    left: l,
                    top: t,
                    width: 1 + next(w - l),
                    height: 1 + next(h - t),
                }
            });
            let s = TransformSpec {
                width: (next(3) != 0).then(|| 1 + next(60)),
                height: (next(3) != 0).then(|| 1 + next(60)),
                fit: fits[next(6) as usize],
                fit_across: (next(2) == 0).then(|| fits[next(6) as usize]),
                gravity: gravities[next(3) as usize],
                rotate: [None, Some(90), Some(180), Some(270)][next(4) as usize],
                flip: [Flip::None, Flip::Horizontal, Flip::Vertical, Flip::Both][next(4) as usize],
                crop,
                ..Default::default()
            };
            let img = numbered(w, h);
            // fit sees the picture after rotate, as the runner hands it over.
            let turned = rotate_flip(img, &s);
            let size = (turned.width, turned.height);
            match fit_from(
                Cow::Owned(turned),
                size,
                &s,
                trimmed,
                s.gravity,
                &Limits::default(),
            ) {
                Ok(out) => {
                    assert_eq!(out.data.len(), out.width as usize * out.height as usize * 3);
                    if trimmed.is_none() {
                        let (_, canvas) = output_sizes(size.0, size.1, &s);
                        assert_eq!((out.width, out.height), canvas, "{s:?} on {w}x{h}");
                    }
                }
                Err(PipelineError::BadOptions(why)) => {
                    assert!(why.contains("nothing") || why.contains("outside"), "{why}");
                }
                Err(e) => panic!("{s:?} on {w}x{h}: {e}"),
            }
        }
    }
}
