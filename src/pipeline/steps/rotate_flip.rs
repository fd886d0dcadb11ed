//! Step `rotate_flip`: the user's `rotate` and `flip`, before `fit` (so `width` and `height`
//! name the axes after rotation, as Cloudflare defines them). The kernels are `geometry`'s.

use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::geometry;

pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    if !geometry::rotates_or_flips(ctx.spec) {
        return Ok(()); // nothing to do: leave a shared decode shared
    }
    let img = ctx.take_raster();
    ctx.raster = geometry::rotate_flip(img, ctx.spec);
    Ok(())
}
