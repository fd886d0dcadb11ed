//! Animated GIF and WebP frames, decoded through the `image` crate with its allocation limits
//! set from the probed canvas; a frame with the time it is shown. (The WebP animation encoder
//! is `webp::encode_animation`.)

use super::error::ImageError;
use super::format::{Probe, SourceFormat};
use super::meta::check_icc;
use super::raster::Raster;
use image::{AnimationDecoder, ImageDecoder};
use std::io::Cursor;

/// One output frame and how long it is shown.
pub struct Frame {
    pub raster: Raster,
    pub duration_ms: u32,
}

/// The frames of an animated GIF or WebP, decoded lazily at full canvas size, with the loop
/// count (0 = forever) and the ICC profile the GIF carries (a WebP's comes from our own walker,
/// `webp::read_meta`: image-webp allocates an `ICCP` chunk by the size its header claims before
/// reading it, and a 373-byte file asked for 1.5 GB).
pub(crate) fn frames<'a>(
    input: &'a [u8],
    probe: &Probe,
    max_source_pixels: u64,
) -> Result<(image::Frames<'a>, u16, Option<Vec<u8>>), ImageError> {
    Ok(match probe.format {
        SourceFormat::Gif => {
            let mut d =
                image::codecs::gif::GifDecoder::new(Cursor::new(input)).map_err(image_err)?;
            // The GIF reader has already read its ICC extension's sub-blocks: bounded by the
            // input.
            let icc = d.icc_profile().ok().flatten().filter(|p| !p.is_empty());
            check_icc(icc.as_deref())?;
            let (frames, loop_count) = open(d, probe, max_source_pixels)?;
            (frames, loop_count, icc)
        }
        SourceFormat::Webp => {
            let mut d =
                image::codecs::webp::WebPDecoder::new(Cursor::new(input)).map_err(image_err)?;
            // Browsers and libwebp start from a transparent canvas and ignore the ANIM chunk's
            // background colour; so does the still path (libwebp's first frame).
            d.set_background_color(image::Rgba([0, 0, 0, 0]))
                .map_err(image_err)?;
            // `ANMF` chunks without the `VP8X` animation flag: image-webp's frame reader
            // asserts the flag (a panic), so such a file is refused here.
            if !d.has_animation() {
                return Err(ImageError::Undecodable(
                    "WebP animation frames without the animation flag".into(),
                ));
            }
            let (frames, loop_count) = open(d, probe, max_source_pixels)?;
            (frames, loop_count, None)
        }
        other => {
            return Err(ImageError::Unsupported(format!(
                "animated {other:?} output"
            )))
        }
    })
}

/// Limits for the `image` decoders (canvas size, allocations a few canvases deep), then the
/// lazy frame iterator and the loop count.
fn open<'a, D: ImageDecoder + AnimationDecoder<'a>>(
    mut d: D,
    probe: &Probe,
    max_source_pixels: u64,
) -> Result<(image::Frames<'a>, u16), ImageError> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(probe.width);
    limits.max_image_height = Some(probe.height);
    let canvas = max_source_pixels.min(u64::from(probe.width) * u64::from(probe.height));
    limits.max_alloc = Some(canvas.saturating_mul(16).saturating_add(16 << 20));
    d.set_limits(limits).map_err(image_err)?;
    let loop_count = match d.loop_count() {
        image::metadata::LoopCount::Infinite => 0,
        image::metadata::LoopCount::Finite(n) => u16::try_from(n.get()).unwrap_or(u16::MAX),
    };
    Ok((d.into_frames(), loop_count))
}

pub(crate) fn image_err(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(e) => ImageError::TooLarge(e.to_string()),
        image::ImageError::Unsupported(e) => ImageError::Unsupported(e.to_string()),
        e => ImageError::Undecodable(format!("animation: {e}")),
    }
}
