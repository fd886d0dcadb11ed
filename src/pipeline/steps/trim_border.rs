//! Step `trim_border`: find the border `trim=border` cuts away, on the upright raster, and
//! leave the box for `fit`, which cuts it like any other region. The finding is `border`'s.
//! Decoding does not shrink for such a request (`decode::min_upright_size`), so the box is in
//! the original's pixels.

use crate::pipeline::border;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;

pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let Some(trim) = ctx.spec.trim_border else {
        return Ok(());
    };
    let img = match &ctx.shared {
        Some(decoded) => &decoded.raster,
        None => &ctx.raster,
    };
    ctx.trimmed = border::find(img, &trim);
    Ok(())
}
