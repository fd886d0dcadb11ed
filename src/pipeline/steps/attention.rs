//! Step `attention`: for `gravity=auto`, find where the crop window holds the most interest,
//! on the picture as `fit` will see it (upright, turned, shrunk on load), and leave that point
//! for `fit`. The measure is `attention`'s and the window's size `geometry`'s; other gravities
//! and fits without a crop window skip it.

use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::geometry;

pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let probe = ctx.probe()?;
    let original = super::fit::upright_size(&probe, ctx.meta.orientation, ctx.spec);
    let img = match &ctx.shared {
        Some(decoded) => &decoded.raster,
        None => &ctx.raster,
    };
    ctx.focus = geometry::auto_focus(img, original, ctx.spec, ctx.trimmed);
    Ok(())
}
