//! The animated path's steps: an animated GIF or WebP source served as an animated WebP. Owns the
//! decision (`wanted`), putting each decoded frame through the same per-frame work as the still
//! path (colour, orientation, rotate/flip, fit, effects) and the work budget; the frame decoders
//! and libwebp's animation encoder are `anim.rs`'s. Must not change what the still steps do, must
//! not encode any other animated format (no animated AVIF/PNG), and must never keep full-size
//! source frames around: each frame is shrunk to its output size as soon as it is decoded.
//!
//! Budget (both counted in pixel-frames, frames x pixels per frame):
//! - source side, `MAX_SOURCE_PIXEL_FRAMES`, from the probe before anything is decoded;
//! - output side, `MAX_OUTPUT_PIXEL_FRAMES`, once the first frame shows the output size.
//!
//! Over either budget the request falls back to the first frame as a still image (what every
//! animated source got before this module existed) instead of failing: a CDN should answer
//! with a picture, and the fallback costs one frame. `max_animation_frames` stays a hard
//! `TooLarge`, enforced by the probe and again while decoding.

use crate::imaging::animation::{self, Frame};
use crate::imaging::color::to_srgb;
use crate::imaging::orientation::{self, Orientation};
use crate::imaging::raster::drop_opaque_alpha;
use crate::imaging::{gif, webp, Raster, SourceFormat};
use crate::pipeline::context::{Animation, Ctx};
use crate::pipeline::error::PipelineError;
use crate::pipeline::format::{animates_as_webp, encoder_quality};
use crate::pipeline::{effects, geometry, watermark};
use crate::spec::{Gravity, OutputFormat};
use std::borrow::Cow;

/// Decoding work we accept for one animation: 200 M pixel-frames is e.g. 500 frames of
/// 640x625, about 1-2 s of GIF decoding on one core.
pub(in crate::pipeline) const MAX_SOURCE_PIXEL_FRAMES: u64 = 200_000_000;

/// Output work (resize + WebP encode) and memory (output frames are held until the encoder
/// runs, 4 bytes a pixel at most, so 400 MB worst case) we accept for one animation.
pub(in crate::pipeline) const MAX_OUTPUT_PIXEL_FRAMES: u64 = 100_000_000;

/// True when this request takes the animated path: an animated GIF/WebP source, `anim` on,
/// an output that will be WebP, no `trim=border` (found on one picture, so the first frame
/// is what it trims), and a source within the decoding budget.
pub(in crate::pipeline) fn wanted(ctx: &Ctx<'_>) -> Result<bool, PipelineError> {
    wanted_within(ctx, MAX_SOURCE_PIXEL_FRAMES)
}

/// `wanted` with the source budget as a parameter, so tests can exercise the fallback.
pub(in crate::pipeline) fn wanted_within(
    ctx: &Ctx<'_>,
    budget: u64,
) -> Result<bool, PipelineError> {
    let probe = ctx.probe()?;
    if probe.frames <= 1
        || !ctx.spec.anim
        || ctx.spec.trim_border.is_some()
        || !matches!(probe.format, SourceFormat::Gif | SourceFormat::Webp)
        || !animates_as_webp(ctx.spec.format, ctx.accepts, probe.format)
    {
        return Ok(false);
    }
    let work = u64::from(probe.frames) * u64::from(probe.width) * u64::from(probe.height);
    if work > budget {
        log::debug!("animation of {work} pixel-frames over budget {budget}: first frame only");
        return Ok(false);
    }
    Ok(true)
}

/// Animated step 1: decode every frame and take each straight to its output size. Its
/// timing includes the per-frame resize and effects, which cannot be separated from decoding
/// without holding full-size frames.
pub(in crate::pipeline) fn decode_step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    decode_within(ctx, MAX_OUTPUT_PIXEL_FRAMES)
}

/// `decode_step` with the output budget as a parameter, so tests can exercise the fallback.
pub(in crate::pipeline) fn decode_within(
    ctx: &mut Ctx<'_>,
    budget: u64,
) -> Result<(), PipelineError> {
    let probe = ctx.probe()?;
    let input = ctx.input;
    let (frames, loop_count, icc) = animation::frames(input, &probe, ctx.limits.max_source_pixels)?;
    let icc = ctx.meta.icc.clone().or(icc);
    let canvas = u64::from(probe.width) * u64::from(probe.height);
    let mut out: Vec<Frame> = Vec::new();
    let mut gravity = None;
    let overlay = super::watermark::prepare(ctx)?;
    for (i, frame) in frames.enumerate() {
        let n = i as u64 + 1;
        if n > u64::from(ctx.limits.max_animation_frames) {
            return Err(PipelineError::TooLarge(format!(
                "animation has more than {} frames",
                ctx.limits.max_animation_frames
            )));
        }
        if n * canvas > MAX_SOURCE_PIXEL_FRAMES {
            return Err(PipelineError::TooLarge(
                "animation decodes to more frames than its header counted".into(),
            ));
        }
        let frame = match frame {
            Ok(f) => f,
            // Like a browser, play what decodes: a broken later frame ends the animation.
            Err(e) if !out.is_empty() => {
                log::debug!("animation cut at frame {n}: {e}");
                break;
            }
            Err(e) => return Err(animation::image_err(e).into()),
        };
        let duration_ms = gif::delay_ms(&frame, probe.format);
        let buffer = frame.into_buffer();
        if buffer.dimensions() != (probe.width, probe.height) {
            return Err(PipelineError::Undecodable(
                "animation frame differs from its canvas".into(),
            ));
        }
        let raster = Raster::new(probe.width, probe.height, 4, buffer.into_raw());
        let raster = per_frame(raster, ctx, icc.as_deref(), &mut gravity, overlay.as_ref())?;
        let output_work =
            u64::from(raster.width) * u64::from(raster.height) * u64::from(probe.frames);
        out.push(Frame {
            raster,
            duration_ms,
        });
        if n == 1 && output_work > budget {
            log::debug!("animated output of {output_work} pixel-frames over {budget}: still");
            break;
        }
    }
    if out.is_empty() {
        return Err(PipelineError::Undecodable(
            "animation without frames".into(),
        ));
    }
    ctx.meta.icc_applied = true;
    ctx.animation = Some(Animation {
        frames: out,
        loop_count,
    });
    Ok(())
}

/// The still path's per-image steps, in the same order, for one full-canvas RGBA frame.
/// `gravity` is where every frame's crop goes: for `gravity=auto` the first frame decides it
/// (`attention`), so the window does not wander from frame to frame.
fn per_frame(
    mut img: Raster,
    ctx: &Ctx<'_>,
    icc: Option<&[u8]>,
    gravity: &mut Option<Gravity>,
    overlay: Option<&watermark::Prepared>,
) -> Result<Raster, PipelineError> {
    if let Some(icc) = icc {
        to_srgb(&mut img, icc);
    }
    img = orientation::apply(img, Orientation::from_exif(ctx.meta.orientation));
    img = geometry::rotate_flip(img, ctx.spec);
    // Frames are decoded at full size, so the frame itself is the upright original `fit`
    // sizes from (no shrink-on-load here).
    let size = (img.width, img.height);
    let place = *gravity.get_or_insert_with(|| {
        geometry::auto_focus(&img, size, ctx.spec, None).unwrap_or(ctx.spec.gravity)
    });
    img = geometry::fit_from(Cow::Owned(img), size, ctx.spec, None, place, ctx.limits)?;
    img = effects::apply(img, ctx.spec);
    if let Some(overlay) = overlay {
        img = watermark::apply(img, overlay, ctx.limits)?;
    }
    img = super::border::frame(img, ctx.spec, ctx.limits)?;
    img = super::flatten::on_background(img, ctx.spec.background);
    // An opaque frame held as RGB costs a quarter less memory until it is encoded.
    Ok(drop_opaque_alpha(img))
}

/// Animated step 2: encode the frames as an animated WebP (one frame left by the budget
/// fallback: a still WebP). Leaves the first frame in `ctx.raster` for the reported size.
pub(in crate::pipeline) fn encode_step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let anim = ctx
        .animation
        .take()
        .ok_or_else(|| PipelineError::Encode("internal: no frames decoded".into()))?;
    let quality = encoder_quality(OutputFormat::Webp, ctx.spec.quality);
    let effort = super::encode::effort(ctx.spec);
    ctx.output = if anim.frames.len() == 1 {
        webp::encode(&anim.frames[0].raster, quality, effort)?
    } else {
        webp::encode_animation(&anim.frames, anim.loop_count, quality, effort)?
    };
    ctx.format = Some(OutputFormat::Webp);
    ctx.raster = anim
        .frames
        .into_iter()
        .next()
        .map(|f| f.raster)
        .ok_or_else(|| PipelineError::Encode("animation without frames".into()))?;
    Ok(())
}
