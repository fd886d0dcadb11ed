//! Step `orient`: turn the decoded raster upright by the source's EXIF Orientation (read by
//! the probe or the decoder into `ctx.meta`). The transform is `imaging::orientation`'s; the user's
//! `rotate`/`flip` come later, in `rotate_flip`.

use crate::imaging::orientation::{apply, Orientation};
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;

/// Pipeline step: apply `ctx.meta.orientation` (values 2..=8; anything else is upright).
pub(in crate::pipeline) fn step(ctx: &mut Ctx<'_>) -> Result<(), PipelineError> {
    let orientation = ctx.meta.orientation;
    if (2..=8).contains(&orientation) {
        let img = ctx.take_raster();
        ctx.raster = apply(img, Orientation::from_exif(orientation));
    }
    Ok(())
}
