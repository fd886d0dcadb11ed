//! Entry points for the fuzz targets in `fuzz/` into the image layer's private readers (the
//! HEIF container, EXIF and container metadata). Compiled only with the `fuzzing` feature (and
//! in unit tests); it holds no logic of its own, only calls the readers the way the steps do,
//! and must never be reached by a product build.

use super::avif::heif::{Coded, Heif};
use super::{avif, exif as tiff, heic, jpeg, meta, png, svg, webp};

/// Everything the pipeline reads from an AVIF container before decoding: the primary item,
/// what it is made of, its properties, alpha, EXIF, and the data of every item it names; and
/// libheif's reading of the same bytes as a HEIC (its header, ICC and EXIF, no pixels).
pub fn heif(input: &[u8]) {
    let _ = heic::probe(input);
    let _ = avif::probe(input);
    let Ok(heif) = Heif::parse(input) else {
        return;
    };
    let primary = heif.primary();
    let mut ids = vec![primary];
    if let Ok(Coded::Grid(grid)) = heif.coded(primary) {
        ids.extend(grid.tiles.iter().take(16));
    }
    if let Some(alpha) = heif.alpha_of(primary) {
        let _ = heif.premultiplied(primary, alpha);
        let _ = heif.coded(alpha);
        ids.push(alpha);
    }
    for id in ids {
        let _ = heif.item_data(id);
        if let Ok(props) = heif.props(id) {
            let _ = props.exif_orientation();
        }
    }
    if let Some(tiff) = heif.exif_of(primary) {
        exif(tiff);
    }
}

/// The container walkers (JPEG segments, WebP chunks, PNG `eXIf`) on `input`, then the
/// EXIF readers and writers on every TIFF block they find and on `input` itself.
pub fn container_metadata(input: &[u8]) {
    let mut blocks = vec![input.to_vec()];
    for found in [jpeg::read_meta(input), webp::read_meta(input)] {
        let _ = meta::check_icc(found.icc.as_deref());
        blocks.extend(found.exif);
    }
    blocks.extend(png::read_exif(input));
    for tiff in blocks {
        exif(&tiff);
    }
}

/// Smallest valid outputs to splice EXIF into (what the encoders would have written).
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xFF\xD9";
const WEBP: &[u8] =
    b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\0IEND\xaeB`\x82";

/// One EXIF TIFF block through every reader and writer `metadata=keep|copyright` uses.
pub fn exif(tiff: &[u8]) {
    let _ = tiff::orientation(tiff);
    let Some(kept) = tiff::copy_bounded(tiff) else {
        return;
    };
    let kept_patched = tiff::patch_for_upright(&kept, 640, 480);
    if let Some(block) = &kept_patched {
        // The pixels are upright by now: a block that still says otherwise would make
        // viewers turn them a second time.
        let orientation = tiff::orientation(block);
        assert!(
            matches!(orientation, None | Some(1)),
            "kept {orientation:?}"
        );
    }
    let copyright = tiff::copyright_only(&kept);
    for block in [kept_patched, copyright].into_iter().flatten() {
        let _ = jpeg::write_exif(JPEG, &block);
        let _ = webp::write_exif(WEBP, &block);
        let _ = png::write_exif(PNG, &block);
    }
}

/// Longest side an SVG is drawn at here: the drawing is resvg's work per pixel, and the parse
/// (roxmltree, usvg's tree, its CSS and paths) is what this target is for.
const SVG_SIDE: f64 = 64.0;

/// An SVG original as the probe and decode steps read it: the root-tag scanner (is it SVG, its
/// size), then usvg's parse and resvg's drawing, at the document's aspect within 64 pixels
/// a side (the decode step draws at the output size, or a fraction of the document's); the
/// policy checks (entities refused, drawing work bounded) are `decode`'s own.
pub fn svg_document(input: &[u8]) {
    if !svg::is_svg(input) {
        return;
    }
    let Ok((w, h)) = svg::size(input) else {
        return;
    };
    let scale = (SVG_SIDE / f64::from(w.max(h))).min(1.0);
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    if let Ok(raster) = svg::decode(input, side(w), side(h)) {
        assert_eq!((raster.width, raster.height), (side(w), side(h)));
        assert_eq!(raster.data.len() as u64, u64::from(side(w) * side(h)) * 4);
    }
}
