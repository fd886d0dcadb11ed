//! Step `encode`: the finished raster to the chosen format's bytes, at the encoder setting the
//! request's `quality` maps to. The encoders are `encode.rs`'s.

use crate::pipeline::context::Ctx;
use crate::pipeline::encode::encode;
use crate::pipeline::error::PipelineError;
use crate::pipeline::format::encoder_quality;
use crate::spec::OutputFormat;

/// Pipeline step: encode `ctx.raster` into `ctx.output`.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let format = match ctx.format {
        Some(f) => f,
        None => {
            super::choose_format::step(ctx)?;
            ctx.format.unwrap_or(OutputFormat::Jpeg)
        }
    };
    let quality = encoder_quality(format, ctx.spec.quality);
    ctx.output = encode(&ctx.raster, format, quality, ctx.spec.grayscale)?;
    Ok(())
}
