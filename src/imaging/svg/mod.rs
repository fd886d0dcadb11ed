//! SVG originals, rasterised with resvg. Nothing in the document runs or is fetched: resvg has
//! no scripting; `xlink:href` to files or URLs resolves to nothing (only `data:` images, and of
//! those only nested SVG draws, as the raster image codecs are left out); a document that
//! declares entities is refused rather than expanded; compressed `.svgz` is not read. Text
//! draws only when the document has it as paths (no fonts are loaded).
//!
//! The size comes from the root element's `width`/`height` (absolute units) or its `viewBox`,
//! read by a small scanner that stops at the root tag, so the probe costs no parse of the
//! document; the pixel limits then apply to that size like any other image's, and the decode
//! renders at that size (or 1/n of it, shrink-on-load) whatever resvg thinks of the units.
//!
//! Before drawing, checks keep usvg and resvg inside what they do safely, each refusing a
//! class of document: geometry numbers past 1e15 and convolution kernels past 4096 a side,
//! circular references (`references`, on the XML before usvg reads it), then on usvg's tree
//! shapes and filters reaching too far, turbulence past 32-bit noise positions, pattern tiles
//! too large, and drawing work over budget. In the server the drawing then runs in a
//! child process (`worker`), so that a crash not yet known costs one request.

mod references;
pub(crate) mod worker;

use super::error::ImageError;
use super::raster::Raster;
use resvg::{tiny_skia, usvg};

/// usvg's size for a document that gives neither a size nor a `viewBox`.
const DEFAULT_SIDE: f64 = 100.0;

/// Drawing costs about one pass over the raster per element at worst (a shape or filter that
/// covers it all): a document whose elements times raster pixels exceed this is refused
/// (`413`) rather than left to draw for minutes. A 1,000-element drawing at 4 MP is 4e9.
const MAX_DRAW_WORK: u64 = 8_000_000_000;

/// SVG markup: a document whose root element is `<svg>`, starting in the first 4 KB (after an
/// optional byte-order mark, XML declaration, comments and doctype).
pub(crate) fn is_svg(input: &[u8]) -> bool {
    root_start(&input[..input.len().min(4096)]).is_some()
}

/// Where the root `<svg` tag starts: past the prolog (byte-order mark, white space, processing
/// instructions, comments, a doctype with its internal subset), the first element must be it.
fn root_start(input: &[u8]) -> Option<usize> {
    let mut at = if input.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    loop {
        at += input[at..].iter().position(|b| !b.is_ascii_whitespace())?;
        let rest = &input[at..];
        let skip = if rest.starts_with(b"<?") {
            find(rest, b"?>", |_| true).map(|e| e + 2)
        } else if rest.starts_with(b"<!--") {
            find(rest, b"-->", |_| true).map(|e| e + 3)
        } else if rest.starts_with(b"<!DOCTYPE") || rest.starts_with(b"<!doctype") {
            let gt = rest.iter().position(|&b| b == b'>')?;
            match rest.iter().position(|&b| b == b'[') {
                Some(open) if open < gt => find(rest, b"]", |_| true).and_then(|close| {
                    rest[close..]
                        .iter()
                        .position(|&b| b == b'>')
                        .map(|e| close + e + 1)
                }),
                _ => Some(gt + 1),
            }
        } else {
            let root = rest.starts_with(b"<svg")
                && rest
                    .get(4)
                    .is_some_and(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/');
            return root.then_some(at);
        };
        at += skip?;
    }
}

/// The attribute text of the root `<svg ...>` tag (between `<svg` and its `>`).
fn root_tag(input: &[u8]) -> Option<&[u8]> {
    let at = root_start(input)?;
    let rest = &input[at + 4..];
    // The tag ends at the first `>` outside quotes.
    let mut quote = None;
    for (i, &b) in rest.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// Where `needle` first occurs followed by a byte `next` accepts.
fn find(hay: &[u8], needle: &[u8], next: impl Fn(u8) -> bool) -> Option<usize> {
    hay.windows(needle.len() + 1)
        .position(|w| &w[..needle.len()] == needle && next(w[needle.len()]))
}

/// The value of attribute `name` in a tag's attribute text.
fn attribute<'a>(tag: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(tag).ok()?;
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].split_whitespace().last().unwrap_or("");
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let end = after[1..].find(quote)?;
        if key == name {
            return Some(&after[1..1 + end]);
        }
        rest = &after[end + 2..];
    }
    None
}

/// A length in CSS pixels; `None` for a percentage, `auto` or anything unreadable.
fn length(value: &str) -> Option<f64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: f64 = number.parse().ok()?;
    let px = match unit.trim() {
        "" | "px" => n,
        "pt" => n * 4.0 / 3.0,
        "pc" => n * 16.0,
        "in" => n * 96.0,
        "cm" => n * 96.0 / 2.54,
        "mm" => n * 96.0 / 25.4,
        "em" => n * 16.0,
        "ex" => n * 8.0,
        _ => return None,
    };
    (px.is_finite() && px > 0.0).then_some(px)
}

/// `viewBox`'s width and height.
fn view_box(value: &str) -> Option<(f64, f64)> {
    let n: Vec<f64> = value
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match n[..] {
        [_, _, w, h] if w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0 => Some((w, h)),
        _ => None,
    }
}

/// The picture's size in pixels, from the root tag alone: `width` and `height`, a missing one
/// from the other and the `viewBox`'s aspect, both from the `viewBox` when neither is given,
/// 100x100 without any.
pub(crate) fn size(input: &[u8]) -> Result<(u32, u32), ImageError> {
    let tag = root_tag(input)
        .ok_or_else(|| ImageError::Undecodable("SVG without a complete <svg> tag".into()))?;
    let w = attribute(tag, "width").and_then(length);
    let h = attribute(tag, "height").and_then(length);
    let vb = attribute(tag, "viewBox").and_then(view_box);
    let (w, h) = match (w, h, vb) {
        (Some(w), Some(h), _) => (w, h),
        (Some(w), None, Some((vw, vh))) => (w, w * vh / vw),
        (None, Some(h), Some((vw, vh))) => (h * vw / vh, h),
        (None, None, Some(vb)) => vb,
        (Some(w), None, None) => (w, DEFAULT_SIDE),
        (None, Some(h), None) => (DEFAULT_SIDE, h),
        (None, None, None) => (DEFAULT_SIDE, DEFAULT_SIDE),
    };
    let side = |v: f64| -> Result<u32, ImageError> {
        let px = v.ceil();
        if px.is_finite() && px >= 1.0 && px <= f64::from(u32::MAX) {
            Ok(px as u32)
        } else {
            Err(ImageError::TooLarge(format!("SVG size {w}x{h}")))
        }
    };
    Ok((side(w)?, side(h)?))
}

/// Render the document at `width` x `height` (its size, or a fraction of it), straight RGBA:
/// in a child process once the binary has asked for that (`worker`), else here.
pub(crate) fn decode(input: &[u8], width: u32, height: u32) -> Result<Raster, ImageError> {
    match worker::program() {
        Some(program) => worker::draw(program, input, width, height),
        None => draw(input, width, height),
    }
}

/// [`decode`] in the calling thread: the checks, then resvg.
fn draw(input: &[u8], width: u32, height: u32) -> Result<Raster, ImageError> {
    if find(input, b"<!ENTITY", |_| true).is_some() {
        return Err(ImageError::Unsupported(
            "SVG that declares entities (not expanded, by policy)".into(),
        ));
    }
    // Parsed once, with the options usvg's own `from_str` uses: checked, then handed to usvg.
    let text = std::str::from_utf8(input)
        .map_err(|_| ImageError::Undecodable("SVG that is not UTF-8".into()))?;
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, xml)
        .map_err(|e| ImageError::Undecodable(format!("SVG: {e}")))?;
    check_numbers(&doc)?;
    references::check(&doc)?;
    let options = usvg::Options {
        resources_dir: None,
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: usvg::ImageHrefResolver::default_data_resolver(),
            // Files and URLs: never read.
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_xmltree(&doc, &options)
        .map_err(|e| ImageError::Undecodable(format!("SVG: {e}")))?;
    let elements = element_count(tree.root());
    let work = elements.saturating_mul(u64::from(width) * u64::from(height));
    if work > MAX_DRAW_WORK {
        return Err(ImageError::TooLarge(format!(
            "SVG of {elements} elements drawn at {width}x{height}"
        )));
    }
    let mut pixmap = tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| ImageError::TooLarge(format!("SVG raster {width}x{height}")))?;
    let drawn = tree.size();
    let transform = tiny_skia::Transform::from_scale(
        width as f32 / drawn.width(),
        height as f32 / drawn.height(),
    );
    let (sx, sy) = transform.get_scale();
    Geometry::new(width, height, MAX_DRAW_WORK - work).check(tree.root(), f64::from(sx.max(sy)))?;
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    let mut data = pixmap.take();
    // tiny-skia keeps premultiplied alpha; the pipeline works on straight alpha.
    for px in data.chunks_exact_mut(4) {
        let a = u32::from(px[3]);
        if a != 0 && a != 255 {
            for c in &mut px[..3] {
                *c = ((u32::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
    Ok(Raster::new(width, height, 4, data))
}

/// Largest magnitude of a number in path data. svgtypes reads path data in f64, and kurbo
/// draws an arc as a number of curves that grows with the sixth root of its radius: an arc to
/// a point 1e48 away asked for about 1e8 curves, gigabytes, while usvg was still parsing the
/// document (fuzz finding 11). Shapes are refused far sooner anyway (`MAX_REACH`).
const MAX_PATH_NUMBER: f64 = 1e15;

/// Longest side of an `feConvolveMatrix` kernel (its `order`). usvg multiplies the two sides
/// in 32 bits while it reads the document (fuzz finding 18: an order of 4e76 overflowed it);
/// a kernel is costed per pixel before drawing, and the work budget refuses far smaller ones
/// on any raster of more than a few pixels.
const MAX_KERNEL_SIDE: f64 = 4096.0;

/// The attributes that give shapes and regions their geometry: path data, the basic shapes'
/// (usvg reads none of them from style sheets), and positions and sizes. usvg strokes every
/// shape while it reads the document, to know its bounding box, and that costs seconds for a
/// circle of radius 7e35 (a slow input from the `svg` target, next to fix 16).
const GEOMETRY: [&str; 15] = [
    "d", "points", "r", "rx", "ry", "cx", "cy", "x1", "y1", "x2", "y2", "x", "y", "width", "height",
];

/// Refuses a document with a number usvg cannot take in, before usvg reads it: geometry
/// ([`GEOMETRY`] attributes, read as usvg reads them, character references decoded) holding a
/// number of magnitude [`MAX_PATH_NUMBER`] or more, or a convolution kernel side past
/// [`MAX_KERNEL_SIDE`]. Attributes count in any namespace, as in `references`.
fn check_numbers(doc: &roxmltree::Document) -> Result<(), ImageError> {
    for node in doc.descendants() {
        for a in node.attributes() {
            if GEOMETRY.contains(&a.name()) && largest_number(a.value()) >= MAX_PATH_NUMBER {
                return Err(ImageError::Undecodable(format!(
                    "SVG geometry (`{}`) with a number beyond {MAX_PATH_NUMBER:.0e} units",
                    a.name()
                )));
            }
            if a.name() == "order"
                && node.tag_name().name() == "feConvolveMatrix"
                && largest_number(a.value()) > MAX_KERNEL_SIDE
            {
                return Err(ImageError::Undecodable(format!(
                    "SVG filter with a convolution kernel side over {MAX_KERNEL_SIDE}"
                )));
            }
        }
    }
    Ok(())
}

/// The largest magnitude among the numbers in an attribute's value (path data, a kernel's
/// order; infinite for one that overflows):
/// digits with at most one `.`, then an optional exponent; signs, commands, separators and
/// anything else between them are skipped.
fn largest_number(data: &str) -> f64 {
    let b = data.as_bytes();
    let (mut largest, mut i) = (0.0f64, 0);
    while i < b.len() {
        if !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
            continue;
        }
        let start = i;
        let mut dot = false;
        while i < b.len() && (b[i].is_ascii_digit() || (b[i] == b'.' && !dot)) {
            dot |= b[i] == b'.';
            i += 1;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        // A lone `.` is no number.
        let value: f64 = data[start..i].parse().unwrap_or(0.0);
        largest = largest.max(value.abs());
    }
    largest
}

/// Farthest a shape may reach from the origin, in output pixels, stroke included.
///
/// tiny-skia's scan converter works in fixed point and is not safe with coordinates far
/// beyond the raster: a circle with a stroke 1.5e31 wide made it index outside its buffers,
/// and the panic that followed, raised again by a drop during unwinding, aborted a release
/// build's process (fuzz finding 10). In trials the same circle drew correctly with a stroke
/// reaching 1e9 pixels and failed from 1e10; a drawing meant for a raster at most 12,000
/// pixels wide has no use for a shape reaching past a million.
const MAX_REACH: f64 = 1_000_000.0;

/// A pattern's tile is drawn whole into a raster of its own, however much of it shows: it
/// may hold at most this many times the output's pixels (and a million whatever the output).
/// A 40x20 pattern scaled 3,000 times asked for a 28.8 GB tile, and the failed allocation
/// aborted the process.
const MAX_TILE_RATIO: u64 = 4;

/// Node visits the geometry check may make (shared patterns and clip paths are walked once
/// per use, as they are drawn once per use).
const MAX_VISITS: u32 = 1_000_000;

/// Octaves of `feTurbulence` drawn at most. Each adds noise at half the amplitude of the one
/// before, so past the tenth none moves an 8-bit channel by a level; resvg computes every
/// octave for every pixel and channel (a billion octaves is a drawing that never ends) and,
/// when stitching, doubles 32-bit tile sizes once per octave.
const MAX_OCTAVES: u32 = 24;

/// Largest noise lattice position `feTurbulence` may reach. resvg finds a point's lattice
/// cell in 32-bit integers: its position in the filter's units times the base frequency,
/// doubled for each octave, plus 4,096; when stitching, the tile's size in cells doubles once
/// per octave too. Past `i32::MAX` the additions overflow (fuzz finding 17: a base frequency of
/// 5e9); half of it leaves room for the rounding of the estimate in [`noise_reach`].
const MAX_NOISE_POSITION: f64 = (1u32 << 30) as f64;

/// The check that every shape resvg would draw stays within [`MAX_REACH`] of the origin once
/// drawn: the document's own shapes, and those of its clip paths, masks, patterns, filter
/// images and nested SVG images, each at the scale it is drawn at; that no pattern tile is
/// larger than [`MAX_TILE_RATIO`] allows; and that filters stay within reach and within the
/// drawing's work budget (what [`MAX_DRAW_WORK`] leaves after the elements).
struct Geometry {
    visits: u32,
    max_tile: f64,
    /// Pixels of the largest layer resvg gives a filter: 5x the output each way.
    max_layer: f64,
    /// Filter work left, in passes of one pixel.
    budget: f64,
}

impl Geometry {
    fn new(width: u32, height: u32, budget: u64) -> Geometry {
        let raster = u64::from(width) * u64::from(height);
        Geometry {
            visits: 0,
            max_tile: (raster * MAX_TILE_RATIO).max(1 << 20) as f64,
            max_layer: (raster * 25) as f64,
            budget: budget as f64,
        }
    }

    /// Refuses a filter that reaches past [`MAX_REACH`] (a blur's deviation: resvg sizes its
    /// box blur in 32-bit integers, which a deviation of 1e32 overflowed, fuzz finding 12),
    /// or whose work, estimated per primitive as pixels of its region times that primitive's
    /// cost per pixel, overdraws the budget. `scale`: output pixels per unit of the filtered
    /// group's coordinates.
    fn filters(&mut self, group: &usvg::Group, scale: f64) -> Result<(), ImageError> {
        use usvg::filter::Kind;
        for filter in group.filters() {
            let rect = filter.rect();
            let (w, h) = (
                f64::from(rect.width()) * scale,
                f64::from(rect.height()) * scale,
            );
            let pixels = (w * h).min(self.max_layer);
            let (w, h) = (w.min(self.max_layer), h.min(self.max_layer));
            for primitive in filter.primitives() {
                let per_pixel = match primitive.kind() {
                    Kind::GaussianBlur(b) => {
                        filter_reach(b.std_dev_x().get(), b.std_dev_y().get(), scale)?;
                        10.0
                    }
                    Kind::DropShadow(d) => {
                        filter_reach(d.std_dev_x().get(), d.std_dev_y().get(), scale)?;
                        filter_reach(d.dx(), d.dy(), scale)?;
                        12.0
                    }
                    // Shifts become whole-pixel positions in tiny-skia's i32 rectangles (fuzz
                    // finding 15: an offset of 1e91 made one fail to build, and it panicked).
                    Kind::Offset(o) => {
                        filter_reach(o.dx(), o.dy(), scale)?;
                        4.0
                    }
                    Kind::DisplacementMap(d) => {
                        filter_reach(d.scale(), d.scale(), scale)?;
                        4.0
                    }
                    Kind::Morphology(m) => {
                        let side = |r: f32, most: f64| 2.0 * (f64::from(r) * scale).min(most) + 1.0;
                        side(m.radius_x().get(), w) * side(m.radius_y().get(), h)
                    }
                    Kind::ConvolveMatrix(c) => {
                        f64::from(c.matrix().columns()) * f64::from(c.matrix().rows())
                    }
                    Kind::Turbulence(t) => {
                        if t.num_octaves() > MAX_OCTAVES {
                            return Err(ImageError::Undecodable(format!(
                                "SVG turbulence of {} octaves (at most {MAX_OCTAVES})",
                                t.num_octaves()
                            )));
                        }
                        let far = noise_reach(t, rect, (w + h).min(self.max_layer) + 1.0);
                        if far.is_nan() || far > MAX_NOISE_POSITION {
                            return Err(ImageError::Undecodable(format!(
                                "SVG turbulence reaching noise position {far:.0e} \
                                 (at most {MAX_NOISE_POSITION:.0e})"
                            )));
                        }
                        // usvg reads the seed into an i32, saturating; resvg negates a
                        // negative one, which overflows for the least (found reading resvg
                        // after finding 17).
                        if t.seed() == i32::MIN {
                            return Err(ImageError::Undecodable(
                                "SVG turbulence seed at or below -2^31".into(),
                            ));
                        }
                        // Four channels, each a sum of noise over the octaves.
                        32.0 * f64::from(t.num_octaves())
                    }
                    _ => 4.0,
                };
                self.budget -= pixels * per_pixel;
                if self.budget.is_nan() || self.budget < 0.0 {
                    return Err(ImageError::TooLarge(
                        "SVG whose filters would take too long to draw".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `scale`: output pixels per unit of `group`'s absolute (canvas) coordinates, at most.
    fn check(&mut self, group: &usvg::Group, scale: f64) -> Result<(), ImageError> {
        for node in group.children() {
            self.visits += 1;
            if self.visits > MAX_VISITS {
                return Err(ImageError::TooLarge(
                    "SVG whose patterns and clip paths nest too deep".into(),
                ));
            }
            // Output pixels per unit of the node's own coordinates: what its clip paths,
            // masks, patterns and filter images are drawn at.
            let local = scale * max_scale(node.abs_transform());
            match node {
                usvg::Node::Group(g) => {
                    self.filters(g, local)?;
                    self.check(g, scale)?;
                    let mut clip = g.clip_path();
                    while let Some(c) = clip {
                        self.check(c.root(), local * max_scale(c.transform()))?;
                        clip = c.clip_path();
                    }
                    let mut mask = g.mask();
                    while let Some(m) = mask {
                        self.check(m.root(), local)?;
                        mask = m.mask();
                    }
                }
                usvg::Node::Path(p) => {
                    reach(p.abs_stroke_bounding_box(), scale)?;
                    within_numbers(p.stroke_bounding_box())?;
                    within_numbers(p.abs_stroke_bounding_box())?;
                    let paints = p.fill().map(|f| f.paint()).into_iter();
                    for paint in paints.chain(p.stroke().map(|s| s.paint())) {
                        if let usvg::Paint::Pattern(pattern) = paint {
                            let drawn = local * max_scale(pattern.transform());
                            let rect = pattern.rect();
                            let tile =
                                f64::from(rect.width()) * f64::from(rect.height()) * drawn * drawn;
                            if tile.is_nan() || tile > self.max_tile {
                                return Err(ImageError::TooLarge(format!(
                                    "SVG pattern drawn as a tile of {tile:.0e} pixels"
                                )));
                            }
                            self.check(pattern.root(), drawn)?;
                        }
                    }
                }
                usvg::Node::Image(i) => {
                    reach(i.abs_bounding_box(), scale)?;
                    if let usvg::ImageKind::SVG(nested) = i.kind() {
                        let (size, own) = (i.size(), nested.size());
                        let fit = f64::from(
                            (size.width() / own.width()).max(size.height() / own.height()),
                        );
                        self.check(nested.root(), local * fit)?;
                    }
                }
                usvg::Node::Text(_) => {}
            }
            // Filter images and text drawn as paths; patterns and clip paths were checked
            // above at their own scales, and are checked here again at the node's.
            let mut result = Ok(());
            node.subroots(|sub| {
                if result.is_ok() {
                    result = self.check(sub, local);
                }
            });
            result?;
        }
        Ok(())
    }
}

/// The largest noise lattice position (see [`MAX_NOISE_POSITION`]) resvg reaches drawing `t`
/// over the filter region `rect`, at most `across` pixels on a side.
///
/// resvg takes a pixel's position in the filter's units as its offset from the transform's
/// translation over the transform's scale along that axis: never past the rectangle's farthest
/// corner, whatever the rotation (hence the square root of two). Stitching rounds the base
/// frequency to whole cells across the region (at most one more cell, so at most 1 more per
/// unit), and starts the tile's size and wrap point at up to two cells per pixel across, plus
/// rounding; each doubles once per octave, the last included.
fn noise_reach(t: &usvg::filter::Turbulence, rect: usvg::NonZeroRect, across: f64) -> f64 {
    let octaves = t.num_octaves();
    if octaves == 0 {
        return 0.0;
    }
    // At most MAX_OCTAVES (24), checked before.
    let top = f64::from(1u32 << (octaves - 1));
    let farthest = farthest(rect.to_rect()) * std::f64::consts::SQRT_2;
    let mut far = 0.0f64;
    for frequency in [t.base_frequency_x().get(), t.base_frequency_y().get()] {
        let frequency = f64::from(frequency);
        if t.stitch_tiles() {
            far = far.max(farthest * (frequency + 1.0) * top);
            far = far.max(4.0 * top * (across * frequency + 1.5));
        } else {
            far = far.max(farthest * frequency * top);
        }
    }
    far
}

/// The largest factor by which `t` stretches a length.
fn max_scale(t: tiny_skia::Transform) -> f64 {
    let (sx, sy) = t.get_scale();
    f64::from(sx.max(sy))
}

/// Refuses a shape whose box, drawn at `scale` output pixels per unit, reaches past
/// [`MAX_REACH`].
fn reach(bbox: usvg::Rect, scale: f64) -> Result<(), ImageError> {
    within_reach(farthest(bbox) * scale, "with a shape", "from the origin ")
}

/// The largest magnitude of a rectangle's coordinates.
fn farthest(bbox: usvg::Rect) -> f64 {
    [bbox.left(), bbox.top(), bbox.right(), bbox.bottom()]
        .into_iter()
        .map(|v| f64::from(v).abs())
        .fold(0.0, f64::max)
}

/// Refuses a shape whose coordinates, in its own units or the document's, reach
/// [`MAX_PATH_NUMBER`], however small it is drawn: tiny-skia strokes and dashes in those units,
/// and at such magnitudes f32 steps stop moving (fuzz finding 16: a circle of radius 4e33 in a
/// document sized by its content, drawn 26 pixels wide, took 5 s to dash; below 1e20, a few
/// milliseconds).
fn within_numbers(bbox: usvg::Rect) -> Result<(), ImageError> {
    let far = farthest(bbox);
    if far < MAX_PATH_NUMBER {
        return Ok(());
    }
    Err(ImageError::Undecodable(format!(
        "SVG with a shape reaching {far:.0e} units from the origin (at most {MAX_PATH_NUMBER:.0e})"
    )))
}

/// Refuses a filter length (a blur's deviation, a shadow's or an offset's shift, a
/// displacement's scale) that reaches past [`MAX_REACH`] once drawn.
fn filter_reach(x: f32, y: f32, scale: f64) -> Result<(), ImageError> {
    within_reach(f64::from(x.abs().max(y.abs())) * scale, "filter", "")
}

/// The one reach check: `pixels` (NaN included) over [`MAX_REACH`] is refused, named as
/// "SVG {what} reaching N pixels {whence}(at most M)".
fn within_reach(pixels: f64, what: &str, whence: &str) -> Result<(), ImageError> {
    if pixels <= MAX_REACH {
        Ok(())
    } else {
        Err(ImageError::Undecodable(format!(
            "SVG {what} reaching {pixels:.0e} pixels {whence}(at most {MAX_REACH:.0e})"
        )))
    }
}

/// Elements (groups, paths, images, texts) in the drawing, without recursion.
fn element_count(root: &usvg::Group) -> u64 {
    let mut count = 0u64;
    let mut groups = vec![root];
    while let Some(group) = groups.pop() {
        for node in group.children() {
            count += 1;
            if let usvg::Node::Group(g) = node {
                groups.push(g);
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svg(root: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\"?>\n<!-- a logo -->\n{root}<rect width=\"10\" height=\"10\"/></svg>")
            .into_bytes()
    }

    #[test]
    fn recognised_by_its_root_element() {
        assert!(is_svg(&svg("<svg xmlns=\"http://www.w3.org/2000/svg\">")));
        assert!(is_svg(b"\xEF\xBB\xBF  <svg>"));
        assert!(is_svg(
            b"<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\" [<!-- > -->]>\n<svg/>"
        ));
        assert!(!is_svg(b"<html><body><svg></svg></body></html>"));
        assert!(!is_svg(b"plain text mentioning <svg>"));
        assert!(!is_svg(b"<svgfoo>"));
        assert!(!is_svg(b""));
    }

    #[test]
    fn size_from_width_height_or_view_box() {
        let cases = [
            ("<svg width=\"120\" height=\"80px\">", (120, 80)),
            ("<svg width='1in' height='72pt'>", (96, 96)),
            ("<svg viewBox=\"0 0 300 150\">", (300, 150)),
            ("<svg width=\"600\" viewBox=\"0,0,300,150\">", (600, 300)),
            ("<svg height=\"50%\" viewBox=\"0 0 40 20\">", (40, 20)),
            ("<svg data-x=\"a>b\" width=\"7.2\" height=\"3\">", (8, 3)),
            ("<svg>", (100, 100)),
        ];
        for (root, want) in cases {
            assert_eq!(size(&svg(root)).unwrap(), want, "{root}");
        }
        assert!(matches!(
            size(&svg("<svg width=\"1e300\" height=\"1e300\">")),
            Err(ImageError::TooLarge(_))
        ));
        assert!(matches!(
            size(b"<svg width="),
            Err(ImageError::Undecodable(_))
        ));
    }

    #[test]
    fn renders_shapes_at_the_asked_size_and_refuses_entities() {
        let doc = br##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">
            <rect x="0" y="0" width="20" height="20" fill="#ff0000"/>
            <rect x="20" y="0" width="20" height="20" fill="#0000ff" fill-opacity="0.5"/>
            <image href="/etc/passwd" width="40" height="20"/></svg>"##;
        let img = decode(doc, 80, 40).unwrap();
        assert_eq!((img.width, img.height, img.channels), (80, 40, 4));
        let px = |x: usize, y: usize| &img.data[(y * 80 + x) * 4..][..4];
        assert_eq!(px(10, 20), [255, 0, 0, 255]);
        let blue = px(60, 20);
        assert!(
            blue[2] > 250 && blue[0] < 5 && (126..=129).contains(&blue[3]),
            "{blue:?}"
        );
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE svg [<!ENTITY a \"aaaa\">]><svg>&a;</svg>";
        assert!(matches!(
            decode(bomb, 10, 10),
            Err(ImageError::Unsupported(_))
        ));
        assert!(matches!(
            decode(b"<svg><rect", 10, 10),
            Err(ImageError::Undecodable(_))
        ));
        // Many full-canvas shapes at a large size: refused before drawing.
        let mut heavy =
            String::from(r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">"#);
        for i in 0..5000 {
            heavy.push_str(&format!(
                r#"<rect width="10" height="10" fill-opacity="0.{i}"/>"#
            ));
        }
        heavy.push_str("</svg>");
        assert!(decode(heavy.as_bytes(), 10, 10).is_ok());
        assert!(matches!(
            decode(heavy.as_bytes(), 2000, 2000),
            Err(ImageError::TooLarge(_))
        ));
    }

    /// Fuzz finding 10: a stroke 1.5e31 wide made tiny-skia index outside its buffers, and in
    /// a release build the second panic, from a drop while unwinding, aborted the process.
    #[test]
    fn r_fuzz_shapes_reaching_far_past_the_raster_are_refused_before_drawing() {
        let input = include_bytes!("../../../tests/fixtures/svg/stroke-1.5e31.svg");
        let refused = |e| matches!(e, Err(ImageError::Undecodable(m)) if m.contains("reaching"));
        assert!(refused(decode(input, 39, 30)));

        let doc = |body: &str| {
            format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">{body}</svg>"#
            )
        };
        let covered = |body: &str| {
            let img = decode(doc(body).as_bytes(), 40, 20).unwrap();
            img.data.chunks(4).filter(|p| p[3] == 255).count() as f64 / 800.0
        };
        // The same kind of shapes within reach draw: a wide stroke covers the raster, and so
        // does a rectangle reaching 5,000 pixels each way.
        assert!(covered(r#"<path d="M0 10 H40" stroke="navy" stroke-width="1000"/>"#) > 0.99);
        assert!(covered(r#"<rect x="-5000" y="-5000" width="10000" height="10000"/>"#) > 0.99);
        // Far shapes however they get there: their own size, a transform, a pattern's
        // transform (on a tile small enough to be drawn), a clip path, a nested SVG image
        // drawn larger than its own size.
        // (a nested document 1e-5 wide drawn 40 wide: its shape at x = 1 lands 4e6 out)
        let nested = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' \
                      width='0.00001' height='0.00001'%3E%3Crect x='1' width='1' height='1'/%3E\
                      %3C/svg%3E";
        for body in [
            r#"<rect x="2e6" width="1" height="1"/>"#.to_string(),
            r#"<g transform="scale(1e5)"><rect x="100" width="1" height="1"/></g>"#.into(),
            r#"<pattern id="p" width="1e-5" height="1e-5" patternUnits="userSpaceOnUse"
                 patternTransform="scale(1e7)"><rect width="1" height="1"/></pattern>
               <rect width="40" height="20" fill="url(#p)"/>"#
                .into(),
            r#"<clipPath id="c" transform="scale(1e7)"><rect width="1" height="1"/></clipPath>
               <rect width="40" height="20" clip-path="url(#c)"/>"#
                .into(),
            format!(r#"<image width="40" height="20" href="{nested}"/>"#),
        ] {
            assert!(refused(decode(doc(&body).as_bytes(), 40, 20)), "{body}");
        }
        // Fuzz finding 11: an arc to a point 1e48 away, which kurbo would have drawn as about
        // 1e8 curves while the document was parsed; refused before usvg reads it, also when
        // the number is written with character references.
        let oom =
            include_bytes!("../../../fuzz/corpus/svg/oom-75bbe196df5a7d7e074131af3d7631e42a6feedb");
        let path_number = |e| matches!(e, Err(ImageError::Undecodable(m)) if m.contains("(`d`)"));
        assert!(path_number(decode(oom, 100, 100)));
        for d in [
            "M0 0A1 1 0 0 0 1e15 0",
            "M0 0L&#49;e16 0",
            "M0 0L1.5.5 100000000000000000",
        ] {
            let body = format!(r#"<path d="{d}" stroke="red"/>"#);
            assert!(path_number(decode(doc(&body).as_bytes(), 40, 20)), "{d}");
        }
        for d in [
            "M0 0A1 1 0 0 0 40 20",
            "M0 0L999999999999999e-14 .5.5 2E3-1e-300z",
        ] {
            let body = format!(r#"<path d="{d}" stroke="red"/>"#);
            assert!(decode(doc(&body).as_bytes(), 40, 20).is_ok(), "{d}");
        }
        assert_eq!(largest_number("M1.5.5e2-3E+1 1e"), 50.0);
        assert!(largest_number("1e400").is_infinite());

        // A pattern's tile is drawn whole: scaled 3,000 times, this 40x20 one asked for 28.8 GB
        // and the failed allocation aborted the process. At the scale it is used it draws.
        let pattern = |scale: u32| {
            doc(&format!(
                r#"<pattern id="p" width="40" height="20" patternUnits="userSpaceOnUse"
                     patternTransform="scale({scale})"><rect width="1" height="1"/></pattern>
                   <rect width="40" height="20" fill="url(#p)"/>"#
            ))
        };
        assert!(matches!(
            decode(pattern(3000).as_bytes(), 40, 20),
            Err(ImageError::TooLarge(m)) if m.contains("tile")
        ));
        assert!(decode(pattern(1).as_bytes(), 40, 20).is_ok());
    }

    /// Fuzz finding 16: a document without a height or `viewBox` is sized by usvg from its
    /// content, so a circle of radius 4e33 was drawn 26 pixels wide and passed the reach
    /// check, while tiny-skia dashed its stroke in the document's units for seconds.
    #[test]
    fn r_fuzz_shapes_of_absurd_size_are_refused_however_small_they_are_drawn() {
        let input = include_bytes!(
            "../../../fuzz/corpus/svg/timeout-4a477bbb0d397b19dcab98cef1b608cf2fcf7af9"
        );
        let refused = |e| matches!(e, Err(ImageError::Undecodable(m)) if m.contains("units"));
        assert!(refused(decode(input, 26, 64)));
        let circle = |r: &str, extra: &str| {
            format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="40"><circle cx="3" r="{r}"
                   stroke="navy" stroke-width=".2" stroke-dasharray="1.2" {extra}/></svg>"#
            )
        };
        for (r, extra) in [
            ("4e33", ""),
            ("2e15", ""),
            ("1e20", r#"stroke-linecap="round""#),
            // In the document's units: a circle of radius 1e10 scaled 1e6 times.
            ("1e10", r#"transform="scale(1e6)""#),
        ] {
            assert!(
                refused(decode(circle(r, extra).as_bytes(), 26, 64)),
                "{r} {extra}"
            );
        }
        // Refused before usvg reads the document: usvg strokes every shape to find its
        // bounding box, and a circle of radius 7e35 took seconds (a slow input from the `svg`
        // target); the check on usvg's tree would only have come after.
        let early = decode(circle("7e35", "").as_bytes(), 26, 64);
        assert!(
            matches!(&early, Err(ImageError::Undecodable(m)) if m.contains("(`r`)")),
            "{early:?}"
        );
        // Large but within bounds: drawn, the circle's stroke crossing the raster.
        let img = decode(circle("1e12", "").as_bytes(), 26, 64).unwrap();
        assert_eq!((img.width, img.height), (26, 64));
    }

    /// A 40x20 document with a 30x10 teal rectangle at (5, 5), drawn through `filter` (the
    /// primitives of a `<filter>`) at `width` x `height`.
    fn filtered(filter: &str, width: u32, height: u32) -> Result<Raster, ImageError> {
        let doc = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">
               <filter id="f">{filter}</filter>
               <rect x="5" y="5" width="30" height="10" fill="teal" filter="url(#f)"/></svg>"#
        );
        decode(doc.as_bytes(), width, height)
    }

    /// The alpha of pixel (`x`, `y`) of a drawing.
    fn alpha(img: &Raster, x: usize, y: usize) -> u8 {
        img.data[(y * img.width as usize + x) * 4 + 3]
    }

    /// Fuzz finding 12: a blur deviation of 1e32 overflowed resvg's 32-bit box sizes. Filters
    /// are checked for reach like shapes, and their work is counted before drawing: without
    /// the count, the morphology below would read about 7e13 pixels (hours), and a billion
    /// octaves of turbulence would never finish.
    #[test]
    fn r_fuzz_filters_out_of_reach_or_too_costly_are_refused_before_drawing() {
        let input = include_bytes!(
            "../../../fuzz/corpus/svg/crash-264fb5c95190d08285b2e1d5ae4155f738e66675"
        );
        let refused = |e| matches!(e, Err(ImageError::Undecodable(m)) if m.contains("filter"));
        assert!(refused(decode(input, 64, 64)));
        // Fuzz finding 15: an feOffset of 1e91.
        let input = include_bytes!(
            "../../../fuzz/corpus/svg/crash-b24fcd6134974438c6b95ff915c02eba989e0cb6"
        );
        assert!(refused(decode(input, 64, 64)));

        for far in [
            r#"<feGaussianBlur stdDeviation="2e6"/>"#,
            r#"<feGaussianBlur stdDeviation="1 1e32"/>"#,
            r#"<feDropShadow stdDeviation="1" dx="3e6"/>"#,
            r#"<feOffset dy="3e6"/>"#,
            r#"<feOffset dx="-1e91"/>"#,
            r#"<feDisplacementMap in2="SourceGraphic" scale="1e30"/>"#,
        ] {
            assert!(refused(filtered(far, 40, 20)), "{far}");
        }
        let octaves = |e| matches!(e, Err(ImageError::Undecodable(m)) if m.contains("octaves"));
        let noise = |n: u32| format!(r#"<feTurbulence baseFrequency="0.05" numOctaves="{n}"/>"#);
        assert!(octaves(filtered(&noise(1_000_000_000), 40, 20)));
        assert!(octaves(filtered(&noise(25), 40, 20)));
        // Work: a morphology of radius 1,000 drawn 4,000 pixels wide (its region 3600x1200)
        // reads 7199x2399 pixels for each of its 4.3 million.
        let costly = |e| matches!(e, Err(ImageError::TooLarge(m)) if m.contains("filters"));
        let morphology = r#"<feMorphology operator="dilate" radius="1000"/>"#;
        assert!(costly(filtered(morphology, 4000, 2000)));
        assert!(costly(filtered(&noise(24), 12000, 6000)));

        // The same filters within reach and budget draw, and do what they do.
        let blurred = filtered(r#"<feGaussianBlur stdDeviation="3"/>"#, 40, 20).unwrap();
        assert!(
            alpha(&blurred, 3, 10) > 0,
            "a blur spreads past the shape's edge"
        );
        let shifted = filtered(r#"<feOffset dx="-5"/>"#, 40, 20).unwrap();
        assert_eq!(
            alpha(&shifted, 2, 10),
            255,
            "an offset moves the shape left"
        );
        assert_eq!(alpha(&shifted, 33, 10), 0, "and off its right end");
        let dilated = filtered(morphology, 40, 20).unwrap();
        assert_eq!(alpha(&dilated, 3, 10), 255, "a dilation fills its region");
        let noisy = filtered(&noise(24), 40, 20).unwrap();
        assert!(noisy.data.chunks(4).any(|p| p[3] != 0));
    }

    /// Fuzz findings 17 and 18: numbers that become 32-bit integer arithmetic in resvg and
    /// usvg, and overflow it (a panic where overflow is checked, as in these tests and the fuzz
    /// build; wrapped values elsewhere). Turbulence: a base frequency of 5e9, or a stitched
    /// tile whose size in noise cells doubles 24 times; a convolution kernel whose sides
    /// multiply past `u32` while usvg reads the document. Without the checks each case panics
    /// in resvg or usvg.
    #[test]
    fn r_fuzz_filter_numbers_past_32_bit_arithmetic_are_refused() {
        let refused =
            |e, what: &str| matches!(e, Err(ImageError::Undecodable(m)) if m.contains(what));
        let input = include_bytes!(
            "../../../fuzz/corpus/svg/crash-61b3d9f87391e6d241421f34d93219aead8a6933"
        );
        assert!(refused(decode(input, 30, 35), "turbulence"));
        let input = include_bytes!(
            "../../../fuzz/corpus/svg/crash-9ac0dd2f37fc94e28451e26e51360388a54948f1"
        );
        assert!(refused(decode(input, 30, 60), "convolution"));

        let noise = |attributes: &str| format!("<feTurbulence {attributes}/>");
        for far in [
            r#"baseFrequency="5e9""#,
            r#"baseFrequency="0.05 3e9""#,
            r#"baseFrequency="2e6" numOctaves="12""#,
            r#"baseFrequency="0.5" numOctaves="24" stitchTiles="stitch""#,
            r#"baseFrequency="0.05" seed="-3e9""#,
        ] {
            assert!(
                refused(filtered(&noise(far), 400, 200), "turbulence"),
                "{far}"
            );
        }
        let kernel = |order: &str| {
            format!(r#"<feConvolveMatrix order="{order}" kernelMatrix="0 0 0 0 1 0 0 0 0"/>"#)
        };
        for far in ["70000", "65536 65536", "4097 1", "3 5e9"] {
            assert!(
                refused(filtered(&kernel(far), 40, 20), "convolution"),
                "{far}"
            );
        }

        // Within bounds: drawn. Noise, stitched or not, over the shape's region only; a kernel
        // that keeps each pixel as it was.
        for within in [
            r#"baseFrequency="0.05" numOctaves="4" stitchTiles="stitch""#,
            r#"baseFrequency="1999.7" numOctaves="12" type="fractalNoise""#,
            r#"baseFrequency="0.05" seed="-2147483520""#,
        ] {
            let img = filtered(&noise(within), 40, 20).unwrap();
            assert!(img.data.chunks(4).any(|p| p[3] != 0), "{within}");
            assert_eq!(alpha(&img, 0, 0), 0, "{within}: outside the filter region");
        }
        let kept = filtered(&kernel("3"), 40, 20).unwrap();
        assert_eq!((alpha(&kept, 20, 10), alpha(&kept, 1, 1)), (255, 0));
    }

    /// Fuzz finding 14: a pattern whose content inherits `fill="url(#p)"` naming that very
    /// pattern made usvg convert the pattern inside itself until the stack overflowed, which
    /// aborts the process. The class: any chain of references that comes back to where it
    /// started (paints, masks, markers, `href`s, however the property is set). Each is refused
    /// before usvg reads the document; without the check every document in `circular` aborts
    /// this test binary or never returns.
    #[test]
    fn r_fuzz_circular_references_are_refused_before_usvg_reads_them() {
        let input = include_bytes!(
            "../../../fuzz/corpus/svg/crash-b10592837e8ae6ee82a42fa9e347a99e937e6f64"
        );
        let refused = |e: Result<Raster, ImageError>| matches!(e, Err(ImageError::Undecodable(m)) if m.contains("circular reference"));
        assert!(refused(decode(input, 64, 64)));
        let svg = |attrs: &str, body: &str| {
            format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg"
                   xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10" {attrs}>
                   {body}</svg>"#
            )
        };
        let tile = |id: &str, attrs: &str, content: &str| {
            format!(
                r#"<pattern id="{id}" width="4" height="4" patternUnits="userSpaceOnUse"
                   {attrs}>{content}</pattern>"#
            )
        };
        let square = r#"<rect width="2" height="2"/>"#;
        let fill_p = r#"<rect width="10" height="10" fill="url(#p)"/>"#;
        let circular = [
            // Inherited from the root, from a stylesheet, from a group around the pattern,
            // from a `style` attribute, and declared `inherit`.
            svg(r#"fill="url(#p)""#, &(tile("p", "", square) + fill_p)),
            svg(
                "",
                &(r#"<style>svg { fill: url(#p) }</style>"#.to_owned()
                    + &tile("p", "", square)
                    + fill_p),
            ),
            svg(
                "",
                &format!(r#"<g fill="url(#p)">{}</g>{fill_p}"#, tile("p", "", square)),
            ),
            svg(
                "",
                &format!(
                    r#"<g style="stroke:url(#p)">{}</g>{fill_p}"#,
                    tile("p", "", square)
                ),
            ),
            svg(
                r#"fill="url(#p)""#,
                &(tile("p", "", r#"<rect width="2" height="2" fill="inherit"/>"#) + fill_p),
            ),
            // The fill and the id with namespace prefixes usvg reads as plain ones.
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:s="http://www.w3.org/2000/svg"
               width="10" height="10" s:fill="url(#p)"><pattern xml:id="p" width="4"
               height="4" patternUnits="userSpaceOnUse"><rect width="2" height="2"/></pattern>
               <rect width="10" height="10"/></svg>"#
                .to_owned(),
            // Three patterns in a ring.
            svg(
                "",
                &(tile("p", "", r#"<rect width="2" height="2" fill="url(#q)"/>"#)
                    + &tile("q", "", r#"<rect width="2" height="2" fill="url(#r)"/>"#)
                    + &tile("r", "", r#"<rect width="2" height="2" fill="url(#p)"/>"#)
                    + fill_p),
            ),
            // A pattern drawing a mask that paints with the pattern.
            svg(
                "",
                &(tile("p", "", r#"<rect width="2" height="2" mask="url(#m)"/>"#)
                    + r#"<mask id="m"><rect width="2" height="2" fill="url(#p)"/></mask>"#
                    + fill_p),
            ),
            // A marker inherited into a pattern whose marker paints with it.
            svg(
                "",
                &(tile(
                    "p",
                    r#"marker-end="url(#k)""#,
                    r#"<path d="M0 0L2 2" stroke="red"/>"#,
                ) + r#"<marker id="k"><rect width="2" height="2" fill="url(#p)"/></marker>"#
                    + fill_p),
            ),
            // Patterns whose `href`s name each other (usvg looped for ever).
            svg(
                "",
                &(tile("p", r##"xlink:href="#q""##, "")
                    + &tile("q", r##"xlink:href="#r""##, "")
                    + &tile("r", r##"xlink:href="#q""##, "")
                    + fill_p),
            ),
            // Gradients whose `href`s name each other, none with stops.
            svg(
                "",
                r##"<linearGradient id="a" xlink:href="#b"/><linearGradient id="b"
                    xlink:href="#c"/><linearGradient id="c" xlink:href="#b"/>
                    <rect width="10" height="10" fill="url(#a)"/>"##,
            ),
            // A `use` in the pattern drawing an element that paints with the pattern.
            svg(
                "",
                &(tile("p", "", r##"<use href="#s"/>"##)
                    + r#"<rect id="s" width="2" height="2" fill="url(#p)"/>"#
                    + fill_p),
            ),
        ];
        for doc in &circular {
            assert!(refused(decode(doc.as_bytes(), 10, 10)), "{doc}");
        }
        // Nested past usvg's own limit: refused, not walked off the end of the stack.
        let deep = svg("", &("<g>".repeat(5000) + &"</g>".repeat(5000)));
        let nested = |e| matches!(e, Err(ImageError::Undecodable(m)) if m.contains("nested"));
        assert!(nested(decode(deep.as_bytes(), 10, 10)));

        // The same references without a ring draw: each of these fills the top-left corner of
        // every 4x4 tile red (a 2x2 square) and leaves the rest clear.
        let red = r#"<rect width="2" height="2" fill="red"/>"#;
        let fine = [
            svg(r#"fill="url(#p)""#, &(tile("p", "", red) + fill_p)),
            // An `href` to itself is ignored.
            svg(
                r#"fill="url(#p)""#,
                &(tile("p", r##"href="#p""##, red) + fill_p),
            ),
            svg(
                "",
                &(r#"<style>.a { fill: url(#p) } rect { fill: red }</style>"#.to_owned()
                    + &tile("p", "", square)
                    + r#"<rect class="a" width="10" height="10" style="fill:url(#p)"/>"#),
            ),
            svg(
                r#"fill="url(#q)""#,
                &(tile("q", "", red) + &tile("p", r##"xlink:href="#q""##, "") + fill_p),
            ),
            svg(
                "",
                &(tile("p", "", r##"<use href="#s"/>"##)
                    + r#"<defs><rect id="s" width="2" height="2" fill="red"/></defs>"#
                    + r##"<use href="#t"/><g id="t">"##
                    + fill_p
                    + "</g>"),
            ),
        ];
        for doc in &fine {
            let img = decode(doc.as_bytes(), 10, 10).unwrap_or_else(|e| panic!("{doc}: {e}"));
            let px = |x: usize, y: usize| &img.data[(y * 10 + x) * 4..][..4];
            assert_eq!(px(1, 1), [255, 0, 0, 255], "{doc}");
            assert_eq!(px(5, 5), [255, 0, 0, 255], "{doc}");
            assert_eq!(px(3, 3)[3], 0, "{doc}");
        }
        // Documents as editors write them, with every kind of reference and no ring: an
        // icon sprite (symbols drawn by `use`, fills from classes), gradients and patterns
        // inheriting through `href` chains, a clip path, a mask and markers.
        let editors = [
            r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
               width="40" height="20"><style>.a{fill:url(#g)}.b{stroke:url(#h);fill:none}</style>
               <defs><linearGradient id="base"><stop offset="0" stop-color="red"/>
               <stop offset="1" stop-color="blue"/></linearGradient>
               <linearGradient id="g" xlink:href="#base" x2="0" y2="1"/>
               <linearGradient id="h" xlink:href="#g"/>
               <symbol id="dot" viewBox="0 0 10 10"><circle class="a" cx="5" cy="5" r="4"/>
               <circle class="b" cx="5" cy="5" r="2"/></symbol></defs>
               <use xlink:href="#dot" width="20" height="20"/>
               <use xlink:href="#dot" x="20" width="20" height="20"/></svg>"##,
            r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
               width="40" height="20" fill="url(#dots)"><defs>
               <pattern id="base" width="4" height="4" patternUnits="userSpaceOnUse">
               <circle cx="2" cy="2" r="1" fill="teal" stroke="url(#grad)"/></pattern>
               <pattern id="dots" xlink:href="#base" patternTransform="scale(2)"/>
               <radialGradient id="grad"><stop offset="0" stop-color="gold"/></radialGradient>
               <clipPath id="c"><rect width="30" height="20"/></clipPath>
               <mask id="m"><rect width="40" height="20" fill="white"/></mask>
               <marker id="arrow" markerWidth="4" markerHeight="4"><path d="M0 0L4 2L0 4z"
               fill="url(#grad)"/></marker></defs>
               <g clip-path="url(#c)" mask="url(#m)"><rect width="40" height="20"/>
               <path d="M2 18L38 2" stroke="url(#grad)" marker-end="url(#arrow)"/></g></svg>"##,
        ];
        for doc in editors {
            let img = decode(doc.as_bytes(), 40, 20).unwrap_or_else(|e| panic!("{doc}: {e}"));
            assert!(img.data.chunks(4).any(|p| p[3] == 255), "{doc}");
        }
    }
}
