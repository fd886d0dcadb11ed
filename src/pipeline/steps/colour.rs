//! Step `colour`: bring the decoded pixels into sRGB with the source's ICC profile, unless the
//! decoder already did (CMYK JPEG). The conversion is `color::to_srgb`'s.

use crate::imaging::color::to_srgb;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;

/// Pipeline step: convert `ctx.raster` from its embedded profile to sRGB.
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    if ctx.meta.icc_applied {
        return Ok(());
    }
    if let Some(icc) = ctx.meta.icc.take() {
        to_srgb(&mut ctx.raster, &icc);
        ctx.meta.icc_applied = true;
    }
    Ok(())
}
