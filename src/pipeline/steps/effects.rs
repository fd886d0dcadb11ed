//! Step `effects`: blur, sharpen, brightness, contrast, gamma, saturation and grayscale on the
//! resized raster. The kernels are `effects`'s.

use crate::pipeline::context::Ctx;
use crate::pipeline::effects;
use crate::pipeline::error::PipelineError;

pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let img = ctx.take_raster();
    ctx.raster = effects::apply(img, ctx.spec);
    Ok(())
}
