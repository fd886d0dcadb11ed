//! Step `probe`: name the container and read its header (size, frames, the metadata the
//! decoder needs up front) into the context, with the source-size limits enforced. The header
//! reading is `imaging::probe`'s; the limits are the pipeline's.

use crate::imaging::meta::SourceMeta;
use crate::imaging::{probe, Probe};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::limits::Limits;

/// Pipeline step: fills `ctx.probe` and the container metadata the decoder needs up front.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let (probe, meta) = probe_with_meta(ctx.input, ctx.limits)?;
    ctx.probe = Some(probe);
    ctx.meta = meta;
    Ok(())
}

/// Sniff, read the header and enforce `limits` (source pixels, then frames); also returns the
/// metadata of containers we walk ourselves (JPEG, WebP, AVIF).
pub(in crate::pipeline) fn probe_with_meta(
    input: &[u8],
    limits: &Limits,
) -> Result<(Probe, SourceMeta), PipelineError> {
    let (probe, meta) = probe::probe(input, limits.max_animation_frames)?;
    let (width, height) = (probe.width, probe.height);
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_source_pixels {
        return Err(PipelineError::TooLarge(format!(
            "source is {width}x{height} = {pixels} pixels, limit {}",
            limits.max_source_pixels
        )));
    }
    if probe.frames > limits.max_animation_frames {
        return Err(PipelineError::TooLarge(format!(
            "animation has more than {} frames",
            limits.max_animation_frames
        )));
    }
    Ok((probe, meta))
}
