//! Step `border`: frame the finished picture (`border`, imgproxy's `padding`), after every
//! resize and effect so nothing blurs or scales the frame. The kernel is `geometry`'s.

use crate::imaging::Raster;
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::geometry;
use crate::pipeline::limits::Limits;
use crate::spec::{Rgba, TransformSpec};

pub(super) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    if ctx.spec.border.is_none() {
        return Ok(());
    }
    let img = ctx.take_raster();
    ctx.raster = frame(img, ctx.spec, ctx.limits)?;
    Ok(())
}

/// `img` in the spec's border (as it is without one); the animated path frames each frame.
pub(super) fn frame(
    img: Raster,
    spec: &TransformSpec,
    limits: &Limits,
) -> Result<Raster, PipelineError> {
    let Some(border) = spec.border else {
        return Ok(img);
    };
    // Without a colour of its own: the background's, else clear (`flatten` then lays the
    // background, or white under JPEG, beneath it like beneath any transparent pixel).
    let colour = border
        .colour
        .or(spec.background)
        .unwrap_or(Rgba([255, 255, 255, 0]));
    geometry::add_border(img, geometry::border_widths(spec), colour, limits)
}
